package mesh

import "sync/atomic"

// NodeStats is a snapshot of a node's counters. Every packet the node reads is
// either counted in PacketsReceived (authenticated, accepted) or in exactly one
// Dropped* counter, or it is a handshake packet (HandshakesReceived).
type NodeStats struct {
	PacketsSent     uint64 // datagrams written (data, heartbeats, handshakes, acks)
	PacketsReceived uint64 // authenticated, replay-checked data packets
	BytesSent       uint64
	BytesReceived   uint64

	HandshakesReceived   uint64 // handshake datagrams read
	HandshakesCompleted  uint64 // sessions established (either role)
	HeartbeatsSent       uint64
	HeartbeatsReceived   uint64
	Retransmits          uint64 // reliable messages sent again
	DuplicatesSuppressed uint64 // reliable messages received again and not delivered
	ReliableAbandoned    uint64 // unacked reliable messages lost with their session

	DroppedMalformed      uint64 // bad header, bad length, bad framing, oversize
	DroppedBadMagic       uint64 // foreign datagrams (neither packet nor routing magic)
	DroppedAuth           uint64 // AEAD failure: tampered, wrong key
	DroppedReplay         uint64 // counter replayed or outside the window
	DroppedUnknownSession uint64 // session_id not known
	DroppedHandshake      uint64 // bad, unsolicited or unadmitted handshake packets
	DroppedUnestablished  uint64 // data on a session whose identity exchange is unfinished
	DroppedQueueFull      uint64 // dispatch queue full (unreliable traffic only)
	DroppedUnsubscribed   uint64 // channel message for a channel we are not subscribed to
	DroppedWindow         uint64 // reliable message beyond the receive window
}

type counters struct {
	packetsSent, packetsReceived, bytesSent, bytesReceived            atomic.Uint64
	handshakesReceived, handshakesCompleted                           atomic.Uint64
	heartbeatsSent, heartbeatsReceived                                atomic.Uint64
	retransmits, duplicates, abandoned                                atomic.Uint64
	dropMalformed, dropBadMagic, dropAuth, dropReplay, dropUnknownSes atomic.Uint64
	dropHandshake, dropUnestablished, dropQueueFull, dropUnsubscribed atomic.Uint64
	dropWindow                                                        atomic.Uint64
}

// Stats returns the current counters.
func (n *Node) Stats() NodeStats {
	c := &n.ctr
	return NodeStats{
		PacketsSent:           c.packetsSent.Load(),
		PacketsReceived:       c.packetsReceived.Load(),
		BytesSent:             c.bytesSent.Load(),
		BytesReceived:         c.bytesReceived.Load(),
		HandshakesReceived:    c.handshakesReceived.Load(),
		HandshakesCompleted:   c.handshakesCompleted.Load(),
		HeartbeatsSent:        c.heartbeatsSent.Load(),
		HeartbeatsReceived:    c.heartbeatsReceived.Load(),
		Retransmits:           c.retransmits.Load(),
		DuplicatesSuppressed:  c.duplicates.Load(),
		ReliableAbandoned:     c.abandoned.Load(),
		DroppedMalformed:      c.dropMalformed.Load(),
		DroppedBadMagic:       c.dropBadMagic.Load(),
		DroppedAuth:           c.dropAuth.Load(),
		DroppedReplay:         c.dropReplay.Load(),
		DroppedUnknownSession: c.dropUnknownSes.Load(),
		DroppedHandshake:      c.dropHandshake.Load(),
		DroppedUnestablished:  c.dropUnestablished.Load(),
		DroppedQueueFull:      c.dropQueueFull.Load(),
		DroppedUnsubscribed:   c.dropUnsubscribed.Load(),
		DroppedWindow:         c.dropWindow.Load(),
	}
}
