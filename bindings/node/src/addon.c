/*
 * net_mesh.node — the N-API addon over libnetmesh (include/net_mesh.h).
 *
 * Flat, status-checked functions; the JS classes in ../lib hold the handles
 * (boxed in napi externals) and give them their shape.
 *
 * Threading (the contract this file keeps):
 *  - Every export runs on the JS thread of one environment (main thread or a
 *    worker). Per-environment state lives in an addon_state set as instance
 *    data; there are no C globals besides constants.
 *  - Host-initiated library calls (deliver, snapshot, spawn*, stop) call the
 *    daemon callbacks synchronously on this same thread: the callbacks call
 *    JS directly.
 *  - Network-initiated callbacks (a migration arriving, replay) reach us as
 *    executor tasks posted from library threads. post() queues the task and
 *    wakes the JS thread through a threadsafe function; the JS thread runs it
 *    with net_mesh_task_run. post() never blocks.
 *  - Blocking library calls (start, shutdown, node create/connect/close,
 *    migration wait) run on libuv's pool (napi async work) and settle a
 *    Promise; the JS thread never waits for Go work that may need it.
 *  - Finalizers the library runs may fire on any thread (a pool thread, a Go
 *    cleanup). Off the JS thread they only queue their napi_ref for release on
 *    the JS thread; the addon_state is reference-counted so a finalizer that
 *    runs after the environment is gone (worker terminated) touches no freed
 *    memory.
 *  - When the environment exits, a cleanup hook closes the wake-up path
 *    (tasks then run inline and their JS callbacks fail fast), and shuts down
 *    and frees every runtime still alive.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_mesh.h"

/* ------------------------------------------------------------------ */
/* Status-checked N-API calls                                          */
/* ------------------------------------------------------------------ */

/* On failure: throw (unless an exception is already pending) and return NULL. */
#define NAPI_CALL(env, call)                                                   \
    do {                                                                       \
        napi_status st_ = (call);                                              \
        if (st_ != napi_ok) {                                                  \
            throw_napi(env, st_, #call);                                       \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

/* The same for helpers returning int (0 ok, -1 thrown). */
#define NAPI_CHECK(env, call)                                                  \
    do {                                                                       \
        napi_status st_ = (call);                                              \
        if (st_ != napi_ok) {                                                  \
            throw_napi(env, st_, #call);                                       \
            return -1;                                                         \
        }                                                                      \
    } while (0)

static void throw_napi(napi_env env, napi_status st, const char *what) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
        return;
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[512];
    snprintf(msg, sizeof msg, "net-mesh: N-API call failed (%d: %s): %s", (int)st,
             info && info->error_message ? info->error_message : "?", what);
    napi_throw_error(env, "INTERNAL", msg);
}

/* ------------------------------------------------------------------ */
/* Per-environment state                                               */
/* ------------------------------------------------------------------ */

typedef struct release_item {
    napi_ref ref;
    struct release_item *next;
} release_item;

typedef struct task_item {
    net_mesh_task *task;
    struct task_item *next;
} task_item;

struct rt_box;

typedef struct addon_state {
    /* Read-only after init. */
    napi_env env;
    pthread_t js_thread;

    /* One for the environment plus one per library-held user_data. */
    atomic_int refs;
    /* Cleared by the environment cleanup hook: from then on no JS runs and
     * no napi_ref is touched (the environment frees them itself). */
    atomic_int alive;

    /* JS-thread only. */
    napi_ref make_error;     /* (status, kind, message, detail, movedTo, cause) -> Error */
    napi_ref pending_cause;  /* JS error thrown by the last failing callback */
    int callback_depth;      /* nesting of JS callbacks run by the library */
    struct rt_box *runtimes; /* live runtimes, shut down by the cleanup hook */

    /* Guarded by mu: the wake-up path and what crosses threads. */
    pthread_mutex_t mu;
    napi_threadsafe_function tsfn;
    int tsfn_open;
    task_item *tasks_head, *tasks_tail;
    release_item *releases;
} addon_state;

static void state_unref(addon_state *s) {
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

static addon_state *state_of(napi_env env) {
    void *data = NULL;
    if (napi_get_instance_data(env, &data) != napi_ok)
        return NULL;
    return data;
}

static int on_js_thread(addon_state *s) {
    return atomic_load(&s->alive) && pthread_equal(pthread_self(), s->js_thread);
}

/* Wake the JS thread (it drains tasks and releases). Caller holds mu. */
static void wake_locked(addon_state *s) {
    if (s->tsfn_open)
        napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
}

/* Delete ref now if on the JS thread, else queue it for the JS thread. After
 * the environment is gone the ref is the environment's to free. */
static void release_ref(addon_state *s, napi_ref ref) {
    if (ref == NULL)
        return;
    if (on_js_thread(s)) {
        napi_delete_reference(s->env, ref);
        return;
    }
    release_item *it = malloc(sizeof *it);
    if (it == NULL)
        return; /* leaks one reference; never crashes */
    it->ref = ref;
    pthread_mutex_lock(&s->mu);
    if (!s->tsfn_open) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        return;
    }
    it->next = s->releases;
    s->releases = it;
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void drain_releases(addon_state *s) {
    pthread_mutex_lock(&s->mu);
    release_item *it = s->releases;
    s->releases = NULL;
    pthread_mutex_unlock(&s->mu);
    while (it != NULL) {
        release_item *next = it->next;
        if (atomic_load(&s->alive))
            napi_delete_reference(s->env, it->ref);
        free(it);
        it = next;
    }
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* A library failure captured on the thread that saw it. */
typedef struct nm_failure {
    int status;
    char message[1024];
    char detail[128];
    int has_moved;
    uint64_t moved_to;
} nm_failure;

static void failure_capture(nm_failure *f, int status) {
    f->status = status;
    snprintf(f->message, sizeof f->message, "%s", net_mesh_last_error());
    snprintf(f->detail, sizeof f->detail, "%s", net_mesh_last_error_detail());
    f->has_moved = 0;
    if (status == NET_MESH_ERR_DAEMON_MOVED && net_mesh_last_error_moved_to(&f->moved_to) == NET_MESH_OK)
        f->has_moved = 1;
}

static void failure_set(nm_failure *f, int status, const char *message) {
    f->status = status;
    snprintf(f->message, sizeof f->message, "%s", message);
    f->detail[0] = 0;
    f->has_moved = 0;
}

/* Build the JS NetMeshError for f (cause may be NULL). Returns NULL if even
 * that failed (an exception is then pending). */
static napi_value failure_to_js(napi_env env, const nm_failure *f, napi_value cause) {
    addon_state *s = state_of(env);
    napi_value fn, undef, argv[6], result;
    if (s == NULL || s->make_error == NULL) {
        napi_throw_error(env, "INTERNAL", f->message);
        return NULL;
    }
    NAPI_CALL(env, napi_get_reference_value(env, s->make_error, &fn));
    NAPI_CALL(env, napi_get_undefined(env, &undef));
    NAPI_CALL(env, napi_create_int32(env, f->status, &argv[0]));
    NAPI_CALL(env, napi_create_string_utf8(env, net_mesh_status_kind(f->status), NAPI_AUTO_LENGTH, &argv[1]));
    NAPI_CALL(env, napi_create_string_utf8(env, f->message, NAPI_AUTO_LENGTH, &argv[2]));
    NAPI_CALL(env, napi_create_string_utf8(env, f->detail, NAPI_AUTO_LENGTH, &argv[3]));
    argv[4] = undef;
    if (f->has_moved)
        NAPI_CALL(env, napi_create_bigint_uint64(env, f->moved_to, &argv[4]));
    argv[5] = cause ? cause : undef;
    NAPI_CALL(env, napi_call_function(env, undef, fn, 6, argv, &result));
    return result;
}

/* Take the original JS error of the last failing callback, if any. */
static napi_value take_cause(napi_env env, addon_state *s) {
    napi_value v = NULL;
    if (s->pending_cause != NULL) {
        napi_get_reference_value(env, s->pending_cause, &v);
        napi_delete_reference(env, s->pending_cause);
        s->pending_cause = NULL;
    }
    return v;
}

static void clear_cause(napi_env env, addon_state *s) {
    if (s->pending_cause != NULL) {
        napi_delete_reference(env, s->pending_cause);
        s->pending_cause = NULL;
    }
}

/* Throw f; a JS callback's original error is attached as .cause. A host
 * callback that threw is reported by some calls as CALLBACK_FAILED: to JS
 * that is a failure of a daemon method, PROCESS_FAILED. */
static void throw_failure(napi_env env, nm_failure *f) {
    addon_state *s = state_of(env);
    napi_value cause = s ? take_cause(env, s) : NULL;
    if (cause != NULL && f->status == NET_MESH_ERR_CALLBACK_FAILED)
        f->status = NET_MESH_ERR_PROCESS_FAILED;
    napi_value err = failure_to_js(env, f, cause);
    if (err != NULL)
        napi_throw(env, err);
}

/* Throw the calling thread's last library error for status rc. */
static void throw_status(napi_env env, int rc) {
    nm_failure f;
    failure_capture(&f, rc);
    throw_failure(env, &f);
}

static void throw_invalid(napi_env env, const char *msg) {
    nm_failure f;
    failure_set(&f, NET_MESH_ERR_INVALID_ARGUMENT, msg);
    napi_value err = failure_to_js(env, &f, NULL);
    if (err != NULL)
        napi_throw(env, err);
}

/* Check a library call on the JS thread; on failure throw and return NULL. */
#define NM_CALL(env, call)                                                     \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != NET_MESH_OK) {                                              \
            throw_status(env, rc_);                                            \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Arguments                                                           */
/* ------------------------------------------------------------------ */

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                    napi_value *this_out) {
    size_t argc = want;
    NAPI_CHECK(env, napi_get_cb_info(env, info, &argc, argv, this_out, NULL));
    if (argc < want) {
        for (size_t i = argc; i < want; i++)
            napi_get_undefined(env, &argv[i]);
    }
    return 0;
}

/* A u64 from a BigInt or a non-negative safe-integer Number. */
static int get_u64(napi_env env, napi_value v, const char *what, uint64_t *out) {
    napi_valuetype t;
    NAPI_CHECK(env, napi_typeof(env, v, &t));
    char msg[160];
    if (t == napi_bigint) {
        bool lossless = false;
        NAPI_CHECK(env, napi_get_value_bigint_uint64(env, v, out, &lossless));
        if (!lossless) {
            snprintf(msg, sizeof msg, "net-mesh: %s must be a BigInt in 0..2^64-1", what);
            throw_invalid(env, msg);
            return -1;
        }
        return 0;
    }
    if (t == napi_number) {
        double d;
        NAPI_CHECK(env, napi_get_value_double(env, v, &d));
        if (d >= 0 && d <= 9007199254740991.0 && d == (double)(uint64_t)d) {
            *out = (uint64_t)d;
            return 0;
        }
        snprintf(msg, sizeof msg, "net-mesh: %s must be a non-negative integer (use a BigInt above 2^53)", what);
        throw_invalid(env, msg);
        return -1;
    }
    snprintf(msg, sizeof msg, "net-mesh: %s must be a BigInt", what);
    throw_invalid(env, msg);
    return -1;
}

/* Borrow the bytes of a Buffer / TypedArray / ArrayBuffer / DataView. */
static int get_bytes(napi_env env, napi_value v, const char *what, const uint8_t **data,
                     size_t *len) {
    bool is;
    void *p = NULL;
    size_t n = 0;
    NAPI_CHECK(env, napi_is_typedarray(env, v, &is));
    if (is) {
        napi_typedarray_type type;
        size_t count, offset;
        napi_value ab;
        NAPI_CHECK(env, napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset));
        size_t elem = 1;
        switch (type) {
        case napi_int16_array: case napi_uint16_array: elem = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
        default: elem = 1;
        }
        n = count * elem;
    } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
        NAPI_CHECK(env, napi_get_arraybuffer_info(env, v, &p, &n));
    } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
        napi_value ab;
        size_t offset;
        NAPI_CHECK(env, napi_get_dataview_info(env, v, &n, &p, &ab, &offset));
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "net-mesh: %s must be a Buffer or Uint8Array", what);
        throw_invalid(env, msg);
        return -1;
    }
    *data = n ? p : NULL;
    *len = n;
    return 0;
}

/* A NUL-terminated UTF-8 copy of a string argument (free with free()). */
static char *get_string(napi_env env, napi_value v, const char *what) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
        char msg[160];
        snprintf(msg, sizeof msg, "net-mesh: %s must be a string", what);
        throw_invalid(env, msg);
        return NULL;
    }
    size_t n = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
        throw_napi(env, napi_generic_failure, "napi_get_value_string_utf8");
        return NULL;
    }
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    napi_get_value_string_utf8(env, v, buf, n + 1, &n);
    if (strlen(buf) != n) {
        free(buf);
        char msg[160];
        snprintf(msg, sizeof msg, "net-mesh: %s must not contain NUL characters", what);
        throw_invalid(env, msg);
        return NULL;
    }
    return buf;
}

static napi_value make_u64(napi_env env, uint64_t v) {
    napi_value out;
    NAPI_CALL(env, napi_create_bigint_uint64(env, v, &out));
    return out;
}

static napi_value make_buffer(napi_env env, const void *data, size_t len) {
    napi_value out;
    void *dst;
    NAPI_CALL(env, napi_create_buffer_copy(env, len, len ? data : "", &dst, &out));
    return out;
}

static napi_value make_undefined(napi_env env) {
    napi_value v;
    napi_get_undefined(env, &v);
    return v;
}

/* ------------------------------------------------------------------ */
/* Boxed handles                                                       */
/* ------------------------------------------------------------------ */

/*
 * A library handle in a napi external. The box outlives the handle: close
 * frees the handle and NULLs it; the external's GC finalizer frees the box
 * (and the handle, if still open). A closed box gives BAD_HANDLE-like errors
 * in JS, never a crash.
 */
enum box_kind { BOX_IDENTITY = 0x4e4d4931, BOX_NODE, BOX_RUNTIME, BOX_DAEMON, BOX_MIGRATION };

typedef struct box {
    int kind;
    void *h;
} box;

static void box_free_handle(box *b) {
    void *h = b->h;
    b->h = NULL;
    if (h == NULL)
        return;
    switch (b->kind) {
    case BOX_IDENTITY: net_mesh_identity_free(h); break;
    default: break;
    }
}

static void box_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    box *b = data;
    box_free_handle(b);
    free(b);
}

static napi_value box_new(napi_env env, int kind, void *h) {
    box *b = malloc(sizeof *b);
    if (b == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    b->kind = kind;
    b->h = h;
    napi_value ext;
    if (napi_create_external(env, b, box_finalize, NULL, &ext) != napi_ok) {
        box_free_handle(b);
        free(b);
        throw_napi(env, napi_generic_failure, "napi_create_external");
        return NULL;
    }
    return ext;
}

static const char *kind_name(int kind) {
    switch (kind) {
    case BOX_IDENTITY: return "Identity";
    case BOX_NODE: return "Node";
    case BOX_RUNTIME: return "DaemonRuntime";
    case BOX_DAEMON: return "daemon handle";
    case BOX_MIGRATION: return "MigrationHandle";
    default: return "object";
    }
}

/* The box in v, checked for kind; open != 0 also requires a live handle. */
static box *get_box(napi_env env, napi_value v, int kind, int open) {
    napi_valuetype t;
    void *data = NULL;
    char msg[160];
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
        napi_get_value_external(env, v, &data) != napi_ok || data == NULL ||
        ((box *)data)->kind != kind) {
        snprintf(msg, sizeof msg, "net-mesh: expected a %s", kind_name(kind));
        throw_invalid(env, msg);
        return NULL;
    }
    box *b = data;
    if (open && b->h == NULL) {
        nm_failure f;
        snprintf(msg, sizeof msg, "net-mesh: this %s is closed", kind_name(kind));
        failure_set(&f, NET_MESH_ERR_BAD_HANDLE, msg);
        throw_failure(env, &f);
        return NULL;
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* Library info                                                        */
/* ------------------------------------------------------------------ */

/* init(makeError): the JS side hands over its error constructor once. */
static napi_value js_init(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    addon_state *s = state_of(env);
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[0], &t));
    if (t != napi_function) {
        napi_throw_type_error(env, NULL, "net-mesh: init needs a function");
        return NULL;
    }
    if (s->make_error != NULL)
        napi_delete_reference(env, s->make_error);
    NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &s->make_error));
    return make_undefined(env);
}

static napi_value js_version(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value out;
    NAPI_CALL(env, napi_create_string_utf8(env, net_mesh_version(NULL, NULL, NULL), NAPI_AUTO_LENGTH, &out));
    return out;
}

/* statusKind(code) → the library's symbolic kind, e.g. "not-ready". */
static napi_value js_status_kind(napi_env env, napi_callback_info info) {
    napi_value argv[1], out;
    int32_t code;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    NAPI_CALL(env, napi_get_value_int32(env, argv[0], &code));
    NAPI_CALL(env, napi_create_string_utf8(env, net_mesh_status_kind(code), NAPI_AUTO_LENGTH, &out));
    return out;
}

/* ------------------------------------------------------------------ */
/* Identity                                                            */
/* ------------------------------------------------------------------ */

static napi_value js_identity_generate(napi_env env, napi_callback_info info) {
    (void)info;
    net_mesh_identity *id = NULL;
    NM_CALL(env, net_mesh_identity_generate(&id));
    return box_new(env, BOX_IDENTITY, id);
}

static napi_value js_identity_from_seed(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    const uint8_t *seed;
    size_t len;
    net_mesh_identity *id = NULL;
    if (get_args(env, info, 1, argv, NULL) || get_bytes(env, argv[0], "seed", &seed, &len))
        return NULL;
    NM_CALL(env, net_mesh_identity_from_seed(seed, len, &id));
    return box_new(env, BOX_IDENTITY, id);
}

static napi_value js_identity_from_entity_id(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    const uint8_t *eid;
    size_t len;
    net_mesh_identity *id = NULL;
    if (get_args(env, info, 1, argv, NULL) || get_bytes(env, argv[0], "entityId", &eid, &len))
        return NULL;
    if (len != NET_MESH_ENTITY_ID_SIZE) {
        throw_invalid(env, "net-mesh: entityId must be 32 bytes");
        return NULL;
    }
    NM_CALL(env, net_mesh_identity_from_entity_id(eid, &id));
    return box_new(env, BOX_IDENTITY, id);
}

/* identityInfo(h) → [entityId: Buffer, originHash: bigint, nodeId: bigint] */
static napi_value js_identity_info(napi_env env, napi_callback_info info) {
    napi_value argv[1], arr, v;
    uint8_t eid[NET_MESH_ENTITY_ID_SIZE];
    uint64_t origin, node;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_IDENTITY, 1);
    if (b == NULL)
        return NULL;
    NM_CALL(env, net_mesh_identity_entity_id(b->h, eid));
    NM_CALL(env, net_mesh_identity_origin_hash(b->h, &origin));
    NM_CALL(env, net_mesh_identity_node_id(b->h, &node));
    NAPI_CALL(env, napi_create_array_with_length(env, 3, &arr));
    if ((v = make_buffer(env, eid, sizeof eid)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 0, v));
    if ((v = make_u64(env, origin)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 1, v));
    if ((v = make_u64(env, node)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 2, v));
    return arr;
}

/* identitySeed(h) → Buffer (throws INVALID_ARGUMENT for a public-only identity). */
static napi_value js_identity_seed(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    uint8_t seed[NET_MESH_SEED_SIZE];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_IDENTITY, 1);
    if (b == NULL)
        return NULL;
    NM_CALL(env, net_mesh_identity_seed(b->h, seed));
    napi_value out = make_buffer(env, seed, sizeof seed);
    memset(seed, 0, sizeof seed);
    return out;
}

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

/* close(h): free the handle now; idempotent; any box kind. */
static napi_value js_close(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    void *data = NULL;
    napi_valuetype t;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    NAPI_CALL(env, napi_typeof(env, argv[0], &t));
    if (t != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
        throw_invalid(env, "net-mesh: close expects a native handle");
        return NULL;
    }
    box_free_handle(data);
    return make_undefined(env);
}

/* The wake-up path: drain queued releases and run posted tasks. */
static void tsfn_call_js(napi_env env, napi_value js_cb, void *context, void *data) {
    (void)js_cb;
    (void)data;
    addon_state *s = context;
    (void)env;
    drain_releases(s);
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)data;
    addon_state *s = hint;
    pthread_mutex_lock(&s->mu);
    s->tsfn_open = 0;
    pthread_mutex_unlock(&s->mu);
    state_unref(s);
}

static void env_cleanup(void *arg) {
    addon_state *s = arg;
    pthread_mutex_lock(&s->mu);
    int open = s->tsfn_open;
    s->tsfn_open = 0;
    pthread_mutex_unlock(&s->mu);
    drain_releases(s);
    atomic_store(&s->alive, 0);
    if (open)
        napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
}

static void instance_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    state_unref(data);
}

NAPI_MODULE_INIT() {
    int major = -1;
    net_mesh_version(&major, NULL, NULL);
    if (major != NET_MESH_VERSION_MAJOR) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "net-mesh: libnetmesh %s has major version %d; this addon was built for %d",
                 net_mesh_version(NULL, NULL, NULL), major, NET_MESH_VERSION_MAJOR);
        napi_throw_error(env, "INTERNAL", msg);
        return NULL;
    }

    addon_state *s = calloc(1, sizeof *s);
    if (s == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    s->env = env;
    s->js_thread = pthread_self();
    atomic_init(&s->refs, 1);
    atomic_init(&s->alive, 1);
    pthread_mutex_init(&s->mu, NULL);
    if (napi_set_instance_data(env, s, instance_finalize, NULL) != napi_ok) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        throw_napi(env, napi_generic_failure, "napi_set_instance_data");
        return NULL;
    }

    /* The threadsafe function first, the cleanup hook second: hooks run in
     * reverse order, so ours runs while the threadsafe function is open. */
    napi_value name;
    NAPI_CALL(env, napi_create_string_utf8(env, "net-mesh wake", NAPI_AUTO_LENGTH, &name));
    atomic_fetch_add(&s->refs, 1);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, s, tsfn_finalize, s,
                                        tsfn_call_js, &s->tsfn) != napi_ok) {
        atomic_fetch_sub(&s->refs, 1);
        throw_napi(env, napi_generic_failure, "napi_create_threadsafe_function");
        return NULL;
    }
    s->tsfn_open = 1;
    /* The wake-up path never keeps the process alive on its own. */
    NAPI_CALL(env, napi_unref_threadsafe_function(env, s->tsfn));
    NAPI_CALL(env, napi_add_env_cleanup_hook(env, env_cleanup, s));

    napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
        FN("init", js_init),
        FN("version", js_version),
        FN("statusKind", js_status_kind),
        FN("close", js_close),
        FN("identityGenerate", js_identity_generate),
        FN("identityFromSeed", js_identity_from_seed),
        FN("identityFromEntityId", js_identity_from_entity_id),
        FN("identityInfo", js_identity_info),
        FN("identitySeed", js_identity_seed),
#undef FN
    };
    NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
    return exports;
}
