/* net_mesh_runtime_deliver in C: it runs net_mesh_runtime_deliver_into with a
 * per-thread reusable list, then copies the outputs into one exact-size
 * allocation for the caller. The Go side then never has to call back into C
 * to allocate, which would cost a second Go->C transition per event. */
#include <pthread.h>
#include <string.h>
#include "capi.h"

/* Lists that grew past this are released after the call instead of kept. */
#define NM_SCRATCH_KEEP (64 * 1024)

static _Thread_local net_mesh_event_list nm_scratch;
static pthread_key_t nm_scratch_key;
static pthread_once_t nm_scratch_once = PTHREAD_ONCE_INIT;

static void nm_scratch_free(void *p) { free(p); }
static void nm_scratch_key_init(void) { (void)pthread_key_create(&nm_scratch_key, nm_scratch_free); }

int net_mesh_runtime_deliver(net_mesh_runtime *rt, uint64_t origin, const net_mesh_event *event,
                             net_mesh_event_list *out) {
    net_mesh_event_list *s = &nm_scratch;
    void *before = s->reserved_;
    int rc = net_mesh_runtime_deliver_into(rt, origin, event, out ? s : NULL);
    if (s->reserved_ != before) {
        /* Storage moved: the thread-exit destructor must see the new block. */
        pthread_once(&nm_scratch_once, nm_scratch_key_init);
        (void)pthread_setspecific(nm_scratch_key, s->reserved_);
    }
    if (rc != NET_MESH_OK) return rc;
    if (s->len == 0) {
        out->events = NULL;
        out->len = 0;
        out->reserved_ = NULL;
        return NET_MESH_OK;
    }
    const uint8_t *base = s->reserved_;
    /* Header, event array, then the payloads in order. */
    size_t used = (size_t)((const uint8_t *)(s->events + s->len) - base);
    for (size_t i = 0; i < s->len; i++) {
        const net_mesh_event *e = &s->events[i];
        if (e->payload_len && (size_t)(e->payload - base) + e->payload_len > used)
            used = (size_t)(e->payload - base) + e->payload_len;
    }
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
    if (((const nm_list_hdr *)base)->cap > NM_SCRATCH_KEEP) {
        free(s->reserved_);
        memset(s, 0, sizeof *s);
        (void)pthread_setspecific(nm_scratch_key, NULL);
    }
    return NET_MESH_OK;
}
