/* The request's principal and host (principal.h). */
#include <stdio.h>
#include <string.h>

#include "broker/principal.h"
#include "broker/request.h"
#include "broker/sasl.h"
#include "server/conn.h"

const char *principal_of(const struct request *rq)
{
    /* SASL's identity first, then the mTLS certificate's. */
    const char *sasl = rq->conn ? sasl_principal(rq) : NULL;
    if (sasl)
        return sasl;
    const char *tls = rq->conn ? conn_tls_principal(rq->conn) : NULL;
    return tls ? tls : PRINCIPAL_ANONYMOUS;
}

const char *principal_host(const struct request *rq, char *out, size_t outlen)
{
    return principal_host_of_peer(rq->conn->peer, out, outlen);
}

const char *principal_host_of_peer(const char *peer, char *out, size_t outlen)
{
    const char *start = peer, *end;
    if (*peer == '[') {
        start = peer + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(peer, ':');
    }
    if (!end)
        end = peer + strlen(peer);
    if (end - start > 7 && strncmp(start, "::ffff:", 7) == 0 && memchr(start + 7, '.', (size_t)(end - start - 7)))
        start += 7;
    snprintf(out, outlen, "%.*s", (int)(end - start), start);
    return out;
}
