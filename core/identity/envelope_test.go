package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"
)

// envFixture is a daemon identity, a target node key and a chain link.
type envFixture struct {
	daemon     *Keypair
	targetPriv [32]byte
	targetPub  [32]byte
	link       [32]byte
}

func fill32(v byte) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = v
	}
	return b
}

func counting32() [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func newEnvFixture(t testing.TB) envFixture {
	seed := counting32()
	kp, err := FromSeed(seed[:])
	require.NoError(t, err)
	priv := fill32(0x02)
	return envFixture{daemon: kp, targetPriv: priv, targetPub: X25519Public(priv), link: fill32(0x04)}
}

func (f envFixture) seal(t testing.TB) [EnvelopeSize]byte {
	b, err := SealEnvelope(f.daemon, f.targetPub, f.link)
	require.NoError(t, err)
	return b
}

// Known answer: seed 0..31, target private key 32×0x02, ephemeral private key
// 32×0x03, link 32×0x04. Computed once here and cross-checked with an
// independent Python implementation (cryptography's X25519, Ed25519 and
// ChaCha20-Poly1305 with a hand-written HChaCha20, hashlib.blake2s).
const envelopeKAT = "" +
	"01" + // version
	"ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59" + // target_static_pub
	"5dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22" + // eph_pub
	"115da56ac01ee80b279b377ad8e2b03b675c614fc9ddebd5343628ad329936f5" + // ciphertext
	"2ab57e709f2c7e59d8824787242f5bc8" + // tag
	"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8" + // signer_pub
	"a66ebaa99627f50818cafe3a79a6c036f9bf5495b0e8c046e7eeb6df5c30c206" + // signature R
	"7af0067a8141a21331290b8d069ac1ba64c3e29eb16931a9a20e20bfafe81d04" + // signature S
	""

func TestEnvelopeKnownAnswer(t *testing.T) {
	f := newEnvFixture(t)
	eph := fill32(0x03)
	e, err := sealEnvelope(bytes.NewReader(eph[:]), f.daemon, f.targetPub, f.link)
	require.NoError(t, err)
	b := e.Encode()
	assert.Equal(t, envelopeKAT, hex.EncodeToString(b[:]))

	kp, err := OpenEnvelope(b[:], f.targetPriv, f.daemon.EntityID(), f.link)
	require.NoError(t, err)
	assert.Equal(t, f.daemon.EntityID(), kp.EntityID())
}

// RFC 7748 §6.1: Alice's key pair.
func TestX25519PublicRFC7748(t *testing.T) {
	priv := mustHex32(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	pub := X25519Public(priv)
	assert.Equal(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", hex.EncodeToString(pub[:]))

	p1, q1, err := GenerateX25519()
	require.NoError(t, err)
	p2, q2, err := GenerateX25519()
	require.NoError(t, err)
	assert.Equal(t, X25519Public(p1), q1)
	assert.Equal(t, X25519Public(p2), q2)
	assert.NotEqual(t, p1, p2)
}

// vectors.json envelope-size-version.
func TestEnvelopeVectorSizeVersion(t *testing.T) {
	assert.Equal(t, 209, EnvelopeSize)
	assert.Equal(t, 1, EnvelopeVersion)
	f := newEnvFixture(t)
	b := f.seal(t)
	assert.Len(t, b[:], 209)
	assert.Equal(t, byte(1), b[0])
}

// vectors.json envelope-rejects: every case fails to decode.
func TestEnvelopeVectorRejects(t *testing.T) {
	f := newEnvFixture(t)
	b := f.seal(t)
	versionChanged := b
	versionChanged[0] = 2
	v0 := b
	v0[0] = 0
	cases := map[string][]byte{
		"first 208 bytes":                b[:208],
		"empty":                          {},
		"nil":                            nil,
		"209 bytes + one extra":          append(append([]byte{}, b[:]...), 0),
		"bytes[1..] (version stripped)":  b[1:],
		"version byte changed":           versionChanged[:],
		"version 0 (pre wire bump form)": v0[:],
		"version 0xff":                   append([]byte{0xff}, b[1:]...),
	}
	for name, in := range cases {
		_, err := DecodeEnvelope(in)
		require.ErrorIs(t, err, ErrEnvelopeMalformed, name)
		require.ErrorIs(t, err, ErrEnvelope, name)
		_, err = OpenEnvelope(in, f.targetPriv, f.daemon.EntityID(), f.link)
		require.ErrorIs(t, err, ErrEnvelopeMalformed, name)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	f := newEnvFixture(t)
	b := f.seal(t)

	e, err := DecodeEnvelope(b[:])
	require.NoError(t, err)
	assert.Equal(t, b, e.Encode())
	assert.Equal(t, f.targetPub, e.TargetStaticPub)
	assert.Equal(t, f.daemon.EntityID(), e.SignerPub)

	kp, err := OpenEnvelope(b[:], f.targetPriv, f.daemon.EntityID(), f.link)
	require.NoError(t, err)
	require.False(t, kp.IsReadOnly())
	want, _ := f.daemon.Seed()
	got, ok := kp.Seed()
	require.True(t, ok)
	assert.Equal(t, want, got)
	assert.Equal(t, f.daemon.OriginHash(), kp.OriginHash())
	assert.Equal(t, f.daemon.NodeID(), kp.NodeID())

	// Fresh ephemeral key each time: two seals differ, both open.
	b2 := f.seal(t)
	assert.NotEqual(t, b, b2)
	_, err = OpenEnvelope(b2[:], f.targetPriv, f.daemon.EntityID(), f.link)
	require.NoError(t, err)

	// With freshly generated node keys and a random identity.
	daemon, err := Generate()
	require.NoError(t, err)
	priv, pub, err := GenerateX25519()
	require.NoError(t, err)
	var link [32]byte
	_, _ = rand.Read(link[:])
	b3, err := SealEnvelope(daemon, pub, link)
	require.NoError(t, err)
	kp3, err := OpenEnvelope(b3[:], priv, daemon.EntityID(), link)
	require.NoError(t, err)
	assert.Equal(t, daemon.EntityID(), kp3.EntityID())
}

func TestSealEnvelopeRefusals(t *testing.T) {
	f := newEnvFixture(t)
	_, err := SealEnvelope(PublicOnly(f.daemon.EntityID()), f.targetPub, f.link)
	assert.ErrorIs(t, err, ErrReadOnly)
	_, err = SealEnvelope(nil, f.targetPub, f.link)
	assert.ErrorIs(t, err, ErrReadOnly)

	// Small-order target keys give an all-zero shared secret.
	_, err = SealEnvelope(f.daemon, [32]byte{}, f.link)
	assert.ErrorIs(t, err, ErrEnvelopeBadTarget)
	assert.ErrorIs(t, err, ErrEnvelope)
	one := [32]byte{1}
	_, err = SealEnvelope(f.daemon, one, f.link)
	assert.ErrorIs(t, err, ErrEnvelopeBadTarget)

	_, err = sealEnvelope(bytes.NewReader(nil), f.daemon, f.targetPub, f.link)
	assert.ErrorIs(t, err, ErrEnvelope, "exhausted randomness")
}

func TestOpenEnvelopeRejections(t *testing.T) {
	f := newEnvFixture(t)
	b := f.seal(t)
	other, err := Generate()
	require.NoError(t, err)
	otherPriv, _, err := GenerateX25519()
	require.NoError(t, err)

	t.Run("signer mismatch", func(t *testing.T) {
		_, err := OpenEnvelope(b[:], f.targetPriv, other.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeSignerMismatch)
	})
	t.Run("other link", func(t *testing.T) {
		link := f.link
		link[31] ^= 1
		_, err := OpenEnvelope(b[:], f.targetPriv, f.daemon.EntityID(), link)
		assert.ErrorIs(t, err, ErrEnvelopeBadSignature)
		_, err = OpenEnvelope(b[:], f.targetPriv, f.daemon.EntityID(), [32]byte{})
		assert.ErrorIs(t, err, ErrEnvelopeBadSignature)
	})
	t.Run("wrong target", func(t *testing.T) {
		_, err := OpenEnvelope(b[:], otherPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeWrongTarget)
	})
	t.Run("decrypt", func(t *testing.T) {
		bad := b
		bad[envOffCT] ^= 0x80
		_, err := OpenEnvelope(bad[:], f.targetPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeDecrypt)
	})
	t.Run("small-order ephemeral", func(t *testing.T) {
		bad := b
		clear(bad[envOffEph : envOffEph+32])
		_, err := OpenEnvelope(bad[:], f.targetPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeDecrypt)
	})
	t.Run("seed mismatch", func(t *testing.T) {
		// The other identity's seed sealed under the same ephemeral key and
		// target, but signed and labelled as the daemon: every check up to
		// the AEAD passes and only the seed check can catch it.
		eph := fill32(0x07)
		forged, err := sealEnvelope(bytes.NewReader(eph[:]), other, f.targetPub, f.link)
		require.NoError(t, err)
		honest, err := sealEnvelope(bytes.NewReader(eph[:]), f.daemon, f.targetPub, f.link)
		require.NoError(t, err)
		forged.SignerPub = honest.SignerPub
		forged.Signature = honest.Signature
		enc := forged.Encode()
		_, err = OpenEnvelope(enc[:], f.targetPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeSeedMismatch)
		_, err = forged.Open(f.targetPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeSeedMismatch)
	})
	t.Run("order: signer before signature before target", func(t *testing.T) {
		bad := b
		bad[envOffSig] ^= 1
		// Wrong signer, bad signature and wrong target at once: signer wins.
		_, err := OpenEnvelope(bad[:], otherPriv, other.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeSignerMismatch)
		// Bad signature and wrong target: signature wins.
		_, err = OpenEnvelope(bad[:], otherPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeBadSignature)
		// Wrong target and broken ciphertext: target wins.
		bad = b
		bad[envOffCT+5] ^= 1
		_, err = OpenEnvelope(bad[:], otherPriv, f.daemon.EntityID(), f.link)
		assert.ErrorIs(t, err, ErrEnvelopeWrongTarget)
	})
	t.Run("sentinels are distinct and share ErrEnvelope", func(t *testing.T) {
		all := []error{ErrEnvelopeMalformed, ErrEnvelopeSignerMismatch, ErrEnvelopeBadSignature,
			ErrEnvelopeWrongTarget, ErrEnvelopeDecrypt, ErrEnvelopeSeedMismatch, ErrEnvelopeBadTarget}
		for i, a := range all {
			assert.ErrorIs(t, a, ErrEnvelope)
			for j, c := range all {
				if i != j {
					assert.False(t, errors.Is(a, c), "%v is not %v", a, c)
				}
			}
		}
	})
}

// Flipping any single byte of a sealed envelope makes it fail to open, with
// the error of the first check that covers that region.
func TestEnvelopeTamperEveryByte(t *testing.T) {
	f := newEnvFixture(t)
	b := f.seal(t)
	regions := []struct {
		name     string
		from, to int
		want     error
	}{
		{"version", 0, envOffTarget, ErrEnvelopeMalformed},
		{"target_static_pub", envOffTarget, envOffEph, ErrEnvelopeBadSignature}, // signed as T
		{"eph_pub", envOffEph, envOffCT, ErrEnvelopeDecrypt},
		{"ciphertext+tag", envOffCT, envOffSigner, ErrEnvelopeDecrypt},
		{"signer_pub", envOffSigner, envOffSig, ErrEnvelopeSignerMismatch},
		{"signature", envOffSig, EnvelopeSize, ErrEnvelopeBadSignature},
	}
	require.Equal(t, EnvelopeSize, regions[len(regions)-1].to)
	for _, r := range regions {
		for i := r.from; i < r.to; i++ {
			for _, mask := range []byte{0x01, 0x80} {
				bad := b
				bad[i] ^= mask
				kp, err := OpenEnvelope(bad[:], f.targetPriv, f.daemon.EntityID(), f.link)
				require.Nil(t, kp, "%s byte %d", r.name, i)
				require.ErrorIs(t, err, r.want, "%s byte %d mask %#x", r.name, i, mask)
			}
		}
	}
}

func BenchmarkSealEnvelope(b *testing.B) {
	f := newEnvFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealEnvelope(f.daemon, f.targetPub, f.link); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenEnvelope(b *testing.B) {
	f := newEnvFixture(b)
	env := f.seal(b)
	id := f.daemon.EntityID()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenEnvelope(env[:], f.targetPriv, id, f.link); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	fx := newEnvFixture(f)
	b := fx.seal(f)
	f.Add(b[:])
	f.Add(b[:208])
	f.Add(b[1:])
	f.Add(append(append([]byte{}, b[:]...), 0))
	f.Add([]byte{})
	f.Add(append([]byte{2}, b[1:]...))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEnvelope(in)
		if err != nil {
			require.ErrorIs(t, err, ErrEnvelopeMalformed)
			require.Nil(t, e)
			return
		}
		require.Len(t, in, EnvelopeSize)
		enc := e.Encode()
		require.Equal(t, in, enc[:])
	})
}

func FuzzOpenEnvelope(f *testing.F) {
	fx := newEnvFixture(f)
	b := fx.seal(f)
	f.Add(b[:])
	f.Add(b[:100])
	f.Add([]byte{})
	zeroEph := b
	clear(zeroEph[envOffEph : envOffEph+32])
	f.Add(zeroEph[:])
	id := fx.daemon.EntityID()
	open := func(t *testing.T, in []byte) {
		kp, err := OpenEnvelope(in, fx.targetPriv, id, fx.link)
		if err != nil {
			require.ErrorIs(t, err, ErrEnvelope)
			require.Nil(t, kp)
			return
		}
		// Only the daemon can produce an envelope that opens here.
		require.Equal(t, id, kp.EntityID())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		open(t, in)
		// Also overlay the input on the valid envelope, so mutations reach
		// the checks behind the shape check. The offset comes from the input.
		if len(in) == 0 {
			return
		}
		over := b
		copy(over[int(in[0])%EnvelopeSize:], in[1:])
		open(t, over[:])
	})
}

// OpenEnvelopeWith (prepared static key) answers exactly as OpenEnvelope:
// the same keypair for a good envelope and the same first failure for every
// single-byte tampering and for a foreign key.
func TestOpenEnvelopeWithMatchesOpenEnvelope(t *testing.T) {
	f := newEnvFixture(t)
	b := f.seal(t)
	id := f.daemon.EntityID()
	key := NewStaticKey(f.targetPriv)
	require.Equal(t, f.targetPub, key.Public())
	require.True(t, key.Matches(f.targetPriv))
	otherPriv, _, err := GenerateX25519()
	require.NoError(t, err)
	require.False(t, key.Matches(otherPriv))

	kp, err := OpenEnvelopeWith(b[:], key, id, f.link)
	require.NoError(t, err)
	require.Equal(t, id, kp.EntityID())

	_, err = OpenEnvelopeWith(b[:], NewStaticKey(otherPriv), id, f.link)
	require.ErrorIs(t, err, ErrEnvelopeWrongTarget)
	for i := range EnvelopeSize {
		bad := b
		bad[i] ^= 0x01
		_, want := OpenEnvelope(bad[:], f.targetPriv, id, f.link)
		_, got := OpenEnvelopeWith(bad[:], key, id, f.link)
		require.Error(t, got, "byte %d", i)
		require.Equal(t, want.Error(), got.Error(), "byte %d", i)
	}
}

// X25519Public (via crypto/ecdh) agrees with curve25519.X25519 on the base
// point for random keys.
func TestX25519PublicMatchesCurve25519(t *testing.T) {
	for range 32 {
		var priv [32]byte
		_, err := rand.Read(priv[:])
		require.NoError(t, err)
		want, err := curve25519.X25519(priv[:], curve25519.Basepoint)
		require.NoError(t, err)
		got := X25519Public(priv)
		require.Equal(t, want, got[:])
	}
}

func BenchmarkOpenEnvelopeWith(b *testing.B) {
	f := newEnvFixture(b)
	env := f.seal(b)
	id := f.daemon.EntityID()
	key := NewStaticKey(f.targetPriv)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenEnvelopeWith(env[:], key, id, f.link); err != nil {
			b.Fatal(err)
		}
	}
}
