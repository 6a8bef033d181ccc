#include "steer/pins.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util/log.h"

void pins_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void pins_library_log(const char *library, bool debug_level, const char *fmt, va_list ap)
{
    if (debug_level || log_min_level > LOG_DEBUG)
        return;
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_debug("%s: %s", library, line);
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    pins_library_log("libbpf", level == LIBBPF_DEBUG, fmt, ap);
    return 0;
}

void pins_quiet_libbpf(void)
{
    libbpf_set_print(libbpf_log);
}

bool pins_valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > PINS_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* bpffs is not mounted at boot on every machine: mount it on /sys/fs/bpf if something else is there. */
static int ensure_bpffs(char *err, size_t errlen)
{
    struct statfs st;
    if (statfs(PINS_BPFFS, &st) < 0) {
        pins_err(err, errlen, "%s: %s", PINS_BPFFS, strerror(errno));
        return -1;
    }
    if (st.f_type == BPF_FS_MAGIC)
        return 0;
    if (mount("bpf", PINS_BPFFS, "bpf", 0, "mode=0700") < 0) {
        pins_err(err, errlen, "mounting bpffs on %s: %s", PINS_BPFFS, strerror(errno));
        return -1;
    }
    log_info("steer: mounted bpffs on %s", PINS_BPFFS);
    return 0;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        pins_err(err, errlen, "creating %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int pins_make_dir(const char *name, char *dir, char *err, size_t errlen)
{
    if (!pins_valid_name(name)) {
        pins_err(err, errlen, "steering name '%s' must be 1-%d letters, digits, '-', '_' or '.'", name ? name : "",
                 PINS_NAME_MAX);
        return -1;
    }
    snprintf(dir, PINS_DIR_LEN, "%s/%s", PINS_ROOT, name);
    if (ensure_bpffs(err, errlen) < 0 || make_dir(PINS_ROOT, err, errlen) < 0 || make_dir(dir, err, errlen) < 0)
        return -1;
    return 0;
}

/* 1 if the object pinned at path is a map libbpf can reuse for map, 0 if it is something else,
 * -1 (errno set) if it cannot be looked at. */
static int pinned_map_compatible(const char *path, const struct bpf_map *map)
{
    int fd = bpf_obj_get(path);
    if (fd < 0)
        return -1;
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    int r = bpf_obj_get_info_by_fd(fd, &info, &len);
    int saved = errno;
    close(fd);
    if (r < 0) {
        errno = saved;
        return -1;
    }
    return info.type == (__u32)bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
           info.value_size == bpf_map__value_size(map) && info.max_entries == bpf_map__max_entries(map) &&
           info.map_flags == bpf_map__map_flags(map);
}

int pins_count_stale(struct bpf_object *obj, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int stale = 0;
    struct bpf_map *map;
    bpf_object__for_each_map(map, obj) {
        snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
        if (access(path, F_OK) < 0)
            continue;
        int r = pinned_map_compatible(path, map);
        if (r < 0) {
            pins_err(err, errlen, "opening pinned map %s: %s", path, strerror(errno));
            return -1;
        }
        stale += r == 0;
    }
    return stale;
}

int pins_unlink_maps(struct bpf_object *obj, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct bpf_map *map;
    bpf_object__for_each_map(map, obj) {
        snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
        if (unlink(path) < 0 && errno != ENOENT) {
            pins_err(err, errlen, "removing %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int pins_set_paths(struct bpf_object *obj, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct bpf_map *map;
    bpf_object__for_each_map(map, obj) {
        snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
        int r = bpf_map__set_pin_path(map, path);
        if (r < 0) {
            pins_err(err, errlen, "pin path %s: %s", path, strerror(-r));
            return -1;
        }
    }
    return 0;
}

int pins_remove(const char *name)
{
    if (!pins_valid_name(name)) {
        log_error("steer: unpinning '%s': %s", name ? name : "", strerror(EINVAL));
        errno = EINVAL;
        return -1;
    }
    char dir[PINS_DIR_LEN];
    snprintf(dir, sizeof(dir), "%s/%s", PINS_ROOT, name);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        log_error("steer: unpinning %s: %s", dir, strerror(e));
        errno = e;
        return -1;
    }
    int failed_errno = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
            failed_errno = errno;
            log_error("steer: unpinning %s/%s: %s", dir, de->d_name, strerror(failed_errno));
        }
    }
    closedir(d);
    if (failed_errno == 0 && rmdir(dir) < 0) {
        failed_errno = errno;
        log_error("steer: removing %s: %s", dir, strerror(failed_errno));
    }
    if (failed_errno) {
        errno = failed_errno;
        return -1;
    }
    return 0;
}
