/* Threads: a task submitted from a plain pthread runs on the pool; an
 * executor moves it to a host thread; host-initiated callbacks stay on the
 * caller's thread; concurrent delivers; a daemon that stops itself. */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>
#include <time.h>

static net_mesh_runtime *rt;

typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ran;
    int finalized;
    pthread_t ran_on;
} probe;

static void probe_task(void *ud) {
    probe *p = ud;
    pthread_mutex_lock(&p->mu);
    p->ran++;
    p->ran_on = pthread_self();
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
static void probe_fin(void *ud) {
    probe *p = ud;
    pthread_mutex_lock(&p->mu);
    p->finalized++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
static int probe_wait(probe *p, int ran, int fin) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&p->mu);
    while ((p->ran < ran || p->finalized < fin) && pthread_cond_timedwait(&p->cv, &p->mu, &dl) == 0) {
    }
    int ok = p->ran >= ran && p->finalized >= fin;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void *submit_from_pthread(void *arg) {
    probe *p = arg;
    int rc = net_mesh_runtime_submit(rt, probe_task, p, probe_fin);
    return (void *)(intptr_t)rc;
}

/* A minimal executor: tasks queue up; the main thread runs them. */
#define QCAP 64
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    net_mesh_task *q[QCAP];
    int n;
    int finalized;
} ex = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void ex_post(void *ud, net_mesh_task *t) {
    (void)ud;
    pthread_mutex_lock(&ex.mu);
    if (ex.n < QCAP) ex.q[ex.n++] = t;
    pthread_cond_broadcast(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
}
static void ex_fin(void *ud) {
    (void)ud;
    pthread_mutex_lock(&ex.mu);
    ex.finalized++;
    pthread_cond_broadcast(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
}
/* The executor's finalizer runs once no pool thread is still inside it, which
 * may be a moment after set_executor returns (on that pool thread). */
static int ex_wait_finalized(int want) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&ex.mu);
    while (ex.finalized < want && pthread_cond_timedwait(&ex.cv, &ex.mu, &dl) == 0) {
    }
    int ok = ex.finalized == want;
    pthread_mutex_unlock(&ex.mu);
    return ok;
}
static int ex_run_one(void) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&ex.mu);
    while (ex.n == 0 && pthread_cond_timedwait(&ex.cv, &ex.mu, &dl) == 0) {
    }
    net_mesh_task *t = ex.n ? ex.q[--ex.n] : NULL;
    pthread_mutex_unlock(&ex.mu);
    if (!t) return 0;
    int rc = net_mesh_task_run(t);
    CHECK(rc == NET_MESH_OK);
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_task_run(t)); /* consumed */
    return 1;
}

/* process records the thread it ran on */
static pthread_t process_thread;
static int thread_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud; (void)ev; (void)out;
    process_thread = pthread_self();
    return 0;
}

/* a daemon that stops itself from inside process */
static uint64_t self_origin;
static int self_stop_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud; (void)ev; (void)out;
    return net_mesh_runtime_stop(rt, self_origin) == NET_MESH_OK ? 0 : 1;
}
static int self_finalized;
static void self_fin(void *ud) { (void)ud; self_finalized++; }

typedef struct worker { uint64_t origin; int n; int fails; } worker;
static void *deliver_loop(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        net_mesh_event ev = make_event(1, (uint64_t)i + 1, "abc", 3);
        net_mesh_event_list outs = {0};
        if (net_mesh_runtime_deliver(rt, w->origin, &ev, &outs) != NET_MESH_OK) w->fails++;
        net_mesh_event_list_free(&outs);
    }
    return NULL;
}

static int noop_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud; (void)ud;
    vt->process = thread_process;
    return 0;
}

/* ---- set_output_sink / set_executor / register_factory racing
 * runtime_free: every finalizer handed over runs exactly once, whichever
 * wins (installed and then released by free, or refused as a bad handle) */

static atomic_int race_handed, race_finalized;
static void race_fin(void *ud) {
    (void)ud;
    atomic_fetch_add(&race_finalized, 1);
}
static void race_sink(void *ud, uint64_t origin, const net_mesh_event_list *outs) {
    (void)ud; (void)origin; (void)outs;
}
static void race_post(void *ud, net_mesh_task *t) {
    (void)ud;
    net_mesh_task_run(t);
}
static int race_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    return counter_create(fud, vt, ud);
}
typedef struct racer { net_mesh_runtime *rt; int which; atomic_int *started; } racer;
static void *race_setter(void *arg) {
    racer *r = arg;
    for (int i = 0; i < 400; i++) {
        if (i == 1) atomic_fetch_add(r->started, 1); /* free starts once all are busy */
        atomic_fetch_add(&race_handed, 1);
        if (r->which == 0) {
            (void)net_mesh_runtime_set_output_sink(r->rt, race_sink, NULL, race_fin);
        } else if (r->which == 1) {
            (void)net_mesh_runtime_set_executor(r->rt, race_post, NULL, race_fin);
        } else {
            char kind[32];
            snprintf(kind, sizeof kind, "k%d", i);
            net_mesh_factory f;
            net_mesh_factory_init(&f);
            f.create = race_create;
            f.finalize = race_fin;
            (void)net_mesh_runtime_register_factory(r->rt, kind, &f, NULL);
        }
    }
    return NULL;
}

static void setters_race_free(void) {
    net_mesh_node *n = NULL;
    OK(net_mesh_node_new(NULL, &n));
    for (int round = 0; round < 200; round++) {
        net_mesh_runtime *r = NULL;
        OK(net_mesh_runtime_new(n, NULL, &r));
        atomic_int started = 0;
        racer rs[3] = {{r, 0, &started}, {r, 1, &started}, {r, 2, &started}};
        pthread_t th[3];
        for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, race_setter, &rs[i]);
        while (atomic_load(&started) < 3) {
        }
        net_mesh_runtime_free(r);
        for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    }
    CHECK(atomic_load(&race_finalized) == atomic_load(&race_handed));
    if (atomic_load(&race_finalized) != atomic_load(&race_handed))
        fprintf(stderr, "setters_race_free: %d finalizers handed over, %d ran\n", atomic_load(&race_handed),
                atomic_load(&race_finalized));
    net_mesh_node_free(n);
}

int main(void) {
    setters_race_free();
    net_mesh_node *node = NULL;
    OK(net_mesh_node_new(NULL, &node));
    OK(net_mesh_runtime_new(node, NULL, &rt));
    probe early = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    EXPECT(NET_MESH_ERR_NOT_READY, net_mesh_runtime_submit(rt, probe_task, &early, probe_fin));
    CHECK(early.finalized == 1 && early.ran == 0); /* consumed also on error */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_runtime_submit(rt, NULL, &early, probe_fin));
    CHECK(early.finalized == 2);
    OK(register_kind(rt, "counter", counter_create));
    OK(register_kind(rt, "noop", noop_create));
    OK(net_mesh_runtime_start(rt));

    /* 1. submitted from a plain pthread: runs on the pool (neither thread) */
    probe p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, submit_from_pthread, &p);
    void *rc = NULL;
    pthread_join(th, &rc);
    CHECK((intptr_t)rc == NET_MESH_OK);
    CHECK(probe_wait(&p, 1, 1));
    CHECK(!pthread_equal(p.ran_on, th) && !pthread_equal(p.ran_on, pthread_self()));

    /* 2. with an executor the same task runs on the host thread that runs tasks */
    OK(net_mesh_runtime_set_executor(rt, ex_post, NULL, ex_fin));
    probe q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    pthread_create(&th, NULL, submit_from_pthread, &q);
    pthread_join(th, &rc);
    CHECK((intptr_t)rc == NET_MESH_OK);
    CHECK(ex_run_one());
    CHECK(probe_wait(&q, 1, 1));
    CHECK(pthread_equal(q.ran_on, pthread_self()));
    OK(net_mesh_runtime_set_executor(rt, NULL, NULL, NULL)); /* removes; old finalizer runs */
    CHECK(ex_wait_finalized(1));

    /* 3. host-initiated callbacks run on the calling thread */
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = 0;
    OK(net_mesh_identity_origin_hash(id, &origin));
    OK(net_mesh_runtime_spawn(rt, "noop", id, NULL, NULL));
    net_mesh_event ev = make_event(1, 1, NULL, 0);
    net_mesh_event_list outs = {0};
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    CHECK(outs.len == 0 && outs.events == NULL);
    CHECK(pthread_equal(process_thread, pthread_self()));

    /* 4. concurrent delivers: 4 threads on one counter (serialized) */
    net_mesh_identity *cid = NULL;
    OK(net_mesh_identity_generate(&cid));
    uint64_t corigin = 0;
    OK(net_mesh_identity_origin_hash(cid, &corigin));
    net_mesh_daemon *cd = NULL;
    OK(net_mesh_runtime_spawn(rt, "counter", cid, NULL, &cd));
    pthread_t ws[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){corigin, 2000, 0};
        pthread_create(&ws[i], NULL, deliver_loop, &w[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(ws[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(w[i].fails == 0);
    net_mesh_daemon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    OK(net_mesh_daemon_stats_get(cd, &st));
    CHECK(st.events_processed == 8000 && st.events_emitted == 8000);
    net_mesh_bytes snap = {0};
    OK(net_mesh_runtime_snapshot(rt, corigin, &snap));
    net_mesh_bytes_free(&snap);
    net_mesh_daemon_free(cd);

    /* 5. a daemon stopping itself inside process: no deadlock; finalized
     *    once, after its callback returned */
    net_mesh_identity *sid = NULL;
    OK(net_mesh_identity_generate(&sid));
    OK(net_mesh_identity_origin_hash(sid, &self_origin));
    net_mesh_daemon_vtable vt;
    net_mesh_daemon_vtable_init(&vt);
    vt.process = self_stop_process;
    vt.finalize = self_fin;
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = noop_create;
    OK(net_mesh_runtime_spawn_with_daemon(rt, sid, NULL, &vt, NULL, &f, NULL, NULL));
    OK(net_mesh_runtime_deliver(rt, self_origin, &ev, &outs));
    CHECK(self_finalized == 1);
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver(rt, self_origin, &ev, &outs));

    /* 6. the probe runs its callback on this thread */
    probe r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    OK(net_mesh_callback_probe(probe_task, &r));
    CHECK(r.ran == 1 && pthread_equal(r.ran_on, pthread_self()));

    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    net_mesh_identity_free(cid);
    net_mesh_identity_free(sid);
    return nm_report("threads");
}
