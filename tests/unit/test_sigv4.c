/* AWS Signature Version 4 against the examples of the S3 API reference ("Signature Calculations
 * for the Authorization Header: Transferring Payload in a Single Chunk"), plus the encoding rules
 * those examples do not reach. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "storage/sigv4.h"

#define EX_DATE "20130524T000000Z"
#define EX_HOST "examplebucket.s3.amazonaws.com"

static const struct sigv4_key ex_key = {
    .access_key = "AKIAIOSFODNN7EXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    .region = "us-east-1",
    .service = "s3",
};

static int auth_is(const struct sigv4_request *rq, const char *signed_headers, const char *signature)
{
    char want[512];
    snprintf(want, sizeof(want),
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
             "SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    struct buf out;
    buf_init(&out);
    int ok = sigv4_authorization(rq, &ex_key, EX_DATE, &out) == 0 && strcmp((const char *)out.data, want) == 0;
    if (!ok)
        fprintf(stderr, "  got  %s\n  want %s\n", out.data ? (const char *)out.data : "(error)", want);
    buf_free(&out);
    return ok;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static char *encoded(const char *s, bool keep_slash)
{
    static char out[256];
    struct buf b;
    buf_init(&b);
    sigv4_uri_encode(&b, s, strlen(s), keep_slash);
    snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data ? (const char *)b.data : "");
    buf_free(&b);
    return out;
}

TEST(sigv4_example_get_object_with_range)
{
    const struct sigv4_pair h[] = {
        {"Host", EX_HOST},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
        {"x-amz-date", EX_DATE},
    };
    struct sigv4_request rq = {.method = "GET", .path = "/test.txt", .headers = h, .nheaders = 4,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    struct buf creq;
    buf_init(&creq);
    CHECK_EQ(sigv4_canonical_request(&rq, &creq), 0);
    const char *want = "GET\n/test.txt\n\n"
                       "host:examplebucket.s3.amazonaws.com\n"
                       "range:bytes=0-9\n"
                       "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
                       "x-amz-date:20130524T000000Z\n\n"
                       "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256;
    CHECK(strcmp((const char *)creq.data, want) == 0);

    struct buf sts;
    buf_init(&sts);
    sigv4_string_to_sign(&ex_key, EX_DATE, (const char *)creq.data, &sts);
    CHECK(strcmp((const char *)sts.data, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                                         "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972") == 0);
    buf_free(&creq);
    buf_free(&sts);

    CHECK(auth_is(&rq, "host;range;x-amz-content-sha256;x-amz-date",
                  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
}

TEST(sigv4_example_put_object)
{
    const char *body = "Welcome to Amazon S3.";
    char hash[SIGV4_HEX_LEN];
    sigv4_sha256_hex(body, strlen(body), hash);
    CHECK(strcmp(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072") == 0);
    const struct sigv4_pair h[] = {
        {"Host", EX_HOST},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", EX_DATE},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", hash},
    };
    /* The key has a '$', which the canonical URI carries as %24. */
    struct sigv4_request rq = {.method = "PUT", .path = "/test$file.text", .headers = h, .nheaders = 5,
                               .payload_hash = hash};
    struct buf creq, sts;
    buf_init(&creq);
    buf_init(&sts);
    CHECK_EQ(sigv4_canonical_request(&rq, &creq), 0);
    CHECK(starts_with((const char *)creq.data, "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"));
    sigv4_string_to_sign(&ex_key, EX_DATE, (const char *)creq.data, &sts);
    CHECK(strcmp((const char *)sts.data, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                                         "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d") == 0);
    buf_free(&creq);
    buf_free(&sts);
    CHECK(auth_is(&rq, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
}

TEST(sigv4_example_get_bucket_lifecycle)
{
    const struct sigv4_pair h[] = {
        {"host", EX_HOST}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}, {"x-amz-date", EX_DATE}};
    const struct sigv4_pair q[] = {{"lifecycle", ""}}; /* a bare name signs as "lifecycle=" */
    struct sigv4_request rq = {.method = "GET", .path = "/", .query = q, .nquery = 1, .headers = h, .nheaders = 3,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    CHECK(auth_is(&rq, "host;x-amz-content-sha256;x-amz-date",
                  "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
}

TEST(sigv4_example_list_objects)
{
    const struct sigv4_pair h[] = {
        {"x-amz-date", EX_DATE}, {"host", EX_HOST}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    /* Given out of order: the canonical query string is sorted. */
    const struct sigv4_pair q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    struct sigv4_request rq = {.method = "GET", .path = "", .query = q, .nquery = 2, .headers = h, .nheaders = 3,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    struct buf creq;
    buf_init(&creq);
    CHECK_EQ(sigv4_canonical_request(&rq, &creq), 0);
    CHECK(starts_with((const char *)creq.data, "GET\n/\nmax-keys=2&prefix=J\n"));
    buf_free(&creq);
    CHECK(auth_is(&rq, "host;x-amz-content-sha256;x-amz-date",
                  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
}

TEST(sigv4_signature_changes_with_every_signed_input)
{
    const struct sigv4_pair h[] = {
        {"host", EX_HOST}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}, {"x-amz-date", EX_DATE}};
    const struct sigv4_pair q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    struct sigv4_request rq = {.method = "GET", .path = "/", .query = q, .nquery = 2, .headers = h, .nheaders = 3,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    const char *good = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    CHECK(auth_is(&rq, "host;x-amz-content-sha256;x-amz-date", good));
    struct buf a;
    buf_init(&a);
    struct sigv4_key other = ex_key;
    other.region = "eu-west-1";
    CHECK_EQ(sigv4_authorization(&rq, &other, EX_DATE, &a), 0);
    CHECK(strstr((const char *)a.data, "/eu-west-1/s3/") && !strstr((const char *)a.data, good));
    buf_reset(&a);
    other = ex_key;
    other.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ";
    CHECK_EQ(sigv4_authorization(&rq, &other, EX_DATE, &a), 0);
    CHECK(!strstr((const char *)a.data, good));
    buf_reset(&a);
    rq.method = "DELETE";
    CHECK_EQ(sigv4_authorization(&rq, &ex_key, EX_DATE, &a), 0);
    CHECK(!strstr((const char *)a.data, good));
    buf_free(&a);
}

TEST(sigv4_header_names_any_case_values_trimmed)
{
    /* Names compare lowercase; values lose outer blanks and runs of inner spaces. */
    const struct sigv4_pair h[] = {
        {"HOST", "  " EX_HOST "  "},
        {"X-Amz-Content-SHA256", SIGV4_EMPTY_SHA256},
        {"X-AMZ-DATE", EX_DATE},
        {"Range", "bytes=0-9"},
    };
    struct sigv4_request rq = {.method = "GET", .path = "/test.txt", .headers = h, .nheaders = 4,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    CHECK(auth_is(&rq, "host;range;x-amz-content-sha256;x-amz-date",
                  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));

    const struct sigv4_pair h2[] = {{"x-amz-meta-note", "  a   b  c "}, {"host", "h"}};
    struct sigv4_request rq2 = {.method = "GET", .path = "/", .headers = h2, .nheaders = 2, .payload_hash = "x"};
    struct buf creq;
    buf_init(&creq);
    CHECK_EQ(sigv4_canonical_request(&rq2, &creq), 0);
    CHECK(strcmp((const char *)creq.data, "GET\n/\n\nhost:h\nx-amz-meta-note:a b c\n\nhost;x-amz-meta-note\nx") == 0);
    buf_free(&creq);
}

TEST(sigv4_rejects_too_many_or_too_long_headers)
{
    struct sigv4_pair h[SIGV4_MAX_HEADERS + 1];
    char names[SIGV4_MAX_HEADERS + 1][16];
    for (int i = 0; i <= SIGV4_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof(names[i]), "x-h%d", i);
        h[i] = (struct sigv4_pair){names[i], "v"};
    }
    struct sigv4_request rq = {.method = "GET", .path = "/", .headers = h, .nheaders = SIGV4_MAX_HEADERS + 1,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    struct buf out;
    buf_init(&out);
    CHECK_EQ(sigv4_authorization(&rq, &ex_key, EX_DATE, &out), -1);
    rq.nheaders = SIGV4_MAX_HEADERS;
    CHECK_EQ(sigv4_authorization(&rq, &ex_key, EX_DATE, &out), 0);
    char longname[100];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    h[0].name = longname;
    CHECK_EQ(sigv4_authorization(&rq, &ex_key, EX_DATE, &out), -1);
    buf_free(&out);
}

TEST(sigv4_uri_encoding)
{
    CHECK(strcmp(encoded("AZaz09-._~", false), "AZaz09-._~") == 0);
    CHECK(strcmp(encoded("a b+c=d&e", false), "a%20b%2Bc%3Dd%26e") == 0);
    CHECK(strcmp(encoded("a/b", false), "a%2Fb") == 0);
    CHECK(strcmp(encoded("/a/b c/", true), "/a/b%20c/") == 0);
    CHECK(strcmp(encoded("!'()*$%", true), "%21%27%28%29%2A%24%25") == 0);
    CHECK(strcmp(encoded("\xc3\xa9\x01\xff", false), "%C3%A9%01%FF") == 0); /* UTF-8 bytes, uppercase hex */
}

TEST(sigv4_query_encoded_before_sorting)
{
    /* A continuation token is base64: '+', '/' and '=' must be encoded in the canonical query.
     * Sorting is by encoded name, then value; "a-b" sorts after "a". */
    const struct sigv4_pair q[] = {{"continuation-token", "ab+/c=="}, {"list-type", "2"},
                                   {"a-b", "1"}, {"a", "z"}, {"a", "y"}, {"prefix", "x y/"}};
    const struct sigv4_pair h[] = {{"host", "h"}};
    struct sigv4_request rq = {.method = "GET", .path = "/b", .query = q, .nquery = 6, .headers = h, .nheaders = 1,
                               .payload_hash = SIGV4_EMPTY_SHA256};
    struct buf creq;
    buf_init(&creq);
    CHECK_EQ(sigv4_canonical_request(&rq, &creq), 0);
    CHECK(starts_with((const char *)creq.data,
                      "GET\n/b\na=y&a=z&a-b=1&continuation-token=ab%2B%2Fc%3D%3D&list-type=2&prefix=x%20y%2F\n"));
    buf_free(&creq);
}

TEST(sigv4_amz_date_format)
{
    char d[SIGV4_DATE_LEN];
    sigv4_amz_date(1369353600, d);
    CHECK(strcmp(d, "20130524T000000Z") == 0);
    sigv4_amz_date(951868799, d); /* the last second of 2000-02-29 */
    CHECK(strcmp(d, "20000229T235959Z") == 0);
    sigv4_amz_date(0, d);
    CHECK(strcmp(d, "19700101T000000Z") == 0);
}
