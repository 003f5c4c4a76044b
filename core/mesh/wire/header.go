// Package wire holds the byte-exact codecs of the Net mesh 0.24 transport
// (FORMATS §8): the 68-byte packet header, the ChaCha20-Poly1305 packet seal
// with counter nonces, the 1024-wide replay window, event framing, the routing
// header and the small control payloads (NACK, stream-window grant, channel
// membership). It does no I/O and keeps no global state; every decoder takes
// untrusted bytes and answers with a typed error, never a panic.
package wire

import (
	"encoding/binary"
	"fmt"
)

// Sizes and limits of the transport packet.
const (
	HeaderSize = 68
	MaxPacket  = 8192
	TagSize    = 16
	// MaxPayload is the largest plaintext (= ciphertext) a packet can carry.
	MaxPayload = MaxPacket - HeaderSize - TagSize // 8108
	// MaxEvents caps event_count: every framed event needs a 4-byte prefix.
	MaxEvents = MaxPayload / 4 // 2027
	AADSize   = 56
	NonceSize = 12

	Magic   uint16 = 0x4E45
	Version uint8  = 1
)

// Header flags (byte 3).
const (
	FlagReliable  uint8 = 0x01
	FlagNack      uint8 = 0x02
	FlagPriority  uint8 = 0x04
	FlagFin       uint8 = 0x08
	FlagHandshake uint8 = 0x10
	FlagHeartbeat uint8 = 0x20
)

// Subprotocol ids known to 0.24.
const (
	SubEvents       uint16 = 0x0000
	SubCausal       uint16 = 0x0400
	SubSnapshot     uint16 = 0x0401
	SubMigration    uint16 = 0x0500
	SubMembership   uint16 = 0x0A00
	SubStreamWindow uint16 = 0x0B00
	SubCapability   uint16 = 0x0C00
)

// Header is the decoded 68-byte packet header. Magic and version are implied.
type Header struct {
	Flags, Priority, HopTTL, HopCount, FragFlags uint8
	Subprotocol, ChannelHint                     uint16
	Nonce                                        [NonceSize]byte
	SessionID, StreamID, Sequence, OriginHash    uint64
	SubnetID                                     uint32
	FragmentID, FragmentOffset                   uint16
	PayloadLen, EventCount                       uint16
}

// MarshalTo writes the header into b[:HeaderSize]; b must hold at least
// HeaderSize bytes (a shorter b is a programming error and panics like a slice
// index would).
func (h *Header) MarshalTo(b []byte) {
	_ = b[HeaderSize-1]
	le := binary.LittleEndian
	le.PutUint16(b[0:], Magic)
	b[2] = Version
	b[3] = h.Flags
	b[4] = h.Priority
	b[5] = h.HopTTL
	b[6] = h.HopCount
	b[7] = h.FragFlags
	le.PutUint16(b[8:], h.Subprotocol)
	le.PutUint16(b[10:], h.ChannelHint)
	copy(b[12:24], h.Nonce[:])
	le.PutUint64(b[24:], h.SessionID)
	le.PutUint64(b[32:], h.StreamID)
	le.PutUint64(b[40:], h.Sequence)
	le.PutUint64(b[48:], h.OriginHash)
	le.PutUint32(b[56:], h.SubnetID)
	le.PutUint16(b[60:], h.FragmentID)
	le.PutUint16(b[62:], h.FragmentOffset)
	le.PutUint16(b[64:], h.PayloadLen)
	le.PutUint16(b[66:], h.EventCount)
}

// Bytes returns the header's wire form.
func (h *Header) Bytes() [HeaderSize]byte {
	var b [HeaderSize]byte
	h.MarshalTo(b[:])
	return b
}

// ParseHeader decodes b[:HeaderSize] (extra bytes are the payload and ignored)
// and applies the receiver checks of FORMATS §8: magic, version, payload_len ≤
// MaxPayload, event_count ≤ MaxEvents.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, HeaderSize, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint16(b[0:]); m != Magic {
		return h, fmt.Errorf("%w: 0x%04x", ErrBadMagic, m)
	}
	if b[2] != Version {
		return h, fmt.Errorf("%w: %d", ErrBadVersion, b[2])
	}
	h.Flags = b[3]
	h.Priority = b[4]
	h.HopTTL = b[5]
	h.HopCount = b[6]
	h.FragFlags = b[7]
	h.Subprotocol = le.Uint16(b[8:])
	h.ChannelHint = le.Uint16(b[10:])
	copy(h.Nonce[:], b[12:24])
	h.SessionID = le.Uint64(b[24:])
	h.StreamID = le.Uint64(b[32:])
	h.Sequence = le.Uint64(b[40:])
	h.OriginHash = le.Uint64(b[48:])
	h.SubnetID = le.Uint32(b[56:])
	h.FragmentID = le.Uint16(b[60:])
	h.FragmentOffset = le.Uint16(b[62:])
	h.PayloadLen = le.Uint16(b[64:])
	h.EventCount = le.Uint16(b[66:])
	if h.PayloadLen > MaxPayload {
		return h, fmt.Errorf("%w: payload_len %d > %d", ErrTooLarge, h.PayloadLen, MaxPayload)
	}
	if h.EventCount > MaxEvents {
		return h, fmt.Errorf("%w: event_count %d > %d", ErrTooLarge, h.EventCount, MaxEvents)
	}
	return h, nil
}

// AAD returns the associated data the packet's tag covers: header bytes 0–11
// with hop_count (byte 6) zeroed, then bytes 24–67. The nonce is excluded and
// hop_count is zeroed so relays may bump it without breaking the tag.
func (h *Header) AAD() [AADSize]byte {
	var a [AADSize]byte
	h.aadInto(&a)
	return a
}

func (h *Header) aadInto(a *[AADSize]byte) {
	b := h.Bytes()
	aadFromWire(a, b[:])
}

// Counter returns the packet counter carried in the nonce's last 8 bytes.
func (h *Header) Counter() uint64 {
	return binary.LittleEndian.Uint64(h.Nonce[4:])
}

// PacketLen is the exact size of a sealed data packet with this header.
func (h *Header) PacketLen() int {
	return HeaderSize + int(h.PayloadLen) + TagSize
}
