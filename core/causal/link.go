// Package causal holds the causal chain (32-byte links, XXH3 parent hashes,
// the horizon bloom), causal events, CDS1 state snapshots, the subscription
// ledger and channel-name rules. It is a leaf: no goroutines, no I/O.
package causal

import (
	"encoding/binary"
	"fmt"

	"github.com/zeebo/xxh3"
)

// LinkSize is the wire size of a Link.
const LinkSize = 32

// Link is one step of a daemon's causal chain.
// Wire form: origin_hash u64 · horizon u64 · sequence u64 · parent_hash u64, LE.
type Link struct {
	Origin   uint64
	Horizon  uint64
	Sequence uint64
	Parent   uint64
}

// Genesis is the first link of the chain of the daemon with this origin hash.
func Genesis(origin uint64) Link { return Link{Origin: origin} }

// IsGenesis reports whether l is a chain's first link (sequence 0, parent 0).
func (l Link) IsGenesis() bool { return l.Sequence == 0 && l.Parent == 0 }

// Bytes returns the 32-byte wire form.
func (l Link) Bytes() [LinkSize]byte {
	var b [LinkSize]byte
	binary.LittleEndian.PutUint64(b[0:], l.Origin)
	binary.LittleEndian.PutUint64(b[8:], l.Horizon)
	binary.LittleEndian.PutUint64(b[16:], l.Sequence)
	binary.LittleEndian.PutUint64(b[24:], l.Parent)
	return b
}

// AppendTo appends the 32-byte wire form to dst.
func (l Link) AppendTo(dst []byte) []byte {
	b := l.Bytes()
	return append(dst, b[:]...)
}

// ParseLink decodes exactly 32 bytes.
func ParseLink(b []byte) (Link, error) {
	if len(b) != LinkSize {
		return Link{}, fmt.Errorf("%w: causal link must be %d bytes, got %d", ErrMalformed, LinkSize, len(b))
	}
	return Link{
		Origin:   binary.LittleEndian.Uint64(b[0:]),
		Horizon:  binary.LittleEndian.Uint64(b[8:]),
		Sequence: binary.LittleEndian.Uint64(b[16:]),
		Parent:   binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// ParentHash is XXH3-64(head as 32 bytes ‖ headPayload), the parent_hash of
// the link appended after head.
func ParentHash(head Link, headPayload []byte) uint64 {
	h := xxh3.New()
	b := head.Bytes()
	h.Write(b[:])
	h.Write(headPayload)
	return h.Sum64()
}
