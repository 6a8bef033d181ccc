#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "util/log.h"
#include "util/netaddr.h"

enum setting_kind { SET_STRING, SET_PORT, SET_INT, SET_COUNT, SET_DURATION_MS, SET_BYTES, SET_BYTES_OR_NONE, SET_BOOL };

struct setting {
    const char *flag;      /* --flag */
    const char *env;       /* SLUICE_... */
    enum setting_kind kind;
    size_t offset;         /* into struct config */
    size_t size;           /* strings: buffer size */
    const char *def;       /* default, parsed like user input */
    const char *help;
};

#define S(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)

static const struct setting settings[] = {
    {"kafka-host", "SLUICE_KAFKA_HOST", SET_STRING, S(bind_host), "::",
     "address the Kafka listener binds (:: = every IPv4 and IPv6 address, 0.0.0.0 = every IPv4 address)"},
    {"kafka-port", "SLUICE_KAFKA_PORT", SET_PORT, S(kafka_port), "9092", "Kafka (bootstrap) port"},
    {"http-port", "SLUICE_HTTP_PORT", SET_COUNT, S(http_port), "8080",
     "/metrics and /v1/status, on the internal address (private-ip-override, else the advertised IP; 0: off)"},
    {"advertise-hostname-strategy", "SLUICE_ADVERTISE_HOSTNAME_STRATEGY", SET_STRING, S(advertise_strategy),
     "auto-ip4", "host advertised to clients: auto-ip4 (first non-loopback IPv4), local (127.0.0.1), custom"},
    {"advertise-hostname-custom", "SLUICE_ADVERTISE_HOSTNAME_CUSTOM", SET_STRING, S(advertise_custom), "",
     "the advertised host when the strategy is custom"},
    {"private-ip-override", "SLUICE_PRIVATE_IP_OVERRIDE", SET_STRING, S(private_ip_override), "",
     "auto-ip4 advertises this address instead of the detected one"},
    {"discovery-kafka-hostname-override", "SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE", SET_STRING,
     S(hostname_override), "", "load-balancer mode: advertise every slot at this host"},
    {"discovery-kafka-port-override", "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE", SET_COUNT, S(port_override_base), "0",
     "load-balancer mode: advertise slot s at this port + s (the agent keeps listening on its own)"},
    {"agent-group", "SLUICE_AGENT_GROUP", SET_STRING, S(agent_group), "default",
     "agent group: clients of a group see only its agents (lowercase letters, digits, '-')"},
    {"heartbeat-timeout", "SLUICE_HEARTBEAT_TIMEOUT", SET_DURATION_MS, S(heartbeat_timeout_ms), "6s",
     "a worker that has not heartbeated for this long is dead and its slots move"},
    {"commit-poll-interval", "SLUICE_COMMIT_POLL_INTERVAL", SET_DURATION_MS, S(commit_poll_ms), "20ms",
     "waiting fetches look for commits of other workers and agents this often (PostgreSQL's LISTEN/NOTIFY "
     "also wakes them at once)"},
    {"offsets-retention", "SLUICE_OFFSETS_RETENTION", SET_DURATION_MS, S(offsets_retention_ms), "7d",
     "a consumer group's committed offsets are kept this long after it became empty (Kafka's "
     "offsets.retention.minutes)"},
    {"retention-ms", "SLUICE_RETENTION_MS", SET_DURATION_MS, S(retention_ms), "7d",
     "default retention.ms of topics: older data is deleted (Kafka's log.retention.hours=168)"},
    {"retention-bytes", "SLUICE_RETENTION_BYTES", SET_BYTES_OR_NONE, S(retention_bytes), "-1",
     "default retention.bytes of topics, per partition (-1: no size limit)"},
    {"retention-check-interval", "SLUICE_RETENTION_CHECK_INTERVAL", SET_DURATION_MS, S(retention_check_ms), "30s",
     "how often retention, deletion and garbage collection look for work"},
    {"object-delete-grace", "SLUICE_OBJECT_DELETE_GRACE", SET_DURATION_MS, S(object_delete_grace_ms), "60s",
     "an object no data points into any more is deleted this long after (reads in flight finish first); "
     "an object never committed is deleted once this old"},
    {"compaction-enabled", "SLUICE_COMPACTION_ENABLED", SET_BOOL, S(compaction_enabled), "true",
     "rewrite runs of small chunks into big objects in the background (true/false)"},
    {"compaction-target-bytes", "SLUICE_COMPACTION_TARGET_BYTES", SET_BYTES, S(compaction_target_bytes), "16MiB",
     "size of one object written by compaction (runs of many partitions)"},
    {"compaction-small-bytes", "SLUICE_COMPACTION_SMALL_BYTES", SET_BYTES, S(compaction_small_bytes), "256KiB",
     "chunks below this size are compacted"},
    {"compaction-min-chunks", "SLUICE_COMPACTION_MIN_CHUNKS", SET_INT, S(compaction_min_chunks), "8",
     "a run of small chunks is rewritten when it has more than this many"},
    {"compaction-max-run-bytes", "SLUICE_COMPACTION_MAX_RUN_BYTES", SET_BYTES, S(compaction_max_run_bytes), "1MiB",
     "largest chunk compaction writes (fetches read a chunk whole: at most fetch-cache-bytes)"},
    {"compaction-min-age", "SLUICE_COMPACTION_MIN_AGE", SET_DURATION_MS, S(compaction_min_age_ms), "5s",
     "objects younger than this are not compacted (the hot tail)"},
    {"key-compaction-map-bytes", "SLUICE_KEY_COMPACTION_MAP_BYTES", SET_BYTES, S(key_compaction_map_bytes), "32MiB",
     "key map of one compacted partition's cleaning (keys beyond it wait for the next round)"},
    {"bucket-url", "SLUICE_BUCKET_URL", SET_STRING, S(bucket_url), "file://data/objects",
     "object store: file:///path"},
    {"metadata-url", "SLUICE_METADATA_URL", SET_STRING, S(metadata_url), "sqlite://data/metadata.db",
     "metadata store: sqlite:///path"},
    {"batch-timeout", "SLUICE_BATCH_TIMEOUT", SET_DURATION_MS, S(batch_timeout_ms), "5ms",
     "flush buffered produce data after this long (e.g. 5ms, 250ms, 1s)"},
    {"batch-max-bytes", "SLUICE_BATCH_MAX_BYTES", SET_BYTES, S(batch_max_bytes), "8MiB",
     "flush as soon as this much produce data is buffered"},
    {"produce-buffer-bytes", "SLUICE_PRODUCE_BUFFER_BYTES", SET_BYTES, S(produce_buffer_bytes), "24MiB",
     "produce data a worker holds while the store has not taken it; beyond, producers' sockets are not read"},
    {"max-request-bytes", "SLUICE_MAX_REQUEST_BYTES", SET_BYTES, S(max_request_bytes), "100MiB",
     "largest request accepted; a larger length prefix closes the connection"},
    {"max-message-bytes", "SLUICE_MAX_MESSAGE_BYTES", SET_BYTES, S(max_message_bytes), "1048588",
     "largest record batch accepted (Kafka's message.max.bytes)"},
    {"fetch-cache-bytes", "SLUICE_FETCH_CACHE_BYTES", SET_BYTES, S(fetch_cache_bytes), "16MiB",
     "memory for caching object ranges read by fetches"},
    {"fetch-max-bytes", "SLUICE_FETCH_MAX_BYTES", SET_BYTES, S(fetch_max_bytes), "4MiB",
     "largest fetch answer whatever the client asks (Kafka's fetch.max.bytes; at least one batch)"},
    {"fetch-read-bytes", "SLUICE_FETCH_READ_BYTES", SET_BYTES, S(fetch_read_bytes), "8MiB",
     "object bytes a worker reads for fetches at once; beyond, fetches wait for room"},
    {"default-partitions", "SLUICE_DEFAULT_PARTITIONS", SET_INT, S(default_partitions), "1",
     "partitions of auto-created topics and of CreateTopics with num_partitions -1"},
    {"auto-create-topics", "SLUICE_AUTO_CREATE_TOPICS", SET_BOOL, S(auto_create_topics), "true",
     "create unknown topics on Metadata/Produce requests (true/false)"},
    {"require-sasl-authentication", "SLUICE_REQUIRE_SASL_AUTHENTICATION", SET_BOOL, S(require_sasl), "false",
     "clients must authenticate with SASL before any request but ApiVersions (true/false)"},
    {"sasl-mechanisms", "SLUICE_SASL_MECHANISMS", SET_STRING, S(sasl_mechanisms), "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
     "SASL mechanisms accepted, comma-separated (users: sluice user add)"},
    {"sasl-session-lifetime", "SLUICE_SASL_SESSION_LIFETIME", SET_DURATION_MS, S(sasl_session_lifetime_ms), "0",
     "clients re-authenticate this often or their connection is closed (Kafka's connections.max.reauth.ms; 0: off)"},
    {"cluster-id", "SLUICE_CLUSTER_ID", SET_STRING, S(cluster_id), "sluice", "cluster id reported to clients"},
    {"log-level", "SLUICE_LOG_LEVEL", SET_STRING, S(log_level), "info", "debug, info, warn or error"},
    {"workers", "SLUICE_WORKERS", SET_COUNT, S(workers), "0", "worker processes (0: one per online CPU)"},
    {"slots", "SLUICE_SLOTS", SET_INT, S(slots), "16", "virtual brokers (node ids) advertised to clients"},
    {"slot-port-base", "SLUICE_SLOT_PORT_BASE", SET_COUNT, S(slot_port_base), "0",
     "slot s listens on this port + s (0: kafka-port + 1)"},
    {"steering", "SLUICE_STEERING", SET_STRING, S(steering), "auto",
     "eBPF connection steering: auto (on if the kernel allows), on (fail without it), off"},
    {"steering-name", "SLUICE_STEERING_NAME", SET_STRING, S(steering_name), "",
     "pin folder under /sys/fs/bpf/sluice/ (default agent-<netns inode>-<kafka-port>)"},
    {"xdp-interface", "SLUICE_XDP_INTERFACE", SET_STRING, S(xdp_interface), "",
     "uplink interface: XDP forwards each slot connection to the host that owns the slot (unset: no XDP)"},
    {"xdp-mode", "SLUICE_XDP_MODE", SET_STRING, S(xdp_mode), "l2",
     "how XDP reaches the owner host: l2 (same segment: rewrite MACs) or ipip (routed: encapsulate)"},
    {"authorizer-enabled", "SLUICE_AUTHORIZER_ENABLED", SET_BOOL, S(authorizer_enabled), "false",
     "enforce Kafka ACLs (false: every principal may do everything)"},
    {"super-users", "SLUICE_SUPER_USERS", SET_STRING, S(super_users), "",
     "principals allowed everything when the authorizer is on, e.g. User:admin;User:ops"},
    {"allow-everyone-if-no-acl-found", "SLUICE_ALLOW_EVERYONE_IF_NO_ACL_FOUND", SET_BOOL, S(allow_if_no_acl),
     "false", "with the authorizer on, allow access to a resource no ACL matches"},
    {"tls-enabled", "SLUICE_TLS_ENABLED", SET_BOOL, S(tls_enabled), "false",
     "every Kafka listener of this agent speaks TLS 1.2/1.3 (true/false)"},
    {"tls-server-cert-file", "SLUICE_TLS_SERVER_CERT_FILE", SET_STRING, S(tls_cert_file), "",
     "PEM certificate (chain) the agent presents; reloaded on SIGHUP"},
    {"tls-server-private-key-file", "SLUICE_TLS_SERVER_PRIVATE_KEY_FILE", SET_STRING, S(tls_key_file), "",
     "PEM private key of the certificate; reloaded on SIGHUP"},
    {"tls-client-ca-file", "SLUICE_TLS_CLIENT_CA_FILE", SET_STRING, S(tls_client_ca_file), "",
     "PEM CA certificates that client certificates must chain to"},
    {"require-mtls-authentication", "SLUICE_REQUIRE_MTLS_AUTHENTICATION", SET_BOOL, S(require_mtls), "false",
     "TLS clients must present a certificate signed by tls-client-ca-file; principal User:<subject CN>"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Parses "1234", "5ms", "2s", "1m" into milliseconds. */
static int parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mult = 1;
    if (*end == 0 || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* Parses "1048576", "64KiB", "8MiB", "1GiB" (also KB/MB/GB as powers of 1000). */
static int parse_bytes(const char *s, int64_t *out)
{
    static const struct { const char *suffix; long long mult; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30},
        {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
    };
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > INT64_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

static int parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

/* Sets one setting from text; `source` names where the text came from, for the error line. */
static int apply(struct config *c, const struct setting *st, const char *value, const char *source)
{
    char *field = (char *)c + st->offset;
    long long n;
    int rc = 0;
    switch (st->kind) {
    case SET_STRING:
        if (strlen(value) >= st->size)
            rc = -1;
        else
            memcpy(field, value, strlen(value) + 1);
        break;
    case SET_PORT:
        rc = parse_int(value, 1, 65535, &n);
        if (!rc)
            *(int *)field = (int)n;
        break;
    case SET_INT:
        rc = parse_int(value, 1, 1000000, &n);
        if (!rc)
            *(int *)field = (int)n;
        break;
    case SET_COUNT: /* like SET_INT, but 0 is allowed and means "derive it" */
        rc = parse_int(value, 0, 65535, &n);
        if (!rc)
            *(int *)field = (int)n;
        break;
    case SET_DURATION_MS:
        rc = parse_duration_ms(value, (int64_t *)field);
        break;
    case SET_BYTES:
        rc = parse_bytes(value, (int64_t *)field);
        break;
    case SET_BYTES_OR_NONE: /* -1: no limit */
        if (!strcmp(value, "-1"))
            *(int64_t *)field = -1;
        else
            rc = parse_bytes(value, (int64_t *)field);
        break;
    case SET_BOOL:
        rc = parse_bool(value, (bool *)field);
        break;
    }
    if (rc)
        fprintf(stderr, "sluice: invalid value '%s' for %s\n", value, source);
    return rc;
}

/* Every name in sasl-mechanisms is one sluice serves (a typo would silently disable one). */
static int check_sasl_mechanisms(const char *list)
{
    static const char *const known[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        bool ok = n == 0;
        for (size_t k = 0; k < 3 && !ok; k++)
            ok = strlen(known[k]) == n && !strncmp(known[k], p, n);
        if (!ok) {
            fprintf(stderr, "sluice: sasl-mechanisms: unknown mechanism '%.*s' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)\n",
                    (int)n, p);
            return -1;
        }
        p += n;
    }
    return 0;
}

static int check_ranges(struct config *c)
{
    if (check_sasl_mechanisms(c->sasl_mechanisms) != 0)
        return -1;
    if (c->batch_max_bytes < 1024 || c->batch_max_bytes > (1 << 30)) {
        fprintf(stderr, "sluice: batch-max-bytes must be between 1KiB and 1GiB\n");
        return -1;
    }
    if (c->produce_buffer_bytes < c->batch_max_bytes) {
        fprintf(stderr, "sluice: produce-buffer-bytes must be at least batch-max-bytes\n");
        return -1;
    }
    if (c->fetch_max_bytes < 1024 || c->fetch_max_bytes > INT32_MAX) {
        fprintf(stderr, "sluice: fetch-max-bytes must be between 1KiB and %d\n", INT32_MAX);
        return -1;
    }
    if (c->fetch_read_bytes < (1 << 20)) {
        fprintf(stderr, "sluice: fetch-read-bytes must be at least 1MiB\n");
        return -1;
    }
    if (c->max_request_bytes < 1024 || c->max_request_bytes > INT32_MAX) {
        fprintf(stderr, "sluice: max-request-bytes must be between 1024 and %d\n", INT32_MAX);
        return -1;
    }
    /* a compacted chunk is read and cached whole by fetches; an object holds at least one run */
    if (c->compaction_max_run_bytes < 1024 || c->compaction_max_run_bytes > c->fetch_cache_bytes ||
        c->compaction_max_run_bytes > UINT32_MAX) {
        fprintf(stderr, "sluice: compaction-max-run-bytes must be between 1KiB and fetch-cache-bytes\n");
        return -1;
    }
    if (c->compaction_target_bytes < c->compaction_max_run_bytes || c->compaction_target_bytes > (1 << 30)) {
        fprintf(stderr, "sluice: compaction-target-bytes must be between compaction-max-run-bytes and 1GiB\n");
        return -1;
    }
    if (c->compaction_small_bytes < 1 || c->compaction_small_bytes > c->compaction_max_run_bytes) {
        fprintf(stderr, "sluice: compaction-small-bytes must be between 1 and compaction-max-run-bytes\n");
        return -1;
    }
    if (c->key_compaction_map_bytes < 4096 || c->key_compaction_map_bytes > ((int64_t)1 << 30)) {
        fprintf(stderr, "sluice: key-compaction-map-bytes must be between 4KiB and 1GiB\n");
        return -1;
    }
    if (c->compaction_min_chunks > 100000) {
        fprintf(stderr, "sluice: compaction-min-chunks must be between 1 and 100000\n");
        return -1;
    }
    if (c->batch_timeout_ms > 60000) {
        fprintf(stderr, "sluice: batch-timeout must be at most 60s\n");
        return -1;
    }
    if (strcmp(c->steering, "auto") && strcmp(c->steering, "on") && strcmp(c->steering, "off")) {
        fprintf(stderr, "sluice: invalid value '%s' for steering (auto, on, off)\n", c->steering);
        return -1;
    }
    if (strcmp(c->xdp_mode, "l2") && strcmp(c->xdp_mode, "ipip")) {
        fprintf(stderr, "sluice: invalid value '%s' for xdp-mode (l2, ipip)\n", c->xdp_mode);
        return -1;
    }
    if (c->xdp_interface[0] && !strcmp(c->steering, "off")) {
        fprintf(stderr, "sluice: xdp-interface needs eBPF steering (steering auto or on, not off)\n");
        return -1;
    }
    if (c->require_mtls && !c->tls_enabled) {
        fprintf(stderr, "sluice: require-mtls-authentication needs tls-enabled true\n");
        return -1;
    }
    if (c->slots > 4096 || c->workers > 64) {
        fprintf(stderr, "sluice: at most 4096 slots and 64 workers\n");
        return -1;
    }
    if (c->slot_port_base == 0)
        c->slot_port_base = c->kafka_port + 1;
    if (c->slot_port_base + c->slots - 1 > 65535) {
        fprintf(stderr, "sluice: slot ports %d..%d do not fit below 65536\n", c->slot_port_base,
                c->slot_port_base + c->slots - 1);
        return -1;
    }
    if (c->kafka_port >= c->slot_port_base && c->kafka_port < c->slot_port_base + c->slots) {
        fprintf(stderr, "sluice: kafka-port %d lies inside the slot ports %d..%d\n", c->kafka_port,
                c->slot_port_base, c->slot_port_base + c->slots - 1);
        return -1;
    }
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n < 1 ? 1 : n > 64 ? 64 : (int)n;
    }
    if (strcmp(c->advertise_strategy, "auto-ip4") && strcmp(c->advertise_strategy, "local") &&
        strcmp(c->advertise_strategy, "custom")) {
        fprintf(stderr, "sluice: invalid value '%s' for advertise-hostname-strategy (auto-ip4, local, custom)\n",
                c->advertise_strategy);
        return -1;
    }
    if (!strcmp(c->advertise_strategy, "custom") && !c->advertise_custom[0]) {
        fprintf(stderr, "sluice: advertise-hostname-strategy custom needs advertise-hostname-custom\n");
        return -1;
    }
    if (!c->agent_group[0] || strspn(c->agent_group, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(c->agent_group)) {
        fprintf(stderr, "sluice: invalid agent-group '%s' (lowercase letters, digits, '-')\n", c->agent_group);
        return -1;
    }
    if (c->commit_poll_ms < 1 || c->commit_poll_ms > 60000) {
        fprintf(stderr, "sluice: commit-poll-interval must be between 1ms and 60s\n");
        return -1;
    }
    if (c->heartbeat_timeout_ms < 600) {
        fprintf(stderr, "sluice: heartbeat-timeout must be at least 600ms\n");
        return -1;
    }
    if (c->port_override_base && c->port_override_base + c->slots - 1 > 65535) {
        fprintf(stderr, "sluice: discovery-kafka-port-override %d + %d slots does not fit below 65536\n",
                c->port_override_base, c->slots);
        return -1;
    }
    if (!c->steering_name[0]) {
        /* Agents in different network namespaces (containers) may share one bpffs and one port
         * number: the namespace is part of the default name, so their pins never meet. */
        struct stat ns;
        if (stat("/proc/self/ns/net", &ns) == 0)
            snprintf(c->steering_name, sizeof(c->steering_name), "agent-%llu-%d", (unsigned long long)ns.st_ino,
                     c->kafka_port);
        else
            snprintf(c->steering_name, sizeof(c->steering_name), "agent-%d", c->kafka_port);
    }
    for (const char *p = c->steering_name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.')) {
            fprintf(stderr, "sluice: invalid steering-name '%s' (letters, digits, '-', '_', '.')\n", c->steering_name);
            return -1;
        }
    const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(c->log_level, levels[i])) {
            log_min_level = (enum log_level)i;
            return 0;
        }
    fprintf(stderr, "sluice: invalid value '%s' for log-level (debug, info, warn, error)\n", c->log_level);
    return -1;
}

/* The first IPv4 address of one interface. */
static int interface_ipv4(const char *ifname, char *out, size_t outlen)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return -1;
    int rc = -1;
    for (struct ifaddrs *i = ifs; i && rc; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, ifname) &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)outlen))
            rc = 0;
    freeifaddrs(ifs);
    return rc;
}

/* auto-ip4: the first IPv4 address of an interface that is up and not loopback. */
static int first_ipv4(char *out, size_t outlen)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return -1;
    int rc = -1;
    for (struct ifaddrs *i = ifs; i && rc; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        if (inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)outlen))
            rc = 0;
    }
    freeifaddrs(ifs);
    return rc;
}

/* The uplink's MTU, or 1500 if it cannot be read (the interface is checked again at start-up). */
static int interface_mtu(const char *ifname)
{
    char path[128];
    snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", ifname);
    FILE *f = fopen(path, "r");
    int mtu = 0;
    if (f) {
        if (fscanf(f, "%d", &mtu) != 1)
            mtu = 0;
        fclose(f);
    }
    return mtu >= 576 ? mtu : 1500;
}

/* Fills the derived fields: the advertised host, this agent's random id, the listeners' MSS. */
static void derive(struct config *c)
{
    if (!strcmp(c->bind_host, "::") && !ipv6_available()) {
        log_warn("IPv6 is disabled on this host: listening on 0.0.0.0 (IPv4) instead of ::");
        snprintf(c->bind_host, sizeof(c->bind_host), "0.0.0.0");
    }
    /* ipip adds a 20-byte outer IPv4 header to every forwarded packet. Clients size their segments
     * by the MSS our SYN-ACK advertises, so advertise one that still fits the uplink's MTU:
     * MTU - outer IPv4 (20) - inner IPv4 (20) - TCP (20). */
    if (c->xdp_interface[0] && !strcmp(c->xdp_mode, "ipip"))
        c->tcp_max_segment = interface_mtu(c->xdp_interface) - 60;
    if (!strcmp(c->advertise_strategy, "local"))
        snprintf(c->advertised_host, sizeof(c->advertised_host), "127.0.0.1");
    else if (!strcmp(c->advertise_strategy, "custom"))
        snprintf(c->advertised_host, sizeof(c->advertised_host), "%s", c->advertise_custom);
    else if (c->private_ip_override[0])
        snprintf(c->advertised_host, sizeof(c->advertised_host), "%s", c->private_ip_override);
    else if (first_ipv4(c->advertised_host, sizeof(c->advertised_host)) != 0)
        snprintf(c->advertised_host, sizeof(c->advertised_host), "127.0.0.1"); /* no network: loopback */
    /* HTTP (metrics, health) is for the inside: the private address, else the advertised one when
     * it is an address (auto-ip4's detected one, local's 127.0.0.1); a custom host name gets the
     * detected private IPv4. */
    struct in6_addr any;
    if (c->private_ip_override[0])
        snprintf(c->http_host, sizeof(c->http_host), "%s", c->private_ip_override);
    else if (inet_pton(AF_INET, c->advertised_host, &any) == 1 || inet_pton(AF_INET6, c->advertised_host, &any) == 1)
        snprintf(c->http_host, sizeof(c->http_host), "%s", c->advertised_host);
    else if (first_ipv4(c->http_host, sizeof(c->http_host)) != 0)
        snprintf(c->http_host, sizeof(c->http_host), "127.0.0.1");
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        memset(rnd, 0x5a, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(c->agent_id + 2 * i, 3, "%02x", rnd[i]);
}

int config_load(struct config *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NSETTINGS; i++)
        if (apply(c, &settings[i], settings[i].def, "default"))
            return -1;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && apply(c, &settings[i], v, settings[i].env))
            return -1;
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "sluice: unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *st = NULL;
        for (size_t i = 0; i < NSETTINGS; i++)
            if (strlen(settings[i].flag) == nlen && !strncmp(settings[i].flag, name, nlen))
                st = &settings[i];
        if (!st) {
            fprintf(stderr, "sluice: unknown flag '%.*s' (see --help)\n", (int)(nlen + 2), arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!value) {
            fprintf(stderr, "sluice: flag --%s needs a value\n", st->flag);
            return -1;
        }
        char source[64];
        snprintf(source, sizeof(source), "--%s", st->flag);
        if (apply(c, st, value, source))
            return -1;
    }
    if (check_ranges(c) != 0)
        return -1;
    if (c->xdp_interface[0] && interface_ipv4(c->xdp_interface, c->xdp_addr, sizeof(c->xdp_addr)) != 0) {
        fprintf(stderr, "sluice: xdp-interface %s does not exist or has no IPv4 address\n", c->xdp_interface);
        return -1;
    }
    derive(c);
    return 0;
}

void config_print_help(const char *prog)
{
    printf("usage: %s agent [--flag value]...\n\nSettings (flag, environment variable, default):\n", prog);
    for (size_t i = 0; i < NSETTINGS; i++)
        printf("  --%-20s %-30s %-26s %s\n", settings[i].flag, settings[i].env, settings[i].def, settings[i].help);
}

void config_log(const struct config *c)
{
    bool v6 = strchr(c->bind_host, ':') != NULL;
    log_info("config: agent=%s kafka=%s%s%s:%d slots=%d at ports %d..%d workers=%d steering=%s xdp=%s%s%s advertise=%s "
             "group=%s bucket=%s metadata=%s batch_timeout=%lldms batch_max_bytes=%lld default_partitions=%d "
             "auto_create_topics=%s tls=%s",
             c->agent_id, v6 ? "[" : "", c->bind_host, v6 ? "]" : "", c->kafka_port, c->slots, c->slot_port_base,
             c->slot_port_base + c->slots - 1, c->workers, c->steering, c->xdp_interface[0] ? c->xdp_interface : "off",
             c->xdp_interface[0] ? " mode " : "", c->xdp_interface[0] ? c->xdp_mode : "", c->advertised_host,
             c->agent_group, c->bucket_url, c->metadata_url, (long long)c->batch_timeout_ms,
             (long long)c->batch_max_bytes, c->default_partitions, c->auto_create_topics ? "true" : "false",
             !c->tls_enabled ? "off" : c->require_mtls ? "mtls" : "on");
}
