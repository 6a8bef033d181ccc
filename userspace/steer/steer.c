/* Loader of the sk_lookup steering program: a libbpf skeleton, maps and link pinned under
 * /sys/fs/bpf/sluice/<name>/, and small setters the supervisor and its forked workers call.
 *
 * After steer_open() nothing here touches libbpf's object state: the setters use map fds cached in
 * struct steer with plain bpf(2) calls, so they work the same in a forked worker. */
#include "steer/steer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "steer.skel.h"
#include "steer/pins.h"
#include "util/log.h"


enum steer_map {
    MAP_CONFIG,
    MAP_SLOT_OWNER,
    MAP_WORKER_SOCKS,
    MAP_WORKER_LOAD,
    MAP_COUNTERS,
    MAP_WORKER_STEERED,
    MAP_PEER_ADDRS,
    NMAPS
};

/* Same names as the maps in bpf/steer.bpf.c, hence as the pinned files. */
static const char *const map_names[NMAPS] = {
    [MAP_CONFIG] = "config",
    [MAP_SLOT_OWNER] = "slot_owner",
    [MAP_WORKER_SOCKS] = "worker_socks",
    [MAP_WORKER_LOAD] = "worker_load",
    [MAP_COUNTERS] = "counters",
    [MAP_WORKER_STEERED] = "worker_steered",
    [MAP_PEER_ADDRS] = "peer_addrs",
};

struct steer {
    struct steer_bpf *skel;
    struct bpf_link *link;
    int map_fds[NMAPS];
    int prog_fd;
    int ncpus; /* possible CPUs: the number of values of a per-CPU map entry */
    uint32_t nslots, nworkers;
    char name[PINS_NAME_MAX + 1];
};

static bool valid_options(const struct steer_options *o, char *err, size_t errlen)
{
    if (o->nworkers == 0 || o->nworkers > STEER_MAX_WORKERS) {
        pins_err(err, errlen, "steering needs 1 to %d workers, not %u", STEER_MAX_WORKERS, o->nworkers);
        return false;
    }
    if (o->nslots > STEER_MAX_SLOTS || (o->nslots > 0 && o->slot_port_base == 0) ||
        (uint32_t)o->slot_port_base + o->nslots > 65536) {
        pins_err(err, errlen, "%u slots from port %u do not fit (at most %d slots, ports 1-65535)",
                o->nslots, o->slot_port_base, STEER_MAX_SLOTS);
        return false;
    }
    if (o->bind_family != 0 && o->bind_family != AF_INET && o->bind_family != AF_INET6) {
        pins_err(err, errlen, "bind family %u is neither IPv4 nor IPv6", o->bind_family);
        return false;
    }
    if (o->bootstrap_port != 0 && o->bootstrap_port >= o->slot_port_base &&
        o->bootstrap_port < (uint32_t)o->slot_port_base + o->nslots) {
        pins_err(err, errlen, "bootstrap port %u is also a slot port", o->bootstrap_port);
        return false;
    }
    return true;
}

/* The network namespace steered by the link pinned in dir: its inode, 0 if that namespace is gone,
 * or -1 if no link is pinned there (or it cannot be read). */
static long long pinned_link_netns(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/link", dir);
    int fd = bpf_obj_get(path);
    if (fd < 0)
        return -1;
    struct bpf_link_info info = {0};
    __u32 len = sizeof(info);
    int r = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (r < 0 || info.type != BPF_LINK_TYPE_NETNS)
        return -1;
    return (long long)info.netns.netns_ino;
}

/* Pins belong to one network namespace: agents in containers share the host's bpffs, and must
 * never steer with (or overwrite) each other's maps. A name taken by a live namespace is refused;
 * the pins of a namespace that is gone are removed, and this agent starts afresh. */
static int claim_name(struct steer *s, const char *dir, ino_t netns_ino, char *err, size_t errlen)
{
    long long owner = pinned_link_netns(dir);
    if (owner < 0 || (ino_t)owner == netns_ino)
        return 0;
    if (owner > 0) {
        pins_err(err, errlen,
                "steering name '%s' is in use by the agent of network namespace net:[%lld] (this is net:[%llu]): "
                "give this agent another --steering-name",
                s->name, owner, (unsigned long long)netns_ino);
        return -1;
    }
    log_info("steer: %s belonged to a network namespace that is gone: starting afresh", dir);
    char again[PINS_DIR_LEN];
    if (steer_unpin(s->name) < 0 || pins_make_dir(s->name, again, err, errlen) < 0) {
        pins_err(err, errlen, "removing the pins in %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Points every map at its pin path, so that loading reuses pinned maps and pins new ones. Maps
 * pinned by a build with another layout cannot be reused: then the whole directory (the old link
 * with it) is removed and steering starts afresh. *fresh tells whether slot_owner is new. */
static int prepare_pins(struct steer *s, const char *dir, bool *fresh, char *err, size_t errlen)
{
    int stale = pins_count_stale(s->skel->obj, dir, err, errlen);
    if (stale < 0)
        return -1;
    if (stale > 0) {
        log_warn("steer: %s holds maps of another layout: removing them, steering starts afresh", dir);
        char again[PINS_DIR_LEN];
        if (steer_unpin(s->name) < 0 || pins_make_dir(s->name, again, err, errlen) < 0) {
            pins_err(err, errlen, "removing stale pins in %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, map_names[MAP_SLOT_OWNER]);
    *fresh = access(path, F_OK) < 0;
    return pins_set_paths(s->skel->obj, dir, err, errlen);
}

/* A pinned link we can take over: an sk_lookup link of the network namespace we are in. */
static bool link_is_ours(int link_fd, ino_t netns_ino)
{
    struct bpf_link_info info = {0};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link_fd, &info, &len) < 0)
        return false;
    return info.type == BPF_LINK_TYPE_NETNS && info.netns.attach_type == BPF_SK_LOOKUP &&
           info.netns.netns_ino == netns_ino;
}

/* Swaps our program into the pinned link if there is a usable one (steering never stops), else
 * attaches to the current network namespace and pins the new link. */
static int attach_link(struct steer *s, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/link", dir);
    struct bpf_program *prog = s->skel->progs.sluice_steer;

    int netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (netns_fd < 0 || fstat(netns_fd, &st) < 0) {
        pins_err(err, errlen, "/proc/self/ns/net: %s", strerror(errno));
        if (netns_fd >= 0)
            close(netns_fd);
        return -1;
    }

    struct bpf_link *link = bpf_link__open(path);
    if (link) {
        if (link_is_ours(bpf_link__fd(link), st.st_ino) && bpf_link__update_program(link, prog) == 0) {
            s->link = link;
            close(netns_fd);
            return 0;
        }
        log_info("steer: replacing the link pinned at %s (not an sk_lookup link of this namespace)", path);
        bpf_link__destroy(link); /* only closes our fd: the pin still holds it */
        if (unlink(path) < 0) {
            pins_err(err, errlen, "removing stale link %s: %s", path, strerror(errno));
            close(netns_fd);
            return -1;
        }
    } else if (errno != ENOENT) {
        pins_err(err, errlen, "opening pinned link %s: %s", path, strerror(errno));
        close(netns_fd);
        return -1;
    }

    link = bpf_program__attach_netns(prog, netns_fd);
    int saved = errno;
    close(netns_fd);
    if (!link) {
        pins_err(err, errlen, "attaching sk_lookup program to the network namespace: %s",
                strerror(saved));
        return -1;
    }
    int r = bpf_link__pin(link, path);
    if (r < 0) {
        pins_err(err, errlen, "pinning link at %s: %s", path, strerror(-r));
        bpf_link__destroy(link); /* detaches: without the pin it would not survive us */
        return -1;
    }
    s->link = link;
    return 0;
}

static int init_slot_owners(struct steer *s, char *err, size_t errlen)
{
    uint32_t none = STEER_NO_WORKER;
    for (uint32_t slot = 0; slot < STEER_MAX_SLOTS; slot++) {
        if (bpf_map_update_elem(s->map_fds[MAP_SLOT_OWNER], &slot, &none, BPF_ANY) < 0) {
            pins_err(err, errlen, "clearing slot %u: %s", slot, strerror(errno));
            return -1;
        }
    }
    return 0;
}

struct steer *steer_open(const struct steer_options *o, char *err, size_t errlen)
{
    pins_err(err, errlen, "unknown error");
    if (!valid_options(o, err, errlen))
        return NULL;
    pins_quiet_libbpf();

    char dir[PINS_DIR_LEN];
    if (pins_make_dir(o->name, dir, err, errlen) < 0)
        return NULL;

    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) {
        pins_err(err, errlen, "counting possible CPUs: %s", strerror(-ncpus));
        return NULL;
    }

    struct steer *s = calloc(1, sizeof(*s));
    if (!s) {
        pins_err(err, errlen, "out of memory");
        return NULL;
    }
    s->ncpus = ncpus;
    s->nslots = o->nslots;
    s->nworkers = o->nworkers;
    snprintf(s->name, sizeof(s->name), "%s", o->name);

    s->skel = steer_bpf__open();
    if (!s->skel) {
        pins_err(err, errlen, "opening the BPF object: %s", strerror(errno));
        goto fail;
    }
    struct stat netns;
    if (stat("/proc/self/ns/net", &netns) < 0) {
        pins_err(err, errlen, "/proc/self/ns/net: %s", strerror(errno));
        goto fail;
    }
    bool fresh;
    if (claim_name(s, dir, netns.st_ino, err, errlen) < 0 || prepare_pins(s, dir, &fresh, err, errlen) < 0)
        goto fail;
    int r = steer_bpf__load(s->skel);
    if (r < 0) {
        pins_err(err, errlen, "loading the sk_lookup program: %s", strerror(-r));
        goto fail;
    }

    s->map_fds[MAP_CONFIG] = bpf_map__fd(s->skel->maps.config);
    s->map_fds[MAP_SLOT_OWNER] = bpf_map__fd(s->skel->maps.slot_owner);
    s->map_fds[MAP_WORKER_SOCKS] = bpf_map__fd(s->skel->maps.worker_socks);
    s->map_fds[MAP_WORKER_LOAD] = bpf_map__fd(s->skel->maps.worker_load);
    s->map_fds[MAP_COUNTERS] = bpf_map__fd(s->skel->maps.counters);
    s->map_fds[MAP_WORKER_STEERED] = bpf_map__fd(s->skel->maps.worker_steered);
    s->map_fds[MAP_PEER_ADDRS] = bpf_map__fd(s->skel->maps.peer_addrs);
    s->prog_fd = bpf_program__fd(s->skel->progs.sluice_steer);

    /* Before the program runs: a fresh map has every slot owned by worker 0. */
    if (fresh && init_slot_owners(s, err, errlen) < 0)
        goto fail;
    uint32_t zero = 0;
    struct steer_config cfg = {
        .bootstrap_port = o->bootstrap_port,
        .slot_port_base = o->slot_port_base,
        .nslots = o->nslots,
        .nworkers = o->nworkers,
        .bind_family = o->bind_family,
        .bind_specific = o->bind_specific,
        .bind_ip4 = o->bind_ip4,
    };
    memcpy(cfg.bind_ip6, o->bind_ip6, sizeof(cfg.bind_ip6));
    if (bpf_map_update_elem(s->map_fds[MAP_CONFIG], &zero, &cfg, BPF_ANY) < 0) {
        pins_err(err, errlen, "writing config: %s", strerror(errno));
        goto fail;
    }
    if (attach_link(s, dir, err, errlen) < 0)
        goto fail;
    pins_err(err, errlen, "%s", "");
    return s;

fail:
    steer_close(s);
    return NULL;
}

int steer_set_worker_socket(struct steer *s, uint32_t worker, int listen_fd)
{
    if (worker >= s->nworkers) {
        log_error("steer: worker %u: registering listener: %s", worker, strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    uint64_t fd = (uint64_t)listen_fd;
    if (bpf_map_update_elem(s->map_fds[MAP_WORKER_SOCKS], &worker, &fd, BPF_ANY) < 0) {
        int e = errno;
        log_error("steer: worker %u: registering listener fd %d: %s%s", worker, listen_fd, strerror(e),
                  e == EOPNOTSUPP ? " (not a listening TCP socket?)" : "");
        errno = e;
        return -1;
    }
    return 0;
}

int steer_clear_worker(struct steer *s, uint32_t worker)
{
    if (worker >= s->nworkers) {
        log_error("steer: worker %u: clearing listener: %s", worker, strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    /* A SOCKMAP answers EINVAL for an empty entry (the key itself was checked above). */
    if (bpf_map_delete_elem(s->map_fds[MAP_WORKER_SOCKS], &worker) < 0 && errno != EINVAL && errno != ENOENT) {
        int e = errno;
        log_error("steer: worker %u: clearing listener: %s", worker, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int steer_set_slot_owner(struct steer *s, uint32_t slot, uint32_t worker)
{
    if (slot >= s->nslots || (worker >= s->nworkers && worker != STEER_NO_WORKER)) {
        log_error("steer: slot %u -> worker %u: %s", slot, worker, strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    if (bpf_map_update_elem(s->map_fds[MAP_SLOT_OWNER], &slot, &worker, BPF_ANY) < 0) {
        int e = errno;
        log_error("steer: slot %u -> worker %u: %s", slot, worker, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int steer_set_worker_load(struct steer *s, uint32_t worker, uint32_t live_conns)
{
    if (worker >= s->nworkers) {
        log_error("steer: worker %u: setting load: %s", worker, strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    struct worker_load load = {.live_conns = live_conns};
    if (bpf_map_update_elem(s->map_fds[MAP_WORKER_LOAD], &worker, &load, BPF_ANY) < 0) {
        int e = errno;
        log_error("steer: worker %u: setting load: %s", worker, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int steer_set_peer_addrs(struct steer *s, const uint32_t *addrs, int n)
{
    if (n < 0 || n > STEER_MAX_PEER_ADDRS) {
        log_error("steer: %d peer addresses (at most %d)", n, STEER_MAX_PEER_ADDRS);
        errno = EINVAL;
        return -1;
    }
    int fd = s->map_fds[MAP_PEER_ADDRS];
    uint32_t one = 1;
    for (int i = 0; i < n; i++) {
        if (bpf_map_update_elem(fd, &addrs[i], &one, BPF_ANY) < 0) {
            int e = errno;
            log_error("steer: adding peer address: %s", strerror(e));
            errno = e;
            return -1;
        }
    }
    /* Then drop the ones no longer listed. Deleting while iterating a hash map can restart the
     * walk, so collect first (the map is small). */
    uint32_t stale[STEER_MAX_PEER_ADDRS];
    int nstale = 0;
    uint32_t key, next;
    int r = bpf_map_get_next_key(fd, NULL, &next);
    while (r == 0 && nstale < STEER_MAX_PEER_ADDRS) {
        key = next;
        bool listed = false;
        for (int i = 0; i < n && !listed; i++)
            listed = addrs[i] == key;
        if (!listed)
            stale[nstale++] = key;
        r = bpf_map_get_next_key(fd, &key, &next);
    }
    for (int i = 0; i < nstale; i++)
        bpf_map_delete_elem(fd, &stale[i]);
    return 0;
}

/* Sums the per-CPU values of entries [0, n) of a per-CPU u64 array into out. */
static int sum_percpu(struct steer *s, enum steer_map m, uint32_t n, uint64_t *out)
{
    uint64_t *values = calloc((size_t)s->ncpus, sizeof(*values));
    if (!values) {
        log_error("steer: reading %s: %s", map_names[m], strerror(ENOMEM));
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t key = 0; key < n; key++) {
        if (bpf_map_lookup_elem(s->map_fds[m], &key, values) < 0) {
            int e = errno;
            log_error("steer: reading %s[%u]: %s", map_names[m], key, strerror(e));
            free(values);
            errno = e;
            return -1;
        }
        out[key] = 0;
        for (int cpu = 0; cpu < s->ncpus; cpu++)
            out[key] += values[cpu];
    }
    free(values);
    return 0;
}

int steer_read_stats(struct steer *s, struct steer_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (sum_percpu(s, MAP_COUNTERS, STEER_COUNTER_MAX, out->counters) < 0 ||
        sum_percpu(s, MAP_WORKER_STEERED, STEER_MAX_WORKERS, out->per_worker) < 0)
        return -1;
    return 0;
}

int steer_map_fd(struct steer *s, const char *map_name)
{
    for (int m = 0; m < NMAPS; m++)
        if (strcmp(map_names[m], map_name) == 0)
            return s->map_fds[m];
    errno = ENOENT;
    return -1;
}

int steer_prog_fd(struct steer *s)
{
    return s->prog_fd;
}

void steer_close(struct steer *s)
{
    if (!s)
        return;
    bpf_link__destroy(s->link); /* closes our fd; the pinned link stays attached */
    steer_bpf__destroy(s->skel); /* closes map and program fds; pins stay */
    free(s);
}

int steer_unpin(const char *name)
{
    return pins_remove(name);
}
