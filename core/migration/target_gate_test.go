package migration

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// filterNode swallows the migration messages drop selects (they are never
// sent) and counts them.
type filterNode struct {
	compute.Node
	drop    func(to uint64, m *msg.Message) bool
	dropped atomic.Int64
}

func (f *filterNode) SendSubprotocol(ctx context.Context, to uint64, id uint16, p []byte) error {
	if id == compute.SubprotocolMigration {
		if m, err := msg.Decode(p); err == nil && f.drop(to, m) {
			f.dropped.Add(1)
			return nil
		}
	}
	return f.Node.SendSubprotocol(ctx, to, id, p)
}

// Before the target has replayed anything (the source cannot have cut over
// yet), a delivery straight to the target is refused with a wrong-phase
// migration error: nothing is taken that a rollback would have to drop.
func TestTargetRefusesDirectDeliveryBeforeReplay(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	var direct atomic.Value
	opts := DefaultOpts()
	opts.Progress = func(p Progress) {
		if p.Phase == PhaseReplay { // B restored; its first batch not sent yet
			_, err := b.rt.Deliver(o, ev(1))
			direct.Store(fmtErr{err})
		}
	}
	migrate(t, a, b, o, opts)
	got, _ := direct.Load().(fmtErr)
	require.Error(t, got.err, "refused, not queued")
	var me *compute.MigrationError
	require.True(t, errors.As(got.err, &me), "typed: %v", got.err)
	assert.Equal(t, compute.MigrationWrongPhase, me.Detail)
	// The caller kept the event and delivers it now.
	_, err := b.rt.Deliver(o, ev(1))
	require.NoError(t, err)
	n, bad := count(t, b, o)
	assert.Equal(t, uint64(1), n)
	assert.Zero(t, bad)
}

type fmtErr struct{ err error }

// The target has replayed (so it accepts direct deliveries: the source may
// cut over any moment) but the migration is cancelled before cutover: the
// events the target accepted are handed back and processed on the source,
// in order, after the source's own queue. None is dropped.
func TestTargetHandsBackOnRollback(t *testing.T) {
	a, b := pair(t)
	// B's ReplayComplete never leaves: A never cuts over.
	fb := &filterNode{Node: b.node, drop: func(_ uint64, m *msg.Message) bool { return m.Type == msg.ReplayComplete }}
	b.eng.node = fb
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	deliverRange(t, a, o, 1, 4) // queued on A
	require.Eventually(t, func() bool { return fb.dropped.Load() > 0 }, 5*time.Second, time.Millisecond)
	for i := uint64(5); i <= 7; i++ {
		out, err := b.rt.Deliver(o, ev(i))
		require.NoError(t, err, "accepted behind the replay")
		assert.Empty(t, out)
	}
	require.NoError(t, h.Cancel(ctx10(t)))
	require.ErrorIs(t, h.Wait(ctx10(t)), ErrCancelled)
	require.Eventually(t, func() bool {
		hh, ok := a.rt.LookupHost(o)
		return ok && hh.Stats().EventsProcessed == 7
	}, 5*time.Second, 5*time.Millisecond, "the target's events came back to the source")
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(7), n)
	assert.Zero(t, bad, "in order, none twice")
	_, onB := b.rt.LookupHost(o)
	assert.False(t, onB)
	deliverRange(t, a, o, 8, 8)
	noRecords(t, a, b)
}

// The source (= orchestrator) vanishes after it cut over and after the
// target heard so, before ActivateTarget arrives: the target activates the
// daemon (with every event, in order) instead of rolling it back.
func TestTargetActivatesWhenOrchestratorLostAfterCutover(t *testing.T) {
	a, b := pair(t)
	fa := &filterNode{Node: a.node, drop: func(_ uint64, m *msg.Message) bool { return m.Type == msg.ActivateTarget }}
	a.eng.node = fa
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	var next atomic.Uint64
	next.Store(4)
	opts := DefaultOpts()
	opts.Progress = func(p Progress) {
		if p.Phase == PhaseReplay || p.Phase == PhaseCutover {
			for range 2 {
				_, err := a.rt.Deliver(o, ev(next.Load()))
				if assert.NoError(t, err) {
					next.Add(1)
				}
			}
		}
	}
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return fa.dropped.Load() > 0 }, 5*time.Second, time.Millisecond)
	// Every event queued on A (pre-cutover batch and cutover tail) was replayed on B.
	require.Eventually(t, func() bool {
		hh, ok := b.rt.LookupHost(o)
		return ok && hh.Stats().EventsProcessed == next.Load()-4
	}, 5*time.Second, time.Millisecond)
	ph, _ := h.Phase()
	require.Equal(t, PhaseCutover, ph)

	// A crashes.
	require.NoError(t, a.rt.Shutdown(ctx10(t)))
	require.NoError(t, a.node.Close())

	require.Eventually(t, func() bool {
		hh, ok := b.rt.LookupHost(o)
		return ok && hh.Phase() == compute.PhaseNormal && b.eng.Records() == 0
	}, 10*time.Second, 10*time.Millisecond, "the target keeps the daemon")
	deliverRange(t, b, o, next.Load(), next.Load())
	n, bad := count(t, b, o)
	assert.Equal(t, next.Load(), n)
	assert.Zero(t, bad)
}
