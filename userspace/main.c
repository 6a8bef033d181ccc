/* sluice: one binary; the first argument picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "config.h"
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

    return agent_run(&cfg);
}

int cmd_steer(int argc, char **argv); /* tools/cli/steer_cmd.c */
int cmd_bench(int argc, char **argv); /* tools/cli/bench_cmd.c */
int cmd_diagnose(int argc, char **argv); /* tools/cli/diagnose_cmd.c */
int cmd_user(int argc, char **argv); /* tools/cli/user_cmd.c */

static void usage(void)
{
    printf("sluice %s — a Kafka-compatible, diskless streaming agent\n\n"
           "usage: sluice <command> [flags]\n\n"
           "commands:\n"
           "  agent      run the agent (sluice agent --help lists its settings)\n"
           "  bench      produce|consume: a load generator (sluice bench --help)\n"
           "  diagnose-connection  bootstrap, Metadata and every advertised broker, timed and explained\n"
           "  steer      status|remove: the kernel's connection steering (sluice steer --help)\n"
           "  user       add|delete|list: SASL users in the metadata store (sluice user --help)\n"
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
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "diagnose-connection"))
        return cmd_diagnose(argc - 2, argv + 2);
    if (!strcmp(cmd, "steer"))
        return cmd_steer(argc - 2, argv + 2);
    if (!strcmp(cmd, "user"))
        return cmd_user(argc - 2, argv + 2);
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
