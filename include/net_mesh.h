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
 *  - The executor rule, which keeps a single-threaded host (one JavaScript
 *    thread running both the host's calls and the executor's tasks) free of
 *    deadlocks: no library function called on a host thread ever waits for
 *    a task the library posted to the executor, with these documented
 *    exceptions that take a deadline. In particular net_mesh_runtime_deliver
 *    never waits on the executor: a daemon's lock is only held by a call
 *    running daemon code (a host call on its own thread, or an executor task
 *    on the executor's thread), never by a thread waiting for the executor.
 *    On a migration target, deliver to the arriving daemon is refused with
 *    NET_MESH_ERR_MIGRATION "wrong-phase" until the target has finished its
 *    first replay (the source still owns the daemon: deliver there); from then
 *    on — and so at once for a caller the source answered _DAEMON_MOVED — it
 *    queues the event behind the replay and returns NET_MESH_OK with no
 *    outputs; the event is processed (in order) when the target takes over,
 *    and its outputs go to the output sink (net_mesh_runtime_set_output_sink),
 *    exactly like deliver on a source between snapshot and cutover. During a
 *    migration, payloads over 7000 bytes are refused with _MIGRATION
 *    "buffer-full" (they could not ride the migration); nothing accepted is
 *    ever dropped.
 *    Exceptions — do not call these without a deadline on the thread that
 *    runs executor tasks: net_mesh_migration_wait (timeout_ms < 0, or with
 *    NET_MESH_MIGRATION_WAIT_ABANDON), net_mesh_migration_cancel (bounded at
 *    5 s: _TIMEOUT), net_mesh_runtime_shutdown / _free (pool drain; use a
 *    timeout). Use net_mesh_migration_on_complete instead of a blocking wait.
 *  - Migration notifications (net_mesh_migration_on_progress,
 *    net_mesh_migration_on_complete) run on library threads, not through the
 *    executor: they touch no daemon, so a host forwards them to its own
 *    thread as it likes. The output sink runs where the events were
 *    processed: the executor's thread if one is set, else a pool thread.
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
    NET_MESH_ERR_INTERNAL = -20,
    /* the runtime's worker pool queue is full; retry later (backpressure) */
    NET_MESH_ERR_QUEUE_FULL = -21,
    /* a batch delivery was refused because the daemon is migrating (its
     * events must be queued one by one); nothing changed: deliver singly */
    NET_MESH_ERR_BATCH_REFUSED = -22
} net_mesh_status;

/*
 * The symbolic kind of a status as every binding spells it: "ok",
 * "not-ready", "shutting-down", ..., "bad-handle", "internal-panic",
 * "queue-full", "batch-refused". Unknown codes give "unknown". Static
 * string, never freed.
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

/*
 * Issue a 169-byte permission token signed by issuer for subject (a 32-byte
 * entity id, borrowed) with scope (NET_MESH_SCOPE_* bits) on channel (UTF-8),
 * valid from now for ttl_seconds. *out receives the raw token bytes
 * (free with net_mesh_bytes_free).
 * Returns NET_MESH_OK, _BAD_HANDLE (issuer), _INVALID_ARGUMENT (NULLs, zero or
 * unknown scope bits, public-only issuer, bad channel name).
 */
int net_mesh_token_issue(const net_mesh_identity *issuer, const uint8_t *subject_entity_id,
                         uint32_t scope, const char *channel, uint64_t ttl_seconds,
                         net_mesh_bytes *out);

#define NET_MESH_SCOPE_PUBLISH 0x01u
#define NET_MESH_SCOPE_SUBSCRIBE 0x02u
#define NET_MESH_SCOPE_ADMIN 0x04u
#define NET_MESH_SCOPE_DELEGATE 0x08u
#define NET_MESH_SCOPE_WILDCARD 0x10u
#define NET_MESH_TOKEN_SIZE 169

/* ------------------------------------------------------------------ */
/* Node                                                                */
/* ------------------------------------------------------------------ */

/* An encrypted UDP mesh node. */
typedef struct net_mesh_node net_mesh_node;

/*
 * Options for net_mesh_node_new. Always start from net_mesh_node_options_init,
 * which sets `size`; fields added in later versions go at the end and the
 * library reads only the first `size` bytes, so old callers keep working.
 */
typedef struct net_mesh_node_options {
    uint32_t size;                 /* sizeof(net_mesh_node_options) as compiled by the caller */
    const char *bind_addr;         /* "host:port" to bind; NULL = "127.0.0.1:0" */
    const uint8_t *psk;            /* 32-byte pre-shared key of the mesh; NULL = all zero */
    const net_mesh_identity *identity; /* node identity (borrowed, copied); NULL = generate */
    uint32_t heartbeat_interval_ms; /* 0 = 5000 */
    uint32_t session_timeout_ms;    /* 0 = 30000 */
    uint32_t connect_timeout_ms;    /* 0 = 10000 */
    uint32_t membership_timeout_ms; /* subscribe/unsubscribe ack wait; 0 = 5000 */
} net_mesh_node_options;

/* Fill *opts with defaults and opts->size. NULL is a no-op. */
void net_mesh_node_options_init(net_mesh_node_options *opts);

/*
 * Create a node and bind its socket. opts (borrowed) may be NULL for defaults.
 * *out receives a new handle; net_mesh_node_free closes and releases it.
 * Returns NET_MESH_OK, _INVALID_ARGUMENT (out NULL, opts->size too small,
 * bad address, bad UTF-8, public-only identity), _BAD_HANDLE (opts->identity),
 * _IO (bind failed).
 */
int net_mesh_node_new(const net_mesh_node_options *opts, net_mesh_node **out);

/* The bound address as "host:port" text in *out (free with net_mesh_bytes_free).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_node_addr(const net_mesh_node *node, net_mesh_bytes *out);

/* The node's 64-bit id. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_node_id(const net_mesh_node *node, uint64_t *out);

/* The node's 32-byte Noise X25519 static public key into out (caller-owned,
 * 32 bytes). Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_node_public_key(const net_mesh_node *node, uint8_t *out);

/*
 * Connect to the node peer_node_id listening at addr whose X25519 public key is
 * peer_public_key (32 bytes, borrowed); blocks until the session is up.
 * timeout_ms 0 = the node's connect timeout. The peer must have called
 * net_mesh_node_accept for this node first.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _TIMEOUT, _IO
 * (handshake refused, closed node).
 */
int net_mesh_node_connect(net_mesh_node *node, const char *addr, const uint8_t *peer_public_key,
                          uint64_t peer_node_id, uint32_t timeout_ms);

/* Admit handshakes from peer_node_id, now and later. Returns NET_MESH_OK, _BAD_HANDLE. */
int net_mesh_node_accept(net_mesh_node *node, uint64_t peer_node_id);

/* A publisher's policy for one channel; start from net_mesh_channel_options_init. */
typedef struct net_mesh_channel_options {
    uint32_t size;                 /* sizeof(net_mesh_channel_options) */
    int require_token;             /* non-zero: subscribers must present a token */
    uint32_t max_subscribers;      /* 0 = no cap */
    const uint8_t *trusted_issuers; /* trusted_issuer_count * 32 bytes of entity ids; borrowed */
    size_t trusted_issuer_count;   /* 0 = this node's identity only */
} net_mesh_channel_options;

/* Fill *opts with defaults and opts->size. NULL is a no-op. */
void net_mesh_channel_options_init(net_mesh_channel_options *opts);

/*
 * Register channel (UTF-8 name) on this node as its publisher. opts (borrowed)
 * may be NULL for an open channel. Registering a name again replaces its
 * policy. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (bad name, bad
 * options).
 */
int net_mesh_node_channel_register(net_mesh_node *node, const char *channel,
                                   const net_mesh_channel_options *opts);

/*
 * Subscribe this node to channel on publisher; token (raw permission token,
 * borrowed) may be NULL with token_len 0. Waits for the publisher's answer
 * (timeout_ms 0 = the node's membership timeout).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _TIMEOUT,
 * _IO (refused: unauthorized, unknown channel, rate limited, peer unavailable).
 */
int net_mesh_node_channel_subscribe(net_mesh_node *node, uint64_t publisher, const char *channel,
                                    const uint8_t *token, size_t token_len, uint32_t timeout_ms);

/* Unsubscribe from channel on publisher. Statuses as net_mesh_node_channel_subscribe. */
int net_mesh_node_channel_unsubscribe(net_mesh_node *node, uint64_t publisher,
                                      const char *channel, uint32_t timeout_ms);

/* What a publish did: roster size, datagrams handed to the socket, failures. */
typedef struct net_mesh_publish_report {
    uint64_t attempted;
    uint64_t delivered;
    uint64_t failed;
} net_mesh_publish_report;

/*
 * Publish payload (borrowed) to every subscriber of channel (unreliable, like
 * any channel traffic). out may be NULL. An unregistered channel gives a zero
 * report. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT.
 */
int net_mesh_node_channel_publish(net_mesh_node *node, const char *channel, const uint8_t *payload,
                                  size_t payload_len, net_mesh_publish_report *out);

/* Receives channel messages; channel and payload are borrowed for the call.
 * Runs on a library thread (the node's dispatch thread), one call at a time. */
typedef void (*net_mesh_channel_message_fn)(void *user_data, uint64_t publisher,
                                            const char *channel, const uint8_t *payload,
                                            size_t payload_len);

/*
 * Install (callback NULL: remove) the channel-message callback. The previous
 * callback's finalizer runs once no call of it is in flight. finalize is
 * consumed, also on error. Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_node_on_channel_message(net_mesh_node *node, net_mesh_channel_message_fn callback,
                                     void *user_data, net_mesh_finalize_fn finalize);

/*
 * Node counters. The caller sets `size` (sizeof(net_mesh_node_stats)); the
 * library fills the fields that fit in `size` bytes.
 */
typedef struct net_mesh_node_stats {
    uint32_t size;
    uint64_t packets_sent;
    uint64_t packets_received;
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t handshakes_completed;
    uint64_t heartbeats_sent;
    uint64_t heartbeats_received;
    uint64_t retransmits;
    uint64_t duplicates_suppressed;
    uint64_t dropped_malformed;
    uint64_t dropped_auth;
    uint64_t dropped_replay;
} net_mesh_node_stats;

/* Fill *out. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (NULL, size too small). */
int net_mesh_node_stats_get(const net_mesh_node *node, net_mesh_node_stats *out);

/*
 * Close the node: stop its threads and socket. The handle stays valid until
 * net_mesh_node_free; later network calls return NET_MESH_ERR_IO. Runtimes on
 * it keep working locally. Idempotent. Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_node_close(net_mesh_node *node);

/* Close (if needed) and release the handle. NULL / freed: no-op. */
void net_mesh_node_free(net_mesh_node *node);

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/* One step of a daemon's causal chain. */
typedef struct net_mesh_link {
    uint64_t origin_hash;
    uint64_t horizon;     /* encoded horizon bloom */
    uint64_t sequence;
    uint64_t parent_hash;
} net_mesh_link;

/* A causal event. payload is payload_len bytes (NULL when 0). */
typedef struct net_mesh_event {
    net_mesh_link link;
    const uint8_t *payload;
    size_t payload_len;
    uint64_t received_at; /* unix nanoseconds */
} net_mesh_event;

/*
 * A list of events (deliver's outputs) whose storage the library owns: the
 * struct itself is the caller's, the events and payloads live inside one
 * library allocation (reserved_). Free with net_mesh_event_list_free.
 * A zeroed list (NET_MESH_EVENT_LIST_INIT or memset 0) has no storage yet.
 */
typedef struct net_mesh_event_list {
    net_mesh_event *events;
    size_t len;
    void *reserved_; /* the library's allocation; do not touch */
} net_mesh_event_list;

#define NET_MESH_EVENT_LIST_INIT {NULL, 0, NULL}

/* Release the list and zero *list. NULL and a zeroed list are no-ops. */
void net_mesh_event_list_free(net_mesh_event_list *list);

/* ------------------------------------------------------------------ */
/* Daemons written in C (or any host language)                         */
/* ------------------------------------------------------------------ */

/*
 * Output writer handed to `process`. Valid only during that call, on that
 * thread. Each push is one output event, in order.
 */
typedef struct net_mesh_outputs net_mesh_outputs;

/*
 * Append one output payload (copied; data may be NULL when len is 0).
 * Returns NET_MESH_OK, _INVALID_ARGUMENT (out NULL or not a live writer, data
 * NULL with len > 0, len or the total over NET_MESH_MAX_BUFFER), _NO_MEMORY.
 */
int net_mesh_outputs_push(net_mesh_outputs *out, const uint8_t *data, size_t len);

/*
 * State writer handed to `snapshot`. Writes append. A snapshot callback that
 * writes nothing (not even a zero-length write) declares the daemon stateless.
 */
typedef struct net_mesh_state net_mesh_state;

/* Append state bytes (copied). Statuses as net_mesh_outputs_push. */
int net_mesh_state_write(net_mesh_state *out, const uint8_t *data, size_t len);

/*
 * From inside a failing callback, on its thread, attach a message (copied;
 * UTF-8, truncated at 1023 bytes) to the error the library reports. Outside a
 * callback it has no effect.
 */
void net_mesh_callback_set_error(const char *message);

/* Callbacks return 0 on success, any other value on failure. event (and its
 * payload) is borrowed for the call. */
typedef int (*net_mesh_process_fn)(void *user_data, const net_mesh_event *event,
                                   net_mesh_outputs *out);
typedef int (*net_mesh_snapshot_fn)(void *user_data, net_mesh_state *out);
typedef int (*net_mesh_restore_fn)(void *user_data, const uint8_t *state, size_t state_len);

/*
 * A daemon instance's functions. Copied by the library when handed over, so it
 * may live on the stack. name (borrowed, copied; NULL = "") is the daemon's
 * name. process is required. snapshot NULL = stateless. restore NULL = only an
 * empty state is accepted. finalize (may be NULL) runs exactly once with the
 * daemon's user_data when the library drops the daemon: after stop, shutdown,
 * runtime free, a failed spawn, or when it migrated away; never while another
 * callback of the same daemon is running. It runs on the thread that dropped
 * the daemon: the caller's for stop / shutdown / free (or, if a callback of
 * the daemon is still running elsewhere, that callback's thread when it
 * returns), a library thread (or the executor's) for a migration target that
 * rolled back, and a library thread once a migration away is final on this
 * node — whoever orchestrated it (the target acknowledged, or this node
 * gave the daemon to a target another node drives). It runs after the
 * library released its own locks: it may call this library (a call to its
 * own, already dropped daemon gives _DAEMON_NOT_FOUND).
 */
typedef struct net_mesh_daemon_vtable {
    uint32_t size; /* sizeof(net_mesh_daemon_vtable) */
    const char *name;
    net_mesh_process_fn process;
    net_mesh_snapshot_fn snapshot;
    net_mesh_restore_fn restore;
    net_mesh_finalize_fn finalize;
} net_mesh_daemon_vtable;

/* Fill *vt with zeros and vt->size. NULL is a no-op. */
void net_mesh_daemon_vtable_init(net_mesh_daemon_vtable *vt);

/*
 * Build a fresh daemon instance: fill *vtable_out (pre-initialised by the
 * library with its size) and *daemon_user_data_out; return 0. Any other return
 * value is a failure (the library reports NET_MESH_ERR_PROCESS_FAILED). Must
 * be re-callable and thread-safe: a migration target calls it again, on the
 * runtime's pool or through the executor.
 */
typedef int (*net_mesh_factory_create_fn)(void *factory_user_data,
                                          net_mesh_daemon_vtable *vtable_out,
                                          void **daemon_user_data_out);

/*
 * A factory. Copied when handed over. finalize (may be NULL) runs exactly once
 * with factory_user_data when the library drops the factory (runtime free for
 * kinds; stop / shutdown for the per-daemon factory of spawn_with_daemon).
 */
typedef struct net_mesh_factory {
    uint32_t size; /* sizeof(net_mesh_factory) */
    net_mesh_factory_create_fn create;
    net_mesh_finalize_fn finalize;
} net_mesh_factory;

/* Fill *f with zeros and f->size. NULL is a no-op. */
void net_mesh_factory_init(net_mesh_factory *f);

/* Per-daemon configuration; start from net_mesh_daemon_config_init. NULL
 * wherever a config is taken means defaults. */
typedef struct net_mesh_daemon_config {
    uint32_t size;                   /* sizeof(net_mesh_daemon_config) */
    uint64_t auto_snapshot_interval; /* snapshot every N processed events; 0 = off */
} net_mesh_daemon_config;

/* Fill *cfg with defaults and cfg->size. NULL is a no-op. */
void net_mesh_daemon_config_init(net_mesh_daemon_config *cfg);

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

/* A compute runtime on a node. */
typedef struct net_mesh_runtime net_mesh_runtime;
/* A spawned daemon (by origin hash). Freeing the handle does not stop it. */
typedef struct net_mesh_daemon net_mesh_daemon;
/* One unit of work handed to the host's executor. */
typedef struct net_mesh_task net_mesh_task;

/* Runtime options; start from net_mesh_runtime_options_init. */
typedef struct net_mesh_runtime_options {
    uint32_t size;       /* sizeof(net_mesh_runtime_options) */
    uint32_t workers;    /* worker pool threads; 0 = number of CPUs */
    uint32_t queue_size; /* worker pool queue bound; 0 = 1024 */
} net_mesh_runtime_options;

/* Fill *opts with defaults and opts->size. NULL is a no-op. */
void net_mesh_runtime_options_init(net_mesh_runtime_options *opts);

/*
 * Create a runtime on node (borrowed: the runtime keeps its own reference, so
 * freeing the node handle first is safe; network operations then fail).
 * opts may be NULL. The runtime starts in Registering. *out receives a new
 * handle; net_mesh_runtime_free shuts it down and releases it.
 * Returns NET_MESH_OK, _BAD_HANDLE (node), _INVALID_ARGUMENT.
 */
int net_mesh_runtime_new(net_mesh_node *node, const net_mesh_runtime_options *opts,
                         net_mesh_runtime **out);

/*
 * Register a daemon kind (UTF-8). factory is copied; factory_user_data is
 * consumed, also on error (on error its finalizer has run before return).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (NULL, bad UTF-8, no
 * create function), _FACTORY_ALREADY_REGISTERED, _SHUTTING_DOWN.
 */
int net_mesh_runtime_register_factory(net_mesh_runtime *rt, const char *kind,
                                      const net_mesh_factory *factory, void *factory_user_data);

/* Registering → Ready. Idempotent. Returns NET_MESH_OK, _BAD_HANDLE, _SHUTTING_DOWN. */
int net_mesh_runtime_start(net_mesh_runtime *rt);

/*
 * → ShuttingDown: stops every daemon (their finalizers run on this thread,
 * or at the end of a callback still running elsewhere), drops factory entries,
 * drains the worker pool for up to timeout_ms (0 = wait as long as needed).
 * Idempotent. Returns NET_MESH_OK, _BAD_HANDLE, _TIMEOUT (pool not drained).
 */
int net_mesh_runtime_shutdown(net_mesh_runtime *rt, uint32_t timeout_ms);

/* Writes 1 to *out if the runtime is Ready, else 0. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_runtime_is_ready(const net_mesh_runtime *rt, int *out);

/* Number of live daemons. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_runtime_daemon_count(const net_mesh_runtime *rt, uint64_t *out);

/*
 * Spawn a daemon of kind under identity (borrowed; must hold its secret).
 * The kind's factory runs exactly once, on this thread. config may be NULL.
 * out may be NULL; else *out receives a new daemon handle.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _NOT_READY,
 * _SHUTTING_DOWN, _FACTORY_NOT_FOUND, _ALREADY_REGISTERED, _PROCESS_FAILED
 * (factory failed).
 */
int net_mesh_runtime_spawn(net_mesh_runtime *rt, const char *kind, const net_mesh_identity *identity,
                           const net_mesh_daemon_config *config, net_mesh_daemon **out);

/*
 * Spawn a daemon instance the caller built: vtable (copied) + daemon_user_data
 * (consumed, also on error: its finalizer has run before an error returns),
 * plus a re-callable factory (copied; factory_user_data consumed likewise)
 * used to rebuild the daemon on a migration target.
 * Returns as net_mesh_runtime_spawn (without _FACTORY_NOT_FOUND).
 */
int net_mesh_runtime_spawn_with_daemon(net_mesh_runtime *rt, const net_mesh_identity *identity,
                                       const net_mesh_daemon_config *config,
                                       const net_mesh_daemon_vtable *vtable, void *daemon_user_data,
                                       const net_mesh_factory *factory, void *factory_user_data,
                                       net_mesh_daemon **out);

/*
 * Spawn a daemon of kind restored from snapshot bytes (borrowed; as produced
 * by net_mesh_runtime_snapshot). The kind is checked first, then that the
 * snapshot belongs to identity, then `restore` runs on this thread.
 * Returns as net_mesh_runtime_spawn plus _SNAPSHOT_IDENTITY_MISMATCH,
 * _RESTORE_FAILED; malformed snapshot bytes give _INVALID_ARGUMENT.
 */
int net_mesh_runtime_spawn_from_snapshot(net_mesh_runtime *rt, const char *kind,
                                         const net_mesh_identity *identity,
                                         const uint8_t *snapshot, size_t snapshot_len,
                                         const net_mesh_daemon_config *config,
                                         net_mesh_daemon **out);

/* spawn_from_snapshot with a caller-built instance; ownership as
 * net_mesh_runtime_spawn_with_daemon. */
int net_mesh_runtime_spawn_from_snapshot_with_daemon(
    net_mesh_runtime *rt, const net_mesh_identity *identity, const uint8_t *snapshot,
    size_t snapshot_len, const net_mesh_daemon_config *config,
    const net_mesh_daemon_vtable *vtable, void *daemon_user_data,
    const net_mesh_factory *factory, void *factory_user_data, net_mesh_daemon **out);

/*
 * Stop the daemon at origin and drop its factory entry; its finalizer runs
 * on this thread (or when a callback still running elsewhere returns).
 * Returns NET_MESH_OK, _BAD_HANDLE, _NOT_READY (Registering),
 * _DAEMON_NOT_FOUND, _DAEMON_MOVED. During shutdown: NET_MESH_OK.
 */
int net_mesh_runtime_stop(net_mesh_runtime *rt, uint64_t origin);

/*
 * Snapshot the daemon at origin (its `snapshot` callback runs on this thread)
 * into *out as CDS1 bytes (free with net_mesh_bytes_free). A stateless daemon
 * gives NET_MESH_OK with out->data == NULL, out->len == 0.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _NOT_READY,
 * _SHUTTING_DOWN, _DAEMON_NOT_FOUND, _DAEMON_MOVED, _CALLBACK_FAILED.
 */
int net_mesh_runtime_snapshot(net_mesh_runtime *rt, uint64_t origin, net_mesh_bytes *out);

/*
 * Deliver event (borrowed) to the daemon at origin; `process` runs on this
 * thread. *out receives the output events (len 0 and events NULL when none,
 * or when the daemon is mid-migration and the event was queued); free with
 * net_mesh_event_list_free. event->payload_len is capped at NET_MESH_MAX_BUFFER.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _NOT_READY,
 * _SHUTTING_DOWN, _DAEMON_NOT_FOUND, _DAEMON_MOVED (see
 * net_mesh_last_error_moved_to), _PROCESS_FAILED, _NO_MEMORY.
 */
int net_mesh_runtime_deliver(net_mesh_runtime *rt, uint64_t origin, const net_mesh_event *event,
                             net_mesh_event_list *out);

/*
 * net_mesh_runtime_deliver with a reusable output list: the fast path for a
 * stream of events. list is in/out: pass a zeroed list
 * (NET_MESH_EVENT_LIST_INIT) the first time, then the same list again. The
 * library refills it in place, reusing its storage and growing it when the
 * outputs do not fit, so a steady stream allocates nothing. Ownership: the
 * struct stays the caller's, the storage the library's; free it once, when
 * done, with net_mesh_event_list_free (a list filled by
 * net_mesh_runtime_deliver may be passed too).
 * On NET_MESH_OK the previous contents (events, payloads) are invalid and the
 * list holds this call's outputs (len 0 and events NULL when none, or when the
 * event was queued mid-migration). On failure the list is unchanged.
 * A list that is neither zeroed nor filled by the library is undefined
 * behaviour; most such lists are detected and give _INVALID_ARGUMENT. Do not
 * pass a list another call is filling (e.g. from inside a callback of that
 * call).
 * Returns the statuses of net_mesh_runtime_deliver.
 */
int net_mesh_runtime_deliver_into(net_mesh_runtime *rt, uint64_t origin,
                                  const net_mesh_event *event, net_mesh_event_list *list);

/*
 * Host-driven delivery: the host runs its daemon's process itself, so the
 * deliver path makes no callback into the host (cheaper for hosts whose
 * callbacks are expensive, e.g. Python ctypes). Three calls per event:
 *
 *   net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud);
 *   if (ticket) {   // 0: queued behind a migration, nothing more to do
 *       ...run the daemon whose user_data is ud on ev...
 *       ok ? net_mesh_runtime_deliver_commit(rt, origin, ticket, recs, len, meta, cap, &n)
 *          : net_mesh_runtime_deliver_abort(rt, origin, ticket, "why");
 *   }
 *
 * Only for daemons made through this ABI (a vtable: a kind factory's create,
 * or spawn_with_daemon / spawn_from_snapshot_with_daemon).
 *
 * Leases and threads: a granted ticket is a lease on the daemon — its host
 * stays locked from begin until commit or abort, exactly as while its process
 * callback runs in net_mesh_runtime_deliver. Every lease MUST end with
 * exactly one commit or abort (also when the host's code fails); commit and
 * abort may run on another thread than begin. While a lease is held, the
 * holding thread must not call into the runtime for that same daemon
 * (deliver, deliver_begin or snapshot would wait on itself); other
 * daemons, and other threads, are fine: calls for the leased daemon wait for
 * the lease like they wait for a running process. Stop is fine (it does not
 * wait): a daemon stopped (or its runtime shut down) while leased is still
 * committed or aborted by its ticket, and its finalizer runs when the lease
 * ends. A runtime freed while a lease is open (e.g. from inside the host's
 * own daemon code): commit or abort with the freed handle give _BAD_HANDLE
 * and still end the lease (counted as a failed process), so the daemon is
 * finalized; a lease never ended keeps its daemon locked.
 * Tickets are unique for the process's lifetime: a ticket that is 0, stale
 * (already committed or aborted), never issued, or issued for another daemon
 * or runtime gives _INVALID_ARGUMENT and changes nothing.
 */

/*
 * Everything net_mesh_runtime_deliver does before calling process: readiness,
 * lookup, the host lock, the migration phase gate and the horizon. event is
 * borrowed for the call (copied if the library keeps it). On NET_MESH_OK:
 * *ticket != 0 — the lease is granted and *daemon_user_data is the user_data
 * of the daemon instance to run (what the factory's create returned, or what
 * spawn_with_daemon got); or *ticket == 0 (and *daemon_user_data NULL) — the
 * daemon is migrating and the event was queued (as deliver returning no
 * outputs). On failure *ticket is 0 and no lease is held.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (NULL event, ticket or
 * daemon_user_data; a daemon not made through a vtable), _NOT_READY,
 * _SHUTTING_DOWN, _DAEMON_NOT_FOUND, _DAEMON_MOVED (see
 * net_mesh_last_error_moved_to), _MIGRATION (as for deliver: "wrong-phase"
 * on a migration target before its first replay, "buffer-full").
 */
int net_mesh_runtime_deliver_begin(net_mesh_runtime *rt, uint64_t origin,
                                   const net_mesh_event *event, uint64_t *ticket,
                                   void **daemon_user_data);

/*
 * End a lease with the outputs the host's process produced: records holds
 * them as consecutive [u64 little-endian length][bytes] records (no outputs:
 * records_len 0, records may be NULL); borrowed for the call. The library
 * does what deliver does after process — appends each output to the chain,
 * counts, takes the automatic snapshot when due (the snapshot callback runs
 * on this thread), releases the lease — and writes 4 values per output i into
 * meta[4i..4i+3]: sequence, parent_hash, horizon, received_at (the output's
 * origin_hash is the daemon's, its payload the host's own bytes). meta_cap
 * counts uint64_t values (needs 4 × outputs; meta may be NULL when there are
 * none). *n_out receives the number of outputs.
 * A malformed record, meta_cap too small (then *n_out tells how many outputs
 * the records hold) or a NULL n_out gives _INVALID_ARGUMENT with NOTHING
 * appended — and the lease still ends, counted as a failed process, so nothing
 * stays locked. A bad ticket gives _INVALID_ARGUMENT and changes nothing.
 * Returns NET_MESH_OK, _BAD_HANDLE (a freed runtime: its lease still ends),
 * _INVALID_ARGUMENT, _INTERNAL.
 */
int net_mesh_runtime_deliver_commit(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket,
                                    const uint8_t *records, size_t records_len, uint64_t *meta,
                                    size_t meta_cap, size_t *n_out);

/*
 * End a lease whose process failed in the host: counts the error (as a failed
 * process callback does), appends nothing and releases the lease. message
 * (may be NULL; borrowed) goes to the library's log at debug level; the host
 * reports the failure to its own caller itself (as _PROCESS_FAILED would be).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (bad ticket: nothing
 * changed).
 */
int net_mesh_runtime_deliver_abort(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket,
                                   const char *message);

/*
 * Host-driven delivery through one block: the same begin / commit as above,
 * each call taking a single argument (cheaper for hosts that pay per
 * argument, e.g. Python ctypes). The host owns the block; one block serves
 * one delivery at a time (begin, then commit or abort of that lease), and
 * may be reused for the next. Fields are in (read by the call) or out
 * (written by it); every other field is left as it is.
 */
typedef struct net_mesh_delivery {
    uint64_t size;            /* in: sizeof(net_mesh_delivery) (or larger) */
    net_mesh_runtime *rt;     /* in: begin, commit */
    uint64_t origin;          /* in: begin, commit */
    net_mesh_event event;     /* in: begin (borrowed for the call) */
    uint64_t thread;          /* in: begin; see net_mesh_runtime_deliver_begin_block */
    uint64_t ticket;          /* out: begin; in: commit */
    void *daemon_user_data;   /* out: begin */
    uint64_t n_outputs;       /* in: commit */
    const uint8_t *data;      /* in: commit: n_outputs 1: the output's bytes; else records */
    size_t data_len;          /* in: commit */
    uint64_t *meta;           /* in: commit when n_outputs is not 1 */
    size_t meta_cap;          /* in: commit when n_outputs is not 1 */
    uint64_t meta1[4];        /* out: commit when n_outputs is 1 */
} net_mesh_delivery;

/*
 * net_mesh_runtime_deliver_begin(d->rt, d->origin, &d->event, &d->ticket,
 * &d->daemon_user_data), plus a self-lease check: d->thread, when nonzero,
 * names the calling thread (any value unique to it while it lives, e.g.
 * pthread_self()) and is recorded in the granted lease; a begin by a thread
 * that already holds the daemon's lease (named the same) gives
 * _INVALID_ARGUMENT at once instead of waiting on itself forever. 0 checks
 * nothing. Same statuses as net_mesh_runtime_deliver_begin; NULL d or a
 * d->size below sizeof(net_mesh_delivery) gives _INVALID_ARGUMENT.
 */
int net_mesh_runtime_deliver_begin_block(net_mesh_delivery *d);

/*
 * Commit d->ticket's lease, as net_mesh_runtime_deliver_commit does, with
 * the outputs given as: n_outputs 0 — none (data ignored); 1 — one output,
 * the data_len bytes at data (borrowed); its 4 values (sequence,
 * parent_hash, horizon, received_at) go to d->meta1; otherwise — data /
 * data_len hold exactly n_outputs records as for deliver_commit, and the 4
 * values per output go to d->meta (meta_cap values). A record count other
 * than n_outputs is a malformed record. Statuses and lease rules as for
 * net_mesh_runtime_deliver_commit (n_out is not reported: it is n_outputs).
 * On NET_MESH_OK, refused outputs and a freed runtime whose lease it ended,
 * it sets d->ticket to 0. A nonzero d->ticket afterwards may still be open:
 * aborting it is always safe (a stale ticket is refused, changing nothing).
 * Abort uses net_mesh_runtime_deliver_abort(d->rt, d->origin, d->ticket, ...).
 */
int net_mesh_runtime_deliver_commit_block(net_mesh_delivery *d);

/*
 * *held = 1 when thread (nonzero, as given in net_mesh_delivery.thread)
 * holds the live lease of the daemon at origin, else 0 (also for an unknown
 * daemon). A host checks this before calls that would wait for the lease
 * (e.g. net_mesh_runtime_snapshot from inside the daemon's own process).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (NULL held).
 */
int net_mesh_runtime_deliver_held_by(net_mesh_runtime *rt, uint64_t origin, uint64_t thread,
                                     int *held);

/*
 * Batched host-driven delivery: many events to one daemon under ONE lease,
 * so a host pays two library calls per batch instead of two per event (bulk
 * ingestion, replaying a log):
 *
 *   net_mesh_runtime_deliver_batch_begin(rt, origin, evs, n, thread, &ticket, &ud);
 *   ...run the daemon whose user_data is ud on evs[0], evs[1], ... in order,
 *      stopping at the first failure; write each event's outputs as records...
 *   net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, n_done, failed,
 *                                         recs, len, meta, cap, &n_out);
 *
 * The result equals n_done single deliveries (deliver_begin + commit each)
 * followed, when failed, by one aborted one: the same chain (sequences,
 * parent hashes, horizons), the same input horizon and the same stats, with
 * two documented differences. (1) The automatic snapshot
 * (auto_snapshot_interval) is taken at most once per batch, at its end, if
 * the processed count crossed a multiple of the interval during the batch:
 * a snapshot taken in the middle would hold the state after later events,
 * which the host has already run; so a batch longer than the interval takes
 * fewer snapshots than single deliveries would. (2) Observers (e.g. a
 * migration's forwarding) see each event done, in order, when the batch
 * ends rather than between events.
 * Lease rules are those of a single lease (see above): the daemon stays
 * locked from begin until the batch's commit or abort, exactly one of which
 * must end it, from any thread; the holding thread must not call into the
 * runtime for that daemon meanwhile. Batch tickets only end batches: a
 * batch ticket given to deliver_commit / _abort / _commit_block, or a single
 * ticket given to the batch functions, is a bad ticket (_INVALID_ARGUMENT,
 * nothing changed).
 */

/*
 * Lease the daemon at origin for the n events at events[0..n-1] (borrowed
 * for the call; the library copies what it keeps). Checks as
 * net_mesh_runtime_deliver_begin_block, with thread as its d->thread (0:
 * no self-lease check). Every event is checked before anything happens (a
 * payload NULL with a length, or over NET_MESH_MAX_BUFFER, gives
 * _INVALID_ARGUMENT naming the event). Only a daemon in its normal phase is
 * leased: while it migrates (its events would be queued) the batch is
 * refused with NET_MESH_ERR_BATCH_REFUSED and nothing changed — deliver the
 * events one by one instead (that queues them correctly); a daemon that
 * moved away gives _DAEMON_MOVED. Nothing is observed at begin: each event
 * enters the horizon at commit, in order. On NET_MESH_OK *ticket != 0 and
 * *daemon_user_data is the daemon instance's user_data; on failure *ticket
 * is 0 and no lease is held.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (n 0 or over 2^20;
 * NULL events, ticket or daemon_user_data; a bad payload; a daemon not made
 * through a vtable; the calling thread already holds this daemon's lease),
 * _NOT_READY, _SHUTTING_DOWN, _DAEMON_NOT_FOUND, _DAEMON_MOVED,
 * _BATCH_REFUSED.
 */
int net_mesh_runtime_deliver_batch_begin(net_mesh_runtime *rt, uint64_t origin,
                                         const net_mesh_event *events, size_t n,
                                         uint64_t thread, uint64_t *ticket,
                                         void **daemon_user_data);

/*
 * End a batch lease: the host ran process on the first n_done events
 * (n_done <= n), in order, and they succeeded; failed != 0 says that
 * process then failed on event n_done (which needs n_done < n): it counts
 * as an error and enters the horizon, as an aborted single delivery. Events
 * after that were not run and are not touched.
 * records (borrowed; records_len 0 and NULL when n_done is 0) holds, for
 * each of the n_done events in order, a u64 little-endian output count c,
 * then c records [u64 little-endian length][bytes] — every byte used. For
 * each event in order the library observes it in the horizon, appends its
 * outputs to the chain and counts, exactly as a single commit; then takes
 * the automatic snapshot if due (see above; its callback runs on this
 * thread) and releases the lease. meta receives 4 values per output, all
 * outputs in order: sequence, parent_hash, horizon, received_at (as
 * deliver_commit; meta_cap counts uint64_t values, needs 4 x outputs; meta
 * may be NULL when there are none); *n_out the number of outputs.
 * Malformed records (truncated, a count or length past the end, bytes left
 * over), n_done over the batch, failed with n_done == n, meta_cap too small
 * (then *n_out tells how many outputs the records hold) or a NULL n_out:
 * _INVALID_ARGUMENT with NOTHING appended or observed, and the lease still
 * ends, counted as one error. A bad ticket gives _INVALID_ARGUMENT and
 * changes nothing.
 * Returns NET_MESH_OK, _BAD_HANDLE (a freed runtime: its lease still ends),
 * _INVALID_ARGUMENT, _INTERNAL.
 */
int net_mesh_runtime_deliver_batch_commit(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket,
                                          size_t n_done, int failed, const uint8_t *records,
                                          size_t records_len, uint64_t *meta, size_t meta_cap,
                                          size_t *n_out);

/*
 * End a batch lease without a result (the host cannot say what it ran):
 * counts one error, observes and appends nothing, releases the lease.
 * Prefer a commit of what was done when the host knows it. message (may be
 * NULL; borrowed) goes to the library's log at debug level.
 * Returns NET_MESH_OK, _BAD_HANDLE (a freed runtime: its lease still ends),
 * _INVALID_ARGUMENT (bad ticket: nothing changed).
 */
int net_mesh_runtime_deliver_batch_abort(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket,
                                         const char *message);

/* ------------------------------------------------------------------ */
/* Support for the Python binding: CPython objects by address          */
/* ------------------------------------------------------------------ */

/*
 * Not for general use: the Python package (bindings/python) calls these so
 * that a deliver does not pack the event and the outputs in Python. The
 * library reads the binding's CPython objects in place, by address, then
 * runs net_mesh_runtime_deliver_begin_block / _commit_block. It only reads:
 * no reference count is changed, no object made, no Python code called.
 *
 * Safety contract:
 *  - Every object is checked by exact type-pointer equality with a type the
 *    binding configured before anything but its type pointer is read; a NULL
 *    address, another type (a subclass, bool for int, bytearray or memoryview
 *    for bytes, a tuple for the outputs list, ...), or a value out of range
 *    is "not decodable": NET_MESH_PYOBJ_UNDECODABLE (a positive status, the
 *    one exception to the negative-status convention) with NOTHING changed —
 *    no block field written, no lease begun or ended — and the binding does
 *    the same work on its general path.
 *  - The caller keeps every object it names alive for the whole call.
 *  - A begin reads a tuple, ints and a bytes object, all immutable, so it may
 *    run without the GIL (the binding releases it: begin may wait for
 *    another thread's lease). The outputs list is mutable: it is read only by
 *    the commit, which the caller makes with the GIL held.
 *  - The layout given to net_mesh_pyobj_configure must be the running
 *    interpreter's; the binding checks it once per process by decoding sample
 *    objects (net_mesh_pyobj_decode_event / _outputs) and comparing with
 *    Python's own values, and uses none of this when anything differs.
 */

/* The status of a pyobj call whose objects are not decodable (see above). */
#define NET_MESH_PYOBJ_UNDECODABLE 1

/* net_mesh_pyobj_config.long_layout: how an int's digit count is stored. */
#define NET_MESH_PYLONG_SIZE 1 /* CPython <= 3.11: ob_size, a signed digit count */
#define NET_MESH_PYLONG_TAG 2  /* CPython >= 3.12: lv_tag, digits << 3 | sign (0 +, 1 zero, 2 -) */

/* Addresses and offsets of the running interpreter. Offsets are in bytes
 * from an object's address (its id() on CPython). */
typedef struct net_mesh_pyobj_config {
    uint64_t size;        /* sizeof(net_mesh_pyobj_config) (or larger) */
    uint64_t event_type;  /* the CausalEvent class: a tuple subclass of 6 fields */
    uint64_t int_type;    /* int */
    uint64_t bytes_type;  /* bytes */
    uint64_t list_type;   /* list */
    uint64_t none;        /* None */
    uint64_t type_offset; /* of ob_type in every object */
    uint64_t size_offset; /* of ob_size in a tuple, list and bytes object */
    uint64_t tuple_items; /* of the first item pointer of a tuple */
    uint64_t list_items;  /* of a list's pointer to its item array */
    uint64_t bytes_data;  /* of a bytes object's first byte */
    uint64_t long_tag;    /* of an int's ob_size (3.11) or lv_tag (3.12+) */
    uint64_t long_digits; /* of an int's first (least significant) digit */
    uint32_t long_layout; /* NET_MESH_PYLONG_SIZE or NET_MESH_PYLONG_TAG */
    uint32_t digit_bits;  /* bits per digit: 30 (digit_size 4) or 15 (digit_size 2) */
    uint32_t digit_size;  /* bytes per digit */
    uint32_t reserved_;   /* 0 */
} net_mesh_pyobj_config;

/*
 * Set the process's layout, once: a second call with the same values is a
 * no-op, with other values _INVALID_ARGUMENT (one interpreter layout per
 * process). Until it succeeds every decode is not decodable.
 * Returns NET_MESH_OK, _INVALID_ARGUMENT (NULL cfg, cfg->size too small, a
 * zero type address, an unaligned or implausible offset, an unknown layout,
 * other digit sizes, already configured differently).
 */
int net_mesh_pyobj_configure(const net_mesh_pyobj_config *cfg);

/*
 * A net_mesh_delivery followed by the addresses of the two objects the pyobj
 * calls read. d.size must be sizeof(net_mesh_pydelivery) (or larger); d.rt
 * and d.origin are the host's as for the block calls; the other fields of d
 * are written by the pyobj calls and read back as documented for
 * net_mesh_delivery (ticket, daemon_user_data, meta1).
 */
typedef struct net_mesh_pydelivery {
    net_mesh_delivery d;
    uint64_t event;   /* in: begin: address of a CausalEvent */
    uint64_t outputs; /* in: commit: address of what process returned */
} net_mesh_pydelivery;

/*
 * Decode p->event into p->d.event (the payload borrowed from the bytes
 * object) and set p->d.thread to the calling thread (pthread_self(), which
 * is threading.get_ident() on CPython). Decodable: exactly a CausalEvent of
 * exactly 6 items, origin_hash, sequence, parent_hash, horizon and
 * received_at exact ints in [0, 2^64), payload exactly bytes.
 * Returns NET_MESH_OK, NET_MESH_PYOBJ_UNDECODABLE (nothing written),
 * _INVALID_ARGUMENT (NULL p or p->d.size too small).
 */
int net_mesh_pyobj_decode_event(net_mesh_pydelivery *p);

/*
 * Decode p->outputs into p->d.n_outputs / data / data_len: None or an empty
 * list, no outputs; a list of exactly one item that is exactly bytes, that
 * one output (borrowed). Make this call with the GIL held.
 * Returns NET_MESH_OK, NET_MESH_PYOBJ_UNDECODABLE (anything else, e.g. two
 * outputs, a tuple, a bytearray item: nothing written), _INVALID_ARGUMENT
 * (NULL p or p->d.size too small).
 */
int net_mesh_pyobj_decode_outputs(net_mesh_pydelivery *p);

/*
 * net_mesh_pyobj_decode_event, then net_mesh_runtime_deliver_begin_block(&p->d).
 * Returns NET_MESH_PYOBJ_UNDECODABLE (no lease begun, nothing written) or
 * what decode or begin_block returns.
 */
int net_mesh_pyobj_deliver_begin(net_mesh_pydelivery *p);

/*
 * net_mesh_pyobj_decode_outputs, then net_mesh_runtime_deliver_commit_block(&p->d)
 * (made with the GIL held). Returns NET_MESH_PYOBJ_UNDECODABLE (the lease is
 * untouched: still open, to be committed or aborted by the caller) or what
 * decode or commit_block returns.
 */
int net_mesh_pyobj_deliver_commit(net_mesh_pydelivery *p);

/*
 * Decode the n CausalEvents list[start .. start+n-1] of the Python list at
 * address list into events[0 .. n-1] (each decodable as for
 * net_mesh_pyobj_decode_event; payloads borrowed from the bytes objects),
 * for net_mesh_runtime_deliver_batch_begin. The caller holds the GIL (a list
 * is mutable) and keeps the list and its events alive, unchanged, until the
 * events are no longer used. Returns NET_MESH_OK; NET_MESH_PYOBJ_UNDECODABLE
 * when list is not exactly a list or an item is not decodable (then *bad,
 * if bad is not NULL, is the index in events of the first such item,
 * events[0 .. *bad-1] are written and nothing else); _INVALID_ARGUMENT when
 * events is NULL with n > 0 or the range is outside the list.
 */
int net_mesh_pyobj_decode_events(uint64_t list, size_t start, size_t n, net_mesh_event *events,
                                 size_t *bad);

/*
 * Deliver as a CPython builtin. net_mesh_pyobj_native_deliver makes a
 * builtin function object the binding installs as rt.deliver: it decodes
 * (origin_hash, event) as above, begins the lease with the GIL released,
 * calls the daemon's process() itself, commits the outputs with the GIL held
 * and builds the one output CausalEvent, with no Python code of the binding
 * in between. The library calls the interpreter only through the addresses
 * given to net_mesh_pyobj_configure_api (it never links libpython); every
 * case it does not handle goes to the binding (see the helper below), so
 * results and errors are the binding's own. Everything here is for the
 * Python binding of this library (bindings/python); the functions must be
 * called with the GIL held, through ctypes.PyDLL.
 */

/* Addresses of CPython functions in this process (e.g. from ctypes.pythonapi). */
typedef struct net_mesh_pyapi {
    uint64_t size;                /* sizeof(net_mesh_pyapi) (or larger) */
    uint64_t save_thread;         /* PyEval_SaveThread */
    uint64_t restore_thread;      /* PyEval_RestoreThread */
    uint64_t vectorcall_method;   /* PyObject_VectorcallMethod */
    uint64_t get_item;            /* PyObject_GetItem */
    uint64_t long_from_u64;       /* PyLong_FromUnsignedLongLong */
    uint64_t list_new;            /* PyList_New */
    uint64_t event_alloc;         /* the CausalEvent class's tp_alloc (PyType_GetSlot(cls, Py_tp_alloc)) */
    uint64_t incref;              /* Py_IncRef */
    uint64_t decref;              /* Py_DecRef */
    uint64_t err_fetch;           /* PyErr_Fetch */
    uint64_t err_normalize;       /* PyErr_NormalizeException */
    uint64_t set_traceback;       /* PyException_SetTraceback */
    uint64_t capsule_new;         /* PyCapsule_New */
    uint64_t capsule_get_pointer; /* PyCapsule_GetPointer */
    uint64_t cfunction_new;       /* PyCFunction_NewEx */
} net_mesh_pyapi;

/*
 * Set the interpreter's functions, once per process (net_mesh_pyobj_configure
 * first): a second call with the same addresses is a no-op, with others
 * _INVALID_ARGUMENT. Also registers a fork handler: in a child forked
 * afterwards the builtin never enters the library (the binding raises).
 * Returns NET_MESH_OK, _INVALID_ARGUMENT (NULL api, api->size too small, an
 * address 0, already configured differently).
 */
int net_mesh_pyobj_configure_api(const net_mesh_pyapi *api);

/*
 * A new reference to a builtin function deliver(origin_hash, event) for
 * runtime rt, or 0 (not configured, a bad argument, out of memory).
 * objects: the address of a mapping from daemon user_data (an int key) to
 * the daemon object; helper: the address of an object with the callables
 * the builtin hands cases to; names: the address of a tuple of 5 str:
 * "process" (the daemon method called) and the helper's attribute names
 *   slow(origin_hash, event, ...)     anything not decoded or refused by begin
 *                                     (nothing changed): deliver it (or raise)
 *   failed(origin_hash, ticket, exc)  process raised exc: end the lease, raise
 *   commit_other(origin_hash, ticket, outputs)  outputs not decodable: commit
 *                                     them, return the output events
 *   commit_failed(origin_hash, ticket, status)  commit returned status: end
 *                                     the lease if still open, raise
 * The builtin holds references to all three until it is released. When
 * failed, commit_other or commit_failed raises (or cannot be called: out of
 * memory), the builtin aborts the lease itself afterwards (a ticket already
 * ended is refused, changing nothing), so no daemon stays locked.
 */
uint64_t net_mesh_pyobj_native_deliver(net_mesh_runtime *rt, uint64_t objects, uint64_t helper, uint64_t names);

/*
 * A new reference to CausalEvent(origin, meta[0], payload, meta[1], meta[2],
 * meta[3]) built as the builtin builds outputs (origin and payload are object
 * addresses), or 0; for the binding's check of this process's layout.
 */
uint64_t net_mesh_pyobj_native_event(uint64_t origin, const uint64_t meta[4], uint64_t payload);

/*
 * deliver_many's common case: every event of a batch returned exactly one
 * output, exactly a bytes object, so the binding holds the outputs as a
 * list `outs` of n exact bytes objects (outs[i]: event i's output). The two
 * calls below take that list by address, with the GIL held (ctypes.PyDLL),
 * the caller keeping every object alive; any other list is not decodable
 * (NET_MESH_PYOBJ_UNDECODABLE / 0) and the binding takes its general path.
 */

/*
 * net_mesh_runtime_deliver_batch_commit with the records built here (in
 * C memory, freed before return) from outs: per event [u64 1][u64 len]
 * [bytes]. outs must be exactly a list of exactly n_done items, each
 * exactly bytes (needs net_mesh_pyobj_configure, not _configure_api).
 * Returns NET_MESH_PYOBJ_UNDECODABLE when it is not (or the records cannot
 * be allocated) with NOTHING changed: the lease is still open and the
 * caller commits (or aborts) it itself; otherwise what
 * net_mesh_runtime_deliver_batch_commit returns (meta, meta_cap and n_out
 * as there: 4 values per event).
 */
int net_mesh_pyobj_deliver_batch_commit(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket, uint64_t outs,
                                        size_t n_done, int failed, uint64_t *meta, size_t meta_cap,
                                        size_t *n_out);

/*
 * A new reference to a new list of n one-item lists, item i
 * [CausalEvent(origin, meta[4i], outs[i], meta[4i+1], meta[4i+2],
 * meta[4i+3])], each event built as the builtin deliver builds its output
 * (origin: the address of any object, stored as it is; outs[i] the very
 * bytes object). Returns 0 when the api is not configured, origin is 0,
 * meta is NULL with n > 0, outs is not exactly a list of exactly n exact
 * bytes objects (also when it changes while the results are made: an
 * allocation may run finalizers), or out of memory; then no reference is
 * kept and no exception is left set (the MemoryError of a failed
 * allocation is cleared): the caller builds the results itself.
 */
uint64_t net_mesh_pyobj_native_results(uint64_t origin, uint64_t outs, const uint64_t *meta, size_t n);

/* One entry of a daemon's subscription ledger. */
typedef struct net_mesh_subscription {
    uint64_t publisher;
    const char *channel;  /* NUL-terminated */
    const uint8_t *token; /* NULL when token_len is 0 */
    size_t token_len;
} net_mesh_subscription;

/* A library-owned list; free with net_mesh_subscription_list_free. */
typedef struct net_mesh_subscription_list {
    net_mesh_subscription *items;
    size_t len;
    void *reserved_;
} net_mesh_subscription_list;

/* Release the list and zero *list. NULL and a zeroed list are no-ops. */
void net_mesh_subscription_list_free(net_mesh_subscription_list *list);

/* The daemon's subscription ledger. Returns NET_MESH_OK, _BAD_HANDLE,
 * _INVALID_ARGUMENT, _DAEMON_NOT_FOUND, _DAEMON_MOVED. */
int net_mesh_runtime_subscriptions(const net_mesh_runtime *rt, uint64_t origin,
                                   net_mesh_subscription_list *out);

/*
 * Subscribe the daemon at origin to channel on publisher (token borrowed, may
 * be NULL/0). The node's wire call goes first; the ledger changes only if it
 * succeeded. timeout_ms 0 = the node's membership timeout.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _NOT_READY,
 * _SHUTTING_DOWN, _DAEMON_NOT_FOUND, _DAEMON_MOVED, _TIMEOUT, _PROCESS_FAILED
 * (the publisher refused or is unreachable).
 */
int net_mesh_runtime_subscribe(net_mesh_runtime *rt, uint64_t origin, uint64_t publisher,
                               const char *channel, const uint8_t *token, size_t token_len,
                               uint32_t timeout_ms);

/* Reverse of net_mesh_runtime_subscribe; same statuses. */
int net_mesh_runtime_unsubscribe(net_mesh_runtime *rt, uint64_t origin, uint64_t publisher,
                                 const char *channel, uint32_t timeout_ms);

/*
 * Let this node receive the daemon at origin by migration (a placeholder
 * entry; the identity arrives sealed in the snapshot). config may be NULL.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT, _SHUTTING_DOWN,
 * _FACTORY_NOT_FOUND, _ALREADY_REGISTERED.
 */
int net_mesh_runtime_expect_migration(net_mesh_runtime *rt, const char *kind, uint64_t origin,
                                      const net_mesh_daemon_config *config);

/* Like expect_migration with the full identity (borrowed), for migrations
 * without an envelope. Same statuses. */
int net_mesh_runtime_register_migration_target_identity(net_mesh_runtime *rt, const char *kind,
                                                        const net_mesh_identity *identity,
                                                        const net_mesh_daemon_config *config);

/* A host task for net_mesh_runtime_submit. */
typedef void (*net_mesh_task_fn)(void *user_data);

/*
 * Run callback(user_data) on the runtime's worker pool (through the executor
 * if one is set), then finalize(user_data). Never blocks; callable from any
 * thread, including threads the host created. user_data is consumed, also
 * on error. Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (callback
 * NULL), _NOT_READY, _SHUTTING_DOWN, _QUEUE_FULL (the pool's bounded queue
 * is full: nothing was queued, try again later).
 */
int net_mesh_runtime_submit(net_mesh_runtime *rt, net_mesh_task_fn callback, void *user_data,
                            net_mesh_finalize_fn finalize);

/*
 * The host's executor: post task to a thread of the host's choice, which
 * must then call net_mesh_task_run(task) exactly once. post may run on any
 * thread and must not block waiting for the task.
 */
typedef void (*net_mesh_executor_post_fn)(void *user_data, net_mesh_task *task);

/*
 * Install (post NULL: remove) the executor through which network-initiated
 * daemon callbacks and submitted tasks run. The previous executor's finalizer
 * runs once no post of it is in flight; finalize is consumed, also on error.
 * Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_runtime_set_executor(net_mesh_runtime *rt, net_mesh_executor_post_fn post,
                                  void *user_data, net_mesh_finalize_fn finalize);

/*
 * Run a posted task on the calling thread and release it (the task is
 * consumed). Returns NET_MESH_OK, _BAD_HANDLE (NULL, already run, not a task).
 */
int net_mesh_task_run(net_mesh_task *task);

/*
 * Call callback(user_data) once, on this thread, from inside the library: an
 * export entered plus one callback made, and nothing else. It is the floor
 * against which the cost of other calls is measured, and lets a binding
 * check its callback plumbing. Returns NET_MESH_OK, _INVALID_ARGUMENT
 * (callback NULL).
 */
int net_mesh_callback_probe(net_mesh_task_fn callback, void *user_data);

/* Shut the runtime down (waiting for the pool) and release the handle;
 * finalizers of factories, the executor and the output sink run on this
 * thread. A setter (set_executor, set_output_sink, register_factory) racing
 * this either installs before it (finalized here) or gets _BAD_HANDLE (its
 * finalizer runs at once): every finalizer still runs exactly once.
 * NULL / freed: no-op. */
void net_mesh_runtime_free(net_mesh_runtime *rt);

/* ------------------------------------------------------------------ */
/* Daemon handles                                                      */
/* ------------------------------------------------------------------ */

/* Daemon counters (reset on restore). */
typedef struct net_mesh_daemon_stats {
    uint32_t size; /* set by the caller: sizeof(net_mesh_daemon_stats) */
    uint64_t events_processed;
    uint64_t events_emitted;
    uint64_t errors;
    uint64_t snapshots_taken;
} net_mesh_daemon_stats;

/* Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_daemon_origin_hash(const net_mesh_daemon *d, uint64_t *out);

/* 32-byte entity id into out (caller-owned). Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT. */
int net_mesh_daemon_entity_id(const net_mesh_daemon *d, uint8_t *out);

/* The daemon's counters; out->size set by the caller. Returns NET_MESH_OK,
 * _BAD_HANDLE, _INVALID_ARGUMENT, _DAEMON_NOT_FOUND, _DAEMON_MOVED. */
int net_mesh_daemon_stats_get(const net_mesh_daemon *d, net_mesh_daemon_stats *out);

/* Release the handle (the daemon keeps running). NULL / freed: no-op. */
void net_mesh_daemon_free(net_mesh_daemon *d);

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

/*
 * A live migration this runtime orchestrates (BEHAVIOUR §3–§4). Every runtime
 * made by net_mesh_runtime_new can send and receive daemons: its migration
 * engine is attached when it is created. A node receives a daemon only if
 * its runtime is started and has an entry for the daemon's origin
 * (net_mesh_runtime_expect_migration, or
 * net_mesh_runtime_register_migration_target_identity without an envelope).
 *
 * The handle observes and controls the migration; the migration goes on
 * whether or not anybody waits, and freeing the handle does not stop it.
 */
typedef struct net_mesh_migration net_mesh_migration;

/*
 * Phases, as the orchestrator sees them. NONE (0): no migration (not
 * started through this runtime, or ended: completed, failed, cancelled).
 *   SNAPSHOT → TRANSFER → RESTORE → REPLAY → CUTOVER → COMPLETE → NONE
 */
#define NET_MESH_MIGRATION_PHASE_NONE 0
#define NET_MESH_MIGRATION_PHASE_SNAPSHOT 1
#define NET_MESH_MIGRATION_PHASE_TRANSFER 2
#define NET_MESH_MIGRATION_PHASE_RESTORE 3
#define NET_MESH_MIGRATION_PHASE_REPLAY 4
#define NET_MESH_MIGRATION_PHASE_CUTOVER 5
#define NET_MESH_MIGRATION_PHASE_COMPLETE 6

/* Options of net_mesh_runtime_start_migration; start from
 * net_mesh_migration_options_init. NULL wherever options are taken means the
 * defaults. */
typedef struct net_mesh_migration_options {
    uint32_t size;              /* sizeof(net_mesh_migration_options) */
    int transport_identity;     /* non-zero (default 1): seal the daemon's identity for
                                   the target; 0: the target needs the full identity
                                   (register_migration_target_identity) */
    int64_t retry_not_ready_ms; /* budget for retrying a target that answers not-ready:
                                   0 = default 30000; negative = no retry */
    int no_retry;               /* non-zero: no retry (the first not-ready fails) */
} net_mesh_migration_options;

/* Fill *opts with the defaults (transport_identity 1, 30 s retry budget) and
 * opts->size. NULL is a no-op. */
void net_mesh_migration_options_init(net_mesh_migration_options *opts);

/*
 * Migrate the daemon at origin from node source_node to node target_node
 * (node ids; any node may orchestrate, usually source_node is this runtime's
 * node). opts (borrowed) may be NULL. With a local source, the daemon starts
 * buffering and its `snapshot` callback runs on this thread before this
 * returns; from then until cutover, deliver on the source queues events
 * (NET_MESH_OK, no outputs) and they are processed on the target, in order.
 * *out receives a new handle (free with net_mesh_migration_free).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT (out NULL, opts->size
 * too small), _NOT_READY, _SHUTTING_DOWN, _MIGRATION with detail
 * (net_mesh_last_error_detail): "daemon-not-found", "already-migrating",
 * "target-unavailable" (no session with the peer), "state-failed" (snapshot
 * failed, target's X25519 key unknown). On error nothing is left behind and
 * the daemon keeps running on the source.
 */
int net_mesh_runtime_start_migration(net_mesh_runtime *rt, uint64_t origin, uint64_t source_node,
                                     uint64_t target_node, const net_mesh_migration_options *opts,
                                     net_mesh_migration **out);

/*
 * The current phase (NET_MESH_MIGRATION_PHASE_*) into *phase_out;
 * NET_MESH_MIGRATION_PHASE_NONE once the migration has ended.
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT.
 */
int net_mesh_migration_phase(const net_mesh_migration *m, int *phase_out);

/*
 * The phase of a migration of origin in which this runtime takes part, in
 * any role, or NET_MESH_MIGRATION_PHASE_NONE (none, or it ended here):
 *  - orchestrator (started with net_mesh_runtime_start_migration on this
 *    runtime): the same phase as net_mesh_migration_phase;
 *  - source driven by another node: SNAPSHOT until its snapshot is taken,
 *    TRANSFER while it waits for the target, CUTOVER once it gave the daemon
 *    up (until the move is final here);
 *  - target: TRANSFER while the snapshot arrives, RESTORE while it restores,
 *    REPLAY once the daemon is registered (deliver is refused with
 *    _MIGRATION "wrong-phase" until its first replay completed), CUTOVER once
 *    it learnt that the source cut over; NONE again once it activated the
 *    daemon (or rolled back).
 * Returns NET_MESH_OK, _BAD_HANDLE, _INVALID_ARGUMENT.
 */
int net_mesh_runtime_migration_phase(const net_mesh_runtime *rt, uint64_t origin, int *phase_out);

/* net_mesh_migration_wait flag: at the deadline, abandon the migration like
 * the reference's wait_with_timeout: the record is dropped and, before
 * cutover, both nodes are told, so the target rolls back and the daemon
 * resumes on the source; returns _MIGRATION "state-failed" ("timed out").
 * Past cutover the daemon is left to the target. */
#define NET_MESH_MIGRATION_WAIT_ABANDON 0x1u

/*
 * Block until the migration ends, for at most timeout_ms (negative: no
 * deadline; 0: just look). Returns the migration's outcome: NET_MESH_OK
 * (completed), _MIGRATION_FAILED (a party reported a reason: detail
 * "not-ready", "not-ready-timeout", "factory-not-found",
 * "compute-not-supported", "state-failed", "already-migrating",
 * "identity-transport-failed"), _MIGRATION (local: detail "state-failed" also
 * for cancelled, "target-unavailable", ...), or _TIMEOUT when the deadline
 * passed first — the migration goes on and wait can be called again (unless
 * flags has NET_MESH_MIGRATION_WAIT_ABANDON). The outcome is also the
 * calling thread's last error; net_mesh_migration_result reads it from any
 * thread. Any number of threads may wait at once. Never call it without a
 * deadline on the thread that runs your executor's tasks: the migration may
 * need that thread (see Thread safety). Returns also _BAD_HANDLE,
 * _INVALID_ARGUMENT (unknown flags).
 */
int net_mesh_migration_wait(net_mesh_migration *m, int64_t timeout_ms, uint32_t flags);

/*
 * The outcome of a migration, for any thread. Caller sets `size`; the
 * library fills the fields that fit. message is library-owned text (free
 * with net_mesh_bytes_free) — filled only when finished and status != OK.
 */
typedef struct net_mesh_migration_result {
    uint32_t size;          /* sizeof(net_mesh_migration_result), set by the caller */
    int finished;           /* 1 once the migration has ended, else 0 (other fields zero) */
    int status;             /* what net_mesh_migration_wait returns for it */
    uint32_t attempts;      /* attempts made (first included); "not-ready-timeout" carries it */
    char kind[64];          /* the reason / detail kind (e.g. "not-ready-timeout"); "" on success */
    net_mesh_bytes message; /* the full error text, with the reason's text */
} net_mesh_migration_result;

/*
 * Fill *out with the outcome (never blocks). Returns NET_MESH_OK, _BAD_HANDLE,
 * _INVALID_ARGUMENT (out NULL, size too small), _NO_MEMORY.
 */
int net_mesh_migration_result_get(const net_mesh_migration *m, net_mesh_migration_result *out);

/*
 * Abort the migration before cutover: both nodes are told, the target rolls
 * back, the daemon resumes on the source (its queued events are processed
 * there, outputs to the output sink) and wait returns _MIGRATION
 * "state-failed" (cancelled). Waits up to 5 s for the engine.
 * Returns NET_MESH_OK, _BAD_HANDLE, _MIGRATION "wrong-phase" (past cutover or
 * already ended; nothing changes), _TIMEOUT.
 */
int net_mesh_migration_cancel(net_mesh_migration *m);

/*
 * Progress: phase (NET_MESH_MIGRATION_PHASE_*), snapshot bytes and chunks
 * handed to the mesh so far in the current attempt, and their totals (0
 * until known). Called at every phase change and every chunk. When the
 * totals are known, the last TRANSFER call and every later one count the
 * whole snapshot as moved.
 */
typedef void (*net_mesh_migration_progress_fn)(void *user_data, int phase, uint64_t bytes_moved,
                                               uint64_t total_bytes, uint64_t chunks_moved,
                                               uint64_t total_chunks);

/*
 * Install (callback NULL: remove) the progress callback. It runs on a
 * library thread — never through the executor, never on the thread that
 * called in — one call at a time per migration, in order. It first receives
 * the phases the migration went through before it was installed (chunk
 * counts condensed to the latest per phase), then live progress. No call
 * starts after the migration's last notification, after replacement or
 * after net_mesh_migration_free; finalize (may be NULL; consumed, also on
 * error) runs once with user_data after the last call, on a library thread
 * or the thread that replaced/freed it. The callback must not call
 * net_mesh_migration_wait without a deadline.
 * Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_migration_on_progress(net_mesh_migration *m, net_mesh_migration_progress_fn callback,
                                   void *user_data, net_mesh_finalize_fn finalize);

/* Completion: status is what net_mesh_migration_wait returns for it
 * (details through net_mesh_migration_result_get). */
typedef void (*net_mesh_migration_complete_fn)(void *user_data, int status);

/*
 * Install (callback NULL: remove) a one-shot completion callback, so a host
 * need not block a thread in wait. It runs exactly once when the migration
 * ends (after the last progress call), on a library thread; if it has
 * already ended, it runs at once on a library thread. Installing a new one
 * replaces an uncalled one. finalize as for net_mesh_migration_on_progress.
 * Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_migration_on_complete(net_mesh_migration *m, net_mesh_migration_complete_fn callback,
                                   void *user_data, net_mesh_finalize_fn finalize);

/* Release the handle (the migration goes on). The callbacks' finalizers run
 * (after any call in flight returns). NULL / freed: no-op. */
void net_mesh_migration_free(net_mesh_migration *m);

/*
 * Output sink: outputs the runtime produced with no caller waiting — replay
 * of the events queued on the source (on a migration target), and queued
 * events processed on the source after a failed or cancelled migration.
 * outputs (and its payloads) are borrowed for the call. It runs on the
 * thread that processed the events: the executor's thread when one is set,
 * else a worker pool thread; calls for one daemon come in order. Without a
 * sink such outputs are dropped (they still count in the daemon's stats).
 */
typedef void (*net_mesh_output_sink_fn)(void *user_data, uint64_t origin,
                                        const net_mesh_event_list *outputs);

/*
 * Install (callback NULL: remove) the runtime's output sink. The previous
 * sink's finalizer runs once no call of it is in flight; finalize is
 * consumed, also on error. Returns NET_MESH_OK, _BAD_HANDLE.
 */
int net_mesh_runtime_set_output_sink(net_mesh_runtime *rt, net_mesh_output_sink_fn callback,
                                     void *user_data, net_mesh_finalize_fn finalize);

#ifdef __cplusplus
}
#endif

#endif /* NET_MESH_H */
