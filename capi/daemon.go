package main

/*
#include "capi.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// life owns one host user_data and its finalizer. Callbacks bracket
// themselves with enter/exit; close marks it dead. The finalizer runs exactly
// once: at close if nothing is in flight, else when the last in-flight call
// exits — so it never runs while a callback of the same object is running,
// and a callback that stops its own daemon does not deadlock.
type life struct {
	st   atomic.Int64 // in-flight calls | closedBit
	done atomic.Bool
	fin  C.net_mesh_finalize_fn
	ud   C.uintptr_t
}

const closedBit = int64(1) << 62

func newLife(fin C.net_mesh_finalize_fn, ud C.uintptr_t) *life {
	return &life{fin: fin, ud: ud}
}

func (l *life) enter() bool {
	for {
		v := l.st.Load()
		if v&closedBit != 0 {
			return false
		}
		if l.st.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

func (l *life) exit() {
	if l.st.Add(-1) == closedBit {
		l.finalize()
	}
}

func (l *life) close() {
	if old := l.st.Or(closedBit); old == 0 {
		l.finalize()
	}
}

func (l *life) finalize() {
	if l.done.CompareAndSwap(false, true) && l.fin != nil {
		C.nm_call_finalize(l.fin, l.ud)
	}
}

// cDaemon is a compute.Daemon whose methods are C function pointers.
type cDaemon struct {
	name     string
	process  C.net_mesh_process_fn
	snapshot C.net_mesh_snapshot_fn
	restore  C.net_mesh_restore_fn
	life     *life
	outs     [][]byte // Process's returned slice, reused (see Process)
	// res is the C block nm_call_process writes its result into: C memory,
	// one per daemon (calls into a daemon are serialized by its host), freed
	// by a cleanup once the wrapper is garbage (a call in flight keeps d).
	res *C.nm_proc_result
}

var errStopped = errf(statusDaemonNotFound, "daemon was stopped")

// newCDaemon copies a host vtable. The safety net: if the library loses
// track of a daemon (dropped by core without telling capi), its finalizer
// still runs once the Go wrapper is garbage.
func newCDaemon(vt *C.net_mesh_daemon_vtable, l *life) *cDaemon {
	d := &cDaemon{process: vt.process, snapshot: vt.snapshot, restore: vt.restore, life: l}
	if vt.name != nil {
		d.name = C.GoString(vt.name)
	}
	runtime.AddCleanup(d, func(l *life) { l.close() }, d.life)
	return d
}

// result is d's result block, allocated at the first process call (nil when
// C memory is exhausted).
func (d *cDaemon) result() *C.nm_proc_result {
	if d.res == nil {
		p := (*C.nm_proc_result)(C.calloc(1, C.size_t(unsafe.Sizeof(C.nm_proc_result{}))))
		if p == nil {
			return nil
		}
		p.fn = *(*C.uintptr_t)(unsafe.Pointer(&d.process))
		p.ud = d.life.ud
		d.res = p
		runtime.AddCleanup(d, func(p unsafe.Pointer) { C.free(p) }, unsafe.Pointer(p))
	}
	return d.res
}

// checkVtable validates a host vtable before anything is copied.
func checkVtable(vt *C.net_mesh_daemon_vtable) error {
	if vt == nil {
		return errf(statusInvalidArgument, "daemon vtable is NULL")
	}
	if vt.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_daemon_vtable{})) {
		return errf(statusInvalidArgument, "daemon vtable size %d is smaller than %d", uint32(vt.size), unsafe.Sizeof(C.net_mesh_daemon_vtable{}))
	}
	if vt.process == nil {
		return errf(statusInvalidArgument, "daemon vtable has no process function")
	}
	if vt.name != nil {
		if _, err := goString("daemon name", (*C.nm_cchar)(vt.name)); err != nil {
			return err
		}
	}
	return nil
}

// LeaseWord is the daemon's user_data (compute.LeaseWorder): host-driven
// delivery hands it back with each lease without loading d or its life.
func (d *cDaemon) LeaseWord() uint64 { return uint64(d.life.ud) }

func (d *cDaemon) Name() string           { return d.name }
func (d *cDaemon) Requirements() []string { return nil }

// cbError is a failed host callback: the status is the one its caller
// documents (process and factory → PROCESS_FAILED, restore →
// RESTORE_FAILED, snapshot → CALLBACK_FAILED), the text the callback's own.
func cbError(st C.int, what string, rc C.int, msg *C.char) error {
	if msg != nil {
		s := C.GoString(msg)
		C.free(unsafe.Pointer(msg))
		return errf(st, "%s callback failed (%d): %s", what, int(rc), s)
	}
	return errf(st, "%s callback failed (%d)", what, int(rc))
}

// resultBytes views a writer result's bytes; free releases a heap buffer.
func resultBytes(r *C.nm_buf_result) []byte {
	if r.len == 0 {
		return nil
	}
	if r.heap != nil {
		return unsafe.Slice((*byte)(unsafe.Pointer(r.heap)), int(r.len))
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&r.inl[0])), int(r.len))
}

// Process calls the host's process function: ProcessLent, then the outputs
// are copied into one Go allocation (the returned outer slice is d.outs,
// reused from call to call: the host serializes calls into one daemon and
// keeps only the elements).
func (d *cDaemon) Process(ev causal.Event) ([][]byte, error) {
	// The thread buffer is valid until the next process call on this thread:
	// stay on it until the outputs are copied.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	outs, err := d.ProcessLent(ev.Link, ev.Payload, ev.ReceivedAt)
	if err != nil || len(outs) == 0 {
		return outs, err
	}
	total := 0
	for _, o := range outs {
		total += len(o)
	}
	data := make([]byte, total) // one Go allocation for all
	at := 0
	for i, o := range outs {
		n := copy(data[at:], o)
		outs[i] = data[at : at+n : at+n]
		at += n
	}
	return outs, nil
}

// ProcessLent is compute.Lender (the delivery path of the C ABI): the
// outputs stay in the calling thread's buffer (compute keeps the goroutine
// on this thread until it has consumed them, before any other process call
// can run here). Outputs of a nested call (private heap buffer, freed on
// return) are copied into Go memory.
func (d *cDaemon) ProcessLent(link causal.Link, payload []byte, receivedAt uint64) ([][]byte, error) {
	// No enter/exit here (two atomic read-modify-writes per event): compute
	// calls Process only under its host lock with the host not closed, and
	// runs the Close hook (the only close of a hosted daemon's life besides
	// the GC cleanup of an unreachable one) only when no call is in
	// progress. A life closed anyway is still refused.
	if d.life.st.Load()&closedBit != 0 {
		return nil, errStopped
	}
	var p *C.uint8_t
	if len(payload) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&payload[0]))
	}
	r := d.res
	if r == nil {
		if r = d.result(); r == nil {
			return nil, errf(statusNoMemory, "cannot allocate the process result block")
		}
	}
	// The event goes through the block (C memory; the payload pointer is
	// the call's argument, never stored by Go): two arguments, not eleven.
	in := (*C.nm_proc_in)(unsafe.Pointer(&r.u))
	in.origin_hash = C.uint64_t(link.Origin)
	in.horizon = C.uint64_t(link.Horizon)
	in.sequence = C.uint64_t(link.Sequence)
	in.parent_hash = C.uint64_t(link.Parent)
	in.payload_len = C.size_t(len(payload))
	in.received_at = C.uint64_t(receivedAt)
	C.nm_call_process(r, p)
	if r.rc != 0 || r.heap != 0 {
		return d.processRare(r)
	}
	if r.count == 0 {
		return nil, nil
	}
	// Records are [u64 len][bytes], lent from the thread buffer. The common
	// case (no error, thread buffer) stays in this small frame: no defer,
	// no copies; the rest is processRare.
	raw := unsafe.Slice((*byte)(cptr(r.data)), int(r.len))
	outs := d.outs[:0]
	off := 0
	for range int(r.count) {
		l := int(*(*uint64)(unsafe.Pointer(&raw[off])))
		off += 8
		outs = append(outs, raw[off:off+l:off+l])
		off += l
	}
	if cap(outs) <= 16 {
		d.outs = outs
	}
	return outs, nil
}

// processRare is ProcessLent's result handling off the common case: the
// callback failed, or its outputs are in a private heap buffer (a nested
// call), copied into one Go allocation and freed here.
func (d *cDaemon) processRare(r *C.nm_proc_result) ([][]byte, error) {
	if r.heap != 0 {
		defer C.free(cptr(r.heap))
	}
	if r.rc != 0 {
		return nil, cbError(statusProcessFailed, "process", r.rc, (*C.char)(cptr(r.err)))
	}
	if r.count == 0 {
		return nil, nil
	}
	raw := unsafe.Slice((*byte)(cptr(r.data)), int(r.len))
	n := int(r.count)
	data := make([]byte, len(raw)-8*n) // one Go allocation for all
	outs := d.outs[:0]
	off, at := 0, 0
	for range n {
		l := int(*(*uint64)(unsafe.Pointer(&raw[off])))
		off += 8
		copy(data[at:], raw[off:off+l])
		outs = append(outs, data[at:at+l:at+l])
		off += l
		at += l
	}
	if cap(outs) <= 16 {
		d.outs = outs
	}
	return outs, nil
}

// cptr turns an address C handed over as uintptr_t back into a pointer (C
// memory, never Go's).
func cptr(a C.uintptr_t) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

func (d *cDaemon) Snapshot() ([]byte, error) {
	if d.snapshot == nil {
		return nil, nil
	}
	if !d.life.enter() {
		return nil, errStopped
	}
	defer d.life.exit()
	r := C.nm_call_snapshot(d.snapshot, d.life.ud)
	if r.heap != nil {
		defer C.free(unsafe.Pointer(r.heap))
	}
	if r.rc != 0 {
		return nil, cbError(statusCallbackFailed, "snapshot", r.rc, r.err)
	}
	if r.count == 0 {
		return nil, nil // stateless
	}
	return append([]byte{}, resultBytes(&r)...), nil
}

func (d *cDaemon) Restore(state []byte) error {
	if d.restore == nil {
		if len(state) == 0 {
			return nil
		}
		return errf(statusRestoreFailed, "daemon has no restore function but the state is %d bytes", len(state))
	}
	if !d.life.enter() {
		return errStopped
	}
	defer d.life.exit()
	var p *C.uint8_t
	if len(state) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&state[0]))
	}
	r := C.nm_call_restore(d.restore, d.life.ud, p, C.size_t(len(state)))
	if r.rc != 0 {
		return cbError(statusRestoreFailed, "restore", r.rc, r.err)
	}
	return nil
}

// cFactory is a host factory: it builds cDaemons.
type cFactory struct {
	create C.net_mesh_factory_create_fn
	life   *life
}

func checkFactory(f *C.net_mesh_factory) error {
	if f == nil {
		return errf(statusInvalidArgument, "factory is NULL")
	}
	if f.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_factory{})) {
		return errf(statusInvalidArgument, "factory size %d is smaller than %d", uint32(f.size), unsafe.Sizeof(C.net_mesh_factory{}))
	}
	if f.create == nil {
		return errf(statusInvalidArgument, "factory has no create function")
	}
	return nil
}

func newCFactory(f *C.net_mesh_factory, l *life) *cFactory {
	cf := &cFactory{create: f.create, life: l}
	runtime.AddCleanup(cf, func(l *life) { l.close() }, cf.life)
	return cf
}

// build is the compute.Factory.
func (f *cFactory) build() (compute.Daemon, error) {
	if !f.life.enter() {
		return nil, errf(statusShuttingDown, "factory was released")
	}
	defer f.life.exit()
	r := C.nm_call_create(f.create, f.life.ud)
	if r.rc != 0 {
		return nil, cbError(statusProcessFailed, "factory create", r.rc, r.err)
	}
	if err := checkVtable(&r.vt); err != nil {
		// The instance is unusable, but it was handed over: release it.
		newLife(r.vt.finalize, C.uintptr_t(r.ud)).close()
		return nil, err
	}
	return newCDaemon(&r.vt, newLife(r.vt.finalize, C.uintptr_t(r.ud))), nil
}
