/* Tiny assertion harness for the C ABI tests. */
#ifndef NM_TEST_HARNESS_H
#define NM_TEST_HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net_mesh.h"

static int nm_failures;
static int nm_checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        nm_checks++;                                                                    \
        if (!(cond)) {                                                                  \
            nm_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, net_mesh_last_error());                            \
        }                                                                               \
    } while (0)

/* Expect status `want` from expression `call`. */
#define EXPECT(want, call)                                                              \
    do {                                                                                \
        int nm_rc_ = (call);                                                            \
        nm_checks++;                                                                    \
        if (nm_rc_ != (want)) {                                                         \
            nm_failures++;                                                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s); last error: %s\n", \
                    __FILE__, __LINE__, #call, nm_rc_, net_mesh_status_kind(nm_rc_),   \
                    (int)(want), net_mesh_status_kind(want), net_mesh_last_error());    \
        }                                                                               \
    } while (0)

#define OK(call) EXPECT(NET_MESH_OK, call)

/* Small helpers shared by the test programs (inline: unused ones are fine). */
static inline uint64_t origin_of(net_mesh_identity *id) {
    uint64_t o = 0;
    net_mesh_identity_origin_hash(id, &o);
    return o;
}

static inline net_mesh_daemon_stats stats_of(net_mesh_daemon *d) {
    net_mesh_daemon_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    OK(net_mesh_daemon_stats_get(d, &st));
    return st;
}

static int nm_report(const char *name) {
    if (nm_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, nm_failures, nm_checks);
        return 1;
    }
    printf("%s: %d checks passed\n", name, nm_checks);
    return 0;
}
#endif
