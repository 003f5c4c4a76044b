package causal

import (
	"math/rand/v2"
	"testing"

	"github.com/zeebo/xxh3"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Vectors causal-next and causal-builder, with the parent hashes frozen.
func TestChainFromGenesis(t *testing.T) {
	c := NewChain(0xabcd)
	require.Equal(t, Genesis(0xabcd), c.Head())

	e1, err := c.Append([]byte("event1"), 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), e1.Sequence)
	assert.Equal(t, uint64(0xabcd), e1.Origin)
	assert.NotZero(t, e1.Parent)
	assert.Equal(t, ParentHash(Genesis(0xabcd), nil), e1.Parent) // genesis payload is empty
	assert.Equal(t, uint64(0x83481f3fc4c5ca7b), e1.Parent)

	e2, err := c.Append([]byte("event2"), 0x77)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), e2.Sequence)
	assert.Equal(t, uint64(0xabcd), e2.Origin)
	assert.Equal(t, uint64(0x77), e2.Horizon)
	assert.Equal(t, ParentHash(e1, []byte("event1")), e2.Parent)
	assert.Equal(t, uint64(0x52e87fea37a1bb93), e2.Parent)
	assert.Equal(t, e2, c.Head())
}

func TestChainNextHello(t *testing.T) {
	c := NewChain(0xabcd)
	l, err := c.Append([]byte("hello"), 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), l.Sequence)
	assert.Equal(t, uint64(0xabcd), l.Origin)
	assert.NotZero(t, l.Parent)
}

// After a restore the state bytes stand in as the head payload (FORMATS §3),
// and vector chain-through-seq: five outputs, restore, the next is 6.
func TestResumeFromSnapshot(t *testing.T) {
	c := NewChain(0xabcd)
	for range 5 {
		_, err := c.Append([]byte("tick"), 0)
		require.NoError(t, err)
	}
	head := c.Head()
	require.Equal(t, uint64(5), head.Sequence)

	state := []byte("counter=5")
	r := ResumeChain(head, state)
	state[0] = 'X' // ResumeChain copied it
	next, err := r.Append([]byte("six"), 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), next.Sequence)
	assert.Equal(t, head.Origin, next.Origin)
	assert.Equal(t, ParentHash(head, []byte("counter=5")), next.Parent)
	assert.NotEqual(t, ParentHash(head, []byte("tick")), next.Parent)
}

func TestChainOverflow(t *testing.T) {
	head := Link{Origin: 1, Sequence: ^uint64(0) - 1}
	c := ResumeChain(head, nil)
	l, err := c.Append(nil, 0)
	require.NoError(t, err)
	assert.Equal(t, ^uint64(0), l.Sequence)

	_, err = c.Append([]byte("x"), 0)
	require.ErrorIs(t, err, ErrSequenceOverflow)
	assert.Equal(t, l, c.Head(), "a failed append leaves the head alone")
}

func BenchmarkChainAppend(b *testing.B) {
	payload := make([]byte, 256)
	c := NewChain(0xabcd)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Append(payload, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// The chain's one-shot hash equals the streaming ParentHash for every length
// around the stack-buffer limit and well past it.
func TestParentHashFastPathMatches(t *testing.T) {
	head := Link{Origin: 0xabcd, Horizon: 0x77, Sequence: 9, Parent: 0x1234}
	buf := make([]byte, 1100)
	for i := range buf {
		buf[i] = byte(i*31 + 7)
	}
	for n := 0; n <= len(buf); n++ {
		require.Equal(t, ParentHash(head, buf[:n]), parentHash(head, buf[:n]), "length %d", n)
	}
	assert.Equal(t, ParentHash(head, nil), parentHash(head, []byte{}))
}

// Append hashes the payload at once: changing it afterwards changes nothing.
func TestAppendDoesNotRetainPayload(t *testing.T) {
	c := NewChain(0xabcd)
	p := []byte("event1")
	e1, err := c.Append(p, 0)
	require.NoError(t, err)
	copy(p, "XXXXXX")
	e2, err := c.Append([]byte("event2"), 0x77)
	require.NoError(t, err)
	assert.Equal(t, ParentHash(e1, []byte("event1")), e2.Parent)
	assert.Equal(t, uint64(0x52e87fea37a1bb93), e2.Parent)
}

// A head payload longer than the stack buffer goes through the streaming
// hasher and still chains correctly.
func TestChainLargePayloads(t *testing.T) {
	c := NewChain(1)
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i)
	}
	prev, err := c.Append(big, 0)
	require.NoError(t, err)
	for _, n := range []int{smallPayload, smallPayload + 1, 1024, 0} {
		l, err := c.Append(big[:n], 0)
		require.NoError(t, err)
		assert.Equal(t, ParentHash(prev, big), l.Parent)
		prev, big = l, big[:n]
	}
}

func BenchmarkChainAppend64(b *testing.B) {
	payload := make([]byte, 64)
	c := NewChain(0xabcd)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Append(payload, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// hashLinked equals XXH3 of the link's bytes followed by the payload for
// every payload length it takes (all XXH3 branches from 32 to 128 bytes,
// aligned and unaligned ends) and arbitrary links and bytes.
func TestHashLinkedMatchesXXH3(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var buf [LinkSize + 8]byte
	for n := 0; n <= maxHashLinked; n++ {
		for range 200 {
			l := Link{Origin: rnd.Uint64(), Horizon: rnd.Uint64(), Sequence: rnd.Uint64(), Parent: rnd.Uint64()}
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rnd.Uint32())
			}
			b := l.Bytes()
			want := xxh3.Hash(append(b[:], p...))
			require.Equal(t, want, hashLinked(&buf, l, p), "payload %d bytes", n)
			require.Equal(t, ParentHash(l, p), hashLinked(&buf, l, p[:n:n]))
		}
	}
}
