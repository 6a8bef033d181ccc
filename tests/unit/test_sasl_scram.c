/* SCRAM-SHA-256 against RFC 7677's example exchange, PLAIN hashing, and malformed messages. */
#include <string.h>

#include "broker/sasl_scram.h"
#include "check.h"

#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_NONCE RFC_CNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

static const uint8_t rfc_salt[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                   0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81}; /* W22ZaJ0SNY7soEsUEjb6gQ== */

TEST(scram_sha256_rfc7677_exchange)
{
    struct sasl_credential c;
    CHECK_EQ(sasl_cred_derive(&c, "user", SASL_MECH_SCRAM_SHA_256, "pencil", 6, rfc_salt, sizeof(rfc_salt), 4096), 0);
    struct scram_state st;
    char err[256], out[256];
    const char *first = "n,,n=user,r=" RFC_CNONCE;
    CHECK_EQ(scram_client_first(&st, SASL_MECH_SCRAM_SHA_256, (const uint8_t *)first, strlen(first), err,
                                sizeof(err)), 0);
    CHECK(!strcmp(st.user, "user"));
    CHECK(!strcmp(st.nonce, RFC_CNONCE));
    CHECK_EQ(scram_server_first(&st, &c), 0);
    CHECK(!strncmp(st.server_first, "r=" RFC_CNONCE, strlen("r=" RFC_CNONCE)));
    /* Replace the random server nonce by the RFC's to check the proof and the signature. */
    strcpy(st.nonce, RFC_NONCE);
    strcpy(st.server_first, "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    const char *final = "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK_EQ(scram_client_final(&st, &c, (const uint8_t *)final, strlen(final), out, sizeof(out), err, sizeof(err)),
             0);
    CHECK(!strcmp(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
    /* One bit off in the proof fails. */
    const char *bad = "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=";
    CHECK_EQ(scram_client_final(&st, &c, (const uint8_t *)bad, strlen(bad), out, sizeof(out), err, sizeof(err)), -1);
    /* Another nonce fails. */
    const char *other = "c=biws,r=" RFC_CNONCE "x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK_EQ(scram_client_final(&st, &c, (const uint8_t *)other, strlen(other), out, sizeof(out), err, sizeof(err)),
             -1);
}

TEST(scram_rejects_malformed_client_first)
{
    const char *bad[] = {"", "n", "n,", "n,,", "n,,n=", "n,,n=u", "n,,n=u,r=", "p=tls-unique,,n=u,r=abc",
                         "n,,n=a=ZZ,r=abc", "n,,n=a=2,r=abc", "x,,n=u,r=abc", "n,b,n=u,r=abc", "n,,m=x,n=u,r=abc",
                         "n,,n=u,r=a b"};
    struct scram_state st;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = scram_client_first(&st, SASL_MECH_SCRAM_SHA_512, (const uint8_t *)bad[i], strlen(bad[i]), err,
                                    sizeof(err));
        if (rc != -1)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK_EQ(rc, -1);
    }
    const char *esc = "n,,n=a=2Cb=3Dc,r=xyz,ext=1";
    CHECK_EQ(scram_client_first(&st, SASL_MECH_SCRAM_SHA_512, (const uint8_t *)esc, strlen(esc), err, sizeof(err)), 0);
    CHECK(!strcmp(st.user, "a,b=c"));
    CHECK(!strcmp(st.nonce, "xyz"));
}

TEST(plain_hash_and_parse)
{
    struct sasl_credential c;
    CHECK_EQ(sasl_cred_make(&c, "alice", SASL_MECH_PLAIN, "s3cret", 6, 4096), 0);
    CHECK(strstr(c.stored_key, "s3cret") == NULL && strlen(c.stored_key) == 64 && c.server_key[0] == 0);
    CHECK(sasl_plain_verify(&c, (const uint8_t *)"s3cret", 6));
    CHECK(!sasl_plain_verify(&c, (const uint8_t *)"s3creT", 6));
    CHECK(!sasl_plain_verify(&c, (const uint8_t *)"", 0));
    char user[64];
    const uint8_t *pw;
    size_t pwlen;
    CHECK_EQ(sasl_plain_parse((const uint8_t *)"\0alice\0pw", 9, user, sizeof(user), &pw, &pwlen), 0);
    CHECK(!strcmp(user, "alice") && pwlen == 2 && !memcmp(pw, "pw", 2));
    CHECK_EQ(sasl_plain_parse((const uint8_t *)"alice", 5, user, sizeof(user), &pw, &pwlen), -1);
    CHECK_EQ(sasl_plain_parse((const uint8_t *)"\0\0pw", 4, user, sizeof(user), &pw, &pwlen), -1);
    CHECK_EQ(sasl_plain_parse((const uint8_t *)"\0a\0p\0w", 6, user, sizeof(user), &pw, &pwlen), -1);
    CHECK_EQ(sasl_cred_make(&c, "alice", SASL_MECH_PLAIN, "x", 1, 100), -1); /* too few iterations */
}
