package main

/*
#include "capi.h"
*/
import "C"

import (
	"encoding/binary"
	"slices"
	"sync"
	"unsafe"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// Batched host-driven delivery (core/compute/batch.go): one lease for many
// events to one daemon, so a host pays two foreign calls per batch instead
// of two per event.

// maxBatch bounds the events of one batch (the library copies their links).
const maxBatch = 1 << 20

// batchScratch is what one batch call borrows (reused across calls): the
// events as Go values viewing C payloads, the outputs' views and ends, and
// the wrapped outputs. Cleared before it goes back (no views kept).
type batchScratch struct {
	evs  []causal.Event
	outs [][]byte
	ends []int
	dst  []causal.Event
}

var batchPool = sync.Pool{New: func() any { return new(batchScratch) }}

func putBatch(s *batchScratch) {
	clear(s.evs)
	clear(s.outs)
	clear(s.dst)
	if cap(s.evs) > 4096 || cap(s.outs) > 65536 || cap(s.dst) > 65536 {
		return // do not keep one huge batch's buffers alive
	}
	s.evs, s.outs, s.ends, s.dst = s.evs[:0], s.outs[:0], s.ends[:0], s.dst[:0]
	batchPool.Put(s)
}

//export net_mesh_runtime_deliver_batch_begin
func net_mesh_runtime_deliver_batch_begin(h *C.net_mesh_runtime, origin C.uint64_t, events *C.nm_cevent, n C.size_t, thread C.uint64_t, ticket *C.uint64_t, ud *unsafe.Pointer) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		return fail(err)
	}
	if ticket == nil || ud == nil {
		return fail(errf(statusInvalidArgument, "ticket or daemon_user_data is NULL"))
	}
	*ticket, *ud = 0, nil
	switch {
	case n == 0:
		return fail(errf(statusInvalidArgument, "a batch needs at least one event"))
	case uint64(n) > maxBatch:
		return fail(errf(statusInvalidArgument, "a batch holds at most %d events, not %d", maxBatch, uint64(n)))
	case events == nil:
		return fail(errf(statusInvalidArgument, "events is NULL"))
	}
	s := batchPool.Get().(*batchScratch)
	defer putBatch(s)
	cevs := unsafe.Slice(events, int(n))
	s.evs = slices.Grow(s.evs, len(cevs))[:len(cevs)] // putBatch clears all of it
	for i := range cevs {
		ev := &cevs[i]
		payload, err := borrowChecked("event payload", (*C.nm_cu8)(ev.payload), ev.payload_len)
		if err != nil {
			return fail(errf(statusInvalidArgument, "event %d: %v", i, err))
		}
		readEvent(&s.evs[i], ev, payload)
	}
	l, err := r.rt.DeliverBatchBegin(uint64(origin), s.evs, uint64(thread), onlyCDaemons)
	if err != nil {
		return fail(err)
	}
	*ticket = C.uint64_t(l.Ticket)
	*ud = cptr(C.uintptr_t(l.Word))
	return statusOK
}

// parseBatchRecords splits a batch commit's records — per event a u64 LE
// output count, then that many [u64 LE length][bytes] records — for nDone
// events into s.outs (views of b) and s.ends. Every byte must be used.
func parseBatchRecords(s *batchScratch, b []byte, nDone uint64) error {
	off := 0
	for i := uint64(0); i < nDone; i++ {
		if len(b)-off < 8 {
			return errf(statusInvalidArgument, "records: event %d: truncated output count at offset %d", i, off)
		}
		cnt := binary.LittleEndian.Uint64(b[off:])
		off += 8
		if cnt > uint64(len(b)-off)/8 {
			return errf(statusInvalidArgument, "records: event %d claims %d outputs, %d bytes left", i, cnt, len(b)-off)
		}
		for k := uint64(0); k < cnt; k++ {
			if len(b)-off < 8 {
				return errf(statusInvalidArgument, "records: event %d: truncated length at offset %d", i, off)
			}
			m := binary.LittleEndian.Uint64(b[off:])
			off += 8
			if m > uint64(len(b)-off) {
				return errf(statusInvalidArgument, "records: record at offset %d claims %d bytes, %d left", off-8, m, len(b)-off)
			}
			s.outs = append(s.outs, b[off:off+int(m):off+int(m)])
			off += int(m)
		}
		s.ends = append(s.ends, len(s.outs))
	}
	if off != len(b) {
		return errf(statusInvalidArgument, "records: %d bytes past the last of %d events", len(b)-off, nDone)
	}
	return nil
}

//export net_mesh_runtime_deliver_batch_commit
func net_mesh_runtime_deliver_batch_commit(h *C.net_mesh_runtime, origin, ticket C.uint64_t, nDone C.size_t, failed C.int, records *C.nm_cu8, recordsLen C.size_t, meta *C.uint64_t, metaCap C.size_t, nOut *C.size_t) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		compute.AbortOrphanLease(uint64(ticket)) // as deliver_commit
		return fail(err)
	}
	if nOut != nil {
		*nOut = 0
	}
	s := batchPool.Get().(*batchScratch)
	defer putBatch(s)
	err = func() error {
		if nOut == nil {
			return errf(statusInvalidArgument, "n_out is NULL")
		}
		if uint64(nDone) > maxBatch {
			return errf(statusInvalidArgument, "n_done %d is more than any batch holds", uint64(nDone))
		}
		b, err := borrowChecked("records", records, recordsLen)
		if err != nil {
			return err
		}
		if err := parseBatchRecords(s, b, uint64(nDone)); err != nil {
			return err
		}
		if uint64(metaCap) < 4*uint64(len(s.outs)) {
			*nOut = C.size_t(len(s.outs))
			return errf(statusInvalidArgument, "meta holds %d values, %d outputs need %d", uint64(metaCap), len(s.outs), 4*len(s.outs))
		}
		if len(s.outs) > 0 && meta == nil {
			return errf(statusInvalidArgument, "meta is NULL")
		}
		return nil
	}()
	if err != nil {
		// as deliver_commit: the lease ends, counted as a failure, nothing
		// appended; a bad ticket changes nothing
		if aerr := r.rt.DeliverBatchAbort(uint64(origin), uint64(ticket)); aerr != nil {
			return fail(aerr)
		}
		return fail(err)
	}
	s.dst, err = r.rt.DeliverBatchCommit(s.dst, uint64(origin), uint64(ticket), s.outs, s.ends, failed != 0)
	if err != nil {
		return fail(err)
	}
	if len(s.dst) > 0 {
		writeMeta(unsafe.Slice((*uint64)(unsafe.Pointer(meta)), 4*len(s.dst)), s.dst)
	}
	*nOut = C.size_t(len(s.dst))
	return statusOK
}

//export net_mesh_runtime_deliver_batch_abort
func net_mesh_runtime_deliver_batch_abort(h *C.net_mesh_runtime, origin, ticket C.uint64_t, msg *C.nm_cchar) (rc C.int) {
	defer guard(&rc)
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		compute.AbortOrphanLease(uint64(ticket))
		return fail(err)
	}
	if err := r.rt.DeliverBatchAbort(uint64(origin), uint64(ticket)); err != nil {
		return fail(err)
	}
	if msg != nil {
		if s, err := goString("message", msg); err == nil {
			r.rt.Log(compute.LogDebug, "capi: host-driven batch failed", map[string]any{"origin": uint64(origin), "error": s})
		}
	}
	return statusOK
}
