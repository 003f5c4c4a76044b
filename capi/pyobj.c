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

static int nm_py_event(const nm_pycfg *c, const net_mesh_pydelivery *p, net_mesh_event *ev) {
    return nm_py_event_at(c, (uintptr_t)p->event, ev);
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
    int rc = NET_MESH_OK;
    pthread_mutex_lock(&nm_py_mu);
    if (!nm_py_ready) {
        nm_py = c;
        __atomic_store_n(&nm_py_ready, 1, __ATOMIC_RELEASE);
    } else if (memcmp(&nm_py, &c, sizeof c) != 0) {
        rc = NET_MESH_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_unlock(&nm_py_mu);
    if (rc != NET_MESH_OK)
        return nm_py_fail("netmesh: pyobj: already configured with other values (one configuration per process)");
    return NET_MESH_OK;
}

int net_mesh_pyobj_decode_event(net_mesh_pydelivery *p) {
    if (!nm_py_block_ok(p)) return nm_py_fail(nm_py_bad_block);
    const nm_pycfg *c = nm_py_cfg();
    net_mesh_event ev;
    if (!c || !nm_py_event(c, p, &ev)) return NET_MESH_PYOBJ_UNDECODABLE;
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
