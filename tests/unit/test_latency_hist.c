/* The bench tool's log-linear histogram: layout, and percentiles against known distributions. */
#include <stdlib.h>

#include "check.h"
#include "tools/cli/latency_hist.h"

/* |got - want| within the histogram's promised relative error (1/128), or exact below 256. */
static int close_to(uint64_t got, uint64_t want)
{
    uint64_t d = got > want ? got - want : want - got;
    return d * 128 <= want;
}

TEST(hist_layout_monotonic_and_tight)
{
    unsigned last = 0;
    for (uint64_t v = 0; v < (1u << 20); v++) {
        unsigned i = hist_index(v);
        CHECK(i >= last && i <= last + 1); /* buckets are contiguous and ordered */
        CHECK(hist_bucket_high(i) >= v);
        CHECK(v < 256 ? hist_bucket_high(i) == v : close_to(hist_bucket_high(i), v));
        last = i;
        if (*failed_)
            return;
    }
    CHECK(hist_index(UINT64_MAX) == HIST_BUCKETS - 1);
    CHECK(hist_bucket_high(HIST_BUCKETS - 1) == UINT64_MAX);
}

TEST(hist_uniform_percentiles)
{
    static struct latency_hist h;
    hist_init(&h);
    CHECK_EQ(hist_percentile(&h, 99), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v);
    CHECK_EQ(hist_count(&h), 100000);
    CHECK(close_to(hist_percentile(&h, 50), 50000));
    CHECK(close_to(hist_percentile(&h, 90), 90000));
    CHECK(close_to(hist_percentile(&h, 99), 99000));
    CHECK(close_to(hist_percentile(&h, 99.9), 99900));
    CHECK_EQ(hist_percentile(&h, 100), 100000);
    CHECK_EQ(hist_percentile(&h, 0), 1);
    CHECK_EQ(h.min, 1);
    CHECK_EQ(h.max, 100000);
    CHECK(hist_mean(&h) > 50000.4 && hist_mean(&h) < 50000.6);
}

TEST(hist_small_values_exact)
{
    static struct latency_hist h;
    hist_init(&h);
    /* 1..10 once each: nearest-rank percentiles are exact values. */
    for (uint64_t v = 1; v <= 10; v++)
        hist_record(&h, v);
    CHECK_EQ(hist_percentile(&h, 50), 5);
    CHECK_EQ(hist_percentile(&h, 90), 9);
    CHECK_EQ(hist_percentile(&h, 91), 10);
    CHECK_EQ(hist_percentile(&h, 99.9), 10);
}

TEST(hist_bimodal_tail)
{
    static struct latency_hist h;
    hist_init(&h);
    /* 99 % at 1 ms, 1 % at 50 ms (in microseconds): p99 still sees the fast mode, p99.9 the slow. */
    for (int i = 0; i < 99000; i++)
        hist_record(&h, 1000);
    for (int i = 0; i < 1000; i++)
        hist_record(&h, 50000);
    CHECK(close_to(hist_percentile(&h, 50), 1000));
    CHECK(close_to(hist_percentile(&h, 99), 1000));
    CHECK(close_to(hist_percentile(&h, 99.1), 50000));
    CHECK(close_to(hist_percentile(&h, 99.9), 50000));
    CHECK_EQ(hist_percentile(&h, 100), 50000); /* capped at the true max, not the bucket's top */
}

static int cmp(const void *p, const void *q)
{
    uint64_t a = *(const uint64_t *)p, b = *(const uint64_t *)q;
    return a < b ? -1 : a > b;
}

TEST(hist_exponential_and_merge)
{
    static struct latency_hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    /* Exponential with mean 2000: the p-quantile is -2000 ln(1 - p). Deterministic generator. */
    uint64_t x = 88172645463325252ull;
    static uint64_t vals[200000];
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        vals[i] = (uint64_t)(-2000.0 * __builtin_log(1.0 - u));
        hist_record(i % 2 ? &a : &b, vals[i]);
    }
    hist_merge(&all, &a);
    hist_merge(&all, &b);
    CHECK_EQ(hist_count(&all), 200000);
    /* Exact percentiles from the sorted sample, to compare with. */
    qsort(vals, 200000, sizeof(vals[0]), cmp);
    const double ps[] = {50, 90, 99, 99.9};
    for (int k = 0; k < 4; k++) {
        uint64_t want = vals[(size_t)(ps[k] / 100 * 200000 + 0.5) - 1];
        uint64_t got = hist_percentile(&all, ps[k]);
        CHECK(got >= want && close_to(got, want));
    }
    CHECK(hist_percentile(&all, 50) <= hist_percentile(&all, 90));
    CHECK(hist_percentile(&all, 99) <= hist_percentile(&all, 99.9));
    CHECK_EQ(all.max, vals[199999]);
    CHECK_EQ(all.min, vals[0]);
}
