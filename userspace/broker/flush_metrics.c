/* What a committed flush adds to the worker's metrics: records and bytes produced, object size and
 * the time since the previous flush. Called on the flusher thread (one per worker). */
#include "broker/broker_internal.h"
#include "metrics/metrics.h"

void flush_metrics_committed(const struct flush_batch *fb, uint64_t object_size)
{
    static uint64_t last_us; /* the previous committed flush of this worker's flusher */
    uint64_t records = 0, bytes = 0;
    for (int i = 0; i < fb->nchunks; i++) {
        const struct flush_chunk *ch = &fb->chunks[i];
        if (ch->error || ch->duplicate) /* refused, or a retry of records already counted */
            continue;
        records += (uint64_t)ch->offset_count;
        bytes += ch->data.len;
    }
    metrics_add(M_PRODUCE_RECORDS, records);
    metrics_add(M_PRODUCE_BYTES, bytes);
    metrics_add(M_FLUSHES, 1);
    metrics_observe(H_FLUSH_SIZE, object_size);
    uint64_t now = metrics_now_us();
    if (last_us)
        metrics_observe(H_FLUSH_INTERVAL, now - last_us);
    last_us = now;
}
