/* file:// object store: one file per object under a root folder; '/' in a key makes subfolders.
 * A put writes a temp file in the target folder, fsyncs it, renames it over the key and fsyncs
 * the folder, so a key is either absent or complete and durable, even across kill -9 or power
 * loss. Keys are relative paths with no empty components and no component starting with '.':
 * that rules out "." and "..", and keeps the temp files (".tmp-...") out of the key space. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"
#include "storage/objstore.h"

#define KEY_MAX 1024

struct file_store {
    struct objstore base;
    int root_fd;
    char root[PATH_MAX];
};

static unsigned long tmp_counter; /* unique temp names among the threads of this process */

static int key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > KEY_MAX)
        return 0;
    for (const char *c = key;;) {
        if (*c == '/' || *c == '.' || *c == '\0') /* empty or dot component */
            return 0;
        const char *slash = strchr(c, '/');
        if (!slash)
            return 1;
        c = slash + 1;
    }
}

static int bad_key(const struct file_store *fs, const char *op, const char *key)
{
    if (key_ok(key))
        return 0;
    log_error("objstore: %s %s: invalid key '%s' (empty component, or one starting with '.')", op, fs->root, key);
    return 1;
}

static int open_dir(int base_fd, const char *path)
{
    return openat(base_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Creates every missing folder of path (relative to base_fd unless absolute) and fsyncs the
 * parent of each folder it creates, so the new entry survives a power loss. */
static int make_dirs(int base_fd, const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if ((tmp[i] != '/' && tmp[i] != '\0') || tmp[i - 1] == '/')
            continue;
        char save = tmp[i];
        tmp[i] = '\0';
        if (mkdirat(base_fd, tmp, 0755) == 0) {
            char *slash = strrchr(tmp, '/');
            int pfd;
            if (!slash) {
                pfd = open_dir(base_fd, ".");
            } else if (slash == tmp) {
                pfd = open_dir(AT_FDCWD, "/");
            } else {
                *slash = '\0';
                pfd = open_dir(base_fd, tmp);
                *slash = '/';
            }
            int rc = pfd >= 0 ? fsync(pfd) : -1;
            int saved = errno;
            if (pfd >= 0)
                close(pfd);
            errno = saved;
            if (rc < 0)
                return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        tmp[i] = save;
    }
    return 0;
}

/* Writes every slice, resuming after short writes, 64 slices per call (under IOV_MAX). */
static int writev_all(int fd, const struct iovec *iov, int n)
{
    struct iovec cur[64];
    int i = 0;
    size_t skip = 0; /* bytes of iov[i] already written */
    while (i < n) {
        int k = 0;
        for (int j = i; j < n && k < (int)(sizeof(cur) / sizeof(cur[0])); j++, k++) {
            size_t off = j == i ? skip : 0;
            cur[k] = (struct iovec){.iov_base = (uint8_t *)iov[j].iov_base + off, .iov_len = iov[j].iov_len - off};
        }
        ssize_t w = writev(fd, cur, k);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (i < n && left >= iov[i].iov_len - skip) {
            left -= iov[i].iov_len - skip;
            skip = 0;
            i++;
        }
        skip += left;
    }
    return 0;
}

static int file_putv(struct objstore *s, const char *key, const struct iovec *iov, int n)
{
    struct file_store *fs = (struct file_store *)s;
    if (bad_key(fs, "put", key))
        return -1;
    char dir[KEY_MAX + 1];
    const char *base = strrchr(key, '/');
    if (base) {
        memcpy(dir, key, (size_t)(base - key));
        dir[base - key] = '\0';
        base++;
    } else {
        dir[0] = '\0';
        base = key;
    }
    if (dir[0] && make_dirs(fs->root_fd, dir) < 0) {
        log_error("objstore: put %s/%s: creating its folder: %s", fs->root, key, strerror(errno));
        return -1;
    }
    int dfd = dir[0] ? open_dir(fs->root_fd, dir) : fs->root_fd;
    if (dfd < 0) {
        log_error("objstore: put %s/%s: opening its folder: %s", fs->root, key, strerror(errno));
        return -1;
    }
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ".tmp-%d-%lu", (int)getpid(), __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED));
    const char *step = "create";
    int rc = -1;
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (writev_all(fd, iov, n) < 0)
            step = "write";
        else if (fsync(fd) < 0)
            step = "fsync";
        else
            rc = 0;
        int saved = errno;
        if (close(fd) < 0 && rc == 0) {
            step = "close";
            rc = -1;
        } else {
            errno = saved;
        }
        if (rc == 0 && renameat(dfd, tmp, dfd, base) < 0) {
            step = "rename";
            rc = -1;
        }
        if (rc == 0 && fsync(dfd) < 0) {
            step = "fsync folder";
            rc = -1;
        }
    }
    if (rc < 0) {
        log_error("objstore: put %s/%s: %s: %s", fs->root, key, step, strerror(errno));
        unlinkat(dfd, tmp, 0);
    }
    if (dfd != fs->root_fd)
        close(dfd);
    return rc;
}

static int file_put(struct objstore *s, const char *key, const void *data, size_t len)
{
    struct iovec one = {.iov_base = (void *)data, .iov_len = len};
    return file_putv(s, key, &one, 1);
}

static int file_get_range(struct objstore *s, const char *key, uint64_t off, size_t len, struct buf *out)
{
    struct file_store *fs = (struct file_store *)s;
    if (bad_key(fs, "get", key))
        return -1;
    int fd = openat(fs->root_fd, key, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("objstore: get %s/%s: %s", fs->root, key, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        log_error("objstore: get %s/%s: fstat: %s", fs->root, key, strerror(errno));
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (off > size || len > size - off) {
        log_error("objstore: get %s/%s: range %llu+%zu is beyond the end (%llu bytes)", fs->root, key,
                  (unsigned long long)off, len, (unsigned long long)size);
        close(fd);
        return -1;
    }
    size_t start = out->len, got = 0;
    uint8_t *dst = buf_extend(out, len);
    while (got < len) {
        ssize_t r = pread(fd, dst + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            log_error("objstore: get %s/%s: pread: %s", fs->root, key, r < 0 ? strerror(errno) : "unexpected end of file");
            out->len = start;
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
}

static int file_del(struct objstore *s, const char *key)
{
    struct file_store *fs = (struct file_store *)s;
    if (bad_key(fs, "delete", key))
        return -1;
    /* Deleting a missing key succeeds, as on S3. */
    if (unlinkat(fs->root_fd, key, 0) < 0 && errno != ENOENT) {
        log_error("objstore: delete %s/%s: %s", fs->root, key, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- list: walk the tree, then report keys sorted as S3 does (byte order of the whole key) ---- */

struct entry {
    char *key;
    uint64_t size;
};

struct walk {
    const struct file_store *fs;
    const char *prefix;
    size_t prefix_len;
    struct entry *v;
    size_t n, cap;
};

static void walk_add(struct walk *w, const char *key, uint64_t size)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct entry *v = realloc(w->v, cap * sizeof(*v));
        if (!v)
            abort();
        w->v = v;
        w->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        abort();
    w->v[w->n].key = k;
    w->v[w->n].size = size;
    w->n++;
}

/* rel: the folder's path below the root ("" or "a/b/"), dfd: the open folder (closed here). */
static int walk_dir(struct walk *w, int dfd, const char *rel)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        log_error("objstore: list %s/%s: %s", w->fs->root, rel, strerror(errno));
        close(dfd);
        return -1;
    }
    size_t rel_len = strlen(rel);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", temp files */
        size_t name_len = strlen(e->d_name);
        if (rel_len + name_len + 2 > KEY_MAX + 1)
            continue; /* not a key we could have written */
        char key[KEY_MAX + 2];
        memcpy(key, rel, rel_len);
        memcpy(key + rel_len, e->d_name, name_len + 1);
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* deleted meanwhile */
            log_error("objstore: list %s/%s: %s", w->fs->root, key, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            size_t klen = rel_len + name_len;
            key[klen] = '/';
            key[klen + 1] = '\0';
            /* Descend only where keys can start with the prefix. */
            size_t cmp = klen + 1 < w->prefix_len ? klen + 1 : w->prefix_len;
            if (memcmp(key, w->prefix, cmp) != 0)
                continue;
            int sub = open_dir(dirfd(d), e->d_name);
            if (sub < 0) {
                log_error("objstore: list %s/%s: %s", w->fs->root, key, strerror(errno));
                rc = -1;
            } else {
                rc = walk_dir(w, sub, key);
            }
        } else if (S_ISREG(st.st_mode) && strncmp(key, w->prefix, w->prefix_len) == 0) {
            walk_add(w, key, (uint64_t)st.st_size);
        }
    }
    if (rc == 0 && errno) {
        log_error("objstore: list %s/%s: readdir: %s", w->fs->root, rel, strerror(errno));
        rc = -1;
    }
    closedir(d);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static int file_list(struct objstore *s, const char *prefix, void (*cb)(const char *key, uint64_t size, void *arg),
                     void *arg)
{
    struct file_store *fs = (struct file_store *)s;
    struct walk w = {.fs = fs, .prefix = prefix ? prefix : ""};
    w.prefix_len = strlen(w.prefix);
    int dfd = open_dir(fs->root_fd, ".");
    if (dfd < 0) {
        log_error("objstore: list %s: %s", fs->root, strerror(errno));
        return -1;
    }
    int rc = walk_dir(&w, dfd, "");
    if (rc == 0) {
        if (w.n)
            qsort(w.v, w.n, sizeof(*w.v), entry_cmp);
        for (size_t i = 0; i < w.n; i++)
            cb(w.v[i].key, w.v[i].size, arg);
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.v[i].key);
    free(w.v);
    return rc;
}

static void file_close(struct objstore *s)
{
    struct file_store *fs = (struct file_store *)s;
    close(fs->root_fd);
    free(fs);
}

static const struct objstore_ops file_ops = {
    .put = file_put,
    .putv = file_putv,
    .get_range = file_get_range,
    .del = file_del,
    .list = file_list,
    .close = file_close,
};

struct objstore *objstore_file_open(const char *dir, char *err, size_t errlen)
{
    if (!dir[0]) {
        snprintf(err, errlen, "file:// needs a folder, e.g. file:///var/lib/sluice/data");
        return NULL;
    }
    if (strlen(dir) >= PATH_MAX) {
        snprintf(err, errlen, "object store folder path too long");
        return NULL;
    }
    if (make_dirs(AT_FDCWD, dir) < 0) {
        snprintf(err, errlen, "cannot create object store folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    int fd = open_dir(AT_FDCWD, dir);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open object store folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct file_store *fs = calloc(1, sizeof(*fs));
    if (!fs) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fs->base.ops = &file_ops;
    fs->base.local_reads = true;
    fs->root_fd = fd;
    snprintf(fs->root, sizeof(fs->root), "%s", dir);
    return &fs->base;
}
