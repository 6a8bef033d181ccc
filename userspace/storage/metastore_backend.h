/* What a metadata store backend implements: metastore.c forwards each public call through
 * these operations, so SQLite and PostgreSQL share one interface. */
#ifndef SLUICE_METASTORE_BACKEND_H
#define SLUICE_METASTORE_BACKEND_H

#include <stddef.h>

#include "storage/metastore.h"

struct metastore_ops {
    void (*close)(struct metastore *m);
    int (*create_topic)(struct metastore *m, const char *name, int32_t partitions,
                        const struct topic_config *configs, int nconfigs, struct topic_info *out);
    int (*delete_topic)(struct metastore *m, const char *name);
    int (*get_topic)(struct metastore *m, const char *name, struct topic_info *out);
    int (*list_topics)(struct metastore *m, struct topic_info **out, int *n);
    int (*topic_configs)(struct metastore *m, int64_t topic_id, struct topic_config **out, int *n);
    int (*create_partitions)(struct metastore *m, const char *name, int32_t partitions, struct topic_info *out);
    int (*update_topic_configs)(struct metastore *m, const char *name, topic_configs_edit edit, void *arg,
                                struct topic_info *out);
    int (*commit_object)(struct metastore *m, const char *object_key, uint64_t object_size,
                         struct commit_chunk *chunks, int nchunks);
    int (*init_producer)(struct metastore *m, int64_t producer_id, int16_t epoch, int64_t *out_id,
                         int16_t *out_epoch);
    int (*list_producers)(struct metastore *m, int64_t topic_id, int32_t partition, struct producer_info **out,
                          int *n);
    int (*partition_offsets)(struct metastore *m, int64_t topic_id, int32_t partition, int64_t *log_start,
                             int64_t *high_watermark);
    int (*find_chunks)(struct metastore *m, int64_t topic_id, int32_t partition, int64_t from_offset,
                       struct chunk_ref *out, int max);
    int (*find_chunks_by_time)(struct metastore *m, int64_t topic_id, int32_t partition, int64_t ts,
                               struct chunk_ref *out, int max);
    int (*max_timestamp)(struct metastore *m, int64_t topic_id, int32_t partition, struct chunk_ref *out);
    int (*heartbeat)(struct metastore *m, const struct member_info *self);
    int (*list_members)(struct metastore *m, const char *agent_group, int64_t alive_within_ms,
                        struct member_info **out, int *n);
    int (*remove_member)(struct metastore *m, const char *id);
    int (*prune_members)(struct metastore *m, int64_t older_than_ms);
    int (*notify_fd)(struct metastore *m);
    int (*consume_notifications)(struct metastore *m);
};

/* Every backend's handle starts with this. */
struct metastore {
    const struct metastore_ops *ops;
};

/* path: the part of a sqlite:// URL after the scheme. */
struct metastore *metastore_sqlite_open(const char *path, char *err, size_t errlen);
/* url: the whole postgres:// or postgresql:// URL, handed to libpq. */
struct metastore *metastore_pg_open(const char *url, char *err, size_t errlen);

#endif
