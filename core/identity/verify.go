package identity

import (
	"crypto/ed25519"
	"crypto/sha512"

	"filippo.io/edwards25519"
)

// VerifyStrict verifies an ed25519 signature the way ed25519-dalek's
// verify_strict does. On top of RFC 8032 verification it rejects:
//   - a public key or R whose encoding is not canonical (y ≥ p, or the sign
//     bit set on x = 0);
//   - a public key or R of small order (a torsion point: [8]P = identity);
//   - an S that is not fully reduced modulo the group order ℓ.
//
// The verification equation itself is the cofactorless one,
// R == [S]B − [k]A compared as encodings, as in both dalek and crypto/ed25519.
// Mixed-order keys (prime-order part plus torsion) are not refused, matching
// dalek. It never panics, whatever the input.
func VerifyStrict(pub EntityID, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	a, ok := decodeStrictPoint(pub[:])
	if !ok {
		return false
	}
	r, ok := decodeStrictPoint(sig[:32])
	if !ok {
		return false
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	// k = SHA-512(R || A || msg) mod ℓ; accept iff [S]B − [k]A = R. Both A and
	// R are decoded once (above); R is compared as a point, which for the
	// canonical encoding checked above is the same as comparing encodings and
	// spares the inversion of an encode.
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(pub[:])
	h.Write(msg)
	var digest [sha512.Size]byte
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		return false
	}
	minusA := new(edwards25519.Point).Negate(a)
	check := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, s)
	return check.Equal(r) == 1
}

// decodeStrictPoint decodes a 32-byte Edwards point, refusing non-canonical
// encodings and points of small order. ok is false for anything refused.
//
// SetBytes accepts two kinds of non-canonical encoding: an unreduced y
// (y ≥ p) and the sign bit set on x = 0. The first is refused by a byte
// comparison before decoding. The second needs no check of its own: x = 0
// only for y = ±1, the identity (order 1) and (0, −1) (order 2), both of
// small order and refused below. This accepts exactly the encodings a
// re-encode-and-compare would, without the field inversion of an encode.
func decodeStrictPoint(b []byte) (*edwards25519.Point, bool) {
	if len(b) != 32 || !canonicalY(b) {
		return nil, false
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, false
	}
	if isSmallOrder(p) {
		return nil, false
	}
	return p, true
}

// canonicalY reports whether the y coordinate of encoding b (its low 255
// bits, little-endian) is below p = 2^255 − 19, i.e. fully reduced. The
// values ≥ p are p..2^255−1: top byte 0x7f (sign bit ignored), bytes 30..1
// all 0xff and byte 0 ≥ 0xed.
func canonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if b[i] != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}

// isSmallOrder reports whether [8]p is the identity, i.e. p lies in the
// torsion subgroup (orders 1, 2, 4 or 8).
func isSmallOrder(p *edwards25519.Point) bool {
	var q edwards25519.Point
	q.MultByCofactor(p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}
