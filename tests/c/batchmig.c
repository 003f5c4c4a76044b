/* Batched host-driven delivery during a live migration: the source's
 * daemon, buffering, refuses a batch with NET_MESH_ERR_BATCH_REFUSED and
 * nothing changed; the same events delivered one by one are queued and run
 * once the migration is cancelled; batches are granted again afterwards.
 * Separate from batch.c because state crosses the network here: under
 * valgrind it runs with the migration suite's --undef-value-errors=no (see
 * valgrind.sh). */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>
#include <time.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a host executor on the target that runs nothing until pumped: the
 * migration stays in Restore, the source buffering ---- */

#define QCAP 64
static struct {
    pthread_mutex_t mu;
    net_mesh_task *q[QCAP];
    int n;
} ex = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

static void ex_post(void *ud, net_mesh_task *t) {
    (void)ud;
    pthread_mutex_lock(&ex.mu);
    if (ex.n < QCAP) ex.q[ex.n++] = t;
    pthread_mutex_unlock(&ex.mu);
}
static int ex_pending(void) {
    pthread_mutex_lock(&ex.mu);
    int n = ex.n;
    pthread_mutex_unlock(&ex.mu);
    return n;
}
static int ex_pump(void) {
    pthread_mutex_lock(&ex.mu);
    int n = ex.n;
    net_mesh_task *q[QCAP];
    memcpy(q, ex.q, sizeof q);
    ex.n = 0;
    pthread_mutex_unlock(&ex.mu);
    for (int i = 0; i < n; i++) OK(net_mesh_task_run(q[i]));
    return n;
}

static void refused_while_migrating(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    net_mesh_node *a = NULL, *b = NULL;
    OK(net_mesh_node_new(&o, &a));
    OK(net_mesh_node_new(&o, &b));
    uint64_t aid = 0, bid = 0;
    OK(net_mesh_node_id(a, &aid));
    OK(net_mesh_node_id(b, &bid));
    uint8_t bkey[32];
    net_mesh_bytes baddr = {0};
    OK(net_mesh_node_public_key(b, bkey));
    OK(net_mesh_node_addr(b, &baddr));
    OK(net_mesh_node_accept(b, aid));
    OK(net_mesh_node_connect(a, (const char *)baddr.data, bkey, bid, 5000));
    net_mesh_bytes_free(&baddr);
    net_mesh_runtime *ra = NULL, *rb = NULL;
    OK(net_mesh_runtime_new(a, NULL, &ra));
    OK(net_mesh_runtime_new(b, NULL, &rb));
    OK(register_kind(ra, "counter", counter_create));
    OK(register_kind(rb, "counter", counter_create));
    OK(net_mesh_runtime_start(ra));
    OK(net_mesh_runtime_start(rb));
    OK(net_mesh_runtime_set_executor(rb, ex_post, NULL, NULL));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_expect_migration(rb, "counter", origin, NULL));
    net_mesh_daemon *d = NULL;
    OK(net_mesh_runtime_spawn(ra, "counter", id, NULL, &d));

    net_mesh_migration *m = NULL;
    OK(net_mesh_runtime_start_migration(ra, origin, aid, bid, NULL, &m));
    net_mesh_event evs[3] = {make_event(1, 1, "a", 1), make_event(1, 2, "b", 1), make_event(1, 3, "c", 1)};
    uint64_t ticket = 5;
    void *ud = &ticket;
    EXPECT(NET_MESH_ERR_BATCH_REFUSED, net_mesh_runtime_deliver_batch_begin(ra, origin, evs, 3, 0, &ticket, &ud));
    CHECK(net_mesh_last_error_code() == NET_MESH_ERR_BATCH_REFUSED);
    CHECK(ticket == 0 && ud == NULL);
    net_mesh_daemon_stats s = stats_of(d);
    CHECK(s.events_processed == 0 && s.errors == 0);
    /* one by one they are queued (no outputs) */
    for (int i = 0; i < 3; i++) {
        net_mesh_event_list outs = NET_MESH_EVENT_LIST_INIT;
        OK(net_mesh_runtime_deliver(ra, origin, &evs[i], &outs));
        CHECK(outs.len == 0);
        net_mesh_event_list_free(&outs);
    }
    for (int i = 0; i < 500 && ex_pending() == 0; i++) sleep_ms(10);
    OK(net_mesh_migration_cancel(m));
    EXPECT(NET_MESH_ERR_MIGRATION, net_mesh_migration_wait(m, 5000, 0));
    net_mesh_migration_free(m);
    /* back in the normal phase on the source: the queued three ran, and
     * batches are granted again */
    s = stats_of(d);
    CHECK(s.events_processed == 3);
    OK(net_mesh_runtime_deliver_batch_begin(ra, origin, evs, 1, 0, &ticket, &ud));
    OK(net_mesh_runtime_deliver_batch_abort(ra, origin, ticket, NULL));
    for (int i = 0; i < 100 && ex_pump() == 0; i++) sleep_ms(10);
    net_mesh_daemon_free(d);
    net_mesh_identity_free(id);
    net_mesh_runtime_free(ra);
    net_mesh_runtime_free(rb);
    ex_pump();
    net_mesh_node_free(a);
    net_mesh_node_free(b);
}

int main(void) {
    refused_while_migrating();
    return nm_report("batchmig");
}
