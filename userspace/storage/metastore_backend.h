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
    int (*group_load)(struct metastore *m, const char *group_id, uint8_t **data, size_t *len, int64_t *version);
    int (*group_store)(struct metastore *m, const char *group_id, int64_t version, int phase,
                       const char *protocol_type, const uint8_t *data, size_t len, bool announce);
    int (*groups_list)(struct metastore *m, struct group_summary **out, int *n);
    int (*offsets_commit)(struct metastore *m, const char *group_id, const struct group_offset *v, int n);
    int (*offsets_fetch)(struct metastore *m, const char *group_id, struct group_offset **out, int *n);
    int (*offsets_expire)(struct metastore *m, int64_t older_than_ms);
    int (*group_delete)(struct metastore *m, const char *group_id, int64_t version);
    int (*offsets_delete)(struct metastore *m, const char *group_id, const struct group_offset *v, int n);
    int (*acl_add)(struct metastore *m, const struct acl_entry *e);
    int (*acl_list)(struct metastore *m, struct acl_entry **out, int *n);
    int (*acl_delete)(struct metastore *m, int64_t id);
    int (*lease_acquire)(struct metastore *m, const char *kind, const char *owner, int64_t ttl_ms);
    int (*lease_release)(struct metastore *m, const char *kind, const char *owner);
    int (*retention_offset)(struct metastore *m, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                            int64_t max_bytes, int64_t *offset);
    int (*trim_partition)(struct metastore *m, int64_t topic_id, int32_t partition, int64_t offset,
                          int64_t *log_start, int *chunks_removed);
    int (*replace_chunks)(struct metastore *m, const char *object_key, uint64_t object_size,
                          struct chunk_replacement *runs, int n);
    int (*log_starts)(struct metastore *m, struct log_start_row **out, int *n);
    int (*objects_unreferenced)(struct metastore *m, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                int *n);
    int (*object_forget)(struct metastore *m, const char *key);
    int (*object_known)(struct metastore *m, const char *key);
    int (*notify_fd)(struct metastore *m);
    int (*consume_notifications)(struct metastore *m);
    int (*cred_put)(struct metastore *m, const struct sasl_credential *c);
    int (*cred_delete)(struct metastore *m, const char *user, const char *mechanism);
    int (*cred_list)(struct metastore *m, const char *user, const char *mechanism, struct sasl_credential **out,
                     int *n);
};

/* Every backend's handle starts with this. */
struct metastore {
    const struct metastore_ops *ops;
    struct metastore_counters counters; /* the backend counts, metastore_get_counters reads */
};

/* For the backends' offsets_fetch: n offsets whose topic and metadata are malloc'd strings, packed
 * into one malloc'd block (the strings freed, and v with them). */
struct group_offset *group_offsets_pack(struct group_offset *v, int n);

/* path: the part of a sqlite:// URL after the scheme. */
struct metastore *metastore_sqlite_open(const char *path, char *err, size_t errlen);
/* url: the whole postgres:// or postgresql:// URL, handed to libpq. */
struct metastore *metastore_pg_open(const char *url, char *err, size_t errlen);

#endif
