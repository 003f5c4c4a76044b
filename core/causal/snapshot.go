package causal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/netmesh/libnetmesh/core/identity"
)

// SnapshotMagic and SnapshotVersion head every CDS1 snapshot.
const (
	SnapshotMagic   = "CDS1"
	SnapshotVersion = 2
	// SnapshotOverhead is the encoded size of a snapshot with empty state,
	// empty ledger and no envelope.
	SnapshotOverhead = 94
	// EnvelopeSize is the size of an identity envelope inside a snapshot.
	EnvelopeSize = 209
	// EnvelopeVersion is the first byte of every identity envelope.
	EnvelopeVersion = 1
)

// Field offsets of the fixed CDS1 v2 prefix; state_len sits at offStateLen.
const (
	offVersion   = 4
	offEntity    = 5
	offThrough   = offEntity + 32 // 37
	offLink      = offThrough + 8 // 45
	offCreatedAt = offLink + LinkSize
	offStateLen  = offCreatedAt + 8 // 85
)

// Snapshot is a daemon's CDS1 v2 state snapshot.
type Snapshot struct {
	EntityID   identity.EntityID
	ThroughSeq uint64
	ChainLink  Link
	CreatedAt  uint64 // unix ns
	State      []byte
	Bindings   []byte // subscription ledger bytes (EncodeLedger); empty = none
	// Envelope is the sealed identity envelope, nil when absent. The codec
	// checks only its length and version byte; identity.OpenEnvelope does the rest.
	Envelope *[EnvelopeSize]byte
}

// EncodedLen is the exact length of s.Encode().
func (s *Snapshot) EncodedLen() int {
	n := SnapshotOverhead + len(s.State) + len(s.Bindings)
	if s.Envelope != nil {
		n += EnvelopeSize
	}
	return n
}

// Validate reports whether s would survive DecodeSnapshot(s.Encode()): the
// through_seq and origin invariants, the envelope version byte and the u32
// length prefixes. Errors wrap ErrInconsistent, ErrBadEnvelope or ErrTooLarge.
// The Bindings bytes are opaque here (DecodeLedger checks them).
func (s *Snapshot) Validate() error {
	if len(s.State) > math.MaxUint32 || len(s.Bindings) > math.MaxUint32 {
		return fmt.Errorf("%w: snapshot state or bindings over 4 GiB", ErrTooLarge)
	}
	if s.Envelope != nil && s.Envelope[0] != EnvelopeVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadEnvelope, s.Envelope[0], EnvelopeVersion)
	}
	if s.ChainLink.Sequence != s.ThroughSeq {
		return fmt.Errorf("%w: through_seq %d but chain link sequence %d", ErrInconsistent, s.ThroughSeq, s.ChainLink.Sequence)
	}
	if want := identity.OriginHashOf(s.EntityID); s.ChainLink.Origin != want {
		return fmt.Errorf("%w: chain link origin %#x, entity id gives %#x", ErrInconsistent, s.ChainLink.Origin, want)
	}
	return nil
}

// Encode returns the wire bytes exactly as the fields say; it does not check
// them (see Validate). It panics only if State or Bindings exceed 4 GiB − 1,
// which no snapshot a daemon host builds can reach.
func (s *Snapshot) Encode() []byte {
	if len(s.State) > math.MaxUint32 || len(s.Bindings) > math.MaxUint32 {
		panic(ErrTooLarge)
	}
	b := make([]byte, 0, s.EncodedLen())
	b = append(b, SnapshotMagic...)
	b = append(b, SnapshotVersion)
	b = append(b, s.EntityID[:]...)
	b = binary.LittleEndian.AppendUint64(b, s.ThroughSeq)
	b = s.ChainLink.AppendTo(b)
	b = binary.LittleEndian.AppendUint64(b, s.CreatedAt)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.State)))
	b = append(b, s.State...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.Bindings)))
	b = append(b, s.Bindings...)
	if s.Envelope == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return append(b, s.Envelope[:]...)
}

// DecodeSnapshot parses and validates CDS1 v2 bytes, refusing (all errors wrap
// ErrMalformed): a short input, another magic (ErrBadMagic, which covers the
// pre-magic layout), another version, 1 included (ErrUnsupportedVersion),
// truncated fields, an envelope flag other than 0/1, an envelope whose first
// byte is not 1 (ErrBadEnvelope), trailing bytes, and the invariants of
// Validate (ErrInconsistent). State and Bindings are copies: b is not retained.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	if len(b) < offEntity {
		return nil, fmt.Errorf("%w: snapshot truncated at %d bytes", ErrMalformed, len(b))
	}
	if !bytes.Equal(b[:offVersion], []byte(SnapshotMagic)) {
		return nil, fmt.Errorf("%w: %w: got %x", ErrMalformed, ErrBadMagic, b[:offVersion])
	}
	if v := b[offVersion]; v != SnapshotVersion {
		return nil, fmt.Errorf("%w: %w: %d", ErrMalformed, ErrUnsupportedVersion, v)
	}
	if len(b) < SnapshotOverhead {
		return nil, fmt.Errorf("%w: snapshot truncated at %d bytes", ErrMalformed, len(b))
	}
	s := &Snapshot{
		ThroughSeq: binary.LittleEndian.Uint64(b[offThrough:]),
		CreatedAt:  binary.LittleEndian.Uint64(b[offCreatedAt:]),
	}
	copy(s.EntityID[:], b[offEntity:offThrough])
	s.ChainLink, _ = ParseLink(b[offLink:offCreatedAt]) // exactly LinkSize bytes

	rest := b[offStateLen:]
	var ok bool
	if s.State, rest, ok = cutPrefixed32(rest); !ok {
		return nil, fmt.Errorf("%w: snapshot state truncated", ErrMalformed)
	}
	if s.Bindings, rest, ok = cutPrefixed32(rest); !ok {
		return nil, fmt.Errorf("%w: snapshot bindings truncated", ErrMalformed)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: snapshot envelope flag missing", ErrMalformed)
	}
	switch flag := rest[0]; flag {
	case 0:
		rest = rest[1:]
	case 1:
		if len(rest) < 1+EnvelopeSize {
			return nil, fmt.Errorf("%w: snapshot envelope truncated", ErrMalformed)
		}
		s.Envelope = new([EnvelopeSize]byte)
		copy(s.Envelope[:], rest[1:])
		rest = rest[1+EnvelopeSize:]
	default:
		return nil, fmt.Errorf("%w: snapshot envelope flag %d", ErrMalformed, flag)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after snapshot", ErrMalformed, len(rest))
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s, nil
}

// cutPrefixed32 splits a u32-length-prefixed field off b, returning a copy of
// the field (nil when empty) and the remainder; ok is false on truncation.
func cutPrefixed32(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return nil, nil, false
	}
	if n == 0 {
		return nil, b, true
	}
	return bytes.Clone(b[:n]), b[n:], true
}
