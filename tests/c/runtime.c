/* Runtime behaviours through the ABI with daemons written in C
 * (BEHAVIOUR §1–2, §5 runtime list), plus two nodes and a channel. */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static net_mesh_node *new_node(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    net_mesh_node *n = NULL;
    OK(net_mesh_node_new(&o, &n));
    return n;
}

static void lifecycle(void) {
    net_mesh_node *node = new_node();
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(node, NULL, &rt));
    int ready = -1;
    OK(net_mesh_runtime_is_ready(rt, &ready));
    CHECK(ready == 0);

    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    atomic_store(&factories_finalized, 0);
    OK(register_kind(rt, "echo", echo_create));
    EXPECT(NET_MESH_ERR_NOT_READY, net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL));
    EXPECT(NET_MESH_ERR_NOT_READY, net_mesh_runtime_stop(rt, 1));
    EXPECT(NET_MESH_ERR_FACTORY_ALREADY_REGISTERED, register_kind(rt, "echo", echo_create));
    CHECK(atomic_load(&factories_finalized) == 1); /* the refused one, consumed on error */
    OK(net_mesh_runtime_start(rt));
    OK(net_mesh_runtime_start(rt)); /* idempotent */
    OK(net_mesh_runtime_is_ready(rt, &ready));
    CHECK(ready == 1);
    OK(register_kind(rt, "counter", counter_create)); /* a new kind after start works */
    OK(register_kind(rt, "failing", failing_create));
    OK(register_kind(rt, "refusing", refusing_create));

    /* echo round trip: origin and stats right */
    net_mesh_daemon *d = NULL;
    OK(net_mesh_runtime_spawn(rt, "echo", id, NULL, &d));
    uint64_t origin = 0, dorigin = 0;
    origin = origin_of(id);
    OK(net_mesh_daemon_origin_hash(d, &dorigin));
    CHECK(origin == dorigin);
    uint8_t eid[32], did[32];
    OK(net_mesh_identity_entity_id(id, eid));
    OK(net_mesh_daemon_entity_id(d, did));
    CHECK(memcmp(eid, did, 32) == 0);
    net_mesh_event ev = make_event(42, 1, "hello", 5);
    net_mesh_event_list outs = {0};
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    CHECK(outs.len == 1);
    if (outs.len == 1) {
        CHECK(outs.events[0].payload_len == 5 && memcmp(outs.events[0].payload, "hello", 5) == 0);
        CHECK(outs.events[0].link.origin_hash == origin);
        CHECK(outs.events[0].link.sequence == 1);
        CHECK(outs.events[0].received_at != 0);
    }
    net_mesh_event_list_free(&outs);
    net_mesh_event_list_free(&outs); /* zeroed: no-op */
    /* zero-length payload is a valid event (and a valid output) */
    ev = make_event(42, 2, NULL, 0);
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    CHECK(outs.len == 1 && outs.events[0].payload_len == 0 && outs.events[0].link.sequence == 2);
    net_mesh_event_list_free(&outs);
    net_mesh_daemon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    OK(net_mesh_daemon_stats_get(d, &st));
    CHECK(st.events_processed == 2 && st.events_emitted == 2 && st.errors == 0);
    /* a stateless daemon's snapshot is "none" */
    net_mesh_bytes snap = {0};
    OK(net_mesh_runtime_snapshot(rt, origin, &snap));
    CHECK(snap.data == NULL && snap.len == 0);
    net_mesh_subscription_list subs = {0};
    OK(net_mesh_runtime_subscriptions(rt, origin, &subs));
    CHECK(subs.len == 0);
    net_mesh_subscription_list_free(&subs);

    /* same identity twice: refused, count stays 1, the incumbent still works */
    uint64_t count = 0;
    EXPECT(NET_MESH_ERR_ALREADY_REGISTERED, net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL));
    OK(net_mesh_runtime_daemon_count(rt, &count));
    CHECK(count == 1);
    ev = make_event(42, 3, "x", 1);
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs));
    net_mesh_event_list_free(&outs);

    /* unknown kind; factory failure */
    net_mesh_identity *id2 = NULL;
    OK(net_mesh_identity_generate(&id2));
    EXPECT(NET_MESH_ERR_FACTORY_NOT_FOUND, net_mesh_runtime_spawn(rt, "nope", id2, NULL, NULL));
    EXPECT(NET_MESH_ERR_PROCESS_FAILED, net_mesh_runtime_spawn(rt, "refusing", id2, NULL, NULL));
    CHECK(strstr(net_mesh_last_error(), "factory refuses") != NULL);

    /* failing daemon: typed error with its message, stats, runtime usable */
    net_mesh_daemon *fd = NULL;
    OK(net_mesh_runtime_spawn(rt, "failing", id2, NULL, &fd));
    ev = make_event(42, 4, "y", 1);
    outs.len = 99;
    EXPECT(NET_MESH_ERR_PROCESS_FAILED, net_mesh_runtime_deliver(rt, origin_of(id2), &ev, &outs));
    CHECK(strstr(net_mesh_last_error(), "boom: failing daemon") != NULL);
    CHECK(strcmp(net_mesh_status_kind(net_mesh_last_error_code()), "process-failed") == 0);
    OK(net_mesh_daemon_stats_get(fd, &st));
    CHECK(st.errors == 1 && st.events_processed == 0);
    EXPECT(NET_MESH_ERR_CALLBACK_FAILED, net_mesh_runtime_snapshot(rt, origin_of(id2), &snap));
    CHECK(strstr(net_mesh_last_error(), "snapshot refused") != NULL);
    OK(net_mesh_runtime_deliver(rt, origin, &ev, &outs)); /* others unaffected */
    net_mesh_event_list_free(&outs);

    /* counter 1..5, snapshot, stop, restore, next is 6 */
    net_mesh_identity *cid = NULL;
    OK(net_mesh_identity_generate(&cid));
    uint64_t corigin = origin_of(cid);
    OK(net_mesh_runtime_spawn(rt, "counter", cid, NULL, NULL));
    for (uint64_t i = 1; i <= 5; i++) {
        ev = make_event(7, i, "e", 1);
        OK(net_mesh_runtime_deliver(rt, corigin, &ev, &outs));
        CHECK(outs.len == 1 && outs.events[0].payload_len == 8 && get64(outs.events[0].payload) == i);
        net_mesh_event_list_free(&outs);
    }
    OK(net_mesh_runtime_snapshot(rt, corigin, &snap));
    CHECK(snap.data != NULL && snap.len > 8 && memcmp(snap.data, "CDS1", 4) == 0);
    int before = atomic_load(&daemons_finalized);
    OK(net_mesh_runtime_stop(rt, corigin));
    CHECK(atomic_load(&daemons_finalized) == before + 1); /* finalized on stop, on this thread */
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_stop(rt, corigin));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver(rt, corigin, &ev, &outs));
    /* mismatch: the snapshot of cid under another identity, no side effects */
    OK(net_mesh_runtime_daemon_count(rt, &count));
    net_mesh_identity *other = NULL;
    OK(net_mesh_identity_generate(&other));
    EXPECT(NET_MESH_ERR_SNAPSHOT_IDENTITY_MISMATCH,
           net_mesh_runtime_spawn_from_snapshot(rt, "counter", other, snap.data, snap.len, NULL, NULL));
    EXPECT(NET_MESH_ERR_FACTORY_NOT_FOUND,
           net_mesh_runtime_spawn_from_snapshot(rt, "nope", cid, snap.data, snap.len, NULL, NULL));
    uint64_t count2 = 0;
    OK(net_mesh_runtime_daemon_count(rt, &count2));
    CHECK(count2 == count);
    /* malformed bytes */
    uint8_t junk[16] = "CDS1garbage....";
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT,
           net_mesh_runtime_spawn_from_snapshot(rt, "counter", cid, junk, sizeof junk, NULL, NULL));
    OK(net_mesh_runtime_spawn_from_snapshot(rt, "counter", cid, snap.data, snap.len, NULL, NULL));
    ev = make_event(7, 6, "e", 1);
    OK(net_mesh_runtime_deliver(rt, corigin, &ev, &outs));
    CHECK(outs.len == 1 && get64(outs.events[0].payload) == 6);
    CHECK(outs.len == 1 && outs.events[0].link.sequence == 6);
    net_mesh_event_list_free(&outs);
    OK(net_mesh_runtime_stop(rt, corigin));

    /* spawn_with_daemon: host-built instance, finalized exactly once on stop */
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    f.finalize = factory_finalize;
    counter *c = calloc(1, sizeof *c);
    c->n = 100;
    net_mesh_daemon *wd = NULL;
    OK(net_mesh_runtime_spawn_with_daemon(rt, cid, NULL, &vt, c, &f, NULL, &wd));
    ev = make_event(7, 1, "e", 1);
    OK(net_mesh_runtime_deliver(rt, corigin, &ev, &outs));
    CHECK(outs.len == 1 && get64(outs.events[0].payload) == 101);
    net_mesh_event_list_free(&outs);
    /* a duplicate spawn_with_daemon is refused and its instance consumed */
    counter *dup = calloc(1, sizeof *dup);
    before = atomic_load(&daemons_finalized);
    int fbefore = atomic_load(&factories_finalized);
    EXPECT(NET_MESH_ERR_ALREADY_REGISTERED, net_mesh_runtime_spawn_with_daemon(rt, cid, NULL, &vt, dup, &f, NULL, NULL));
    CHECK(atomic_load(&daemons_finalized) == before + 1);
    CHECK(atomic_load(&factories_finalized) == fbefore + 1);
    OK(net_mesh_runtime_deliver(rt, corigin, &ev, &outs)); /* incumbent intact */
    CHECK(outs.len == 1 && get64(outs.events[0].payload) == 102);
    net_mesh_event_list_free(&outs);
    net_mesh_bytes snap2 = {0};
    OK(net_mesh_runtime_snapshot(rt, corigin, &snap2));
    OK(net_mesh_runtime_stop(rt, corigin));
    CHECK(atomic_load(&daemons_finalized) == before + 2);
    CHECK(atomic_load(&factories_finalized) == fbefore + 2);
    /* restore failure rolls back: a restore that rejects the state */
    vt.restore = NULL; /* no restore: non-empty state is refused */
    counter *c3 = calloc(1, sizeof *c3);
    EXPECT(NET_MESH_ERR_RESTORE_FAILED, net_mesh_runtime_spawn_from_snapshot_with_daemon(
                                            rt, cid, snap2.data, snap2.len, NULL, &vt, c3, &f, NULL, NULL));
    OK(net_mesh_runtime_daemon_count(rt, &count2));
    CHECK(count2 == count);
    counter_vtable(&vt);
    counter *c4 = calloc(1, sizeof *c4);
    OK(net_mesh_runtime_spawn_from_snapshot_with_daemon(rt, cid, snap2.data, snap2.len, NULL, &vt, c4, &f, NULL, NULL));
    OK(net_mesh_runtime_deliver(rt, corigin, &ev, &outs));
    CHECK(outs.len == 1 && get64(outs.events[0].payload) == 103);
    net_mesh_event_list_free(&outs);
    net_mesh_bytes_free(&snap2);
    net_mesh_bytes_free(&snap);
    net_mesh_bytes_free(&snap); /* double free through the same struct: no-op */

    /* migration target entries */
    net_mesh_identity *mid = NULL;
    OK(net_mesh_identity_generate(&mid));
    OK(net_mesh_runtime_expect_migration(rt, "counter", 0x1234, NULL));
    EXPECT(NET_MESH_ERR_ALREADY_REGISTERED, net_mesh_runtime_expect_migration(rt, "counter", 0x1234, NULL));
    EXPECT(NET_MESH_ERR_FACTORY_NOT_FOUND, net_mesh_runtime_expect_migration(rt, "nope", 0x9999, NULL));
    OK(net_mesh_runtime_register_migration_target_identity(rt, "counter", mid, NULL));
    EXPECT(NET_MESH_ERR_ALREADY_REGISTERED, net_mesh_runtime_register_migration_target_identity(rt, "counter", mid, NULL));
    EXPECT(NET_MESH_ERR_ALREADY_REGISTERED, net_mesh_runtime_spawn(rt, "counter", mid, NULL, NULL));

    /* shutdown stops all, finalizes them; later calls → SHUTTING_DOWN */
    before = atomic_load(&daemons_finalized);
    OK(net_mesh_runtime_daemon_count(rt, &count));
    OK(net_mesh_runtime_shutdown(rt, 0));
    OK(net_mesh_runtime_shutdown(rt, 0)); /* idempotent */
    CHECK(atomic_load(&daemons_finalized) == before + (int)count);
    OK(net_mesh_runtime_daemon_count(rt, &count2));
    CHECK(count2 == 0);
    EXPECT(NET_MESH_ERR_SHUTTING_DOWN, net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL));
    EXPECT(NET_MESH_ERR_SHUTTING_DOWN, register_kind(rt, "late", echo_create));
    EXPECT(NET_MESH_ERR_SHUTTING_DOWN, net_mesh_runtime_start(rt));
    OK(net_mesh_runtime_stop(rt, origin)); /* no-op during shutdown */
    OK(net_mesh_runtime_is_ready(rt, &ready));
    CHECK(ready == 0);
    /* handles of stopped daemons: stats → not found; then free (twice) */
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_daemon_stats_get(d, &st));
    net_mesh_daemon_free(d);
    net_mesh_daemon_free(d);
    net_mesh_daemon_free(fd);
    net_mesh_daemon_free(wd);
    fbefore = atomic_load(&factories_finalized);
    net_mesh_runtime_free(rt);
    CHECK(atomic_load(&factories_finalized) == fbefore + 4); /* echo, counter, failing, refusing */
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    net_mesh_identity_free(id2);
    net_mesh_identity_free(cid);
    net_mesh_identity_free(other);
    net_mesh_identity_free(mid);
}

/* relay: delivers its input to the echo daemon at relay_target from inside
 * process (a nested deliver on the same thread), then outputs "R" followed by
 * the inner output's payload. */
static net_mesh_runtime *relay_rt;
static uint64_t relay_target;
static int relay_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud;
    net_mesh_event_list inner = NET_MESH_EVENT_LIST_INIT;
    if (net_mesh_runtime_deliver(relay_rt, relay_target, ev, &inner) != NET_MESH_OK || inner.len != 1)
        return 1;
    uint8_t buf[2048];
    size_t n = inner.events[0].payload_len;
    if (n + 1 > sizeof buf) n = sizeof buf - 1;
    buf[0] = 'R';
    if (n) memcpy(buf + 1, inner.events[0].payload, n);
    net_mesh_event_list_free(&inner);
    int rc = net_mesh_outputs_push(out, buf, n + 1);
    return rc ? rc : net_mesh_outputs_push(out, ev->payload, ev->payload_len);
}
static int relay_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud;
    vt->process = relay_process;
    *ud = NULL;
    return 0;
}

/* net_mesh_runtime_deliver_into: one list refilled in place across sizes, a
 * list from net_mesh_runtime_deliver reused, failure leaves it unchanged,
 * and nested deliveries on one thread (both entry points) stay correct. */
static void deliver_into(void) {
    net_mesh_node *node = new_node();
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(node, NULL, &rt));
    OK(register_kind(rt, "echo", echo_create));
    OK(register_kind(rt, "failing", failing_create));
    OK(register_kind(rt, "relay", relay_create));
    OK(net_mesh_runtime_start(rt));
    net_mesh_identity *eid = NULL, *fid = NULL, *rid = NULL;
    OK(net_mesh_identity_generate(&eid));
    OK(net_mesh_identity_generate(&fid));
    OK(net_mesh_identity_generate(&rid));
    OK(net_mesh_runtime_spawn(rt, "echo", eid, NULL, NULL));
    OK(net_mesh_runtime_spawn(rt, "failing", fid, NULL, NULL));
    OK(net_mesh_runtime_spawn(rt, "relay", rid, NULL, NULL));
    uint64_t eo = origin_of(eid), fo = origin_of(fid), ro = origin_of(rid);

    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + 1);
    size_t sizes[] = {64, 0, 1024, 100000, 5, 300};
    net_mesh_event_list list = NET_MESH_EVENT_LIST_INIT;
    uint64_t prev_parent = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        net_mesh_event ev = make_event(9, i + 1, sizes[i] ? big : NULL, sizes[i]);
        OK(net_mesh_runtime_deliver_into(rt, eo, &ev, &list));
        CHECK(list.len == 1 && list.reserved_ != NULL);
        if (list.len != 1) continue;
        CHECK(list.events[0].payload_len == sizes[i]);
        CHECK(sizes[i] == 0 ? list.events[0].payload == NULL
                            : memcmp(list.events[0].payload, big, sizes[i]) == 0);
        CHECK(list.events[0].link.sequence == i + 1 && list.events[0].link.origin_hash == eo);
        CHECK(list.events[0].link.parent_hash != prev_parent);
        prev_parent = list.events[0].link.parent_hash;
    }
    /* failure: the list keeps the previous outputs */
    net_mesh_event ev = make_event(9, 50, "y", 1);
    EXPECT(NET_MESH_ERR_PROCESS_FAILED, net_mesh_runtime_deliver_into(rt, fo, &ev, &list));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver_into(rt, 0xdead, &ev, &list));
    CHECK(list.len == 1 && list.events[0].payload_len == 300 && memcmp(list.events[0].payload, big, 300) == 0);
    net_mesh_event_list_free(&list);
    CHECK(list.events == NULL && list.len == 0 && list.reserved_ == NULL);

    /* a list filled by net_mesh_runtime_deliver is reusable */
    ev = make_event(9, 51, "abc", 3);
    OK(net_mesh_runtime_deliver(rt, eo, &ev, &list));
    CHECK(list.len == 1);
    ev = make_event(9, 52, big, 2000);
    OK(net_mesh_runtime_deliver_into(rt, eo, &ev, &list));
    CHECK(list.len == 1 && list.events[0].payload_len == 2000 && memcmp(list.events[0].payload, big, 2000) == 0);

    /* nested: relay delivers to echo from inside its process callback */
    relay_rt = rt;
    relay_target = eo;
    for (int i = 0; i < 3; i++) {
        size_t n = i == 1 ? 1500 : 10; /* 1500 B grows the writer inside the nested call */
        ev = make_event(9, 60 + (uint64_t)i, big, n);
        if (i == 2) {
            net_mesh_event_list fresh = NET_MESH_EVENT_LIST_INIT;
            OK(net_mesh_runtime_deliver(rt, ro, &ev, &fresh));
            CHECK(fresh.len == 2 && fresh.events[0].payload_len == n + 1 && fresh.events[0].payload[0] == 'R');
            CHECK(fresh.len == 2 && memcmp(fresh.events[1].payload, big, n) == 0);
            net_mesh_event_list_free(&fresh);
            continue;
        }
        OK(net_mesh_runtime_deliver_into(rt, ro, &ev, &list));
        CHECK(list.len == 2);
        if (list.len != 2) continue;
        CHECK(list.events[0].payload_len == n + 1 && list.events[0].payload[0] == 'R');
        CHECK(memcmp(list.events[0].payload + 1, big, n) == 0);
        CHECK(list.events[1].payload_len == n && memcmp(list.events[1].payload, big, n) == 0);
        CHECK(list.events[1].link.sequence == list.events[0].link.sequence + 1);
    }
    net_mesh_event_list_free(&list);
    net_mesh_event_list_free(&list); /* zeroed: no-op */

    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(eid);
    net_mesh_identity_free(fid);
    net_mesh_identity_free(rid);
}

/* Two nodes: B's daemon subscribes to A's channel through the runtime. */
static int got_channel_msgs;
static void on_msg(void *ud, uint64_t pub, const char *ch, const uint8_t *p, size_t n) {
    (void)ud; (void)pub; (void)p;
    if (strcmp(ch, "news") == 0 && n == 4) __atomic_fetch_add(&got_channel_msgs, 1, __ATOMIC_SEQ_CST);
}

static void two_nodes(void) {
    net_mesh_node *a = new_node(), *b = new_node();
    uint64_t aid = 0, bid = 0;
    uint8_t akey[32];
    net_mesh_bytes addr = {0};
    OK(net_mesh_node_id(a, &aid));
    OK(net_mesh_node_id(b, &bid));
    OK(net_mesh_node_public_key(a, akey));
    OK(net_mesh_node_addr(a, &addr));
    CHECK(addr.len > 0 && strlen((const char *)addr.data) == addr.len);
    OK(net_mesh_node_accept(a, bid));
    OK(net_mesh_node_connect(b, (const char *)addr.data, akey, aid, 5000));
    OK(net_mesh_node_channel_register(a, "news", NULL));
    OK(net_mesh_node_on_channel_message(b, on_msg, NULL, NULL));

    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(b, NULL, &rt));
    OK(register_kind(rt, "echo", echo_create));
    OK(net_mesh_runtime_start(rt));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = origin_of(id);
    OK(net_mesh_runtime_spawn(rt, "echo", id, NULL, NULL));
    OK(net_mesh_runtime_subscribe(rt, origin, aid, "news", NULL, 0, 5000));
    net_mesh_subscription_list subs = {0};
    OK(net_mesh_runtime_subscriptions(rt, origin, &subs));
    CHECK(subs.len == 1 && subs.items[0].publisher == aid && strcmp(subs.items[0].channel, "news") == 0);
    net_mesh_subscription_list_free(&subs);
    EXPECT(NET_MESH_ERR_PROCESS_FAILED, net_mesh_runtime_subscribe(rt, origin, aid, "nochannel", NULL, 0, 5000));
    net_mesh_publish_report rep = {0, 0, 0};
    for (int i = 0; i < 50 && __atomic_load_n(&got_channel_msgs, __ATOMIC_SEQ_CST) == 0; i++) {
        OK(net_mesh_node_channel_publish(a, "news", (const uint8_t *)"ping", 4, &rep));
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(rep.attempted == 1);
    CHECK(__atomic_load_n(&got_channel_msgs, __ATOMIC_SEQ_CST) > 0);
    OK(net_mesh_runtime_unsubscribe(rt, origin, aid, "news", 5000));
    OK(net_mesh_runtime_subscriptions(rt, origin, &subs));
    CHECK(subs.len == 0);
    /* a token issued by A for B's daemon identity */
    net_mesh_identity *issuer = NULL;
    OK(net_mesh_identity_generate(&issuer));
    uint8_t subj[32];
    OK(net_mesh_identity_entity_id(id, subj));
    net_mesh_bytes tok = {0};
    OK(net_mesh_token_issue(issuer, subj, NET_MESH_SCOPE_SUBSCRIBE, "news", 60, &tok));
    CHECK(tok.len == NET_MESH_TOKEN_SIZE);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_token_issue(issuer, subj, 0, "news", 60, &tok));
    net_mesh_bytes_free(&tok);
    net_mesh_node_stats ns;
    memset(&ns, 0, sizeof ns);
    ns.size = sizeof ns;
    OK(net_mesh_node_stats_get(b, &ns));
    CHECK(ns.handshakes_completed >= 1 && ns.packets_sent > 0);
    net_mesh_bytes_free(&addr);
    net_mesh_runtime_free(rt);
    OK(net_mesh_node_close(a));
    OK(net_mesh_node_close(a));
    EXPECT(NET_MESH_ERR_IO, net_mesh_node_channel_subscribe(a, bid, "news", NULL, 0, 500));
    net_mesh_node_free(a);
    net_mesh_node_free(b);
    net_mesh_identity_free(id);
    net_mesh_identity_free(issuer);
}

/* ---- a finalizer that calls back into the runtime (a binding's finalizer
 * releasing its object may well do so) runs on the thread that stopped /
 * shut down, and neither deadlocks nor sees its own daemon still there ---- */

typedef struct reentrant {
    counter c; /* first: the counter vtable works on it */
    net_mesh_runtime *rt;
    uint64_t origin;
    int ran, count_rc, deliver_rc, same_thread;
    pthread_t want;
} reentrant;

static void reentrant_finalize(void *ud) {
    reentrant *r = ud;
    uint64_t n = 0;
    r->count_rc = net_mesh_runtime_daemon_count(r->rt, &n);
    net_mesh_event ev = make_event(7, 1, "e", 1);
    net_mesh_event_list outs = {0};
    r->deliver_rc = net_mesh_runtime_deliver(r->rt, r->origin, &ev, &outs);
    if (r->deliver_rc == NET_MESH_OK) net_mesh_event_list_free(&outs);
    r->same_thread = pthread_equal(r->want, pthread_self());
    r->ran++;
}

static void reentrant_spawn(net_mesh_runtime *rt, net_mesh_identity *id, reentrant *r) {
    memset(r, 0, sizeof *r);
    r->rt = rt;
    r->origin = origin_of(id);
    r->want = pthread_self();
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    vt.finalize = reentrant_finalize;
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    OK(net_mesh_runtime_spawn_with_daemon(rt, id, NULL, &vt, r, &f, NULL, NULL));
}

static void reentrant_finalizers(void) {
    alarm(30); /* a deadlock fails the test instead of hanging it */
    net_mesh_node *n = new_node();
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(n, NULL, &rt));
    OK(net_mesh_runtime_start(rt));
    net_mesh_identity *ida = NULL, *idb = NULL;
    OK(net_mesh_identity_generate(&ida));
    OK(net_mesh_identity_generate(&idb));
    reentrant ra, rb;
    reentrant_spawn(rt, ida, &ra);
    reentrant_spawn(rt, idb, &rb);
    OK(net_mesh_runtime_stop(rt, ra.origin));
    CHECK(ra.ran == 1 && ra.same_thread); /* before stop returned, on this thread */
    CHECK(ra.count_rc == NET_MESH_OK);
    CHECK(ra.deliver_rc == NET_MESH_ERR_DAEMON_NOT_FOUND);
    OK(net_mesh_runtime_shutdown(rt, 5000));
    CHECK(rb.ran == 1 && rb.same_thread);
    CHECK(rb.count_rc == NET_MESH_OK);
    CHECK(rb.deliver_rc == NET_MESH_ERR_SHUTTING_DOWN);
    net_mesh_runtime_free(rt);
    CHECK(ra.ran == 1 && rb.ran == 1); /* exactly once */
    net_mesh_identity_free(ida);
    net_mesh_identity_free(idb);
    net_mesh_node_free(n);
    alarm(0);
}

int main(void) {
    lifecycle();
    reentrant_finalizers();
    deliver_into();
    two_nodes();
    return nm_report("runtime");
}
