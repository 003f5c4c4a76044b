package identity

import "errors"

var (
	// ErrReadOnly: the keypair has no secret, so it cannot sign or be sealed.
	ErrReadOnly = errors.New("identity: read-only keypair has no secret key")
	// ErrInvalidSeed: a seed was not 32 bytes.
	ErrInvalidSeed = errors.New("identity: invalid seed")
)
