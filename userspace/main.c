/* sluice: one binary; the first argument picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "config.h"
#include "server/server.h"
#include "util/log.h"

#define SLUICE_VERSION "0.1.0"

static int cmd_agent(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help("sluice");
            return 0;
        }
    struct config cfg;
    if (config_load(&cfg, argc, argv) != 0)
        return 2;
    log_info("sluice %s agent starting", SLUICE_VERSION);
    config_log(&cfg);

    struct server srv;
    struct broker *b = broker_create(&cfg, &srv);
    if (!b)
        return 1;
    if (server_init(&srv, &cfg, b) != 0) {
        broker_destroy(b);
        return 1;
    }
    log_info("listening for Kafka clients on %s:%d, advertising %s:%d", cfg.bind_host, cfg.kafka_port,
             cfg.advertise_host, cfg.kafka_port);
    int rc = server_run(&srv);
    broker_destroy(b);
    server_destroy(&srv);
    return rc ? 1 : 0;
}

static void usage(void)
{
    printf("sluice %s — a Kafka-compatible, diskless streaming agent\n\n"
           "usage: sluice <command> [flags]\n\n"
           "commands:\n"
           "  agent      run the agent (sluice agent --help lists its settings)\n"
           "  version    print the version\n",
           SLUICE_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "agent"))
        return cmd_agent(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage();
        return 0;
    }
    fprintf(stderr, "sluice: unknown command '%s' (try: sluice help)\n", cmd);
    return 2;
}
