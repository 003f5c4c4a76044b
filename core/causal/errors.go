package causal

import "errors"

var (
	// ErrMalformed: bytes do not decode (truncated, trailing, bad field).
	ErrMalformed = errors.New("causal: malformed bytes")
	// ErrSequenceOverflow: the chain's sequence would wrap.
	ErrSequenceOverflow = errors.New("causal: sequence overflow")
	// ErrInvalidChannelName: a channel name breaks the naming rules.
	ErrInvalidChannelName = errors.New("causal: invalid channel name")
)
