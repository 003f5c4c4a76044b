/* C side of host callbacks: output/state writers, the per-thread callback
 * error, and the static trampolines through which Go calls host function
 * pointers (Go cannot call a C function pointer itself). Every trampoline
 * runs on the thread Go calls it on, so a host-initiated call never hops. */
#include <pthread.h>
#include <string.h>
#include "capi.h"

#define NM_WRITER_OUTPUTS 0x4e4d4f55u /* "NMOU" */
#define NM_WRITER_STATE 0x4e4d5354u   /* "NMST" */

/* A growable byte buffer that starts in caller-provided inline storage. */
typedef struct nm_writer {
    uint32_t magic;
    uint32_t count;   /* outputs pushed / state writes made */
    uint8_t *buf;     /* inline storage or heap */
    size_t len, cap;
    uint8_t *heap;    /* non-NULL once buf moved to the heap */
} nm_writer;

struct net_mesh_outputs { nm_writer w; };
struct net_mesh_state { nm_writer w; };

static void nm_writer_init(nm_writer *w, uint32_t magic, uint8_t *inl, size_t cap) {
    w->magic = magic;
    w->count = 0;
    w->buf = inl;
    w->len = 0;
    w->cap = cap;
    w->heap = NULL;
}

static int nm_writer_append(nm_writer *w, const void *a, size_t alen, const void *b, size_t blen) {
    /* alen is at most 8; check blen before adding so nothing can wrap. */
    if (blen > NET_MESH_MAX_BUFFER || alen > 16) return NET_MESH_ERR_INVALID_ARGUMENT;
    size_t need = alen + blen;
    if (w->len + need > NET_MESH_MAX_BUFFER + 16) return NET_MESH_ERR_INVALID_ARGUMENT;
    if (w->len + need > w->cap) {
        size_t cap = w->cap * 2;
        if (cap < w->len + need) cap = w->len + need;
        uint8_t *p = realloc(w->heap, cap);
        if (!p) return NET_MESH_ERR_NO_MEMORY;
        if (!w->heap && w->len) memcpy(p, w->buf, w->len);
        w->heap = w->buf = p;
        w->cap = cap;
    }
    if (alen) memcpy(w->buf + w->len, a, alen);
    if (blen) memcpy(w->buf + w->len + alen, b, blen);
    w->len += need;
    return NET_MESH_OK;
}

int net_mesh_outputs_push(net_mesh_outputs *out, const uint8_t *data, size_t len) {
    if (!out || out->w.magic != NM_WRITER_OUTPUTS) return NET_MESH_ERR_INVALID_ARGUMENT;
    if (!data && len) return NET_MESH_ERR_INVALID_ARGUMENT;
    uint64_t n = len;
    nm_writer *w = &out->w;
    /* The common case without a call: it fits, and the length word is one
     * store (a memcpy of variable size is a libc call). */
    if (len <= NET_MESH_MAX_BUFFER && w->len + sizeof n + len <= NET_MESH_MAX_BUFFER + 16 &&
        w->len + sizeof n + len <= w->cap) {
        memcpy(w->buf + w->len, &n, sizeof n);
        if (len) memcpy(w->buf + w->len + sizeof n, data, len);
        w->len += sizeof n + len;
        w->count++;
        return NET_MESH_OK;
    }
    int rc = nm_writer_append(w, &n, sizeof n, data, len);
    if (rc == NET_MESH_OK) w->count++;
    return rc;
}

int net_mesh_state_write(net_mesh_state *out, const uint8_t *data, size_t len) {
    if (!out || out->w.magic != NM_WRITER_STATE) return NET_MESH_ERR_INVALID_ARGUMENT;
    if (!data && len) return NET_MESH_ERR_INVALID_ARGUMENT;
    int rc = nm_writer_append(&out->w, NULL, 0, data, len);
    if (rc == NET_MESH_OK) out->w.count++;
    return rc;
}

/* Callback error text: set by net_mesh_callback_set_error while a trampoline
 * of this thread is running (depth > 0), collected by that trampoline. */
static _Thread_local char *nm_cb_err;
static _Thread_local int nm_cb_depth;

void net_mesh_callback_set_error(const char *message) {
    if (nm_cb_depth <= 0 || !message) return;
    size_t n = strnlen(message, 1023);
    char *p = malloc(n + 1);
    if (!p) return;
    memcpy(p, message, n);
    p[n] = 0;
    free(nm_cb_err);
    nm_cb_err = p;
}

typedef struct { char *saved; } nm_cb_frame;

static nm_cb_frame nm_cb_enter(void) {
    nm_cb_frame f = {nm_cb_err};
    nm_cb_err = NULL;
    nm_cb_depth++;
    return f;
}

/* Leaves a callback frame: returns its error text (malloc'd, or NULL) when rc
 * != 0, and restores the enclosing frame's text. */
static char *nm_cb_leave(nm_cb_frame f, int rc) {
    char *e = nm_cb_err;
    nm_cb_err = f.saved;
    nm_cb_depth--;
    if (rc == 0) {
        if (e) free(e); /* free(NULL) is still a libc call on every callback */
        return NULL;
    }
    return e;
}

static void nm_writer_finish(nm_writer *w, nm_buf_result *r) {
    r->count = w->count;
    r->len = w->len;
    r->heap = w->heap;
    w->magic = 0; /* a stale writer pointer is refused from now on */
}

/* The per-thread output buffer of process callbacks: kept between calls so a
 * steady stream of deliveries allocates nothing. busy while a process
 * callback of this thread writes into it (a nested call gets a private heap
 * buffer). Freed at thread exit through a pthread key; buffers that grew past
 * NM_TLS_KEEP are released after the call instead of kept. */
#define NM_TLS_INITIAL 1024
#define NM_TLS_KEEP (64 * 1024)
typedef struct nm_tls_out {
    uint8_t *buf;
    size_t cap;
    int busy;
} nm_tls_out;
static _Thread_local nm_tls_out nm_out_tls;
static pthread_key_t nm_out_key;
static pthread_once_t nm_out_once = PTHREAD_ONCE_INIT;

static void nm_out_free(void *p) { free(p); }
static void nm_out_key_init(void) { (void)pthread_key_create(&nm_out_key, nm_out_free); }

void nm_call_process(nm_proc_result *r, const uint8_t *payload) {
    nm_tls_out *t = &nm_out_tls;
    int shared = !t->busy;
    struct net_mesh_outputs out;
    nm_writer_init(&out.w, NM_WRITER_OUTPUTS, NULL, 0);
    if (shared) {
        if (!t->buf) {
            pthread_once(&nm_out_once, nm_out_key_init);
            t->buf = malloc(NM_TLS_INITIAL);
            t->cap = t->buf ? NM_TLS_INITIAL : 0;
            (void)pthread_setspecific(nm_out_key, t->buf);
        }
        /* The writer owns the thread buffer during the call (it may realloc). */
        out.w.buf = out.w.heap = t->buf;
        out.w.cap = t->cap;
        t->busy = 1;
    }
    /* r->ev holds everything but the payload pointer (see nm_proc_result). */
    r->u.ev.payload = r->u.ev.payload_len ? payload : NULL;
    nm_cb_frame f = nm_cb_enter();
    r->rc = ((net_mesh_process_fn)r->fn)((void *)r->ud, &r->u.ev, &out);
    r->u.ev.payload = NULL; /* may be Go memory: not kept past the call */
    r->err = (uintptr_t)nm_cb_leave(f, r->rc);
    r->count = out.w.count;
    r->len = out.w.len;
    r->data = (uintptr_t)out.w.buf;
    r->heap = 0;
    out.w.magic = 0; /* a stale writer pointer is refused from now on */
    if (!shared) {
        r->heap = (uintptr_t)out.w.heap;
        return;
    }
    t->busy = 0;
    if (out.w.cap > NM_TLS_KEEP) {
        /* Too big to keep: hand this one to the caller, start small again. */
        r->heap = (uintptr_t)out.w.heap;
        t->buf = NULL;
        t->cap = 0;
        (void)pthread_setspecific(nm_out_key, NULL);
        return;
    }
    if (t->buf != out.w.heap) (void)pthread_setspecific(nm_out_key, out.w.heap);
    t->buf = out.w.heap;
    t->cap = out.w.cap;
}

nm_buf_result nm_call_snapshot(net_mesh_snapshot_fn fn, uintptr_t ud) {
    nm_buf_result r;
    struct net_mesh_state out;
    nm_writer_init(&out.w, NM_WRITER_STATE, r.inl, sizeof r.inl);
    nm_cb_frame f = nm_cb_enter();
    r.rc = fn((void *)ud, &out);
    r.err = nm_cb_leave(f, r.rc);
    nm_writer_finish(&out.w, &r);
    return r;
}

nm_status_result nm_call_restore(net_mesh_restore_fn fn, uintptr_t ud, const uint8_t *state,
                                 size_t len) {
    nm_status_result r;
    static const uint8_t empty[1];
    nm_cb_frame f = nm_cb_enter();
    r.rc = fn((void *)ud, len ? state : empty, len);
    r.err = nm_cb_leave(f, r.rc);
    return r;
}

nm_create_result nm_call_create(net_mesh_factory_create_fn fn, uintptr_t ud) {
    nm_create_result r;
    void *dud = NULL;
    net_mesh_daemon_vtable_init(&r.vt);
    nm_cb_frame f = nm_cb_enter();
    r.rc = fn((void *)ud, &r.vt, &dud);
    r.err = nm_cb_leave(f, r.rc);
    r.ud = (uintptr_t)dud;
    return r;
}

void nm_call_post(net_mesh_executor_post_fn fn, uintptr_t ud, void *task) {
    fn((void *)ud, (net_mesh_task *)task);
}

void nm_call_task(net_mesh_task_fn fn, uintptr_t ud) { fn((void *)ud); }

void nm_call_channel_message(net_mesh_channel_message_fn fn, uintptr_t ud, uint64_t publisher,
                             const char *channel, const uint8_t *payload, size_t len) {
    fn((void *)ud, publisher, channel, len ? payload : NULL, len);
}

/* ---- library-owned lists and option initialisers ---- */

void net_mesh_event_list_free(net_mesh_event_list *list) {
    if (!list) return;
    nm_list_release(list->reserved_); /* may become this thread's spare (deliver.c) */
    list->events = NULL;
    list->len = 0;
    list->reserved_ = NULL;
}

void net_mesh_subscription_list_free(net_mesh_subscription_list *list) {
    if (!list) return;
    free(list->reserved_);
    list->items = NULL;
    list->len = 0;
    list->reserved_ = NULL;
}

void net_mesh_node_options_init(net_mesh_node_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
}

void net_mesh_channel_options_init(net_mesh_channel_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
}

void net_mesh_daemon_vtable_init(net_mesh_daemon_vtable *vt) {
    if (!vt) return;
    memset(vt, 0, sizeof *vt);
    vt->size = sizeof *vt;
}

void net_mesh_factory_init(net_mesh_factory *f) {
    if (!f) return;
    memset(f, 0, sizeof *f);
    f->size = sizeof *f;
}

void net_mesh_daemon_config_init(net_mesh_daemon_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
}

void net_mesh_runtime_options_init(net_mesh_runtime_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
}

uintptr_t nm_thread_key(void) {
    static _Thread_local char key;
    return (uintptr_t)&key;
}
