/* The pin folder of one agent's BPF objects, /sys/fs/bpf/sluice/<name>/, shared by the sk_lookup
 * loader (steer.c) and the XDP loader (forward.c); plus the small helpers both need. */
#ifndef SLUICE_PINS_H
#define SLUICE_PINS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define PINS_BPFFS "/sys/fs/bpf"
#define PINS_ROOT PINS_BPFFS "/sluice"
#define PINS_NAME_MAX 64
#define PINS_DIR_LEN 128 /* PINS_ROOT "/" name */

struct bpf_object;
struct bpf_map;

/* Writes one line into err (if any). */
void pins_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* libbpf's and libxdp's messages go to the debug log (their own debug level nowhere): callers
 * report failures themselves. */
void pins_quiet_libbpf(void);
void pins_library_log(const char *library, bool debug_level, const char *fmt, va_list ap);

/* 1-64 letters, digits, '-', '_', '.', not starting with '.'. */
bool pins_valid_name(const char *name);

/* Mounts bpffs on /sys/fs/bpf if needed, creates PINS_ROOT and PINS_ROOT/name; the folder's path
 * goes to dir (PINS_DIR_LEN bytes). 0, or -1 with one line in err. */
int pins_make_dir(const char *name, char *dir, char *err, size_t errlen);

/* How many maps of obj are pinned in dir with another type, size or flags (a previous build's
 * layout: they cannot be reused), or -1 with one line in err. */
int pins_count_stale(struct bpf_object *obj, const char *dir, char *err, size_t errlen);

/* Removes the pins of obj's maps from dir (those that exist). 0, or -1 with one line in err. */
int pins_unlink_maps(struct bpf_object *obj, const char *dir, char *err, size_t errlen);

/* Points every map of obj at dir/<map name>, so that loading reuses the pinned maps and pins new
 * ones. 0, or -1 with one line in err. */
int pins_set_paths(struct bpf_object *obj, const char *dir, char *err, size_t errlen);

/* Removes PINS_ROOT/name/ entirely. 0 if it is gone (or never existed), else -1 with errno set. */
int pins_remove(const char *name);

#endif
