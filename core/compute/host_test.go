package compute

import (
	"errors"
	"testing"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHostDeliverWrapsOutputsInChain(t *testing.T) {
	kp := newKeypair(t)
	h, err := NewHost(&scriptDaemon{fn: func(ev causal.Event) ([][]byte, error) {
		return [][]byte{[]byte("a"), []byte("bb")}, nil
	}}, kp, DaemonConfig{})
	require.NoError(t, err)
	in := inputEvent(77, 3, []byte("x"))
	outs, err := h.Deliver(in)
	require.NoError(t, err)
	require.Len(t, outs, 2)
	hz := causal.BloomBits(77)
	genesis := causal.Genesis(kp.OriginHash())
	assert.Equal(t, causal.Link{Origin: kp.OriginHash(), Horizon: hz, Sequence: 1, Parent: causal.ParentHash(genesis, nil)}, outs[0].Link)
	assert.Equal(t, causal.Link{Origin: kp.OriginHash(), Horizon: hz, Sequence: 2, Parent: causal.ParentHash(outs[0].Link, []byte("a"))}, outs[1].Link)
	assert.Equal(t, []byte("bb"), outs[1].Payload)
	assert.NotZero(t, outs[1].ReceivedAt)
	assert.Equal(t, Stats{EventsProcessed: 1, EventsEmitted: 2}, h.Stats())
	assert.Equal(t, outs[1].Link, h.ChainHead())
	seq, ok := h.horizon.Highest(77)
	assert.True(t, ok)
	assert.Equal(t, uint64(3), seq)
}

func TestHostChainSurvivesCallerReusingInputBuffer(t *testing.T) {
	kp := newKeypair(t)
	h, err := NewHost(echoDaemon{}, kp, DaemonConfig{})
	require.NoError(t, err)
	buf := []byte("first")
	o1, err := h.Deliver(inputEvent(1, 1, buf))
	require.NoError(t, err)
	copy(buf, "XXXXX") // the caller owns its buffer again after the call
	o2, err := h.Deliver(inputEvent(1, 2, buf))
	require.NoError(t, err)
	assert.Equal(t, causal.ParentHash(o1[0].Link, []byte("first")), o2[0].Link.Parent)
}

func TestHostProcessErrorRecordsHorizonAndCounts(t *testing.T) {
	h, err := NewHost(&scriptDaemon{fn: func(causal.Event) ([][]byte, error) { return nil, errUser }}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	outs, err := h.Deliver(inputEvent(5, 9, nil))
	assert.Nil(t, outs)
	require.Error(t, err)
	assert.True(t, errors.Is(err, errUser))
	assert.True(t, errors.Is(err, ErrProcessFailed))
	assert.Equal(t, KindProcessFailed, Kind(err))
	seq, ok := h.horizon.Highest(5)
	assert.True(t, ok, "horizon recorded even though process failed")
	assert.Equal(t, uint64(9), seq)
	assert.Equal(t, Stats{Errors: 1}, h.Stats())
	assert.Equal(t, uint64(0), h.ChainHead().Sequence)
}

func TestHostPanicBecomesProcessFailed(t *testing.T) {
	h, err := NewHost(&scriptDaemon{fn: func(causal.Event) ([][]byte, error) { panic("boom") }}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	_, err = h.Deliver(inputEvent(5, 1, nil))
	require.ErrorIs(t, err, ErrProcessFailed)
	assert.Contains(t, err.Error(), "boom")
	assert.Equal(t, uint64(1), h.Stats().Errors)
	// The host's lock was released: the next call works.
	_, err = h.Deliver(inputEvent(5, 2, nil))
	require.ErrorIs(t, err, ErrProcessFailed)
}

func TestHostNoOutputsLeavesChainUntouched(t *testing.T) {
	h, err := NewHost(&scriptDaemon{fn: func(causal.Event) ([][]byte, error) { return nil, nil }}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	outs, err := h.Deliver(inputEvent(5, 1, nil))
	require.NoError(t, err)
	assert.Empty(t, outs)
	assert.Equal(t, uint64(0), h.ChainHead().Sequence)
	assert.Equal(t, Stats{EventsProcessed: 1}, h.Stats())
}

func TestHostHorizonBloomCoversAllOrigins(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	var last []causal.Event
	for i, o := range []uint64{1, 2, 1, 3, 2} {
		last, err = h.Deliver(inputEvent(o, uint64(i+1), []byte{1}))
		require.NoError(t, err)
	}
	assert.Equal(t, h.horizon.Encode(), last[0].Link.Horizon)
	assert.Equal(t, causal.BloomBits(1)|causal.BloomBits(2)|causal.BloomBits(3), last[0].Link.Horizon)
}

func TestHostSnapshotAndRestore(t *testing.T) {
	kp := newKeypair(t)
	h, err := NewHost(&counterDaemon{}, kp, DaemonConfig{})
	require.NoError(t, err)
	var last []causal.Event
	for i := 1; i <= 3; i++ {
		last, err = h.Deliver(inputEvent(9, uint64(i), nil))
		require.NoError(t, err)
	}
	snap, err := h.Snapshot()
	require.NoError(t, err)
	require.NotNil(t, snap)
	assert.Equal(t, kp.EntityID(), snap.EntityID)
	assert.Equal(t, uint64(3), snap.ThroughSeq)
	assert.Equal(t, last[0].Link, snap.ChainLink)
	assert.Empty(t, snap.Bindings, "an empty ledger adds no bytes")
	assert.NotZero(t, snap.CreatedAt)
	assert.Equal(t, uint64(1), h.Stats().SnapshotsTaken)

	r, err := RestoreHost(&counterDaemon{}, kp, snap, DaemonConfig{})
	require.NoError(t, err)
	assert.Equal(t, Stats{}, r.Stats(), "stats reset on restore")
	assert.Equal(t, 0, r.horizon.Len(), "empty horizon")
	outs, err := r.Deliver(inputEvent(9, 4, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(4), counterValue(t, outs[0]))
	assert.Equal(t, uint64(4), outs[0].Link.Sequence)
	assert.Equal(t, causal.ParentHash(snap.ChainLink, snap.State), outs[0].Link.Parent, "state stands in as head payload")
}

func TestHostRestoreRejections(t *testing.T) {
	kp, other := newKeypair(t), newKeypair(t)
	h, err := NewHost(&counterDaemon{}, kp, DaemonConfig{})
	require.NoError(t, err)
	snap, err := h.Snapshot()
	require.NoError(t, err)

	_, err = RestoreHost(&counterDaemon{}, other, snap, DaemonConfig{})
	assert.ErrorIs(t, err, ErrSnapshotIdentityMismatch)

	bad := *snap
	bad.State = []byte{1}
	_, err = RestoreHost(&counterDaemon{}, kp, &bad, DaemonConfig{})
	assert.ErrorIs(t, err, ErrRestoreFailed)
	assert.ErrorIs(t, err, errBadState)

	bad = *snap
	bad.ThroughSeq = 7
	_, err = RestoreHost(&counterDaemon{}, kp, &bad, DaemonConfig{})
	assert.ErrorIs(t, err, ErrInvalidArgument)

	_, err = RestoreHost(&counterDaemon{}, kp, nil, DaemonConfig{})
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = NewHost(nil, kp, DaemonConfig{})
	assert.ErrorIs(t, err, ErrInvalidArgument)
}

func TestHostStatelessSnapshot(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	s, err := h.Snapshot()
	require.NoError(t, err)
	assert.Nil(t, s)
	assert.Equal(t, uint64(0), h.Stats().SnapshotsTaken)
	s, err = h.SnapshotForMigration()
	require.NoError(t, err)
	require.NotNil(t, s)
	assert.Empty(t, s.State)
	assert.Equal(t, uint64(1), h.Stats().SnapshotsTaken)
}

func TestHostAutoSnapshot(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{AutoSnapshotInterval: 3})
	require.NoError(t, err)
	for i := 1; i <= 2; i++ {
		_, err = h.Deliver(inputEvent(1, uint64(i), nil))
		require.NoError(t, err)
	}
	assert.Nil(t, h.LatestSnapshot())
	for i := 3; i <= 7; i++ {
		_, err = h.Deliver(inputEvent(1, uint64(i), nil))
		require.NoError(t, err)
	}
	s := h.LatestSnapshot()
	require.NotNil(t, s)
	assert.Equal(t, uint64(6), s.ThroughSeq)
	assert.Equal(t, uint64(2), h.Stats().SnapshotsTaken)
}

func TestHostLedger(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	tok := []byte{1, 2}
	require.NoError(t, h.RecordSubscription(7, "a/b", tok))
	require.NoError(t, h.RecordSubscription(8, "c", nil))
	require.NoError(t, h.RecordSubscription(7, "a/b", []byte{3})) // replaces the token
	assert.ErrorIs(t, h.RecordSubscription(7, "/bad", nil), ErrInvalidArgument)
	tok[0] = 9
	assert.Equal(t, []causal.Binding{{Publisher: 7, Channel: "a/b", Token: []byte{3}}, {Publisher: 8, Channel: "c", Token: []byte{}}},
		normalizeTokens(h.Subscriptions()))
	assert.True(t, h.ForgetSubscription(7, "a/b"))
	assert.False(t, h.ForgetSubscription(7, "a/b"))
	assert.Len(t, h.Subscriptions(), 1)
}

func normalizeTokens(bs []causal.Binding) []causal.Binding {
	for i := range bs {
		if bs[i].Token == nil {
			bs[i].Token = []byte{}
		}
	}
	return bs
}

func TestHostBufferingCutover(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	_, err = h.Deliver(inputEvent(1, 1, nil))
	require.NoError(t, err)
	require.NoError(t, h.BeginBuffering())
	assert.Equal(t, PhaseBuffering, h.Phase())
	var me *MigrationError
	require.ErrorAs(t, h.BeginBuffering(), &me)
	assert.Equal(t, MigrationAlreadyMigrating, me.Detail)

	buf := []byte("p2")
	outs, err := h.Deliver(inputEvent(1, 2, buf))
	require.NoError(t, err)
	assert.Empty(t, outs)
	copy(buf, "zz")
	_, err = h.Deliver(inputEvent(1, 3, []byte("p3")))
	require.NoError(t, err)
	assert.Equal(t, 2, h.Buffered())
	assert.Equal(t, uint64(1), h.Stats().EventsProcessed, "queued events are not processed")

	q, err := h.Cutover(42)
	require.NoError(t, err)
	require.Len(t, q, 2)
	assert.Equal(t, []byte("p2"), q[0].Payload, "queued payload was copied")
	assert.Equal(t, uint64(3), q[1].Link.Sequence)
	node, ok := h.MovedTo()
	assert.True(t, ok)
	assert.Equal(t, uint64(42), node)

	_, err = h.Deliver(inputEvent(1, 4, nil))
	var moved *MovedError
	require.ErrorAs(t, err, &moved)
	assert.Equal(t, uint64(42), moved.Node)
	assert.ErrorIs(t, err, ErrDaemonMoved)
	_, err = h.Resume(nil)
	assert.ErrorIs(t, err, ErrMigration)
}

func TestHostBufferingResumeInOrder(t *testing.T) {
	h, err := NewHost(&counterDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	require.NoError(t, h.BeginBuffering())
	for i := 3; i <= 4; i++ {
		_, err = h.Deliver(inputEvent(1, uint64(i), nil))
		require.NoError(t, err)
	}
	prefix := []causal.Event{inputEvent(1, 1, nil), inputEvent(1, 2, nil)}
	res, err := h.Resume(prefix)
	require.NoError(t, err)
	require.Len(t, res, 4)
	for i, r := range res {
		require.NoError(t, r.Err)
		assert.Equal(t, uint64(i+1), r.Input.Link.Sequence)
		assert.Equal(t, uint64(i+1), counterValue(t, r.Outputs[0]))
	}
	assert.Equal(t, PhaseNormal, h.Phase())
	assert.Equal(t, 0, h.Buffered())
	outs, err := h.Deliver(inputEvent(1, 5, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(5), counterValue(t, outs[0]))
}

func TestHostClosed(t *testing.T) {
	h, err := NewHost(echoDaemon{}, newKeypair(t), DaemonConfig{})
	require.NoError(t, err)
	h.Close()
	_, err = h.Deliver(inputEvent(1, 1, nil))
	assert.ErrorIs(t, err, ErrDaemonNotFound)
	_, err = h.Snapshot()
	assert.ErrorIs(t, err, ErrDaemonNotFound)
}
