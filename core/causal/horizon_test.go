package causal

import (
	"math/bits"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Vector horizon-empty.
func TestHorizonEmpty(t *testing.T) {
	var h Horizon
	assert.Equal(t, uint64(0), h.Encode())
	assert.Equal(t, 0, h.Len())
}

// Vector horizon-single: one origin sets 1..3 bits (exactly 3, since h2 is odd).
func TestHorizonSingle(t *testing.T) {
	var h Horizon
	h.Observe(0xaaaabbbb, 1)
	enc := h.Encode()
	assert.NotZero(t, enc)
	assert.Equal(t, 3, bits.OnesCount64(enc))
	assert.Equal(t, uint64(0x4800000000000002), enc) // Python-checked
	assert.True(t, MightContain(enc, 0xaaaabbbb))
}

// Vector horizon-might-contain-zero.
func TestMightContainEmpty(t *testing.T) {
	assert.False(t, MightContain(0, 0xaaaa))
}

func TestBloomKnownAnswers(t *testing.T) {
	want := map[uint64]uint64{ // Python-checked
		0xaaaabbbb: 0x4800000000000002,
		0xabcd:     0x0080002000004000,
		1:          0x0000400801000000,
		2:          0x2000000100000008,
		0xdeadbeef: 0x0001000080000002,
	}
	var h Horizon
	for o, w := range want {
		assert.Equal(t, w, BloomBits(o), "origin %#x", o)
		h.Observe(o, 1)
	}
	enc := h.Encode()
	assert.Equal(t, uint64(0x688140298100400a), enc)
	for o := range want {
		assert.True(t, MightContain(enc, o))
	}
	assert.False(t, MightContain(enc, 0xaaaa))
}

func TestHorizonObserve(t *testing.T) {
	var h Horizon
	h.Observe(7, 5)
	h.Observe(7, 3) // lower sequences never move it back
	h.Observe(9, 0) // sequence 0 still counts as observed
	s, ok := h.Highest(7)
	assert.True(t, ok)
	assert.Equal(t, uint64(5), s)
	s, ok = h.Highest(9)
	assert.True(t, ok)
	assert.Equal(t, uint64(0), s)
	_, ok = h.Highest(8)
	assert.False(t, ok)
	assert.Equal(t, 2, h.Len())
	assert.Equal(t, BloomBits(7)|BloomBits(9), h.Encode())

	h.Reset()
	assert.Equal(t, 0, h.Len())
	assert.Equal(t, uint64(0), h.Encode())
}

// The last-origin cache and the map agree: interleaved origins, lower and
// higher sequences, Len, Encode and Reset.
func TestHorizonLastOriginCache(t *testing.T) {
	var h Horizon
	h.Observe(7, 1)
	h.Observe(7, 9)
	h.Observe(7, 4)
	s, ok := h.Highest(7)
	require.True(t, ok)
	assert.Equal(t, uint64(9), s)
	assert.Equal(t, 1, h.Len())

	h.Observe(8, 2) // flushes 7's cached highest into the map
	s, ok = h.Highest(7)
	require.True(t, ok)
	assert.Equal(t, uint64(9), s)
	h.Observe(7, 3) // back to 7 with a lower sequence: keeps 9
	s, _ = h.Highest(7)
	assert.Equal(t, uint64(9), s)
	h.Observe(7, 12)
	h.Observe(8, 1)
	s, _ = h.Highest(7)
	assert.Equal(t, uint64(12), s)
	s, _ = h.Highest(8)
	assert.Equal(t, uint64(2), s)
	assert.Equal(t, 2, h.Len())
	assert.Equal(t, BloomBits(7)|BloomBits(8), h.Encode())
	_, ok = h.Highest(9)
	assert.False(t, ok)

	h.Reset()
	assert.Equal(t, 0, h.Len())
	assert.Equal(t, uint64(0), h.Encode())
	_, ok = h.Highest(8)
	assert.False(t, ok)
	h.Observe(8, 0)
	s, ok = h.Highest(8)
	assert.True(t, ok)
	assert.Equal(t, uint64(0), s)
}

func BenchmarkHorizonObserveSameOrigin(b *testing.B) {
	var h Horizon
	var i uint64
	for b.Loop() {
		i++
		h.Observe(42, i)
	}
}
