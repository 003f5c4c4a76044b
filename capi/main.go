// Command capi is the C ABI of libnetmesh, built with -buildmode=c-shared into
// build/libnetmesh.so. The public contract is include/net_mesh.h (written by
// hand); cgo's generated header is a build artifact and never shipped.
//
// This package holds no business logic: every export checks its arguments,
// resolves handles, calls core, maps errors to a net_mesh_status and recovers
// panics (see guard). C function pointers are only ever called from the small
// static C helpers in the .c files.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -std=gnu11 -Wall -Wextra
#include "capi.h"
*/
import "C"

func main() {}
