/* The subcommands' flag tables (tools/cli/cli_opts.c): every kind, its bounds, "--name=value",
 * and the one error line each mistake prints. */
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tools/cli/cli_opts.h"

struct vals {
    int port;
    long long records;
    double rate;
    const char *topic, *acks;
    bool json;
};

static const char *const acks_choices[] = {"0", "1", "all", NULL};

/* Runs cli_parse over the words of args with stderr captured into err; returns its status. */
static int parse(struct vals *v, char *args, char *err, size_t errlen)
{
    *v = (struct vals){.port = 9092, .records = -1, .topic = "t", .acks = "all"};
    const struct cli_opt opts[] = {
        {"port", CLI_INT, &v->port, 1, 65535, "1..65535", NULL, NULL},
        {"records", CLI_INT64, &v->records, 1, 1e12, ">= 1", NULL, NULL},
        {"rate", CLI_DOUBLE, &v->rate, 0.001, 1e9, NULL, NULL, NULL},
        {"topic", CLI_STRING, &v->topic, 1, 5, "a-z", "abcdefghijklmnopqrstuvwxyz", NULL},
        {"acks", CLI_ENUM, &v->acks, 0, 0, "0, 1 or all", NULL, acks_choices},
        {"json", CLI_FLAG, &v->json, 0, 0, NULL, NULL, NULL},
        {NULL, CLI_FLAG, NULL, 0, 0, NULL, NULL, NULL},
    };
    char *argv[16];
    int argc = 0;
    for (char *w = strtok(args, " "); w && argc < 16; w = strtok(NULL, " "))
        argv[argc++] = w;
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int rc = cli_parse("prog", opts, argc, argv, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(err, 1, errlen - 1, tmp);
    err[n] = 0;
    fclose(tmp);
    return rc;
}

TEST(cli_opts_values_and_bounds)
{
    struct vals v;
    char err[512], args[256];
    snprintf(args, sizeof(args), "--port 1 --records=1000000000000 --rate 0.5 --topic abcde --acks 1 --json");
    CHECK_EQ(parse(&v, args, err, sizeof(err)), 0);
    CHECK_EQ(err[0], 0);
    CHECK_EQ(v.port, 1);
    CHECK_EQ(v.records, 1000000000000LL);
    CHECK(v.rate == 0.5);
    CHECK(!strcmp(v.topic, "abcde") && !strcmp(v.acks, "1") && v.json);
    snprintf(args, sizeof(args), "--port=65535");
    CHECK_EQ(parse(&v, args, err, sizeof(err)), 0);
    CHECK_EQ(v.port, 65535);
    CHECK(!v.json && v.records == -1 && !strcmp(v.acks, "all")); /* untouched: the defaults */
    CHECK_EQ(parse(&v, strcpy(args, ""), err, sizeof(err)), 0);
}

TEST(cli_opts_errors_one_line_each)
{
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"--port 0", "prog: bad --port '0' (1..65535) (try: prog --help)\n"},
        {"--port 65536", "prog: bad --port '65536' (1..65535) (try: prog --help)\n"},
        {"--port 9x", "prog: bad --port '9x' (1..65535) (try: prog --help)\n"},
        {"--port=", "prog: bad --port '' (1..65535) (try: prog --help)\n"},
        {"--records 0", "prog: bad --records '0' (>= 1) (try: prog --help)\n"},
        {"--records 99999999999999999999", "prog: bad --records '99999999999999999999' (>= 1) (try: prog --help)\n"},
        {"--rate nan", "prog: bad --rate 'nan' (try: prog --help)\n"},
        {"--rate 0", "prog: bad --rate '0' (try: prog --help)\n"},
        {"--topic abcdef", "prog: bad --topic 'abcdef' (a-z) (try: prog --help)\n"},
        {"--topic a.b", "prog: bad --topic 'a.b' (a-z) (try: prog --help)\n"},
        {"--acks 2", "prog: bad --acks '2' (0, 1 or all) (try: prog --help)\n"},
        {"--acks", "prog: --acks needs a value (try: prog --help)\n"},
        {"--json=1", "prog: --json takes no value (try: prog --help)\n"},
        {"--jso", "prog: unknown flag '--jso' (try: prog --help)\n"},
        {"--", "prog: unknown flag '--' (try: prog --help)\n"},
        {"-j", "prog: unknown flag '-j' (try: prog --help)\n"},
        {"--json extra", "prog: unexpected argument 'extra' (try: prog --help)\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vals v;
        char err[512], args[256];
        snprintf(args, sizeof(args), "%s", cases[i].args);
        int rc = parse(&v, args, err, sizeof(err));
        CHECK_EQ(rc, 2);
        if (strcmp(err, cases[i].want)) {
            fprintf(stderr, "  %s: got %s", cases[i].args, err);
            CHECK(!"the expected error line");
        }
    }
}
