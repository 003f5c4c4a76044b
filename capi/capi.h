/* Internal declarations shared by the Go files' cgo preambles and the C files
 * of package capi. Never installed. Everything here is hidden from the
 * library's dynamic symbol table; only net_mesh_* names are exported. */
#ifndef NETMESH_CAPI_INTERNAL_H
#define NETMESH_CAPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "net_mesh.h"

#define NM_HIDDEN __attribute__((visibility("hidden")))

/* const-qualified aliases: cgo cannot spell const, so Go exports use these
 * names and the prototypes cgo generates match the public header exactly
 * (the C compiler checks it when building _cgo_export.c). */
typedef const char nm_cchar;
typedef const uint8_t nm_cu8;
typedef const net_mesh_identity nm_cidentity;

/* Per-thread last error (errors.c). msg need not be NUL-terminated. */
NM_HIDDEN void nm_set_error(int status, const char *msg, size_t msg_len, const char *detail,
                            size_t detail_len, uint64_t moved_to);

/* Allocation helpers that report failure instead of aborting. */
NM_HIDDEN void *nm_malloc(size_t n);
NM_HIDDEN void nm_free(void *p);

/* Log trampoline (log.c). buf holds NUL-terminated strings: message first, then
 * key,value pairs; offs[i] is the offset of string i. */
NM_HIDDEN void nm_call_log(net_mesh_log_fn fn, uintptr_t user_data, int level, const char *buf,
                           const uint32_t *offs, size_t nfields);
NM_HIDDEN void nm_call_finalize(net_mesh_finalize_fn fn, uintptr_t user_data);

#endif
