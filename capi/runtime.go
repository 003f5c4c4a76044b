package main

/*
// The library already needs static TLS (the Go runtime's own TLS is
// initial-exec); the same model for the C files' thread-locals makes each
// access one %fs-relative load instead of a __tls_get_addr call (several
// per delivery).
#cgo CFLAGS: -ftls-model=initial-exec
#include "capi.h"
*/
import "C"

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
	"github.com/netmesh/libnetmesh/core/identity"
)

// rtObj is what a net_mesh_runtime handle holds.
type rtObj struct {
	rt   *compute.Runtime
	node *nodeObj

	// owned: the per-daemon factories of spawn_with_daemon, finalized when
	// their daemon is stopped or the runtime shuts down (a factory is not a
	// daemon, so compute's Closer hook does not cover it). Daemon instances
	// are finalized by compute itself: cDaemon is a compute.Closer, and the
	// runtime closes every host it drops (stop, shutdown, free, failed spawn,
	// rollback, migrated away once final). kinds: the kind factories,
	// finalized at free.
	mu    sync.Mutex
	owned map[uint64]*cFactory
	kinds []*cFactory
	// freed (under mu) is set by net_mesh_runtime_free before it takes the
	// kinds, the executor and the sink for finalizing: a setter that looked
	// the handle up before the free installs under mu only while freed is
	// false (free then finalizes it), else it finalizes its own argument.
	// Without this a setter racing free could install after free's last
	// swap and its finalizer would never run.
	freed bool

	exec atomic.Pointer[executor]
	mig  *migState // migration engine and output sink (migration.go, sink.go)
}

func runtimeOf(h unsafe.Pointer) (*rtObj, error) {
	v, err := lookup(h, kindRuntime)
	if err != nil {
		return nil, err
	}
	return v.(*rtObj), nil
}

// runtimeCore is runtimeOf(h).rt for the delivery paths, with a cache of
// its own: a hit (the same handle, its entry not released) goes from the
// cache straight to the runtime, one dependent load fewer than through the
// rtObj.
func runtimeCore(h unsafe.Pointer) (*compute.Runtime, error) {
	if c := recentRT.Load(); c != nil && c.handle == h && h != nil && !c.e.dead.Load() {
		return c.rt, nil
	}
	return runtimeCoreSlow(h)
}

// rtHit is recentRT's value: immutable once stored.
type rtHit struct {
	handle unsafe.Pointer
	e      *entry
	rt     *compute.Runtime
}

var recentRT atomic.Pointer[rtHit]

func runtimeCoreSlow(h unsafe.Pointer) (*compute.Runtime, error) {
	e, _ := find(h, kindRuntime)
	if e == nil {
		return nil, badHandle(h, kindRuntime)
	}
	rt := e.obj.(*rtObj).rt
	recentRT.Store(&rtHit{handle: h, e: e, rt: rt})
	return rt, nil
}

func daemonConfig(c *C.nm_cconfig) (compute.DaemonConfig, error) {
	if c == nil {
		return compute.DaemonConfig{}, nil
	}
	if c.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_daemon_config{})) {
		return compute.DaemonConfig{}, errf(statusInvalidArgument, "daemon config size %d is smaller than %d", uint32(c.size), unsafe.Sizeof(C.net_mesh_daemon_config{}))
	}
	return compute.DaemonConfig{AutoSnapshotInterval: uint64(c.auto_snapshot_interval)}, nil
}

// spawnIdentity resolves a spawn's identity: a live handle holding a secret.
func spawnIdentity(h *C.nm_cidentity) (*identity.Keypair, error) {
	k, err := identityOf(h)
	if err != nil {
		return nil, err
	}
	if k.IsReadOnly() {
		return nil, errf(statusInvalidArgument, "identity is public-only: a daemon needs its secret key")
	}
	return k, nil
}

func decodeSnapshot(p *C.nm_cu8, n C.size_t) (*causal.Snapshot, error) {
	b, err := borrowChecked("snapshot", p, n)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errf(statusInvalidArgument, "snapshot is empty")
	}
	return causal.DecodeSnapshot(b)
}

//export net_mesh_runtime_new
func net_mesh_runtime_new(nodeH *C.net_mesh_node, opts *C.nm_crtopts, out **C.net_mesh_runtime) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return fail(errNilOut)
	}
	n, err := nodeOf(unsafe.Pointer(nodeH))
	if err != nil {
		return fail(err)
	}
	o := []compute.Option{compute.WithLogger(coreLog)}
	if opts != nil {
		if opts.size < C.uint32_t(unsafe.Sizeof(C.net_mesh_runtime_options{})) {
			return fail(errf(statusInvalidArgument, "runtime options size %d is smaller than %d", uint32(opts.size), unsafe.Sizeof(C.net_mesh_runtime_options{})))
		}
		if opts.workers > 0 {
			o = append(o, compute.WithWorkers(int(opts.workers)))
		}
		if opts.queue_size > 0 {
			o = append(o, compute.WithQueueSize(int(opts.queue_size)))
		}
	}
	r := &rtObj{rt: compute.NewRuntime(n.n, o...), node: n, owned: make(map[uint64]*cFactory)}
	r.mig = attachMigration(r)
	*out = (*C.net_mesh_runtime)(mint(kindRuntime, r))
	return statusOK
}

//export net_mesh_runtime_register_factory
func net_mesh_runtime_register_factory(h *C.net_mesh_runtime, kind *C.nm_cchar, f *C.nm_cfactory, fud unsafe.Pointer) (rc C.int) {
	defer guard(&rc)
	var cf *cFactory
	if f != nil {
		// Consumed also on error: from here on the finalizer runs exactly once.
		cf = &cFactory{create: f.create, life: newLife(f.finalize, C.uintptr_t(uintptr(fud)))}
	}
	release := func(err error) C.int {
		if cf != nil {
			cf.life.close()
		}
		return fail(err)
	}
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return release(err)
	}
	k, err := goString("kind", kind)
	if err != nil {
		return release(err)
	}
	if err := checkFactory((*C.net_mesh_factory)(f)); err != nil {
		return release(err)
	}
	if err := r.rt.RegisterFactory(k, cf.build); err != nil {
		return release(err)
	}
	r.mu.Lock()
	if r.freed {
		r.mu.Unlock()
		return release(badHandle(unsafe.Pointer(h), kindRuntime))
	}
	r.kinds = append(r.kinds, cf)
	r.mu.Unlock()
	return statusOK
}

//export net_mesh_runtime_start
func net_mesh_runtime_start(h *C.net_mesh_runtime) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if err := r.rt.Start(context.Background()); err != nil {
		return fail(err)
	}
	return statusOK
}

func (r *rtObj) shutdown(timeout time.Duration) error {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := r.rt.Shutdown(ctx)
	r.mu.Lock()
	owned := r.owned
	r.owned = make(map[uint64]*cFactory)
	r.mu.Unlock()
	for _, f := range owned {
		f.life.close()
	}
	return err
}

//export net_mesh_runtime_shutdown
func net_mesh_runtime_shutdown(h *C.net_mesh_runtime, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if err := r.shutdown(time.Duration(timeoutMS) * time.Millisecond); err != nil {
		return fail(err)
	}
	return statusOK
}

// freeTimeout bounds the pool drain of net_mesh_runtime_free, so a host
// that frees a runtime from the thread its executor needs cannot hang.
const freeTimeout = 5 * time.Second

//export net_mesh_runtime_free
func net_mesh_runtime_free(h *C.net_mesh_runtime) {
	defer guardVoid()
	v, ok := release(unsafe.Pointer(h), kindRuntime)
	if !ok {
		return
	}
	r := v.(*rtObj)
	_ = r.shutdown(freeTimeout)
	r.mu.Lock()
	r.freed = true
	kinds := r.kinds
	r.kinds = nil
	r.rt.SetExecutor(nil)
	e := r.exec.Swap(nil)
	sink := r.mig.sink.Swap(nil)
	r.mu.Unlock()
	for _, f := range kinds {
		f.life.close()
	}
	if e != nil {
		e.life.close()
	}
	if sink != nil {
		sink.life.close()
	}
}

//export net_mesh_runtime_is_ready
func net_mesh_runtime_is_ready(h *C.nm_cruntime, out *C.int) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = 0
	if r.rt.IsReady() {
		*out = 1
	}
	return statusOK
}

//export net_mesh_runtime_daemon_count
func net_mesh_runtime_daemon_count(h *C.nm_cruntime, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = C.uint64_t(r.rt.DaemonCount())
	return statusOK
}

// finishSpawn records the per-daemon factory (if any) the runtime must
// finalize for a new daemon and mints its handle (if asked for).
func (r *rtObj) finishSpawn(dh *compute.DaemonHandle, f *cFactory, out **C.net_mesh_daemon) {
	if f != nil {
		r.mu.Lock()
		if prev, ok := r.owned[dh.OriginHash()]; ok {
			// Not expected (the origin was free), but never leak a finalizer.
			defer prev.life.close()
		}
		r.owned[dh.OriginHash()] = f
		r.mu.Unlock()
	}
	if out != nil {
		*out = (*C.net_mesh_daemon)(mint(kindDaemon, dh))
	}
}

// spawnByKind runs a kind spawn. The instance the kind's factory built is
// compute's: finalized through its Closer when the daemon goes, and before
// an error returns when the spawn fails.
func (r *rtObj) spawnByKind(do func() (*compute.DaemonHandle, error), out **C.net_mesh_daemon) C.int {
	dh, err := do()
	if err != nil {
		return fail(err)
	}
	r.finishSpawn(dh, nil, out)
	return statusOK
}

//export net_mesh_runtime_spawn
func net_mesh_runtime_spawn(h *C.net_mesh_runtime, kind *C.nm_cchar, id *C.nm_cidentity, cfg *C.nm_cconfig, out **C.net_mesh_daemon) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	k, err := goString("kind", kind)
	if err != nil {
		return fail(err)
	}
	kp, err := spawnIdentity(id)
	if err != nil {
		return fail(err)
	}
	c, err := daemonConfig(cfg)
	if err != nil {
		return fail(err)
	}
	return r.spawnByKind(func() (*compute.DaemonHandle, error) {
		return r.rt.Spawn(context.Background(), k, kp, c)
	}, out)
}

//export net_mesh_runtime_spawn_from_snapshot
func net_mesh_runtime_spawn_from_snapshot(h *C.net_mesh_runtime, kind *C.nm_cchar, id *C.nm_cidentity, snap *C.nm_cu8, snapLen C.size_t, cfg *C.nm_cconfig, out **C.net_mesh_daemon) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	k, err := goString("kind", kind)
	if err != nil {
		return fail(err)
	}
	kp, err := spawnIdentity(id)
	if err != nil {
		return fail(err)
	}
	c, err := daemonConfig(cfg)
	if err != nil {
		return fail(err)
	}
	if err := kindFirst(r.rt, k); err != nil {
		return fail(err)
	}
	s, err := decodeSnapshot(snap, snapLen)
	if err != nil {
		return fail(err)
	}
	return r.spawnByKind(func() (*compute.DaemonHandle, error) {
		return r.rt.SpawnFromSnapshot(context.Background(), k, kp, s, c)
	}, out)
}

// hostInstance takes ownership of a caller-built daemon and its factory:
// consumed also on error, so failAll runs both finalizers. err reports an
// unusable vtable or factory (then d and cf are nil).
func hostInstance(vt *C.nm_cvtable, dud unsafe.Pointer, f *C.nm_cfactory, fud unsafe.Pointer) (d *cDaemon, cf *cFactory, failAll func(error) C.int, err error) {
	var dl, fl *life
	if vt != nil {
		dl = newLife(vt.finalize, C.uintptr_t(uintptr(dud)))
	}
	if f != nil {
		fl = newLife(f.finalize, C.uintptr_t(uintptr(fud)))
	}
	failAll = func(err error) C.int {
		if dl != nil {
			dl.close()
		}
		if fl != nil {
			fl.close()
		}
		return fail(err)
	}
	if err := checkVtable((*C.net_mesh_daemon_vtable)(vt)); err != nil {
		return nil, nil, failAll, err
	}
	if err := checkFactory((*C.net_mesh_factory)(f)); err != nil {
		return nil, nil, failAll, err
	}
	return newCDaemon((*C.net_mesh_daemon_vtable)(vt), dl), newCFactory((*C.net_mesh_factory)(f), fl), failAll, nil
}

func (r *rtObj) spawnInstance(do func(d *cDaemon, f *cFactory) (*compute.DaemonHandle, error), vt *C.nm_cvtable, dud unsafe.Pointer, f *C.nm_cfactory, fud unsafe.Pointer, out **C.net_mesh_daemon) C.int {
	d, cf, failAll, err := hostInstance(vt, dud, f, fud)
	if err != nil {
		return failAll(err)
	}
	dh, err := do(d, cf)
	if err != nil {
		return failAll(err)
	}
	r.finishSpawn(dh, cf, out)
	return statusOK
}

//export net_mesh_runtime_spawn_with_daemon
func net_mesh_runtime_spawn_with_daemon(h *C.net_mesh_runtime, id *C.nm_cidentity, cfg *C.nm_cconfig, vt *C.nm_cvtable, dud unsafe.Pointer, f *C.nm_cfactory, fud unsafe.Pointer, out **C.net_mesh_daemon) (rc C.int) {
	defer guard(&rc)
	pre := func() (*rtObj, *identity.Keypair, compute.DaemonConfig, error) {
		r, err := runtimeOf(unsafe.Pointer(h))
		if err != nil {
			return nil, nil, compute.DaemonConfig{}, err
		}
		kp, err := spawnIdentity(id)
		if err != nil {
			return nil, nil, compute.DaemonConfig{}, err
		}
		c, err := daemonConfig(cfg)
		return r, kp, c, err
	}
	r, kp, c, err := pre()
	if err != nil {
		_, _, failAll, _ := hostInstance(vt, dud, f, fud)
		return failAll(err)
	}
	return r.spawnInstance(func(d *cDaemon, cf *cFactory) (*compute.DaemonHandle, error) {
		return r.rt.SpawnWithDaemon(context.Background(), kp, c, d, cf.build)
	}, vt, dud, f, fud, out)
}

//export net_mesh_runtime_spawn_from_snapshot_with_daemon
func net_mesh_runtime_spawn_from_snapshot_with_daemon(h *C.net_mesh_runtime, id *C.nm_cidentity, snap *C.nm_cu8, snapLen C.size_t, cfg *C.nm_cconfig, vt *C.nm_cvtable, dud unsafe.Pointer, f *C.nm_cfactory, fud unsafe.Pointer, out **C.net_mesh_daemon) (rc C.int) {
	defer guard(&rc)
	pre := func() (*rtObj, *identity.Keypair, compute.DaemonConfig, *causal.Snapshot, error) {
		r, err := runtimeOf(unsafe.Pointer(h))
		if err != nil {
			return nil, nil, compute.DaemonConfig{}, nil, err
		}
		kp, err := spawnIdentity(id)
		if err != nil {
			return nil, nil, compute.DaemonConfig{}, nil, err
		}
		c, err := daemonConfig(cfg)
		if err != nil {
			return nil, nil, c, nil, err
		}
		s, err := decodeSnapshot(snap, snapLen)
		return r, kp, c, s, err
	}
	r, kp, c, s, err := pre()
	if err != nil {
		_, _, failAll, _ := hostInstance(vt, dud, f, fud)
		return failAll(err)
	}
	return r.spawnInstance(func(d *cDaemon, cf *cFactory) (*compute.DaemonHandle, error) {
		return r.rt.SpawnFromSnapshotWithDaemon(context.Background(), kp, s, c, d, cf.build)
	}, vt, dud, f, fud, out)
}

//export net_mesh_runtime_stop
func net_mesh_runtime_stop(h *C.net_mesh_runtime, origin C.uint64_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if err := r.rt.Stop(context.Background(), uint64(origin)); err != nil {
		return fail(err)
	}
	r.mu.Lock()
	f, ok := r.owned[uint64(origin)]
	delete(r.owned, uint64(origin))
	r.mu.Unlock()
	if ok {
		f.life.close()
	}
	return statusOK
}

//export net_mesh_runtime_snapshot
func net_mesh_runtime_snapshot(h *C.net_mesh_runtime, origin C.uint64_t, out *C.net_mesh_bytes) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	s, err := r.rt.Snapshot(context.Background(), uint64(origin))
	if err != nil {
		return fail(err)
	}
	if s == nil {
		out.data, out.len = nil, 0
		return statusOK
	}
	if err := fillBytes(out, s.Encode()); err != nil {
		return fail(err)
	}
	return statusOK
}

// net_mesh_runtime_deliver is C (capi/deliver.c): it runs this export with a
// per-thread reusable list and copies the result into one fresh allocation.

//export net_mesh_runtime_deliver_into
func net_mesh_runtime_deliver_into(h *C.net_mesh_runtime, origin C.uint64_t, ev *C.nm_cevent, list *C.net_mesh_event_list) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if ev == nil || list == nil {
		return fail(errf(statusInvalidArgument, "event or output list is NULL"))
	}
	if list.reserved_ != nil && (*C.nm_list_hdr)(list.reserved_).magic != C.NM_LIST_MAGIC {
		_, err := listCap(list) // listCap's check, inline; its error
		return fail(err)
	}
	var payload []byte // borrowChecked's rules, the valid case without a call
	if n := ev.payload_len; n != 0 {
		if ev.payload == nil || uint64(n) > maxBuffer {
			_, err := borrowChecked("event payload", (*C.nm_cu8)(ev.payload), n)
			return fail(err)
		}
		payload = unsafe.Slice((*byte)(unsafe.Pointer(ev.payload)), int(n))
	}
	var in causal.Event
	readEvent(&in, ev, payload)
	// The outputs are written into the list while the daemon's host is
	// still locked: a C daemon lends them from this thread's buffer, so
	// they are copied once, from there into the list.
	filled := false
	// Pinned: an export runs on the C thread that called it until it returns.
	err = r.rt.DeliverVisitPinned(uint64(origin), &in, func(outs []causal.Event) error {
		filled = true
		return refillEventList(list, outs)
	})
	if err != nil {
		return fail(err)
	}
	if !filled { // queued behind a migration: no outputs
		list.events, list.len = nil, 0
	}
	return statusOK
}

const listHdrSize = int(unsafe.Sizeof(C.nm_list_hdr{}))

// listCap validates an in/out list: zeroed (no storage yet) or filled by the
// library (its storage starts with an nm_list_hdr). Returns the capacity.
func listCap(list *C.net_mesh_event_list) (int, error) {
	if list.reserved_ == nil {
		return 0, nil
	}
	hd := (*C.nm_list_hdr)(list.reserved_)
	if hd.magic != C.NM_LIST_MAGIC {
		return 0, errf(statusInvalidArgument, "output list was neither zeroed nor filled by this library")
	}
	return int(hd.cap), nil
}

// fillEventList fills a fresh list (out's previous contents are ignored) with
// one allocation: header, event array, payloads.
func fillEventList(out *C.net_mesh_event_list, evs []causal.Event) error {
	out.events, out.len, out.reserved_ = nil, 0, nil
	return refillEventList(out, evs)
}

// refillEventList writes evs into list, reusing its storage and growing it
// when needed (the only C call, and only then). The storage is read here, not
// earlier: a nested delivery on this thread may have moved it. On error the
// list is unchanged.
func refillEventList(list *C.net_mesh_event_list, evs []causal.Event) error {
	if len(evs) == 1 && list.reserved_ != nil && refillOne(list, &evs[0]) {
		return nil
	}
	have, err := listCap(list)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		list.events, list.len = nil, 0
		return nil
	}
	head := listHdrSize + len(evs)*int(unsafe.Sizeof(C.net_mesh_event{}))
	size := head
	for i := range evs {
		size += len(evs[i].Payload)
	}
	base := list.reserved_
	if size > have {
		grow := max(size, 2*have, 256)
		p := C.nm_realloc(base, C.size_t(grow))
		if p == nil {
			return errf(statusNoMemory, "cannot allocate %d bytes for %d output events", size, len(evs))
		}
		base = p
		hd := (*C.nm_list_hdr)(base)
		hd.magic, hd.cap = C.NM_LIST_MAGIC, C.uint64_t(grow)
		list.reserved_ = base
	}
	data := unsafe.Slice((*byte)(base), size)
	arr := unsafe.Slice((*C.net_mesh_event)(unsafe.Pointer(&data[listHdrSize])), len(evs))
	at := head
	for i := range evs {
		e := &evs[i] // not a copy: evs was just written field by field
		ce := &arr[i]
		fillEvent(ce, e)
		if len(e.Payload) > 0 {
			ce.payload = (*C.uint8_t)(unsafe.Pointer(&data[at]))
			at += copy(data[at:], e.Payload)
		}
	}
	list.events, list.len = &arr[0], C.size_t(len(evs))
	return nil
}

// readEvent sets in from C event ev, with payload (ev's bytes, already
// checked) as its payload. Field by field into the caller's variable, not a
// composite literal: the compiler builds a literal in a temporary and copies
// it over in 16-byte loads of the fresh 8-byte stores (a store forwarding
// stall on the delivery paths).
func readEvent(in *causal.Event, ev *C.net_mesh_event, payload []byte) {
	in.Link.Origin = uint64(ev.link.origin_hash)
	in.Link.Horizon = uint64(ev.link.horizon)
	in.Link.Sequence = uint64(ev.link.sequence)
	in.Link.Parent = uint64(ev.link.parent_hash)
	in.Payload = payload
	in.ReceivedAt = uint64(ev.received_at)
}

// fillEvent writes e's link, received_at and payload length into ce and
// clears its payload pointer (the caller points it at its copy).
func fillEvent(ce *C.net_mesh_event, e *causal.Event) {
	ce.link.origin_hash = C.uint64_t(e.Link.Origin)
	ce.link.horizon = C.uint64_t(e.Link.Horizon)
	ce.link.sequence = C.uint64_t(e.Link.Sequence)
	ce.link.parent_hash = C.uint64_t(e.Link.Parent)
	ce.received_at = C.uint64_t(e.ReceivedAt)
	ce.payload_len = C.size_t(len(e.Payload))
	ce.payload = nil
}

// refillOne is refillEventList's common case: one output into a library
// list that has room for it. False (list untouched) otherwise.
func refillOne(list *C.net_mesh_event_list, e *causal.Event) bool {
	const at = listHdrSize + int(unsafe.Sizeof(C.net_mesh_event{}))
	base := list.reserved_
	hd := (*C.nm_list_hdr)(base)
	if hd.magic != C.NM_LIST_MAGIC || at+len(e.Payload) > int(hd.cap) {
		return false
	}
	ce := (*C.net_mesh_event)(unsafe.Add(base, listHdrSize))
	fillEvent(ce, e)
	if len(e.Payload) > 0 {
		dst := unsafe.Slice((*byte)(unsafe.Add(base, at)), len(e.Payload))
		copy(dst, e.Payload)
		ce.payload = (*C.uint8_t)(unsafe.Pointer(&dst[0]))
	}
	list.events, list.len = ce, 1
	return true
}

//export net_mesh_runtime_subscriptions
func net_mesh_runtime_subscriptions(h *C.nm_cruntime, origin C.uint64_t, out *C.net_mesh_subscription_list) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	bs, err := r.rt.Subscriptions(uint64(origin))
	if err != nil {
		return fail(err)
	}
	out.items, out.len, out.reserved_ = nil, 0, nil
	if len(bs) == 0 {
		return statusOK
	}
	head := len(bs) * int(unsafe.Sizeof(C.net_mesh_subscription{}))
	size := head
	for _, b := range bs {
		size += len(b.Channel) + 1 + len(b.Token)
	}
	p := C.nm_malloc(C.size_t(size))
	if p == nil {
		return fail(errf(statusNoMemory, "cannot allocate %d bytes", size))
	}
	arr := unsafe.Slice((*C.net_mesh_subscription)(p), len(bs))
	data := unsafe.Slice((*byte)(p), size)
	at := head
	for i, b := range bs {
		it := &arr[i]
		it.publisher = C.uint64_t(b.Publisher)
		it.channel = (*C.char)(unsafe.Pointer(&data[at]))
		at += copy(data[at:], b.Channel)
		data[at] = 0
		at++
		it.token, it.token_len = nil, C.size_t(len(b.Token))
		if len(b.Token) > 0 {
			it.token = (*C.uint8_t)(unsafe.Pointer(&data[at]))
			at += copy(data[at:], b.Token)
		}
	}
	out.items, out.len, out.reserved_ = &arr[0], C.size_t(len(bs)), p
	return statusOK
}

func timeoutCtx(ms C.uint32_t) (context.Context, context.CancelFunc) {
	if ms == 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
}

//export net_mesh_runtime_subscribe
func net_mesh_runtime_subscribe(h *C.net_mesh_runtime, origin, publisher C.uint64_t, channel *C.nm_cchar, token *C.nm_cu8, tokenLen C.size_t, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	tok, err := borrowChecked("token", token, tokenLen)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := timeoutCtx(timeoutMS)
	defer cancel()
	if err := r.rt.SubscribeChannel(ctx, uint64(origin), uint64(publisher), ch, append([]byte(nil), tok...)); err != nil {
		return fail(err)
	}
	return statusOK
}

//export net_mesh_runtime_unsubscribe
func net_mesh_runtime_unsubscribe(h *C.net_mesh_runtime, origin, publisher C.uint64_t, channel *C.nm_cchar, timeoutMS C.uint32_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	ch, err := goString("channel", channel)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := timeoutCtx(timeoutMS)
	defer cancel()
	if err := r.rt.UnsubscribeChannel(ctx, uint64(origin), uint64(publisher), ch); err != nil {
		return fail(err)
	}
	return statusOK
}

//export net_mesh_runtime_expect_migration
func net_mesh_runtime_expect_migration(h *C.net_mesh_runtime, kind *C.nm_cchar, origin C.uint64_t, cfg *C.nm_cconfig) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	k, err := goString("kind", kind)
	if err != nil {
		return fail(err)
	}
	c, err := daemonConfig(cfg)
	if err != nil {
		return fail(err)
	}
	if err := r.rt.ExpectMigration(k, uint64(origin), c); err != nil {
		return fail(err)
	}
	return statusOK
}

//export net_mesh_runtime_register_migration_target_identity
func net_mesh_runtime_register_migration_target_identity(h *C.net_mesh_runtime, kind *C.nm_cchar, id *C.nm_cidentity, cfg *C.nm_cconfig) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	k, err := goString("kind", kind)
	if err != nil {
		return fail(err)
	}
	kp, err := spawnIdentity(id)
	if err != nil {
		return fail(err)
	}
	c, err := daemonConfig(cfg)
	if err != nil {
		return fail(err)
	}
	if err := r.rt.RegisterMigrationTargetIdentity(k, kp, c); err != nil {
		return fail(err)
	}
	return statusOK
}

// ---- daemon handles ----

func daemonOf(h unsafe.Pointer) (*compute.DaemonHandle, error) {
	v, err := lookup(h, kindDaemon)
	if err != nil {
		return nil, err
	}
	return v.(*compute.DaemonHandle), nil
}

//export net_mesh_daemon_origin_hash
func net_mesh_daemon_origin_hash(h *C.nm_cdaemon, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	d, err := daemonOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	*out = C.uint64_t(d.OriginHash())
	return statusOK
}

//export net_mesh_daemon_entity_id
func net_mesh_daemon_entity_id(h *C.nm_cdaemon, out *C.uint8_t) (rc C.int) {
	defer guard(&rc)
	d, err := daemonOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	id := d.EntityID()
	copy(unsafe.Slice((*byte)(out), 32), id[:])
	return statusOK
}

//export net_mesh_daemon_stats_get
func net_mesh_daemon_stats_get(h *C.nm_cdaemon, out *C.net_mesh_daemon_stats) (rc C.int) {
	defer guard(&rc)
	d, err := daemonOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if out == nil {
		return fail(errNilOut)
	}
	if err := checkOutSize("daemon stats", out.size, 8); err != nil {
		return fail(err)
	}
	s, err := d.Stats()
	if err != nil {
		return fail(err)
	}
	full := C.net_mesh_daemon_stats{size: out.size, events_processed: C.uint64_t(s.EventsProcessed),
		events_emitted: C.uint64_t(s.EventsEmitted), errors: C.uint64_t(s.Errors), snapshots_taken: C.uint64_t(s.SnapshotsTaken)}
	copyOut(unsafe.Pointer(out), unsafe.Pointer(&full), int(out.size), int(unsafe.Sizeof(full)))
	return statusOK
}

//export net_mesh_daemon_free
func net_mesh_daemon_free(h *C.net_mesh_daemon) {
	defer guardVoid()
	release(unsafe.Pointer(h), kindDaemon)
}

// checkOutSize: a caller-sized output struct must hold at least its size
// field and the first field after it.
func checkOutSize(what string, size C.uint32_t, min int) error {
	if int(size) < min+8 {
		return errf(statusInvalidArgument, "%s size %d is too small", what, uint32(size))
	}
	return nil
}

// copyOut copies the first min(have, full) bytes of a filled struct into
// the caller's, which is `have` bytes long (a newer library never writes
// past an older caller's struct).
func copyOut(dst, src unsafe.Pointer, have, full int) {
	n := min(have, full)
	copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(src), n))
}
