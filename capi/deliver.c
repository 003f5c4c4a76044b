/* net_mesh_runtime_deliver in C: it runs net_mesh_runtime_deliver_into on a
 * list whose storage is this thread's spare block (a block an earlier list
 * on this thread released through net_mesh_event_list_free) and hands that
 * block to the caller. A steady stream of deliver/free pairs on one thread
 * therefore allocates, copies and frees nothing per event, and the Go side
 * never calls back into C to allocate (a second Go->C transition). */
#include <pthread.h>
#include <string.h>
#include "capi.h"

/* Blocks up to this size are kept as the thread's spare when released. */
#define NM_SPARE_KEEP 1024
/* A filled block is handed to the caller as is when it is at most this size
 * or twice what it holds; else the outputs are copied into an exact-size
 * allocation (a caller keeping many lists does not keep much slack). */
#define NM_HANDOVER_SLACK 256

/* Per-thread state, freed at thread exit through a pthread key whose value is
 * set once per thread (the destructor runs while static TLS still exists). */
typedef struct nm_deliver_tls {
    void *spare; /* a released list block, or NULL */
    int registered;
} nm_deliver_tls;

static _Thread_local nm_deliver_tls nm_dtls;
static pthread_key_t nm_dtls_key;
static pthread_once_t nm_dtls_once = PTHREAD_ONCE_INIT;

static void nm_dtls_free(void *p) {
    nm_deliver_tls *t = p;
    free(t->spare);
    t->spare = NULL;
    t->registered = 0;
}
static void nm_dtls_key_init(void) { (void)pthread_key_create(&nm_dtls_key, nm_dtls_free); }

static nm_deliver_tls *nm_dtls_get(void) {
    nm_deliver_tls *t = &nm_dtls;
    if (!t->registered) {
        pthread_once(&nm_dtls_once, nm_dtls_key_init);
        t->registered = pthread_setspecific(nm_dtls_key, t) == 0;
    }
    return t;
}

static size_t nm_list_cap(const void *block) { return (size_t)((const nm_list_hdr *)block)->cap; }

void nm_list_release(void *block) {
    if (!block) return;
    const nm_list_hdr *h = block;
    if (h->magic == NM_LIST_MAGIC && h->cap <= NM_SPARE_KEEP) {
        nm_deliver_tls *t = nm_dtls_get();
        if (t->registered && !t->spare) {
            t->spare = block;
            return;
        }
    }
    free(block);
}

/* Bytes of a filled list's block in use: header, event array, payloads. */
static size_t nm_list_used(const net_mesh_event_list *l) {
    const uint8_t *base = l->reserved_;
    size_t used = (size_t)((const uint8_t *)(l->events + l->len) - base);
    for (size_t i = 0; i < l->len; i++) {
        const net_mesh_event *e = &l->events[i];
        if (e->payload_len && (size_t)(e->payload - base) + e->payload_len > used)
            used = (size_t)(e->payload - base) + e->payload_len;
    }
    return used;
}

/* Copies a filled list into one exact-size allocation for the caller. */
static int nm_list_copy_out(const net_mesh_event_list *s, net_mesh_event_list *out) {
    const uint8_t *base = s->reserved_;
    size_t used = nm_list_used(s);
    uint8_t *p = malloc(used);
    if (!p) {
        static const char msg[] = "netmesh: cannot allocate the output list";
        nm_set_error(NET_MESH_ERR_NO_MEMORY, msg, sizeof msg - 1, "", 0, 0);
        return NET_MESH_ERR_NO_MEMORY;
    }
    memcpy(p, base, used);
    ((nm_list_hdr *)p)->cap = used;
    net_mesh_event *evs = (net_mesh_event *)(p + ((const uint8_t *)s->events - base));
    for (size_t i = 0; i < s->len; i++)
        if (evs[i].payload) evs[i].payload = p + (evs[i].payload - base);
    out->events = evs;
    out->len = s->len;
    out->reserved_ = p;
    return NET_MESH_OK;
}

int net_mesh_runtime_deliver(net_mesh_runtime *rt, uint64_t origin, const net_mesh_event *event,
                             net_mesh_event_list *out) {
    if (!out) return net_mesh_runtime_deliver_into(rt, origin, event, NULL);
    nm_deliver_tls *t = nm_dtls_get();
    /* Take the spare: a delivery nested in a process callback on this thread
     * finds none and starts its own block. */
    net_mesh_event_list l = {NULL, 0, t->spare};
    t->spare = NULL;
    int rc = net_mesh_runtime_deliver_into(rt, origin, event, &l);
    if (rc != NET_MESH_OK || l.len == 0) {
        nm_list_release(l.reserved_);
        if (rc == NET_MESH_OK) {
            out->events = NULL;
            out->len = 0;
            out->reserved_ = NULL;
        }
        return rc;
    }
    size_t cap = nm_list_cap(l.reserved_);
    if (cap <= NM_HANDOVER_SLACK || cap / 2 <= nm_list_used(&l)) {
        *out = l; /* the block is the caller's now */
        return NET_MESH_OK;
    }
    /* Much more room than content: copy out exactly and drop the roomy
     * block, so the next call starts a block of its own size. */
    rc = nm_list_copy_out(&l, out);
    free(l.reserved_);
    return rc;
}
