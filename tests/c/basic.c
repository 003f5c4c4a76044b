/* Lifecycle basics through the ABI: version, status kinds, last error,
 * identities, library-owned bytes, log callback registration. */
#include "harness.h"

static int fin_count;
static void count_fin(void *ud) { (void)ud; fin_count++; }
static void quiet_log(void *ud, int level, const char *msg, const net_mesh_log_field *f, size_t n) {
    (void)ud; (void)level; (void)msg; (void)f; (void)n;
}

int main(void) {
    int maj = -1, min = -1, pat = -1;
    const char *v = net_mesh_version(&maj, &min, &pat);
    CHECK(strcmp(v, NET_MESH_VERSION_STRING) == 0);
    CHECK(maj == NET_MESH_VERSION_MAJOR && min == NET_MESH_VERSION_MINOR && pat == NET_MESH_VERSION_PATCH);
    CHECK(net_mesh_version(NULL, NULL, NULL) == v);

    CHECK(strcmp(net_mesh_status_kind(NET_MESH_OK), "ok") == 0);
    CHECK(strcmp(net_mesh_status_kind(NET_MESH_ERR_NOT_READY), "not-ready") == 0);
    CHECK(strcmp(net_mesh_status_kind(NET_MESH_ERR_DAEMON_MOVED), "daemon-moved") == 0);
    CHECK(strcmp(net_mesh_status_kind(NET_MESH_ERR_BAD_HANDLE), "bad-handle") == 0);
    CHECK(strcmp(net_mesh_status_kind(12345), "unknown") == 0);
    for (int s = 0; s >= NET_MESH_ERR_INTERNAL; s--) CHECK(strcmp(net_mesh_status_kind(s), "unknown") != 0);

    /* identity: seed round trip and derived ids are stable */
    uint8_t seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (uint8_t)i;
    net_mesh_identity *a = NULL, *b = NULL, *pub = NULL, *g = NULL;
    OK(net_mesh_identity_from_seed(seed, 32, &a));
    OK(net_mesh_identity_from_seed(seed, 32, &b));
    CHECK(a != NULL && b != NULL && a != b);
    uint8_t ea[32], eb[32], s2[32];
    uint64_t oa = 0, ob = 0, na = 0, nb = 0;
    OK(net_mesh_identity_entity_id(a, ea));
    OK(net_mesh_identity_entity_id(b, eb));
    CHECK(memcmp(ea, eb, 32) == 0);
    OK(net_mesh_identity_seed(a, s2));
    CHECK(memcmp(seed, s2, 32) == 0);
    OK(net_mesh_identity_origin_hash(a, &oa));
    OK(net_mesh_identity_origin_hash(b, &ob));
    OK(net_mesh_identity_node_id(a, &na));
    OK(net_mesh_identity_node_id(b, &nb));
    CHECK(oa == ob && na == nb && oa != 0 && oa != na);

    OK(net_mesh_identity_from_entity_id(ea, &pub));
    uint64_t op = 0;
    OK(net_mesh_identity_origin_hash(pub, &op));
    CHECK(op == oa);
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_identity_seed(pub, s2));
    CHECK(net_mesh_last_error_code() == NET_MESH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(net_mesh_last_error(), "public-only") != NULL);

    OK(net_mesh_identity_generate(&g));
    uint64_t og = 0;
    OK(net_mesh_identity_origin_hash(g, &og));
    CHECK(og != oa);

    /* freed handle → BAD_HANDLE; double free is a no-op */
    net_mesh_identity_free(b);
    EXPECT(NET_MESH_ERR_BAD_HANDLE, net_mesh_identity_origin_hash(b, &ob));
    CHECK(strstr(net_mesh_last_error(), "identity") != NULL);
    net_mesh_identity_free(b);
    /* a live handle still works after another was freed */
    OK(net_mesh_identity_origin_hash(a, &oa));

    /* last_error_moved_to only answers after DAEMON_MOVED */
    uint64_t node = 0;
    EXPECT(NET_MESH_ERR_DAEMON_NOT_FOUND, net_mesh_last_error_moved_to(&node));
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_last_error_moved_to(NULL));
    CHECK(strcmp(net_mesh_last_error_detail(), "") == 0);

    /* bytes: freeing a zeroed struct and NULL are no-ops */
    net_mesh_bytes bz = {0};
    net_mesh_bytes_free(&bz);
    net_mesh_bytes_free(NULL);

    /* log callback: replacing runs the old finalizer once; NULL turns it off */
    fin_count = 0;
    OK(net_mesh_log_set(NET_MESH_LOG_DEBUG, quiet_log, NULL, count_fin));
    CHECK(fin_count == 0);
    OK(net_mesh_log_set(NET_MESH_LOG_INFO, quiet_log, NULL, count_fin));
    CHECK(fin_count == 1);
    OK(net_mesh_log_set(NET_MESH_LOG_INFO, NULL, NULL, count_fin));
    CHECK(fin_count == 3); /* the previous one, and this call's own */
    EXPECT(NET_MESH_ERR_INVALID_ARGUMENT, net_mesh_log_set(99, quiet_log, NULL, count_fin));
    CHECK(fin_count == 4); /* consumed also on error */

    net_mesh_identity_free(a);
    net_mesh_identity_free(pub);
    net_mesh_identity_free(g);
    return nm_report("basic");
}
