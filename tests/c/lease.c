/* Host-driven delivery (net_mesh_runtime_deliver_begin / _commit / _abort,
 * and their block forms):
 * the host runs its daemon itself; outputs and chain equal deliver's, every
 * misuse is refused without a crash, and a lease never stays locked. */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>
#include <unistd.h>

static net_mesh_runtime *new_runtime(net_mesh_node **node) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    OK(net_mesh_node_new(&o, node));
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(*node, NULL, &rt));
    OK(register_kind(rt, "counter", counter_create));
    OK(net_mesh_runtime_start(rt));
    return rt;
}

static void free_runtime(net_mesh_runtime *rt, net_mesh_node *node) {
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
}

/* What a host does for a counter daemon: run it on the leased instance and
 * write its one output as a record. */
static size_t run_counter(void *ud, uint8_t rec[16]) {
    counter *c = ud;
    put64(rec, 8);
    put64(rec + 8, ++c->n);
    return 16;
}

static void happy_path_equals_deliver(void) {
    net_mesh_node *na = NULL, *nb = NULL;
    net_mesh_runtime *ra = new_runtime(&na), *rb = new_runtime(&nb);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    net_mesh_daemon *da = NULL, *db = NULL;
    net_mesh_daemon_config cfg;
    net_mesh_daemon_config_init(&cfg);
    cfg.auto_snapshot_interval = 2;
    OK(net_mesh_runtime_spawn(ra, "counter", id, &cfg, &da));
    OK(net_mesh_runtime_spawn(rb, "counter", id, &cfg, &db));
    for (uint64_t i = 1; i <= 5; i++) {
        net_mesh_event ev = make_event(100 + i % 2, i, "in", 2);
        net_mesh_event_list want = {0};
        OK(net_mesh_runtime_deliver(ra, origin, &ev, &want));
        uint64_t ticket = 0;
        void *ud = NULL;
        OK(net_mesh_runtime_deliver_begin(rb, origin, &ev, &ticket, &ud));
        CHECK(ticket != 0 && ud != NULL);
        uint8_t rec[16];
        size_t n = 99, len = run_counter(ud, rec);
        uint64_t meta[8];
        OK(net_mesh_runtime_deliver_commit(rb, origin, ticket, rec, len, meta, 8, &n));
        CHECK(n == 1 && want.len == 1);
        if (n == 1 && want.len == 1) {
            const net_mesh_event *w = &want.events[0];
            CHECK(w->link.sequence == meta[0] && meta[0] == i);
            CHECK(w->link.parent_hash == meta[1]);
            CHECK(w->link.horizon == meta[2]);
            CHECK(meta[3] != 0);
            CHECK(w->payload_len == 8 && memcmp(w->payload, rec + 8, 8) == 0);
        }
        net_mesh_event_list_free(&want);
    }
    net_mesh_daemon_stats sa = stats_of(da), sb = stats_of(db);
    CHECK(sa.events_processed == 5 && sb.events_processed == 5);
    CHECK(sb.events_emitted == 5 && sb.errors == 0);
    CHECK(sa.snapshots_taken == 2 && sb.snapshots_taken == 2);
    /* the leased daemon's state is what the host's runs made it */
    net_mesh_bytes snap = {0};
    OK(net_mesh_runtime_snapshot(rb, origin, &snap));
    CHECK(snap.len > 0);
    net_mesh_bytes_free(&snap);
    net_mesh_daemon_free(da);
    net_mesh_daemon_free(db);
    net_mesh_identity_free(id);
    free_runtime(ra, na);
    free_runtime(rb, nb);
}

static void misuse(void) {
    net_mesh_node *node = NULL;
    net_mesh_runtime *rt = new_runtime(&node);
    net_mesh_identity *id = NULL, *id2 = NULL;
    OK(net_mesh_identity_generate(&id));
    OK(net_mesh_identity_generate(&id2));
    uint64_t origin = origin_of(id), origin2 = origin_of(id2);
    net_mesh_daemon *d = NULL;
    OK(net_mesh_runtime_spawn(rt, "counter", id, NULL, &d));
    OK(net_mesh_runtime_spawn(rt, "counter", id2, NULL, NULL));
    net_mesh_event ev = make_event(1, 1, "x", 1);
    uint64_t ticket = 7, meta[8];
    void *ud = (void *)&ticket;
    size_t n = 0;

    /* NULLs and bad handles */
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_begin(NULL, origin, &ev, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin(rt, origin, NULL, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin(rt, origin, &ev, NULL, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, NULL));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver_begin(rt, 12345, &ev, &ticket, &ud));
    CHECK(ticket == 0 && ud == NULL);
    net_mesh_event bad = make_event(1, 1, NULL, 3);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin(rt, origin, &bad, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit(rt, origin, 0, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, 0, NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, 999999999, "x"));

    /* a live lease: wrong tickets, daemons and handles change nothing */
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    CHECK(ticket != 0);
    uint8_t rec[16];
    size_t len = run_counter(ud, rec);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit(rt, origin, ticket + 1, rec, len, meta, 8, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit(rt, origin2, ticket, rec, len, meta, 8, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin2, ticket, NULL));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_commit(NULL, origin, ticket, rec, len, meta, 8, &n));
    /* other daemons are not blocked by the lease */
    net_mesh_event_list outs = {0};
    OK(net_mesh_runtime_deliver(rt, origin2, &ev, &outs));
    CHECK(outs.len == 1);
    net_mesh_event_list_free(&outs);
    OK(net_mesh_runtime_deliver_commit(rt, origin, ticket, rec, len, meta, 8, &n));
    CHECK(n == 1 && meta[0] == 1);
    /* stale: committed tickets are dead */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit(rt, origin, ticket, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, ticket, NULL));

    /* malformed records, meta too small, NULL n_out: refused, nothing
     * appended, the lease released and counted as an error */
    static const uint8_t truncated[4] = {1, 0, 0, 0};
    uint8_t overrun[12] = {0};
    put64(overrun, 5); /* claims 5 bytes, 4 follow */
    uint8_t two[32];
    put64(two, 8);
    put64(two + 8, 77);
    put64(two + 16, 8);
    put64(two + 24, 78);
    struct { const uint8_t *r; size_t len; size_t cap; int null_n; int null_recs; } cases[] = {
        {truncated, sizeof truncated, 8, 0, 0},
        {overrun, sizeof overrun, 8, 0, 0},
        {two, sizeof two, 4, 0, 0},
        {rec, 16, 0, 0, 0},
        {rec, 16, 8, 1, 0},
        {NULL, 16, 8, 0, 1},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
        n = 99;
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT,
               net_mesh_runtime_deliver_commit(rt, origin, ticket, cases[i].null_recs ? NULL : cases[i].r,
                                               cases[i].len, meta, cases[i].cap, cases[i].null_n ? NULL : &n));
        if (cases[i].r == two) CHECK(n == 2); /* tells how many values were needed */
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, ticket, NULL));
    }
    /* abort */
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    OK(net_mesh_runtime_deliver_abort(rt, origin, ticket, "host process raised"));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, ticket, NULL));

    /* the daemon is still usable, and nothing was appended by the refusals */
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    CHECK(outs.len == 1 && outs.events[0].link.sequence == 2);
    net_mesh_event_list_free(&outs);
    /* no outputs: records NULL/0, meta NULL */
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    OK(net_mesh_runtime_deliver_commit(rt, origin, ticket, NULL, 0, NULL, 0, &n));
    CHECK(n == 0);
    net_mesh_daemon_stats st = stats_of(d);
    CHECK(st.events_processed == 3 && st.events_emitted == 2 && st.errors == ncases + 1);

    net_mesh_daemon_free(d);
    net_mesh_identity_free(id);
    net_mesh_identity_free(id2);
    free_runtime(rt, node);
}

struct waiter {
    net_mesh_runtime *rt;
    uint64_t origin;
    atomic_int done;
    uint64_t seq;
    int rc;
};

static void *deliver_thread(void *p) {
    struct waiter *w = p;
    net_mesh_event ev = make_event(2, 2, "y", 1);
    net_mesh_event_list outs = {0};
    w->rc = net_mesh_runtime_deliver(w->rt, w->origin, &ev, &outs);
    if (w->rc == NET_MESH_OK && outs.len == 1) w->seq = outs.events[0].link.sequence;
    net_mesh_event_list_free(&outs);
    atomic_store(&w->done, 1);
    return NULL;
}

static void threads_and_stop(void) {
    net_mesh_node *node = NULL;
    net_mesh_runtime *rt = new_runtime(&node);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    /* spawn_with_daemon: begin hands back the very user_data given */
    counter *c = calloc(1, sizeof *c);
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    f.finalize = factory_finalize;
    OK(net_mesh_runtime_spawn_with_daemon(rt, id, NULL, &vt, c, &f, NULL, NULL));

    net_mesh_event ev = make_event(2, 1, "x", 1);
    uint64_t ticket = 0, meta[4];
    void *ud = NULL;
    size_t n = 0;
    uint8_t rec[16];
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    CHECK(ud == c);
    /* another thread's deliver to the leased daemon waits for the lease */
    struct waiter w = {.rt = rt, .origin = origin};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, deliver_thread, &w) == 0);
    usleep(50 * 1000);
    CHECK(atomic_load(&w.done) == 0);
    size_t len = run_counter(ud, rec);
    OK(net_mesh_runtime_deliver_commit(rt, origin, ticket, rec, len, meta, 4, &n));
    pthread_join(t, NULL);
    CHECK(w.rc == NET_MESH_OK && w.seq == 2 && meta[0] == 1 && c->n == 2);

    /* stop while leased: commit still works; the finalizer runs after it */
    int before = atomic_load(&daemons_finalized);
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    OK(net_mesh_runtime_stop(rt, origin));
    CHECK(atomic_load(&daemons_finalized) == before);
    len = run_counter(ud, rec);
    OK(net_mesh_runtime_deliver_commit(rt, origin, ticket, rec, len, meta, 4, &n));
    CHECK(n == 1 && meta[0] == 3);
    CHECK(atomic_load(&daemons_finalized) == before + 1);
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));

    net_mesh_identity_free(id);
    free_runtime(rt, node);
}

/* The runtime freed while a lease is open (as a host's daemon code might):
 * commit with the freed handle is _BAD_HANDLE and still ends the lease, so
 * the daemon is finalized and nothing stays locked. */
static void free_while_leased(void) {
    net_mesh_node *node = NULL;
    net_mesh_runtime *rt = new_runtime(&node);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id), ticket = 0, meta[4];
    OK(net_mesh_runtime_spawn(rt, "counter", id, NULL, NULL));
    net_mesh_event ev = make_event(3, 1, "x", 1);
    void *ud = NULL;
    size_t n = 0;
    uint8_t rec[16];
    int before = atomic_load(&daemons_finalized);
    OK(net_mesh_runtime_deliver_begin(rt, origin, &ev, &ticket, &ud));
    size_t len = run_counter(ud, rec);
    net_mesh_runtime_free(rt);
    CHECK(atomic_load(&daemons_finalized) == before);
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_commit(rt, origin, ticket, rec, len, meta, 4, &n));
    CHECK(atomic_load(&daemons_finalized) == before + 1);
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_abort(rt, origin, ticket, NULL));
    net_mesh_identity_free(id);
    net_mesh_node_free(node);
}

/* The block forms (net_mesh_delivery): the same chain as deliver, one, none
 * and several outputs, the self-lease check and held_by, misuse refused. */
static void block_form(void) {
    net_mesh_node *na = NULL, *nb = NULL;
    net_mesh_runtime *ra = new_runtime(&na), *rb = new_runtime(&nb);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    net_mesh_daemon *db = NULL;
    OK(net_mesh_runtime_spawn(ra, "counter", id, NULL, NULL));
    OK(net_mesh_runtime_spawn(rb, "counter", id, NULL, &db));
    net_mesh_delivery d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    d.rt = rb;
    d.origin = origin;
    d.thread = 42;
    int held = 7;
    for (uint64_t i = 1; i <= 3; i++) {
        net_mesh_event ev = make_event(100 + i, i, "in", 2);
        net_mesh_event_list want = {0};
        OK(net_mesh_runtime_deliver(ra, origin, &ev, &want));
        d.event = ev;
        OK(net_mesh_runtime_deliver_begin_block(&d));
        CHECK(d.ticket != 0 && d.daemon_user_data != NULL);
        /* the holder's own begin (another block) would wait on itself */
        net_mesh_delivery again = d;
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin_block(&again));
        CHECK(again.ticket == 0);
        OK(net_mesh_runtime_deliver_held_by(rb, origin, 42, &held));
        CHECK(held == 1);
        OK(net_mesh_runtime_deliver_held_by(rb, origin, 43, &held));
        CHECK(held == 0);
        OK(net_mesh_runtime_deliver_held_by(rb, 12345, 42, &held));
        CHECK(held == 0);
        uint8_t rec[16];
        run_counter(d.daemon_user_data, rec);
        d.n_outputs = 1;
        d.data = rec + 8; /* one output: its bytes, no record header */
        d.data_len = 8;
        OK(net_mesh_runtime_deliver_commit_block(&d));
        CHECK(d.ticket == 0);
        OK(net_mesh_runtime_deliver_held_by(rb, origin, 42, &held));
        CHECK(held == 0);
        CHECK(want.len == 1);
        if (want.len == 1) {
            const net_mesh_event *w = &want.events[0];
            CHECK(w->link.sequence == d.meta1[0] && d.meta1[0] == i);
            CHECK(w->link.parent_hash == d.meta1[1] && w->link.horizon == d.meta1[2]);
            CHECK(d.meta1[3] != 0);
            CHECK(w->payload_len == 8 && memcmp(w->payload, rec + 8, 8) == 0);
        }
        net_mesh_event_list_free(&want);
    }
    /* no outputs, then two records into meta */
    d.event = make_event(1, 9, "x", 1);
    OK(net_mesh_runtime_deliver_begin_block(&d));
    d.n_outputs = 0;
    d.data = NULL;
    d.data_len = 5; /* ignored */
    OK(net_mesh_runtime_deliver_commit_block(&d));
    uint8_t two[34];
    put64(two, 8);
    put64(two + 8, 77);
    put64(two + 16, 10);
    memcpy(two + 24, "0123456789", 10);
    uint64_t meta[8] = {0};
    OK(net_mesh_runtime_deliver_begin_block(&d));
    d.n_outputs = 2;
    d.data = two;
    d.data_len = sizeof two;
    d.meta = meta;
    d.meta_cap = 8;
    OK(net_mesh_runtime_deliver_commit_block(&d));
    CHECK(meta[0] == 4 && meta[4] == 5 && meta[5] != 0 && d.ticket == 0);
    /* refused outputs end the lease as a failed process: a count that does
     * not match, meta too small, NULL meta, NULL data with a length */
    struct { uint64_t n; const uint8_t *data; size_t len; uint64_t *meta; size_t cap; } bad[] = {
        {3, two, sizeof two, meta, 12},
        {2, two, sizeof two, meta, 7},
        {2, two, sizeof two, NULL, 8},
        {1, NULL, 4, NULL, 0},
        {2, two, 20, meta, 8},
    };
    size_t nbad = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < nbad; i++) {
        OK(net_mesh_runtime_deliver_begin_block(&d));
        uint64_t t = d.ticket;
        d.n_outputs = bad[i].n;
        d.data = bad[i].data;
        d.data_len = bad[i].len;
        d.meta = bad[i].meta;
        d.meta_cap = bad[i].cap;
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit_block(&d));
        CHECK(d.ticket == 0);
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rb, origin, t, NULL));
    }
    /* a stale ticket changes nothing and stays in the block */
    d.ticket = 1;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit_block(&d));
    CHECK(d.ticket == 1);
    /* thread 0 checks nothing (a begin would then wait): abort ends it */
    d.thread = 0;
    OK(net_mesh_runtime_deliver_begin_block(&d));
    OK(net_mesh_runtime_deliver_held_by(rb, origin, 0, &held));
    CHECK(held == 0);
    OK(net_mesh_runtime_deliver_abort(rb, origin, d.ticket, "host failed"));
    net_mesh_daemon_stats st = stats_of(db);
    CHECK(st.events_processed == 5 && st.events_emitted == 5 && st.errors == nbad + 1);
    /* misuse */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin_block(NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit_block(NULL));
    d.size = sizeof d - 1;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_begin_block(&d));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit_block(&d));
    d.size = sizeof d;
    d.rt = NULL;
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_begin_block(&d));
    CHECK(d.ticket == 0);
    d.rt = rb;
    d.origin = 12345;
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver_begin_block(&d));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_held_by(rb, origin, 42, NULL));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_held_by(NULL, origin, 42, &held));
    net_mesh_daemon_free(db);
    net_mesh_identity_free(id);
    free_runtime(ra, na);
    free_runtime(rb, nb);
}

int main(void) {
    happy_path_equals_deliver();
    misuse();
    threads_and_stop();
    free_while_leased();
    block_form();
    return nm_report("lease");
}
