#include "broker/topic_changes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

enum change_kind { CHANGE_READ, CHANGE_CONFIGS, CHANGE_GROW };

struct change_job {
    struct job base;
    struct request *rq;
    struct topic_change_result *out;
    enum change_kind kind;
    char name[TOPIC_NAME_MAX + 1];
    struct config_op *ops;
    int nops;
    bool replace;
    bool validate_only;
    int32_t partitions;
    /* filled by run: */
    int rc;
    char why[300];
    struct topic_info info;
    struct topic_config *configs;
    int nconfigs;
};

/* Runs inside the store's transaction (again if PostgreSQL retries it): the result is what the
 * last run left. validate_only answers an error that rolls back. */
#define DRY_RUN_OK (-2)

static int edit_configs(void *arg, struct topic_config **cfgs, int *n)
{
    struct change_job *j = arg;
    j->why[0] = '\0';
    int rc = topic_configs_apply(cfgs, n, j->ops, j->nops, j->replace, j->why, sizeof(j->why));
    free(j->configs);
    j->configs = NULL;
    j->nconfigs = 0;
    if (rc == 0 && *n > 0) {
        j->configs = malloc(sizeof(**cfgs) * (size_t)*n);
        if (!j->configs)
            abort();
        memcpy(j->configs, *cfgs, sizeof(**cfgs) * (size_t)*n);
        j->nconfigs = *n;
    }
    return rc == 0 && j->validate_only ? DRY_RUN_OK : rc;
}

static void change_run(struct job *job, struct metastore *m)
{
    struct change_job *j = (struct change_job *)job;
    switch (j->kind) {
    case CHANGE_READ:
        j->rc = metastore_get_topic(m, j->name, &j->info);
        if (j->rc == 0)
            j->rc = metastore_topic_configs(m, j->info.id, &j->configs, &j->nconfigs);
        break;
    case CHANGE_CONFIGS:
        j->rc = metastore_update_topic_configs(m, j->name, edit_configs, j, &j->info);
        if (j->rc == DRY_RUN_OK)
            j->rc = 0;
        break;
    case CHANGE_GROW:
        if (j->validate_only) {
            j->rc = metastore_get_topic(m, j->name, &j->info);
            if (j->rc == 0 && j->partitions <= j->info.partitions)
                j->rc = KERR_INVALID_PARTITIONS;
        } else {
            j->rc = metastore_create_partitions(m, j->name, j->partitions, &j->info);
        }
        break;
    }
}

static void change_done(struct broker *b, struct job *job)
{
    struct change_job *j = (struct change_job *)job;
    if (b) {
        struct topic_change_result *out = j->out;
        out->err = j->rc < 0 ? KERR_KAFKA_STORAGE_ERROR : j->rc;
        snprintf(out->why, sizeof(out->why), "%s", j->why);
        out->info = j->info;
        out->configs = RQ_ALLOC(j->rq, struct topic_config, j->nconfigs);
        out->nconfigs = j->nconfigs;
        if (j->nconfigs > 0)
            memcpy(out->configs, j->configs, sizeof(*j->configs) * (size_t)j->nconfigs);
        if (j->rc == 0 && !j->validate_only && j->kind == CHANGE_CONFIGS) {
            log_info("changed configs of topic %s", j->name);
            topics_update(b, &j->info, j->configs, j->nconfigs);
        } else if (j->rc == 0 && !j->validate_only && j->kind == CHANGE_GROW) {
            log_info("topic %s now has %d partitions", j->name, j->info.partitions);
            topics_update(b, &j->info, NULL, 0);
        }
        broker_release(b, j->rq);
    }
    free(j->ops);
    free(j->configs);
    free(j);
}

static struct change_job *change_new(struct request *rq, enum change_kind kind, const char *name,
                                     struct topic_change_result *out)
{
    struct change_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = change_run;
    j->base.done = change_done;
    j->rq = rq;
    j->out = out;
    j->kind = kind;
    snprintf(j->name, sizeof(j->name), "%s", name);
    out->sent = true;
    rq->reads_pending++;
    return j;
}

void topic_read(struct broker *b, struct request *rq, const char *name, struct topic_change_result *out)
{
    jobs_submit(&b->store, &change_new(rq, CHANGE_READ, name, out)->base);
}

void topic_alter_configs(struct broker *b, struct request *rq, const char *name, const struct config_op *ops,
                         int nops, bool replace, bool validate_only, struct topic_change_result *out)
{
    struct change_job *j = change_new(rq, CHANGE_CONFIGS, name, out);
    j->ops = calloc((size_t)(nops > 0 ? nops : 1), sizeof(*ops));
    if (!j->ops)
        abort();
    if (nops > 0)
        memcpy(j->ops, ops, sizeof(*ops) * (size_t)nops);
    j->nops = nops;
    j->replace = replace;
    j->validate_only = validate_only;
    jobs_submit(&b->store, &j->base);
}

void topic_grow(struct broker *b, struct request *rq, const char *name, int32_t partitions, bool validate_only,
                struct topic_change_result *out)
{
    struct change_job *j = change_new(rq, CHANGE_GROW, name, out);
    j->partitions = partitions;
    j->validate_only = validate_only;
    jobs_submit(&b->store, &j->base);
}
