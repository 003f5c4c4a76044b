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
 *  - deliver is host-driven: JS runs the daemon's process() itself between
 *    deliverBegin and deliverCommit/deliverAbort (see "Deliver"). The other
 *    host-initiated library calls (snapshot, spawn*, stop, and a commit's
 *    automatic snapshot) call the daemon callbacks synchronously on this same
 *    thread: the callbacks call JS directly.
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

struct mig_watch;

/* A migration notification from a library thread, waiting for the JS thread. */
typedef struct note_item {
    struct mig_watch *w;
    int kind; /* NOTE_PROGRESS, NOTE_COMPLETE */
    int phase_or_status;
    uint64_t v[4];
    struct note_item *next;
} note_item;

struct box;

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
    int js_refs;             /* runtimes keeping the event loop alive */
    /* The fast path (see "Shared memory"): a bump-allocated byte slab for
     * payloads and typed arrays shared with lib/runtime.js. */
    napi_ref slab_ref;
    uint8_t *slab;
    size_t slab_used;
    napi_ref shared_ref;     /* the JS object holding meta */
    uint64_t *meta;          /* SHARED_MAX * 4 u64 */
    struct box *live;        /* live runtimes and nodes, released by the cleanup hook */

    /* Guarded by mu: the wake-up path and what crosses threads. */
    pthread_mutex_t mu;
    napi_threadsafe_function tsfn;
    int tsfn_open;
    task_item *tasks_head, *tasks_tail;
    note_item *notes_head, *notes_tail;
    release_item *releases;

    /* JS-thread only: host-driven deliver (see "Deliver"). The open leases,
     * innermost first (deliverBegin pushes, deliverCommit/deliverAbort pop:
     * nested delivers close in reverse order), spare lease structs, and
     * commit's reusable record buffer. */
    struct lease *leases, *spare;
    uint8_t *rec;
    size_t rec_cap;
    /* deliverCommit calls in the library (a commit's automatic snapshot runs
     * JS, which may deliver elsewhere): a nested commit leaves rec and meta
     * to the outer one. */
    int committing;
    /* deliver/snapshot calls on the stack (innermost first): a daemon may not
     * deliver to or snapshot itself from its own callback. */
    struct call_frame *frames;
} addon_state;

typedef struct call_frame {
    struct box *b;
    uint64_t origin;
    struct call_frame *prev;
} call_frame;

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
    napi_value v = NULL, holder;
    if (s->pending_cause != NULL) {
        if (napi_get_reference_value(env, s->pending_cause, &holder) == napi_ok)
            napi_get_named_property(env, holder, "v", &v);
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
    /* Fast path: a BigInt in range is one N-API call (a non-BigInt only gives
     * napi_bigint_expected, no exception). */
    bool lossless = false;
    if (napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless)
        return 0;
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
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    /* Fast path: a Buffer / TypedArray is one N-API call (anything else only
     * gives napi_invalid_arg, no exception). */
    if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) == napi_ok) {
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
    /* Runtimes and nodes are listed (JS thread only) so the environment
     * cleanup hook can release them; listed != 0 while linked. */
    struct box *next, *prev;
    int listed;
    int no_ref; /* unref() was called */
    int refd; /* a started runtime keeps the event loop alive (see runtime_ref) */
    addon_state *s;
} box;

static void runtime_ref(box *b, int on);

static void box_link(addon_state *s, box *b) {
    b->s = s;
    b->prev = NULL;
    b->next = s->live;
    if (s->live)
        s->live->prev = b;
    s->live = b;
    b->listed = 1;
}

static void box_unlink(box *b) {
    if (!b->listed)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        b->s->live = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->listed = 0;
}

/* Handles whose release may block on library threads (a runtime draining its
 * pool, a node stopping its socket) are released on a short-lived thread when
 * the garbage collector drops them, never on the JS thread. */
static void *release_thread(void *arg) {
    box *b = arg;
    if (b->kind == BOX_RUNTIME)
        net_mesh_runtime_free(b->h);
    else if (b->kind == BOX_NODE)
        net_mesh_node_free(b->h);
    free(b);
    return NULL;
}

static void box_free_handle(box *b) {
    void *h = b->h;
    b->h = NULL;
    if (h == NULL)
        return;
    switch (b->kind) {
    case BOX_IDENTITY: net_mesh_identity_free(h); break;
    case BOX_NODE: box_unlink(b); net_mesh_node_free(h); break;
    case BOX_RUNTIME: box_unlink(b); net_mesh_runtime_free(h); break;
    case BOX_DAEMON: net_mesh_daemon_free(h); break;
    case BOX_MIGRATION: net_mesh_migration_free(h); break;
    default: break;
    }
}

static void box_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    box *b = data;
    if (b->refd)
        runtime_ref(b, 0);
    box_unlink(b);
    if (b->h != NULL && (b->kind == BOX_RUNTIME || b->kind == BOX_NODE)) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, release_thread, b);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            return;
    }
    box_free_handle(b);
    free(b);
}

static napi_value box_new(napi_env env, int kind, void *h) {
    box *b = malloc(sizeof *b);
    if (b == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    memset(b, 0, sizeof *b);
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
    void *data = NULL;
    char msg[160];
    /* napi_get_value_external refuses a non-external without throwing. */
    if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL ||
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

/* Enter a deliver/snapshot of origin on runtime b; refuses (throws) when
 * one for the same daemon is already on the stack. Leave with frame_leave. */
static int frame_enter(napi_env env, addon_state *s, call_frame *f, box *b, uint64_t origin, const char *what) {
    for (call_frame *g = s->frames; g != NULL; g = g->prev) {
        if (g->b == b && g->origin == origin) {
            char msg[120];
            snprintf(msg, sizeof msg, "net-mesh: a daemon cannot %s itself from its own callback", what);
            throw_invalid(env, msg);
            return -1;
        }
    }
    f->b = b;
    f->origin = origin;
    f->prev = s->frames;
    s->frames = f;
    return 0;
}

static void frame_leave(addon_state *s, call_frame *f) { s->frames = f->prev; }

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
/* Shared memory: payloads and ids without N-API objects per event      */
/* ------------------------------------------------------------------ */

/*
 * Building Buffers and BigInts through N-API costs more than the library
 * call itself, so small payloads of the events the runtime delivers itself
 * (replay) cross in a byte slab: an ArrayBuffer the addon fills with a bump
 * pointer and JS views with Buffer.from(slab, off, len). A region is written
 * once and never reused (a full slab is replaced, and lives on while views of
 * it do), so a daemon may keep its payload Buffers — the same scheme as
 * Node's own pool for small Buffers. Ids go through meta, a BigUint64Array
 * JS owns (the replayed event's ids; deliverCommit's output ids). Its
 * contents are read by JS right after the call that wrote them, before any
 * other JS runs, so nested calls cannot mix them up.
 */
#define SLAB_SIZE (64 * 1024)
#define SLAB_MAX_ITEM 4096
#define SHARED_MAX 64

/* Reserve len bytes in the slab (a fresh slab if needed); NULL if len is too
 * big for the fast path or allocation failed (no exception is left pending). */
static uint8_t *slab_reserve(napi_env env, addon_state *s, size_t len, size_t *off) {
    if (len > SLAB_MAX_ITEM * SHARED_MAX || s->meta == NULL)
        return NULL;
    if (s->slab == NULL || s->slab_used + len > SLAB_SIZE) {
        if (len > SLAB_SIZE / 2)
            return NULL;
        napi_value ab;
        void *data;
        if (napi_create_arraybuffer(env, SLAB_SIZE, &data, &ab) != napi_ok) {
            napi_value ignored;
            napi_get_and_clear_last_exception(env, &ignored);
            return NULL;
        }
        if (s->slab_ref != NULL)
            napi_delete_reference(env, s->slab_ref);
        s->slab_ref = NULL;
        s->slab = NULL;
        if (napi_create_reference(env, ab, 1, &s->slab_ref) != napi_ok)
            return NULL;
        s->slab = data;
        s->slab_used = 0;
    }
    *off = s->slab_used;
    s->slab_used += len;
    return s->slab + *off;
}

/* setShared(holder, meta: BigUint64Array) → SHARED_MAX */
static napi_value js_set_shared(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    addon_state *s = state_of(env);
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    napi_typedarray_type t1;
    size_t n1, o1;
    void *p1;
    napi_value ab;
    NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &t1, &n1, &p1, &ab, &o1));
    if (t1 != napi_biguint64_array || n1 < SHARED_MAX * 4) {
        napi_throw_type_error(env, NULL, "net-mesh: setShared: bad array");
        return NULL;
    }
    if (s->shared_ref != NULL)
        napi_delete_reference(env, s->shared_ref);
    NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &s->shared_ref));
    s->meta = p1;
    napi_value out;
    NAPI_CALL(env, napi_create_uint32(env, SHARED_MAX, &out));
    return out;
}

/* ------------------------------------------------------------------ */
/* JS daemons and factories                                            */
/* ------------------------------------------------------------------ */

/* A kind's factory: a JS function returning a daemon object. */
typedef struct js_factory {
    addon_state *s;
    napi_ref fn;
} js_factory;

/* A daemon instance. Its methods are read once, when the factory returns. */
typedef struct js_daemon {
    addon_state *s;
    napi_ref obj, process, snapshot, restore;
} js_daemon;

static void js_daemon_finalize(void *ud) {
    js_daemon *d = ud;
    release_ref(d->s, d->obj);
    release_ref(d->s, d->process);
    release_ref(d->s, d->snapshot);
    release_ref(d->s, d->restore);
    addon_state *s = d->s;
    free(d);
    state_unref(s);
}

static void js_factory_finalize(void *ud) {
    js_factory *f = ud;
    release_ref(f->s, f->fn);
    addon_state *s = f->s;
    free(f);
    state_unref(s);
}

/* Callbacks refuse to run anywhere but on their environment's live JS thread
 * (e.g. a task run inline after the environment closed). */
static int callback_enter(addon_state *s) {
    if (!on_js_thread(s)) {
        net_mesh_callback_set_error("net-mesh: the JavaScript environment of this daemon is gone");
        return -1;
    }
    return 0;
}

/* Record the pending JS exception as the failure of the current callback:
 * the original error is kept for the call that reports it, its text goes to
 * the library. Returns 1 (the callback's failure value). */
static int callback_fail_pending(napi_env env, addon_state *s) {
    napi_value err = NULL, str;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending || napi_get_and_clear_last_exception(env, &err) != napi_ok) {
        net_mesh_callback_set_error("net-mesh: JavaScript callback failed");
        return 1;
    }
    clear_cause(env, s);
    /* References hold only objects: keep any thrown value in a holder. */
    napi_value holder;
    if (napi_create_object(env, &holder) == napi_ok && napi_set_named_property(env, holder, "v", err) == napi_ok)
        napi_create_reference(env, holder, 1, &s->pending_cause);
    char msg[1024] = "net-mesh: JavaScript callback threw";
    if (napi_coerce_to_string(env, err, &str) == napi_ok) {
        size_t n;
        napi_get_value_string_utf8(env, str, msg, sizeof msg, &n);
    } else {
        bool p;
        napi_value ignored;
        if (napi_is_exception_pending(env, &p) == napi_ok && p)
            napi_get_and_clear_last_exception(env, &ignored);
    }
    net_mesh_callback_set_error(msg);
    return 1;
}

/* Fail the current callback with a TypeError as the original error. */
static int callback_fail_type(napi_env env, addon_state *s, const char *msg) {
    napi_throw_type_error(env, NULL, msg);
    return callback_fail_pending(env, s);
}

static int optional_method(napi_env env, napi_value obj, const char *name, napi_ref *out) {
    napi_value v;
    napi_valuetype t;
    *out = NULL;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok)
        return -1;
    if (t == napi_undefined || t == napi_null)
        return 0;
    if (t != napi_function) {
        char msg[120];
        snprintf(msg, sizeof msg, "net-mesh: daemon.%s must be a function", name);
        napi_throw_type_error(env, NULL, msg);
        return -1;
    }
    return napi_create_reference(env, v, 1, out) == napi_ok ? 0 : -1;
}

#define MSG_NOT_ARRAY "net-mesh: process() must return an array of Buffers (or nothing), synchronously"
#define MSG_NOT_BYTES "net-mesh: process() outputs must be Buffers or Uint8Arrays"

/* Push one output straight from the memory of a byte-typed array (the library
 * copies it once). 0 ok, else the callback's failure (recorded). */
static int push_output(napi_env env, addon_state *s, net_mesh_outputs *out, napi_value item, uint32_t i) {
    napi_typedarray_type type;
    size_t count, off;
    void *p = NULL;
    napi_value ab;
    if (napi_get_typedarray_info(env, item, &type, &count, &p, &ab, &off) != napi_ok ||
        (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array))
        return callback_fail_type(env, s, MSG_NOT_BYTES);
    int prc = net_mesh_outputs_push(out, count ? p : NULL, count);
    if (prc != NET_MESH_OK) {
        char msg[1100];
        snprintf(msg, sizeof msg, "net-mesh: output %u refused: %s", i, net_mesh_last_error());
        return callback_fail_type(env, s, msg);
    }
    return 0;
}

/* The adapter in lib/runtime.js hands back undefined (no outputs), the lone
 * output itself (a Uint8Array: one N-API call here) or an array of outputs
 * (checked item by item). Sets *n to the number pushed. */
static int take_outputs(napi_env env, addon_state *s, napi_value result, net_mesh_outputs *out, uint32_t *n) {
    napi_typedarray_type type;
    size_t count, off;
    void *p = NULL;
    napi_value ab;
    *n = 0;
    if (napi_get_typedarray_info(env, result, &type, &count, &p, &ab, &off) == napi_ok) {
        if (push_output(env, s, out, result, 0))
            return 1;
        *n = 1;
        return 0;
    }
    napi_valuetype t;
    bool is_array = false;
    napi_typeof(env, result, &t);
    if (t == napi_undefined || t == napi_null)
        return 0;
    napi_is_array(env, result, &is_array);
    if (!is_array)
        return callback_fail_type(env, s, MSG_NOT_ARRAY);
    uint32_t len = 0;
    napi_get_array_length(env, result, &len);
    for (uint32_t i = 0; i < len; i++) {
        napi_value item;
        if (napi_get_element(env, result, i, &item) != napi_ok)
            return callback_fail_pending(env, s);
        if (push_output(env, s, out, item, i))
            return 1;
    }
    *n = len;
    return 0;
}

/* process() called by the library: for deliver() JS calls the daemon itself
 * (see "Deliver"), so this runs for the events the runtime delivers on its
 * own (replay on a migration target, a source's queue after a failed
 * migration), on the JS thread through the executor. The adapter gets
 * process(slab, off, len) with the ids in meta[0..1], or process(Buffer, -1,
 * len) for a large payload. */
static int js_daemon_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    js_daemon *d = ud;
    addon_state *s = d->s;
    if (callback_enter(s))
        return 1;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    int rc = 1;
    napi_value fn, args[3], result;
    void *dst;
    size_t off = 0;
    if (napi_get_reference_value(env, d->process, &fn) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    uint8_t *p = ev->payload_len <= SLAB_MAX_ITEM ? slab_reserve(env, s, ev->payload_len, &off) : NULL;
    if (p != NULL) {
        if (ev->payload_len)
            memcpy(p, ev->payload, ev->payload_len);
        if (napi_get_reference_value(env, s->slab_ref, &args[0]) != napi_ok ||
            napi_create_int32(env, (int32_t)off, &args[1]) != napi_ok) {
            rc = callback_fail_pending(env, s);
            goto done;
        }
    } else if (napi_create_buffer_copy(env, ev->payload_len, ev->payload_len ? (const void *)ev->payload : "",
                                       &dst, &args[0]) != napi_ok ||
               napi_create_int32(env, -1, &args[1]) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    if (napi_create_uint32(env, (uint32_t)ev->payload_len, &args[2]) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    if (s->meta == NULL) {
        net_mesh_callback_set_error("net-mesh: the binding's shared arrays are gone");
        goto done;
    }
    s->meta[0] = ev->link.origin_hash;
    s->meta[1] = ev->link.sequence;
    /* The adapter's process is an arrow function: the receiver is unused. */
    s->callback_depth++;
    napi_status st = napi_call_function(env, fn, fn, 3, args, &result);
    s->callback_depth--;
    if (st != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    uint32_t n = 0;
    rc = take_outputs(env, s, result, out, &n);
done:
    napi_close_handle_scope(env, scope);
    return rc;
}

static int js_daemon_snapshot(void *ud, net_mesh_state *out) {
    js_daemon *d = ud;
    addon_state *s = d->s;
    if (callback_enter(s))
        return 1;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    int rc = 1;
    napi_value obj, fn, result;
    napi_valuetype t;
    if (napi_get_reference_value(env, d->obj, &obj) != napi_ok ||
        napi_get_reference_value(env, d->snapshot, &fn) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    s->callback_depth++;
    napi_status st = napi_call_function(env, obj, fn, 0, NULL, &result);
    s->callback_depth--;
    if (st != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    napi_typeof(env, result, &t);
    if (t == napi_undefined || t == napi_null) {
        rc = 0; /* stateless */
        goto done;
    }
    bool is = false;
    void *p = NULL;
    size_t len = 0;
    if (napi_is_typedarray(env, result, &is) == napi_ok && is) {
        napi_typedarray_type type;
        napi_value ab;
        size_t off;
        napi_get_typedarray_info(env, result, &type, &len, &p, &ab, &off);
        if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array)
            is = false;
    }
    if (!is) {
        rc = callback_fail_type(env, s, "net-mesh: snapshot() must return a Buffer, or null for a stateless daemon");
        goto done;
    }
    if (net_mesh_state_write(out, len ? p : NULL, len) != NET_MESH_OK) {
        char msg[1100];
        snprintf(msg, sizeof msg, "net-mesh: snapshot refused: %s", net_mesh_last_error());
        rc = callback_fail_type(env, s, msg);
        goto done;
    }
    rc = 0;
done:
    napi_close_handle_scope(env, scope);
    return rc;
}

static int js_daemon_restore(void *ud, const uint8_t *state, size_t state_len) {
    js_daemon *d = ud;
    addon_state *s = d->s;
    if (callback_enter(s))
        return 1;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    int rc = 1;
    napi_value obj, fn, buf, result;
    void *dst;
    if (napi_get_reference_value(env, d->obj, &obj) != napi_ok ||
        napi_get_reference_value(env, d->restore, &fn) != napi_ok ||
        napi_create_buffer_copy(env, state_len, state_len ? (const void *)state : "", &dst, &buf) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    s->callback_depth++;
    napi_status st = napi_call_function(env, obj, fn, 1, &buf, &result);
    s->callback_depth--;
    rc = st == napi_ok ? 0 : callback_fail_pending(env, s);
done:
    napi_close_handle_scope(env, scope);
    return rc;
}

/* Wrap a daemon object returned by a factory; on failure an exception is
 * pending and NULL is returned. */
static js_daemon *js_daemon_new(napi_env env, addon_state *s, napi_value obj,
                                net_mesh_daemon_vtable *vt) {
    napi_valuetype t;
    if (napi_typeof(env, obj, &t) != napi_ok)
        return NULL;
    if (t != napi_object && t != napi_function) {
        napi_throw_type_error(env, NULL, "net-mesh: a factory must return a daemon object with a process(event) method");
        return NULL;
    }
    js_daemon *d = calloc(1, sizeof *d);
    if (d == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    d->s = s;
    if (optional_method(env, obj, "process", &d->process) || optional_method(env, obj, "snapshot", &d->snapshot) ||
        optional_method(env, obj, "restore", &d->restore) || napi_create_reference(env, obj, 1, &d->obj) != napi_ok) {
        goto fail;
    }
    if (d->process == NULL) {
        napi_throw_type_error(env, NULL, "net-mesh: a daemon needs a process(event) method");
        goto fail;
    }
    vt->process = js_daemon_process;
    vt->snapshot = d->snapshot ? js_daemon_snapshot : NULL;
    vt->restore = d->restore ? js_daemon_restore : NULL;
    vt->finalize = js_daemon_finalize;
    atomic_fetch_add(&s->refs, 1);
    return d;
fail:
    if (d->obj) napi_delete_reference(env, d->obj);
    if (d->process) napi_delete_reference(env, d->process);
    if (d->snapshot) napi_delete_reference(env, d->snapshot);
    if (d->restore) napi_delete_reference(env, d->restore);
    free(d);
    return NULL;
}

static int js_factory_create(void *ud, net_mesh_daemon_vtable *vt, void **daemon_out) {
    js_factory *f = ud;
    addon_state *s = f->s;
    if (callback_enter(s))
        return 1;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    int rc = 1;
    napi_value fn, undef, obj;
    napi_get_undefined(env, &undef);
    if (napi_get_reference_value(env, f->fn, &fn) != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    s->callback_depth++;
    napi_status st = napi_call_function(env, undef, fn, 0, NULL, &obj);
    s->callback_depth--;
    if (st != napi_ok) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    js_daemon *d = js_daemon_new(env, s, obj, vt);
    if (d == NULL) {
        rc = callback_fail_pending(env, s);
        goto done;
    }
    *daemon_out = d;
    rc = 0;
done:
    napi_close_handle_scope(env, scope);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The executor: library tasks run on the JS thread                    */
/* ------------------------------------------------------------------ */

/* Called on library threads (or the JS thread, e.g. submit). Never blocks:
 * queue and wake. Once the environment is closing the task runs right here;
 * its JS callbacks then fail fast (callback_enter). */
static void executor_post(void *ud, net_mesh_task *task) {
    addon_state *s = ud;
    task_item *it = malloc(sizeof *it);
    pthread_mutex_lock(&s->mu);
    if (s->tsfn_open && it != NULL) {
        it->task = task;
        it->next = NULL;
        if (s->tasks_tail)
            s->tasks_tail->next = it;
        else
            s->tasks_head = it;
        s->tasks_tail = it;
        wake_locked(s);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    free(it);
    net_mesh_task_run(task);
}

static void state_finalize(void *ud) { state_unref(ud); }

static void run_tasks(addon_state *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        task_item *it = s->tasks_head;
        if (it) {
            s->tasks_head = it->next;
            if (s->tasks_head == NULL)
                s->tasks_tail = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (it == NULL)
            return;
        net_mesh_task_run(it->task);
        free(it);
    }
}

/* ------------------------------------------------------------------ */
/* Migration notifications: library threads → the JS thread            */
/* ------------------------------------------------------------------ */

/*
 * One per migration handle: the JS notify(kind, ...) function of its
 * MigrationHandle. Reference-counted: one per installed library callback
 * (progress, complete; dropped by their finalizers, which may run on any
 * thread) plus one per queued note. The napi_ref keeps the MigrationHandle
 * alive until the migration has ended, so its events arrive even if the
 * program dropped it.
 */
typedef struct mig_watch {
    addon_state *s;
    napi_ref fn;
    atomic_int refs;
} mig_watch;

enum { NOTE_PROGRESS = 1, NOTE_COMPLETE = 2 };

static void watch_unref(mig_watch *w) {
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        addon_state *s = w->s;
        release_ref(s, w->fn);
        free(w);
        state_unref(s);
    }
}

static void watch_finalize(void *ud) { watch_unref(ud); }

/* Queue a note and wake the JS thread; dropped once the environment is gone. */
static void note_post(mig_watch *w, int kind, int a, uint64_t v0, uint64_t v1, uint64_t v2, uint64_t v3) {
    addon_state *s = w->s;
    note_item *it = malloc(sizeof *it);
    if (it == NULL)
        return;
    it->w = w;
    it->kind = kind;
    it->phase_or_status = a;
    it->v[0] = v0;
    it->v[1] = v1;
    it->v[2] = v2;
    it->v[3] = v3;
    it->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (!s->tsfn_open) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        return;
    }
    atomic_fetch_add(&w->refs, 1);
    if (s->notes_tail)
        s->notes_tail->next = it;
    else
        s->notes_head = it;
    s->notes_tail = it;
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_mig_progress(void *ud, int phase, uint64_t bytes, uint64_t total, uint64_t chunks,
                            uint64_t total_chunks) {
    note_post(ud, NOTE_PROGRESS, phase, bytes, total, chunks, total_chunks);
}

static void on_mig_complete(void *ud, int status) { note_post(ud, NOTE_COMPLETE, status, 0, 0, 0, 0); }

static void loop_ref(addon_state *s, int delta);

/* On the JS thread: notify('progress', phase, bytes, total, chunks, totalChunks)
 * or notify('complete', status). A listener that throws is an uncaught
 * exception, as from any EventEmitter. */
static void run_notes(addon_state *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        note_item *it = s->notes_head;
        if (it) {
            s->notes_head = it->next;
            if (s->notes_head == NULL)
                s->notes_tail = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (it == NULL)
            return;
        mig_watch *w = it->w;
        if (atomic_load(&s->alive)) {
            napi_env env = s->env;
            napi_handle_scope scope;
            napi_open_handle_scope(env, &scope);
            napi_value fn, undef, argv[6], r;
            size_t argc = 0;
            napi_get_undefined(env, &undef);
            if (it->kind == NOTE_COMPLETE) {
                loop_ref(s, -1);
                napi_create_string_utf8(env, "complete", NAPI_AUTO_LENGTH, &argv[0]);
                napi_create_int32(env, it->phase_or_status, &argv[1]);
                argc = 2;
            } else {
                napi_create_string_utf8(env, "progress", NAPI_AUTO_LENGTH, &argv[0]);
                napi_create_int32(env, it->phase_or_status, &argv[1]);
                for (int i = 0; i < 4; i++)
                    napi_create_bigint_uint64(env, it->v[i], &argv[2 + i]);
                argc = 6;
            }
            if (napi_get_reference_value(env, w->fn, &fn) == napi_ok && fn != NULL &&
                napi_call_function(env, undef, fn, argc, argv, &r) != napi_ok) {
                napi_value err;
                if (napi_get_and_clear_last_exception(env, &err) == napi_ok)
                    napi_fatal_exception(env, err);
            }
            napi_close_handle_scope(env, scope);
        }
        free(it);
        watch_unref(w);
    }
}

/* ------------------------------------------------------------------ */
/* Output sink: outputs nobody waits for (replay, a resumed source)     */
/* ------------------------------------------------------------------ */

typedef struct sink_ctx {
    addon_state *s;
    napi_ref fn;
} sink_ctx;

static void sink_finalize(void *ud) {
    sink_ctx *c = ud;
    addon_state *s = c->s;
    release_ref(s, c->fn);
    free(c);
    state_unref(s);
}

/* Output events as a flat array: originHash, sequence, parentHash, horizon,
 * payload per event (lib/runtime.js shapes it). */
static napi_status events_flat(napi_env env, const net_mesh_event_list *out, napi_value *arr) {
    napi_status st = napi_create_array_with_length(env, out->len * 5, arr);
    for (size_t i = 0; st == napi_ok && i < out->len; i++) {
        const net_mesh_event *e = &out->events[i];
        napi_value v[5];
        void *dst;
        uint32_t at = (uint32_t)(i * 5);
        if ((st = napi_create_bigint_uint64(env, e->link.origin_hash, &v[0])) != napi_ok ||
            (st = napi_create_bigint_uint64(env, e->link.sequence, &v[1])) != napi_ok ||
            (st = napi_create_bigint_uint64(env, e->link.parent_hash, &v[2])) != napi_ok ||
            (st = napi_create_bigint_uint64(env, e->link.horizon, &v[3])) != napi_ok ||
            (st = napi_create_buffer_copy(env, e->payload_len, e->payload_len ? (const void *)e->payload : "",
                                          &dst, &v[4])) != napi_ok)
            break;
        for (uint32_t j = 0; st == napi_ok && j < 5; j++)
            st = napi_set_element(env, *arr, at + j, v[j]);
    }
    return st;
}

/* Runs where the events were processed: with our executor, the JS thread
 * (inside a task). Anywhere else the environment is gone: dropped. */
static void on_sink(void *ud, uint64_t origin, const net_mesh_event_list *outs) {
    sink_ctx *c = ud;
    addon_state *s = c->s;
    if (!on_js_thread(s) || outs == NULL || outs->len == 0)
        return;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value fn, undef, argv[2], r;
    napi_get_undefined(env, &undef);
    if (napi_get_reference_value(env, c->fn, &fn) == napi_ok && fn != NULL &&
        napi_create_bigint_uint64(env, origin, &argv[0]) == napi_ok && events_flat(env, outs, &argv[1]) == napi_ok) {
        s->callback_depth++;
        napi_status st = napi_call_function(env, undef, fn, 2, argv, &r);
        s->callback_depth--;
        if (st != napi_ok) {
            napi_value err;
            if (napi_get_and_clear_last_exception(env, &err) == napi_ok)
                napi_fatal_exception(env, err);
        }
    }
    napi_close_handle_scope(env, scope);
}

/* ------------------------------------------------------------------ */
/* Promises: blocking calls on libuv's pool                            */
/* ------------------------------------------------------------------ */

enum op_kind { OP_START, OP_SHUTDOWN, OP_NODE_NEW, OP_NODE_CONNECT, OP_NODE_CLOSE, OP_MIG_CANCEL };

typedef struct async_op {
    enum op_kind kind;
    napi_async_work work;
    napi_deferred deferred;
    napi_ref keep[2]; /* JS values the call borrows (handles), kept alive */
    void *h;
    void *h2;
    int rc;
    nm_failure fail;
    /* arguments */
    char *str;
    uint8_t key[32];
    int has_key;
    uint64_t u64;
    uint32_t u32;
    net_mesh_node_options opts;
    /* results */
    void *out;
} async_op;

static void op_execute(napi_env env, void *data) {
    (void)env;
    async_op *op = data;
    switch (op->kind) {
    case OP_START:
        op->rc = net_mesh_runtime_start(op->h);
        break;
    case OP_SHUTDOWN:
        op->rc = net_mesh_runtime_shutdown(op->h, op->u32);
        break;
    case OP_NODE_NEW:
        op->opts.bind_addr = op->str;
        op->opts.psk = op->has_key ? op->key : NULL;
        op->opts.identity = op->h;
        op->rc = net_mesh_node_new(&op->opts, (net_mesh_node **)&op->out);
        break;
    case OP_NODE_CONNECT:
        op->rc = net_mesh_node_connect(op->h, op->str, op->key, op->u64, op->u32);
        break;
    case OP_NODE_CLOSE:
        op->rc = net_mesh_node_close(op->h);
        break;
    case OP_MIG_CANCEL:
        op->rc = net_mesh_migration_cancel(op->h); /* bounded at 5 s by the library */
        break;
    }
    if (op->rc != NET_MESH_OK)
        failure_capture(&op->fail, op->rc);
}

static void op_complete(napi_env env, napi_status status, void *data) {
    async_op *op = data;
    addon_state *s = state_of(env);
    napi_value result = NULL;
    if (status == napi_cancelled) {
        failure_set(&op->fail, NET_MESH_ERR_INTERNAL, "net-mesh: operation cancelled");
        op->rc = NET_MESH_ERR_INTERNAL;
    }
    if (op->rc == NET_MESH_OK) {
        switch (op->kind) {
        case OP_NODE_NEW:
            result = box_new(env, BOX_NODE, op->out);
            if (result != NULL && s != NULL) {
                void *data_ = NULL;
                napi_get_value_external(env, result, &data_);
                box_link(s, data_);
            }
            break;
        case OP_NODE_CLOSE: {
            /* Closed on the pool; release the handle here, where the box lives. */
            void *data_ = NULL;
            napi_value ext;
            if (napi_get_reference_value(env, op->keep[0], &ext) == napi_ok &&
                napi_get_value_external(env, ext, &data_) == napi_ok && data_ != NULL)
                box_free_handle(data_);
            napi_get_undefined(env, &result);
            break;
        }
        case OP_START:
        case OP_SHUTDOWN: {
            void *data_ = NULL;
            napi_value ext;
            if (napi_get_reference_value(env, op->keep[0], &ext) == napi_ok &&
                napi_get_value_external(env, ext, &data_) == napi_ok && data_ != NULL) {
                box *b = data_;
                runtime_ref(b, op->kind == OP_START && !b->no_ref);
            }
            napi_get_undefined(env, &result);
            break;
        }
        default:
            napi_get_undefined(env, &result);
        }
        if (result == NULL) {
            napi_value err;
            napi_get_and_clear_last_exception(env, &err);
            napi_reject_deferred(env, op->deferred, err);
        } else {
            napi_resolve_deferred(env, op->deferred, result);
        }
    } else {
        if (op->kind == OP_SHUTDOWN) {
            void *data_ = NULL;
            napi_value ext;
            if (napi_get_reference_value(env, op->keep[0], &ext) == napi_ok &&
                napi_get_value_external(env, ext, &data_) == napi_ok && data_ != NULL)
                runtime_ref(data_, 0);
        }
        napi_value err = failure_to_js(env, &op->fail, NULL);
        if (err == NULL)
            napi_get_and_clear_last_exception(env, &err);
        napi_reject_deferred(env, op->deferred, err);
    }
    for (int i = 0; i < 2; i++)
        if (op->keep[i])
            napi_delete_reference(env, op->keep[i]);
    napi_delete_async_work(env, op->work);
    free(op->str);
    memset(op->key, 0, sizeof op->key);
    free(op);
    if (s != NULL)
        drain_releases(s);
}

/* Queue op; returns its Promise (op is owned by the work from here on). */
static napi_value op_queue(napi_env env, async_op *op, const char *name) {
    napi_value promise, res_name;
    if (napi_create_promise(env, &op->deferred, &promise) != napi_ok ||
        napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &res_name) != napi_ok ||
        napi_create_async_work(env, NULL, res_name, op_execute, op_complete, op, &op->work) != napi_ok ||
        napi_queue_async_work(env, op->work) != napi_ok) {
        throw_napi(env, napi_generic_failure, "napi async work");
        return NULL; /* a leaked op on this path is an N-API failure already */
    }
    return promise;
}

static async_op *op_new(napi_env env, enum op_kind kind) {
    async_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
    else
        op->kind = kind;
    return op;
}

static void op_abandon(napi_env env, async_op *op) {
    for (int i = 0; i < 2; i++)
        if (op->keep[i])
            napi_delete_reference(env, op->keep[i]);
    free(op->str);
    free(op);
}

/* ------------------------------------------------------------------ */
/* Node                                                                */
/* ------------------------------------------------------------------ */

static int get_u32_opt(napi_env env, napi_value obj, const char *name, uint32_t *out) {
    napi_value v;
    napi_valuetype t;
    NAPI_CHECK(env, napi_get_named_property(env, obj, name, &v));
    NAPI_CHECK(env, napi_typeof(env, v, &t));
    if (t == napi_undefined)
        return 0;
    uint64_t x;
    if (get_u64(env, v, name, &x))
        return -1;
    if (x > UINT32_MAX) {
        char msg[120];
        snprintf(msg, sizeof msg, "net-mesh: %s must be at most %u", name, UINT32_MAX);
        throw_invalid(env, msg);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

/* nodeNew(bind: string|undefined, psk: bytes|undefined, identity: handle|undefined,
 *         { heartbeatMs, sessionTimeoutMs, connectTimeoutMs, membershipTimeoutMs }) → Promise<handle> */
static napi_value js_node_new(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    napi_valuetype t;
    if (get_args(env, info, 4, argv, NULL))
        return NULL;
    async_op *op = op_new(env, OP_NODE_NEW);
    if (op == NULL)
        return NULL;
    net_mesh_node_options_init(&op->opts);
    NAPI_CALL(env, napi_typeof(env, argv[0], &t));
    if (t != napi_undefined && (op->str = get_string(env, argv[0], "bind")) == NULL)
        goto fail;
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined) {
        const uint8_t *p;
        size_t n;
        if (get_bytes(env, argv[1], "psk", &p, &n))
            goto fail;
        if (n != 32) {
            throw_invalid(env, "net-mesh: psk must be 32 bytes");
            goto fail;
        }
        memcpy(op->key, p, 32);
        op->has_key = 1;
    }
    NAPI_CALL(env, napi_typeof(env, argv[2], &t));
    if (t != napi_undefined) {
        box *b = get_box(env, argv[2], BOX_IDENTITY, 1);
        if (b == NULL)
            goto fail;
        op->h = b->h;
        if (napi_create_reference(env, argv[2], 1, &op->keep[0]) != napi_ok)
            goto fail;
    }
    NAPI_CALL(env, napi_typeof(env, argv[3], &t));
    if (t == napi_object) {
        if (get_u32_opt(env, argv[3], "heartbeatMs", &op->opts.heartbeat_interval_ms) ||
            get_u32_opt(env, argv[3], "sessionTimeoutMs", &op->opts.session_timeout_ms) ||
            get_u32_opt(env, argv[3], "connectTimeoutMs", &op->opts.connect_timeout_ms) ||
            get_u32_opt(env, argv[3], "membershipTimeoutMs", &op->opts.membership_timeout_ms))
            goto fail;
    }
    return op_queue(env, op, "net-mesh:Node.create");
fail:
    op_abandon(env, op);
    return NULL;
}

/* nodeInfo(h) → [addr: string, nodeId: bigint, publicKey: Buffer] */
static napi_value js_node_info(napi_env env, napi_callback_info info) {
    napi_value argv[1], arr, v;
    net_mesh_bytes addr = {0};
    uint64_t id;
    uint8_t pk[32];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_NODE, 1);
    if (b == NULL)
        return NULL;
    NM_CALL(env, net_mesh_node_id(b->h, &id));
    NM_CALL(env, net_mesh_node_public_key(b->h, pk));
    NM_CALL(env, net_mesh_node_addr(b->h, &addr));
    napi_status st = napi_create_string_utf8(env, (const char *)addr.data, addr.len, &v);
    net_mesh_bytes_free(&addr);
    NAPI_CALL(env, st);
    NAPI_CALL(env, napi_create_array_with_length(env, 3, &arr));
    NAPI_CALL(env, napi_set_element(env, arr, 0, v));
    if ((v = make_u64(env, id)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 1, v));
    if ((v = make_buffer(env, pk, 32)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 2, v));
    return arr;
}

/* nodeConnect(h, addr, publicKey, nodeId, timeoutMs) → Promise<void> */
static napi_value js_node_connect(napi_env env, napi_callback_info info) {
    napi_value argv[5];
    napi_valuetype t;
    if (get_args(env, info, 5, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_NODE, 1);
    if (b == NULL)
        return NULL;
    async_op *op = op_new(env, OP_NODE_CONNECT);
    if (op == NULL)
        return NULL;
    op->h = b->h;
    const uint8_t *pk;
    size_t n;
    if ((op->str = get_string(env, argv[1], "addr")) == NULL || get_bytes(env, argv[2], "publicKey", &pk, &n))
        goto fail;
    if (n != 32) {
        throw_invalid(env, "net-mesh: publicKey must be 32 bytes");
        goto fail;
    }
    memcpy(op->key, pk, 32);
    if (get_u64(env, argv[3], "nodeId", &op->u64))
        goto fail;
    NAPI_CALL(env, napi_typeof(env, argv[4], &t));
    if (t != napi_undefined) {
        uint64_t ms;
        if (get_u64(env, argv[4], "timeoutMs", &ms))
            goto fail;
        op->u32 = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    }
    if (napi_create_reference(env, argv[0], 1, &op->keep[0]) != napi_ok)
        goto fail;
    return op_queue(env, op, "net-mesh:Node.connect");
fail:
    op_abandon(env, op);
    return NULL;
}

static napi_value js_node_accept(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    uint64_t id;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_NODE, 1);
    if (b == NULL || get_u64(env, argv[1], "nodeId", &id))
        return NULL;
    NM_CALL(env, net_mesh_node_accept(b->h, id));
    return make_undefined(env);
}

/* nodeClose(h) → Promise<void>: closed on the pool, released on the JS thread. */
static napi_value js_node_close(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_NODE, 0);
    if (b == NULL)
        return NULL;
    async_op *op = op_new(env, OP_NODE_CLOSE);
    if (op == NULL)
        return NULL;
    op->h = b->h; /* NULL (already closed) gives BAD_HANDLE... */
    if (b->h == NULL) {
        /* ...but closing twice is a no-op. */
        op_abandon(env, op);
        napi_value p;
        napi_deferred dfd;
        NAPI_CALL(env, napi_create_promise(env, &dfd, &p));
        napi_resolve_deferred(env, dfd, make_undefined(env));
        return p;
    }
    if (napi_create_reference(env, argv[0], 1, &op->keep[0]) != napi_ok) {
        op_abandon(env, op);
        return NULL;
    }
    return op_queue(env, op, "net-mesh:Node.close");
}

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

/*
 * A started runtime is a server: work can arrive from the network at any
 * time (a migration), so it keeps the event loop alive like a listening
 * socket, until shutdown or unref(). The wake-up threadsafe function carries
 * that reference.
 */
static void loop_ref(addon_state *s, int delta) {
    if (!atomic_load(&s->alive))
        return;
    int before = s->js_refs;
    s->js_refs += delta;
    if (before == 0 && s->js_refs > 0)
        napi_ref_threadsafe_function(s->env, s->tsfn);
    else if (before > 0 && s->js_refs == 0)
        napi_unref_threadsafe_function(s->env, s->tsfn);
}

static void runtime_ref(box *b, int on) {
    addon_state *s = b->s;
    if (s == NULL || !atomic_load(&s->alive) || (b->refd != 0) == (on != 0))
        return;
    b->refd = on;
    loop_ref(s, on ? 1 : -1);
}

/* runtimeRef(h, on): whether this runtime (once started) keeps the loop alive. */
static napi_value js_runtime_ref(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    bool on;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_RUNTIME, 0);
    if (b == NULL)
        return NULL;
    NAPI_CALL(env, napi_get_value_bool(env, argv[1], &on));
    b->no_ref = !on;
    int ready = 0;
    if (b->h != NULL)
        net_mesh_runtime_is_ready(b->h, &ready);
    runtime_ref(b, on && ready);
    return make_undefined(env);
}

/* runtimeNew(nodeHandle, workers, queueSize) → handle, with the JS-thread executor installed. */
static napi_value js_runtime_new(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    addon_state *s = state_of(env);
    if (get_args(env, info, 3, argv, NULL))
        return NULL;
    box *nb = get_box(env, argv[0], BOX_NODE, 1);
    if (nb == NULL)
        return NULL;
    net_mesh_runtime_options opts;
    net_mesh_runtime_options_init(&opts);
    uint64_t x;
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined) {
        if (get_u64(env, argv[1], "workers", &x))
            return NULL;
        opts.workers = x > 1024 ? 1024 : (uint32_t)x;
    }
    NAPI_CALL(env, napi_typeof(env, argv[2], &t));
    if (t != napi_undefined) {
        if (get_u64(env, argv[2], "queueSize", &x))
            return NULL;
        opts.queue_size = x > (1u << 20) ? (1u << 20) : (uint32_t)x;
    }
    net_mesh_runtime *rt = NULL;
    NM_CALL(env, net_mesh_runtime_new(nb->h, &opts, &rt));
    atomic_fetch_add(&s->refs, 1);
    int rc = net_mesh_runtime_set_executor(rt, executor_post, s, state_finalize);
    if (rc != NET_MESH_OK) {
        throw_status(env, rc);
        net_mesh_runtime_free(rt);
        return NULL;
    }
    napi_value ext = box_new(env, BOX_RUNTIME, rt);
    if (ext != NULL) {
        void *data = NULL;
        napi_get_value_external(env, ext, &data);
        box_link(s, data);
    }
    return ext;
}

static box *runtime_arg(napi_env env, napi_value v) { return get_box(env, v, BOX_RUNTIME, 1); }

/* registerFactory(h, kind, fn) */
static napi_value js_register_factory(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    napi_valuetype t;
    addon_state *s = state_of(env);
    if (get_args(env, info, 3, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    NAPI_CALL(env, napi_typeof(env, argv[2], &t));
    if (t != napi_function) {
        throw_invalid(env, "net-mesh: a factory must be a function returning a daemon");
        return NULL;
    }
    char *kind = get_string(env, argv[1], "kind");
    if (kind == NULL)
        return NULL;
    js_factory *f = calloc(1, sizeof *f);
    if (f == NULL || napi_create_reference(env, argv[2], 1, &f->fn) != napi_ok) {
        free(f);
        free(kind);
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    f->s = s;
    atomic_fetch_add(&s->refs, 1);
    net_mesh_factory fac;
    net_mesh_factory_init(&fac);
    fac.create = js_factory_create;
    fac.finalize = js_factory_finalize;
    int rc = net_mesh_runtime_register_factory(b->h, kind, &fac, f); /* f consumed */
    free(kind);
    NM_CALL(env, rc);
    return make_undefined(env);
}

static napi_value js_runtime_start(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    async_op *op = op_new(env, OP_START);
    if (op == NULL)
        return NULL;
    op->h = b->h;
    if (napi_create_reference(env, argv[0], 1, &op->keep[0]) != napi_ok) {
        op_abandon(env, op);
        return NULL;
    }
    return op_queue(env, op, "net-mesh:DaemonRuntime.start");
}

/* runtimeShutdown(h, timeoutMs) → Promise<void>; a closed runtime resolves. */
static napi_value js_runtime_shutdown(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    napi_valuetype t;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_RUNTIME, 0);
    if (b == NULL)
        return NULL;
    async_op *op = op_new(env, OP_SHUTDOWN);
    if (op == NULL)
        return NULL;
    op->h = b->h;
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined) {
        uint64_t ms;
        if (get_u64(env, argv[1], "timeoutMs", &ms)) {
            op_abandon(env, op);
            return NULL;
        }
        op->u32 = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    }
    if (b->h == NULL) {
        op_abandon(env, op);
        napi_value p;
        napi_deferred dfd;
        NAPI_CALL(env, napi_create_promise(env, &dfd, &p));
        napi_resolve_deferred(env, dfd, make_undefined(env));
        return p;
    }
    if (napi_create_reference(env, argv[0], 1, &op->keep[0]) != napi_ok) {
        op_abandon(env, op);
        return NULL;
    }
    return op_queue(env, op, "net-mesh:DaemonRuntime.shutdown");
}

static napi_value js_runtime_is_ready(napi_env env, napi_callback_info info) {
    napi_value argv[1], out;
    int ready = 0;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_RUNTIME, 0);
    if (b == NULL)
        return NULL;
    if (b->h != NULL)
        NM_CALL(env, net_mesh_runtime_is_ready(b->h, &ready));
    NAPI_CALL(env, napi_get_boolean(env, ready != 0, &out));
    return out;
}

static napi_value js_runtime_daemon_count(napi_env env, napi_callback_info info) {
    napi_value argv[1], out;
    uint64_t n = 0;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_RUNTIME, 0);
    if (b == NULL)
        return NULL;
    if (b->h != NULL)
        NM_CALL(env, net_mesh_runtime_daemon_count(b->h, &n));
    NAPI_CALL(env, napi_create_double(env, (double)n, &out));
    return out;
}

/* The optional config object: { autoSnapshotInterval }. Returns the config
 * to pass (NULL for defaults) or sets *err. */
static const net_mesh_daemon_config *get_config(napi_env env, napi_value v, net_mesh_daemon_config *cfg,
                                                int *err) {
    napi_valuetype t;
    *err = 0;
    if (napi_typeof(env, v, &t) != napi_ok) {
        *err = 1;
        return NULL;
    }
    if (t == napi_undefined || t == napi_null)
        return NULL;
    if (t != napi_object) {
        throw_invalid(env, "net-mesh: config must be an object");
        *err = 1;
        return NULL;
    }
    net_mesh_daemon_config_init(cfg);
    napi_value x;
    if (napi_get_named_property(env, v, "autoSnapshotInterval", &x) != napi_ok ||
        napi_typeof(env, x, &t) != napi_ok) {
        *err = 1;
        return NULL;
    }
    if (t != napi_undefined && get_u64(env, x, "autoSnapshotInterval", &cfg->auto_snapshot_interval)) {
        *err = 1;
        return NULL;
    }
    return cfg;
}

/* Before a call that may run JS callbacks: forget a stale original error. */
static void begin_callbacks(napi_env env, addon_state *s) {
    if (s->callback_depth == 0)
        clear_cause(env, s);
}

static napi_value daemon_box(napi_env env, net_mesh_daemon *d) { return box_new(env, BOX_DAEMON, d); }

/* spawn(h, kind, identity, config) → daemon handle */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    addon_state *s = state_of(env);
    net_mesh_daemon_config cfg;
    int err;
    if (get_args(env, info, 4, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    box *id = get_box(env, argv[2], BOX_IDENTITY, 1);
    if (id == NULL)
        return NULL;
    const net_mesh_daemon_config *c = get_config(env, argv[3], &cfg, &err);
    if (err)
        return NULL;
    char *kind = get_string(env, argv[1], "kind");
    if (kind == NULL)
        return NULL;
    net_mesh_daemon *d = NULL;
    begin_callbacks(env, s);
    int rc = net_mesh_runtime_spawn(b->h, kind, id->h, c, &d);
    free(kind);
    NM_CALL(env, rc);
    return daemon_box(env, d);
}

/* spawnFromSnapshot(h, kind, identity, bytes, config) → daemon handle */
static napi_value js_spawn_from_snapshot(napi_env env, napi_callback_info info) {
    napi_value argv[5];
    addon_state *s = state_of(env);
    net_mesh_daemon_config cfg;
    int err;
    const uint8_t *snap;
    size_t len;
    if (get_args(env, info, 5, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    box *id = get_box(env, argv[2], BOX_IDENTITY, 1);
    if (id == NULL || get_bytes(env, argv[3], "snapshot", &snap, &len))
        return NULL;
    const net_mesh_daemon_config *c = get_config(env, argv[4], &cfg, &err);
    if (err)
        return NULL;
    char *kind = get_string(env, argv[1], "kind");
    if (kind == NULL)
        return NULL;
    net_mesh_daemon *d = NULL;
    begin_callbacks(env, s);
    int rc = net_mesh_runtime_spawn_from_snapshot(b->h, kind, id->h, snap, len, c, &d);
    free(kind);
    NM_CALL(env, rc);
    return daemon_box(env, d);
}

/* ------------------------------------------------------------------ */
/* Deliver: JS calls the daemon itself                                 */
/* ------------------------------------------------------------------ */

/*
 * deliver() in lib/runtime.js is host-driven: deliverBegin leases the
 * daemon (the library locks its host and hands back our js_daemon), JS
 * calls the daemon's process() as a plain JS call, and deliverCommit hands
 * the outputs to the library (or deliverAbort reports the failure). Between
 * begin and commit/abort the daemon's host stays locked, so:
 *  - every begin is closed exactly once, by the JS wrapper (try/catch), or
 *    by the environment cleanup hook for a JS thread that was terminated
 *    inside process() (leases_abort_all);
 *  - leases close in reverse order (JS is synchronous: a delivery made from
 *    inside process() is closed before process() returns), so the open
 *    leases are a stack and commit/abort take the innermost one;
 *  - the self-deliver guard (a call_frame per lease) refuses a daemon that
 *    delivers to or snapshots itself, which would wait on its own lock.
 */
typedef struct lease {
    call_frame frame; /* frame.b: the runtime's box, frame.origin */
    net_mesh_runtime *rt;
    uint64_t ticket;
    struct lease *next;
} lease;

static void lease_pop(addon_state *s, lease *l) {
    s->leases = l->next;
    frame_leave(s, &l->frame);
    l->next = s->spare;
    s->spare = l;
}

/* Close every open lease (the environment is going away with JS frames
 * that never returned). */
static void leases_abort_all(addon_state *s) {
    while (s->leases != NULL) {
        lease *l = s->leases;
        net_mesh_runtime_deliver_abort(l->rt, l->frame.origin, l->ticket,
                                       "net-mesh: the JavaScript environment ended inside process()");
        s->leases = l->next;
        free(l);
    }
    s->frames = NULL;
    while (s->spare != NULL) {
        lease *l = s->spare;
        s->spare = l->next;
        free(l);
    }
    free(s->rec);
    s->rec = NULL;
    s->rec_cap = 0;
}

/* deliverBegin(h, origin, eventOrigin, sequence, payload) → the daemon's
 * adapter object (its .daemon is the user's object), or undefined when the
 * event was queued behind a migration (nothing to run, no lease). */
static napi_value js_deliver_begin(napi_env env, napi_callback_info info) {
    napi_value argv[5], obj;
    size_t argc = 5;
    void *data = NULL;
    uint64_t origin;
    net_mesh_event ev;
    memset(&ev, 0, sizeof ev);
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
    addon_state *s = data; /* registered with the function (see the module init) */
    if (argc < 5) {
        throw_invalid(env, "net-mesh: deliver needs 5 arguments");
        return NULL;
    }
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[1], "origin", &origin) ||
        get_u64(env, argv[2], "event.originHash", &ev.link.origin_hash) ||
        get_u64(env, argv[3], "event.sequence", &ev.link.sequence) ||
        get_bytes(env, argv[4], "event.payload", &ev.payload, &ev.payload_len))
        return NULL;
    lease *l = s->spare;
    if (l != NULL) {
        s->spare = l->next;
    } else if ((l = malloc(sizeof *l)) == NULL) {
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    if (frame_enter(env, s, &l->frame, b, origin, "deliver to")) {
        l->next = s->spare;
        s->spare = l;
        return NULL;
    }
    void *ud = NULL;
    uint64_t ticket = 0;
    int rc = net_mesh_runtime_deliver_begin(b->h, origin, &ev, &ticket, &ud);
    if (rc != NET_MESH_OK || ticket == 0) {
        frame_leave(s, &l->frame);
        l->next = s->spare;
        s->spare = l;
        if (rc != NET_MESH_OK) {
            throw_status(env, rc);
            return NULL;
        }
        return NULL; /* queued: undefined */
    }
    l->rt = b->h;
    l->ticket = ticket;
    l->next = s->leases;
    s->leases = l;
    js_daemon *d = ud;
    if (d == NULL || d->s != s || napi_get_reference_value(env, d->obj, &obj) != napi_ok) {
        net_mesh_runtime_deliver_abort(l->rt, origin, ticket, "net-mesh: the daemon does not belong to this JavaScript environment");
        lease_pop(s, l);
        nm_failure f;
        failure_set(&f, NET_MESH_ERR_INTERNAL, "net-mesh: the daemon does not belong to this JavaScript environment");
        throw_failure(env, &f);
        return NULL;
    }
    return obj;
}

/* openLeases() → the number of deliveries begun and not yet closed on this
 * thread (tests: 0 whenever no deliver() is on the stack). */
static napi_value js_open_leases(napi_env env, napi_callback_info info) {
    void *data = NULL;
    napi_value out;
    size_t argc = 0;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, NULL, NULL, &data));
    uint32_t n = 0;
    for (lease *l = ((addon_state *)data)->leases; l != NULL; l = l->next)
        n++;
    NAPI_CALL(env, napi_create_uint32(env, n, &out));
    return out;
}

/* A byte-typed array's memory, else -1. */
static int output_bytes(napi_env env, napi_value v, const uint8_t **p, size_t *n) {
    napi_typedarray_type type;
    size_t off;
    void *data = NULL;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, n, &data, &ab, &off) != napi_ok ||
        (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array))
        return -1;
    *p = data;
    return 0;
}

/* A growable record buffer: the state's own, or a private one for a commit
 * nested in another (see committing). */
typedef struct recbuf {
    uint8_t *p;
    size_t cap, len;
} recbuf;

/* Append one record ([u64 LE length][bytes]). */
static int rec_push(recbuf *r, const uint8_t *p, size_t n) {
    size_t need = r->len + 8 + n;
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *q = realloc(r->p, cap);
        if (q == NULL)
            return -1;
        r->p = q;
        r->cap = cap;
    }
    uint64_t len = n;
    for (int i = 0; i < 8; i++)
        r->p[r->len + i] = (uint8_t)(len >> (8 * i));
    if (n)
        memcpy(r->p + r->len + 8, p, n);
    r->len = need;
    return 0;
}

/* Abort the innermost lease: process() failed with cause (what it threw, or
 * the TypeError for a bad result; NULL: what says why). Returns the
 * PROCESS_FAILED NetMeshError to throw, cause attached (NULL if even that
 * failed: an exception is pending). */
static napi_value lease_fail(napi_env env, addon_state *s, napi_value cause, const char *why) {
    char text[900], msg[1024];
    snprintf(text, sizeof text, "%s", why);
    napi_value str;
    size_t n;
    if (cause != NULL) {
        if (napi_coerce_to_string(env, cause, &str) == napi_ok) {
            napi_get_value_string_utf8(env, str, text, sizeof text, &n);
        } else {
            napi_value ignored; /* e.g. a Symbol, or a toString that throws */
            napi_get_and_clear_last_exception(env, &ignored);
        }
    }
    snprintf(msg, sizeof msg, "net-mesh: process() failed: %s", text);
    lease *l = s->leases;
    int rc = net_mesh_runtime_deliver_abort(l->rt, l->frame.origin, l->ticket, msg);
    lease_pop(s, l);
    nm_failure f;
    if (rc != NET_MESH_OK)
        failure_capture(&f, rc); /* e.g. the runtime was freed meanwhile */
    else
        failure_set(&f, NET_MESH_ERR_PROCESS_FAILED, msg);
    clear_cause(env, s);
    return failure_to_js(env, &f, cause);
}

#define MSG_NO_LEASE "net-mesh: no deliver is open on this thread"

/* deliverCommit(outputs) closes the innermost lease: outputs is what the
 * adapter made of process()'s result (undefined, one Uint8Array, or an
 * array checked here). Returns the number of outputs, their ids in meta
 * (sequence, parentHash, horizon, receivedAt per output); more than
 * SHARED_MAX outputs come back as a BigUint64Array of their own. */
static napi_value js_deliver_commit(napi_env env, napi_callback_info info) {
    napi_value argv[1], out;
    size_t argc = 1;
    void *data = NULL;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
    addon_state *s = data;
    lease *l = s->leases;
    if (l == NULL) {
        napi_throw_error(env, "INTERNAL", MSG_NO_LEASE);
        return NULL;
    }
    int nested = s->committing > 0;
    recbuf rb = {nested ? NULL : s->rec, nested ? 0 : s->rec_cap, 0};
    size_t count = 0;
    const uint8_t *p;
    size_t n;
    const char *fail = NULL;
    int type_error = 0; /* fail is a misuse of the result: a TypeError, as JS throws */
    napi_value cause = NULL;
    if (argc >= 1) {
        napi_valuetype t;
        if (output_bytes(env, argv[0], &p, &n) == 0) {
            if (rec_push(&rb, p, n))
                fail = "net-mesh: out of memory for the outputs";
            count = 1;
        } else if (napi_typeof(env, argv[0], &t) == napi_ok && t != napi_undefined && t != napi_null) {
            bool is_array = false;
            uint32_t len = 0;
            napi_is_array(env, argv[0], &is_array);
            if (!is_array || napi_get_array_length(env, argv[0], &len) != napi_ok) {
                fail = MSG_NOT_ARRAY;
                type_error = 1;
            }
            for (uint32_t i = 0; fail == NULL && i < len; i++) {
                napi_value item;
                bool pending = false;
                if (napi_get_element(env, argv[0], i, &item) != napi_ok) {
                    fail = MSG_NOT_BYTES;
                    type_error = 1;
                    if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
                        napi_get_and_clear_last_exception(env, &cause); /* a throwing getter */
                } else if (output_bytes(env, item, &p, &n)) {
                    fail = MSG_NOT_BYTES;
                    type_error = 1;
                } else if (rec_push(&rb, p, n)) {
                    fail = "net-mesh: out of memory for the outputs";
                }
            }
            count = len;
        }
    }
    if (!nested) {
        s->rec = rb.p;
        s->rec_cap = rb.cap;
    }
    /* Ids go to the shared meta; many outputs, or a nested commit, get an
     * array of their own. */
    uint64_t *meta = s->meta;
    size_t cap = SHARED_MAX * 4;
    napi_value big = NULL;
    if (fail == NULL && (count > SHARED_MAX || nested || meta == NULL)) {
        void *mem;
        napi_value ab;
        cap = count * 4;
        if (napi_create_arraybuffer(env, (cap ? cap : 1) * 8, &mem, &ab) != napi_ok ||
            napi_create_typedarray(env, napi_biguint64_array, cap, ab, 0, &big) != napi_ok) {
            napi_value ignored;
            napi_get_and_clear_last_exception(env, &ignored);
            fail = "net-mesh: out of memory for the outputs";
        }
        meta = mem;
    }
    if (fail != NULL) {
        if (nested)
            free(rb.p);
        if (cause == NULL && type_error) { /* a TypeError, as JS throws */
            napi_value msg;
            if (napi_create_string_utf8(env, fail, NAPI_AUTO_LENGTH, &msg) == napi_ok)
                napi_create_type_error(env, NULL, msg, &cause);
        }
        napi_value err = lease_fail(env, s, cause, fail);
        if (err != NULL)
            napi_throw(env, err);
        return NULL;
    }
    size_t n_out = 0;
    begin_callbacks(env, s);
    s->committing++;
    int rc = net_mesh_runtime_deliver_commit(l->rt, l->frame.origin, l->ticket, rb.p, rb.len, meta, cap, &n_out);
    s->committing--;
    if (nested)
        free(rb.p);
    lease_pop(s, l); /* the library ended the lease, whatever rc says */
    if (rc != NET_MESH_OK) {
        throw_status(env, rc);
        return NULL;
    }
    if (big != NULL)
        return big;
    NAPI_CALL(env, napi_create_uint32(env, (uint32_t)n_out, &out));
    return out;
}

/* deliverAbort(error) closes the innermost lease as failed: process() threw
 * error. Returns the PROCESS_FAILED NetMeshError to throw (error as .cause). */
static napi_value js_deliver_abort(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    size_t argc = 1;
    void *data = NULL;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
    addon_state *s = data;
    if (s->leases == NULL) {
        napi_throw_error(env, "INTERNAL", MSG_NO_LEASE);
        return NULL;
    }
    if (argc < 1)
        napi_get_undefined(env, &argv[0]);
    return lease_fail(env, s, argv[0], "JavaScript exception");
}

/* snapshot(h, origin) → Buffer | null */
static napi_value js_snapshot(napi_env env, napi_callback_info info) {
    napi_value argv[2], out;
    addon_state *s = state_of(env);
    uint64_t origin;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[1], "origin", &origin))
        return NULL;
    net_mesh_bytes bytes = {0};
    call_frame frame;
    if (frame_enter(env, s, &frame, b, origin, "snapshot"))
        return NULL;
    begin_callbacks(env, s);
    int rc = net_mesh_runtime_snapshot(b->h, origin, &bytes);
    frame_leave(s, &frame);
    NM_CALL(env, rc);
    if (bytes.data == NULL) {
        NAPI_CALL(env, napi_get_null(env, &out));
        return out;
    }
    out = make_buffer(env, bytes.data, bytes.len);
    net_mesh_bytes_free(&bytes);
    return out;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    addon_state *s = state_of(env);
    uint64_t origin;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[1], "origin", &origin))
        return NULL;
    begin_callbacks(env, s);
    NM_CALL(env, net_mesh_runtime_stop(b->h, origin));
    drain_releases(s);
    return make_undefined(env);
}

/* expectMigration(h, kind, origin, config) */
static napi_value js_expect_migration(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    uint64_t origin;
    net_mesh_daemon_config cfg;
    int err;
    if (get_args(env, info, 4, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[2], "origin", &origin))
        return NULL;
    const net_mesh_daemon_config *c = get_config(env, argv[3], &cfg, &err);
    if (err)
        return NULL;
    char *kind = get_string(env, argv[1], "kind");
    if (kind == NULL)
        return NULL;
    int rc = net_mesh_runtime_expect_migration(b->h, kind, origin, c);
    free(kind);
    NM_CALL(env, rc);
    return make_undefined(env);
}

/* registerMigrationTargetIdentity(h, kind, identity, config) */
static napi_value js_register_target_identity(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    net_mesh_daemon_config cfg;
    int err;
    if (get_args(env, info, 4, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    box *id = get_box(env, argv[2], BOX_IDENTITY, 1);
    if (id == NULL)
        return NULL;
    const net_mesh_daemon_config *c = get_config(env, argv[3], &cfg, &err);
    if (err)
        return NULL;
    char *kind = get_string(env, argv[1], "kind");
    if (kind == NULL)
        return NULL;
    int rc = net_mesh_runtime_register_migration_target_identity(b->h, kind, id->h, c);
    free(kind);
    NM_CALL(env, rc);
    return make_undefined(env);
}

/* daemonInfo(h) → [originHash: bigint, entityId: Buffer] */
static napi_value js_daemon_info(napi_env env, napi_callback_info info) {
    napi_value argv[1], arr, v;
    uint64_t origin;
    uint8_t eid[32];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_DAEMON, 1);
    if (b == NULL)
        return NULL;
    NM_CALL(env, net_mesh_daemon_origin_hash(b->h, &origin));
    NM_CALL(env, net_mesh_daemon_entity_id(b->h, eid));
    NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
    if ((v = make_u64(env, origin)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 0, v));
    if ((v = make_buffer(env, eid, 32)) == NULL)
        return NULL;
    NAPI_CALL(env, napi_set_element(env, arr, 1, v));
    return arr;
}

/* daemonStats(h) → [eventsProcessed, eventsEmitted, errors, snapshotsTaken] (bigint) */
static napi_value js_daemon_stats(napi_env env, napi_callback_info info) {
    napi_value argv[1], arr, v;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_DAEMON, 1);
    if (b == NULL)
        return NULL;
    net_mesh_daemon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    NM_CALL(env, net_mesh_daemon_stats_get(b->h, &st));
    uint64_t vals[4] = {st.events_processed, st.events_emitted, st.errors, st.snapshots_taken};
    NAPI_CALL(env, napi_create_array_with_length(env, 4, &arr));
    for (uint32_t i = 0; i < 4; i++) {
        if ((v = make_u64(env, vals[i])) == NULL)
            return NULL;
        NAPI_CALL(env, napi_set_element(env, arr, i, v));
    }
    return arr;
}

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

/* An i64 from a BigInt or a safe-integer Number. */
static int get_i64(napi_env env, napi_value v, const char *what, int64_t *out) {
    napi_valuetype t;
    char msg[160];
    NAPI_CHECK(env, napi_typeof(env, v, &t));
    if (t == napi_bigint) {
        bool lossless = false;
        NAPI_CHECK(env, napi_get_value_bigint_int64(env, v, out, &lossless));
        if (lossless)
            return 0;
    } else if (t == napi_number) {
        double d;
        NAPI_CHECK(env, napi_get_value_double(env, v, &d));
        if (d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == (double)(int64_t)d) {
            *out = (int64_t)d;
            return 0;
        }
    }
    snprintf(msg, sizeof msg, "net-mesh: %s must be an integer (a Number or BigInt)", what);
    throw_invalid(env, msg);
    return -1;
}

/* startMigration(h, origin, source, target, transportIdentity, retryNotReadyMs, notify)
 * → migration handle. The source's snapshot() runs now, on this thread;
 * progress and completion reach notify through the wake-up path. */
static napi_value js_start_migration(napi_env env, napi_callback_info info) {
    napi_value argv[7];
    napi_valuetype t;
    addon_state *s = state_of(env);
    uint64_t origin, source, target;
    if (get_args(env, info, 7, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[1], "origin", &origin) || get_u64(env, argv[2], "source", &source) ||
        get_u64(env, argv[3], "target", &target))
        return NULL;
    net_mesh_migration_options opts;
    net_mesh_migration_options_init(&opts);
    NAPI_CALL(env, napi_typeof(env, argv[4], &t));
    if (t == napi_boolean) {
        bool on;
        NAPI_CALL(env, napi_get_value_bool(env, argv[4], &on));
        opts.transport_identity = on ? 1 : 0;
    } else if (t != napi_undefined) {
        throw_invalid(env, "net-mesh: transportIdentity must be a boolean");
        return NULL;
    }
    NAPI_CALL(env, napi_typeof(env, argv[5], &t));
    if (t == napi_boolean) {
        bool on;
        NAPI_CALL(env, napi_get_value_bool(env, argv[5], &on));
        opts.no_retry = on ? 0 : 1; /* retryNotReadyMs: false = no retry */
    } else if (t != napi_undefined) {
        int64_t ms;
        if (get_i64(env, argv[5], "retryNotReadyMs", &ms))
            return NULL;
        opts.retry_not_ready_ms = ms;
        if (ms < 0)
            opts.no_retry = 1;
    }
    NAPI_CALL(env, napi_typeof(env, argv[6], &t));
    if (t != napi_function) {
        throw_invalid(env, "net-mesh: startMigration needs a notify function");
        return NULL;
    }
    mig_watch *w = calloc(1, sizeof *w);
    if (w == NULL || napi_create_reference(env, argv[6], 1, &w->fn) != napi_ok) {
        free(w);
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    w->s = s;
    net_mesh_migration *m = NULL;
    begin_callbacks(env, s);
    int rc = net_mesh_runtime_start_migration(b->h, origin, source, target, &opts, &m);
    if (rc != NET_MESH_OK) {
        napi_delete_reference(env, w->fn);
        free(w);
        throw_status(env, rc);
        return NULL;
    }
    napi_value ext = box_new(env, BOX_MIGRATION, m);
    if (ext == NULL) {
        napi_delete_reference(env, w->fn);
        free(w);
        return NULL;
    }
    /* Two library-held references (each consumed, also on error). */
    atomic_init(&w->refs, 2);
    atomic_fetch_add(&s->refs, 1);
    loop_ref(s, 1); /* a migration in flight keeps the loop alive; the completion note drops it */
    int rp = net_mesh_migration_on_progress(m, on_mig_progress, w, watch_finalize);
    int rcm = net_mesh_migration_on_complete(m, on_mig_complete, w, watch_finalize);
    if (rcm != NET_MESH_OK)
        loop_ref(s, -1);
    if (rp != NET_MESH_OK || rcm != NET_MESH_OK) {
        throw_status(env, rp != NET_MESH_OK ? rp : rcm);
        return NULL;
    }
    return ext;
}

/* migrationPhase(m) → NET_MESH_MIGRATION_PHASE_* */
static napi_value js_migration_phase(napi_env env, napi_callback_info info) {
    napi_value argv[1], out;
    int phase = 0;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_MIGRATION, 1);
    if (b == NULL)
        return NULL;
    NM_CALL(env, net_mesh_migration_phase(b->h, &phase));
    NAPI_CALL(env, napi_create_int32(env, phase, &out));
    return out;
}

/* runtimeMigrationPhase(h, origin) → phase of the migration of origin this runtime orchestrates */
static napi_value js_runtime_migration_phase(napi_env env, napi_callback_info info) {
    napi_value argv[2], out;
    uint64_t origin;
    int phase = 0;
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL || get_u64(env, argv[1], "origin", &origin))
        return NULL;
    NM_CALL(env, net_mesh_runtime_migration_phase(b->h, origin, &phase));
    NAPI_CALL(env, napi_create_int32(env, phase, &out));
    return out;
}

/* migrationResult(m) → null while running, else [status, attempts, kind, message] */
static napi_value js_migration_result(napi_env env, napi_callback_info info) {
    napi_value argv[1], arr, v;
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_MIGRATION, 1);
    if (b == NULL)
        return NULL;
    net_mesh_migration_result res;
    memset(&res, 0, sizeof res);
    res.size = sizeof res;
    NM_CALL(env, net_mesh_migration_result_get(b->h, &res));
    if (!res.finished) {
        NAPI_CALL(env, napi_get_null(env, &arr));
        return arr;
    }
    napi_status st = napi_create_array_with_length(env, 4, &arr);
    if (st == napi_ok && (st = napi_create_int32(env, res.status, &v)) == napi_ok)
        st = napi_set_element(env, arr, 0, v);
    if (st == napi_ok && (st = napi_create_uint32(env, res.attempts, &v)) == napi_ok)
        st = napi_set_element(env, arr, 1, v);
    res.kind[sizeof res.kind - 1] = 0;
    if (st == napi_ok && (st = napi_create_string_utf8(env, res.kind, NAPI_AUTO_LENGTH, &v)) == napi_ok)
        st = napi_set_element(env, arr, 2, v);
    if (st == napi_ok &&
        (st = napi_create_string_utf8(env, res.message.data ? (const char *)res.message.data : "", res.message.len,
                                      &v)) == napi_ok)
        st = napi_set_element(env, arr, 3, v);
    net_mesh_bytes_free(&res.message);
    NAPI_CALL(env, st);
    return arr;
}

/* migrationCancel(m) → Promise<void>, on libuv's pool (the library may wait up to 5 s). */
static napi_value js_migration_cancel(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (get_args(env, info, 1, argv, NULL))
        return NULL;
    box *b = get_box(env, argv[0], BOX_MIGRATION, 1);
    if (b == NULL)
        return NULL;
    async_op *op = op_new(env, OP_MIG_CANCEL);
    if (op == NULL)
        return NULL;
    op->h = b->h;
    if (napi_create_reference(env, argv[0], 1, &op->keep[0]) != napi_ok) {
        op_abandon(env, op);
        return NULL;
    }
    return op_queue(env, op, "net-mesh:MigrationHandle.cancel");
}

/* setOutputSink(h, fn | null): fn(origin: bigint, flatEvents) on the JS thread. */
static napi_value js_set_output_sink(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    napi_valuetype t;
    addon_state *s = state_of(env);
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t == napi_null || t == napi_undefined) {
        NM_CALL(env, net_mesh_runtime_set_output_sink(b->h, NULL, NULL, NULL));
        drain_releases(s);
        return make_undefined(env);
    }
    if (t != napi_function) {
        throw_invalid(env, "net-mesh: the output sink must be a function (or null)");
        return NULL;
    }
    sink_ctx *c = calloc(1, sizeof *c);
    if (c == NULL || napi_create_reference(env, argv[1], 1, &c->fn) != napi_ok) {
        free(c);
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    c->s = s;
    atomic_fetch_add(&s->refs, 1);
    NM_CALL(env, net_mesh_runtime_set_output_sink(b->h, on_sink, c, sink_finalize)); /* c consumed */
    drain_releases(s);
    return make_undefined(env);
}

/* ------------------------------------------------------------------ */
/* Floor for benchmarks: one export entered, one empty callback made    */
/* ------------------------------------------------------------------ */

static void probe_cb(void *ud) { (void)ud; }

static napi_value js_probe(napi_env env, napi_callback_info info) {
    (void)info;
    NM_CALL(env, net_mesh_callback_probe(probe_cb, NULL));
    return NULL;
}

/* The same, with the callback calling an empty JS function (the JS floor). */
typedef struct probe_js { napi_env env; napi_value fn; napi_value recv; int failed; } probe_js;

static void probe_js_cb(void *ud) {
    probe_js *p = ud;
    napi_value r;
    if (napi_call_function(p->env, p->recv, p->fn, 0, NULL, &r) != napi_ok)
        p->failed = 1;
}

static napi_value js_probe_js(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    size_t argc = 1;
    probe_js p = {env, NULL, NULL, 0};
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &p.recv, NULL));
    p.fn = argv[0];
    NM_CALL(env, net_mesh_callback_probe(probe_js_cb, &p));
    return NULL;
}

/* submit(h, fn): run fn on the JS thread through the runtime's pool and the
 * executor (the path of network-initiated callbacks). */
typedef struct submit_item { addon_state *s; napi_ref fn; } submit_item;

static void submit_run(void *ud) {
    submit_item *it = ud;
    addon_state *s = it->s;
    if (!on_js_thread(s))
        return;
    napi_env env = s->env;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value fn, undef, r;
    napi_get_undefined(env, &undef);
    if (napi_get_reference_value(env, it->fn, &fn) == napi_ok &&
        napi_call_function(env, undef, fn, 0, NULL, &r) != napi_ok) {
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok)
            napi_fatal_exception(env, err); /* an uncaught exception, as from a timer */
    }
    napi_close_handle_scope(env, scope);
}

static void submit_finalize(void *ud) {
    submit_item *it = ud;
    release_ref(it->s, it->fn);
    addon_state *s = it->s;
    free(it);
    state_unref(s);
}

static napi_value js_submit(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    napi_valuetype t;
    addon_state *s = state_of(env);
    if (get_args(env, info, 2, argv, NULL))
        return NULL;
    box *b = runtime_arg(env, argv[0]);
    if (b == NULL)
        return NULL;
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t != napi_function) {
        throw_invalid(env, "net-mesh: submit needs a function");
        return NULL;
    }
    submit_item *it = calloc(1, sizeof *it);
    if (it == NULL || napi_create_reference(env, argv[1], 1, &it->fn) != napi_ok) {
        free(it);
        napi_throw_error(env, "NO_MEMORY", "net-mesh: out of memory");
        return NULL;
    }
    it->s = s;
    atomic_fetch_add(&s->refs, 1);
    NM_CALL(env, net_mesh_runtime_submit(b->h, submit_run, it, submit_finalize));
    return make_undefined(env);
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
    run_tasks(s);
    run_notes(s);
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
    clear_cause(s->env, s);
    if (s->slab_ref)
        napi_delete_reference(s->env, s->slab_ref);
    if (s->shared_ref)
        napi_delete_reference(s->env, s->shared_ref);
    s->slab_ref = s->shared_ref = NULL;
    s->slab = NULL;
    s->meta = NULL;
    if (s->make_error)
        napi_delete_reference(s->env, s->make_error);
    s->make_error = NULL;
    /* From here on no JS runs: queued and later tasks run inline and their
     * callbacks fail fast; finalizers leave references to the environment. */
    atomic_store(&s->alive, 0);
    /* First: a lease left open (a JS frame that never returned) keeps its
     * daemon's host locked; a queued task for that daemon, run inline just
     * below, or the runtime's shutdown would wait for it forever. */
    leases_abort_all(s);
    run_tasks(s);
    run_notes(s);
    for (int pass = 0; pass < 2; pass++) {
        box *b = s->live;
        while (b != NULL) {
            box *next = b->next;
            if ((pass == 0) == (b->kind == BOX_RUNTIME))
                box_free_handle(b); /* unlinks */
            b = next;
        }
    }
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
    s->js_refs = 0;
    /* The wake-up path never keeps the process alive on its own. */
    NAPI_CALL(env, napi_unref_threadsafe_function(env, s->tsfn));
    NAPI_CALL(env, napi_add_env_cleanup_hook(env, env_cleanup, s));

    napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, s}
        FN("init", js_init),
        FN("setShared", js_set_shared),
        FN("version", js_version),
        FN("statusKind", js_status_kind),
        FN("close", js_close),
        FN("identityGenerate", js_identity_generate),
        FN("identityFromSeed", js_identity_from_seed),
        FN("identityFromEntityId", js_identity_from_entity_id),
        FN("identityInfo", js_identity_info),
        FN("identitySeed", js_identity_seed),
        FN("nodeNew", js_node_new),
        FN("nodeInfo", js_node_info),
        FN("nodeConnect", js_node_connect),
        FN("nodeAccept", js_node_accept),
        FN("nodeClose", js_node_close),
        FN("runtimeNew", js_runtime_new),
        FN("registerFactory", js_register_factory),
        FN("runtimeStart", js_runtime_start),
        FN("runtimeShutdown", js_runtime_shutdown),
        FN("runtimeRef", js_runtime_ref),
        FN("runtimeIsReady", js_runtime_is_ready),
        FN("runtimeDaemonCount", js_runtime_daemon_count),
        FN("spawn", js_spawn),
        FN("spawnFromSnapshot", js_spawn_from_snapshot),
        FN("deliverBegin", js_deliver_begin),
        FN("deliverCommit", js_deliver_commit),
        FN("deliverAbort", js_deliver_abort),
        FN("openLeases", js_open_leases),
        FN("snapshot", js_snapshot),
        FN("stop", js_stop),
        FN("expectMigration", js_expect_migration),
        FN("registerMigrationTargetIdentity", js_register_target_identity),
        FN("daemonInfo", js_daemon_info),
        FN("daemonStats", js_daemon_stats),
        FN("submit", js_submit),
        FN("startMigration", js_start_migration),
        FN("migrationPhase", js_migration_phase),
        FN("runtimeMigrationPhase", js_runtime_migration_phase),
        FN("migrationResult", js_migration_result),
        FN("migrationCancel", js_migration_cancel),
        FN("setOutputSink", js_set_output_sink),
        FN("probe", js_probe),
        FN("probeJs", js_probe_js),
#undef FN
    };
    NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
    return exports;
}
