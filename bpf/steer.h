/* Types shared by the sk_lookup steering program (bpf/steer.bpf.c) and its loader
 * (userspace/steer/steer.c). Plain C without kernel headers, so both worlds can include it. The
 * struct and field names below are what `bpftool map dump pinned /sys/fs/bpf/sluice/<name>/...`
 * prints: keep them descriptive. */
#ifndef SLUICE_BPF_STEER_H
#define SLUICE_BPF_STEER_H

/* Fixed-width types that need neither <stdint.h> (unavailable to BPF programs) nor
 * <linux/types.h> (clashes with vmlinux.h). Both targets are LP64 with 16-bit short, 32-bit int. */
typedef unsigned short steer_u16;
typedef unsigned int steer_u32;
typedef unsigned long long steer_u64;

#define STEER_MAX_WORKERS 64
#define STEER_MAX_SLOTS 4096

/* slot_owner value of a slot that no worker serves (every slot starts like this). */
#define STEER_NO_WORKER 0xffffffffu

#define STEER_AF_INET 2   /* AF_INET and AF_INET6, which BPF programs cannot include */
#define STEER_AF_INET6 10

/* Entries of the "peer_addrs" map (see below). */
#define STEER_MAX_PEER_ADDRS 1024

/* The one entry of the "config" map. Ports are in host byte order, as ctx->local_port; addresses
 * in network byte order, as ctx->local_ip4/local_ip6. The bind fields say which destinations are
 * the agent's, as its Kafka listener address does: 0.0.0.0 is every IPv4 address, :: every address
 * of both families, anything else that one address (plus the peer_addrs of XDP forwarding). */
struct steer_config {
    steer_u16 bootstrap_port;   /* served by every live worker: least-loaded pick */
    steer_u16 slot_port_base;   /* slot s is served at slot_port_base + s */
    steer_u32 nslots;           /* slots [0, nslots) are steered */
    steer_u32 nworkers;         /* workers [0, nworkers) are candidates */
    steer_u16 bind_family;      /* 0: IPv4 and IPv6; STEER_AF_INET or STEER_AF_INET6: that family only */
    steer_u16 bind_specific;    /* 1: only connections to bind_ip4 / bind_ip6 (or to a peer_addrs entry) */
    steer_u32 bind_ip4;
    steer_u32 bind_ip6[4];
};

/* Value of the "worker_load" map, kept current by each worker. */
struct worker_load {
    steer_u32 live_conns;
};

/* Keys of the per-CPU "counters" map: one for each decision the program takes. Connections to
 * ports that are not sluice's are not counted, to keep that path cheap. Append new ones at the
 * end: tests and tools read them by index. */
enum steer_counter {
    STEER_SLOT_HIT,         /* slot port -> owner's listener assigned */
    STEER_BOOTSTRAP_PICK,   /* bootstrap port -> least-loaded live worker's listener assigned */
    STEER_NO_OWNER,         /* slot port with no live worker to take it: left alone (refused) */
    STEER_ASSIGN_ERROR,     /* bpf_sk_assign() refused the listener (e.g. IPv6 connection, IPv4-only listener) */
    STEER_NO_LIVE_WORKER,   /* bootstrap port while no worker has a listener: left alone */
    STEER_SLOT_FALLBACK,    /* slot port whose owner has no listener (it just died): least-loaded live worker */
    STEER_OTHER_ADDRESS,    /* a steered port on a local address the agent is not bound to: left alone */
    STEER_COUNTER_MAX
};

#endif
