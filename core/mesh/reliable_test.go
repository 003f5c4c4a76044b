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
