/* The sk_lookup steering program (bpf/steer.bpf.c) and its loader (userspace/steer/), each test in a
 * private network namespace of its own with real listeners on 127.0.0.1. Decisions are checked with
 * BPF_PROG_TEST_RUN, which runs the program against the sockets of the calling namespace and
 * returns the cookie of the socket it assigned; one test attaches for real and makes connections.
 *
 * Every test body runs in a forked child (unshare(CLONE_NEWNET) cannot be undone) that reports
 * through its exit status; its maps and link are pinned as /sys/fs/bpf/sluice/unit-<pid>/ and
 * unpinned at the end. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "steer/steer.h"
#include "util/netaddr.h"

#define BOOTSTRAP_PORT 19092
#define SLOT_PORT_BASE 19100
#define PIN_DIR_FMT "/sys/fs/bpf/sluice/%s"

/* ---- the test's own network namespace ---- */

/* Each body runs in a forked child with a network namespace of its own (test_util.c). */
static void run_in_netns(int *failed_, test_netns_body body)
{
    if (geteuid() == 0 && libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, NULL) != 1)
        SKIP("the kernel cannot load sk_lookup programs");
    test_in_netns(failed_, body);
}

/* ---- sockets ---- */

/* A non-blocking TCP listener on 127.0.0.1 at a port of the kernel's choice. */
static int listen_tcp4(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static uint64_t cookie_of(int fd)
{
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0)
        return 0;
    return cookie;
}

static uint16_t local_port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return 0;
    return ntohs(a.sin_port);
}

/* A blocking connect to 127.0.0.1:port: the fd, or -1 with errno set (ECONNREFUSED: nobody took it). */
static int connect_tcp4(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Which of the n listeners has a connection waiting (-1: none, -2: more than one). The connection
 * is accepted; its local port (the port the client dialled) goes to *dialled. On loopback the
 * handshake is complete when connect() returns, so no waiting is needed. */
static int accepted_by(const int *listeners, int n, uint16_t *dialled)
{
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (listeners[i] < 0)
            continue;
        int c = accept4(listeners[i], NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        *dialled = local_port_of(c);
        close(c);
        found = found == -1 ? i : -2;
    }
    return found;
}

/* ---- the program ---- */

/* Runs the program for a SYN to dst (an IPv4 or IPv6 address, text) port, from the same family's
 * loopback address. Returns the cookie of the socket it assigned, 0 if none; *verdict gets SK_PASS
 * or SK_DROP (-1 if the run failed). */
static uint64_t lookup_to(struct steer *s, uint8_t protocol, const char *dst, uint16_t port, int *verdict)
{
    struct bpf_sk_lookup ctx = {.protocol = protocol, .local_port = port /* host byte order */,
                                .remote_port = htons(40000)};
    if (strchr(dst, ':')) {
        ctx.family = AF_INET6;
        inet_pton(AF_INET6, "::1", ctx.remote_ip6);
        inet_pton(AF_INET6, dst, ctx.local_ip6);
    } else {
        ctx.family = AF_INET;
        ctx.remote_ip4 = htonl(INADDR_LOOPBACK);
        inet_pton(AF_INET, dst, &ctx.local_ip4);
    }
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .ctx_out = &ctx,
                .ctx_size_out = sizeof(ctx));
    *verdict = -1;
    if (bpf_prog_test_run_opts(steer_prog_fd(s), &opts) < 0) {
        fprintf(stderr, "  BPF_PROG_TEST_RUN: %s\n", strerror(errno));
        return 0;
    }
    *verdict = (int)opts.retval;
    return ctx.cookie;
}

/* The same for a SYN from 127.0.0.1:40000 to 127.0.0.1:port. */
static uint64_t lookup(struct steer *s, uint8_t protocol, uint16_t port, int *verdict)
{
    return lookup_to(s, protocol, "127.0.0.1", port, verdict);
}

/* The cookie of the socket the program picks for a TCP connection to port (0: none); a verdict
 * other than SK_PASS fails the test. */
static uint64_t pick(int *failed_, struct steer *s, uint16_t port)
{
    int verdict;
    uint64_t cookie = lookup(s, IPPROTO_TCP, port, &verdict);
    CHECK_EQ(verdict, SK_PASS);
    return cookie;
}

/* A TCP connection to dst:port from the same family's loopback address, as pick() does. */
static uint64_t pick_to(int *failed_, struct steer *s, const char *dst, uint16_t port)
{
    int verdict;
    uint64_t cookie = lookup_to(s, IPPROTO_TCP, dst, port, &verdict);
    CHECK_EQ(verdict, SK_PASS);
    return cookie;
}

static struct steer *open_steer_bound(int *failed_, const char *name, uint32_t nworkers, uint32_t nslots,
                                      const char *bind_host)
{
    struct steer_options o = {
        .name = name,
        .bootstrap_port = BOOTSTRAP_PORT,
        .slot_port_base = SLOT_PORT_BASE,
        .nslots = nslots,
        .nworkers = nworkers,
    };
    if (bind_host) {
        struct bind_addr b;
        char err[256];
        CHECK_EQ(bind_addr_parse(bind_host, &b, err, sizeof(err)), 0);
        o.bind_family = (uint16_t)b.family;
        o.bind_specific = b.specific;
        o.bind_ip4 = b.ip4;
        memcpy(o.bind_ip6, b.ip6, sizeof(o.bind_ip6));
    }
    char err[256];
    struct steer *s = steer_open(&o, err, sizeof(err));
    if (!s)
        fprintf(stderr, "  steer_open: %s\n", err);
    CHECK(s != NULL);
    return s;
}

static struct steer *open_steer(int *failed_, const char *name, uint32_t nworkers, uint32_t nslots)
{
    return open_steer_bound(failed_, name, nworkers, nslots, NULL);
}

/* n listeners, registered as workers 0..n-1; their cookies in cookies[]. */
static void start_workers(int *failed_, struct steer *s, int n, int *fds, uint64_t *cookies)
{
    for (int w = 0; w < n; w++) {
        fds[w] = listen_tcp4();
        CHECK(fds[w] >= 0);
        cookies[w] = cookie_of(fds[w]);
        CHECK(cookies[w] != 0);
        CHECK_EQ(steer_set_worker_socket(s, (uint32_t)w, fds[w]), 0);
    }
}

static void stop_workers(int n, int *fds)
{
    for (int w = 0; w < n; w++)
        if (fds[w] >= 0)
            close(fds[w]);
}

static struct steer_stats stats_of(int *failed_, struct steer *s)
{
    struct steer_stats st;
    CHECK_EQ(steer_read_stats(s, &st), 0);
    return st;
}

/* ---- tests ---- */

TEST(steer_open_rejects_bad_options)
{
    char err[256];
    struct steer_options o = {.name = "unit-bad", .bootstrap_port = 9092, .slot_port_base = 9100,
                              .nslots = 16, .nworkers = 2};
    struct steer_options bad;

    bad = o;
    bad.name = "../escape";
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "name") != NULL);

    bad = o;
    bad.nworkers = 0;
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);
    bad.nworkers = STEER_MAX_WORKERS + 1;
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);

    bad = o;
    bad.nslots = STEER_MAX_SLOTS + 1;
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);
    bad = o;
    bad.slot_port_base = 65530;
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);

    bad = o;
    bad.bootstrap_port = 9105;
    CHECK(steer_open(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "bootstrap port 9105") != NULL);

    CHECK_EQ(steer_unpin("a/b"), -1);
}

static void slot_port_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 3, 8);
    if (!s)
        return;
    int fds[3];
    uint64_t cookies[3];
    start_workers(failed_, s, 3, fds, cookies);
    for (uint32_t slot = 0; slot < 8; slot++)
        CHECK_EQ(steer_set_slot_owner(s, slot, slot % 3), 0);

    for (uint16_t slot = 0; slot < 8; slot++)
        CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + slot), cookies[slot % 3]);

    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_SLOT_HIT], 8);
    CHECK_EQ(st.counters[STEER_BOOTSTRAP_PICK], 0);
    CHECK_EQ(st.counters[STEER_NO_OWNER], 0);
    CHECK_EQ(st.counters[STEER_ASSIGN_ERROR], 0);
    CHECK_EQ(st.per_worker[0], 3);
    CHECK_EQ(st.per_worker[1], 3);
    CHECK_EQ(st.per_worker[2], 2);
    CHECK_EQ(st.per_worker[3], 0);

    /* A slot moves to another worker: its port follows at once. */
    CHECK_EQ(steer_set_slot_owner(s, 0, 2), 0);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 0), cookies[2]);
    CHECK_EQ(stats_of(failed_, s).per_worker[2], 3);

    /* Out-of-range arguments are refused. */
    CHECK_EQ(steer_set_slot_owner(s, 8, 0), -1);
    CHECK_EQ(steer_set_slot_owner(s, 0, 3), -1);
    CHECK_EQ(steer_set_worker_socket(s, 3, fds[0]), -1);

    stop_workers(3, fds);
    steer_close(s);
}

TEST(steer_slot_port_goes_to_owner) { run_in_netns(failed_, slot_port_body); }

static void bootstrap_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 3, 4);
    if (!s)
        return;
    int fds[3];
    uint64_t cookies[3];
    start_workers(failed_, s, 3, fds, cookies);
    int picks = 0;

    CHECK_EQ(steer_set_worker_load(s, 0, 5), 0);
    CHECK_EQ(steer_set_worker_load(s, 1, 2), 0);
    CHECK_EQ(steer_set_worker_load(s, 2, 9), 0);
    for (int i = 0; i < 16; i++, picks++)
        CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), cookies[1]);

    /* Worker 1 gets busy: the pick moves to worker 0. */
    CHECK_EQ(steer_set_worker_load(s, 1, 10), 0);
    for (int i = 0; i < 16; i++, picks++)
        CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), cookies[0]);

    /* A tie between workers 0 and 2: both get picks (the scan starts at a random worker). */
    CHECK_EQ(steer_set_worker_load(s, 0, 9), 0);
    int got[3] = {0};
    for (int i = 0; i < 64; i++, picks++) {
        uint64_t c = pick(failed_, s, BOOTSTRAP_PORT);
        for (int w = 0; w < 3; w++)
            got[w] += c == cookies[w];
    }
    CHECK(got[0] > 0);
    CHECK_EQ(got[1], 0);
    CHECK(got[2] > 0);
    CHECK_EQ(got[0] + got[2], 64);

    /* The least-loaded worker dies: the next live one is picked despite its load. */
    CHECK_EQ(steer_set_worker_load(s, 1, 0), 0);
    CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), cookies[1]);
    picks++;
    close(fds[1]);
    fds[1] = -1;
    CHECK_EQ(steer_set_worker_load(s, 2, 8), 0);
    for (int i = 0; i < 16; i++, picks++)
        CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), cookies[2]);

    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_BOOTSTRAP_PICK], picks);
    CHECK_EQ(st.counters[STEER_SLOT_HIT], 0);
    CHECK_EQ(st.counters[STEER_NO_LIVE_WORKER], 0);
    CHECK_EQ(st.per_worker[0] + st.per_worker[1] + st.per_worker[2], picks);
    CHECK_EQ(st.per_worker[1], 17);

    /* Nobody left: no assignment, counted. */
    stop_workers(3, fds);
    CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), 0);
    st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_NO_LIVE_WORKER], 1);
    CHECK_EQ(st.counters[STEER_BOOTSTRAP_PICK], picks);
    steer_close(s);
}

TEST(steer_bootstrap_picks_least_loaded) { run_in_netns(failed_, bootstrap_body); }

static void unknown_port_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 2, 4);
    if (!s)
        return;
    int fds[2];
    uint64_t cookies[2];
    start_workers(failed_, s, 2, fds, cookies);
    for (uint32_t slot = 0; slot < 4; slot++)
        CHECK_EQ(steer_set_slot_owner(s, slot, 0), 0);

    uint16_t others[] = {80, 9092, SLOT_PORT_BASE - 1, SLOT_PORT_BASE + 4, BOOTSTRAP_PORT + 1, 65535};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        CHECK_EQ(pick(failed_, s, others[i]), 0);

    /* UDP to a slot port or the bootstrap port is not ours either. */
    int verdict;
    CHECK_EQ(lookup(s, IPPROTO_UDP, SLOT_PORT_BASE, &verdict), 0);
    CHECK_EQ(verdict, SK_PASS);
    CHECK_EQ(lookup(s, IPPROTO_UDP, BOOTSTRAP_PORT, &verdict), 0);
    CHECK_EQ(verdict, SK_PASS);

    struct steer_stats st = stats_of(failed_, s);
    for (int c = 0; c < STEER_COUNTER_MAX; c++)
        CHECK_EQ(st.counters[c], 0);
    for (int w = 0; w < STEER_MAX_WORKERS; w++)
        CHECK_EQ(st.per_worker[w], 0);

    stop_workers(2, fds);
    steer_close(s);
}

TEST(steer_unknown_port_untouched) { run_in_netns(failed_, unknown_port_body); }

static void dead_owner_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 2, 4);
    if (!s)
        return;
    int fds[2];
    uint64_t cookies[2];
    start_workers(failed_, s, 2, fds, cookies);

    /* Slots start with no owner: a live worker takes them meanwhile (any worker serves any slot). */
    uint64_t c = pick(failed_, s, SLOT_PORT_BASE + 3);
    CHECK(c == cookies[0] || c == cookies[1]);
    CHECK_EQ(stats_of(failed_, s).counters[STEER_SLOT_FALLBACK], 1);

    for (uint32_t slot = 0; slot < 4; slot++)
        CHECK_EQ(steer_set_slot_owner(s, slot, slot % 2), 0);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 1), cookies[1]);

    /* Worker 1 dies: closing its listener drops it from the sockmap by itself... */
    close(fds[1]);
    fds[1] = -1;
    uint32_t key = 1;
    uint64_t value;
    CHECK(bpf_map_lookup_elem(steer_map_fd(s, "worker_socks"), &key, &value) < 0);
    CHECK_EQ(errno, ENOENT);
    key = 0;
    CHECK_EQ(bpf_map_lookup_elem(steer_map_fd(s, "worker_socks"), &key, &value), 0);
    CHECK_EQ(value, cookies[0]); /* userspace reads a listener's cookie back */
    /* ...and before the supervisor moves its slots, the live worker takes them. */
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 1), cookies[0]);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 3), cookies[0]);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 0), cookies[0]);

    /* Worker 0 is cleared too: nobody is left, the connection goes to the kernel's usual lookup. */
    CHECK_EQ(steer_clear_worker(s, 0), 0);
    CHECK_EQ(steer_clear_worker(s, 0), 0); /* already gone: fine */
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 0), 0);
    /* ...and registers again. */
    CHECK_EQ(steer_set_worker_socket(s, 0, fds[0]), 0);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 2), cookies[0]);
    /* A slot given up by its owner still reaches a live worker. */
    CHECK_EQ(steer_set_slot_owner(s, 2, STEER_NO_WORKER), 0);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 2), cookies[0]);

    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_SLOT_FALLBACK], 4);
    CHECK_EQ(st.counters[STEER_NO_OWNER], 1);
    CHECK_EQ(st.counters[STEER_SLOT_HIT], 3);
    CHECK_EQ(st.counters[STEER_ASSIGN_ERROR], 0);
    CHECK_EQ(st.per_worker[0] + st.per_worker[1], 7);
    CHECK_EQ(st.per_worker[0], c == cookies[0] ? 6 : 5);

    /* A socket that is not listening cannot be registered. */
    int unbound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(steer_set_worker_socket(s, 1, unbound), -1);
    close(unbound);

    stop_workers(2, fds);
    steer_close(s);
}

TEST(steer_dead_owner_falls_back_to_a_live_worker) { run_in_netns(failed_, dead_owner_body); }

static struct bpf_link_info pinned_link_info(int *failed_, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), PIN_DIR_FMT "/link", name);
    struct bpf_link_info info = {0};
    int fd = bpf_obj_get(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return info;
    __u32 len = sizeof(info);
    CHECK_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    close(fd);
    return info;
}

static __u32 prog_id_of(int *failed_, struct steer *s)
{
    struct bpf_prog_info info = {0};
    __u32 len = sizeof(info);
    CHECK_EQ(bpf_obj_get_info_by_fd(steer_prog_fd(s), &info, &len), 0);
    return info.id;
}

static void restart_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 2, 4);
    if (!s)
        return;
    int fds[2];
    uint64_t cookies[2];
    start_workers(failed_, s, 2, fds, cookies);
    CHECK_EQ(steer_set_slot_owner(s, 3, 1), 0);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 3), cookies[1]);

    struct stat st;
    CHECK_EQ(stat("/proc/self/ns/net", &st), 0);
    struct bpf_link_info before = pinned_link_info(failed_, name);
    CHECK_EQ(before.type, BPF_LINK_TYPE_NETNS);
    CHECK_EQ(before.netns.attach_type, BPF_SK_LOOKUP);
    CHECK_EQ(before.netns.netns_ino, st.st_ino);
    CHECK_EQ(before.prog_id, prog_id_of(failed_, s));
    steer_close(s);

    /* The agent is gone; the pinned link still runs the program. */
    struct bpf_link_info between = pinned_link_info(failed_, name);
    CHECK_EQ(between.id, before.id);
    CHECK_EQ(between.netns.netns_ino, st.st_ino);

    /* A new agent (with more slots now) takes over the same link and maps. */
    s = open_steer(failed_, name, 2, 8);
    if (!s)
        return;
    struct bpf_link_info after = pinned_link_info(failed_, name);
    CHECK_EQ(after.id, before.id);
    CHECK_EQ(after.prog_id, prog_id_of(failed_, s));
    CHECK(after.prog_id != before.prog_id);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + 3), cookies[1]); /* owner and socket survived */
    uint64_t c7 = pick(failed_, s, SLOT_PORT_BASE + 7);          /* new slot, no owner yet */
    CHECK(c7 == cookies[0] || c7 == cookies[1]);
    struct steer_stats stats = stats_of(failed_, s);
    CHECK_EQ(stats.counters[STEER_SLOT_HIT], 2); /* counters survived too */
    CHECK_EQ(stats.counters[STEER_SLOT_FALLBACK], 1);

    uint32_t zero = 0;
    struct steer_config cfg;
    CHECK_EQ(bpf_map_lookup_elem(steer_map_fd(s, "config"), &zero, &cfg), 0);
    CHECK_EQ(cfg.nslots, 8);
    CHECK_EQ(cfg.nworkers, 2);
    CHECK_EQ(cfg.bootstrap_port, BOOTSTRAP_PORT);
    CHECK_EQ(cfg.slot_port_base, SLOT_PORT_BASE);
    CHECK_EQ(steer_map_fd(s, "no_such_map"), -1);
    CHECK_EQ(steer_unpin("unit-never-pinned"), 0);

    stop_workers(2, fds);
    steer_close(s);
}

TEST(steer_restart_reuses_pinned_link_and_maps) { run_in_netns(failed_, restart_body); }

static void other_layout_body(int *failed_, const char *name)
{
    /* A previous build pinned a counters map of another size (and a link, here none). */
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), PIN_DIR_FMT, name);
    snprintf(path, sizeof(path), "%s/counters", dir);
    CHECK(mkdir("/sys/fs/bpf/sluice", 0700) == 0 || errno == EEXIST);
    CHECK_EQ(mkdir(dir, 0700), 0);
    int old = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "counters", 4, 8, 2, NULL);
    CHECK(old >= 0);
    CHECK_EQ(bpf_obj_pin(old, path), 0);

    struct steer *s = open_steer(failed_, name, 1, 1);
    if (!s) {
        close(old);
        return;
    }
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    int pinned = bpf_obj_get(path);
    CHECK(pinned >= 0);
    CHECK_EQ(bpf_obj_get_info_by_fd(pinned, &info, &len), 0);
    CHECK_EQ(info.max_entries, STEER_COUNTER_MAX);
    CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE), 0);
    CHECK_EQ(stats_of(failed_, s).counters[STEER_NO_OWNER], 1);
    close(pinned);
    close(old);
    steer_close(s);
}

TEST(steer_open_replaces_pins_of_another_layout) { run_in_netns(failed_, other_layout_body); }

/* Another agent, in a namespace of its own: under our name it is refused; under a name of its own
 * it steers, and exits (its namespace goes with it). */
static void other_agent(int *failed_, const char *name, const char *its_name)
{
    CHECK_EQ(unshare(CLONE_NEWNET), 0);
    struct steer_options o = {.name = name, .bootstrap_port = BOOTSTRAP_PORT, .slot_port_base = SLOT_PORT_BASE,
                              .nslots = 1, .nworkers = 1};
    char err[256] = "";
    CHECK(steer_open(&o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "in use by the agent of network namespace") != NULL);
    struct steer *mine = open_steer(failed_, its_name, 1, 1);
    CHECK_EQ(pick(failed_, mine, SLOT_PORT_BASE), 0);
    steer_close(mine);
}

static void other_netns_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 1, 1);
    if (!s)
        return;
    struct stat here;
    CHECK_EQ(stat("/proc/self/ns/net", &here), 0);
    struct bpf_link_info first = pinned_link_info(failed_, name);
    char its_name[48];
    snprintf(its_name, sizeof(its_name), "%s-b", name);

    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int failed = 0;
        other_agent(&failed, name, its_name);
        exit(failed ? 1 : 0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Our link and maps were not touched. */
    struct bpf_link_info now = pinned_link_info(failed_, name);
    CHECK_EQ(now.id, first.id);
    CHECK_EQ(now.netns.netns_ino, here.st_ino);

    /* The other namespace is gone (asynchronously), which leaves its link defunct... */
    __u32 ino = 1;
    for (int i = 0; i < 200 && ino != 0; i++) {
        ino = pinned_link_info(failed_, its_name).netns.netns_ino;
        if (ino != 0)
            usleep(10 * 1000);
    }
    CHECK_EQ(ino, 0);
    /* ...so its name can be taken here, afresh: a new link, counters from zero. */
    struct steer *taken = open_steer(failed_, its_name, 1, 1);
    if (!taken) {
        steer_close(s);
        return;
    }
    struct bpf_link_info info = pinned_link_info(failed_, its_name);
    CHECK_EQ(info.netns.netns_ino, here.st_ino);
    CHECK_EQ(info.prog_id, prog_id_of(failed_, taken));
    CHECK_EQ(stats_of(failed_, taken).counters[STEER_NO_OWNER], 0);
    steer_close(taken);
    CHECK_EQ(steer_unpin(its_name), 0);

    /* And our program works through our link: a real connection is steered. */
    int fd = listen_tcp4();
    CHECK_EQ(steer_set_worker_socket(s, 0, fd), 0);
    CHECK_EQ(steer_set_slot_owner(s, 0, 0), 0);
    int c = connect_tcp4(SLOT_PORT_BASE);
    CHECK(c >= 0);
    uint16_t dialled = 0;
    CHECK_EQ(accepted_by(&fd, 1, &dialled), 0);
    CHECK_EQ(dialled, SLOT_PORT_BASE);
    if (c >= 0)
        close(c);
    close(fd);
    steer_close(s);
}

TEST(steer_name_of_another_live_netns_is_refused) { run_in_netns(failed_, other_netns_body); }

static void forked_worker_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 2, 4);
    if (!s)
        return;
    int fds[2] = {listen_tcp4(), listen_tcp4()};
    CHECK(fds[0] >= 0 && fds[1] >= 0);

    /* Like the agent's workers: forked after steer_open, they register through the inherited struct. */
    for (uint32_t w = 0; w < 2; w++) {
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            int ok = steer_set_worker_socket(s, w, fds[w]) == 0 && steer_set_worker_load(s, w, 10 - w) == 0 &&
                     steer_set_slot_owner(s, w, w) == 0 && steer_set_slot_owner(s, w + 2, w) == 0;
            steer_close(s);
            exit(ok ? 0 : 1);
        }
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    for (uint16_t slot = 0; slot < 4; slot++)
        CHECK_EQ(pick(failed_, s, SLOT_PORT_BASE + slot), cookie_of(fds[slot % 2]));
    CHECK_EQ(pick(failed_, s, BOOTSTRAP_PORT), cookie_of(fds[1]));

    stop_workers(2, fds);
    steer_close(s);
}

TEST(steer_works_from_forked_workers) { run_in_netns(failed_, forked_worker_body); }

static void real_connections_body(int *failed_, const char *name)
{
    struct steer *s = open_steer(failed_, name, 2, 4);
    if (!s)
        return;
    int fds[2];
    uint64_t cookies[2];
    start_workers(failed_, s, 2, fds, cookies);
    for (uint32_t slot = 0; slot < 4; slot++)
        CHECK_EQ(steer_set_slot_owner(s, slot, slot % 2), 0);
    uint16_t dialled = 0;

    /* Every slot port is answered by its owner, which sees the port the client dialled. */
    for (int round = 0; round < 3; round++) {
        for (uint16_t slot = 0; slot < 4; slot++) {
            int c = connect_tcp4(SLOT_PORT_BASE + slot);
            CHECK(c >= 0);
            CHECK_EQ(accepted_by(fds, 2, &dialled), slot % 2);
            CHECK_EQ(dialled, SLOT_PORT_BASE + slot);
            if (c >= 0)
                close(c);
        }
    }

    /* The bootstrap port goes to the least-loaded worker. */
    CHECK_EQ(steer_set_worker_load(s, 0, 3), 0);
    CHECK_EQ(steer_set_worker_load(s, 1, 1), 0);
    int c = connect_tcp4(BOOTSTRAP_PORT);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(fds, 2, &dialled), 1);
    CHECK_EQ(dialled, BOOTSTRAP_PORT);
    close(c);
    CHECK_EQ(steer_set_worker_load(s, 1, 4), 0);
    c = connect_tcp4(BOOTSTRAP_PORT);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(fds, 2, &dialled), 0);
    close(c);

    /* Other ports are left alone: nobody listens there. */
    CHECK_EQ(connect_tcp4(SLOT_PORT_BASE + 4), -1);
    CHECK_EQ(errno, ECONNREFUSED);
    CHECK_EQ(accepted_by(fds, 2, &dialled), -1);

    /* Worker 1 dies: its slots go to the live worker at once, before and after it owns them. */
    close(fds[1]);
    fds[1] = -1;
    c = connect_tcp4(SLOT_PORT_BASE + 1);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(fds, 2, &dialled), 0);
    CHECK_EQ(dialled, SLOT_PORT_BASE + 1);
    close(c);
    CHECK_EQ(steer_set_slot_owner(s, 1, 0), 0);
    c = connect_tcp4(SLOT_PORT_BASE + 1);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(fds, 2, &dialled), 0);
    close(c);

    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_SLOT_HIT], 13);
    CHECK_EQ(st.counters[STEER_BOOTSTRAP_PICK], 2);
    CHECK_EQ(st.counters[STEER_SLOT_FALLBACK], 1);
    CHECK_EQ(st.counters[STEER_NO_OWNER], 0);
    CHECK_EQ(st.counters[STEER_ASSIGN_ERROR], 0);
    CHECK_EQ(st.per_worker[0], 9);
    CHECK_EQ(st.per_worker[1], 7);

    /* Closing the loader keeps the pinned link attached... */
    steer_close(s);
    c = connect_tcp4(SLOT_PORT_BASE + 0);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(fds, 2, &dialled), 0);
    if (c >= 0)
        close(c);
    /* ...and unpinning detaches the program. */
    CHECK_EQ(steer_unpin(name), 0);
    char dir[128];
    snprintf(dir, sizeof(dir), PIN_DIR_FMT, name);
    CHECK(access(dir, F_OK) < 0);
    /* The last reference to the link goes when bpffs frees the inode, after an RCU grace period. */
    int refused = 0;
    for (int i = 0; i < 200 && !refused; i++) {
        c = connect_tcp4(SLOT_PORT_BASE + 0);
        refused = c < 0 && errno == ECONNREFUSED;
        if (c >= 0) {
            accepted_by(fds, 2, &dialled);
            close(c);
            usleep(10 * 1000);
        }
    }
    CHECK(refused);

    stop_workers(2, fds);
}

TEST(steer_real_connections_reach_owner) { run_in_netns(failed_, real_connections_body); }

/* A listener on [::]:0 that takes IPv4 too, like the agent's default listener. */
static int listen_dual_stack(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int zero = 0;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A blocking connect to dst:port (IPv4 or IPv6 text): the fd, or -1 with errno set. */
static int connect_to(const char *dst, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (strchr(dst, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, dst, &a->sin6_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, dst, &a->sin_addr);
        len = sizeof(*a);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void bind_address_body(int *failed_, const char *name)
{
    struct steer *s = open_steer_bound(failed_, name, 1, 2, "127.0.0.1");
    if (!s)
        return;
    int fd = listen_tcp4();
    CHECK_EQ(steer_set_worker_socket(s, 0, fd), 0);
    CHECK_EQ(steer_set_slot_owner(s, 0, 0), 0);
    uint64_t cookie = cookie_of(fd);

    /* Bound to 127.0.0.1: only that destination is the agent's, as for any listener on it. */
    CHECK_EQ(pick_to(failed_, s, "127.0.0.1", SLOT_PORT_BASE), cookie);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.1", BOOTSTRAP_PORT), cookie);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.2", SLOT_PORT_BASE), 0);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.2", BOOTSTRAP_PORT), 0);
    CHECK_EQ(pick_to(failed_, s, "::1", SLOT_PORT_BASE), 0);

    /* XDP forwarding brings connections for a peer's address: listed, they are steered too. */
    uint32_t peers[2];
    inet_pton(AF_INET, "127.0.0.2", &peers[0]);
    inet_pton(AF_INET, "198.18.0.7", &peers[1]);
    CHECK_EQ(steer_set_peer_addrs(s, peers, 2), 0);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.2", SLOT_PORT_BASE), cookie);
    CHECK_EQ(pick_to(failed_, s, "198.18.0.7", SLOT_PORT_BASE + 1), cookie);
    CHECK_EQ(steer_set_peer_addrs(s, &peers[1], 1), 0);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.2", SLOT_PORT_BASE), 0);
    CHECK_EQ(pick_to(failed_, s, "198.18.0.7", SLOT_PORT_BASE), cookie);
    CHECK_EQ(steer_set_peer_addrs(s, NULL, 0), 0);
    CHECK_EQ(pick_to(failed_, s, "198.18.0.7", SLOT_PORT_BASE), 0);

    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_OTHER_ADDRESS], 5);
    CHECK_EQ(st.counters[STEER_SLOT_HIT], 3);
    CHECK_EQ(st.counters[STEER_SLOT_FALLBACK], 1); /* slot 1 has no owner */
    CHECK_EQ(st.counters[STEER_ASSIGN_ERROR], 0);

    /* For real: 127.0.0.2 is a local address, but nobody listens on it for the agent. */
    int c = connect_to("127.0.0.2", SLOT_PORT_BASE);
    CHECK_EQ(c, -1);
    CHECK_EQ(errno, ECONNREFUSED);
    uint16_t dialled = 0;
    c = connect_to("127.0.0.1", SLOT_PORT_BASE);
    CHECK(c >= 0);
    CHECK_EQ(accepted_by(&fd, 1, &dialled), 0);
    if (c >= 0)
        close(c);
    close(fd);
    steer_close(s);
}

TEST(steer_only_the_bound_address_is_steered) { run_in_netns(failed_, bind_address_body); }

static void dual_stack_body(int *failed_, const char *name)
{
    struct steer *s = open_steer_bound(failed_, name, 1, 2, "::");
    if (!s)
        return;
    int fd = listen_dual_stack();
    CHECK(fd >= 0);
    CHECK_EQ(steer_set_worker_socket(s, 0, fd), 0);
    CHECK_EQ(steer_set_slot_owner(s, 1, 0), 0);
    uint64_t cookie = cookie_of(fd);

    CHECK_EQ(pick_to(failed_, s, "::1", SLOT_PORT_BASE + 1), cookie);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.1", SLOT_PORT_BASE + 1), cookie);
    CHECK_EQ(pick_to(failed_, s, "::1", BOOTSTRAP_PORT), cookie);
    CHECK_EQ(stats_of(failed_, s).counters[STEER_ASSIGN_ERROR], 0);

    /* Real IPv6 and IPv4 clients reach the one dual-stack listener. */
    const char *dsts[] = {"::1", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        int c = connect_to(dsts[i], SLOT_PORT_BASE + 1);
        CHECK(c >= 0);
        uint16_t dialled = 0;
        CHECK_EQ(accepted_by(&fd, 1, &dialled), 0);
        CHECK_EQ(dialled, SLOT_PORT_BASE + 1);
        if (c >= 0)
            close(c);
    }
    close(fd);
    steer_close(s);

    /* Bound to 0.0.0.0 (IPv4 only): IPv6 connections are not the agent's (left alone, not an
     * assignment error against an IPv4 listener). */
    s = open_steer_bound(failed_, name, 1, 2, "0.0.0.0");
    if (!s)
        return;
    fd = listen_tcp4();
    CHECK_EQ(steer_set_worker_socket(s, 0, fd), 0);
    CHECK_EQ(pick_to(failed_, s, "::1", SLOT_PORT_BASE + 1), 0);
    CHECK_EQ(pick_to(failed_, s, "127.0.0.5", SLOT_PORT_BASE + 1), cookie_of(fd));
    struct steer_stats st = stats_of(failed_, s);
    CHECK_EQ(st.counters[STEER_ASSIGN_ERROR], 0);
    CHECK_EQ(st.counters[STEER_OTHER_ADDRESS], 1);
    close(fd);
    steer_close(s);
}

TEST(steer_dual_stack_serves_ipv4_and_ipv6) { run_in_netns(failed_, dual_stack_body); }
