/* The XDP forwarding program (bpf/forward.bpf.c) and its loader (userspace/steer/forward.c). Each
 * test runs in a private network namespace (test_util.c) with a veth pair whose first end, fx0
 * (198.18.0.1/24), is the "uplink": forward_open() attaches there for real, and decisions are
 * checked with BPF_PROG_TEST_RUN on hand-made frames, whose output frame (MACs, TTL, checksums,
 * outer IPIP header) is inspected byte by byte. Real sockets of the namespace make flows
 * "established here". Next-hop resolution (steer/nexthop.c) is checked against a real neighbour
 * in a second namespace. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include "check.h"
#include "steer/forward.h"
#include "steer/nexthop.h"
#include "test_util.h"

#define SLOT_PORT_BASE 19100
#define NSLOTS 8
#define SELF "198.18.0.1"
#define PEER "198.18.0.2"     /* the owner of most slots here */
#define UNREACHED "198.18.0.3" /* an owner whose MAC is not resolved yet */
#define LANDING "198.18.0.5"  /* a host that wrapped a packet to us */
#define CLIENT "198.18.9.9"

static const uint8_t PEER_MAC[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t OTHER_MAC[6] = {0x02, 0, 0, 0, 0, 0x07};
static const uint8_t LB_MAC[6] = {0x02, 0, 0, 0, 0, 0x0b};

enum { ETH_LEN = 14, IP_LEN = 20, TCP_LEN = 20 };

static uint32_t ip4(const char *text)
{
    uint32_t a = 0;
    inet_pton(AF_INET, text, &a);
    return a;
}

static uint16_t checksum(const uint8_t *p, int len)
{
    uint32_t sum = 0;
    for (int i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put_ip(uint8_t *ip, uint8_t proto, const char *src, const char *dst, uint8_t ttl, int total)
{
    memset(ip, 0, IP_LEN);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(total >> 8);
    ip[3] = (uint8_t)total;
    ip[6] = 0x40; /* DF */
    ip[8] = ttl;
    ip[9] = proto;
    uint32_t s = ip4(src), d = ip4(dst);
    memcpy(ip + 12, &s, 4);
    memcpy(ip + 16, &d, 4);
    uint16_t c = checksum(ip, IP_LEN);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
}

struct pkt {
    const uint8_t *src_mac;
    const char *saddr, *daddr;
    uint16_t sport, dport;
    uint8_t flags;  /* TCP flags byte: 0x02 SYN, 0x10 ACK */
    uint8_t ttl;    /* 0: 64 */
    int payload;
    const char *outer_src; /* wrap in IPIP from here to SELF when set */
};

#define SYN 0x02
#define ACK 0x10

/* The frame as it would arrive on fx0; returns its length. */
static int build(const struct pkt *p, uint8_t *buf, const uint8_t *self_mac)
{
    int inner_len = IP_LEN + TCP_LEN + p->payload;
    int off = ETH_LEN + (p->outer_src ? IP_LEN : 0);
    memset(buf, 0, (size_t)(off + inner_len));
    memcpy(buf, self_mac, 6);
    memcpy(buf + 6, p->src_mac ? p->src_mac : LB_MAC, 6);
    buf[12] = 0x08;
    buf[13] = 0x00;
    if (p->outer_src)
        put_ip(buf + ETH_LEN, 4 /* IPIP */, p->outer_src, SELF, 64, IP_LEN + inner_len);
    put_ip(buf + off, 6 /* TCP */, p->saddr ? p->saddr : CLIENT, p->daddr ? p->daddr : SELF, p->ttl ? p->ttl : 64,
           inner_len);
    uint8_t *tcp = buf + off + IP_LEN;
    tcp[0] = (uint8_t)(p->sport >> 8);
    tcp[1] = (uint8_t)p->sport;
    tcp[2] = (uint8_t)(p->dport >> 8);
    tcp[3] = (uint8_t)p->dport;
    tcp[12] = 5 << 4;
    tcp[13] = p->flags;
    tcp[14] = 0xff; /* window */
    return off + inner_len;
}

struct out {
    int verdict;
    uint8_t frame[2048];
    uint32_t len;
};

static struct out run(int *failed_, struct forward *f, const struct pkt *p)
{
    static uint8_t in[2048];
    struct out o = {.verdict = -1};
    int len = build(p, in, forward_self_mac(f));
    struct xdp_md ctx = {.data_end = (uint32_t)len, .ingress_ifindex = if_nametoindex("fx0")};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (uint32_t)len, .data_out = o.frame,
                .data_size_out = sizeof(o.frame), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
    int r = bpf_prog_test_run_opts(forward_prog_fd(f), &opts);
    if (r < 0)
        fprintf(stderr, "  BPF_PROG_TEST_RUN: %s\n", strerror(errno));
    CHECK_EQ(r, 0);
    o.verdict = (int)opts.retval;
    o.len = opts.data_size_out;
    return o;
}

static bool same_frame_as_input(const struct pkt *p, const struct out *o, const uint8_t *self_mac)
{
    uint8_t in[2048];
    int len = build(p, in, self_mac);
    return (int)o->len == len && memcmp(in, o->frame, (size_t)len) == 0;
}

static void stats(struct forward *f, uint64_t *c)
{
    memset(c, 0, sizeof(uint64_t) * FWD_COUNTER_MAX);
    forward_read_stats(f, c);
}

/* fx0 (the uplink, SELF) <-> fx1, MTU 1500. */
static int make_uplink(void)
{
    return test_sh("ip link add fx0 type veth peer name fx1 && ip addr add " SELF "/24 dev fx0 && "
                   "ip link set fx0 up && ip link set fx1 up");
}

static struct forward *open_forward(int *failed_, const char *name, enum fwd_mode mode)
{
    struct forward_options o = {.pin_name = name, .ifname = "fx0", .mode = mode,
                                .slot_port_base = SLOT_PORT_BASE, .nslots = NSLOTS};
    char err[256] = "";
    struct forward *f = forward_open(&o, err, sizeof(err));
    if (!f)
        fprintf(stderr, "  forward_open: %s\n", err);
    CHECK(f != NULL);
    return f;
}

static struct fwd_host host(const char *addr, const uint8_t *mac)
{
    struct fwd_host h = {.ip4 = ip4(addr)};
    if (mac)
        memcpy(h.mac, mac, 6);
    return h;
}

/* A real connection CLIENT-side port -> SELF:port inside the namespace: the flow is established here.
 * Returns the client's port; *fds gets the three sockets to close. */
static uint16_t establish(int *failed_, uint16_t port, int fds[3])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip4(SELF)};
    int one = 1;
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fds[0], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    CHECK_EQ(bind(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ(listen(fds[0], 8), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
    fds[2] = accept(fds[0], NULL, NULL);
    CHECK(fds[2] >= 0);
    struct sockaddr_in c;
    socklen_t len = sizeof(c);
    getsockname(fds[1], (struct sockaddr *)&c, &len);
    return ntohs(c.sin_port);
}

static void l2_body(int *failed_, const char *name)
{
    if (make_uplink() != 0) {
        CHECK(0);
        return;
    }
    struct forward *f = open_forward(failed_, name, FWD_MODE_L2);
    if (!f)
        return;
    const uint8_t *self_mac = forward_self_mac(f);
    struct slot_route remote = {.owner = host(PEER, PEER_MAC)};
    struct slot_route here_after_handover = {.owner = host(SELF, self_mac), .previous = host(PEER, PEER_MAC)};
    struct slot_route here = {.owner = host(SELF, self_mac)};
    struct slot_route no_mac = {.owner = host(UNREACHED, NULL)};
    CHECK_EQ(forward_set_route(f, 0, &remote), 0);
    CHECK_EQ(forward_set_route(f, 1, &here), 0);
    CHECK_EQ(forward_set_route(f, 2, &here_after_handover), 0);
    CHECK_EQ(forward_set_route(f, 4, &no_mac), 0);
    /* slot 3: no owner known */
    CHECK_EQ(forward_set_route(f, NSLOTS, &here), -1);

    /* A SYN for a slot another host owns goes to it: its MAC, from ours, TTL - 1, checksum right. */
    struct pkt syn0 = {.sport = 40000, .dport = SLOT_PORT_BASE + 0, .flags = SYN, .payload = 0};
    struct out o = run(failed_, f, &syn0);
    CHECK_EQ(o.verdict, XDP_TX);
    CHECK_MEM(o.frame, PEER_MAC, 6);
    CHECK_MEM(o.frame + 6, self_mac, 6);
    CHECK_EQ(o.frame[ETH_LEN + 8], 63);
    CHECK_EQ(checksum(o.frame + ETH_LEN, IP_LEN), 0);
    uint32_t daddr;
    memcpy(&daddr, o.frame + ETH_LEN + 16, 4);
    CHECK_EQ(daddr, ip4(SELF)); /* the IP header keeps the original destination */

    /* The rest of a flow that does not live here follows its SYN. */
    struct pkt data0 = {.sport = 40000, .dport = SLOT_PORT_BASE + 0, .flags = ACK, .payload = 100};
    CHECK_EQ(run(failed_, f, &data0).verdict, XDP_TX);

    /* Owned here, no owner known, not a slot port, not TCP-to-us: passed untouched. */
    struct pkt syn1 = {.sport = 40001, .dport = SLOT_PORT_BASE + 1, .flags = SYN};
    o = run(failed_, f, &syn1);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK(same_frame_as_input(&syn1, &o, self_mac));
    struct pkt syn3 = {.sport = 40003, .dport = SLOT_PORT_BASE + 3, .flags = SYN};
    CHECK_EQ(run(failed_, f, &syn3).verdict, XDP_PASS);
    struct pkt other = {.sport = 40000, .dport = 22, .flags = SYN};
    o = run(failed_, f, &other);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK(same_frame_as_input(&other, &o, self_mac));
    struct pkt past = {.sport = 40000, .dport = SLOT_PORT_BASE + NSLOTS, .flags = SYN};
    CHECK_EQ(run(failed_, f, &past).verdict, XDP_PASS);

    /* No MAC known for the owner yet: a new connection is served here; a packet of a flow that
     * lives elsewhere is dropped (TCP resends it) rather than reset here. */
    struct pkt syn4 = {.sport = 40004, .dport = SLOT_PORT_BASE + 4, .flags = SYN};
    CHECK_EQ(run(failed_, f, &syn4).verdict, XDP_PASS);
    struct pkt data4 = {.sport = 40005, .dport = SLOT_PORT_BASE + 4, .flags = ACK, .payload = 10};
    CHECK_EQ(run(failed_, f, &data4).verdict, XDP_DROP);

    /* A flow established here stays here, whoever owns its slot now. */
    int fds[3];
    uint16_t cport = establish(failed_, SLOT_PORT_BASE + 0, fds);
    struct pkt mine = {.saddr = SELF, .sport = cport, .dport = SLOT_PORT_BASE + 0, .flags = ACK, .payload = 10};
    o = run(failed_, f, &mine);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK(same_frame_as_input(&mine, &o, self_mac));
    /* ...but the listener alone does not make another flow local. */
    struct pkt not_mine = {.saddr = SELF, .sport = (uint16_t)(cport + 1), .dport = SLOT_PORT_BASE + 0, .flags = ACK};
    CHECK_EQ(run(failed_, f, &not_mine).verdict, XDP_TX);
    for (int i = 0; i < 3; i++)
        close(fds[i]);

    /* Never back to the owner it came from, never past TTL 1. */
    struct pkt bounced = {.src_mac = PEER_MAC, .sport = 40010, .dport = SLOT_PORT_BASE + 0, .flags = ACK};
    CHECK_EQ(run(failed_, f, &bounced).verdict, XDP_PASS);
    struct pkt old = {.ttl = 1, .sport = 40011, .dport = SLOT_PORT_BASE + 0, .flags = SYN};
    CHECK_EQ(run(failed_, f, &old).verdict, XDP_PASS);

    /* Hand-over: slot 2 moved here from PEER. New connections stay here; packets of a flow this host
     * does not know go to the previous owner, where it was opened (second chance)... */
    struct pkt syn2 = {.src_mac = OTHER_MAC, .sport = 40020, .dport = SLOT_PORT_BASE + 2, .flags = SYN};
    CHECK_EQ(run(failed_, f, &syn2).verdict, XDP_PASS);
    struct pkt old2 = {.src_mac = OTHER_MAC, .sport = 40021, .dport = SLOT_PORT_BASE + 2, .flags = ACK, .payload = 50};
    o = run(failed_, f, &old2);
    CHECK_EQ(o.verdict, XDP_TX);
    CHECK_MEM(o.frame, PEER_MAC, 6);
    CHECK_MEM(o.frame + 6, self_mac, 6);
    /* ...unless the previous owner sent it: then it is nobody's, and the stack here answers it. */
    struct pkt back2 = {.src_mac = PEER_MAC, .sport = 40022, .dport = SLOT_PORT_BASE + 2, .flags = ACK};
    CHECK_EQ(run(failed_, f, &back2).verdict, XDP_PASS);

    uint64_t c[FWD_COUNTER_MAX];
    stats(f, c);
    CHECK_EQ(c[FWD_FORWARDED], 3);
    CHECK_EQ(c[FWD_SECOND_CHANCE], 1);
    CHECK_EQ(c[FWD_PASSED_OWNER], 3);
    CHECK_EQ(c[FWD_PASSED_FLOW], 1);
    CHECK_EQ(c[FWD_NO_OWNER], 1);
    CHECK_EQ(c[FWD_LOOP_STOP], 2);
    CHECK_EQ(c[FWD_NO_ROUTE], 2);
    CHECK_EQ(c[FWD_ENCAPSULATED] + c[FWD_DECAPSULATED] + c[FWD_TOO_BIG], 0);
    forward_close(f);
}

TEST(forward_l2_sends_each_slot_to_its_owner) { test_in_netns(failed_, l2_body); }

static uint32_t addr_at(const uint8_t *p)
{
    uint32_t a;
    memcpy(&a, p, 4);
    return a;
}

static void ipip_body(int *failed_, const char *name)
{
    if (make_uplink() != 0) {
        CHECK(0);
        return;
    }
    struct forward *f = open_forward(failed_, name, FWD_MODE_IPIP);
    if (!f)
        return;
    const uint8_t *self_mac = forward_self_mac(f);
    /* In ipip the MAC is the next hop's towards the host: here PEER is on the segment. */
    struct slot_route remote = {.owner = host(PEER, PEER_MAC)};
    struct slot_route unreached = {.owner = host(UNREACHED, NULL)};
    struct slot_route here_after_handover = {.owner = host(SELF, self_mac), .previous = host(PEER, PEER_MAC)};
    CHECK_EQ(forward_set_route(f, 0, &remote), 0);
    CHECK_EQ(forward_set_route(f, 1, &unreached), 0);
    CHECK_EQ(forward_set_route(f, 2, &here_after_handover), 0);

    /* Wrapped: ethernet to the next hop's MAC | outer IPv4 SELF -> PEER, proto 4 | the original. */
    struct pkt syn0 = {.sport = 40000, .dport = SLOT_PORT_BASE + 0, .flags = SYN, .payload = 100};
    uint8_t in[2048];
    int in_len = build(&syn0, in, self_mac);
    struct out o = run(failed_, f, &syn0);
    CHECK_EQ(o.verdict, XDP_TX);
    CHECK_EQ(o.len, (uint32_t)in_len + IP_LEN);
    CHECK_MEM(o.frame, PEER_MAC, 6);
    CHECK_MEM(o.frame + 6, self_mac, 6);
    const uint8_t *outer = o.frame + ETH_LEN, *inner = outer + IP_LEN;
    CHECK_EQ(outer[0], 0x45);
    CHECK_EQ(outer[9], 4);
    CHECK_EQ(outer[2] << 8 | outer[3], in_len - ETH_LEN + IP_LEN);
    CHECK_EQ(outer[6] & 0x40, 0x40); /* DF: never fragmented on the way */
    CHECK_EQ(addr_at(outer + 12), ip4(SELF));
    CHECK_EQ(addr_at(outer + 16), ip4(PEER));
    CHECK_EQ(checksum(outer, IP_LEN), 0);
    CHECK_EQ(inner[8], 63);
    CHECK_EQ(checksum(inner, IP_LEN), 0);
    CHECK_MEM(inner + IP_LEN, in + ETH_LEN + IP_LEN, TCP_LEN + 100); /* TCP untouched */

    /* The next hop is a router, which every routed packet comes from: that is no sign the owner
     * sent it (only wrapped packets come from peers), so it is wrapped all the same. */
    struct pkt via_router = {.src_mac = PEER_MAC, .sport = 40009, .dport = SLOT_PORT_BASE + 0, .flags = SYN};
    CHECK_EQ(run(failed_, f, &via_router).verdict, XDP_TX);

    /* No MAC resolved for the owner: served here. Too big once wrapped: served here. */
    struct pkt syn1 = {.sport = 40001, .dport = SLOT_PORT_BASE + 1, .flags = SYN};
    CHECK_EQ(run(failed_, f, &syn1).verdict, XDP_PASS);
    struct pkt big = {.sport = 40002, .dport = SLOT_PORT_BASE + 0, .flags = ACK, .payload = 1500 - IP_LEN - TCP_LEN};
    o = run(failed_, f, &big);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK(same_frame_as_input(&big, &o, self_mac));

    /* Arriving wrapped for a slot owned here: unwrapped and passed, the inner packet intact. */
    struct pkt wrapped = {.outer_src = LANDING, .sport = 40003, .dport = SLOT_PORT_BASE + 2, .flags = SYN,
                          .payload = 30};
    int wrapped_len = build(&wrapped, in, self_mac);
    o = run(failed_, f, &wrapped);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK_EQ(o.len, (uint32_t)wrapped_len - IP_LEN);
    CHECK_MEM(o.frame, in, ETH_LEN);
    CHECK_MEM(o.frame + ETH_LEN, in + ETH_LEN + IP_LEN, (size_t)wrapped_len - ETH_LEN - IP_LEN);

    /* Wrapped, a flow this owner does not know: re-addressed to the previous owner (second chance). */
    struct pkt lost = {.outer_src = LANDING, .sport = 40004, .dport = SLOT_PORT_BASE + 2, .flags = ACK, .payload = 30};
    wrapped_len = build(&lost, in, self_mac);
    o = run(failed_, f, &lost);
    CHECK_EQ(o.verdict, XDP_TX);
    CHECK_EQ(o.len, (uint32_t)wrapped_len);
    CHECK_MEM(o.frame, PEER_MAC, 6);
    outer = o.frame + ETH_LEN;
    CHECK_EQ(addr_at(outer + 12), ip4(SELF));
    CHECK_EQ(addr_at(outer + 16), ip4(PEER));
    CHECK_EQ(checksum(outer, IP_LEN), 0);
    CHECK_EQ(outer[IP_LEN + 8], 63);
    CHECK_EQ(checksum(outer + IP_LEN, IP_LEN), 0);
    /* ...but not when it came from that previous owner: unwrapped, answered here. */
    struct pkt from_prev = {.outer_src = PEER, .sport = 40005, .dport = SLOT_PORT_BASE + 2, .flags = ACK};
    wrapped_len = build(&from_prev, in, self_mac);
    o = run(failed_, f, &from_prev);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK_EQ(o.len, (uint32_t)wrapped_len - IP_LEN);

    /* IPIP for another address, or to a port that is not a slot: not ours, left wrapped. */
    struct pkt not_slot = {.outer_src = LANDING, .sport = 40006, .dport = 22, .flags = SYN};
    o = run(failed_, f, &not_slot);
    CHECK_EQ(o.verdict, XDP_PASS);
    CHECK(same_frame_as_input(&not_slot, &o, self_mac));

    uint64_t c[FWD_COUNTER_MAX];
    stats(f, c);
    CHECK_EQ(c[FWD_FORWARDED], 2);
    CHECK_EQ(c[FWD_SECOND_CHANCE], 1);
    CHECK_EQ(c[FWD_ENCAPSULATED], 3);
    CHECK_EQ(c[FWD_LOOP_STOP], 0);
    CHECK_EQ(c[FWD_DECAPSULATED], 2);
    CHECK_EQ(c[FWD_NO_ROUTE], 1);
    CHECK_EQ(c[FWD_TOO_BIG], 1);
    CHECK_EQ(c[FWD_PASSED_OWNER], 2);
    forward_close(f);
}

TEST(forward_ipip_wraps_to_the_owner_and_unwraps_at_it) { test_in_netns(failed_, ipip_body); }

/* The name of the XDP program attached to ifname, "" if none. */
static void attached_name(const char *ifname, char *out, size_t len)
{
    out[0] = '\0';
    struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)if_nametoindex(ifname));
    if (libxdp_get_error(mp))
        return;
    struct xdp_program *p = xdp_multiprog__main_prog(mp);
    if (p)
        snprintf(out, len, "%s", xdp_program__name(p));
    xdp_multiprog__close(mp);
}

static void attach_body(int *failed_, const char *name)
{
    if (make_uplink() != 0) {
        CHECK(0);
        return;
    }
    char prog[64];
    struct forward *f = open_forward(failed_, name, FWD_MODE_L2);
    if (!f)
        return;
    attached_name("fx0", prog, sizeof(prog));
    CHECK(strcmp(prog, "sluice_forward") == 0);
    const char *maps[] = {"fwd_config", "slot_hosts", "fwd_counters"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/sys/fs/bpf/sluice/%s/%s", name, maps[i]);
        CHECK(access(path, F_OK) == 0);
    }
    struct fwd_config cfg;
    uint32_t zero = 0;
    char path[128];
    snprintf(path, sizeof(path), "/sys/fs/bpf/sluice/%s/fwd_config", name);
    int fd = bpf_obj_get(path);
    CHECK(fd >= 0 && bpf_map_lookup_elem(fd, &zero, &cfg) == 0);
    CHECK_EQ(cfg.self_ip4, ip4(SELF));
    CHECK_EQ(cfg.ifindex, if_nametoindex("fx0"));
    CHECK_EQ(cfg.nslots, NSLOTS);
    CHECK_MEM(cfg.self_mac, forward_self_mac(f), 6);
    if (fd >= 0)
        close(fd);

    /* An agent that died without closing left its program attached: the next one replaces it. */
    struct forward *again = open_forward(failed_, name, FWD_MODE_L2);
    attached_name("fx0", prog, sizeof(prog));
    CHECK(strcmp(prog, "sluice_forward") == 0);
    forward_close(again);
    attached_name("fx0", prog, sizeof(prog));
    CHECK_EQ(prog[0], '\0'); /* a clean stop detaches */
    forward_close(f);        /* the first one's detach finds nothing: fine */

    /* Someone else's XDP program is never replaced. */
    CHECK_EQ(test_sh("ip link set dev fx0 xdpdrv obj build/bpf/xdp_pass.bpf.o sec xdp"), 0);
    struct forward_options o = {.pin_name = name, .ifname = "fx0", .slot_port_base = SLOT_PORT_BASE, .nslots = NSLOTS};
    char err[256] = "";
    CHECK(forward_open(&o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "already runs XDP program xdp_pass") != NULL);
    attached_name("fx0", prog, sizeof(prog));
    CHECK(strcmp(prog, "xdp_pass") == 0);

    /* A driver without native XDP (a bridge device has none) gets generic XDP, and a clean stop
     * detaches it. */
    CHECK_EQ(test_sh("ip link add b0 type bridge && ip addr add 198.18.3.1/24 dev b0 && ip link set b0 up"), 0);
    struct forward_options ob = {.pin_name = name, .ifname = "b0", .slot_port_base = SLOT_PORT_BASE, .nslots = NSLOTS};
    struct forward *generic = forward_open(&ob, err, sizeof(err));
    if (!generic)
        fprintf(stderr, "  forward_open on a bridge: %s\n", err);
    CHECK(generic != NULL);
    attached_name("b0", prog, sizeof(prog));
    CHECK(strcmp(prog, "sluice_forward") == 0);
    forward_close(generic);
    attached_name("b0", prog, sizeof(prog));
    CHECK_EQ(prog[0], '\0');

    /* No such interface, or one without IPv4: one clear line. */
    o.ifname = "nosuch0";
    CHECK(forward_open(&o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "nosuch0") != NULL);
    o.ifname = "fx1";
    CHECK(forward_open(&o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "fx1 has no IPv4 address") != NULL);
}

TEST(forward_attaches_replaces_its_leftover_and_detaches) { test_in_netns(failed_, attach_body); }

/* ---- next hops (steer/nexthop.c) ---- */

static void nexthop_body(int *failed_, const char *name)
{
    /* fx0 here (SELF); its peer fx1 in a namespace of its own holds PEER and answers ARP. */
    char peer_ns[48];
    snprintf(peer_ns, sizeof(peer_ns), "%s-peer", name);
    if (make_uplink() != 0 || test_sh("ip netns add %s && ip link set fx1 netns %s && "
                                      "ip -n %s addr add " PEER "/24 dev fx1 && ip -n %s link set fx1 up",
                                      peer_ns, peer_ns, peer_ns, peer_ns) != 0) {
        CHECK(0);
        test_sh("ip netns del %s 2>/dev/null", peer_ns);
        return;
    }
    CHECK_EQ(test_sh("ip route add 198.18.7.0/24 via " PEER), 0);
    int ifindex = (int)if_nametoindex("fx0");
    uint8_t mac[6], peer_mac[6] = {0};
    char mac_text[32] = "";
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip -n %s -o link show fx1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2", peer_ns);
    FILE *f = popen(cmd, "r");
    CHECK(f && fgets(mac_text, sizeof(mac_text), f));
    if (f)
        pclose(f);
    CHECK_EQ(sscanf(mac_text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &peer_mac[0], &peer_mac[1], &peer_mac[2],
                    &peer_mac[3], &peer_mac[4], &peer_mac[5]), 6);

    /* Nobody asked for PEER yet: resolution starts, and the answer comes within a moment. */
    bool via_router = true;
    CHECK_EQ(nexthop_resolve(ip4(PEER), ifindex, mac, &via_router), NEXTHOP_PENDING);
    enum nexthop_status st = NEXTHOP_PENDING;
    for (int i = 0; i < 100 && st == NEXTHOP_PENDING; i++) {
        usleep(20 * 1000);
        st = nexthop_resolve(ip4(PEER), ifindex, mac, &via_router);
    }
    CHECK_EQ(st, NEXTHOP_RESOLVED);
    CHECK_MEM(mac, peer_mac, 6);
    CHECK(!via_router);

    /* A host behind a router: the router's MAC. */
    memset(mac, 0, sizeof(mac));
    CHECK_EQ(nexthop_resolve(ip4("198.18.7.7"), ifindex, mac, &via_router), NEXTHOP_RESOLVED);
    CHECK_MEM(mac, peer_mac, 6);
    CHECK(via_router);

    /* No route; our own address; another interface. */
    CHECK_EQ(nexthop_resolve(ip4("198.19.200.1"), ifindex, mac, &via_router), NEXTHOP_UNREACHABLE);
    CHECK_EQ(nexthop_resolve(ip4(SELF), ifindex, mac, &via_router), NEXTHOP_UNREACHABLE);
    CHECK_EQ(nexthop_resolve(ip4(PEER), (int)if_nametoindex("lo"), mac, &via_router), NEXTHOP_OTHER_INTERFACE);
    test_sh("ip netns del %s", peer_ns);
}

TEST(nexthop_finds_the_mac_frames_go_to) { test_in_netns(failed_, nexthop_body); }
