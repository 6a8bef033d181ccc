#include "broker/topic_configs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
