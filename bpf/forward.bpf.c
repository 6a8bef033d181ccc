// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* XDP on the agent's uplink: each slot connection is served by the host whose worker owns the slot,
 * whichever host a load balancer sent it to. For IPv4 TCP to a slot port (slot_port_base + s):
 *
 *   a flow this host already serves (established socket, syncookie)  -> pass (it lives here)
 *   owner of s is another host        -> forward there (SYN and the rest of the flow alike)
 *   owner of s is this host           -> pass; sk_lookup (steer.bpf.c) hands it to the owner worker
 *       ...but a non-SYN of a flow not known here, during a hand-over -> the previous owner of s,
 *          where the connection was opened (second chance), so moving slots resets nothing
 *   no owner known, no MAC yet        -> pass: served here (any agent serves any partition); but a
 *                                        packet of a flow living elsewhere is dropped, not reset here
 *
 * Forwarding keeps the IP header (the owner accepts the original destination through an AnyIP route
 * and answers the client directly): l2 rewrites the MACs and sends the frame back out (XDP_TX);
 * ipip wraps it in an outer IPv4 header to the owner's uplink address, which unwraps it there. The
 * frame goes to the MAC the loader resolved for that host (its own on a shared segment, the next
 * hop's when routed) and back out of the uplink. A
 * packet is never sent back to the host it came from, and each hop decrements its TTL, so views of
 * the slot table that briefly disagree between hosts cannot make it loop. Everything else (other
 * ports, IPv6, non-TCP, fragments, IP options) is passed untouched. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "forward.h"

/* Constants from headers BPF programs cannot include. */
#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define OUTER_TTL 64

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, steer_u32);
    __type(value, struct fwd_config);
} fwd_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, STEER_MAX_SLOTS);
    __type(key, steer_u32); /* slot */
    __type(value, struct slot_route);
} slot_hosts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FWD_COUNTER_MAX);
    __type(key, steer_u32); /* enum fwd_counter */
    __type(value, steer_u64);
} fwd_counters SEC(".maps");

static __always_inline void count(enum fwd_counter counter)
{
    steer_u32 key = counter;
    steer_u64 *value = bpf_map_lookup_elem(&fwd_counters, &key);
    if (value)
        *value += 1;
}

static __always_inline int passed(enum fwd_counter counter)
{
    count(counter);
    return XDP_PASS;
}

static __always_inline bool same_mac(const unsigned char *a, const steer_u8 *b)
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline bool zero_mac(const steer_u8 *m)
{
    return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}

/* One hop, as a router does: TTL - 1, checksum adjusted incrementally (RFC 1624). */
static __always_inline void decrease_ttl(struct iphdr *ip)
{
    steer_u32 check = ip->check;
    check += bpf_htons(0x0100);
    ip->check = (__sum16)(check + (check >= 0xffff));
    ip->ttl--;
}

static __always_inline __sum16 ipv4_checksum(struct iphdr *ip)
{
    ip->check = 0;
    steer_u16 *w = (steer_u16 *)ip;
    steer_u32 sum = 0;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
        sum += w[i];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__sum16)~sum;
}

/* The frame goes to the target's MAC on this segment (its own, or the next hop's towards it), from
 * ours, back out of the uplink. */
static __always_inline int send_to(struct ethhdr *eth, const struct fwd_config *cfg, const struct fwd_host *to)
{
    __builtin_memcpy(eth->h_dest, to->mac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, cfg->self_mac, ETH_ALEN);
    return XDP_TX;
}

/* The outer header's addresses (this host -> the target), fresh TTL and checksum, then out. */
static __always_inline int send_outer(struct ethhdr *eth, struct iphdr *outer, const struct fwd_config *cfg,
                                      const struct fwd_host *to)
{
    outer->ttl = OUTER_TTL;
    outer->saddr = cfg->self_ip4;
    outer->daddr = to->ip4;
    outer->check = ipv4_checksum(outer);
    count(FWD_ENCAPSULATED);
    return send_to(eth, cfg, to);
}

/* ipip, packet not yet wrapped: room for an outer header in front of the IP header, then
 * ethernet | outer IPv4 (this host -> target) | original packet. */
static __always_inline int send_wrapped(struct xdp_md *ctx, const struct fwd_config *cfg, const struct fwd_host *to)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_PASS;
    steer_u16 inner_len = bpf_ntohs(ip->tot_len);
    if ((steer_u32)inner_len + sizeof(struct iphdr) > cfg->mtu)
        return passed(FWD_TOO_BIG);
    steer_u8 tos = ip->tos;
    decrease_ttl(ip);

    if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
        return passed(FWD_NO_ROUTE);
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    struct iphdr *outer = (void *)(eth + 1);
    if ((void *)(outer + 1) > end)
        return XDP_DROP; /* cannot happen: we just made the room; the frame is no longer valid */
    eth->h_proto = bpf_htons(ETH_P_IP);
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = tos;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = bpf_htons(IP_DF);
    outer->protocol = IPPROTO_IPIP;
    return send_outer(eth, outer, cfg, to);
}

/* ipip, packet arrived wrapped and goes on: only the outer header changes. */
static __always_inline int send_rewrapped(struct ethhdr *eth, struct iphdr *outer, struct iphdr *ip,
                                          const struct fwd_config *cfg, const struct fwd_host *to)
{
    decrease_ttl(ip);
    return send_outer(eth, outer, cfg, to);
}

/* Strips the outer header of a packet addressed to this host and passes the original one. */
static __always_inline int unwrap_and_pass(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr eth_copy;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    __builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
    if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
        return XDP_PASS;
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_DROP;
    __builtin_memcpy(eth, &eth_copy, sizeof(eth_copy));
    count(FWD_DECAPSULATED);
    return XDP_PASS;
}

/* Does this host already serve the flow? A socket that is not a listener (established, SYN_RECV,
 * TIME_WAIT) says so; a listener alone does not (bpf_skc_lookup_tcp finds the listener sk_lookup
 * would pick for any packet to the port), except for the ACK that completes a syncookie handshake. */
static __always_inline bool flow_lives_here(struct xdp_md *ctx, struct iphdr *ip, struct tcphdr *tcp, bool pure_ack)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.saddr = ip->saddr;
    tuple.ipv4.daddr = ip->daddr;
    tuple.ipv4.sport = tcp->source;
    tuple.ipv4.dport = tcp->dest;
    struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return false;
    bool here = sk->state != BPF_TCP_LISTEN;
    if (!here && pure_ack)
        here = bpf_tcp_check_syncookie(sk, ip, sizeof(*ip), tcp, sizeof(*tcp)) == 0;
    bpf_sk_release(sk);
    return here;
}

SEC("xdp")
int sluice_forward(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_PASS;

    steer_u32 zero = 0;
    const struct fwd_config *cfg = bpf_map_lookup_elem(&fwd_config, &zero);
    if (!cfg || !cfg->self_ip4)
        return XDP_PASS;

    /* Wrapped by another sluice host for this one? Then decide on the packet inside. */
    struct iphdr *outer = NULL;
    if (ip->protocol == IPPROTO_IPIP) {
        if (ip->daddr != cfg->self_ip4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
            return XDP_PASS;
        outer = ip;
        ip = (void *)(outer + 1);
        if ((void *)(ip + 1) > end)
            return XDP_PASS;
    }
    if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
        (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
        return XDP_PASS;
    struct tcphdr *tcp = (void *)(ip + 1);
    if ((void *)(tcp + 1) > end)
        return XDP_PASS;

    steer_u32 slot = (steer_u32)bpf_ntohs(tcp->dest) - cfg->slot_port_base;
    if (slot >= cfg->nslots || slot >= STEER_MAX_SLOTS)
        return XDP_PASS; /* not a slot port (an IPIP packet that is not ours stays wrapped) */
    const struct slot_route *route = bpf_map_lookup_elem(&slot_hosts, &slot);
    if (!route)
        return XDP_PASS;

    steer_u8 flags = ((steer_u8 *)tcp)[13];
    bool syn = (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
    /* Who sent it: the outer source when wrapped; in l2, the source MAC (a peer forwarding on the
     * segment). In ipip the table's MACs are routers' (every routed packet comes from one), and
     * peers only ever send wrapped packets, so an unwrapped one never comes from a peer. */
    bool from_owner = false, from_previous = false;
    if (outer) {
        from_owner = outer->saddr == route->owner.ip4;
        from_previous = route->previous.ip4 && outer->saddr == route->previous.ip4;
    } else if (cfg->mode == FWD_MODE_L2) {
        from_owner = route->owner.ip4 && same_mac(eth->h_source, route->owner.mac);
        from_previous = route->previous.ip4 && same_mac(eth->h_source, route->previous.mac);
    }

    const struct fwd_host *to = NULL;
    enum fwd_counter why = FWD_FORWARDED;
    if (!route->owner.ip4) {
        count(FWD_NO_OWNER);
    } else if (!syn && flow_lives_here(ctx, ip, tcp, (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_ACK)) {
        count(FWD_PASSED_FLOW);
    } else if (route->owner.ip4 == cfg->self_ip4) {
        if (!syn && route->previous.ip4 && route->previous.ip4 != cfg->self_ip4 && !from_previous) {
            to = &route->previous;
            why = FWD_SECOND_CHANCE;
        } else {
            count(FWD_PASSED_OWNER);
        }
    } else if (from_owner) {
        count(FWD_LOOP_STOP); /* the owner sent it here: serve it rather than bounce it back */
    } else {
        to = &route->owner;
    }

    if (to && ip->ttl <= 1) {
        count(FWD_LOOP_STOP);
        to = NULL;
    }
    if (to && zero_mac(to->mac)) {
        count(FWD_NO_ROUTE);
        /* A new connection is served here instead. A packet of a flow that lives elsewhere would only
         * be reset here: drop it, and TCP sends it again once the MAC is known (the loader asks ARP
         * at once and looks again within milliseconds). */
        if (!syn)
            return XDP_DROP;
        to = NULL;
    }
    if (to) {
        int verdict;
        if (outer) {
            verdict = send_rewrapped(eth, outer, ip, cfg, to);
        } else if (cfg->mode == FWD_MODE_IPIP) {
            verdict = send_wrapped(ctx, cfg, to);
        } else {
            decrease_ttl(ip);
            verdict = send_to(eth, cfg, to);
        }
        if (verdict == XDP_TX) {
            count(why);
            return verdict;
        }
        /* It does not fit (counted): serve it here. */
    }
    return outer ? unwrap_and_pass(ctx) : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
