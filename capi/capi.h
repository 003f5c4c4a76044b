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
typedef const net_mesh_node nm_cnode;
typedef const net_mesh_runtime nm_cruntime;
typedef const net_mesh_daemon nm_cdaemon;
typedef const net_mesh_event nm_cevent;
typedef const net_mesh_daemon_vtable nm_cvtable;
typedef const net_mesh_factory nm_cfactory;
typedef const net_mesh_daemon_config nm_cconfig;
typedef const net_mesh_node_options nm_cnodeopts;
typedef const net_mesh_channel_options nm_cchanopts;
typedef const net_mesh_runtime_options nm_crtopts;

/* A key unique to the calling OS thread while it lives. */
NM_HIDDEN uintptr_t nm_thread_key(void);

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


/* Result of a callback that writes bytes (process: records of
 * [u64 len][bytes]; snapshot: raw state). The bytes are in inl when heap is
 * NULL, else in heap (malloc'd; the Go side frees it). err is the callback's
 * error text (malloc'd) when rc != 0, or NULL. */
#define NM_INLINE 512
typedef struct nm_buf_result {
    int rc;
    uint32_t count;
    size_t len;
    uint8_t *heap;
    char *err;
    uint8_t inl[NM_INLINE];
} nm_buf_result;

typedef struct nm_status_result {
    int rc;
    char *err;
} nm_status_result;

typedef struct nm_create_result {
    int rc;
    char *err;
    net_mesh_daemon_vtable vt;
    uintptr_t ud;
} nm_create_result;

/* Result of a process callback. The outputs are records [u64 len][bytes] at
 * data: the calling thread's reusable output buffer (valid until the next
 * process call on this thread; the Go side copies them before anything else
 * can run on the thread) or, when heap is non-NULL, a malloc'd buffer the Go
 * side frees (a process call nested inside another one on the same thread). */
/* Written into a C block the caller owns (one per daemon: calls into a daemon
 * are serialized), so the trampoline returns nothing — a returned struct costs
 * cgo two stack-top probes and a copy per call, and a Go out-parameter would
 * be moved to the heap. Pointers travel as uintptr_t so the Go side treats
 * them as the C addresses they are. */
/* net_mesh_event with every field an integer (the payload pointer as
 * uintptr_t): the layout nm_call_process reads as a net_mesh_event. */
typedef struct nm_proc_in {
    uint64_t origin_hash, horizon, sequence, parent_hash;
    uintptr_t payload;
    size_t payload_len;
    uint64_t received_at;
} nm_proc_in;
_Static_assert(sizeof(nm_proc_in) == sizeof(net_mesh_event), "nm_proc_in layout");
_Static_assert(offsetof(nm_proc_in, payload) == offsetof(net_mesh_event, payload), "nm_proc_in layout");
_Static_assert(offsetof(nm_proc_in, payload_len) == offsetof(net_mesh_event, payload_len), "nm_proc_in layout");
_Static_assert(offsetof(nm_proc_in, received_at) == offsetof(net_mesh_event, received_at), "nm_proc_in layout");
_Static_assert(offsetof(nm_proc_in, parent_hash) == offsetof(net_mesh_event, link.parent_hash), "nm_proc_in layout");

typedef struct nm_proc_result {
    int rc;
    uint32_t count;
    size_t len;
    uintptr_t data; /* const uint8_t * */
    uintptr_t heap; /* uint8_t *, malloc'd */
    uintptr_t err;  /* char *, malloc'd */
    /* Inputs, written by the Go side before each call: the process function
     * and its user_data (set once, when the block is made) and the event
     * handed to it, read by the callback in place (its payload pointer,
     * possibly Go memory, is the call's second argument: Go never stores it
     * here). One pointer crosses instead of eleven scalars. Everything is
     * integers to Go (in is a union: cgo sees bytes, and nm_proc_in is the
     * view Go writes), so cgo has no pointer inside the block to check on
     * each call. */
    uintptr_t fn; /* net_mesh_process_fn */
    uintptr_t ud;
    union {
        net_mesh_event ev;
        nm_proc_in in;
    } u;
} nm_proc_result;

NM_HIDDEN void nm_call_process(nm_proc_result *r, const uint8_t *payload);

/* Header of every event list's allocation (list->reserved_): the event array
 * follows it, then the payloads. cap is the allocation's size in bytes. */
#define NM_LIST_MAGIC 0x4e4d4556454e5453ull /* "NMEVENTS" */
typedef struct nm_list_hdr {
    uint64_t magic;
    uint64_t cap;
} nm_list_hdr;
NM_HIDDEN void *nm_realloc(void *p, size_t n);
/* Releases an event list's block (reserved_): a small library block becomes
 * the calling thread's spare, reused by the next net_mesh_runtime_deliver on
 * it; anything else is freed. NULL is a no-op. (deliver.c) */
NM_HIDDEN void nm_list_release(void *block);
NM_HIDDEN nm_buf_result nm_call_snapshot(net_mesh_snapshot_fn fn, uintptr_t ud);
NM_HIDDEN nm_status_result nm_call_restore(net_mesh_restore_fn fn, uintptr_t ud,
                                           const uint8_t *state, size_t len);
NM_HIDDEN nm_create_result nm_call_create(net_mesh_factory_create_fn fn, uintptr_t ud);
NM_HIDDEN void nm_call_post(net_mesh_executor_post_fn fn, uintptr_t ud, void *task);
NM_HIDDEN void nm_call_task(net_mesh_task_fn fn, uintptr_t ud);
NM_HIDDEN void nm_call_channel_message(net_mesh_channel_message_fn fn, uintptr_t ud,
                                       uint64_t publisher, const char *channel,
                                       const uint8_t *payload, size_t len);

#endif
