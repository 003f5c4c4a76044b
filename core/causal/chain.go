package causal

import (
	"encoding/binary"

	"github.com/zeebo/xxh3"
)

// Chain builds a daemon's causal chain. It keeps the head link and the parent
// hash of the link that will follow it, computed when the head was appended
// (XXH3 of the head and its payload), so no payload is retained. Not safe for
// concurrent use: the daemon host serializes access.
type Chain struct {
	head Link
	next uint64 // ParentHash(head, head payload)
	// buf is Append's hashing scratch: a field, not a local, so the hot
	// path does not zero 256 bytes of stack per output.
	buf [LinkSize + smallPayload]byte
}

// NewChain starts a chain at genesis for origin.
func NewChain(origin uint64) *Chain {
	g := Genesis(origin)
	return &Chain{head: g, next: parentHash(g, nil)}
}

// ResumeChain continues a chain from head, with headPayload standing in as
// the head's payload (after a restore this is the snapshot's state bytes).
// headPayload is only read during the call.
func ResumeChain(head Link, headPayload []byte) *Chain {
	return &Chain{head: head, next: parentHash(head, headPayload)}
}

// Head returns the current head link.
func (c *Chain) Head() Link { return c.head }

// Append adds payload after the head with the given horizon encoding and
// returns the new link. payload is only read during the call (its hash is
// taken now, for the link after this one). Sequence overflow returns
// ErrSequenceOverflow and leaves the chain unchanged.
func (c *Chain) Append(payload []byte, horizon uint64) (Link, error) {
	if c.head.Sequence == ^uint64(0) {
		return Link{}, ErrSequenceOverflow
	}
	next := Link{
		Origin:   c.head.Origin,
		Horizon:  horizon,
		Sequence: c.head.Sequence + 1,
		Parent:   c.next,
	}
	c.head = next
	if len(payload) <= maxHashLinked {
		// A 40-byte stack scratch, not c.buf: the chain's hot words
		// (head, next) then share their cache line with nothing else the
		// append touches.
		var b [LinkSize + 8]byte
		c.next = hashLinked(&b, next, payload)
	} else if len(payload) <= smallPayload {
		putLink(c.buf[:], next)
		n := copy(c.buf[LinkSize:], payload)
		c.next = xxh3.Hash(c.buf[:LinkSize+n])
	} else {
		c.next = parentHash(next, payload)
	}
	return next, nil
}

// smallPayload is the largest head payload hashed from one stack buffer.
// XXH3 one-shot and streaming give the same value for any input; the
// one-shot call just skips the streaming hasher's setup and copies.
const smallPayload = 224

// parentHash equals ParentHash(head, payload) without a heap allocation.
func parentHash(head Link, payload []byte) uint64 {
	if len(payload) <= smallPayload {
		var b [LinkSize + smallPayload]byte
		putLink(b[:], head)
		n := copy(b[LinkSize:], payload)
		return xxh3.Hash(b[:LinkSize+n])
	}
	var h xxh3.Hasher
	var b [LinkSize]byte
	putLink(b[:], head)
	_, _ = h.Write(b[:])
	_, _ = h.Write(payload)
	return h.Sum64()
}

func putLink(b []byte, l Link) {
	_ = b[LinkSize-1]
	binary.LittleEndian.PutUint64(b[0:], l.Origin)
	binary.LittleEndian.PutUint64(b[8:], l.Horizon)
	binary.LittleEndian.PutUint64(b[16:], l.Sequence)
	binary.LittleEndian.PutUint64(b[24:], l.Parent)
}
