/* Who serves the agent group's slots. Every worker of every agent heartbeats into the metadata
 * store; every process reads the live members of its group and computes the same slot -> member
 * table by rendezvous hashing over their ids, so nobody coordinates and everybody agrees. */
#ifndef SLUICE_MEMBERSHIP_H
#define SLUICE_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "storage/metastore.h"

struct membership {
    struct member_info *members; /* live members of the group, sorted by id */
    uint64_t *ids;               /* their ids hashed, for rendezvous */
    int n;
    bool known;                  /* at least one successful refresh */
};

/* A member id hashed: its identity in rendezvous hashing. */
uint64_t member_id_hash(const char *id);
/* "<agent_id>-w<worker>" */
void member_id(const struct config *cfg, int worker, char *out, size_t outlen);
/* The member record this worker heartbeats. */
void member_self(const struct config *cfg, int worker, struct member_info *out);

/* Re-reads the live members of cfg's group. Returns 0 or -1 (the previous view is kept). */
int membership_refresh(struct membership *ms, struct metastore *m, const struct config *cfg);
/* Takes a list read elsewhere (malloc'd, sorted by id; ms owns it now). Returns 0 or -1. */
int membership_set(struct membership *ms, struct member_info *members, int n);
void membership_free(struct membership *ms);
/* The member owning a slot, or NULL when no member is known. */
const struct member_info *membership_slot_owner(const struct membership *ms, uint32_t slot);
/* Is this member one of this agent's workers? */
bool member_is_local(const struct config *cfg, const struct member_info *m);

#endif
