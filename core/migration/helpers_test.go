package migration

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
	"github.com/netmesh/libnetmesh/core/mesh"
	"github.com/netmesh/libnetmesh/core/mesh/memnet"
)

var testPSK = [32]byte{7, 7, 7, 1, 2, 3}

// fastCfg is a mesh config with short timers for tests.
func fastCfg() mesh.Config {
	return mesh.Config{
		PSK:                testPSK,
		HeartbeatInterval:  50 * time.Millisecond,
		SessionTimeout:     2 * time.Second,
		RetransmitInterval: 20 * time.Millisecond,
		ConnectTimeout:     5 * time.Second,
	}
}

// counter counts events; each event's payload is its 1-based sequence
// number (u64 LE), so the state also records how many arrived out of order,
// twice or after a gap. State: [count u64][bad u64][pad...].
type counter struct {
	n, bad uint64
	pad    int // extra state bytes (benchmarks)
	emit   bool
}

func (c *counter) Name() string           { return "counter" }
func (c *counter) Requirements() []string { return nil }
func (c *counter) Process(ev causal.Event) ([][]byte, error) {
	c.n++
	if len(ev.Payload) < 8 || binary.LittleEndian.Uint64(ev.Payload) != c.n {
		c.bad++
	}
	if !c.emit {
		return nil, nil
	}
	return [][]byte{binary.LittleEndian.AppendUint64(nil, c.n)}, nil
}
func (c *counter) Snapshot() ([]byte, error) {
	b := make([]byte, 16+c.pad)
	binary.LittleEndian.PutUint64(b, c.n)
	binary.LittleEndian.PutUint64(b[8:], c.bad)
	for i := 16; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b, nil
}
func (c *counter) Restore(b []byte) error {
	if len(b) < 16 {
		return errors.New("counter: short state")
	}
	c.n, c.bad = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
	c.pad = len(b) - 16
	return nil
}

// stateless has no state at all.
type stateless struct{ seen uint64 }

func (s *stateless) Name() string           { return "stateless" }
func (s *stateless) Requirements() []string { return nil }
func (s *stateless) Process(ev causal.Event) ([][]byte, error) {
	s.seen++
	return [][]byte{[]byte("ok")}, nil
}
func (s *stateless) Snapshot() ([]byte, error) { return nil, nil }
func (s *stateless) Restore(b []byte) error {
	if len(b) != 0 {
		return errors.New("stateless: unexpected state")
	}
	return nil
}

// slowRestore is a counter whose Restore waits for release.
type slowRestore struct {
	counter
	release chan struct{}
}

func (s *slowRestore) Restore(b []byte) error {
	<-s.release
	return s.counter.Restore(b)
}

// tnode is one test node: a mesh node, its runtime and engine.
type tnode struct {
	node *mesh.Node
	rt   *compute.Runtime
	eng  *Engine
	id   uint64

	sinkMu sync.Mutex
	sunk   []causal.Event
}

type nodeOpt struct {
	cfg       mesh.Config
	noRuntime bool
	engOpts   []Option
}

func newTNode(t testing.TB, o nodeOpt) *tnode {
	t.Helper()
	if o.cfg.PSK == ([32]byte{}) {
		o.cfg = fastCfg()
	}
	n, err := mesh.NewNode(o.cfg)
	require.NoError(t, err)
	tn := &tnode{node: n, id: n.NodeID()}
	t.Cleanup(func() { _ = n.Close() })
	if o.noRuntime {
		return tn
	}
	tn.rt = compute.NewRuntime(n, compute.WithWorkers(4))
	tn.eng = Attach(tn.rt, n, append([]Option{WithPeerCheckInterval(50 * time.Millisecond)}, o.engOpts...)...)
	registerKinds(t, tn.rt)
	require.NoError(t, tn.rt.Start(context.Background()))
	tn.rt.SetOutputSink(func(origin uint64, outs []causal.Event) {
		tn.sinkMu.Lock()
		tn.sunk = append(tn.sunk, outs...)
		tn.sinkMu.Unlock()
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tn.rt.Shutdown(ctx)
	})
	return tn
}

func (n *tnode) sinkCount() int {
	n.sinkMu.Lock()
	defer n.sinkMu.Unlock()
	return len(n.sunk)
}

// padBytes is the extra state of "counter-pad" daemons (benchmarks set it).
var padBytes atomic.Int64

func registerKinds(t testing.TB, rt *compute.Runtime) {
	require.NoError(t, rt.RegisterFactory("counter", func() (compute.Daemon, error) { return &counter{}, nil }))
	require.NoError(t, rt.RegisterFactory("emitter", func() (compute.Daemon, error) { return &counter{emit: true}, nil }))
	require.NoError(t, rt.RegisterFactory("stateless", func() (compute.Daemon, error) { return &stateless{}, nil }))
	require.NoError(t, rt.RegisterFactory("padded", func() (compute.Daemon, error) { return &counter{pad: int(padBytes.Load())}, nil }))
}

// link makes b admit a and a connect to b (both learn each other's keys).
func link(t testing.TB, a, b *tnode) {
	t.Helper()
	b.node.Accept(a.id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.node.Connect(ctx, b.node.Addr(), b.node.StaticPublicKey(), b.id))
	require.Eventually(t, func() bool { _, ok := b.node.PeerStaticKey(a.id); return ok }, 5*time.Second, 5*time.Millisecond)
}

// pair is two linked nodes over loopback UDP.
func pair(t testing.TB) (*tnode, *tnode) {
	a, b := newTNode(t, nodeOpt{}), newTNode(t, nodeOpt{})
	link(t, a, b)
	return a, b
}

// memPair is two linked nodes on a memnet network.
func memPair(t testing.TB, net *memnet.Network) (*tnode, *tnode) {
	mk := func(name string) *tnode {
		c, err := net.Listen(name)
		require.NoError(t, err)
		cfg := fastCfg()
		cfg.Transport = c
		return newTNode(t, nodeOpt{cfg: cfg})
	}
	a, b := mk("a"), mk("b")
	link(t, a, b)
	return a, b
}

// spawn starts a daemon of kind on n and returns its keypair.
func spawn(t testing.TB, n *tnode, kind string) *identity.Keypair {
	t.Helper()
	kp, err := identity.Generate()
	require.NoError(t, err)
	_, err = n.rt.Spawn(context.Background(), kind, kp, compute.DaemonConfig{})
	require.NoError(t, err)
	return kp
}

// ev is the i-th test event (payload = i).
func ev(i uint64) causal.Event {
	return causal.Event{Link: causal.Link{Origin: 0xfeed, Sequence: i}, Payload: binary.LittleEndian.AppendUint64(nil, i), ReceivedAt: i}
}

func deliverRange(t testing.TB, n *tnode, origin, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		_, err := n.rt.Deliver(origin, ev(i))
		require.NoError(t, err)
	}
}

// count reads a counter daemon's (count, bad) through a snapshot.
func count(t testing.TB, n *tnode, origin uint64) (uint64, uint64) {
	t.Helper()
	s, err := n.rt.Snapshot(context.Background(), origin)
	require.NoError(t, err)
	require.NotNil(t, s)
	return binary.LittleEndian.Uint64(s.State), binary.LittleEndian.Uint64(s.State[8:])
}

func ctx10(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// migrate runs a migration to completion.
func migrate(t testing.TB, a, b *tnode, origin uint64, opts Opts) {
	t.Helper()
	h, err := a.eng.StartMigrationWith(ctx10(t), origin, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
}

// noRecords waits until neither engine holds a record.
func noRecords(t testing.TB, ns ...*tnode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range ns {
			if n.eng != nil && n.eng.Records() != 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond)
}
