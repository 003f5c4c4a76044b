package wire

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoutingHeaderMagic(t *testing.T) {
	// vector routing-header-magic
	r := RoutingHeader{DestID: 0x4e454e454e454e45, SrcID: 0x4e454e45, TTL: 8}
	b := r.Marshal()
	require.Len(t, b, RoutingHeaderSize)
	assert.Equal(t, uint16(0x5452), binary.LittleEndian.Uint16(b))
	assert.Equal(t, []byte{0x52, 0x54}, b[:2])
	assert.True(t, IsRouted(b))
}

func TestRoutingHeaderRoundTrip(t *testing.T) {
	// vector routing-header-roundtrip
	r := RoutingHeader{DestID: 0xdeadbeefffff4e45, SrcID: 0x11112222, TTL: 8}
	b := r.Marshal()
	assert.Equal(t, uint16(0x5452), binary.LittleEndian.Uint16(b))
	p, err := ParseRoutingHeader(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(0xdeadbeefffff4e45), p.DestID)
	assert.Equal(t, uint32(0x11112222), p.SrcID)
	assert.Equal(t, uint8(8), p.TTL)
	assert.Equal(t, r, p)
	// Layout: magic · ttl · hop · flags · reserved · src u32 · dest u64.
	full := RoutingHeader{TTL: 16, HopCount: 2, Flags: 3, SrcID: 0x01020304, DestID: 0x1112131415161718}
	assert.Equal(t, []byte{0x52, 0x54, 16, 2, 3, 0, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11}, full.Marshal())
}

func TestRoutingHeaderBadMagic(t *testing.T) {
	// vector routing-header-bad-magic
	r := RoutingHeader{DestID: 1, SrcID: 2, TTL: 8}
	for _, m := range []uint16{0x4e45, 0xffff} {
		b := r.Marshal()
		binary.LittleEndian.PutUint16(b, m)
		_, err := ParseRoutingHeader(b)
		assert.ErrorIs(t, err, ErrBadMagic)
		assert.False(t, IsRouted(b))
	}
	_, err := ParseRoutingHeader(r.Marshal()[:17])
	assert.ErrorIs(t, err, ErrTruncated)
}

func TestRoutingHeaderForward(t *testing.T) {
	// vector routing-header-forward
	r := RoutingHeader{TTL: 3}
	assert.True(t, r.Forward())
	assert.Equal(t, uint8(2), r.TTL)
	assert.Equal(t, uint8(1), r.HopCount)
	assert.True(t, r.Forward())
	assert.True(t, r.Forward())
	assert.Equal(t, uint8(0), r.TTL)
	assert.Equal(t, uint8(3), r.HopCount)
	assert.False(t, r.Forward())
	assert.Equal(t, uint8(0), r.TTL)
	assert.Equal(t, uint8(3), r.HopCount)
}
