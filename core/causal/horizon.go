package causal

import (
	"encoding/binary"

	"github.com/zeebo/xxh3"
)

// Horizon maps every origin a daemon has observed to the highest sequence
// seen from it. It is encoded as a 64-bit bloom and never serialized.
//
// The origin of the latest Observe is cached next to the map: a run of events
// from one origin (the common case) costs a compare instead of a map access.
// Invariant: when hasLast, last is a key of seen and lastSeq is its highest
// sequence (the map value may lag behind until another origin is observed).
// A Horizon must not be copied after first use.
type Horizon struct {
	seen    map[uint64]uint64
	last    uint64
	lastSeq uint64
	hasLast bool
}

// Observe records (origin, seq).
func (h *Horizon) Observe(origin, seq uint64) {
	if h.hasLast && origin == h.last {
		if seq > h.lastSeq {
			h.lastSeq = seq
		}
		return
	}
	h.observeOther(origin, seq)
}

// observeOther is Observe of an origin other than the last one.
func (h *Horizon) observeOther(origin, seq uint64) {
	if h.seen == nil {
		h.seen = make(map[uint64]uint64)
	}
	if h.hasLast {
		h.seen[h.last] = h.lastSeq
	}
	if cur, ok := h.seen[origin]; ok && cur > seq {
		seq = cur
	} else {
		h.seen[origin] = seq
	}
	h.last, h.lastSeq, h.hasLast = origin, seq, true
}

// Highest returns the highest sequence observed from origin.
func (h *Horizon) Highest(origin uint64) (uint64, bool) {
	if h.hasLast && origin == h.last {
		return h.lastSeq, true
	}
	s, ok := h.seen[origin]
	return s, ok
}

// Len is the number of origins observed.
func (h *Horizon) Len() int { return len(h.seen) }

// Reset forgets everything.
func (h *Horizon) Reset() { *h = Horizon{} }

// Encode returns the 64-bit bloom of all observed origins (0 when empty).
func (h *Horizon) Encode() uint64 {
	var bloom uint64
	for o := range h.seen {
		bloom |= BloomBits(o)
	}
	return bloom
}

// BloomBits returns the (up to three) bloom bits an origin sets.
func BloomBits(origin uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], origin)
	x := xxh3.Hash(b[:])
	h1 := uint32(x)
	h2 := uint32(x>>32) | 1
	return 1<<(h1%64) | 1<<((h1+h2)%64) | 1<<((h1+2*h2)%64)
}

// MightContain reports whether an encoded horizon may include origin.
func MightContain(encoded, origin uint64) bool {
	bits := BloomBits(origin)
	return encoded&bits == bits
}
