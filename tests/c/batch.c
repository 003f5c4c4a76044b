/* Batched host-driven delivery (net_mesh_runtime_deliver_batch_begin /
 * _commit / _abort): one lease for many events; the chain, horizon and stats
 * equal single deliveries, every misuse is refused without a crash, and a
 * lease never stays locked. (A migrating daemon refusing batches:
 * batchmig.c, which needs the network.) */
#include "harness.h"
#include "daemons.h"
/* multi: counts events and emits seq % 3 outputs of 9 bytes each (the
 * count, then the output's index); payload "fail" fails. The same logic
 * runs as a process callback (single deliveries) and in the host (batches). */
static int multi_run(counter *c, const net_mesh_event *ev, uint8_t out[2][9]) {
    if (ev->payload_len == 4 && memcmp(ev->payload, "fail", 4) == 0) return -1;
    c->n++;
    int k = (int)(ev->link.sequence % 3);
    for (int i = 0; i < k; i++) {
        put64(out[i], c->n);
        out[i][8] = (uint8_t)i;
    }
    return k;
}
static int multi_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    uint8_t o[2][9];
    int k = multi_run(ud, ev, o);
    if (k < 0) {
        net_mesh_callback_set_error("multi: fail");
        return 1;
    }
    for (int i = 0; i < k; i++)
        if (net_mesh_outputs_push(out, o[i], 9) != NET_MESH_OK) return 1;
    return 0;
}
static int multi_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    int rc = counter_create(fud, vt, ud);
    vt->name = "multi";
    vt->process = multi_process;
    return rc;
}

static net_mesh_runtime *new_runtime(net_mesh_node **node) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    OK(net_mesh_node_new(&o, node));
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(*node, NULL, &rt));
    OK(register_kind(rt, "multi", multi_create));
    OK(register_kind(rt, "counter", counter_create));
    OK(net_mesh_runtime_start(rt));
    return rt;
}

#define MAXN 64
#define RECCAP (MAXN * (8 + 2 * 17))

/* A host's batch: run ud's multi on evs until one fails, commit. Returns
 * the number of events done; *n_out and meta as the commit wrote them. */
static size_t host_batch(net_mesh_runtime *rt, uint64_t origin, const net_mesh_event *evs, size_t n,
                         uint64_t *meta, size_t meta_cap, size_t *n_out) {
    uint64_t ticket = 0;
    void *ud = NULL;
    OK(net_mesh_runtime_deliver_batch_begin(rt, origin, evs, n, 0, &ticket, &ud));
    if (!ticket) return 0;
    uint8_t recs[RECCAP];
    size_t len = 0, done = 0;
    int failed = 0;
    for (; done < n; done++) {
        uint8_t o[2][9];
        int k = multi_run(ud, &evs[done], o);
        if (k < 0) {
            failed = 1;
            break;
        }
        put64(recs + len, (uint64_t)k);
        len += 8;
        for (int i = 0; i < k; i++) {
            put64(recs + len, 9);
            memcpy(recs + len + 8, o[i], 9);
            len += 17;
        }
    }
    OK(net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, done, failed, len ? recs : NULL, len, meta,
                                             meta_cap, n_out));
    return done;
}

static void twins(int fail_at) {
    net_mesh_node *na = NULL, *nb = NULL;
    net_mesh_runtime *ra = new_runtime(&na), *rb = new_runtime(&nb);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    net_mesh_daemon *da = NULL, *db = NULL;
    net_mesh_daemon_config cfg;
    net_mesh_daemon_config_init(&cfg);
    cfg.auto_snapshot_interval = 50; /* > a batch: at most one crossing each */
    OK(net_mesh_runtime_spawn(ra, "multi", id, &cfg, &da));
    OK(net_mesh_runtime_spawn(rb, "multi", id, &cfg, &db));
    uint64_t seq = 0;
    static const size_t sizes[] = {1, 7, 40, 3, 33};
    for (size_t r = 0; r < sizeof sizes / sizeof sizes[0]; r++) {
        size_t n = sizes[r];
        net_mesh_event evs[MAXN];
        uint8_t pays[MAXN][2];
        for (size_t i = 0; i < n; i++) {
            seq++;
            pays[i][0] = (uint8_t)seq;
            pays[i][1] = (uint8_t)(seq >> 8);
            evs[i] = make_event(100 + seq % 5, seq, pays[i], 2);
            if (fail_at >= 0 && r == 2 && i == (size_t)fail_at) evs[i] = make_event(100, seq, "fail", 4);
        }
        uint64_t meta[4 * 2 * MAXN];
        size_t n_out = 0;
        size_t done = host_batch(rb, origin, evs, n, meta, sizeof meta / sizeof meta[0], &n_out);
        CHECK(done == ((fail_at >= 0 && r == 2) ? (size_t)fail_at : n));
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            net_mesh_event_list want = NET_MESH_EVENT_LIST_INIT;
            int rc = net_mesh_runtime_deliver(ra, origin, &evs[i], &want);
            if (i >= done) {
                CHECK(rc == NET_MESH_ERR_PROCESS_FAILED);
                break; /* the rest never ran in the batch either */
            }
            CHECK(rc == NET_MESH_OK);
            for (size_t k = 0; k < want.len; k++, m++) {
                CHECK(m < n_out);
                if (m >= n_out) break;
                CHECK(want.events[k].link.sequence == meta[4 * m]);
                CHECK(want.events[k].link.parent_hash == meta[4 * m + 1]);
                CHECK(want.events[k].link.horizon == meta[4 * m + 2]);
                CHECK(meta[4 * m + 3] != 0);
            }
            net_mesh_event_list_free(&want);
        }
        CHECK(m == n_out);
        net_mesh_daemon_stats sa = stats_of(da), sb = stats_of(db);
        CHECK(sa.events_processed == sb.events_processed && sa.events_emitted == sb.events_emitted);
        CHECK(sa.errors == sb.errors && sa.snapshots_taken == sb.snapshots_taken);
    }
    /* one more single delivery on each: same parent hash and horizon, so
     * the chain heads and input horizons are the same */
    net_mesh_event ev = make_event(999, 1000, "z", 1);
    ev.link.sequence = 2; /* 2 % 3 = 2 outputs */
    net_mesh_event_list a = NET_MESH_EVENT_LIST_INIT, b = NET_MESH_EVENT_LIST_INIT;
    OK(net_mesh_runtime_deliver(ra, origin, &ev, &a));
    OK(net_mesh_runtime_deliver(rb, origin, &ev, &b));
    CHECK(a.len == 2 && b.len == 2);
    for (size_t k = 0; k < a.len && k < b.len; k++) {
        CHECK(a.events[k].link.sequence == b.events[k].link.sequence);
        CHECK(a.events[k].link.parent_hash == b.events[k].link.parent_hash);
        CHECK(a.events[k].link.horizon == b.events[k].link.horizon);
        CHECK(a.events[k].payload_len == 9 && memcmp(a.events[k].payload, b.events[k].payload, 9) == 0);
    }
    net_mesh_event_list_free(&a);
    net_mesh_event_list_free(&b);
    net_mesh_daemon_stats sb = stats_of(db);
    CHECK(sb.errors == (fail_at >= 0 ? 1u : 0u));
    /* events processed 85, 45 or 62 (fail at 0 or 17), interval 50 */
    CHECK(sb.snapshots_taken == (fail_at == 0 ? 0u : 1u));
    net_mesh_daemon_free(da);
    net_mesh_daemon_free(db);
    net_mesh_identity_free(id);
    net_mesh_runtime_free(ra);
    net_mesh_runtime_free(rb);
    net_mesh_node_free(na);
    net_mesh_node_free(nb);
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
    net_mesh_event evs[2] = {make_event(1, 1, "x", 1), make_event(1, 2, "y", 1)};
    uint64_t ticket = 7, meta[16];
    void *ud = &ticket;
    size_t n = 0;

    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_batch_begin(NULL, origin, evs, 2, 0, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, NULL, 2, 0, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 0, 0, &ticket, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 0, NULL, &ud));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 0, &ticket, NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT,
           net_mesh_runtime_deliver_batch_begin(rt, origin, evs, (size_t)1 << 21, 0, &ticket, &ud));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver_batch_begin(rt, 12345, evs, 2, 0, &ticket, &ud));
    CHECK(ticket == 0 && ud == NULL);
    net_mesh_event bad[2] = {make_event(1, 1, "x", 1), make_event(1, 2, NULL, 3)};
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, bad, 2, 0, &ticket, &ud));
    CHECK(strstr(net_mesh_last_error(), "event 1") != NULL);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_commit(rt, origin, 0, 0, 0, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_abort(rt, origin, 0, NULL));

    /* a live batch lease: the calling thread's own begins are refused */
    OK(net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 42, &ticket, &ud));
    CHECK(ticket != 0 && ud != NULL);
    uint64_t t2 = 0;
    void *ud2 = NULL;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 42, &t2, &ud2));
    int held = 0;
    OK(net_mesh_runtime_deliver_held_by(rt, origin, 42, &held));
    CHECK(held == 1);
    /* wrong kind of end, wrong daemon, wrong handle: nothing changes */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_commit(rt, origin, ticket, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_abort(rt, origin, ticket, NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT,
           net_mesh_runtime_deliver_batch_commit(rt, origin2, ticket, 0, 0, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_abort(rt, origin, ticket + 1, NULL));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_deliver_batch_commit(NULL, origin, ticket, 0, 0, NULL, 0, NULL, 0, &n));
    /* other daemons are not blocked */
    net_mesh_event_list outs = NET_MESH_EVENT_LIST_INIT;
    OK(net_mesh_runtime_deliver(rt, origin2, &evs[0], &outs));
    net_mesh_event_list_free(&outs);
    /* two events, counter outputs: [1][8][n=1] [1][8][n=2] */
    uint8_t recs[2 * 24];
    for (int i = 0; i < 2; i++) {
        put64(recs + 24 * i, 1);
        put64(recs + 24 * i + 8, 8);
        put64(recs + 24 * i + 16, (uint64_t)i + 1);
    }
    ((counter *)ud)->n = 2; /* what the host's runs did */
    n = 99;
    OK(net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, 2, 0, recs, sizeof recs, meta, 8, &n));
    CHECK(n == 2 && meta[0] == 1 && meta[4] == 2);
    OK(net_mesh_runtime_deliver_held_by(rt, origin, 42, &held));
    CHECK(held == 0);
    /* stale */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, 0, 0, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_abort(rt, origin, ticket, NULL));
    /* a single ticket does not end through the batch functions */
    uint64_t st = 0;
    OK(net_mesh_runtime_deliver_begin(rt, origin, &evs[0], &st, &ud2));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_commit(rt, origin, st, 0, 0, NULL, 0, NULL, 0, &n));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_abort(rt, origin, st, NULL));
    OK(net_mesh_runtime_deliver_abort(rt, origin, st, "test")); /* errors: 1 */

    /* malformed commits: refused, nothing appended, the lease ended and
     * counted as one error each */
    uint8_t trunc_count[4] = {1, 0, 0, 0};
    uint8_t over_count[8];
    put64(over_count, 3); /* 3 outputs, no bytes */
    uint8_t over_len[20];
    put64(over_len, 1);
    put64(over_len + 8, 9); /* 9 bytes claimed, 4 follow */
    uint8_t left_over[32];
    put64(left_over, 0);
    put64(left_over + 8, 0);
    put64(left_over + 16, 0); /* a third count for two events */
    struct { const uint8_t *r; size_t len; size_t done; int failed; size_t cap; int null_n; } cases[] = {
        {trunc_count, sizeof trunc_count, 1, 0, 16, 0},
        {over_count, sizeof over_count, 1, 0, 16, 0},
        {over_len, sizeof over_len, 1, 0, 16, 0},
        {left_over, 24, 2, 0, 16, 0},
        {NULL, 0, 3, 0, 16, 0},        /* more done than leased */
        {left_over, 16, 2, 1, 16, 0},  /* failed past the last */
        {recs, sizeof recs, 2, 0, 7, 0}, /* meta too small */
        {recs, sizeof recs, 2, 0, 16, 1},
        {NULL, 8, 1, 0, 16, 0},        /* NULL records with a length */
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        OK(net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 0, &ticket, &ud));
        n = 99;
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT,
               net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, cases[i].done, cases[i].failed, cases[i].r,
                                                     cases[i].len, meta, cases[i].cap, cases[i].null_n ? NULL : &n));
        if (cases[i].cap == 7) CHECK(n == 2); /* tells how many outputs the records hold */
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_deliver_batch_abort(rt, origin, ticket, NULL));
    }
    /* abort: one error, nothing appended */
    OK(net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 0, &ticket, &ud));
    OK(net_mesh_runtime_deliver_batch_abort(rt, origin, ticket, "host gave up"));
    /* failed at event 0: nothing done, one error */
    OK(net_mesh_runtime_deliver_batch_begin(rt, origin, evs, 2, 0, &ticket, &ud));
    OK(net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, 0, 1, NULL, 0, NULL, 0, &n));
    CHECK(n == 0);
    /* the daemon is usable and the refusals appended nothing */
    OK(net_mesh_runtime_deliver(rt, origin, &evs[0], &outs));
    CHECK(outs.len == 1 && outs.events[0].link.sequence == 3);
    net_mesh_event_list_free(&outs);
    net_mesh_daemon_stats s = stats_of(d);
    CHECK(s.events_processed == 3 && s.events_emitted == 3 && s.errors == 1 + ncases + 2);
    CHECK(strcmp(net_mesh_status_kind(NET_MESH_ERR_BATCH_REFUSED), "batch-refused") == 0);

    net_mesh_daemon_free(d);
    net_mesh_identity_free(id);
    net_mesh_identity_free(id2);
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
}

int main(void) {
    twins(-1);
    twins(0);
    twins(17);
    misuse();
    return nm_report("batch");
}
