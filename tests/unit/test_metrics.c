/* The metrics blocks: shared with a forked child, error-code slots, histogram buckets, and the
 * exposition rendered from them; and the first error code of a response. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "messages.h"
#include "metrics/metrics.h"
#include "protocol/codec.h"

static int has_line(const struct buf *b, const char *line)
{
    size_t n = strlen(line);
    const char *p = (const char *)b->data, *end = p + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len == n && !memcmp(p, line, n))
            return 1;
        p += len + 1;
    }
    return 0;
}

TEST(metrics_blocks_shared_with_forked_worker_and_rendered)
{
    struct metrics_block *saved = metrics_self;
    CHECK_EQ(metrics_init(2), 0);
    pid_t pid = fork();
    if (pid == 0) { /* the "worker": counts into block 1 only */
        metrics_attach_worker(1);
        metrics_request(0, 0, 100, 40);
        metrics_request(0, 0, 50, 20);
        metrics_request(0, 3, 10, 5);      /* UNKNOWN_TOPIC_OR_PARTITION */
        metrics_request(0, 999, 1, 1);     /* not in the set: OTHER */
        metrics_request(200, 0, 1, 1);     /* an API key past the table: ignored */
        metrics_add(M_PRODUCE_RECORDS, 7);
        metrics_set(M_CONNECTIONS, 3);
        metrics_observe(H_PRODUCE_LATENCY, 500);  /* on the 0.5 ms bound: that bucket */
        metrics_observe(H_PRODUCE_LATENCY, 501);  /* just above: the next */
        metrics_observe(H_PRODUCE_LATENCY, 60000000); /* past 10 s: +Inf only */
        metrics_observe(H_FLUSH_SIZE, 64 << 20);
        _exit(0);
    }
    CHECK(pid > 0);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    metrics_worker_started(1);
    struct buf out;
    buf_init(&out);
    int16_t keys[] = {0, 1};
    metrics_render(&out, keys, 2);
    CHECK(has_line(&out, "# TYPE sluice_requests_total counter"));
    CHECK(has_line(&out, "sluice_requests_total{worker=\"1\",api=\"Produce\",error=\"NONE\"} 2"));
    CHECK(has_line(&out, "sluice_request_bytes_total{worker=\"1\",api=\"Produce\",error=\"NONE\"} 150"));
    CHECK(has_line(&out, "sluice_response_bytes_total{worker=\"1\",api=\"Produce\",error=\"NONE\"} 60"));
    CHECK(has_line(&out, "sluice_requests_total{worker=\"1\",api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 1"));
    CHECK(has_line(&out, "sluice_requests_total{worker=\"1\",api=\"Produce\",error=\"OTHER\"} 1"));
    /* error NONE is always there, other errors only once they happened */
    CHECK(has_line(&out, "sluice_requests_total{worker=\"0\",api=\"Fetch\",error=\"NONE\"} 0"));
    CHECK(!strstr((const char *)out.data, "worker=\"0\",api=\"Fetch\",error=\"OTHER\""));
    CHECK(has_line(&out, "sluice_produce_records_total{worker=\"1\"} 7"));
    CHECK(has_line(&out, "sluice_produce_records_total{worker=\"0\"} 0"));
    CHECK(has_line(&out, "sluice_worker_starts_total{worker=\"1\"} 1"));
    CHECK(has_line(&out, "sluice_connections{worker=\"1\"} 3"));
    CHECK(has_line(&out, "# TYPE sluice_produce_latency_seconds histogram"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_bucket{worker=\"1\",le=\"0.0005\"} 1"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_bucket{worker=\"1\",le=\"0.001\"} 2"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_bucket{worker=\"1\",le=\"10\"} 2"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_bucket{worker=\"1\",le=\"+Inf\"} 3"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_count{worker=\"1\"} 3"));
    CHECK(has_line(&out, "sluice_produce_latency_seconds_sum{worker=\"1\"} 60.001001"));
    CHECK(has_line(&out, "sluice_flush_size_bytes_bucket{worker=\"1\",le=\"67108864\"} 1"));

    /* A worker that exits loses its gauges, not its counters. */
    metrics_worker_exited(1);
    buf_reset(&out);
    metrics_render(&out, keys, 2);
    CHECK(has_line(&out, "sluice_connections{worker=\"1\"} 0"));
    CHECK(has_line(&out, "sluice_produce_records_total{worker=\"1\"} 7"));
    buf_free(&out);
    metrics_self = saved;
}

TEST(metrics_first_error_of_a_response)
{
    struct produce_response_topic_partition parts[2] = {{.index = 0}, {.index = 1, .error_code = 3}};
    struct produce_response_topic topic = {.partition_responses = parts, .partition_responses_count = 2};
    struct produce_response resp = {.responses = &topic, .responses_count = 1};
    CHECK_EQ(kfirst_error(&produce_response_desc, 7, &resp), 3);
    parts[1].error_code = 0;
    CHECK_EQ(kfirst_error(&produce_response_desc, 7, &resp), 0);
    resp.responses_count = 0;
    parts[0].error_code = 2;
    CHECK_EQ(kfirst_error(&produce_response_desc, 7, &resp), 0); /* only what the response holds */
}
