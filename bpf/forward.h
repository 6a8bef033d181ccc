/* Types shared by the XDP forwarding program (bpf/forward.bpf.c) and its loader
 * (userspace/steer/forward.c). Like steer.h: plain C, names chosen for what
 * `bpftool map dump pinned /sys/fs/bpf/sluice/<name>/slot_hosts` prints. */
#ifndef SLUICE_BPF_FORWARD_H
#define SLUICE_BPF_FORWARD_H

#include "steer.h" /* steer_u16/u32/u64, STEER_MAX_SLOTS */

typedef unsigned char steer_u8;

/* How a packet reaches another host. */
enum fwd_mode {
    FWD_MODE_L2 = 0,   /* hosts share a segment: rewrite the MACs, send it back out (XDP_TX) */
    FWD_MODE_IPIP = 1, /* routed: wrap it in an outer IPv4 header to the owner, which unwraps it */
};

/* The one entry of the "fwd_config" map. Addresses in network byte order. */
struct fwd_config {
    steer_u16 slot_port_base;  /* slot s is served at slot_port_base + s */
    steer_u16 padding;
    steer_u32 nslots;
    steer_u32 mode;            /* enum fwd_mode */
    steer_u32 self_ip4;        /* this host's uplink address: the ipip outer source, what it decapsulates */
    steer_u8 self_mac[6];      /* the uplink's MAC: source of forwarded frames */
    steer_u16 mtu;             /* the uplink's: an ipip packet that would not fit is served here instead */
    steer_u32 ifindex;         /* the uplink the program is attached to */
};

/* A host in the slot table. ip4 0 means none. */
struct fwd_host {
    steer_u32 ip4;             /* its uplink address */
    steer_u8 mac[6];           /* where frames for it go on this segment: its own MAC (l2), or the next hop's
                                  towards it (ipip); all zero while not resolved (then served here) */
    steer_u16 padding;
};

/* Value of the "slot_hosts" map, indexed by slot: where that slot's connections are served. */
struct slot_route {
    struct fwd_host owner;     /* the host whose worker owns the slot (this host's address: served here;
                                  0: unknown, served here) */
    struct fwd_host previous;  /* the owner before the last hand-over: flows the owner does not know
                                  were opened there and are sent on to it (second chance) */
};

/* Keys of the per-CPU "fwd_counters" map, one per decision. Only TCP to slot ports is counted
 * (and IPIP addressed to this host). Append new ones at the end: tools read them by index. */
enum fwd_counter {
    FWD_FORWARDED,        /* sent to the owner host */
    FWD_SECOND_CHANCE,    /* owner is here but the flow is not: sent to the previous owner */
    FWD_PASSED_OWNER,     /* the slot's owner is this host: passed to the stack (sk_lookup picks the worker) */
    FWD_PASSED_FLOW,      /* a connection this host already serves (established, or a valid syncookie): passed */
    FWD_NO_OWNER,         /* no owner known for the slot: passed, served here */
    FWD_LOOP_STOP,        /* came from the host it would go to, or its TTL ran out: passed, not bounced */
    FWD_NO_ROUTE,         /* no MAC resolved for the target yet: a SYN is served here, the rest of a flow
                             that lives elsewhere is dropped (TCP resends it; here it would be reset) */
    FWD_TOO_BIG,          /* ipip: the encapsulated packet would not fit the MTU: passed, served here */
    FWD_ENCAPSULATED,     /* ipip: wrapped and sent (part of forwarded / second chance) */
    FWD_DECAPSULATED,     /* ipip: arrived wrapped for this host, unwrapped and passed */
    FWD_COUNTER_MAX
};

#endif
