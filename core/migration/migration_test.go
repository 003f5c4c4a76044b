package migration

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
)

// Counter at 3 on A continues at 4 on B; daemon counts A=0, B=1; the handle
// walks the phases; A keeps its factory entry, B drops its own; no record
// is left anywhere.
func TestMigrateCounterContinuesOnTarget(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "emitter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("emitter", o, compute.DaemonConfig{}))

	var phases []Phase
	seen := make(chan Phase, 64)
	opts := DefaultOpts()
	opts.Progress = func(p Progress) { seen <- p.Phase }
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	close(seen)
	for p := range seen {
		if len(phases) == 0 || phases[len(phases)-1] != p {
			phases = append(phases, p)
		}
	}
	require.NotEmpty(t, phases)
	assert.Equal(t, PhaseSnapshot, phases[0])
	assert.Contains(t, phases, PhaseTransfer)
	assert.Contains(t, phases, PhaseRestore)
	assert.Contains(t, phases, PhaseReplay)
	assert.Contains(t, phases, PhaseCutover)
	assert.Equal(t, PhaseComplete, phases[len(phases)-1])
	_, ok := h.Phase()
	assert.False(t, ok, "record gone after completion")

	assert.Equal(t, 0, a.rt.DaemonCount())
	assert.Equal(t, 1, b.rt.DaemonCount())
	outs, err := b.rt.Deliver(o, ev(4))
	require.NoError(t, err)
	require.Len(t, outs, 1)
	n, bad := count(t, b, o)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, bad)

	_, err = a.rt.Deliver(o, ev(5))
	var moved *compute.MovedError
	require.True(t, errors.As(err, &moved))
	assert.Equal(t, b.id, moved.Node)

	_, ok = a.rt.LookupFactoryEntry(o)
	assert.True(t, ok, "source keeps its factory entry")
	_, ok = b.rt.LookupFactoryEntry(o)
	assert.False(t, ok, "target drops its own entry")
	hb, ok := b.rt.LookupHost(o)
	require.True(t, ok)
	assert.False(t, hb.Keypair().IsReadOnly(), "the envelope carried the secret")
	noRecords(t, a, b)

	// And back again: A kept its entry, so no new set-up is needed.
	migrate(t, b, a, o, DefaultOpts())
	n, bad = count(t, a, o)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, bad)
	noRecords(t, a, b)
}

func TestStartMigrationRequiresReady(t *testing.T) {
	n := newTNode(t, nodeOpt{noRuntime: true})
	rt := compute.NewRuntime(n.node)
	e := Attach(rt, n.node)
	_, err := e.StartMigration(context.Background(), 1, n.id, 2)
	require.ErrorIs(t, err, compute.ErrNotReady)
	require.NoError(t, rt.Start(context.Background()))
	require.NoError(t, rt.Shutdown(context.Background()))
	_, err = e.StartMigration(context.Background(), 1, n.id, 2)
	require.ErrorIs(t, err, compute.ErrShuttingDown)
}
