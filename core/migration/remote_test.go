package migration

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
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

// withOrchestrator is a source a, a target b and an orchestrator c, all linked.
func withOrchestrator(t *testing.T) (a, b, c *tnode) {
	a, b = pair(t)
	c = newTNode(t, nodeOpt{})
	link(t, c, a)
	link(t, c, b)
	return a, b, c
}

// A third node orchestrates and the target is not ready at first: the
// NotReady goes to the orchestrator, which rolls the source back (its queue
// is processed there) and retries from a fresh snapshot after the pause;
// the migration then completes with every event, in order.
func TestRemoteOrchestratorNotReadyRetry(t *testing.T) {
	a, b, c := withOrchestrator(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.SetSimulateNotReady(true)
	var attempts atomic.Int64
	opts := DefaultOpts()
	opts.Progress = func(p Progress) { attempts.Store(int64(p.Attempt)) }
	h, err := c.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	// The first attempt fails; the source resumes between attempts.
	require.Eventually(t, func() bool { return attempts.Load() >= 2 }, 5*time.Second, time.Millisecond)
	deliverRange(t, a, o, 4, 6) // queued or processed on A, whichever phase it is in
	b.eng.SetSimulateNotReady(false)
	require.NoError(t, h.Wait(ctx10(t)))
	assert.GreaterOrEqual(t, h.Progress().Attempt, 2)
	require.Eventually(t, func() bool { return b.rt.DaemonCount() == 1 && a.rt.DaemonCount() == 0 }, 5*time.Second, 5*time.Millisecond)
	deliverRange(t, b, o, 7, 7)
	n, bad := count(t, b, o)
	assert.Equal(t, uint64(7), n)
	assert.Zero(t, bad)
	noRecords(t, a, b, c)
}

// A third node orchestrates and the target has no factory entry:
// FactoryNotFound, not retried; the source resumes with its queue, and no
// party keeps a record.
func TestRemoteOrchestratorFactoryNotFound(t *testing.T) {
	a, b, c := withOrchestrator(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	h, err := c.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.FactoryNotFound)
	assert.Equal(t, 1, h.Progress().Attempt)
	r, ok := c.eng.LastFailure(o)
	require.True(t, ok)
	assert.Equal(t, msg.FactoryNotFound, r.Code)
	stillOnSource(t, a, b, o, 4)
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, bad)
	noRecords(t, a, b, c)
}

// A third node orchestrates and cancels while the target is restoring:
// the source resumes and processes what was queued, in order; the target
// rolls back once its restore returns; no record is left anywhere.
func TestRemoteOrchestratorCancel(t *testing.T) {
	a, b, c := withOrchestrator(t)
	release := make(chan struct{})
	for _, n := range []*tnode{a, b} {
		require.NoError(t, n.rt.RegisterFactory("slow", func() (compute.Daemon, error) { return &slowRestore{release: release}, nil }))
	}
	kp := spawn(t, a, "slow")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 2)
	require.NoError(t, b.rt.ExpectMigration("slow", o, compute.DaemonConfig{}))
	h, err := c.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	require.Eventually(t, func() bool { p, ok := h.Phase(); return ok && p == PhaseRestore }, 5*time.Second, time.Millisecond)
	deliverRange(t, a, o, 3, 5) // queued on A
	require.NoError(t, h.Cancel(ctx10(t)))
	err = h.Wait(ctx10(t))
	require.ErrorIs(t, err, ErrCancelled)
	requireDetail(t, err, compute.MigrationStateFailed)
	requireDetail(t, h.Cancel(ctx10(t)), compute.MigrationWrongPhase)
	stillOnSource(t, a, nil, o, 6)
	close(release) // B finishes restoring, then sees the failure and rolls back
	require.Eventually(t, func() bool { _, ok := b.rt.LookupHost(o); return !ok }, 5*time.Second, 5*time.Millisecond)
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(6), n)
	assert.Zero(t, bad)
	noRecords(t, a, b, c)
}
