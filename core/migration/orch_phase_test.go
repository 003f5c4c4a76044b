package migration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// laneBarrier returns once every job queued on origin's lane of e before
// the call has run.
func laneBarrier(e *Engine, origin uint64) {
	done := make(chan struct{})
	e.do(origin, func() { close(done) })
	<-done
}

// slowTakeSnapshot sends TakeSnapshot and then, before returning to the
// orchestrator, runs after: the way a descheduled StartMigrationWith caller
// lets the source, the target and the orchestrator's lane run ahead of it.
type slowTakeSnapshot struct {
	compute.Node
	after func()
}

func (s *slowTakeSnapshot) SendSubprotocol(ctx context.Context, to uint64, id uint16, p []byte) error {
	err := s.Node.SendSubprotocol(ctx, to, id, p)
	if err == nil && id == compute.SubprotocolMigration && len(p) > 0 && msg.Type(p[0]) == msg.TakeSnapshot {
		s.after()
	}
	return err
}

// seenHandler passes migration messages to the engine and reports each
// RestoreComplete once it is queued on the engine's lane.
type seenHandler struct {
	*Engine
	restored chan struct{}
}

func (h *seenHandler) HandleMigrationMessage(from uint64, payload []byte) {
	h.Engine.HandleMigrationMessage(from, payload)
	if len(payload) > 0 && msg.Type(payload[0]) == msg.RestoreComplete {
		select {
		case h.restored <- struct{}{}:
		default:
		}
	}
}

// With a remote source, the source, the target and the orchestrator's own
// lane can all run before StartMigrationWith's caller gets past sending
// TakeSnapshot. The target's RestoreComplete must still count: the
// migration completes and, once Wait returns, the target takes deliveries
// (before: the report found the migration in Snapshot and was dropped, the
// target stayed Buffering with Refuse rules until the stall timeout, and a
// delivery there got wrong-phase "still arriving").
func TestRemoteSourceRepliesBeforeStartReturns(t *testing.T) {
	t.Run("target orchestrates", func(t *testing.T) {
		a, b := pair(t)
		kp := spawn(t, a, "counter")
		o := kp.OriginHash()
		deliverRange(t, a, o, 1, 3)
		require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
		b.eng.node = &slowTakeSnapshot{Node: b.node, after: func() {
			// B restores on its lane and queues RestoreComplete there.
			require.Eventually(t, func() bool { _, ok := b.rt.LookupHost(o); return ok }, 5*time.Second, time.Millisecond)
			laneBarrier(b.eng, o) // the restore job has ended: RestoreComplete is queued
			laneBarrier(b.eng, o) // ... and handled
		}}
		deliverAfterWait(t, b, b, a, o)
	})
	t.Run("third node orchestrates", func(t *testing.T) {
		a, b, c := withOrchestrator(t)
		kp := spawn(t, a, "counter")
		o := kp.OriginHash()
		deliverRange(t, a, o, 1, 3)
		require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
		b.eng.PinOrchestrator(o, c.id)
		seen := &seenHandler{Engine: c.eng, restored: make(chan struct{}, 1)}
		c.rt.SetMigrationHandler(seen)
		c.eng.node = &slowTakeSnapshot{Node: c.node, after: func() {
			select {
			case <-seen.restored:
			case <-time.After(5 * time.Second):
				t.Error("no RestoreComplete reached the orchestrator")
			}
			laneBarrier(c.eng, o) // every chunk forwarded and RestoreComplete handled
		}}
		deliverAfterWait(t, c, b, a, o)
	})
}

// deliverAfterWait migrates o (3 events processed so far) from src to tgt,
// orchestrated by orch, and delivers to tgt as soon as Wait returns.
func deliverAfterWait(t *testing.T, orch, tgt, src *tnode, o uint64) {
	t.Helper()
	opts := DefaultOpts()
	opts.StallTimeout = 3 * time.Second // the failure mode: no progress at all
	var phases []Phase
	opts.Progress = func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	h, err := orch.eng.StartMigrationWith(ctx10(t), o, src.id, tgt.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	_, err = tgt.rt.Deliver(o, ev(4))
	require.NoError(t, err, "deliverable on the target once Wait returned")
	n, bad := count(t, tgt, o)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, bad)
	for i := 1; i < len(phases); i++ {
		assert.Less(t, phases[i-1], phases[i], "phases never go back: %v", phases)
	}
	assert.Equal(t, PhaseComplete, phases[len(phases)-1])
	noRecords(t, orch, tgt, src)
}

// slowLastChunk sends the last snapshot chunk and then runs after before
// returning to the chunk loop.
type slowLastChunk struct {
	compute.Node
	after func()
}

func (s *slowLastChunk) SendSubprotocol(ctx context.Context, to uint64, id uint16, p []byte) error {
	err := s.Node.SendSubprotocol(ctx, to, id, p)
	if err == nil && id == compute.SubprotocolMigration && len(p) > 0 && msg.Type(p[0]) == msg.SnapshotReady {
		if m, derr := msg.Decode(p); derr == nil && m.ChunkIndex+1 == m.TotalChunks {
			s.after()
		}
	}
	return err
}

// A local source's chunk loop can fall behind the protocol: the target
// restores, replays and activates before StartMigrationWith's caller counts
// the last chunk. Transfer still ends with a report of every chunk moved,
// and so does every report after it (before: the reports from Restore to
// Complete lacked the last chunk, and the late count was never pushed).
func TestLocalSourceLastChunkCountedWhenLoopLags(t *testing.T) {
	a, b := pair(t)
	padBytes.Store(3 * msg.ChunkSize) // several chunks
	t.Cleanup(func() { padBytes.Store(0) })
	kp := spawn(t, a, "padded")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("padded", o, compute.DaemonConfig{}))
	a.eng.node = &slowLastChunk{Node: a.node, after: func() {
		// The whole migration ends on the lanes meanwhile.
		require.Eventually(t, func() bool { return a.eng.Records() == 0 }, 5*time.Second, time.Millisecond)
	}}
	var last Progress
	var reports []Progress
	opts := DefaultOpts()
	opts.Progress = func(p Progress) { last = p; reports = append(reports, p) }
	h, err := a.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	require.Greater(t, last.TotalChunks, 1)
	assert.Equal(t, PhaseComplete, last.Phase)
	assert.Equal(t, last.TotalBytes, last.BytesMoved, "the last report shows every byte moved")
	assert.Equal(t, last.TotalChunks, last.ChunksMoved)
	var lastTransfer Progress
	for _, p := range reports {
		assert.LessOrEqual(t, p.BytesMoved, p.TotalBytes, "never more than the snapshot: %+v", p)
		if p.Phase == PhaseTransfer {
			lastTransfer = p
		}
		if p.Phase >= PhaseRestore {
			assert.Equal(t, p.TotalBytes, p.BytesMoved, "from Restore on every chunk is counted: %+v", p)
		}
	}
	assert.Equal(t, lastTransfer.TotalBytes, lastTransfer.BytesMoved, "Transfer ends at 100%%: %+v", reports)
	assert.Equal(t, lastTransfer.TotalChunks, lastTransfer.ChunksMoved)
	got := h.Progress()
	assert.Equal(t, got.TotalBytes, got.BytesMoved)
	assert.Equal(t, got.TotalChunks, got.ChunksMoved)
}

// The target orchestrates and is not ready at first: its own NotReady rolls
// the remote source back, the retry takes a fresh snapshot, and the daemon
// arrives with every event, deliverable on the target once Wait returns.
func TestTargetOrchestratesNotReadyRetry(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	deliverRange(t, a, o, 1, 3)
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	b.eng.SetSimulateNotReady(true)
	var attempts atomic.Int64
	opts := DefaultOpts()
	opts.Progress = func(p Progress) { attempts.Store(int64(p.Attempt)) }
	h, err := b.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return attempts.Load() >= 2 }, 5*time.Second, time.Millisecond)
	deliverRange(t, a, o, 4, 6)
	b.eng.SetSimulateNotReady(false)
	require.NoError(t, h.Wait(ctx10(t)))
	deliverRange(t, b, o, 7, 7)
	n, bad := count(t, b, o)
	assert.Equal(t, uint64(7), n)
	assert.Zero(t, bad)
	noRecords(t, a, b)
}

// The target orchestrates while the source is fed in every buffering
// phase: nothing is lost or doubled, and the target takes deliveries as
// soon as Wait returns.
func TestTargetOrchestratesWhileFed(t *testing.T) {
	a, b := pair(t)
	kp := spawn(t, a, "counter")
	o := kp.OriginHash()
	require.NoError(t, b.rt.ExpectMigration("counter", o, compute.DaemonConfig{}))
	var next uint64 = 1
	opts := DefaultOpts()
	opts.Progress = func(p Progress) {
		if p.Phase >= PhaseTransfer && p.Phase <= PhaseReplay {
			for range 3 {
				_, err := a.rt.Deliver(o, ev(next))
				if err == nil {
					next++
				}
			}
		}
	}
	h, err := b.eng.StartMigrationWith(ctx10(t), o, a.id, b.id, opts)
	require.NoError(t, err)
	require.NoError(t, h.Wait(ctx10(t)))
	_, err = b.rt.Deliver(o, ev(next))
	require.NoError(t, err)
	n, bad := count(t, b, o)
	assert.Equal(t, next, n)
	assert.Zero(t, bad)
	noRecords(t, a, b)
}
