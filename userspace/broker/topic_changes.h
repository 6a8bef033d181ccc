/* The admin APIs' store work on one topic, as jobs on the store threads: read it with its stored
 * configs (DescribeConfigs), change its configs (AlterConfigs, IncrementalAlterConfigs), grow it
 * (CreatePartitions). The request waits (reads_pending) and resumes when *out is filled. A change
 * is in this worker's topic cache at once; other workers and agents see it with their next topic
 * listing (topics.c, every 2 s). */
#ifndef SLUICE_TOPIC_CHANGES_H
#define SLUICE_TOPIC_CHANGES_H

#include "broker/broker_internal.h"
#include "broker/topic_configs.h"

struct topic_change_result {
    bool sent;                   /* the job was submitted */
    int err;                     /* 0, or the Kafka error (KAFKA_STORAGE_ERROR when the store failed) */
    char why[300];               /* a message for err, or "" */
    struct topic_info info;      /* the topic as it is afterwards */
    struct topic_config *configs; /* its stored configs afterwards (in the request's arena) */
    int nconfigs;
};

void topic_read(struct broker *b, struct request *rq, const char *name, struct topic_change_result *out);
/* validate_only: everything is checked and nothing is stored. */
void topic_alter_configs(struct broker *b, struct request *rq, const char *name, const struct config_op *ops,
                         int nops, bool replace, bool validate_only, struct topic_change_result *out);
void topic_grow(struct broker *b, struct request *rq, const char *name, int32_t partitions, bool validate_only,
                struct topic_change_result *out);

#endif
