package wire

import (
	"encoding/binary"
	"fmt"
)

// NackPayloadSize is the size of a NACK body.
const NackPayloadSize = 16

// NackPayload asks for retransmission: NextExpected is missing, and bit i of
// MissingBitmap marks NextExpected+1+i as missing too.
type NackPayload struct {
	NextExpected, MissingBitmap uint64
}

// Encode returns the 16-byte wire form.
func (n NackPayload) Encode() []byte {
	b := make([]byte, NackPayloadSize)
	binary.LittleEndian.PutUint64(b[0:], n.NextExpected)
	binary.LittleEndian.PutUint64(b[8:], n.MissingBitmap)
	return b
}

// DecodeNack decodes exactly 16 bytes.
func DecodeNack(b []byte) (NackPayload, error) {
	if len(b) != NackPayloadSize {
		return NackPayload{}, fmt.Errorf("%w: nack is %d bytes, want %d", ErrLength, len(b), NackPayloadSize)
	}
	return NackPayload{
		NextExpected:  binary.LittleEndian.Uint64(b[0:]),
		MissingBitmap: binary.LittleEndian.Uint64(b[8:]),
	}, nil
}

// Missing lists the missing sequences in ascending order: NextExpected, then
// NextExpected+1+i for each set bit i. Sequences past 2^64−1 are left out.
func (n NackPayload) Missing() []uint64 {
	out := []uint64{n.NextExpected}
	for i := uint64(0); i < 64; i++ {
		if n.MissingBitmap&(1<<i) == 0 {
			continue
		}
		s := n.NextExpected + 1 + i
		if s <= n.NextExpected { // wrapped
			break
		}
		out = append(out, s)
	}
	return out
}

// StreamWindowGrantSize is the size of a 0x0B00 credit grant.
const StreamWindowGrantSize = 16

// StreamWindowStreamID is the stream_id stream-window grants travel on.
const StreamWindowStreamID = ^uint64(0)

// StreamWindowGrant (subprotocol 0x0B00) tells a sender how many bytes of a
// stream the receiver has consumed in total.
type StreamWindowGrant struct {
	StreamID, TotalConsumed uint64
}

// Encode returns the 16-byte wire form.
func (g StreamWindowGrant) Encode() []byte {
	b := make([]byte, StreamWindowGrantSize)
	binary.LittleEndian.PutUint64(b[0:], g.StreamID)
	binary.LittleEndian.PutUint64(b[8:], g.TotalConsumed)
	return b
}

// DecodeStreamWindowGrant decodes exactly 16 bytes.
func DecodeStreamWindowGrant(b []byte) (StreamWindowGrant, error) {
	if len(b) != StreamWindowGrantSize {
		return StreamWindowGrant{}, fmt.Errorf("%w: stream-window grant is %d bytes, want %d", ErrLength, len(b), StreamWindowGrantSize)
	}
	return StreamWindowGrant{
		StreamID:      binary.LittleEndian.Uint64(b[0:]),
		TotalConsumed: binary.LittleEndian.Uint64(b[8:]),
	}, nil
}

// Migration message codes used by the node itself (FORMATS §6); the full
// migration codec lives with the migration code.
const (
	MigrationTakeSnapshot      uint8  = 0
	MigrationSnapshotReady     uint8  = 1
	MigrationFailed            uint8  = 6
	FailureComputeNotSupported uint16 = 2
)

// MigrationComputeNotSupported builds MigrationFailed{origin,
// ComputeNotSupported}: [6][origin u64][u16 2], 11 bytes. A node without a
// migration handler answers TakeSnapshot and SnapshotReady with it.
func MigrationComputeNotSupported(origin uint64) []byte {
	b := make([]byte, 0, 11)
	b = append(b, MigrationFailed)
	b = binary.LittleEndian.AppendUint64(b, origin)
	b = binary.LittleEndian.AppendUint16(b, FailureComputeNotSupported)
	return b
}

// MigrationOrigin reads the type and origin of a migration message without
// decoding the rest; ok is false when fewer than 9 bytes are present.
func MigrationOrigin(b []byte) (kind uint8, origin uint64, ok bool) {
	if len(b) < 9 {
		return 0, 0, false
	}
	return b[0], binary.LittleEndian.Uint64(b[1:]), true
}
