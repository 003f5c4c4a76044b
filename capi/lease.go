package main

/*
#include "capi.h"
*/
import "C"

import (
	"encoding/binary"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// Host-driven delivery (core/compute/lease.go): the host runs its daemon's
// process itself between deliver_begin and deliver_commit/deliver_abort, so
// the deliver path makes no callback into the host language.

var errNotVtable = errf(statusInvalidArgument, "host-driven delivery needs a daemon made through the C ABI (a vtable)")

// onlyCDaemons is the lease's check: the host can only run what it made.
func onlyCDaemons(d compute.Daemon) error {
	if _, ok := d.(*cDaemon); !ok {
		return errNotVtable
	}
	return nil
}

//export net_mesh_runtime_deliver_begin
func net_mesh_runtime_deliver_begin(h *C.net_mesh_runtime, origin C.uint64_t, ev *C.nm_cevent, ticket *C.uint64_t, ud *unsafe.Pointer) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if ev == nil || ticket == nil || ud == nil {
		return fail(errf(statusInvalidArgument, "event, ticket or daemon_user_data is NULL"))
	}
	*ticket, *ud = 0, nil
	payload, err := borrowChecked("event payload", (*C.nm_cu8)(ev.payload), ev.payload_len)
	if err != nil {
		return fail(err)
	}
	var in causal.Event
	readEvent(&in, ev, payload)
	l, err := r.rt.DeliverBeginByRef(uint64(origin), &in, 0, onlyCDaemons)
	if err != nil {
		return fail(err)
	}
	if l.Ticket != 0 {
		*ticket = C.uint64_t(l.Ticket)
		*ud = cptr(C.uintptr_t(l.Word)) // onlyCDaemons: the cDaemon's user_data
	}
	return statusOK
}

// parseRecords splits [u64 LE length][bytes] records into dst (views of b).
func parseRecords(dst [][]byte, b []byte) ([][]byte, error) {
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return dst, errf(statusInvalidArgument, "records: truncated length at offset %d", off)
		}
		n := binary.LittleEndian.Uint64(b[off:])
		off += 8
		if n > uint64(len(b)-off) {
			return dst, errf(statusInvalidArgument, "records: record at offset %d claims %d bytes, %d left", off-8, n, len(b)-off)
		}
		dst = append(dst, b[off:off+int(n):off+int(n)])
		off += int(n)
	}
	return dst, nil
}

//export net_mesh_runtime_deliver_commit
func net_mesh_runtime_deliver_commit(h *C.net_mesh_runtime, origin, ticket C.uint64_t, records *C.nm_cu8, recordsLen C.size_t, meta *C.uint64_t, metaCap C.size_t, nOut *C.size_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		// A lease of a runtime freed meanwhile still ends; any other
		// ticket stays as it is.
		compute.AbortOrphanLease(uint64(ticket))
		return fail(err)
	}
	if nOut != nil {
		*nOut = 0
	}
	var outsArr [4][]byte
	var evsArr [4]causal.Event
	outs, err := func() ([][]byte, error) {
		if nOut == nil {
			return nil, errf(statusInvalidArgument, "n_out is NULL")
		}
		b, err := borrowChecked("records", records, recordsLen)
		if err != nil {
			return nil, err
		}
		outs, err := parseRecords(outsArr[:0], b)
		if err != nil {
			return nil, err
		}
		if uint64(metaCap) < 4*uint64(len(outs)) {
			*nOut = C.size_t(len(outs))
			return nil, errf(statusInvalidArgument, "meta holds %d values, %d outputs need %d", uint64(metaCap), len(outs), 4*len(outs))
		}
		if len(outs) > 0 && meta == nil {
			return nil, errf(statusInvalidArgument, "meta is NULL")
		}
		return outs, nil
	}()
	if err != nil {
		// Unusable outputs: the lease still ends (counted like a failed
		// process) so nothing stays locked; a bad ticket changes nothing.
		if aerr := r.rt.DeliverAbort(uint64(origin), uint64(ticket)); aerr != nil {
			return fail(aerr)
		}
		return fail(err)
	}
	evs, err := r.rt.DeliverCommit(evsArr[:0], uint64(origin), uint64(ticket), outs)
	if err != nil {
		return fail(err)
	}
	if len(evs) > 0 {
		writeMeta(unsafe.Slice((*uint64)(unsafe.Pointer(meta)), 4*len(evs)), evs)
	}
	*nOut = C.size_t(len(evs))
	return statusOK
}

//export net_mesh_runtime_deliver_abort
func net_mesh_runtime_deliver_abort(h *C.net_mesh_runtime, origin, ticket C.uint64_t, msg *C.nm_cchar) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		compute.AbortOrphanLease(uint64(ticket))
		return fail(err)
	}
	if err := r.rt.DeliverAbort(uint64(origin), uint64(ticket)); err != nil {
		return fail(err)
	}
	if msg != nil {
		if s, err := goString("message", msg); err == nil {
			r.rt.Log(compute.LogDebug, "capi: host-driven process failed", map[string]any{"origin": uint64(origin), "error": s})
		}
	}
	return statusOK
}

// The block forms: one argument per call (see net_mesh_delivery).

var errBlock = errf(statusInvalidArgument, "delivery block is NULL or its size is below sizeof(net_mesh_delivery)")

func blockOK(d *C.net_mesh_delivery) bool {
	return d != nil && uint64(d.size) >= uint64(unsafe.Sizeof(*d))
}

//export net_mesh_runtime_deliver_begin_block
func net_mesh_runtime_deliver_begin_block(d *C.net_mesh_delivery) (rc C.int) {
	defer guard(&rc)
	if !blockOK(d) {
		return fail(errBlock)
	}
	d.ticket = 0
	*udWord(d) = 0
	rt, err := runtimeCore(unsafe.Pointer(d.rt))
	if err != nil {
		return fail(err)
	}
	ev := &d.event
	payload, err := borrowChecked("event payload", (*C.nm_cu8)(unsafe.Pointer(ev.payload)), ev.payload_len)
	if err != nil {
		return fail(err)
	}
	var in causal.Event
	readEvent(&in, ev, payload)
	l, err := rt.DeliverBeginByRef(uint64(d.origin), &in, uint64(d.thread), onlyCDaemons)
	if err != nil {
		return fail(err)
	}
	if l.Ticket != 0 {
		d.ticket = C.uint64_t(l.Ticket)
		*udWord(d) = C.uintptr_t(l.Word) // onlyCDaemons: the cDaemon's user_data
	}
	return statusOK
}

// udWord is the block's daemon_user_data as an integer: written that way,
// a store into C memory needs no write barrier check.
func udWord(d *C.net_mesh_delivery) *C.uintptr_t {
	return (*C.uintptr_t)(unsafe.Pointer(&d.daemon_user_data))
}

// blockOutputs reads the outputs a commit block names (views of host memory).
func blockOutputs(dst [][]byte, d *C.net_mesh_delivery) ([][]byte, error) {
	n := uint64(d.n_outputs)
	if n == 0 {
		return dst, nil
	}
	b, err := borrowChecked("outputs", (*C.nm_cu8)(unsafe.Pointer(d.data)), d.data_len)
	if err != nil {
		return dst, err
	}
	if n == 1 {
		return append(dst, b), nil
	}
	outs, err := parseRecords(dst, b)
	if err != nil {
		return outs, err
	}
	if uint64(len(outs)) != n {
		return outs, errf(statusInvalidArgument, "records: %d records, n_outputs is %d", len(outs), n)
	}
	if uint64(d.meta_cap) < 4*n {
		return outs, errf(statusInvalidArgument, "meta holds %d values, %d outputs need %d", uint64(d.meta_cap), n, 4*n)
	}
	if d.meta == nil {
		return outs, errf(statusInvalidArgument, "meta is NULL")
	}
	return outs, nil
}

//export net_mesh_runtime_deliver_commit_block
func net_mesh_runtime_deliver_commit_block(d *C.net_mesh_delivery) (rc C.int) {
	defer guard(&rc)
	if !blockOK(d) {
		return fail(errBlock)
	}
	if d.n_outputs > 1 {
		return commitRecords(d)
	}
	// None or one output (the common case) in a small frame.
	origin, ticket := uint64(d.origin), uint64(d.ticket)
	rt, err := commitRuntime(d)
	if err != nil {
		return fail(err)
	}
	var one [1][]byte
	var outs [][]byte
	if d.n_outputs == 1 {
		b, err := borrowChecked("outputs", (*C.nm_cu8)(unsafe.Pointer(d.data)), d.data_len)
		if err != nil {
			return abortBlock(rt, d, err)
		}
		one[0] = b
		outs = one[:]
	}
	var evsArr [1]causal.Event
	evs, err := rt.DeliverCommit(evsArr[:0], origin, ticket, outs)
	if err != nil {
		return fail(err)
	}
	d.ticket = 0
	if len(evs) == 1 {
		writeMeta(unsafe.Slice((*uint64)(unsafe.Pointer(&d.meta1[0])), 4), evs)
	}
	return statusOK
}

// commitRuntime is the runtime a commit block names. When that handle is
// gone, a lease of its runtime (freed meanwhile) still ends, as in
// deliver_commit, and the block's ticket is cleared.
func commitRuntime(d *C.net_mesh_delivery) (*compute.Runtime, error) {
	rt, err := runtimeCore(unsafe.Pointer(d.rt))
	if err != nil && compute.AbortOrphanLease(uint64(d.ticket)) {
		d.ticket = 0
	}
	return rt, err
}

// abortBlock ends the lease of a commit whose outputs were refused (err):
// as in deliver_commit, counted as a failed process; a bad ticket changes
// nothing.
func abortBlock(rt *compute.Runtime, d *C.net_mesh_delivery, err error) C.int {
	if aerr := rt.DeliverAbort(uint64(d.origin), uint64(d.ticket)); aerr != nil {
		return fail(aerr)
	}
	d.ticket = 0
	return fail(err)
}

// commitRecords is deliver_commit_block for several outputs given as
// records (the guard is the caller's).
func commitRecords(d *C.net_mesh_delivery) C.int {
	origin, ticket := uint64(d.origin), uint64(d.ticket)
	rt, err := commitRuntime(d)
	if err != nil {
		return fail(err)
	}
	var outsArr [4][]byte
	var evsArr [4]causal.Event
	outs, err := blockOutputs(outsArr[:0], d)
	if err != nil {
		return abortBlock(rt, d, err)
	}
	evs, err := rt.DeliverCommit(evsArr[:0], origin, ticket, outs)
	if err != nil {
		return fail(err)
	}
	d.ticket = 0
	writeMeta(unsafe.Slice((*uint64)(unsafe.Pointer(d.meta)), 4*len(evs)), evs)
	return statusOK
}

// writeMeta writes per output the 4 words a host-driven commit returns:
// sequence, parent hash, horizon, received_at. m holds 4·len(evs) words.
func writeMeta(m []uint64, evs []causal.Event) {
	for i, e := range evs {
		m[4*i] = e.Link.Sequence
		m[4*i+1] = e.Link.Parent
		m[4*i+2] = e.Link.Horizon
		m[4*i+3] = e.ReceivedAt
	}
}

//export net_mesh_runtime_deliver_held_by
func net_mesh_runtime_deliver_held_by(h *C.net_mesh_runtime, origin, thread C.uint64_t, held *C.int) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if held == nil {
		return fail(errf(statusInvalidArgument, "held is NULL"))
	}
	*held = 0
	if r.rt.LeaseHeldBy(uint64(origin), uint64(thread)) {
		*held = 1
	}
	return statusOK
}
