/* The kernel's steering counters for /metrics, read from the BPF maps at scrape time (the same
 * numbers `sluice steer status` prints). */
#include "agent/steer_metrics.h"

#include <stdio.h>

#include "agent/steering.h"
#include "metrics/metrics.h"
#include "steer/counter_names.h"
#include "steer/forward.h"
#include "steer/steer.h"

void steer_metrics_render(struct steering *st, int nworkers, struct buf *out)
{
    char labels[64];
    struct steer *sk = steering_kernel(st);
    struct steer_stats stats;
    if (sk && steer_read_stats(sk, &stats) == 0) {
        metrics_family(out, "sluice_steer_decisions_total", "counter",
                       "sk_lookup decisions on connections to the agent's ports (pinned maps: over their life)");
        for (int k = 0; k < STEER_COUNTER_MAX; k++) {
            snprintf(labels, sizeof(labels), "decision=\"%s\"", steer_counter_names[k]);
            metrics_sample(out, "sluice_steer_decisions_total", labels, stats.counters[k]);
        }
        metrics_family(out, "sluice_steer_connections_total", "counter",
                       "Connections sk_lookup handed to each worker's listener");
        for (int w = 0; w < nworkers && w < STEER_MAX_WORKERS; w++) {
            snprintf(labels, sizeof(labels), "worker=\"%d\"", w);
            metrics_sample(out, "sluice_steer_connections_total", labels, stats.per_worker[w]);
        }
    }
    struct forward *fwd = steering_forward(st);
    uint64_t fc[FWD_COUNTER_MAX];
    if (fwd && forward_read_stats(fwd, fc) == 0) {
        metrics_family(out, "sluice_xdp_packets_total", "counter",
                       "XDP forwarding decisions on packets to slot ports, by result");
        for (int k = 0; k < FWD_COUNTER_MAX; k++) {
            snprintf(labels, sizeof(labels), "result=\"%s\"", fwd_counter_names[k]);
            metrics_sample(out, "sluice_xdp_packets_total", labels, fc[k]);
        }
    }
}
