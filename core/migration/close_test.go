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
