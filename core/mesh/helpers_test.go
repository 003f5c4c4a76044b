package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
)

var testPSK = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}

// fastCfg is a config with short timers for tests.
func fastCfg() Config {
	return Config{
		PSK:                testPSK,
		HeartbeatInterval:  50 * time.Millisecond,
		SessionTimeout:     2 * time.Second,
		RetransmitInterval: 20 * time.Millisecond,
		ConnectTimeout:     3 * time.Second,
	}
}

func newNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := NewNode(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func memNode(t testing.TB, net *memnet.Network, name string, cfg Config) *Node {
	t.Helper()
	c, err := net.Listen(name)
	require.NoError(t, err)
	cfg.Transport = c
	return newNode(t, cfg)
}

// link makes b admit a and a connect to b.
func link(t testing.TB, a, b *Node) {
	t.Helper()
	b.Accept(a.NodeID())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, b.Addr(), b.StaticPublicKey(), b.NodeID()))
	require.Eventually(t, func() bool { _, ok := b.PeerStaticKey(a.NodeID()); return ok }, 5*time.Second, 5*time.Millisecond)
}

// collector gathers subprotocol payloads.
type collector struct {
	ch chan []byte
}

func newCollector() *collector { return &collector{ch: make(chan []byte, 4096)} }

func (c *collector) handler(_ uint64, p []byte) { c.ch <- p }

func (c *collector) next(t testing.TB) []byte {
	t.Helper()
	select {
	case p := <-c.ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}
