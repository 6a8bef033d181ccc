/* The baseline for make bench: librdkafka's in-memory mock cluster (rdkafka_mock.h), the fastest
 * a Kafka client can talk to on this machine. Prints its bootstrap servers on one line, creates the
 * topics (--topic may repeat; each gets the --partitions given before it), then serves until
 * SIGTERM/SIGINT. usage: mock_broker [--brokers N] [--partitions N] [--topic T]... */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 8, ntopics = 0;
    const char *topics[64];
    int topic_parts[64];
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--brokers"))
            brokers = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--partitions"))
            partitions = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--topic") && ntopics < 64) {
            topic_parts[ntopics] = partitions;
            topics[ntopics++] = argv[++i];
        } else {
            fprintf(stderr, "usage: mock_broker [--brokers N] [--partitions N] [--topic T]...\n");
            return 2;
        }
        if (brokers < 1 || brokers > 64 || partitions < 1 || partitions > 10000) {
            fprintf(stderr, "mock_broker: --brokers 1..64, --partitions 1..10000\n");
            return 2;
        }
    }
    if (!ntopics) {
        topic_parts[0] = partitions;
        topics[ntopics++] = "sluice-bench";
    }
    /* The mock cluster needs a client instance to live in; it does no other work. */
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "mock_broker: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "mock_broker: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < ntopics; i++)
        if (rd_kafka_mock_topic_create(mc, topics[i], topic_parts[i], 1)) {
            fprintf(stderr, "mock_broker: cannot create topic %s\n", topics[i]);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (!stop)
        pause();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
