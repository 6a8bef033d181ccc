/* Kafka's classic consumer-group protocol as pure logic over a group's state: see group_state.h. */
#include "broker/group_state.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"

static char *dup_str(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static uint8_t *dup_bytes(const uint8_t *p, int32_t len)
{
    uint8_t *d = malloc(len > 0 ? (size_t)len : 1);
    if (!d)
        abort();
    if (len > 0)
        memcpy(d, p, (size_t)len);
    return d;
}

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static void set_str(char **field, const char *v)
{
    char *d = dup_str(v);
    free(*field);
    *field = d;
}

void group_init(struct group *g) { memset(g, 0, sizeof(*g)); }

static void protos_free(struct gproto *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].meta);
    }
    free(v);
}

static void member_free(struct gmember *m)
{
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    protos_free(m->protos, m->nprotos);
    free(m->assignment);
    memset(m, 0, sizeof(*m));
}

void group_free(struct group *g)
{
    for (int i = 0; i < g->nmembers; i++)
        member_free(&g->members[i]);
    free(g->members);
    free(g->protocol_type);
    free(g->protocol_name);
    free(g->leader);
    group_init(g);
}

const char *group_phase_name(int phase)
{
    switch (phase) {
    case GROUP_PREPARING:
        return "PreparingRebalance";
    case GROUP_COMPLETING:
        return "CompletingRebalance";
    case GROUP_STABLE:
        return "Stable";
    default:
        return "Empty";
    }
}

struct gmember *group_find_member(const struct group *g, const char *id)
{
    for (int i = 0; id && i < g->nmembers; i++)
        if (strcmp(g->members[i].id, id) == 0)
            return &g->members[i];
    return NULL;
}

static struct gmember *member_by_instance(const struct group *g, const char *instance_id)
{
    for (int i = 0; instance_id && i < g->nmembers; i++)
        if (str_eq(g->members[i].instance_id, instance_id))
            return &g->members[i];
    return NULL;
}

int group_live_members(const struct group *g)
{
    int n = 0;
    for (int i = 0; i < g->nmembers; i++)
        n += !g->members[i].pending;
    return n;
}

static void remove_member(struct group *g, struct gmember *m)
{
    int i = (int)(m - g->members);
    if (str_eq(g->leader, m->id)) {
        free(g->leader);
        g->leader = NULL;
    }
    member_free(m);
    memmove(&g->members[i], &g->members[i + 1], sizeof(*m) * (size_t)(g->nmembers - i - 1));
    g->nmembers--;
}

static struct gmember *add_member(struct group *g)
{
    struct gmember *v = realloc(g->members, sizeof(*v) * (size_t)(g->nmembers + 1));
    if (!v)
        abort();
    g->members = v;
    struct gmember *m = &v[g->nmembers++];
    memset(m, 0, sizeof(*m));
    return m;
}

/* ---- serialization: little-endian integers, length-prefixed strings (-1: NULL) and bytes ---- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

static void w_raw(struct wbuf *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        if (!w->p)
            abort();
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void w_i64(struct wbuf *w, int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    w_raw(w, b, 8);
}

static void w_bytes(struct wbuf *w, const void *p, int64_t len)
{
    w_i64(w, len);
    if (len > 0)
        w_raw(w, p, (size_t)len);
}

static void w_str(struct wbuf *w, const char *s) { w_bytes(w, s, s ? (int64_t)strlen(s) : -1); }

#define GROUP_FORMAT 1

uint8_t *group_encode(const struct group *g, size_t *len)
{
    struct wbuf w = {0};
    w_i64(&w, GROUP_FORMAT);
    w_i64(&w, g->phase);
    w_i64(&w, g->generation);
    w_str(&w, g->protocol_type);
    w_str(&w, g->protocol_name);
    w_str(&w, g->leader);
    w_i64(&w, g->rebalance_deadline_ms);
    w_i64(&w, g->initial_until_ms);
    w_i64(&w, g->nmembers);
    for (int i = 0; i < g->nmembers; i++) {
        const struct gmember *m = &g->members[i];
        w_str(&w, m->id);
        w_str(&w, m->instance_id);
        w_str(&w, m->client_id);
        w_str(&w, m->client_host);
        w_i64(&w, m->session_timeout_ms);
        w_i64(&w, m->rebalance_timeout_ms);
        w_i64(&w, m->last_seen_ms);
        w_i64(&w, (m->joined ? 1 : 0) | (m->pending ? 2 : 0));
        w_i64(&w, m->nprotos);
        for (int j = 0; j < m->nprotos; j++) {
            w_str(&w, m->protos[j].name);
            w_bytes(&w, m->protos[j].meta, m->protos[j].meta_len);
        }
        w_bytes(&w, m->assignment, m->assignment ? m->assignment_len : -1);
    }
    *len = w.len;
    return w.p;
}

struct rbuf {
    const uint8_t *p, *end;
    bool bad;
};

static int64_t r_i64(struct rbuf *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return (int64_t)v;
}

/* Bytes (NUL-terminated too, for strings), or NULL for -1 (and for bad input: r->bad). */
static uint8_t *r_bytes(struct rbuf *r, int32_t *len_out)
{
    int64_t len = r_i64(r);
    if (len_out)
        *len_out = (int32_t)(len < 0 ? -1 : len);
    if (r->bad || len < 0)
        return NULL;
    if (len > r->end - r->p || len > INT32_MAX) {
        r->bad = true;
        return NULL;
    }
    uint8_t *d = malloc((size_t)len + 1);
    if (!d)
        abort();
    memcpy(d, r->p, (size_t)len);
    d[len] = 0;
    r->p += len;
    return d;
}

static char *r_str(struct rbuf *r) { return (char *)r_bytes(r, NULL); }

int group_decode(struct group *g, const uint8_t *p, size_t len)
{
    group_init(g);
    struct rbuf r = {p, p + len, false};
    if (r_i64(&r) != GROUP_FORMAT)
        return -1;
    g->phase = (int)r_i64(&r);
    g->generation = (int32_t)r_i64(&r);
    g->protocol_type = r_str(&r);
    g->protocol_name = r_str(&r);
    g->leader = r_str(&r);
    g->rebalance_deadline_ms = r_i64(&r);
    g->initial_until_ms = r_i64(&r);
    /* Counts are bounded by the bytes left (a member takes more than 8), never by a fixed cap:
     * whatever a request could make encode must decode. */
    int64_t n = r_i64(&r);
    if (n < 0 || n > (r.end - r.p) / 8)
        r.bad = true;
    for (int64_t i = 0; !r.bad && i < n; i++) {
        struct gmember *m = add_member(g);
        m->id = r_str(&r);
        m->instance_id = r_str(&r);
        m->client_id = r_str(&r);
        m->client_host = r_str(&r);
        m->session_timeout_ms = (int32_t)r_i64(&r);
        m->rebalance_timeout_ms = (int32_t)r_i64(&r);
        m->last_seen_ms = r_i64(&r);
        int64_t flags = r_i64(&r);
        m->joined = flags & 1;
        m->pending = flags & 2;
        int64_t np = r_i64(&r);
        if (np < 0 || np > (r.end - r.p) / 8 || !m->id) {
            r.bad = true;
            break;
        }
        m->protos = calloc((size_t)np + 1, sizeof(*m->protos));
        if (!m->protos)
            abort();
        for (int64_t j = 0; !r.bad && j < np; j++) {
            m->protos[j].name = r_str(&r);
            m->protos[j].meta = r_bytes(&r, &m->protos[j].meta_len);
            m->nprotos++;
        }
        m->assignment = r_bytes(&r, &m->assignment_len);
    }
    if (r.bad || r.p != r.end) {
        group_free(g);
        return -1;
    }
    return 0;
}

/* ---- the protocol ---- */

static void start_rebalance(struct group *g, int64_t now)
{
    int32_t timeout = 0;
    for (int i = 0; i < g->nmembers; i++) {
        g->members[i].joined = false;
        if (g->members[i].rebalance_timeout_ms > timeout)
            timeout = g->members[i].rebalance_timeout_ms;
    }
    if (g->phase == GROUP_EMPTY)
        g->initial_until_ms = now + (timeout < GROUP_INITIAL_DELAY_MS ? timeout : GROUP_INITIAL_DELAY_MS);
    g->phase = GROUP_PREPARING;
    g->rebalance_deadline_ms = now + timeout;
}

static const struct gproto *member_proto(const struct gmember *m, const char *name)
{
    for (int i = 0; name && i < m->nprotos; i++)
        if (strcmp(m->protos[i].name, name) == 0)
            return &m->protos[i];
    return NULL;
}

static bool all_support(const struct group *g, const char *name)
{
    for (int i = 0; i < g->nmembers; i++)
        if (!g->members[i].pending && !member_proto(&g->members[i], name))
            return false;
    return true;
}

/* Kafka's vote: each member names its most preferred protocol that every member supports; the
 * protocol with most votes wins (ties: the first member's order). Every candidate is one of the
 * first member's protocols, so the count runs over those: O(members x protocols^2). */
static const char *choose_protocol(const struct group *g)
{
    const struct gmember *first = NULL;
    for (int i = 0; i < g->nmembers && !first; i++)
        if (!g->members[i].pending)
            first = &g->members[i];
    if (!first || first->nprotos == 0)
        return NULL;
    int n = first->nprotos;
    bool *ok = calloc((size_t)n, sizeof(*ok));
    int *votes = calloc((size_t)n, sizeof(*votes));
    if (!ok || !votes)
        abort();
    for (int k = 0; k < n; k++)
        ok[k] = all_support(g, first->protos[k].name);
    for (int i = 0; i < g->nmembers; i++) {
        const struct gmember *m = &g->members[i];
        bool voted = false;
        for (int j = 0; !m->pending && !voted && j < m->nprotos; j++)
            for (int k = 0; k < n; k++)
                if (ok[k] && strcmp(first->protos[k].name, m->protos[j].name) == 0) {
                    votes[k]++;
                    voted = true;
                    break;
                }
    }
    int best = -1;
    for (int k = 0; k < n; k++)
        if (ok[k] && (best < 0 || votes[k] > votes[best]))
            best = k;
    free(ok);
    free(votes);
    return best < 0 ? NULL : first->protos[best].name;
}

static void clear_assignment(struct gmember *m)
{
    free(m->assignment);
    m->assignment = NULL;
    m->assignment_len = 0;
}

/* The rebalance ends: members that did not rejoin are out, a new generation begins. */
static void complete_rebalance(struct group *g, int64_t now)
{
    for (int i = 0; i < g->nmembers;) {
        struct gmember *m = &g->members[i];
        if (!m->pending && !m->joined)
            remove_member(g, m);
        else
            i++;
    }
    g->generation++;
    for (int i = 0; i < g->nmembers; i++) {
        g->members[i].joined = false;
        g->members[i].last_seen_ms = now;
        clear_assignment(&g->members[i]);
    }
    if (group_live_members(g) == 0) {
        g->phase = GROUP_EMPTY;
        set_str(&g->protocol_name, NULL);
        set_str(&g->leader, NULL);
        return;
    }
    set_str(&g->protocol_name, choose_protocol(g));
    if (!g->leader) {
        for (int i = 0; i < g->nmembers; i++)
            if (!g->members[i].pending) {
                set_str(&g->leader, g->members[i].id);
                break;
            }
    }
    g->phase = GROUP_COMPLETING;
}

static bool all_joined(const struct group *g)
{
    for (int i = 0; i < g->nmembers; i++)
        if (!g->members[i].pending && !g->members[i].joined)
            return false;
    return true;
}

/* A member that leaves or expires: the others rebalance (or the group is empty). */
static void member_gone(struct group *g, struct gmember *m, int64_t now)
{
    remove_member(g, m);
    if (group_live_members(g) == 0) {
        if (g->phase != GROUP_EMPTY) {
            g->generation++;
            g->phase = GROUP_EMPTY;
        }
        set_str(&g->protocol_name, NULL);
        set_str(&g->leader, NULL);
    } else if (g->phase != GROUP_PREPARING) {
        start_rebalance(g, now);
    }
}

bool group_tick(struct group *g, int64_t now)
{
    bool changed = false;
    for (int i = 0; i < g->nmembers;) {
        struct gmember *m = &g->members[i];
        /* Members waiting in a rebalance are kept alive by their parked JoinGroup. */
        bool waiting = g->phase == GROUP_PREPARING && m->joined;
        if (!waiting && now - m->last_seen_ms > m->session_timeout_ms) {
            if (m->pending)
                remove_member(g, m);
            else
                member_gone(g, m, now);
            changed = true;
            continue;
        }
        i++;
    }
    bool delayed = now < g->initial_until_ms && now < g->rebalance_deadline_ms;
    if (g->phase == GROUP_PREPARING && !delayed && (all_joined(g) || now >= g->rebalance_deadline_ms)) {
        complete_rebalance(g, now);
        changed = true;
    }
    return changed;
}

static bool protos_equal(const struct gmember *m, const struct gproto *v, int n)
{
    if (m->nprotos != n)
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(m->protos[i].name, v[i].name) != 0 || m->protos[i].meta_len != v[i].meta_len ||
            (v[i].meta_len > 0 && memcmp(m->protos[i].meta, v[i].meta, (size_t)v[i].meta_len) != 0))
            return false;
    return true;
}

static void set_protos(struct gmember *m, const struct gproto *v, int n)
{
    protos_free(m->protos, m->nprotos);
    m->protos = calloc((size_t)n + 1, sizeof(*m->protos));
    if (!m->protos)
        abort();
    for (int i = 0; i < n; i++) {
        m->protos[i].name = dup_str(v[i].name);
        m->protos[i].meta_len = v[i].meta_len > 0 ? v[i].meta_len : 0;
        m->protos[i].meta = dup_bytes(v[i].meta, m->protos[i].meta_len);
    }
    m->nprotos = n;
}

/* Does this member support a protocol every other member supports? */
static bool compatible(const struct group *g, const struct join_args *a, const struct gmember *self)
{
    for (int i = 0; i < a->nprotos; i++) {
        bool ok = true;
        for (int j = 0; ok && j < g->nmembers; j++) {
            const struct gmember *m = &g->members[j];
            if (m != self && !m->pending && !member_proto(m, a->protos[i].name))
                ok = false;
        }
        if (ok)
            return true;
    }
    return false;
}

enum group_outcome group_join(struct group *g, const struct join_args *a, int64_t now, struct join_result *out,
                              bool *changed)
{
    memset(out, 0, sizeof(*out));
    out->member_id = (char *)a->member_id;
    if (a->session_timeout_ms < GROUP_MIN_SESSION_MS || a->session_timeout_ms > GROUP_MAX_SESSION_MS) {
        out->error = KERR_INVALID_SESSION_TIMEOUT;
        return GROUP_ANSWER;
    }
    if (!a->protocol_type[0] || a->nprotos <= 0 ||
        (group_live_members(g) > 0 && !str_eq(g->protocol_type, a->protocol_type))) {
        out->error = KERR_INCONSISTENT_GROUP_PROTOCOL;
        return GROUP_ANSWER;
    }
    struct gmember *m = NULL;
    bool is_new = false;
    if (!a->member_id[0] && !member_by_instance(g, a->instance_id) && g->nmembers >= GROUP_MAX_MEMBERS) {
        out->error = KERR_GROUP_MAX_SIZE_REACHED;
        return GROUP_ANSWER;
    }
    if (!a->member_id[0]) {
        m = member_by_instance(g, a->instance_id);
        if (m) {
            /* A static member back with a new id: the old id is fenced from now on. */
            set_str(&m->id, a->new_member_id);
        } else if (a->require_known_id && !a->instance_id) {
            if (!compatible(g, a, NULL)) {
                out->error = KERR_INCONSISTENT_GROUP_PROTOCOL;
                return GROUP_ANSWER;
            }
            m = add_member(g);
            m->id = dup_str(a->new_member_id);
            m->pending = true;
            m->session_timeout_ms = a->session_timeout_ms;
            m->rebalance_timeout_ms = a->rebalance_timeout_ms;
            m->last_seen_ms = now;
            out->member_id = m->id;
            out->error = KERR_MEMBER_ID_REQUIRED;
            *changed = true;
            return GROUP_ANSWER;
        } else {
            is_new = true;
        }
    } else {
        m = group_find_member(g, a->member_id);
        if (!m) {
            out->error = member_by_instance(g, a->instance_id) ? KERR_FENCED_INSTANCE_ID : KERR_UNKNOWN_MEMBER_ID;
            return GROUP_ANSWER;
        }
        if (a->instance_id && !str_eq(m->instance_id, a->instance_id)) {
            out->error = KERR_FENCED_INSTANCE_ID;
            return GROUP_ANSWER;
        }
    }
    if (!compatible(g, a, m)) {
        out->error = KERR_INCONSISTENT_GROUP_PROTOCOL;
        return GROUP_ANSWER;
    }
    if (m && m->pending) {
        m->pending = false;
        is_new = true;
    }
    if (!m) {
        m = add_member(g);
        m->id = dup_str(a->new_member_id);
        m->instance_id = dup_str(a->instance_id);
    }
    bool meta_changed = is_new || !protos_equal(m, a->protos, a->nprotos);
    set_str(&m->client_id, a->client_id);
    set_str(&m->client_host, a->client_host);
    m->session_timeout_ms = a->session_timeout_ms;
    m->rebalance_timeout_ms = a->rebalance_timeout_ms > 0 ? a->rebalance_timeout_ms : a->session_timeout_ms;
    m->last_seen_ms = now;
    if (meta_changed)
        set_protos(m, a->protos, a->nprotos);
    if (group_live_members(g) == 1) /* the only member sets it (an empty group keeps the last one's) */
        set_str(&g->protocol_type, a->protocol_type);
    *changed = true;
    out->member_id = m->id;
    bool leader = str_eq(g->leader, m->id);
    if ((g->phase == GROUP_STABLE || g->phase == GROUP_COMPLETING) && !meta_changed && !leader) {
        /* A follower rejoining with what it had: the current generation, no rebalance. */
        out->error = 0;
        return GROUP_ANSWER;
    }
    int32_t gen = g->generation;
    if (g->phase != GROUP_PREPARING)
        start_rebalance(g, now);
    else if (is_new && now < g->initial_until_ms)
        g->initial_until_ms = now + GROUP_INITIAL_DELAY_MS < g->rebalance_deadline_ms ? now + GROUP_INITIAL_DELAY_MS
                                                                                     : g->rebalance_deadline_ms;
    m->joined = true;
    out->park_generation = gen;
    return GROUP_WAIT;
}

enum group_outcome group_join_check(const struct group *g, const char *member_id, int32_t park_generation,
                                    int *error)
{
    const struct gmember *m = group_find_member(g, member_id);
    *error = 0;
    if (!m) {
        *error = KERR_UNKNOWN_MEMBER_ID;
        return GROUP_ANSWER;
    }
    if (g->generation == park_generation)
        return GROUP_WAIT;
    if (g->phase == GROUP_PREPARING) {
        if (m->joined)
            return GROUP_WAIT;
        /* Its generation came and went: it must join again. */
        *error = KERR_REBALANCE_IN_PROGRESS;
    }
    return GROUP_ANSWER;
}

enum group_outcome group_sync(struct group *g, const char *member_id, const char *instance_id, int32_t generation,
                              const char *protocol_type, const char *protocol_name,
                              const struct sync_assignment *assignments, int n, int64_t now, int *error,
                              bool *changed)
{
    struct gmember *m = group_find_member(g, member_id);
    *error = 0;
    if (!m || m->pending) {
        *error = KERR_UNKNOWN_MEMBER_ID;
        return GROUP_ANSWER;
    }
    if (instance_id && !str_eq(m->instance_id, instance_id)) {
        *error = KERR_FENCED_INSTANCE_ID;
        return GROUP_ANSWER;
    }
    if (generation != g->generation) {
        *error = KERR_ILLEGAL_GENERATION;
        return GROUP_ANSWER;
    }
    if ((protocol_type && !str_eq(protocol_type, g->protocol_type)) ||
        (protocol_name && !str_eq(protocol_name, g->protocol_name))) {
        *error = KERR_INCONSISTENT_GROUP_PROTOCOL;
        return GROUP_ANSWER;
    }
    if (g->phase == GROUP_PREPARING) {
        *error = KERR_REBALANCE_IN_PROGRESS;
        return GROUP_ANSWER;
    }
    m->last_seen_ms = now;
    *changed = true;
    if (g->phase == GROUP_COMPLETING) {
        if (!str_eq(g->leader, m->id))
            return GROUP_WAIT;
        for (int i = 0; i < g->nmembers; i++)
            clear_assignment(&g->members[i]);
        for (int i = 0; i < n; i++) {
            struct gmember *t = group_find_member(g, assignments[i].member_id);
            if (t && !t->pending) {
                clear_assignment(t);
                t->assignment_len = assignments[i].len > 0 ? assignments[i].len : 0;
                t->assignment = dup_bytes(assignments[i].assignment, t->assignment_len);
            }
        }
        g->phase = GROUP_STABLE;
    }
    return GROUP_ANSWER;
}

enum group_outcome group_sync_check(const struct group *g, const char *member_id, int32_t generation, int *error)
{
    const struct gmember *m = group_find_member(g, member_id);
    *error = 0;
    if (!m) {
        *error = KERR_UNKNOWN_MEMBER_ID;
        return GROUP_ANSWER;
    }
    if (g->generation != generation || g->phase == GROUP_PREPARING || g->phase == GROUP_EMPTY) {
        *error = KERR_REBALANCE_IN_PROGRESS;
        return GROUP_ANSWER;
    }
    return g->phase == GROUP_STABLE ? GROUP_ANSWER : GROUP_WAIT;
}

int group_heartbeat(struct group *g, const char *member_id, const char *instance_id, int32_t generation,
                    int64_t now, bool *changed)
{
    struct gmember *m = group_find_member(g, member_id);
    if (!m || m->pending)
        return KERR_UNKNOWN_MEMBER_ID;
    if (instance_id && !str_eq(m->instance_id, instance_id))
        return KERR_FENCED_INSTANCE_ID;
    if (generation != g->generation)
        return KERR_ILLEGAL_GENERATION;
    m->last_seen_ms = now;
    *changed = true;
    return g->phase == GROUP_PREPARING ? KERR_REBALANCE_IN_PROGRESS : 0;
}

int group_leave(struct group *g, const char *member_id, const char *instance_id, int64_t now, bool *changed)
{
    struct gmember *m;
    if (instance_id) {
        m = member_by_instance(g, instance_id);
        if (!m)
            return KERR_UNKNOWN_MEMBER_ID;
        if (member_id[0] && strcmp(m->id, member_id) != 0)
            return KERR_FENCED_INSTANCE_ID;
    } else {
        m = group_find_member(g, member_id);
        if (!m)
            return KERR_UNKNOWN_MEMBER_ID;
    }
    if (m->pending)
        remove_member(g, m);
    else
        member_gone(g, m, now);
    *changed = true;
    return 0;
}

int group_commit_allowed(const struct group *g, const char *member_id, const char *instance_id,
                         int32_t generation)
{
    if (generation < 0 && !member_id[0] && !instance_id)
        return 0;
    const struct gmember *m = group_find_member(g, member_id);
    if (!m || m->pending)
        return KERR_UNKNOWN_MEMBER_ID;
    if (instance_id && !str_eq(m->instance_id, instance_id))
        return KERR_FENCED_INSTANCE_ID;
    if (generation != g->generation)
        return KERR_ILLEGAL_GENERATION;
    /* As Kafka: a member that has its generation but not yet its assignment must sync first. */
    if (g->phase == GROUP_COMPLETING)
        return KERR_REBALANCE_IN_PROGRESS;
    return 0;
}
