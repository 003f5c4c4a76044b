package identity

import (
	"crypto/ed25519"
	"crypto/subtle"

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
	if _, ok := decodeStrictPoint(pub[:]); !ok {
		return false
	}
	if _, ok := decodeStrictPoint(sig[:32]); !ok {
		return false
	}
	if _, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:]); err != nil {
		return false
	}
	return ed25519.Verify(pub[:], msg, sig)
}

// decodeStrictPoint decodes a 32-byte Edwards point, refusing non-canonical
// encodings and points of small order. ok is false for anything refused.
func decodeStrictPoint(b []byte) (*edwards25519.Point, bool) {
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, false
	}
	// SetBytes accepts unreduced y and "negative zero" x; the canonical
	// encoding of the decoded point must reproduce the input byte for byte.
	if subtle.ConstantTimeCompare(p.Bytes(), b) != 1 {
		return nil, false
	}
	if isSmallOrder(p) {
		return nil, false
	}
	return p, true
}

// isSmallOrder reports whether [8]p is the identity, i.e. p lies in the
// torsion subgroup (orders 1, 2, 4 or 8).
func isSmallOrder(p *edwards25519.Point) bool {
	var q edwards25519.Point
	q.MultByCofactor(p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}
