/* `sluice steer status|remove`: what the kernel is doing with an agent's connections, read straight
 * from the pinned maps (the same numbers `bpftool map dump pinned ...` shows, summed and named):
 * sk_lookup's slot -> worker table and, when the agent forwards, XDP's slot -> host table. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpf/forward.h"
#include "bpf/steer.h"
#include "steer/counter_names.h"
#include "steer/steer.h"

#define PIN_ROOT "/sys/fs/bpf/sluice"

static int open_map(const char *name, const char *map)
{
    char path[256];
    snprintf(path, sizeof(path), PIN_ROOT "/%s/%s", name, map);
    int fd = bpf_obj_get(path);
    if (fd < 0)
        fprintf(stderr, "sluice: cannot open %s: %s\n", path, strerror(errno));
    return fd;
}

/* Sums one key of a per-CPU u64 map. */
static uint64_t percpu_sum(int fd, uint32_t key, int ncpus)
{
    uint64_t *vals = calloc((size_t)ncpus, sizeof(uint64_t));
    uint64_t sum = 0;
    if (vals && bpf_map_lookup_elem(fd, &key, vals) == 0)
        for (int c = 0; c < ncpus; c++)
            sum += vals[c];
    free(vals);
    return sum;
}

/* The network namespace the agent's sk_lookup link steers (0: unknown or gone). */
static unsigned long long agent_netns(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), PIN_ROOT "/%s/link", name);
    int fd = bpf_obj_get(path);
    if (fd < 0)
        return 0;
    struct bpf_link_info info = {0};
    __u32 len = sizeof(info);
    int r = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    return r == 0 && info.type == BPF_LINK_TYPE_NETNS ? info.netns.netns_ino : 0;
}

static unsigned long long this_netns(void)
{
    struct stat st;
    return stat("/proc/self/ns/net", &st) == 0 ? (unsigned long long)st.st_ino : 1;
}

static void print_host(const struct fwd_host *h, const struct fwd_config *cfg, bool json)
{
    char ip[INET_ADDRSTRLEN] = "";
    if (h->ip4)
        inet_ntop(AF_INET, &h->ip4, ip, sizeof(ip));
    const uint8_t *m = h->mac;
    if (json)
        printf("{\"address\":\"%s\",\"mac\":\"%02x:%02x:%02x:%02x:%02x:%02x\",\"here\":%s}", ip, m[0], m[1], m[2],
               m[3], m[4], m[5], h->ip4 && h->ip4 == cfg->self_ip4 ? "true" : "false");
    else if (!h->ip4)
        printf("%-32s", "-");
    else if (h->ip4 == cfg->self_ip4)
        printf("%-32s", "here");
    else {
        char text[64];
        snprintf(text, sizeof(text), "%s (%02x:%02x:%02x:%02x:%02x:%02x)", ip, m[0], m[1], m[2], m[3], m[4], m[5]);
        printf("%-32s", text);
    }
}

/* The XDP part, when the agent forwards: its config, counters and slot table. */
static void xdp_status(const char *name, bool json, int ncpus)
{
    char path[256];
    snprintf(path, sizeof(path), PIN_ROOT "/%s/fwd_config", name);
    if (access(path, F_OK) != 0) {
        printf(json ? ",\"xdp\":null" : "  xdp: not configured (no --xdp-interface)\n");
        return;
    }
    int cfg_fd = open_map(name, "fwd_config"), routes_fd = open_map(name, "slot_hosts"),
        cnt_fd = open_map(name, "fwd_counters");
    struct fwd_config cfg;
    uint32_t zero = 0;
    if (cfg_fd < 0 || routes_fd < 0 || cnt_fd < 0 || bpf_map_lookup_elem(cfg_fd, &zero, &cfg) != 0) {
        printf(json ? ",\"xdp\":null" : "  xdp: pinned maps unreadable\n");
        return;
    }
    char ip[INET_ADDRSTRLEN] = "", ifname[IF_NAMESIZE] = "?";
    inet_ntop(AF_INET, &cfg.self_ip4, ip, sizeof(ip));
    /* An interface index names an interface of the agent's network namespace only. */
    if (agent_netns(name) == this_netns())
        if_indextoname(cfg.ifindex, ifname);
    else
        snprintf(ifname, sizeof(ifname), "(other netns)");
    const char *mode = cfg.mode == FWD_MODE_IPIP ? "ipip" : "l2";
    if (json)
        printf(",\"xdp\":{\"ifindex\":%u,\"interface\":\"%s\",\"mode\":\"%s\",\"address\":\"%s\",\"mtu\":%u,"
               "\"counters\":{",
               cfg.ifindex, ifname, mode, ip, cfg.mtu);
    else
        printf("  xdp: %s (ifindex %u), mode %s, address %s, mtu %u\n  forwarding:", ifname, cfg.ifindex, mode, ip,
               cfg.mtu);
    for (uint32_t k = 0; k < FWD_COUNTER_MAX; k++)
        printf(json ? "%s\"%s\":%llu" : " %s%s=%llu", json && k ? "," : "", fwd_counter_names[k],
               (unsigned long long)percpu_sum(cnt_fd, k, ncpus));
    printf(json ? "},\"slots\":[" : "\n  slot  owner host                      previous owner\n");
    for (uint32_t s = 0; s < cfg.nslots && s < STEER_MAX_SLOTS; s++) {
        struct slot_route r = {0};
        bpf_map_lookup_elem(routes_fd, &s, &r);
        if (json) {
            printf("%s{\"slot\":%u,\"owner\":", s ? "," : "", s);
            print_host(&r.owner, &cfg, true);
            printf(",\"previous\":");
            print_host(&r.previous, &cfg, true);
            printf("}");
        } else {
            printf("  %-4u  ", s);
            print_host(&r.owner, &cfg, false);
            print_host(&r.previous, &cfg, false);
            printf("\n");
        }
    }
    printf(json ? "]}" : "");
    close(cfg_fd);
    close(routes_fd);
    close(cnt_fd);
}

static int status(const char *name, bool json)
{
    char dir[256];
    snprintf(dir, sizeof(dir), PIN_ROOT "/%s", name);
    if (access(dir, F_OK) != 0) {
        /* One line that says what there is instead. */
        char names[512] = "";
        DIR *d = opendir(PIN_ROOT);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL)
            if (de->d_name[0] != '.' && strlen(names) + strlen(de->d_name) + 2 < sizeof(names)) {
                strcat(names, names[0] ? " " : "");
                strcat(names, de->d_name);
            }
        if (d)
            closedir(d);
        fprintf(stderr, "sluice: no steering pinned as %s (no agent on that port in this network namespace?); "
                        "pinned: %s\n", dir, names[0] ? names : "none");
        return 1;
    }
    int cfg_fd = open_map(name, "config"), owner_fd = open_map(name, "slot_owner"),
        load_fd = open_map(name, "worker_load"), cnt_fd = open_map(name, "counters"),
        steered_fd = open_map(name, "worker_steered");
    if (cfg_fd < 0 || owner_fd < 0 || load_fd < 0 || cnt_fd < 0 || steered_fd < 0)
        return 1;
    int ncpus = libbpf_num_possible_cpus();
    uint32_t zero = 0;
    struct steer_config cfg;
    if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg) != 0) {
        fprintf(stderr, "sluice: cannot read the config map: %s\n", strerror(errno));
        return 1;
    }
    char link[256];
    snprintf(link, sizeof(link), PIN_ROOT "/%s/link", name);
    bool linked = access(link, F_OK) == 0;

    if (json)
        printf("{\"name\":\"%s\",\"link_pinned\":%s,\"bootstrap_port\":%u,\"slot_port_base\":%u,\"slots\":%u,"
               "\"workers\":%u,\"counters\":{",
               name, linked ? "true" : "false", cfg.bootstrap_port, cfg.slot_port_base, cfg.nslots, cfg.nworkers);
    else
        printf("steering %s: link %s\n  bootstrap port %u, %u slots at ports %u..%u, %u workers\n  decisions:", name,
               linked ? "pinned (attached)" : "NOT pinned", cfg.bootstrap_port, cfg.nslots, cfg.slot_port_base,
               cfg.slot_port_base + cfg.nslots - 1, cfg.nworkers);
    for (uint32_t k = 0; k < STEER_COUNTER_MAX; k++)
        printf(json ? "%s\"%s\":%llu" : " %s%s=%llu", json && k ? "," : "", steer_counter_names[k],
               (unsigned long long)percpu_sum(cnt_fd, k, ncpus));
    printf(json ? "},\"workers_detail\":[" : "\n  worker  live_conns  steered  slots\n");
    for (uint32_t w = 0; w < cfg.nworkers && w < STEER_MAX_WORKERS; w++) {
        struct worker_load load = {0};
        bpf_map_lookup_elem(load_fd, &w, &load);
        uint64_t steered = percpu_sum(steered_fd, w, ncpus);
        if (json)
            printf("%s{\"worker\":%u,\"live_conns\":%u,\"steered\":%llu,\"slots\":[", w ? "," : "", w,
                   load.live_conns, (unsigned long long)steered);
        else
            printf("  %-6u  %-10u  %-7llu  ", w, load.live_conns, (unsigned long long)steered);
        int printed = 0;
        for (uint32_t s = 0; s < cfg.nslots; s++) {
            uint32_t owner;
            if (bpf_map_lookup_elem(owner_fd, &s, &owner) == 0 && owner == w)
                printf("%s%u", printed++ ? (json ? "," : " ") : "", s);
        }
        printf(json ? "]}" : "\n");
    }
    printf(json ? "]" : "");
    xdp_status(name, json, ncpus);
    printf(json ? "}\n" : "");
    return 0;
}

/* The XDP program of this agent, if it is still attached (an agent that did not stop cleanly) on an
 * interface of this network namespace: recognised by its use of the pinned fwd_config map, so that
 * an interface of the same index in another namespace is never touched. */
static void detach_forwarding(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), PIN_ROOT "/%s/fwd_config", name);
    int cfg_fd = bpf_obj_get(path);
    if (cfg_fd < 0)
        return;
    struct fwd_config cfg;
    struct bpf_map_info map = {0};
    __u32 len = sizeof(map);
    uint32_t zero = 0;
    bool ok = bpf_map_lookup_elem(cfg_fd, &zero, &cfg) == 0 && bpf_obj_get_info_by_fd(cfg_fd, &map, &len) == 0;
    close(cfg_fd);
    if (!ok)
        return;
    __u32 prog_id = 0;
    if (bpf_xdp_query_id((int)cfg.ifindex, 0, &prog_id) != 0 || !prog_id)
        return;
    int prog_fd = bpf_prog_get_fd_by_id(prog_id);
    if (prog_fd < 0)
        return;
    __u32 map_ids[16] = {0};
    struct bpf_prog_info info = {.nr_map_ids = 16, .map_ids = (__u64)(unsigned long)map_ids};
    len = sizeof(info);
    bool ours = false;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0)
        for (__u32 i = 0; i < info.nr_map_ids && i < 16; i++)
            ours = ours || map_ids[i] == map.id;
    close(prog_fd);
    if (!ours)
        return;
    char ifname[IF_NAMESIZE] = "?";
    if_indextoname(cfg.ifindex, ifname);
    if (bpf_xdp_detach((int)cfg.ifindex, 0, NULL) == 0)
        printf("detached XDP program %u from %s\n", prog_id, ifname);
    else
        fprintf(stderr, "sluice: cannot detach XDP program %u from %s: %s\n", prog_id, ifname, strerror(errno));
}

static void usage(void)
{
    printf("usage: sluice steer status [--name NAME | --port PORT] [--json]\n"
           "       sluice steer remove [--name NAME | --port PORT]\n\n"
           "NAME is the agent's steering name (SLUICE_STEERING_NAME). Its default is\n"
           "agent-<network namespace inode>-<kafka port>: --port PORT (default 9092) names the agent of that\n"
           "port in the namespace this command runs in. status reads the maps pinned under " PIN_ROOT "/NAME/;\n"
           "remove deletes them and the link, which detaches the program once no agent holds it.\n");
}

int cmd_steer(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage();
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL;
    int port = 9092;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strncmp(argv[i], "--name=", 7))
            name = argv[i] + 7;
        else if ((!strcmp(argv[i], "--port") && i + 1 < argc) || !strncmp(argv[i], "--port=", 7)) {
            const char *v = argv[i][6] == '=' ? argv[i] + 7 : argv[++i];
            port = atoi(v);
            if (port < 1 || port > 65535) {
                fprintf(stderr, "sluice: invalid --port '%s'\n", v);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else {
            fprintf(stderr, "sluice: unknown steer argument '%s' (see sluice steer --help)\n", argv[i]);
            return 2;
        }
    }
    char default_name[64];
    if (!name) {
        /* The agent's own default (config.c): this network namespace and the port. */
        struct stat ns;
        if (stat("/proc/self/ns/net", &ns) == 0)
            snprintf(default_name, sizeof(default_name), "agent-%llu-%d", (unsigned long long)ns.st_ino, port);
        else
            snprintf(default_name, sizeof(default_name), "agent-%d", port);
        name = default_name;
    }
    if (!strcmp(argv[0], "status"))
        return status(name, json);
    if (!strcmp(argv[0], "remove")) {
        detach_forwarding(name);
        if (steer_unpin(name) != 0) {
            fprintf(stderr, "sluice: cannot remove " PIN_ROOT "/%s: %s\n", name, strerror(errno));
            return 1;
        }
        printf("removed " PIN_ROOT "/%s\n", name);
        return 0;
    }
    fprintf(stderr, "sluice: unknown steer command '%s' (status, remove)\n", argv[0]);
    return 2;
}
