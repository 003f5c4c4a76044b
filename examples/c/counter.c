/* A counter daemon written in C: spawn it, feed it five events, snapshot,
 * stop, restore from the snapshot and feed it once more (prints 1..5, 6).
 *
 *   make install PREFIX=$HOME/.local
 *   export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
 *   cc counter.c $(pkg-config --cflags --libs netmesh) -o counter && ./counter
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net_mesh.h>

typedef struct { uint64_t n; } counter;

static int process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ev;
    counter *c = ud;
    c->n++;
    return net_mesh_outputs_push(out, (const uint8_t *)&c->n, sizeof c->n);
}
static int snapshot(void *ud, net_mesh_state *out) {
    return net_mesh_state_write(out, (const uint8_t *)&((counter *)ud)->n, sizeof(uint64_t));
}
static int restore(void *ud, const uint8_t *state, size_t len) {
    if (len != sizeof(uint64_t)) {
        net_mesh_callback_set_error("bad counter state");
        return 1;
    }
    memcpy(&((counter *)ud)->n, state, len);
    return 0;
}
static int create(void *factory_ud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)factory_ud;
    vt->name = "counter";
    vt->process = process;
    vt->snapshot = snapshot;
    vt->restore = restore;
    vt->finalize = free;
    *ud = calloc(1, sizeof(counter));
    return *ud ? 0 : 1;
}

#define TRY(call)                                                                   \
    do {                                                                            \
        int rc_ = (call);                                                           \
        if (rc_ != NET_MESH_OK) {                                                   \
            fprintf(stderr, "%s: %s: %s\n", #call, net_mesh_status_kind(rc_),       \
                    net_mesh_last_error());                                         \
            return 1;                                                               \
        }                                                                           \
    } while (0)

static int feed(net_mesh_runtime *rt, uint64_t origin, uint64_t seq) {
    net_mesh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.link.sequence = seq;
    net_mesh_event_list outs;
    TRY(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    for (size_t i = 0; i < outs.len; i++) {
        uint64_t v;
        memcpy(&v, outs.events[i].payload, sizeof v);
        printf("count %llu (chain seq %llu)\n", (unsigned long long)v,
               (unsigned long long)outs.events[i].link.sequence);
    }
    net_mesh_event_list_free(&outs);
    return 0;
}

int main(void) {
    printf("libnetmesh %s\n", net_mesh_version(NULL, NULL, NULL));
    net_mesh_node *node;
    net_mesh_runtime *rt;
    net_mesh_identity *id;
    uint64_t origin;
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = create;
    TRY(net_mesh_node_new(NULL, &node));
    TRY(net_mesh_runtime_new(node, NULL, &rt));
    TRY(net_mesh_runtime_register_factory(rt, "counter", &f, NULL));
    TRY(net_mesh_runtime_start(rt));
    TRY(net_mesh_identity_generate(&id));
    TRY(net_mesh_identity_origin_hash(id, &origin));
    TRY(net_mesh_runtime_spawn(rt, "counter", id, NULL, NULL));
    for (uint64_t s = 1; s <= 5; s++)
        if (feed(rt, origin, s)) return 1;
    net_mesh_bytes snap;
    TRY(net_mesh_runtime_snapshot(rt, origin, &snap));
    printf("snapshot: %zu bytes\n", snap.len);
    TRY(net_mesh_runtime_stop(rt, origin));
    TRY(net_mesh_runtime_spawn_from_snapshot(rt, "counter", id, snap.data, snap.len, NULL, NULL));
    net_mesh_bytes_free(&snap);
    if (feed(rt, origin, 6)) return 1;
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    return 0;
}
