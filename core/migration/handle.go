package migration

import (
	"context"
	"fmt"
	"time"

	"github.com/netmesh/libnetmesh/core/compute"
)

// Handle observes and controls one migration this node orchestrates. The
// migration goes on whether or not anyone waits on it.
type Handle struct {
	e *Engine
	r *orchRec
}

// Origin is the migrating daemon's origin hash.
func (h *Handle) Origin() uint64 { return h.r.origin }

// Source is the node the daemon leaves.
func (h *Handle) Source() uint64 { return h.r.source }

// Target is the node the daemon goes to.
func (h *Handle) Target() uint64 { return h.r.target }

// Phase is the current phase; false once the record is gone (completed,
// failed or cancelled).
func (h *Handle) Phase() (Phase, bool) {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	if h.r.finished {
		return 0, false
	}
	return h.r.phase, true
}

// Progress is the current progress (the last one pushed).
func (h *Handle) Progress() Progress {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	r := h.r
	return Progress{Phase: r.phase, BytesMoved: r.bytesMoved, TotalBytes: r.totalBytes, ChunksMoved: r.chunksMoved, TotalChunks: r.totalChunks, Attempt: r.attempts}
}

// Subscribe registers fn for every phase change and chunk. fn runs on the
// goroutine making the change (the caller of StartMigration or a worker of
// the runtime's pool), synchronously, so it must not block for long; a
// panic in fn is logged. Calls for one migration never overlap and report
// phases in the order they were reached; fn must not wait for this
// migration's own protocol work (Cancel, WaitWithTimeout) without a bound. The returned function unsubscribes (idempotent).
// A migration can finish before StartMigration's caller gets to subscribe:
// use Opts.Progress to see every phase from the first.
func (h *Handle) Subscribe(fn func(Progress)) (unsubscribe func()) {
	s := &h.r.subs
	s.Lock()
	s.next++
	id := s.next
	s.m[id] = fn
	s.Unlock()
	return func() {
		s.Lock()
		delete(s.m, id)
		s.Unlock()
	}
}

// Done is closed when the migration has ended.
func (h *Handle) Done() <-chan struct{} { return h.r.done }

// Err is the outcome once Done is closed (nil: completed).
func (h *Handle) Err() error {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return h.r.err
}

// Wait blocks until the migration ends and returns its outcome: nil when it
// completed, *compute.MigrationFailedError with the reason a party reported
// (NotReadyTimeout with the attempt count after the retry budget), or a
// local *compute.MigrationError. It has no deadline of its own: when ctx
// ends first it returns an error wrapping compute.ErrTimeout and ctx.Err(),
// and the migration goes on.
func (h *Handle) Wait(ctx context.Context) error {
	select {
	case <-h.r.done:
		return h.Err()
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the migration of %s: %w", compute.ErrTimeout, hexID(h.r.origin), ctx.Err())
	}
}

// WaitWithTimeout is Wait bounded by d. At d the record is dropped and a
// state-failed "timed out" *compute.MigrationError (also wrapping
// ErrTimedOut) is returned; before cutover both peers are told with
// MigrationFailed, so the target rolls back and the daemon resumes on the
// source. After cutover the daemon belongs to the target and is left to it.
func (h *Handle) WaitWithTimeout(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-h.r.done:
		return h.Err()
	case <-t.C:
	}
	ph, _ := h.Phase()
	err := localErrWrap(compute.MigrationStateFailed, ErrTimedOut, "migration of %s timed out after %v in phase %v", hexID(h.r.origin), d, ph)
	if !h.e.timeoutNow(h.r, err) {
		return h.Err()
	}
	return err
}

func (e *Engine) timeoutNow(r *orchRec, err error) bool {
	done := make(chan bool, 1)
	e.do(r.origin, func() { done <- e.timeout(r, err, stateFailed("orchestrator timed out")) })
	return <-done
}

// Cancel aborts the migration before cutover: the record is dropped,
// MigrationFailed goes to both nodes, the daemon resumes on the source and
// Wait returns a state-failed error wrapping ErrCancelled. Past cutover the
// daemon already belongs to the target: Cancel returns a wrong-phase
// *compute.MigrationError and changes nothing. After the end it returns a
// wrong-phase error too.
func (h *Handle) Cancel(ctx context.Context) error {
	res := make(chan error, 1)
	h.e.do(h.r.origin, func() {
		h.e.mu.Lock()
		fin, cut := h.r.finished, h.r.phase >= PhaseCutover
		h.e.mu.Unlock()
		switch {
		case fin:
			res <- localErr(compute.MigrationWrongPhase, "the migration has already ended")
		case cut:
			res <- localErr(compute.MigrationWrongPhase, "the migration is past cutover")
		default:
			err := localErrWrap(compute.MigrationStateFailed, ErrCancelled, "migration of %s cancelled", hexID(h.r.origin))
			h.e.abort(h.r, err, stateFailed("cancel requested"), 0)
			res <- nil
		}
	})
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: cancelling: %w", compute.ErrTimeout, ctx.Err())
	}
}

func (h *Handle) String() string {
	ph, ok := h.Phase()
	st := "ended"
	if ok {
		st = ph.String()
	}
	return fmt.Sprintf("migration %s %s→%s (%s)", hexID(h.r.origin), hexID(h.r.source), hexID(h.r.target), st)
}
