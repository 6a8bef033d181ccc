/* objstore_open: picks the backend from the URL scheme. */
#include "storage/objstore.h"
#include "storage/objstore_s3.h"
#include "metrics/metrics.h"

#include <stdio.h>
#include <string.h>

struct objstore *objstore_open(const char *url, char *err, size_t errlen)
{
    struct objstore *s = NULL;
    if (strncmp(url, "file://", 7) == 0) {
        s = objstore_file_open(url + 7, err, errlen);
    } else if (strncmp(url, "s3://", 5) == 0) {
        s = objstore_s3_open(url, err, errlen);
    } else {
        snprintf(err, errlen, "unknown object store URL '%s' (expected file://DIR or s3://BUCKET)", url);
    }
    if (s)
        snprintf(s->url, sizeof(s->url), "%s", url);
    return s;
}

static int counted_put(int rc, uint64_t start_us)
{
    metrics_observe_since(H_OBJECT_PUT, start_us);
    if (rc != 0)
        metrics_add(M_OBJECT_PUT_ERRORS, 1);
    return rc;
}

int objstore_put(struct objstore *s, const char *key, const void *data, size_t len)
{
    uint64_t t0 = metrics_now_us();
    return counted_put(s->ops->put(s, key, data, len), t0);
}

int objstore_get_range(struct objstore *s, const char *key, uint64_t off, size_t len, struct buf *out)
{
    uint64_t t0 = metrics_now_us();
    int rc = s->ops->get_range(s, key, off, len, out);
    metrics_observe_since(H_OBJECT_GET, t0);
    if (rc != 0)
        metrics_add(M_OBJECT_GET_ERRORS, 1);
    return rc;
}

int objstore_putv(struct objstore *s, const char *key, const struct iovec *iov, int n)
{
    uint64_t t0 = metrics_now_us();
    if (s->ops->putv)
        return counted_put(s->ops->putv(s, key, iov, n), t0);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    struct buf all;
    buf_init(&all);
    buf_reserve(&all, len ? len : 1);
    for (int i = 0; i < n; i++)
        buf_append(&all, iov[i].iov_base, iov[i].iov_len);
    int rc = s->ops->put(s, key, all.data, all.len);
    buf_free(&all);
    return counted_put(rc, t0);
}
