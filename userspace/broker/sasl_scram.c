#include "broker/sasl_scram.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SALT_BYTES 32
#define KEY_MAX 64 /* SHA-512 */

enum sasl_mech sasl_mech_parse(const char *name, size_t len)
{
    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_SCRAM_SHA_512; m++) {
        const char *n = sasl_mech_name((enum sasl_mech)m);
        if (strlen(n) == len && !memcmp(n, name, len))
            return (enum sasl_mech)m;
    }
    return SASL_MECH_NONE;
}

const char *sasl_mech_name(enum sasl_mech m)
{
    switch (m) {
    case SASL_MECH_PLAIN: return "PLAIN";
    case SASL_MECH_SCRAM_SHA_256: return "SCRAM-SHA-256";
    case SASL_MECH_SCRAM_SHA_512: return "SCRAM-SHA-512";
    default: return "";
    }
}

/* PLAIN hashes with SHA-256. */
static const EVP_MD *digest_of(enum sasl_mech m)
{
    return m == SASL_MECH_SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* Bytes of a hex string (at most max), or -1 if it is not one. */
static int from_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = hex[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return (int)(n / 2);
}

static int pbkdf2(enum sasl_mech m, const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen, int iter,
                  uint8_t *out)
{
    return PKCS5_PBKDF2_HMAC((const char *)pw, (int)pwlen, salt, (int)saltlen, iter, digest_of(m),
                             EVP_MD_get_size(digest_of(m)), out) == 1 ? 0 : -1;
}

static void hmac(enum sasl_mech m, const uint8_t *key, size_t klen, const void *data, size_t dlen, uint8_t *out)
{
    unsigned int olen = 0;
    HMAC(digest_of(m), key, (int)klen, data, dlen, out, &olen);
}

int sasl_cred_make(struct sasl_credential *out, const char *user, enum sasl_mech m, const char *password,
                   size_t password_len, int iterations)
{
    uint8_t salt[SALT_BYTES];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    return sasl_cred_derive(out, user, m, password, password_len, salt, sizeof(salt), iterations);
}

int sasl_cred_derive(struct sasl_credential *out, const char *user, enum sasl_mech m, const char *password,
                     size_t password_len, const uint8_t *salt, size_t salt_len, int iterations)
{
    if (m == SASL_MECH_NONE || strlen(user) == 0 || strlen(user) > SASL_USER_MAX || salt_len == 0 ||
        salt_len > KEY_MAX || iterations < SASL_MIN_ITERATIONS || iterations > SASL_MAX_ITERATIONS)
        return -1;
    uint8_t salted[KEY_MAX];
    if (pbkdf2(m, (const uint8_t *)password, password_len, salt, salt_len, iterations, salted) != 0)
        return -1;
    int rc = sasl_cred_from_salted(out, user, m, salted, (size_t)EVP_MD_get_size(digest_of(m)), salt, salt_len,
                                   iterations);
    OPENSSL_cleanse(salted, sizeof(salted));
    return rc;
}

int sasl_cred_from_salted(struct sasl_credential *out, const char *user, enum sasl_mech m, const uint8_t *salted,
                          size_t salted_len, const uint8_t *salt, size_t salt_len, int iterations)
{
    size_t hlen = (size_t)EVP_MD_get_size(digest_of(m));
    if (m == SASL_MECH_NONE || strlen(user) == 0 || strlen(user) > SASL_USER_MAX || salt_len == 0 ||
        salt_len > KEY_MAX || salted_len != hlen || iterations < SASL_MIN_ITERATIONS ||
        iterations > SASL_MAX_ITERATIONS)
        return -1;
    memset(out, 0, sizeof(*out));
    snprintf(out->user, sizeof(out->user), "%s", user);
    snprintf(out->mechanism, sizeof(out->mechanism), "%s", sasl_mech_name(m));
    out->iterations = iterations;
    to_hex(salt, salt_len, out->salt);
    if (m == SASL_MECH_PLAIN) {
        to_hex(salted, hlen, out->stored_key);
        return 0;
    }
    uint8_t k[KEY_MAX], stored[KEY_MAX];
    hmac(m, salted, hlen, "Client Key", 10, k);
    EVP_Digest(k, hlen, stored, NULL, digest_of(m), NULL);
    to_hex(stored, hlen, out->stored_key);
    hmac(m, salted, hlen, "Server Key", 10, k);
    to_hex(k, hlen, out->server_key);
    OPENSSL_cleanse(k, sizeof(k));
    return 0;
}

int sasl_plain_parse(const uint8_t *msg, size_t len, char *user, size_t user_size, const uint8_t **password,
                     size_t *password_len)
{
    const uint8_t *z1 = memchr(msg, 0, len);
    if (!z1)
        return -1;
    const uint8_t *u = z1 + 1;
    const uint8_t *z2 = memchr(u, 0, len - (size_t)(u - msg));
    if (!z2)
        return -1;
    size_t ulen = (size_t)(z2 - u);
    if (ulen == 0 || ulen >= user_size)
        return -1;
    memcpy(user, u, ulen);
    user[ulen] = 0;
    *password = z2 + 1;
    *password_len = len - (size_t)(z2 + 1 - msg);
    if (memchr(*password, 0, *password_len))
        return -1;
    return 0;
}

bool sasl_plain_verify(const struct sasl_credential *c, const uint8_t *password, size_t password_len)
{
    uint8_t salt[KEY_MAX], want[KEY_MAX], got[KEY_MAX];
    int saltlen = from_hex(c->salt, salt, sizeof(salt));
    int wantlen = from_hex(c->stored_key, want, sizeof(want));
    if (saltlen <= 0 || wantlen != 32 || c->iterations < 1)
        return false;
    if (pbkdf2(SASL_MECH_PLAIN, password, password_len, salt, (size_t)saltlen, c->iterations, got) != 0)
        return false;
    bool ok = CRYPTO_memcmp(got, want, 32) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* ---- SCRAM (RFC 5802) ---- */

/* A printable ASCII nonce without ',' (RFC 5802 "printable"). */
static bool nonce_ok(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    return true;
}

/* Decodes a saslname (",", "=" escaped as =2C, =3D). 0 or -1. */
static int saslname_decode(const char *p, size_t n, char *out, size_t outsize)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == ',' || ch == 0)
            return -1;
        if (ch == '=') {
            if (i + 3 > n)
                return -1;
            if (!strncmp(p + i, "=2C", 3))
                ch = ',';
            else if (!strncmp(p + i, "=3D", 3))
                ch = '=';
            else
                return -1;
            i += 2;
        }
        if (o + 1 >= outsize)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return o ? 0 : -1;
}

int scram_client_first(struct scram_state *st, enum sasl_mech m, const uint8_t *msg, size_t len, char *err,
                       size_t errlen)
{
    memset(st, 0, sizeof(*st));
    st->mech = m;
    char buf[SCRAM_MSG_MAX + 1];
    if (len == 0 || len > SCRAM_MSG_MAX || memchr(msg, 0, len)) {
        snprintf(err, errlen, "malformed SCRAM client-first message");
        return -1;
    }
    memcpy(buf, msg, len);
    buf[len] = 0;
    /* gs2-header: "n," or "y," (no channel binding), then an optional "a=authzid", then ",". */
    if ((buf[0] != 'n' && buf[0] != 'y') || buf[1] != ',') {
        snprintf(err, errlen, "SCRAM channel binding is not supported");
        return -1;
    }
    const char *comma = strchr(buf + 2, ',');
    if (!comma || (comma != buf + 2 && strncmp(buf + 2, "a=", 2) != 0)) {
        snprintf(err, errlen, "malformed SCRAM gs2 header");
        return -1;
    }
    size_t gs2len = (size_t)(comma + 1 - buf);
    memcpy(st->gs2_header, buf, gs2len);
    st->gs2_header[gs2len] = 0;
    const char *bare = comma + 1;
    snprintf(st->client_first_bare, sizeof(st->client_first_bare), "%s", bare);
    /* client-first-bare: n=saslname,r=nonce[,extensions] */
    if (strncmp(bare, "n=", 2) != 0) {
        snprintf(err, errlen, "malformed SCRAM client-first message: no user name");
        return -1;
    }
    const char *uend = strchr(bare + 2, ',');
    if (!uend || saslname_decode(bare + 2, (size_t)(uend - bare - 2), st->user, sizeof(st->user)) != 0) {
        snprintf(err, errlen, "malformed SCRAM user name");
        return -1;
    }
    if (strncmp(uend + 1, "r=", 2) != 0) {
        snprintf(err, errlen, "malformed SCRAM client-first message: no nonce");
        return -1;
    }
    const char *nonce = uend + 3, *nend = strchr(nonce, ',');
    size_t nlen = nend ? (size_t)(nend - nonce) : strlen(nonce);
    if (!nonce_ok(nonce, nlen) || nlen > 256) {
        snprintf(err, errlen, "malformed SCRAM nonce");
        return -1;
    }
    memcpy(st->nonce, nonce, nlen);
    st->nonce[nlen] = 0;
    return 0;
}

int scram_server_first(struct scram_state *st, const struct sasl_credential *c)
{
    uint8_t rnd[24], salt[KEY_MAX];
    int saltlen = from_hex(c->salt, salt, sizeof(salt));
    if (saltlen <= 0 || RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    char snonce[64], salt64[4 * KEY_MAX / 3 + 8];
    EVP_EncodeBlock((unsigned char *)snonce, rnd, sizeof(rnd)); /* base64: printable, no ',' */
    EVP_EncodeBlock((unsigned char *)salt64, salt, saltlen);
    size_t n = strlen(st->nonce);
    snprintf(st->nonce + n, sizeof(st->nonce) - n, "%s", snonce);
    int w = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d", st->nonce, salt64,
                     (int)c->iterations);
    return w > 0 && (size_t)w < sizeof(st->server_first) ? 0 : -1;
}

/* Decodes standard base64 (with padding) into out. Its length, or -1. */
static int b64_decode(const char *p, size_t n, uint8_t *out, size_t max)
{
    if (n == 0 || n % 4 || n / 4 * 3 > max + 2)
        return -1;
    uint8_t tmp[SCRAM_MSG_MAX];
    if (n / 4 * 3 > sizeof(tmp))
        return -1;
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)p, (int)n);
    if (len < 0)
        return -1;
    if (p[n - 1] == '=')
        len--;
    if (p[n - 2] == '=')
        len--;
    if ((size_t)len > max)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}

int scram_client_final(struct scram_state *st, const struct sasl_credential *c, const uint8_t *msg, size_t len,
                       char *out, size_t outlen, char *err, size_t errlen)
{
    char buf[SCRAM_MSG_MAX + 1];
    if (len == 0 || len > SCRAM_MSG_MAX || memchr(msg, 0, len)) {
        snprintf(err, errlen, "malformed SCRAM client-final message");
        return -1;
    }
    memcpy(buf, msg, len);
    buf[len] = 0;
    /* c=base64(gs2-header),r=nonce[,extensions],p=proof */
    char cb[SCRAM_MSG_MAX];
    EVP_EncodeBlock((unsigned char *)cb, (const unsigned char *)st->gs2_header, (int)strlen(st->gs2_header));
    size_t cblen = strlen(cb), nlen = strlen(st->nonce);
    if (strncmp(buf, "c=", 2) != 0 || strncmp(buf + 2, cb, cblen) != 0 || buf[2 + cblen] != ',') {
        snprintf(err, errlen, "SCRAM channel binding does not match");
        return -1;
    }
    /* Like Kafka, the nonce must end with ours: librdkafka sends the client nonce twice. */
    const char *r = buf + 2 + cblen + 1, *rend = strchr(r, ',');
    size_t rlen = rend ? (size_t)(rend - r - 2) : 0;
    if (strncmp(r, "r=", 2) != 0 || !rend || rlen < nlen || memcmp(rend - nlen, st->nonce, nlen) != 0) {
        snprintf(err, errlen, "SCRAM nonce does not match");
        return -1;
    }
    const char *p = strstr(r, ",p=");
    if (!p || strchr(p + 3, ',')) {
        snprintf(err, errlen, "malformed SCRAM client-final message: no proof");
        return -1;
    }
    size_t hlen = (size_t)EVP_MD_get_size(digest_of(st->mech));
    uint8_t proof[KEY_MAX], stored[KEY_MAX], server_key[KEY_MAX], sig[KEY_MAX], key[KEY_MAX], h[KEY_MAX];
    if (b64_decode(p + 3, strlen(p + 3), proof, sizeof(proof)) != (int)hlen ||
        from_hex(c->stored_key, stored, sizeof(stored)) != (int)hlen ||
        from_hex(c->server_key, server_key, sizeof(server_key)) != (int)hlen) {
        snprintf(err, errlen, "malformed SCRAM proof");
        return -1;
    }
    char auth[3 * SCRAM_MSG_MAX + 4];
    snprintf(auth, sizeof(auth), "%s,%s,%.*s", st->client_first_bare, st->server_first, (int)(p - buf), buf);
    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); valid if H(ClientKey) = StoredKey. */
    hmac(st->mech, stored, hlen, auth, strlen(auth), sig);
    for (size_t i = 0; i < hlen; i++)
        key[i] = proof[i] ^ sig[i];
    EVP_Digest(key, hlen, h, NULL, digest_of(st->mech), NULL);
    if (CRYPTO_memcmp(h, stored, hlen) != 0) {
        snprintf(err, errlen, "Authentication failed during authentication due to invalid credentials with SASL "
                              "mechanism %s", sasl_mech_name(st->mech));
        return -1;
    }
    hmac(st->mech, server_key, hlen, auth, strlen(auth), sig);
    char sig64[4 * KEY_MAX / 3 + 8];
    EVP_EncodeBlock((unsigned char *)sig64, sig, (int)hlen);
    snprintf(out, outlen, "v=%s", sig64);
    return 0;
}
