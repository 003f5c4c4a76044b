package wire

import (
	"encoding/binary"
	"fmt"
)

// Routing header constants (FORMATS §8, routed handshake form).
const (
	RoutingHeaderSize        = 18
	RoutingMagic      uint16 = 0x5452 // bytes 52 54
	// HandshakeRouteTTL is the ttl a node puts on routed handshake packets.
	HandshakeRouteTTL uint8 = 16
)

// RoutingHeader precedes a routed packet: magic · ttl · hop_count · flags ·
// reserved (0) · src_id u32 · dest_id u64.
type RoutingHeader struct {
	TTL, HopCount, Flags uint8
	SrcID                uint32
	DestID               uint64
}

// MarshalTo writes the header into b[:RoutingHeaderSize] (b must be that long).
func (r *RoutingHeader) MarshalTo(b []byte) {
	_ = b[RoutingHeaderSize-1]
	le := binary.LittleEndian
	le.PutUint16(b[0:], RoutingMagic)
	b[2] = r.TTL
	b[3] = r.HopCount
	b[4] = r.Flags
	b[5] = 0
	le.PutUint32(b[6:], r.SrcID)
	le.PutUint64(b[10:], r.DestID)
}

// Marshal returns the 18-byte wire form in a fresh slice.
func (r *RoutingHeader) Marshal() []byte {
	b := make([]byte, RoutingHeaderSize)
	r.MarshalTo(b)
	return b
}

// ParseRoutingHeader decodes b[:RoutingHeaderSize]; what follows is the inner
// packet. The reserved byte is not checked.
func ParseRoutingHeader(b []byte) (RoutingHeader, error) {
	var r RoutingHeader
	if len(b) < RoutingHeaderSize {
		return r, fmt.Errorf("%w: routing header needs %d bytes, have %d", ErrTruncated, RoutingHeaderSize, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint16(b); m != RoutingMagic {
		return r, fmt.Errorf("%w: routing 0x%04x", ErrBadMagic, m)
	}
	r.TTL = b[2]
	r.HopCount = b[3]
	r.Flags = b[4]
	r.SrcID = le.Uint32(b[6:])
	r.DestID = le.Uint64(b[10:])
	return r, nil
}

// IsRouted reports whether b starts with the routing magic (a bare packet
// starts with 45 4E instead).
func IsRouted(b []byte) bool {
	return len(b) >= 2 && binary.LittleEndian.Uint16(b) == RoutingMagic
}

// Forward accounts for one relay hop: it fails (changing nothing) once ttl is
// 0, otherwise decrements ttl and increments hop_count (saturating at 255).
func (r *RoutingHeader) Forward() bool {
	if r.TTL == 0 {
		return false
	}
	r.TTL--
	if r.HopCount < 0xFF {
		r.HopCount++
	}
	return true
}
