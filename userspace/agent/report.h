/* What a worker tells its supervisor, over the socket they share (SOCK_SEQPACKET: one message per
 * send, never split or merged): that it serves, and the agent group's membership as its last
 * heartbeat read it. The supervisor decides the kernel's steering from that (agent/steering.c)
 * without ever waiting on the metadata store itself. */
#ifndef SLUICE_REPORT_H
#define SLUICE_REPORT_H

#include <stdint.h>

enum report_type {
    REPORT_READY = 'R',   /* the worker accepts connections (header only) */
    REPORT_MEMBERS = 'M', /* the group's live members follow */
};

struct report_header {
    uint8_t type;         /* enum report_type */
    uint8_t reserved[3];
    uint32_t count;       /* REPORT_MEMBERS: entries after the header */
};

struct report_member {
    uint64_t id_hash;     /* member_id_hash() of its id: its identity in rendezvous hashing */
    uint32_t fwd_ip4;     /* its agent's XDP uplink address, network byte order; 0: none */
    uint32_t reserved;
};

/* Groups larger than this are not reported (XDP forwarding then keeps its last table; logged). */
#define REPORT_MAX_MEMBERS 4096
#define REPORT_MAX_BYTES (sizeof(struct report_header) + REPORT_MAX_MEMBERS * sizeof(struct report_member))

#endif
