package mesh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
)

func TestFailureDetectionReapsRoster(t *testing.T) {
	net := memnet.New(9)
	cfg := fastCfg()
	cfg.SessionTimeout = 400 * time.Millisecond
	pub := memNode(t, net, "pub", cfg)
	sub := memNode(t, net, "sub", cfg)

	var mu sync.Mutex
	var seen []PeerState
	pub.OnPeerStateChange(func(peer uint64, st PeerState) {
		if peer == sub.NodeID() {
			mu.Lock()
			seen = append(seen, st)
			mu.Unlock()
		}
	})
	link(t, sub, pub)
	require.NoError(t, pub.RegisterChannel("news", ChannelConfig{}))
	require.NoError(t, sub.SubscribeChannel(context.Background(), pub.NodeID(), "news", nil))
	assert.Equal(t, []uint64{sub.NodeID()}, pub.Roster("news"))

	net.SetLink("sub", "pub", memnet.LinkConfig{Down: true})
	net.SetLink("pub", "sub", memnet.LinkConfig{Down: true})
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && seen[len(seen)-1] == PeerFailed
	}, 5*time.Second, 5*time.Millisecond)
	mu.Lock()
	assert.Equal(t, []PeerState{PeerHealthy, PeerSuspected, PeerFailed}, seen)
	mu.Unlock()
	assert.Empty(t, pub.Roster("news"))
	assert.Empty(t, pub.Peers())
	_, ok := pub.PeerStaticKey(sub.NodeID())
	assert.False(t, ok)
	require.ErrorIs(t, pub.SendSubprotocol(context.Background(), sub.NodeID(), 0x0500, []byte{1}), ErrPeerUnavailable)

	// Healing the link and reconnecting brings the peer back.
	net.ClearLink("sub", "pub")
	net.ClearLink("pub", "sub")
	require.Eventually(t, func() bool { return len(sub.Peers()) == 0 }, 5*time.Second, 5*time.Millisecond)
	link(t, sub, pub)
	require.NoError(t, sub.SubscribeChannel(context.Background(), pub.NodeID(), "news", nil))
	assert.Equal(t, []uint64{sub.NodeID()}, pub.Roster("news"))
}

func TestSuspectedRecovers(t *testing.T) {
	net := memnet.New(10)
	cfg := fastCfg()
	cfg.SessionTimeout = 600 * time.Millisecond
	a := memNode(t, net, "a", cfg)
	b := memNode(t, net, "b", cfg)
	states := make(chan PeerState, 16)
	a.OnPeerStateChange(func(_ uint64, st PeerState) { states <- st })
	link(t, a, b)
	require.Equal(t, PeerHealthy, <-states)
	net.SetLink("b", "a", memnet.LinkConfig{Down: true})
	require.Equal(t, PeerSuspected, <-states)
	net.ClearLink("b", "a")
	require.Equal(t, PeerHealthy, <-states)
}
