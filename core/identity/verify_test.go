package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// torsionHex lists the canonical encodings of the eight points of small order
// on edwards25519 (orders 1, 2, 4, 4, 8, 8, 8, 8).
var torsionHex = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
}

func mustHex32(t testing.TB, s string) [32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	require.Len(t, b, 32)
	var out [32]byte
	copy(out[:], b)
	return out
}

// fieldP is 2^255 − 19.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// groupL is the prime order ℓ of the edwards25519 base point.
var groupL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// le32 writes n (< 2^256) as 32 little-endian bytes.
func le32(n *big.Int) [32]byte {
	var out [32]byte
	be := n.FillBytes(make([]byte, 32))
	for i := range 32 {
		out[i] = be[31-i]
	}
	return out
}

func fromLE(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

func TestVerifyStrictAcceptsValid(t *testing.T) {
	kp, err := FromSeed(make([]byte, 32))
	require.NoError(t, err)
	msg := []byte("strict but fair")
	sig, err := kp.Sign(msg)
	require.NoError(t, err)
	assert.True(t, VerifyStrict(kp.EntityID(), msg, sig[:]))
	assert.True(t, kp.Verify(msg, sig[:]))

	assert.False(t, VerifyStrict(kp.EntityID(), []byte("strict but unfair"), sig[:]), "other message")
	assert.False(t, VerifyStrict(kp.EntityID(), msg, sig[:63]), "short signature")
	assert.False(t, VerifyStrict(kp.EntityID(), msg, append(sig[:], 0)), "long signature")
	assert.False(t, VerifyStrict(kp.EntityID(), msg, nil), "no signature")
	for i := range 64 {
		bad := sig
		bad[i] ^= 0x01
		assert.False(t, VerifyStrict(kp.EntityID(), msg, bad[:]), "flipped bit in byte %d", i)
	}
}

func TestTorsionPointsAreSmallOrder(t *testing.T) {
	seen := map[[32]byte]bool{}
	for _, h := range torsionHex {
		b := mustHex32(t, h)
		p, err := new(edwards25519.Point).SetBytes(b[:])
		require.NoError(t, err, h)
		assert.True(t, isSmallOrder(p), h)
		assert.Equal(t, b[:], p.Bytes(), "list holds canonical encodings: %s", h)
		_, ok := decodeStrictPoint(b[:])
		assert.False(t, ok, h)
		seen[b] = true
	}
	assert.Len(t, seen, 8)
	assert.False(t, isSmallOrder(edwards25519.NewGeneratorPoint()))
}

// A public key and R of order 1 with S = 0 satisfy the cofactorless equation
// for every message: crypto/ed25519 accepts it, the strict rule must not.
func TestVerifyStrictRejectsSmallOrderKeys(t *testing.T) {
	identity := mustHex32(t, torsionHex[0])
	var sig [64]byte
	copy(sig[:32], identity[:])
	msg := []byte("anything at all")
	require.True(t, ed25519.Verify(identity[:], msg, sig[:]), "precondition: the lax check accepts the forgery")
	assert.False(t, VerifyStrict(EntityID(identity), msg, sig[:]))

	for _, h := range torsionHex {
		pub := mustHex32(t, h)
		for _, rh := range torsionHex {
			r := mustHex32(t, rh)
			var s [64]byte
			copy(s[:32], r[:])
			assert.False(t, VerifyStrict(EntityID(pub), msg, s[:]), "key %s R %s", h, rh)
		}
	}
}

// With the secret scalar a, S = k·a makes R = identity pass the cofactorless
// equation under an honest key; only the small-order check on R refuses it.
func TestVerifyStrictRejectsSmallOrderR(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	kp, err := FromSeed(seed)
	require.NoError(t, err)
	pub := kp.EntityID()
	h := sha512.Sum512(seed)
	a, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	require.NoError(t, err)

	msg := []byte("small R")
	for _, rh := range torsionHex[:1] {
		r := mustHex32(t, rh)
		dig := sha512.New()
		dig.Write(r[:])
		dig.Write(pub[:])
		dig.Write(msg)
		k, err := edwards25519.NewScalar().SetUniformBytes(dig.Sum(nil))
		require.NoError(t, err)
		s := edwards25519.NewScalar().Multiply(k, a)
		var sig [64]byte
		copy(sig[:32], r[:])
		copy(sig[32:], s.Bytes())
		require.True(t, ed25519.Verify(pub[:], msg, sig[:]), "precondition: the lax check accepts R = identity")
		assert.False(t, VerifyStrict(pub, msg, sig[:]))
	}
}

func TestVerifyStrictRejectsNonCanonicalS(t *testing.T) {
	kp, err := FromSeed(make([]byte, 32))
	require.NoError(t, err)
	msg := []byte("malleable?")
	sig, err := kp.Sign(msg)
	require.NoError(t, err)

	// S + ℓ is the same scalar modulo ℓ, encoded without reduction.
	s := fromLE(sig[32:])
	plusL := le32(new(big.Int).Add(s, groupL))
	bad := sig
	copy(bad[32:], plusL[:])
	assert.False(t, VerifyStrict(kp.EntityID(), msg, bad[:]))

	// A high bit set is never a reduced scalar.
	bad = sig
	bad[63] |= 0x80
	assert.False(t, VerifyStrict(kp.EntityID(), msg, bad[:]))
}

func TestVerifyStrictRejectsNonCanonicalPoints(t *testing.T) {
	// Negative zero: the identity with the x sign bit set.
	negZero := mustHex32(t, torsionHex[0])
	negZero[31] |= 0x80
	_, err := new(edwards25519.Point).SetBytes(negZero[:])
	require.NoError(t, err, "precondition: the lax decoder accepts negative zero")
	_, ok := decodeStrictPoint(negZero[:])
	assert.False(t, ok)

	// y + p for small y: find one that is a valid point of large order, so
	// only the canonical check can refuse it.
	found := 0
	for y := int64(2); y < 19; y++ {
		enc := le32(new(big.Int).Add(fieldP, big.NewInt(y)))
		p, err := new(edwards25519.Point).SetBytes(enc[:])
		if err != nil {
			continue
		}
		require.False(t, isSmallOrder(p))
		canon := le32(big.NewInt(y))
		_, ok := decodeStrictPoint(canon[:])
		require.True(t, ok, "the canonical form of y=%d is accepted", y)
		_, ok = decodeStrictPoint(enc[:])
		assert.False(t, ok, "y=%d+p refused", y)
		// As a public key it must fail before any signature math.
		var sig [64]byte
		copy(sig[:32], edwards25519.NewGeneratorPoint().Bytes())
		assert.False(t, VerifyStrict(EntityID(enc), []byte("m"), sig[:]))
		found++
	}
	require.Positive(t, found, "at least one unreduced y decodes to a point")

	// The unreduced encoding of the identity (y = p + 1) is refused twice over.
	idNC := le32(new(big.Int).Add(fieldP, big.NewInt(1)))
	var sig [64]byte
	id := mustHex32(t, torsionHex[0])
	copy(sig[:32], id[:])
	require.True(t, ed25519.Verify(idNC[:], []byte("m"), sig[:]), "precondition: the lax check accepts it")
	assert.False(t, VerifyStrict(EntityID(idNC), []byte("m"), sig[:]))
}

func BenchmarkVerifyStrict(b *testing.B) {
	kp, err := FromSeed(make([]byte, 32))
	require.NoError(b, err)
	msg := make([]byte, 105)
	sig, err := kp.Sign(msg)
	require.NoError(b, err)
	id := kp.EntityID()
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyStrict(id, msg, sig[:]) {
			b.Fatal("verify failed")
		}
	}
}

func FuzzVerifyStrict(f *testing.F) {
	kp, err := FromSeed(make([]byte, 32))
	require.NoError(f, err)
	msg := []byte("fuzz")
	sig, err := kp.Sign(msg)
	require.NoError(f, err)
	id := kp.EntityID()
	f.Add(id[:], msg, sig[:])
	for _, h := range torsionHex {
		b := mustHex32(f, h)
		f.Add(b[:], msg, append(b[:], make([]byte, 32)...))
	}
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, pub, m, s []byte) {
		var pk EntityID
		copy(pk[:], pub)
		got := VerifyStrict(pk, m, s)
		if got {
			// Anything strict accepts, the lax check accepts too, and its
			// points are canonical and of large order.
			require.True(t, ed25519.Verify(pk[:], m, s))
			_, ok := decodeStrictPoint(pk[:])
			require.True(t, ok)
			_, ok = decodeStrictPoint(s[:32])
			require.True(t, ok)
		}
		if pk == id && string(m) == string(msg) && string(s) == string(sig[:]) {
			require.True(t, got)
		}
	})
}

// strictByReencode is the definition decodeStrictPoint implements more
// cheaply: decodes, re-encodes to the same bytes, not of small order.
func strictByReencode(b []byte) bool {
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return false
	}
	return bytes.Equal(p.Bytes(), b) && !isSmallOrder(p)
}

func TestDecodeStrictPointEqualsReencodeRule(t *testing.T) {
	var cases [][32]byte
	// Every y from p-24 to 2^255-1 and small y, each with both sign bits.
	for d := int64(-24); d < 19; d++ {
		cases = append(cases, le32(new(big.Int).Add(fieldP, big.NewInt(d))))
	}
	for y := int64(0); y < 40; y++ {
		cases = append(cases, le32(big.NewInt(y)))
	}
	for _, h := range torsionHex {
		cases = append(cases, mustHex32(t, h))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		var b [32]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		cases = append(cases, b)
		// and the encoding of a real point
		var seed [32]byte
		copy(seed[:], b[:])
		cases = append(cases, [32]byte(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)))
	}
	accepted := 0
	for _, c := range cases {
		for _, sign := range []byte{0, 0x80} {
			b := c
			b[31] = b[31]&0x7f | sign
			_, ok := decodeStrictPoint(b[:])
			require.Equal(t, strictByReencode(b[:]), ok, "%x", b)
			if ok {
				accepted++
			}
		}
	}
	assert.Greater(t, accepted, 3000, "the case set exercises the accept path")
}

// On keys and R points the strict rule accepts, VerifyStrict agrees with
// crypto/ed25519 for valid signatures and for every single-bit corruption of
// the message, R or S.
func TestVerifyStrictAgreesWithStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(rng.Uint32())
		}
		priv := ed25519.NewKeyFromSeed(seed[:])
		pub := EntityID(priv.Public().(ed25519.PublicKey))
		msg := make([]byte, rng.IntN(100))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		sig := ed25519.Sign(priv, msg)
		require.True(t, VerifyStrict(pub, msg, sig))
		bad := append([]byte(nil), sig...)
		bit := rng.IntN(512)
		bad[bit/8] ^= 1 << (bit % 8)
		assert.Equal(t, ed25519.Verify(pub[:], msg, bad) && strictByReencode(bad[:32]),
			VerifyStrict(pub, msg, bad), "sig bit %d", bit)
		if len(msg) > 0 {
			m2 := append([]byte(nil), msg...)
			m2[rng.IntN(len(m2))] ^= 1
			assert.False(t, VerifyStrict(pub, m2, sig))
		}
		var other EntityID
		copy(other[:], ed25519.NewKeyFromSeed(msg2seed(msg)).Public().(ed25519.PublicKey))
		if other != pub {
			assert.False(t, VerifyStrict(other, msg, sig))
		}
	}
}

func msg2seed(m []byte) []byte {
	s := sha512.Sum512(append([]byte("seed"), m...))
	return s[:32]
}
