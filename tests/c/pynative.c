/* The library's builtin deliver for the Python binding
 * (net_mesh_pyobj_native_deliver) against a FAKE interpreter written here in
 * C: refcounted fake objects (pyfake.h's layout) and the CPython functions
 * the library calls through net_mesh_pyobj_configure_api. The builtin's C
 * function is called directly, as CPython would, against a real runtime
 * with a host-driven daemon; a twin daemon on a second runtime, fed through
 * net_mesh_runtime_deliver, gives the output each call must equal. After
 * every case the fake objects made during it are all freed again once the
 * test drops its result: references balance on every path. */
#include "harness.h"
#include "daemons.h"
#include "pyfake.h"
#include <pthread.h>

/* More fake types (only their addresses matter). */
static char str_type, dict_type, helper_type, daemon_type, exc_type, class_type, tb_type, capsule_type,
    cfunc_type, bytearray_type;

static long live;          /* fake objects allocated and not freed */
static long api_calls;     /* calls into the fake API */
static int gil = 1;        /* the test thread holds the fake GIL */
static long no_gil_calls;  /* API calls made without it */
static long bad_refs;      /* decref of an object already at 0 */
#define API() (api_calls++, no_gil_calls += !gil)

static fobj *obj(const void *type) {
    fobj *o = calloc(1, sizeof *o);
    if (!o) abort();
    o->w[0] = 1;
    o->w[1] = (uint64_t)(uintptr_t)type;
    live++;
    return o;
}

static int is(const fobj *o, const void *type) { return o && o->w[1] == (uint64_t)(uintptr_t)type; }
static fobj *at(uint64_t w) { return (fobj *)(uintptr_t)w; }
static uint64_t refs(const fobj *o) { return o->w[0]; }

static void decref_(fobj *o);
static void dealloc(fobj *o) {
    if (is(o, &event_type) || is(o, &tuple_type)) {
        for (uint64_t i = 0; i < o->w[2]; i++) decref_(at(o->w[3 + i]));
    } else if (is(o, &list_type)) {
        fobj **items = (fobj **)(uintptr_t)o->w[3];
        for (uint64_t i = 0; i < o->w[2]; i++) decref_(items[i]);
    } else if (is(o, &dict_type)) { /* pairs (raw u64 key, value) from word 3 */
        for (uint64_t i = 0; i < o->w[2]; i++) decref_(at(o->w[4 + 2 * i]));
    } else if (is(o, &exc_type)) {
        decref_(at(o->w[2])); /* its traceback */
    } else if (is(o, &capsule_type)) {
        void (*destructor)(void *);
        memcpy(&destructor, &o->w[4], sizeof destructor);
        if (destructor) destructor(o); /* as CPython: the capsule is still readable */
    } else if (is(o, &cfunc_type)) {
        decref_(at(o->w[3])); /* self */
        decref_(at(o->w[4])); /* module */
    }
    free(o);
    live--;
}

static void decref_(fobj *o) {
    if (!o) return;
    if (o->w[0] == 0) {
        bad_refs++;
        return;
    }
    if (--o->w[0] == 0) dealloc(o);
}
static fobj *incref_(fobj *o) {
    if (o) o->w[0]++;
    return o;
}

/* A fake int's value (exact int, 0 <= v < 2^64 as the test makes them). */
static uint64_t u64_of(const fobj *o) {
    int64_t n = NM_TEST_TAG ? (int64_t)(o->w[2] >> 3) : (int64_t)o->w[2];
    const uint32_t *d = (const uint32_t *)&o->w[3];
    uint64_t v = 0;
    for (int64_t i = n; i-- > 0;) v = (v << 30) | d[i];
    return v;
}

static fobj *mkstr(const char *s) {
    fobj *o = obj(&str_type);
    o->w[2] = strlen(s);
    memcpy(&o->w[4], s, strlen(s) + 1);
    return o;
}
static const char *str_of(const fobj *o) { return (const char *)&o->w[4]; }

/* A list of n items (references stolen), items stored in the object. */
static fobj *mklist_of(int n, fobj **items) {
    fobj *o = obj(&list_type);
    o->w[2] = (uint64_t)n;
    o->w[3] = (uint64_t)(uintptr_t)&o->w[4];
    for (int i = 0; i < n; i++) o->w[4 + i] = addr(items[i]);
    return o;
}
static fobj *mktuple(int n, fobj **items) {
    fobj *o = obj(&tuple_type);
    o->w[2] = (uint64_t)n;
    for (int i = 0; i < n; i++) o->w[3 + i] = addr(items[i]);
    return o;
}

/* ---- the fake interpreter's state ---- */

static fobj *none_obj, *key_error, *runtime_error, *memory_error;
static fobj *exc_t, *exc_v, *exc_tb; /* the current exception */

static fobj *new_exc(fobj *cls) {
    fobj *e = obj(&exc_type);
    e->w[3] = addr(cls); /* classes live for the whole program */
    return e;
}

/* Raise an instance of cls (normalized 0: only its class, as C code often
 * raises); a traceback object comes with it. */
static void raise_(fobj *cls, int normalized) {
    decref_(exc_t), decref_(exc_v), decref_(exc_tb);
    exc_t = incref_(cls);
    exc_v = normalized ? new_exc(cls) : NULL;
    exc_tb = obj(&tb_type);
}
static void clear_exc(void) {
    decref_(exc_t), decref_(exc_v), decref_(exc_tb);
    exc_t = exc_v = exc_tb = NULL;
}

/* Allocation failures: from the fail_from-th allocation the library asks for
 * (long_from_u64, list_new, event_alloc; 1-based) on, every one fails. */
static long allocs, fail_from;
static void (*on_alloc)(long n); /* called before the n-th allocation (1-based), if set */
static int alloc_fails(void) {
    ++allocs;
    if (on_alloc) on_alloc(allocs);
    return fail_from && allocs >= fail_from;
}

/* Where the lease of the current case is, for the checks inside the calls. */
static net_mesh_runtime *cur_rt;
static uint64_t cur_origin;
static int held(void) {
    int h = 0;
    if (net_mesh_runtime_deliver_held_by(cur_rt, cur_origin, (uint64_t)pthread_self(), &h) != NET_MESH_OK)
        return 0;
    return h;
}

static int gil_token;
static long saves, restores, bad_gil;
static int held_at_save = -1, held_at_restore = -1;

static void *f_save_thread(void) {
    API();
    if (!gil) bad_gil++;
    gil = 0;
    saves++;
    held_at_save = held();
    return &gil_token;
}
static void f_restore_thread(void *ts) {
    if (gil || ts != &gil_token) bad_gil++;
    gil = 1;
    restores++;
    held_at_restore = held();
}
static void *f_get_item(void *o, void *key) {
    API();
    fobj *d = o, *k = key;
    CHECK(is(d, &dict_type) && is(k, &int_type));
    for (uint64_t i = 0; i < d->w[2]; i++)
        if (d->w[3 + 2 * i] == u64_of(k)) return incref_(at(d->w[4 + 2 * i]));
    raise_(key_error, 0);
    return NULL;
}
static void *f_long_from_u64(unsigned long long v) {
    API();
    if (alloc_fails()) {
        raise_(memory_error, 0);
        return NULL;
    }
    return mkint(v);
}
static void *f_list_new(intptr_t n) {
    API();
    CHECK(n >= 0 && n < 100);
    if (alloc_fails()) {
        raise_(memory_error, 0);
        return NULL;
    }
    fobj *o = obj(&list_type); /* items NULL, as PyList_New leaves them */
    o->w[2] = (uint64_t)n;
    o->w[3] = (uint64_t)(uintptr_t)&o->w[4];
    return o;
}
static void *f_event_alloc(void *type, intptr_t n) {
    API();
    CHECK(type == (void *)&event_type && n == 6);
    if (alloc_fails()) {
        raise_(memory_error, 0);
        return NULL;
    }
    fobj *o = obj(&event_type);
    o->w[2] = (uint64_t)n;
    return o;
}
static void f_incref(void *o) {
    API();
    incref_(o);
}
static void f_decref(void *o) {
    API();
    decref_(o);
}
static void f_err_fetch(void **t, void **v, void **tb) {
    API();
    *t = exc_t, *v = exc_v, *tb = exc_tb;
    exc_t = exc_v = exc_tb = NULL;
}
static long normalized;
static void f_err_normalize(void **t, void **v, void **tb) {
    API();
    (void)tb;
    if (*t && !*v) {
        *v = new_exc(*t);
        normalized++;
    }
}
static void *set_tb_on; /* the exception set_traceback was last called with */
static int f_set_traceback(void *v, void *tb) {
    API();
    fobj *e = v;
    CHECK(is(e, &exc_type) && is(tb, &tb_type));
    incref_(tb);
    decref_(at(e->w[2]));
    e->w[2] = addr(tb);
    set_tb_on = v;
    return 0;
}
static long capsules;
static void *f_capsule_new(void *p, const char *name, void (*destructor)(void *)) {
    API();
    fobj *o = obj(&capsule_type);
    o->w[2] = (uint64_t)(uintptr_t)p;
    o->w[3] = (uint64_t)(uintptr_t)name;
    memcpy(&o->w[4], &destructor, sizeof destructor);
    capsules++;
    return o;
}
static long destructor_calls; /* counted by get_pointer on a capsule at refcount 0 */
static void *f_capsule_get_pointer(void *c, const char *name) {
    API();
    fobj *o = c;
    if (!is(o, &capsule_type) || !name || strcmp(name, (const char *)(uintptr_t)o->w[3]) != 0) {
        raise_(runtime_error, 1);
        return NULL;
    }
    if (refs(o) == 0) destructor_calls++;
    return (void *)(uintptr_t)o->w[2];
}
static void *made_def, *made_self;
static void *f_cfunction_new(void *def, void *self, void *module) {
    API();
    fobj *o = obj(&cfunc_type);
    o->w[2] = (uint64_t)(uintptr_t)def;
    o->w[3] = addr(incref_(self));
    o->w[4] = addr(incref_(module));
    made_def = def, made_self = self;
    return o;
}

/* ---- the daemon object and the binding's helper ---- */

enum { N_PROCESS, N_SLOW, N_FAILED, N_COMMIT_OTHER, N_COMMIT_FAILED, N_COUNT };
static const char *const name_text[N_COUNT] = {"process", "slow", "failed", "commit_other", "commit_failed"};
static fobj *names, *helper, *objects;

/* What a fake daemon's process does. */
enum { P_COUNT, P_NONE, P_EMPTY, P_TWO, P_RAISE, P_RAISE_CLASS, P_FREE_RT, P_REENTER };
static int mode;
static long process_calls;
static int held_in_process = -1;
static fobj *process_event, *process_payload; /* the last call's argument and output */
static fobj *process_raised;                  /* the exception instance it raised (if normalized) */

static fobj *fn; /* the builtin for the main runtime */
static fobj *call(fobj *f, fobj **args, intptr_t nargsf, fobj *kwnames);
static fobj *reenter_origin, *reenter_res; /* P_REENTER: deliver(reenter_origin, event) from process */

static fobj *daemon_process(fobj *self, fobj *event) {
    counter *c = (counter *)(uintptr_t)self->w[2];
    process_calls++;
    process_event = event;
    held_in_process = held();
    uint8_t b[8];
    fobj *items[2];
    switch (mode) {
    case P_REENTER: {
        fobj *again[2] = {reenter_origin, event};
        reenter_res = call(fn, again, 2, NULL);
    } /* fall through */
    case P_COUNT:
    case P_FREE_RT:
        if (mode == P_FREE_RT) net_mesh_runtime_free(cur_rt); /* from inside the daemon's code */
        put64(b, ++c->n);
        items[0] = process_payload = mkbytes(b, 8);
        return mklist_of(1, items);
    case P_NONE:
        c->n++;
        return incref_(none_obj);
    case P_EMPTY:
        c->n++;
        return mklist_of(0, NULL);
    case P_TWO:
        items[0] = mkbytes("a", 1);
        items[1] = mkbytes("bc", 2);
        return mklist_of(2, items);
    default:
        raise_(runtime_error, mode == P_RAISE);
        process_raised = exc_v;
        return NULL;
    }
}

/* One call of a helper method, with references to its arguments. */
typedef struct hcall {
    int name;
    long nargs;
    fobj *args[12]; /* positional, then the keyword values */
    fobj *kwnames;
    int held;       /* the lease of cur_origin was held by this thread */
    int end_rc;     /* failed / commit_failed: the abort; commit_other: the commit */
    uint64_t meta[8];
} hcall;
static hcall calls[4];
static int ncalls;
static fobj *slow_result; /* what slow returns (a new reference each call); NULL: raises */
static int lazy_helper;   /* failed / commit_other / commit_failed raise without ending the lease */

static void drop_calls(void) {
    for (int i = 0; i < ncalls; i++) {
        long n = calls[i].nargs + (calls[i].kwnames ? (long)calls[i].kwnames->w[2] : 0);
        for (long j = 0; j < n; j++) decref_(calls[i].args[j]);
        decref_(calls[i].kwnames);
    }
    memset(calls, 0, sizeof calls);
    ncalls = 0;
}

static void *helper_call(int name, fobj *const *args, long nargs, fobj *kwnames) {
    CHECK(ncalls < 4);
    if (ncalls >= 4) return NULL;
    hcall *h = &calls[ncalls++];
    long n = nargs + (kwnames ? (long)kwnames->w[2] : 0);
    CHECK(n <= 12);
    h->name = name;
    h->nargs = nargs;
    h->kwnames = incref_(kwnames);
    for (long j = 0; j < n && j < 12; j++) h->args[j] = incref_(args[j]);
    h->held = held();
    if (name == N_SLOW) {
        if (!slow_result) raise_(runtime_error, 1);
        return incref_(slow_result);
    }
    CHECK(nargs == 3 && !kwnames && is(args[0], &int_type) && is(args[1], &int_type));
    uint64_t origin = u64_of(args[0]), ticket = u64_of(args[1]);
    if (lazy_helper) { /* raises before its abort or commit (e.g. a bug in the binding) */
        raise_(runtime_error, 1);
        return NULL;
    }
    if (name == N_COMMIT_OTHER) { /* commit what process returned, as records */
        fobj *outs = args[2];
        uint8_t rec[64];
        size_t len = 0, n_out = 0;
        fobj **items = (fobj **)(uintptr_t)outs->w[3];
        for (uint64_t i = 0; i < outs->w[2] && len + 8 + items[i]->w[2] <= sizeof rec; i++) {
            put64(rec + len, items[i]->w[2]);
            memcpy(rec + len + 8, &items[i]->w[4], items[i]->w[2]);
            len += 8 + items[i]->w[2];
        }
        h->end_rc = net_mesh_runtime_deliver_commit(cur_rt, origin, ticket, rec, len, h->meta, 8, &n_out);
        return mklist_of(0, NULL);
    }
    /* failed, commit_failed: end the lease (if still open) and raise */
    h->end_rc = net_mesh_runtime_deliver_abort(cur_rt, origin, ticket, "pynative: the helper ends it");
    raise_(runtime_error, 1);
    return NULL;
}

#define VC_OFFSET ((size_t)1 << (8 * sizeof(size_t) - 1))
static long bad_dispatch;

static void *f_vectorcall_method(void *name, void *const *args, size_t nargsf, void *kwnames) {
    API();
    long nargs = (long)(nargsf & ~VC_OFFSET);
    if (nargsf & VC_OFFSET) { /* args[-1] is the callee's to use for the call, as CPython does */
        void **slot = (void **)(uintptr_t)(args - 1);
        void *keep = *slot;
        *slot = (void *)&gil_token;
        *slot = keep;
    }
    int idx = -1;
    for (int i = 0; i < N_COUNT; i++)
        if (name == at(names->w[3 + i])) idx = i;
    if (idx < 0 || nargs < 1) {
        bad_dispatch++;
        raise_(runtime_error, 1);
        return NULL;
    }
    CHECK(strcmp(str_of(name), name_text[idx]) == 0);
    fobj *self = args[0];
    if (idx == N_PROCESS) {
        CHECK(is(self, &daemon_type) && nargs == 2 && !kwnames);
        return daemon_process(self, args[1]);
    }
    CHECK(self == helper);
    return helper_call(idx, (fobj *const *)(args + 1), nargs - 1, kwnames);
}

#define FN(f) ((uint64_t)(uintptr_t)(f))
static net_mesh_pyapi api_table(void) {
    net_mesh_pyapi a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.save_thread = FN(f_save_thread);
    a.restore_thread = FN(f_restore_thread);
    a.vectorcall_method = FN(f_vectorcall_method);
    a.get_item = FN(f_get_item);
    a.long_from_u64 = FN(f_long_from_u64);
    a.list_new = FN(f_list_new);
    a.event_alloc = FN(f_event_alloc);
    a.incref = FN(f_incref);
    a.decref = FN(f_decref);
    a.err_fetch = FN(f_err_fetch);
    a.err_normalize = FN(f_err_normalize);
    a.set_traceback = FN(f_set_traceback);
    a.capsule_new = FN(f_capsule_new);
    a.capsule_get_pointer = FN(f_capsule_get_pointer);
    a.cfunction_new = FN(f_cfunction_new);
    return a;
}

/* PyMethodDef, and the builtin called as CPython calls a METH_FASTCALL |
 * METH_KEYWORDS function: (m_self, args, nargsf, kwnames). */
typedef struct methoddef {
    const char *name;
    void *meth;
    int flags;
    const char *doc;
} methoddef;
typedef void *(*fastcall_kw)(void *self, void *const *args, intptr_t nargsf, void *kwnames);

static fobj *call(fobj *fn, fobj **args, intptr_t nargsf, fobj *kwnames) {
    const methoddef *def = (const methoddef *)(uintptr_t)fn->w[2];
    fastcall_kw f;
    memcpy(&f, &def->meth, sizeof f);
    return f(at(fn->w[3]), (void *const *)args, nargsf, kwnames);
}

/* ---- cases ---- */

static long base_live;
static long base_saves;
static void begin_case(void) {
    base_live = live;
    base_saves = saves;
    held_at_save = held_at_restore = held_in_process = -1;
    process_event = process_payload = process_raised = NULL;
    set_tb_on = NULL;
}

/* Drop the result and what the helper recorded: every object made during
 * the case must be gone; the GIL rules held. */
static void end_case(fobj *result, int line) {
    decref_(result);
    drop_calls();
    clear_exc();
    if (live != base_live || no_gil_calls || bad_gil || bad_refs || saves != restores || bad_dispatch)
        fprintf(stderr, "pynative.c:%d: live %ld (baseline %ld), no-GIL calls %ld, bad GIL %ld, bad refs %ld, "
                        "saves %ld restores %ld, bad dispatch %ld\n",
                line, live, base_live, no_gil_calls, bad_gil, bad_refs, saves, restores, bad_dispatch);
    CHECK(live == base_live);
    CHECK(no_gil_calls == 0 && bad_gil == 0 && bad_refs == 0 && saves == restores && bad_dispatch == 0);
    no_gil_calls = bad_gil = bad_refs = bad_dispatch = 0;
}

static fobj *mkev(uint64_t from, uint64_t seq, const char *payload) {
    return mkevent(mkint(from), mkint(seq), mkbytes(payload, strlen(payload)), mkint(0), mkint(0), mkint(0));
}

/* Before configure_api nothing is made and the fake is never called. */
static void before_configure_api(void) {
    uint64_t meta[4] = {1, 2, 3, 4};
    fobj *o = mkint(1), *p = mkbytes("x", 1);
    CHECK(net_mesh_pyobj_native_deliver(NULL, 1, 1, 1) == 0);
    CHECK(net_mesh_pyobj_native_event(addr(o), meta, addr(p)) == 0);
    net_mesh_pyobj_config c = config();
    c.none = addr(none_obj);
    OK(net_mesh_pyobj_configure(&c));
    CHECK(net_mesh_pyobj_native_deliver(NULL, addr(objects), addr(helper), addr(names)) == 0);
    CHECK(net_mesh_pyobj_native_event(addr(o), meta, addr(p)) == 0);
    CHECK(api_calls == 0 && refs(objects) == 1 && refs(helper) == 1);
    /* deliver_many's calls: no api, no results; the batch commit needs only
     * the layout, which is set: a bad list is refused before the runtime */
    fobj *items[1] = {incref_(p)};
    fobj *outs = mklist_of(1, items);
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 1) == 0);
    size_t n_out = 0;
    CHECK(net_mesh_pyobj_deliver_batch_commit(NULL, 1, 1, addr(o), 1, 0, meta, 4, &n_out) ==
          NET_MESH_PYOBJ_UNDECODABLE);
    CHECK(api_calls == 0 && refs(p) == 2 && refs(outs) == 1);
    decref_(outs);
    decref_(o), decref_(p);
}

static void configure_api_rules(void) {
    net_mesh_pyapi good = api_table(), bad;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(NULL));
    bad = good;
    bad.size = sizeof bad - 8;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(&bad));
    bad.size = 0;
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(&bad));
    size_t n = (sizeof good - offsetof(net_mesh_pyapi, save_thread)) / sizeof(uint64_t);
    CHECK(n == 15);
    for (size_t i = 0; i < n; i++) {
        bad = good;
        (&bad.save_thread)[i] = 0;
        EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(&bad));
    }
    /* none of those configured anything */
    CHECK(net_mesh_pyobj_native_deliver(NULL, addr(objects), addr(helper), addr(names)) == 0);
    OK(net_mesh_pyobj_configure_api(&good));
    OK(net_mesh_pyobj_configure_api(&good)); /* the same table: a no-op */
    struct { net_mesh_pyapi a; uint64_t later; } big = {good, 99};
    big.a.size = sizeof big; /* a larger (newer) table with the same addresses */
    OK(net_mesh_pyobj_configure_api(&big.a));
    bad = good;
    bad.incref = FN(f_decref);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(&bad)); /* another table */
    bad = good;
    bad.cfunction_new = FN(f_capsule_new);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_pyobj_configure_api(&bad));
    CHECK(api_calls == 0);
}

/* native_event: the CausalEvent the builtin builds, by itself. */
static void native_event(void) {
    begin_case();
    uint64_t meta[4] = {7, 1ull << 40, 0, UINT64_MAX};
    fobj *o = mkint(5), *p = mkbytes("pay", 3);
    fobj *ev = at(net_mesh_pyobj_native_event(addr(o), meta, addr(p)));
    CHECK(is(ev, &event_type) && ev->w[2] == 6 && refs(ev) == 1);
    if (is(ev, &event_type)) {
        CHECK(at(ev->w[3]) == o && at(ev->w[5]) == p && refs(o) == 2 && refs(p) == 2);
        CHECK(u64_of(at(ev->w[4])) == 7 && u64_of(at(ev->w[6])) == 1ull << 40);
        CHECK(u64_of(at(ev->w[7])) == 0 && u64_of(at(ev->w[8])) == UINT64_MAX);
        /* the library's own decoder reads it back */
        net_mesh_pydelivery pd;
        memset(&pd, 0, sizeof pd);
        pd.d.size = sizeof pd;
        pd.event = addr(ev);
        OK(net_mesh_pyobj_decode_event(&pd));
        CHECK(pd.d.event.link.origin_hash == 5 && pd.d.event.link.sequence == 7 && pd.d.event.payload_len == 3);
    }
    CHECK(net_mesh_pyobj_native_event(0, meta, addr(p)) == 0);
    CHECK(net_mesh_pyobj_native_event(addr(o), NULL, addr(p)) == 0);
    CHECK(net_mesh_pyobj_native_event(addr(o), meta, 0) == 0);
    decref_(o), decref_(p);
    end_case(ev, __LINE__);
    /* every allocation failing in turn: NULL, nothing left behind */
    for (fail_from = 1; fail_from <= 5; fail_from++) {
        begin_case();
        allocs = 0;
        o = mkint(5), p = mkbytes("pay", 3);
        ev = at(net_mesh_pyobj_native_event(addr(o), meta, addr(p)));
        CHECK(ev == NULL && exc_t == memory_error);
        CHECK(refs(o) == 1 && refs(p) == 1);
        decref_(o), decref_(p);
        end_case(ev, __LINE__);
    }
    fail_from = 0;
}

/* The world of the deliver cases. */
static net_mesh_node *na, *nb;
static net_mesh_runtime *ra, *rb;
static net_mesh_identity *id;
static uint64_t origin;
static net_mesh_daemon *da, *db;
static counter *inst; /* the host-driven daemon's instance on ra */

static fobj *mkdict1(uint64_t key, fobj *value) {
    fobj *d = obj(&dict_type);
    d->w[2] = 1;
    d->w[3] = key;
    d->w[4] = addr(value);
    return d;
}

static void setup(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    OK(net_mesh_node_new(&o, &na));
    OK(net_mesh_node_new(&o, &nb));
    OK(net_mesh_runtime_new(na, NULL, &ra));
    OK(net_mesh_runtime_new(nb, NULL, &rb));
    OK(register_kind(rb, "counter", counter_create));
    OK(net_mesh_runtime_start(ra));
    OK(net_mesh_runtime_start(rb));
    OK(net_mesh_identity_generate(&id));
    origin = origin_of(id);
    inst = calloc(1, sizeof *inst);
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    f.finalize = factory_finalize;
    OK(net_mesh_runtime_spawn_with_daemon(ra, id, NULL, &vt, inst, &f, NULL, &da));
    OK(net_mesh_runtime_spawn(rb, "counter", id, NULL, &db));
    cur_rt = ra;
    cur_origin = origin;
    /* objects: {id(instance): daemon} */
    fobj *daemon = obj(&daemon_type);
    daemon->w[2] = (uint64_t)(uintptr_t)inst;
    decref_(objects);
    objects = mkdict1((uint64_t)(uintptr_t)inst, daemon);
}

/* ---- deliver_many's common case ---- */

/* A list of n new bytes objects "p<i>" (i-th of length i % 3 + 1), or with
 * empty set, the first one empty. */
static fobj *mkouts(int n, int empty) {
    fobj *items[16];
    for (int i = 0; i < n && i < 16; i++) {
        char b[4] = {'p', (char)('0' + i), 'x', 0};
        items[i] = mkbytes(b, empty && i == 0 ? 0 : (size_t)(i % 3 + 1));
    }
    return mklist_of(n, items);
}
static fobj *item_of(const fobj *list, uint64_t i) { return ((fobj **)(uintptr_t)list->w[3])[i]; }

static fobj *hook_outs; /* native_results' outs, for the hook below */
static long hook_at, hook_item;
static void change_outs(long n) { /* a finalizer run by an allocation replaces outs[hook_item] */
    if (n != hook_at) return;
    fobj **items = (fobj **)(uintptr_t)hook_outs->w[3];
    decref_(items[hook_item]);
    items[hook_item] = mkint(1);
}

/* native_results: [[CausalEvent(origin, meta.., outs[i], ..)] ...] holding
 * the very origin and payload objects; every refused input makes nothing
 * and leaves no exception; every allocation failure gives 0 with nothing
 * kept and no exception left set. */
static void native_results(void) {
    uint64_t meta[4 * 5];
    for (int i = 0; i < 4 * 5; i++) meta[i] = (uint64_t)i * 0x100000001ull + (i == 19 ? UINT64_MAX - 19 : 0);
    for (int empty = 0; empty < 2; empty++) {
        begin_case();
        fobj *o = mkint(origin), *outs = mkouts(5, empty);
        long calls0 = api_calls;
        fobj *res = at(net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 5));
        CHECK(api_calls > calls0 && exc_t == NULL);
        CHECK(is(res, &list_type) && res->w[2] == 5 && refs(res) == 1);
        if (is(res, &list_type) && res->w[2] == 5) {
            for (uint64_t i = 0; i < 5; i++) {
                fobj *one = item_of(res, i), *ev = is(one, &list_type) && one->w[2] == 1 ? item_of(one, 0) : NULL;
                CHECK(refs(one) == 1 && is(ev, &event_type) && ev && ev->w[2] == 6 && refs(ev) == 1);
                if (!is(ev, &event_type)) continue;
                CHECK(at(ev->w[3]) == o && at(ev->w[5]) == item_of(outs, i) && refs(item_of(outs, i)) == 2);
                CHECK(u64_of(at(ev->w[4])) == meta[4 * i] && u64_of(at(ev->w[6])) == meta[4 * i + 1]);
                CHECK(u64_of(at(ev->w[7])) == meta[4 * i + 2] && u64_of(at(ev->w[8])) == meta[4 * i + 3]);
            }
            CHECK(refs(o) == 6); /* the test's and one per event */
        }
        decref_(res);
        CHECK(refs(o) == 1 && refs(outs) == 1 && refs(item_of(outs, 0)) == 1);
        decref_(o), decref_(outs);
        end_case(NULL, __LINE__);
    }
    /* any origin object is stored as it is (the binding checked the value:
     * e.g. an int subclass stays that object, as in the binding's results);
     * n 0 with an empty list: an empty list */
    begin_case();
    fobj *sub = obj(&bool_type), *outs = mkouts(2, 0), *none = mkouts(0, 0);
    fobj *res = at(net_mesh_pyobj_native_results(addr(sub), addr(outs), meta, 2));
    CHECK(is(res, &list_type) && res->w[2] == 2 && refs(sub) == 3);
    if (is(res, &list_type) && res->w[2] == 2) CHECK(at(item_of(item_of(res, 1), 0)->w[3]) == sub);
    decref_(res);
    res = at(net_mesh_pyobj_native_results(addr(sub), addr(none), NULL, 0));
    CHECK(is(res, &list_type) && res->w[2] == 0 && refs(res) == 1 && exc_t == NULL);
    decref_(res), decref_(sub), decref_(outs), decref_(none);
    end_case(NULL, __LINE__);
    /* refused: nothing made, no reference taken, no exception */
    begin_case();
    fobj *o = mkint(origin);
    outs = mkouts(3, 0);
    fobj *ba = obj(&bytearray_type);
    ba->w[2] = 1;
    fobj *mixed_items[3] = {mkbytes("a", 1), ba, mkbytes("c", 1)};
    fobj *mixed = mklist_of(3, mixed_items);
    fobj *int_items[2] = {mkbytes("a", 1), mkint(7)};
    fobj *with_int = mklist_of(2, int_items);
    fobj *tup_items[3] = {incref_(item_of(outs, 0)), incref_(item_of(outs, 1)), incref_(item_of(outs, 2))};
    fobj *tup = mktuple(3, tup_items);
    long made = live;
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 2) == 0); /* wrong length */
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 4) == 0);
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(mixed), meta, 3) == 0); /* a bytearray item */
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(with_int), meta, 2) == 0);
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(tup), meta, 3) == 0); /* not a list */
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(item_of(outs, 0)), meta, 1) == 0);
    CHECK(net_mesh_pyobj_native_results(addr(o), 0, meta, 0) == 0);
    CHECK(net_mesh_pyobj_native_results(0, addr(outs), meta, 3) == 0); /* no origin */
    CHECK(net_mesh_pyobj_native_results(addr(o), addr(outs), NULL, 3) == 0); /* no meta */
    CHECK(live == made && exc_t == NULL && refs(o) == 1 && refs(item_of(outs, 1)) == 2);
    decref_(mixed), decref_(with_int), decref_(tup);
    /* outs changed by a finalizer while the results are made (allocation 1:
     * the result list; 8: the second event's first int): an item not read
     * yet is no longer bytes: 0, all dropped; the item being made into an
     * event was held: that event keeps the old bytes (valgrind: no use after
     * free), the results are made */
    static const long when[3][2] = {{1, 1}, {8, 2}, {8, 1}};
    for (int k = 0; k < 3; k++) {
        hook_at = when[k][0], hook_item = when[k][1];
        hook_outs = outs;
        on_alloc = change_outs;
        allocs = 0;
        fobj *old = item_of(outs, (uint64_t)hook_item);
        uint64_t r = net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 3);
        on_alloc = NULL;
        CHECK(exc_t == NULL && is(item_of(outs, (uint64_t)hook_item), &int_type));
        if (k < 2) {
            CHECK(r == 0 && refs(o) == 1 && refs(item_of(outs, 0)) == 1);
        } else {
            fobj *l = at(r);
            CHECK(is(l, &list_type) && l->w[2] == 3 && refs(o) == 4);
            if (is(l, &list_type) && l->w[2] == 3) {
                fobj *ev = item_of(item_of(l, 1), 0);
                CHECK(at(ev->w[5]) == old && refs(old) == 1); /* owned by the event only */
            }
            decref_(l);
        }
        fobj **items = (fobj **)(uintptr_t)outs->w[3];
        decref_(items[hook_item]);
        items[hook_item] = mkbytes("again", 5);
    }
    decref_(outs);
    decref_(o);
    end_case(NULL, __LINE__);
    /* allocation k failing, for every k (1 + 3 x (4 ints, event, list)): 0,
     * nothing kept, the MemoryError cleared; k = 20 is the first success */
    for (fail_from = 1; fail_from <= 20; fail_from++) {
        begin_case();
        allocs = 0;
        o = mkint(origin);
        outs = mkouts(3, 1);
        res = at(net_mesh_pyobj_native_results(addr(o), addr(outs), meta, 3));
        CHECK(fail_from == 20 ? is(res, &list_type) : res == NULL);
        CHECK(exc_t == NULL && allocs == (fail_from == 20 ? 19 : fail_from));
        if (!res) CHECK(refs(o) == 1 && refs(item_of(outs, 0)) == 1 && refs(item_of(outs, 2)) == 1);
        decref_(o), decref_(outs);
        end_case(res, __LINE__);
    }
    fail_from = 0;
}

/* net_mesh_pyobj_deliver_batch_commit: the records built from a list of
 * exact bytes equal single deliveries on the twin (same sequences, parents,
 * horizons, payloads); anything else is refused with the lease still open;
 * no interpreter call and no reference touched. */
static void batch_commit(void) {
    enum { K = 5 };
    net_mesh_event evs[K];
    for (int i = 0; i < K; i++) evs[i] = make_event(200 + (uint64_t)i, 50 + (uint64_t)i, "bt", 2);
    begin_case();
    net_mesh_daemon_stats before = stats_of(da);
    uint64_t ticket = 0;
    void *ud = NULL;
    OK(net_mesh_runtime_deliver_batch_begin(ra, origin, evs, K, (uint64_t)pthread_self(), &ticket, &ud));
    CHECK(ticket != 0 && ud == (void *)inst && held() == 1);
    /* the host runs process: the counter's outputs, as the twin makes them */
    fobj *items[K];
    for (int i = 0; i < K; i++) {
        uint8_t b[8];
        put64(b, ++inst->n);
        items[i] = mkbytes(b, 8);
    }
    fobj *outs = mklist_of(K, items);
    fobj *ba = obj(&bytearray_type);
    ba->w[2] = 8;
    fobj *bad_items[K] = {incref_(items[0]), incref_(items[1]), ba, incref_(items[3]), incref_(items[4])};
    fobj *bad = mklist_of(K, bad_items);
    fobj *tup_items[1] = {incref_(items[0])};
    fobj *tup = mktuple(1, tup_items);
    uint64_t meta[4 * K];
    size_t n_out = 99;
    long calls0 = api_calls;
    const int undec = NET_MESH_PYOBJ_UNDECODABLE;
    CHECK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(bad), K, 0, meta, 4 * K, &n_out) == undec);
    CHECK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(outs), K - 1, 0, meta, 4 * K, &n_out) ==
          undec); /* n_done is not the list's length */
    CHECK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(tup), 1, 0, meta, 4 * K, &n_out) == undec);
    CHECK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(none_obj), 0, 0, meta, 4 * K, &n_out) ==
          undec);
    CHECK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, 0, 0, 0, meta, 4 * K, &n_out) == undec);
    CHECK(n_out == 99 && held() == 1); /* nothing changed: the lease is still open */
    net_mesh_daemon_stats mid = stats_of(da);
    CHECK(mid.events_processed == before.events_processed && mid.errors == before.errors);
    OK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(outs), K, 0, meta, 4 * K, &n_out));
    CHECK(n_out == K && held() == 0 && api_calls == calls0);
    for (int i = 0; i < K; i++) {
        net_mesh_event_list want = {0};
        OK(net_mesh_runtime_deliver(rb, origin, &evs[i], &want));
        CHECK(want.len == 1);
        if (want.len == 1) {
            const net_mesh_event *w = &want.events[0];
            CHECK(meta[4 * i] == w->link.sequence && meta[4 * i + 1] == w->link.parent_hash);
            CHECK(meta[4 * i + 2] == w->link.horizon && meta[4 * i + 3] != 0);
            CHECK(w->payload_len == 8 && memcmp(w->payload, &items[i]->w[4], 8) == 0);
        }
        net_mesh_event_list_free(&want);
    }
    net_mesh_daemon_stats s = stats_of(da);
    CHECK(s.events_processed == before.events_processed + K && s.events_emitted == before.events_emitted + K);
    CHECK(refs(outs) == 1 && refs(items[0]) == 3 && refs(items[2]) == 1);
    /* the next output of both sides is the same: the chains agree */
    net_mesh_event nx = make_event(9, 99, "nx", 2);
    net_mesh_event_list xa = {0}, xb = {0};
    OK(net_mesh_runtime_deliver(ra, origin, &nx, &xa));
    OK(net_mesh_runtime_deliver(rb, origin, &nx, &xb));
    CHECK(xa.len == 1 && xb.len == 1);
    if (xa.len == 1 && xb.len == 1) {
        CHECK(xa.events[0].link.sequence == xb.events[0].link.sequence);
        CHECK(xa.events[0].link.parent_hash == xb.events[0].link.parent_hash);
        CHECK(xa.events[0].link.horizon == xb.events[0].link.horizon);
    }
    net_mesh_event_list_free(&xa), net_mesh_event_list_free(&xb);
    decref_(outs), decref_(bad), decref_(tup);
    end_case(NULL, __LINE__);
    /* failed at event 2 after an empty and a 3-byte output; then failed at
     * event 0 (nothing done: no records) */
    for (int done = 2; done >= 0; done -= 2) {
        begin_case();
        before = stats_of(da);
        OK(net_mesh_runtime_deliver_batch_begin(ra, origin, evs, 3, (uint64_t)pthread_self(), &ticket, &ud));
        fobj *two[2] = {mkbytes("", 0), mkbytes("xyz", 3)};
        outs = mklist_of(done, two);
        if (!done) decref_(two[0]), decref_(two[1]);
        n_out = 99;
        OK(net_mesh_pyobj_deliver_batch_commit(ra, origin, ticket, addr(outs), (size_t)done, 1, meta, 4 * K,
                                               &n_out));
        CHECK(n_out == (size_t)done && held() == 0);
        s = stats_of(da);
        CHECK(s.events_processed == before.events_processed + (uint64_t)done);
        CHECK(s.events_emitted == before.events_emitted + (uint64_t)done && s.errors == before.errors + 1);
        if (done) CHECK(meta[4] == meta[0] + 1); /* consecutive sequences */
        decref_(outs);
        end_case(NULL, __LINE__);
    }
}

/* The builtin for rt: checks what native_deliver made and the references it
 * took. */
static fobj *make_fn(net_mesh_runtime *rt) {
    uint64_t r_obj = refs(objects), r_help = refs(helper), r_name = refs(at(names->w[3]));
    long caps = capsules;
    fobj *f = at(net_mesh_pyobj_native_deliver(rt, addr(objects), addr(helper), addr(names)));
    CHECK(is(f, &cfunc_type) && refs(f) == 1 && capsules == caps + 1);
    if (!is(f, &cfunc_type)) abort();
    const methoddef *def = made_def;
    CHECK(made_def == (void *)(uintptr_t)f->w[2] && made_self == at(f->w[3]) && f->w[4] == 0);
    CHECK(strcmp(def->name, "deliver") == 0 && def->flags == (0x0080 | 0x0002) && def->meth != NULL);
    CHECK(is(at(f->w[3]), &capsule_type) && refs(at(f->w[3])) == 1); /* held by the function only */
    CHECK(refs(objects) == r_obj + 1 && refs(helper) == r_help + 1 && refs(at(names->w[3])) == r_name + 1);
    return f;
}

/* One output: the list holds a CausalEvent (origin object, the twin's
 * meta, the very payload object process returned). */
static void one_output(void) {
    mode = P_COUNT;
    for (uint64_t i = 1; i <= 6; i++) {
        begin_case();
        net_mesh_event want_ev = make_event(100 + i % 3, i, "in", 2);
        net_mesh_event_list want = {0};
        OK(net_mesh_runtime_deliver(rb, origin, &want_ev, &want));
        fobj *args[2] = {mkint(origin), mkev(100 + i % 3, i, "in")};
        long pc = process_calls;
        /* odd calls come as vectorcall does with a free slot before args */
        fobj *slot[3] = {NULL, args[0], args[1]};
        fobj *res = i % 2 ? call(fn, slot + 1, 2 | (intptr_t)VC_OFFSET, NULL) : call(fn, args, 2, NULL);
        CHECK(process_calls == pc + 1 && process_event == args[1] && held_in_process == 1);
        CHECK(saves == base_saves + 1 && held_at_save == 0 && held_at_restore == 1);
        CHECK(ncalls == 0 && exc_t == NULL);
        CHECK(is(res, &list_type) && res->w[2] == 1 && want.len == 1);
        if (is(res, &list_type) && res->w[2] == 1 && want.len == 1) {
            fobj *ev = ((fobj **)(uintptr_t)res->w[3])[0];
            const net_mesh_event *w = &want.events[0];
            CHECK(is(ev, &event_type) && ev->w[2] == 6 && refs(ev) == 1);
            CHECK(at(ev->w[3]) == args[0] && refs(args[0]) == 2); /* the origin object, incref'd */
            CHECK(at(ev->w[5]) == process_payload && refs(process_payload) == 1); /* owned by the event only */
            CHECK(u64_of(at(ev->w[4])) == w->link.sequence && w->link.sequence == i);
            CHECK(u64_of(at(ev->w[6])) == w->link.parent_hash);
            CHECK(u64_of(at(ev->w[7])) == w->link.horizon);
            uint64_t got_recv = u64_of(at(ev->w[8]));
            uint64_t diff = got_recv > w->received_at ? got_recv - w->received_at : w->received_at - got_recv;
            CHECK(got_recv != 0 && diff < 60ull * 1000000000ull); /* both unix ns of now (two clocks) */
            CHECK(process_payload->w[2] == w->payload_len && w->payload_len == 8 &&
                  memcmp(&process_payload->w[4], w->payload, 8) == 0);
        }
        net_mesh_event_list_free(&want);
        decref_(args[0]), decref_(args[1]);
        end_case(res, __LINE__);
    }
    net_mesh_daemon_stats s = stats_of(da);
    CHECK(s.events_processed == 6 && s.events_emitted == 6 && s.errors == 0);
}

/* None and [] are no outputs: an empty list; the lease ends. */
static void no_outputs(void) {
    static const int modes[2] = {P_NONE, P_EMPTY};
    for (int k = 0; k < 2; k++) {
        mode = modes[k];
        net_mesh_daemon_stats before = stats_of(da);
        begin_case();
        fobj *args[2] = {mkint(origin), mkev(9, 20 + (uint64_t)k, "")};
        fobj *res = call(fn, args, 2, NULL);
        CHECK(is(res, &list_type) && res->w[2] == 0 && refs(res) == 1 && ncalls == 0 && exc_t == NULL);
        CHECK(held() == 0 && held_at_restore == 1);
        net_mesh_daemon_stats s = stats_of(da);
        CHECK(s.events_processed == before.events_processed + 1 && s.events_emitted == before.events_emitted);
        decref_(args[0]), decref_(args[1]);
        end_case(res, __LINE__);
    }
}

/* Not decodable, a bad call, or refused by begin: slow(*args, **kw) with
 * exactly the arguments given, nothing delivered, its result returned. */
static void slow_case(fobj **args, long nargs, fobj *kwnames, int line) {
    long pc = process_calls;
    net_mesh_daemon_stats before = stats_of(da);
    slow_result = mklist_of(0, NULL);
    fobj *res = call(fn, args, nargs, kwnames);
    long nk = kwnames ? (long)kwnames->w[2] : 0;
    int ok = res == slow_result && ncalls == 1 && calls[0].name == N_SLOW && calls[0].nargs == nargs &&
             calls[0].kwnames == kwnames && process_calls == pc && exc_t == NULL;
    for (long j = 0; ok && j < nargs + nk; j++) ok = calls[0].args[j] == args[j];
    net_mesh_daemon_stats s = stats_of(da);
    if (!ok || s.events_processed != before.events_processed)
        fprintf(stderr, "pynative.c:%d: not handed to slow as it was\n", line);
    CHECK(ok && s.events_processed == before.events_processed && held() == 0);
    decref_(slow_result);
    slow_result = NULL;
    for (long j = 0; j < nargs + nk; j++) decref_(args[j]);
    decref_(kwnames);
    end_case(res, line);
}

static void slow_paths(void) {
    mode = P_COUNT;
    fobj *boolean;
    /* undecodable events (and origins) */
    begin_case();
    boolean = mkint(1);
    boolean->w[1] = (uint64_t)(uintptr_t)&bool_type;
    fobj *a1[2] = {boolean, mkev(1, 1, "x")};
    slow_case(a1, 2, NULL, __LINE__);
    begin_case();
    fobj *a2[2] = {mkint_signed(origin, 1, 0), mkev(1, 1, "x")};
    slow_case(a2, 2, NULL, __LINE__);
    begin_case();
    fobj *bytearray = mkbytes("x", 1);
    bytearray->w[1] = (uint64_t)(uintptr_t)&bytearray_type;
    fobj *a3[2] = {mkint(origin), mkevent(mkint(1), mkint(1), bytearray, mkint(0), mkint(0), mkint(0))};
    slow_case(a3, 2, NULL, __LINE__);
    begin_case();
    fobj *neg = mkint_signed(5, 1, 0);
    fobj *a4[2] = {mkint(origin), mkevent(mkint(1), neg, mkbytes("x", 1), mkint(0), mkint(0), mkint(0))};
    slow_case(a4, 2, NULL, __LINE__);
    begin_case();
    fobj *plain = mkev(1, 1, "x");
    plain->w[1] = (uint64_t)(uintptr_t)&tuple_type; /* a plain tuple, not a CausalEvent */
    fobj *a5[2] = {mkint(origin), plain};
    slow_case(a5, 2, NULL, __LINE__);
    begin_case();
    fobj *a6[2] = {mkint(origin), incref_(none_obj)};
    slow_case(a6, 2, NULL, __LINE__);
    /* wrong argument counts, keywords: all arguments handed on */
    begin_case();
    fobj *a7[1] = {mkint(origin)};
    slow_case(a7, 1, NULL, __LINE__);
    begin_case();
    fobj *a8[3] = {mkint(origin), mkev(1, 1, "x"), mkint(3)};
    slow_case(a8, 3, NULL, __LINE__);
    begin_case();
    slow_case(NULL, 0, NULL, __LINE__);
    begin_case();
    fobj *kw1[1] = {mkstr("event")};
    fobj *a9[2] = {mkint(origin), mkev(1, 1, "x")}; /* deliver(origin, event=ev) */
    slow_case(a9, 1, mktuple(1, kw1), __LINE__);
    begin_case();
    fobj *kw2[1] = {mkstr("timeout")};
    fobj *a10[3] = {mkint(origin), mkev(1, 1, "x"), mkint(5)}; /* deliver(origin, ev, timeout=5) */
    slow_case(a10, 2, mktuple(1, kw2), __LINE__);
    begin_case();
    fobj *kw3[7];
    fobj *a11[9];
    a11[0] = mkint(origin), a11[1] = mkev(1, 1, "x");
    for (int i = 0; i < 7; i++) kw3[i] = mkstr("k"), a11[2 + i] = mkint((uint64_t)i);
    slow_case(a11, 2, mktuple(7, kw3), __LINE__); /* more than the builtin's stack buffer */
    /* begin refuses: an origin without a daemon here */
    begin_case();
    fobj *a12[2] = {mkint(origin ^ 1), mkev(1, 1, "x")};
    cur_origin = origin ^ 1;
    slow_case(a12, 2, NULL, __LINE__);
    cur_origin = origin;
    CHECK(saves == base_saves + 1 && held_at_restore == 0);
    /* process calling deliver for its own daemon: begin refuses the lease
     * holder's thread at once (no wait on itself), slow gets it */
    begin_case();
    mode = P_REENTER;
    fobj *a14[2] = {mkint(origin), mkev(1, 2, "again")};
    reenter_origin = a14[0];
    slow_result = mklist_of(0, NULL);
    fobj *r14 = call(fn, a14, 2, NULL);
    CHECK(reenter_res == slow_result && ncalls == 1 && calls[0].name == N_SLOW && calls[0].held == 1);
    CHECK(calls[0].nargs == 2 && calls[0].args[0] == a14[0] && calls[0].args[1] == a14[1]);
    CHECK(is(r14, &list_type) && r14->w[2] == 1 && exc_t == NULL && held() == 0);
    CHECK(saves == base_saves + 2 && saves == restores);
    decref_(reenter_res), decref_(slow_result), decref_(a14[0]), decref_(a14[1]);
    reenter_res = slow_result = reenter_origin = NULL;
    mode = P_COUNT;
    end_case(r14, __LINE__);
    /* slow raising: NULL back, its exception kept */
    begin_case();
    fobj *a13[1] = {mkint(origin)};
    fobj *res = call(fn, a13, 1, NULL);
    CHECK(res == NULL && exc_t == runtime_error && ncalls == 1 && calls[0].name == N_SLOW);
    decref_(a13[0]);
    end_case(res, __LINE__);
}

/* process raised (or its daemon is missing): failed(origin, ticket, exc)
 * with the lease still open; the helper aborts it and raises. */
static void failed_case(int line, fobj *want_cls) {
    net_mesh_daemon_stats before = stats_of(da);
    fobj *args[2] = {mkint(origin), mkev(3, 3, "boom")};
    fobj *res = call(fn, args, 2, NULL);
    int ok = res == NULL && exc_t == runtime_error && ncalls == 1 && calls[0].name == N_FAILED &&
             calls[0].nargs == 3 && calls[0].args[0] == args[0] && u64_of(calls[0].args[0]) == origin &&
             u64_of(calls[0].args[1]) != 0 && calls[0].held == 1 && calls[0].end_rc == NET_MESH_OK;
    fobj *e = calls[0].args[2];
    ok = ok && is(e, &exc_type) && at(e->w[3]) == want_cls && is(at(e->w[2]), &tb_type) && set_tb_on == e;
    if (mode == P_RAISE) ok = ok && e == process_raised; /* the very exception fetched */
    if (!ok) fprintf(stderr, "pynative.c:%d: failed not called as expected\n", line);
    CHECK(ok);
    CHECK(held() == 0 && held_at_restore == 1);
    net_mesh_daemon_stats s = stats_of(da);
    CHECK(s.errors == before.errors + 1 && s.events_emitted == before.events_emitted);
    decref_(args[0]), decref_(args[1]);
    end_case(res, line);
    /* the daemon is free again */
    net_mesh_event ev = make_event(1, 1, "x", 1);
    net_mesh_event_list outs = {0};
    OK(net_mesh_runtime_deliver(ra, origin, &ev, &outs));
    net_mesh_event_list_free(&outs);
}

static void failures(void) {
    mode = P_RAISE;
    begin_case();
    long nz = normalized;
    failed_case(__LINE__, runtime_error);
    CHECK(normalized == nz);
    mode = P_RAISE_CLASS; /* raised as a class: normalized by the builtin */
    begin_case();
    failed_case(__LINE__, runtime_error);
    CHECK(normalized == nz + 1);
    /* get_item misses: the daemon object is not in objects */
    mode = P_COUNT;
    uint64_t key = objects->w[3];
    objects->w[3] = key + 1;
    begin_case();
    long pc = process_calls;
    failed_case(__LINE__, key_error);
    CHECK(process_calls == pc);
    objects->w[3] = key;
    /* the twin catches up with the plain delivers made above */
    for (int i = 0; i < 3; i++) {
        net_mesh_event ev = make_event(1, 1, "x", 1);
        net_mesh_event_list outs = {0};
        OK(net_mesh_runtime_deliver(rb, origin, &ev, &outs));
        net_mesh_event_list_free(&outs);
    }
}

/* Outputs not decodable (two): commit_other(origin, ticket, outs) with the
 * lease open; its result returned. */
static void commit_other(void) {
    mode = P_TWO;
    begin_case();
    net_mesh_daemon_stats before = stats_of(da);
    fobj *args[2] = {mkint(origin), mkev(4, 4, "two")};
    fobj *res = call(fn, args, 2, NULL);
    CHECK(is(res, &list_type) && exc_t == NULL && ncalls == 1 && calls[0].name == N_COMMIT_OTHER);
    if (ncalls == 1) {
        fobj *outs = calls[0].args[2];
        CHECK(calls[0].nargs == 3 && calls[0].args[0] == args[0] && u64_of(calls[0].args[1]) != 0);
        CHECK(is(outs, &list_type) && outs->w[2] == 2 && calls[0].held == 1 && calls[0].end_rc == NET_MESH_OK);
        CHECK(refs(outs) == 1); /* the builtin dropped its reference: the record holds the last one */
    }
    CHECK(held() == 0);
    net_mesh_daemon_stats s = stats_of(da);
    CHECK(s.events_processed == before.events_processed + 1 && s.events_emitted == before.events_emitted + 2);
    decref_(args[0]), decref_(args[1]);
    end_case(res, __LINE__);
}

/* A helper raising before it ended the lease: the builtin aborts it itself
 * (the process failure counted once), so the daemon is not left locked. */
static void lazy_helpers(void) {
    static const int modes[2] = {P_RAISE, P_TWO};
    lazy_helper = 1;
    for (int m = 0; m < 2; m++) {
        mode = modes[m];
        begin_case();
        net_mesh_daemon_stats before = stats_of(da);
        fobj *args[2] = {mkint(origin), mkev(5, 5, "lazy")};
        fobj *res = call(fn, args, 2, NULL);
        CHECK(res == NULL && exc_t == runtime_error && ncalls == 1 && calls[0].held == 1);
        CHECK(calls[0].name == (modes[m] == P_RAISE ? N_FAILED : N_COMMIT_OTHER));
        CHECK(held() == 0);
        net_mesh_daemon_stats s = stats_of(da);
        CHECK(s.errors == before.errors + 1 && s.events_emitted == before.events_emitted);
        decref_(args[0]), decref_(args[1]);
        end_case(res, __LINE__);
        net_mesh_event ev = make_event(1, 1, "x", 1); /* the daemon is free again */
        net_mesh_event_list outs = {0};
        OK(net_mesh_runtime_deliver(ra, origin, &ev, &outs));
        net_mesh_event_list_free(&outs);
        OK(net_mesh_runtime_deliver(rb, origin, &ev, &outs)); /* the twin keeps in step */
        net_mesh_event_list_free(&outs);
    }
    lazy_helper = 0;
    mode = P_COUNT;
}

/* Every allocation the builtin asks for failing from the k-th on: NULL with
 * MemoryError (or a helper's exception), references balanced and the lease
 * ended on every path: the daemon is never left locked. */
static int alloc_failures(void) {
    static const int modes[3] = {P_COUNT, P_RAISE, P_TWO};
    for (int m = 0; m < 3; m++) {
        mode = modes[m];
        for (fail_from = 1; fail_from <= 10; fail_from++) {
            begin_case();
            allocs = 0;
            fobj *args[2] = {mkint(origin), mkev(5, 5, "mem")};
            fobj *res = call(fn, args, 2, NULL);
            int stuck = held();
            if (stuck || (res == NULL) == (exc_t == NULL))
                fprintf(stderr, "pynative.c: mode %d, allocation %ld on failing: result %p, exception %p, lease %s\n",
                        mode, fail_from, (void *)res, (void *)exc_t, stuck ? "LEFT OPEN" : "ended");
            CHECK(!stuck && (res == NULL) != (exc_t == NULL));
            decref_(args[0]), decref_(args[1]);
            end_case(res, __LINE__);
            if (stuck) {
                fail_from = 0;
                return 0; /* the daemon stays locked: nothing more can run on it */
            }
        }
    }
    fail_from = 0;
    return 1;
}

/* The daemon's process frees the runtime: commit gives _BAD_HANDLE (the
 * lease ended), handed to commit_failed(origin, ticket, status bits). Then a
 * builtin of a freed runtime hands everything to slow. */
static void freed_runtime(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    net_mesh_node *nc = NULL;
    net_mesh_runtime *rc = NULL;
    OK(net_mesh_node_new(&o, &nc));
    OK(net_mesh_runtime_new(nc, NULL, &rc));
    OK(net_mesh_runtime_start(rc));
    counter *c = calloc(1, sizeof *c);
    net_mesh_daemon_vtable vt;
    counter_vtable(&vt);
    net_mesh_factory f;
    net_mesh_factory_init(&f);
    f.create = counter_create;
    int fin = atomic_load(&daemons_finalized);
    OK(net_mesh_runtime_spawn_with_daemon(rc, id, NULL, &vt, c, &f, NULL, NULL));
    fobj *daemon = obj(&daemon_type);
    daemon->w[2] = (uint64_t)(uintptr_t)c;
    fobj *keep = objects;
    objects = mkdict1((uint64_t)(uintptr_t)c, daemon);
    fobj *fc = make_fn(rc);
    cur_rt = rc;
    mode = P_FREE_RT;
    begin_case();
    fobj *args[2] = {mkint(origin), mkev(6, 6, "free")};
    fobj *res = call(fc, args, 2, NULL);
    CHECK(res == NULL && exc_t == runtime_error && ncalls == 1 && calls[0].name == N_COMMIT_FAILED);
    if (ncalls == 1) {
        CHECK(calls[0].args[0] == args[0]);
        CHECK(u64_of(calls[0].args[1]) == 0); /* the commit ended the lease: no ticket left */
        CHECK(u64_of(calls[0].args[2]) == (uint64_t)(int64_t)NET_MESH_ERR_BAD_HANDLE);
        CHECK(calls[0].end_rc == NET_MESH_ERR_BAD_HANDLE); /* the helper's abort: the handle is gone */
    }
    CHECK(atomic_load(&daemons_finalized) == fin + 1); /* the commit ended the lease */
    decref_(args[0]), decref_(args[1]);
    end_case(res, __LINE__);
    /* the freed runtime's builtin: begin refuses, slow gets it */
    mode = P_COUNT;
    begin_case();
    fobj *fn_keep = fn;
    fn = fc;
    fobj *a2[2] = {mkint(origin), mkev(6, 7, "late")};
    slow_case(a2, 2, NULL, __LINE__);
    fn = fn_keep;
    cur_rt = ra;
    net_mesh_node_free(nc);
    /* releasing the function frees the capsule: the destructor drops its references */
    begin_case();
    long dc = destructor_calls;
    uint64_t r_obj = refs(objects), r_help = refs(helper);
    decref_(fc);
    CHECK(destructor_calls == dc + 1 && refs(objects) == r_obj - 1 && refs(helper) == r_help - 1);
    CHECK(live == base_live - 2); /* the function and its capsule */
    base_live = live;
    end_case(NULL, __LINE__);
    decref_(objects);
    objects = keep;
}

/* native_deliver's bad arguments make nothing and take no reference. */
static void native_deliver_refuses(void) {
    begin_case();
    long caps = capsules;
    uint64_t r_obj = refs(objects), r_help = refs(helper);
    CHECK(net_mesh_pyobj_native_deliver(ra, 0, addr(helper), addr(names)) == 0);
    CHECK(net_mesh_pyobj_native_deliver(ra, addr(objects), 0, addr(names)) == 0);
    CHECK(net_mesh_pyobj_native_deliver(ra, addr(objects), addr(helper), 0) == 0);
    fobj *four[4];
    for (int i = 0; i < 4; i++) four[i] = incref_(at(names->w[3 + i]));
    fobj *short_names = mktuple(4, four);
    CHECK(net_mesh_pyobj_native_deliver(ra, addr(objects), addr(helper), addr(short_names)) == 0);
    CHECK(capsules == caps && refs(objects) == r_obj && refs(helper) == r_help);
    decref_(short_names);
    end_case(NULL, __LINE__);
}

int main(void) {
    none_obj = obj(&none_type);
    key_error = obj(&class_type);
    runtime_error = obj(&class_type);
    memory_error = obj(&class_type);
    fobj *nm[N_COUNT];
    for (int i = 0; i < N_COUNT; i++) nm[i] = mkstr(name_text[i]);
    names = mktuple(N_COUNT, nm);
    helper = obj(&helper_type);
    objects = obj(&dict_type); /* empty until setup */
    before_configure_api();
    configure_api_rules();
    native_event();
    native_results();
    setup();
    native_deliver_refuses();
    begin_case();
    long base = live;
    fn = make_fn(ra);
    CHECK(live == base + 2); /* the function and its capsule */
    one_output();
    batch_commit(); /* the twin still in step */
    no_outputs();
    slow_paths();
    failures();
    commit_other();
    lazy_helpers();
    int unlocked = alloc_failures();
    if (unlocked) freed_runtime();
    /* releasing the function: the capsule's destructor runs, its references go */
    long dc = destructor_calls;
    uint64_t r_obj = refs(objects), r_help = refs(helper), r_name = refs(at(names->w[3]));
    decref_(fn);
    CHECK(destructor_calls == dc + 1 && live == base);
    CHECK(refs(objects) == r_obj - 1 && refs(helper) == r_help - 1 && refs(at(names->w[3])) == r_name - 1);
    CHECK(refs(objects) == 1 && refs(helper) == 1 && refs(at(names->w[3])) == 1);
    if (unlocked) {
        net_mesh_daemon_free(da);
        net_mesh_daemon_free(db);
        net_mesh_runtime_free(ra);
        net_mesh_runtime_free(rb);
        net_mesh_node_free(na);
        net_mesh_node_free(nb);
    }
    net_mesh_identity_free(id);
    decref_(objects), decref_(helper), decref_(names);
    decref_(none_obj), decref_(key_error), decref_(runtime_error), decref_(memory_error);
    CHECK(live == 0 && bad_refs == 0);
    if (live) fprintf(stderr, "pynative: %ld fake objects never freed\n", live);
    return nm_report("pynative");
}
