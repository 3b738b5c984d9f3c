/*
 * store.h -- the sync server's state behind a small method table.
 *
 * The HTTP layer (http.c, stream.c) never touches a database: it calls a
 * cs_srv_store_ops.  `cs_srv_store_sqlite` (store_sqlite.c) is the embedded
 * default, a cstack database of the served schema merged with the same sync
 * engine as the devices; a PostgreSQL store plugs in behind the same table
 * later without changing the callers.
 *
 * Threads: every method may be called from any thread at the same time; a
 * store serialises what must be serialised (pushes, and what pulls record)
 * itself; pulls read a snapshot and run beside pushes.  Errors come back as a CSTACK_E* code plus a cs_srv_err saying what
 * kind of refusal it is (the HTTP status follows from the kind) and why.
 */
#ifndef CS_SERVER_STORE_H
#define CS_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/auth.h"
#include "server/schemas.h"
#include "util/buf.h"
#include "util/clock.h"

/* What kind of failure a store reports; http.c maps each to one status. */
typedef enum cs_srv_fail {
    CS_SRV_OK = 0,
    CS_SRV_BAD,       /* malformed input: a bad changeset, cursor or batch id (400) */
    CS_SRV_FORBIDDEN, /* a write policy refused a row (403) */
    CS_SRV_CONFLICT,  /* the input was made with another schema (409) */
    CS_SRV_INTERNAL,  /* the store itself failed (500) */
    CS_SRV_UNAVAILABLE /* the store's database cannot be reached now (503) */
} cs_srv_fail;

typedef struct cs_srv_err {
    cs_srv_fail kind;
    int code;          /* the CSTACK_E* code behind it */
    char message[512]; /* one readable sentence */
} cs_srv_err;

/* One push: a changeset from the device `site` (32 hex digits) signed in as
 * `auth`, idempotent under `batch` ("<site>:<version>").  Everything is
 * borrowed for the call. */
typedef struct cs_srv_push {
    const cs_auth *auth;
    const char *site;
    const char *batch;
    const void *changeset;
    size_t len;
} cs_srv_push;

typedef struct cs_srv_push_result {
    bool duplicate;  /* the batch had been applied before; nothing was done */
    int64_t cursor;  /* the server's version once the batch is in */
    int64_t rows;    /* row changes in the changeset */
    int64_t columns; /* column changes in the changeset */
    int64_t won;     /* column changes that won the merge */
} cs_srv_push_result;

/* Where a paged answer resumes: after row (ver, model, key) of the export's
 * order (version, model index, primary key), the pages all sent relative
 * to the same `since`.  `remaining` is what the previous page said was left
 * (for progress only).  Its text form is the continuation cursor of
 * docs/server.md: "<since>.<ver>.<model>.<remaining>.<key hex>". */
#define CS_SRV_POS_KEY_MAX 512
typedef struct cs_srv_pos {
    bool set; /* false: the answer starts at `since` */
    int64_t ver;
    int model;
    int64_t remaining;
    size_t keylen;
    unsigned char key[CS_SRV_POS_KEY_MAX];
} cs_srv_pos;

/* The longest cursor text, with its terminator. */
#define CS_SRV_CURSOR_MAX (4 * 19 + 2 * CS_SRV_POS_KEY_MAX + 1)

/* Parses a cursor a device sent: plain decimal digits (at most 18), or the
 * continuation form (every number at most 18 digits, the key 1 to
 * CS_SRV_POS_KEY_MAX bytes in lowercase hex).  Syntax only: the store checks
 * the rest.  Returns false when malformed. */
bool cs_srv_cursor_parse(const char *s, int64_t *since, cs_srv_pos *pos);
/* Writes the cursor a device passes next into buf (CS_SRV_CURSOR_MAX). */
void cs_srv_cursor_format(char *buf, size_t cap, int64_t cursor, int64_t since,
                          const cs_srv_pos *pos);

/* One pull: what `auth` on device `site` must receive after cursor `since`
 * (resuming at `pos` when set), at most one page of it. */
typedef struct cs_srv_pull {
    const cs_auth *auth;
    const char *site;
    int64_t since;
    bool want_changes;  /* false: only the cursor (and checksum) */
    bool want_checksum; /* the user's visible-state checksum at the cursor */
    /* Also send the columns the device wrote itself (no echo suppression):
     * a device that forgot rows (undoing a refused batch, a repair) re-pulls
     * them whole. */
    bool echoes;
    /* Also the checksum of each synced model (model_sums): a device whose
     * checksum differs finds what to repair (docs/sync.md, "Self-repair"). */
    bool want_model_sums;
    /* Models whose rows the device forgot (a repair): flagged ones
     * (indexed by model; NULL: none) are sent as to a device holding none
     * of their rows, as from cursor 0, the others as usual from `since`, so
     * the answer's cursor stays valid for every model. */
    const bool *resend;
    cs_srv_pos pos;     /* where a paged answer resumes */
    size_t page_rows;   /* bounds of one page; 0: no bound */
    size_t page_bytes;
    /* Rolling upgrades (schemas.h): the device's schema when it is an older
     * one than the server's (its answer and checksum are projected onto
     * it), and the schema it ran before upgrading when it asks once for
     * what that one lacked.  NULL: none. */
    const cstack_schema *view;
    const cstack_schema *upgrade_from;
} cs_srv_pull;

typedef struct cs_srv_pull_result {
    void *body; /* the changeset (free with free()); NULL when not wanted
                 * or when same_as >= 0 */
    size_t len;
    int64_t rows;      /* rows in the changeset (full rows, tombstones, drops) */
    int64_t cursor;    /* the version the changeset brings the device to,
                        * when !more */
    bool more;         /* one page of several: resume at `pos` */
    cs_srv_pos pos;    /* when more: where the next page starts */
    int64_t remaining; /* rows still to examine for this device (at most) */
    uint64_t checksum; /* when asked for, and only on a last page */
    bool has_checksum;
    /* With want_model_sums and has_checksum: "Model=<16 hex>" per synced
     * model, comma-separated (free()d by cs_srv_pull_result_free). */
    char *model_sums;
    long same_as;      /* >= 0: identical to result [same_as] of the same call */
    bool forbidden;    /* the site belongs to another user: nothing was read
                        * or recorded, and the request must be refused */
    bool bad_cursor;   /* the continuation cursor points at no row this server
                        * could have given: nothing was read (a 400) */
} cs_srv_pull_result;

/* The message of a refusal for a site id another user owns (it never names
 * that user). */
#define CS_SRV_SITE_FOREIGN "this device's site id (X-Cstack-Site) belongs to another user"

/* The message of a refusal for a continuation cursor that points at no
 * row this server could have given. */
#define CS_SRV_BAD_CURSOR "the continuation cursor does not point at a row of this server"

/* Bounds of what the store keeps per device. */
typedef struct cs_srv_store_cfg {
    unsigned max_sites_per_user; /* 0: CS_SRV_MAX_SITES */
    int64_t site_ttl_ms;         /* 0: CS_SRV_SITE_TTL_MS */
    /* Called (from a thread of the store) when the state changed by other
     * means than this process's own methods: another server's commit, a
     * backend's write (the PostgreSQL store).  NULL: nobody listens. */
    void (*changed)(void *ctx);
    void *changed_ctx;
    /* Bytes of pulls' notes held in memory while the write lock is busy
     * (store_sqlite_notes.c); 0: the default (32 MiB). */
    size_t notes_max;
} cs_srv_store_cfg;

#define CS_SRV_MAX_SITES 64u
#define CS_SRV_SITE_TTL_MS (90LL * 24 * 3600 * 1000)

typedef struct cs_srv_store cs_srv_store;

/* The method table (its version first, like SQLite's VFS, so a table built
 * for an older layout can still be recognised). */
typedef struct cs_srv_store_ops {
    int iversion;     /* 3 (2 added claim and the open's cfg, 3 versions) */
    const char *name; /* "sqlite" */
    /* Opens (creating when missing) the state at `target` (a file path for
     * SQLite) for `schema` (the store keeps its own reference).  On success
     * *out is a store to close with close().  `cfg` may be NULL (defaults). */
    int (*open)(const cstack_schema *schema, const char *target, const cs_srv_store_cfg *cfg,
                cs_srv_store **out, cs_srv_err *err);
    /* Validates and merges one batch, all or nothing, at most once per
     * (user, batch); returns only after the merge is durable (COMMIT).  A
     * site another user owns is refused (CS_SRV_FORBIDDEN) before anything
     * is read or written. */
    int (*push)(cs_srv_store *st, const cs_srv_push *req, cs_srv_push_result *res, cs_srv_err *err);
    /* Answers `n` pulls in one snapshot: every result describes the same
     * server version.  A request whose site another user owns changes
     * nothing and gets a result marked `forbidden`.  Identical requests are computed once
     * (same_as).  On failure no result holds anything (the store frees what it made). */
    int (*pull)(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, cs_srv_pull_result *res,
                cs_srv_err *err);
    /* The current version (the cursor of a device that has everything). */
    int (*version)(cs_srv_store *st, int64_t *version);
    /* Binds `site` to the user of `auth`, as a push or pull does, before a
     * stream opens: CS_SRV_FORBIDDEN when another user owns it. */
    int (*claim)(cs_srv_store *st, const cs_auth *auth, const char *site, cs_srv_err *err);
    /* Closes the state; every push acknowledged before is durable.  NULL ok. */
    void (*close)(cs_srv_store *st);
    /* Records the served schema as a version of this store and loads every
     * version it has run (schemas.h); free with cs_srv_versions_free. */
    int (*versions)(cs_srv_store *st, cs_srv_versions **out);
} cs_srv_store_ops;

extern const cs_srv_store_ops cs_srv_store_sqlite;

/* Frees what a pull result holds and clears it. */
void cs_srv_pull_result_free(cs_srv_pull_result *r);

/* Fills `err` (NULL ok); a NULL msg takes the code's description. */
void cs_srv_err_set(cs_srv_err *err, cs_srv_fail kind, int code, const char *msg);


/* Decodes a site id given as 32 hex digits.  CSTACK_EINVAL when malformed. */
int cs_srv_site_parse(const char *hex, unsigned char out[16]);

/* A canonical text identifying everything policies can see of a user (sub and
 * every auth() value), so that two requests with equal keys read exactly the
 * same rows.  Appended to `out`. */
int cs_srv_auth_key(const cstack_schema *s, const cs_auth *auth, cs_buf *out);

#endif
