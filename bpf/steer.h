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

/* The one entry of the "config" map. Ports are in host byte order, as ctx->local_port. */
struct steer_config {
    steer_u16 bootstrap_port;   /* served by every live worker: least-loaded pick */
    steer_u16 slot_port_base;   /* slot s is served at slot_port_base + s */
    steer_u32 nslots;           /* slots [0, nslots) are steered */
    steer_u32 nworkers;         /* workers [0, nworkers) are candidates */
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
    STEER_NO_OWNER,         /* slot port whose owner has no listener (unset, or worker dead): left alone */
    STEER_ASSIGN_ERROR,     /* bpf_sk_assign() refused the listener (e.g. IPv6 connection, IPv4-only listener) */
    STEER_NO_LIVE_WORKER,   /* bootstrap port while no worker has a listener: left alone */
    STEER_COUNTER_MAX
};

#endif
