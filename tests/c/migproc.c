/* Two OS processes migrate a C counter daemon there and back through the ABI.
 * Run without arguments it is the parent (node A): it starts itself again as
 * the child (node B) with its stdin/stdout on pipes, and the two exchange node
 * ids, addresses, X25519 keys and the daemon's origin as text lines. A
 * counts to 3, migrates the daemon to B; B counts 4 and sends it back; A
 * counts 5. The child's checks decide its exit status. */
#include "harness.h"
#include "daemons.h"
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *peer_in, *peer_out;

static void hex(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}
static int unhex(const char *s, uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        b[i] = (uint8_t)v;
    }
    return 0;
}

/* Our node as one line: "<id> <addr> <key hex>". */
static void send_node(net_mesh_node *n, const char *extra) {
    uint64_t id = 0;
    uint8_t key[32];
    char keyhex[65];
    net_mesh_bytes addr = {0};
    OK(net_mesh_node_id(n, &id));
    OK(net_mesh_node_public_key(n, key));
    OK(net_mesh_node_addr(n, &addr));
    hex(key, 32, keyhex);
    fprintf(peer_out, "%llu %s %s %s\n", (unsigned long long)id, (const char *)addr.data, keyhex, extra);
    fflush(peer_out);
    net_mesh_bytes_free(&addr);
}

typedef struct peer { unsigned long long id; char addr[128]; uint8_t key[32]; char extra[64]; } peer;

static int read_node(peer *p) {
    char line[512], keyhex[65];
    if (!fgets(line, sizeof line, peer_in)) return -1;
    p->extra[0] = 0;
    if (sscanf(line, "%llu %127s %64s %63s", &p->id, p->addr, keyhex, p->extra) < 3) return -1;
    return unhex(keyhex, p->key, 32);
}

static int read_line(char *buf, size_t n) {
    if (!fgets(buf, (int)n, peer_in)) return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

static net_mesh_node *new_node(void) {
    net_mesh_node_options o;
    net_mesh_node_options_init(&o);
    o.bind_addr = "127.0.0.1:0";
    net_mesh_node *n = NULL;
    OK(net_mesh_node_new(&o, &n));
    return n;
}

static net_mesh_runtime *new_runtime(net_mesh_node *n) {
    net_mesh_runtime *rt = NULL;
    OK(net_mesh_runtime_new(n, NULL, &rt));
    OK(register_kind(rt, "counter", counter_create));
    OK(net_mesh_runtime_start(rt));
    return rt;
}

static uint64_t deliver_count(net_mesh_runtime *rt, uint64_t origin, int want_rc) {
    net_mesh_event ev = make_event(9, 1, "p", 1);
    net_mesh_event_list outs = {0};
    int rc = net_mesh_runtime_deliver(rt, origin, &ev, &outs);
    EXPECT(want_rc, rc);
    uint64_t v = 0;
    if (rc == NET_MESH_OK && outs.len == 1 && outs.events[0].payload_len == 8) v = get64(outs.events[0].payload);
    if (rc == NET_MESH_OK) net_mesh_event_list_free(&outs);
    return v;
}

static int migrate(net_mesh_runtime *rt, uint64_t origin, uint64_t from, uint64_t to) {
    net_mesh_migration *m = NULL;
    int rc = net_mesh_runtime_start_migration(rt, origin, from, to, NULL, &m);
    if (rc != NET_MESH_OK) return rc;
    rc = net_mesh_migration_wait(m, 15000, 0);
    net_mesh_migration_free(m);
    return rc;
}

/* ---- child: node B ---- */
static int child(void) {
    peer_in = stdin;
    peer_out = stdout;
    peer a;
    if (read_node(&a) != 0) return 2;
    uint64_t origin = strtoull(a.extra, NULL, 16);
    net_mesh_node *b = new_node();
    net_mesh_runtime *rt = new_runtime(b);
    OK(net_mesh_node_accept(b, a.id));
    OK(net_mesh_runtime_expect_migration(rt, "counter", origin, NULL));
    send_node(b, "-");
    char line[128];
    if (read_line(line, sizeof line) != 0 || strcmp(line, "go") != 0) return 3;
    uint64_t count = 0;
    OK(net_mesh_runtime_daemon_count(rt, &count));
    CHECK(count == 1);
    uint64_t v = deliver_count(rt, origin, NET_MESH_OK);
    CHECK(v == 4);
    uint64_t bid = 0;
    OK(net_mesh_node_id(b, &bid));
    OK(migrate(rt, origin, bid, a.id));
    deliver_count(rt, origin, NET_MESH_ERR_DAEMON_MOVED);
    uint64_t moved = 0;
    OK(net_mesh_last_error_moved_to(&moved));
    CHECK(moved == a.id);
    fprintf(peer_out, "back %llu\n", (unsigned long long)v);
    fflush(peer_out);
    if (read_line(line, sizeof line) != 0 || strcmp(line, "quit") != 0) return 4;
    net_mesh_runtime_free(rt);
    net_mesh_node_free(b);
    return nm_failures ? 1 : 0;
}

/* ---- parent: node A ---- */
static int parent(const char *self) {
    int p2c[2], c2p[2];
    if (pipe(p2c) != 0 || pipe(c2p) != 0) return 2;
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        dup2(p2c[0], 0);
        dup2(c2p[1], 1);
        close(p2c[0]); close(p2c[1]); close(c2p[0]); close(c2p[1]);
        execl(self, self, "child", (char *)NULL);
        _exit(127);
    }
    close(p2c[0]);
    close(c2p[1]);
    peer_out = fdopen(p2c[1], "w");
    peer_in = fdopen(c2p[0], "r");

    net_mesh_node *a = new_node();
    net_mesh_runtime *rt = new_runtime(a);
    net_mesh_identity *id = NULL;
    OK(net_mesh_identity_generate(&id));
    uint64_t origin = 0, aid = 0;
    OK(net_mesh_identity_origin_hash(id, &origin));
    OK(net_mesh_node_id(a, &aid));
    OK(net_mesh_runtime_spawn(rt, "counter", id, NULL, NULL));
    for (uint64_t i = 1; i <= 3; i++) CHECK(deliver_count(rt, origin, NET_MESH_OK) == i);
    char extra[32];
    snprintf(extra, sizeof extra, "%016llx", (unsigned long long)origin);
    send_node(a, extra);
    peer b;
    CHECK(read_node(&b) == 0);
    OK(net_mesh_node_connect(a, b.addr, b.key, b.id, 10000));

    OK(migrate(rt, origin, aid, b.id));
    deliver_count(rt, origin, NET_MESH_ERR_DAEMON_MOVED);
    uint64_t moved = 0;
    OK(net_mesh_last_error_moved_to(&moved));
    CHECK(moved == b.id);
    fprintf(peer_out, "go\n");
    fflush(peer_out);
    char line[128];
    CHECK(read_line(line, sizeof line) == 0 && strcmp(line, "back 4") == 0);
    uint64_t count = 0;
    OK(net_mesh_runtime_daemon_count(rt, &count));
    CHECK(count == 1);
    CHECK(deliver_count(rt, origin, NET_MESH_OK) == 5);
    fprintf(peer_out, "quit\n");
    fflush(peer_out);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    OK(net_mesh_runtime_stop(rt, origin));
    net_mesh_runtime_free(rt);
    net_mesh_node_free(a);
    net_mesh_identity_free(id);
    fclose(peer_out);
    fclose(peer_in);
    return nm_report("migproc");
}

int main(int argc, char **argv) {
    alarm(90); /* a hang fails instead of blocking make */
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
    return parent(argv[0]);
}
