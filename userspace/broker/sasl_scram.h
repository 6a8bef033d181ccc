/* SASL mechanisms' cryptography: deriving stored credentials from a password (PLAIN: a salted
 * PBKDF2 hash; SCRAM: RFC 5802 StoredKey/ServerKey) and the SCRAM server exchange (RFC 5802,
 * RFC 7677). No I/O: the broker (sasl.c) and `sluice user` call these. */
#ifndef SLUICE_SASL_SCRAM_H
#define SLUICE_SASL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/metastore.h"

enum sasl_mech { SASL_MECH_NONE = 0, SASL_MECH_PLAIN, SASL_MECH_SCRAM_SHA_256, SASL_MECH_SCRAM_SHA_512 };

#define SASL_MIN_ITERATIONS 4096
#define SASL_MAX_ITERATIONS 1000000
#define SCRAM_MSG_MAX 1024 /* longest SCRAM message accepted (RFC 5802 messages are short) */

/* The mechanism named (exact, case-sensitive as in Kafka), or SASL_MECH_NONE. */
enum sasl_mech sasl_mech_parse(const char *name, size_t len);
const char *sasl_mech_name(enum sasl_mech m);

/* Derives the stored credential of user for mechanism from password with a fresh random salt.
 * 0, or -1 (bad arguments or no randomness). */
int sasl_cred_make(struct sasl_credential *out, const char *user, enum sasl_mech m, const char *password,
                   size_t password_len, int iterations);

/* The same from a given salt (tests use the RFC's vectors). */
int sasl_cred_derive(struct sasl_credential *out, const char *user, enum sasl_mech m, const char *password,
                     size_t password_len, const uint8_t *salt, size_t salt_len, int iterations);

/* The same from the salted password (PBKDF2 output, as AlterUserScramCredentials sends it). */
int sasl_cred_from_salted(struct sasl_credential *out, const char *user, enum sasl_mech m, const uint8_t *salted,
                          size_t salted_len, const uint8_t *salt, size_t salt_len, int iterations);

/* PLAIN: splits "authzid\0user\0password" (RFC 4616). 0, or -1 if malformed. user is NUL-terminated. */
int sasl_plain_parse(const uint8_t *msg, size_t len, char *user, size_t user_size, const uint8_t **password,
                     size_t *password_len);
/* PLAIN: does password match the credential? (derives it again; constant-time comparison) */
bool sasl_plain_verify(const struct sasl_credential *c, const uint8_t *password, size_t password_len);

/* One SCRAM exchange on the server side. */
struct scram_state {
    enum sasl_mech mech;
    char user[SASL_USER_MAX + 1];
    char gs2_header[SCRAM_MSG_MAX + 1];  /* "n,," or "y,,a=...," as the client sent it */
    char client_first_bare[SCRAM_MSG_MAX + 1];
    char server_first[SCRAM_MSG_MAX + 1];
    char nonce[SCRAM_MSG_MAX + 1]; /* client nonce + server nonce */
};

/* Parses client-first-message ("n,,n=user,r=nonce"): fills st->user and the client nonce.
 * 0, or -1 with why in err. */
int scram_client_first(struct scram_state *st, enum sasl_mech m, const uint8_t *msg, size_t len, char *err,
                       size_t errlen);
/* Builds server-first-message for the user's credential into st->server_first. 0 or -1. */
int scram_server_first(struct scram_state *st, const struct sasl_credential *c);
/* Checks client-final-message's proof; on success writes server-final-message ("v=...") into out.
 * 0, or -1 with why in err. */
int scram_client_final(struct scram_state *st, const struct sasl_credential *c, const uint8_t *msg, size_t len,
                       char *out, size_t outlen, char *err, size_t errlen);

#endif
