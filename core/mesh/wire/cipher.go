package wire

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// NoncePrefix is the 4-byte session prefix of every nonce: the low and high
// halves of session_id XORed, so both halves of the id matter.
func NoncePrefix(sessionID uint64) uint32 {
	return uint32(sessionID) ^ uint32(sessionID>>32)
}

// MakeNonce builds prefix(session_id) LE ‖ counter LE.
func MakeNonce(sessionID, counter uint64) [NonceSize]byte {
	var n [NonceSize]byte
	binary.LittleEndian.PutUint32(n[0:], NoncePrefix(sessionID))
	binary.LittleEndian.PutUint64(n[4:], counter)
	return n
}

// Cipher seals and opens transport packets with one ChaCha20-Poly1305 key
// (one per session and direction). It holds no mutable state and is safe for
// concurrent use; counter allocation and replay checks belong to the caller.
type Cipher struct {
	aead cipher.AEAD
}

// scratch holds the nonce and AAD handed to the AEAD. Slices passed through
// the cipher.AEAD interface escape, so they come from a pool instead of the
// stack to keep Seal and Open allocation-free.
type scratch struct {
	nonce [NonceSize]byte
	aad   [AADSize]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// NewCipher builds a Cipher for a 32-byte key.
func NewCipher(key [32]byte) (*Cipher, error) {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("wire: new cipher: %w", err)
	}
	return &Cipher{aead: a}, nil
}

// Seal sets h.Nonce from (h.SessionID, counter) and h.PayloadLen from the
// plaintext, then appends header ‖ ciphertext ‖ tag to dst and returns it.
// A plaintext longer than MaxPayload cannot be sent: Seal then returns nil and
// leaves h untouched. dst's spare capacity must not overlap plaintext.
// The caller must never reuse a counter under one key.
func (c *Cipher) Seal(dst []byte, h *Header, counter uint64, plaintext []byte) []byte {
	if len(plaintext) > MaxPayload {
		return nil
	}
	h.Nonce = MakeNonce(h.SessionID, counter)
	h.PayloadLen = uint16(len(plaintext))
	out := grow(dst, HeaderSize+len(plaintext)+TagSize)
	start := len(dst)
	hb := out[start : start+HeaderSize]
	h.MarshalTo(hb)
	s := scratchPool.Get().(*scratch)
	s.nonce = h.Nonce
	aadFromWire(&s.aad, hb)
	out = c.aead.Seal(out[:start+HeaderSize], s.nonce[:], plaintext, s.aad[:])
	scratchPool.Put(s)
	return out
}

// aadFromWire builds the AAD from a marshalled header.
func aadFromWire(a *[AADSize]byte, hb []byte) {
	copy(a[0:12], hb[0:12])
	a[6] = 0
	copy(a[12:], hb[24:HeaderSize])
}

// grow returns b with room for n more bytes (length unchanged).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, len(b)+n)
	copy(nb, b)
	return nb
}

// Open checks a sealed data packet and appends its plaintext to dst. It
// validates the header (ParseHeader), requires len(packet) == 68 + payload_len
// + 16, rebuilds the nonce prefix from session_id and authenticates with the
// counter from the header. The prefix bytes on the wire are outside the AAD, so
// they are compared with the rebuilt prefix: a mismatch (which no conforming
// sender produces) fails with ErrAuth, leaving hop_count as the only header
// byte a relay may change. Replay checking is left to the
// caller: pass h.Counter() to the session's ReplayWindow only after Open
// succeeds, so forged packets cannot move the window.
func (c *Cipher) Open(dst []byte, packet []byte) (Header, []byte, error) {
	h, err := ParseHeader(packet)
	if err != nil {
		return h, dst, err
	}
	if len(packet) != h.PacketLen() {
		return h, dst, fmt.Errorf("%w: packet %d bytes, header says %d", ErrLength, len(packet), h.PacketLen())
	}
	nonce := MakeNonce(h.SessionID, h.Counter())
	if nonce != h.Nonce {
		return h, dst, fmt.Errorf("%w: nonce prefix does not match session", ErrAuth)
	}
	s := scratchPool.Get().(*scratch)
	s.nonce = nonce
	aadFromWire(&s.aad, packet)
	out, err := c.aead.Open(dst, s.nonce[:], packet[HeaderSize:], s.aad[:])
	scratchPool.Put(s)
	if err != nil {
		return h, dst, ErrAuth
	}
	return h, out, nil
}
