package causal

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zeebo/xxh3"
)

// Known answers below were computed once with this package and checked
// independently with Python (xxhash 4.1.0 xxh3_64 seed 0, struct packing).
var (
	katLink     = Link{Origin: 0x0123456789abcdef, Horizon: 0x1122334455667788, Sequence: 42, Parent: 0xdeadbeefcafebabe}
	katLinkHex  = "efcdab896745230188776655443322112a00000000000000bebafecaefbeadde"
	katLinkHash = uint64(0xf5115f31be88b623) // ParentHash(katLink, "hello")
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// Vector causal-link-size.
func TestLinkSize(t *testing.T) {
	assert.Equal(t, 32, LinkSize)
	b := katLink.Bytes()
	assert.Len(t, b[:], 32)
}

func TestLinkKnownAnswer(t *testing.T) {
	b := katLink.Bytes()
	assert.Equal(t, katLinkHex, hex.EncodeToString(b[:]))
	assert.Equal(t, mustHex(t, "ff"+katLinkHex), katLink.AppendTo([]byte{0xff}))

	got, err := ParseLink(mustHex(t, katLinkHex))
	require.NoError(t, err)
	assert.Equal(t, katLink, got)
}

func TestParseLinkRejectsWrongLength(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 64} {
		_, err := ParseLink(make([]byte, n))
		assert.ErrorIs(t, err, ErrMalformed, "len %d", n)
	}
}

// Vector causal-genesis.
func TestGenesis(t *testing.T) {
	g := Genesis(0xabcd)
	assert.Equal(t, Link{Origin: 0xabcd}, g)
	assert.Equal(t, uint64(0), g.Horizon)
	assert.Equal(t, uint64(0), g.Sequence)
	assert.Equal(t, uint64(0), g.Parent)
	assert.True(t, g.IsGenesis())
	assert.False(t, katLink.IsGenesis())
}

func TestParentHashKnownAnswers(t *testing.T) {
	assert.Equal(t, katLinkHash, ParentHash(katLink, []byte("hello")))
	assert.Equal(t, uint64(0x83481f3fc4c5ca7b), ParentHash(Genesis(0xabcd), nil))
	assert.Equal(t, ParentHash(Genesis(0xabcd), nil), ParentHash(Genesis(0xabcd), []byte{}))
}

// Vector parent-hash-definition: parent_hash = one-shot XXH3-64(link ‖ payload)
// for the upstream payload sizes, with the digests frozen (Python-checked).
func TestParentHashDefinition(t *testing.T) {
	head := Link{Origin: 0xdeadbeef, Horizon: 42}
	want := map[int]uint64{
		0: 0x75f558efecf82a99, 1: 0x3f44ea7e9f8b99fd, 31: 0x507393bb66a68b89,
		32: 0x42b6f55d0c88ff36, 33: 0x824f567a2a9d54df, 63: 0xdfbd7f90a4f992bf,
		64: 0x686367142831c369, 65: 0x7e34853e98a3ffe1, 1024: 0x7c2bb8e64cf13113,
		8192: 0x1f2481f378ade1b5,
	}
	for n, h := range want {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 31)
		}
		lb := head.Bytes()
		assert.Equal(t, xxh3.Hash(append(lb[:], p...)), ParentHash(head, p), "size %d", n)
		assert.Equal(t, h, ParentHash(head, p), "size %d", n)
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add(mustHex(f, katLinkHex))
	f.Add(make([]byte, LinkSize))
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 33))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLink(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.NotEqual(t, LinkSize, len(b))
			return
		}
		enc := l.Bytes()
		require.True(t, bytes.Equal(b, enc[:]))
	})
}
