package main

/*
#include <string.h>
#include "capi.h"
*/
import "C"

import (
	"unicode/utf8"
	"unsafe"
)

// maxBuffer mirrors NET_MESH_MAX_BUFFER.
const maxBuffer = 64 << 20

// borrow views n bytes of C memory for the duration of an export. Callers
// copy what they keep. n must already be checked against maxBuffer.
func borrow(p *C.nm_cu8, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// borrowChecked is borrow with the NULL/size rules every buffer input follows:
// len 0 is an empty buffer (p may be NULL), len > 0 needs p, and len is capped.
func borrowChecked(what string, p *C.nm_cu8, n C.size_t) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if p == nil {
		return nil, errf(statusInvalidArgument, "%s is NULL with length %d", what, uint64(n))
	}
	if uint64(n) > maxBuffer {
		return nil, errf(statusInvalidArgument, "%s is %d bytes, more than the %d-byte limit", what, uint64(n), maxBuffer)
	}
	return borrow(p, n), nil
}

// fillBytes copies b into a fresh library-owned buffer (one trailing NUL).
func fillBytes(out *C.net_mesh_bytes, b []byte) error {
	p := C.nm_malloc(C.size_t(len(b) + 1))
	if p == nil {
		return errf(statusNoMemory, "cannot allocate %d bytes", len(b)+1)
	}
	dst := unsafe.Slice((*byte)(p), len(b)+1)
	copy(dst, b)
	dst[len(b)] = 0
	out.data = (*C.uint8_t)(p)
	out.len = C.size_t(len(b))
	return nil
}

// goString validates and copies a NUL-terminated UTF-8 string from C.
func goString(what string, s *C.nm_cchar) (string, error) {
	if s == nil {
		return "", errf(statusInvalidArgument, "%s is NULL", what)
	}
	n := C.strnlen((*C.char)(unsafe.Pointer(s)), maxString+1)
	if n > maxString {
		return "", errf(statusInvalidArgument, "%s is longer than %d bytes", what, maxString)
	}
	g := C.GoStringN((*C.char)(unsafe.Pointer(s)), C.int(n))
	if !utf8.ValidString(g) {
		return "", errf(statusInvalidArgument, "%s is not valid UTF-8", what)
	}
	return g, nil
}

// maxString caps C strings (kinds, channel names, addresses).
const maxString = 4096
