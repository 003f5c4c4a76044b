package msg

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/identity"
)

// Chunking limits (FORMATS §6).
const (
	// ChunkSize is the largest SnapshotReady chunk.
	ChunkSize = 7000
	// MaxTotalChunks is the largest total_chunks a decoder accepts.
	MaxTotalChunks = 700_000
	// MaxSnapshotBytes caps the bytes held for one pending reassembly.
	MaxSnapshotBytes = 64 << 20
	// StaleAfter drops a partial reassembly that got no chunk for this long.
	StaleAfter = 300 * time.Second
)

// Split cuts a snapshot into chunks of at most ChunkSize bytes, in index
// order. A snapshot of at most ChunkSize bytes, even an empty one, is one
// chunk (0 of 1), as FORMATS §6 says; a Reassembler refuses an empty chunk,
// but a CDS1 snapshot is never shorter than 94 bytes. The chunks alias
// snapshot: do not modify it while they are in use. Split does not enforce
// MaxSnapshotBytes; a receiver refuses anything larger.
func Split(snapshot []byte) [][]byte {
	if len(snapshot) <= ChunkSize {
		return [][]byte{snapshot[:len(snapshot):len(snapshot)]}
	}
	out := make([][]byte, 0, (len(snapshot)+ChunkSize-1)/ChunkSize)
	for c := range slices.Chunk(snapshot, ChunkSize) {
		out = append(out, c)
	}
	return out
}

// SplitMessages returns the SnapshotReady messages that carry snapshot, in
// chunk order. Chunks alias snapshot as with Split.
func SplitMessages(origin, seqThrough uint64, snapshot []byte) []*Message {
	chunks := Split(snapshot)
	out := make([]*Message, len(chunks))
	for i, c := range chunks {
		out[i] = &Message{Type: SnapshotReady, Origin: origin, SeqThrough: seqThrough,
			ChunkIndex: uint32(i), TotalChunks: uint32(len(chunks)), Chunk: c}
	}
	return out
}

// CheckChunk0 is the orchestrator's check of chunk 0 before forwarding: it
// must start with the CDS1 magic, version 2 and an entity_id whose
// origin_hash is origin. Errors wrap ErrChunk0; the engine reports them as a
// StateFailed reason. Other chunk indices are not checked.
func CheckChunk0(origin uint64, chunk0 []byte) error {
	const head = len(causal.SnapshotMagic) + 1 + len(identity.EntityID{})
	switch {
	case len(chunk0) < head:
		return fmt.Errorf("%w: %d bytes, need %d", ErrChunk0, len(chunk0), head)
	case string(chunk0[:4]) != causal.SnapshotMagic:
		return fmt.Errorf("%w: magic %q", ErrChunk0, chunk0[:4])
	case chunk0[4] != causal.SnapshotVersion:
		return fmt.Errorf("%w: version %d", ErrChunk0, chunk0[4])
	}
	var id identity.EntityID
	copy(id[:], chunk0[5:head])
	if got := identity.OriginHashOf(id); got != origin {
		return fmt.Errorf("%w: entity origin %#x, migrating %#x", ErrChunk0, got, origin)
	}
	return nil
}

// CheckForward is CheckChunk0 for a chunk of any index: only chunk 0 is
// checked, every other index passes.
func CheckForward(origin uint64, index uint32, chunk []byte) error {
	if index != 0 {
		return nil
	}
	return CheckChunk0(origin, chunk)
}

// Reassembler joins SnapshotReady chunks back into snapshots. It keeps at
// most one partial snapshot per origin (the newest seq_through) and the
// newest seq_through seen per origin, which survives completion and staleness
// until Forget. Memory is bounded by MaxSnapshotBytes (plus per-chunk
// bookkeeping) per origin with an open reassembly. Safe for concurrent use.
type Reassembler struct {
	now      func() time.Time
	maxBytes int // MaxSnapshotBytes; lowered only by fuzz tests

	mu        sync.Mutex
	pending   map[uint64]*partial // by origin
	newest    map[uint64]uint64   // origin → newest accepted seq_through
	lastSweep time.Time
}

// partial is one open reassembly for (origin, seq).
type partial struct {
	seq    uint64
	total  uint32
	chunks map[uint32][]byte
	bytes  int
	last   time.Time // when the last chunk was accepted
}

// NewReassembler returns an empty Reassembler reading time from now
// (time.Now if nil).
func NewReassembler(now func() time.Time) *Reassembler {
	if now == nil {
		now = time.Now
	}
	return &Reassembler{now: now, maxBytes: MaxSnapshotBytes, pending: map[uint64]*partial{}, newest: map[uint64]uint64{}}
}

// Add takes one SnapshotReady chunk. It returns the whole snapshot when this
// chunk completes it (and forgets the partial), nil while chunks are missing,
// or an error that leaves the state as it was:
//   - ErrChunkTotal, ErrChunkIndex, ErrChunkTooLarge: what Decode refuses;
//   - ErrChunkEmpty: a zero-byte chunk;
//   - ErrStale: seqThrough older than the newest accepted for origin;
//   - ErrChunkTotalMismatch: total differs from the open reassembly's for
//     the same seqThrough (a lone "0 of 1" included);
//   - ErrTooLarge: the partial would hold more than MaxSnapshotBytes.
//
// A newer seqThrough drops the older partial; a partial that got no chunk
// for StaleAfter is dropped when the next chunk for its origin arrives (and
// by an occasional sweep of all origins); a repeated index replaces the
// earlier copy. Chunk bytes are copied; the result is a fresh slice.
func (r *Reassembler) Add(origin, seqThrough uint64, index, total uint32, chunk []byte) ([]byte, error) {
	if err := checkChunkHeader(index, total, len(chunk)); err != nil {
		return nil, err
	}
	if len(chunk) == 0 {
		return nil, fmt.Errorf("%w: chunk %d of %d", ErrChunkEmpty, index, total)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(now)

	if n, ok := r.newest[origin]; ok && seqThrough < n {
		return nil, fmt.Errorf("%w: seq_through %d, newest %d for origin %#x", ErrStale, seqThrough, n, origin)
	}
	p := r.pending[origin]
	if p != nil && (p.seq < seqThrough || now.Sub(p.last) >= StaleAfter) {
		p = nil // superseded or stale: replaced below once the chunk is accepted
	}
	if p != nil && total != p.total {
		return nil, fmt.Errorf("%w: got %d, expected %d", ErrChunkTotalMismatch, total, p.total)
	}
	if p != nil {
		if size := p.bytes - len(p.chunks[index]) + len(chunk); size > r.maxBytes {
			return nil, fmt.Errorf("%w: %d bytes pending for origin %#x", ErrTooLarge, size, origin)
		}
	}
	// Accepted: from here on the state changes.
	r.newest[origin] = seqThrough
	if total == 1 {
		// An open partial always has total ≥ 2, so p is nil here.
		delete(r.pending, origin)
		return bytes.Clone(chunk), nil
	}
	if p == nil {
		p = &partial{seq: seqThrough, total: total, chunks: map[uint32][]byte{}}
	}
	p.bytes += len(chunk) - len(p.chunks[index])
	r.pending[origin] = p
	p.chunks[index] = bytes.Clone(chunk)
	p.last = now
	if uint32(len(p.chunks)) < p.total {
		return nil, nil
	}
	out := make([]byte, 0, p.bytes)
	for i := range p.total {
		out = append(out, p.chunks[i]...)
	}
	delete(r.pending, origin)
	return out, nil
}

// sweep drops every stale partial, at most once per StaleAfter/4, so
// abandoned origins do not hold memory forever. Caller holds mu.
func (r *Reassembler) sweep(now time.Time) {
	if now.Sub(r.lastSweep) < StaleAfter/4 {
		return
	}
	r.lastSweep = now
	for o, p := range r.pending {
		if now.Sub(p.last) >= StaleAfter {
			delete(r.pending, o)
		}
	}
}

// Progress reports the open reassembly for origin: chunks held, its total
// and the bytes held. All zero when none is open.
func (r *Reassembler) Progress(origin uint64) (chunks, total uint32, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pending[origin]; p != nil {
		return uint32(len(p.chunks)), p.total, p.bytes
	}
	return 0, 0, 0
}

// Forget drops the partial snapshot and the newest seq_through of origin.
func (r *Reassembler) Forget(origin uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, origin)
	delete(r.newest, origin)
}
