#include "cluster/membership.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/slots.h"

void member_id(const struct config *cfg, int worker, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-w%d", cfg->agent_id, worker);
}

void member_self(const struct config *cfg, int worker, struct member_info *out)
{
    memset(out, 0, sizeof(*out));
    member_id(cfg, worker, out->id, sizeof(out->id));
    snprintf(out->agent_group, sizeof(out->agent_group), "%s", cfg->agent_group);
    snprintf(out->host, sizeof(out->host), "%s", cfg->advertised_host);
    out->port_base = cfg->slot_port_base;
    out->worker = worker;
    snprintf(out->fwd_addr, sizeof(out->fwd_addr), "%s", cfg->xdp_addr);
}

bool member_is_local(const struct config *cfg, const struct member_info *m)
{
    size_t n = strlen(cfg->agent_id);
    return !strncmp(m->id, cfg->agent_id, n) && m->id[n] == '-';
}

/* FNV-1a 64 of the id. */
uint64_t member_id_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

int membership_refresh(struct membership *ms, struct metastore *m, const struct config *cfg)
{
    struct member_info *members;
    int n;
    if (metastore_list_members(m, cfg->agent_group, cfg->heartbeat_timeout_ms, &members, &n) != 0)
        return -1;
    return membership_set(ms, members, n);
}

int membership_set(struct membership *ms, struct member_info *members, int n)
{
    uint64_t *ids = calloc((size_t)(n ? n : 1), sizeof(uint64_t));
    if (!ids) {
        free(members);
        return -1;
    }
    for (int i = 0; i < n; i++)
        ids[i] = member_id_hash(members[i].id);
    membership_free(ms);
    ms->members = members;
    ms->ids = ids;
    ms->n = n;
    ms->known = true;
    return 0;
}

void membership_free(struct membership *ms)
{
    free(ms->members);
    free(ms->ids);
    ms->members = NULL;
    ms->ids = NULL;
    ms->n = 0;
}

const struct member_info *membership_slot_owner(const struct membership *ms, uint32_t slot)
{
    int owner = slot_owner(slot, ms->ids, NULL, ms->n);
    return owner < 0 ? NULL : &ms->members[owner];
}
