/*
 * net_mesh.h — the C ABI of libnetmesh.
 *
 * One shared library (libnetmesh.so) implements everything declared here.
 * Every name is net_mesh_<object>_<verb>; constants are NET_MESH_*.
 *
 * ====================================================================
 * Thread safety
 * ====================================================================
 *
 *  - Every function may be called from any thread, concurrently with any
 *    other function, including on the same handle. Freeing a handle while
 *    another thread still uses it is safe: the other call either completes
 *    or returns NET_MESH_ERR_BAD_HANDLE / NET_MESH_ERR_SHUTTING_DOWN.
 *  - Work the HOST initiates calls daemon callbacks on the calling thread:
 *    net_mesh_runtime_deliver, _snapshot, _spawn*, and _stop call `process`,
 *    `snapshot`, `restore`, the factory and finalizers synchronously, on the
 *    thread that called in, before returning. There is no thread hop.
 *  - Work the NETWORK initiates (a migration arriving, replay, subscription
 *    hooks) and tasks posted with net_mesh_runtime_submit run on the
 *    runtime's worker pool — library-owned threads — unless the host
 *    registered an executor (net_mesh_runtime_set_executor). With an executor,
 *    every such callback is wrapped in a net_mesh_task that the library hands
 *    to the host's `post` function; the host runs it with net_mesh_task_run on
 *    a thread of its choice (e.g. the single JavaScript thread). The pool
 *    thread waits for the task and never holds a daemon's lock while waiting.
 *  - Calls into one daemon are serialized; different daemons may run
 *    concurrently. A callback may call back into this library (for example
 *    deliver to another daemon), but must not deliver to its own daemon.
 *  - The log callback (net_mesh_log_set) can fire on any thread, including
 *    library threads, and concurrently with itself.
 *  - No Go panic crosses this boundary: an internal failure is returned as
 *    NET_MESH_ERR_INTERNAL_PANIC and the library stays usable. A callback that
 *    fails returns non-zero; the caller of the library function then gets
 *    NET_MESH_ERR_CALLBACK_FAILED (or the documented kind, e.g.
 *    NET_MESH_ERR_PROCESS_FAILED), and the runtime stays usable.
 *  - The library never writes to stdout or stderr; it logs only through the
 *    host's log callback.
 *
 * ====================================================================
 * Conventions
 * ====================================================================
 *
 *  - Fallible functions return int: NET_MESH_OK (0) or a negative
 *    net_mesh_status. The text of the last failure on the calling thread is
 *    net_mesh_last_error(). Every function also may return
 *    NET_MESH_ERR_INTERNAL_PANIC; it is not repeated below.
 *  - Handles are opaque pointers, one C type per kind. NULL is never a valid
 *    handle. A NULL, freed, stale or wrong-kind handle gives
 *    NET_MESH_ERR_BAD_HANDLE, never a crash. *_free functions accept NULL and
 *    already-freed handles (no-op), so freeing twice is safe.
 *  - "Borrowed" inputs are only read during the call; the library copies
 *    what it keeps. Output parameters are written only on NET_MESH_OK.
 *  - Memory the library hands out is freed by a library function
 *    (net_mesh_bytes_free, net_mesh_event_list_free, ...), never by free().
 *  - Strings passed in are NUL-terminated UTF-8; invalid UTF-8 gives
 *    NET_MESH_ERR_INVALID_ARGUMENT.
 *  - Callbacks come as function pointer + void *user_data + an optional
 *    finalizer. A finalizer handed to the library runs exactly once — also
 *    when the call that received it fails ("consumed, also on error").
 */
#ifndef NET_MESH_H
#define NET_MESH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define NET_MESH_VERSION_MAJOR 0
#define NET_MESH_VERSION_MINOR 1
#define NET_MESH_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH" of this header. */
#define NET_MESH_VERSION_STRING "0.1.0"

/*
 * The library's version as "MAJOR.MINOR.PATCH"; a static string, never freed.
 * Bindings refuse a library whose major differs from the header they were
 * built against. major_out/minor_out/patch_out may each be NULL.
 */
const char *net_mesh_version(int *major_out, int *minor_out, int *patch_out);

/* ------------------------------------------------------------------ */
/* Status codes                                                        */
/* ------------------------------------------------------------------ */

typedef enum net_mesh_status {
    NET_MESH_OK = 0,
    /* runtime not started (Registering) */
    NET_MESH_ERR_NOT_READY = -1,
    /* runtime is shutting down or shut down */
    NET_MESH_ERR_SHUTTING_DOWN = -2,
    /* a factory is already registered for this kind */
    NET_MESH_ERR_FACTORY_ALREADY_REGISTERED = -3,
    /* no factory registered for this kind */
    NET_MESH_ERR_FACTORY_NOT_FOUND = -4,
    /* the snapshot belongs to another identity */
    NET_MESH_ERR_SNAPSHOT_IDENTITY_MISMATCH = -5,
    /* no daemon with this origin hash on this runtime */
    NET_MESH_ERR_DAEMON_NOT_FOUND = -6,
    /* the daemon migrated away; net_mesh_last_error_moved_to() names the node */
    NET_MESH_ERR_DAEMON_MOVED = -7,
    /* this origin hash is already registered (daemon or migration entry) */
    NET_MESH_ERR_ALREADY_REGISTERED = -8,
    /* the daemon's process callback failed */
    NET_MESH_ERR_PROCESS_FAILED = -9,
    /* restoring daemon state failed (callback or malformed snapshot) */
    NET_MESH_ERR_RESTORE_FAILED = -10,
    /* an argument is NULL, out of range, malformed or not UTF-8 */
    NET_MESH_ERR_INVALID_ARGUMENT = -11,
    /* an operation did not finish in time */
    NET_MESH_ERR_TIMEOUT = -12,
    /* a local migration error; net_mesh_last_error_detail() is its kind */
    NET_MESH_ERR_MIGRATION = -13,
    /* the migration protocol reported a failure; detail is the reason */
    NET_MESH_ERR_MIGRATION_FAILED = -14,
    /* NULL, freed, stale or wrong-kind handle */
    NET_MESH_ERR_BAD_HANDLE = -15,
    /* a host callback (factory, snapshot, executor, ...) returned failure */
    NET_MESH_ERR_CALLBACK_FAILED = -16,
    /* an internal panic was caught; the library stays usable */
    NET_MESH_ERR_INTERNAL_PANIC = -17,
    /* an allocation failed */
    NET_MESH_ERR_NO_MEMORY = -18,
    /* network or socket failure (bind, send, peer unreachable) */
    NET_MESH_ERR_IO = -19,
    /* any other failure; see net_mesh_last_error() */
    NET_MESH_ERR_INTERNAL = -20
} net_mesh_status;

/*
 * The symbolic kind of a status as every binding spells it: "ok",
 * "not-ready", "shutting-down", ..., "bad-handle", "internal-panic".
 * Unknown codes give "unknown". Static string, never freed.
 */
const char *net_mesh_status_kind(int status);

/* ------------------------------------------------------------------ */
/* Last error (per thread)                                             */
/* ------------------------------------------------------------------ */

/*
 * Text of the last failure on the calling thread ("" if none yet). The
 * pointer is thread-local and valid until the next library call on this
 * thread; copy it if you keep it. Successful calls do not clear it, so read
 * it only right after a call returned a negative status. Never NULL.
 * Messages longer than 1023 bytes are truncated (at a UTF-8 boundary).
 */
const char *net_mesh_last_error(void);

/* Status code of the last failure on the calling thread (NET_MESH_OK if none). */
int net_mesh_last_error_code(void);

/*
 * Detail kind of the last failure on the calling thread: for
 * NET_MESH_ERR_MIGRATION the local kind (e.g. "target-unavailable"), for
 * NET_MESH_ERR_MIGRATION_FAILED the protocol reason (e.g. "not-ready-timeout");
 * "" otherwise. Thread-local, like net_mesh_last_error(). Never NULL.
 */
const char *net_mesh_last_error_detail(void);

/*
 * If the last failure on this thread was NET_MESH_ERR_DAEMON_MOVED, writes the
 * node id the daemon moved to into *out and returns NET_MESH_OK.
 * Returns NET_MESH_ERR_INVALID_ARGUMENT if out is NULL, and
 * NET_MESH_ERR_DAEMON_NOT_FOUND if the last failure was of another kind.
 * Does not change the last error.
 */
int net_mesh_last_error_moved_to(uint64_t *out);

/*
 * A finalizer: releases a user_data the host handed to the library. Runs
 * exactly once, on whichever thread drops the last reference (documented per
 * function). user_data is opaque: the library never dereferences it.
 */
typedef void (*net_mesh_finalize_fn)(void *user_data);

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum net_mesh_log_level {
    NET_MESH_LOG_DEBUG = 1,
    NET_MESH_LOG_INFO = 2,
    NET_MESH_LOG_WARN = 3,
    NET_MESH_LOG_ERROR = 4
} net_mesh_log_level;

/* One structured field of a log record; both strings are NUL-terminated UTF-8. */
typedef struct net_mesh_log_field {
    const char *key;
    const char *value;
} net_mesh_log_field;

/*
 * Log callback. message, fields and their strings are borrowed for the call.
 * May run on any thread, concurrently with itself. It must not call
 * net_mesh_log_set.
 */
typedef void (*net_mesh_log_fn)(void *user_data, int level, const char *message,
                                const net_mesh_log_field *fields, size_t field_count);

/*
 * Route the library's log records at or above min_level to callback.
 * callback == NULL turns logging off (the default: the library logs nothing).
 * The previous callback's finalizer runs (exactly once, on this thread) after
 * every in-flight call of it has returned. finalize (may be NULL) is consumed
 * also on error: it runs with user_data when this callback is replaced, or
 * immediately if this call fails.
 * Returns NET_MESH_OK, NET_MESH_ERR_INVALID_ARGUMENT (level outside
 * DEBUG..ERROR).
 */
int net_mesh_log_set(int min_level, net_mesh_log_fn callback, void *user_data,
                     net_mesh_finalize_fn finalize);

/* ------------------------------------------------------------------ */
/* Library-owned memory                                                */
/* ------------------------------------------------------------------ */

/*
 * Bytes owned by the library. Filled by functions that return bytes; free with
 * net_mesh_bytes_free. data is NULL when len == 0. data is followed by one NUL
 * byte not counted in len, so text results can be used as C strings.
 */
typedef struct net_mesh_bytes {
    uint8_t *data;
    size_t len;
} net_mesh_bytes;

/*
 * Release b->data and zero *b. b == NULL and an already-zeroed struct are
 * no-ops, so freeing twice through the same struct is safe. Never fails.
 */
void net_mesh_bytes_free(net_mesh_bytes *b);

/* Largest payload / snapshot / seed buffer accepted or produced (64 MiB). */
#define NET_MESH_MAX_BUFFER ((size_t)64 * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* Identity                                                            */
/* ------------------------------------------------------------------ */

/* An ed25519 identity (keypair, or public key only). */
typedef struct net_mesh_identity net_mesh_identity;

#define NET_MESH_SEED_SIZE 32
#define NET_MESH_ENTITY_ID_SIZE 32

/*
 * Generate a fresh identity from the OS random source.
 * *out receives a new handle, freed with net_mesh_identity_free.
 * Returns NET_MESH_OK, NET_MESH_ERR_INVALID_ARGUMENT (out NULL),
 * NET_MESH_ERR_INTERNAL (no randomness).
 */
int net_mesh_identity_generate(net_mesh_identity **out);

/*
 * Rebuild an identity from its seed. seed (borrowed) must be exactly
 * NET_MESH_SEED_SIZE bytes. *out receives a new handle.
 * Returns NET_MESH_OK, NET_MESH_ERR_INVALID_ARGUMENT (seed or out NULL,
 * seed_len != 32).
 */
int net_mesh_identity_from_seed(const uint8_t *seed, size_t seed_len, net_mesh_identity **out);

/*
 * A public-only identity from a 32-byte entity id (borrowed, exactly 32 bytes). It has the same
 * ids but cannot sign or be used to spawn a daemon.
 * Returns NET_MESH_OK, NET_MESH_ERR_INVALID_ARGUMENT.
 */
int net_mesh_identity_from_entity_id(const uint8_t *entity_id, net_mesh_identity **out);

/*
 * Copy the 32-byte entity id (ed25519 public key) into out (caller-owned, 32 bytes).
 * Returns NET_MESH_OK, NET_MESH_ERR_BAD_HANDLE, NET_MESH_ERR_INVALID_ARGUMENT.
 */
int net_mesh_identity_entity_id(const net_mesh_identity *id, uint8_t *out);

/*
 * Copy the 32-byte seed into out (caller-owned, 32 bytes). A public-only identity gives
 * NET_MESH_ERR_INVALID_ARGUMENT. Returns NET_MESH_OK, NET_MESH_ERR_BAD_HANDLE,
 * NET_MESH_ERR_INVALID_ARGUMENT.
 */
int net_mesh_identity_seed(const net_mesh_identity *id, uint8_t *out);

/* The 64-bit origin hash. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_identity_origin_hash(const net_mesh_identity *id, uint64_t *out);

/* The 64-bit node id. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_identity_node_id(const net_mesh_identity *id, uint64_t *out);

/* Release the handle. NULL and already-freed handles are no-ops. */
void net_mesh_identity_free(net_mesh_identity *id);

#ifdef __cplusplus
}
#endif

#endif /* NET_MESH_H */
