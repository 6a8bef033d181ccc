/* AlterConfigs / IncrementalAlterConfigs applied to stored topic configs (topic_configs_apply). */
#include <stdlib.h>
#include <string.h>

#include "broker/topic_configs.h"
#include "check.h"
#include "protocol/errors.h"

static struct config_op op(const char *key, int8_t kind, const char *value)
{
    struct config_op o = {.op = kind};
    strcpy(o.key, key);
    strcpy(o.value, value);
    return o;
}

static const char *value_of(const struct topic_config *c, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].key, key))
            return c[i].value;
    return NULL;
}

TEST(topic_configs_incremental_ops)
{
    struct topic_config *c = calloc(2, sizeof(*c));
    int n = 2;
    strcpy(c[0].key, "retention.ms");
    strcpy(c[0].value, "1000");
    strcpy(c[1].key, "max.message.bytes");
    strcpy(c[1].value, "2000");
    char why[300] = "";
    struct config_op ops[] = {op("retention.ms", CONFIG_DELETE, ""), op("max.message.bytes", CONFIG_SET, "3000"),
                              op("cleanup.policy", CONFIG_APPEND, "compact,delete"),
                              op("segment.ms", CONFIG_DELETE, "")};
    CHECK_EQ(topic_configs_apply(&c, &n, ops, 4, false, why, sizeof(why)), 0);
    CHECK_EQ(n, 2);
    CHECK(value_of(c, n, "retention.ms") == NULL);
    CHECK(value_of(c, n, "max.message.bytes") && !strcmp(value_of(c, n, "max.message.bytes"), "3000"));
    /* APPEND starts from the default ("delete") and adds only what is missing */
    CHECK(value_of(c, n, "cleanup.policy") && !strcmp(value_of(c, n, "cleanup.policy"), "delete,compact"));
    struct config_op sub = op("cleanup.policy", CONFIG_SUBTRACT, "delete");
    CHECK_EQ(topic_configs_apply(&c, &n, &sub, 1, false, why, sizeof(why)), 0);
    CHECK(!strcmp(value_of(c, n, "cleanup.policy"), "compact"));
    /* emptying the list is not a valid cleanup.policy */
    sub = op("cleanup.policy", CONFIG_SUBTRACT, "compact");
    CHECK_EQ(topic_configs_apply(&c, &n, &sub, 1, false, why, sizeof(why)), KERR_INVALID_CONFIG);
    CHECK(strstr(why, "cleanup.policy") != NULL);
    /* the throttled-replica lists start empty and may be emptied */
    struct config_op add = op("leader.replication.throttled.replicas", CONFIG_APPEND, "0:1,1:1");
    CHECK_EQ(topic_configs_apply(&c, &n, &add, 1, false, why, sizeof(why)), 0);
    CHECK(!strcmp(value_of(c, n, "leader.replication.throttled.replicas"), "0:1,1:1"));
    sub = op("leader.replication.throttled.replicas", CONFIG_SUBTRACT, "0:1,1:1");
    CHECK_EQ(topic_configs_apply(&c, &n, &sub, 1, false, why, sizeof(why)), 0);
    CHECK(!strcmp(value_of(c, n, "leader.replication.throttled.replicas"), ""));
    free(c);
}

TEST(topic_configs_legacy_replaces_all)
{
    struct topic_config *c = calloc(1, sizeof(*c));
    int n = 1;
    strcpy(c[0].key, "retention.ms");
    strcpy(c[0].value, "1000");
    char why[300];
    struct config_op set = op("segment.ms", CONFIG_SET, "60000");
    CHECK_EQ(topic_configs_apply(&c, &n, &set, 1, true, why, sizeof(why)), 0);
    CHECK_EQ(n, 1);
    CHECK(!strcmp(c[0].key, "segment.ms") && !strcmp(c[0].value, "60000"));
    CHECK_EQ(topic_configs_apply(&c, &n, NULL, 0, true, why, sizeof(why)), 0);
    CHECK_EQ(n, 0);
    free(c);
}
