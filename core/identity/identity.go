// Package identity holds ed25519 identities and the ids derived from them,
// identity envelopes (a daemon seed sealed to a node's X25519 key) and
// permission tokens. It is a leaf: no goroutines, no I/O.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/blake2s"
)

// SeedSize is the size of an ed25519 seed, the whole secret of an identity.
const SeedSize = 32

// EntityID is an identity's 32-byte ed25519 public key.
type EntityID [32]byte

// Keypair is an ed25519 identity. A public-only keypair (see PublicOnly) has
// the same ids and no secret; signing with it fails with ErrReadOnly.
// A Keypair is immutable and safe for concurrent use.
type Keypair struct {
	id     EntityID
	priv   ed25519.PrivateKey // nil for a public-only keypair
	origin uint64
	node   uint64
}

// Generate creates a fresh identity from the system's secure random source.
func Generate() (*Keypair, error) {
	var seed [SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("identity: generate: %w", err)
	}
	return FromSeed(seed[:])
}

// FromSeed rebuilds an identity from its 32-byte seed.
func FromSeed(seed []byte) (*Keypair, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed must be %d bytes, got %d", ErrInvalidSeed, SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	var id EntityID
	copy(id[:], priv[32:])
	return &Keypair{id: id, priv: priv, origin: OriginHashOf(id), node: NodeIDOf(id)}, nil
}

// PublicOnly returns a keypair that knows only the public key.
func PublicOnly(id EntityID) *Keypair {
	return &Keypair{id: id, origin: OriginHashOf(id), node: NodeIDOf(id)}
}

// EntityID returns the public key.
func (k *Keypair) EntityID() EntityID { return k.id }

// OriginHash returns the 64-bit origin hash of the public key.
func (k *Keypair) OriginHash() uint64 { return k.origin }

// NodeID returns the 64-bit node id of the public key.
func (k *Keypair) NodeID() uint64 { return k.node }

// IsReadOnly reports whether the keypair lacks its secret.
func (k *Keypair) IsReadOnly() bool { return k.priv == nil }

// Seed returns a copy of the 32-byte seed; ok is false for a public-only keypair.
func (k *Keypair) Seed() (seed [SeedSize]byte, ok bool) {
	if k.priv == nil {
		return seed, false
	}
	copy(seed[:], k.priv.Seed())
	return seed, true
}

// Sign signs msg; a public-only keypair returns ErrReadOnly.
func (k *Keypair) Sign(msg []byte) ([64]byte, error) {
	var sig [64]byte
	if k.priv == nil {
		return sig, ErrReadOnly
	}
	copy(sig[:], ed25519.Sign(k.priv, msg))
	return sig, nil
}

// Verify checks sig over msg under this keypair's public key, strictly.
func (k *Keypair) Verify(msg, sig []byte) bool { return VerifyStrict(k.id, msg, sig) }

var (
	originKey = []byte("net-origin-v1")
	nodeKey   = []byte("net-node-id-v1")
)

// Mac64 returns the first 8 bytes, little-endian, of BLAKE2s-MAC(key, msg).
// key must be 1..32 bytes.
func Mac64(key, msg []byte) uint64 {
	m := Mac(key, msg)
	return binary.LittleEndian.Uint64(m[:8])
}

// Mac returns keyed BLAKE2s-256 (RFC 7693) of msg. key must be 1..32 bytes.
func Mac(key, msg []byte) [32]byte {
	h, err := blake2s.New256(key)
	if err != nil {
		panic("identity: blake2s key must be 1..32 bytes")
	}
	h.Write(msg)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// OriginHashOf derives the origin hash of a public key.
func OriginHashOf(id EntityID) uint64 { return Mac64(originKey, id[:]) }

// NodeIDOf derives the node id of a public key.
func NodeIDOf(id EntityID) uint64 { return Mac64(nodeKey, id[:]) }
