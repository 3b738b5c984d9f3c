/*
 * cstack_server.h -- the public header of libcstack_server: the sync server
 * of docs/server.md, embedded in an application (what `cstack serve` runs).
 *
 * A server serves one schema over HTTP (libmicrohttpd): pushes merged with
 * the schema's write policies, pulls and streams filtered by its read
 * policies, /healthz and /metrics.  Its state is a cstack database of the
 * same schema.  Everything not declared here or in cstack.h is private.
 *
 * The server is a library of its own (libcstack_server, pkg-config
 * cstack-server) so that applications embedding libcstack do not carry an
 * HTTP server.  Conventions are those of cstack.h: functions that can fail
 * return 0 or a negative CSTACK_E* code, handles are opaque, destructors
 * accept NULL, and strings handed to the caller are freed with cstack_free().
 * Where a function can fail for reasons a caller wants to read (a schema
 * diagnostic, an address in use), it writes a one-line message into a
 * caller's buffer `err` of `errlen` bytes (NULL or 0: no message).
 *
 * The shared libcstack_server carries its own copy of the runtime, with
 * every symbol but cstack_server_* hidden; a schema handed to it
 * (cstack_server_config.schema) must come from a libcstack of the same
 * version, which cstack-server.pc requires.
 */
#ifndef CSTACK_SERVER_H
#define CSTACK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cstack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The defaults of the configuration below. */
#define CSTACK_SERVER_DEFAULT_DB "cstack-server.db"
#define CSTACK_SERVER_DEFAULT_BIND "127.0.0.1"
#define CSTACK_SERVER_DEFAULT_MAX_BODY ((size_t)64 << 20)
#define CSTACK_SERVER_DEFAULT_HEADER_TIMEOUT_MS 10000
#define CSTACK_SERVER_DEFAULT_MAX_PER_ADDRESS 64u
#define CSTACK_SERVER_DEFAULT_MAX_UPLOAD_MEMORY ((size_t)256 << 20)
#define CSTACK_SERVER_DEFAULT_MIN_BODY_RATE ((size_t)8192)
#define CSTACK_SERVER_DEFAULT_MAX_STREAM_MEMORY ((size_t)256 << 20)
#define CSTACK_SERVER_DEFAULT_PAGE_ROWS ((size_t)10000)
#define CSTACK_SERVER_DEFAULT_PAGE_BYTES ((size_t)8 << 20)
#define CSTACK_SERVER_DEFAULT_BACKUP_QUOTA ((uint64_t)256 << 20)

/* What a server serves and how.  The struct and every string and object it
 * points to are borrowed for the duration of cstack_server_start() or
 * cstack_server_run() only: the server copies what it keeps (and takes its
 * own reference on `schema`), so the caller may free them as soon as the
 * call returns.  Zero / NULL fields take the defaults shown. */
typedef struct cstack_server_config {
    /* The .cstack file to serve, loaded when `schema` is NULL. */
    const char *schema_path;
    /* A schema already loaded; the caller keeps its own reference and frees
     * it with cstack_schema_free() when it likes. */
    const cstack_schema *schema;
    /* The server's SQLite database, created or migrated at start;
     * CSTACK_SERVER_DEFAULT_DB (in the current directory) when NULL. */
    const char *db_path;
    /* The address to listen on; CSTACK_SERVER_DEFAULT_BIND (this machine
     * only) when NULL; "0.0.0.0" or "::" for every interface. */
    const char *bind;
    /* The TCP port; 0 picks a free one (read it with cstack_server_port()). */
    int port;
    /* The HS256 secret of the bearer tokens; required. */
    const char *jwt_secret;
    /* The largest push body in bytes; CSTACK_SERVER_DEFAULT_MAX_BODY. */
    size_t max_body;
    /* Receives one line per request, written whole (one write under the
     * stream's lock, so lines of concurrent requests never interleave);
     * NULL: no log.  Borrowed: it must stay open until the server stops. */
    FILE *log;
    int checkpoint_ms;        /* stream checkpoint period; 10000 */
    int keepalive_ms;         /* stream keep-alive period; 15000 */
    unsigned max_connections; /* 4096 */
    size_t thread_stack;      /* stack of each connection thread; 256 KiB */
    int drain_ms;             /* how long stop waits for requests in flight; 10000 */
    /* A connection must deliver its request line and headers within this
     * many ms of connecting (or of its previous response), however it
     * trickles them; then it is closed (408 for a first request). */
    int header_timeout_ms;
    /* Concurrent connections from one client address; more are answered
     * 503 and closed. */
    unsigned max_per_address;
    /* The sum of the push bodies being received; a push that would pass it
     * is answered 503 with Retry-After, its body never buffered. */
    size_t max_upload_memory;
    /* The sum of the output queued for every stream; past it the streams
     * with the largest queues (the slowest readers) are closed first. */
    size_t max_stream_memory;
    /* A device's site id belongs to the first user presenting it; a user
     * owns at most max_sites_per_user of them (a new one evicts the least
     * recently seen) and a site not seen for site_ttl_days is forgotten. */
    unsigned max_sites_per_user; /* 64 */
    int site_ttl_days;           /* 90 */
    /* One pull answer (and one `changes` event of a stream) carries at most
     * this many rows and about this many bytes; the rest follows in pages
     * (docs/server.md, "Pages"). */
    size_t pull_page_rows;  /* CSTACK_SERVER_DEFAULT_PAGE_ROWS */
    size_t pull_page_bytes; /* CSTACK_SERVER_DEFAULT_PAGE_BYTES */
    /* Page storage for backups (docs/pagestore.md): its SQLite file
     * ("<db_path>.pages" when NULL) and the bytes of pages one user may
     * store (CSTACK_SERVER_DEFAULT_BACKUP_QUOTA when 0). */
    const char *pages_path;
    uint64_t backup_quota;
    /* A folder whose files are served at `/` (GET) besides the API routes,
     * e.g. the browser build (docs/web.md); NULL: none.  Borrowed: it must
     * stay valid until the server stops. */
    const char *web_dir;
    /* A push body must arrive within header_timeout_ms of its headers plus
     * 1 s for every min_body_rate bytes received, i.e. at this many bytes/s
     * on average after a first header_timeout_ms; a slower one is answered
     * 408 and closed, giving back its share of max_upload_memory.
     * CSTACK_SERVER_DEFAULT_MIN_BODY_RATE (8 KiB/s, 64 kbit/s) when 0. */
    size_t min_body_rate;
} cstack_server_config;

typedef struct cstack_server cstack_server;

/* Opens the state (creating or migrating the database), binds and starts
 * serving on threads of its own.  On success *out is a server to end with
 * cstack_server_stop().  On failure *out is NULL and `err` says why (a schema
 * diagnostic, a database that cannot open, an address in use).
 * Errors: CSTACK_EMISUSE (no JWT secret, no schema), CSTACK_ESCHEMA,
 * CSTACK_EMIGRATION, CSTACK_EIO (cannot listen), CSTACK_EINVAL (a bind
 * address that does not resolve), CSTACK_ENOMEM, or the code of a failed
 * database open. */
CSTACK_API int cstack_server_start(const cstack_server_config *cfg, cstack_server **out, char *err,
                                   size_t errlen);

/* The TCP port the server listens on (the chosen one when cfg.port was 0);
 * 0 for NULL. */
CSTACK_API int cstack_server_port(const cstack_server *srv);

/* Drains and frees the server: stops accepting connections, ends streams,
 * lets requests in flight finish (a push is acknowledged only after its
 * COMMIT, so nothing acknowledged is ever lost), joins every thread and
 * closes the database.  `srv` is invalid afterwards.  NULL ok. */
CSTACK_API void cstack_server_stop(cstack_server *srv);

/* Starts a server and serves until SIGINT or SIGTERM, then drains and
 * returns 0 (or a CSTACK_E* code when the server could not start, with
 * `err` set).  Once serving, prints one line on `out`:
 *   listening on http://ADDR:PORT (database: PATH, sqlite)
 * with ", the default path" after "sqlite" when cfg.db_path was NULL, or
 * "(database: URL, postgres)" on PostgreSQL (the URL without its password).  The
 * two signals are blocked in the calling thread (and so in every thread it
 * starts) and restored on return. */
CSTACK_API int cstack_server_run(const cstack_server_config *cfg, FILE *out, char *err,
                                 size_t errlen);

/* Whether `db` (a --db value, cfg.db_path) names a PostgreSQL database: a
 * postgres:// or postgresql:// URL or a libpq key=value string.  Anything
 * else is a SQLite file path. */
CSTACK_API int cstack_server_db_is_postgres(const char *db);

/* The PostgreSQL row-level security of `schema`'s synced models, as
 * `cstack migrate` and `cstack serve` install it on a PostgreSQL database
 * (docs/postgres.md, "Policies in PostgreSQL"): SQL statements, to run
 * after the tables exist.  On success *out is a NUL-terminated string to
 * free with cstack_free().
 * Errors: CSTACK_EINVAL (out or schema NULL, a rule that cannot be
 * rendered), CSTACK_ENOMEM. */
CSTACK_API int cstack_server_postgres_policies(const cstack_schema *schema, char **out);

/* Creates or migrates the PostgreSQL database `db` for the schema file at
 * `schema_path`, as a server starting on it does (docs/postgres.md):
 * additive changes are applied, a destructive one is refused naming the
 * model and field (CSTACK_ESCHEMA) and nothing changes.  `err` says why it
 * failed; messages never hold the password.
 * Errors: CSTACK_ESCHEMA, CSTACK_EIO (PostgreSQL cannot be reached or
 * failed), CSTACK_ENOMEM. */
CSTACK_API int cstack_server_migrate_postgres(const char *schema_path, const char *db, char *err,
                                              size_t errlen);

/* Mints a bearer token (JWT, HS256) the server accepts, for development,
 * demos and tests (`cstack token`): real deployments get their tokens from
 * an identity provider that shares the secret.  `sub` becomes the token's
 * `sub` (auth().id in policies); each of the `nclaims` strings in `claims`
 * is "key=value", where a value that reads as a JSON integer or boolean
 * becomes one, a value starting with '{' or '[' is parsed as a JSON object
 * or array (a composite auth field's claim, `organization={"id":"o1"}`),
 * and anything else a string.  `iat` is `now` (Unix seconds)
 * and `exp` is now + ttl_seconds when ttl_seconds > 0 (no expiry
 * otherwise).  Every argument is borrowed for the call.  On success *token
 * is a NUL-terminated string to free with cstack_free(); on failure it is
 * NULL and `err` says why.
 * Errors: CSTACK_EINVAL (an empty secret or sub, a claim without '=', a reserved
 * claim such as "exp" or "sub" among the claims, a claim given twice, a
 * '{' or '[' value that is not valid JSON),
 * CSTACK_ENOMEM. */
CSTACK_API int cstack_server_mint_token(const char *secret, const char *sub,
                                        const char *const *claims, size_t nclaims, int64_t now,
                                        int64_t ttl_seconds, char **token, char *err,
                                        size_t errlen);

/* Records the schema `db` runs as a version the sync server has run, when
 * `db` is a server's store (it holds the server's table of versions;
 * anything else is left alone): `cstack migrate` calls it after migrating a
 * server's database, and `cstack_server_start` records its schema itself.
 * Devices on a recorded version that is an additive ancestor of the
 * server's current schema keep syncing (docs/sync.md, "Rolling upgrades").
 * *recorded (NULL ok) is 1 when a new version was added.
 * Errors: CSTACK_EMISUSE (the schema has no source text), SQLite's. */
CSTACK_API int cstack_server_record_schema(cstack *db, int *recorded);

#ifdef __cplusplus
}
#endif

#endif /* CSTACK_SERVER_H */
