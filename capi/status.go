package main

/*
#include "capi.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Status codes, mirrored from net_mesh_status in include/net_mesh.h.
const (
	statusOK                       C.int = 0
	statusNotReady                 C.int = -1
	statusShuttingDown             C.int = -2
	statusFactoryAlreadyRegistered C.int = -3
	statusFactoryNotFound          C.int = -4
	statusSnapshotIdentityMismatch C.int = -5
	statusDaemonNotFound           C.int = -6
	statusDaemonMoved              C.int = -7
	statusAlreadyRegistered        C.int = -8
	statusProcessFailed            C.int = -9
	statusRestoreFailed            C.int = -10
	statusInvalidArgument          C.int = -11
	statusTimeout                  C.int = -12
	statusMigration                C.int = -13
	statusMigrationFailed          C.int = -14
	statusBadHandle                C.int = -15
	statusCallbackFailed           C.int = -16
	statusInternalPanic            C.int = -17
	statusNoMemory                 C.int = -18
	statusIO                       C.int = -19
	statusInternal                 C.int = -20
	statusQueueFull                C.int = -21
	statusBatchRefused             C.int = -22
)

// capiError is an error raised by this layer itself, already carrying its
// status. Core errors are mapped by statusOf.
type capiError struct {
	status C.int
	msg    string
}

func (e *capiError) Error() string { return e.msg }

func errf(status C.int, format string, args ...any) error {
	return &capiError{status: status, msg: fmt.Sprintf("netmesh: "+format, args...)}
}

var (
	errNilOut = errf(statusInvalidArgument, "output pointer is NULL")
)

// fail records err as the calling thread's last error and returns its status.
// It must run on the thread of the export (it does: exports run on the C
// caller's thread for their whole duration).
func fail(err error) C.int {
	st, detail, moved := statusOf(err)
	msg := err.Error()
	// The texts are copied into C memory first: handing C a pointer into Go
	// memory that may sit on a goroutine stack once gave memcheck an
	// intermittent "invalid read" in nm_set_error (its stack tracking does
	// not follow Go's stack switches). Error paths only: two small mallocs.
	cm := C.CString(msg)
	defer C.free(unsafe.Pointer(cm))
	var cd *C.char
	if detail != "" {
		cd = C.CString(detail)
		defer C.free(unsafe.Pointer(cd))
	}
	C.nm_set_error(st, cm, C.size_t(len(msg)), cd, C.size_t(len(detail)), C.uint64_t(moved))
	return st
}

// statusOf maps an error to its status, the detail kind (migration errors) and
// the node a moved daemon went to.
func statusOf(err error) (st C.int, detail string, moved uint64) {
	if ce, ok := err.(*capiError); ok {
		return ce.status, "", 0
	}
	return mapCoreError(err)
}

// guard is deferred by every export: a panic becomes INTERNAL_PANIC with the
// panic value as the thread's last error, and the library stays usable.
func guard(rc *C.int) {
	if r := recover(); r != nil {
		*rc = fail(errf(statusInternalPanic, "internal panic: %v", r))
	}
}

// guardVoid is guard for exports that return nothing: the panic is recorded as
// the thread's last error and swallowed.
func guardVoid() {
	if r := recover(); r != nil {
		fail(errf(statusInternalPanic, "internal panic: %v", r))
	}
}
