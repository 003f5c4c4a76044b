/* Bad input on every function: NULL pointers, NULL / freed / wrong-kind
 * handles, double free, invalid UTF-8, zero-length and huge buffers. Each
 * gives its documented status and nothing crashes. */
#include "harness.h"
#include "daemons.h"

#define BAD NET_MESH_ERR_BAD_HANDLE
#define INV NET_MESH_ERR_INVALID_ARGUMENT
static const char bad_utf8[] = {(char)0xff, (char)0xfe, 'x', 0};
static const size_t huge = (size_t)-1;

static int fin_runs;
static void fin(void *ud) { (void)ud; fin_runs++; }
static void task(void *ud) { (void)ud; }
static void logcb(void *ud, int l, const char *m, const net_mesh_log_field *f, size_t n) {
    (void)ud; (void)l; (void)m; (void)f; (void)n;
}
static void post(void *ud, net_mesh_task *t) { (void)ud; (void)t; }
static void onmsg(void *ud, uint64_t p, const char *c, const uint8_t *b, size_t n) {
    (void)ud; (void)p; (void)c; (void)b; (void)n;
}

/* process that exercises the writers with bad input */
static int writer_checks;
static int abusive_process(void *ud, const net_mesh_event *ev, net_mesh_outputs *out) {
    (void)ud; (void)ev;
    if (net_mesh_outputs_push(NULL, (const uint8_t *)"a", 1) != INV) return 1;
    if (net_mesh_outputs_push(out, NULL, 5) != INV) return 2;
    if (net_mesh_outputs_push(out, (const uint8_t *)"a", huge) != INV) return 3;
    if (net_mesh_outputs_push(out, (const uint8_t *)"a", NET_MESH_MAX_BUFFER + 1) != INV) return 4;
    if (net_mesh_outputs_push(out, NULL, 0) != NET_MESH_OK) return 5;
    /* a writer of the wrong type is refused */
    if (net_mesh_state_write((net_mesh_state *)out, (const uint8_t *)"a", 1) != INV) return 6;
    net_mesh_callback_set_error(NULL);
    writer_checks++;
    return 0;
}
static int stateful_snapshot(void *ud, net_mesh_state *out) {
    (void)ud;
    if (net_mesh_state_write(NULL, NULL, 0) != INV) return 1;
    if (net_mesh_state_write(out, NULL, 3) != INV) return 2;
    if (net_mesh_outputs_push((net_mesh_outputs *)out, NULL, 0) != INV) return 3;
    return net_mesh_state_write(out, NULL, 0); /* empty but present */
}
static int abusive_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud; (void)ud;
    vt->process = abusive_process;
    vt->snapshot = stateful_snapshot;
    return 0;
}
static int no_process_create(void *fud, net_mesh_daemon_vtable *vt, void **ud) {
    (void)fud; (void)ud;
    vt->finalize = fin;
    return 0; /* vtable without process: refused, its finalizer still runs */
}

int main(void) {
    uint8_t b32[32] = {1};
    uint64_t u = 0;
    int i = 0;
    net_mesh_bytes bytes = {0};
    net_mesh_event_list list = {0};
    net_mesh_subscription_list subs = {0};

    /* live handles of each kind, and freed ones */
    net_mesh_identity *id = NULL, *freed_id = NULL, *pub = NULL;
    OK(net_mesh_identity_generate(&id));
    OK(net_mesh_identity_generate(&freed_id));
    net_mesh_identity_free(freed_id);
    net_mesh_identity_free(freed_id);
    net_mesh_identity_free(NULL);
    OK(net_mesh_identity_entity_id(id, b32));
    OK(net_mesh_identity_from_entity_id(b32, &pub));
    net_mesh_node *node = NULL, *freed_node = NULL;
    OK(net_mesh_node_new(NULL, &node));
    OK(net_mesh_node_new(NULL, &freed_node));
    net_mesh_node_free(freed_node);
    net_mesh_node_free(freed_node);
    net_mesh_node_free(NULL);
    net_mesh_runtime *rt = NULL, *freed_rt = NULL;
    OK(net_mesh_runtime_new(node, NULL, &rt));
    OK(net_mesh_runtime_new(node, NULL, &freed_rt));
    net_mesh_runtime_free(freed_rt);
    net_mesh_runtime_free(freed_rt);
    net_mesh_runtime_free(NULL);
    OK(register_kind(rt, "counter", counter_create));
    net_mesh_factory af;
    net_mesh_factory_init(&af);
    af.create = abusive_create;
    OK(net_mesh_runtime_register_factory(rt, "abusive", &af, NULL));
    af.create = no_process_create;
    OK(net_mesh_runtime_register_factory(rt, "broken", &af, NULL));
    OK(net_mesh_runtime_start(rt));
    net_mesh_daemon *d = NULL, *freed_d = NULL;
    OK(net_mesh_runtime_spawn(rt, "counter", id, NULL, &d));
    OK(net_mesh_daemon_origin_hash(d, &u));
    uint64_t origin = u;
    net_mesh_identity *id2 = NULL;
    OK(net_mesh_identity_generate(&id2));
    OK(net_mesh_runtime_spawn(rt, "abusive", id2, NULL, &freed_d));
    net_mesh_daemon_free(freed_d);
    net_mesh_daemon_free(freed_d);
    net_mesh_daemon_free(NULL);

    /* wrong-kind handles: the same pointer seen as another type */
    net_mesh_identity *id_as_id_wrong = (net_mesh_identity *)rt;
    net_mesh_node *node_wrong = (net_mesh_node *)id;
    net_mesh_runtime *rt_wrong = (net_mesh_runtime *)node;
    net_mesh_daemon *d_wrong = (net_mesh_daemon *)rt;
    net_mesh_task *task_wrong = (net_mesh_task *)d;
    /* a pointer that was never a handle */
    net_mesh_runtime *rt_bogus = (net_mesh_runtime *)(uintptr_t)0x1000;

    /* ---- identity ---- */
    EXPECT(INV, net_mesh_identity_generate(NULL));
    EXPECT(INV, net_mesh_identity_from_seed(NULL, 32, &pub));
    EXPECT(INV, net_mesh_identity_from_seed(b32, 31, &pub));
    EXPECT(INV, net_mesh_identity_from_seed(b32, 0, &pub));
    EXPECT(INV, net_mesh_identity_from_seed(b32, huge, &pub));
    EXPECT(INV, net_mesh_identity_from_seed(b32, 32, NULL));
    EXPECT(INV, net_mesh_identity_from_entity_id(NULL, &pub));
    EXPECT(INV, net_mesh_identity_from_entity_id(b32, NULL));
    net_mesh_identity *idh[] = {NULL, freed_id, id_as_id_wrong};
    for (int k = 0; k < 3; k++) {
        EXPECT(BAD, net_mesh_identity_entity_id(idh[k], b32));
        EXPECT(BAD, net_mesh_identity_seed(idh[k], b32));
        EXPECT(BAD, net_mesh_identity_origin_hash(idh[k], &u));
        EXPECT(BAD, net_mesh_identity_node_id(idh[k], &u));
        EXPECT(BAD, net_mesh_token_issue(idh[k], b32, 1, "c", 1, &bytes));
    }
    net_mesh_identity_free(id_as_id_wrong); /* wrong kind: no-op, rt survives */
    OK(net_mesh_runtime_is_ready(rt, &i));
    EXPECT(INV, net_mesh_identity_entity_id(id, NULL));
    EXPECT(INV, net_mesh_identity_seed(id, NULL));
    EXPECT(INV, net_mesh_identity_origin_hash(id, NULL));
    EXPECT(INV, net_mesh_identity_node_id(id, NULL));
    EXPECT(INV, net_mesh_identity_seed(pub, b32));
    EXPECT(INV, net_mesh_token_issue(id, NULL, 1, "c", 1, &bytes));
    EXPECT(INV, net_mesh_token_issue(id, b32, 1, NULL, 1, &bytes));
    EXPECT(INV, net_mesh_token_issue(id, b32, 1, bad_utf8, 1, &bytes));
    EXPECT(INV, net_mesh_token_issue(id, b32, 0x1000, "c", 1, &bytes));
    EXPECT(INV, net_mesh_token_issue(id, b32, 1, "c", (uint64_t)-1, &bytes));
    EXPECT(INV, net_mesh_token_issue(id, b32, 1, "c", 1, NULL));
    EXPECT(INV, net_mesh_token_issue(pub, b32, 1, "c", 1, &bytes));

    /* ---- misc ---- */
    EXPECT(INV, net_mesh_log_set(0, logcb, NULL, NULL));
    EXPECT(INV, net_mesh_log_set(5, logcb, NULL, NULL));
    EXPECT(INV, net_mesh_last_error_moved_to(NULL));
    EXPECT(INV, net_mesh_callback_probe(NULL, NULL));
    CHECK(strcmp(net_mesh_status_kind(-9999), "unknown") == 0);
    net_mesh_bytes_free(NULL);
    net_mesh_event_list_free(NULL);
    net_mesh_subscription_list_free(NULL);
    net_mesh_node_options_init(NULL);
    net_mesh_channel_options_init(NULL);
    net_mesh_daemon_vtable_init(NULL);
    net_mesh_factory_init(NULL);
    net_mesh_daemon_config_init(NULL);
    net_mesh_runtime_options_init(NULL);
    net_mesh_callback_set_error("outside any callback: ignored");
    net_mesh_callback_set_error(NULL);
    EXPECT(INV, net_mesh_outputs_push(NULL, NULL, 0));
    EXPECT(INV, net_mesh_state_write(NULL, NULL, 0));

    /* ---- node ---- */
    net_mesh_node_options no;
    net_mesh_node_options_init(&no);
    net_mesh_node *n2 = NULL;
    EXPECT(INV, net_mesh_node_new(NULL, NULL));
    no.size = 4;
    EXPECT(INV, net_mesh_node_new(&no, &n2));
    net_mesh_node_options_init(&no);
    no.bind_addr = bad_utf8;
    EXPECT(INV, net_mesh_node_new(&no, &n2));
    no.bind_addr = "not an address";
    EXPECT(INV, net_mesh_node_new(&no, &n2));
    no.bind_addr = "192.0.2.1:1"; /* well-formed, not an address of this host */
    EXPECT(NET_MESH_ERR_IO, net_mesh_node_new(&no, &n2));
    net_mesh_node_options_init(&no);
    no.identity = freed_id;
    EXPECT(BAD, net_mesh_node_new(&no, &n2));
    no.identity = pub;
    EXPECT(INV, net_mesh_node_new(&no, &n2));
    net_mesh_node *nh[] = {NULL, freed_node, node_wrong};
    net_mesh_channel_options co;
    net_mesh_channel_options_init(&co);
    net_mesh_node_stats ns;
    memset(&ns, 0, sizeof ns);
    ns.size = sizeof ns;
    for (int k = 0; k < 3; k++) {
        EXPECT(BAD, net_mesh_node_addr(nh[k], &bytes));
        EXPECT(BAD, net_mesh_node_id(nh[k], &u));
        EXPECT(BAD, net_mesh_node_public_key(nh[k], b32));
        EXPECT(BAD, net_mesh_node_connect(nh[k], "127.0.0.1:1", b32, 1, 10));
        EXPECT(BAD, net_mesh_node_accept(nh[k], 1));
        EXPECT(BAD, net_mesh_node_channel_register(nh[k], "c", &co));
        EXPECT(BAD, net_mesh_node_channel_subscribe(nh[k], 1, "c", NULL, 0, 10));
        EXPECT(BAD, net_mesh_node_channel_unsubscribe(nh[k], 1, "c", 10));
        EXPECT(BAD, net_mesh_node_channel_publish(nh[k], "c", NULL, 0, NULL));
        fin_runs = 0;
        EXPECT(BAD, net_mesh_node_on_channel_message(nh[k], onmsg, NULL, fin));
        CHECK(fin_runs == 1);
        EXPECT(BAD, net_mesh_node_stats_get(nh[k], &ns));
        EXPECT(BAD, net_mesh_node_close(nh[k]));
        EXPECT(BAD, net_mesh_runtime_new(nh[k], NULL, &freed_rt));
    }
    net_mesh_node_free(node_wrong); /* wrong kind: no-op */
    OK(net_mesh_identity_origin_hash(id, &u));
    EXPECT(INV, net_mesh_node_addr(node, NULL));
    EXPECT(INV, net_mesh_node_id(node, NULL));
    EXPECT(INV, net_mesh_node_public_key(node, NULL));
    EXPECT(INV, net_mesh_node_connect(node, NULL, b32, 1, 10));
    EXPECT(INV, net_mesh_node_connect(node, bad_utf8, b32, 1, 10));
    EXPECT(INV, net_mesh_node_connect(node, "127.0.0.1:1", NULL, 1, 10));
    EXPECT(NET_MESH_ERR_TIMEOUT, net_mesh_node_connect(node, "127.0.0.1:9", b32, 1, 200));
    EXPECT(INV, net_mesh_node_channel_register(node, NULL, NULL));
    EXPECT(INV, net_mesh_node_channel_register(node, bad_utf8, NULL));
    EXPECT(INV, net_mesh_node_channel_register(node, "", NULL));
    co.size = 3;
    EXPECT(INV, net_mesh_node_channel_register(node, "c", &co));
    net_mesh_channel_options_init(&co);
    co.trusted_issuer_count = 2; /* with a NULL array */
    EXPECT(INV, net_mesh_node_channel_register(node, "c", &co));
    net_mesh_channel_options_init(&co);
    co.trusted_issuers = b32;
    co.trusted_issuer_count = 1;
    co.require_token = 1;
    OK(net_mesh_node_channel_register(node, "c", &co));
    EXPECT(INV, net_mesh_node_channel_subscribe(node, 1, NULL, NULL, 0, 10));
    EXPECT(INV, net_mesh_node_channel_subscribe(node, 1, bad_utf8, NULL, 0, 10));
    EXPECT(INV, net_mesh_node_channel_subscribe(node, 1, "c", NULL, 5, 10));
    EXPECT(INV, net_mesh_node_channel_subscribe(node, 1, "c", b32, huge, 10));
    EXPECT(NET_MESH_ERR_IO, net_mesh_node_channel_subscribe(node, 1, "c", NULL, 0, 200)); /* no such peer */
    EXPECT(INV, net_mesh_node_channel_unsubscribe(node, 1, bad_utf8, 10));
    EXPECT(INV, net_mesh_node_channel_publish(node, NULL, NULL, 0, NULL));
    EXPECT(INV, net_mesh_node_channel_publish(node, bad_utf8, NULL, 0, NULL));
    EXPECT(INV, net_mesh_node_channel_publish(node, "c", NULL, 3, NULL));
    EXPECT(INV, net_mesh_node_channel_publish(node, "c", b32, huge, NULL));
    OK(net_mesh_node_channel_publish(node, "c", NULL, 0, NULL));  /* zero-length, no report */
    OK(net_mesh_node_channel_publish(node, "unknown", b32, 32, NULL));
    fin_runs = 0;
    OK(net_mesh_node_on_channel_message(node, onmsg, NULL, fin));
    OK(net_mesh_node_on_channel_message(node, NULL, NULL, fin));
    CHECK(fin_runs == 2); /* the replaced one and the NULL call's own */
    EXPECT(INV, net_mesh_node_stats_get(node, NULL));
    ns.size = 4;
    EXPECT(INV, net_mesh_node_stats_get(node, &ns));
    ns.size = 16; /* an older, shorter struct: filled up to its size */
    OK(net_mesh_node_stats_get(node, &ns));

    /* ---- runtime ---- */
    net_mesh_runtime_options ro;
    net_mesh_runtime_options_init(&ro);
    ro.size = 2;
    EXPECT(INV, net_mesh_runtime_new(node, &ro, &freed_rt));
    EXPECT(INV, net_mesh_runtime_new(node, NULL, NULL));
    net_mesh_runtime *rh[] = {NULL, freed_rt, rt_wrong, rt_bogus};
    net_mesh_event ev = make_event(1, 1, "p", 1);
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    vt.finalize = fin;
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    f.finalize = fin;
    for (int k = 0; k < 4; k++) {
        fin_runs = 0;
        EXPECT(BAD, net_mesh_runtime_register_factory(rh[k], "k", &f, NULL));
        CHECK(fin_runs == 1);
        EXPECT(BAD, net_mesh_runtime_start(rh[k]));
        EXPECT(BAD, net_mesh_runtime_shutdown(rh[k], 10));
        EXPECT(BAD, net_mesh_runtime_is_ready(rh[k], &i));
        EXPECT(BAD, net_mesh_runtime_daemon_count(rh[k], &u));
        EXPECT(BAD, net_mesh_runtime_spawn(rh[k], "counter", id2, NULL, NULL));
        fin_runs = 0;
        EXPECT(BAD, net_mesh_runtime_spawn_with_daemon(rh[k], id2, NULL, &vt, NULL, &f, NULL, NULL));
        CHECK(fin_runs == 2);
        EXPECT(BAD, net_mesh_runtime_spawn_from_snapshot(rh[k], "counter", id2, b32, 32, NULL, NULL));
        fin_runs = 0;
        EXPECT(BAD, net_mesh_runtime_spawn_from_snapshot_with_daemon(rh[k], id2, b32, 32, NULL, &vt, NULL, &f, NULL, NULL));
        CHECK(fin_runs == 2);
        EXPECT(BAD, net_mesh_runtime_stop(rh[k], origin));
        EXPECT(BAD, net_mesh_runtime_snapshot(rh[k], origin, &bytes));
        EXPECT(BAD, net_mesh_runtime_deliver(rh[k], origin, &ev, &list));
        EXPECT(BAD, net_mesh_runtime_subscriptions(rh[k], origin, &subs));
        EXPECT(BAD, net_mesh_runtime_subscribe(rh[k], origin, 1, "c", NULL, 0, 10));
        EXPECT(BAD, net_mesh_runtime_unsubscribe(rh[k], origin, 1, "c", 10));
        EXPECT(BAD, net_mesh_runtime_expect_migration(rh[k], "counter", 5, NULL));
        EXPECT(BAD, net_mesh_runtime_register_migration_target_identity(rh[k], "counter", id2, NULL));
        fin_runs = 0;
        EXPECT(BAD, net_mesh_runtime_submit(rh[k], task, NULL, fin));
        EXPECT(BAD, net_mesh_runtime_set_executor(rh[k], post, NULL, fin));
        CHECK(fin_runs == 2);
    }
    net_mesh_runtime_free(rt_wrong); /* no-op */
    net_mesh_runtime_free(rt_bogus); /* no-op */
    OK(net_mesh_node_id(node, &u));
    /* register_factory argument checks (consumed also on error) */
    fin_runs = 0;
    EXPECT(INV, net_mesh_runtime_register_factory(rt, NULL, &f, NULL));
    EXPECT(INV, net_mesh_runtime_register_factory(rt, bad_utf8, &f, NULL));
    net_mesh_factory f2 = f;
    f2.size = 1;
    EXPECT(INV, net_mesh_runtime_register_factory(rt, "k", &f2, NULL));
    f2 = f;
    f2.create = NULL;
    EXPECT(INV, net_mesh_runtime_register_factory(rt, "k", &f2, NULL));
    CHECK(fin_runs == 4);
    EXPECT(INV, net_mesh_runtime_register_factory(rt, "k", NULL, NULL));
    EXPECT(INV, net_mesh_runtime_is_ready(rt, NULL));
    EXPECT(INV, net_mesh_runtime_daemon_count(rt, NULL));
    /* spawn argument checks */
    net_mesh_identity *id3 = NULL;
    OK(net_mesh_identity_generate(&id3));
    EXPECT(INV, net_mesh_runtime_spawn(rt, NULL, id3, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn(rt, bad_utf8, id3, NULL, NULL));
    EXPECT(BAD, net_mesh_runtime_spawn(rt, "counter", NULL, NULL, NULL));
    EXPECT(BAD, net_mesh_runtime_spawn(rt, "counter", freed_id, NULL, NULL));
    EXPECT(BAD, net_mesh_runtime_spawn(rt, "counter", (net_mesh_identity *)node, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn(rt, "counter", pub, NULL, NULL));
    net_mesh_daemon_config cfg;
    net_mesh_daemon_config_init(&cfg);
    cfg.size = 1;
    EXPECT(INV, net_mesh_runtime_spawn(rt, "counter", id3, &cfg, NULL));
    EXPECT(NET_MESH_ERR_PROCESS_FAILED, net_mesh_runtime_spawn(rt, "broken", id3, NULL, NULL));
    fin_runs = 0;
    net_mesh_daemon_vtable vt2 = vt;
    vt2.process = NULL;
    EXPECT(INV, net_mesh_runtime_spawn_with_daemon(rt, id3, NULL, &vt2, NULL, &f, NULL, NULL));
    CHECK(fin_runs == 2);
    vt2 = vt;
    vt2.size = 8;
    EXPECT(INV, net_mesh_runtime_spawn_with_daemon(rt, id3, NULL, &vt2, NULL, &f, NULL, NULL));
    vt2 = vt;
    vt2.name = bad_utf8;
    EXPECT(INV, net_mesh_runtime_spawn_with_daemon(rt, id3, NULL, &vt2, NULL, &f, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_with_daemon(rt, id3, NULL, NULL, NULL, &f, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_with_daemon(rt, id3, NULL, &vt, NULL, NULL, NULL, NULL));
    CHECK(fin_runs == 2 + 2 + 2 + 1 + 1);
    fin_runs = 0;
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot(rt, "counter", id3, NULL, 10, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot(rt, "counter", id3, b32, 0, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot(rt, "counter", id3, b32, huge, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot(rt, "counter", id3, b32, 32, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot(rt, bad_utf8, id3, b32, 32, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot_with_daemon(rt, id3, b32, huge, NULL, &vt, NULL, &f, NULL, NULL));
    EXPECT(INV, net_mesh_runtime_spawn_from_snapshot_with_daemon(rt, id3, b32, 32, NULL, &vt, NULL, &f, NULL, NULL));
    CHECK(fin_runs == 4);
    /* deliver / snapshot / subscriptions argument checks */
    EXPECT(INV, net_mesh_runtime_deliver(rt, origin, NULL, &list));
    EXPECT(INV, net_mesh_runtime_deliver(rt, origin, &ev, NULL));
    net_mesh_event hev = make_event(1, 1, "p", huge);
    EXPECT(INV, net_mesh_runtime_deliver(rt, origin, &hev, &list));
    hev = make_event(1, 1, NULL, 4);
    EXPECT(INV, net_mesh_runtime_deliver(rt, origin, &hev, &list));
    hev = make_event(1, 1, "p", NET_MESH_MAX_BUFFER + 1);
    EXPECT(INV, net_mesh_runtime_deliver(rt, origin, &hev, &list));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_deliver(rt, 0xdead, &ev, &list));
    {
        net_mesh_event_list l2 = NET_MESH_EVENT_LIST_INIT;
        EXPECT(INV, net_mesh_runtime_deliver_into(rt, origin, NULL, &l2));
        EXPECT(INV, net_mesh_runtime_deliver_into(rt, origin, &ev, NULL));
        EXPECT(INV, net_mesh_runtime_deliver_into(rt, origin, &hev, &l2));
        EXPECT(BAD, net_mesh_runtime_deliver_into(NULL, origin, &ev, &l2));
        EXPECT(BAD, net_mesh_runtime_deliver_into((net_mesh_runtime *)node, origin, &ev, &l2));
        uint64_t not_a_list[4] = {1, 2, 3, 4}; /* reserved_ points at bytes without the library's header */
        l2.reserved_ = not_a_list;
        EXPECT(INV, net_mesh_runtime_deliver_into(rt, origin, &ev, &l2));
        CHECK(l2.reserved_ == not_a_list && l2.len == 0);
    }
    uint64_t origin2 = 0;
    OK(net_mesh_identity_origin_hash(id2, &origin2));
    OK(net_mesh_runtime_deliver(rt, origin2, &ev, &list)); /* the abusive daemon's checks */
    CHECK(writer_checks == 1 && list.len == 1 && list.events[0].payload_len == 0);
    net_mesh_event_list_free(&list);
    OK(net_mesh_runtime_snapshot(rt, origin2, &bytes)); /* empty-but-present state */
    CHECK(bytes.data != NULL);
    net_mesh_bytes_free(&bytes);
    EXPECT(INV, net_mesh_runtime_snapshot(rt, origin, NULL));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_snapshot(rt, 0xdead, &bytes));
    EXPECT(INV, net_mesh_runtime_subscriptions(rt, origin, NULL));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_subscriptions(rt, 0xdead, &subs));
    EXPECT(INV, net_mesh_runtime_subscribe(rt, origin, 1, NULL, NULL, 0, 10));
    EXPECT(INV, net_mesh_runtime_subscribe(rt, origin, 1, bad_utf8, NULL, 0, 10));
    EXPECT(INV, net_mesh_runtime_subscribe(rt, origin, 1, "c", NULL, 4, 10));
    EXPECT(INV, net_mesh_runtime_subscribe(rt, origin, 1, "c", b32, huge, 10));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_subscribe(rt, 0xdead, 1, "c", NULL, 0, 10));
    EXPECT(INV, net_mesh_runtime_unsubscribe(rt, origin, 1, bad_utf8, 10));
    EXPECT(INV, net_mesh_runtime_expect_migration(rt, NULL, 5, NULL));
    EXPECT(INV, net_mesh_runtime_expect_migration(rt, bad_utf8, 5, NULL));
    EXPECT(INV, net_mesh_runtime_expect_migration(rt, "counter", 5, &cfg));
    EXPECT(BAD, net_mesh_runtime_register_migration_target_identity(rt, "counter", NULL, NULL));
    EXPECT(INV, net_mesh_runtime_register_migration_target_identity(rt, bad_utf8, id3, NULL));
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_runtime_stop(rt, 0xdead));

    /* ---- daemon handles and tasks ---- */
    net_mesh_daemon *dh[] = {NULL, freed_d, d_wrong};
    net_mesh_daemon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    for (int k = 0; k < 3; k++) {
        EXPECT(BAD, net_mesh_daemon_origin_hash(dh[k], &u));
        EXPECT(BAD, net_mesh_daemon_entity_id(dh[k], b32));
        EXPECT(BAD, net_mesh_daemon_stats_get(dh[k], &st));
    }
    net_mesh_daemon_free(d_wrong); /* no-op */
    OK(net_mesh_runtime_is_ready(rt, &i));
    EXPECT(INV, net_mesh_daemon_origin_hash(d, NULL));
    EXPECT(INV, net_mesh_daemon_entity_id(d, NULL));
    EXPECT(INV, net_mesh_daemon_stats_get(d, NULL));
    st.size = 0;
    EXPECT(INV, net_mesh_daemon_stats_get(d, &st));
    EXPECT(BAD, net_mesh_task_run(NULL));
    EXPECT(BAD, net_mesh_task_run(task_wrong));
    OK(net_mesh_daemon_origin_hash(d, &u)); /* the daemon handle survived */

    net_mesh_daemon_free(d);
    net_mesh_runtime_free(rt);
    net_mesh_node_free(node);
    net_mesh_identity_free(id);
    net_mesh_identity_free(id2);
    net_mesh_identity_free(id3);
    net_mesh_identity_free(pub);
    return nm_report("badinput");
}
