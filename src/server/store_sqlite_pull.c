/*
 * store_sqlite_pull.c -- what each user receives: filtered exports with drops, and
 * the checksum of the user's visible state.
 *
 * Read policies decide per row: the read rule rendered to SQL is a column of
 * the export's own scan (the test of cs_policy_row_allowed with CS_POL_READ,
 * without a query per row and without holding the readable keys):
 *
 *  - _cstack_srv_sent records what each device (site) holds, to send a row
 *    the device lacks and drop (or send the deletion of) only rows it may
 *    hold: a pull never reveals the keys of rows its user cannot read.  A
 *    site belongs to the first user that presents it (store_sqlite_sites.c):
 *    another user's request for it reads and records nothing.
 *
 *  - Local read policies (every rule reads only the row itself and auth()):
 *    a row's visibility changes only when the row changes, so a pull scans
 *    only the rows changed since the cursor.
 *
 *  - Other read policies (a relation path, a to-many predicate): a row can
 *    become visible or invisible while unchanged, so every row is
 *    re-examined.
 *    Each record carries the cursor of the pull that made it: the device
 *    has acknowledged it once it pulls with a cursor at least that far, and
 *    until then the record is treated as possibly lost (so a lost response
 *    never leaves a row undelivered or undropped).
 *
 *  - What a pull records (its notes, a sighting, a new site's binding) is
 *    held in memory with the store's notes (store_sqlite_notes.c) and
 *    written at once when the write lock is free; when a push holds it, the
 *    pull answers without waiting and they are written after the push
 *    commits.  Lookups read the held notes before the table (sent_lookup).
 *    Only a version to make durable, notes past the bound, and the
 *    PostgreSQL store's copy make a pull wait for the write lock, and write
 *    in its own scope (pull_write).
 *
 *  - Pages: an answer stops after pull_page_rows rows or pull_page_bytes
 *    bytes and says where the next page starts (cs_srv_pos, cursor.c); the
 *    pages of one answer share its `since`.  A device is not sent back what
 *    it wrote itself (echo suppression) unless the records say it lacks the
 *    row.
 *
 * The checksum is the sum of cs_row_checksum over the rows the user may read
 * (soft-deleted rows excluded, as cstack_sync_checksum excludes them on the
 * device), computed with the read policy rendered to SQL in one query per
 * model, and cached per (user, version).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/policy.h"
#include "server/store_int.h"
#include "sync/parked.h"
#include "util/hex.h"

typedef struct pull_ctx {
    cs_srv_store *st;
    const cs_srv_pull *req;
    cs_conn *c;                    /* the pull's read snapshot */
    const cs_srv_notes_reader *rd; /* its registration with the notes */
    int64_t scan_from;
    unsigned char site[CS_SITE_LEN];
    cs_buf key; /* the current row's primary key, encoded */
    cs_buf *notes;      /* _cstack_srv_sent changes: model, key, present */
    int64_t rows;
} pull_ctx;

/* What a pull writes once its reads are done, per request. */
typedef struct pull_note {
    cs_buf notes;  /* pull_ctx.notes */
    int64_t at;    /* the snapshot's version: the notes hold from there */
    unsigned char site[CS_SITE_LEN];
    bool bind;     /* the site is new: binding it needs the write lock */
    bool seen;     /* the site's sighting is due */
} pull_note;

void cs_srv_pull_result_free(cs_srv_pull_result *r)
{
    if (!r)
        return;
    cstack_free(r->body);
    free(r->model_sums);
    memset(r, 0, sizeof *r);
    r->same_as = -1;
}

/* ---- the rows a user may read ---------------------------------------------- */

/* The export's extra column: whether the user may read the row, the read
 * rule rendered to SQL (the test of cs_policy_row_allowed with CS_POL_READ,
 * evaluated by the scan itself instead of a query per row).  A row that is
 * not in its table (deleted, or parked) is not readable. */
static int readable_expr(void *ctx, int model, cs_sqlb *q)
{
    pull_ctx *x = ctx;
    const cs_model *m = &x->st->schema->models[model];
    int rc = cs_buf_puts(&q->sql, "t0.");
    rc = rc ? rc : cs_buf_ident(&q->sql, m->fields[m->pk[0]].column);
    rc = rc ? rc : cs_buf_puts(&q->sql, " IS NOT NULL AND (");
    rc = rc ? rc : cs_policy_render(q, x->st->schema, m, 0, CS_POL_READ, x->req->auth);
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

/* ---- what a device holds ---------------------------------------------------- */

/* *present: 0 told to forget, 1 holds the row, CS_SRV_HELD_HIDDEN holds a
 * row it pushed and hides by itself (store_sqlite.c, held_one).  A note
 * held in memory and not in the snapshot comes first (store_sqlite_notes.c). */
static int sent_lookup(pull_ctx *x, int model, bool *found, int *present, int64_t *at)
{
    static const char sql[] = "SELECT present, at FROM _cstack_srv_sent "
                              "WHERE site = ? AND model = ? AND pk = ?";
    const cs_model *m = &x->st->schema->models[model];
    *found = cs_srv_notes_get(x->st->notes, x->rd, x->site, cs_srv_sub_of(x->req->auth), model,
                              x->key.data ? x->key.data : "", x->key.len, present, at);
    if (*found)
        return 0;
    cs_conn *c = x->c;
    sqlite3 *conn = c->db;
    sqlite3_stmt *st = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
    if (!st)
        return cs_err_sqlite(NULL, conn, sqlite3_errcode(conn));
    sqlite3_bind_blob(st, 1, x->site, CS_SITE_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, x->key.data ? x->key.data : "", (int)x->key.len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        *present = sqlite3_column_int(st, 0);
        *at = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, conn, rc);
}

static int note(pull_ctx *x, int model, bool present)
{
    unsigned char p = present;
    int rc = cs_wr_varint(x->notes, (uint64_t)model);
    rc = rc ? rc : cs_wr_varint(x->notes, x->key.len);
    rc = rc ? rc : cs_buf_append(x->notes, x->key.data ? x->key.data : "", x->key.len);
    return rc ? rc : cs_buf_append(x->notes, &p, 1);
}

/* Decides for one row.  A readable row the device is known to hold gets
 * its changes; one it may lack (it was dropped, or sent in an answer not yet
 * acknowledged) gets everything; one the server has no record of gets everything
 * but the columns the device wrote itself (it pushed them, so it holds
 * them: a device does not download what it just uploaded). */
static int filter_device(void *ctx, int model, const cs_cs_value *pk, int64_t ver, bool alive,
                         int64_t readable, cs_export_decision *d)
{
    pull_ctx *x = ctx;
    const cs_model *m = &x->st->schema->models[model];
    bool found = false, ok = alive && readable;
    /* A model the device forgot (resend=, a repair): it holds none of its
     * rows, whatever the records say, so each readable one is sent whole. */
    bool forgot = x->req->resend && x->req->resend[model];
    int present = 0;
    int64_t at = 0, since = forgot ? 0 : x->req->since;
    *d = CS_EXPORT_SKIP;
    int rc = cs_parked_key(&x->key, pk, m->npk);
    rc = rc ? rc : sent_lookup(x, model, &found, &present, &at);
    if (rc)
        return rc;
    bool has = !forgot && found && present && at <= since; /* acknowledged by the cursor */
    bool may_have = found && (present || at > since);      /* a drop not yet acknowledged */
    if (ok) {
        if (has)
            *d = ver > since ? CS_EXPORT_CHANGES : CS_EXPORT_SKIP;
        else
            *d = found || forgot ? CS_EXPORT_FULL : CS_EXPORT_NEW;
        rc = has ? 0 : note(x, model, true);
    } else if (!forgot && alive && present == CS_SRV_HELD_HIDDEN && ver <= at) {
        /* Hidden here, and the device hides it by itself, with its reason,
         * as long as the row has not changed since it pushed it (`at`);
         * after that, or once deleted, it gets a drop or the deletion
         * (below). */
    } else if (may_have) {
        *d = alive ? CS_EXPORT_DROP : CS_EXPORT_FULL;
        rc = note(x, model, false);
    }
    x->rows += *d != CS_EXPORT_SKIP;
    return rc;
}

/* ---- checksums -------------------------------------------------------------- */

/* Adds the checksums of the rows of model mi that `auth` may read, as a
 * device on `view` (NULL: the served schema) sees them as model `vm`. */
static int model_sum(cs_srv_store *st, cs_conn *c, int mi, const cs_auth *auth, const cstack_schema *view,
                     const cs_model *vm, cs_buf *json, uint64_t *sum)
{
    const cs_model *m = &st->schema->models[mi];
    cs_shape *sh = cs_store_shape(st->db, mi);
    cs_sqlb q = {0};
    q.alias = 1;
    int rc = cs_buf_puts(&q.sql, "SELECT ");
    rc = rc ? rc : cs_render_columns(&q, sh, 0);
    rc = rc ? rc : cs_buf_puts(&q.sql, " FROM ");
    rc = rc ? rc : cs_buf_ident(&q.sql, m->table);
    rc = rc ? rc : cs_buf_puts(&q.sql, " AS t0 WHERE ");
    rc = rc ? rc : cs_render_where(&q, st->schema, m, 0, NULL);
    rc = rc ? rc : cs_buf_puts(&q.sql, " AND ");
    rc = rc ? rc : cs_policy_render(&q, st->schema, m, 0, CS_POL_READ, auth);
    sqlite3_stmt *s = rc ? NULL : cs_conn_prepare(c, 0, q.sql.data, q.sql.len);
    if (!rc && !s)
        rc = cs_err_sqlite(m, c->db, sqlite3_errcode(c->db));
    int step = rc ? SQLITE_DONE : cs_sqlb_apply(&q, s);
    if (!rc && step != SQLITE_OK)
        rc = cs_err_sqlite(m, c->db, step);
    while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
        cstack_row *row = cs_row_from_stmt(sh, s, NULL);
        cs_buf_reset(json);
        rc = !row    ? cs_err(CSTACK_ENOMEM, "out of memory")
             : view ? cs_srv_view_row_json(json, view, vm, row)
                    : cs_row_json(json, row);
        if (!rc)
            *sum += cs_row_checksum(m->name, json->data, json->len);
        cstack_row_free(row);
    }
    if (!rc && step != SQLITE_DONE)
        rc = cs_err_sqlite(m, c->db, step);
    if (s)
        sqlite3_reset(s);
    cs_sqlb_free(&q);
    return rc;
}

static bool cache_get(cs_srv_store *st, const char *key, int64_t version, uint64_t *sum)
{
    bool hit = false;
    pthread_mutex_lock(&st->cache_mu);
    for (size_t i = 0; i < CS_SRV_SUM_CACHE && !hit; i++) {
        const cs_srv_sum *e = &st->cache[i];
        if (e->key && e->version == version && strcmp(e->key, key) == 0) {
            *sum = e->sum;
            hit = true;
        }
    }
    pthread_mutex_unlock(&st->cache_mu);
    return hit;
}

static void cache_put(cs_srv_store *st, const char *key, int64_t version, uint64_t sum)
{
    char *copy = cs_strdup(key);
    if (!copy)
        return; /* a cache that cannot grow just misses */
    pthread_mutex_lock(&st->cache_mu);
    cs_srv_sum *e = &st->cache[st->cache_next++ % CS_SRV_SUM_CACHE];
    free(e->key);
    *e = (cs_srv_sum){copy, version, sum};
    pthread_mutex_unlock(&st->cache_mu);
}

/* The user's checksum at `version`, which must be the version of the
 * snapshot `c` reads, as a device on `view` (NULL: the served schema) sees
 * it.  With `per_model` (not cached) also "Model=<hex>" per model the device
 * syncs, which it compares with its own to find what to repair. */
static int user_checksum(cs_srv_store *st, cs_conn *c, const cs_auth *auth,
                         const cstack_schema *view, const char *key, int64_t version,
                         uint64_t *sum, char **per_model)
{
    *sum = 0;
    if (!per_model && cache_get(st, key, version, sum))
        return 0;
    cs_sync *sync = cs_sync_of(st->db);
    cs_buf json = CS_BUF_INIT, list = CS_BUF_INIT;
    int rc = 0;
    for (size_t mi = 0; mi < st->schema->nmodels && !rc; mi++) {
        /* A device on an older schema sums only the models it has. */
        int vmi = view ? cs_model_find(view, st->schema->models[mi].name) : (int)mi;
        const cs_model *vm = vmi >= 0 && view ? &view->models[vmi] : NULL;
        if (!sync->models[mi].synced || vmi < 0 || (vm && vm->local))
            continue;
        uint64_t one = 0;
        rc = model_sum(st, c, (int)mi, auth, view, vm, &json, &one);
        *sum += one;
        if (!rc && per_model)
            rc = cs_buf_printf(&list, "%s%s=%016" PRIx64, list.len ? "," : "",
                               st->schema->models[mi].name, one);
    }
    cs_buf_free(&json);
    if (!rc)
        cache_put(st, key, version, *sum);
    if (!rc && per_model && !(*per_model = cs_buf_take(&list)))
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    cs_buf_free(&list);
    return rc;
}

/* ---- pulls -------------------------------------------------------------------- */

int cs_srv_site_parse(const char *hex, unsigned char out[CS_SITE_LEN])
{
    if (!hex || strlen(hex) != 2 * CS_SITE_LEN)
        return CSTACK_EINVAL;
    return cs_hex_decode(hex, CS_SITE_LEN, out);
}

/* A device on an older schema, or asking for what its old one lacked, gets
 * the export projected (schemas.h); the page's bounds and cursor stay
 * those of the export. */
static int project_body(cs_srv_store *st, const cs_srv_pull *req, cs_srv_pull_result *res,
                        int64_t *rows)
{
    void *out = NULL;
    size_t len = 0;
    char err[256];
    if (!res->body || !res->len)
        return 0;
    const cstack_schema *to = req->view ? req->view : st->schema;
    int rc = cs_srv_project(st->schema, to, req->upgrade_from, res->body, res->len, &out, &len,
                            rows, err, sizeof err);
    if (rc)
        return cs_err(rc, "cannot project the pull onto schema %.12s: %s", to->hash, err);
    free(res->body);
    res->body = out;
    res->len = len;
    return 0;
}

/* A page examines at most this many times its row bound, sent or not, so
 * that a page of rows the device must not get (or already has) still ends. */
#define EXAMINE_PER_ROW 8

/* What is left after a page: the count the previous page carried, less what
 * this one looked at; counted on a first page. */
static int remaining_after(cs_srv_store *st, cs_conn *c, const cs_srv_pull *req,
                           int64_t scan_from, const cs_export_page *pg, int64_t *left)
{
    *left = 0;
    if (!pg->more)
        return 0;
    if (req->pos.set) {
        *left = req->pos.remaining - pg->examined;
    } else {
        int rc = cs_export_count(st->db, c, scan_from, &pg->last, left);
        if (rc)
            return rc;
    }
    if (*left < 1)
        *left = 1; /* rows remain: the next page says how many */
    return 0;
}

static int pull_one(cs_srv_store *st, cs_conn *c, const cs_srv_notes_reader *rd,
                    const cs_srv_pull *req, const char *key, int64_t version, cs_buf *notes,
                    cs_srv_pull_result *res)
{
    int64_t cursor = version;
    int rc = 0;
    if (req->want_changes) {
        pull_ctx x = {.st = st, .req = req, .c = c, .rd = rd, .notes = notes};
        /* Rows a device forgot are met only by scanning from the start. */
        x.scan_from = st->local_reads && !req->resend ? req->since : 0;
        if (cs_srv_site_parse(req->site, x.site))
            return cs_err(CSTACK_EINVAL, "a pull needs the device's site id (32 hex digits)");
        cs_export_pos after = {0};
        if (req->pos.set) {
            after = (cs_export_pos){req->pos.ver, req->pos.model, req->pos.keylen, {0}};
            memcpy(after.key, req->pos.key, req->pos.keylen);
        }
        cs_export_page pg = {.max_rows = req->page_rows,
                             .max_bytes = req->page_bytes,
                             .max_examined = req->page_rows * EXAMINE_PER_ROW,
                             .after = req->pos.set ? &after : NULL,
                             .reader = req->echoes ? NULL : x.site,
                             .extra = readable_expr};
        rc = cs_changes_export_filtered(st->db, c, x.scan_from, req->since, filter_device, &x,
                                        &pg, &res->body, &res->len, &cursor);
        if (!rc && (req->view || req->upgrade_from))
            rc = project_body(st, req, res, &pg.sent);
        if (!rc)
            rc = remaining_after(st, c, req, x.scan_from, &pg, &res->remaining);
        if (!rc && pg.more) {
            res->more = true;
            res->pos = (cs_srv_pos){true, pg.last.ver, pg.last.model, res->remaining,
                                    pg.last.keylen, {0}};
            memcpy(res->pos.key, pg.last.key, pg.last.keylen);
        }
        res->rows = pg.sent;
        cs_buf_free(&x.key);
    }
    /* The checksum describes the state at the cursor: only the last page of
     * an answer has one. */
    if (!rc && req->want_checksum && !res->more) {
        rc = user_checksum(st, c, req->auth, req->view, key, cursor, &res->checksum,
                           req->want_model_sums ? &res->model_sums : NULL);
        res->has_checksum = !rc;
    }
    res->cursor = res->more ? req->since : cursor;
    return rc;
}

/* A continuation cursor must point at a row this server could have given:
 * a version it has reached, a synced model, a key of that model's shape. */
static bool pos_valid(cs_srv_store *st, const cs_srv_pos *pos, int64_t version)
{
    cs_cs_value pk[16];
    if (!pos->set)
        return true;
    if (pos->ver < 1 || pos->ver > version || pos->model < 0 ||
        (size_t)pos->model >= st->schema->nmodels || !cs_sync_of(st->db)->models[pos->model].synced)
        return false;
    return cs_export_key_decode(st->schema, pos->model, pos->key, pos->keylen, pk) == 0;
}

/* The dedup key of each request: identical keys (same user, same device,
 * same cursor) get identical answers; the schemas a request is projected
 * through are part of it (and of the checksum cache's key). */
static int request_keys(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, char **keys)
{
    for (size_t i = 0; i < n; i++) {
        cs_buf b = CS_BUF_INIT;
        int rc = cs_srv_auth_key(st->schema, reqs[i].auth, &b);
        if (!rc && (reqs[i].view || reqs[i].upgrade_from))
            rc = cs_buf_printf(&b, "|view=%s|from=%s", reqs[i].view ? reqs[i].view->hash : "",
                               reqs[i].upgrade_from ? reqs[i].upgrade_from->hash : "");
        if (!rc && (keys[i] = cs_buf_take(&b)) == NULL)
            rc = CSTACK_ENOMEM;
        cs_buf_free(&b);
        if (rc)
            return cs_err(rc, "out of memory");
    }
    return 0;
}

static long same_as(cs_srv_store *st, const cs_srv_pull *reqs, char **keys, size_t i)
{
    (void)st; /* every answer is per device, so only the same device can share */
    for (size_t j = 0; j < i; j++)
        if (reqs[j].since == reqs[i].since && reqs[j].site && reqs[i].site &&
            strcmp(reqs[j].site, reqs[i].site) == 0 && reqs[j].want_changes == reqs[i].want_changes &&
            reqs[j].want_checksum == reqs[i].want_checksum &&
            reqs[j].echoes == reqs[i].echoes && !reqs[i].want_model_sums &&
            !reqs[j].want_model_sums && !reqs[i].resend && !reqs[j].resend && !reqs[i].pos.set &&
            !reqs[j].pos.set && strcmp(keys[j], keys[i]) == 0)
            return (long)j;
    return -1;
}

int cs_srv_durable_version(cs_srv_store *st, int64_t *version)
{
    sqlite3 *conn = cs_write_conn(st->db)->db;
    int64_t stored = 0;
    int rc = cstack_sync_version(st->db, version);
    if (rc)
        return rc;
    int src = cs_sync_state_get(conn, "ver", &stored);
    if (src == SQLITE_OK && stored < *version)
        src = cs_sync_state_put(conn, "ver", *version);
    return src == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, src);
}

/* Result i made identical to result j of the same call (same_as). */
static void copy_result(cs_srv_pull_result *res, size_t i, size_t j)
{
    const cs_srv_pull_result *o = &res[j];
    res[i].rows = o->rows;
    res[i].cursor = o->cursor;
    res[i].checksum = o->checksum;
    res[i].has_checksum = o->has_checksum;
    res[i].more = o->more;
    res[i].pos = o->pos;
    res[i].remaining = o->remaining;
    res[i].len = o->len;
    res[i].forbidden = o->forbidden;
    res[i].bad_cursor = o->bad_cursor;
}

/* Everything a pull call reads, on the snapshot `c` at `version`: no lock
 * is held, so pushes commit meanwhile and the answers describe the
 * snapshot's version.  *write_due: the call has something to write
 * afterwards (notes, a site's binding or sighting); *durable_due: the
 * version handed out must be made durable first. */
static int pull_all(cs_srv_store *st, cs_conn *c, const cs_srv_notes_reader *rd, int64_t version,
                    const cs_srv_pull *reqs, size_t n, char **keys, pull_note *pn,
                    cs_srv_pull_result *res, cs_srv_err *err, bool *write_due, bool *durable_due)
{
    int64_t stored = 0;
    int rc = 0;
    int src = cs_sync_state_get(c->db, "ver", &stored);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, c->db, src);
    *durable_due = *write_due = stored < version;
    for (size_t i = 0; i < n && !rc; i++) {
        if (reqs[i].since < 0 || reqs[i].since > version) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "cursor %lld is not a cursor of this server (its version "
                     "is %lld)",
                     (long long)reqs[i].since, (long long)version);
            cs_srv_err_set(err, CS_SRV_BAD, CSTACK_EINVAL, msg);
            return CSTACK_EINVAL;
        }
    }
    rc = rc ? rc : request_keys(st, reqs, n, keys);
    for (size_t i = 0; i < n && !rc; i++) {
        res[i].same_as = same_as(st, reqs, keys, i);
        if (res[i].same_as >= 0) {
            copy_result(res, i, (size_t)res[i].same_as);
            continue;
        }
        res[i].bad_cursor = !pos_valid(st, &reqs[i].pos, version);
        pn[i].at = version;
        rc = res[i].bad_cursor ? 0
                               : cs_srv_site_peek(st, c, reqs[i].auth, reqs[i].site,
                                                  &res[i].forbidden, &pn[i].bind, &pn[i].seen);
        if (!rc && (res[i].forbidden || res[i].bad_cursor))
            res[i].cursor = reqs[i].since;
        else if (!rc && !(rc = cs_srv_site_parse(reqs[i].site, pn[i].site)))
            rc = pull_one(st, c, rd, &reqs[i], keys[i], version, &pn[i].notes, &res[i]);
        *write_due = *write_due || pn[i].bind || pn[i].seen || pn[i].notes.len;
    }
    return rc;
}

/* Request i's site turned out to be another user's (claimed since the
 * snapshot): its answer is withdrawn. */
static void withdraw(const cs_srv_pull *reqs, cs_srv_pull_result *res, size_t i)
{
    cs_srv_pull_result_free(&res[i]);
    res[i].forbidden = true;
    res[i].cursor = reqs[i].since;
}

/* Whether request i's notes are to be recorded (not a copy of another
 * result, not refused). */
static bool records(const cs_srv_pull_result *res, size_t i)
{
    return res[i].same_as < 0 && !res[i].forbidden && !res[i].bad_cursor;
}

/* Holds the call's notes with the store's (store_sqlite_notes.c);
 * `sightings`: also the sightings due and the bindings of new sites, which
 * a scope that binds writes itself otherwise. */
static int hold_notes(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, const pull_note *pn,
                      cs_srv_pull_result *res, bool sightings, bool force)
{
    cs_srv_note_set *sets = calloc(n ? n : 1, sizeof *sets);
    size_t *req_of = calloc(n ? n : 1, sizeof *req_of);
    bool *foreign = calloc(n ? n : 1, sizeof *foreign);
    int rc = sets && req_of && foreign ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    size_t k = 0;
    int64_t now = cs_wall_ms();
    for (size_t i = 0; i < n && !rc; i++)
        if (records(res, i) && (pn[i].notes.len || (sightings && (pn[i].seen || pn[i].bind)))) {
            req_of[k] = i;
            sets[k++] = (cs_srv_note_set){pn[i].site, cs_srv_sub_of(reqs[i].auth), &pn[i].notes,
                                          pn[i].at, sightings && pn[i].seen ? now : 0,
                                          sightings && pn[i].bind};
        }
    rc = rc ? rc : cs_srv_notes_add(st->notes, sets, k, force, foreign);
    /* A new site another user's pull holds first, or bound since this
     * pull's snapshot (read again now that this binding is held: a binding
     * leaves the notes only once committed), is that user's: this answer
     * is withdrawn, and its held binding is dropped when written. */
    bool check = false;
    for (size_t j = 0; j < k && !rc; j++) {
        if (foreign[j])
            withdraw(reqs, res, req_of[j]);
        check = check || (sets[j].bind && !foreign[j]);
    }
    cs_conn *c = check ? cs_read_begin(st->db) : NULL;
    for (size_t j = 0; c && j < k && !rc; j++) {
        bool other = false, bind = false, seen = false;
        if (sets[j].bind && !foreign[j])
            rc = cs_srv_site_peek(st, c, reqs[req_of[j]].auth, reqs[req_of[j]].site, &other, &bind,
                                  &seen);
        if (!rc && other)
            withdraw(reqs, res, req_of[j]);
    }
    if (c)
        cs_read_end(st->db, c);
    free(sets);
    free(req_of);
    free(foreign);
    return rc;
}

/* Everything a pull call writes, in one short write scope after its reads:
 * the sites it binds or saw, then its notes with those held before (a new
 * site is bound before its notes, which are written only for a site of
 * their user), and the durable version (the cursors handed out must never
 * be reused).  The notes are held only now, inside the scope, so that the
 * flusher cannot write them before their site is bound. */
static int record_all(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, pull_note *pn,
                      cs_srv_pull_result *res)
{
    /* The bindings held by other pulls first: of two users binding one new
     * site, the first keeps it. */
    int rc = cs_srv_notes_drain(st);
    for (size_t i = 0; i < n && !rc; i++) {
        if (!records(res, i) || !(pn[i].bind || pn[i].seen))
            continue;
        bool foreign = false;
        rc = cs_srv_site_use(st, reqs[i].auth, reqs[i].site, &foreign);
        if (!rc && foreign)
            withdraw(reqs, res, i);
    }
    rc = rc ? rc : hold_notes(st, reqs, n, pn, res, false, true);
    rc = rc ? rc : cs_srv_notes_drain(st);
    int64_t version = 0;
    return rc ? rc : cs_srv_durable_version(st, &version);
}

/* What the call must write.  A version to make durable takes the write
 * lock, waiting for a push in progress; so does the PostgreSQL store's
 * copy, where another server must see the notes when this one answers.
 * Otherwise the notes (sightings, and a new site's binding before its
 * notes) are held in memory and the write lock is only tried: when a push
 * holds it, the pull answers at once and they are written after the push's
 * commit.  A new site whose binding is held so is not withdrawn if another
 * user binds it first (a site id no one has seen yet, unguessable): that
 * user keeps it, this user's notes of it are dropped and the device's next
 * request is refused. */
static int pull_write(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, pull_note *pn,
                      cs_srv_pull_result *res, bool durable_due)
{
    bool wait = st->pg || durable_due;
    if (!wait) {
        int rc = hold_notes(st, reqs, n, pn, res, true, false);
        if (!rc) {
            rc = cs_write_try_begin(st->db);
            if (!rc)
                return cs_srv_scope_end(st, cs_srv_notes_drain(st));
            if (rc != CSTACK_EBUSY)
                return rc;
            if (!cs_srv_notes_defer(st->notes))
                return 0;
            /* No flusher: this pull writes them itself. */
        } else if (rc != CSTACK_EBUSY) {
            return rc;
        }
    }
    /* Waiting for the write lock (a version to make durable, the
     * PostgreSQL copy, notes past the bound).  The scope holds the
     * notes beyond the bound, since it writes them at once. */
    int rc = cs_write_begin(st->db);
    return rc ? rc : cs_srv_scope_end(st, record_all(st, reqs, n, pn, res));
}

typedef struct first_read {
    cs_srv_store *st;
    cs_conn *c;
    int64_t *version;
} first_read;

static int read_version(void *ctx)
{
    first_read *f = ctx;
    return cs_export_snapshot_version(f->st->db, f->c, f->version);
}

int cs_srv_sqlite_pull(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, cs_srv_pull_result *res,
                       cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_OK, 0, "");
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].same_as = -1;
    }
    char **keys = calloc(n ? n : 1, sizeof *keys);
    pull_note *pn = calloc(n ? n : 1, sizeof *pn);
    if (!keys || !pn) {
        free(keys);
        free(pn);
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
        return CSTACK_ENOMEM;
    }
    /* The reads run on one read snapshot, without the write lock: a pull
     * never waits behind a push's merge, nor a push behind a pull's export.
     * What the pull must record is written afterwards (pull_write). */
    bool write_due = false, durable_due = false;
    int64_t version = 0;
    cs_srv_notes_reader rd;
    cs_conn *c = cs_read_begin(st->db);
    first_read fr = {st, c, &version};
    int rc = cs_srv_notes_enter(st->notes, &rd, read_version, &fr);
    rc = rc ? rc
            : pull_all(st, c, &rd, version, reqs, n, keys, pn, res, err, &write_due,
                       &durable_due);
    cs_read_end(st->db, c);
    cs_srv_notes_leave(st->notes, &rd);
    if (!rc && write_due)
        rc = pull_write(st, reqs, n, pn, res, durable_due);
    for (size_t i = 0; !rc && i < n; i++)
        if (res[i].same_as >= 0)
            copy_result(res, i, (size_t)res[i].same_as);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        cs_buf_free(&pn[i].notes);
    }
    free(keys);
    free(pn);
    if (rc) {
        if (err && err->kind == CS_SRV_OK)
            cs_srv_err_set(err, rc == CSTACK_EINVAL ? CS_SRV_BAD : CS_SRV_INTERNAL, rc,
                           cs_errmsg_last());
        for (size_t i = 0; i < n; i++)
            cs_srv_pull_result_free(&res[i]);
    }
    return rc;
}
