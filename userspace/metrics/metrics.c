/* The shared counter blocks (metrics.h) and their Prometheus text exposition. */
#include "metrics/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "broker/acl.h"
#include "protocol/codec.h"

static struct metrics_block dummy;
struct metrics_block *metrics_self = &dummy;

static struct metrics_block *blocks; /* nworkers of them, shared with the workers */
static int nblocks;

#define METRICS_ERR_SLOT(name, code) [(code) - METRICS_ERROR_MIN] = MERR_##name,
const uint8_t metrics_error_slot[METRICS_ERROR_SLOTS] = {METRICS_ERRORS(METRICS_ERR_SLOT)};
#define METRICS_ERR_NAME(name, code) [MERR_##name] = #name,
static const char *const error_names[MERR_COUNT] = {[MERR_OTHER] = "OTHER", METRICS_ERRORS(METRICS_ERR_NAME)};

/* Bucket bounds: latencies from 0.5 ms to 10 s (in µs), sizes from 1 KiB to 64 MiB. */
static const uint64_t seconds_bounds[] = {500,    1000,   2500,    5000,    10000,   25000,   50000,
                                          100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
static const uint64_t bytes_bounds[] = {1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10,
                                        1 << 20, 4 << 20, 16 << 20, 64 << 20};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))
_Static_assert(NB(seconds_bounds) <= METRICS_MAX_BUCKETS && NB(bytes_bounds) <= METRICS_MAX_BUCKETS, "buckets");

#define SECONDS_BOUNDS seconds_bounds
#define BYTES_BOUNDS bytes_bounds
#define SECONDS_SCALE 1e-6
#define BYTES_SCALE 1.0
#define H_BOUNDS(id, name, help, unit) [id] = unit##_BOUNDS,
#define H_NBOUNDS(id, name, help, unit) [id] = NB(unit##_BOUNDS),
const uint64_t *const metrics_hist_bounds[H_COUNT] = {METRICS_HISTOGRAMS(H_BOUNDS)};
const int metrics_hist_nbounds[H_COUNT] = {METRICS_HISTOGRAMS(H_NBOUNDS)};

struct series {
    const char *name, *help;
    double scale; /* histograms: unit -> exposition unit */
};
#define SERIES(id, n, h, ...) [id] = {n, h, 1.0},
#define H_SERIES(id, n, h, unit) [id] = {n, h, unit##_SCALE},
static const struct series counters[M_COUNTER_COUNT] = {METRICS_COUNTERS(SERIES)};
static const struct series gauges[M_GAUGE_COUNT] = {METRICS_GAUGES(SERIES)};
static const struct series hists[H_COUNT] = {METRICS_HISTOGRAMS(H_SERIES)};

int metrics_init(int nworkers)
{
    size_t len = (size_t)nworkers * sizeof(struct metrics_block);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    blocks = p; /* zeroed by the kernel */
    nblocks = nworkers;
    return 0;
}

void metrics_attach_worker(int id)
{
    if (blocks && id >= 0 && id < nblocks)
        metrics_self = &blocks[id];
}

void metrics_worker_started(int id)
{
    if (blocks && id >= 0 && id < nblocks)
        __atomic_fetch_add(&blocks[id].counters[M_WORKER_STARTS], 1, __ATOMIC_RELAXED);
}

void metrics_worker_exited(int id)
{
    if (blocks && id >= 0 && id < nblocks)
        for (int g = 0; g < M_GAUGE_COUNT; g++)
            __atomic_store_n(&blocks[id].gauges[g], 0, __ATOMIC_RELAXED);
}

static void printf_buf(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_buf(struct buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
    printf_buf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct buf *out, const char *name, const char *labels, uint64_t value)
{
    if (labels && labels[0])
        printf_buf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        printf_buf(out, "%s %llu\n", name, (unsigned long long)value);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void render_hist(struct buf *out, enum metric_hist h)
{
    const struct series *s = &hists[h];
    metrics_family(out, s->name, "histogram", s->help);
    for (int w = 0; w < nblocks; w++) {
        const uint64_t *v = blocks[w].hist[h];
        uint64_t cum = 0;
        for (int i = 0; i <= metrics_hist_nbounds[h]; i++) {
            cum += load(&v[i]);
            if (i < metrics_hist_nbounds[h])
                printf_buf(out, "%s_bucket{worker=\"%d\",le=\"%.10g\"} %llu\n", s->name, w,
                           (double)metrics_hist_bounds[h][i] * s->scale, (unsigned long long)cum);
            else
                printf_buf(out, "%s_bucket{worker=\"%d\",le=\"+Inf\"} %llu\n", s->name, w, (unsigned long long)cum);
        }
        printf_buf(out, "%s_sum{worker=\"%d\"} %.9g\n", s->name, w, (double)load(&v[METRICS_MAX_BUCKETS + 1]) * s->scale);
        printf_buf(out, "%s_count{worker=\"%d\"} %llu\n", s->name, w, (unsigned long long)cum);
    }
}

/* requests/bytes by API and error: every served API with error NONE (so the series exist from the
 * start), other errors once they happened. */
static void render_requests(struct buf *out, const int16_t *keys, int napi, int what, const char *name,
                            const char *help)
{
    metrics_family(out, name, "counter", help);
    for (int w = 0; w < nblocks; w++)
        for (int a = 0; a < napi; a++) {
            if (keys[a] < 0 || keys[a] >= METRICS_MAX_API_KEYS)
                continue;
            const struct kapi *api = kapi_find(keys[a]);
            for (int e = 0; e < MERR_COUNT; e++) {
                uint64_t v = load(&blocks[w].requests[keys[a]][e][what]);
                if (v == 0 && e != MERR_NONE)
                    continue;
                char labels[160];
                snprintf(labels, sizeof(labels), "worker=\"%d\",api=\"%s\",error=\"%s\"", w,
                         api ? api->name : "unknown", error_names[e]);
                metrics_sample(out, name, labels, v);
            }
        }
}

/* Only the combinations that were denied at least once, so the family stays small. */
static void render_authz_denied(struct buf *out)
{
    const char *name = "sluice_authorization_denied_total";
    metrics_family(out, name, "counter", "Operations the authorizer refused, by ACL operation and resource type");
    for (int w = 0; w < nblocks; w++)
        for (int op = 0; op < METRICS_ACL_OPS; op++)
            for (int rt = 0; rt < METRICS_ACL_RESOURCES; rt++) {
                uint64_t v = load(&blocks[w].authz_denied[op][rt]);
                if (v == 0)
                    continue;
                char labels[128];
                snprintf(labels, sizeof(labels), "worker=\"%d\",operation=\"%s\",resource_type=\"%s\"", w,
                         acl_operation_name(op), acl_resource_type_name(rt));
                metrics_sample(out, name, labels, v);
            }
}

void metrics_render(struct buf *out, const int16_t *api_keys, int napi)
{
    render_authz_denied(out);
    render_requests(out, api_keys, napi, MREQ_REQUESTS, "sluice_requests_total",
                    "Kafka requests answered, by API and the first error code in the response");
    render_requests(out, api_keys, napi, MREQ_BYTES_IN, "sluice_request_bytes_total",
                    "Bytes of Kafka request frames, by API and error code");
    render_requests(out, api_keys, napi, MREQ_BYTES_OUT, "sluice_response_bytes_total",
                    "Bytes of Kafka response frames, by API and error code");
    char labels[32];
    for (int c = 0; c < M_COUNTER_COUNT; c++) {
        metrics_family(out, counters[c].name, "counter", counters[c].help);
        for (int w = 0; w < nblocks; w++) {
            snprintf(labels, sizeof(labels), "worker=\"%d\"", w);
            metrics_sample(out, counters[c].name, labels, load(&blocks[w].counters[c]));
        }
    }
    for (int g = 0; g < M_GAUGE_COUNT; g++) {
        metrics_family(out, gauges[g].name, "gauge", gauges[g].help);
        for (int w = 0; w < nblocks; w++) {
            int64_t v = __atomic_load_n(&blocks[w].gauges[g], __ATOMIC_RELAXED);
            printf_buf(out, "%s{worker=\"%d\"} %lld\n", gauges[g].name, w, (long long)v);
        }
    }
    for (int h = 0; h < H_COUNT; h++)
        render_hist(out, (enum metric_hist)h);
}
