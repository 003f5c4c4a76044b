package mesh

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// Private subprotocol ids. They sit in 0xFE00–0xFEFF, far from every id Net
// assigns (FORMATS §8), so a 0.24 peer treats them as unknown and ignores them.
const (
	// SubHello carries the post-handshake identity exchange (see handshake.go).
	SubHello uint16 = 0xFE00
	// SubAck carries cumulative acknowledgements of reliable streams: each event
	// is [stream_id u64 LE][next u64 LE], meaning every sequence below next on
	// that stream has been delivered. Acks are themselves unreliable; a lost ack
	// is repaired by the next retransmission, which is re-acknowledged.
	SubAck uint16 = 0xFE01
)

// relWindow is how many unacknowledged messages a reliable stream may have in
// flight, and how far ahead of the next expected sequence a receiver buffers.
// It bounds reliable memory to relWindow × 8 KiB per stream and direction.
const relWindow = 512

// ackSize is the size of one SubAck event.
const ackSize = 16

// isReliable reports whether a subprotocol is control traffic that the node
// delivers reliably.
func isReliable(id uint16) bool { return id == wire.SubMigration || id == wire.SubMembership }

// outMsg is one unacknowledged reliable message.
type outMsg struct {
	seq     uint64
	sub     uint16
	payload []byte
	due     time.Time
	rto     time.Duration
}

// sendStream is a stream's send side: the next sequence and, for reliable
// streams, the unacked messages in ascending sequence order.
type sendStream struct {
	next uint64
	out  []*outMsg
}

// recvStream is a reliable stream's receive side: everything below next has
// been handed to the dispatcher; buf holds messages in (next, next+relWindow).
type recvStream struct {
	next uint64
	buf  map[uint64][]byte
}

func (s *session) sendStreamLocked(id uint64) *sendStream {
	st := s.send[id]
	if st == nil {
		st = &sendStream{}
		s.send[id] = st
	}
	return st
}

// sendUnreliable sends payload as one event on stream id = sub.
func (s *session) sendUnreliable(sub, hint uint16, payload []byte) error {
	s.relMu.Lock()
	st := s.sendStreamLocked(uint64(sub))
	seq := st.next
	st.next++
	s.relMu.Unlock()
	return s.sendPacket(wire.Header{Subprotocol: sub, ChannelHint: hint, StreamID: uint64(sub), Sequence: seq}, payload)
}

// sendReliable queues payload for acknowledged delivery and sends it once.
// It waits while relWindow messages are unacked; it fails when the session
// dies, the node closes or ctx ends. The payload is copied.
func (s *session) sendReliable(ctx context.Context, sub uint16, payload []byte) error {
	for {
		s.relMu.Lock()
		if s.dead.Load() {
			s.relMu.Unlock()
			return &PeerUnavailableError{Peer: s.peerID}
		}
		st := s.sendStreamLocked(uint64(sub))
		if len(st.out) < relWindow {
			rto := s.n.cfg.RetransmitInterval
			m := &outMsg{seq: st.next, sub: sub, payload: append([]byte(nil), payload...), rto: rto, due: time.Now().Add(rto)}
			st.next++
			st.out = append(st.out, m)
			s.relMu.Unlock()
			// A lost first copy is repaired by the retransmission timer.
			_ = s.sendPacket(wire.Header{Flags: wire.FlagReliable, Subprotocol: sub, StreamID: uint64(sub), Sequence: m.seq}, m.payload)
			return nil
		}
		ch := s.changed
		s.relMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.n.ctx.Done():
			return ErrClosed
		}
	}
}

// retransmit resends every reliable message whose timeout expired, doubling
// its timeout up to 8× RetransmitInterval. Called by the timer goroutine.
func (s *session) retransmit(now time.Time) {
	var due []*outMsg
	s.relMu.Lock()
	maxRTO := 8 * s.n.cfg.RetransmitInterval
	for _, st := range s.send {
		for _, m := range st.out {
			if now.Before(m.due) {
				continue
			}
			if m.rto *= 2; m.rto > maxRTO {
				m.rto = maxRTO
			}
			m.due = now.Add(m.rto)
			due = append(due, &outMsg{seq: m.seq, sub: m.sub, payload: m.payload})
		}
	}
	s.relMu.Unlock()
	for _, m := range due {
		s.n.ctr.retransmits.Add(1)
		_ = s.sendPacket(wire.Header{Flags: wire.FlagReliable, Subprotocol: m.sub, StreamID: uint64(m.sub), Sequence: m.seq}, m.payload)
	}
}

// onAck applies a cumulative acknowledgement.
func (s *session) onAck(ev []byte) bool {
	if len(ev) != ackSize {
		return false
	}
	stream := binary.LittleEndian.Uint64(ev)
	next := binary.LittleEndian.Uint64(ev[8:])
	s.relMu.Lock()
	defer s.relMu.Unlock()
	st := s.send[stream]
	if st == nil {
		return true
	}
	k := 0
	for k < len(st.out) && st.out[k].seq < next {
		st.out[k] = nil
		k++
	}
	if k > 0 {
		st.out = append(st.out[:0], st.out[k:]...)
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return true
}

// onReliable handles a reliable message on the reader goroutine: it is
// buffered, delivered in order exactly once per session, and acknowledged
// cumulatively. A message is acknowledged only once it is in the dispatch
// queue, so a full queue turns into retransmissions, not loss.
func (s *session) onReliable(sub, hint uint16, stream, seq uint64, payload []byte) {
	s.relMu.Lock()
	rs := s.recv[stream]
	if rs == nil {
		rs = &recvStream{buf: make(map[uint64][]byte)}
		s.recv[stream] = rs
	}
	switch {
	case seq < rs.next:
		s.n.ctr.duplicates.Add(1)
	case seq-rs.next >= relWindow:
		s.relMu.Unlock()
		s.n.ctr.dropWindow.Add(1)
		return
	default:
		if _, dup := rs.buf[seq]; dup {
			s.n.ctr.duplicates.Add(1)
		} else {
			rs.buf[seq] = append([]byte(nil), payload...)
		}
		for {
			p, ok := rs.buf[rs.next]
			if !ok || !s.n.disp.push(task{from: s.peerID, sub: sub, hint: hint, payload: p}) {
				break
			}
			delete(rs.buf, rs.next)
			rs.next++
		}
	}
	next := rs.next
	s.relMu.Unlock()
	if next == 0 {
		return
	}
	var ack [ackSize]byte
	binary.LittleEndian.PutUint64(ack[:], stream)
	binary.LittleEndian.PutUint64(ack[8:], next)
	_ = s.sendUnreliable(SubAck, 0, ack[:])
}

// SendSubprotocol sends payload to node `to` on subprotocol id as one framed
// event. Migration (0x0500) and membership (0x0A00) are reliable: the call
// returns once the message is queued and sent once; the timer goroutine
// retransmits it until acknowledged or the session dies (then it is counted
// in ReliableAbandoned). It blocks only while 512 messages on that stream are
// unacknowledged. An unknown peer yields a *PeerUnavailableError.
func (n *Node) SendSubprotocol(ctx context.Context, to uint64, id uint16, payload []byte) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if len(payload) > maxMessage {
		return ErrPayloadTooLarge
	}
	s := n.sessionFor(to)
	if s == nil {
		return &PeerUnavailableError{Peer: to}
	}
	if isReliable(id) {
		return s.sendReliable(ctx, id, payload)
	}
	return s.sendUnreliable(id, 0, payload)
}

// sessionFor returns the established session with node, or nil.
func (n *Node) sessionFor(node uint64) *session {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[node]; p != nil {
		return p.sess
	}
	return nil
}

// SetSubprotocolHandler installs h for subprotocol id (nil removes it). h
// runs on the node's dispatch goroutine — never on the socket reader or the
// timers — with the sender's node id and a payload it owns; it must not block
// for long, since it delays every later message. Membership (0x0A00) and the
// private ids 0xFE00–0xFE01 are handled by the node and never reach a
// handler; 0x0000 events that are not channel messages (see channel.go) do.
func (n *Node) SetSubprotocolHandler(id uint16, h func(from uint64, payload []byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h == nil {
		delete(n.handlers, id)
		return
	}
	n.handlers[id] = h
}

// deliverMessage runs on the dispatch goroutine.
func (n *Node) deliverMessage(from uint64, sub, hint uint16, payload []byte) {
	switch sub {
	case wire.SubMembership:
		n.onMembership(from, payload)
		return
	case wire.SubEvents:
		if n.onChannelEvent(from, hint, payload) {
			return
		}
	}
	n.mu.Lock()
	h := n.handlers[sub]
	n.mu.Unlock()
	if h != nil {
		h(from, payload)
		return
	}
	if sub == wire.SubMigration {
		// No compute runtime: refuse snapshot traffic so the orchestrator fails fast.
		kind, origin, ok := wire.MigrationOrigin(payload)
		if ok && (kind == wire.MigrationTakeSnapshot || kind == wire.MigrationSnapshotReady) {
			_ = n.SendSubprotocol(n.ctx, from, wire.SubMigration, wire.MigrationComputeNotSupported(origin))
		}
	}
}
