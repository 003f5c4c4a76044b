package wire

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNackPayload(t *testing.T) {
	// vector nack-payload
	n := NackPayload{NextExpected: 100, MissingBitmap: 0b10100101}
	b := n.Encode()
	assert.Len(t, b, 16)
	got, err := DecodeNack(b)
	require.NoError(t, err)
	assert.Equal(t, n, got)
	assert.Equal(t, []uint64{100, 101, 103, 106, 108}, got.Missing())
	_, err = DecodeNack(append(b, 0))
	assert.ErrorIs(t, err, ErrLength)
	_, err = DecodeNack(b[:15])
	assert.ErrorIs(t, err, ErrLength)
	_, err = DecodeNack(nil)
	assert.ErrorIs(t, err, ErrLength)
}

func TestNackMissingNoWrap(t *testing.T) {
	n := NackPayload{NextExpected: ^uint64(0) - 1, MissingBitmap: ^uint64(0)}
	assert.Equal(t, []uint64{^uint64(0) - 1, ^uint64(0)}, n.Missing())
	assert.Len(t, NackPayload{MissingBitmap: ^uint64(0)}.Missing(), 65)
}

func TestStreamWindowGrant(t *testing.T) {
	// vector stream-window
	g := StreamWindowGrant{StreamID: 1, TotalConsumed: 1}
	b := g.Encode()
	assert.Equal(t, "01000000000000000100000000000000", hex.EncodeToString(b))
	assert.Equal(t, byte(1), b[0])
	assert.Equal(t, byte(0), b[1])
	assert.Equal(t, byte(1), b[8])
	assert.Equal(t, byte(0), b[9])
	got, err := DecodeStreamWindowGrant(b)
	require.NoError(t, err)
	assert.Equal(t, g, got)
	for _, n := range []int{15, 17, 0} {
		_, err := DecodeStreamWindowGrant(make([]byte, n))
		assert.ErrorIs(t, err, ErrLength, n)
	}
	big := StreamWindowGrant{StreamID: StreamWindowStreamID, TotalConsumed: 0x0102030405060708}
	got, err = DecodeStreamWindowGrant(big.Encode())
	require.NoError(t, err)
	assert.Equal(t, big, got)
}

func TestMigrationComputeNotSupported(t *testing.T) {
	b := MigrationComputeNotSupported(0x1122334455667788)
	assert.Equal(t, "06"+"8877665544332211"+"0200", hex.EncodeToString(b))
	k, o, ok := MigrationOrigin(b)
	assert.True(t, ok)
	assert.Equal(t, MigrationFailed, k)
	assert.Equal(t, uint64(0x1122334455667788), o)
	_, _, ok = MigrationOrigin(b[:8])
	assert.False(t, ok)
}
