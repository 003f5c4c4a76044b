package msg

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/identity"
)

// fakeClock is an injectable clock for staleness tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// vectors.json chunking-small.
func TestChunkingSmallVector(t *testing.T) {
	snap := []byte{1, 2, 3}
	chunks := Split(snap)
	require.Len(t, chunks, 1)
	assert.Equal(t, snap, chunks[0])

	msgs := SplitMessages(0xaaaa, 10, snap)
	require.Len(t, msgs, 1)
	assert.Equal(t, &Message{Type: SnapshotReady, Origin: 0xaaaa, SeqThrough: 10, ChunkIndex: 0, TotalChunks: 1, Chunk: snap}, msgs[0])

	got, err := NewReassembler(nil).Add(0xaaaa, 10, 0, 1, msgs[0].Chunk)
	require.NoError(t, err)
	assert.Equal(t, snap, got)
}

// vectors.json chunking-large.
func TestChunkingLargeVector(t *testing.T) {
	snap := fill(0xab, 3*7000+100)
	msgs := SplitMessages(0xbbbb, 42, snap)
	require.Len(t, msgs, 4)
	r := NewReassembler(nil)
	var got []byte
	for i, m := range msgs {
		assert.Equal(t, uint32(i), m.ChunkIndex)
		assert.Equal(t, uint32(4), m.TotalChunks)
		assert.Equal(t, uint64(42), m.SeqThrough)
		assert.Len(t, m.Chunk, []int{7000, 7000, 7000, 100}[i])
		// Through the wire and back, as a receiver sees them.
		d, err := Decode(m.Encode())
		require.NoError(t, err)
		got, err = r.Add(d.Origin, d.SeqThrough, d.ChunkIndex, d.TotalChunks, d.Chunk)
		require.NoError(t, err)
		if i < 3 {
			require.Nil(t, got)
		}
	}
	assert.Equal(t, snap, got)
}

func TestSplitBoundaries(t *testing.T) {
	for _, c := range []struct{ n, chunks int }{{0, 1}, {1, 1}, {7000, 1}, {7001, 2}, {14000, 2}, {14001, 3}} {
		snap := make([]byte, c.n)
		for i := range snap {
			snap[i] = byte(i * 7)
		}
		chunks := Split(snap)
		require.Len(t, chunks, c.chunks, "%d bytes", c.n)
		assert.True(t, bytes.Equal(snap, bytes.Join(chunks, nil)))
		for _, ch := range chunks {
			assert.LessOrEqual(t, len(ch), ChunkSize)
			assert.Equal(t, len(ch), cap(ch), "a chunk must not reach into the next one")
		}
	}
	// An empty snapshot is one empty chunk 0 of 1, which a receiver refuses.
	_, err := NewReassembler(nil).Add(1, 1, 0, 1, Split(nil)[0])
	require.ErrorIs(t, err, ErrChunkEmpty)
}

// vectors.json reassembly-rejects, case by case.
func TestReassemblyRejectsVector(t *testing.T) {
	ten := fill(1, 10)
	t.Run("total 0", func(t *testing.T) {
		_, err := NewReassembler(nil).Add(0xaaaa, 1, 0, 0, ten)
		require.ErrorIs(t, err, ErrChunkTotal)
	})
	t.Run("total too large", func(t *testing.T) {
		_, err := NewReassembler(nil).Add(0xaaaa, 1, 0, 4294967295, ten)
		require.ErrorIs(t, err, ErrChunkTotal)
		_, err = NewReassembler(nil).Add(0xaaaa, 1, 0, MaxTotalChunks+1, ten)
		require.ErrorIs(t, err, ErrChunkTotal)
		_, err = NewReassembler(nil).Add(0xaaaa, 1, 0, MaxTotalChunks, ten)
		require.NoError(t, err)
	})
	t.Run("chunk too large", func(t *testing.T) {
		_, err := NewReassembler(nil).Add(0xaaaa, 1, 0, 3, fill(1, 7001))
		require.ErrorIs(t, err, ErrChunkTooLarge)
	})
	t.Run("empty chunk", func(t *testing.T) {
		_, err := NewReassembler(nil).Add(0xaaaa, 1, 0, 3, nil)
		require.ErrorIs(t, err, ErrChunkEmpty)
		require.ErrorIs(t, err, ErrChunk)
	})
	t.Run("total mismatch", func(t *testing.T) {
		r := NewReassembler(nil)
		_, err := r.Add(0xaaaa, 1, 0, 3, ten)
		require.NoError(t, err)
		_, err = r.Add(0xaaaa, 1, 1, 100, ten)
		require.ErrorIs(t, err, ErrChunkTotalMismatch)
		assert.Contains(t, err.Error(), "got 100, expected 3")
	})
	t.Run("0 of 1 over an open reassembly", func(t *testing.T) {
		r := NewReassembler(nil)
		_, err := r.Add(0xaaaa, 7, 0, 3, ten)
		require.NoError(t, err)
		got, err := r.Add(0xaaaa, 7, 0, 1, ten)
		require.ErrorIs(t, err, ErrChunkTotalMismatch)
		require.Nil(t, got)
		assert.Contains(t, err.Error(), "got 1, expected 3")
		c, total, n := r.Progress(0xaaaa)
		assert.Equal(t, []any{uint32(1), uint32(3), 10}, []any{c, total, n})
	})
	t.Run("stale seq_through", func(t *testing.T) {
		r := NewReassembler(nil)
		for _, seq := range []uint64{10, 11, 12} {
			_, err := r.Add(0xaaaa, seq, 0, 3, ten)
			require.NoError(t, err)
		}
		_, err := r.Add(0xaaaa, 5, 0, 3, ten)
		require.ErrorIs(t, err, ErrStale)
		assert.Contains(t, err.Error(), "seq_through 5, newest 12")
		assert.Len(t, r.pending, 1, "one entry pending")
		assert.Equal(t, uint64(12), r.pending[0xaaaa].seq)
	})
	t.Run("index out of range", func(t *testing.T) {
		r := NewReassembler(nil)
		_, err := r.Add(0xaaaa, 1, 0, 4, ten)
		require.NoError(t, err)
		for _, idx := range []uint32{4, 5, 7, 999} {
			_, err := r.Add(0xaaaa, 1, idx, 4, ten)
			require.ErrorIs(t, err, ErrChunkIndex, "index %d", idx)
		}
		c, _, _ := r.Progress(0xaaaa)
		assert.Equal(t, uint32(1), c)
	})
}

// vectors.json reassembly-order: chunks arriving in any order join by index.
func TestReassemblyOrderVector(t *testing.T) {
	r := NewReassembler(nil)
	for _, i := range []uint32{3, 1, 0} {
		got, err := r.Add(0xdead, 1, i, 4, fill(0xa0+byte(i), 10))
		require.NoError(t, err)
		require.Nil(t, got)
	}
	got, err := r.Add(0xdead, 1, 2, 4, fill(0xa2, 10))
	require.NoError(t, err)
	require.Len(t, got, 40)
	for i := range 4 {
		assert.Equal(t, fill(0xa0+byte(i), 10), got[i*10:i*10+10])
	}
	// Completion forgets the partial.
	c, total, n := r.Progress(0xdead)
	assert.Zero(t, c+total)
	assert.Zero(t, n)
}

func TestReassemblyRepeatedIndexReplaces(t *testing.T) {
	r := NewReassembler(nil)
	_, err := r.Add(1, 1, 0, 2, fill('a', 100))
	require.NoError(t, err)
	_, err = r.Add(1, 1, 0, 2, fill('b', 30))
	require.NoError(t, err)
	c, total, n := r.Progress(1)
	assert.Equal(t, []any{uint32(1), uint32(2), 30}, []any{c, total, n})
	got, err := r.Add(1, 1, 1, 2, fill('c', 5))
	require.NoError(t, err)
	assert.Equal(t, append(fill('b', 30), fill('c', 5)...), got)
}

func TestReassemblyCopiesChunks(t *testing.T) {
	r := NewReassembler(nil)
	c0 := fill('x', 4)
	_, err := r.Add(1, 1, 0, 2, c0)
	require.NoError(t, err)
	copy(c0, "zzzz")
	got, err := r.Add(1, 1, 1, 2, []byte("y"))
	require.NoError(t, err)
	assert.Equal(t, []byte("xxxxy"), got)

	one := []byte("solo")
	got, err = r.Add(2, 1, 0, 1, one)
	require.NoError(t, err)
	one[0] = 'X'
	assert.Equal(t, []byte("solo"), got)
}

func TestReassemblyNewerSeqDropsOlder(t *testing.T) {
	r := NewReassembler(nil)
	_, err := r.Add(1, 5, 0, 3, fill(1, 10))
	require.NoError(t, err)
	_, err = r.Add(1, 5, 1, 3, fill(1, 10))
	require.NoError(t, err)
	// A newer snapshot with another total starts over.
	_, err = r.Add(1, 6, 1, 2, fill(2, 7))
	require.NoError(t, err)
	c, total, n := r.Progress(1)
	assert.Equal(t, []any{uint32(1), uint32(2), 7}, []any{c, total, n})
	// The older one is now refused, not mixed in.
	_, err = r.Add(1, 5, 2, 3, fill(1, 10))
	require.ErrorIs(t, err, ErrStale)
	got, err := r.Add(1, 6, 0, 2, fill(3, 1))
	require.NoError(t, err)
	assert.Equal(t, append([]byte{3}, fill(2, 7)...), got)

	// A newer "0 of 1" also drops an open older partial and completes at once.
	_, err = r.Add(1, 7, 0, 2, fill(1, 10))
	require.NoError(t, err)
	got, err = r.Add(1, 8, 0, 1, []byte("new"))
	require.NoError(t, err)
	assert.Equal(t, []byte("new"), got)
	assert.Empty(t, r.pending)

	// Other origins are independent.
	_, err = r.Add(2, 1, 0, 1, []byte("other"))
	require.NoError(t, err)
}

func TestReassemblyOlderSeqAfterCompletionAndForget(t *testing.T) {
	r := NewReassembler(nil)
	_, err := r.Add(1, 9, 0, 1, []byte("a"))
	require.NoError(t, err)
	_, err = r.Add(1, 8, 0, 1, []byte("a"))
	require.ErrorIs(t, err, ErrStale)
	// The same seq_through again (a retried migration) is accepted.
	got, err := r.Add(1, 9, 0, 1, []byte("b"))
	require.NoError(t, err)
	assert.Equal(t, []byte("b"), got)

	_, err = r.Add(1, 10, 0, 2, []byte("p"))
	require.NoError(t, err)
	r.Forget(1)
	c, _, _ := r.Progress(1)
	assert.Zero(t, c)
	got, err = r.Add(1, 3, 0, 1, []byte("c"))
	require.NoError(t, err, "Forget clears the newest seq_through too")
	assert.Equal(t, []byte("c"), got)
}

func TestReassemblyStaleness(t *testing.T) {
	clk := newFakeClock()
	r := NewReassembler(clk.Now)
	_, err := r.Add(1, 1, 0, 3, fill(1, 10))
	require.NoError(t, err)
	// Each accepted chunk restarts the 300 s window.
	clk.Advance(StaleAfter - time.Nanosecond)
	_, err = r.Add(1, 1, 1, 3, fill(1, 10))
	require.NoError(t, err)
	c, _, _ := r.Progress(1)
	require.Equal(t, uint32(2), c)

	clk.Advance(StaleAfter)
	// The partial is dropped when the next chunk arrives, so this chunk starts
	// a new one instead of completing the old.
	got, err := r.Add(1, 1, 2, 3, fill(1, 10))
	require.NoError(t, err)
	require.Nil(t, got)
	c, total, n := r.Progress(1)
	assert.Equal(t, []any{uint32(1), uint32(3), 10}, []any{c, total, n})

	// A stale partial no longer constrains the total either.
	clk.Advance(StaleAfter)
	got, err = r.Add(1, 1, 0, 1, []byte("z"))
	require.NoError(t, err)
	assert.Equal(t, []byte("z"), got)
}

func TestReassemblySweepsAbandonedOrigins(t *testing.T) {
	clk := newFakeClock()
	r := NewReassembler(clk.Now)
	for o := range uint64(10) {
		_, err := r.Add(o, 1, 0, 2, fill(1, 100))
		require.NoError(t, err)
	}
	clk.Advance(StaleAfter)
	_, err := r.Add(100, 1, 0, 2, fill(1, 100))
	require.NoError(t, err)
	assert.Len(t, r.pending, 1)
	c, _, _ := r.Progress(3)
	assert.Zero(t, c)
}

// vectors.json reassembly-byte-cap. One partial filled to the cap serves every
// check, so the test holds 64 MiB (plus the joined copy) only once.
func TestReassemblyByteCapVector(t *testing.T) {
	const full = MaxSnapshotBytes / ChunkSize // 9586 full chunks
	require.Equal(t, 9586, full)
	last := MaxSnapshotBytes - full*ChunkSize // 6864: brings the entry to exactly 64 MiB
	total := uint32(full + 1)

	r := NewReassembler(nil)
	chunk := make([]byte, ChunkSize)
	for i := range full {
		chunk[0] = byte(i)
		got, err := r.Add(7, 1, uint32(i), total, chunk)
		require.NoError(t, err)
		require.Nil(t, got)
	}
	_, _, held := r.Progress(7)
	require.Equal(t, full*ChunkSize, held)

	// The next new index would overflow, by a full chunk or by one byte.
	for _, n := range []int{ChunkSize, last + 1} {
		_, err := r.Add(7, 1, uint32(full), total, make([]byte, n))
		require.ErrorIs(t, err, ErrTooLarge)
	}
	// Re-sending a held index does not grow the entry and is fine; a bigger
	// replacement that would overflow is not.
	_, err := r.Add(7, 1, 0, total, fill(0xee, ChunkSize))
	require.NoError(t, err)
	_, err = r.Add(7, 1, 1, total, fill(0xee, 6000))
	require.NoError(t, err)
	_, err = r.Add(7, 1, 1, total, fill(0xee, ChunkSize))
	require.NoError(t, err)
	_, err = r.Add(7, 1, uint32(full), total, make([]byte, last+1))
	require.ErrorIs(t, err, ErrTooLarge)
	c, _, held := r.Progress(7)
	require.Equal(t, uint32(full), c, "refusals change nothing")
	require.Equal(t, full*ChunkSize, held)

	// Exactly 64 MiB completes.
	got, err := r.Add(7, 1, uint32(full), total, fill(0xff, last))
	require.NoError(t, err)
	require.Len(t, got, MaxSnapshotBytes)
	assert.Equal(t, fill(0xee, ChunkSize), got[:ChunkSize])
	assert.Equal(t, byte(2), got[2*ChunkSize])
	assert.Equal(t, byte((full-1)%256), got[(full-1)*ChunkSize])
	assert.Equal(t, fill(0xff, last), got[full*ChunkSize:])
}

func TestReassemblerConcurrentOrigins(t *testing.T) {
	r := NewReassembler(nil)
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for o := range 8 {
		wg.Go(func() {
			snap := fill(byte(o), 3*ChunkSize+o+1)
			for i, c := range Split(snap) {
				got, err := r.Add(uint64(o), 1, uint32(i), 4, c)
				if err != nil {
					panic(err)
				}
				if got != nil {
					results[o] = got
				}
			}
		})
	}
	wg.Wait()
	for o, got := range results {
		assert.Equal(t, fill(byte(o), 3*ChunkSize+o+1), got)
	}
}

// chunk0 builds magic ‖ version ‖ entity_id ‖ 27 zero bytes.
func chunk0(magic string, version byte, id identity.EntityID) []byte {
	b := append([]byte(magic), version)
	b = append(b, id[:]...)
	return append(b, make([]byte, 27)...)
}

// vectors.json chunk0-header-check.
func TestCheckChunk0Vector(t *testing.T) {
	kp, err := identity.Generate()
	require.NoError(t, err)
	other, err := identity.Generate()
	require.NoError(t, err)
	origin := kp.OriginHash()

	good := chunk0(causal.SnapshotMagic, causal.SnapshotVersion, kp.EntityID())
	require.Len(t, good, 64)
	require.NoError(t, CheckChunk0(origin, good))
	require.NoError(t, CheckForward(origin, 0, good))

	bad := map[string][]byte{
		"magic XXXX":     chunk0("XXXX", causal.SnapshotVersion, kp.EntityID()),
		"version 0xfe":   chunk0(causal.SnapshotMagic, 0xfe, kp.EntityID()),
		"version 1":      chunk0(causal.SnapshotMagic, 1, kp.EntityID()),
		"other identity": chunk0(causal.SnapshotMagic, causal.SnapshotVersion, other.EntityID()),
		"12 bytes":       good[:12],
		"36 bytes":       good[:36],
		"empty":          nil,
	}
	for name, b := range bad {
		require.ErrorIs(t, CheckChunk0(origin, b), ErrChunk0, name)
		require.ErrorIs(t, CheckForward(origin, 0, b), ErrChunk0, name)
	}
	// Exactly the 37-byte header is enough.
	require.NoError(t, CheckChunk0(origin, good[:37]))
	// Later chunks are not checked.
	for _, idx := range []uint32{1, 2, 47, 1<<32 - 1} {
		require.NoError(t, CheckForward(origin, idx, fill(0, 8)), "index %d", idx)
	}
	// A real encoded snapshot passes.
	s := &causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Genesis(origin), State: []byte("state")}
	require.NoError(t, CheckChunk0(origin, Split(s.Encode())[0]))
}

func ExampleSplit() {
	r := NewReassembler(nil)
	snap := bytes.Repeat([]byte("x"), 15000)
	for _, m := range SplitMessages(1, 3, snap) {
		got, err := r.Add(m.Origin, m.SeqThrough, m.ChunkIndex, m.TotalChunks, m.Chunk)
		fmt.Println(m.ChunkIndex, m.TotalChunks, len(m.Chunk), len(got), err)
	}
	// Output:
	// 0 3 7000 0 <nil>
	// 1 3 7000 0 <nil>
	// 2 3 1000 15000 <nil>
}
