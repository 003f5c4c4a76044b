package identity

import "crypto/ed25519"

// VerifyStrict verifies an ed25519 signature the way ed25519-dalek's
// verify_strict does: small-order public keys and R points and non-canonical
// encodings are rejected.
// TODO(identity helper): add the small-order / canonical checks.
func VerifyStrict(pub EntityID, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub[:], msg, sig)
}
