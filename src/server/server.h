/*
 * server.h -- the cstack sync server (docs/server.md), as `cstack serve`
 * and the tests use it.
 *
 * A server serves one schema over HTTP (libmicrohttpd): pushes merged with
 * the schema's write policies, pulls and streams filtered by its read
 * policies, /healthz and /metrics.  Its state is a cstack database of the
 * same schema behind the store method table of store.h.
 */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cstack.h"

#define CS_SERVER_DEFAULT_DB "cstack-server.db"
#define CS_SERVER_DEFAULT_BIND "127.0.0.1"
#define CS_SERVER_DEFAULT_MAX_BODY ((size_t)64 << 20)

/* Everything is borrowed for cs_server_start only (the server copies what it
 * keeps); zero / NULL fields take the defaults shown. */
typedef struct cs_server_config {
    const char *schema_path;     /* the .cstack file, loaded when `schema` is NULL */
    const cstack_schema *schema; /* a schema already loaded (the server takes a reference) */
    const char *db_path;         /* CS_SERVER_DEFAULT_DB */
    const char *bind;            /* CS_SERVER_DEFAULT_BIND: loopback unless asked */
    int port;                    /* 0: any free port (see cs_server_port) */
    const char *jwt_secret;      /* HS256 secret; required */
    size_t max_body;             /* largest push body; CS_SERVER_DEFAULT_MAX_BODY */
    FILE *log;                   /* one line per request; NULL: no log */
    int checkpoint_ms;           /* stream checkpoint period; 10000 */
    int keepalive_ms;            /* stream keep-alive period; 15000 */
    unsigned max_connections;    /* 4096 */
    size_t thread_stack;         /* stack of each connection thread; 256 KiB */
    int drain_ms;                /* how long stop waits for requests in flight; 10000 */
} cs_server_config;

typedef struct cs_server cs_server;

/* Opens the state (creating or migrating the database), binds and starts
 * serving.  On success *out is a server to end with cs_server_stop().  On
 * failure *out is NULL and `err` says why (a schema diagnostic, a database
 * that cannot open, an address in use).  Returns 0 or a CSTACK_E* code. */
int cs_server_start(const cs_server_config *cfg, cs_server **out, char *err, size_t errlen);

/* The TCP port the server listens on (the chosen one when cfg.port was 0). */
int cs_server_port(const cs_server *srv);

/* Drains and frees the server: stops accepting connections, ends streams,
 * lets requests in flight finish (a push is acknowledged only after its
 * COMMIT, so nothing acknowledged is ever lost), joins every thread and
 * closes the database.  NULL ok. */
void cs_server_stop(cs_server *srv);

/* Serves until SIGINT or SIGTERM, then drains and returns 0 (or a CSTACK_E*
 * code when the server could not start, with `err` set).  Prints
 * "listening on http://ADDR:PORT" on `out` once serving.  The two signals
 * are blocked in the calling thread (and so in every thread it starts). */
int cs_server_run(const cs_server_config *cfg, FILE *out, char *err, size_t errlen);

#endif
