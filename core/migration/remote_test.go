package migration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
)

// A third node orchestrates: TakeSnapshot to the source, chunks forwarded
// (chunk 0 checked), CutoverNotify/CleanupComplete cross the wire, and the
// source's queue reaches the target through the orchestrator.
func TestRemoteOrchestrator(t *testing.T) {
	a, b := pair(t)
	c := newTNode(t, nodeOpt{})
	link(t, c, a)
	link(t, c, b)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.PinOrchestrator(o, c.id)
	opts := DefaultOpts()
	var queued = uint64(4)
	opts.Progress = func(p Progress) {
		if p.Phase == PhaseReplay {
			_, err := a.rt.Deliver(o, ev(queued))
			if assert.NoError(t, err) {
				queued++
			}
		}
	}
	h, err := c.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	require.Eventually(t, func() bool { return b.rt.DaemonCount() == 1 && a.rt.DaemonCount() == 0 }, 5*time.Second, 5*time.Millisecond)
	deliverRange(t, b, o, queued, queued)
	n, bad := count(t, b, o)
	assert.Equal(t, queued, n)
	assert.Zero(t, bad)
	noRecords(t, a, b, c)
}
