/* A throwaway PostgreSQL 15 for unit tests: initdb into a temp folder, one server on 127.0.0.1 and
 * a free port, started on first use and removed at exit. Run as the postgres user when the tests
 * run as root (the server refuses root). SLUICE_PG_BIN overrides /usr/lib/postgresql/15/bin. */
#ifndef SLUICE_PG_FIXTURE_H
#define SLUICE_PG_FIXTURE_H

#include <stddef.h>

/* Starts the server if it is not running. Returns 0, or -1 with the reason in why (tests SKIP
 * then: no PostgreSQL binaries, no postgres user, ...). */
int pg_fixture_up(char *why, size_t whylen);

/* A fresh, empty place for a store: schema NAME (dropped and made again) of database "sluice",
 * which a store opened on url uses through search_path. Far faster than a database per test.
 * url: "postgres://postgres@127.0.0.1:PORT/sluice?options=-csearch_path%3DNAME". Returns 0 or -1. */
int pg_fixture_new_store(const char *name, char *url, size_t urlsz);

/* The folder of the server's Unix socket, and its port (for socket URLs). */
const char *pg_fixture_socket_dir(void);
int pg_fixture_port(void);

/* libpq conninfo for database "sluice" with search_path NAME, as the superuser. */
void pg_fixture_conninfo(const char *name, char *out, size_t outsz);

/* Runs SQL in store NAME's schema, over a connection of its own. Returns 0 or -1. */
int pg_fixture_exec(const char *name, const char *sql);

/* Fault tests: pg_ctl stop -m fast, and start again on the same folder and port. */
int pg_fixture_stop(void);
int pg_fixture_start(void);

#endif
