package identity

import (
	"errors"
	"fmt"
)

var (
	// ErrReadOnly: the keypair has no secret, so it cannot sign or be sealed.
	ErrReadOnly = errors.New("identity: read-only keypair has no secret key")
	// ErrInvalidSeed: a seed was not 32 bytes.
	ErrInvalidSeed = errors.New("identity: invalid seed")
)

// Identity envelope errors. Every one wraps ErrEnvelope; OpenEnvelope returns
// them in the order of its checks (see OpenEnvelope).
var (
	// ErrEnvelope is the common cause of every envelope failure.
	ErrEnvelope = errors.New("identity: envelope")
	// ErrEnvelopeMalformed: not exactly 209 bytes, or a version other than 1.
	ErrEnvelopeMalformed = fmt.Errorf("%w: malformed", ErrEnvelope)
	// ErrEnvelopeSignerMismatch: signer_pub is not the expected entity.
	ErrEnvelopeSignerMismatch = fmt.Errorf("%w: signer is not the expected entity", ErrEnvelope)
	// ErrEnvelopeBadSignature: the signature over target ‖ link does not verify strictly.
	ErrEnvelopeBadSignature = fmt.Errorf("%w: bad signature", ErrEnvelope)
	// ErrEnvelopeWrongTarget: sealed to another node's static key.
	ErrEnvelopeWrongTarget = fmt.Errorf("%w: sealed to another target", ErrEnvelope)
	// ErrEnvelopeDecrypt: the AEAD did not open (or the ephemeral key is degenerate).
	ErrEnvelopeDecrypt = fmt.Errorf("%w: decryption failed", ErrEnvelope)
	// ErrEnvelopeSeedMismatch: the sealed seed does not derive signer_pub.
	ErrEnvelopeSeedMismatch = fmt.Errorf("%w: seed does not match signer", ErrEnvelope)
	// ErrEnvelopeBadTarget: sealing to a target key of small order (no shared secret).
	ErrEnvelopeBadTarget = fmt.Errorf("%w: unusable target key", ErrEnvelope)
)

// Permission token errors. Every one wraps ErrToken.
var (
	// ErrToken is the common cause of every token failure.
	ErrToken = errors.New("identity: token")
	// ErrTokenMalformed: a token encoding that is not exactly 169 bytes.
	ErrTokenMalformed = fmt.Errorf("%w: malformed", ErrToken)
	// ErrTokenTTL: a TTL outside 1 s ..= 365 days.
	ErrTokenTTL = fmt.Errorf("%w: ttl out of range", ErrToken)
	// ErrTokenClock: a time before the unix epoch where a token time is needed.
	ErrTokenClock = fmt.Errorf("%w: time before unix epoch", ErrToken)
	// ErrTokenBadSignature: the issuer's signature does not verify strictly.
	ErrTokenBadSignature = fmt.Errorf("%w: bad signature", ErrToken)
	// ErrTokenExpired: now ≥ not_after.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrToken)
	// ErrTokenNotYetValid: now < not_before.
	ErrTokenNotYetValid = fmt.Errorf("%w: not yet valid", ErrToken)
	// ErrTokenScope: the token's scope lacks a requested action (or none was asked).
	ErrTokenScope = fmt.Errorf("%w: scope not granted", ErrToken)
	// ErrTokenChannel: the token is bound to another channel and is not a wildcard.
	ErrTokenChannel = fmt.Errorf("%w: wrong channel", ErrToken)
	// ErrTokenDelegation: delegation refused (no DELEGATE scope, depth exhausted,
	// holder is not the subject, or the child would widen the parent).
	ErrTokenDelegation = fmt.Errorf("%w: delegation not allowed", ErrToken)
)
