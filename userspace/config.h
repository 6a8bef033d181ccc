/* Agent configuration: every setting has a flag (--kafka-port) and an environment variable
 * (SLUICE_KAFKA_PORT); the flag wins. The table in config.c is the single list of settings. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct config {
    char bind_host[256];
    int kafka_port;
    int http_port;                /* /metrics and /v1/status, served by the supervisor; 0 = off */
    char advertise_strategy[16];  /* auto-ip4 | local | custom */
    char advertise_custom[256];   /* host for strategy custom */
    char private_ip_override[64]; /* auto-ip4 advertises this instead of the detected address */
    char hostname_override[256];  /* load-balancer mode: every slot advertised at this host */
    int port_override_base;       /* load-balancer mode: slot s advertised at this port + s (0: off) */
    char agent_group[64];
    int64_t heartbeat_timeout_ms; /* a member silent this long is dead */
    int64_t commit_poll_ms;       /* waiting fetches look for other processes' commits this often */
    int64_t offsets_retention_ms; /* committed offsets of an empty group are kept this long */
    int64_t retention_ms;         /* topics' default retention.ms */
    int64_t retention_bytes;      /* topics' default retention.bytes (-1: none) */
    int64_t retention_check_ms;   /* background jobs look for work this often */
    int64_t object_delete_grace_ms; /* unreferenced objects are deleted this long after */
    bool compaction_enabled;      /* runs of small chunks are rewritten into big objects */
    int64_t compaction_target_bytes; /* size of one new object (runs of many partitions) */
    int64_t compaction_small_bytes;  /* chunks below this are small */
    int compaction_min_chunks;    /* a run needs more than this many chunks */
    int64_t compaction_max_run_bytes; /* cap of one new chunk (fetch reads a chunk whole) */
    int64_t compaction_min_age_ms; /* objects younger than this are not compacted */
    int64_t key_compaction_map_bytes; /* cleanup.policy=compact: the key map of one cleaning */
    char bucket_url[512];
    char metadata_url[512];
    int64_t batch_timeout_ms;
    int64_t batch_max_bytes;
    int64_t produce_buffer_bytes; /* per worker: produce data not yet taken by the store */
    int64_t max_request_bytes;
    int64_t max_message_bytes;
    int64_t fetch_cache_bytes;
    int64_t fetch_max_bytes;      /* largest fetch answer (at least one batch), whatever the client asks */
    int64_t fetch_read_bytes;     /* per worker: object bytes being read for fetches */
    int default_partitions;
    bool auto_create_topics;
    bool require_sasl;            /* only ApiVersions and SASL before authentication */
    char sasl_mechanisms[64];     /* enabled, comma-separated */
    int64_t sasl_session_lifetime_ms; /* re-authenticate this often (KIP-368); 0 = off */
    char cluster_id[64];
    char log_level[16];
    int workers;                  /* worker processes; 0 = one per online CPU */
    int slots;                    /* virtual brokers advertised in Metadata */
    int slot_port_base;           /* slot s is served at slot_port_base + s; 0 = kafka_port + 1 */
    char steering[16];            /* auto | on | off */
    char steering_name[64];       /* pin folder under /sys/fs/bpf/sluice/; "" = agent-<netns inode>-<kafka_port> */
    char xdp_interface[16];       /* uplink for XDP forwarding of slot connections to their owner host; "" = none */
    char xdp_mode[8];             /* l2 (same segment: rewrite MACs) | ipip (routed: encapsulate) */
    bool authorizer_enabled;      /* ACLs enforced (false: everything allowed) */
    char super_users[1024];       /* "User:a;User:b": allowed everything */
    bool allow_if_no_acl;         /* a resource no ACL matches is allowed */
    bool tls_enabled;             /* every Kafka listener of this agent speaks TLS */
    char tls_cert_file[512];      /* PEM server certificate (chain) */
    char tls_key_file[512];       /* PEM private key */
    char tls_client_ca_file[512]; /* PEM CA(s) client certificates must chain to */
    bool require_mtls;            /* a verified client certificate is required (principal User:<CN>) */

    /* Derived at start-up, not settings: */
    char advertised_host[256];    /* what this agent's workers advertise (strategy applied) */
    char http_host[256];          /* the internal address HTTP binds */
    char agent_id[40];            /* random per agent start; member ids are "<agent_id>-w<worker>" */
    char xdp_addr[46];            /* the xdp-interface's IPv4 address: where other hosts forward our slots */
    int tcp_max_segment;          /* MSS the listeners advertise (0: the route's); xdp-mode ipip leaves room for
                                     the outer header so forwarded packets fit the uplink's MTU */
};

/* Fills defaults, then environment, then argv (after the subcommand). On a bad flag or value prints
 * one line to stderr and returns -1 (callers exit with status 2). */
int config_load(struct config *c, int argc, char **argv);
void config_print_help(const char *prog);
/* Logs the effective configuration, one line. */
void config_log(const struct config *c);

#endif
