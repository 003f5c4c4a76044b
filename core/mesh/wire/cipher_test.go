package wire

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

func testKey(b byte) [32]byte {
	var k [32]byte
	for i := range k {
		k[i] = b
	}
	return k
}

func TestNonceLayout(t *testing.T) {
	// vector nonce-layout
	sid := uint64(0x123456789abcdef0)
	tmpl := MakeNonce(sid, 0)
	assert.Equal(t, "0000000000000000", hex.EncodeToString(tmpl[4:12]))
	n := MakeNonce(sid, 0xcafebabedeadbeef)
	assert.Equal(t, tmpl[0:4], n[0:4])
	assert.Equal(t, "efbeaddebebafeca", hex.EncodeToString(n[4:12]))
	// prefix = low32 XOR high32 as u32 LE
	assert.Equal(t, uint32(0x9abcdef0^0x12345678), NoncePrefix(sid))
	assert.Equal(t, []byte{0x88, 0x88, 0x88, 0x88}, n[0:4])
}

func TestNoncePrefixHighBits(t *testing.T) {
	// vector nonce-prefix-high-bits
	assert.NotEqual(t, NoncePrefix(0x0000000112345678), NoncePrefix(0xffffffff12345678))
}

func TestSealOpenRoundTrip(t *testing.T) {
	c, err := NewCipher(testKey(0x55))
	require.NoError(t, err)
	for _, n := range []int{0, 1, 100, 1024, MaxPayload} {
		pt := bytes.Repeat([]byte{0xa5}, n)
		h := Header{Subprotocol: SubMembership, SessionID: 0x1122334455667788, StreamID: 3, Sequence: 9, EventCount: 1, HopCount: 0}
		pkt := c.Seal(nil, &h, 77, pt)
		require.Len(t, pkt, HeaderSize+n+TagSize)
		assert.Equal(t, uint16(n), h.PayloadLen)
		assert.Equal(t, MakeNonce(h.SessionID, 77), h.Nonce)
		got, out, err := c.Open(nil, pkt)
		require.NoError(t, err)
		assert.Equal(t, h, got)
		assert.Equal(t, uint64(77), got.Counter())
		assert.True(t, bytes.Equal(pt, out))
	}
}

func TestSealAppendsToDst(t *testing.T) {
	c, err := NewCipher(testKey(1))
	require.NoError(t, err)
	prefix := []byte("routing-prefix")
	h := Header{SessionID: 42}
	pkt := c.Seal(append([]byte(nil), prefix...), &h, 0, []byte("hello"))
	assert.Equal(t, prefix, pkt[:len(prefix)])
	_, out, err := c.Open([]byte("x"), pkt[len(prefix):])
	require.NoError(t, err)
	assert.Equal(t, "xhello", string(out))

	// Spare capacity is used without clobbering the prefix.
	dst := make([]byte, 3, 500)
	copy(dst, "abc")
	pkt = c.Seal(dst, &h, 1, []byte("hi"))
	assert.Equal(t, "abc", string(pkt[:3]))
	_, out, err = c.Open(nil, pkt[3:])
	require.NoError(t, err)
	assert.Equal(t, "hi", string(out))
}

func TestSealMatchesRawAEAD(t *testing.T) {
	// The packet is exactly header ‖ RFC 8439 seal(nonce, plaintext, AAD).
	key := testKey(0x55)
	c, err := NewCipher(key)
	require.NoError(t, err)
	h := Header{SessionID: 0x123456789abcdef0, Flags: FlagReliable, EventCount: 1}
	pt := []byte("payload bytes")
	pkt := c.Seal(nil, &h, 0xcafebabedeadbeef, pt)
	raw, err := chacha20poly1305.New(key[:])
	require.NoError(t, err)
	nonce := MakeNonce(h.SessionID, 0xcafebabedeadbeef)
	aad := h.AAD()
	want := raw.Seal(nil, nonce[:], pt, aad[:])
	hb := h.Bytes()
	assert.Equal(t, hb[:], pkt[:HeaderSize])
	assert.Equal(t, want, pkt[HeaderSize:])
}

func TestSealTooLarge(t *testing.T) {
	c, err := NewCipher(testKey(2))
	require.NoError(t, err)
	h := Header{SessionID: 1}
	assert.Nil(t, c.Seal(nil, &h, 0, make([]byte, MaxPayload+1)))
	assert.Equal(t, Header{SessionID: 1}, h)
}

func TestOpenTamperAnyByte(t *testing.T) {
	c, err := NewCipher(testKey(3))
	require.NoError(t, err)
	h := Header{SessionID: 0xabcdef, StreamID: 1, Sequence: 2, EventCount: 1, Flags: FlagReliable}
	pkt := c.Seal(nil, &h, 5, AppendEvents(nil, []byte("some event")))
	for i := range pkt {
		if i == 6 {
			continue // hop_count is relay-mutable and outside the AAD
		}
		for _, x := range []byte{0x01, 0x80, 0xff} {
			bad := append([]byte(nil), pkt...)
			bad[i] ^= x
			_, _, err := c.Open(nil, bad)
			assert.Error(t, err, "byte %d ^ %#x", i, x)
		}
	}
}

func TestOpenHopCountMutable(t *testing.T) {
	c, err := NewCipher(testKey(3))
	require.NoError(t, err)
	h := Header{SessionID: 9}
	pkt := c.Seal(nil, &h, 0, []byte("x"))
	pkt[6] = 5
	got, out, err := c.Open(nil, pkt)
	require.NoError(t, err)
	assert.Equal(t, uint8(5), got.HopCount)
	assert.Equal(t, "x", string(out))
}

func TestOpenNoncePrefixRebuilt(t *testing.T) {
	// The receiver rebuilds the prefix from session_id; the on-wire prefix
	// must agree with it.
	c, err := NewCipher(testKey(4))
	require.NoError(t, err)
	h := Header{SessionID: 0xffffffff00000001}
	pkt := c.Seal(nil, &h, 3, []byte("abc"))
	got, _, err := c.Open(nil, pkt)
	require.NoError(t, err)
	assert.Equal(t, MakeNonce(h.SessionID, 3), got.Nonce)
	for i := 12; i < 16; i++ {
		bad := append([]byte(nil), pkt...)
		bad[i] ^= 0x10
		_, _, err = c.Open(nil, bad)
		assert.ErrorIs(t, err, ErrAuth)
	}
}

func TestOpenErrors(t *testing.T) {
	c, err := NewCipher(testKey(5))
	require.NoError(t, err)
	other, err := NewCipher(testKey(6))
	require.NoError(t, err)
	h := Header{SessionID: 1}
	pkt := c.Seal(nil, &h, 0, []byte("hello world"))

	_, _, err = c.Open(nil, pkt[:10])
	assert.ErrorIs(t, err, ErrTruncated)
	_, _, err = c.Open(nil, pkt[:len(pkt)-1])
	assert.ErrorIs(t, err, ErrLength)
	_, _, err = c.Open(nil, append(append([]byte(nil), pkt...), 0))
	assert.ErrorIs(t, err, ErrLength)
	_, _, err = other.Open(nil, pkt)
	assert.ErrorIs(t, err, ErrAuth)
	bad := append([]byte(nil), pkt...)
	bad[0] = 0
	_, _, err = c.Open(nil, bad)
	assert.ErrorIs(t, err, ErrBadMagic)
	bad = append([]byte(nil), pkt...)
	bad[20] ^= 1 // counter
	_, _, err = c.Open(nil, bad)
	assert.ErrorIs(t, err, ErrAuth)
}

func TestHeartbeatShape(t *testing.T) {
	// A heartbeat is a sealed empty plaintext: header + tag only.
	c, err := NewCipher(testKey(7))
	require.NoError(t, err)
	h := Header{Flags: FlagHeartbeat, SessionID: 0x55}
	pkt := c.Seal(nil, &h, 12, nil)
	assert.Len(t, pkt, HeaderSize+TagSize)
	got, out, err := c.Open(nil, pkt)
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, FlagHeartbeat, got.Flags)
}
