/* Soak: N spawn/stop cycles and N delivers through the ABI, printing
 * resident memory at start and end of each phase. Usage: soak [N]. Fails if
 * RSS grows by more than max(64 MiB, 25%) in a phase (flat within noise). */
#include "harness.h"
#include "daemons.h"
#include <unistd.h>

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void check_flat(const char *phase, long start, long end) {
    long allowed = start / 4 > 65536 ? start / 4 : 65536;
    printf("soak %-10s RSS start %ld KiB, end %ld KiB (%+ld KiB)\n", phase, start, end, end - start);
    CHECK(end - start <= allowed);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    net_mesh_node *node = NULL;
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_node_new(NULL, &node));
    OK(net_mesh_runtime_new(node, NULL, &rt));
    OK(register_kind(rt, "counter", counter_create));
    OK(register_kind(rt, "echo", echo_create));
    OK(net_mesh_runtime_start(rt));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = 0;
    OK(net_mesh_identity_origin_hash(id, &origin));

    /* warm-up so the start figure includes the runtime's steady state */
    for (int i = 0; i < 1000; i++) {
        net_mesh_daemon *d = NULL;
        if (net_mesh_runtime_spawn(rt, "counter", id, NULL, &d) != NET_MESH_OK) { CHECK(0); break; }
        net_mesh_daemon_free(d);
        net_mesh_runtime_stop(rt, origin);
    }
    int fin0 = atomic_load(&daemons_finalized);
    long start = rss_kib();
    long fails = 0;
    for (long i = 0; i < n; i++) {
        net_mesh_daemon *d = NULL;
        if (net_mesh_runtime_spawn(rt, "counter", id, NULL, &d) != NET_MESH_OK) fails++;
        net_mesh_daemon_free(d);
        if (net_mesh_runtime_stop(rt, origin) != NET_MESH_OK) fails++;
    }
    check_flat("spawn/stop", start, rss_kib());
    CHECK(fails == 0);
    CHECK(atomic_load(&daemons_finalized) - fin0 == (int)n); /* every instance finalized */

    OK(net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL));
    uint8_t payload[64] = {0};
    for (int i = 0; i < 1000; i++) {
        net_mesh_event ev = make_event(9, (uint64_t)i + 1, payload, sizeof payload);
        net_mesh_event_list outs = {0};
        net_mesh_runtime_deliver(rt, origin, &ev, &outs);
        net_mesh_event_list_free(&outs);
    }
    start = rss_kib();
    for (long i = 0; i < n; i++) {
        net_mesh_event ev = make_event(9, (uint64_t)i + 1001, payload, sizeof payload);
        net_mesh_event_list outs = {0};
        if (net_mesh_runtime_deliver(rt, origin, &ev, &outs) != NET_MESH_OK || outs.len != 1) fails++;
        net_mesh_event_list_free(&outs);
    }
    check_flat("deliver", start, rss_kib());
    CHECK(fails == 0);
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    return nm_report("soak");
}
