/* objstore_open: picks the backend from the URL scheme. */
#include "storage/objstore.h"
#include "storage/objstore_s3.h"

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

int objstore_putv(struct objstore *s, const char *key, const struct iovec *iov, int n)
{
    if (s->ops->putv)
        return s->ops->putv(s, key, iov, n);
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
    return rc;
}
