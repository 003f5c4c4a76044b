package causal

import "github.com/netmesh/libnetmesh/core/identity"

// SnapshotMagic and SnapshotVersion head every CDS1 snapshot.
const (
	SnapshotMagic   = "CDS1"
	SnapshotVersion = 2
	// SnapshotOverhead is the encoded size of a snapshot with empty state,
	// empty ledger and no envelope.
	SnapshotOverhead = 94
	// EnvelopeSize is the size of an identity envelope inside a snapshot.
	EnvelopeSize = 209
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

// Encode returns the wire bytes. TODO(causal helper).
func (s *Snapshot) Encode() []byte { panic("causal: Snapshot.Encode not implemented yet") }

// DecodeSnapshot parses and validates CDS1 v2 bytes (every rejection rule of
// FORMATS §3). TODO(causal helper).
func DecodeSnapshot(b []byte) (*Snapshot, error) { panic("causal: DecodeSnapshot not implemented yet") }
