package wire

import "errors"

// Sentinel errors of the wire codecs. Decoders wrap them with %w and detail, so
// callers match with errors.Is. A node counts drops by these values.
var (
	// ErrBadMagic: a packet or routing header does not start with its magic.
	ErrBadMagic = errors.New("wire: bad magic")
	// ErrBadVersion: the packet header carries a version other than 1.
	ErrBadVersion = errors.New("wire: unsupported version")
	// ErrTooLarge: a length field or input exceeds the protocol maximum.
	ErrTooLarge = errors.New("wire: too large")
	// ErrTruncated: fewer bytes than the format needs (also membership's
	// "truncated" class, which covers trailing bytes and a non-UTF-8 group).
	ErrTruncated = errors.New("wire: truncated")
	// ErrLength: a packet's size disagrees with its header's payload_len.
	ErrLength = errors.New("wire: length mismatch")
	// ErrAuth: AEAD authentication failed (tampered, wrong key or nonce).
	ErrAuth = errors.New("wire: authentication failed")
	// ErrReplay: the counter is outside the replay window or already seen.
	ErrReplay = errors.New("wire: replayed or out-of-window counter")
	// ErrMalformed: bytes are structurally wrong (bad frame, bad length field).
	ErrMalformed = errors.New("wire: malformed")
	// ErrUnknownType: an unknown message tag, boolean or enum value.
	ErrUnknownType = errors.New("wire: unknown type")
	// ErrOverflow: a declared length runs past the end of the input.
	ErrOverflow = errors.New("wire: length overflows input")
	// ErrBadChannelName: a channel name breaks the naming rules (FORMATS §4).
	ErrBadChannelName = errors.New("wire: invalid channel name")
	// ErrInvalid: a message to encode violates the format's limits.
	ErrInvalid = errors.New("wire: invalid message")
)
