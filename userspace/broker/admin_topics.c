/* CreateTopics and DeleteTopics. Each topic of a request gets its own answer. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/topic_configs.h"
#include "util/log.h"

typedef struct create_topics_request_topic req_topic_t;
typedef struct create_topics_response_topic resp_topic_t;
typedef struct create_topics_response_topic_config resp_config_t;

#define MAX_PARTITIONS 100000

static struct kstr msg(struct request *rq, const char *fmt, const char *arg)
{
    char line[512];
    snprintf(line, sizeof(line), fmt, arg);
    return kstr_c(arena_strndup(&rq->arena, line, strlen(line)));
}

/* Checks one topic of the request; returns a Kafka error (message in *why) or 0. */
static int check_topic(struct broker *b, struct request *rq, const req_topic_t *in, int32_t *partitions,
                       struct topic_config *configs, struct kstr *why)
{
    const char *name = rq_cstr(rq, in->name);
    if (!topic_name_valid(in->name.ptr, in->name.len)) {
        *why = msg(rq, "Topic name \"%s\" is illegal: use 1 to 249 of [a-zA-Z0-9._-], not '.' or '..'", name);
        return KERR_INVALID_TOPIC_EXCEPTION;
    }
    if (in->assignments_count > 0) {
        if (in->num_partitions != -1 || in->replication_factor != -1) {
            *why = msg(rq, "Topic %s: both assignments and num_partitions/replication_factor are set", name);
            return KERR_INVALID_REQUEST;
        }
        *partitions = in->assignments_count;
    } else {
        *partitions = in->num_partitions == -1 ? b->cfg->default_partitions : in->num_partitions;
        if (*partitions <= 0 || *partitions > MAX_PARTITIONS) {
            *why = msg(rq, "Topic %s: number of partitions must be between 1 and 100000", name);
            return KERR_INVALID_PARTITIONS;
        }
        if (in->replication_factor == 0 || in->replication_factor < -1) {
            *why = msg(rq, "Topic %s: replication factor must be -1 or larger than 0", name);
            return KERR_INVALID_REPLICATION_FACTOR;
        }
    }
    for (int i = 0; i < in->configs_count; i++) {
        const char *key = rq_cstr(rq, in->configs[i].name);
        const struct topic_config_def *d = topic_config_find(key);
        if (!d) {
            *why = msg(rq, "Unknown topic config name: %s", key);
            return KERR_INVALID_CONFIG;
        }
        if (in->configs[i].value.len < 0) /* null: keep the default */
            continue;
        const char *value = rq_cstr(rq, in->configs[i].value);
        const char *bad = topic_config_check(d, value);
        if (bad || strlen(value) > CONFIG_VALUE_MAX) {
            char line[300];
            snprintf(line, sizeof(line), "Invalid value %.100s for configuration %s: %s", value, key,
                     bad ? bad : "too long");
            *why = kstr_c(arena_strndup(&rq->arena, line, strlen(line)));
            return KERR_INVALID_CONFIG;
        }
        snprintf(configs[i].key, sizeof(configs[i].key), "%s", key);
        snprintf(configs[i].value, sizeof(configs[i].value), "%s", value);
    }
    return 0;
}

/* v5+: the result carries every config of the new topic with its value. */
static void describe_configs(struct request *rq, resp_topic_t *out, const struct topic_config *set, int nset)
{
    out->configs = RQ_ALLOC(rq, resp_config_t, topic_config_defs_len);
    out->configs_count = topic_config_defs_len;
    for (int i = 0; i < topic_config_defs_len; i++) {
        const struct topic_config_def *d = &topic_config_defs[i];
        resp_config_t *c = &out->configs[i];
        c->name = kstr_c(d->name);
        c->value = kstr_c(d->default_value);
        c->config_source = 5; /* DEFAULT_CONFIG */
        for (int j = 0; j < nset; j++)
            if (set[j].key[0] && !strcmp(set[j].key, d->name)) {
                c->value = kstr_c(set[j].value); /* set lives in the request's arena */
                c->config_source = 1; /* TOPIC_CONFIG */
            }
    }
}

/* Per topic of a CreateTopics request, across rounds. */
struct create_state {
    bool checked;
    int err;
    struct kstr why;
    int32_t partitions;
    struct topic_config *configs;
    int nconfigs;
    bool create_sent;
    int create_result;
};

static void resume_create_topics(void *broker, struct request *rq)
{
    handle_create_topics(broker, rq);
}

/* Round by round: checks (and whether the name exists: a store look-up), then the creations (one
 * store job each), then the answer. */
void handle_create_topics(struct broker *b, struct request *rq)
{
    struct create_topics_request *req = rq->body;
    int n = req->topics_count > 0 ? req->topics_count : 0;
    struct create_state *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct create_state, n);
        rq->state = st;
    }
    bool waits = false;
    for (int i = 0; i < n; i++) {
        const req_topic_t *in = &req->topics[i];
        struct create_state *cs = &st[i];
        if (!cs->checked) {
            cs->checked = true;
            cs->why = (struct kstr){NULL, -1};
            /* A name given twice in one request is an error for each occurrence (as Kafka does). */
            for (int j = 0; j < n; j++)
                if (j != i && req->topics[j].name.len == in->name.len &&
                    !memcmp(req->topics[j].name.ptr, in->name.ptr, (size_t)in->name.len)) {
                    cs->err = KERR_INVALID_REQUEST;
                    cs->why = msg(rq, "Create topics request from client contains topic %s more than once",
                                  rq_cstr(rq, in->name));
                }
            /* CREATE on the cluster or on the topic (Kafka's rule). */
            if (!cs->err && !authz_allow_quiet(b, rq, ACL_OP_CREATE, ACL_RES_CLUSTER, ACL_CLUSTER_NAME,
                                               (int32_t)strlen(ACL_CLUSTER_NAME)) &&
                !authz_allow(b, rq, ACL_OP_CREATE, ACL_RES_TOPIC, in->name.ptr, in->name.len)) {
                cs->err = KERR_TOPIC_AUTHORIZATION_FAILED;
                cs->why = msg(rq, "Not authorized to create topic %s", rq_cstr(rq, in->name));
            }
            if (!cs->err) {
                cs->nconfigs = in->configs_count > 0 ? in->configs_count : 0;
                cs->configs = RQ_ALLOC(rq, struct topic_config, cs->nconfigs);
                cs->err = check_topic(b, rq, in, &cs->partitions, cs->configs, &cs->why);
            }
        }
        if (cs->err || cs->create_sent)
            continue;
        int err;
        struct topic_entry *t = topics_need(b, rq, in->name.ptr, in->name.len, &err);
        if (t) {
            cs->err = KERR_TOPIC_ALREADY_EXISTS;
            cs->why = msg(rq, "Topic '%s' already exists.", rq_cstr(rq, in->name));
        } else if (err == 0) {
            waits = true;
        } else if (err != KERR_UNKNOWN_TOPIC_OR_PARTITION) {
            cs->err = err;
        } else if (!req->validate_only) {
            cs->create_sent = true;
            topics_create(b, rq, rq_cstr(rq, in->name), cs->partitions, cs->configs, cs->nconfigs,
                          &cs->create_result);
            waits = true;
        }
    }
    if (waits) {
        rq->resume = resume_create_topics;
        return;
    }

    struct create_topics_response *resp = RQ_ALLOC(rq, struct create_topics_response, 1);
    resp->topics = RQ_ALLOC(rq, resp_topic_t, n);
    resp->topics_count = n;
    for (int i = 0; i < n; i++) {
        const req_topic_t *in = &req->topics[i];
        struct create_state *cs = &st[i];
        resp_topic_t *out = &resp->topics[i];
        out->name = in->name;
        out->num_partitions = -1;
        out->replication_factor = -1;
        out->configs_count = -1;
        int err = cs->err ? cs->err : cs->create_result;
        if (err == KERR_TOPIC_ALREADY_EXISTS && !cs->why.ptr)
            cs->why = msg(rq, "Topic '%s' already exists.", rq_cstr(rq, in->name));
        out->error_code = (int16_t)err;
        out->error_message = err ? cs->why : (struct kstr){NULL, -1};
        if (err)
            continue;
        out->num_partitions = cs->partitions;
        out->replication_factor = 1;
        struct topic_entry *t = topics_find(b, in->name.ptr, in->name.len);
        if (t)
            memcpy(out->topic_id.b, t->info.uuid, 16);
        describe_configs(rq, out, cs->configs, cs->nconfigs);
    }
    request_respond(rq, resp);
}

static void resume_delete_topics(void *broker, struct request *rq)
{
    handle_delete_topics(broker, rq);
}

/* Per name: does it exist (a look-up), then the deletion (a store job), then the answer. */
void handle_delete_topics(struct broker *b, struct request *rq)
{
    struct delete_topics_request *req = rq->body;
    int n = req->topic_names_count > 0 ? req->topic_names_count : 0;
    struct delete_state {
        bool sent;
        int result;
    } *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct delete_state, n);
        rq->state = st;
    }
    bool waits = false;
    for (int i = 0; i < n; i++) {
        if (st[i].sent)
            continue;
        struct kstr name = req->topic_names[i];
        int err;
        if (!authz_allow(b, rq, ACL_OP_DELETE, ACL_RES_TOPIC, name.ptr, name.len)) {
            st[i].sent = true;
            st[i].result = KERR_TOPIC_AUTHORIZATION_FAILED;
            continue;
        }
        struct topic_entry *t = topics_need(b, rq, name.ptr, name.len, &err);
        if (t) {
            st[i].sent = true;
            topics_delete(b, rq, rq_cstr(rq, name), &st[i].result);
            waits = true;
        } else if (err == 0) {
            waits = true;
        } else {
            st[i].sent = true;
            st[i].result = err;
        }
    }
    if (waits) {
        rq->resume = resume_delete_topics;
        return;
    }
    struct delete_topics_response *resp = RQ_ALLOC(rq, struct delete_topics_response, 1);
    resp->responses = RQ_ALLOC(rq, struct delete_topics_response_response, n);
    resp->responses_count = n;
    for (int i = 0; i < n; i++) {
        resp->responses[i].name = req->topic_names[i];
        resp->responses[i].error_message = (struct kstr){NULL, -1};
        resp->responses[i].error_code = (int16_t)st[i].result;
    }
    request_respond(rq, resp);
}
