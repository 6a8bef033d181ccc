/* The topic configs sluice knows, with Kafka's defaults: CreateTopics validates against this list,
 * DescribeConfigs reports every entry. */
#ifndef SLUICE_TOPIC_CONFIGS_H
#define SLUICE_TOPIC_CONFIGS_H

#include <stdbool.h>

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

#endif
