/* Support for the Python binding (net_mesh_pyobj_*): objects laid out like
 * CPython's, built here in C memory, are decoded exactly; everything else is
 * refused with nothing written; a lease begun and committed from such objects
 * equals net_mesh_runtime_deliver. Built twice: this file tests the 3.11 int
 * layout (ob_size), pyobj_tag.c includes it for the 3.12+ one (lv_tag). The
 * configuration is once per process, hence one layout per program. */
#include "harness.h"
#include "daemons.h"
#include <pthread.h>

#include "pyfake.h"
#define NAME (NM_TEST_TAG ? "pyobj_tag" : "pyobj")

/* Objects live in a static pool, reused from index `used`; refcounts are
 * not used. */
static fobj pool[128];
static int used;

static fobj *obj(const void *type) {
    fobj *o = &pool[used++];
    memset(o, 0, sizeof *o);
    o->w[0] = 1;
    o->w[1] = (uint64_t)(uintptr_t)type;
    return o;
}

static fobj *mklist(uint64_t *items, uint64_t n) {
    fobj *o = obj(&list_type);
    o->w[2] = n;
    o->w[3] = (uint64_t)(uintptr_t)items;
    return o;
}

static net_mesh_pydelivery block(void) {
    net_mesh_pydelivery p;
    memset(&p, 0, sizeof p);
    p.d.size = sizeof p;
    return p;
}

static fobj *none_obj;

static void configure_rules(void) {
    net_mesh_pydelivery p = block();
    fobj *ev = mkevent(mkint(1), mkint(2), mkbytes("x", 1), mkint(3), mkint(4), mkint(5));
    p.event = addr(ev);
    /* before configure: nothing decodes */
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_event(&p));
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_deliver_begin(&p));
    net_mesh_pyobj_config c = config();
    c.none = addr(none_obj);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(NULL));
    net_mesh_pyobj_config bad = c;
    bad.size = 8;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.int_type = 0;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.long_layout = 3;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.tuple_items = 20; /* unaligned word */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.bytes_data = 1 << 20;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.digit_bits = 60;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    bad = c;
    bad.digit_bits = 15; /* with 4-byte digits */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad));
    OK(net_mesh_pyobj_configure(&c));
    OK(net_mesh_pyobj_configure(&c)); /* same values: a no-op */
    bad = c;
    bad.list_type = (uint64_t)(uintptr_t)&tuple_type;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure(&bad)); /* one layout per process */
    OK(net_mesh_pyobj_decode_event(&p));
    /* bad blocks are refused, never read */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_event(NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_outputs(NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_deliver_begin(NULL));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_deliver_commit(NULL));
    p.d.size = sizeof(net_mesh_delivery); /* a plain block: too small */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_event(&p));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_deliver_commit(&p));
}

static void decodes_values(void) {
    static const uint64_t vals[] = {0, 1, 2, (1u << 30) - 1, 1u << 30, (1ull << 32) + 7, (1ull << 60) - 1,
                                    (1ull << 60) + 5, 1ull << 63, UINT64_MAX - (1u << 30), UINT64_MAX};
    const size_t n = sizeof vals / sizeof vals[0];
    static const char text[] = "net mesh payload bytes";
    for (size_t i = 0; i < n; i++) {
        used = 1; /* keep none_obj */
        size_t plen = i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : sizeof text - 1;
        fobj *pay = mkbytes(text, plen);
        fobj *ev = mkevent(mkint(vals[i]), mkint(vals[(i + 3) % n]), pay, mkint(vals[(i + 5) % n]),
                           mkint(vals[(i + 7) % n]), mkint(vals[(i + 9) % n]));
        net_mesh_pydelivery p = block();
        p.event = addr(ev);
        OK(net_mesh_pyobj_decode_event(&p));
        CHECK(p.d.event.link.origin_hash == vals[i]);
        CHECK(p.d.event.link.sequence == vals[(i + 3) % n]);
        CHECK(p.d.event.link.parent_hash == vals[(i + 5) % n]);
        CHECK(p.d.event.link.horizon == vals[(i + 7) % n]);
        CHECK(p.d.event.received_at == vals[(i + 9) % n]);
        CHECK(p.d.event.payload_len == plen);
        CHECK(plen ? p.d.event.payload == (const uint8_t *)&pay->w[4] : p.d.event.payload == NULL);
        CHECK(p.d.thread == (uint64_t)pthread_self());
    }
}

/* The call must return UNDECODABLE and leave the block exactly as it was. */
static void refused_event(fobj *ev, int line) {
    net_mesh_pydelivery p = block();
    p.event = addr(ev);
    p.d.ticket = 77;
    net_mesh_pydelivery before = p;
    int rc = net_mesh_pyobj_decode_event(&p);
    int rc2 = net_mesh_pyobj_deliver_begin(&p);
    if (rc != NET_MESH_PYOBJ_UNDECODABLE || rc2 != NET_MESH_PYOBJ_UNDECODABLE ||
        memcmp(&p, &before, sizeof p) != 0)
        fprintf(stderr, "pyobj.c:%d: event not refused cleanly (rc %d, %d)\n", line, rc, rc2);
    CHECK(rc == NET_MESH_PYOBJ_UNDECODABLE && rc2 == NET_MESH_PYOBJ_UNDECODABLE);
    CHECK(memcmp(&p, &before, sizeof p) == 0);
}

static void refuses_events(void) {
    used = 1;
    fobj *one = mkint(1), *pay = mkbytes("p", 1);
    fobj *t;
    refused_event(NULL, __LINE__);
    refused_event(none_obj, __LINE__);
    t = mkevent(one, one, pay, one, one, one);
    t->w[1] = (uint64_t)(uintptr_t)&tuple_type; /* a plain tuple */
    refused_event(t, __LINE__);
    t = mkevent(one, one, pay, one, one, one);
    t->w[2] = 5; /* 5 items */
    refused_event(t, __LINE__);
    fobj *boolean = mkint(1);
    boolean->w[1] = (uint64_t)(uintptr_t)&bool_type;
    fobj *bad_ints[] = {
        boolean,
        mkint_signed(1, 1, 0),            /* -1 */
        mkint_signed(1ull << 40, 1, 0),   /* -2^40 */
        mkint_signed(16, 0, 3),           /* 2^64: digits 0, 0, 16 */
        mkint_signed(1, 0, 4),            /* 4 digits: >= 2^90 */
    };
    /* 2^64 as digits (0, 0, 16): mkint_signed wrote 16 into digit 0; move it */
    {
        uint32_t *d = (uint32_t *)&bad_ints[3]->w[3];
        d[0] = 0, d[1] = 0, d[2] = 16;
        d = (uint32_t *)&bad_ints[4]->w[3];
        d[0] = 1, d[1] = 0, d[2] = 0, d[3] = 1;
    }
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++) {
        fobj *f[6] = {one, one, pay, one, one, one};
        static const int ints[5] = {0, 1, 3, 4, 5};
        for (int j = 0; j < 5; j++) {
            f[ints[j]] = bad_ints[k];
            refused_event(mkevent(f[0], f[1], f[2], f[3], f[4], f[5]), __LINE__);
            f[ints[j]] = one;
        }
    }
    /* a NULL item, a payload of another type, an int as payload */
    refused_event(mkevent(NULL, one, pay, one, one, one), __LINE__);
    refused_event(mkevent(one, one, NULL, one, one, one), __LINE__);
    refused_event(mkevent(one, one, one, one, one, one), __LINE__);
    fobj *bytearray = mkbytes("p", 1);
    bytearray->w[1] = (uint64_t)(uintptr_t)&tuple_type;
    refused_event(mkevent(one, one, bytearray, one, one, one), __LINE__);
    /* the largest u64 is fine: digits (2^30-1, 2^30-1, 15) */
    net_mesh_pydelivery p = block();
    p.event = addr(mkevent(mkint(UINT64_MAX), one, pay, one, one, one));
    OK(net_mesh_pyobj_decode_event(&p));
    CHECK(p.d.event.link.origin_hash == UINT64_MAX);
}

static void refused_outputs(fobj *outs, int line) {
    net_mesh_pydelivery p = block();
    p.outputs = addr(outs);
    p.d.n_outputs = 9;
    p.d.ticket = 77;
    net_mesh_pydelivery before = p;
    int rc = net_mesh_pyobj_decode_outputs(&p);
    int rc2 = net_mesh_pyobj_deliver_commit(&p);
    if (rc != NET_MESH_PYOBJ_UNDECODABLE || rc2 != NET_MESH_PYOBJ_UNDECODABLE ||
        memcmp(&p, &before, sizeof p) != 0)
        fprintf(stderr, "pyobj.c:%d: outputs not refused cleanly (rc %d, %d)\n", line, rc, rc2);
    CHECK(rc == NET_MESH_PYOBJ_UNDECODABLE && rc2 == NET_MESH_PYOBJ_UNDECODABLE);
    CHECK(memcmp(&p, &before, sizeof p) == 0);
}

static void outputs(void) {
    used = 1;
    fobj *b = mkbytes("out", 3), *empty = mkbytes("", 0);
    static uint64_t one[1], two[2], onenull[1], oneint[1], oneempty[1];
    one[0] = addr(b);
    two[0] = two[1] = addr(b);
    oneint[0] = addr(mkint(5));
    oneempty[0] = addr(empty);
    struct { fobj *o; uint64_t n; const void *data; size_t len; } ok[] = {
        {none_obj, 0, NULL, 0},
        {mklist(NULL, 0), 0, NULL, 0},
        {mklist(one, 1), 1, &b->w[4], 3},
        {mklist(oneempty, 1), 1, NULL, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        net_mesh_pydelivery p = block();
        p.outputs = addr(ok[i].o);
        p.d.n_outputs = 9;
        OK(net_mesh_pyobj_decode_outputs(&p));
        CHECK(p.d.n_outputs == ok[i].n);
        if (ok[i].n) CHECK(p.d.data == ok[i].data && p.d.data_len == ok[i].len);
    }
    refused_outputs(NULL, __LINE__);
    refused_outputs(mklist(two, 2), __LINE__);
    refused_outputs(mklist(onenull, 1), __LINE__);
    refused_outputs(mklist(oneint, 1), __LINE__);
    refused_outputs(mklist(NULL, 1), __LINE__); /* a list of 1 without its item array */
    fobj *tuple = mklist(one, 1);
    tuple->w[1] = (uint64_t)(uintptr_t)&tuple_type;
    refused_outputs(tuple, __LINE__);
    refused_outputs(b, __LINE__); /* bytes itself, not a list */
}

/* A lease through the pyobj calls equals net_mesh_runtime_deliver on a twin
 * daemon; refused outputs leave the lease open for the caller to end. */
static void lease_equals_deliver(void) {
    used = 1;
    net_mesh_node_options o;
    net_mesh_node *na = NULL, *nb = NULL;
    net_mesh_runtime *ra = NULL, *rb = NULL;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    OK(net_mesh_node_new(&o, &na));
    OK(net_mesh_node_new(&o, &nb));
    OK(net_mesh_runtime_new(na, NULL, &ra));
    OK(net_mesh_runtime_new(nb, NULL, &rb));
    OK(register_kind(ra, "counter", counter_create));
    OK(register_kind(rb, "counter", counter_create));
    OK(net_mesh_runtime_start(ra));
    OK(net_mesh_runtime_start(rb));
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = 0;
    OK(net_mesh_identity_origin_hash(id, &origin));
    net_mesh_daemon *da = NULL, *db = NULL;
    OK(net_mesh_runtime_spawn(ra, "counter", id, NULL, &da));
    OK(net_mesh_runtime_spawn(rb, "counter", id, NULL, &db));
    static uint64_t item[1];
    for (uint64_t i = 1; i <= 6; i++) {
        used = 1;
        net_mesh_event ev = make_event(100 + i % 3, i, "in", 2);
        net_mesh_event_list want = {0};
        OK(net_mesh_runtime_deliver(ra, origin, &ev, &want));
        net_mesh_pydelivery p = block();
        p.d.rt = rb;
        p.d.origin = origin;
        p.event = addr(mkevent(mkint(100 + i % 3), mkint(i), mkbytes("in", 2), mkint(0), mkint(0), mkint(0)));
        OK(net_mesh_pyobj_deliver_begin(&p));
        CHECK(p.d.ticket != 0 && p.d.daemon_user_data != NULL);
        if (!p.d.ticket) continue;
        /* run the counter as a host would, its output as a bytes object */
        counter *c = p.d.daemon_user_data;
        uint8_t out[8];
        put64(out, ++c->n);
        fobj *b = mkbytes(out, 8);
        item[0] = addr(b);
        if (i == 3) { /* two outputs: refused, the lease stays open */
            static uint64_t two[2];
            two[0] = two[1] = addr(b);
            p.outputs = addr(mklist(two, 2));
            uint64_t t = p.d.ticket;
            EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_deliver_commit(&p));
            CHECK(p.d.ticket == t);
        }
        p.outputs = addr(mklist(item, 1));
        OK(net_mesh_pyobj_deliver_commit(&p));
        CHECK(p.d.ticket == 0);
        CHECK(want.len == 1);
        if (want.len == 1) {
            const net_mesh_event *w = &want.events[0];
            CHECK(w->link.sequence == p.d.meta1[0] && p.d.meta1[0] == i);
            CHECK(w->link.parent_hash == p.d.meta1[1]);
            CHECK(w->link.horizon == p.d.meta1[2]);
            CHECK(p.d.meta1[3] != 0);
            CHECK(w->payload_len == 8 && memcmp(w->payload, out, 8) == 0);
        }
        net_mesh_event_list_free(&want);
    }
    /* no outputs (None): nothing appended; then an undecodable event begins nothing */
    net_mesh_pydelivery p = block();
    p.d.rt = rb;
    p.d.origin = origin;
    p.event = addr(mkevent(mkint(1), mkint(7), mkbytes("", 0), mkint(0), mkint(0), mkint(0)));
    OK(net_mesh_pyobj_deliver_begin(&p));
    ((counter *)p.d.daemon_user_data)->n++;
    p.outputs = addr(none_obj);
    OK(net_mesh_pyobj_deliver_commit(&p));
    CHECK(p.d.ticket == 0 && p.d.n_outputs == 0);
    p.event = addr(mkint(3));
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_deliver_begin(&p));
    CHECK(p.d.ticket == 0);
    net_mesh_daemon_stats st = stats_of(db);
    CHECK(st.events_processed == 7 && st.events_emitted == 6 && st.errors == 0);
    /* the daemon is free: a plain deliver gets through (no lease left open) */
    net_mesh_event ev = make_event(1, 8, "x", 1);
    net_mesh_event_list outs = {0};
    OK(net_mesh_runtime_deliver(rb, origin, &ev, &outs));
    CHECK(outs.len == 1);
    net_mesh_event_list_free(&outs);
    net_mesh_daemon_free(da);
    net_mesh_daemon_free(db);
    net_mesh_identity_free(id);
    net_mesh_runtime_free(ra);
    net_mesh_runtime_free(rb);
    net_mesh_node_free(na);
    net_mesh_node_free(nb);
}

/* net_mesh_pyobj_decode_events: a list's events (a range of it) decoded in
 * order; the first undecodable item named; bad ranges refused. */
static void decodes_event_lists(void) {
    used = 1;
    fobj *pay = mkbytes("abc", 3), *empty = mkbytes("", 0);
    uint64_t items[5];
    for (int i = 0; i < 5; i++)
        items[i] = addr(mkevent(mkint(10 + i), mkint(20 + i), i % 2 ? empty : pay, mkint(30 + i), mkint(40 + i),
                                mkint(50 + i)));
    fobj *list = mklist(items, 5);
    net_mesh_event evs[5];
    memset(evs, 0xab, sizeof evs);
    size_t bad = 99;
    OK(net_mesh_pyobj_decode_events(addr(list), 0, 5, evs, &bad));
    CHECK(bad == 0);
    for (int i = 0; i < 5; i++) {
        CHECK(evs[i].link.origin_hash == 10u + i && evs[i].link.sequence == 20u + i);
        CHECK(evs[i].link.parent_hash == 30u + i && evs[i].link.horizon == 40u + i);
        CHECK(evs[i].received_at == 50u + i);
        CHECK(i % 2 ? evs[i].payload_len == 0 && evs[i].payload == NULL
                    : evs[i].payload_len == 3 && evs[i].payload == (const uint8_t *)&pay->w[4]);
    }
    memset(evs, 0, sizeof evs);
    OK(net_mesh_pyobj_decode_events(addr(list), 2, 3, evs, NULL)); /* a range */
    CHECK(evs[0].link.origin_hash == 12 && evs[2].link.origin_hash == 14);
    OK(net_mesh_pyobj_decode_events(addr(list), 5, 0, NULL, &bad)); /* empty, at the end */
    /* an undecodable item: its index in events, the ones before written */
    items[3] = addr(mkevent(mkint(1), mkint(2), pay, mkint(3), mkint(4), mkbytes("x", 1)));
    memset(evs, 0, sizeof evs);
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_events(addr(list), 1, 4, evs, &bad));
    CHECK(bad == 2 && evs[1].link.origin_hash == 12 && evs[2].link.origin_hash == 0);
    items[3] = addr(none_obj);
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_events(addr(list), 0, 5, evs, &bad));
    CHECK(bad == 3);
    /* not a list: a tuple, None, NULL */
    fobj *tup = mklist(items, 5);
    tup->w[1] = (uint64_t)(uintptr_t)&tuple_type;
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_events(addr(tup), 0, 1, evs, &bad));
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_events(addr(none_obj), 0, 1, evs, &bad));
    EXPECT(NET_MESH_PYOBJ_UNDECODABLE, net_mesh_pyobj_decode_events(0, 0, 1, evs, &bad));
    /* ranges outside the list, NULL events */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_events(addr(list), 0, 6, evs, &bad));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_events(addr(list), 6, 0, evs, &bad));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_events(addr(list), 4, SIZE_MAX, evs, &bad));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_decode_events(addr(list), 0, 1, NULL, &bad));
}

int main(void) {
    none_obj = obj(&none_type); /* pool[0], kept: the others are reused (used = 1) */
    configure_rules();
    decodes_values();
    refuses_events();
    outputs();
    lease_equals_deliver();
    decodes_event_lists();
    return nm_report(NAME);
}
