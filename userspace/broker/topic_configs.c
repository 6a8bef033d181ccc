#include "broker/topic_configs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"

const struct topic_config_def topic_config_defs[] = {
    {"cleanup.policy", "delete", CV_ENUM, "delete,compact"},
    {"compression.type", "producer", CV_ENUM, "producer,uncompressed,gzip,snappy,lz4,zstd"},
    {"delete.retention.ms", "86400000", CV_LONG, NULL},
    {"file.delete.delay.ms", "60000", CV_LONG, NULL},
    {"flush.messages", "9223372036854775807", CV_LONG, NULL},
    {"flush.ms", "9223372036854775807", CV_LONG, NULL},
    {"index.interval.bytes", "4096", CV_INT, NULL},
    {"max.compaction.lag.ms", "9223372036854775807", CV_LONG, NULL},
    {"max.message.bytes", "1048588", CV_INT, NULL},
    {"message.timestamp.type", "CreateTime", CV_ENUM, "CreateTime,LogAppendTime"},
    {"message.timestamp.difference.max.ms", "9223372036854775807", CV_LONG, NULL},
    {"min.cleanable.dirty.ratio", "0.5", CV_DOUBLE, NULL},
    {"min.compaction.lag.ms", "0", CV_LONG, NULL},
    {"min.insync.replicas", "1", CV_INT, NULL},
    {"preallocate", "false", CV_BOOL, NULL},
    {"retention.bytes", "-1", CV_LONG, NULL},
    {"retention.ms", "604800000", CV_LONG, NULL},
    {"segment.bytes", "1073741824", CV_INT, NULL},
    {"segment.index.bytes", "10485760", CV_INT, NULL},
    {"segment.jitter.ms", "0", CV_LONG, NULL},
    {"segment.ms", "604800000", CV_LONG, NULL},
    {"unclean.leader.election.enable", "false", CV_BOOL, NULL},
    {"message.downconversion.enable", "true", CV_BOOL, NULL},
    /* Kafka 3.6's too: tiered storage, timestamp bounds, replication throttles (accepted and
     * shown; sluice has no local log tier and no replicas, so they change nothing here) */
    {"local.retention.bytes", "-2", CV_LONG, NULL},
    {"local.retention.ms", "-2", CV_LONG, NULL},
    {"remote.storage.enable", "false", CV_BOOL, NULL},
    {"message.timestamp.before.max.ms", "9223372036854775807", CV_LONG, NULL},
    {"message.timestamp.after.max.ms", "9223372036854775807", CV_LONG, NULL},
    {"leader.replication.throttled.replicas", "", CV_STRING, NULL},
    {"follower.replication.throttled.replicas", "", CV_STRING, NULL},
};
const int topic_config_defs_len = (int)(sizeof(topic_config_defs) / sizeof(topic_config_defs[0]));

const struct topic_config_def *topic_config_find(const char *name)
{
    for (int i = 0; i < topic_config_defs_len; i++)
        if (!strcmp(topic_config_defs[i].name, name))
            return &topic_config_defs[i];
    return NULL;
}

static bool enum_has(const char *list, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, value, n))
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

const char *topic_config_check(const struct topic_config_def *d, const char *value)
{
    char *end;
    errno = 0;
    switch (d->kind) {
    case CV_LONG:
        strtoll(value, &end, 10);
        return (errno || end == value || *end) ? "not a 64-bit integer" : NULL;
    case CV_INT: {
        long long v = strtoll(value, &end, 10);
        return (errno || end == value || *end || v < INT32_MIN || v > INT32_MAX) ? "not a 32-bit integer" : NULL;
    }
    case CV_DOUBLE:
        strtod(value, &end);
        return (errno || end == value || *end) ? "not a number" : NULL;
    case CV_BOOL:
        return (!strcmp(value, "true") || !strcmp(value, "false")) ? NULL : "not true or false";
    case CV_ENUM:
        /* cleanup.policy is a list: "compact,delete" is valid, so check each element */
        if (!strcmp(d->name, "cleanup.policy")) {
            char tmp[64];
            if (strlen(value) >= sizeof(tmp) || !*value)
                return "not a list of delete/compact";
            strcpy(tmp, value);
            for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                if (strcmp(tok, "delete") && strcmp(tok, "compact"))
                    return "not a list of delete/compact";
            return NULL;
        }
        return enum_has(d->enum_values, value) ? NULL : "not one of the allowed values";
    case CV_STRING:
        return NULL;
    }
    return NULL;
}

bool topic_config_is_list(const struct topic_config_def *d)
{
    return !strcmp(d->name, "cleanup.policy") || strstr(d->name, ".throttled.replicas") != NULL;
}

static int find_cfg(const struct topic_config *cfgs, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cfgs[i].key, key))
            return i;
    return -1;
}

/* Does the comma-separated list hold item? */
static bool list_has(const char *list, const char *item, size_t len)
{
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && !strncmp(p, item, len))
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* APPEND adds the items of change not in the list yet; SUBTRACT removes those in it (Kafka's
 * semantics: the result keeps the list's order). Returns false if the result does not fit. */
static bool list_edit(char *list, size_t size, const char *change, bool append)
{
    char out[CONFIG_VALUE_MAX + 1] = "";
    size_t used = 0;
    for (int pass = 0; pass < (append ? 2 : 1); pass++) {
        const char *src = pass == 0 ? list : change; /* the current items, then the added ones */
        for (const char *p = src; *p;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            bool keep = n > 0;
            if (pass == 0 && !append && list_has(change, p, n))
                keep = false;
            if (pass == 1 && (list_has(list, p, n) || (used && list_has(out, p, n))))
                keep = false;
            if (keep) {
                if (used + n + 2 > sizeof(out))
                    return false;
                if (used)
                    out[used++] = ',';
                memcpy(out + used, p, n);
                used += n;
                out[used] = '\0';
            }
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    if (used + 1 > size)
        return false;
    memcpy(list, out, used + 1);
    return true;
}

int topic_configs_apply(struct topic_config **cfgs, int *n, const struct config_op *ops, int nops, bool replace,
                        char *why, size_t whylen)
{
    if (replace)
        *n = 0;
    for (int i = 0; i < nops; i++) {
        const struct config_op *op = &ops[i];
        int at = find_cfg(*cfgs, *n, op->key);
        if (op->op == CONFIG_DELETE) {
            if (at >= 0) {
                memmove(&(*cfgs)[at], &(*cfgs)[at + 1], sizeof(**cfgs) * (size_t)(*n - at - 1));
                (*n)--;
            }
            continue;
        }
        if (at < 0) {
            struct topic_config *v = realloc(*cfgs, sizeof(**cfgs) * (size_t)(*n + 1));
            if (!v)
                abort();
            *cfgs = v;
            at = (*n)++;
            snprintf(v[at].key, sizeof(v[at].key), "%s", op->key);
            /* APPEND and SUBTRACT start from the default */
            const struct topic_config_def *d = topic_config_find(op->key);
            snprintf(v[at].value, sizeof(v[at].value), "%s", d ? d->default_value : "");
        }
        struct topic_config *c = &(*cfgs)[at];
        if (op->op == CONFIG_SET) {
            snprintf(c->value, sizeof(c->value), "%s", op->value);
            continue;
        }
        const struct topic_config_def *d = topic_config_find(op->key);
        if (!list_edit(c->value, sizeof(c->value), op->value, op->op == CONFIG_APPEND)) {
            snprintf(why, whylen, "Invalid value for configuration %s: the list is too long", op->key);
            return KERR_INVALID_CONFIG;
        }
        const char *bad = d ? topic_config_check(d, c->value) : NULL;
        if (bad) {
            snprintf(why, whylen, "Invalid value %.100s for configuration %s: %s", c->value, op->key, bad);
            return KERR_INVALID_CONFIG;
        }
    }
    return 0;
}
