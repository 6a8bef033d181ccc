/* The topic configs sluice knows, with Kafka's defaults: CreateTopics validates against this list,
 * DescribeConfigs reports every entry. */
#ifndef SLUICE_TOPIC_CONFIGS_H
#define SLUICE_TOPIC_CONFIGS_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/metastore.h"

enum config_value_kind { CV_LONG, CV_INT, CV_BOOL, CV_DOUBLE, CV_ENUM, CV_STRING };

struct topic_config_def {
    const char *name;
    const char *default_value;
    enum config_value_kind kind;
    const char *enum_values; /* CV_ENUM: comma-separated allowed values */
};

extern const struct topic_config_def topic_config_defs[];
extern const int topic_config_defs_len;

const struct topic_config_def *topic_config_find(const char *name);
/* NULL if valid, else a short reason. */
const char *topic_config_check(const struct topic_config_def *d, const char *value);
/* List configs (APPEND and SUBTRACT apply to them): cleanup.policy, the throttled replicas. */
bool topic_config_is_list(const struct topic_config_def *d);

/* One change of AlterConfigs / IncrementalAlterConfigs, checked on the loop (known key, valid
 * value for SET), applied on a store thread to what the store holds. */
enum config_op_kind { CONFIG_SET = 0, CONFIG_DELETE = 1, CONFIG_APPEND = 2, CONFIG_SUBTRACT = 3 };
struct config_op {
    char key[CONFIG_KEY_MAX + 1];
    char value[CONFIG_VALUE_MAX + 1];
    int8_t op;
};

/* Applies ops to a topic's stored configs (*cfgs malloc'd, may be NULL; realloc'd here). replace
 * (legacy AlterConfigs) first drops every stored config. Returns 0, or KERR_INVALID_CONFIG with a
 * reason in why when a result is not a valid value (a list emptied by SUBTRACT, one too long). */
int topic_configs_apply(struct topic_config **cfgs, int *n, const struct config_op *ops, int nops, bool replace,
                        char *why, size_t whylen);

#endif
