package compute

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closingDaemon records Close calls and whether one overlapped Process.
type closingDaemon struct {
	echoDaemon
	closes   atomic.Int32
	inside   atomic.Bool
	overlap  atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	panicsOn bool
}

func (d *closingDaemon) Process(ev causal.Event) ([][]byte, error) {
	d.inside.Store(true)
	defer d.inside.Store(false)
	if d.entered != nil {
		d.entered <- struct{}{}
		<-d.release
	}
	return [][]byte{ev.Payload}, nil
}

func (d *closingDaemon) Close() {
	if d.inside.Load() {
		d.overlap.Store(true)
	}
	d.closes.Add(1)
	if d.panicsOn {
		panic("close hook")
	}
}

func TestHostCloseRunsDaemonCloseOnceWhenIdle(t *testing.T) {
	d := &closingDaemon{}
	h, err := NewHost(d, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	_, err = h.Deliver(inputEvent(1, 1, []byte("x")))
	require.NoError(t, err)
	h.Close()
	assert.Equal(t, int32(1), d.closes.Load(), "idle: the hook runs inside Close")
	h.Close()
	_, err = h.Deliver(inputEvent(1, 2, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	assert.Equal(t, int32(1), d.closes.Load(), "exactly once")
}

func TestHostCloseWaitsForCallInProgress(t *testing.T) {
	d := &closingDaemon{entered: make(chan struct{}), release: make(chan struct{})}
	h, err := NewHost(d, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		_, err := h.Deliver(inputEvent(1, 1, []byte("x")))
		done <- err
	}()
	<-d.entered
	h.Close() // does not wait
	assert.Equal(t, int32(0), d.closes.Load(), "not while process runs")
	close(d.release)
	require.NoError(t, <-done, "the call in progress completes")
	require.Eventually(t, func() bool { return d.closes.Load() == 1 }, 5*time.Second, time.Millisecond)
	assert.False(t, d.overlap.Load())
}

func TestHostCloseHookPanicIsRecovered(t *testing.T) {
	d := &closingDaemon{panicsOn: true}
	h, err := NewHost(d, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	assert.NotPanics(t, h.Close)
	assert.Equal(t, int32(1), d.closes.Load())
}

func TestRuntimeStopAndShutdownCloseDaemons(t *testing.T) {
	net := NewFakeNetwork()
	defer net.Close()
	rt := NewRuntime(net.NewNode(), WithWorkers(1))
	var built []*closingDaemon
	require.NoError(t, rt.RegisterFactory("c", func() (Daemon, error) {
		d := &closingDaemon{}
		built = append(built, d)
		return d, nil
	}))
	require.NoError(t, rt.Start(bg))
	a, err := rt.Spawn(bg, "c", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	_, err = rt.Spawn(bg, "c", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, a.OriginHash()))
	assert.Equal(t, int32(1), built[0].closes.Load(), "stop closes the daemon")
	assert.Equal(t, int32(0), built[1].closes.Load())
	require.NoError(t, rt.Shutdown(bg))
	assert.Equal(t, int32(1), built[1].closes.Load(), "shutdown closes the rest")
	assert.Equal(t, int32(1), built[0].closes.Load())
}

// ReceivedAt is unix nanoseconds of the delivery and never goes backwards
// between consecutive deliveries.
func TestHostReceivedAtIsWallClock(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	var prev uint64
	for i := range 1000 {
		before := time.Now().UnixNano()
		outs, err := h.Deliver(inputEvent(1, uint64(i+1), []byte("x")))
		require.NoError(t, err)
		after := time.Now().UnixNano()
		got := int64(outs[0].ReceivedAt)
		// The anchor is refreshed at least every clockRefresh; allow slack
		// for a clock adjustment within that period.
		assert.InDelta(t, float64(before+after)/2, float64(got), float64(clockRefresh))
		assert.GreaterOrEqual(t, outs[0].ReceivedAt, prev)
		prev = outs[0].ReceivedAt
	}
}

// A daemon may reuse its returned outer slice: the host keeps only the
// elements.
func TestHostDaemonMayReuseOutputSlice(t *testing.T) {
	var outer [][]byte
	h, err := NewHost(&scriptDaemon{fn: func(ev causal.Event) ([][]byte, error) {
		outer = append(outer[:0], append([]byte(nil), ev.Payload...))
		return outer, nil
	}}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o1, err := h.Deliver(inputEvent(1, 1, []byte("one")))
	require.NoError(t, err)
	o2, err := h.Deliver(inputEvent(1, 2, []byte("two")))
	require.NoError(t, err)
	assert.Equal(t, []byte("one"), o1[0].Payload)
	assert.Equal(t, []byte("two"), o2[0].Payload)
	assert.Equal(t, causal.ParentHash(o1[0].Link, []byte("one")), o2[0].Link.Parent)
}

// reentrantDaemon's Close hook calls back into the runtime, as a host
// language's finalizer may (it reads counts, delivers to other daemons).
type reentrantDaemon struct {
	echoDaemon
	rt     *Runtime
	origin uint64
	closed chan error
}

func (d *reentrantDaemon) Close() {
	_ = d.rt.DaemonCount()
	_, err := d.rt.Deliver(d.origin, inputEvent(1, 1, nil)) // its own daemon: gone
	d.closed <- err
}

// awaitClose waits for the hook; a hook run under a runtime lock deadlocks
// and never reports (the bound only turns that hang into a failure).
func awaitClose(t *testing.T, ch chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		assert.ErrorIs(t, err, want, what)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the Close hook deadlocked calling back into the runtime", what)
	}
}

func TestCloseHookMayCallBackIntoRuntime(t *testing.T) {
	net := NewFakeNetwork()
	defer net.Close()
	rt := NewRuntime(net.NewNode(), WithWorkers(1))
	require.NoError(t, rt.Start(bg))
	spawn := func() *reentrantDaemon {
		kp := newKeypair(t)
		d := &reentrantDaemon{rt: rt, origin: kp.OriginHash(), closed: make(chan error, 1)}
		_, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, d, func() (Daemon, error) { return echoDaemon{}, nil })
		require.NoError(t, err)
		return d
	}
	a, b := spawn(), spawn()
	stopped := make(chan error, 1)
	go func() { stopped <- rt.Stop(bg, a.origin) }()
	awaitClose(t, a.closed, ErrDaemonNotFound, "stop")
	require.NoError(t, <-stopped)
	shut := make(chan error, 1)
	go func() { shut <- rt.Shutdown(bg) }()
	awaitClose(t, b.closed, ErrShuttingDown, "shutdown")
	require.NoError(t, <-shut)
}

// A daemon handed to the runtime that never gets a host is closed, once,
// before the failing call returns.
func TestFailedSpawnClosesTheDaemon(t *testing.T) {
	net := NewFakeNetwork()
	defer net.Close()
	rt := NewRuntime(net.NewNode(), WithWorkers(1))
	t.Cleanup(func() { assert.NoError(t, rt.Shutdown(bg)) })
	var built []*closingDaemon
	require.NoError(t, rt.RegisterFactory("c", func() (Daemon, error) {
		d := &closingDaemon{}
		built = append(built, d)
		return d, nil
	}))
	require.NoError(t, rt.Start(bg))
	kp := newKeypair(t)
	_, err := rt.Spawn(bg, "c", kp, DaemonConfig{})
	require.NoError(t, err)
	// same origin through the caller-built path: already registered
	dup := &closingDaemon{}
	_, err = rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, dup, func() (Daemon, error) { return &closingDaemon{}, nil })
	require.ErrorIs(t, err, ErrAlreadyRegistered)
	assert.Equal(t, int32(1), dup.closes.Load())
	// a restore that fails
	bad := &failingRestoreDaemon{}
	_, err = RestoreHost(bad, kp, &causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Link{Origin: kp.OriginHash()}, State: []byte("x")}, DaemonConfig{})
	require.ErrorIs(t, err, ErrRestoreFailed)
	assert.Equal(t, int32(1), bad.closes.Load())
	assert.Equal(t, int32(0), built[0].closes.Load(), "the registered daemon is untouched")
}

type failingRestoreDaemon struct{ closingDaemon }

func (d *failingRestoreDaemon) Restore([]byte) error { return assert.AnError }

// A moved-away host closed later (the source closes it once the move is
// final) still answers daemon-moved to a caller holding it.
func TestClosedMovedHostStillAnswersMoved(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, h.BeginBuffering())
	_, err = h.Cutover(42)
	require.NoError(t, err)
	h.Close()
	_, err = h.Deliver(inputEvent(1, 1, nil))
	var moved *MovedError
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(42), moved.Node)
}
