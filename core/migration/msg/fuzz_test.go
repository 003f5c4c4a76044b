package msg

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
)

// seedMessages covers every type and reason.
func seedMessages() []*Message {
	link := causal.Link{Origin: 1, Horizon: 2, Sequence: 3, Parent: 4}
	ms := []*Message{
		{Type: TakeSnapshot, Origin: 1, TargetNode: 2},
		{Type: SnapshotReady, Origin: 1, SeqThrough: 2, ChunkIndex: 1, TotalChunks: 3, Chunk: []byte("chunk")},
		{Type: RestoreComplete, Origin: 1, Seq: 9},
		{Type: ReplayComplete, Origin: 1, Seq: 9, TargetHead: link},
		{Type: CutoverNotify, Origin: 1, TargetNode: 2},
		{Type: CleanupComplete, Origin: 1},
		{Type: BufferedEvents, Origin: 1, Events: []causal.Event{{Link: link, Payload: []byte("p"), ReceivedAt: 5}, {Link: link}}},
		{Type: BufferedEvents, Origin: 1, Events: []causal.Event{{Link: link, Payload: []byte("p"), ReceivedAt: 5}}, Batch: 77},
		{Type: ActivateTarget, Origin: 1},
		{Type: ActivateAck, Origin: 1, Seq: 3},
	}
	for c := range ReasonCode(7) {
		ms = append(ms, &Message{Type: MigrationFailed, Origin: 1, Reason: Reason{Code: c, Text: "why ✓", Attempts: 3}})
	}
	return ms
}

func FuzzDecode(f *testing.F) {
	for _, m := range seedMessages() {
		b := m.Encode()
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	for _, h := range []string{
		"06efbe000000000000ffff",
		"01aaaa0000000000000100000000000000000000000000000000000000",
		"01aaaa0000000000000100000000000000050000000300000000000000",
		"01aaaa000000000000010000000000000000000000ffffffff00000000",
		"06010000000000000003000200c328",
		"070100000000000000ffffffff",
	} {
		f.Add(unhex(f, h))
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		// Whatever decodes is valid, re-encodes to the bytes it came from
		// (the trailer excepted) and decodes to the same message.
		require.NoError(t, m.Validate())
		enc := m.Encode()
		require.Len(t, enc, m.EncodedLen())
		require.Equal(t, b[:len(enc)], enc)
		m2, err := Decode(enc)
		require.NoError(t, err)
		require.Equal(t, m, m2)
	})
}

// FuzzReassembler drives one Reassembler (with a lowered byte cap so the cap
// is reachable) with a random sequence of Add, Forget and clock steps. Each
// step is 8 bytes: op, origin, seq, index, total, length (2), clock.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 10, 0, 0, 0, 0, 1, 1, 2, 10, 0, 0})
	f.Add([]byte{0, 1, 5, 0, 3, 0xff, 0x1f, 0, 0, 1, 4, 0, 1, 1, 0, 0xff, 0, 1, 5, 2, 3, 0x58, 0x1b, 0})
	f.Add([]byte{0, 2, 1, 0, 0, 1, 0, 0, 0, 2, 1, 7, 3, 1, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		const origins = 3
		const maxBytes = 3 * ChunkSize
		clk := newFakeClock()
		r := NewReassembler(clk.Now)
		r.maxBytes = maxBytes
		for ; len(b) >= 8; b = b[8:] {
			origin := uint64(b[1] % origins)
			clk.Advance(time.Duration(b[7]) * 5 * time.Second)
			if b[0]%16 == 15 {
				r.Forget(origin)
				continue
			}
			seq := uint64(b[2] % 8)
			index, total := uint32(b[3]%8), uint32(b[4]%8)
			if b[0]&0x10 != 0 {
				total = binary.LittleEndian.Uint32([]byte{b[4], b[3], b[4], b[3]})
			}
			n := int(binary.LittleEndian.Uint16(b[5:])) % (ChunkSize + 2)
			before, beforeTotal, beforeBytes := r.Progress(origin)
			out, err := r.Add(origin, seq, index, total, make([]byte, n))
			c, tot, held := r.Progress(origin)
			switch {
			case err != nil:
				require.Nil(t, out)
				swept := c == 0 && tot == 0 && held == 0
				require.True(t, swept || (c == before && tot == beforeTotal && held == beforeBytes),
					"a refusal changed the partial: %v", err)
			case out != nil:
				require.LessOrEqual(t, len(out), maxBytes)
				require.NotZero(t, len(out))
				require.Zero(t, c, "a completed snapshot is forgotten")
			default:
				require.NotZero(t, c)
			}
			// Bounded memory: every partial is within the cap and holds no
			// more chunks than its total.
			require.LessOrEqual(t, len(r.pending), origins)
			for _, p := range r.pending {
				sum := 0
				for _, ch := range p.chunks {
					sum += len(ch)
				}
				require.Equal(t, sum, p.bytes)
				require.LessOrEqual(t, p.bytes, maxBytes)
				require.Less(t, uint32(len(p.chunks)), p.total)
			}
		}
	})
}
