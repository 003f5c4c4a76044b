package mesh

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
	"github.com/netmesh/libnetmesh/core/mesh/wire"
)

func TestReliableExactlyOnceUnderLoss(t *testing.T) {
	const total = 500
	net := memnet.New(16)
	cfg := fastCfg()
	cfg.SessionTimeout = 10 * time.Second
	a := memNode(t, net, "a", cfg)
	b := memNode(t, net, "b", cfg)
	link(t, a, b)
	net.SetDefault(memnet.LinkConfig{Loss: 0.2, Duplicate: 0.2, Reorder: 0.2, Jitter: 2 * time.Millisecond})

	got := make(chan uint32, 2*total)
	b.SetSubprotocolHandler(wire.SubMigration, func(_ uint64, p []byte) { got <- binary.LittleEndian.Uint32(p) })
	for i := uint32(0); i < total; i++ {
		require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, binary.LittleEndian.AppendUint32(nil, i)))
	}
	for i := uint32(0); i < total; i++ {
		select {
		case v := <-got:
			require.Equal(t, i, v, "in order, no gaps, no duplicates")
		case <-time.After(20 * time.Second):
			t.Fatalf("stalled after %d messages", i)
		}
	}
	// Everything gets acknowledged, and nothing is delivered twice.
	require.Eventually(t, func() bool {
		s := a.sessionFor(b.NodeID())
		s.relMu.Lock()
		defer s.relMu.Unlock()
		return len(s.send[uint64(wire.SubMigration)].out) == 0
	}, 20*time.Second, 10*time.Millisecond)
	select {
	case v := <-got:
		t.Fatalf("duplicate delivery of %d", v)
	case <-time.After(100 * time.Millisecond):
	}
	assert.NotZero(t, a.Stats().Retransmits)
	assert.NotZero(t, b.Stats().DuplicatesSuppressed)
	net.SetDefault(memnet.LinkConfig{})
}

func TestReliableBothDirectionsAndMembershipUnderLoss(t *testing.T) {
	net := memnet.New(17)
	cfg := fastCfg()
	cfg.SessionTimeout = 10 * time.Second
	pub := memNode(t, net, "pub", cfg)
	sub := memNode(t, net, "sub", cfg)
	link(t, sub, pub)
	require.NoError(t, pub.RegisterChannel("c", ChannelConfig{}))
	net.SetDefault(memnet.LinkConfig{Loss: 0.3, Duplicate: 0.2, Reorder: 0.3})
	for i := 0; i < 20; i++ {
		require.NoError(t, sub.SubscribeChannel(context.Background(), pub.NodeID(), "c", nil))
		require.NoError(t, sub.UnsubscribeChannel(context.Background(), pub.NodeID(), "c"))
	}
	assert.Empty(t, pub.Roster("c"))
	net.SetDefault(memnet.LinkConfig{})
}

// quietCfg is fastCfg without heartbeats during a test, so every packet a
// node sends is accounted for.
func quietCfg() Config {
	cfg := fastCfg()
	cfg.HeartbeatInterval = time.Minute
	cfg.SessionTimeout = 5 * time.Minute
	return cfg
}

func unacked(t *testing.T, from, to *Node, sub uint16) int {
	t.Helper()
	s := from.sessionFor(to.NodeID())
	require.NotNil(t, s)
	s.relMu.Lock()
	defer s.relMu.Unlock()
	if st := s.send[uint64(sub)]; st != nil {
		return len(st.out)
	}
	return 0
}

// accepted is how many messages on sub from `from` node n has queued or
// handed to a handler.
func accepted(t *testing.T, n, from *Node, sub uint16) uint64 {
	t.Helper()
	s := n.sessionFor(from.NodeID())
	require.NotNil(t, s)
	s.relMu.Lock()
	defer s.relMu.Unlock()
	if rs := s.recv[uint64(sub)]; rs != nil {
		return rs.next
	}
	return 0
}

// Acks are coalesced: fewer than ackEvery deliveries wait for the flush and
// then go out as one cumulative ack; ackEvery deliveries are acked at once.
func TestAcksCoalesced(t *testing.T) {
	net := memnet.New(21)
	slow := quietCfg()
	slow.RetransmitInterval = time.Minute // no retransmission (it would be acked at once)
	a := memNode(t, net, "a", slow)
	b := memNode(t, net, "b", quietCfg())
	b.ackMu.Lock()
	b.ackDelay = time.Hour // flushed by hand below
	b.ackMu.Unlock()
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, c.handler)
	ctx := context.Background()
	// One acknowledged message first, so the handshake's last packets are
	// counted before the count below is taken.
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, []byte("warm-up")))
	c.next(t)
	b.flushAcks()
	require.Eventually(t, func() bool { return unacked(t, a, b, wire.SubMigration) == 0 }, 5*time.Second, time.Millisecond)

	sent := b.Stats().PacketsSent
	for i := range 5 {
		require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, []byte{byte(i)}))
	}
	for i := range 5 {
		require.Equal(t, []byte{byte(i)}, c.next(t))
	}
	assert.Equal(t, sent, b.Stats().PacketsSent, "no ack before the flush")
	assert.Equal(t, 5, unacked(t, a, b, wire.SubMigration))
	b.flushAcks()
	assert.Equal(t, sent+1, b.Stats().PacketsSent, "one cumulative ack")
	require.Eventually(t, func() bool { return unacked(t, a, b, wire.SubMigration) == 0 }, 5*time.Second, time.Millisecond)
	b.flushAcks()
	assert.Equal(t, sent+1, b.Stats().PacketsSent, "nothing owed, nothing sent")

	// ackEvery deliveries since the last ack: acknowledged without a flush.
	for i := range ackEvery {
		require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, []byte{byte(i)}))
	}
	for range ackEvery {
		c.next(t)
	}
	require.Eventually(t, func() bool { return unacked(t, a, b, wire.SubMigration) == 0 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, sent+2, b.Stats().PacketsSent)
}

// A duplicate means the sender is retransmitting (our ack was lost or is
// late): it is acknowledged at once.
func TestDuplicateAckedAtOnce(t *testing.T) {
	net := memnet.New(22)
	a := memNode(t, net, "a", quietCfg())
	b := memNode(t, net, "b", quietCfg())
	b.ackMu.Lock()
	b.ackDelay = time.Hour
	b.ackMu.Unlock()
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, c.handler)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, []byte("x")))
	c.next(t)
	sent := b.Stats().PacketsSent
	// The retransmission timer (20 ms) resends the unacked message; b sees a
	// duplicate, suppresses it and acknowledges without waiting for the flush.
	require.Eventually(t, func() bool { return unacked(t, a, b, wire.SubMigration) == 0 }, 5*time.Second, time.Millisecond)
	assert.NotZero(t, b.Stats().DuplicatesSuppressed)
	assert.Greater(t, b.Stats().PacketsSent, sent)
	select {
	case p := <-c.ch:
		t.Fatalf("duplicate delivered: %q", p)
	default:
	}
}

// With the default delay, owed acks go out on their own.
func TestDelayedAckFlushed(t *testing.T) {
	slow := quietCfg()
	slow.RetransmitInterval = 10 * time.Second // far beyond the 2 ms ack delay
	a := newNode(t, slow)
	b := newNode(t, quietCfg())
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, c.handler)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, []byte("x")))
	c.next(t)
	require.Eventually(t, func() bool { return unacked(t, a, b, wire.SubMigration) == 0 }, 5*time.Second, time.Millisecond)
	assert.Zero(t, a.Stats().Retransmits, "acked before the retransmission timer")
}

// An inline handler runs on the receive goroutine: it keeps getting
// messages, in order, while the dispatch goroutine is stuck in another
// handler.
func TestInlineHandlerBypassesDispatch(t *testing.T) {
	net := memnet.New(23)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	release := make(chan struct{})
	defer close(release)
	stuck := make(chan struct{}, 1)
	b.SetSubprotocolHandler(0x1234, func(uint64, []byte) { stuck <- struct{}{}; <-release })
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, c.handler)
	require.NoError(t, b.SetHandlerInline(wire.SubMigration, true))
	ctx := context.Background()
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), 0x1234, []byte("block")))
	<-stuck
	for i := uint32(0); i < 50; i++ {
		require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, binary.LittleEndian.AppendUint32(nil, i)))
	}
	for i := uint32(0); i < 50; i++ {
		require.Equal(t, i, binary.LittleEndian.Uint32(c.next(t)))
	}
}

// Messages already queued for the dispatch goroutine are not overtaken by
// later ones handled inline.
func TestInlineKeepsOrderWithQueued(t *testing.T) {
	net := memnet.New(24)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	release := make(chan struct{})
	stuck := make(chan struct{}, 1)
	b.SetSubprotocolHandler(0x1234, func(uint64, []byte) { stuck <- struct{}{}; <-release })
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, c.handler)
	ctx := context.Background()
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), 0x1234, []byte("block")))
	<-stuck
	send := func(from, to uint32) {
		for i := from; i < to; i++ {
			require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, binary.LittleEndian.AppendUint32(nil, i)))
		}
	}
	send(0, 10) // queued behind the stuck handler
	require.Eventually(t, func() bool { return accepted(t, b, a, wire.SubMigration) == 10 }, 5*time.Second, time.Millisecond)
	require.NoError(t, b.SetHandlerInline(wire.SubMigration, true))
	send(10, 20) // must wait for the queued ones, not overtake them
	require.Eventually(t, func() bool { return accepted(t, b, a, wire.SubMigration) == 20 }, 5*time.Second, time.Millisecond)
	close(release)
	for i := uint32(0); i < 20; i++ {
		require.Equal(t, i, binary.LittleEndian.Uint32(c.next(t)))
	}
	// Once the queue drained, later messages are handled inline again.
	release2 := make(chan struct{})
	defer close(release2)
	b.SetSubprotocolHandler(0x1234, func(uint64, []byte) { stuck <- struct{}{}; <-release2 })
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), 0x1234, []byte("block")))
	<-stuck
	send(20, 30)
	for i := uint32(20); i < 30; i++ {
		require.Equal(t, i, binary.LittleEndian.Uint32(c.next(t)))
	}
}

func TestInlinePanicRecovered(t *testing.T) {
	net := memnet.New(25)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	c := newCollector()
	b.SetSubprotocolHandler(wire.SubMigration, func(from uint64, p []byte) {
		if string(p) == "boom" {
			panic("inline handler")
		}
		c.handler(from, p)
	})
	require.NoError(t, b.SetHandlerInline(wire.SubMigration, true))
	ctx := context.Background()
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, []byte("boom")))
	require.NoError(t, a.SendSubprotocol(ctx, b.NodeID(), wire.SubMigration, []byte("after")))
	assert.Equal(t, []byte("after"), c.next(t))
}

func TestSetHandlerInlineOnlyMigration(t *testing.T) {
	n := newNode(t, fastCfg())
	for _, id := range []uint16{wire.SubMembership, wire.SubEvents, 0x1234, SubAck} {
		require.ErrorIs(t, n.SetHandlerInline(id, true), ErrInvalidConfig)
	}
	require.NoError(t, n.SetHandlerInline(wire.SubMigration, true))
	require.NoError(t, n.SetHandlerInline(wire.SubMigration, false))
}

// With inline delivery on but no handler installed, 0x0500 snapshot
// traffic still gets the node's ComputeNotSupported answer.
func TestInlineWithoutHandlerAnswersNotSupported(t *testing.T) {
	a := newNode(t, fastCfg())
	b := newNode(t, fastCfg())
	link(t, a, b)
	require.NoError(t, b.SetHandlerInline(wire.SubMigration, true))
	c := newCollector()
	a.SetSubprotocolHandler(wire.SubMigration, c.handler)
	origin := uint64(0x0102030405060708)
	take := binary.LittleEndian.AppendUint64([]byte{0}, origin)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), wire.SubMigration, take))
	assert.Equal(t, wire.MigrationComputeNotSupported(origin), c.next(t))
}
