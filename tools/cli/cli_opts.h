/* A small table-driven parser for the `sluice` subcommands' flags: each flag is one row (name,
 * kind, bounds, destination), and every mistake gets the same one-line message on stderr,
 * "PROG: bad --name 'value' (HINT) (try: PROG --help)", and status 2. */
#ifndef SLUICE_CLI_OPTS_H
#define SLUICE_CLI_OPTS_H

#include <stdbool.h>
#include <stdio.h>

enum cli_kind {
    CLI_INT,    /* int *dest, lo..hi */
    CLI_INT64,  /* long long *dest, lo..hi */
    CLI_DOUBLE, /* double *dest, lo..hi (NaN never passes) */
    CLI_STRING, /* const char **dest (points into argv): length lo..hi, only `chars` if set */
    CLI_ENUM,   /* const char **dest: one of `choices` */
    CLI_FLAG,   /* bool *dest = true; takes no value */
};

struct cli_opt {
    const char *name; /* without the leading "--" */
    enum cli_kind kind;
    void *dest;
    double lo, hi;
    const char *hint;                 /* shown in parentheses after a bad value; NULL: none */
    const char *chars;                /* CLI_STRING: the allowed characters (NULL: any) */
    const char *const *choices;       /* CLI_ENUM: NULL-terminated */
};

/* Parses argv[0..argc) against opts (terminated by a row with name NULL). "--name value" and
 * "--name=value"; "--help" or "-h" calls usage(stdout). Any other argument is an error.
 * Returns 0 when parsed, 1 when help was printed (exit 0), 2 after printing the error line. */
int cli_parse(const char *prog, const struct cli_opt *opts, int argc, char **argv, void (*usage)(FILE *));

/* The same one-line error, for checks made after parsing (a missing flag, a bad combination):
 * prints "PROG: <msg> (try: PROG --help)" and returns 2. */
int cli_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
