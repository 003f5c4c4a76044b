package mesh

import (
	"time"
)

// onTick runs on the timer goroutine: retransmissions, heartbeats, the
// failure detector, and reaping of stale sessions.
func (n *Node) onTick(now time.Time) {
	nowNs := now.UnixNano()
	timeout := n.cfg.SessionTimeout
	type change struct {
		peer  uint64
		state PeerState
	}
	var (
		changes []change
		active  []*session
		failed  []uint64
	)
	n.mu.Lock()
	for id, s := range n.sessions {
		silent := time.Duration(nowNs - s.lastRecv.Load())
		switch {
		case s.dead.Load():
			// Retired sessions keep decoding stragglers for a while.
			if silent > timeout/2 {
				delete(n.sessions, id)
			}
		case !s.established.Load():
			if silent > timeout {
				delete(n.sessions, id)
				s.shutdown()
				if p := n.peers[s.peerID]; p != nil && p.pending == s {
					p.pending = nil
					if p.sess == nil {
						delete(n.peers, s.peerID)
					}
				}
			}
		default:
			active = append(active, s)
		}
	}
	for id, p := range n.peers {
		s := p.sess
		if s == nil {
			continue
		}
		silent := time.Duration(nowNs - s.lastRecv.Load())
		switch {
		case silent >= timeout:
			failed = append(failed, id)
			delete(n.peers, id)
			delete(n.sessions, s.id)
			if p.pending != nil {
				delete(n.sessions, p.pending.id)
				p.pending.shutdown()
			}
			s.shutdown()
			n.reapPeerLocked(id)
			changes = append(changes, change{id, PeerFailed})
		case silent >= timeout/2 && p.state == PeerHealthy:
			p.state = PeerSuspected
			changes = append(changes, change{id, PeerSuspected})
		case silent < timeout/2 && p.state == PeerSuspected:
			p.state = PeerHealthy
			changes = append(changes, change{id, PeerHealthy})
		}
	}
	cb := n.onState
	n.mu.Unlock()

	for _, s := range active {
		if s.dead.Load() {
			continue
		}
		s.retransmit(now)
		if time.Duration(nowNs-s.lastSend.Load()) >= n.cfg.HeartbeatInterval {
			_ = s.sendHeartbeat()
		}
	}
	for _, id := range failed {
		n.logf(LogWarn, "mesh: peer failed", map[string]any{"peer": id})
	}
	if cb != nil {
		for _, c := range changes {
			c := c
			n.disp.push(task{fn: func() { cb(c.peer, c.state) }})
		}
	}
}
