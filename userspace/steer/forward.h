/* Loader of the XDP forwarding program (bpf/forward.bpf.c): attached with libxdp to the agent's
 * uplink in native mode; its maps (fwd_config, slot_hosts, fwd_counters) pinned beside the
 * sk_lookup maps under /sys/fs/bpf/sluice/<name>/. Only the supervisor uses it. */
#ifndef SLUICE_FORWARD_H
#define SLUICE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/forward.h"

struct forward;

struct forward_options {
    const char *pin_name;    /* the steering name: pins go to /sys/fs/bpf/sluice/<pin_name>/ */
    const char *ifname;      /* the uplink */
    enum fwd_mode mode;
    uint16_t slot_port_base;
    uint32_t nslots;         /* <= STEER_MAX_SLOTS */
};

/* Reads the uplink's IPv4 address and MAC, loads the program (reusing compatible pinned maps;
 * every slot starts with no owner, i.e. served here), replaces a sluice_forward program a crashed
 * agent left on the interface, and attaches natively (generic XDP, with a warning, where the driver
 * has none). Another XDP program on the interface is refused. NULL with one line in err on
 * failure. */
struct forward *forward_open(const struct forward_options *o, char *err, size_t errlen);

uint32_t forward_self_ip4(const struct forward *f);      /* network byte order */
int forward_prog_fd(const struct forward *f);            /* e.g. for BPF_PROG_TEST_RUN */
const uint8_t *forward_self_mac(const struct forward *f); /* 6 bytes */

/* Sets where slot's connections go. 0, or -1 with one log line. */
int forward_set_route(struct forward *f, uint32_t slot, const struct slot_route *route);
/* Sums the per-CPU counters (cumulative over the life of the pinned maps). */
int forward_read_stats(struct forward *f, uint64_t counters[FWD_COUNTER_MAX]);

/* Detaches the program from the interface (the agent stops: nothing is forwarded any more) and
 * frees f; the maps stay pinned. NULL is fine. */
void forward_close(struct forward *f);

/* The uplink's first IPv4 address (network byte order), MAC and MTU. 0, or -1 with one line in err. */
int forward_interface_addresses(const char *ifname, uint32_t *ip4, uint8_t mac[6], int *mtu, char *err,
                                size_t errlen);

#endif
