package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// handlePacket processes one datagram on the reader goroutine. b and scratch
// are reused by the caller after it returns: everything kept is copied. Every
// datagram ends in exactly one counter (see NodeStats).
func (n *Node) handlePacket(b []byte, from net.Addr, scratch []byte) {
	if len(b) > wire.RoutingHeaderSize+wire.MaxPacket {
		n.ctr.dropMalformed.Add(1)
		return
	}
	if wire.IsRouted(b) {
		n.handleRouted(b, from)
		return
	}
	if len(b) < 2 || binary.LittleEndian.Uint16(b) != wire.Magic {
		n.ctr.dropBadMagic.Add(1)
		return
	}
	h, err := wire.ParseHeader(b)
	if err != nil {
		if errors.Is(err, wire.ErrBadMagic) {
			n.ctr.dropBadMagic.Add(1)
		} else {
			n.ctr.dropMalformed.Add(1)
		}
		return
	}
	if h.Flags&wire.FlagHandshake != 0 {
		// The direct (unrouted) handshake form is not accepted by a running node.
		n.ctr.handshakesReceived.Add(1)
		n.ctr.dropHandshake.Add(1)
		return
	}
	if len(b) != h.PacketLen() {
		n.ctr.dropMalformed.Add(1)
		return
	}
	n.mu.Lock()
	s := n.sessions[h.SessionID]
	n.mu.Unlock()
	if s == nil {
		n.ctr.dropUnknownSes.Add(1)
		return
	}
	h, pt, err := s.rx.Open(scratch[:0], b)
	if err != nil {
		if errors.Is(err, wire.ErrAuth) {
			n.ctr.dropAuth.Add(1)
		} else {
			n.ctr.dropMalformed.Add(1)
		}
		return
	}
	s.rxMu.Lock()
	fresh := s.replay.Accept(h.Counter())
	s.rxMu.Unlock()
	if !fresh {
		n.ctr.dropReplay.Add(1)
		return
	}
	n.ctr.packetsReceived.Add(1)
	n.ctr.bytesReceived.Add(uint64(len(b)))
	s.lastRecv.Store(time.Now().UnixNano())
	if h.Flags&wire.FlagHeartbeat != 0 {
		n.ctr.heartbeatsReceived.Add(1)
		return
	}
	events, err := wire.ParseEvents(pt, int(h.EventCount))
	if err != nil {
		n.ctr.dropMalformed.Add(1)
		return
	}
	if h.Subprotocol == SubHello {
		n.onHello(s, events)
		return
	}
	if !s.established.Load() {
		n.ctr.dropUnestablished.Add(1)
		return
	}
	switch {
	case h.Subprotocol == SubAck:
		for _, ev := range events {
			if !s.onAck(ev) {
				n.ctr.dropMalformed.Add(1)
			}
		}
	case h.Flags&wire.FlagReliable != 0:
		if len(events) != 1 || h.StreamID != uint64(h.Subprotocol) {
			n.ctr.dropMalformed.Add(1)
			return
		}
		s.onReliable(h.Subprotocol, h.ChannelHint, h.StreamID, h.Sequence, events[0])
	default:
		for _, ev := range events {
			t := task{from: s.peerID, sub: h.Subprotocol, hint: h.ChannelHint, payload: append([]byte(nil), ev...)}
			if !n.disp.push(t) {
				n.ctr.dropQueueFull.Add(1)
			}
		}
	}
}
