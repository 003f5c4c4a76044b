package identity

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Known answers computed once and cross-checked with Python:
// cryptography's Ed25519 for the public key and
// hashlib.blake2s(pub, key=b'net-origin-v1' / b'net-node-id-v1').
var idKATs = []struct {
	name       string
	seed       [32]byte
	pub        string
	originHash uint64
	nodeID     uint64
}{
	{"32x0x01", fill32(0x01), "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", 0x673db0e87049ae61, 0x8edf34ef4ac5d453},
	{"0..31", counting32(), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", 0x782a3238801976bf, 0xbd826a5d0a6394f5},
}

func TestIdentityKnownAnswers(t *testing.T) {
	for _, k := range idKATs {
		kp, err := FromSeed(k.seed[:])
		require.NoError(t, err, k.name)
		id := kp.EntityID()
		assert.Equal(t, k.pub, hex.EncodeToString(id[:]), k.name)
		assert.Equal(t, k.originHash, kp.OriginHash(), k.name)
		assert.Equal(t, k.nodeID, kp.NodeID(), k.name)
		assert.Equal(t, k.originHash, OriginHashOf(id), k.name)
		assert.Equal(t, k.nodeID, NodeIDOf(id), k.name)

		ro := PublicOnly(id)
		assert.Equal(t, k.originHash, ro.OriginHash(), k.name)
		assert.Equal(t, k.nodeID, ro.NodeID(), k.name)
	}
}

func TestMac64IsFirstEightBytesLE(t *testing.T) {
	m := Mac([]byte("k"), []byte("msg"))
	assert.Equal(t, binary.LittleEndian.Uint64(m[:8]), Mac64([]byte("k"), []byte("msg")))
	// The label is the key: swapping key and message changes the answer.
	assert.NotEqual(t, Mac([]byte("k"), []byte("msg")), Mac([]byte("msg"), []byte("k")))
	id := EntityID(fill32(9))
	assert.NotEqual(t, OriginHashOf(id), NodeIDOf(id))
}

func TestFromSeedRejectsBadLength(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		_, err := FromSeed(make([]byte, n))
		assert.ErrorIs(t, err, ErrInvalidSeed, "%d bytes", n)
	}
}

func TestSignVerify(t *testing.T) {
	kp, err := Generate()
	require.NoError(t, err)
	other, err := Generate()
	require.NoError(t, err)
	require.NotEqual(t, kp.EntityID(), other.EntityID())

	msg := []byte("hello mesh")
	sig, err := kp.Sign(msg)
	require.NoError(t, err)
	assert.True(t, kp.Verify(msg, sig[:]))
	assert.True(t, PublicOnly(kp.EntityID()).Verify(msg, sig[:]), "a public-only keypair still verifies")
	assert.False(t, other.Verify(msg, sig[:]))
	assert.False(t, kp.Verify([]byte("hello mess"), sig[:]))

	seed, ok := kp.Seed()
	require.True(t, ok)
	again, err := FromSeed(seed[:])
	require.NoError(t, err)
	assert.Equal(t, kp.EntityID(), again.EntityID())
	sig2, err := again.Sign(msg)
	require.NoError(t, err)
	assert.Equal(t, sig, sig2, "ed25519 signatures are deterministic")
}

func TestPublicOnlyCannotSign(t *testing.T) {
	kp, err := FromSeed(make([]byte, 32))
	require.NoError(t, err)
	ro := PublicOnly(kp.EntityID())
	assert.True(t, ro.IsReadOnly())
	assert.False(t, kp.IsReadOnly())
	_, err = ro.Sign([]byte("x"))
	assert.ErrorIs(t, err, ErrReadOnly)
	_, ok := ro.Seed()
	assert.False(t, ok)
	assert.Equal(t, kp.EntityID(), ro.EntityID())
	assert.Equal(t, kp.OriginHash(), ro.OriginHash())
	assert.Equal(t, kp.NodeID(), ro.NodeID())
}
