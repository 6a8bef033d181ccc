/* s3:// object store: any S3-compatible service over HTTP(S), signed with AWS Signature V4.
 *
 *   s3://BUCKET[/PREFIX][?endpoint=[http://|https://]HOST[:PORT]&region=R&path_style=true|false]
 *
 * PREFIX (if any) is a folder prepended to every key ("a/b" -> keys "a/b/KEY"). Without endpoint
 * the store is AWS's s3.REGION.amazonaws.com over https; an endpoint without a scheme means http
 * for 127.0.0.1, [::1], localhost and *.localhost, https otherwise. region defaults to us-east-1;
 * path_style defaults to false (virtual-hosted: BUCKET.HOST/KEY; path style: HOST/BUCKET/KEY).
 * Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
 * (optional), read once when the store is opened; opening does not contact the store. */
#ifndef SLUICE_OBJSTORE_S3_H
#define SLUICE_OBJSTORE_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/objstore.h"

/* Request policy. A failed attempt is retried after a random pause in [0, min(CAP, BASE * 2^n))
 * ("full jitter") on transport errors and timeouts, HTTP 5xx, 429, and the S3 error codes
 * SlowDown and RequestTimeout; other errors fail at once. No operation outlives OP_DEADLINE. */
#define S3_MAX_ATTEMPTS 6
#define S3_BACKOFF_BASE_MS 50
#define S3_BACKOFF_CAP_MS 2000
#define S3_CONNECT_TIMEOUT_MS 5000
#define S3_REQUEST_TIMEOUT_MS 30000
#define S3_OP_DEADLINE_MS 60000
#define S3_POOL_MAX 8 /* idle connections (curl handles) kept per store */

struct s3_config {
    char bucket[64];
    char prefix[512];   /* "" or ending in '/' */
    bool https;
    char endpoint[256]; /* HOST[:PORT] without the bucket */
    char region[64];
    bool path_style;
};

/* Parses an s3:// URL. On failure returns -1 and writes one line into err. */
int s3_parse_url(const char *url, struct s3_config *cfg, char *err, size_t errlen);

/* url: the whole "s3://..." URL. */
struct objstore *objstore_s3_open(const char *url, char *err, size_t errlen);

/* Tests: keys per ListObjectsV2 page (S3's default and maximum is 1000). */
void objstore_s3_set_list_page_size(struct objstore *s, int max_keys);

#endif
