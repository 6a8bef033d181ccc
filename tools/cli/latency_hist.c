/* Log-linear histogram: see latency_hist.h. */
#include "tools/cli/latency_hist.h"

#include <string.h>

void hist_init(struct latency_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS + 1; /* v >> shift lands in [HIST_HALF, HIST_SUB) */
    return HIST_SUB + (shift - 1) * HIST_HALF + (unsigned)((v >> shift) - HIST_HALF);
}

uint64_t hist_bucket_high(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (i - HIST_SUB) / HIST_HALF + 1;
    uint64_t sub = (i - HIST_SUB) % HIST_HALF + HIST_HALF;
    uint64_t low = sub << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

static void atomic_max(uint64_t *p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void atomic_min(uint64_t *p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void hist_record(struct latency_hist *h, uint64_t v)
{
    __atomic_fetch_add(&h->counts[hist_index(v)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
    atomic_max(&h->max, v);
    atomic_min(&h->min, v);
    /* Last, so a reader never sees a total larger than the counts it can find. */
    __atomic_fetch_add(&h->total, 1, __ATOMIC_RELEASE);
}

void hist_merge(struct latency_hist *dst, const struct latency_hist *src)
{
    uint64_t total = __atomic_load_n(&src->total, __ATOMIC_ACQUIRE);
    if (!total)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t c = __atomic_load_n(&src->counts[i], __ATOMIC_RELAXED);
        if (c)
            dst->counts[i] += c;
    }
    dst->total += total;
    dst->sum += __atomic_load_n(&src->sum, __ATOMIC_RELAXED);
    uint64_t mx = __atomic_load_n(&src->max, __ATOMIC_RELAXED), mn = __atomic_load_n(&src->min, __ATOMIC_RELAXED);
    if (mx > dst->max)
        dst->max = mx;
    if (mn < dst->min)
        dst->min = mn;
}

uint64_t hist_count(const struct latency_hist *h)
{
    return h->total;
}

double hist_mean(const struct latency_hist *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}

uint64_t hist_percentile(const struct latency_hist *h, double p)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        n += h->counts[i]; /* the counts, not total: a live histogram may be mid-record */
    if (!n)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* Rank of the value at p (1-based, nearest-rank definition). */
    uint64_t rank = (uint64_t)((p / 100.0) * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
