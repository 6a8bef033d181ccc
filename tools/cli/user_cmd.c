/* sluice user add|delete|list: SASL credentials in the metadata store the agents use (the same
 * --metadata-url flag and SLUICE_METADATA_URL as `sluice agent`). Only salted derived keys are
 * stored, never the password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/sasl_scram.h"
#include "config.h"
#include "storage/metastore.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice user add NAME --mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 --password P "
               "[--iterations N]\n"
               "       sluice user delete NAME [--mechanism M]\n"
               "       sluice user list\n"
               "The metadata store is the agent's: --metadata-url URL or SLUICE_METADATA_URL.\n");
}

/* Takes --mechanism, --password and --iterations out of argv; the rest goes to config_load. */
static int split_flags(int argc, char **argv, const char **mech, const char **password, const char **iterations,
                       char **rest, int *nrest)
{
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char **dest = NULL;
        const char *a = argv[i], *names[3] = {"--mechanism", "--password", "--iterations"};
        const char **dests[3] = {mech, password, iterations};
        for (int k = 0; k < 3 && !dest; k++) {
            size_t n = strlen(names[k]);
            if (!strncmp(a, names[k], n) && (a[n] == 0 || a[n] == '=')) {
                dest = dests[k];
                if (a[n] == '=') {
                    *dest = a + n + 1;
                } else if (i + 1 < argc) {
                    *dest = argv[++i];
                } else {
                    fprintf(stderr, "sluice user: %s needs a value\n", names[k]);
                    return -1;
                }
            }
        }
        if (!dest)
            rest[(*nrest)++] = argv[i];
    }
    return 0;
}

int cmd_user(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *action = argv[0], *name = NULL;
    int first = 1;
    if (strcmp(action, "list") != 0) {
        if (argc < 2 || argv[1][0] == '-') {
            fprintf(stderr, "sluice user %s: which user? (try: sluice user --help)\n", action);
            return 2;
        }
        name = argv[1];
        first = 2;
    }
    const char *mech_s = NULL, *password = NULL, *iter_s = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    if (!rest)
        return 1;
    if (split_flags(argc - first, argv + first, &mech_s, &password, &iter_s, rest, &nrest) != 0) {
        free(rest);
        return 2;
    }
    struct config cfg;
    int rc = config_load(&cfg, nrest, rest);
    free(rest);
    if (rc != 0)
        return 2;
    enum sasl_mech mech = mech_s ? sasl_mech_parse(mech_s, strlen(mech_s)) : SASL_MECH_NONE;
    if (mech_s && mech == SASL_MECH_NONE) {
        fprintf(stderr, "sluice user: unknown mechanism '%s' (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)\n", mech_s);
        return 2;
    }
    if (name && (strlen(name) > SASL_USER_MAX || strpbrk(name, ",="))) {
        /* ',' and '=' would need SCRAM escaping in clients that do not all do it */
        fprintf(stderr, "sluice user: a user name is 1-%d characters without ',' or '='\n", SASL_USER_MAX);
        return 2;
    }
    int iterations = 8192;
    if (iter_s) {
        char *end;
        long v = strtol(iter_s, &end, 10);
        if (*end || v < SASL_MIN_ITERATIONS || v > SASL_MAX_ITERATIONS) {
            fprintf(stderr, "sluice user: --iterations must be %d..%d\n", SASL_MIN_ITERATIONS, SASL_MAX_ITERATIONS);
            return 2;
        }
        iterations = (int)v;
    }
    if (!strcmp(action, "add") && (!mech_s || !password)) {
        fprintf(stderr, "sluice user add: --mechanism and --password are required\n");
        return 2;
    }
    if (strcmp(action, "add") && strcmp(action, "delete") && strcmp(action, "list")) {
        fprintf(stderr, "sluice user: unknown action '%s' (add, delete or list)\n", action);
        return 2;
    }
    char err[512] = "";
    struct metastore *m = metastore_open(cfg.metadata_url, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "sluice user: metadata store %s: %s\n", cfg.metadata_url, err);
        return 1;
    }
    int status = 0;
    if (!strcmp(action, "add")) {
        struct sasl_credential c;
        if (sasl_cred_make(&c, name, mech, password, strlen(password), iterations) != 0 ||
            metastore_cred_put(m, &c) != 0) {
            fprintf(stderr, "sluice user: cannot store the credential of %s\n", name);
            status = 1;
        } else {
            printf("user %s: %s credential stored (%d iterations)\n", name, sasl_mech_name(mech), iterations);
        }
    } else if (!strcmp(action, "delete")) {
        int n = metastore_cred_delete(m, name, mech_s ? sasl_mech_name(mech) : NULL);
        if (n < 0) {
            fprintf(stderr, "sluice user: cannot delete %s\n", name);
            status = 1;
        } else if (n == 0) {
            fprintf(stderr, "sluice user: %s has no such credential\n", name);
            status = 1;
        } else {
            printf("user %s: %d credential%s deleted\n", name, n, n == 1 ? "" : "s");
        }
    } else {
        struct sasl_credential *v = NULL;
        int n = 0;
        if (metastore_cred_list(m, NULL, NULL, &v, &n) != 0) {
            fprintf(stderr, "sluice user: cannot list users\n");
            status = 1;
        }
        for (int i = 0; i < n; i++)
            printf("%s\t%s\titerations=%d\n", v[i].user, v[i].mechanism, v[i].iterations);
        free(v);
    }
    metastore_close(m);
    return status;
}
