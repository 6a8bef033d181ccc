/* AnyIP routes (userspace/steer/anyip.c), with real connections: the test's namespace is the agent
 * host (uplink fx0, 198.18.0.1), a second namespace the client (fx1, 198.18.0.2), whose packets for
 * PEER_ADDR (an address nobody owns) are sent to the host's MAC, as XDP forwarding would deliver
 * them. The host's listener has IP_TRANSPARENT, as the agent's do. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "steer/anyip.h"
#include "test_util.h"

#define TABLE 4092
#define PRIORITY 4092
#define HOST_ADDR "198.18.0.1"
#define CLIENT_ADDR "198.18.0.2"
#define PEER_ADDR "198.18.0.50"
#define PORT 19500

static uint32_t ip4(const char *text)
{
    uint32_t a = 0;
    inet_pton(AF_INET, text, &a);
    return a;
}

/* A connect to addr:port with a timeout: 0 if it was accepted, else -1. */
static int try_connect(const char *addr, uint16_t port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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

/* The same from inside the client's namespace (a forked child enters it). */
static int connect_from(const char *netns, const char *addr, uint16_t port)
{
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        char path[128];
        snprintf(path, sizeof(path), "/run/netns/%s", netns);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
            _exit(2);
        _exit(try_connect(addr, port, 1000) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int transparent_listener(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int count_rules(void)
{
    FILE *f = popen("ip rule show | grep -c 'iif fx0 lookup " "4092" "'", "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void read_knob(const char *knob, char *out, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/fx0/%s", knob);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f) {
        if (!fgets(out, (int)len, f))
            out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

static void anyip_body(int *failed_, const char *name)
{
    char client[48];
    snprintf(client, sizeof(client), "%s-client", name);
    if (test_sh("ip netns add %s && ip link add fx0 type veth peer name fx1 netns %s && "
                "ip addr add " HOST_ADDR "/24 dev fx0 && ip link set fx0 up && "
                "ip -n %s addr add " CLIENT_ADDR "/24 dev fx1 && ip -n %s link set fx1 up && ip -n %s link set lo up",
                client, client, client, client, client) != 0) {
        CHECK(0);
        test_sh("ip netns del %s 2>/dev/null", client);
        return;
    }
    /* The client sends PEER_ADDR's packets to the host, as the forwarding would. */
    char mac[32] = "";
    FILE *f = popen("ip -o link show fx0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2", "r");
    CHECK(f && fgets(mac, sizeof(mac), f));
    if (f)
        pclose(f);
    mac[strcspn(mac, "\n")] = '\0';
    CHECK_EQ(test_sh("ip -n %s neigh replace " PEER_ADDR " lladdr %s dev fx1 nud permanent", client, mac), 0);
    CHECK_EQ(test_sh("echo 0 > /proc/sys/net/ipv4/conf/fx0/arp_ignore && "
                     "echo 0 > /proc/sys/net/ipv4/conf/fx0/arp_announce"), 0);
    int lfd = transparent_listener(PORT);
    CHECK(lfd >= 0);

    /* Not accepted before: the host does not own PEER_ADDR. */
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), -1);

    char err[256] = "";
    struct anyip *a = anyip_open("fx0", TABLE, PRIORITY, err, sizeof(err));
    if (!a)
        fprintf(stderr, "  anyip_open: %s\n", err);
    CHECK(a != NULL);
    if (!a) {
        test_sh("ip netns del %s", client);
        return;
    }
    char knob[16];
    read_knob("arp_ignore", knob, sizeof(knob));
    CHECK(strcmp(knob, "1") == 0);
    read_knob("arp_announce", knob, sizeof(knob));
    CHECK(strcmp(knob, "2") == 0);
    CHECK_EQ(count_rules(), 1);

    uint32_t peers[3] = {ip4(PEER_ADDR), ip4("198.18.0.51"), ip4(PEER_ADDR)};
    CHECK_EQ(anyip_set(a, peers, 3), 0);
    CHECK_EQ(anyip_set(a, peers, 3), 0); /* nothing changed: nothing to do */
    /* Accepted for the peer, and answered from the peer's address (a connection completes). */
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), 0);
    /* ...but locally generated traffic to it is not local: nobody owns it, so nothing answers. */
    CHECK_EQ(try_connect(PEER_ADDR, PORT, 300), -1);

    CHECK_EQ(anyip_set(a, &peers[1], 1), 0);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), -1);
    CHECK_EQ(anyip_set(a, peers, 1), 0);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), 0);

    anyip_close(a);
    CHECK_EQ(count_rules(), 0);

    /* An agent that crashes (here a child that never closes) leaves its rule and routes: the next
     * one starts from a clean table, with one rule. */
    fflush(stderr);
    pid_t crashed = fork();
    if (crashed == 0) {
        struct anyip *c = anyip_open("fx0", TABLE, PRIORITY, err, sizeof(err));
        _exit(c && anyip_set(c, peers, 1) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(crashed, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(count_rules(), 1);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), 0); /* what it left still works */
    a = anyip_open("fx0", TABLE, PRIORITY, err, sizeof(err));
    CHECK(a != NULL);
    if (!a) {
        test_sh("ip netns del %s", client);
        return;
    }
    CHECK_EQ(count_rules(), 1);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), -1);
    CHECK_EQ(anyip_set(a, peers, 1), 0);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), 0);

    /* A clean stop removes everything and restores the sysctls it found (after the crash: the
     * crashed run's 1 and 2, which is all it could know). */
    anyip_close(a);
    CHECK_EQ(count_rules(), 0);
    CHECK_EQ(connect_from(client, PEER_ADDR, PORT), -1);
    read_knob("arp_ignore", knob, sizeof(knob));
    CHECK(strcmp(knob, "1") == 0);

    /* With a real host at PEER_ADDR (the client takes it), this host reaches it as usual. */
    a = anyip_open("fx0", TABLE, PRIORITY, err, sizeof(err));
    CHECK(a != NULL);
    if (a) {
        CHECK_EQ(anyip_set(a, peers, 1), 0);
        CHECK_EQ(test_sh("ip -n %s neigh del " PEER_ADDR " dev fx1 && ip -n %s addr add " PEER_ADDR "/24 dev fx1",
                         client, client), 0);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char path[128];
            snprintf(path, sizeof(path), "/run/netns/%s", client);
            int nfd = open(path, O_RDONLY | O_CLOEXEC);
            if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
                _exit(2);
            int l = transparent_listener(PORT + 1);
            struct pollfd p = {.fd = l, .events = POLLIN};
            _exit(l >= 0 && poll(&p, 1, 3000) == 1 ? 0 : 1);
        }
        usleep(200 * 1000);
        CHECK_EQ(try_connect(PEER_ADDR, PORT + 1, 2000), 0);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        anyip_close(a);
    }
    close(lfd);
    test_sh("ip netns del %s", client);
}

TEST(anyip_accepts_peer_addresses_on_the_uplink_only) { test_in_netns(failed_, anyip_body); }
