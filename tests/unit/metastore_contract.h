/* The metadata store's contract as one set of checks, run against each backend by its test file.
 * url names a fresh, empty store; failures are counted through failed_ like CHECK does. */
#ifndef SLUICE_METASTORE_CONTRACT_H
#define SLUICE_METASTORE_CONTRACT_H

#include <stdint.h>

#include "check.h"
#include "storage/metastore.h"

/* Topics: create (with configs), get, list in byte order, duplicates, delete, re-create. */
void metastore_contract_topics(const char *url, int *failed_);
/* CreatePartitions and config changes: growth in one transaction (the new partitions take
 * commits, fewer is refused), read-modify-write of configs with config_epoch bumped, an edit's
 * error changing nothing, unknown topics. */
void metastore_contract_topic_changes(const char *url, int *failed_);
/* Commits: offsets assigned in array order, per-chunk errors, a failed commit assigns nothing,
 * find_chunks / by time / max timestamp, deletion, persistence across close and reopen. */
void metastore_contract_commits(const char *url, int *failed_);
/* Idempotent producers: InitProducerId (new ids, epoch bumps, fencing) and the sequence rules
 * inside commits (duplicates of each of the last 5 batches, gaps, epochs, wrapping), across a
 * reopen. */
void metastore_contract_producers(const char *url, int *failed_);

/* Consumer groups: state written only at the version it was read (compare-and-set), listed;
 * offsets committed, replaced, fetched with their metadata (NULL kept), expired only when the
 * group is empty. */
void metastore_contract_groups(const char *url, int *failed_);

/* ACLs: added (an identical one stored once), listed in creation order with every field, deleted
 * by id (a missing id is not an error), kept across a reopen. */
void metastore_contract_acls(const char *url, int *failed_);
/* SASL credentials: put replaces, list filters by user and mechanism in order, delete one
 * mechanism or all, counts what it deleted. */
void metastore_contract_credentials(const char *url, int *failed_);

/* Background jobs: job leases by compare-and-set (one holder, renewal, release, expiry), the
 * retention offset by time and by size, trimming (log start up only, OFFSET_OUT_OF_RANGE past the
 * high watermark), log starts listed, unreferenced objects stamped then returned after the grace
 * period (trimmed and deleted topics'), forgotten and looked up. */
void metastore_contract_lifecycle(const char *url, int *failed_);

/* The time index (running maximum timestamps, across commits and within one) and compaction's
 * switch: runs replaced by one chunk each in one transaction, runs that changed (wrong count,
 * trimmed, deleted topic) left alone, replaced objects and empty new ones garbage. */
void metastore_contract_compaction(const char *url, int *failed_);

/* A chunk of count offsets at pos, 100 bytes, one batch, timestamps max_ts - 5 .. max_ts. */
struct commit_chunk contract_chunk(int64_t topic_id, int32_t partition, int64_t count, uint64_t pos, int64_t max_ts);

#endif
