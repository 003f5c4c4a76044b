package migration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
)

// closeCounter is a counter whose Close hook (a host language's finalizer)
// is counted.
type closeCounter struct {
	counter
	closes *atomic.Int32
}

func (c *closeCounter) Close() { c.closes.Add(1) }

// spawnClosing spawns a closeCounter on n; closes counts its Close calls.
func spawnClosing(t *testing.T, n *tnode) (*identity.Keypair, *atomic.Int32) {
	t.Helper()
	kp, err := identity.Generate()
	require.NoError(t, err)
	closes := new(atomic.Int32)
	_, err = n.rt.SpawnWithDaemon(context.Background(), kp, compute.DaemonConfig{}, &closeCounter{closes: closes},
		func() (compute.Daemon, error) { return &counter{}, nil })
	require.NoError(t, err)
	return kp, closes
}

// The source closes the daemon it gave away once the migration is final
// (ActivateAck with a local orchestrator; at once after its cutover with a
// remote one, which sends nothing more), exactly once, and not before.
func TestSourceClosesMigratedAwayDaemon(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := map[bool]string{false: "local orchestrator", true: "third-node orchestrator"}[remote]
		t.Run(name, func(t *testing.T) {
			a, b := pair(t)
			orch := a
			if remote {
				orch = newTNode(t, nodeOpt{})
				link(t, orch, a)
				link(t, orch, b)
			}
			kp, closes := spawnClosing(t, a)
			o := kp.OriginHash()
			deliverRange(t, a, o, 1, 3)
			require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
			if remote {
				b.eng.PinOrchestrator(o, orch.id)
			}
			h, err := orch.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, DefaultOpts())
			require.NoError(t, err)
			require.NoError(t, h.Wait(ctx10(t)))
			noRecords(t, a, b, orch)
			require.Eventually(t, func() bool { return closes.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
			n, _ := count(t, b, o)
			assert.Equal(t, uint64(3), n)
			require.NoError(t, a.rt.Shutdown(context.Background()))
			assert.Equal(t, int32(1), closes.Load(), "exactly once")
		})
	}
}

// Engine.Phase covers every role, not only the orchestrator's: here a third
// node orchestrates, and source and target report their own view.
func TestEnginePhaseCoversSourceAndTarget(t *testing.T) {
	a, b, c := withOrchestrator(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.PinOrchestrator(o, c.id)
	for _, n := range []*tnode{a, b, c} {
		_, ok := n.eng.Phase(o)
		assert.False(t, ok, "no migration yet")
	}
	type seen struct {
		src, tgt, orch Phase
		srcOK, tgtOK   bool
	}
	var atReplay seen
	opts := DefaultOpts()
	opts.Progress = func(p Progress) {
		// Pushed on c's lane when RestoreComplete arrives, before c ships
		// the buffered events: b has registered the daemon, a waits.
		if p.Phase == PhaseReplay {
			atReplay.src, atReplay.srcOK = a.eng.Phase(o)
			atReplay.tgt, atReplay.tgtOK = b.eng.Phase(o)
			atReplay.orch, _ = c.eng.Phase(o)
		}
	}
	h, err := c.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	assert.Equal(t, seen{src: PhaseTransfer, srcOK: true, tgt: PhaseReplay, tgtOK: true, orch: PhaseReplay}, atReplay)
	noRecords(t, a, b, c)
	for _, n := range []*tnode{a, b, c} {
		_, ok := n.eng.Phase(o)
		assert.False(t, ok, "ended")
	}
}
