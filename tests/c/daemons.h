/* Daemons written in C for the ABI tests, the soak run and the benchmark. */
#ifndef NM_TEST_DAEMONS_H
#define NM_TEST_DAEMONS_H
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "net_mesh.h"

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

static atomic_int daemons_finalized;
static atomic_int factories_finalized;

/* echo: every input payload comes back as one output. Stateless. */
static int echo_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud;
    return net_mesh_outputs_push(out, ev->payload, ev->payload_len);
}

/* counter: counts events; outputs the new count (8 bytes LE); state = count. */
typedef struct counter { uint64_t n; } counter;

static void put64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static int counter_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ev;
    counter *c = ud;
    uint8_t b[8];
    put64(b, ++c->n);
    return net_mesh_outputs_push(out, b, 8);
}
static int counter_snapshot(void *ud, net_mesh_state *out) {
    uint8_t b[8];
    put64(b, ((counter *)ud)->n);
    return net_mesh_state_write(out, b, 8);
}
static int counter_restore(void *ud, const uint8_t *state, size_t len) {
    if (len != 8) {
        net_mesh_callback_set_error("counter state must be 8 bytes");
        return 1;
    }
    ((counter *)ud)->n = get64(state);
    return 0;
}
static void counter_finalize(void *ud) {
    free(ud);
    atomic_fetch_add(&daemons_finalized, 1);
}
static void echo_finalize(void *ud) {
    (void)ud;
    atomic_fetch_add(&daemons_finalized, 1);
}

/* failing: process fails with a message; snapshot fails too. */
static int failing_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud; (void)ev; (void)out;
    net_mesh_callback_set_error("boom: failing daemon");
    return 7;
}
static int failing_snapshot(void *ud, net_mesh_state *out) {
    (void)ud; (void)out;
    net_mesh_callback_set_error("snapshot refused");
    return 3;
}

static void counter_vtable(net_mesh_daemon_vtable *vt) {
    net_mesh_daemon_vtable_init(vt);
    vt->name = "counter";
    vt->process = counter_process;
    vt->snapshot = counter_snapshot;
    vt->restore = counter_restore;
    vt->finalize = counter_finalize;
}

static int echo_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud;
    vt->name = "echo";
    vt->process = echo_process;
    vt->finalize = echo_finalize;
    *ud = NULL;
    return 0;
}
static int counter_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud;
    counter_vtable(vt);
    counter *c = calloc(1, sizeof *c);
    if (!c) return 1;
    *ud = c;
    return 0;
}
static int failing_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud;
    vt->name = "failing";
    vt->process = failing_process;
    vt->snapshot = failing_snapshot;
    vt->finalize = echo_finalize;
    *ud = NULL;
    return 0;
}
static int refusing_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud; (void)vt; (void)ud;
    net_mesh_callback_set_error("factory refuses");
    return 1;
}
static void factory_finalize(void *fud) {
    (void)fud;
    atomic_fetch_add(&factories_finalized, 1);
}

static int register_kind(net_mesh_runtime *rt, const char *kind, net_mesh_factory_create_fn create) {
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = create;
    f.finalize = factory_finalize;
    return net_mesh_runtime_register_factory(rt, kind, &f, NULL);
}

static net_mesh_event make_event(uint64_t origin, uint64_t seq, const void *payload, size_t len) {
    net_mesh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.link.origin_hash = origin;
    ev.link.sequence = seq;
    ev.payload = payload;
    ev.payload_len = len;
    ev.received_at = 1;
    return ev;
}
#endif
