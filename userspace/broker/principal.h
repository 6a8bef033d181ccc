/* Who sent a request, for the authorizer: the principal ("User:NAME") and the client's host. */
#ifndef SLUICE_PRINCIPAL_H
#define SLUICE_PRINCIPAL_H

#include <stddef.h>

struct request;

#define PRINCIPAL_ANONYMOUS "User:ANONYMOUS"

/* The authenticated principal: the SASL name first, then the mTLS certificate's CN, else
 * User:ANONYMOUS. */
const char *principal_of(const struct request *rq);
/* The client's address without its port ("127.0.0.1", "::1"; IPv4-mapped IPv6 as IPv4), as
 * host-based ACLs name it. Returns out. */
const char *principal_host(const struct request *rq, char *out, size_t outlen);
/* The same from a "1.2.3.4:5" / "[::1]:5" peer string. */
const char *principal_host_of_peer(const char *peer, char *out, size_t outlen);

#endif
