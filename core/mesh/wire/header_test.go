package wire

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderSizeConstants(t *testing.T) {
	// vector header-size; the derived limits of FORMATS §8.
	assert.Equal(t, 68, HeaderSize)
	assert.Equal(t, 8192, MaxPacket)
	assert.Equal(t, 8108, MaxPayload)
	assert.Equal(t, 2027, MaxEvents)
	assert.Equal(t, 56, AADSize)
	h := Header{}
	assert.Len(t, h.Bytes(), 68)
}

func TestHeaderAADFields(t *testing.T) {
	// vector header-aad-fields
	h := Header{
		SessionID: 0x1234567890abcdef, StreamID: 0xfedcba0987654321, Sequence: 42,
		PayloadLen: 1024, EventCount: 10, Flags: FlagReliable, Priority: 5, SubnetID: 0x42,
	}
	aad := h.AAD()
	require.Len(t, aad, 56)
	assert.Equal(t, []byte{0x45, 0x4e}, aad[0:2])
	assert.Equal(t, byte(1), aad[2])
	assert.Equal(t, byte(1), aad[3])
	assert.Equal(t, byte(5), aad[4])
	// Layout: bytes 0–11 then 24–67 of the header.
	b := h.Bytes()
	assert.Equal(t, b[0:12], aad[0:12])
	assert.Equal(t, b[24:68], aad[12:56])
}

func TestHeaderAADHopCount(t *testing.T) {
	// vector header-aad-hop-count
	a := Header{SessionID: 0x1234, StreamID: 0x5678, Sequence: 42, PayloadLen: 100, EventCount: 5}
	b := a
	b.HopCount = 99
	assert.Equal(t, a.AAD(), b.AAD())
	assert.NotEqual(t, a.Bytes(), b.Bytes(), "hop_count is still on the wire")
	assert.Equal(t, byte(0), b.AAD()[6], "hop_count slot is kept, zeroed")
}

func TestHeaderAADExcludesNonce(t *testing.T) {
	a := Header{SessionID: 7}
	b := a
	b.Nonce = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	assert.Equal(t, a.AAD(), b.AAD())
	// Every other field is covered.
	for _, mut := range []func(*Header){
		func(h *Header) { h.Flags = 1 }, func(h *Header) { h.Priority = 1 },
		func(h *Header) { h.HopTTL = 1 }, func(h *Header) { h.FragFlags = 1 },
		func(h *Header) { h.Subprotocol = 1 }, func(h *Header) { h.ChannelHint = 1 },
		func(h *Header) { h.SessionID = 8 }, func(h *Header) { h.StreamID = 1 },
		func(h *Header) { h.Sequence = 1 }, func(h *Header) { h.OriginHash = 1 },
		func(h *Header) { h.SubnetID = 1 }, func(h *Header) { h.FragmentID = 1 },
		func(h *Header) { h.FragmentOffset = 1 }, func(h *Header) { h.PayloadLen = 1 },
		func(h *Header) { h.EventCount = 1 },
	} {
		c := a
		mut(&c)
		assert.NotEqual(t, a.AAD(), c.AAD())
	}
}

func TestHeaderOriginU64(t *testing.T) {
	// vector header-origin-u64
	h := Header{SessionID: 0xaaaabbbbccccdddd, Sequence: 1, PayloadLen: 64, EventCount: 1, OriginHash: 0xcafebabedeadbeef}
	b := h.Bytes()
	p, err := ParseHeader(b[:])
	require.NoError(t, err)
	assert.Equal(t, uint64(0xcafebabedeadbeef), p.OriginHash)
	h2 := h
	h2.OriginHash ^= 1 << 33
	assert.NotEqual(t, h.AAD(), h2.AAD())
}

func TestHeaderRoundTrip(t *testing.T) {
	// vector header-roundtrip
	h := Header{
		SessionID: 0x1234567890abcdef, StreamID: 0xfedcba0987654321, Sequence: 42,
		PayloadLen: 1024, EventCount: 10, Flags: 0x01, Priority: 7, HopTTL: 32,
		Subprotocol: 0x0100, ChannelHint: 0xabcd, SubnetID: 0x12345678, OriginHash: 0xdeadbeef,
		FragmentID: 1, FragmentOffset: 512, FragFlags: 1,
	}
	for i := range h.Nonce {
		h.Nonce[i] = 0x42
	}
	b := h.Bytes()
	p, err := ParseHeader(b[:])
	require.NoError(t, err)
	assert.Equal(t, h, p)
	assert.Equal(t, uint8(0), p.HopCount)

	// Field offsets per the FORMATS §8 table.
	le := binary.LittleEndian
	assert.Equal(t, uint16(0x4E45), le.Uint16(b[0:]))
	assert.Equal(t, byte(1), b[2])
	assert.Equal(t, byte(0x01), b[3])
	assert.Equal(t, byte(7), b[4])
	assert.Equal(t, byte(32), b[5])
	assert.Equal(t, byte(1), b[7])
	assert.Equal(t, uint16(0x0100), le.Uint16(b[8:]))
	assert.Equal(t, uint16(0xabcd), le.Uint16(b[10:]))
	assert.Equal(t, h.Nonce[:], b[12:24])
	assert.Equal(t, uint64(0x1234567890abcdef), le.Uint64(b[24:]))
	assert.Equal(t, uint64(0xfedcba0987654321), le.Uint64(b[32:]))
	assert.Equal(t, uint64(42), le.Uint64(b[40:]))
	assert.Equal(t, uint64(0xdeadbeef), le.Uint64(b[48:]))
	assert.Equal(t, uint32(0x12345678), le.Uint32(b[56:]))
	assert.Equal(t, uint16(1), le.Uint16(b[60:]))
	assert.Equal(t, uint16(512), le.Uint16(b[62:]))
	assert.Equal(t, uint16(1024), le.Uint16(b[64:]))
	assert.Equal(t, uint16(10), le.Uint16(b[66:]))

	var buf [80]byte
	h.MarshalTo(buf[:])
	assert.Equal(t, b[:], buf[:68])
}

func TestHeaderValidation(t *testing.T) {
	// vector header-bad-magic
	h := Header{PayloadLen: 1024}
	b := h.Bytes()
	_, err := ParseHeader(b[:])
	require.NoError(t, err)
	b[0] = 0xff
	_, err = ParseHeader(b[:])
	assert.ErrorIs(t, err, ErrBadMagic)

	b = h.Bytes()
	b[2] = 2
	_, err = ParseHeader(b[:])
	assert.ErrorIs(t, err, ErrBadVersion)

	_, err = ParseHeader(b[:67])
	assert.ErrorIs(t, err, ErrTruncated)
	_, err = ParseHeader(nil)
	assert.ErrorIs(t, err, ErrTruncated)
}

func TestHeaderLimits(t *testing.T) {
	// vector header-event-count-cap
	h := Header{PayloadLen: 100, EventCount: MaxEvents + 1}
	b := h.Bytes()
	_, err := ParseHeader(b[:])
	assert.ErrorIs(t, err, ErrTooLarge)
	h.EventCount = 10
	b = h.Bytes()
	_, err = ParseHeader(b[:])
	assert.NoError(t, err)
	h.EventCount = MaxEvents
	b = h.Bytes()
	_, err = ParseHeader(b[:])
	assert.NoError(t, err)

	h.PayloadLen = MaxPayload
	b = h.Bytes()
	_, err = ParseHeader(b[:])
	assert.NoError(t, err)
	h.PayloadLen = MaxPayload + 1
	b = h.Bytes()
	_, err = ParseHeader(b[:])
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestHeaderCounter(t *testing.T) {
	h := Header{Nonce: MakeNonce(5, 0x0102030405060708)}
	assert.Equal(t, uint64(0x0102030405060708), h.Counter())
	h.PayloadLen = 10
	assert.Equal(t, 68+10+16, h.PacketLen())
}
