package main

/*
#include "capi.h"

typedef const net_mesh_migration nm_cmigration;
typedef const net_mesh_migration_options nm_cmigopts;

NM_HIDDEN void nm_call_progress(net_mesh_migration_progress_fn fn, uintptr_t ud, int phase,
                                uint64_t bytes_moved, uint64_t total_bytes, uint64_t chunks_moved,
                                uint64_t total_chunks);
NM_HIDDEN void nm_call_complete(net_mesh_migration_complete_fn fn, uintptr_t ud, int status);
*/
import "C"

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/migration"
)

// migState is the migration side of one runtime handle: its engine and the
// output sink.
type migState struct {
	eng  *migration.Engine
	sink atomic.Pointer[sinkCB]
}

// attachMigration gives a new runtime its migration engine, so the node can
// send and receive daemons, and routes unattended outputs to the host sink.
func attachMigration(r *rtObj) *migState {
	s := &migState{eng: migration.Attach(r.rt, r.node.n)}
	r.rt.SetOutputSink(s.deliverSink)
	return s
}

// Close makes a C daemon a compute.Closer, the only way its finalizer runs
// deterministically: compute closes a host whenever it drops it — stop,
// shutdown, a failed spawn, a migration target rolling back, and a source
// whose daemon migrated away once that is final, whoever orchestrated. The
// hook runs on the thread that dropped it, after compute released its locks
// (see compute.DaemonHost.Close); life makes it exactly once and never
// during a callback of the same daemon. The GC cleanup of newCDaemon is
// only a safety net.
func (d *cDaemon) Close() { d.life.close() }

// Phases: Go's Phase + 1; 0 is NONE.
func cPhase(p migration.Phase, ok bool) C.int {
	if !ok {
		return C.NET_MESH_MIGRATION_PHASE_NONE
	}
	return C.int(p) + 1
}

// note is one queued notification of a migration: progress or the end.
type note struct {
	p   migration.Progress
	end bool
}

// hostCB is a host callback with its user_data's life.
type hostCB struct {
	progress C.net_mesh_migration_progress_fn
	complete C.net_mesh_migration_complete_fn
	life     *life
}

// outcome is a finished migration's result, kept for any thread to read.
type outcome struct {
	status   C.int
	kind     string
	msg      string
	attempts uint32
}

// migObj is what a net_mesh_migration handle holds.
//
// Notifications: the engine pushes progress on whatever goroutine makes the
// change (the start_migration caller, a pool worker), and that must stay
// cheap, so push only queues. One drainer goroutine at a time calls the
// host callbacks, in order; it exists only while there is something to
// deliver to an installed callback.
type migObj struct {
	h    *migration.Handle
	st   *migState
	done chan struct{} // closed once res is set

	mu       sync.Mutex
	queue    []note
	draining bool
	prog     *hostCB
	comp     *hostCB
	res      *outcome
}

func migrationOf(h unsafe.Pointer) (*migObj, error) {
	v, err := lookup(h, kindMigration)
	if err != nil {
		return nil, err
	}
	return v.(*migObj), nil
}

// push queues p. Without a progress callback the queue is condensed to the
// latest note per phase, so a handle nobody listens to stays small.
//
// A report can race the end note (the core pushes its last progress from the
// goroutine that changed the phase while another one records the outcome):
// progress always goes before the end note, so it is never lost behind it.
func (m *migObj) push(p migration.Progress) {
	m.mu.Lock()
	at := len(m.queue) // insertion point: before a queued end note
	if at > 0 && m.queue[at-1].end {
		at--
	}
	if m.prog == nil && at > 0 && !m.queue[at-1].end && m.queue[at-1].p.Phase == p.Phase {
		m.queue[at-1].p = p
	} else {
		m.queue = slices.Insert(m.queue, at, note{p: p})
	}
	m.kickLocked()
	m.mu.Unlock()
}

// finish records the outcome and queues the end note.
func (m *migObj) finish(err error) {
	res := &outcome{attempts: uint32(m.h.Progress().Attempt)}
	if err != nil {
		st, detail, _ := statusOf(err)
		res.status, res.kind, res.msg = st, detail, err.Error()
		var mf *compute.MigrationFailedError
		if errors.As(err, &mf) && mf.Reason.Attempts > 0 {
			res.attempts = uint32(mf.Reason.Attempts)
		}
	}
	m.mu.Lock()
	m.res = res
	m.queue = append(m.queue, note{end: true})
	m.kickLocked()
	m.mu.Unlock()
	close(m.done)
}

// nextLocked picks the next thing the drainer does: deliver the head
// progress note, fire the completion callback (once the migration ended, and
// after every queued progress note when a progress callback is installed),
// or retire the progress callback at the end. "" when there is nothing.
func (m *migObj) nextLocked() string {
	headEnd := len(m.queue) > 0 && m.queue[0].end
	switch {
	case m.prog != nil && len(m.queue) > 0 && !headEnd:
		return "progress"
	case m.comp != nil && m.res != nil && (m.prog == nil || headEnd):
		return "complete"
	case m.prog != nil && headEnd:
		return "retire"
	}
	return ""
}

func (m *migObj) kickLocked() {
	if m.draining || m.nextLocked() == "" {
		return
	}
	m.draining = true
	go m.drain()
}

// drain runs the host callbacks, in order, on this library goroutine, until
// nothing is left to do. The end note stays queued, so the history can still
// be replayed to a progress callback installed later (which is then retired).
func (m *migObj) drain() {
	defer func() {
		if v := recover(); v != nil {
			coreLog(compute.LogError, "capi: migration notifier panicked", map[string]any{"panic": v})
			m.mu.Lock()
			m.draining = false
			m.mu.Unlock()
		}
	}()
	for {
		m.mu.Lock()
		switch m.nextLocked() {
		case "progress":
			n := m.queue[0]
			m.queue = m.queue[1:]
			cb := m.prog
			m.mu.Unlock()
			if cb.life.enter() {
				C.nm_call_progress(cb.progress, cb.life.ud, cPhase(n.p.Phase, true), C.uint64_t(n.p.BytesMoved),
					C.uint64_t(n.p.TotalBytes), C.uint64_t(n.p.ChunksMoved), C.uint64_t(n.p.TotalChunks))
				cb.life.exit()
			}
		case "complete":
			cb, st := m.comp, m.res.status
			m.comp = nil
			m.mu.Unlock()
			if cb.life.enter() {
				C.nm_call_complete(cb.complete, cb.life.ud, st)
				cb.life.exit()
			}
			cb.life.close()
		case "retire":
			cb := m.prog
			m.prog = nil
			m.mu.Unlock()
			cb.life.close()
		default:
			m.draining = false
			m.mu.Unlock()
			return
		}
	}
}

func migOptions(o *C.nm_cmigopts) (migration.Opts, error) {
	opts := migration.DefaultOpts()
	if o == nil {
		return opts, nil
	}
	if o.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_migration_options{})) {
		return opts, errf(statusInvalidArgument, "migration options size %d is smaller than %d", uint32(o.size), unsafe.Sizeof(C.net_mesh_migration_options{}))
	}
	opts.TransportIdentity = o.transport_identity != 0
	switch ms := int64(o.retry_not_ready_ms); {
	case ms < 0:
		opts.RetryNotReady = -1
	case ms > 0:
		opts.RetryNotReady = time.Duration(ms) * time.Millisecond
	}
	opts.NoRetry = o.no_retry != 0
	return opts, nil
}

//export net_mesh_runtime_start_migration
func net_mesh_runtime_start_migration(h *C.net_mesh_runtime, origin, source, target C.uint64_t, o *C.nm_cmigopts, out **C.net_mesh_migration) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	opts, err := migOptions(o)
	if err != nil {
		return fail(err)
	}
	m := &migObj{st: r.mig, done: make(chan struct{})}
	opts.Progress = m.push
	hd, err := r.mig.eng.StartMigrationWith(context.Background(), uint64(origin), uint64(source), uint64(target), opts)
	if err != nil {
		return fail(err)
	}
	m.h = hd
	go func() {
		defer func() {
			if v := recover(); v != nil {
				coreLog(compute.LogError, "capi: migration watcher panicked", map[string]any{"panic": v})
			}
		}()
		<-hd.Done()
		m.finish(hd.Err())
	}()
	*out = (*C.net_mesh_migration)(mint(kindMigration, m))
	return statusOK
}

//export net_mesh_migration_phase
func net_mesh_migration_phase(h *C.nm_cmigration, out *C.int) (rc C.int) {
	defer guard(&rc)
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = cPhase(m.h.Phase())
	return statusOK
}

//export net_mesh_runtime_migration_phase
func net_mesh_runtime_migration_phase(h *C.nm_cruntime, origin C.uint64_t, out *C.int) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	// Every role this runtime plays (orchestrator, source, target).
	*out = cPhase(r.mig.eng.Phase(uint64(origin)))
	return statusOK
}

// result returns the outcome once the migration has ended.
func (m *migObj) result() *outcome {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.res
	default:
		return nil
	}
}

// failOutcome makes a finished migration's outcome the thread's last error.
func failOutcome(res *outcome) C.int {
	if res.status == statusOK {
		return statusOK
	}
	C.nm_set_error(res.status, (*C.char)(unsafe.Pointer(unsafe.StringData(res.msg))), C.size_t(len(res.msg)),
		(*C.char)(unsafe.Pointer(unsafe.StringData(res.kind))), C.size_t(len(res.kind)), 0)
	return res.status
}

//export net_mesh_migration_wait
func net_mesh_migration_wait(h *C.net_mesh_migration, timeoutMS C.int64_t, flags C.uint32_t) (rc C.int) {
	defer guard(&rc)
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if flags&^C.uint32_t(C.NET_MESH_MIGRATION_WAIT_ABANDON) != 0 {
		return fail(errf(statusInvalidArgument, "unknown wait flags 0x%x", uint32(flags)))
	}
	if timeoutMS >= 0 && !m.ended() {
		d := time.Duration(timeoutMS) * time.Millisecond
		if flags&C.NET_MESH_MIGRATION_WAIT_ABANDON != 0 {
			if err := m.h.WaitWithTimeout(d); err != nil && !m.ended() {
				// Abandoned here; the outcome lands in res shortly after.
				return fail(err)
			}
		} else {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-m.done:
			case <-t.C:
				return fail(errf(statusTimeout, "migration of %016x still in progress after %v", uint64(m.h.Origin()), d))
			}
		}
	}
	<-m.done
	return failOutcome(m.result())
}

func (m *migObj) ended() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

//export net_mesh_migration_result_get
func net_mesh_migration_result_get(h *C.nm_cmigration, out *C.net_mesh_migration_result) (rc C.int) {
	defer guard(&rc)
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	if out.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_migration_result{})) {
		return fail(errf(statusInvalidArgument, "migration result size %d is smaller than %d", uint32(out.size), unsafe.Sizeof(C.net_mesh_migration_result{})))
	}
	size := out.size
	*out = C.net_mesh_migration_result{size: size}
	res := m.result()
	if res == nil {
		return statusOK
	}
	out.finished, out.status, out.attempts = 1, res.status, C.uint32_t(res.attempts)
	kind := unsafe.Slice((*byte)(unsafe.Pointer(&out.kind[0])), len(out.kind))
	kind[copy(kind[:len(kind)-1], res.kind)] = 0
	if res.status != statusOK {
		if err := fillBytes(&out.message, []byte(res.msg)); err != nil {
			return fail(err)
		}
	}
	return statusOK
}

// cancelTimeout bounds net_mesh_migration_cancel: the engine's lane for the
// origin may be busy (e.g. waiting for the executor).
const cancelTimeout = 5 * time.Second

//export net_mesh_migration_cancel
func net_mesh_migration_cancel(h *C.net_mesh_migration) (rc C.int) {
	defer guard(&rc)
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	if err := m.h.Cancel(ctx); err != nil {
		return fail(err)
	}
	return statusOK
}

// setCallback installs cb in *slot (nil removes), retiring the previous one.
// After the end, a progress callback is retired at once; a completion
// callback fires (on a library goroutine).
func (m *migObj) setCallback(slot **hostCB, cb *hostCB) {
	m.mu.Lock()
	old := *slot
	*slot = cb
	m.kickLocked()
	m.mu.Unlock()
	if old != nil {
		old.life.close()
	}
}

//export net_mesh_migration_on_progress
func net_mesh_migration_on_progress(h *C.net_mesh_migration, fn C.net_mesh_migration_progress_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	var cb *hostCB
	if fn != nil {
		cb = &hostCB{progress: fn, life: l}
	} else {
		l.close()
	}
	m.setCallback(&m.prog, cb)
	return statusOK
}

//export net_mesh_migration_on_complete
func net_mesh_migration_on_complete(h *C.net_mesh_migration, fn C.net_mesh_migration_complete_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	m, err := migrationOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	var cb *hostCB
	if fn != nil {
		cb = &hostCB{complete: fn, life: l}
	} else {
		l.close()
	}
	m.setCallback(&m.comp, cb)
	return statusOK
}

//export net_mesh_migration_free
func net_mesh_migration_free(h *C.net_mesh_migration) {
	defer guardVoid()
	v, ok := release(unsafe.Pointer(h), kindMigration)
	if !ok {
		return
	}
	m := v.(*migObj)
	m.mu.Lock()
	prog, comp := m.prog, m.comp
	m.prog, m.comp = nil, nil
	m.mu.Unlock()
	if prog != nil {
		prog.life.close()
	}
	if comp != nil {
		comp.life.close()
	}
}

// kindFirst gives spawn_from_snapshot BEHAVIOUR §2's order before any byte
// is parsed: the lifecycle (not-ready, shutting-down), then the kind
// (factory-not-found); compute repeats both checks.
func kindFirst(rt *compute.Runtime, kind string) error {
	switch rt.State() {
	case compute.StateRegistering:
		return compute.ErrNotReady
	case compute.StateShuttingDown:
		return compute.ErrShuttingDown
	}
	_, err := rt.KindFactory(kind)
	return err
}
