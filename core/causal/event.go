package causal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// SubprotocolCausal is the subprotocol id of causal event frames. The 0.24
// mesh declares it but does not dispatch it.
const SubprotocolCausal = 0x0400

// Event is a causal event: its link, payload and arrival time (unix ns).
type Event struct {
	Link       Link
	Payload    []byte
	ReceivedAt uint64
}

// EncodeCausalFrames writes each event as [u32 len = 32 + payload length]
// [link][payload]. ReceivedAt is not on the wire. It panics only if a payload
// exceeds 4 GiB − 33 bytes.
func EncodeCausalFrames(events []Event) []byte {
	n := 0
	for _, e := range events {
		if len(e.Payload) > math.MaxUint32-LinkSize {
			panic(ErrTooLarge)
		}
		n += 4 + LinkSize + len(e.Payload)
	}
	b := make([]byte, 0, n)
	for _, e := range events {
		b = binary.LittleEndian.AppendUint32(b, uint32(LinkSize+len(e.Payload)))
		b = e.Link.AppendTo(b)
		b = append(b, e.Payload...)
	}
	return b
}

// DecodeCausalFrames parses frames written by EncodeCausalFrames (empty input
// = no events, returned as nil). A frame shorter than a link or longer than
// what remains is refused with ErrMalformed. ReceivedAt is left 0 for the
// caller to stamp. Payloads share one copy of b (each capped to its own
// length), so b is not retained.
func DecodeCausalFrames(b []byte) ([]Event, error) {
	if len(b) == 0 {
		return nil, nil
	}
	b = bytes.Clone(b)
	var out []Event
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: causal frame %d: length truncated", ErrMalformed, len(out))
		}
		n := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if n < LinkSize || uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: causal frame %d: length %d with %d bytes left", ErrMalformed, len(out), n, len(b))
		}
		l, _ := ParseLink(b[:LinkSize])
		out = append(out, Event{Link: l, Payload: b[LinkSize:n:n]})
		b = b[n:]
	}
	return out, nil
}
