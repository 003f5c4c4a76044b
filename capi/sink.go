package main

/*
#include "capi.h"

NM_HIDDEN void nm_call_sink(net_mesh_output_sink_fn fn, uintptr_t ud, uint64_t origin,
                            const net_mesh_event_list *outputs);
*/
import "C"

import (
	"unsafe"

	"github.com/netmesh/libnetmesh/core/causal"
	"github.com/netmesh/libnetmesh/core/compute"
)

// sinkCB is the host's output sink.
type sinkCB struct {
	fn   C.net_mesh_output_sink_fn
	life *life
}

// deliverSink is the runtime's output sink (compute.Runtime.SetOutputSink):
// it runs where compute processed the events — inside the CallUser section
// of replay or drain, so on the executor's thread when one is set, else on a
// pool worker — and hands the host a borrowed list.
func (s *migState) deliverSink(origin uint64, outs []causal.Event) {
	cb := s.sink.Load()
	if cb == nil || len(outs) == 0 || !cb.life.enter() {
		return
	}
	defer cb.life.exit()
	block, list := borrowedList(outs)
	if block == nil {
		coreLog(compute.LogError, "capi: output sink dropped outputs (no memory)", map[string]any{"origin": origin, "outputs": len(outs)})
		return
	}
	defer C.free(block)
	C.nm_call_sink(cb.fn, cb.life.ud, C.uint64_t(origin), &list)
}

// borrowedList lays evs out in one C block (the event array, then the
// payloads) for a callback that borrows them; the caller frees block. The
// list's reserved_ stays NULL: the host never frees a borrowed list.
func borrowedList(evs []causal.Event) (unsafe.Pointer, C.net_mesh_event_list) {
	head := len(evs) * int(unsafe.Sizeof(C.net_mesh_event{}))
	size := head
	for _, e := range evs {
		size += len(e.Payload)
	}
	block := C.nm_malloc(C.size_t(size))
	if block == nil {
		return nil, C.net_mesh_event_list{}
	}
	data := unsafe.Slice((*byte)(block), size)
	arr := unsafe.Slice((*C.net_mesh_event)(block), len(evs))
	at := head
	for i, e := range evs {
		ce := &arr[i]
		fillEvent(ce, &e) // every field
		if len(e.Payload) > 0 {
			ce.payload = (*C.uint8_t)(unsafe.Pointer(&data[at]))
			at += copy(data[at:], e.Payload)
		}
	}
	return block, C.net_mesh_event_list{events: &arr[0], len: C.size_t(len(evs))}
}

//export net_mesh_runtime_set_output_sink
func net_mesh_runtime_set_output_sink(h *C.net_mesh_runtime, fn C.net_mesh_output_sink_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	var cb *sinkCB
	if fn != nil {
		cb = &sinkCB{fn: fn, life: l}
	}
	r.mu.Lock() // against a racing net_mesh_runtime_free (see rtObj.freed)
	if r.freed {
		r.mu.Unlock()
		l.close()
		return fail(badHandle(unsafe.Pointer(h), kindRuntime))
	}
	old := r.mig.sink.Swap(cb)
	r.mu.Unlock()
	if cb == nil {
		l.close()
	}
	if old != nil {
		old.life.close()
	}
	return statusOK
}
