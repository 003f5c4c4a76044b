/* C -> net_mesh_runtime_deliver -> C echo daemon -> back, per event, next to
 * the floor measured in the same run: net_mesh_callback_probe (one export
 * entered, one empty callback made). Prints a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "net_mesh.h"

static void empty(void *ud) { (void)ud; }

static int echo_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud;
    return net_mesh_outputs_push(out, ev->payload, ev->payload_len);
}
static int echo_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud;
    vt->process = echo_process;
    *ud = NULL;
    return 0;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static net_mesh_runtime *rt;
static uint64_t origin;
static uint8_t payload[1024];

static double run_deliver(long n, size_t len) {
    net_mesh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.payload = payload;
    ev.payload_len = len;
    ev.received_at = 1;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        ev.link.sequence = (uint64_t)i + 1;
        net_mesh_event_list outs;
        if (net_mesh_runtime_deliver(rt, origin, &ev, &outs) != NET_MESH_OK || outs.len != 1) {
            fprintf(stderr, "deliver failed: %s\n", net_mesh_last_error());
            return -1;
        }
        net_mesh_event_list_free(&outs);
    }
    return (now_ns() - t0) / (double)n;
}

/* The same through net_mesh_runtime_deliver_into with one reused list. */
static double run_deliver_into(long n, size_t len) {
    net_mesh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.payload = payload;
    ev.payload_len = len;
    ev.received_at = 1;
    net_mesh_event_list outs = NET_MESH_EVENT_LIST_INIT;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        ev.link.sequence = (uint64_t)i + 1;
        if (net_mesh_runtime_deliver_into(rt, origin, &ev, &outs) != NET_MESH_OK || outs.len != 1) {
            fprintf(stderr, "deliver_into failed: %s\n", net_mesh_last_error());
            return -1;
        }
    }
    double t = (now_ns() - t0) / (double)n;
    net_mesh_event_list_free(&outs);
    return t;
}

static double run_floor(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) net_mesh_callback_probe(empty, NULL);
    return (now_ns() - t0) / (double)n;
}

static double best(double (*f)(long), long n) {
    double b = 1e18;
    for (int r = 0; r < 5; r++) {
        double v = f(n);
        if (v < b) b = v;
    }
    return b;
}
static size_t cur_len;
static double deliver_cur(long n) { return run_deliver(n, cur_len); }
static double deliver_into_cur(long n) { return run_deliver_into(n, cur_len); }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    net_mesh_node *node = NULL;
    net_mesh_identity *id = NULL;
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = echo_create;
    if (net_mesh_node_new(NULL, &node) || net_mesh_runtime_new(node, NULL, &rt) ||
        net_mesh_runtime_register_factory(rt, "echo", &f, NULL) || net_mesh_runtime_start(rt) ||
        net_mesh_identity_generate(&id) || net_mesh_identity_origin_hash(id, &origin) ||
        net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL)) {
        fprintf(stderr, "setup failed: %s\n", net_mesh_last_error());
        return 1;
    }
    run_floor(n / 10);
    run_deliver(n / 10, 64);
    double floor = best(run_floor, n);
    printf("| measurement (ns/op, best of 5 x %ld)         |   ns/op | x floor |\n", n);
    printf("|------------------------------------------------|--------:|--------:|\n");
    printf("| floor: empty export + empty callback           | %7.1f |    1.00 |\n", floor);
    size_t lens[] = {0, 64, 1024};
    for (int i = 0; i < 3; i++) {
        cur_len = lens[i];
        double d = best(deliver_cur, n);
        printf("| deliver -> C echo daemon -> 1 output, %4zu B   | %7.1f | %7.2f |\n", lens[i], d, d / floor);
    }
    for (int i = 0; i < 3; i++) {
        cur_len = lens[i];
        double d = best(deliver_into_cur, n);
        printf("| deliver_into (reused list) -> echo, %4zu B     | %7.1f | %7.2f |\n", lens[i], d, d / floor);
    }
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    return 0;
}
