package compute

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

var bg = context.Background()

// setup builds a runtime on a fresh fake node. Cleanup shuts it down, closes
// the network and then checks that no goroutine leaked.
func setup(t *testing.T, opts ...Option) (*Runtime, *FakeNode, *FakeNetwork) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	net := NewFakeNetwork()
	node := net.NewNode()
	rt := NewRuntime(node, opts...)
	t.Cleanup(func() {
		assert.NoError(t, rt.Shutdown(bg))
		net.Close()
	})
	return rt, node, net
}

func readyRuntime(t *testing.T, opts ...Option) (*Runtime, *FakeNode, *FakeNetwork) {
	t.Helper()
	rt, node, net := setup(t, opts...)
	require.NoError(t, rt.RegisterFactory("echo", func() (Daemon, error) { return echoDaemon{}, nil }))
	require.NoError(t, rt.RegisterFactory("counter", func() (Daemon, error) { return &counterDaemon{}, nil }))
	require.NoError(t, rt.Start(bg))
	return rt, node, net
}

func TestSpawnBeforeStartIsNotReady(t *testing.T) {
	rt, _, _ := setup(t)
	require.NoError(t, rt.RegisterFactory("echo", func() (Daemon, error) { return echoDaemon{}, nil }))
	_, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	assert.ErrorIs(t, err, ErrNotReady)
	assert.Equal(t, KindNotReady, Kind(err))
	_, err = rt.Deliver(1, inputEvent(1, 1, nil))
	assert.ErrorIs(t, err, ErrNotReady)
	assert.ErrorIs(t, rt.Stop(bg, 1), ErrNotReady)
	assert.False(t, rt.IsReady())
	assert.Equal(t, StateRegistering, rt.State())
}

func TestStartIsIdempotent(t *testing.T) {
	rt, node, _ := setup(t)
	require.NoError(t, rt.Start(bg))
	require.NoError(t, rt.Start(bg))
	assert.True(t, rt.IsReady())
	assert.True(t, node.HasHandler(SubprotocolMigration))
}

func TestAfterShutdownEverythingIsShuttingDown(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	require.NoError(t, rt.Shutdown(bg))
	require.NoError(t, rt.Shutdown(bg), "idempotent")
	_, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	assert.ErrorIs(t, err, ErrShuttingDown)
	assert.ErrorIs(t, rt.RegisterFactory("late", func() (Daemon, error) { return echoDaemon{}, nil }), ErrShuttingDown)
	assert.ErrorIs(t, rt.Start(bg), ErrShuttingDown)
	assert.ErrorIs(t, rt.ExpectMigration("echo", 1, DaemonConfig{}), ErrShuttingDown)
	assert.ErrorIs(t, rt.RegisterMigrationTargetIdentity("echo", newKeypair(t), DaemonConfig{}), ErrShuttingDown)
	assert.ErrorIs(t, rt.Submit(func() {}), ErrShuttingDown)
	assert.NoError(t, rt.Stop(bg, 12345), "stop during shutdown is a no-op")
	assert.Equal(t, KindShuttingDown, Kind(rt.Start(bg)))
}

func TestDuplicateKindRejected(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	err := rt.RegisterFactory("echo", func() (Daemon, error) { return echoDaemon{}, nil })
	assert.ErrorIs(t, err, ErrFactoryAlreadyRegistered)
	assert.Equal(t, KindFactoryAlreadyRegistered, Kind(err))
}

func TestNewKindAfterStart(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	require.NoError(t, rt.RegisterFactory("late", func() (Daemon, error) { return echoDaemon{}, nil }))
	_, err := rt.Spawn(bg, "late", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
}

func TestEchoRoundTrip(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "echo", kp, DaemonConfig{})
	require.NoError(t, err)
	assert.Equal(t, kp.OriginHash(), h.OriginHash())
	assert.Equal(t, kp.EntityID(), h.EntityID())
	outs, err := rt.Deliver(h.OriginHash(), inputEvent(99, 1, []byte("hello")))
	require.NoError(t, err)
	require.Len(t, outs, 1)
	assert.Equal(t, []byte("hello"), outs[0].Payload)
	assert.Equal(t, kp.OriginHash(), outs[0].Link.Origin)
	assert.Equal(t, uint64(1), outs[0].Link.Sequence)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 1}, st)
	snap, err := rt.Snapshot(bg, h.OriginHash())
	require.NoError(t, err)
	assert.Nil(t, snap, "echo is stateless")
}

func TestCounterSnapshotStopRestore(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	for i := uint64(1); i <= 5; i++ {
		outs, err := rt.Deliver(h.OriginHash(), inputEvent(7, i, nil))
		require.NoError(t, err)
		assert.Equal(t, i, counterValue(t, outs[0]))
	}
	snap, err := h.Snapshot(bg)
	require.NoError(t, err)
	require.NotNil(t, snap)
	assert.Equal(t, uint64(5), snap.ThroughSeq)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 5, EventsEmitted: 5, SnapshotsTaken: 1}, st)

	// Through the wire form, as a migration would carry it.
	decoded, err := causal.DecodeSnapshot(snap.Encode())
	require.NoError(t, err)

	require.NoError(t, rt.Stop(bg, h.OriginHash()))
	assert.Equal(t, 0, rt.DaemonCount())
	h2, err := rt.SpawnFromSnapshot(bg, "counter", kp, decoded, DaemonConfig{})
	require.NoError(t, err)
	outs, err := rt.Deliver(h2.OriginHash(), inputEvent(7, 6, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(6), counterValue(t, outs[0]))
	assert.Equal(t, uint64(6), outs[0].Link.Sequence)
	st, err = h2.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 1}, st, "stats reset on restore")
}

func TestSnapshotIdentityMismatchHasNoSideEffects(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp, other := newKeypair(t), newKeypair(t)
	h, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	snap, err := h.Snapshot(bg)
	require.NoError(t, err)
	var calls atomic.Int64
	require.NoError(t, rt.RegisterFactory("counted", countingFactory(&calls, func() Daemon { return &counterDaemon{} })))
	_, err = rt.SpawnFromSnapshot(bg, "counted", other, snap, DaemonConfig{})
	assert.ErrorIs(t, err, ErrSnapshotIdentityMismatch)
	assert.Equal(t, KindSnapshotIdentityMismatch, Kind(err))
	_, err = rt.SpawnFromSnapshotWithDaemon(bg, other, snap, DaemonConfig{}, &counterDaemon{}, countingFactory(&calls, func() Daemon { return &counterDaemon{} }))
	assert.ErrorIs(t, err, ErrSnapshotIdentityMismatch)
	assert.Equal(t, int64(0), calls.Load(), "no factory call")
	assert.Equal(t, 1, rt.DaemonCount())
	_, ok := rt.LookupFactoryEntry(other.OriginHash())
	assert.False(t, ok)
	_, err = rt.SpawnFromSnapshot(bg, "nope", other, snap, DaemonConfig{})
	assert.ErrorIs(t, err, ErrFactoryNotFound, "kind is looked up first")
}

func TestLow32CollidingOriginsAreDistinct(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	// Two hosts whose origins share the low 32 bits, inserted as a
	// migration target would.
	kpA, kpB := newKeypair(t), newKeypair(t)
	const low = 0x0000_0000_dead_beef
	a := newHost(&counterDaemon{}, kpA, 0x1111_1111_0000_0000|low, DaemonConfig{}, causal.NewChain(0x1111_1111_0000_0000|low))
	b := newHost(&counterDaemon{n: 100}, kpB, 0x2222_2222_0000_0000|low, DaemonConfig{}, causal.NewChain(0x2222_2222_0000_0000|low))
	require.NoError(t, rt.InsertHost(a))
	require.NoError(t, rt.InsertHost(b))
	assert.Equal(t, 2, rt.DaemonCount())
	outA, err := rt.Deliver(a.Origin(), inputEvent(1, 1, nil))
	require.NoError(t, err)
	outB, err := rt.Deliver(b.Origin(), inputEvent(1, 1, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), counterValue(t, outA[0]))
	assert.Equal(t, uint64(101), counterValue(t, outB[0]))
	assert.Equal(t, a.Origin(), outA[0].Link.Origin)
	assert.Equal(t, b.Origin(), outB[0].Link.Origin)
	require.NoError(t, rt.Stop(bg, a.Origin()))
	_, err = rt.Deliver(b.Origin(), inputEvent(1, 2, nil))
	require.NoError(t, err, "stopping one leaves the other")
	_, err = rt.Deliver(a.Origin(), inputEvent(1, 2, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)
}

func TestHandlerInstalledBeforeReadyIsVisible(t *testing.T) {
	for trial := 0; trial < 64; trial++ {
		net := NewFakeNetwork()
		node := net.NewNode()
		rt := NewRuntime(node, WithWorkers(1))
		var sawReadyWithoutHandler atomic.Bool
		stop := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				if rt.IsReady() {
					if !node.HasHandler(SubprotocolMigration) {
						sawReadyWithoutHandler.Store(true)
					}
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		require.NoError(t, rt.Start(bg))
		close(stop)
		<-watched
		assert.False(t, sawReadyWithoutHandler.Load(), "trial %d", trial)
		require.NoError(t, rt.Shutdown(bg))
		net.Close()
	}
	goleak.VerifyNone(t)
}

func TestConcurrentRegistrationsExactlyOneWins(t *testing.T) {
	rt, _, _ := setup(t)
	var wins, dups atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := rt.RegisterFactory("same", func() (Daemon, error) { return echoDaemon{}, nil })
			if err == nil {
				wins.Add(1)
			} else if errors.Is(err, ErrFactoryAlreadyRegistered) {
				dups.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int64(1), wins.Load())
	assert.Equal(t, int64(31), dups.Load())
}

// waitState spins until rt reaches s (the racing goroutine got there).
func waitState(rt *Runtime, s State) {
	for rt.State() != s {
		runtimeGosched()
	}
}

func TestStartLosingToShutdownLeavesNoHandler(t *testing.T) {
	rt, node, _ := setup(t)
	reached, release := make(chan struct{}), make(chan struct{})
	rt.testStartStall = func() {
		close(reached)
		<-release
	}
	startErr := make(chan error, 1)
	go func() { startErr <- rt.Start(bg) }()
	<-reached
	require.True(t, node.HasHandler(SubprotocolMigration), "installed before the CAS")
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- rt.Shutdown(bg) }()
	waitState(rt, StateShuttingDown)
	close(release)
	assert.ErrorIs(t, <-startErr, ErrShuttingDown)
	require.NoError(t, <-shutdownErr)
	assert.False(t, node.HasHandler(SubprotocolMigration))
	assert.False(t, rt.IsReady())
}

func TestShutdownRemovesHandler(t *testing.T) {
	rt, node, _ := readyRuntime(t)
	require.True(t, node.HasHandler(SubprotocolMigration))
	require.NoError(t, rt.Shutdown(bg))
	assert.False(t, node.HasHandler(SubprotocolMigration))
}

func TestSpawnRacingShutdownLeavesNothing(t *testing.T) {
	for _, variant := range []string{"spawn", "spawn-with-daemon"} {
		t.Run(variant, func(t *testing.T) {
			rt, _, _ := readyRuntime(t)
			reached, release := make(chan struct{}), make(chan struct{})
			rt.testSpawnStall = func() {
				close(reached)
				<-release
			}
			kp := newKeypair(t)
			spawnErr := make(chan error, 1)
			go func() {
				var err error
				if variant == "spawn" {
					_, err = rt.Spawn(bg, "counter", kp, DaemonConfig{})
				} else {
					_, err = rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
				}
				spawnErr <- err
			}()
			<-reached
			require.NoError(t, rt.Shutdown(bg))
			close(release)
			assert.ErrorIs(t, <-spawnErr, ErrShuttingDown)
			assert.Equal(t, 0, rt.DaemonCount())
			_, ok := rt.LookupFactoryEntry(kp.OriginHash())
			assert.False(t, ok)
		})
	}
}

func TestSpawnRacingShutdownAfterInsertRollsBack(t *testing.T) {
	// Shutdown runs inside restore: after the factory entry went in (the
	// sweep drops it) and before the host goes in, so only the post-insert
	// fence can catch it.
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	var once sync.Once
	_, err := rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, &scriptDaemon{}, func() (Daemon, error) { return nil, nil })
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, kp.OriginHash()))
	restoreRan := false
	d := &scriptDaemon{restore: func([]byte) error {
		once.Do(func() { require.NoError(t, rt.Shutdown(bg)) })
		restoreRan = true
		return nil
	}}
	snap := &causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Genesis(kp.OriginHash())}
	_, err = rt.SpawnFromSnapshotWithDaemon(bg, kp, snap, DaemonConfig{}, d, func() (Daemon, error) { return nil, nil })
	assert.True(t, restoreRan)
	assert.ErrorIs(t, err, ErrShuttingDown)
	assert.Equal(t, 0, rt.DaemonCount())
	_, ok := rt.LookupFactoryEntry(kp.OriginHash())
	assert.False(t, ok)
}

func TestUnknownKind(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	_, err := rt.Spawn(bg, "nope", newKeypair(t), DaemonConfig{})
	assert.ErrorIs(t, err, ErrFactoryNotFound)
	assert.Equal(t, KindFactoryNotFound, Kind(err))
	assert.ErrorIs(t, rt.ExpectMigration("nope", 1, DaemonConfig{}), ErrFactoryNotFound)
	assert.ErrorIs(t, rt.RegisterMigrationTargetIdentity("nope", newKeypair(t), DaemonConfig{}), ErrFactoryNotFound)
}

func TestSameIdentityTwiceRejected(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	_, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	entry, ok := rt.LookupFactoryEntry(kp.OriginHash())
	require.True(t, ok)
	_, err = rt.Spawn(bg, "echo", kp, DaemonConfig{})
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	assert.Equal(t, KindAlreadyRegistered, Kind(err))
	_, err = rt.SpawnWithDaemon(bg, kp, DaemonConfig{}, echoDaemon{}, func() (Daemon, error) { return echoDaemon{}, nil })
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	assert.Equal(t, 1, rt.DaemonCount())
	after, ok := rt.LookupFactoryEntry(kp.OriginHash())
	require.True(t, ok, "the incumbent keeps its factory entry")
	assert.Same(t, entry, after)
	assert.Equal(t, "counter", after.Kind)
}

func TestSpawnOverPlaceholderRejected(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	require.NoError(t, rt.ExpectMigration("counter", kp.OriginHash(), DaemonConfig{}))
	_, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	e, ok := rt.LookupFactoryEntry(kp.OriginHash())
	require.True(t, ok)
	assert.True(t, e.IsPlaceholder())
	assert.Equal(t, 0, rt.DaemonCount())
}

func TestDuplicateRestoreKeepsIncumbent(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 1, nil))
	require.NoError(t, err)
	snap, err := h.Snapshot(bg)
	require.NoError(t, err)
	entry, _ := rt.LookupFactoryEntry(kp.OriginHash())
	_, err = rt.SpawnFromSnapshot(bg, "counter", kp, snap, DaemonConfig{})
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	_, err = rt.SpawnFromSnapshotWithDaemon(bg, kp, snap, DaemonConfig{}, &counterDaemon{}, func() (Daemon, error) { return &counterDaemon{}, nil })
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	outs, err := rt.Deliver(h.OriginHash(), inputEvent(1, 2, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), counterValue(t, outs[0]), "incumbent undisturbed")
	after, ok := rt.LookupFactoryEntry(kp.OriginHash())
	require.True(t, ok)
	assert.Same(t, entry, after)
}

func TestRestoreFailureRollsBack(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	kp := newKeypair(t)
	snap := &causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Genesis(kp.OriginHash()), State: []byte{1, 2}}
	_, err := rt.SpawnFromSnapshot(bg, "counter", kp, snap, DaemonConfig{})
	assert.ErrorIs(t, err, ErrRestoreFailed)
	assert.ErrorIs(t, err, errBadState)
	assert.Equal(t, KindRestoreFailed, Kind(err))
	badLedger := &causal.Snapshot{EntityID: kp.EntityID(), ChainLink: causal.Genesis(kp.OriginHash()), State: make([]byte, 8), Bindings: []byte{9}}
	_, err = rt.SpawnFromSnapshot(bg, "counter", kp, badLedger, DaemonConfig{})
	assert.ErrorIs(t, err, ErrRestoreFailed, "bad ledger bytes fail the restore")
	assert.Equal(t, 0, rt.DaemonCount())
	_, ok := rt.LookupFactoryEntry(kp.OriginHash())
	assert.False(t, ok)
	_, err = rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err, "nothing left behind")
}

func TestDuplicateExpectMigrationRejected(t *testing.T) {
	rt, _, _ := setup(t) // allowed in Registering
	require.NoError(t, rt.RegisterFactory("counter", func() (Daemon, error) { return &counterDaemon{}, nil }))
	require.NoError(t, rt.ExpectMigration("counter", 42, DaemonConfig{}))
	err := rt.ExpectMigration("counter", 42, DaemonConfig{})
	assert.ErrorIs(t, err, ErrAlreadyRegistered)
	kp := newKeypair(t)
	require.NoError(t, rt.RegisterMigrationTargetIdentity("counter", kp, DaemonConfig{AutoSnapshotInterval: 3}))
	assert.ErrorIs(t, rt.RegisterMigrationTargetIdentity("counter", kp, DaemonConfig{}), ErrAlreadyRegistered)
	assert.ErrorIs(t, rt.ExpectMigration("counter", kp.OriginHash(), DaemonConfig{}), ErrAlreadyRegistered)
	e, ok := rt.LookupFactoryEntry(kp.OriginHash())
	require.True(t, ok)
	assert.False(t, e.IsPlaceholder())
	assert.Equal(t, uint64(3), e.Config.AutoSnapshotInterval)
	p, ok := rt.LookupFactoryEntry(42)
	require.True(t, ok)
	assert.True(t, p.IsPlaceholder())
}

func TestStopRemovesThenDeliverNotFound(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "echo", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, h.OriginHash()))
	assert.Equal(t, 0, rt.DaemonCount())
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 1, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	assert.Equal(t, KindDaemonNotFound, Kind(err))
	err = rt.Stop(bg, h.OriginHash())
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	_, err = h.Stats()
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	_, ok := rt.LookupFactoryEntry(h.OriginHash())
	assert.False(t, ok, "stop drops the factory entry")
}

func TestShutdownStopsAll(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var hosts []*DaemonHost
	for i := 0; i < 5; i++ {
		h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		host, ok := rt.LookupHost(h.OriginHash())
		require.True(t, ok)
		hosts = append(hosts, host)
	}
	require.NoError(t, rt.ExpectMigration("counter", 77, DaemonConfig{}))
	require.NoError(t, rt.Shutdown(bg))
	assert.Equal(t, 0, rt.DaemonCount())
	_, ok := rt.LookupFactoryEntry(77)
	assert.False(t, ok)
	for _, h := range hosts {
		_, err := h.Deliver(inputEvent(1, 1, nil))
		assert.ErrorIs(t, err, ErrDaemonNotFound, "a host held elsewhere is stopped too")
	}
}

func TestFactoryRunsExactlyOncePerSpawn(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var calls atomic.Int64
	require.NoError(t, rt.RegisterFactory("counted", countingFactory(&calls, func() Daemon { return &counterDaemon{} })))
	for i := 1; i <= 3; i++ {
		_, err := rt.Spawn(bg, "counted", newKeypair(t), DaemonConfig{})
		require.NoError(t, err)
		assert.Equal(t, int64(i), calls.Load())
	}
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "counted", kp, DaemonConfig{})
	require.NoError(t, err)
	snap, err := h.Snapshot(bg)
	require.NoError(t, err)
	require.NoError(t, rt.Stop(bg, kp.OriginHash()))
	before := calls.Load()
	_, err = rt.SpawnFromSnapshot(bg, "counted", kp, snap, DaemonConfig{})
	require.NoError(t, err)
	assert.Equal(t, before+1, calls.Load())
}

func TestFactoryFailures(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	require.NoError(t, rt.RegisterFactory("err", func() (Daemon, error) { return nil, errUser }))
	require.NoError(t, rt.RegisterFactory("panic", func() (Daemon, error) { panic("nope") }))
	require.NoError(t, rt.RegisterFactory("nil", func() (Daemon, error) { return nil, nil }))
	for _, k := range []string{"err", "panic", "nil"} {
		_, err := rt.Spawn(bg, k, newKeypair(t), DaemonConfig{})
		assert.ErrorIs(t, err, ErrProcessFailed, k)
	}
	assert.Equal(t, 0, rt.DaemonCount())
}

func TestStatsAndAutoSnapshotThroughRuntime(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	require.NoError(t, rt.RegisterFactory("flaky", func() (Daemon, error) {
		return &scriptDaemon{fn: func(ev causal.Event) ([][]byte, error) {
			if ev.Link.Sequence%2 == 0 {
				return nil, errUser
			}
			return [][]byte{{1}, {2}}, nil
		}}, nil
	}))
	f, err := rt.Spawn(bg, "flaky", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	for i := uint64(1); i <= 4; i++ {
		_, err := rt.Deliver(f.OriginHash(), inputEvent(1, i, nil))
		if i%2 == 0 {
			assert.ErrorIs(t, err, errUser)
		} else {
			assert.NoError(t, err)
		}
	}
	st, err := f.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{EventsProcessed: 2, EventsEmitted: 4, Errors: 2}, st)

	c, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{AutoSnapshotInterval: 2})
	require.NoError(t, err)
	for i := uint64(1); i <= 5; i++ {
		_, err := rt.Deliver(c.OriginHash(), inputEvent(1, i, nil))
		require.NoError(t, err)
	}
	latest, err := c.LatestSnapshot()
	require.NoError(t, err)
	require.NotNil(t, latest)
	assert.Equal(t, uint64(4), latest.ThroughSeq)
	_, err = rt.Snapshot(bg, c.OriginHash())
	require.NoError(t, err)
	st, err = c.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(3), st.SnapshotsTaken)
}

func TestObservers(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	var seen []uint64
	var other int
	cancel := rt.OnDelivered(h.OriginHash(), func(ev causal.Event) {
		// Outside any lock: calling back into the runtime is fine.
		_, err := h.Stats()
		assert.NoError(t, err)
		seen = append(seen, ev.Link.Sequence)
	})
	cancelOther := rt.OnDelivered(h.OriginHash()+1, func(causal.Event) { other++ })
	defer cancelOther()
	for i := uint64(1); i <= 3; i++ {
		_, err := rt.Deliver(h.OriginHash(), inputEvent(5, i, nil))
		require.NoError(t, err)
	}
	cancel()
	cancel()
	_, err = rt.Deliver(h.OriginHash(), inputEvent(5, 4, nil))
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3}, seen)
	assert.Equal(t, 0, other)

	// Not fired when process fails.
	require.NoError(t, rt.RegisterFactory("fail", func() (Daemon, error) {
		return &scriptDaemon{fn: func(causal.Event) ([][]byte, error) { return nil, errUser }}, nil
	}))
	fh, err := rt.Spawn(bg, "fail", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	fired := false
	defer rt.OnDelivered(fh.OriginHash(), func(causal.Event) { fired = true })()
	_, err = rt.Deliver(fh.OriginHash(), inputEvent(5, 1, nil))
	require.Error(t, err)
	assert.False(t, fired)
}

func TestSubscribeUnsubscribeLedger(t *testing.T) {
	rt, node, net := readyRuntime(t)
	pub := net.NewNode()
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	o := h.OriginHash()
	tok := make([]byte, 169)
	tok[0] = 7

	require.NoError(t, rt.SubscribeChannel(bg, o, pub.NodeID(), "sensors/temp", tok))
	require.NoError(t, rt.SubscribeChannel(bg, o, pub.NodeID(), "logs", nil))
	assert.Equal(t, []uint64{node.NodeID()}, net.Roster(pub.NodeID(), "sensors/temp"))
	subs, err := rt.Subscriptions(o)
	require.NoError(t, err)
	require.Len(t, subs, 2)
	assert.Equal(t, causal.Binding{Publisher: pub.NodeID(), Channel: "sensors/temp", Token: tok}, subs[0])
	assert.Equal(t, "logs", subs[1].Channel)
	assert.Nil(t, subs[1].Token)

	// Wire failure: the ledger does not change.
	node.FailChannels(errors.New("wire down"))
	err = rt.SubscribeChannel(bg, o, pub.NodeID(), "other", nil)
	assert.ErrorIs(t, err, ErrProcessFailed)
	err = rt.UnsubscribeChannel(bg, o, pub.NodeID(), "logs")
	assert.Error(t, err)
	subs, _ = rt.Subscriptions(o)
	assert.Len(t, subs, 2)
	node.FailChannels(nil)

	// Unknown publisher: wire error, nothing recorded.
	err = rt.SubscribeChannel(bg, o, 0xdead, "x", nil)
	assert.True(t, IsPeerUnavailable(err))
	subs, _ = rt.Subscriptions(o)
	assert.Len(t, subs, 2)

	require.NoError(t, rt.UnsubscribeChannel(bg, o, pub.NodeID(), "logs"))
	subs, _ = rt.Subscriptions(o)
	require.Len(t, subs, 1)
	assert.Equal(t, "sensors/temp", subs[0].Channel)

	// Argument and existence checks.
	assert.ErrorIs(t, rt.SubscribeChannel(bg, o, pub.NodeID(), "Bad Name", nil), ErrInvalidArgument)
	assert.ErrorIs(t, rt.SubscribeChannel(bg, 1234, pub.NodeID(), "x", nil), ErrDaemonNotFound)
	assert.ErrorIs(t, rt.UnsubscribeChannel(bg, 1234, pub.NodeID(), "x"), ErrDaemonNotFound)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	assert.ErrorIs(t, rt.SubscribeChannel(ctx, o, pub.NodeID(), "y", nil), ErrTimeout)
}

func TestLedgerRidesTheSnapshot(t *testing.T) {
	rt, _, net := readyRuntime(t)
	pub := net.NewNode()
	kp := newKeypair(t)
	h, err := rt.Spawn(bg, "counter", kp, DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, rt.SubscribeChannel(bg, h.OriginHash(), pub.NodeID(), "a/b", []byte{1, 2, 3}))
	require.NoError(t, rt.SubscribeChannel(bg, h.OriginHash(), pub.NodeID(), "c", nil))
	snap, err := rt.Snapshot(bg, h.OriginHash())
	require.NoError(t, err)
	assert.NotEmpty(t, snap.Bindings)
	wire := snap.Encode()
	require.NoError(t, rt.Stop(bg, h.OriginHash()))

	decoded, err := causal.DecodeSnapshot(wire)
	require.NoError(t, err)
	h2, err := rt.SpawnFromSnapshot(bg, "counter", kp, decoded, DaemonConfig{})
	require.NoError(t, err)
	subs, err := rt.Subscriptions(h2.OriginHash())
	require.NoError(t, err)
	assert.Equal(t, []causal.Binding{
		{Publisher: pub.NodeID(), Channel: "a/b", Token: []byte{1, 2, 3}},
		{Publisher: pub.NodeID(), Channel: "c"},
	}, subs)
}

func TestEmptyLedgerAddsNoBytes(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	snap, err := rt.Snapshot(bg, h.OriginHash())
	require.NoError(t, err)
	assert.Len(t, snap.Encode(), causal.SnapshotOverhead+8)
}

func TestMovedDaemonThroughRuntime(t *testing.T) {
	rt, _, _ := readyRuntime(t)
	var sunk [][]causal.Event
	rt.SetOutputSink(func(origin uint64, outs []causal.Event) { sunk = append(sunk, outs) })
	h, err := rt.Spawn(bg, "counter", newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	host, ok := rt.LookupHost(h.OriginHash())
	require.True(t, ok)

	// A failed migration: queued events are processed on the source.
	require.NoError(t, host.BeginBuffering())
	outs, err := rt.Deliver(h.OriginHash(), inputEvent(1, 1, nil))
	require.NoError(t, err)
	assert.Empty(t, outs)
	var observed int
	defer rt.OnDelivered(h.OriginHash(), func(causal.Event) { observed++ })()
	require.NoError(t, rt.DrainHost(host, nil))
	require.Len(t, sunk, 1)
	assert.Equal(t, uint64(1), counterValue(t, sunk[0][0]))
	assert.Equal(t, 1, observed)

	// A successful one: cutover, removal, then daemon-moved.
	require.NoError(t, host.BeginBuffering())
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 2, nil))
	require.NoError(t, err)
	q, err := host.Cutover(0xbeef)
	require.NoError(t, err)
	assert.Len(t, q, 1)
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 3, nil))
	var moved *MovedError
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(0xbeef), moved.Node)
	require.True(t, rt.RemoveHost(host))
	assert.False(t, rt.RemoveHost(host))
	assert.Equal(t, 0, rt.DaemonCount())
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 4, nil))
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(0xbeef), moved.Node)
	assert.Equal(t, KindDaemonMoved, Kind(err))
	_, ok = rt.LookupFactoryEntry(h.OriginHash())
	assert.True(t, ok, "source keeps its factory entry")

	// Coming back clears the tombstone.
	back, err := NewHost(&counterDaemon{}, host.Keypair(), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, rt.InsertHost(back))
	assert.ErrorIs(t, rt.InsertHost(back), ErrAlreadyRegistered)
	_, err = rt.Deliver(h.OriginHash(), inputEvent(1, 5, nil))
	require.NoError(t, err)
}

func TestMigrationHandlerDispatch(t *testing.T) {
	rt, node, net := readyRuntime(t)
	peer := net.NewNode()
	got := make(chan string, 4)
	h := &recordingHandler{got: got}
	rt.SetMigrationHandler(h)
	require.NoError(t, peer.SendSubprotocol(bg, node.NodeID(), SubprotocolMigration, []byte{5, 1}))
	assert.Equal(t, fmt.Sprintf("%x:0501", peer.NodeID()), <-got)
	require.NoError(t, rt.Shutdown(bg))
	assert.True(t, h.shutdown.Load())
}

type recordingHandler struct {
	got      chan string
	shutdown atomic.Bool
}

func (r *recordingHandler) HandleMigrationMessage(from uint64, payload []byte) {
	r.got <- fmt.Sprintf("%x:%x", from, payload)
}
func (r *recordingHandler) RuntimeShutdown() { r.shutdown.Store(true) }

func TestFakeNodeComputeNotSupportedWithoutHandler(t *testing.T) {
	_, _, net := setup(t)
	a, b := net.NewNode(), net.NewNode()
	got := make(chan []byte, 1)
	a.SetSubprotocolHandler(SubprotocolMigration, func(from uint64, p []byte) { got <- p })
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0}
	require.NoError(t, a.SendSubprotocol(bg, b.NodeID(), SubprotocolMigration, msg))
	assert.Equal(t, []byte{6, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0}, <-got)
	a.FailSends(true)
	err := a.SendSubprotocol(bg, b.NodeID(), SubprotocolMigration, msg)
	assert.True(t, IsPeerUnavailable(err))
	assert.True(t, IsPeerUnavailable(b.SendSubprotocol(bg, 12345, SubprotocolMigration, msg)))
	_, ok := a.PeerStaticKey(b.NodeID())
	assert.True(t, ok)
}
