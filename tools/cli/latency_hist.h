/* An HDR-style log-linear histogram of non-negative integer values (sluice bench records
 * microseconds): exact below 256, then 128 linear sub-buckets per power of two, so any value is
 * reported within 1/128 (< 0.8 %) of what was recorded. Fixed size, no allocation; recording is
 * one relaxed atomic add, so another thread may read a running histogram for progress lines. */
#ifndef SLUICE_LATENCY_HIST_H
#define SLUICE_LATENCY_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_HALF (HIST_SUB / 2)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)

struct latency_hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total, max, min, sum;
};

void hist_init(struct latency_hist *h);
void hist_record(struct latency_hist *h, uint64_t value);
/* Adds src's counts into dst (src may be recorded into concurrently). */
void hist_merge(struct latency_hist *dst, const struct latency_hist *src);
/* The value at percentile p (0..100): the highest value of the bucket holding that rank, capped
 * at the largest value recorded; 0 when empty. */
uint64_t hist_percentile(const struct latency_hist *h, double p);
uint64_t hist_count(const struct latency_hist *h);
double hist_mean(const struct latency_hist *h);

/* Bucket layout, exposed for the unit tests. */
unsigned hist_index(uint64_t value);
uint64_t hist_bucket_high(unsigned index);

#endif
