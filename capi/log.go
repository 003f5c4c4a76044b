package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"unsafe"
)

// The host's log sink. Records are forwarded to the C callback on whatever
// goroutine logs them. mu is read-locked for every forwarded record, so
// net_mesh_log_set can wait for in-flight calls before running the previous
// sink's finalizer.
var logSink struct {
	mu       sync.RWMutex
	fn       C.net_mesh_log_fn
	ud       C.uintptr_t
	finalize C.net_mesh_finalize_fn
	min      slog.Level
}

// logger is handed to every core object capi creates.
var logger = slog.New(&cHandler{})

func cLevel(l slog.Level) C.int {
	switch {
	case l >= slog.LevelError:
		return C.NET_MESH_LOG_ERROR
	case l >= slog.LevelWarn:
		return C.NET_MESH_LOG_WARN
	case l >= slog.LevelInfo:
		return C.NET_MESH_LOG_INFO
	}
	return C.NET_MESH_LOG_DEBUG
}

func slogLevel(l C.int) slog.Level {
	switch l {
	case C.NET_MESH_LOG_ERROR:
		return slog.LevelError
	case C.NET_MESH_LOG_WARN:
		return slog.LevelWarn
	case C.NET_MESH_LOG_INFO:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// cHandler is a slog.Handler writing to the host's callback. attrs are the
// fields added with With; groups are flattened into dotted keys.
type cHandler struct {
	attrs []slog.Attr
	group string
}

func (h *cHandler) Enabled(_ context.Context, l slog.Level) bool {
	logSink.mu.RLock()
	ok := logSink.fn != nil && l >= logSink.min
	logSink.mu.RUnlock()
	return ok
}

func (h *cHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &cHandler{group: h.group, attrs: append(append([]slog.Attr(nil), h.attrs...), prefixed(h.group, as)...)}
	return n
}

func (h *cHandler) WithGroup(name string) slog.Handler {
	g := name
	if h.group != "" {
		g = h.group + "." + name
	}
	return &cHandler{attrs: h.attrs, group: g}
}

func prefixed(group string, as []slog.Attr) []slog.Attr {
	if group == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: group + "." + a.Key, Value: a.Value}
	}
	return out
}

// Handle flattens the record into one buffer of NUL-terminated strings
// (message, then key/value pairs) plus their offsets, both in C memory, so
// the C trampoline can point net_mesh_log_field entries into it.
func (h *cHandler) Handle(_ context.Context, r slog.Record) error {
	var buf []byte
	var offs []uint32
	add := func(s string) {
		offs = append(offs, uint32(len(buf)))
		buf = append(buf, s...)
		buf = append(buf, 0)
	}
	add(r.Message)
	var attr func(prefix string, a slog.Attr)
	attr = func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		key := a.Key
		if prefix != "" {
			key = prefix + "." + key
		}
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				attr(key, g)
			}
			return
		}
		add(key)
		add(fmt.Sprint(a.Value.Any()))
	}
	for _, a := range h.attrs {
		attr("", a)
	}
	r.Attrs(func(a slog.Attr) bool { attr(h.group, a); return true })
	nfields := (len(offs) - 1) / 2

	// One C block: offsets, then the strings.
	size := 4*len(offs) + len(buf)
	p := C.nm_malloc(C.size_t(size))
	if p == nil {
		return nil
	}
	defer C.nm_free(p)
	block := unsafe.Slice((*byte)(p), size)
	for i, o := range offs {
		binary.NativeEndian.PutUint32(block[4*i:], o)
	}
	copy(block[4*len(offs):], buf)

	logSink.mu.RLock()
	defer logSink.mu.RUnlock()
	if logSink.fn == nil || r.Level < logSink.min {
		return nil
	}
	C.nm_call_log(logSink.fn, logSink.ud, cLevel(r.Level),
		(*C.char)(unsafe.Add(p, 4*len(offs))), (*C.uint32_t)(p), C.size_t(nfields))
	return nil
}

//export net_mesh_log_set
func net_mesh_log_set(minLevel C.int, fn C.net_mesh_log_fn, ud unsafe.Pointer, finalize C.net_mesh_finalize_fn) (rc C.int) {
	defer guard(&rc)
	if minLevel < C.NET_MESH_LOG_DEBUG || minLevel > C.NET_MESH_LOG_ERROR {
		C.nm_call_finalize(finalize, C.uintptr_t(uintptr(ud)))
		return fail(errf(statusInvalidArgument, "log level %d is outside %d..%d", int(minLevel), C.NET_MESH_LOG_DEBUG, C.NET_MESH_LOG_ERROR))
	}
	logSink.mu.Lock()
	oldFin, oldUD := logSink.finalize, logSink.ud
	logSink.fn, logSink.ud, logSink.finalize = fn, C.uintptr_t(uintptr(ud)), finalize
	logSink.min = slogLevel(minLevel)
	if fn == nil {
		// Logging off: this call's own finalizer runs now, as nothing holds ud.
		logSink.finalize, logSink.ud = nil, 0
	}
	logSink.mu.Unlock()
	C.nm_call_finalize(oldFin, oldUD)
	if fn == nil {
		C.nm_call_finalize(finalize, C.uintptr_t(uintptr(ud)))
	}
	return statusOK
}
