/* AnyIP (userspace/steer/anyip.c) with real connections. Each test's own namespace is the agent
 * host; `ip netns` adds two more:
 *
 *   client  fx1 198.18.0.2/24 --- fx0 198.18.0.1/24  host (fx0 is the uplink)  fx2 198.18.1.1/24 --- fx3 198.18.1.2/24  other
 *
 * The client sends PEER_A's and PEER_B's packets (addresses nobody owns) to the host's MAC through
 * permanent neighbour entries, as XDP forwarding delivers them; "other" routes everything through
 * the host, so its packets for PEER_A arrive on an interface that is not the uplink. The host
 * listens on 0.0.0.0:PORT with IP_TRANSPARENT, as the agent does. Every wait is at most 3 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "steer/anyip.h"
#include "test_util.h"

#define TABLE 4092
#define PRIORITY 4092
#define UPLINK "fx0"
#define HOST_ADDR "198.18.0.1"
#define PEER_A "198.18.0.50"
#define PEER_B "198.18.0.51"
#define PEER_C "198.18.0.52" /* no neighbour entry at the client: found by ARP */
#define FOREIGN "198.18.0.60"
#define PORT 19500
#define CONNECT_MS 1000
/* A refused connection is dropped in silence (no ICMP: the host does not forward), so refusals
 * wait this long; a handshake over veth takes well under a millisecond. */
#define REFUSED_MS 500

static uint32_t ip4(const char *text)
{
    uint32_t a = 0;
    inet_pton(AF_INET, text, &a);
    return a;
}

/* ---- the test bed ---- */

struct bed {
    char client[48], other[48]; /* namespaces under /run/netns */
    int lfd;                    /* the host's transparent listener */
};

static int enter_netns(const char *netns)
{
    char path[128];
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int r = fd >= 0 ? setns(fd, CLONE_NEWNET) : -1;
    if (fd >= 0)
        close(fd);
    return r;
}

static int transparent_listener(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void write_knob(int *failed_, const char *knob, const char *value)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/" UPLINK "/%s", knob);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        CHECK(fputs(value, f) >= 0);
        CHECK_EQ(fclose(f), 0);
    }
}

static int read_knob(const char *knob)
{
    char path[128], value[16] = "";
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/" UPLINK "/%s", knob);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    bool ok = fgets(value, sizeof(value), f) != NULL;
    fclose(f);
    return ok ? atoi(value) : -1;
}

/* The three namespaces, the host's listener, and ARP sysctls that differ from what anyip sets
 * (arp_announce=1), so that restoring them is seen. 0, or -1 after a failed CHECK. */
static int bed_up(int *failed_, const char *name, struct bed *b)
{
    snprintf(b->client, sizeof(b->client), "%s-client", name);
    snprintf(b->other, sizeof(b->other), "%s-other", name);
    b->lfd = -1;
    const char *c = b->client, *o = b->other;
    if (test_sh("ip netns add %s && ip netns add %s && "
                "ip link add fx0 type veth peer name fx1 netns %s && ip link add fx2 type veth peer name fx3 netns %s && "
                "ip addr add " HOST_ADDR "/24 dev fx0 && ip link set fx0 up && "
                "ip addr add 198.18.1.1/24 dev fx2 && ip link set fx2 up && "
                "ip -n %s link set lo up && ip -n %s addr add 198.18.0.2/24 dev fx1 && ip -n %s link set fx1 up && "
                "ip -n %s link set lo up && ip -n %s addr add 198.18.1.2/24 dev fx3 && ip -n %s link set fx3 up && "
                "ip -n %s route add default via 198.18.1.1",
                c, o, c, o, c, c, c, o, o, o, o) != 0) {
        CHECK(0);
        return -1;
    }
    /* (Not /sys/class/net: sysfs shows the network namespace of whoever mounted it.) */
    char mac[32] = "";
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), UPLINK);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0 && ioctl(s, SIOCGIFHWADDR, &ifr) == 0);
    if (s >= 0)
        close(s);
    const unsigned char *m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    CHECK_EQ(test_sh("ip -n %s neigh replace " PEER_A " lladdr %s dev fx1 nud permanent && "
                     "ip -n %s neigh replace " PEER_B " lladdr %s dev fx1 nud permanent",
                     c, mac, c, mac), 0);
    write_knob(failed_, "arp_ignore", "0");
    write_knob(failed_, "arp_announce", "1");
    b->lfd = transparent_listener(PORT);
    CHECK(b->lfd >= 0);
    return *failed_ ? -1 : 0;
}

static void bed_down(struct bed *b)
{
    if (b->lfd >= 0)
        close(b->lfd);
    test_sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", b->client, b->other);
}

/* ---- connections ---- */

/* A connect to addr:port that gives up after timeout_ms: 0 if the handshake completed. */
static int try_connect(const char *addr, uint16_t port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip4(addr)};
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        r = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
    }
    close(fd);
    return r;
}

/* The same from inside namespace netns (a forked child enters it). */
static int connect_from_ms(const char *netns, const char *addr, uint16_t port, int timeout_ms)
{
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(enter_netns(netns) == 0 && try_connect(addr, port, timeout_ms) == 0 ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int connect_from(const char *netns, const char *addr, uint16_t port)
{
    return connect_from_ms(netns, addr, port, CONNECT_MS);
}

/* The local address of the next connection the host's listener accepts (the address the client
 * dialled), or 0 if none arrives within a second. */
static uint32_t accepted_at(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1)
        return 0;
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return 0;
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    getsockname(c, (struct sockaddr *)&a, &len);
    close(c);
    return a.sin_addr.s_addr;
}

/* The client reaches addr:PORT and the host accepted it as addr. */
static void check_accepted(int *failed_, struct bed *b, const char *addr)
{
    CHECK_EQ(connect_from(b->client, addr, PORT), 0);
    CHECK_EQ(accepted_at(b->lfd), ip4(addr));
}

static void check_refused(int *failed_, const char *netns, const char *addr)
{
    CHECK_EQ(connect_from_ms(netns, addr, PORT, REFUSED_MS), -1);
}

/* ---- the kernel's view, through iproute2 (not through the code under test) ---- */

/* The lines a command prints (at most 16, newline removed); -1 if it could not run. */
static int lines_of(char out[16][128], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lines_of(char out[16][128], const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int n = 0;
    char line[128];
    while (fgets(line, sizeof(line), f))
        if (n < 16) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out[n++], 128, "%s", line);
        }
    pclose(f);
    return n;
}

/* How many rules send the uplink to TABLE; each must carry our protocol. */
static int count_rules(int *failed_)
{
    char lines[16][128];
    int n = lines_of(lines, "ip rule show"), found = 0;
    for (int i = 0; i < n; i++) {
        if (!strstr(lines[i], "iif " UPLINK " lookup 4092"))
            continue;
        found++;
        CHECK(strstr(lines[i], "4092:") == lines[i]); /* the priority */
        CHECK(strstr(lines[i], "proto 241") != NULL);
    }
    return n < 0 ? -1 : found;
}

/* TABLE holds exactly these local routes of protocol proto ("241" is ours). */
static void check_table(int *failed_, const char *proto, const char *const *addrs, int n)
{
    char lines[16][128];
    int got = lines_of(lines, "ip route show table 4092 proto %s 2>/dev/null", proto);
    CHECK_EQ(got, n);
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "local %s dev lo scope host", addrs[i]);
        bool found = false;
        for (int j = 0; j < got && !found; j++)
            found = strncmp(lines[j], want, strlen(want)) == 0;
        if (!found)
            fprintf(stderr, "  table 4092 (proto %s) lacks %s\n", proto, addrs[i]);
        CHECK(found);
    }
}

static struct anyip *open_anyip(int *failed_)
{
    char err[256] = "";
    struct anyip *a = anyip_open(UPLINK, TABLE, PRIORITY, err, sizeof(err));
    if (!a)
        fprintf(stderr, "  anyip_open: %s\n", err);
    CHECK(a != NULL);
    return a;
}

/* ---- tests ---- */

static void accepts_body(int *failed_, const char *name)
{
    struct bed b;
    if (bed_up(failed_, name, &b) < 0)
        goto out;
    check_refused(failed_, b.client, PEER_A); /* the premise: nobody owns it */

    struct anyip *a = open_anyip(failed_);
    if (!a)
        goto out;
    uint32_t peers[] = {ip4(PEER_A), ip4(PEER_B), ip4(PEER_A)};
    CHECK_EQ(anyip_set(a, peers, 3), 0);
    CHECK_EQ(anyip_count(a), 2);
    /* Accepted from the uplink and answered from the peer's address (the handshake completes). */
    check_accepted(failed_, &b, PEER_A);
    check_accepted(failed_, &b, PEER_B);
    /* Not from another interface: the rule only matches the uplink. */
    check_refused(failed_, b.other, PEER_A);
    CHECK_EQ(connect_from(b.other, HOST_ADDR, PORT), 0); /* ...which itself works */
    CHECK_EQ(accepted_at(b.lfd), ip4(HOST_ADDR));
    /* And not for this host's own traffic: it ARPs on the uplink, where nobody has PEER_A. */
    CHECK_EQ(try_connect(PEER_A, PORT, REFUSED_MS), -1);

    CHECK_EQ(anyip_set(a, &peers[1], 1), 0);
    check_refused(failed_, b.client, PEER_A);
    check_accepted(failed_, &b, PEER_B);
    CHECK_EQ(anyip_set(a, NULL, 0), 0);
    check_refused(failed_, b.client, PEER_B);
    check_table(failed_, "241", NULL, 0);
    anyip_close(a);
out:
    bed_down(&b);
}
TEST(anyip_accepts_listed_addresses_from_the_uplink_only) { test_in_netns(failed_, accepts_body); }

/* ---- only differences reach the kernel ---- */

/* A socket that hears the kernel's IPv4 route notifications. */
static int route_monitor(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_ROUTE};
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Drains the notifications about TABLE: the kernel queues them before it acks the change, so
 * everything anyip_set() did is there when it returns. */
static void route_events(int fd, int *added, int *removed)
{
    *added = *removed = 0;
    char buf[16384];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        int left = (int)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type != RTM_NEWROUTE && h->nlmsg_type != RTM_DELROUTE)
                continue;
            struct rtmsg *r = NLMSG_DATA(h);
            uint32_t table = r->rtm_table;
            int len = (int)RTM_PAYLOAD(h);
            for (struct rtattr *at = RTM_RTA(r); RTA_OK(at, len); at = RTA_NEXT(at, len))
                if (at->rta_type == RTA_TABLE)
                    memcpy(&table, RTA_DATA(at), sizeof(table));
            if (table == TABLE)
                (*(h->nlmsg_type == RTM_NEWROUTE ? added : removed))++;
        }
    }
}

/* Takes CAP_NET_ADMIN out of (or back into) the effective set: netlink checks it per request. */
static int net_admin(bool on)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    if (on)
        d[0].effective |= 1u << CAP_NET_ADMIN;
    else
        d[0].effective &= ~(1u << CAP_NET_ADMIN);
    return (int)syscall(SYS_capset, &h, d);
}

static void differences_body(int *failed_, const char *name)
{
    (void)name;
    CHECK_EQ(test_sh("ip link add " UPLINK " type veth peer name fx1 && ip link set " UPLINK " up"), 0);
    struct anyip *a = open_anyip(failed_);
    int mon = route_monitor();
    CHECK(mon >= 0);
    if (!a || mon < 0)
        return;
    int added, removed;
    uint32_t ab[] = {ip4(PEER_A), ip4(PEER_B)};
    CHECK_EQ(anyip_set(a, ab, 2), 0);
    route_events(mon, &added, &removed);
    CHECK_EQ(added, 2);
    CHECK_EQ(removed, 0);
    check_table(failed_, "241", (const char *const[]){PEER_A, PEER_B}, 2);

    /* The same set in another order, with a duplicate and an unset address: nothing to do, not
     * even a request (without CAP_NET_ADMIN any would fail; an identical REPLACE would not even
     * show up as a notification). */
    uint32_t same[] = {ip4(PEER_B), 0, ip4(PEER_A), ip4(PEER_B)};
    CHECK_EQ(net_admin(false), 0);
    CHECK_EQ(anyip_set(a, same, 4), 0);
    CHECK_EQ(net_admin(true), 0);
    route_events(mon, &added, &removed);
    CHECK_EQ(added + removed, 0);

    uint32_t ac[] = {ip4(PEER_C), ip4(PEER_A)};
    CHECK_EQ(anyip_set(a, ac, 2), 0);
    route_events(mon, &added, &removed);
    CHECK_EQ(added, 1);
    CHECK_EQ(removed, 1);
    check_table(failed_, "241", (const char *const[]){PEER_A, PEER_C}, 2);

    /* A route someone else removed is simply gone. */
    CHECK_EQ(test_sh("ip route del local " PEER_A " dev lo table 4092 proto 241"), 0);
    CHECK_EQ(anyip_set(a, &ac[0], 1), 0);
    check_table(failed_, "241", (const char *const[]){PEER_C}, 1);
    CHECK_EQ(anyip_count(a), 1);

    /* Changes the kernel refuses fail the call and are tried again on the next one. */
    route_events(mon, &added, &removed);
    CHECK_EQ(net_admin(false), 0);
    CHECK_EQ(anyip_set(a, ab, 2), -1);
    CHECK_EQ(anyip_set(a, ab, 2), -1); /* still wanted, still refused */
    CHECK_EQ(net_admin(true), 0);
    check_table(failed_, "241", (const char *const[]){PEER_C}, 1);
    CHECK_EQ(anyip_count(a), 1);
    CHECK_EQ(anyip_set(a, ab, 2), 0);
    check_table(failed_, "241", (const char *const[]){PEER_A, PEER_B}, 2);
    route_events(mon, &added, &removed);
    CHECK_EQ(added, 2);
    CHECK_EQ(removed, 1);
    close(mon);
    anyip_close(a);
}
TEST(anyip_set_sends_only_the_differences) { test_in_netns(failed_, differences_body); }

/* ---- ARP ---- */

static void arp_body(int *failed_, const char *name)
{
    struct bed b;
    if (bed_up(failed_, name, &b) < 0)
        goto out;
    struct anyip *a = open_anyip(failed_);
    if (!a)
        goto out;
    uint32_t c = ip4(PEER_C);
    CHECK_EQ(anyip_set(a, &c, 1), 0);
    /* The client asks who has PEER_C: the host accepts PEER_C from the uplink, yet stays quiet. */
    check_refused(failed_, b.client, PEER_C);
    /* The premise: with arp_ignore=0 the host answers, since the rule makes PEER_C local for ARP
     * requests arriving on the uplink too (it would steal the peer's traffic). */
    write_knob(failed_, "arp_ignore", "0");
    CHECK_EQ(test_sh("ip -n %s neigh flush to " PEER_C, b.client), 0);
    check_accepted(failed_, &b, PEER_C);
    write_knob(failed_, "arp_ignore", "1");
    anyip_close(a);
out:
    bed_down(&b);
}
TEST(anyip_never_answers_arp_for_accepted_addresses) { test_in_netns(failed_, arp_body); }

/* ---- close ---- */

static void close_body(int *failed_, const char *name)
{
    struct bed b;
    if (bed_up(failed_, name, &b) < 0)
        goto out;
    CHECK_EQ(count_rules(failed_), 0);
    struct anyip *a = open_anyip(failed_);
    if (!a)
        goto out;
    CHECK_EQ(read_knob("arp_ignore"), 1);
    CHECK_EQ(read_knob("arp_announce"), 2);
    CHECK_EQ(count_rules(failed_), 1);
    uint32_t pa = ip4(PEER_A);
    CHECK_EQ(anyip_set(a, &pa, 1), 0);
    check_accepted(failed_, &b, PEER_A);

    anyip_close(a);
    CHECK_EQ(count_rules(failed_), 0);
    check_table(failed_, "241", NULL, 0);
    CHECK_EQ(read_knob("arp_ignore"), 0);
    CHECK_EQ(read_knob("arp_announce"), 1);
    check_refused(failed_, b.client, PEER_A);

    /* A stricter arp_ignore the host already had is kept, and left as it was. */
    write_knob(failed_, "arp_ignore", "2");
    a = open_anyip(failed_);
    if (!a)
        goto out;
    CHECK_EQ(read_knob("arp_ignore"), 2);
    CHECK_EQ(read_knob("arp_announce"), 2);
    anyip_close(a);
    CHECK_EQ(read_knob("arp_ignore"), 2);
    CHECK_EQ(read_knob("arp_announce"), 1);
    anyip_close(NULL);
out:
    bed_down(&b);
}
TEST(anyip_close_removes_rule_and_routes_and_restores_sysctls) { test_in_netns(failed_, close_body); }

/* ---- a crashed run ---- */

static void crash_body(int *failed_, const char *name)
{
    struct bed b;
    if (bed_up(failed_, name, &b) < 0)
        goto out;
    /* The crashed agent: a child that opens, sets and exits without closing. */
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        struct anyip *c = anyip_open(UPLINK, TABLE, PRIORITY, err, sizeof(err));
        uint32_t ab[] = {ip4(PEER_A), ip4(PEER_B)};
        _exit(c && anyip_set(c, ab, 2) == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(count_rules(failed_), 1);
    check_table(failed_, "241", (const char *const[]){PEER_A, PEER_B}, 2);
    check_accepted(failed_, &b, PEER_A); /* what it left still works */
    /* A route of someone else's in the table is not ours to remove. */
    CHECK_EQ(test_sh("ip route add local " FOREIGN " dev lo table 4092 proto static"), 0);

    struct anyip *a = open_anyip(failed_);
    if (!a)
        goto out;
    CHECK_EQ(count_rules(failed_), 1); /* the identical rule is kept, not doubled */
    check_table(failed_, "241", NULL, 0);
    check_table(failed_, "static", (const char *const[]){FOREIGN}, 1);
    check_refused(failed_, b.client, PEER_A);
    check_refused(failed_, b.client, PEER_B);
    uint32_t pb = ip4(PEER_B);
    CHECK_EQ(anyip_set(a, &pb, 1), 0);
    check_accepted(failed_, &b, PEER_B);
    check_refused(failed_, b.client, PEER_A);

    anyip_close(a);
    CHECK_EQ(count_rules(failed_), 0);
    check_table(failed_, "241", NULL, 0);
    check_table(failed_, "static", (const char *const[]){FOREIGN}, 1);
out:
    bed_down(&b);
}
TEST(anyip_open_after_a_crash_removes_leftovers_and_keeps_one_rule) { test_in_netns(failed_, crash_body); }

/* ---- this host's own traffic ---- */

static void real_peer_body(int *failed_, const char *name)
{
    struct bed b;
    if (bed_up(failed_, name, &b) < 0)
        goto out;
    struct anyip *a = open_anyip(failed_);
    if (!a)
        goto out;
    uint32_t pa = ip4(PEER_A);
    CHECK_EQ(anyip_set(a, &pa, 1), 0);
    /* PEER_A becomes a real host on the uplink (the client namespace takes the address) and
     * listens on PORT + 1, which the host does not: only the real peer can accept. */
    CHECK_EQ(test_sh("ip -n %s neigh del " PEER_A " dev fx1 && ip -n %s addr add " PEER_A "/24 dev fx1",
                     b.client, b.client), 0);
    int ready[2];
    CHECK_EQ(pipe(ready), 0);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        int l = enter_netns(b.client) == 0 ? socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
        struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(PORT + 1), .sin_addr.s_addr = ip4(PEER_A)};
        if (l < 0 || bind(l, (struct sockaddr *)&at, sizeof(at)) < 0 || listen(l, 4) < 0)
            _exit(2);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        struct pollfd p = {.fd = l, .events = POLLIN};
        struct sockaddr_in from = {0};
        socklen_t len = sizeof(from);
        int c = poll(&p, 1, 3000) == 1 ? accept(l, (struct sockaddr *)&from, &len) : -1;
        _exit(c >= 0 && from.sin_addr.s_addr == ip4(HOST_ADDR) ? 0 : 1);
    }
    close(ready[1]);
    char r;
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    CHECK(poll(&p, 1, 3000) == 1 && read(ready[0], &r, 1) == 1);
    close(ready[0]);
    CHECK_EQ(try_connect(PEER_A, PORT + 1, 2000), 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    anyip_close(a);
out:
    bed_down(&b);
}
TEST(anyip_host_still_reaches_a_real_host_at_an_accepted_address) { test_in_netns(failed_, real_peer_body); }

/* ---- arguments ---- */

static void bad_args_body(int *failed_, const char *name)
{
    (void)name;
    char lines[16][128], err[256];
    int rules = lines_of(lines, "ip rule show");
    CHECK(anyip_open("nosuch0", TABLE, PRIORITY, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "nosuch0") != NULL);
    CHECK(anyip_open("an-interface-name-too-long", TABLE, PRIORITY, err, sizeof(err)) == NULL);
    const uint32_t kernel_tables[] = {0, 253, 254, 255};
    for (int i = 0; i < 4; i++) {
        CHECK(anyip_open("lo", kernel_tables[i], PRIORITY, err, sizeof(err)) == NULL);
        CHECK(strstr(err, "table") != NULL);
    }
    CHECK(anyip_open("lo", TABLE, 0, err, sizeof(err)) == NULL);
    CHECK(anyip_open("lo", TABLE, 32766, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "priority") != NULL);
    CHECK_EQ(lines_of(lines, "ip rule show"), rules); /* nothing was added */
}
TEST(anyip_open_rejects_bad_arguments) { test_in_netns(failed_, bad_args_body); }
