package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func FuzzParseHeader(f *testing.F) {
	h := Header{Flags: FlagReliable, SessionID: 0x1234567890abcdef, PayloadLen: 1024, EventCount: 10, HopCount: 3, OriginHash: 0xcafebabedeadbeef}
	b := h.Bytes()
	f.Add(b[:])
	f.Add(b[:67])
	f.Add([]byte{})
	bad := b
	bad[0] = 0xff
	f.Add(bad[:])
	big := Header{PayloadLen: MaxPayload + 1}
	bb := big.Bytes()
	f.Add(bb[:])
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHeader(in)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, len(in), HeaderSize)
		require.LessOrEqual(t, int(h.PayloadLen), MaxPayload)
		require.LessOrEqual(t, int(h.EventCount), MaxEvents)
		out := h.Bytes()
		require.Equal(t, in[:HeaderSize], out[:], "encode(decode(b)) == b")
		aad := h.AAD()
		require.Equal(t, in[0:6], aad[0:6])
		require.Equal(t, byte(0), aad[6])
		require.Equal(t, in[24:68], aad[12:])
	})
}

// fuzzKey is the fixed key FuzzOpen seals its seeds with.
var fuzzKey = [32]byte{0: 0xf0, 31: 0x0f}

func FuzzOpen(f *testing.F) {
	c, err := NewCipher(fuzzKey)
	require.NoError(f, err)
	for i, pt := range [][]byte{nil, []byte("x"), AppendEvents(nil, []byte("event"), []byte("two")), bytes.Repeat([]byte{1}, 1024)} {
		h := Header{SessionID: 0x0102030405060708 * uint64(i+1), EventCount: uint16(i % 3)}
		pkt := c.Seal(nil, &h, uint64(i*7), pt)
		f.Add(pkt)
		f.Add(pkt[:len(pkt)-1])
		flip := append([]byte(nil), pkt...)
		flip[len(flip)-1] ^= 1
		f.Add(flip)
	}
	f.Add([]byte{0x45, 0x4e, 1})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, pt, err := c.Open(nil, pkt)
		if err != nil {
			require.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrBadMagic) ||
				errors.Is(err, ErrBadVersion) || errors.Is(err, ErrTooLarge) ||
				errors.Is(err, ErrLength) || errors.Is(err, ErrAuth), "untyped error %v", err)
			return
		}
		// Only genuine packets open; re-sealing reproduces them (hop_count aside).
		require.Len(t, pt, int(h.PayloadLen))
		h2 := h
		re := c.Seal(nil, &h2, h.Counter(), pt)
		require.Equal(t, h, h2)
		require.Equal(t, pkt, re)
	})
}

func FuzzParseEvents(f *testing.F) {
	f.Add(AppendEvents(nil, []byte("event1"), []byte("event2"), []byte("event3")), 3)
	f.Add(AppendEvents(nil, []byte{}), 1)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0}, 1)
	f.Add([]byte{}, 0)
	f.Add([]byte{1, 0, 0, 0}, 5000)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		evs, err := ParseEvents(payload, count)
		if err != nil {
			require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTruncated))
			return
		}
		require.Len(t, evs, count)
		require.True(t, bytes.Equal(payload, AppendEvents(nil, evs...)), "encode(decode(b)) == b")
	})
}

func FuzzDecodeMembership(f *testing.F) {
	for _, m := range []*MembershipMsg{
		{Kind: Subscribe, Nonce: 99, Channel: "sensors/lidar"},
		{Kind: Subscribe, Nonce: 1, Channel: "a/b", Token: bytes.Repeat([]byte{7}, 169), QueueGroup: "g"},
		{Kind: Unsubscribe, Nonce: 42, Channel: "control/estop"},
		{Kind: Ack, Nonce: 7, Accepted: true},
		{Kind: Ack, Nonce: 8, Reason: ReasonTooManyChannels},
	} {
		f.Add(m.Encode())
	}
	for _, s := range []string{"", "\xff", "\x00\x00\x00\x00", "\x00\x2a\x00\x00\x00\x00\x00\x00\x00\x05lab/x\x05",
		"\x02\x07\x00\x00\x00\x00\x00\x00\x00\xff\x00", "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x07svc/req\x00\x00\x02\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMembership(in)
		if err != nil {
			require.Nil(t, m)
			require.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrUnknownType) ||
				errors.Is(err, ErrOverflow) || errors.Is(err, ErrBadChannelName), "untyped error %v", err)
			return
		}
		require.NoError(t, m.Validate())
		enc := m.Encode()
		require.NotNil(t, enc)
		m2, err := DecodeMembership(enc)
		require.NoError(t, err)
		require.Equal(t, m, m2)
		// The canonical encoding only differs from the input by the optional
		// fields 0.24 may leave out (no token_len, zero qg_len).
		if m.Kind != Subscribe {
			require.Equal(t, in, enc)
		} else {
			require.True(t, bytes.HasPrefix(enc, in) || bytes.HasPrefix(in, enc))
		}
	})
}

func FuzzParseRoutingHeader(f *testing.F) {
	f.Add((&RoutingHeader{TTL: 16, SrcID: 0x11112222, DestID: 0xdeadbeefffff4e45}).Marshal())
	f.Add([]byte{0x45, 0x4e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x52, 0x54})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseRoutingHeader(in)
		if err != nil {
			require.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrBadMagic))
			return
		}
		require.True(t, IsRouted(in))
		out := r.Marshal()
		require.Equal(t, in[:5], out[:5])
		require.Equal(t, in[6:RoutingHeaderSize], out[6:])
		r2, err := ParseRoutingHeader(out)
		require.NoError(t, err)
		require.Equal(t, r, r2)
		before := r
		if r.Forward() {
			require.Equal(t, before.TTL-1, r.TTL)
			require.GreaterOrEqual(t, r.HopCount, before.HopCount)
		} else {
			require.Equal(t, before, r)
			require.Equal(t, uint8(0), r.TTL)
		}
	})
}

// FuzzReplayWindow drives a window with a stream of counters derived from the
// input (8 bytes each, read as deltas around the current highest) and checks
// the invariants against a model that remembers every accepted counter.
func FuzzReplayWindow(f *testing.F) {
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint64(nil, 100))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var w ReplayWindow
		seen := map[uint64]bool{}
		var high uint64
		started := false
		for len(in) >= 8 {
			raw := binary.LittleEndian.Uint64(in)
			in = in[8:]
			// Mostly small signed steps around the highest, sometimes raw values.
			c := raw
			if raw&1 == 0 {
				c = high + uint64(int64(int16(raw>>1))) // wraps deliberately
			}
			check := w.Check(c)
			wAfterCheck := w
			accepted := w.Accept(c)
			require.Equal(t, check, accepted, "Accept agrees with Check")
			if !accepted {
				require.Equal(t, wAfterCheck, w, "a refusal leaves the window alone")
			}
			// Model.
			want := c != math.MaxUint64 && !seen[c]
			if !started {
				want = want && c <= ReplayWindowSize
			} else {
				want = want && (c > high && c-high <= ReplayWindowSize+1 ||
					c <= high && high-c < ReplayWindowSize)
			}
			require.Equal(t, want, accepted, "counter %d high %d started %v", c, high, started)
			if accepted {
				seen[c] = true
				if !started || c > high {
					high = c
				}
				started = true
			}
			h, ok := w.Highest()
			require.Equal(t, started, ok)
			if ok {
				require.Equal(t, high, h, "highest is monotonic and equals the model")
			}
			assert.False(t, w.Check(c) && accepted, "an accepted counter never passes again")
		}
	})
}
