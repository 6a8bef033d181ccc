/* `sluice bench produce|consume`: a load generator on librdkafka, so the client is not the
 * bottleneck. produce: --clients producers (one thread each) send --record-size records at --rate
 * (total, records/s) until --records or --duration; latency runs from send to delivery report.
 * consume: --clients consumers split the topic's partitions and read from the beginning;
 * latency is end to end, now minus each record's (producer's) timestamp. A progress line every
 * second on stderr; a summary (or one JSON object with --json) on stdout. Always bounded: a run
 * stops at --duration (default 60 s when no --records) or --timeout (default 300 s). */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli/cli_opts.h"
#include "tools/cli/latency_hist.h"

#define MAX_CLIENTS 64
#define MAX_RECORD_SIZE (16u << 20)
#define TOPIC_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

struct bench_opts {
    bool produce, json;
    const char *host, *topic, *acks, *compression;
    const char *security_protocol, *tls_ca; /* librdkafka's security.protocol, ssl.ca.location */
    int port, partitions, clients, linger_ms, batch_size;
    int record_size;
    double rate, duration, timeout;
    long long records; /* -1: not given */
};

struct client {
    struct bench *b;
    int id;
    pthread_t thread;
    rd_kafka_t *rk;
    uint64_t sent, done, failed, bytes; /* atomics: the progress line reads them */
    struct latency_hist hist;
    char err[256];
};

struct bench {
    struct bench_opts o;
    char bootstrap[300];
    char *payload;
    int topic_partitions;
    uint64_t start_ns;
    volatile sig_atomic_t stop;    /* time's up, signal, or enough records */
    uint64_t claimed;              /* consume: records counted so far (atomic) */
    uint64_t first_ns, last_ns;    /* consume: first and last record counted (atomic) */
    int running;                   /* client threads not finished yet (atomic) */
    struct client clients[MAX_CLIENTS];
};

static struct bench *the_bench;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    (void)sig;
    if (the_bench)
        the_bench->stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice bench produce|consume [flags]\n"
            "  --bootstrap-host H     agent address (default 127.0.0.1)\n"
            "  --bootstrap-port P     (default 9092)\n"
            "  --topic T              (default sluice-bench; created if missing)\n"
            "  --partitions N         partitions when the topic is created (default 8)\n"
            "  --clients N            producers or consumers, one thread each (default 1, max 64)\n"
            "  --record-size BYTES    produce: value size (default 1024)\n"
            "  --rate R               produce: records/s over all clients (default unlimited)\n"
            "  --records N            stop after N records (consume: N read)\n"
            "  --duration SECONDS     stop after this long (default 60 without --records)\n"
            "  --timeout SECONDS      hard limit of a run with --records (default 300)\n"
            "  --acks 0|1|all         (default all)\n"
            "  --compression none|gzip|snappy|lz4|zstd (default none)\n"
            "  --linger-ms MS         (default 5)\n"
            "  --batch-size BYTES     (default 1000000)\n"
            "  --security-protocol plaintext|ssl (default plaintext)\n"
            "  --tls-ca FILE          PEM CA the agent's certificate is checked against (ssl)\n"
            "  --json                 print the summary as one JSON object\n"
            "consume without --records or --duration reads what the topic holds when it starts.\n");
}

#define PROG "sluice bench"

static int parse_opts(struct bench_opts *o, int argc, char **argv)
{
    static const char *const acks[] = {"0", "1", "all", "-1", NULL};
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
    static const char *const protocols[] = {"plaintext", "ssl", NULL};
    *o = (struct bench_opts){.host = "127.0.0.1", .port = 9092, .topic = "sluice-bench", .partitions = 8,
                             .clients = 1, .record_size = 1024, .records = -1, .acks = "all",
                             .compression = "none", .security_protocol = "plaintext", .linger_ms = 5, .batch_size = 1000000, .timeout = 300};
    const struct cli_opt opts[] = {
        {"bootstrap-host", CLI_STRING, &o->host, 1, 253, NULL, NULL, NULL},
        {"bootstrap-port", CLI_INT, &o->port, 1, 65535, "1..65535", NULL, NULL},
        /* Kafka's legal topic names, which also keeps the JSON output plain */
        {"topic", CLI_STRING, &o->topic, 1, 249, "letters, digits, '.', '_', '-'", TOPIC_CHARS, NULL},
        {"partitions", CLI_INT, &o->partitions, 1, 10000, "1..10000", NULL, NULL},
        {"clients", CLI_INT, &o->clients, 1, MAX_CLIENTS, "1..64", NULL, NULL},
        {"record-size", CLI_INT, &o->record_size, 0, MAX_RECORD_SIZE, "0..16777216", NULL, NULL},
        {"rate", CLI_DOUBLE, &o->rate, 0.001, 1e9, "records/s > 0", NULL, NULL},
        {"records", CLI_INT64, &o->records, 1, 1e12, ">= 1", NULL, NULL},
        {"duration", CLI_DOUBLE, &o->duration, 0.001, 86400, "seconds, > 0", NULL, NULL},
        {"timeout", CLI_DOUBLE, &o->timeout, 0.001, 86400, "seconds, > 0", NULL, NULL},
        {"acks", CLI_ENUM, &o->acks, 0, 0, "0, 1 or all", NULL, acks},
        {"compression", CLI_ENUM, &o->compression, 0, 0, "none, gzip, snappy, lz4 or zstd", NULL, codecs},
        {"linger-ms", CLI_INT, &o->linger_ms, 0, 900000, "0..900000", NULL, NULL},
        {"batch-size", CLI_INT, &o->batch_size, 1, 2147483647, "1..2147483647", NULL, NULL},
        {"security-protocol", CLI_ENUM, &o->security_protocol, 0, 0, "plaintext or ssl", NULL, protocols},
        {"tls-ca", CLI_STRING, &o->tls_ca, 1, 4096, NULL, NULL, NULL},
        {"json", CLI_FLAG, &o->json, 0, 0, NULL, NULL, NULL},
        {NULL, CLI_FLAG, NULL, 0, 0, NULL, NULL, NULL},
    };
    if (argc < 1)
        return cli_error(PROG, "missing produce|consume");
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        usage(stdout);
        return 1;
    }
    if (strcmp(argv[0], "produce") && strcmp(argv[0], "consume"))
        return cli_error(PROG, "unknown mode '%s': want produce or consume", argv[0]);
    o->produce = !strcmp(argv[0], "produce");
    int rc = cli_parse(PROG, opts, argc - 1, argv + 1, usage); /* argv[0] is the mode */
    if (rc)
        return rc;
    if (o->produce && o->records < 0 && o->duration <= 0)
        o->duration = 60;
    return 0;
}

static rd_kafka_conf_t *base_conf(struct bench *b, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", b->bootstrap, err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", "sluice-bench", err, errlen) != RD_KAFKA_CONF_OK ||
        /* TCP_NODELAY, as Kafka's own clients: Nagle would hold small requests for an ACK */
        rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "security.protocol", b->o.security_protocol, err, errlen) != RD_KAFKA_CONF_OK ||
        (b->o.tls_ca && rd_kafka_conf_set(conf, "ssl.ca.location", b->o.tls_ca, err, errlen) != RD_KAFKA_CONF_OK)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t errlen)
{
    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, errlen) != RD_KAFKA_CONF_OK)
            return -1;
    return 0;
}

/* The topic's partition count from a Metadata of every topic (asking for the topic by name could
 * auto-create it with the cluster's default partition count): > 0, 0 when absent, -1 on error. */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic) && !md->topics[i].err)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

static void create_topic(struct bench *b, rd_kafka_t *rk)
{
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(b->o.topic, b->o.partitions, 1, err, sizeof(err));
    if (!nt) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 5000, err, sizeof(err));
    rd_kafka_AdminOptions_set_request_timeout(ao, 10000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (!ev) {
        fprintf(stderr, "sluice bench: no answer to CreateTopics from %s\n", b->bootstrap);
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "sluice bench: CreateTopics: %s\n", rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                fprintf(stderr, "sluice bench: cannot create topic %s: %s\n", b->o.topic, rd_kafka_err2str(e));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

/* Creates the topic unless it exists; then learns its partition count. */
static int prepare_topic(struct bench *b)
{
    char err[512];
    rd_kafka_conf_t *conf = base_conf(b, err, sizeof(err));
    if (!conf) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    int n = topic_partitions(rk, b->o.topic);
    if (n == 0) {
        create_topic(b, rk);
        for (int tries = 0; tries < 50 && n <= 0; tries++) { /* until the metadata shows it */
            n = topic_partitions(rk, b->o.topic);
            if (n <= 0)
                usleep(100000);
        }
    }
    rd_kafka_destroy(rk);
    if (n < 0)
        fprintf(stderr, "sluice bench: no metadata from %s\n", b->bootstrap);
    else if (n == 0)
        fprintf(stderr, "sluice bench: topic %s does not exist and was not created\n", b->o.topic);
    if (n <= 0)
        return -1;
    b->topic_partitions = n;
    return 0;
}

/* consume without --records or --duration: read what the topic holds now, the sum over its
 * partitions of high minus low watermark. */
static int count_to_end(struct bench *b)
{
    char err[512];
    rd_kafka_conf_t *conf = base_conf(b, err, sizeof(err));
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    long long total = 0;
    for (int p = 0; p < b->topic_partitions; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, b->o.topic, p, &lo, &hi, 10000);
        if (e) {
            fprintf(stderr, "sluice bench: watermarks of %s/%d: %s\n", b->o.topic, p, rd_kafka_err2str(e));
            rd_kafka_destroy(rk);
            return -1;
        }
        total += hi > lo ? hi - lo : 0;
    }
    rd_kafka_destroy(rk);
    b->o.records = total;
    return 0;
}

/* ---- produce ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct client *c = opaque;
    if (m->err) {
        __atomic_fetch_add(&c->failed, 1, __ATOMIC_RELAXED);
        if (!c->err[0])
            snprintf(c->err, sizeof(c->err), "%s", rd_kafka_err2str(m->err));
    } else {
        uint64_t sent_at = (uint64_t)(uintptr_t)m->_private;
        hist_record(&c->hist, (now_ns() - sent_at) / 1000);
        __atomic_fetch_add(&c->bytes, m->len, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&c->done, 1, __ATOMIC_RELAXED);
}

/* How many records client id sends in total (-1: until time's up): --records split evenly. */
static long long client_quota(const struct bench *b, int id)
{
    if (b->o.records < 0)
        return -1;
    long long q = b->o.records / b->o.clients;
    return q + (id < b->o.records % b->o.clients ? 1 : 0);
}

static void *produce_thread(void *arg)
{
    struct client *c = arg;
    struct bench *b = c->b;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, b->o.topic, NULL);
    long long quota = client_quota(b, c->id);
    double rate = b->o.rate > 0 ? b->o.rate / b->o.clients : 0;
    uint64_t t0 = now_ns();
    uint64_t sent = 0;
    while (!b->stop && (quota < 0 || sent < (uint64_t)quota)) {
        if (rate > 0) { /* paced: the n-th record is due at t0 + n/rate */
            uint64_t due = t0 + (uint64_t)((double)sent * 1e9 / rate);
            uint64_t now = now_ns();
            if (now < due) {
                uint64_t wait_us = (due - now) / 1000;
                if (wait_us > 1000) {
                    rd_kafka_poll(c->rk, 1);
                    continue;
                }
                /* Delivery reports are timed when served: serve them while waiting. */
                rd_kafka_poll(c->rk, 0);
                now = now_ns();
                if (now < due)
                    usleep((useconds_t)((due - now) / 1000));
            }
        }
        void *stamp = (void *)(uintptr_t)now_ns();
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, b->payload, (size_t)b->o.record_size, NULL, 0,
                             stamp) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(c->rk, 1);
                continue;
            }
            snprintf(c->err, sizeof(c->err), "produce: %s", rd_kafka_err2str(e));
            break;
        }
        sent++;
        __atomic_store_n(&c->sent, sent, __ATOMIC_RELAXED);
        if ((sent & 255) == 0)
            rd_kafka_poll(c->rk, 0);
    }
    /* Every record sent gets its delivery report (or an error) before the thread ends. */
    uint64_t limit = now_ns() + 60ull * 1000000000ull;
    while (rd_kafka_outq_len(c->rk) > 0 && now_ns() < limit)
        rd_kafka_poll(c->rk, 50);
    rd_kafka_poll(c->rk, 0);
    rd_kafka_topic_destroy(rkt);
    __atomic_sub_fetch(&b->running, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int make_producer(struct bench *b, struct client *c)
{
    char err[512], batch[32], linger[32];
    snprintf(batch, sizeof(batch), "%d", b->o.batch_size);
    snprintf(linger, sizeof(linger), "%d", b->o.linger_ms);
    const char *kv[] = {"acks", b->o.acks, "compression.codec", b->o.compression, "linger.ms", linger,
                        "batch.size", batch, "queue.buffering.max.messages", "1000000",
                        "queue.buffering.max.kbytes", "262144", "message.max.bytes", "33554432", NULL};
    rd_kafka_conf_t *conf = base_conf(b, err, sizeof(err));
    if (!conf || set_all(conf, kv, err, sizeof(err))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!c->rk) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- consume ---- */

static void *consume_thread(void *arg)
{
    struct client *c = arg;
    struct bench *b = c->b;
    while (!b->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* nothing: the end is the record count taken from the watermarks at the start */
        } else if (m->err) {
            if (!c->err[0])
                snprintf(c->err, sizeof(c->err), "%s", rd_kafka_message_errstr(m));
            __atomic_fetch_add(&c->failed, 1, __ATOMIC_RELAXED);
        } else if (b->o.records < 0 ||
                   __atomic_fetch_add(&b->claimed, 1, __ATOMIC_RELAXED) < (uint64_t)b->o.records) {
            rd_kafka_timestamp_type_t tt;
            int64_t ts = rd_kafka_message_timestamp(m, &tt);
            uint64_t now = wall_ms();
            hist_record(&c->hist, ts > 0 && (uint64_t)ts < now ? (now - (uint64_t)ts) * 1000 : 0);
            __atomic_fetch_add(&c->bytes, m->len, __ATOMIC_RELAXED);
            __atomic_fetch_add(&c->done, 1, __ATOMIC_RELAXED);
            uint64_t zero = 0, t = now_ns();
            __atomic_compare_exchange_n(&b->first_ns, &zero, t, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
            __atomic_store_n(&b->last_ns, t, __ATOMIC_RELAXED);
            if (b->o.records >= 0 && __atomic_load_n(&b->claimed, __ATOMIC_RELAXED) >= (uint64_t)b->o.records)
                b->stop = 1;
        }
        rd_kafka_message_destroy(m);
    }
    __atomic_sub_fetch(&b->running, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int make_consumer(struct bench *b, struct client *c)
{
    char err[512];
    const char *kv[] = {"group.id", "sluice-bench", "enable.auto.commit", "false", "enable.partition.eof", "true",
                        "auto.offset.reset", "earliest", "fetch.max.bytes", "52428800",
                        "max.partition.fetch.bytes", "8388608", NULL};
    rd_kafka_conf_t *conf = base_conf(b, err, sizeof(err));
    if (!conf || set_all(conf, kv, err, sizeof(err))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!c->rk) {
        fprintf(stderr, "sluice bench: %s\n", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(c->rk);
    /* Partitions dealt round-robin, read from the beginning; no group membership, no commits. */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(b->topic_partitions);
    for (int p = c->id; p < b->topic_partitions; p += b->o.clients)
        rd_kafka_topic_partition_list_add(parts, b->o.topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        fprintf(stderr, "sluice bench: assign: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* ---- reporting ---- */

struct totals {
    uint64_t sent, done, failed, bytes;
    struct latency_hist hist;
};

static void sum_clients(struct bench *b, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    hist_init(&t->hist);
    for (int i = 0; i < b->o.clients; i++) {
        struct client *c = &b->clients[i];
        t->sent += __atomic_load_n(&c->sent, __ATOMIC_RELAXED);
        t->done += __atomic_load_n(&c->done, __ATOMIC_RELAXED);
        t->failed += __atomic_load_n(&c->failed, __ATOMIC_RELAXED);
        t->bytes += __atomic_load_n(&c->bytes, __ATOMIC_RELAXED);
        hist_merge(&t->hist, &c->hist);
    }
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void print_summary(struct bench *b, struct totals *t, double secs, bool timed_out)
{
    const struct latency_hist *h = &t->hist;
    uint64_t records = t->done - t->failed;
    double rps = secs > 0 ? (double)records / secs : 0, mbps = secs > 0 ? (double)t->bytes / secs / 1e6 : 0;
    const char *first_err = "";
    for (int i = 0; i < b->o.clients; i++)
        if (b->clients[i].err[0]) {
            first_err = b->clients[i].err;
            break;
        }
    if (b->o.json) {
        printf("{\"mode\":\"%s\",\"topic\":\"%s\",\"partitions\":%d,\"clients\":%d,\"record_size\":%d,"
               "\"acks\":\"%s\",\"compression\":\"%s\",\"records\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_sec\":%.1f,\"mb_per_sec\":%.3f,"
               "\"timed_out\":%s,\"latency_ms\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
               "\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f}}\n",
               b->o.produce ? "produce" : "consume", b->o.topic, b->topic_partitions, b->o.clients,
               b->o.produce ? b->o.record_size : records ? (int)(t->bytes / records) : 0, b->o.acks, b->o.compression, records, t->failed, t->bytes, secs, rps, mbps,
               timed_out ? "true" : "false", hist_count(h) ? ms(h->min) : 0.0, hist_mean(h) / 1000.0,
               ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)),
               ms(hist_percentile(h, 99.9)), ms(h->max));
    } else {
        printf("%s: %" PRIu64 " records (%" PRIu64 " errors), %" PRIu64 " bytes in %.2f s: %.0f records/s, "
               "%.2f MB/s%s\n",
               b->o.produce ? "produce" : "consume", records, t->failed, t->bytes, secs, rps, mbps,
               timed_out ? " (stopped by --timeout)" : "");
        printf("%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               b->o.produce ? "send-to-ack" : "end-to-end", ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)),
               ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)), ms(h->max));
    }
    if (first_err[0])
        fprintf(stderr, "sluice bench: first error: %s\n", first_err);
}

int cmd_bench(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));
    if (!b)
        return 1;
    int rc = parse_opts(&b->o, argc, argv);
    if (rc) {
        free(b);
        return rc == 1 ? 0 : rc;
    }
    snprintf(b->bootstrap, sizeof(b->bootstrap), "%s:%d", b->o.host, b->o.port);
    if (prepare_topic(b)) {
        free(b);
        return 1;
    }
    if (!b->o.produce && b->o.records < 0 && b->o.duration <= 0 && count_to_end(b)) {
        free(b);
        return 1;
    }
    if (b->o.produce) {
        b->payload = malloc((size_t)b->o.record_size + 1);
        /* Printable, varied bytes: compressible about as much as text, not a run of zeros. */
        uint32_t x = 2463534242u;
        for (long i = 0; i < b->o.record_size; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            b->payload[i] = (char)('a' + x % 26);
        }
    }
    int started = 0;
    bool timed_out = false;
    struct totals t;
    for (int i = 0; i < b->o.clients; i++) {
        struct client *c = &b->clients[i];
        c->b = b;
        c->id = i;
        hist_init(&c->hist);
        if ((b->o.produce ? make_producer(b, c) : make_consumer(b, c)))
            goto stop;
    }
    the_bench = b;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    b->start_ns = now_ns();
    b->running = b->o.clients;
    for (; started < b->o.clients; started++)
        if (pthread_create(&b->clients[started].thread, NULL, b->o.produce ? produce_thread : consume_thread,
                           &b->clients[started])) {
            b->stop = 1;
            break;
        }

    /* Progress every second until the clients are done or a time bound stops them. */
    double limit = b->o.duration > 0 ? b->o.duration : b->o.timeout;
    uint64_t last_done = 0, last_bytes = 0, last_t = b->start_ns;
    for (;;) {
        usleep(50000);
        uint64_t now = now_ns();
        double el = (double)(now - b->start_ns) / 1e9;
        sum_clients(b, &t);
        bool finished = b->o.records >= 0 && t.done >= (uint64_t)b->o.records;
        if ((!b->o.produce && b->stop) || !__atomic_load_n(&b->running, __ATOMIC_ACQUIRE))
            finished = true; /* every client gave up (an error) or was stopped */
        if (finished)
            break;
        if (el >= limit && !b->stop) {
            b->stop = 1;
            timed_out = b->o.duration <= 0;
        }
        if (b->stop && b->o.produce) {
            /* Producer threads drain their outstanding records themselves; wait for them. */
            break;
        }
        if (now - last_t >= 1000000000ull) {
            double dt = (double)(now - last_t) / 1e9;
            fprintf(stderr, "%6.1f s  %10.0f records/s  %8.2f MB/s  in flight %7" PRIu64 "  p99 %.2f ms  total %" PRIu64 "\n",
                    el, (double)(t.done - last_done) / dt, (double)(t.bytes - last_bytes) / dt / 1e6,
                    b->o.produce ? t.sent - t.done : 0, ms(hist_percentile(&t.hist, 99)), t.done);
            last_done = t.done;
            last_bytes = t.bytes;
            last_t = now;
        }
    }
stop:
    b->stop = 1;
    for (int i = 0; i < started; i++)
        pthread_join(b->clients[i].thread, NULL);
    double secs = b->start_ns ? (double)(now_ns() - b->start_ns) / 1e9 : 0;
    if (!b->o.produce) /* reading rate: first to last record, not connection set-up */
        secs = b->last_ns > b->first_ns ? (double)(b->last_ns - b->first_ns) / 1e9 : 0;
    if (started == b->o.clients) {
        sum_clients(b, &t);
        print_summary(b, &t, secs, timed_out);
        rc = 0;
        if (t.failed || t.done < t.sent)
            rc = 1;
        if (b->o.records >= 0 && t.done - t.failed < (uint64_t)b->o.records)
            rc = 1;
    } else {
        rc = 1;
    }
    for (int i = 0; i < b->o.clients; i++)
        if (b->clients[i].rk) {
            if (!b->o.produce)
                rd_kafka_consumer_close(b->clients[i].rk);
            rd_kafka_destroy(b->clients[i].rk);
        }
    the_bench = NULL;
    free(b->payload);
    free(b);
    return rc;
}
