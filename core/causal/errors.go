package causal

import "errors"

var (
	// ErrMalformed: bytes do not decode (truncated, trailing, bad field).
	// Every decoding error of this package wraps it.
	ErrMalformed = errors.New("causal: malformed bytes")
	// ErrBadMagic: a snapshot does not start with "CDS1" (wraps with ErrMalformed).
	ErrBadMagic = errors.New("causal: snapshot magic is not CDS1")
	// ErrUnsupportedVersion: a snapshot has a version other than 2 (wraps with
	// ErrMalformed).
	ErrUnsupportedVersion = errors.New("causal: unsupported snapshot version")
	// ErrInconsistent: a snapshot's fields disagree (through_seq vs the chain
	// link's sequence, or the link's origin vs the entity id). Wraps with
	// ErrMalformed when it comes from DecodeSnapshot.
	ErrInconsistent = errors.New("causal: inconsistent snapshot")
	// ErrBadEnvelope: a snapshot's identity envelope has the wrong version byte
	// (wraps with ErrMalformed when it comes from DecodeSnapshot).
	ErrBadEnvelope = errors.New("causal: bad identity envelope")
	// ErrSequenceOverflow: the chain's sequence would wrap.
	ErrSequenceOverflow = errors.New("causal: sequence overflow")
	// ErrInvalidChannelName: a channel name breaks the naming rules.
	ErrInvalidChannelName = errors.New("causal: invalid channel name")
	// ErrTooLarge: a field is too long for its length prefix.
	ErrTooLarge = errors.New("causal: field too large to encode")
)
