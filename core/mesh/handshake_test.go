package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/netmesh/libnetmesh/core/mesh/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandshakeUDP(t *testing.T) {
	a := newNode(t, fastCfg())
	b := newNode(t, fastCfg())
	link(t, a, b)
	ka, ok := b.PeerStaticKey(a.NodeID())
	require.True(t, ok)
	assert.Equal(t, a.StaticPublicKey(), ka)
	kb, ok := a.PeerStaticKey(b.NodeID())
	require.True(t, ok)
	assert.Equal(t, b.StaticPublicKey(), kb)
	ea, ok := b.PeerEntityID(a.NodeID())
	require.True(t, ok)
	assert.Equal(t, a.Identity().EntityID(), ea)

	c := newCollector()
	b.SetSubprotocolHandler(0x1234, c.handler)
	require.NoError(t, a.SendSubprotocol(context.Background(), b.NodeID(), 0x1234, []byte("hello")))
	assert.Equal(t, []byte("hello"), c.next(t))
}

func TestHandshakeMem(t *testing.T) {
	net := memnet.New(1)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	c := newCollector()
	a.SetSubprotocolHandler(0x0500, c.handler)
	require.NoError(t, b.SendSubprotocol(context.Background(), a.NodeID(), 0x0500, []byte{9, 9}))
	assert.Equal(t, []byte{9, 9}, c.next(t))
	assert.Equal(t, []uint64{b.NodeID()}, a.Peers())
}

func TestHandshakeWrongPSK(t *testing.T) {
	a := newNode(t, fastCfg())
	cfg := fastCfg()
	cfg.PSK[0] ^= 1
	b := newNode(t, cfg)
	b.Accept(a.NodeID())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := a.Connect(ctx, b.Addr(), b.StaticPublicKey(), b.NodeID())
	require.ErrorIs(t, err, ErrHandshakeFailed)
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	assert.NotZero(t, b.Stats().DroppedHandshake)
	_, ok := a.PeerStaticKey(b.NodeID())
	assert.False(t, ok)
}

func TestHandshakeWrongStaticKey(t *testing.T) {
	a := newNode(t, fastCfg())
	b := newNode(t, fastCfg())
	b.Accept(a.NodeID())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	wrong := a.StaticPublicKey() // any key but b's
	err := a.Connect(ctx, b.Addr(), wrong, b.NodeID())
	require.ErrorIs(t, err, ErrHandshakeFailed)
	assert.NotZero(t, b.Stats().DroppedHandshake)
}

func TestHandshakeNotAdmitted(t *testing.T) {
	a := newNode(t, fastCfg())
	b := newNode(t, fastCfg())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, a.Connect(ctx, b.Addr(), b.StaticPublicKey(), b.NodeID()), ErrHandshakeTimeout)
	// Accept works at any time, also after a refused attempt.
	link(t, a, b)
}

func TestHandshakeWrongNodeID(t *testing.T) {
	// The responder proves its identity: claiming the wrong node id fails
	// even with the right static key. b admits a; a thinks b is `other`.
	net := memnet.New(2)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	b.Accept(a.NodeID())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := a.Connect(ctx, "b", b.StaticPublicKey(), b.NodeID()^1)
	require.ErrorIs(t, err, ErrHandshakeFailed)
}

func TestReconnectAfterRestart(t *testing.T) {
	net := memnet.New(3)
	a := memNode(t, net, "a", fastCfg())
	cfg := fastCfg()
	b1, err := NewNode(func() Config { c, _ := net.Listen("b"); cfg.Transport = c; return cfg }())
	require.NoError(t, err)
	link(t, a, b1)
	id := b1.Identity()
	require.NoError(t, b1.Close())

	// Same identity, new process: new static key, new transport.
	cfg2 := fastCfg()
	cfg2.Identity = id
	b2 := memNode(t, net, "b", cfg2)
	require.NotEqual(t, b1.StaticPublicKey(), b2.StaticPublicKey())
	link(t, a, b2)
	k, ok := a.PeerStaticKey(b2.NodeID())
	require.True(t, ok)
	assert.Equal(t, b2.StaticPublicKey(), k)

	c := newCollector()
	b2.SetSubprotocolHandler(0x0500, c.handler)
	require.NoError(t, a.SendSubprotocol(context.Background(), b2.NodeID(), 0x0500, []byte{7}))
	assert.Equal(t, []byte{7}, c.next(t))

	// And the restarted node can initiate towards the survivor, replacing the session.
	a.Accept(b2.NodeID())
	link(t, b2, a)
	require.NoError(t, a.SendSubprotocol(context.Background(), b2.NodeID(), 0x0500, []byte{8}))
	assert.Equal(t, []byte{8}, c.next(t))
}

func TestSendUnknownPeer(t *testing.T) {
	a := newNode(t, fastCfg())
	err := a.SendSubprotocol(context.Background(), 42, 0x0500, []byte{1})
	var pu interface{ PeerUnavailable() bool }
	require.ErrorAs(t, err, &pu)
	assert.True(t, pu.PeerUnavailable())
	require.ErrorIs(t, err, ErrPeerUnavailable)
}

func TestHelloReplayAndForgedCertificateRefused(t *testing.T) {
	net := memnet.New(4)
	a := memNode(t, net, "a", fastCfg())
	b := memNode(t, net, "b", fastCfg())
	link(t, a, b)
	genuine := a.helloMsg(a.sessionFor(b.NodeID()))

	fresh := func(id uint64, hash byte) *session {
		s, err := newSession(b, id, a.NodeID(), false, [32]byte{}, [32]byte{}, [32]byte{hash}, memnet.Addr("a"))
		require.NoError(t, err)
		return s
	}
	// A Hello from one session does not establish another: its proof names the old hash.
	s := fresh(100, 7)
	b.onHello(s, [][]byte{genuine})
	assert.False(t, s.established.Load())

	// A correct proof for the new session with a tampered certificate is refused,
	// even though a's genuine certificate is in b's cache.
	s = fresh(101, 8)
	hello := a.helloMsg(&session{peerStatic: b.StaticPublicKey(), hash: s.hash})
	bad := append([]byte(nil), hello...)
	bad[len(bad)-1] ^= 1
	b.onHello(s, [][]byte{bad})
	assert.False(t, s.established.Load())
	// The untampered one is accepted and teaches b a's static key.
	b.onHello(s, [][]byte{hello})
	assert.True(t, s.established.Load())
	assert.Equal(t, a.StaticPublicKey(), s.peerStatic)
}
