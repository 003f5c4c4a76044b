package migration

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/mesh"
	"github.com/netmesh/libnetmesh/core/mesh/memnet"
)

// On the in-memory transport with 10% loss, reordering and duplication in
// both directions, 50 migrations in a row (back and forth) complete, with
// events queued during each one and none lost.
func TestFiftyMigrationsUnderLoss(t *testing.T) {
	net := memnet.New(42)
	a, b := memPair(t, net)
	net.SetDefault(memnet.LinkConfig{Loss: 0.10, Reorder: 0.10, Duplicate: 0.10, Jitter: time.Millisecond})
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	var next atomic.Uint64
	next.Store(1)
	from, to := a, b
	for i := range 50 {
		if _, ok := to.rt.LookupFactoryEntry(o); !ok {
			require.NoError(t, to.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
		}
		deliverRange(t, from, o, next.Load(), next.Load()+4)
		next.Add(5)
		opts := DefaultOpts()
		src := from
		opts.Progress = func(p Progress) {
			if p.Phase == PhaseRestore || p.Phase == PhaseReplay {
				_, err := src.rt.Deliver(o, ev(next.Load()))
				if assert.NoError(t, err) {
					next.Add(1)
				}
			}
		}
		h, err := from.eng.StartMigrationWith(ctx10(t), o, from.id, to.id, opts)
		require.NoError(t, err, "migration %d", i)
		require.NoError(t, h.Wait(ctx10(t)), "migration %d", i)
		from, to = to, from
	}
	n, bad := count(t, from, o)
	assert.Equal(t, next.Load()-1, n)
	assert.Zero(t, bad)
	noRecords(t, a, b)
}

// The target node is closed at each phase in turn: afterwards the daemon
// exists once, on the source, deliverable, with every event processed in
// order, and no record is left.
func TestTargetCrashAtEachPhase(t *testing.T) {
	for _, phase := range []Phase{PhaseSnapshot, PhaseTransfer, PhaseRestore, PhaseReplay, PhaseCutover} {
		t.Run(phase.String(), func(t *testing.T) {
			cfg := fastCfg()
			cfg.SessionTimeout = time.Second
			a, b := newTNode(t, nodeOpt{cfg: cfg}), newTNode(t, nodeOpt{cfg: mesh.Config{PSK: cfg.PSK, HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout, RetransmitInterval: cfg.RetransmitInterval}})
			link(t, a, b)
			padBytes.Store(20_000) // three chunks, so Transfer is observable
			kp := spawn(t, a, "padded")
			o := kp.OriginHash()
			deliverRange(t, a, o, 1, 3)
			require.NoError(t, b.rt.ExpectMigration("padded", o, compute.DaemonConfig{}))
			var next atomic.Uint64
			next.Store(4)
			var closed atomic.Bool
			opts := DefaultOpts()
			opts.Progress = func(p Progress) {
				if p.Phase == phase && closed.CompareAndSwap(false, true) {
					_, err := a.rt.Deliver(o, ev(next.Load()))
					assert.NoError(t, err)
					next.Add(1)
					_ = b.node.Close()
				}
			}
			h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
			if err == nil {
				err = h.Wait(ctx10(t))
			}
			require.Error(t, err)
			requireDetail(t, err, compute.MigrationTargetUnavailable)
			stillOnSource(t, a, nil, o, next.Load())
			assert.Equal(t, 1, a.rt.DaemonCount())
			n, bad := count(t, a, o)
			assert.Equal(t, next.Load(), n)
			assert.Zero(t, bad)
			noRecords(t, a)
		})
	}
}
