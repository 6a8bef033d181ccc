/* DescribeConfigs, AlterConfigs and IncrementalAlterConfigs. Topic configs live in the metadata
 * store: describing reads them (a store job: what another agent changed a moment ago shows), a
 * change is checked here, then applied to what the store holds in one transaction. The broker
 * resource shows the agent's settings, read-only: they are flags and SLUICE_* variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/topic_changes.h"

enum { RESOURCE_TOPIC = 2, RESOURCE_BROKER = 4 };
/* config_source values (DescribeConfigs v1+) */
enum { SOURCE_TOPIC = 1, SOURCE_STATIC_BROKER = 4, SOURCE_DEFAULT = 5 };
/* config_type values (v3+): Kafka's ConfigDef types */
enum { TYPE_BOOLEAN = 1, TYPE_STRING = 2, TYPE_INT = 3, TYPE_LONG = 5, TYPE_DOUBLE = 6, TYPE_LIST = 7 };

typedef struct describe_configs_response_result_config resp_config_t;
typedef struct describe_configs_response_result_config_synonym resp_synonym_t;

static struct kstr rq_str(struct request *rq, const char *s)
{
    return kstr_c(arena_strndup(&rq->arena, s, strlen(s)));
}

static int8_t config_type(const struct topic_config_def *d)
{
    if (topic_config_is_list(d))
        return TYPE_LIST;
    switch (d->kind) {
    case CV_LONG:
        return TYPE_LONG;
    case CV_INT:
        return TYPE_INT;
    case CV_BOOL:
        return TYPE_BOOLEAN;
    case CV_DOUBLE:
        return TYPE_DOUBLE;
    case CV_ENUM:
    case CV_STRING:
        return TYPE_STRING;
    }
    return 0;
}

/* A null key list asks for every config; otherwise only those named (unknown names are left out,
 * as Kafka does). */
static bool wanted(const struct describe_configs_request_resource *in, const char *name)
{
    if (in->configuration_keys_count < 0)
        return true;
    size_t len = strlen(name);
    for (int i = 0; i < in->configuration_keys_count; i++)
        if ((size_t)in->configuration_keys[i].len == len && !memcmp(in->configuration_keys[i].ptr, name, len))
            return true;
    return false;
}

static void fill_config(struct request *rq, resp_config_t *c, const char *name, const char *value, int8_t source,
                        const char *default_value, bool read_only, int8_t type, bool synonyms)
{
    c->name = kstr_c(name);
    c->value = rq_str(rq, value);
    c->read_only = read_only;
    c->is_default = source == SOURCE_DEFAULT;
    c->config_source = source;
    c->is_sensitive = false;
    c->config_type = type;
    c->documentation = (struct kstr){NULL, -1};
    /* Synonyms, most specific first: the topic's own value, then the default it overrides. */
    c->synonyms = RQ_ALLOC(rq, resp_synonym_t, 2);
    c->synonyms_count = 0;
    if (!synonyms)
        return;
    if (source != SOURCE_DEFAULT)
        c->synonyms[c->synonyms_count++] = (resp_synonym_t){kstr_c(name), c->value, source};
    if (source != SOURCE_STATIC_BROKER)
        c->synonyms[c->synonyms_count++] = (resp_synonym_t){kstr_c(name), rq_str(rq, default_value), SOURCE_DEFAULT};
}

static void describe_topic(struct broker *b, struct request *rq, const struct describe_configs_request_resource *in,
                           const struct topic_change_result *r, struct describe_configs_response_result *out,
                           bool synonyms)
{
    out->configs = RQ_ALLOC(rq, resp_config_t, topic_config_defs_len);
    for (int i = 0; i < topic_config_defs_len; i++) {
        const struct topic_config_def *d = &topic_config_defs[i];
        if (!wanted(in, d->name))
            continue;
        /* the agent's --max-message-bytes is the topic default, as Kafka's message.max.bytes */
        char agent_default[24];
        const char *def = d->default_value;
        if (!strcmp(d->name, "max.message.bytes")) {
            snprintf(agent_default, sizeof(agent_default), "%lld", (long long)b->cfg->max_message_bytes);
            def = agent_default;
        }
        const char *value = def;
        int8_t source = SOURCE_DEFAULT;
        for (int k = 0; k < r->nconfigs; k++)
            if (!strcmp(r->configs[k].key, d->name)) {
                value = r->configs[k].value;
                source = SOURCE_TOPIC;
            }
        fill_config(rq, &out->configs[out->configs_count++], d->name, value, source, def, false, config_type(d),
                    synonyms);
    }
}

/* The agent's settings that Kafka has as broker configs (read-only here). */
static void describe_broker(struct broker *b, struct request *rq, const struct describe_configs_request_resource *in,
                            struct describe_configs_response_result *out, bool synonyms)
{
    char max_message[24], partitions[24];
    snprintf(max_message, sizeof(max_message), "%lld", (long long)b->cfg->max_message_bytes);
    snprintf(partitions, sizeof(partitions), "%d", b->cfg->default_partitions);
    const struct {
        const char *name, *value;
        int8_t type;
    } settings[] = {
        {"message.max.bytes", max_message, TYPE_INT},
        {"num.partitions", partitions, TYPE_INT},
        {"auto.create.topics.enable", b->cfg->auto_create_topics ? "true" : "false", TYPE_BOOLEAN},
        {"default.replication.factor", "1", TYPE_INT},
    };
    int n = (int)(sizeof(settings) / sizeof(settings[0]));
    out->configs = RQ_ALLOC(rq, resp_config_t, n);
    for (int i = 0; i < n; i++)
        if (wanted(in, settings[i].name))
            fill_config(rq, &out->configs[out->configs_count++], settings[i].name, settings[i].value,
                        SOURCE_STATIC_BROKER, settings[i].value, true, settings[i].type, synonyms);
}

/* "" (the cluster's defaults) or a broker id. */
static bool broker_name_valid(struct kstr name)
{
    if (name.len < 0 || name.len > 10)
        return false;
    for (int32_t i = 0; i < name.len; i++)
        if (name.ptr[i] < '0' || name.ptr[i] > '9')
            return false;
    return true;
}

static void resume_describe_configs(void *broker, struct request *rq)
{
    handle_describe_configs(broker, rq);
}

void handle_describe_configs(struct broker *b, struct request *rq)
{
    struct describe_configs_request *req = rq->body;
    int n = req->resources_count > 0 ? req->resources_count : 0;
    struct topic_change_result *st = rq->state;
    if (!st) { /* first round: read every topic asked for */
        st = RQ_ALLOC(rq, struct topic_change_result, n);
        rq->state = st;
        for (int i = 0; i < n; i++) {
            const struct describe_configs_request_resource *in = &req->resources[i];
            if (in->resource_type == RESOURCE_TOPIC &&
                !authz_allow(b, rq, ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, in->resource_name.ptr,
                             in->resource_name.len)) {
                st[i].sent = true;
                st[i].err = KERR_TOPIC_AUTHORIZATION_FAILED;
            } else if (in->resource_type == RESOURCE_TOPIC &&
                       topic_name_valid(in->resource_name.ptr, in->resource_name.len)) {
                topic_read(b, rq, rq_cstr(rq, in->resource_name), &st[i]);
            }
        }
        if (rq->reads_pending > 0) {
            rq->resume = resume_describe_configs;
            return;
        }
    }
    bool synonyms = rq->hdr.api_version >= 1 && req->include_synonyms;
    struct describe_configs_response *resp = RQ_ALLOC(rq, struct describe_configs_response, 1);
    resp->results = RQ_ALLOC(rq, struct describe_configs_response_result, n);
    resp->results_count = n;
    for (int i = 0; i < n; i++) {
        const struct describe_configs_request_resource *in = &req->resources[i];
        struct describe_configs_response_result *out = &resp->results[i];
        out->resource_type = in->resource_type;
        out->resource_name = in->resource_name;
        out->error_message = (struct kstr){NULL, -1};
        const char *name = rq_cstr(rq, in->resource_name);
        char why[400] = "";
        if (in->resource_type == RESOURCE_TOPIC) {
            if (!st[i].sent) {
                out->error_code = KERR_INVALID_TOPIC_EXCEPTION;
                snprintf(why, sizeof(why), "Topic name \"%.260s\" is illegal", name);
            } else if (st[i].err == KERR_UNKNOWN_TOPIC_OR_PARTITION) {
                out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                snprintf(why, sizeof(why), "Topic %.260s does not exist", name);
            } else if (st[i].err) {
                out->error_code = (int16_t)st[i].err;
            } else {
                describe_topic(b, rq, in, &st[i], out, synonyms);
            }
        } else if (in->resource_type == RESOURCE_BROKER) {
            if (!authz_allow_cluster(b, rq, ACL_OP_DESCRIBE_CONFIGS)) {
                out->error_code = KERR_CLUSTER_AUTHORIZATION_FAILED;
            } else if (broker_name_valid(in->resource_name)) {
                describe_broker(b, rq, in, out, synonyms);
            } else {
                out->error_code = KERR_INVALID_REQUEST;
                snprintf(why, sizeof(why), "Broker id must be an integer, not \"%.260s\"", name);
            }
        } else {
            out->error_code = KERR_INVALID_REQUEST;
            snprintf(why, sizeof(why), "Unsupported resource type %d: topics (2) and brokers (4) only",
                     in->resource_type);
        }
        if (why[0])
            out->error_message = rq_str(rq, why);
        if (!out->configs)
            out->configs = RQ_ALLOC(rq, resp_config_t, 0);
    }
    request_respond(rq, resp);
}

/* ---- AlterConfigs and IncrementalAlterConfigs ---- */

/* One config change of either request. */
struct change_in {
    struct kstr name;
    int8_t op;
    struct kstr value;
};

struct resource_state {
    int err;
    char why[400];
    struct topic_change_result result;
};

/* Checks a resource's changes into ops: 0, or the error (message in why) that answers it. */
static int check_changes(struct request *rq, int8_t type, struct kstr rname, const struct change_in *in, int n,
                         bool incremental, struct config_op *ops, char *why, size_t whylen)
{
    const char *name = rq_cstr(rq, rname);
    if (type == RESOURCE_BROKER) {
        snprintf(why, whylen, "sluice's broker settings are flags and SLUICE_* variables, read at start-up");
        return KERR_INVALID_REQUEST;
    }
    if (type != RESOURCE_TOPIC) {
        snprintf(why, whylen, "Unsupported resource type %d: topics (2) only", type);
        return KERR_INVALID_REQUEST;
    }
    if (!topic_name_valid(rname.ptr, rname.len)) {
        snprintf(why, whylen, "Topic name \"%.260s\" is illegal", name);
        return KERR_INVALID_TOPIC_EXCEPTION;
    }
    for (int i = 0; i < n; i++) {
        const char *key = rq_cstr(rq, in[i].name);
        for (int k = 0; k < i && incremental; k++)
            if (in[k].name.len == in[i].name.len && !memcmp(in[k].name.ptr, in[i].name.ptr, (size_t)in[i].name.len)) {
                snprintf(why, whylen, "Error due to duplicate config keys: %.200s", key);
                return KERR_INVALID_REQUEST;
            }
        if (in[i].op < CONFIG_SET || in[i].op > CONFIG_SUBTRACT) {
            snprintf(why, whylen, "Unknown config operation %d for %.200s", in[i].op, key);
            return KERR_INVALID_REQUEST;
        }
        const struct topic_config_def *d = topic_config_find(key);
        if (!d) {
            snprintf(why, whylen, "Unknown topic config name: %.200s", key);
            return KERR_INVALID_CONFIG;
        }
        if (in[i].op != CONFIG_DELETE && in[i].value.len < 0) {
            snprintf(why, whylen, "Null value not supported for : %.200s", key);
            return KERR_INVALID_REQUEST;
        }
        if ((in[i].op == CONFIG_APPEND || in[i].op == CONFIG_SUBTRACT) && !topic_config_is_list(d)) {
            snprintf(why, whylen, "Config value %s is not allowed for config key: %.200s",
                     in[i].op == CONFIG_APPEND ? "append" : "subtract", key);
            return KERR_INVALID_CONFIG;
        }
        const char *value = in[i].value.len >= 0 ? rq_cstr(rq, in[i].value) : "";
        const char *bad = in[i].op == CONFIG_SET ? topic_config_check(d, value) : NULL;
        if (bad || strlen(value) > CONFIG_VALUE_MAX) {
            snprintf(why, whylen, "Invalid value %.100s for configuration %.200s: %s", value, key,
                     bad ? bad : "too long");
            return KERR_INVALID_CONFIG;
        }
        snprintf(ops[i].key, sizeof(ops[i].key), "%s", key);
        snprintf(ops[i].value, sizeof(ops[i].value), "%s", value);
        ops[i].op = in[i].op;
    }
    return 0;
}

/* A resource named twice in one request: each occurrence is refused (as Kafka does). */
static bool named_twice(int8_t type, struct kstr name, int i, int8_t (*type_of)(const void *, int),
                        struct kstr (*name_of)(const void *, int), const void *resources, int n)
{
    for (int k = 0; k < n; k++)
        if (k != i && type_of(resources, k) == type && name_of(resources, k).len == name.len &&
            !memcmp(name_of(resources, k).ptr, name.ptr, (size_t)(name.len > 0 ? name.len : 0)))
            return true;
    return false;
}

/* First round of either request: checks each resource and starts the store changes. */
static struct resource_state *start_changes(struct broker *b, struct request *rq, int n, bool incremental,
                                            bool validate_only, int8_t (*type_of)(const void *, int),
                                            struct kstr (*name_of)(const void *, int),
                                            int (*changes_of)(struct request *, const void *, int, struct change_in **),
                                            const void *resources)
{
    struct resource_state *st = RQ_ALLOC(rq, struct resource_state, n);
    for (int i = 0; i < n; i++) {
        int8_t type = type_of(resources, i);
        struct kstr name = name_of(resources, i);
        if (named_twice(type, name, i, type_of, name_of, resources, n)) {
            st[i].err = KERR_INVALID_REQUEST;
            snprintf(st[i].why, sizeof(st[i].why), "Error due to duplicate resources in the request");
            continue;
        }
        if (type == RESOURCE_TOPIC && !authz_allow(b, rq, ACL_OP_ALTER_CONFIGS, ACL_RES_TOPIC, name.ptr, name.len)) {
            st[i].err = KERR_TOPIC_AUTHORIZATION_FAILED;
            continue;
        }
        if (type == RESOURCE_BROKER && !authz_allow_cluster(b, rq, ACL_OP_ALTER_CONFIGS)) {
            st[i].err = KERR_CLUSTER_AUTHORIZATION_FAILED;
            continue;
        }
        struct change_in *in;
        int nin = changes_of(rq, resources, i, &in);
        struct config_op *ops = RQ_ALLOC(rq, struct config_op, nin);
        st[i].err = check_changes(rq, type, name, in, nin, incremental, ops, st[i].why, sizeof(st[i].why));
        if (!st[i].err)
            topic_alter_configs(b, rq, rq_cstr(rq, name), ops, nin, !incremental, validate_only, &st[i].result);
    }
    return st;
}

/* The answer for resource i: the check's error, else the store's. */
static int16_t resource_error(struct request *rq, const struct resource_state *s, struct kstr rname,
                              struct kstr *message)
{
    int err = s->err ? s->err : s->result.err;
    const char *why = s->err ? s->why : s->result.why;
    char line[400];
    if (!why[0] && err == KERR_UNKNOWN_TOPIC_OR_PARTITION) {
        snprintf(line, sizeof(line), "Topic %.260s does not exist", rq_cstr(rq, rname));
        why = line;
    }
    *message = why[0] ? rq_str(rq, why) : (struct kstr){NULL, -1};
    return (int16_t)err;
}

/* Legacy AlterConfigs: the resource's configs become exactly those given. */
static int8_t alter_type(const void *r, int i)
{
    return ((const struct alter_configs_request_resource *)r)[i].resource_type;
}
static struct kstr alter_name(const void *r, int i)
{
    return ((const struct alter_configs_request_resource *)r)[i].resource_name;
}
static int alter_changes(struct request *rq, const void *r, int i, struct change_in **out)
{
    const struct alter_configs_request_resource *res = &((const struct alter_configs_request_resource *)r)[i];
    int n = res->configs_count > 0 ? res->configs_count : 0;
    *out = RQ_ALLOC(rq, struct change_in, n);
    for (int k = 0; k < n; k++)
        (*out)[k] = (struct change_in){res->configs[k].name, CONFIG_SET, res->configs[k].value};
    return n;
}

static void resume_alter_configs(void *broker, struct request *rq)
{
    handle_alter_configs(broker, rq);
}

void handle_alter_configs(struct broker *b, struct request *rq)
{
    struct alter_configs_request *req = rq->body;
    int n = req->resources_count > 0 ? req->resources_count : 0;
    if (!rq->state) {
        rq->state = start_changes(b, rq, n, false, req->validate_only, alter_type, alter_name, alter_changes,
                                  req->resources);
        if (rq->reads_pending > 0) {
            rq->resume = resume_alter_configs;
            return;
        }
    }
    struct resource_state *st = rq->state;
    struct alter_configs_response *resp = RQ_ALLOC(rq, struct alter_configs_response, 1);
    resp->responses = RQ_ALLOC(rq, struct alter_configs_response_response, n);
    resp->responses_count = n;
    for (int i = 0; i < n; i++) {
        struct alter_configs_response_response *out = &resp->responses[i];
        out->resource_type = req->resources[i].resource_type;
        out->resource_name = req->resources[i].resource_name;
        out->error_code = resource_error(rq, &st[i], out->resource_name, &out->error_message);
    }
    request_respond(rq, resp);
}

/* IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on what is stored. */
static int8_t inc_type(const void *r, int i)
{
    return ((const struct incremental_alter_configs_request_resource *)r)[i].resource_type;
}
static struct kstr inc_name(const void *r, int i)
{
    return ((const struct incremental_alter_configs_request_resource *)r)[i].resource_name;
}
static int inc_changes(struct request *rq, const void *r, int i, struct change_in **out)
{
    const struct incremental_alter_configs_request_resource *res =
        &((const struct incremental_alter_configs_request_resource *)r)[i];
    int n = res->configs_count > 0 ? res->configs_count : 0;
    *out = RQ_ALLOC(rq, struct change_in, n);
    for (int k = 0; k < n; k++)
        (*out)[k] = (struct change_in){res->configs[k].name, res->configs[k].config_operation, res->configs[k].value};
    return n;
}

static void resume_incremental_alter_configs(void *broker, struct request *rq)
{
    handle_incremental_alter_configs(broker, rq);
}

void handle_incremental_alter_configs(struct broker *b, struct request *rq)
{
    struct incremental_alter_configs_request *req = rq->body;
    int n = req->resources_count > 0 ? req->resources_count : 0;
    if (!rq->state) {
        rq->state = start_changes(b, rq, n, true, req->validate_only, inc_type, inc_name, inc_changes,
                                  req->resources);
        if (rq->reads_pending > 0) {
            rq->resume = resume_incremental_alter_configs;
            return;
        }
    }
    struct resource_state *st = rq->state;
    struct incremental_alter_configs_response *resp = RQ_ALLOC(rq, struct incremental_alter_configs_response, 1);
    resp->responses = RQ_ALLOC(rq, struct incremental_alter_configs_response_response, n);
    resp->responses_count = n;
    for (int i = 0; i < n; i++) {
        struct incremental_alter_configs_response_response *out = &resp->responses[i];
        out->resource_type = req->resources[i].resource_type;
        out->resource_name = req->resources[i].resource_name;
        out->error_code = resource_error(rq, &st[i], out->resource_name, &out->error_message);
    }
    request_respond(rq, resp);
}
