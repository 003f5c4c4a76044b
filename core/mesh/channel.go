package mesh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

// Channel messages travel on subprotocol 0x0000 as unreliable events, one per
// packet, stream_id 0, with the header's channel hint set to
// wire.ChannelHint(name). Each event is
//
//	[name_len u8][name][payload]
//
// A receiver accepts an event as a channel message only when the name is a
// valid channel name whose hint matches the header and it is subscribed to
// that channel at that publisher; other well-formed 0x0000 events go to the
// 0x0000 handler, if any.

// ChannelConfig is a publisher's policy for one channel.
type ChannelConfig struct {
	// RequireToken makes Subscribe carry a permission token: issued by a
	// trusted issuer, signature and time window valid, SUBSCRIBE scope on this
	// channel (or wildcard), subject = the subscriber's identity.
	RequireToken bool
	// MaxSubscribers caps the roster; 0 means no cap. A full roster answers
	// TooManyChannels.
	MaxSubscribers int
	// TrustedIssuers lists whose tokens count; empty means this node's own
	// identity only.
	TrustedIssuers []identity.EntityID
}

// PublishReport says what Publish did: Attempted = roster size, Delivered =
// datagrams handed to the transport (channel traffic is unreliable), Failed =
// subscribers without a session or whose send failed.
type PublishReport struct {
	Attempted, Delivered, Failed int
}

type channel struct {
	name   string
	cfg    ChannelConfig
	roster map[uint64]struct{}
}

type subKey struct {
	publisher uint64
	channel   string
}

type membershipAnswer struct {
	from uint64
	msg  *wire.MembershipMsg
}

// bucket is a token bucket limiting one peer's membership requests.
type bucket struct {
	tokens float64
	last   time.Time
}

// RegisterChannel publishes channel with cfg (re-registering replaces the
// config and keeps the roster).
func (n *Node) RegisterChannel(name string, cfg ChannelConfig) error {
	if !wire.ValidChannelName(name) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, name)
	}
	cfg.TrustedIssuers = slices.Clone(cfg.TrustedIssuers)
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.channels[name]; c != nil {
		c.cfg = cfg
		return nil
	}
	n.channels[name] = &channel{name: name, cfg: cfg, roster: make(map[uint64]struct{})}
	return nil
}

// UnregisterChannel stops publishing channel and forgets its roster.
func (n *Node) UnregisterChannel(name string) {
	n.mu.Lock()
	delete(n.channels, name)
	n.mu.Unlock()
}

// Roster lists the subscribers of one of our channels, ascending.
func (n *Node) Roster(name string) []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.channels[name]
	if c == nil {
		return nil
	}
	out := make([]uint64, 0, len(c.roster))
	for id := range c.roster {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// OnChannelMessage installs the callback for channel messages from publishers
// we subscribed to (nil removes it). It runs on the dispatch goroutine and
// owns payload.
func (n *Node) OnChannelMessage(f func(publisher uint64, channel string, payload []byte)) {
	n.mu.Lock()
	n.onChannel = f
	n.mu.Unlock()
}

// Publish sends payload to every subscriber of channel (see PublishReport).
// An unregistered channel yields a zero report.
func (n *Node) Publish(ctx context.Context, name string, payload []byte) PublishReport {
	var rep PublishReport
	if len(payload)+1+len(name) > maxMessage || n.closed.Load() {
		return rep
	}
	n.mu.Lock()
	c := n.channels[name]
	if c == nil {
		n.mu.Unlock()
		return rep
	}
	targets := make([]*session, 0, len(c.roster))
	for id := range c.roster {
		var s *session
		if p := n.peers[id]; p != nil {
			s = p.sess
		}
		targets = append(targets, s)
	}
	n.mu.Unlock()
	ev := make([]byte, 0, 1+len(name)+len(payload))
	ev = append(ev, byte(len(name)))
	ev = append(ev, name...)
	ev = append(ev, payload...)
	hint := wire.ChannelHint(name)
	rep.Attempted = len(targets)
	for _, s := range targets {
		if s == nil || ctx.Err() != nil || s.sendUnreliable(wire.SubEvents, hint, ev) != nil {
			rep.Failed++
			continue
		}
		rep.Delivered++
	}
	return rep
}

// onChannelEvent reports whether a 0x0000 event was a channel message (and
// consumed it). Dispatch goroutine.
func (n *Node) onChannelEvent(from uint64, hint uint16, ev []byte) bool {
	if len(ev) < 2 || int(ev[0]) == 0 || int(ev[0])+1 > len(ev) {
		return false
	}
	name := string(ev[1 : 1+int(ev[0])])
	if !wire.ValidChannelName(name) || wire.ChannelHint(name) != hint {
		return false
	}
	n.mu.Lock()
	ok := n.subs[subKey{from, name}]
	cb := n.onChannel
	n.mu.Unlock()
	if !ok {
		n.ctr.dropUnsubscribed.Add(1)
		return true
	}
	if cb != nil {
		cb(from, name, ev[1+int(ev[0]):])
	}
	return true
}

// SubscribeChannel asks publisher to add this node to channel's roster and
// waits for its Ack (MembershipAckTimeout, default 5 s). token is a raw
// 169-byte permission token or nil. A refusal is an *AckError matching
// ErrUnauthorized, ErrUnknownChannel, ErrRateLimited or ErrTooManyChannels.
func (n *Node) SubscribeChannel(ctx context.Context, publisher uint64, channel string, token []byte) error {
	if !wire.ValidChannelName(channel) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, channel)
	}
	key := subKey{publisher, channel}
	// Mark the subscription before asking, so messages published right after
	// the publisher's Ack are not dropped; undo it unless accepted.
	n.mu.Lock()
	was := n.subs[key]
	n.subs[key] = true
	n.mu.Unlock()
	err := n.membership(ctx, publisher, wire.MembershipMsg{Kind: wire.Subscribe, Channel: channel, Token: token})
	if err != nil && !was {
		n.mu.Lock()
		delete(n.subs, key)
		n.mu.Unlock()
	}
	return err
}

// UnsubscribeChannel asks publisher to drop this node from channel's roster
// and waits for its Ack. Locally the subscription ends whatever the answer.
func (n *Node) UnsubscribeChannel(ctx context.Context, publisher uint64, channel string) error {
	if !wire.ValidChannelName(channel) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, channel)
	}
	err := n.membership(ctx, publisher, wire.MembershipMsg{Kind: wire.Unsubscribe, Channel: channel})
	n.mu.Lock()
	delete(n.subs, subKey{publisher, channel})
	n.mu.Unlock()
	return err
}

// membership sends m with a fresh nonce and waits for the matching Ack.
func (n *Node) membership(ctx context.Context, publisher uint64, m wire.MembershipMsg) error {
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	m.Nonce = binary.LittleEndian.Uint64(nb[:])
	b := m.Encode()
	if b == nil {
		return fmt.Errorf("%w: membership message", ErrInvalidConfig)
	}
	ch := make(chan membershipAnswer, 1)
	n.mu.Lock()
	n.waiters[m.Nonce] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, m.Nonce)
		n.mu.Unlock()
	}()
	if err := n.SendSubprotocol(ctx, publisher, wire.SubMembership, b); err != nil {
		return err
	}
	t := time.NewTimer(n.cfg.MembershipAckTimeout)
	defer t.Stop()
	for {
		select {
		case a := <-ch:
			if a.from != publisher {
				continue // an Ack from someone else cannot answer us
			}
			if a.msg.Accepted {
				return nil
			}
			return ackError(a.msg.Reason, m.Channel)
		case <-t.C:
			return fmt.Errorf("%w: channel %q at %016x", ErrAckTimeout, m.Channel, publisher)
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

func ackError(r wire.AckReason, channel string) error {
	e := &AckError{Reason: uint8(r), Channel: channel}
	switch r {
	case wire.ReasonUnauthorized:
		e.err = ErrUnauthorized
	case wire.ReasonUnknownChannel:
		e.err = ErrUnknownChannel
	case wire.ReasonRateLimited:
		e.err = ErrRateLimited
	default:
		e.err = ErrTooManyChannels
	}
	return e
}

// onMembership handles a 0x0A00 message on the dispatch goroutine.
func (n *Node) onMembership(from uint64, payload []byte) {
	m, err := wire.DecodeMembership(payload)
	if err != nil {
		n.ctr.dropMalformed.Add(1)
		n.logf(LogDebug, "mesh: bad membership message", map[string]any{"peer": from, "err": err.Error()})
		return
	}
	var reason wire.AckReason
	switch m.Kind {
	case wire.Ack:
		n.mu.Lock()
		ch := n.waiters[m.Nonce]
		n.mu.Unlock()
		if ch != nil {
			select {
			case ch <- membershipAnswer{from: from, msg: m}:
			default:
			}
		}
		return
	case wire.Subscribe:
		reason = n.admit(from, m)
	case wire.Unsubscribe:
		n.mu.Lock()
		if c := n.channels[m.Channel]; c != nil {
			delete(c.roster, from)
		} else {
			reason = wire.ReasonUnknownChannel
		}
		n.mu.Unlock()
	}
	ack := wire.MembershipMsg{Kind: wire.Ack, Nonce: m.Nonce, Accepted: reason == wire.ReasonOK, Reason: reason}
	if err := n.SendSubprotocol(n.ctx, from, wire.SubMembership, ack.Encode()); err != nil {
		n.logf(LogDebug, "mesh: membership ack not sent", map[string]any{"peer": from, "err": err.Error()})
	}
}

// admit decides a Subscribe. Checks in order: rate, channel, token, capacity.
func (n *Node) admit(from uint64, m *wire.MembershipMsg) wire.AckReason {
	now := time.Now()
	n.mu.Lock()
	if !n.takeTokenLocked(from, now) {
		n.mu.Unlock()
		return wire.ReasonRateLimited
	}
	c := n.channels[m.Channel]
	if c == nil {
		n.mu.Unlock()
		return wire.ReasonUnknownChannel
	}
	cfg := c.cfg
	var subject identity.EntityID
	var known bool
	if p := n.peers[from]; p != nil && p.sess != nil {
		subject, known = p.sess.peerEntity, true
	}
	n.mu.Unlock()
	if cfg.RequireToken && !n.tokenOK(m, cfg, subject, known, now) {
		return wire.ReasonUnauthorized
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c = n.channels[m.Channel]
	if c == nil {
		return wire.ReasonUnknownChannel
	}
	if _, in := c.roster[from]; in {
		return wire.ReasonOK
	}
	if cfg.MaxSubscribers > 0 && len(c.roster) >= cfg.MaxSubscribers {
		return wire.ReasonTooManyChannels
	}
	joined := 0
	for _, other := range n.channels {
		if _, in := other.roster[from]; in {
			joined++
		}
	}
	if joined >= n.cfg.MaxChannelsPerPeer {
		return wire.ReasonTooManyChannels
	}
	c.roster[from] = struct{}{}
	return wire.ReasonOK
}

func (n *Node) tokenOK(m *wire.MembershipMsg, cfg ChannelConfig, subject identity.EntityID, known bool, now time.Time) bool {
	if len(m.Token) == 0 || !known {
		return false
	}
	tok, err := identity.DecodeToken(m.Token)
	if err != nil || tok.Subject != subject {
		return false
	}
	trusted := cfg.TrustedIssuers
	if len(trusted) == 0 {
		trusted = []identity.EntityID{n.id.EntityID()}
	}
	if !slices.Contains(trusted, tok.Issuer) {
		return false
	}
	return tok.Check(now, identity.ScopeSubscribe, m.Channel) == nil
}

func (n *Node) takeTokenLocked(peer uint64, now time.Time) bool {
	b := n.buckets[peer]
	burst := float64(n.cfg.SubscribeBurst)
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		n.buckets[peer] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*n.cfg.SubscribeRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// reapPeerLocked forgets a failed peer's roster entries, our subscriptions
// at it and its rate bucket. Caller holds n.mu.
func (n *Node) reapPeerLocked(id uint64) {
	for _, c := range n.channels {
		delete(c.roster, id)
	}
	for k := range n.subs {
		if k.publisher == id {
			delete(n.subs, k)
		}
	}
	delete(n.buckets, id)
}
