package migration

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration/msg"
)

// orchRec is the orchestrator's record of a migration; a Handle observes
// it. Mutable fields are guarded by Engine.mu.
type orchRec struct {
	origin, source, target uint64
	opts                   Opts
	started                time.Time

	attempts    int
	phase       Phase
	shipped     uint64 // events sent to the target before cutover
	bytesMoved  int64
	totalBytes  int64
	chunksMoved int
	totalChunks int
	retry       *time.Timer
	toldCutover bool      // the target was told the source cut over
	lastMove    time.Time // last progress (see Opts.StallTimeout)

	finished bool
	err      error
	done     chan struct{}

	// pushMu serializes progress updates with their pushes (see progressIf).
	pushMu sync.Mutex
	subs   struct {
		sync.Mutex
		next int
		m    map[int]func(Progress)
	}
}

// StartMigration migrates origin from source to target with DefaultOpts.
func (e *Engine) StartMigration(ctx context.Context, origin, source, target uint64) (*Handle, error) {
	return e.StartMigrationWith(ctx, origin, source, target, DefaultOpts())
}

// StartMigrationWith starts a migration this node orchestrates. With a
// local source the daemon starts buffering, is snapshotted (inline, on the
// caller's goroutine), sealed for target and its chunks are handed to the
// mesh before this returns; with a remote source a TakeSnapshot is sent.
// Errors: ErrNotReady/ErrShuttingDown; *compute.MigrationError with
// already-migrating, daemon-not-found, state-failed (also a missing X25519
// key of the target) or target-unavailable (no session with a peer). On
// error no record is left and the daemon keeps running on the source.
func (e *Engine) StartMigrationWith(ctx context.Context, origin, source, target uint64, opts Opts) (*Handle, error) {
	switch e.rt.State() {
	case compute.StateRegistering:
		return nil, compute.ErrNotReady
	case compute.StateShuttingDown:
		return nil, compute.ErrShuttingDown
	}
	if source == target {
		return nil, localErr(compute.MigrationStateFailed, "source and target are the same node %s", hexID(source))
	}
	e.warm.keep(warmWindow)
	r := &orchRec{origin: origin, source: source, target: target, opts: opts, started: time.Now(), lastMove: time.Now(), attempts: 1, done: make(chan struct{})}
	r.subs.m = make(map[int]func(Progress))
	if opts.Progress != nil {
		r.subs.m[0] = opts.Progress
	}
	e.mu.Lock()
	if e.orch[origin] != nil {
		e.mu.Unlock()
		return nil, localErr(compute.MigrationAlreadyMigrating, "origin %s", hexID(origin))
	}
	e.orch[origin] = r
	delete(e.failures, origin)
	e.mu.Unlock()
	e.watch()
	if err := e.attempt(ctx, r, false); err != nil {
		e.finish(r, err)
		return nil, err
	}
	return &Handle{e: e, r: r}, nil
}

// attempt runs one attempt's first step: snapshot and chunks (local source)
// or TakeSnapshot (remote source). viaExec: running as pool work.
func (e *Engine) attempt(ctx context.Context, r *orchRec, viaExec bool) error {
	e.setPhase(r, PhaseSnapshot, func() { r.bytesMoved, r.totalBytes, r.chunksMoved, r.totalChunks, r.shipped = 0, 0, 0, 0, 0 })
	if r.source != e.self {
		// Transfer before TakeSnapshot leaves: the source's chunks and the
		// target's RestoreComplete can be handled on the lane before this
		// goroutine runs again, and must find the migration in Transfer
		// (set afterwards, the reply was dropped as early and the phase
		// could go back).
		e.setPhase(r, PhaseTransfer, nil)
		err := e.route(ctx, r.source, &msg.Message{Type: msg.TakeSnapshot, Origin: r.origin, TargetNode: r.target})
		if err != nil {
			return sendErr(r.source, err)
		}
		return nil
	}
	s, data, seq, err := e.beginSource(r.origin, e.self, r.target, r.opts.TransportIdentity, viaExec)
	if err != nil {
		return err
	}
	chunks := msg.SplitMessages(r.origin, seq, data)
	e.setPhase(r, PhaseTransfer, func() { r.totalBytes, r.totalChunks = int64(len(data)), len(chunks) })
	var sent int64
	for i, c := range chunks {
		if e.isFinished(r) {
			return nil // failed meanwhile (e.g. ComputeNotSupported); Wait reports it
		}
		if err := e.route(ctx, r.target, c); err != nil {
			e.srcAbort(s)
			return sendErr(r.target, err)
		}
		// Running totals, never lowered: the target's RestoreComplete may
		// already have counted every chunk (allSent). Shown only while the
		// phase has not moved on.
		sent += int64(len(c.Chunk))
		e.progressIf(r, func() bool {
			r.chunksMoved, r.bytesMoved = max(r.chunksMoved, i+1), max(r.bytesMoved, sent)
			return r.phase <= PhaseRestore
		})
	}
	e.progressIf(r, r.advanceToRestore)
	return nil
}

// advanceToRestore (a progressIf edit): Transfer → Restore, only from
// Transfer, so a late caller never moves the phase back.
func (r *orchRec) advanceToRestore() bool {
	if r.phase != PhaseTransfer {
		return false
	}
	r.phase = PhaseRestore
	return true
}

// allSent (under e.mu) records that every chunk reached the target, which
// restored the snapshot: a local source's chunk loop, on StartMigrationWith's
// caller, may not have counted the last ones yet, and the last Transfer
// report and every one after it must show the whole snapshot moved. Totals
// the orchestrator does not know (0, a remote source's bytes) are left
// alone.
func (r *orchRec) allSent() {
	r.chunksMoved = max(r.chunksMoved, r.totalChunks)
	r.bytesMoved = max(r.bytesMoved, r.totalBytes)
}

func sendErr(peer uint64, err error) error {
	if compute.IsPeerUnavailable(err) {
		return localErr(compute.MigrationTargetUnavailable, "node %s: %v", hexID(peer), err)
	}
	return localErr(compute.MigrationStateFailed, "sending to node %s: %v", hexID(peer), err)
}

func (e *Engine) isFinished(r *orchRec) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return r.finished
}

// setPhase changes r's phase (edit runs under the lock) and notifies.
func (e *Engine) setPhase(r *orchRec, p Phase, edit func()) {
	e.progress(r, func() {
		r.phase = p
		if edit != nil {
			edit()
		}
	})
}

// progress applies edit under the lock and pushes the new Progress to the
// subscribers, outside the lock, on the calling goroutine.
func (e *Engine) progress(r *orchRec, edit func()) {
	e.progressIf(r, func() bool { edit(); return true })
}

// progressIf applies edit under the lock and pushes the new Progress when
// edit reports true. Updates come from the lane and, for a local source,
// from StartMigration's caller (the chunk loop), so updates and pushes of
// one migration are serialized by r.pushMu: subscribers are never called
// concurrently and see phases in the order they were set.
func (e *Engine) progressIf(r *orchRec, edit func() bool) {
	r.pushMu.Lock()
	defer r.pushMu.Unlock()
	e.mu.Lock()
	if r.finished && r.phase != PhaseComplete {
		e.mu.Unlock()
		return
	}
	if !edit() {
		e.mu.Unlock()
		return
	}
	r.lastMove = time.Now()
	p := Progress{Phase: r.phase, BytesMoved: r.bytesMoved, TotalBytes: r.totalBytes, ChunksMoved: r.chunksMoved, TotalChunks: r.totalChunks, Attempt: r.attempts}
	e.mu.Unlock()
	r.subs.Lock()
	fns := make([]func(Progress), 0, len(r.subs.m))
	for _, f := range r.subs.m {
		fns = append(fns, f)
	}
	r.subs.Unlock()
	for _, f := range fns {
		e.runSafe(func() { f(p) })
	}
}

// finish ends r once: err == nil is success. It reports whether this call
// ended it.
func (e *Engine) finish(r *orchRec, err error) bool { return e.finishThen(r, err, nil) }

// finishThen is finish running cleanup (the rollback of the parties) after
// the record is claimed but before waiters are released, so a caller that
// sees the end can start again at once.
func (e *Engine) finishThen(r *orchRec, err error, cleanup func()) bool {
	e.mu.Lock()
	if r.finished {
		e.mu.Unlock()
		return false
	}
	r.finished, r.err = true, err
	if r.retry != nil {
		r.retry.Stop()
	}
	var fe *compute.MigrationFailedError
	if errors.As(err, &fe) {
		e.failures[r.origin] = reasonOf(err)
	}
	e.mu.Unlock()
	if cleanup != nil {
		cleanup()
	}
	e.mu.Lock()
	if e.orch[r.origin] == r {
		delete(e.orch, r.origin)
	}
	e.mu.Unlock()
	close(r.done)
	return true
}

// localSrc is this node's source record for r, if the source is local.
func (e *Engine) localSrc(r *orchRec) *srcRec {
	if r.source != e.self {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.src[r.origin]
}

// abort ends r with err before cutover: the source resumes the daemon, the
// remote parties are told (except skip, the one that reported).
func (e *Engine) abort(r *orchRec, err error, why msg.Reason, skip uint64) bool {
	return e.finishThen(r, err, func() { e.rollbackParties(r, why, skip) })
}

func (e *Engine) rollbackParties(r *orchRec, why msg.Reason, skip uint64) {
	// Set up first: the target hands back what was delivered to it directly
	// as soon as it learns of the failure.
	e.expectHandBack(r.origin, r.target, r.source)
	if s := e.localSrc(r); s != nil {
		e.srcAbort(s)
	} else if r.source != skip && r.source != e.self {
		e.sendFailed(r.source, r.origin, why)
	}
	if r.target != skip && r.target != e.self {
		e.sendFailed(r.target, r.origin, why)
	} else if r.target == e.self {
		e.mu.Lock()
		t := e.tgt[r.origin]
		e.mu.Unlock()
		if t != nil {
			e.tgtFail(t, why, false)
		}
	}
}

// onRestoreComplete: the target restored; ship the events queued on the
// source so far (with a remote source an empty batch: its queue follows at
// cutover).
func (e *Engine) onRestoreComplete(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	if r == nil || from != r.target || r.finished || (r.phase != PhaseTransfer && r.phase != PhaseRestore) {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	// The target may restore before the chunk loop (a local source's, on
	// StartMigrationWith's caller) counted the last chunks: every chunk
	// arrived, so Transfer still ends with a report of the whole snapshot
	// moved, then Restore follows.
	e.progressIf(r, func() bool {
		behind := r.chunksMoved < r.totalChunks || r.bytesMoved < r.totalBytes
		r.allSent()
		return behind && r.phase == PhaseTransfer
	})
	e.progressIf(r, r.advanceToRestore)
	e.setPhase(r, PhaseReplay, nil)
	var evs []causal.Event
	if s := e.localSrc(r); s != nil {
		evs = e.srcTake(s)
		if oversized(evs) {
			why := stateFailed("a queued event is larger than the 7000 bytes BufferedEvents carries")
			e.abort(r, failedErr(why), why, 0)
			return
		}
	}
	e.mu.Lock()
	r.shipped = uint64(len(evs))
	e.mu.Unlock()
	bs := batches(r.origin, evs)
	if len(bs) == 0 {
		bs = append(bs, newBatch(r.origin, nil))
	}
	for _, b := range bs {
		if err := e.route(context.Background(), r.target, b); err != nil {
			e.abort(r, sendErr(r.target, err), stateFailed("sending buffered events failed"), 0)
			return
		}
	}
}

// onReplayComplete: once the target replayed everything shipped so far,
// cut over (CutoverNotify to the source).
func (e *Engine) onReplayComplete(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	if r == nil || from != r.target || r.finished || r.phase != PhaseReplay || m.Seq < r.shipped {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.setPhase(r, PhaseCutover, nil)
	if err := e.route(context.Background(), r.source, &msg.Message{Type: msg.CutoverNotify, Origin: r.origin, TargetNode: r.target}); err != nil {
		e.abort(r, sendErr(r.source, err), stateFailed("cutover notification failed"), 0)
	}
}

// onBufferedEvents: from the source (its post-cutover queue) it is
// forwarded to the target, after telling the target the source cut over;
// from this node's orchestrator to its target role it is replayed; from a
// target that rolled back it is handed back towards the source.
func (e *Engine) onBufferedEvents(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	t := e.tgt[m.Origin]
	e.mu.Unlock()
	if r != nil && from == r.source {
		e.tellCutover(r)
		if err := e.route(context.Background(), r.target, m); err != nil {
			e.log(compute.LogWarn, "migration: forwarding buffered events failed", map[string]any{"origin": m.Origin, "error": err.Error()})
		}
		return
	}
	if (t == nil || from != t.orch) && e.takeHandBack(from, m) {
		return
	}
	e.targetBuffered(from, m)
}

// tellCutover sends the target, once, a CutoverNotify naming it: the
// source has given the daemon up. It goes before the source's last queued
// events and ActivateTarget, so a target that then loses the orchestrator
// knows to keep the daemon (see tgtRec.cutSeen). A 0.24 node, which has no
// source record for it, ignores it.
func (e *Engine) tellCutover(r *orchRec) {
	e.mu.Lock()
	told := r.toldCutover || r.finished || r.phase != PhaseCutover
	r.toldCutover = true
	e.mu.Unlock()
	if told {
		return
	}
	if err := e.route(context.Background(), r.target, &msg.Message{Type: msg.CutoverNotify, Origin: r.origin, TargetNode: r.target}); err != nil {
		e.log(compute.LogWarn, "migration: telling the target about the cutover failed", map[string]any{"origin": r.origin, "error": err.Error()})
	}
}

// orchForwardChunk passes a remote source's chunk on to the target,
// checking chunk 0 first.
func (e *Engine) orchForwardChunk(r *orchRec, m *msg.Message) {
	if m.ChunkIndex == 0 {
		if err := msg.CheckChunk0(r.origin, m.Chunk); err != nil {
			why := stateFailed(err.Error())
			e.abort(r, failedErr(why), why, 0)
			return
		}
	}
	e.progress(r, func() { r.totalChunks = int(m.TotalChunks) })
	if err := e.route(context.Background(), r.target, m); err != nil {
		e.abort(r, sendErr(r.target, err), stateFailed("forwarding a chunk failed"), 0)
		return
	}
	e.progress(r, func() {
		r.chunksMoved++
		r.bytesMoved += int64(len(m.Chunk))
		if r.chunksMoved >= r.totalChunks && r.phase == PhaseTransfer {
			r.phase = PhaseRestore
		}
	})
}

// onCleanupComplete: the source gave the daemon up; activate the target.
func (e *Engine) onCleanupComplete(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	if r == nil || from != r.source || r.finished || r.phase != PhaseCutover {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.tellCutover(r)
	if err := e.route(context.Background(), r.target, &msg.Message{Type: msg.ActivateTarget, Origin: r.origin}); err != nil {
		e.log(compute.LogWarn, "migration: ActivateTarget not sent", map[string]any{"origin": m.Origin, "error": err.Error()})
	}
}

// onActivateAck: done. The source keeps its factory entry.
func (e *Engine) onActivateAck(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	if r == nil || from != r.target || r.finished || r.phase != PhaseCutover {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.setPhase(r, PhaseComplete, nil)
	if s := e.localSrc(r); s != nil {
		e.srcRelease(s) // final: the moved-away daemon is closed
	}
	e.finish(r, nil)
}

// onMigrationFailed: accepted only from a party recorded for the origin;
// with no record it is only cached.
func (e *Engine) onMigrationFailed(from uint64, m *msg.Message) {
	e.mu.Lock()
	r := e.orch[m.Origin]
	s := e.src[m.Origin]
	t := e.tgt[m.Origin]
	e.mu.Unlock()
	if r == nil && s == nil && t == nil {
		e.cacheFailure(m.Origin, m.Reason)
		return
	}
	if r != nil && (from == r.source || from == r.target) {
		e.cacheFailure(m.Origin, m.Reason)
		e.orchFailed(r, m.Reason, from)
		return
	}
	if s != nil && from == s.orch && from != e.self {
		e.cacheFailure(m.Origin, m.Reason)
		e.srcAbort(s)
	}
	if t != nil && (from == t.orch || from == t.chunkFrom) && from != e.self {
		e.cacheFailure(m.Origin, m.Reason)
		e.tgtFail(t, m.Reason, false)
	}
}

// orchFailed handles a reason reported by a party: NotReady is retried
// within the budget from a fresh snapshot; anything else ends the
// migration.
func (e *Engine) orchFailed(r *orchRec, why msg.Reason, from uint64) {
	e.mu.Lock()
	if r.finished {
		e.mu.Unlock()
		return
	}
	cut := r.phase >= PhaseCutover
	budget := r.opts.retryBudget()
	attempts := r.attempts
	e.mu.Unlock()
	if cut {
		// The target rolled back before activating: the daemon returns here.
		e.abort(r, failedErr(why), why, from)
		return
	}
	if why.Code != msg.NotReady || budget == 0 {
		e.abort(r, failedErr(why), why, from)
		return
	}
	if time.Since(r.started) >= budget {
		to := msg.Reason{Code: msg.NotReadyTimeout, Attempts: uint8(min(attempts, 255))}
		e.abort(r, failedErr(to), why, from)
		return
	}
	// Roll this attempt back on the source, then try again after the pause.
	if s := e.localSrc(r); s != nil {
		e.srcAbort(s)
	} else if r.source != from {
		e.sendFailed(r.source, r.origin, why)
	}
	e.mu.Lock()
	if r.finished {
		e.mu.Unlock()
		return
	}
	r.attempts++
	pause := NotReadyBackoff(attempts)
	r.retry = time.AfterFunc(pause, func() { e.do(r.origin, func() { e.retry(r) }) })
	e.mu.Unlock()
	e.setPhase(r, PhaseSnapshot, nil)
}

// retry starts the next attempt (on the origin's lane).
func (e *Engine) retry(r *orchRec) {
	e.mu.Lock()
	if r.finished {
		e.mu.Unlock()
		return
	}
	delete(e.failures, r.origin)
	e.mu.Unlock()
	if err := e.attempt(context.Background(), r, true); err != nil {
		e.finish(r, err)
	}
}

// orchPeerGone: a party lost its session. Before cutover the migration is
// aborted; after it (the target vanished before acknowledging) the cutover
// is undone so the daemon lives on here.
func (e *Engine) orchPeerGone(r *orchRec, peer uint64) {
	if e.isFinished(r) {
		return
	}
	err := localErrWrap(compute.MigrationTargetUnavailable, ErrPeerGone, "node %s lost its session", hexID(peer))
	e.abort(r, err, stateFailed("peer "+hexID(peer)+" is gone"), peer)
}

// stalled ends r when it made no progress within its bound (on the
// origin's lane; the watchdog schedules it).
func (e *Engine) stalled(r *orchRec) {
	bound := r.opts.stallTimeout()
	e.mu.Lock()
	idle := time.Since(r.lastMove)
	ph, over := r.phase, !r.finished && bound > 0 && idle >= bound
	e.mu.Unlock()
	if !over {
		return
	}
	err := localErrWrap(compute.MigrationStateFailed, ErrStalled, "migration of %s made no progress for %v in phase %v", hexID(r.origin), idle.Round(time.Millisecond), ph)
	e.log(compute.LogWarn, "migration: stalled", map[string]any{"origin": r.origin, "phase": ph.String()})
	e.timeout(r, err, stateFailed("migration stalled in phase "+ph.String()))
}

// timeout ends r at a local deadline: before cutover both peers are told so
// the target rolls back; after it the daemon belongs to the target and only
// the record is dropped.
func (e *Engine) timeout(r *orchRec, err error, why msg.Reason) bool {
	e.mu.Lock()
	cut := r.phase >= PhaseCutover
	e.mu.Unlock()
	if !cut {
		return e.abort(r, err, why, 0)
	}
	return e.finishThen(r, err, func() {
		if s := e.localSrc(r); s != nil {
			e.srcRelease(s)
		}
	})
}
