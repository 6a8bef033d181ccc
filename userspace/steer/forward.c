/* Loader of the XDP forwarding program: a libbpf skeleton handed to libxdp, which loads and
 * attaches it (natively, else in generic mode; libxdp falls back to attaching the program alone when
 * its multi-program dispatcher is refused). The maps are pinned beside the sk_lookup maps. */
#include "steer/forward.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include "forward.skel.h"
#include "steer/pins.h"
#include "util/log.h"

#define PROG_NAME "sluice_forward"

struct forward {
    struct forward_bpf *skel;
    struct xdp_program *prog;
    int ifindex;
    int config_fd, routes_fd, counters_fd;
    int ncpus;
    uint32_t nslots;
    uint32_t self_ip4;
    uint8_t self_mac[6];
    int mtu;
    enum xdp_attach_mode mode; /* native, or generic where the driver has no XDP */
};

static int libxdp_log(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    pins_library_log("libxdp", level == LIBXDP_DEBUG, fmt, ap);
    return 0;
}

int forward_interface_addresses(const char *ifname, uint32_t *ip4, uint8_t mac[6], int *mtu, char *err,
                                size_t errlen)
{
    *ip4 = 0;
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) {
        pins_err(err, errlen, "listing interface addresses: %s", strerror(errno));
        return -1;
    }
    for (struct ifaddrs *i = ifs; i && !*ip4; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, ifname))
            *ip4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
    freeifaddrs(ifs);
    if (!*ip4) {
        pins_err(err, errlen, "xdp-interface %s has no IPv4 address", ifname);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        pins_err(err, errlen, "reading the MAC of %s: %s", ifname, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    int r = ioctl(fd, SIOCGIFMTU, &ifr);
    close(fd);
    if (r < 0) {
        pins_err(err, errlen, "reading the MTU of %s: %s", ifname, strerror(errno));
        return -1;
    }
    *mtu = ifr.ifr_mtu;
    return 0;
}

/* A sluice_forward left attached by an agent that did not stop cleanly is replaced; any other
 * program on the interface belongs to someone else and is left alone (and we refuse to start). */
static int clear_interface(int ifindex, const char *ifname, char *err, size_t errlen)
{
    struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (libxdp_get_error(mp) == -ENOENT)
        return 0; /* no XDP program there */
    if (libxdp_get_error(mp)) {
        pins_err(err, errlen, "reading the XDP programs of %s: %s", ifname, strerror(-(int)libxdp_get_error(mp)));
        return -1;
    }
    int rc = 0;
    struct xdp_program *main_prog = xdp_multiprog__main_prog(mp);
    if (main_prog) {
        bool ours = !strcmp(xdp_program__name(main_prog), PROG_NAME);
        if (xdp_multiprog__is_legacy(mp) && ours) {
            log_info("forward: replacing the %s program left on %s", PROG_NAME, ifname);
            rc = xdp_multiprog__detach(mp);
        } else if (xdp_multiprog__is_legacy(mp)) {
            pins_err(err, errlen, "%s already runs XDP program %s (id %u): sluice will not replace it", ifname,
                     xdp_program__name(main_prog), xdp_program__id(main_prog));
            rc = -1;
        } else {
            for (struct xdp_program *p = xdp_multiprog__next_prog(NULL, mp); p && rc == 0;
                 p = xdp_multiprog__next_prog(p, mp))
                if (!strcmp(xdp_program__name(p), PROG_NAME))
                    rc = xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(mp), 0);
        }
        if (rc < 0 && !err[0])
            pins_err(err, errlen, "detaching the old %s from %s: %s", PROG_NAME, ifname, strerror(-rc));
    }
    xdp_multiprog__close(mp);
    return rc < 0 ? -1 : 0;
}

static int write_config(struct forward *f, const struct forward_options *o, char *err, size_t errlen)
{
    struct fwd_config cfg = {
        .slot_port_base = o->slot_port_base,
        .nslots = o->nslots,
        .mode = o->mode,
        .self_ip4 = f->self_ip4,
        .mtu = (uint16_t)(f->mtu > 65535 ? 65535 : f->mtu),
        .ifindex = (uint32_t)f->ifindex,
    };
    memcpy(cfg.self_mac, f->self_mac, 6);
    uint32_t zero = 0;
    if (bpf_map_update_elem(f->config_fd, &zero, &cfg, BPF_ANY) < 0) {
        pins_err(err, errlen, "writing fwd_config: %s", strerror(errno));
        return -1;
    }
    /* Until the supervisor has read the membership, every slot is served here. */
    struct slot_route none = {0};
    for (uint32_t slot = 0; slot < STEER_MAX_SLOTS; slot++)
        if (bpf_map_update_elem(f->routes_fd, &slot, &none, BPF_ANY) < 0) {
            pins_err(err, errlen, "clearing slot %u: %s", slot, strerror(errno));
            return -1;
        }
    return 0;
}

struct forward *forward_open(const struct forward_options *o, char *err, size_t errlen)
{
    pins_err(err, errlen, "%s", "");
    if (o->nslots > STEER_MAX_SLOTS) {
        pins_err(err, errlen, "%u slots (at most %d)", o->nslots, STEER_MAX_SLOTS);
        return NULL;
    }
    pins_quiet_libbpf();
    libxdp_set_print(libxdp_log);
    char dir[PINS_DIR_LEN];
    if (pins_make_dir(o->pin_name, dir, err, errlen) < 0)
        return NULL;
    struct forward *f = calloc(1, sizeof(*f));
    if (!f) {
        pins_err(err, errlen, "out of memory");
        return NULL;
    }
    f->nslots = o->nslots;
    f->ncpus = libbpf_num_possible_cpus();
    f->ifindex = (int)if_nametoindex(o->ifname);
    if (!f->ifindex) {
        pins_err(err, errlen, "xdp-interface %s: %s", o->ifname, strerror(errno));
        goto fail;
    }
    if (forward_interface_addresses(o->ifname, &f->self_ip4, f->self_mac, &f->mtu, err, errlen) < 0)
        goto fail;

    f->skel = forward_bpf__open();
    if (!f->skel) {
        pins_err(err, errlen, "opening the XDP object: %s", strerror(errno));
        goto fail;
    }
    int stale = pins_count_stale(f->skel->obj, dir, err, errlen);
    if (stale < 0)
        goto fail;
    if (stale > 0) {
        log_warn("forward: %s holds XDP maps of another layout: replacing them", dir);
        if (pins_unlink_maps(f->skel->obj, dir, err, errlen) < 0)
            goto fail;
    }
    if (pins_set_paths(f->skel->obj, dir, err, errlen) < 0 || clear_interface(f->ifindex, o->ifname, err, errlen) < 0)
        goto fail;

    DECLARE_LIBXDP_OPTS(xdp_program_opts, xopts, .obj = f->skel->obj, .prog_name = PROG_NAME);
    f->prog = xdp_program__create(&xopts);
    if (libxdp_get_error(f->prog)) {
        pins_err(err, errlen, "preparing the XDP program: %s", strerror(-(int)libxdp_get_error(f->prog)));
        f->prog = NULL;
        goto fail;
    }
    /* Attaching loads the object (maps included) the first time. Native mode runs in the driver;
     * a driver without XDP support gets the generic mode (after the stack's first steps: slower,
     * same decisions). */
    f->mode = XDP_MODE_NATIVE;
    int r = xdp_program__attach(f->prog, f->ifindex, XDP_MODE_NATIVE, 0);
    if (r < 0) {
        char why[128];
        libxdp_strerror(r, why, sizeof(why));
        f->mode = XDP_MODE_SKB;
        int r2 = xdp_program__attach(f->prog, f->ifindex, XDP_MODE_SKB, 0);
        if (r2 < 0) {
            char why2[128];
            libxdp_strerror(r2, why2, sizeof(why2));
            pins_err(err, errlen, "attaching XDP to %s: %s (native mode: %s)", o->ifname, why2, why);
            goto fail;
        }
        log_warn("forward: %s cannot run XDP in its driver (%s): using generic XDP, which is slower", o->ifname,
                 why);
    }
    f->config_fd = bpf_map__fd(f->skel->maps.fwd_config);
    f->routes_fd = bpf_map__fd(f->skel->maps.slot_hosts);
    f->counters_fd = bpf_map__fd(f->skel->maps.fwd_counters);
    if (write_config(f, o, err, errlen) < 0) {
        forward_close(f);
        return NULL;
    }
    return f;

fail:
    if (f->prog)
        xdp_program__close(f->prog);
    forward_bpf__destroy(f->skel);
    free(f);
    return NULL;
}

uint32_t forward_self_ip4(const struct forward *f)
{
    return f->self_ip4;
}

int forward_prog_fd(const struct forward *f)
{
    return xdp_program__fd(f->prog);
}

const uint8_t *forward_self_mac(const struct forward *f)
{
    return f->self_mac;
}

int forward_set_route(struct forward *f, uint32_t slot, const struct slot_route *route)
{
    if (slot >= f->nslots) {
        log_error("forward: slot %u: %s", slot, strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    if (bpf_map_update_elem(f->routes_fd, &slot, route, BPF_ANY) < 0) {
        int e = errno;
        log_error("forward: slot %u: %s", slot, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int forward_read_stats(struct forward *f, uint64_t counters[FWD_COUNTER_MAX])
{
    uint64_t *values = calloc((size_t)f->ncpus, sizeof(*values));
    if (!values)
        return -1;
    for (uint32_t key = 0; key < FWD_COUNTER_MAX; key++) {
        counters[key] = 0;
        if (bpf_map_lookup_elem(f->counters_fd, &key, values) < 0) {
            free(values);
            return -1;
        }
        for (int cpu = 0; cpu < f->ncpus; cpu++)
            counters[key] += values[cpu];
    }
    free(values);
    return 0;
}

void forward_close(struct forward *f)
{
    if (!f)
        return;
    if (f->prog) {
        int r = xdp_program__detach(f->prog, f->ifindex, f->mode, 0);
        if (r < 0 && r != -ENOENT) /* ENOENT: replaced meanwhile (another agent took the interface over) */
            log_warn("forward: detaching XDP from ifindex %d: %s", f->ifindex, strerror(-r));
        xdp_program__close(f->prog);
    }
    forward_bpf__destroy(f->skel);
    free(f);
}
