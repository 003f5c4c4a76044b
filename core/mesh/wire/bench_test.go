package wire

import (
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkSealOpen1K seals and opens one 1 KiB payload per iteration through
// Cipher (header build, AAD, nonce, length checks included).
func BenchmarkSealOpen1K(b *testing.B) {
	c, err := NewCipher(testKey(0x42))
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 1024)
	pkt := make([]byte, 0, HeaderSize+len(pt)+TagSize)
	out := make([]byte, 0, len(pt))
	h := Header{SessionID: 0x1234567890abcdef, StreamID: 1, EventCount: 1}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt = c.Seal(pkt[:0], &h, uint64(i), pt)
		_, res, err := c.Open(out[:0], pkt)
		if err != nil || len(res) != len(pt) {
			b.Fatal("open failed", err)
		}
	}
}

// BenchmarkSealOpen1KFloor is the floor: raw ChaCha20-Poly1305 Seal+Open of the
// same 1 KiB with a 56-byte AAD and a 12-byte nonce.
func BenchmarkSealOpen1KFloor(b *testing.B) {
	key := testKey(0x42)
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 1024)
	aad := make([]byte, AADSize)
	nonce := make([]byte, NonceSize)
	ct := make([]byte, 0, len(pt)+TagSize)
	out := make([]byte, 0, len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		nonce[4] = byte(i)
		ct = a.Seal(ct[:0], nonce, pt, aad)
		res, err := a.Open(out[:0], nonce, ct, aad)
		if err != nil || len(res) != len(pt) {
			b.Fatal("open failed", err)
		}
	}
}
