package migration

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

func requireReason(t *testing.T, err error, code msg.ReasonCode) *compute.MigrationFailedError {
	t.Helper()
	var fe *compute.MigrationFailedError
	require.True(t, errors.As(err, &fe), "want MigrationFailedError, got %v", err)
	require.Equal(t, compute.MigrationFailureCode(code), fe.Reason.Code, "reason %v", fe.Reason)
	return fe
}

func requireDetail(t *testing.T, err error, detail string) {
	t.Helper()
	var me *compute.MigrationError
	require.True(t, errors.As(err, &me), "want MigrationError, got %v", err)
	require.Equal(t, detail, me.Detail, "error %v", err)
}

// stillOnSource checks the daemon runs, deliverable, on a only.
func stillOnSource(t *testing.T, a, b *tnode, o uint64, next uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		h, ok := a.rt.LookupHost(o)
		return ok && h.Phase() == compute.PhaseNormal
	}, 5*time.Second, 5*time.Millisecond)
	_, err := a.rt.Deliver(o, ev(next))
	require.NoError(t, err)
	if b != nil && b.rt != nil {
		_, ok := b.rt.LookupHost(o)
		require.False(t, ok, "no copy on the target")
	}
}

// Unknown target: with identity transport the missing X25519 key is hit
// first (state-failed naming it); without, the send finds no peer
// (target-unavailable). Either way no record is left, the daemon stays, and
// a retry to a real target is not AlreadyMigrating.
func TestUnknownTargetRollsBack(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 2)
	const ghost = 0xdeadbeef

	_, err := a.eng.StartMigration(ctx10(t), o, a.id, ghost)
	requireDetail(t, err, compute.MigrationStateFailed)
	assert.Contains(t, err.Error(), "X25519")
	assert.Contains(t, err.Error(), hexID(ghost))
	assert.Equal(t, 0, a.eng.Records())

	noID := DefaultOpts()
	noID.TransportIdentity = false
	_, err = a.eng.StartMigrationWith(ctx10(t), o, a.id, ghost, noID)
	requireDetail(t, err, compute.MigrationTargetUnavailable)
	assert.Equal(t, 0, a.eng.Records())
	stillOnSource(t, a, b, o, 3)

	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	migrate(t, a, b, o, DefaultOpts())
	n, bad := count(t, b, o)
	assert.Equal(t, uint64(3), n)
	assert.Zero(t, bad)
}

// Opting out of identity transport works when the target holds the
// identity (register_migration_target_identity).
func TestOptOutIdentityWithSharedIdentity(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 2)
	require.NoError(t, b.rt.RegisterMigrationTargetIdentity("counter", kp, compute.DaemonConfig{}))
	opts := DefaultOpts()
	opts.TransportIdentity = false
	migrate(t, a, b, o, opts)
	n, _ := count(t, b, o)
	assert.Equal(t, uint64(2), n)
}

// A placeholder entry and no envelope: state-failed; the daemon stays.
func TestPlaceholderWithoutEnvelopeFails(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	opts := DefaultOpts()
	opts.TransportIdentity = false
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	fe := requireReason(t, h.Wait(ctx10(t)), msg.StateFailed)
	assert.Contains(t, fe.Reason.Text, "envelope")
	stillOnSource(t, a, b, o, 1)
	noRecords(t, a, b)
}

// No factory entry on the target: FactoryNotFound, not retried.
func TestNoFactoryEntryNotRetried(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.FactoryNotFound)
	assert.Equal(t, 1, h.Progress().Attempt)
	stillOnSource(t, a, b, o, 1)
}

// The target becomes ready after 700 ms: the retry completes the migration
// after at least the first 500 ms pause.
func TestNotReadyThenReadyCompletes(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.SetSimulateNotReady(true)
	start := time.Now()
	time.AfterFunc(700*time.Millisecond, func() { b.eng.SetSimulateNotReady(false) })
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	el := time.Since(start)
	assert.GreaterOrEqual(t, el, 500*time.Millisecond)
	assert.Less(t, el, 10*time.Second)
	assert.GreaterOrEqual(t, h.Progress().Attempt, 2)
	_, ok := b.rt.LookupHost(o)
	assert.True(t, ok)
}

// Permanently not ready with a 1.5 s budget: NotReadyTimeout carrying the
// attempts (first included, at least 2).
func TestNotReadyTimeoutCountsAttempts(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.SetSimulateNotReady(true)
	opts := DefaultOpts()
	opts.RetryNotReady = 1500 * time.Millisecond
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	fe := requireReason(t, h.Wait(ctx10(t)), msg.NotReadyTimeout)
	assert.GreaterOrEqual(t, fe.Reason.Attempts, uint8(2))
	stillOnSource(t, a, b, o, 1)
	r, ok := a.eng.LastFailure(o)
	require.True(t, ok)
	assert.Equal(t, msg.NotReadyTimeout, r.Code)
}

// Retry off: NotReady surfaces verbatim, fast.
func TestRetryOffSurfacesNotReady(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.SetSimulateNotReady(true)
	opts := DefaultOpts()
	opts.NoRetry = true
	start := time.Now()
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.NotReady)
	assert.Less(t, time.Since(start), 2*time.Second)
	stillOnSource(t, a, b, o, 1)
}

// No runtime on the target: the mesh answers ComputeNotSupported, fast.
func TestNoRuntimeComputeNotSupported(t *testing.T) {
	a := newTNode(t, nodeOpt{})
	b := newTNode(t, nodeOpt{noRuntime: true})
	link(t, a, b)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	start := time.Now()
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.ComputeNotSupported)
	assert.Less(t, time.Since(start), 2*time.Second)
	stillOnSource(t, a, nil, o, 1)
}

// A failed duplicate spawn leaves the incumbent migratable.
func TestFailedDuplicateSpawnKeepsIncumbentMigratable(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	_, err := a.rt.Spawn(context.Background(), "counter", kp, compute.DaemonConfig{})
	require.ErrorIs(t, err, compute.ErrAlreadyRegistered)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	migrate(t, a, b, o, DefaultOpts())
	assert.Equal(t, 1, b.rt.DaemonCount())
}

// wait() has no deadline of its own: on a stuck peer (it swallows every
// migration message) it keeps waiting until the caller's context ends.
func TestWaitKeepsWaitingOnStuckPeer(t *testing.T) {
	a := newTNode(t, nodeOpt{})
	b := newTNode(t, nodeOpt{noRuntime: true})
	b.node.SetSubprotocolHandler(compute.SubprotocolMigration, func(uint64, []byte) {})
	link(t, a, b)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	err = h.Wait(ctx)
	require.ErrorIs(t, err, compute.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	ph, ok := h.Phase()
	require.True(t, ok, "still running")
	assert.Equal(t, PhaseRestore, ph)

	// Events delivered meanwhile are queued; Cancel resumes them on A, in order.
	deliverRange(t, a, o, 1, 5)
	require.NoError(t, h.Cancel(ctx10(t)))
	err = h.Wait(ctx10(t))
	require.ErrorIs(t, err, ErrCancelled)
	requireDetail(t, err, compute.MigrationStateFailed)
	stillOnSource(t, a, nil, o, 6)
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(6), n)
	assert.Zero(t, bad)
	assert.Equal(t, 0, a.eng.Records())
}

// A stale cached failure is cleared by a new start; shutdown clears the cache.
func TestFailureCacheClearedByStartAndShutdown(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.FactoryNotFound)
	r, ok := a.eng.LastFailure(o)
	require.True(t, ok)
	assert.Equal(t, msg.FactoryNotFound, r.Code)

	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	h, err = a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	_, ok = a.eng.LastFailure(o)
	assert.False(t, ok, "a new start clears the stale reason")
	require.NoError(t, h.Wait(ctx10(t)), "the old reason does not leak into this attempt")

	// Back to A with no entry for... A keeps its entry; make B fail instead:
	// a migration back to A from B while A simulates NotReady without retry.
	a.eng.SetSimulateNotReady(true)
	opts := DefaultOpts()
	opts.NoRetry = true
	h, err = b.eng.StartMigrationWith(ctx10(t), o, b.id, a.id, opts)
	require.NoError(t, err)
	requireReason(t, h.Wait(ctx10(t)), msg.NotReady)
	_, ok = b.eng.LastFailure(o)
	require.True(t, ok)
	require.NoError(t, b.rt.Shutdown(ctx10(t)))
	_, ok = b.eng.LastFailure(o)
	assert.False(t, ok, "shutdown clears the cache")
}

// A hook fired from a plain OS thread (locked, not a pool goroutine) can
// schedule work on the runtime's pool.
func TestHookFromPlainOSThread(t *testing.T) {
	a := newTNode(t, nodeOpt{})
	ran := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		a.eng.hook(func() { close(ran) })
	}()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("hook work never ran")
	}
}

// An envelope that does not open on the target (sealed to another key)
// is reported as identity-transport-failed.
func TestBadEnvelopeIsIdentityTransportFailed(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	// Make A seal for a wrong key: a third node's.
	c := newTNode(t, nodeOpt{})
	link(t, a, c)
	wrong, ok := a.node.PeerStaticKey(c.id)
	require.True(t, ok)
	ks := &keySwap{Node: a.node, target: b.id, key: wrong}
	a.eng.node = ks
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	fe := requireReason(t, h.Wait(ctx10(t)), msg.IdentityTransportFailed)
	assert.NotEmpty(t, fe.Reason.Text)
	stillOnSource(t, a, b, o, 1)
}

// keySwap reports a chosen X25519 key for one peer.
type keySwap struct {
	compute.Node
	target uint64
	key    [32]byte
}

func (k *keySwap) PeerStaticKey(n uint64) ([32]byte, bool) {
	if n == k.target {
		return k.key, true
	}
	return k.Node.PeerStaticKey(n)
}

// WaitWithTimeout drops the record, tells both peers so the target rolls
// back, and the daemon resumes on the source with its queue processed.
func TestWaitWithTimeoutRollsBackTarget(t *testing.T) {
	a, b := pair(t)
	release := make(chan struct{})
	require.NoError(t, b.rt.RegisterFactory("slow", func() (compute.Daemon, error) { return &slowRestore{release: release}, nil }))
	require.NoError(t, a.rt.RegisterFactory("slow", func() (compute.Daemon, error) { return &slowRestore{release: release}, nil }))
	kp := spawn(t, a, "slow")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("slow", o, compute.DaemonConfig{}))
	h, err := a.eng.StartMigration(ctx10(t), o, a.id, b.id)
	require.NoError(t, err)
	deliverRange(t, a, o, 1, 3)
	err = h.WaitWithTimeout(300 * time.Millisecond)
	requireDetail(t, err, compute.MigrationStateFailed)
	require.ErrorIs(t, err, ErrTimedOut)
	assert.Contains(t, err.Error(), "timed out")
	_, ok := h.Phase()
	assert.False(t, ok)
	close(release) // B finishes restoring, then sees the failure and rolls back
	stillOnSource(t, a, nil, o, 4)
	require.Eventually(t, func() bool { _, ok := b.rt.LookupHost(o); return !ok && b.eng.Records() == 0 }, 5*time.Second, 10*time.Millisecond)
	n, bad := count(t, a, o)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, bad)
}
