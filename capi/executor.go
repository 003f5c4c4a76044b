package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"unsafe"
)

// executor is a host "post this task" function. compute calls its post (via
// CallUser) from pool goroutines; each task becomes a net_mesh_task handle
// the host runs with net_mesh_task_run on a thread of its choice.
type executor struct {
	post C.net_mesh_executor_post_fn
	life *life
}

func (e *executor) run(task func()) {
	if !e.life.enter() {
		// Replaced or removed since compute loaded it: compute requires the
		// task to run, so run it here, on the pool.
		task()
		return
	}
	defer e.life.exit()
	h := mint(kindTask, task)
	C.nm_call_post(e.post, e.life.ud, h)
}

//export net_mesh_runtime_set_executor
func net_mesh_runtime_set_executor(h *C.net_mesh_runtime, post C.net_mesh_executor_post_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	var e *executor
	if post != nil {
		e = &executor{post: post, life: l}
	}
	r.mu.Lock() // against a racing net_mesh_runtime_free (see rtObj.freed)
	if r.freed {
		r.mu.Unlock()
		l.close()
		return fail(badHandle(unsafe.Pointer(h), kindRuntime))
	}
	if e != nil {
		r.rt.SetExecutor(e.run)
	} else {
		r.rt.SetExecutor(nil)
	}
	old := r.exec.Swap(e)
	r.mu.Unlock()
	if e == nil {
		l.close()
	}
	if old != nil {
		old.life.close()
	}
	return statusOK
}

//export net_mesh_task_run
func net_mesh_task_run(t *C.net_mesh_task) (rc C.int) {
	defer guard(&rc)
	v, ok := release(unsafe.Pointer(t), kindTask)
	if !ok {
		return fail(badHandle(unsafe.Pointer(t), kindTask))
	}
	v.(func())()
	return statusOK
}

//export net_mesh_runtime_submit
func net_mesh_runtime_submit(h *C.net_mesh_runtime, fn C.net_mesh_task_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	l := newLife(finalize, C.uintptr_t(uintptr(ud)))
	r, err := runtimeOf(unsafe.Pointer(h))
	if err != nil {
		l.close()
		return fail(err)
	}
	if fn == nil {
		l.close()
		return fail(errf(statusInvalidArgument, "task callback is NULL"))
	}
	rt := r.rt
	err = rt.Submit(func() {
		// Through CallUser: on this pool goroutine, or posted to the
		// executor. The finalizer runs right after the task, on its thread.
		if err := rt.CallUser(context.Background(), func() {
			defer l.close()
			C.nm_call_task(fn, l.ud)
		}); err != nil {
			coreLog(3, "capi: submitted task failed", map[string]any{"error": err.Error()})
		}
	})
	if err != nil {
		l.close()
		return fail(err)
	}
	return statusOK
}

//export net_mesh_callback_probe
func net_mesh_callback_probe(fn C.net_mesh_task_fn, ud unsafe.Pointer) (rc C.int) {
	defer guard(&rc)
	if fn == nil {
		return fail(errf(statusInvalidArgument, "callback is NULL"))
	}
	C.nm_call_task(fn, C.uintptr_t(uintptr(ud)))
	return statusOK
}
