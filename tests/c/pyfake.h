/* Fake CPython objects for the pyobj tests, laid out like CPython 3.11 on a
 * 64-bit machine (ints in 30-bit digits; with NM_TEST_TAG the 3.12+ lv_tag
 * int header): head (refcnt, type) in words 0 and 1, ob_size / lv_tag in
 * word 2, tuple items, int digits or a list's item pointer from word 3,
 * bytes data from word 4 (word 3 is ob_shash). Each test program defines
 * obj() (where objects live and how they are freed); the builders here
 * only fill them in. Builders that take objects store them as they are: in
 * a refcounted program they steal the caller's references. */
#ifndef NM_TEST_PYFAKE_H
#define NM_TEST_PYFAKE_H
#include <stdint.h>
#include <string.h>
#include "net_mesh.h"

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#ifndef NM_TEST_TAG
#define NM_TEST_TAG 0
#endif

/* Fake type objects: only their addresses matter. */
static char event_type, int_type, bytes_type, list_type, none_type, bool_type, tuple_type;

typedef struct fobj {
    uint64_t w[3 + 140];
} fobj;

/* A new object of type with refcount 1 and every other word 0. */
static fobj *obj(const void *type);

static uint64_t addr(const fobj *o) { return (uint64_t)(uintptr_t)o; }

/* An int object of value v (negative: -v), in 30-bit digits;
 * ndigits_override, when nonzero, is the digit count written. */
static fobj *mkint_signed(uint64_t v, int negative, int ndigits_override) {
    fobj *o = obj(&int_type);
    uint32_t *d = (uint32_t *)&o->w[3];
    int n = 0;
    for (uint64_t x = v; x; x >>= 30) d[n++] = (uint32_t)(x & 0x3fffffff);
    if (ndigits_override) n = ndigits_override;
    if (NM_TEST_TAG)
        o->w[2] = ((uint64_t)n << 3) | (v == 0 ? 1u : negative ? 2u : 0u);
    else
        o->w[2] = (uint64_t)(negative ? -(int64_t)n : (int64_t)n);
    return o;
}
static fobj *mkint(uint64_t v) { return mkint_signed(v, 0, 0); }

static fobj *mkbytes(const void *data, size_t len) {
    fobj *o = obj(&bytes_type);
    o->w[2] = len;
    o->w[3] = (uint64_t)-1; /* ob_shash */
    if (len) memcpy(&o->w[4], data, len);
    return o;
}

static fobj *mkevent(fobj *origin, fobj *seq, fobj *payload, fobj *parent, fobj *horizon, fobj *recv) {
    fobj *o = obj(&event_type);
    o->w[2] = 6;
    const fobj *items[6] = {origin, seq, payload, parent, horizon, recv};
    for (int i = 0; i < 6; i++) o->w[3 + i] = addr(items[i]);
    return o;
}

/* The layout above as a net_mesh_pyobj_config (none: the caller's). */
static net_mesh_pyobj_config config(void) {
    net_mesh_pyobj_config c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.event_type = (uint64_t)(uintptr_t)&event_type;
    c.int_type = (uint64_t)(uintptr_t)&int_type;
    c.bytes_type = (uint64_t)(uintptr_t)&bytes_type;
    c.list_type = (uint64_t)(uintptr_t)&list_type;
    c.none = 0; /* set by the caller: a None object's address */
    c.type_offset = 8;
    c.size_offset = 16;
    c.tuple_items = 24;
    c.list_items = 24;
    c.bytes_data = 32;
    c.long_tag = 16;
    c.long_digits = 24;
    c.long_layout = NM_TEST_TAG ? NET_MESH_PYLONG_TAG : NET_MESH_PYLONG_SIZE;
    c.digit_bits = 30;
    c.digit_size = 4;
    return c;
}
#endif
