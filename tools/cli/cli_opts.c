/* Table-driven flag parsing for the `sluice` subcommands (see cli_opts.h). */
#include "tools/cli/cli_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try: %s --help)\n", prog);
    va_end(ap);
    return 2;
}

static bool parse_ll(const char *s, double lo, double hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || (double)v < lo || (double)v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_d(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Stores one value; false when it is out of the row's bounds. */
static bool set_value(const struct cli_opt *o, const char *v)
{
    long long n;
    switch (o->kind) {
    case CLI_INT:
        if (!parse_ll(v, o->lo, o->hi, &n))
            return false;
        *(int *)o->dest = (int)n;
        return true;
    case CLI_INT64:
        if (!parse_ll(v, o->lo, o->hi, &n))
            return false;
        *(long long *)o->dest = n;
        return true;
    case CLI_DOUBLE:
        return parse_d(v, o->lo, o->hi, (double *)o->dest);
    case CLI_STRING: {
        size_t len = strlen(v);
        if ((double)len < o->lo || (double)len > o->hi || (o->chars && strspn(v, o->chars) != len))
            return false;
        *(const char **)o->dest = v;
        return true;
    }
    case CLI_ENUM:
        for (const char *const *c = o->choices; *c; c++)
            if (!strcmp(v, *c)) {
                *(const char **)o->dest = *c;
                return true;
            }
        return false;
    case CLI_FLAG:
        *(bool *)o->dest = true;
        return true;
    }
    return false;
}

int cli_parse(const char *prog, const struct cli_opt *opts, int argc, char **argv, void (*usage)(FILE *))
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0 || !arg[2])
            return arg[0] == '-' ? cli_error(prog, "unknown flag '%s'", arg)
                                 : cli_error(prog, "unexpected argument '%s'", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cli_opt *o = opts;
        while (o->name && (strlen(o->name) != name_len || strncmp(o->name, name, name_len)))
            o++;
        if (!o->name)
            return cli_error(prog, "unknown flag '%s'", arg);
        const char *value = eq ? eq + 1 : NULL;
        if (o->kind == CLI_FLAG) {
            if (value)
                return cli_error(prog, "--%s takes no value", o->name);
        } else if (!value) {
            if (i + 1 >= argc)
                return cli_error(prog, "--%s needs a value", o->name);
            value = argv[++i];
        }
        if (!set_value(o, value)) {
            char shown[200]; /* the value as typed, control characters as '?': one line */
            snprintf(shown, sizeof(shown), "%s", value);
            for (char *c = shown; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    *c = '?';
            if (o->hint)
                return cli_error(prog, "bad --%s '%s' (%s)", o->name, shown, o->hint);
            return cli_error(prog, "bad --%s '%s'", o->name, shown);
        }
    }
    return 0;
}
