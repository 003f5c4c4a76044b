/* Support for the Python binding: CPython objects read by address (see the
 * section of that name in net_mesh.h). The binding hands over the address of
 * a CausalEvent (a 6-field tuple subclass of ints and bytes) and, after its
 * daemon's process() returned, the address of what it returned; the
 * functions here read those objects in place instead of the binding packing
 * them into a net_mesh_delivery in Python. They only read: no reference count
 * is touched, no object is made, nothing calls into Python.
 *
 * Safety rests on exact type checks: every object is first compared by its
 * type pointer with a type the binding configured, and only then read as
 * that type; anything else is "not decodable" and changes nothing, so the
 * binding takes its general path. The caller keeps the objects alive for the
 * call. tuple, int and bytes are immutable, so a begin may read them without
 * the GIL; a list is not, so the commit (which reads the outputs list) is
 * made with the GIL held. */
#include <pthread.h>
#include <string.h>
#include "capi.h"

/* The configuration, set once by net_mesh_pyobj_configure. */
typedef struct nm_pycfg {
    uintptr_t event_type, int_type, bytes_type, list_type, none;
    size_t type_off, size_off, tuple_items, list_items, bytes_data, long_tag, long_digits;
    uint32_t layout, digit_bits, digit_size, max_digits;
} nm_pycfg;

static nm_pycfg nm_py;
static int nm_py_ready; /* published with release order once nm_py is written */
static pthread_mutex_t nm_py_mu = PTHREAD_MUTEX_INITIALIZER;

static const nm_pycfg *nm_py_cfg(void) {
    return __atomic_load_n(&nm_py_ready, __ATOMIC_ACQUIRE) ? &nm_py : NULL;
}

static int nm_py_fail(const char *msg) {
    nm_set_error(NET_MESH_ERR_INVALID_ARGUMENT, msg, strlen(msg), "", 0, 0);
    return NET_MESH_ERR_INVALID_ARGUMENT;
}

/* Set *dst from src once per process (under nm_py_mu; on_first, if not NULL,
 * runs before *ready is published with release order): 1 when set now or
 * already equal to src, 0 when already set to other bytes. */
static int nm_py_set_once(int *ready, void *dst, const void *src, size_t n, void (*on_first)(void)) {
    int ok = 1;
    pthread_mutex_lock(&nm_py_mu);
    if (!*ready) {
        memcpy(dst, src, n);
        if (on_first) on_first();
        __atomic_store_n(ready, 1, __ATOMIC_RELEASE);
    } else {
        ok = memcmp(dst, src, n) == 0;
    }
    pthread_mutex_unlock(&nm_py_mu);
    return ok;
}

/* The machine word at offset off of object o. */
static inline uintptr_t nm_word(uintptr_t o, size_t off) { return *(const uintptr_t *)(o + off); }

static inline int nm_is(const nm_pycfg *c, uintptr_t o, uintptr_t type) {
    return o != 0 && nm_word(o, c->type_off) == type;
}

/* An exact int in [0, 2^64) into *v; 0 for anything else (also bool, an int
 * subclass, a negative or a larger value). */
static int nm_py_u64(const nm_pycfg *c, uintptr_t o, uint64_t *v) {
    if (!nm_is(c, o, c->int_type)) return 0;
    uintptr_t n;
    if (c->layout == NET_MESH_PYLONG_TAG) {
        uintptr_t tag = nm_word(o, c->long_tag);
        switch (tag & 3) {
        case 0: n = tag >> 3; break;            /* positive: digit count above 3 flag bits */
        case 1: *v = 0; return 1;               /* zero */
        default: return 0;                      /* negative (2), or not a valid tag */
        }
    } else {
        intptr_t size = (intptr_t)nm_word(o, c->long_tag); /* signed digit count */
        if (size < 0) return 0;
        n = (uintptr_t)size;
    }
    if (n > c->max_digits) return 0;
    const uint8_t *d = (const uint8_t *)(o + c->long_digits);
    uint64_t x = 0;
    for (uintptr_t i = n; i-- > 0;) {
        if (x >> (64 - c->digit_bits)) return 0; /* the next shift would overflow */
        uint32_t dig;
        if (c->digit_size == 4) {
            memcpy(&dig, d + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, d + 2 * i, 2);
            dig = h;
        }
        x = (x << c->digit_bits) | dig;
    }
    *v = x;
    return 1;
}

/* An exact bytes object: its data and length. */
static int nm_py_bytes(const nm_pycfg *c, uintptr_t o, const uint8_t **data, size_t *len) {
    if (!nm_is(c, o, c->bytes_type)) return 0;
    intptr_t n = (intptr_t)nm_word(o, c->size_off);
    if (n < 0) return 0;
    *data = n ? (const uint8_t *)(o + c->bytes_data) : NULL;
    *len = (size_t)n;
    return 1;
}

/* The event at address o into *ev; 0 when it is not exactly a CausalEvent
 * of five u64 ints and a bytes payload. */
static int nm_py_event_at(const nm_pycfg *c, uintptr_t o, net_mesh_event *ev) {
    if (!nm_is(c, o, c->event_type) || nm_word(o, c->size_off) != 6) return 0;
    const uintptr_t *it = (const uintptr_t *)(o + c->tuple_items);
    /* CausalEvent's fields: origin_hash, sequence, payload, parent_hash,
     * horizon, received_at */
    return nm_py_u64(c, it[0], &ev->link.origin_hash) && nm_py_u64(c, it[1], &ev->link.sequence) &&
           nm_py_bytes(c, it[2], &ev->payload, &ev->payload_len) &&
           nm_py_u64(c, it[3], &ev->link.parent_hash) && nm_py_u64(c, it[4], &ev->link.horizon) &&
           nm_py_u64(c, it[5], &ev->received_at);
}

/* What process returned (p->outputs): None or an empty list, no outputs; a
 * list of one exact bytes, that output. 0 for anything else. */
static int nm_py_outputs(const nm_pycfg *c, const net_mesh_pydelivery *p, uint64_t *n,
                         const uint8_t **data, size_t *len) {
    uintptr_t o = (uintptr_t)p->outputs;
    if (o != 0 && o == c->none) {
        *n = 0;
        return 1;
    }
    if (!nm_is(c, o, c->list_type)) return 0;
    uintptr_t size = nm_word(o, c->size_off);
    if (size == 0) {
        *n = 0;
        return 1;
    }
    if (size != 1) return 0;
    const uintptr_t *items = (const uintptr_t *)nm_word(o, c->list_items);
    if (!items || !nm_py_bytes(c, items[0], data, len)) return 0;
    *n = 1;
    return 1;
}

static int nm_py_block_ok(const net_mesh_pydelivery *p) {
    return p != NULL && p->d.size >= sizeof(net_mesh_pydelivery);
}

static const char nm_py_bad_block[] =
    "netmesh: pyobj: block is NULL or its size is below sizeof(net_mesh_pydelivery)";

int net_mesh_pyobj_configure(const net_mesh_pyobj_config *cfg) {
    if (!cfg || cfg->size < sizeof(net_mesh_pyobj_config))
        return nm_py_fail("netmesh: pyobj: config is NULL or its size is below sizeof(net_mesh_pyobj_config)");
    if (!cfg->event_type || !cfg->int_type || !cfg->bytes_type || !cfg->list_type || !cfg->none)
        return nm_py_fail("netmesh: pyobj: a type or None address is 0");
    const uint64_t words[] = {cfg->type_offset, cfg->size_offset, cfg->tuple_items, cfg->list_items,
                              cfg->long_tag};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (words[i] % sizeof(uintptr_t) || words[i] > 4096)
            return nm_py_fail("netmesh: pyobj: a word offset is unaligned or above 4096");
    if (cfg->bytes_data > 4096 || cfg->long_digits > 4096)
        return nm_py_fail("netmesh: pyobj: a data offset is above 4096");
    if (cfg->long_layout != NET_MESH_PYLONG_SIZE && cfg->long_layout != NET_MESH_PYLONG_TAG)
        return nm_py_fail("netmesh: pyobj: unknown long_layout");
    if (!((cfg->digit_bits == 30 && cfg->digit_size == 4) || (cfg->digit_bits == 15 && cfg->digit_size == 2)))
        return nm_py_fail("netmesh: pyobj: digits must be 30 bits in 4 bytes or 15 bits in 2");
    if (cfg->long_digits % cfg->digit_size)
        return nm_py_fail("netmesh: pyobj: long_digits is not aligned to digit_size");
    nm_pycfg c = {
        .event_type = (uintptr_t)cfg->event_type, .int_type = (uintptr_t)cfg->int_type,
        .bytes_type = (uintptr_t)cfg->bytes_type, .list_type = (uintptr_t)cfg->list_type,
        .none = (uintptr_t)cfg->none,
        .type_off = cfg->type_offset, .size_off = cfg->size_offset, .tuple_items = cfg->tuple_items,
        .list_items = cfg->list_items, .bytes_data = cfg->bytes_data, .long_tag = cfg->long_tag,
        .long_digits = cfg->long_digits,
        .layout = cfg->long_layout, .digit_bits = cfg->digit_bits, .digit_size = cfg->digit_size,
        .max_digits = (64 + cfg->digit_bits - 1) / cfg->digit_bits,
    };
    if (!nm_py_set_once(&nm_py_ready, &nm_py, &c, sizeof c, NULL))
        return nm_py_fail("netmesh: pyobj: already configured with other values (one configuration per process)");
    return NET_MESH_OK;
}

int net_mesh_pyobj_decode_event(net_mesh_pydelivery *p) {
    if (!nm_py_block_ok(p)) return nm_py_fail(nm_py_bad_block);
    const nm_pycfg *c = nm_py_cfg();
    net_mesh_event ev;
    if (!c || !nm_py_event_at(c, (uintptr_t)p->event, &ev)) return NET_MESH_PYOBJ_UNDECODABLE;
    p->d.event = ev;
    p->d.thread = (uint64_t)pthread_self();
    return NET_MESH_OK;
}

int net_mesh_pyobj_decode_outputs(net_mesh_pydelivery *p) {
    if (!nm_py_block_ok(p)) return nm_py_fail(nm_py_bad_block);
    const nm_pycfg *c = nm_py_cfg();
    uint64_t n;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (!c || !nm_py_outputs(c, p, &n, &data, &len)) return NET_MESH_PYOBJ_UNDECODABLE;
    p->d.n_outputs = n;
    p->d.data = data;
    p->d.data_len = len;
    return NET_MESH_OK;
}

int net_mesh_pyobj_deliver_begin(net_mesh_pydelivery *p) {
    int rc = net_mesh_pyobj_decode_event(p);
    if (rc != NET_MESH_OK) return rc;
    return net_mesh_runtime_deliver_begin_block(&p->d);
}

int net_mesh_pyobj_deliver_commit(net_mesh_pydelivery *p) {
    int rc = net_mesh_pyobj_decode_outputs(p);
    if (rc != NET_MESH_OK) return rc;
    return net_mesh_runtime_deliver_commit_block(&p->d);
}

int net_mesh_pyobj_decode_events(uint64_t list, size_t start, size_t n, net_mesh_event *events, size_t *bad) {
    if (bad) *bad = 0;
    if (n && !events) return nm_py_fail("netmesh: pyobj: events is NULL");
    const nm_pycfg *c = nm_py_cfg();
    uintptr_t o = (uintptr_t)list;
    if (!c || !nm_is(c, o, c->list_type)) return NET_MESH_PYOBJ_UNDECODABLE;
    uintptr_t size = nm_word(o, c->size_off);
    if (start > size || n > size - start) return nm_py_fail("netmesh: pyobj: events range outside the list");
    const uintptr_t *items = n ? (const uintptr_t *)nm_word(o, c->list_items) : NULL;
    for (size_t i = 0; i < n; i++) {
        net_mesh_event ev; /* events[i] is written only once the item decoded */
        if (!nm_py_event_at(c, items[start + i], &ev)) {
            if (bad) *bad = i;
            return NET_MESH_PYOBJ_UNDECODABLE;
        }
        events[i] = ev;
    }
    return NET_MESH_OK;
}

/* ---- deliver as a CPython builtin (net_mesh_pyobj_native_deliver) ----
 *
 * The functions below run with the GIL held (Python calls them), except
 * begin, which releases it around the library's begin so other Python
 * threads (and library threads calling Python) run while it may wait. They
 * call the interpreter only through the addresses handed over by
 * net_mesh_pyobj_configure_api: the library never links libpython. */

typedef void *nm_pyobj; /* a PyObject * */

typedef struct nm_pyfns {
    void *(*save_thread)(void);
    void (*restore_thread)(void *);
    nm_pyobj (*vectorcall_method)(nm_pyobj name, nm_pyobj const *args, size_t nargsf, nm_pyobj kwnames);
    nm_pyobj (*get_item)(nm_pyobj o, nm_pyobj key);
    nm_pyobj (*long_from_u64)(unsigned long long v);
    nm_pyobj (*list_new)(intptr_t n);
    nm_pyobj (*event_alloc)(nm_pyobj type, intptr_t n);
    void (*incref)(nm_pyobj);
    void (*decref)(nm_pyobj);
    void (*err_fetch)(nm_pyobj *, nm_pyobj *, nm_pyobj *);
    void (*err_normalize)(nm_pyobj *, nm_pyobj *, nm_pyobj *);
    int (*set_traceback)(nm_pyobj, nm_pyobj);
    nm_pyobj (*capsule_new)(void *, const char *, void (*)(nm_pyobj));
    void *(*capsule_get_pointer)(nm_pyobj, const char *);
    nm_pyobj (*cfunction_new)(void *def, nm_pyobj self, nm_pyobj module);
} nm_pyfns;

static nm_pyfns nm_api;
static int nm_api_ready;
static volatile int nm_py_forked; /* set in a child after fork(): no call may enter Go */

static void nm_py_atfork_child(void) { nm_py_forked = 1; }
static void nm_py_register_atfork(void) { pthread_atfork(NULL, NULL, nm_py_atfork_child); }

static const nm_pyfns *nm_api_get(void) {
    return __atomic_load_n(&nm_api_ready, __ATOMIC_ACQUIRE) ? &nm_api : NULL;
}

int net_mesh_pyobj_configure_api(const net_mesh_pyapi *api) {
    if (!api || api->size < sizeof(net_mesh_pyapi))
        return nm_py_fail("netmesh: pyobj: api is NULL or its size is below sizeof(net_mesh_pyapi)");
    /* net_mesh_pyapi's addresses, in order, are nm_pyfns' pointers */
    const uint64_t *f = &api->save_thread;
    enum { n = (sizeof(net_mesh_pyapi) - offsetof(net_mesh_pyapi, save_thread)) / sizeof(uint64_t) };
    _Static_assert(sizeof(nm_pyfns) == n * sizeof(void *), "nm_pyfns mirrors net_mesh_pyapi");
    nm_pyfns a;
    for (size_t i = 0; i < n; i++) {
        if (!f[i]) return nm_py_fail("netmesh: pyobj: a CPython function address is 0");
        void *fn = (void *)(uintptr_t)f[i];
        memcpy((char *)&a + i * sizeof fn, &fn, sizeof fn);
    }
    if (!nm_py_set_once(&nm_api_ready, &nm_api, &a, sizeof a, nm_py_register_atfork))
        return nm_py_fail("netmesh: pyobj: api already configured with other addresses");
    return NET_MESH_OK;
}

/* Names looked up on the helper object (and the daemon's method). */
enum { NM_N_PROCESS, NM_N_SLOW, NM_N_FAILED, NM_N_COMMIT_OTHER, NM_N_COMMIT_FAILED, NM_N_COUNT };

typedef struct nm_native {
    net_mesh_runtime *rt;
    nm_pyobj objects; /* dict: daemon key -> daemon */
    nm_pyobj helper;  /* the binding's continuations */
    nm_pyobj names[NM_N_COUNT];
} nm_native;

static const char nm_capsule_name[] = "net_mesh.native_deliver";

#define NM_VC_OFFSET ((size_t)1 << (8 * sizeof(size_t) - 1)) /* PY_VECTORCALL_ARGUMENTS_OFFSET */

/* Drop the builtin's references and free its state. */
static void nm_native_release(const nm_pyfns *a, nm_native *st) {
    a->decref(st->objects);
    a->decref(st->helper);
    for (int i = 0; i < NM_N_COUNT; i++) a->decref(st->names[i]);
    free(st);
}

static void nm_native_free(nm_pyobj capsule) {
    const nm_pyfns *a = nm_api_get();
    nm_native *st = a ? a->capsule_get_pointer(capsule, nm_capsule_name) : NULL;
    if (st) nm_native_release(a, st);
}

/* helper.<name>(*args): a new reference, or NULL with the exception set. */
static nm_pyobj nm_helper_call(const nm_pyfns *a, const nm_native *st, int name, nm_pyobj *args, size_t nargs,
                               nm_pyobj kwnames) {
    /* args[-1] is a free slot (PY_VECTORCALL_ARGUMENTS_OFFSET) */
    args[-1] = st->helper;
    return a->vectorcall_method(st->names[name], args - 1, (nargs + 1) | NM_VC_OFFSET, kwnames);
}

/* The new CausalEvent (origin, meta[0], payload, meta[1], meta[2], meta[3]). */
static nm_pyobj nm_py_new_event(const nm_pyfns *a, const nm_pycfg *c, nm_pyobj origin, const uint64_t meta[4],
                                nm_pyobj payload) {
    nm_pyobj v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = a->long_from_u64(meta[i]);
        if (!v[i]) {
            while (i-- > 0) a->decref(v[i]);
            return NULL;
        }
    }
    nm_pyobj ev = a->event_alloc((nm_pyobj)c->event_type, 6);
    if (!ev) {
        for (int i = 0; i < 4; i++) a->decref(v[i]);
        return NULL;
    }
    nm_pyobj *it = (nm_pyobj *)((uintptr_t)ev + c->tuple_items);
    a->incref(origin);
    a->incref(payload);
    it[0] = origin;
    it[1] = v[0];
    it[2] = payload;
    it[3] = v[1];
    it[4] = v[2];
    it[5] = v[3];
    return ev;
}

/* A new list holding item (the reference is stolen), or holding nothing when
 * item is NULL. */
static nm_pyobj nm_py_list_of(const nm_pyfns *a, const nm_pycfg *c, nm_pyobj item) {
    nm_pyobj l = a->list_new(item ? 1 : 0);
    if (!l) {
        if (item) a->decref(item);
        return NULL;
    }
    if (item) ((nm_pyobj *)nm_word((uintptr_t)l, c->list_items))[0] = item;
    return l;
}

/* End the lease of p here, as failed, after the binding's helper that
 * should have ended it raised: it could not be called (making its arguments
 * ran out of memory; that MemoryError is what the builtin raises) or it
 * raised before its own abort or commit. Nothing may stay locked. Tickets are
 * never reused, so a ticket the helper (or a commit) already ended is stale:
 * refused, changing nothing. (The thread's last error is replaced; the
 * helper's exception was made before.) */
static void nm_native_abort(const net_mesh_pydelivery *p) {
    if (p->d.ticket)
        net_mesh_runtime_deliver_abort(p->d.rt, p->d.origin, p->d.ticket,
                                       "netmesh: pyobj: the binding's helper raised before ending the lease");
}

/* rt.deliver(origin_hash, event): METH_FASTCALL | METH_KEYWORDS. */
static nm_pyobj nm_native_deliver_fn(nm_pyobj self, nm_pyobj const *args, intptr_t nargsf, nm_pyobj kwnames) {
    const nm_pyfns *a = &nm_api; /* set before any function was made */
    const nm_pycfg *c = &nm_py;
    nm_native *st = a->capsule_get_pointer(self, nm_capsule_name);
    if (!st) return NULL;
    intptr_t nargs = nargsf & ~(intptr_t)NM_VC_OFFSET;
    net_mesh_pydelivery p;
    p.d.size = sizeof p;
    p.d.rt = st->rt;
    nm_pyobj fw[8];
    if (nargs != 2 || kwnames || nm_py_forked || !nm_py_u64(c, (uintptr_t)args[0], &p.d.origin) ||
        !nm_py_event_at(c, (uintptr_t)args[1], &p.d.event))
        goto slow;
    p.d.thread = (uint64_t)pthread_self();
    void *ts = a->save_thread();
    int rc = net_mesh_runtime_deliver_begin_block(&p.d);
    a->restore_thread(ts);
    if (rc != NET_MESH_OK) goto slow; /* nothing changed: the binding's path gives the error */
    if (!p.d.ticket) return nm_py_list_of(a, c, NULL); /* queued behind a migration */

    nm_pyobj origin = args[0], outs = NULL, daemon, key = a->long_from_u64((uint64_t)(uintptr_t)p.d.daemon_user_data);
    if (key) {
        daemon = a->get_item(st->objects, key);
        a->decref(key);
        if (daemon) {
            nm_pyobj pa[3] = {NULL, daemon, args[1]};
            outs = a->vectorcall_method(st->names[NM_N_PROCESS], pa + 1, 2 | NM_VC_OFFSET, NULL);
            a->decref(daemon);
        }
    }
    if (!outs) { /* process raised (or its daemon is gone): end the lease as failed, raise */
        nm_pyobj t = NULL, v = NULL, tb = NULL;
        a->err_fetch(&t, &v, &tb);
        a->err_normalize(&t, &v, &tb);
        if (tb && v) a->set_traceback(v, tb);
        nm_pyobj ticket = a->long_from_u64(p.d.ticket);
        nm_pyobj r = NULL;
        if (ticket) {
            fw[1] = origin;
            fw[2] = ticket;
            fw[3] = v ? v : (nm_pyobj)c->none;
            r = nm_helper_call(a, st, NM_N_FAILED, fw + 1, 3, NULL);
        }
        if (!r) nm_native_abort(&p);
        if (ticket) a->decref(ticket);
        if (t) a->decref(t);
        if (v) a->decref(v);
        if (tb) a->decref(tb);
        return r; /* the helper raises; NULL */
    }
    p.outputs = (uint64_t)(uintptr_t)outs;
    rc = net_mesh_pyobj_decode_outputs(&p);
    nm_pyobj payload = NULL;
    if (rc == NET_MESH_OK && p.d.n_outputs == 1) {
        payload = ((nm_pyobj *)nm_word((uintptr_t)outs, c->list_items))[0];
        a->incref(payload); /* kept even if a snapshot made by commit changes the list */
    }
    if (rc == NET_MESH_OK) rc = net_mesh_runtime_deliver_commit_block(&p.d);
    nm_pyobj res = NULL;
    if (rc == NET_MESH_OK) {
        if (payload) {
            nm_pyobj ev = nm_py_new_event(a, c, origin, p.d.meta1, payload);
            res = ev ? nm_py_list_of(a, c, ev) : NULL;
        } else {
            res = nm_py_list_of(a, c, NULL);
        }
    } else {
        nm_pyobj ticket = a->long_from_u64(p.d.ticket);
        nm_pyobj code = a->long_from_u64((uint64_t)(int64_t)rc);
        if (ticket && code) {
            fw[1] = origin;
            fw[2] = ticket;
            fw[3] = rc == NET_MESH_PYOBJ_UNDECODABLE ? outs : code;
            res = nm_helper_call(a, st, rc == NET_MESH_PYOBJ_UNDECODABLE ? NM_N_COMMIT_OTHER : NM_N_COMMIT_FAILED,
                                 fw + 1, 3, NULL);
        }
        if (!res) nm_native_abort(&p);
        if (ticket) a->decref(ticket);
        if (code) a->decref(code);
    }
    if (payload) a->decref(payload);
    a->decref(outs);
    return res;

slow: {
    /* the binding's deliver takes it from here (it raises what is wrong);
     * args[-1] may not be ours to use, so the arguments are copied */
    intptr_t nk = kwnames ? (intptr_t)nm_word((uintptr_t)kwnames, c->size_off) : 0;
    size_t n = (size_t)(nargs + nk);
    nm_pyobj *buf = n + 1 <= sizeof fw / sizeof fw[0] ? fw : malloc((n + 1) * sizeof *buf);
    if (!buf) return NULL;
    if (n) memcpy(buf + 1, args, n * sizeof *buf);
    nm_pyobj r = nm_helper_call(a, st, NM_N_SLOW, buf + 1, (size_t)nargs, kwnames);
    if (buf != fw) free(buf);
    return r;
}
}

/* PyMethodDef */
typedef struct nm_methoddef {
    const char *name;
    void *meth;
    int flags;
    const char *doc;
} nm_methoddef;

static nm_methoddef nm_deliver_def = {
    "deliver", (void *)nm_native_deliver_fn, 0x0080 | 0x0002, /* METH_FASTCALL | METH_KEYWORDS */
    "deliver($self, origin_hash, event)\n--\n\n"
    "Deliver event to the daemon at origin_hash; its process runs on this thread. Returns the output\n"
    "events (empty when none, or when the daemon is migrating and the event was queued).",
};

uint64_t net_mesh_pyobj_native_deliver(net_mesh_runtime *rt, uint64_t objects, uint64_t helper, uint64_t names) {
    const nm_pyfns *a = nm_api_get();
    const nm_pycfg *c = nm_py_cfg();
    if (!a || !c || !objects || !helper || !names || nm_word((uintptr_t)names, c->size_off) != NM_N_COUNT) return 0;
    nm_native *st = calloc(1, sizeof *st);
    if (!st) return 0;
    st->rt = rt;
    st->objects = (nm_pyobj)(uintptr_t)objects;
    st->helper = (nm_pyobj)(uintptr_t)helper;
    const nm_pyobj *nm = (const nm_pyobj *)((uintptr_t)names + c->tuple_items);
    a->incref(st->objects);
    a->incref(st->helper);
    for (int i = 0; i < NM_N_COUNT; i++) {
        st->names[i] = nm[i];
        a->incref(nm[i]);
    }
    nm_pyobj cap = a->capsule_new(st, nm_capsule_name, nm_native_free);
    if (!cap) {
        nm_native_release(a, st);
        return 0;
    }
    nm_pyobj fn = a->cfunction_new(&nm_deliver_def, cap, NULL);
    a->decref(cap);
    return (uint64_t)(uintptr_t)fn;
}

uint64_t net_mesh_pyobj_native_event(uint64_t origin, const uint64_t meta[4], uint64_t payload) {
    const nm_pyfns *a = nm_api_get();
    const nm_pycfg *c = nm_py_cfg();
    if (!a || !c || !origin || !meta || !payload) return 0;
    return (uint64_t)(uintptr_t)nm_py_new_event(a, c, (nm_pyobj)(uintptr_t)origin, meta,
                                                (nm_pyobj)(uintptr_t)payload);
}

/* ---- deliver_many's common case (net_mesh_pyobj_deliver_batch_commit,
 * net_mesh_pyobj_native_results): every event of a batch returned exactly
 * one exact bytes, so the binding's outs list holds only those. Both run
 * with the GIL held. */

/* Whether o is exactly a list of exactly n items, each exactly bytes. */
static int nm_py_bytes_list(const nm_pycfg *c, uintptr_t o, size_t n) {
    if (!nm_is(c, o, c->list_type) || nm_word(o, c->size_off) != (uintptr_t)n) return 0;
    const uintptr_t *items = n ? (const uintptr_t *)nm_word(o, c->list_items) : NULL;
    for (size_t i = 0; i < n; i++)
        if (!nm_is(c, items[i], c->bytes_type)) return 0;
    return 1;
}

static inline void nm_put_le64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

int net_mesh_pyobj_deliver_batch_commit(net_mesh_runtime *rt, uint64_t origin, uint64_t ticket, uint64_t outs,
                                        size_t n_done, int failed, uint64_t *meta, size_t meta_cap,
                                        size_t *n_out) {
    const nm_pycfg *c = nm_py_cfg();
    uintptr_t l = (uintptr_t)outs;
    if (!c || !nm_py_bytes_list(c, l, n_done)) return NET_MESH_PYOBJ_UNDECODABLE;
    const uintptr_t *items = n_done ? (const uintptr_t *)nm_word(l, c->list_items) : NULL;
    size_t len = 0;
    for (size_t i = 0; i < n_done; i++) {
        size_t k = (size_t)nm_word(items[i], c->size_off);
        if (k > SIZE_MAX - 16 - len) return NET_MESH_PYOBJ_UNDECODABLE;
        len += 16 + k;
    }
    uint8_t *recs = len ? malloc(len) : NULL;
    if (len && !recs) return NET_MESH_PYOBJ_UNDECODABLE; /* the binding builds them (or runs out itself) */
    /* records as the binding's: per event [u64 1][u64 len][bytes] */
    uint8_t *w = recs;
    for (size_t i = 0; i < n_done; i++) {
        const uint8_t *data = NULL;
        size_t k = 0;
        nm_py_bytes(c, items[i], &data, &k); /* checked above */
        nm_put_le64(w, 1);
        nm_put_le64(w + 8, k);
        if (k) memcpy(w + 16, data, k);
        w += 16 + k;
    }
    int rc = net_mesh_runtime_deliver_batch_commit(rt, origin, ticket, n_done, failed, recs, len, meta, meta_cap,
                                                   n_out);
    free(recs);
    return rc;
}

/* Clear the exception a failed CPython allocation left set (err_fetch takes
 * it over; the references are dropped). */
static void nm_py_clear_error(const nm_pyfns *a) {
    nm_pyobj t = NULL, v = NULL, tb = NULL;
    a->err_fetch(&t, &v, &tb);
    if (t) a->decref(t);
    if (v) a->decref(v);
    if (tb) a->decref(tb);
}

uint64_t net_mesh_pyobj_native_results(uint64_t origin, uint64_t outs, const uint64_t *meta, size_t n) {
    const nm_pyfns *a = nm_api_get();
    const nm_pycfg *c = nm_py_cfg();
    uintptr_t l = (uintptr_t)outs;
    if (!a || !c || !origin || (n && !meta) || !nm_py_bytes_list(c, l, n)) return 0;
    nm_pyobj res = a->list_new((intptr_t)n);
    if (!res) {
        nm_py_clear_error(a);
        return 0;
    }
    nm_pyobj *slots = (nm_pyobj *)nm_word((uintptr_t)res, c->list_items);
    for (size_t i = 0; i < n; i++) {
        /* An allocation may run the cyclic GC and so finalizers (Python
         * code): outs is read again for each item, and its payload held
         * while the event is made. */
        uintptr_t p = nm_word(l, c->size_off) == (uintptr_t)n ? ((const uintptr_t *)nm_word(l, c->list_items))[i] : 0;
        if (!nm_is(c, p, c->bytes_type)) { /* changed under us: no results (no exception set) */
            a->decref(res);
            return 0;
        }
        a->incref((nm_pyobj)p);
        nm_pyobj ev = nm_py_new_event(a, c, (nm_pyobj)(uintptr_t)origin, meta + 4 * i, (nm_pyobj)p);
        a->decref((nm_pyobj)p);
        nm_pyobj one = ev ? nm_py_list_of(a, c, ev) : NULL;
        if (!one) {
            a->decref(res); /* PyList_New's items are NULL until set: freed as such */
            nm_py_clear_error(a);
            return 0;
        }
        slots[i] = one;
    }
    return (uint64_t)(uintptr_t)res;
}
