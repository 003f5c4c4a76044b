package wire

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplayWindowVector1(t *testing.T) {
	// vector replay-window-1. Its "commit" records a counter without the
	// range check (2000 is a jump of 1900), which is what commit does.
	var w ReplayWindow
	assert.True(t, w.Check(0))
	w.commit(100)
	assert.True(t, w.Check(101))
	assert.True(t, w.Check(200))
	assert.True(t, w.Check(50))
	assert.False(t, w.Check(2000), "a jump of 1900 is refused by Accept")
	w.commit(2000)
	assert.False(t, w.Check(0))
	assert.False(t, w.Check(math.MaxUint64))
	assert.True(t, w.Check(3025))
	assert.False(t, w.Check(3026))
}

func TestReplayWindowVector2(t *testing.T) {
	// vector replay-window-2
	var w ReplayWindow
	for c := uint64(0); c <= 99; c++ {
		require.True(t, w.Accept(c))
	}
	assert.True(t, w.Check(1124))
	assert.False(t, w.Check(1125))
	require.True(t, w.Accept(1124))
	assert.False(t, w.Check(1124))
	assert.False(t, w.Check(99))
	assert.False(t, w.Accept(99))
}

func TestReplayWindowCeiling(t *testing.T) {
	// vector replay-window-ceiling, for both readings of "rx_counter"
	// (highest accepted, and next expected = highest+1).
	for _, h := range []uint64{math.MaxUint64 - 1024, math.MaxUint64 - 1025} {
		w := ReplayWindow{started: true, highest: h}
		w.set(h)
		assert.False(t, w.Accept(math.MaxUint64))
		got, ok := w.Highest()
		assert.True(t, ok)
		assert.Equal(t, h, got, "2^64-1 does not move the window")
		assert.True(t, w.Accept(math.MaxUint64-1))
		got, _ = w.Highest()
		assert.Equal(t, uint64(math.MaxUint64-1), got)
		assert.False(t, w.Accept(math.MaxUint64-1))
		assert.False(t, w.Accept(math.MaxUint64))
	}
}

func TestReplayWindowFresh(t *testing.T) {
	var w ReplayWindow
	_, ok := w.Highest()
	assert.False(t, ok)
	assert.True(t, w.Check(1024))
	assert.False(t, w.Check(1025))
	assert.False(t, w.Check(math.MaxUint64))
	assert.False(t, w.Accept(1025))
	_, ok = w.Highest()
	assert.False(t, ok, "a refused counter does not start the window")
	assert.True(t, w.Accept(1024))
	assert.False(t, w.Accept(1024))
	assert.True(t, w.Accept(1), "1024-1023 = 1 still in window")
	assert.False(t, w.Accept(0), "below H-1023")
}

func TestReplayWindowEdges(t *testing.T) {
	var w ReplayWindow
	for c := uint64(0); c <= 5000; c += 1000 {
		require.True(t, w.Accept(c))
	}
	w.clearAll()
	w.set(5000)
	assert.True(t, w.Check(5000+1025))
	assert.False(t, w.Check(5000+1026))
	// Exactly the lower edge H-1023 and just below.
	assert.True(t, w.Check(5000-1023))
	assert.False(t, w.Check(5000-1024))
	// Out-of-order inside the window, each once.
	for c := uint64(5000 - 1023); c < 5000; c++ {
		assert.True(t, w.Accept(c), c)
	}
	for c := uint64(5000 - 1023); c <= 5000; c++ {
		assert.False(t, w.Check(c), c)
	}
	// A forward step of 1..1023 keeps the overlapping history.
	require.True(t, w.Accept(5500))
	for c := uint64(5500 - 1023); c <= 5000; c++ {
		assert.False(t, w.Check(c), c)
	}
	for c := uint64(5001); c < 5500; c++ {
		assert.True(t, w.Check(c), c)
	}
	// A full-window jump forgets everything but the new highest.
	require.True(t, w.Accept(5500+1025))
	for c := uint64(5500 + 2); c < 5500+1025; c++ {
		assert.True(t, w.Check(c), c)
	}
	assert.False(t, w.Check(5500+1), "H-1024 is out of window")
}

func TestReplayWindowReorderedStream(t *testing.T) {
	// Counters delivered in blocks reversed: every one accepted exactly once.
	var w ReplayWindow
	for base := uint64(0); base < 10000; base += 100 {
		for i := uint64(100); i > 0; i-- {
			assert.True(t, w.Accept(base+i-1))
		}
	}
	for c := uint64(10000 - 1024); c < 10000; c++ {
		assert.False(t, w.Accept(c))
	}
}

func (w *ReplayWindow) clearAll() { w.bits = [ReplayWindowSize / 64]uint64{} }

func TestReplayWindowCommit(t *testing.T) {
	var w ReplayWindow
	w.commit(math.MaxUint64)
	_, ok := w.Highest()
	assert.False(t, ok, "2^64-1 is never committed")
	w.commit(5000)
	w.commit(10) // far below: ignored
	h, _ := w.Highest()
	assert.Equal(t, uint64(5000), h)
	assert.False(t, w.Check(10))
	assert.True(t, w.Check(4000))
}
