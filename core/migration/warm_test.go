package migration

import (
	"sync"
	"testing"
	"time"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWarmerStopsAfterItsWindow(t *testing.T) {
	var w warmer
	w.keep(3 * time.Millisecond)
	require.True(t, w.running.Load())
	require.Eventually(t, func() bool { return !w.running.Load() }, 2*time.Second, time.Millisecond)
	assert.GreaterOrEqual(t, warmNow(), w.until.Load(), "it stopped only once the window was over")
	assert.Equal(t, uint64(1), w.spins.Load())
}

func TestWarmerKeepExtendsOneSpinner(t *testing.T) {
	var w warmer
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				w.keep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, uint64(1), w.spins.Load(), "concurrent keeps share one spinner")
	first := w.until.Load()
	time.Sleep(5 * time.Millisecond)
	w.keep(20 * time.Millisecond)
	assert.Greater(t, w.until.Load(), first, "a later keep moves the deadline")
	w.keep(time.Nanosecond)
	assert.Greater(t, w.until.Load(), first, "a shorter keep never shortens it")
	require.Eventually(t, func() bool { return !w.running.Load() }, 2*time.Second, time.Millisecond)
	w.keep(time.Millisecond)
	assert.Equal(t, uint64(2), w.spins.Load(), "a keep after the end starts a new spinner")
	require.Eventually(t, func() bool { return !w.running.Load() }, 2*time.Second, time.Millisecond)
}

// The orchestrator, the source and the target each warm up for a migration:
// with a third-node orchestrator every role is on its own engine.
func TestEveryRoleWarmsUp(t *testing.T) {
	a, b := pair(t)
	orch := newTNode(t, nodeOpt{})
	link(t, orch, a)
	link(t, orch, b)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.PinOrchestrator(o, orch.id)
	before := [3]uint64{orch.eng.warm.spins.Load(), a.eng.warm.spins.Load(), b.eng.warm.spins.Load()}
	h, err := orch.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, DefaultOpts())
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	assert.Greater(t, orch.eng.warm.spins.Load(), before[0], "orchestrator")
	assert.Greater(t, a.eng.warm.spins.Load(), before[1], "source (TakeSnapshot)")
	assert.Greater(t, b.eng.warm.spins.Load(), before[2], "target (chunk 0)")
}
