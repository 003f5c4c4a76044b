/* Live migration through the ABI: two nodes in one process move a C counter
 * daemon (BEHAVIOUR §3–§5), progress and completion callbacks, the output
 * sink, a single-threaded host whose executor runs on the thread that also
 * delivers (no deadlock), cancel, waits with deadlines, failures readable
 * from another thread, queue-full, and bad input on every migration function. */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static net_mesh_node *new_node(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    net_mesh_node *n = NULL;
    OK(net_mesh_node_new(&o, &n));
    return n;
}

/* A and B with a session (each learns the other's X25519 key). */
typedef struct pair {
    net_mesh_node *a, *b;
    uint64_t aid, bid;
    net_mesh_runtime *ra, *rb;
} pair;

static pair new_pair(int start_b) {
    pair p;
    memset(&p, 0, sizeof p);
    p.a = new_node();
    p.b = new_node();
    OK(net_mesh_node_id(p.a, &p.aid));
    OK(net_mesh_node_id(p.b, &p.bid));
    uint8_t bkey[32];
    net_mesh_bytes baddr = {0};
    OK(net_mesh_node_public_key(p.b, bkey));
    OK(net_mesh_node_addr(p.b, &baddr));
    OK(net_mesh_node_accept(p.b, p.aid));
    OK(net_mesh_node_connect(p.a, (const char *)baddr.data, bkey, p.bid, 5000));
    net_mesh_bytes_free(&baddr);
    OK(net_mesh_runtime_new(p.a, NULL, &p.ra));
    OK(net_mesh_runtime_new(p.b, NULL, &p.rb));
    OK(register_kind(p.ra, "counter", counter_create));
    OK(register_kind(p.rb, "counter", counter_create));
    OK(net_mesh_runtime_start(p.ra));
    if (start_b) OK(net_mesh_runtime_start(p.rb));
    return p;
}

static void free_pair(pair *p) {
    net_mesh_runtime_free(p->ra);
    net_mesh_runtime_free(p->rb);
    net_mesh_node_free(p->a);
    net_mesh_node_free(p->b);
}

/* Deliver one event; returns the counter value it output (0: none). */
static uint64_t deliver_count(net_mesh_runtime *rt, uint64_t origin, int want_rc) {
    net_mesh_event ev = make_event(7, 1, "e", 1);
    net_mesh_event_list outs = {0};
    int rc = net_mesh_runtime_deliver(rt, origin, &ev, &outs);
    EXPECT(want_rc, rc);
    uint64_t v = 0;
    if (rc == NET_MESH_OK && outs.len == 1 && outs.events[0].payload_len == 8) v = get64(outs.events[0].payload);
    if (rc == NET_MESH_OK) net_mesh_event_list_free(&outs);
    return v;
}

static uint64_t count_of(net_mesh_runtime *rt) {
    uint64_t n = 99;
    OK(net_mesh_runtime_daemon_count(rt, &n));
    return n;
}

/* ---- progress / completion recorders ---- */

typedef struct recorder {
    pthread_mutex_t mu;
    unsigned phases; /* bit per phase seen */
    int calls;
    int last_phase;
    int order_ok; /* phases never went backwards */
    uint64_t max_total_bytes, last_bytes, last_total;
    int completed, status, finalized, calls_after_complete;
    pthread_t thread;
} recorder;

static void rec_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->order_ok = 1;
}

static void on_progress(void *ud, int phase, uint64_t bytes, uint64_t total, uint64_t chunks,
                        uint64_t total_chunks) {
    (void)chunks; (void)total_chunks;
    recorder *r = ud;
    pthread_mutex_lock(&r->mu);
    if (phase < r->last_phase) r->order_ok = 0;
    r->last_phase = phase;
    r->phases |= 1u << phase;
    r->calls++;
    if (total > r->max_total_bytes) r->max_total_bytes = total;
    /* the report for the last chunk may already carry the next phase (a fast
     * target restores before the sender's report lands), so bytes are
     * tracked from TRANSFER on */
    if (phase >= NET_MESH_MIGRATION_PHASE_TRANSFER) {
        r->last_bytes = bytes;
        r->last_total = total;
    }
    if (r->completed) r->calls_after_complete++;
    r->thread = pthread_self();
    pthread_mutex_unlock(&r->mu);
}
static void on_complete(void *ud, int status) {
    recorder *r = ud;
    pthread_mutex_lock(&r->mu);
    r->completed++;
    r->status = status;
    pthread_mutex_unlock(&r->mu);
}
static void rec_fin(void *ud) {
    recorder *r = ud;
    pthread_mutex_lock(&r->mu);
    r->finalized++;
    pthread_mutex_unlock(&r->mu);
}
static int rec_get(recorder *r, int *field) {
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}
static int wait_for(recorder *r, int *field, int want) {
    for (int i = 0; i < 500 && rec_get(r, field) < want; i++) sleep_ms(10);
    return rec_get(r, field) >= want;
}

/* ---- output sink recorder ---- */

#define SINK_CAP 64
typedef struct sink {
    pthread_mutex_t mu;
    uint64_t origin;
    uint64_t vals[SINK_CAP];
    int n;
    int finalized;
    int wrong_thread;
    pthread_t want_thread;
    int check_thread;
} sink;

static void on_sink(void *ud, uint64_t origin, const net_mesh_event_list *outs) {
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->origin = origin;
    if (s->check_thread && !pthread_equal(s->want_thread, pthread_self())) s->wrong_thread++;
    for (size_t i = 0; i < outs->len && s->n < SINK_CAP; i++)
        if (outs->events[i].payload_len == 8) s->vals[s->n++] = get64(outs->events[i].payload);
    pthread_mutex_unlock(&s->mu);
}
static void sink_fin(void *ud) {
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->finalized++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- a host executor whose tasks run only when the main thread pumps ---- */

#define QCAP 256
static struct {
    pthread_mutex_t mu;
    pthread_cond_t posted; /* signalled on every post */
    net_mesh_task *q[QCAP];
    int head, n;
    int finalized;
} ex = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static void ex_post(void *ud, net_mesh_task *t) {
    (void)ud;
    pthread_mutex_lock(&ex.mu);
    if (ex.n < QCAP) ex.q[(ex.head + ex.n++) % QCAP] = t;
    pthread_cond_broadcast(&ex.posted);
    pthread_mutex_unlock(&ex.mu);
}
static void ex_fin(void *ud) {
    (void)ud;
    __atomic_fetch_add(&ex.finalized, 1, __ATOMIC_SEQ_CST);
}
/* Run the oldest posted task, if any; returns 1 if one ran. */
static int ex_run_one(void) {
    pthread_mutex_lock(&ex.mu);
    net_mesh_task *t = NULL;
    if (ex.n) {
        t = ex.q[ex.head];
        ex.head = (ex.head + 1) % QCAP;
        ex.n--;
    }
    pthread_mutex_unlock(&ex.mu);
    if (!t) return 0;
    OK(net_mesh_task_run(t));
    return 1;
}
/* Run the tasks posted so far, in order; returns how many ran. */
static int ex_pump(void) {
    int ran = 0;
    while (ex_run_one()) ran++;
    return ran;
}
static int ex_pending(void) {
    pthread_mutex_lock(&ex.mu);
    int n = ex.n;
    pthread_mutex_unlock(&ex.mu);
    return n;
}
/* Block until a task is pending or ms passed (the library's own threads make
 * progress meanwhile); returns the number pending. Never runs a task. */
static int ex_wait_post(int ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)ms * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&ex.mu);
    while (ex.n == 0 && pthread_cond_timedwait(&ex.posted, &ex.mu, &dl) == 0) {
    }
    int n = ex.n;
    pthread_mutex_unlock(&ex.mu);
    return n;
}

/* ---- 1. counter at 3 on A continues at 4 on B, and comes back ---- */

static void counter_roundtrip(void) {
    pair p = new_pair(1);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_expect_migration(p.rb, "counter", origin, NULL));
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    for (uint64_t i = 1; i <= 3; i++) CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == i);

    recorder rec;
    rec_init(&rec);
    int fin_before = atomic_load(&daemons_finalized);
    net_mesh_migration *m = NULL;
    net_mesh_migration_options opts;
    net_mesh_migration_options_init(&opts);
    CHECK(opts.size == sizeof opts && opts.transport_identity == 1 && opts.retry_not_ready_ms == 0);
    OK(net_mesh_runtime_start_migration(p.ra, origin, p.aid, p.bid, &opts, &m));
    /* installed after start: still sees the phases from the first */
    OK(net_mesh_migration_on_progress(m, on_progress, &rec, rec_fin));
    OK(net_mesh_migration_on_complete(m, on_complete, &rec, rec_fin));
    OK(net_mesh_migration_wait(m, 10000, 0));
    OK(net_mesh_migration_wait(m, -1, 0)); /* ended: returns at once, same outcome */
    int phase = -1;
    OK(net_mesh_migration_phase(m, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_NONE);
    OK(net_mesh_runtime_migration_phase(p.ra, origin, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_NONE);
    net_mesh_migration_result res;
    memset(&res, 0, sizeof res);
    res.size = sizeof res;
    OK(net_mesh_migration_result_get(m, &res));
    CHECK(res.finished == 1 && res.status == NET_MESH_OK && res.kind[0] == 0 && res.message.data == NULL);
    CHECK(res.attempts == 1);

    CHECK(wait_for(&rec, &rec.completed, 1));
    CHECK(wait_for(&rec, &rec.finalized, 2)); /* both callbacks retired after the end */
    CHECK(rec.status == NET_MESH_OK);
    CHECK(rec.order_ok);
    unsigned want = (1u << NET_MESH_MIGRATION_PHASE_SNAPSHOT) | (1u << NET_MESH_MIGRATION_PHASE_TRANSFER) |
                    (1u << NET_MESH_MIGRATION_PHASE_RESTORE) | (1u << NET_MESH_MIGRATION_PHASE_CUTOVER) |
                    (1u << NET_MESH_MIGRATION_PHASE_COMPLETE);
    CHECK((rec.phases & want) == want);
    CHECK(rec.max_total_bytes > 0 && rec.last_bytes == rec.last_total);
    CHECK(rec.calls_after_complete == 0);
    CHECK(!pthread_equal(rec.thread, pthread_self())); /* a library thread */

    /* counts A=0 B=1; B continues at 4; A says moved, naming B */
    CHECK(count_of(p.ra) == 0 && count_of(p.rb) == 1);
    CHECK(deliver_count(p.rb, origin, NET_MESH_OK) == 4);
    deliver_count(p.ra, origin, NET_MESH_ERR_DAEMON_MOVED);
    uint64_t moved = 0;
    OK(net_mesh_last_error_moved_to(&moved));
    CHECK(moved == p.bid);
    CHECK(strcmp(net_mesh_status_kind(net_mesh_last_error_code()), "daemon-moved") == 0);
    /* A's instance was finalized when it moved away */
    for (int i = 0; i < 200 && atomic_load(&daemons_finalized) < fin_before + 1; i++) sleep_ms(10);
    CHECK(atomic_load(&daemons_finalized) == fin_before + 1);
    net_mesh_migration_free(m);
    net_mesh_migration_free(m); /* double free: no-op */
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_phase(m, &phase));

    /* back to A, orchestrated by B; A kept its factory entry. No envelope
     * this time: A's entry has the full keypair (it spawned the daemon). */
    net_mesh_migration_options_init(&opts);
    opts.transport_identity = 0;
    OK(net_mesh_runtime_start_migration(p.rb, origin, p.bid, p.aid, &opts, &m));
    OK(net_mesh_migration_wait(m, 10000, 0));
    net_mesh_migration_free(m);
    CHECK(count_of(p.ra) == 1 && count_of(p.rb) == 0);
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 5);
    deliver_count(p.rb, origin, NET_MESH_ERR_DAEMON_MOVED);
    OK(net_mesh_last_error_moved_to(&moved));
    CHECK(moved == p.aid);
    OK(net_mesh_runtime_stop(p.ra, origin));

    free_pair(&p);
    net_mesh_identity_free(id);
    pthread_mutex_destroy(&rec.mu);
}

/* ---- 1b. the target orchestrates: the source's instance is still finalized
 * as soon as the move is final (before: only at the source's stop/free) ---- */

static void orchestrated_by_target(void) {
    pair p = new_pair(1);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_expect_migration(p.rb, "counter", origin, NULL));
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 1);
    int fin_before = atomic_load(&daemons_finalized);
    net_mesh_migration *m = NULL;
    OK(net_mesh_runtime_start_migration(p.rb, origin, p.aid, p.bid, NULL, &m));
    OK(net_mesh_migration_wait(m, 10000, 0));
    net_mesh_migration_free(m);
    CHECK(deliver_count(p.rb, origin, NET_MESH_OK) == 2);
    /* A finalizes its instance on a library thread once the move is final */
    for (int i = 0; i < 500 && atomic_load(&daemons_finalized) < fin_before + 1; i++) sleep_ms(10);
    CHECK(atomic_load(&daemons_finalized) == fin_before + 1);
    OK(net_mesh_runtime_stop(p.rb, origin));
    CHECK(atomic_load(&daemons_finalized) == fin_before + 2);
    free_pair(&p);
    CHECK(atomic_load(&daemons_finalized) == fin_before + 2); /* exactly once each */
    net_mesh_identity_free(id);
}

/* ---- 2. failures: factory-not-found (read from another thread), unknown
 * target, not ready ---- */

typedef struct reader { net_mesh_migration *m; net_mesh_migration_result res; int rc; } reader;
static void *read_result(void *arg) {
    reader *r = arg;
    memset(&r->res, 0, sizeof r->res);
    r->res.size = sizeof r->res;
    r->rc = net_mesh_migration_result_get(r->m, &r->res);
    return NULL;
}

static void failures(void) {
    pair p = new_pair(1);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 1);

    /* no entry on B: factory-not-found, not retried */
    recorder rec;
    rec_init(&rec);
    net_mesh_migration *m = NULL;
    OK(net_mesh_runtime_start_migration(p.ra, origin, p.aid, p.bid, NULL, &m));
    OK(net_mesh_migration_on_complete(m, on_complete, &rec, rec_fin));
    EXPECT(NET_MESH_ERR_MIGRATION_FAILED, net_mesh_migration_wait(m, 10000, 0));
    CHECK(strcmp(net_mesh_last_error_detail(), "factory-not-found") == 0);
    reader rd = {m, {0}, -1};
    pthread_t t;
    pthread_create(&t, NULL, read_result, &rd);
    pthread_join(t, NULL);
    CHECK(rd.rc == NET_MESH_OK && rd.res.finished == 1);
    CHECK(rd.res.status == NET_MESH_ERR_MIGRATION_FAILED);
    CHECK(strcmp(rd.res.kind, "factory-not-found") == 0);
    CHECK(rd.res.message.len > 0 && strlen((const char *)rd.res.message.data) == rd.res.message.len);
    net_mesh_bytes_free(&rd.res.message);
    CHECK(wait_for(&rec, &rec.completed, 1) && rec.status == NET_MESH_ERR_MIGRATION_FAILED);
    CHECK(wait_for(&rec, &rec.finalized, 1));
    /* a completion callback installed after the end fires too */
    recorder late;
    rec_init(&late);
    OK(net_mesh_migration_on_complete(m, on_complete, &late, rec_fin));
    CHECK(wait_for(&late, &late.completed, 1) && late.status == NET_MESH_ERR_MIGRATION_FAILED);
    CHECK(wait_for(&late, &late.finalized, 1));
    net_mesh_migration_free(m);
    /* the daemon stayed on A and keeps counting; no stale record */
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 2);
    CHECK(count_of(p.ra) == 1 && count_of(p.rb) == 0);

    /* unknown target: start fails, nothing left behind, a retry is possible */
    int rc = net_mesh_runtime_start_migration(p.ra, origin, p.aid, 0xdeadbeefull, NULL, &m);
    CHECK(rc == NET_MESH_ERR_MIGRATION);
    CHECK(strcmp(net_mesh_last_error_detail(), "target-unavailable") == 0 ||
          strcmp(net_mesh_last_error_detail(), "state-failed") == 0);
    rc = net_mesh_runtime_start_migration(p.ra, origin, p.aid, 0xdeadbeefull, NULL, &m);
    CHECK(rc == NET_MESH_ERR_MIGRATION && strcmp(net_mesh_last_error_detail(), "already-migrating") != 0);
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 3);

    /* unknown daemon */
    EXPECT(NET_MESH_ERR_MIGRATION, net_mesh_runtime_start_migration(p.ra, 0x42, p.aid, p.bid, NULL, &m));
    CHECK(strcmp(net_mesh_last_error_detail(), "daemon-not-found") == 0);

    /* B registered but not started: its node has no migration dispatcher, so
     * compute-not-supported, quickly and not retried. (not-ready and its
     * retry budget need a target that answers not-ready, which only the Go
     * engine's test hook produces.) */
    pair q = new_pair(0);
    net_mesh_identity *id2 = NULL;
    OK(net_mesh_identity_generate(&id2));
    OK(net_mesh_runtime_spawn(q.ra, "counter", id2, NULL, NULL));
    OK(net_mesh_runtime_expect_migration(q.rb, "counter", origin_of(id2), NULL));
    net_mesh_migration_options opts;
    net_mesh_migration_options_init(&opts);
    opts.retry_not_ready_ms = 600;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    OK(net_mesh_runtime_start_migration(q.ra, origin_of(id2), q.aid, q.bid, &opts, &m));
    EXPECT(NET_MESH_ERR_MIGRATION_FAILED, net_mesh_migration_wait(m, 10000, 0));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(strcmp(net_mesh_last_error_detail(), "compute-not-supported") == 0);
    CHECK(t1.tv_sec - t0.tv_sec < 3);
    memset(&rd.res, 0, sizeof rd.res);
    rd.res.size = sizeof rd.res;
    OK(net_mesh_migration_result_get(m, &rd.res));
    CHECK(rd.res.attempts == 1 && strcmp(rd.res.kind, "compute-not-supported") == 0);
    net_mesh_bytes_free(&rd.res.message);
    net_mesh_migration_free(m);
    CHECK(count_of(q.ra) == 1);
    free_pair(&q);
    net_mesh_identity_free(id2);

    free_pair(&p);
    net_mesh_identity_free(id);
    pthread_mutex_destroy(&rec.mu);
    pthread_mutex_destroy(&late.mu);
}

/* ---- 3. a target whose executor is not pumped: wait deadlines, abandon,
 * cancel; the daemon resumes on the source with the queued events ---- */

static void stuck_target(int use_cancel) {
    pair p = new_pair(1);
    OK(net_mesh_runtime_set_executor(p.rb, ex_post, NULL, ex_fin));
    sink sa;
    memset(&sa, 0, sizeof sa);
    pthread_mutex_init(&sa.mu, NULL);
    OK(net_mesh_runtime_set_output_sink(p.ra, on_sink, &sa, sink_fin));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_expect_migration(p.rb, "counter", origin, NULL));
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 1);

    net_mesh_migration *m = NULL;
    OK(net_mesh_runtime_start_migration(p.ra, origin, p.aid, p.bid, NULL, &m));
    /* buffering on the source: accepted, no outputs */
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 0);
    /* the restore waits for B's executor, which nobody runs */
    for (int i = 0; i < 500 && ex_pending() == 0; i++) sleep_ms(10);
    CHECK(ex_pending() > 0);
    EXPECT(NET_MESH_ERR_TIMEOUT, net_mesh_migration_wait(m, 0, 0));
    EXPECT(NET_MESH_ERR_TIMEOUT, net_mesh_migration_wait(m, 50, 0));
    int phase = 0;
    OK(net_mesh_migration_phase(m, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_RESTORE);
    OK(net_mesh_runtime_migration_phase(p.ra, origin, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_RESTORE);
    /* the target's own view (it does not orchestrate) */
    OK(net_mesh_runtime_migration_phase(p.rb, origin, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_RESTORE);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_migration_wait(m, 10, 0x80));
    if (use_cancel) {
        OK(net_mesh_migration_cancel(m));
        EXPECT(NET_MESH_ERR_MIGRATION, net_mesh_migration_wait(m, 5000, 0));
        CHECK(strcmp(net_mesh_last_error_detail(), "state-failed") == 0);
        CHECK(strstr(net_mesh_last_error(), "cancel") != NULL);
        EXPECT(NET_MESH_ERR_MIGRATION, net_mesh_migration_cancel(m)); /* already ended */
        CHECK(strcmp(net_mesh_last_error_detail(), "wrong-phase") == 0);
    } else {
        EXPECT(NET_MESH_ERR_MIGRATION, net_mesh_migration_wait(m, 100, NET_MESH_MIGRATION_WAIT_ABANDON));
        CHECK(strcmp(net_mesh_last_error_detail(), "state-failed") == 0);
        CHECK(strstr(net_mesh_last_error(), "timed out") != NULL);
    }
    OK(net_mesh_migration_phase(m, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_NONE);
    /* the queued event ran on the source, its output went to A's sink */
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&sa.mu);
        int n = sa.n;
        pthread_mutex_unlock(&sa.mu);
        if (n) break;
        sleep_ms(10);
    }
    pthread_mutex_lock(&sa.mu);
    CHECK(sa.n == 1 && sa.vals[0] == 2 && sa.origin == origin);
    pthread_mutex_unlock(&sa.mu);
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 3);
    /* let B's restore run now; the failure report queued behind it rolls
     * the target back: wait for that observable end, not a fixed time */
    int rb_phase = -1;
    for (int i = 0; i < 1000; i++) {
        ex_pump();
        OK(net_mesh_runtime_migration_phase(p.rb, origin, &rb_phase));
        if (rb_phase == NET_MESH_MIGRATION_PHASE_NONE && count_of(p.rb) == 0) break;
        ex_wait_post(10);
    }
    CHECK(rb_phase == NET_MESH_MIGRATION_PHASE_NONE);
    CHECK(count_of(p.ra) == 1 && count_of(p.rb) == 0);
    net_mesh_migration_free(m);
    OK(net_mesh_runtime_set_output_sink(p.ra, NULL, NULL, NULL));
    CHECK(sa.finalized == 1);
    free_pair(&p);
    ex_pump();
    net_mesh_identity_free(id);
    pthread_mutex_destroy(&sa.mu);
}

/* ---- 4. single-threaded host: B's executor runs on this thread, which also
 * delivers to the arriving daemon. Must not deadlock. Documented semantics
 * (core/migration): the migrating source refuses payloads over 7000 bytes
 * (buffer-full); the restored target refuses direct deliveries (wrong-phase)
 * until its first ReplayComplete, then queues them behind the replay; the
 * outputs of queued events arrive at B's sink on this thread, in order, and
 * all of them before the migration completes (the target drains before it
 * acknowledges the activation).
 *
 * Determinism: tasks run one at a time, and a task is only run when it was
 * posted before the state the test waits for was observed absent, so the
 * test itself decides which protocol step happens next. No sleep guesses how
 * long the library takes: waits block on the executor's post signal or on
 * an observable state, with a generous deadline. ---- */

/* Deliver one event of len payload bytes; returns the status and, on OK,
 * the counter value it output (0: queued, no output) in *val. */
static int deliver_len(net_mesh_runtime *rt, uint64_t origin, size_t len, uint64_t *val) {
    static uint8_t big[8192];
    net_mesh_event ev = make_event(7, 1, big, len);
    net_mesh_event_list outs = {0};
    int rc = net_mesh_runtime_deliver(rt, origin, &ev, &outs);
    *val = 0;
    if (rc == NET_MESH_OK) {
        if (outs.len == 1 && outs.events[0].payload_len == 8) *val = get64(outs.events[0].payload);
        net_mesh_event_list_free(&outs);
    }
    return rc;
}

static int is_migration_error(int rc, const char *detail) {
    return rc == NET_MESH_ERR_MIGRATION && strcmp(net_mesh_last_error_detail(), detail) == 0;
}

static void single_threaded_target(void) {
    alarm(60); /* a deadlock fails the test instead of hanging it */
    pair p = new_pair(1);
    OK(net_mesh_runtime_set_executor(p.rb, ex_post, NULL, ex_fin));
    sink sb;
    memset(&sb, 0, sizeof sb);
    pthread_mutex_init(&sb.mu, NULL);
    sb.want_thread = pthread_self();
    sb.check_thread = 1;
    OK(net_mesh_runtime_set_output_sink(p.rb, on_sink, &sb, sink_fin));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_expect_migration(p.rb, "counter", origin, NULL));
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    for (uint64_t i = 1; i <= 3; i++) CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == i);

    recorder rec;
    rec_init(&rec);
    net_mesh_migration *m = NULL;
    OK(net_mesh_runtime_start_migration(p.ra, origin, p.aid, p.bid, NULL, &m));
    OK(net_mesh_migration_on_complete(m, on_complete, &rec, rec_fin));
    /* queued on the source (4, 5 on the target later) */
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 0);
    CHECK(deliver_count(p.ra, origin, NET_MESH_OK) == 0);
    /* too big for BufferedEvents: refused, not queued, not counted */
    uint64_t v = 99;
    CHECK(is_migration_error(deliver_len(p.ra, origin, 7001, &v), "buffer-full"));

    /* Run B's restore; stop as soon as the restored daemon is registered.
     * Sampling the queue before the count means a task run here was posted
     * while the daemon was not registered yet: never the replay, which is
     * posted only after B registered the daemon and A shipped the events. */
    int steps = 0;
    for (;;) {
        int pending = ex_pending();
        if (count_of(p.rb) == 1 || steps++ > 2000) break;
        if (pending) ex_run_one();
        else ex_wait_post(20);
    }
    CHECK(count_of(p.rb) == 1);
    int tphase = -1;
    OK(net_mesh_runtime_migration_phase(p.rb, origin, &tphase));
    CHECK(tphase == NET_MESH_MIGRATION_PHASE_REPLAY);
    /* Restored, replay not run: direct deliveries are refused (nothing a
     * rollback would have to give back), whatever the payload. */
    CHECK(is_migration_error(deliver_len(p.rb, origin, 1, &v), "wrong-phase"));
    CHECK(is_migration_error(deliver_len(p.rb, origin, 7001, &v), "wrong-phase"));

    /* Run the replay; deliver to B once its gate opens (first ReplayComplete).
     * While the gate is closed the only task that can be pending is the
     * replay: the activation's drain is posted after the gate opened. */
    int accepted = 0;
    steps = 0;
    while (!accepted && steps++ < 4000) {
        int pending = ex_pending();
        int rc = deliver_len(p.rb, origin, 1, &v);
        if (rc == NET_MESH_OK) {
            CHECK(v == 0); /* queued behind the replay: no outputs now */
            accepted = 1;
        } else {
            CHECK(is_migration_error(rc, "wrong-phase"));
            if (pending) ex_run_one();
            else ex_wait_post(20);
        }
    }
    CHECK(accepted);
    /* the gate keeps refusing what a hand-back could not carry */
    CHECK(is_migration_error(deliver_len(p.rb, origin, 7001, &v), "buffer-full"));

    /* Drive the rest (cutover, activation: the drain runs here) to the end. */
    steps = 0;
    while (net_mesh_migration_wait(m, 0, 0) == NET_MESH_ERR_TIMEOUT && steps++ < 4000)
        if (!ex_run_one()) ex_wait_post(20);
    OK(net_mesh_migration_wait(m, 0, 0));
    CHECK(wait_for(&rec, &rec.completed, 1) && rec.status == NET_MESH_OK);
    /* Every queued output reached the sink before the migration completed. */
    pthread_mutex_lock(&sb.mu);
    CHECK(sb.n == 3);
    if (sb.n == 3) CHECK(sb.vals[0] == 4 && sb.vals[1] == 5 && sb.vals[2] == 6);
    CHECK(sb.origin == origin && sb.wrong_thread == 0);
    pthread_mutex_unlock(&sb.mu);
    CHECK(ex_pending() == 0);
    CHECK(deliver_count(p.rb, origin, NET_MESH_OK) == 7);
    /* no longer migrating: big payloads are fine again */
    OK(deliver_len(p.rb, origin, 7001, &v));
    CHECK(v == 8);
    deliver_count(p.ra, origin, NET_MESH_ERR_DAEMON_MOVED);
    net_mesh_migration_free(m);
    OK(net_mesh_runtime_stop(p.rb, origin));
    free_pair(&p); /* the sink's finalizer runs at runtime free */
    CHECK(sb.finalized == 1);
    ex_pump();
    net_mesh_identity_free(id);
    pthread_mutex_destroy(&sb.mu);
    pthread_mutex_destroy(&rec.mu);
    alarm(0);
}

/* ---- 5. queue full; spawn_from_snapshot checks the kind first ---- */

static volatile int hold_pool;
static void hold_task(void *ud) {
    (void)ud;
    while (__atomic_load_n(&hold_pool, __ATOMIC_SEQ_CST)) sleep_ms(1);
}
static int tasks_finalized;
static void task_fin(void *ud) {
    (void)ud;
    __atomic_fetch_add(&tasks_finalized, 1, __ATOMIC_SEQ_CST);
}

static void queue_full_and_kind_order(void) {
    net_mesh_node *n = new_node();
    net_mesh_runtime_options ro;
    net_mesh_runtime_options_init(&ro);
    ro.workers = 1;
    ro.queue_size = 1;
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(n, &ro, &rt));
    OK(register_kind(rt, "counter", counter_create));
    OK(net_mesh_runtime_start(rt));
    __atomic_store_n(&hold_pool, 1, __ATOMIC_SEQ_CST);
    int rc = NET_MESH_OK, submitted = 0;
    for (int i = 0; i < 100 && rc == NET_MESH_OK; i++) {
        rc = net_mesh_runtime_submit(rt, hold_task, NULL, task_fin);
        if (rc == NET_MESH_OK) submitted++;
    }
    CHECK(rc == NET_MESH_ERR_QUEUE_FULL);
    CHECK(strcmp(net_mesh_status_kind(NET_MESH_ERR_QUEUE_FULL), "queue-full") == 0);
    CHECK(net_mesh_last_error_code() == NET_MESH_ERR_QUEUE_FULL);
    __atomic_store_n(&hold_pool, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 500 && __atomic_load_n(&tasks_finalized, __ATOMIC_SEQ_CST) < submitted + 1; i++) sleep_ms(5);
    CHECK(__atomic_load_n(&tasks_finalized, __ATOMIC_SEQ_CST) == submitted + 1); /* + the refused one */

    /* unknown kind with garbage bytes: factory-not-found, before parsing */
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    const uint8_t junk[5] = {1, 2, 3, 4, 5};
    EXPECT(NET_MESH_ERR_FACTORY_NOT_FOUND, net_mesh_runtime_spawn_from_snapshot(rt, "nope", id, junk, 5, NULL, NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_spawn_from_snapshot(rt, "counter", id, junk, 5, NULL, NULL));
    net_mesh_runtime_free(rt);
    /* Registering: not-ready comes first too */
    OK(net_mesh_runtime_new(n, NULL, &rt));
    EXPECT(NET_MESH_ERR_NOT_READY, net_mesh_runtime_spawn_from_snapshot(rt, "nope", id, junk, 5, NULL, NULL));
    net_mesh_runtime_free(rt);
    net_mesh_identity_free(id);
    net_mesh_node_free(n);
}

/* ---- 6. bad input on every migration function ---- */

static int bad_fin;
static void count_fin(void *ud) {
    (void)ud;
    bad_fin++;
}
static void nop_progress(void *ud, int phase, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    (void)ud; (void)phase; (void)a; (void)b; (void)c; (void)d;
}
static void nop_complete(void *ud, int status) { (void)ud; (void)status; }
static void nop_sink(void *ud, uint64_t origin, const net_mesh_event_list *outs) {
    (void)ud; (void)origin; (void)outs;
}

static void bad_input(void) {
    net_mesh_node *n = new_node();
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(n, NULL, &rt));
    net_mesh_migration *m = NULL;
    int phase = 0;
    net_mesh_migration_result res;
    memset(&res, 0, sizeof res);
    res.size = sizeof res;
    net_mesh_migration_options opts;
    net_mesh_migration_options_init(&opts);
    net_mesh_migration_options_init(NULL); /* no-op */

    /* Registering: not ready */
    EXPECT(NET_MESH_ERR_NOT_READY, net_mesh_runtime_start_migration(rt, 1, 2, 3, NULL, &m));
    OK(net_mesh_runtime_start(rt));
    /* NULL / wrong-kind runtime */
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_start_migration(NULL, 1, 2, 3, NULL, &m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_start_migration((net_mesh_runtime *)n, 1, 2, 3, NULL, &m));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_start_migration(rt, 1, 2, 3, NULL, NULL));
    opts.size = 4;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_start_migration(rt, 1, 2, 3, &opts, &m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_migration_phase(NULL, 1, &phase));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_migration_phase((net_mesh_runtime *)n, 1, &phase));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_migration_phase(rt, 1, NULL));
    phase = 9;
    OK(net_mesh_runtime_migration_phase(rt, 1, &phase));
    CHECK(phase == NET_MESH_MIGRATION_PHASE_NONE);

    /* NULL / wrong-kind migration handles (a runtime, a node) */
    net_mesh_migration *wrong[3] = {NULL, (net_mesh_migration *)rt, (net_mesh_migration *)n};
    for (int i = 0; i < 3; i++) {
        net_mesh_migration *w = wrong[i];
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_phase(w, &phase));
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_wait(w, 0, 0));
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_wait(w, -1, 0));
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_result_get(w, &res));
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_cancel(w));
        bad_fin = 0;
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_on_progress(w, nop_progress, NULL, count_fin));
        EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_on_complete(w, nop_complete, NULL, count_fin));
        CHECK(bad_fin == 2); /* consumed, also on error */
        net_mesh_migration_free(w); /* no-op, the runtime and node live on */
    }
    int ready = 0;
    OK(net_mesh_runtime_is_ready(rt, &ready));
    CHECK(ready == 1);
    bad_fin = 0;
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_set_output_sink(NULL, nop_sink, NULL, count_fin));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_set_output_sink((net_mesh_runtime *)n, nop_sink, NULL, count_fin));
    CHECK(bad_fin == 2);
    OK(net_mesh_runtime_set_output_sink(rt, nop_sink, NULL, count_fin));
    OK(net_mesh_runtime_set_output_sink(rt, nop_sink, NULL, count_fin)); /* replaces: first finalized */
    CHECK(bad_fin == 3);
    OK(net_mesh_runtime_set_output_sink(rt, NULL, NULL, count_fin)); /* removes; its own finalizer runs */
    CHECK(bad_fin == 5);

    /* a real handle: failed migration (unknown target fails at start), so
     * make one that ends: a daemon to a peer with no runtime entry */
    pair p = new_pair(1);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    OK(net_mesh_runtime_spawn(p.ra, "counter", id, NULL, NULL));
    OK(net_mesh_runtime_start_migration(p.ra, origin_of(id), p.aid, p.bid, NULL, &m));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_migration_phase(m, NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_migration_result_get(m, NULL));
    res.size = 8;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_migration_result_get(m, &res));
    res.size = sizeof res;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_migration_wait(m, 0, 0xffffffffu));
    EXPECT(NET_MESH_ERR_MIGRATION_FAILED, net_mesh_migration_wait(m, 10000, 0));
    /* callbacks set to NULL: finalizer runs at once */
    bad_fin = 0;
    OK(net_mesh_migration_on_progress(m, NULL, NULL, count_fin));
    OK(net_mesh_migration_on_complete(m, NULL, NULL, count_fin));
    CHECK(bad_fin == 2);
    /* a migration handle is not a runtime, daemon or task */
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_start((net_mesh_runtime *)m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_task_run((net_mesh_task *)m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_daemon_origin_hash((net_mesh_daemon *)m, NULL));
    /* a callback installed on a live handle is finalized at free */
    OK(net_mesh_migration_on_progress(m, nop_progress, NULL, count_fin));
    net_mesh_migration_free(m);
    for (int i = 0; i < 100 && bad_fin < 3; i++) sleep_ms(5);
    CHECK(bad_fin == 3);
    /* freed */
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_phase(m, &phase));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_wait(m, 0, 0));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_result_get(m, &res));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_cancel(m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_on_progress(m, nop_progress, NULL, count_fin));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_migration_on_complete(m, nop_complete, NULL, count_fin));
    CHECK(bad_fin == 5);
    net_mesh_migration_free(m);
    net_mesh_migration_free(NULL);
    /* after runtime free: its handle is stale */
    net_mesh_runtime *dead = p.ra;
    free_pair(&p);
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_start_migration(dead, 1, 2, 3, NULL, &m));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_migration_phase(dead, 1, &phase));
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_runtime_set_output_sink(dead, nop_sink, NULL, NULL));
    net_mesh_identity_free(id);
    net_mesh_runtime_free(rt);
    net_mesh_node_free(n);
}

int main(void) {
    counter_roundtrip();
    orchestrated_by_target();
    failures();
    stuck_target(1);
    stuck_target(0);
    single_threaded_target();
    queue_full_and_kind_order();
    bad_input();
    return nm_report("migrate");
}
