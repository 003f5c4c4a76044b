package identity

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Identity envelope wire constants (FORMATS §5).
const (
	EnvelopeSize    = 209
	EnvelopeVersion = 1
	// envelopeCTSize is the sealed seed plus the Poly1305 tag.
	envelopeCTSize = SeedSize + chacha20poly1305.Overhead
)

// Byte offsets of the envelope fields.
const (
	envOffTarget = 1
	envOffEph    = envOffTarget + 32
	envOffCT     = envOffEph + 32
	envOffSigner = envOffCT + envelopeCTSize
	envOffSig    = envOffSigner + 32
)

var (
	envKeyLabel   = []byte("net-identity-envelope")
	envNonceLabel = []byte("net-identity-nonce")
)

// Envelope is a decoded identity envelope: a daemon's ed25519 seed sealed to a
// node's X25519 static key and bound to one snapshot's chain link. Decoding
// checks only the shape; OpenEnvelope (or Open) does the cryptography.
type Envelope struct {
	TargetStaticPub [32]byte
	EphemeralPub    [32]byte
	Ciphertext      [envelopeCTSize]byte // sealed seed ‖ tag
	SignerPub       EntityID
	Signature       [64]byte
}

// Encode returns the 209-byte wire form, version byte first.
func (e *Envelope) Encode() [EnvelopeSize]byte {
	var b [EnvelopeSize]byte
	b[0] = EnvelopeVersion
	copy(b[envOffTarget:], e.TargetStaticPub[:])
	copy(b[envOffEph:], e.EphemeralPub[:])
	copy(b[envOffCT:], e.Ciphertext[:])
	copy(b[envOffSigner:], e.SignerPub[:])
	copy(b[envOffSig:], e.Signature[:])
	return b
}

// DecodeEnvelope parses exactly EnvelopeSize bytes with version 1; anything
// else fails with ErrEnvelopeMalformed.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) != EnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrEnvelopeMalformed, len(b), EnvelopeSize)
	}
	if b[0] != EnvelopeVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrEnvelopeMalformed, b[0], EnvelopeVersion)
	}
	e := new(Envelope)
	copy(e.TargetStaticPub[:], b[envOffTarget:])
	copy(e.EphemeralPub[:], b[envOffEph:])
	copy(e.Ciphertext[:], b[envOffCT:])
	copy(e.SignerPub[:], b[envOffSigner:])
	copy(e.Signature[:], b[envOffSig:])
	return e, nil
}

// SealEnvelope seals kp's seed to the node whose X25519 static public key is
// targetStaticPub, bound to the snapshot chain link (its 32 wire bytes).
// A public-only kp fails with ErrReadOnly; a small-order target key with
// ErrEnvelopeBadTarget.
func SealEnvelope(kp *Keypair, targetStaticPub [32]byte, link [32]byte) ([EnvelopeSize]byte, error) {
	e, err := sealEnvelope(rand.Reader, kp, targetStaticPub, link)
	if err != nil {
		return [EnvelopeSize]byte{}, err
	}
	return e.Encode(), nil
}

// sealEnvelope is SealEnvelope with the ephemeral key drawn from rng, so tests
// can pin a known answer.
func sealEnvelope(rng io.Reader, kp *Keypair, target, link [32]byte) (*Envelope, error) {
	if kp == nil || kp.IsReadOnly() {
		return nil, ErrReadOnly
	}
	var eph [32]byte
	if _, err := io.ReadFull(rng, eph[:]); err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrEnvelope, err)
	}
	defer clear(eph[:])
	// crypto/ecdh derives E while building the key, so sealing costs two
	// ladders (E and the shared secret) instead of four via curve25519.X25519.
	ephKey, err := ecdh.X25519().NewPrivateKey(eph[:])
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrEnvelope, err)
	}
	var ephPub [32]byte
	copy(ephPub[:], ephKey.PublicKey().Bytes())
	shared, err := x25519Shared(ephKey, target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeBadTarget, err)
	}
	defer clear(shared)

	aead, nonce := envelopeCipher(shared, ephPub, target)
	seed, _ := kp.Seed()
	defer clear(seed[:])

	e := &Envelope{TargetStaticPub: target, EphemeralPub: ephPub, SignerPub: kp.EntityID()}
	aead.Seal(e.Ciphertext[:0], nonce[:], seed[:], link[:])
	sig, err := kp.Sign(signedEnvelopeBytes(target, link))
	if err != nil {
		return nil, err
	}
	e.Signature = sig
	return e, nil
}

// OpenEnvelope decodes b and opens it with the target node's X25519 static
// private key. Checks run in the order FORMATS §5 gives, each with its own
// error: shape (ErrEnvelopeMalformed), signer_pub == expectedSigner
// (ErrEnvelopeSignerMismatch), strict signature over target ‖ link
// (ErrEnvelopeBadSignature), target == our public key (ErrEnvelopeWrongTarget),
// AEAD (ErrEnvelopeDecrypt), seed derives signer_pub (ErrEnvelopeSeedMismatch).
// The returned keypair holds the daemon's secret.
func OpenEnvelope(b []byte, targetStaticPriv [32]byte, expectedSigner EntityID, link [32]byte) (*Keypair, error) {
	e, err := DecodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	return e.Open(targetStaticPriv, expectedSigner, link)
}

// StaticKey is a node's X25519 static key prepared for opening envelopes:
// the public half is derived once, so each open costs one X25519 ladder.
// It is immutable and safe for concurrent use.
type StaticKey struct {
	priv *ecdh.PrivateKey
	pub  [32]byte
}

// NewStaticKey prepares priv for OpenEnvelopeWith.
func NewStaticKey(priv [32]byte) *StaticKey {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		panic("identity: x25519 rejected a 32-byte private key") // unreachable
	}
	sk := &StaticKey{priv: k}
	copy(sk.pub[:], k.PublicKey().Bytes())
	return sk
}

// Matches reports, in constant time, whether k was prepared from priv.
func (k *StaticKey) Matches(priv [32]byte) bool {
	return subtle.ConstantTimeCompare(k.priv.Bytes(), priv[:]) == 1
}

// Public returns the X25519 public key of the static key.
func (k *StaticKey) Public() [32]byte { return k.pub }

// OpenEnvelopeWith is OpenEnvelope with a prepared static key; same checks,
// same order, same errors.
func OpenEnvelopeWith(b []byte, key *StaticKey, expectedSigner EntityID, link [32]byte) (*Keypair, error) {
	e, err := DecodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	return e.OpenWith(key, expectedSigner, link)
}

// Open is OpenEnvelope on an already decoded envelope.
func (e *Envelope) Open(targetStaticPriv [32]byte, expectedSigner EntityID, link [32]byte) (*Keypair, error) {
	return e.OpenWith(NewStaticKey(targetStaticPriv), expectedSigner, link)
}

// OpenWith is Open with a prepared static key.
func (e *Envelope) OpenWith(key *StaticKey, expectedSigner EntityID, link [32]byte) (*Keypair, error) {
	if e.SignerPub != expectedSigner {
		return nil, ErrEnvelopeSignerMismatch
	}
	var signed [64]byte
	copy(signed[:32], e.TargetStaticPub[:])
	copy(signed[32:], link[:])
	if !VerifyStrict(e.SignerPub, signed[:], e.Signature[:]) {
		return nil, ErrEnvelopeBadSignature
	}
	if subtle.ConstantTimeCompare(key.pub[:], e.TargetStaticPub[:]) != 1 {
		return nil, ErrEnvelopeWrongTarget
	}
	shared, err := x25519Shared(key.priv, e.EphemeralPub)
	if err != nil {
		// A small-order ephemeral key yields no shared secret to open with.
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeDecrypt, err)
	}
	defer clear(shared)
	aead, nonce := envelopeCipher(shared, e.EphemeralPub, e.TargetStaticPub)
	var seed [SeedSize]byte
	defer clear(seed[:])
	if _, err := aead.Open(seed[:0], nonce[:], e.Ciphertext[:], link[:]); err != nil {
		return nil, ErrEnvelopeDecrypt
	}
	kp, err := FromSeed(seed[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeSeedMismatch, err)
	}
	if kp.EntityID() != e.SignerPub {
		return nil, ErrEnvelopeSeedMismatch
	}
	return kp, nil
}

// x25519Shared is X25519(priv, peer); an all-zero result (small-order peer
// key) is an error, as with curve25519.X25519.
func x25519Shared(priv *ecdh.PrivateKey, peer [32]byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return nil, err
	}
	return priv.ECDH(pub)
}

// envelopeCipher derives the XChaCha20-Poly1305 key from the X25519 shared
// secret and the nonce from E ‖ T; both labels are BLAKE2s keys.
func envelopeCipher(shared []byte, ephPub, target [32]byte) (cipher.AEAD, [chacha20poly1305.NonceSizeX]byte) {
	key := Mac(envKeyLabel, shared)
	defer clear(key[:])
	var et [64]byte
	copy(et[:32], ephPub[:])
	copy(et[32:], target[:])
	full := Mac(envNonceLabel, et[:])
	var nonce [chacha20poly1305.NonceSizeX]byte
	copy(nonce[:], full[:])
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("identity: xchacha20poly1305 rejected a 32-byte key") // unreachable
	}
	return aead, nonce
}

// signedEnvelopeBytes is the 64-byte message the daemon signs: T ‖ L.
func signedEnvelopeBytes(target, link [32]byte) []byte {
	m := make([]byte, 64)
	copy(m, target[:])
	copy(m[32:], link[:])
	return m
}

// GenerateX25519 returns a fresh X25519 keypair (as used for a node's Noise
// static key). priv is 32 random bytes; clamping happens inside X25519.
func GenerateX25519() (priv, pub [32]byte, err error) {
	if _, err = rand.Read(priv[:]); err != nil {
		return priv, pub, fmt.Errorf("identity: x25519 generate: %w", err)
	}
	return priv, X25519Public(priv), nil
}

// X25519Public returns the X25519 public key of priv (one ladder).
func X25519Public(priv [32]byte) [32]byte {
	var pub [32]byte
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		// Unreachable: any 32 bytes are a valid X25519 private key.
		// Returning zeros keeps the function total.
		return pub
	}
	copy(pub[:], k.PublicKey().Bytes())
	return pub
}
