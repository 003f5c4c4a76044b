package mesh

import (
	"crypto/rand"
	"testing"

	"github.com/flynn/noise"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPresetEphemeralUsedOnce(t *testing.T) {
	k, err := noise.DH25519.GenerateKeypair(rand.Reader)
	require.NoError(t, err)
	src := &presetKey{key: k}
	got, err := presetDH{noise.DH25519}.GenerateKeypair(src)
	require.NoError(t, err)
	assert.Equal(t, k, got)
	// A second draw from the same source generates a fresh, consistent key.
	again, err := presetDH{noise.DH25519}.GenerateKeypair(src)
	require.NoError(t, err)
	assert.NotEqual(t, k.Private, again.Private)
	pub, err := noise.DH25519.DH(again.Private, []byte{9, 31: 0})
	require.NoError(t, err)
	assert.Equal(t, again.Public, pub)
}

func TestEphemeralPoolHandsOutDistinctKeys(t *testing.T) {
	n := newNode(t, fastCfg())
	seen := map[string]bool{}
	for i := 0; i < 2*ephemeralPoolSize+1; i++ {
		k, err := cipherSuite.GenerateKeypair(n.ephemeral())
		require.NoError(t, err)
		require.False(t, seen[string(k.Private)], "ephemeral key reused")
		seen[string(k.Private)] = true
	}
}
