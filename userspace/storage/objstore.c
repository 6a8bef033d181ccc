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
