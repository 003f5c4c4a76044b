package main

/*
#include "capi.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// The host's log sink. Records are forwarded to the C callback on whatever
// goroutine logs them. mu is read-locked around every forwarded record, so
// net_mesh_log_set can wait for in-flight calls before running the previous
// sink's finalizer.
var logSink struct {
	mu       sync.RWMutex
	fn       C.net_mesh_log_fn
	ud       C.uintptr_t
	finalize C.net_mesh_finalize_fn
	min      int // core level (0 debug .. 3 error)
}

// coreLog is the logger handed to compute and mesh (both use this shape and
// the same levels 0..3 = debug, info, warn, error).
func coreLog(level int, msg string, fields map[string]any) {
	logSink.mu.RLock()
	defer logSink.mu.RUnlock()
	if logSink.fn == nil || level < logSink.min {
		return
	}
	// One C block: the offsets of the NUL-terminated strings, then the
	// strings (message, then key/value pairs in key order).
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	strs := make([]string, 0, 1+2*len(keys))
	strs = append(strs, msg)
	for _, k := range keys {
		strs = append(strs, k, fmt.Sprint(fields[k]))
	}
	size := 4 * len(strs)
	for _, s := range strs {
		size += len(s) + 1
	}
	p := C.nm_malloc(C.size_t(size))
	if p == nil {
		return
	}
	defer C.nm_free(p)
	block := unsafe.Slice((*byte)(p), size)
	at := 4 * len(strs)
	for i, s := range strs {
		binary.NativeEndian.PutUint32(block[4*i:], uint32(at-4*len(strs)))
		at += copy(block[at:], s)
		block[at] = 0
		at++
	}
	C.nm_call_log(logSink.fn, logSink.ud, C.int(level+1),
		(*C.char)(unsafe.Add(p, 4*len(strs))), (*C.uint32_t)(p), C.size_t(len(keys)))
}

//export net_mesh_log_set
func net_mesh_log_set(minLevel C.int, fn C.net_mesh_log_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	u := C.uintptr_t(uintptr(ud))
	if minLevel < C.NET_MESH_LOG_DEBUG || minLevel > C.NET_MESH_LOG_ERROR {
		C.nm_call_finalize(finalize, u)
		return fail(errf(statusInvalidArgument, "log level %d is outside %d..%d", int(minLevel), C.NET_MESH_LOG_DEBUG, C.NET_MESH_LOG_ERROR))
	}
	logSink.mu.Lock()
	oldFin, oldUD := logSink.finalize, logSink.ud
	logSink.fn, logSink.ud, logSink.finalize = fn, u, finalize
	logSink.min = int(minLevel) - 1
	if fn == nil {
		// Logging off: nothing holds this call's user_data.
		logSink.finalize, logSink.ud = nil, 0
	}
	logSink.mu.Unlock()
	C.nm_call_finalize(oldFin, oldUD)
	if fn == nil {
		C.nm_call_finalize(finalize, u)
	}
	return statusOK
}
