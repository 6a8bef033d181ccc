/* The s3:// object store: URL parsing, then every operation against a real S3 server (s3rver
 * behind tests/s3/serve.js, which checks each request's Signature V4 and injects faults). The
 * live tests skip when node or s3rver is missing (make deps installs both). */
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "storage/objstore.h"
#include "storage/objstore_s3.h"
#include "storage/s3_xml.h"

/* ---- URL parsing ---- */

static int parse(const char *url, struct s3_config *c)
{
    char err[256] = "";
    int rc = s3_parse_url(url, c, err, sizeof(err));
    if (rc == 0 && err[0])
        return -2; /* success must not leave a message */
    if (rc != 0 && !err[0])
        return -3; /* failure must say why */
    return rc;
}

TEST(s3_url_defaults_are_aws_virtual_hosted_https)
{
    struct s3_config c;
    CHECK_EQ(parse("s3://my-bucket", &c), 0);
    CHECK(strcmp(c.bucket, "my-bucket") == 0);
    CHECK(strcmp(c.prefix, "") == 0);
    CHECK(strcmp(c.region, "us-east-1") == 0);
    CHECK(strcmp(c.endpoint, "s3.us-east-1.amazonaws.com") == 0);
    CHECK(c.https);
    CHECK(!c.path_style);
    CHECK_EQ(parse("s3://b?region=eu-west-3", &c), 0);
    CHECK(strcmp(c.endpoint, "s3.eu-west-3.amazonaws.com") == 0);
    CHECK(strcmp(c.region, "eu-west-3") == 0);
}

TEST(s3_url_prefix_becomes_a_folder)
{
    struct s3_config c;
    CHECK_EQ(parse("s3://b/some/prefix", &c), 0);
    CHECK(strcmp(c.prefix, "some/prefix/") == 0);
    CHECK_EQ(parse("s3://b//some/prefix//?region=r1", &c), 0);
    CHECK(strcmp(c.prefix, "some/prefix/") == 0);
    CHECK_EQ(parse("s3://b/", &c), 0);
    CHECK(strcmp(c.prefix, "") == 0);
    CHECK_EQ(parse("s3://b/a%20b%2Bc", &c), 0); /* percent-decoded: keys hold the real bytes */
    CHECK(strcmp(c.prefix, "a b+c/") == 0);
    CHECK(parse("s3://b/a%2", &c) == -1);
    CHECK(parse("s3://b/a%zz", &c) == -1);
    char long_url[700];
    snprintf(long_url, sizeof(long_url), "s3://b/%0600d", 0);
    CHECK(parse(long_url, &c) == -1);
}

TEST(s3_url_endpoint_scheme_and_style)
{
    struct s3_config c;
    CHECK_EQ(parse("s3://sluice/p?endpoint=127.0.0.1:9000&region=us-east-1&path_style=true", &c), 0);
    CHECK(strcmp(c.endpoint, "127.0.0.1:9000") == 0);
    CHECK(!c.https); /* loopback without a scheme: http */
    CHECK(c.path_style);
    CHECK_EQ(parse("s3://b?endpoint=localhost:1", &c), 0);
    CHECK(!c.https);
    CHECK_EQ(parse("s3://b?endpoint=s3.localhost:1", &c), 0);
    CHECK(!c.https);
    CHECK_EQ(parse("s3://b?endpoint=[::1]:9000", &c), 0);
    CHECK(!c.https);
    CHECK_EQ(parse("s3://b?endpoint=localhost.example.com", &c), 0);
    CHECK(c.https);
    CHECK_EQ(parse("s3://b?endpoint=minio.internal:9000", &c), 0);
    CHECK(c.https);
    CHECK_EQ(parse("s3://b?endpoint=http://minio.internal:9000/", &c), 0);
    CHECK(!c.https);
    CHECK(strcmp(c.endpoint, "minio.internal:9000") == 0);
    CHECK_EQ(parse("s3://b?endpoint=https://127.0.0.1:9000&path_style=false", &c), 0);
    CHECK(c.https);
    CHECK(!c.path_style);
    CHECK_EQ(parse("s3://b?endpoint=http%3A%2F%2Fh%3A1&path_style=1", &c), 0);
    CHECK(!c.https && c.path_style && strcmp(c.endpoint, "h:1") == 0);
}

TEST(s3_url_errors_say_why)
{
    struct s3_config c;
    CHECK_EQ(parse("file:///x", &c), -1);
    CHECK_EQ(parse("s3://", &c), -1);
    CHECK_EQ(parse("s3:///prefix", &c), -1);
    CHECK_EQ(parse("s3://b?endpoint=", &c), -1);
    CHECK_EQ(parse("s3://b?endpoint=http://", &c), -1);
    CHECK_EQ(parse("s3://b?endpoint=h:1/path", &c), -1);
    CHECK_EQ(parse("s3://b?endpoint=user@h:1", &c), -1);
    CHECK_EQ(parse("s3://b?path_style=yes", &c), -1);
    CHECK_EQ(parse("s3://b?region=", &c), -1);
    CHECK_EQ(parse("s3://b?region=us east", &c), -1);
    CHECK_EQ(parse("s3://b?regoin=us-east-1", &c), -1); /* typos are not ignored */
    CHECK_EQ(parse("s3://b?region", &c), -1);
    CHECK_EQ(parse("s3://bad:bucket", &c), -1);
    char err[256] = "";
    CHECK_EQ(s3_parse_url("s3://b?nope=1", &c, err, sizeof(err)), -1);
    CHECK(strstr(err, "nope") != NULL);
}

TEST(s3_open_needs_credentials)
{
    char *ak = getenv("AWS_ACCESS_KEY_ID") ? strdup(getenv("AWS_ACCESS_KEY_ID")) : NULL;
    char *sk = getenv("AWS_SECRET_ACCESS_KEY") ? strdup(getenv("AWS_SECRET_ACCESS_KEY")) : NULL;
    unsetenv("AWS_ACCESS_KEY_ID");
    setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
    char err[256] = "";
    struct objstore *s = objstore_open("s3://b?endpoint=127.0.0.1:1", err, sizeof(err));
    CHECK(s == NULL);
    CHECK(strstr(err, "AWS_ACCESS_KEY_ID") != NULL);
    setenv("AWS_ACCESS_KEY_ID", "k", 1);
    s = objstore_open("s3://b/p?endpoint=127.0.0.1:1", err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK(strcmp(s->url, "s3://b/p?endpoint=127.0.0.1:1") == 0);
        objstore_close(s);
    }
    if (ak)
        setenv("AWS_ACCESS_KEY_ID", ak, 1);
    else
        unsetenv("AWS_ACCESS_KEY_ID");
    if (sk)
        setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    else
        unsetenv("AWS_SECRET_ACCESS_KEY");
    free(ak);
    free(sk);
}

/* ---- the XML of S3's answers ---- */

static int unescaped_is(const char *xml, const char *want)
{
    struct buf b;
    buf_init(&b);
    int ok = s3_xml_unescape(xml, xml + strlen(xml), &b) == 0 && b.len == strlen(want) &&
             memcmp(b.data, want, b.len) == 0;
    buf_free(&b);
    return ok;
}

static int unescape_fails(const char *xml)
{
    struct buf b;
    buf_init(&b);
    int rc = s3_xml_unescape(xml, xml + strlen(xml), &b);
    buf_free(&b);
    return rc == -1;
}

TEST(s3_xml_entities)
{
    CHECK(unescaped_is("plain/key.obj", "plain/key.obj"));
    CHECK(unescaped_is("a&amp;b&lt;c&gt;d&quot;e&apos;f", "a&b<c>d\"e'f"));
    CHECK(unescaped_is("&#65;&#x42;&#X43;&#233;&#x20AC;&#x1F600;", "ABC\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    CHECK(unescape_fails("a&b"));        /* no ';' */
    CHECK(unescape_fails("&nbsp;"));     /* not an XML entity */
    CHECK(unescape_fails("&#;"));
    CHECK(unescape_fails("&#x;"));
    CHECK(unescape_fails("&#0;"));
    CHECK(unescape_fails("&#xD800;"));   /* a surrogate */
    CHECK(unescape_fails("&#x110000;")); /* past Unicode */
    CHECK(unescape_fails("&#12a;"));
}

TEST(s3_xml_find_element_text)
{
    const char *doc = "<R><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>12</Size></Contents>"
                      "<Contents><Key></Key></Contents><Open>never closed</R>";
    const char *end = doc + strlen(doc), *s, *e;
    CHECK(s3_xml_find(doc, end, "IsTruncated", &s, &e) && e - s == 4 && !strncmp(s, "true", 4));
    CHECK(s3_xml_find(doc, end, "Key", &s, &e) && e - s == 7 && !strncmp(s, "a&amp;b", 7));
    const char *c1s, *c1e;
    CHECK(s3_xml_find(doc, end, "Contents", &c1s, &c1e));
    CHECK(s3_xml_find(c1e, end, "Key", &s, &e) && e == s); /* the second entry's empty key */
    CHECK(!s3_xml_find(doc, end, "Open", &s, &e));
    CHECK(!s3_xml_find(doc, end, "Missing", &s, &e));
    CHECK(!s3_xml_find(doc, doc, "R", &s, &e));
}

/* ---- a live S3 server ---- */

struct server {
    pid_t pid;
    int port;
    char dir[64];
};

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts serve.js on srv->port (a free one when 0) with its data in srv->dir. -1: cannot (skip). */
static int server_start(struct server *srv, const char *service_endpoint)
{
    if (access("tests/s3/node_modules/s3rver/package.json", R_OK) != 0)
        return -1;
    if (!srv->dir[0]) {
        snprintf(srv->dir, sizeof(srv->dir), "/tmp/sluice-unit-s3-XXXXXX");
        if (!mkdtemp(srv->dir))
            return -1;
    }
    if (!srv->port)
        srv->port = test_free_port();
    char port[16], data[96], log[96];
    snprintf(port, sizeof(port), "%d", srv->port);
    snprintf(data, sizeof(data), "%s/data", srv->dir);
    snprintf(log, sizeof(log), "%s/s3.log", srv->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* The legacy provider: s3rver 3.7.1 makes its list continuation tokens with DES. */
        const char *argv[] = {"node", "--openssl-legacy-provider", "tests/s3/serve.js", "--port", port,
                              "--directory", data, service_endpoint ? "--service-endpoint" : NULL, service_endpoint,
                              NULL};
        execvp("node", (char **)argv);
        _exit(127);
    }
    srv->pid = pid;
    int64_t deadline = ms_now() + 20000;
    while (!port_open(srv->port)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || ms_now() > deadline) {
            fprintf(stderr, "  s3 server did not start; see %s\n", log);
            if (ms_now() > deadline)
                kill(pid, SIGKILL), waitpid(pid, &st, 0);
            srv->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    return 0;
}

static void server_stop(struct server *srv)
{
    if (srv->pid > 0) {
        kill(srv->pid, SIGTERM);
        waitpid(srv->pid, NULL, 0);
        srv->pid = 0;
    }
}

static void server_cleanup(struct server *srv)
{
    server_stop(srv);
    if (srv->dir[0])
        test_rm_rf(srv->dir);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    buf_append(b, p, size * n);
    return size * n;
}

/* A control request to serve.js (/__sluice/...); the response body in out (NUL-terminated). */
static int control(const struct server *srv, const char *what, int post, struct buf *out)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/__sluice/%s", srv->port, what);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (post)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    buf_append(out, "", 1);
    return rc == CURLE_OK ? 0 : -1;
}

static long stat_of(const struct server *srv, const char *name)
{
    struct buf b;
    buf_init(&b);
    long v = -1;
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    if (control(srv, "stats", 0, &b) == 0) {
        const char *p = strstr((const char *)b.data, pat);
        if (p)
            v = strtol(p + strlen(pat), NULL, 10);
    }
    buf_free(&b);
    return v;
}

static void fail_next(const struct server *srv, int count, int status, const char *code, const char *method)
{
    char q[128];
    snprintf(q, sizeof(q), "fail?count=%d&status=%d&code=%s%s%s", count, status, code, method ? "&method=" : "",
             method ? method : "");
    struct buf b;
    buf_init(&b);
    control(srv, q, 1, &b);
    buf_free(&b);
}

static struct objstore *open_store(const struct server *srv, const char *prefix, const char *extra)
{
    char url[256], err[256] = "";
    snprintf(url, sizeof(url), "s3://sluice%s%s?endpoint=127.0.0.1:%d&region=us-east-1%s", prefix[0] ? "/" : "",
             prefix, srv->port, extra ? extra : "&path_style=true");
    struct objstore *s = objstore_open(url, err, sizeof(err));
    if (!s)
        fprintf(stderr, "  objstore_open(%s): %s\n", url, err);
    return s;
}

static void set_credentials(const char *secret)
{
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    unsetenv("AWS_SESSION_TOKEN");
}

#define START_SERVER(srv, endpoint)                                               \
    struct server srv = {0};                                                      \
    if (server_start(&srv, endpoint) != 0) {                                      \
        server_cleanup(&srv);                                                     \
        SKIP("node or tests/s3/node_modules/s3rver missing (make deps)");          \
    }                                                                             \
    set_credentials("S3RVER")

struct seen {
    char keys[64][128];
    uint64_t sizes[64];
    int n;
};

static void on_key(const char *key, uint64_t size, void *arg)
{
    struct seen *s = arg;
    if (s->n < 64) {
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
        s->sizes[s->n] = size;
    }
    s->n++;
}

static int get_is(struct objstore *s, const char *key, uint64_t off, size_t len, const uint8_t *want)
{
    struct buf b;
    buf_init(&b);
    buf_append(&b, "xyz", 3); /* get_range appends */
    int ok = objstore_get_range(s, key, off, len, &b) == 0 && b.len == 3 + len && memcmp(b.data, "xyz", 3) == 0 &&
             (len == 0 || memcmp(b.data + 3, want, len) == 0);
    buf_free(&b);
    return ok;
}

TEST(s3_live_put_get_delete_list)
{
    START_SERVER(srv, NULL);
    struct objstore *s = open_store(&srv, "some/prefix", NULL);
    CHECK(s != NULL);
    if (!s) {
        server_cleanup(&srv);
        return;
    }
    uint8_t bin[256 * 40];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7 + i / 256);
    CHECK_EQ(objstore_put(s, "objects/a.obj", bin, sizeof(bin)), 0);
    CHECK(get_is(s, "objects/a.obj", 0, sizeof(bin), bin));
    CHECK(get_is(s, "objects/a.obj", 1000, 1, bin + 1000));
    CHECK(get_is(s, "objects/a.obj", 0, 10, bin));
    CHECK(get_is(s, "objects/a.obj", sizeof(bin) - 17, 17, bin + sizeof(bin) - 17));
    CHECK(get_is(s, "objects/a.obj", 5, 0, bin));

    /* Stored under the URL's prefix, visible as a file in s3rver's folder. */
    char path[256];
    snprintf(path, sizeof(path), "%s/data/sluice/some/prefix/objects/a.obj._S3rver_object", srv.dir);
    CHECK(access(path, R_OK) == 0);

    /* Beyond the end: 416 from S3, not retried; out untouched. */
    long before = stat_of(&srv, "requests");
    struct buf b;
    buf_init(&b);
    CHECK(objstore_get_range(s, "objects/a.obj", sizeof(bin) - 5, 10, &b) != 0);
    CHECK(objstore_get_range(s, "objects/a.obj", sizeof(bin) + 5, 10, &b) != 0);
    CHECK(objstore_get_range(s, "objects/none.obj", 0, 10, &b) != 0); /* 404 */
    CHECK_EQ(b.len, 0);
    CHECK_EQ(stat_of(&srv, "requests") - before, 3);

    /* Keys with bytes that need encoding, in paths and in list prefixes. */
    const char *odd = "objects/odd key+&=$@!'()*~ \xc3\xa9;,:.obj";
    CHECK_EQ(objstore_put(s, odd, "odd", 3), 0);
    CHECK(get_is(s, odd, 0, 3, (const uint8_t *)"odd"));
    CHECK_EQ(objstore_put(s, "objects/empty.obj", "", 0), 0);
    CHECK_EQ(objstore_put(s, "null.obj", NULL, 0), 0); /* no data at all */
    CHECK_EQ(objstore_delete(s, "null.obj"), 0);
    CHECK_EQ(objstore_put(s, "other/x.obj", "12345", 5), 0);
    CHECK_EQ(objstore_put(s, "objects/a.obj", "over", 4), 0); /* overwrite */
    CHECK(get_is(s, "objects/a.obj", 0, 4, (const uint8_t *)"over"));

    struct seen seen = {0};
    CHECK_EQ(objstore_list(s, "objects/", on_key, &seen), 0);
    CHECK_EQ(seen.n, 3);
    if (seen.n == 3) {
        CHECK(strcmp(seen.keys[0], "objects/a.obj") == 0 && seen.sizes[0] == 4);
        CHECK(strcmp(seen.keys[1], "objects/empty.obj") == 0 && seen.sizes[1] == 0);
        CHECK(strcmp(seen.keys[2], odd) == 0 && seen.sizes[2] == 3);
    }
    memset(&seen, 0, sizeof(seen));
    CHECK_EQ(objstore_list(s, "objects/odd key+&", on_key, &seen), 0);
    CHECK_EQ(seen.n, 1);
    memset(&seen, 0, sizeof(seen));
    CHECK_EQ(objstore_list(s, NULL, on_key, &seen), 0);
    CHECK_EQ(seen.n, 4);

    /* A store on another prefix of the same bucket sees none of it, and the reverse. */
    struct objstore *other = open_store(&srv, "elsewhere", NULL);
    CHECK(other != NULL);
    if (other) {
        CHECK_EQ(objstore_put(other, "objects/z.obj", "z", 1), 0);
        memset(&seen, 0, sizeof(seen));
        CHECK_EQ(objstore_list(other, "", on_key, &seen), 0);
        CHECK(seen.n == 1 && strcmp(seen.keys[0], "objects/z.obj") == 0);
        memset(&seen, 0, sizeof(seen));
        CHECK_EQ(objstore_list(s, "", on_key, &seen), 0);
        CHECK_EQ(seen.n, 4);
        objstore_close(other);
    }

    CHECK_EQ(objstore_delete(s, "objects/a.obj"), 0);
    CHECK_EQ(objstore_delete(s, "objects/a.obj"), 0); /* already gone: still fine, as on S3 */
    CHECK(objstore_get_range(s, "objects/a.obj", 0, 4, &b) != 0);
    memset(&seen, 0, sizeof(seen));
    CHECK_EQ(objstore_list(s, "objects/", on_key, &seen), 0);
    CHECK_EQ(seen.n, 2);
    CHECK(objstore_put(s, "", "x", 1) != 0);
    CHECK_EQ(stat_of(&srv, "signatureFailures"), 0);
    buf_free(&b);
    objstore_close(s);
    server_cleanup(&srv);
}

TEST(s3_live_list_pages_with_continuation_tokens)
{
    START_SERVER(srv, NULL);
    struct objstore *s = open_store(&srv, "pages", NULL);
    CHECK(s != NULL);
    if (!s) {
        server_cleanup(&srv);
        return;
    }
    objstore_s3_set_list_page_size(s, 2);
    char key[64];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof(key), "k/%02d&<x>", i); /* '&' and '<' come back as XML entities */
        CHECK_EQ(objstore_put(s, key, key, strlen(key)), 0);
    }
    long before = stat_of(&srv, "requests");
    struct seen seen = {0};
    CHECK_EQ(objstore_list(s, "k/", on_key, &seen), 0);
    CHECK_EQ(seen.n, 7);
    for (int i = 0; i < seen.n && i < 7; i++) {
        snprintf(key, sizeof(key), "k/%02d&<x>", i);
        CHECK(strcmp(seen.keys[i], key) == 0);
        CHECK_EQ(seen.sizes[i], strlen(key));
    }
    CHECK_EQ(stat_of(&srv, "requests") - before, 4); /* 2 + 2 + 2 + 1 */
    CHECK_EQ(stat_of(&srv, "signatureFailures"), 0);
    objstore_close(s);
    server_cleanup(&srv);
}

TEST(s3_live_retries_transient_errors_only)
{
    START_SERVER(srv, NULL);
    struct objstore *s = open_store(&srv, "", NULL);
    CHECK(s != NULL);
    if (!s) {
        server_cleanup(&srv);
        return;
    }
    /* SlowDown twice, then success: three requests. */
    long r0 = stat_of(&srv, "requests");
    fail_next(&srv, 2, 503, "SlowDown", "PUT");
    CHECK_EQ(objstore_put(s, "r/1", "abc", 3), 0);
    CHECK_EQ(stat_of(&srv, "requests") - r0, 3);
    CHECK(get_is(s, "r/1", 0, 3, (const uint8_t *)"abc"));

    /* 429, 500 and 400 RequestTimeout are retried as well. */
    r0 = stat_of(&srv, "requests");
    fail_next(&srv, 1, 429, "TooManyRequests", "GET");
    fail_next(&srv, 1, 500, "InternalError", "GET");
    fail_next(&srv, 1, 400, "RequestTimeout", "GET");
    CHECK(get_is(s, "r/1", 1, 2, (const uint8_t *)"bc"));
    CHECK_EQ(stat_of(&srv, "requests") - r0, 4);

    /* Always failing: S3_MAX_ATTEMPTS requests, bounded by the backoff caps. */
    r0 = stat_of(&srv, "requests");
    fail_next(&srv, 100, 503, "ServiceUnavailable", NULL);
    int64_t t0 = ms_now();
    CHECK(objstore_put(s, "r/2", "x", 1) != 0);
    int64_t took = ms_now() - t0;
    CHECK_EQ(stat_of(&srv, "requests") - r0, S3_MAX_ATTEMPTS);
    CHECK(took < 3000);
    struct buf cleared;
    buf_init(&cleared);
    control(&srv, "clear", 1, &cleared);
    buf_free(&cleared);

    /* Other 4xx fail at once. */
    r0 = stat_of(&srv, "requests");
    fail_next(&srv, 1, 403, "AccessDenied", NULL);
    CHECK(objstore_put(s, "r/3", "x", 1) != 0);
    CHECK_EQ(stat_of(&srv, "requests") - r0, 1);
    CHECK_EQ(stat_of(&srv, "signatureFailures"), 0);
    objstore_close(s);
    server_cleanup(&srv);
}

TEST(s3_live_signature_is_checked)
{
    START_SERVER(srv, NULL);
    set_credentials("not-the-secret");
    struct objstore *bad = open_store(&srv, "", NULL);
    set_credentials("S3RVER");
    CHECK(bad != NULL);
    if (bad) {
        long r0 = stat_of(&srv, "requests");
        CHECK(objstore_put(bad, "sig/x", "x", 1) != 0);
        CHECK_EQ(stat_of(&srv, "requests") - r0, 1); /* 403 SignatureDoesNotMatch: not retried */
        CHECK_EQ(stat_of(&srv, "signatureFailures"), 1);
        objstore_close(bad);
    }
    /* A session token is sent as x-amz-security-token, which must then be signed too. */
    setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr//////////wEaDH+token=", 1);
    struct objstore *s = open_store(&srv, "", NULL);
    unsetenv("AWS_SESSION_TOKEN");
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ(objstore_put(s, "sig/y", "y", 1), 0);
        CHECK(get_is(s, "sig/y", 0, 1, (const uint8_t *)"y"));
        objstore_close(s);
    }
    CHECK_EQ(stat_of(&srv, "signatureFailures"), 1);
    server_cleanup(&srv);
}

TEST(s3_live_virtual_hosted_style)
{
    /* BUCKET.s3.localhost:PORT: curl resolves *.localhost to loopback, s3rver takes the bucket
     * from the Host header. */
    START_SERVER(srv, "localhost");
    char url[256], err[256] = "";
    snprintf(url, sizeof(url), "s3://sluice/vh?endpoint=s3.localhost:%d", srv.port);
    struct objstore *s = objstore_open(url, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ(objstore_put(s, "objects/v.obj", "virtual", 7), 0);
        CHECK(get_is(s, "objects/v.obj", 2, 4, (const uint8_t *)"rtua"));
        struct seen seen = {0};
        CHECK_EQ(objstore_list(s, "", on_key, &seen), 0);
        CHECK(seen.n == 1 && strcmp(seen.keys[0], "objects/v.obj") == 0);
        char path[256];
        snprintf(path, sizeof(path), "%s/data/sluice/vh/objects/v.obj._S3rver_object", srv.dir);
        CHECK(access(path, F_OK) == 0);
        CHECK_EQ(objstore_delete(s, "objects/v.obj"), 0);
        CHECK(access(path, F_OK) != 0);
        objstore_close(s);
    }
    CHECK_EQ(stat_of(&srv, "signatureFailures"), 0);
    server_cleanup(&srv);
}

struct reader {
    struct objstore *s;
    const uint8_t *data;
    size_t len;
    int bad;
    unsigned seed;
};

static void *read_many(void *arg)
{
    struct reader *r = arg;
    for (int i = 0; i < 40; i++) {
        size_t off = (size_t)rand_r(&r->seed) % r->len;
        size_t len = 1 + (size_t)rand_r(&r->seed) % (r->len - off);
        if (!get_is(r->s, "big.obj", off, len, r->data + off))
            r->bad++;
    }
    return NULL;
}

TEST(s3_live_concurrent_ranged_gets)
{
    START_SERVER(srv, NULL);
    struct objstore *s = open_store(&srv, "conc", NULL);
    CHECK(s != NULL);
    if (!s) {
        server_cleanup(&srv);
        return;
    }
    size_t len = 3u << 20;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i ^ (i >> 9) ^ (i >> 17));
    CHECK_EQ(objstore_put(s, "big.obj", data, len), 0);
    pthread_t t[6];
    struct reader r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = (struct reader){.s = s, .data = data, .len = len, .seed = (unsigned)i + 1};
        pthread_create(&t[i], NULL, read_many, &r[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(r[i].bad, 0);
    }
    free(data);
    objstore_close(s);
    server_cleanup(&srv);
}

TEST(s3_live_server_down_fails_fast_then_recovers)
{
    START_SERVER(srv, NULL);
    struct objstore *s = open_store(&srv, "down", NULL);
    CHECK(s != NULL);
    if (!s) {
        server_cleanup(&srv);
        return;
    }
    CHECK_EQ(objstore_put(s, "o", "hello", 5), 0);
    CHECK(get_is(s, "o", 0, 5, (const uint8_t *)"hello")); /* leaves a kept-alive connection */
    server_stop(&srv);
    int64_t t0 = ms_now();
    struct buf b;
    buf_init(&b);
    CHECK(objstore_get_range(s, "o", 0, 5, &b) != 0);
    CHECK(objstore_put(s, "p", "x", 1) != 0);
    /* Connection refused: only the backoff pauses (at most 1.55 s per operation), not timeouts. */
    CHECK(ms_now() - t0 < 5000);
    CHECK_EQ(b.len, 0);
    buf_free(&b);
    CHECK_EQ(server_start(&srv, NULL), 0); /* same port, same folder */
    CHECK(get_is(s, "o", 0, 5, (const uint8_t *)"hello"));
    CHECK_EQ(objstore_put(s, "p", "x", 1), 0);
    objstore_close(s);
    server_cleanup(&srv);
}
