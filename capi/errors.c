#include <string.h>
#include "capi.h"

#define NM_ERR_CAP 1024
#define NM_DETAIL_CAP 64

/* The last error of each thread. Written only by nm_set_error on the thread
 * that made the failing call, read by the net_mesh_last_error* functions. */
static _Thread_local char nm_err_msg[NM_ERR_CAP];
static _Thread_local char nm_err_detail[NM_DETAIL_CAP];
static _Thread_local int nm_err_code;
static _Thread_local uint64_t nm_err_moved_to;

/* Largest n <= cap-1 that does not cut a UTF-8 sequence in half. */
static size_t nm_utf8_cut(const char *s, size_t n, size_t cap) {
    if (n < cap) return n;
    n = cap - 1;
    while (n > 0 && (((unsigned char)s[n]) & 0xC0) == 0x80) n--;
    return n;
}

void nm_set_error(int status, const char *msg, size_t msg_len, const char *detail,
                  size_t detail_len, uint64_t moved_to) {
    size_t n = msg ? nm_utf8_cut(msg, msg_len, NM_ERR_CAP) : 0;
    if (n) memcpy(nm_err_msg, msg, n);
    nm_err_msg[n] = 0;
    n = detail ? nm_utf8_cut(detail, detail_len, NM_DETAIL_CAP) : 0;
    if (n) memcpy(nm_err_detail, detail, n);
    nm_err_detail[n] = 0;
    nm_err_code = status;
    nm_err_moved_to = moved_to;
}

const char *net_mesh_last_error(void) { return nm_err_msg; }
int net_mesh_last_error_code(void) { return nm_err_code; }
const char *net_mesh_last_error_detail(void) { return nm_err_detail; }

int net_mesh_last_error_moved_to(uint64_t *out) {
    if (!out) return NET_MESH_ERR_INVALID_ARGUMENT;
    if (nm_err_code != NET_MESH_ERR_DAEMON_MOVED) return NET_MESH_ERR_DAEMON_NOT_FOUND;
    *out = nm_err_moved_to;
    return NET_MESH_OK;
}

const char *net_mesh_status_kind(int status) {
    switch (status) {
    case NET_MESH_OK: return "ok";
    case NET_MESH_ERR_NOT_READY: return "not-ready";
    case NET_MESH_ERR_SHUTTING_DOWN: return "shutting-down";
    case NET_MESH_ERR_FACTORY_ALREADY_REGISTERED: return "factory-already-registered";
    case NET_MESH_ERR_FACTORY_NOT_FOUND: return "factory-not-found";
    case NET_MESH_ERR_SNAPSHOT_IDENTITY_MISMATCH: return "snapshot-identity-mismatch";
    case NET_MESH_ERR_DAEMON_NOT_FOUND: return "daemon-not-found";
    case NET_MESH_ERR_DAEMON_MOVED: return "daemon-moved";
    case NET_MESH_ERR_ALREADY_REGISTERED: return "already-registered";
    case NET_MESH_ERR_PROCESS_FAILED: return "process-failed";
    case NET_MESH_ERR_RESTORE_FAILED: return "restore-failed";
    case NET_MESH_ERR_INVALID_ARGUMENT: return "invalid-argument";
    case NET_MESH_ERR_TIMEOUT: return "timeout";
    case NET_MESH_ERR_MIGRATION: return "migration";
    case NET_MESH_ERR_MIGRATION_FAILED: return "migration-failed";
    case NET_MESH_ERR_BAD_HANDLE: return "bad-handle";
    case NET_MESH_ERR_CALLBACK_FAILED: return "callback-failed";
    case NET_MESH_ERR_INTERNAL_PANIC: return "internal-panic";
    case NET_MESH_ERR_NO_MEMORY: return "no-memory";
    case NET_MESH_ERR_IO: return "io";
    case NET_MESH_ERR_INTERNAL: return "internal";
    case NET_MESH_ERR_QUEUE_FULL: return "queue-full";
    case NET_MESH_ERR_BATCH_REFUSED: return "batch-refused";
    default: return "unknown";
    }
}

const char *net_mesh_version(int *major_out, int *minor_out, int *patch_out) {
    if (major_out) *major_out = NET_MESH_VERSION_MAJOR;
    if (minor_out) *minor_out = NET_MESH_VERSION_MINOR;
    if (patch_out) *patch_out = NET_MESH_VERSION_PATCH;
    return NET_MESH_VERSION_STRING;
}

void *nm_malloc(size_t n) { return malloc(n ? n : 1); }
void nm_free(void *p) { free(p); }
void *nm_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

void net_mesh_bytes_free(net_mesh_bytes *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}
