package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EventPrefixSize is the u32 length prefix in front of every framed event.
const EventPrefixSize = 4

// AppendEvents appends each event as [u32 LE length][bytes] to dst. Events
// longer than 2^32−1 bytes cannot be framed; the caller keeps packets within
// MaxPayload anyway.
func AppendEvents(dst []byte, events ...[]byte) []byte {
	for _, e := range events {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(e)))
		dst = append(dst, e...)
	}
	return dst
}

// FramedLen is the framed size of events.
func FramedLen(events ...[]byte) int {
	n := 0
	for _, e := range events {
		n += EventPrefixSize + len(e)
	}
	return n
}

// ParseEvents splits a decrypted payload into exactly count framed events.
// The returned slices alias payload. It rejects a count above MaxEvents or
// above what the payload could hold (each event needs 4 bytes), a length that
// runs past the end, and bytes left over after the last event.
func ParseEvents(payload []byte, count int) ([][]byte, error) {
	if count < 0 || count > MaxEvents || count > len(payload)/EventPrefixSize {
		return nil, fmt.Errorf("%w: event_count %d for %d payload bytes", ErrMalformed, count, len(payload))
	}
	if count == 0 {
		if len(payload) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after 0 events", ErrMalformed, len(payload))
		}
		return nil, nil
	}
	out := make([][]byte, 0, count)
	rest := payload
	for i := 0; i < count; i++ {
		if len(rest) < EventPrefixSize {
			return nil, fmt.Errorf("%w: event %d prefix", ErrTruncated, i)
		}
		n := binary.LittleEndian.Uint32(rest)
		rest = rest[EventPrefixSize:]
		if uint64(n) > uint64(len(rest)) || uint64(n) > math.MaxInt32 {
			return nil, fmt.Errorf("%w: event %d length %d, %d bytes left", ErrTruncated, i, n, len(rest))
		}
		out = append(out, rest[:n:n])
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after %d events", ErrMalformed, len(rest), count)
	}
	return out, nil
}
