package mesh

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
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

// Acknowledgements are coalesced. A receiver acknowledges a stream at once
// when ackEvery messages were delivered since its last ack, or when a
// duplicate shows the sender is retransmitting; otherwise the ack waits at
// most ackDelay (capped at RetransmitInterval/4, so it always lands well
// before the sender's retransmission timer). Nothing waits for an ack to make
// progress, so the wait delays no delivery: it only keeps acks — a datagram,
// a write and a wake-up of the other node's reader each — out of short
// request/answer exchanges such as a migration, where every message would
// otherwise cost two datagrams, and cuts bulk transfers to one ack per
// ackEvery messages. The window (relWindow) is far above ackEvery, so a bulk
// sender never waits for a delayed ack.
const (
	ackEvery = 32
	ackDelay = 2 * time.Millisecond
)

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
// been handed to the dispatcher or an inline handler; buf holds messages in
// (next, next+relWindow); acked is the next value most recently acknowledged
// (acked < next: an ack is owed and scheduled). queued counts the stream's
// messages in the dispatch queue or being handled there: a message goes to an
// inline handler only while it is 0, so it never overtakes an earlier one.
type recvStream struct {
	next   uint64
	acked  uint64
	buf    map[uint64][]byte
	queued atomic.Int64
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
// cumulatively (coalesced, see ackEvery). A message is acknowledged only once
// it is in the dispatch queue or was handed to an inline handler (see
// SetHandlerInline), so a full queue turns into retransmissions, not loss.
func (s *session) onReliable(sub, hint uint16, stream, seq uint64, payload []byte) {
	h := s.n.inlineHandler(sub)
	if h != nil {
		// Inline calls happen after relMu is released (a handler may send);
		// inMu keeps them in order should two goroutines get here at once.
		s.inMu.Lock()
		defer s.inMu.Unlock()
	}
	var inline [][]byte
	s.relMu.Lock()
	rs := s.recv[stream]
	if rs == nil {
		rs = &recvStream{buf: make(map[uint64][]byte)}
		s.recv[stream] = rs
	}
	dup := false
	switch {
	case seq < rs.next:
		s.n.ctr.duplicates.Add(1)
		dup = true
	case seq-rs.next >= relWindow:
		s.relMu.Unlock()
		s.n.ctr.dropWindow.Add(1)
		return
	default:
		if _, seen := rs.buf[seq]; seen {
			s.n.ctr.duplicates.Add(1)
			dup = true
		} else {
			rs.buf[seq] = append([]byte(nil), payload...)
		}
		for {
			p, ok := rs.buf[rs.next]
			if !ok {
				break
			}
			if h != nil && rs.queued.Load() == 0 {
				inline = append(inline, p)
			} else {
				rs.queued.Add(1)
				if !s.n.disp.push(task{from: s.peerID, sub: sub, hint: hint, payload: p, queued: &rs.queued}) {
					rs.queued.Add(-1)
					break
				}
			}
			delete(rs.buf, rs.next)
			rs.next++
		}
	}
	next := rs.next
	now := next > 0 && (dup || next-rs.acked >= ackEvery)
	later := !now && next > rs.acked
	if now {
		rs.acked = next
	}
	s.relMu.Unlock()
	for _, p := range inline {
		s.n.callInline(h, s.peerID, sub, p)
	}
	switch {
	case now:
		s.sendAck(stream, next)
	case later:
		s.n.owesAck(s)
	}
}

func (s *session) sendAck(stream, next uint64) {
	var ack [ackSize]byte
	binary.LittleEndian.PutUint64(ack[:], stream)
	binary.LittleEndian.PutUint64(ack[8:], next)
	_ = s.sendUnreliable(SubAck, 0, ack[:])
}

// flushAcks acknowledges every stream of s with deliveries not yet acked.
func (s *session) flushAcks() {
	type owed struct{ stream, next uint64 }
	var acks []owed
	s.relMu.Lock()
	for id, rs := range s.recv {
		if rs.next > rs.acked {
			rs.acked = rs.next
			acks = append(acks, owed{id, rs.next})
		}
	}
	s.relMu.Unlock()
	for _, a := range acks {
		s.sendAck(a.stream, a.next)
	}
}

// owesAck schedules s's pending acks: one timer per node flushes every
// session that owes one, n.ackDelay after the first.
func (n *Node) owesAck(s *session) {
	n.ackMu.Lock()
	defer n.ackMu.Unlock()
	if n.closed.Load() || slices.Contains(n.ackOwed, s) {
		return
	}
	n.ackOwed = append(n.ackOwed, s)
	if n.ackTimer == nil {
		n.ackTimer = time.AfterFunc(n.ackDelay, n.flushAcks)
	} else if len(n.ackOwed) == 1 {
		// Empty until now: the timer has fired (or is firing); arm it again.
		n.ackTimer.Reset(n.ackDelay)
	}
}

// flushAcks runs on the ack timer's goroutine. It runs no user code but the
// logger (on a write error); a panic there must not end the process.
func (n *Node) flushAcks() {
	defer func() {
		if r := recover(); r != nil {
			func() {
				defer func() { _ = recover() }()
				n.logf(LogError, "mesh: ack flush panicked", map[string]any{"panic": fmt.Sprint(r)})
			}()
		}
	}()
	n.ackMu.Lock()
	owed := n.ackOwed
	n.ackOwed = nil
	n.ackMu.Unlock()
	for _, s := range owed {
		if !s.dead.Load() && !n.closed.Load() {
			s.flushAcks()
		}
	}
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

// SetHandlerInline declares (on) that every handler installed for
// subprotocol id, now or later, returns at once, never blocks and runs no
// user code: it only decodes the message and queues it for its own workers.
// The node then calls it on the receive goroutine, in order, instead of
// passing the message through the dispatch goroutine, which saves a
// goroutine hand-off per message. Only 0x0500 (reliable, and not handled by
// the node itself) may be inline; core/migration declares it for the
// runtime's 0x0500 handler, which forwards to a compute.MigrationHandler
// (required not to block). A handler breaking the promise stalls the socket
// and the acknowledgements.
func (n *Node) SetHandlerInline(id uint16, on bool) error {
	if id != wire.SubMigration {
		return fmt.Errorf("%w: subprotocol %#04x cannot be handled inline", ErrInvalidConfig, id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.inline[id] = true
	} else {
		delete(n.inline, id)
	}
	return nil
}

// inlineHandler is sub's handler if it is to be called inline, else nil.
func (n *Node) inlineHandler(sub uint16) func(uint64, []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.inline[sub] {
		return nil
	}
	return n.handlers[sub]
}

// callInline calls an inline handler on the receive goroutine, recovering a
// panic (it would otherwise end the process).
func (n *Node) callInline(h func(uint64, []byte), from uint64, sub uint16, payload []byte) {
	defer func() {
		if r := recover(); r != nil {
			n.logf(LogError, "mesh: inline handler panicked", map[string]any{
				"panic": fmt.Sprint(r), "subprotocol": sub, "stack": string(debug.Stack()),
			})
		}
	}()
	h(from, payload)
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
