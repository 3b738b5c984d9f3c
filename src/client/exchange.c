/*
 * exchange.c -- push, pull and stream against the server (docs/server.md).
 *
 * Push: the upload queue, oldest first, one local transaction per
 * `POST /v1/push` with `X-Cstack-Batch: <site>:<version>`; a 200
 * acknowledges it (cstack_upload_complete).  A batch the server refuses for
 * what it contains (400 malformed, 403 forbidden by a write policy, 413 too
 * large) would be refused again on every retry, so it is undone: its rows
 * are forgotten, recorded with the refusal (_cstack_rejected,
 * _cstack_refusals), acknowledged and reported, the queue moves on, and the
 * next pull starts over from cursor 0 so the server's state of those rows
 * comes back.  A 401 (the token) or 409 (the schema) is about the session,
 * not the batch: the batch stays queued and the session fails until that
 * is fixed.
 *
 * Pull: `GET /v1/pull?since=CURSOR` until the returned X-Cstack-Cursor stops
 * moving and X-Cstack-More is not 1.  An answer larger than the server's
 * page comes in pages, each with a continuation cursor: each page is merged
 * in its own transaction (cs_changes_apply_relayed: as cstack_changes_apply,
 * which also forgets rows the server drops, but taking the clocks the server
 * accepted whatever this device's clock says) and then its cursor is stored,
 * so memory stays bounded by a page and an interrupted catch-up resumes at
 * its last page; a crash in between only repeats an idempotent merge.
 *
 * The stream is in stream.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "client/client.h"
#include "store/store.h"
#include "sync/sync_ext.h"

/* ---- push --------------------------------------------------------------- */

/* Undoes a refused batch and records it (cs_state_refuse); the pull that
 * follows starts over from cursor 0 and brings back the server's state of
 * its rows. */
static int set_aside(cs_client *c, cstack_upload_tx *tx, const cs_http_resp *r)
{
    int64_t v = cstack_upload_tx_version(tx), rows = 0;
    size_t len = 0;
    const void *bytes = cstack_upload_tx_changeset(tx, &len);
    char what[64];
    snprintf(what, sizeof what, "batch %" PRId64 " refused", v);
    cs_http_error_text(c, what, r);
    char msg[sizeof c->st.last_error];
    pthread_mutex_lock(&c->st_mu);
    memcpy(msg, c->st.last_error, sizeof msg);
    pthread_mutex_unlock(&c->st_mu);
    int rc = cs_state_refuse(c, v, r->status, msg, bytes, len, cstack_upload_tx_json(tx), &rows);
    if (rc)
        return rc;
    c->repull = true;
    c->echoes = true;
    pthread_mutex_lock(&c->st_mu);
    c->st.rejected++;
    c->st.undone += rows;
    c->st.version = v;
    memcpy(c->st.last_error, msg, sizeof msg);
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_REJECTED);
    return 0;
}

/* A 409: the server runs another schema.  Not the batch's fault: it stays
 * queued, never undone; the status says what must change, and the session
 * retries with its backoff until the schemas fit. */
static int schema_mismatch(cs_client *c, const char *what, const cs_http_resp *r)
{
    const char *local = cstack_schema_hash(cstack_schema_of(c->db));
    bool ahead = cs_upgrade_ahead(c, r->schema);
    pthread_mutex_lock(&c->st_mu);
    c->st.schema_mismatch = 1;
    c->st.schema_ahead = ahead;
    c->st.schema_behind = 0;
    snprintf(c->st.schema_local, sizeof c->st.schema_local, "%s", local);
    snprintf(c->st.schema_server, sizeof c->st.schema_server, "%s", r->schema);
    pthread_mutex_unlock(&c->st_mu);
    if (ahead)
        return cs_client_fail(c, CSTACK_EMISMATCH,
                              "%s: the server runs an older schema (%.12s, this app %.12s); "
                              "writes stay queued until it is migrated",
                              what, r->schema, local);
    /* Short hashes keep the advice within last_error; the status holds
     * both in full. */
    return cs_client_fail(c, CSTACK_EMISMATCH,
                          "%s: the server runs schema %.12s, this app schema %.12s; local changes "
                          "stay queued: upgrade the app (or the server) so that the schemas "
                          "match, then sync again",
                          what, r->schema[0] ? r->schema : "(unknown)", local);
}

int cs_session_error(cs_client *c, const char *what, const cs_http_resp *r)
{
    int code = cs_http_error_code(r);
    if (code == CSTACK_EMISMATCH)
        return schema_mismatch(c, what, r);
    cs_http_error_text(c, what, r);
    char msg[sizeof c->st.last_error];
    pthread_mutex_lock(&c->st_mu);
    memcpy(msg, c->st.last_error, sizeof msg);
    pthread_mutex_unlock(&c->st_mu);
    return cs_client_fail(c, code, "%s", msg);
}

/* Notes the server cursor an accepted push reports ({"cursor":N}). */
static void note_push_cursor(cs_client *c, const cs_http_resp *r)
{
    jr_val room[16];
    jr_doc doc;
    const jr_val *cur = jr_get(cs_client_json(r->body.data, r->body.len, room, 16, &doc), "cursor");
    int64_t v;
    if (jr_is(cur, JR_NUMBER) && jr_int64(cur, &v) && v > c->pushed_cursor)
        c->pushed_cursor = v;
    jr_doc_free(&doc);
}

static int push_one(cs_client *c, cstack_upload_tx *tx)
{
    int64_t v = cstack_upload_tx_version(tx);
    size_t len = 0;
    const void *bytes = cstack_upload_tx_changeset(tx, &len);
    char hdr[96];
    snprintf(hdr, sizeof hdr, "X-Cstack-Batch: %s:%" PRId64, c->site, v);
    cs_http_resp r = {0};
    int rc = cs_http_request(c, "/v1/push", bytes, len, hdr, &r);
    if (rc == 0 && r.status == 200) {
        note_push_cursor(c, &r);
        rc = cstack_upload_complete(c->db, v);
        if (rc)
            rc = cs_client_fail(c, rc, "cannot acknowledge batch %" PRId64 ": %s", v,
                                cstack_errmsg(c->db));
        else {
            pthread_mutex_lock(&c->st_mu);
            c->st.schema_mismatch = 0;
            c->st.pushed++;
            c->st.version = v;
            c->st.pending = c->st.pending > 0 ? c->st.pending - 1 : 0;
            pthread_mutex_unlock(&c->st_mu);
            cs_client_report(c, CSTACK_SYNC_EV_PUSHED);
        }
    } else if (rc == 0 && (r.status == 400 || r.status == 403 || r.status == 413)) {
        rc = set_aside(c, tx, &r);
    } else if (rc == 0) {
        rc = cs_session_error(c, "push", &r);
    }
    cs_http_resp_free(&r);
    return rc;
}

int cs_push_all(cs_client *c)
{
    int64_t ver = 0, pending = 0;
    c->repull = false;
    int rc = cstack_sync_version(c->db, &ver);
    if (rc == 0)
        rc = cstack_upload_pending(c->db, &pending);
    if (rc)
        return cs_client_fail(c, rc, "cannot read the upload queue: %s", cstack_errmsg(c->db));
    pthread_mutex_lock(&c->st_mu);
    c->st.pending = pending;
    pthread_mutex_unlock(&c->st_mu);
    if (pending > 0)
        cs_client_set_state(c, CSTACK_SYNC_UPLOADING);
    for (;;) {
        if (cs_client_stopping(c))
            return CSTACK_EIO;
        cstack_upload_tx *tx = NULL;
        rc = cstack_upload_next(c->db, &tx);
        if (rc)
            return cs_client_fail(c, rc, "cannot read the upload queue: %s", cstack_errmsg(c->db));
        if (!tx)
            break;
        rc = push_one(c, tx);
        cstack_upload_tx_free(tx);
        if (rc)
            return rc;
    }
    /* Writes made after `ver` was read move the version again, so the next
     * poll looks at the queue again. */
    c->last_version = ver;
    pthread_mutex_lock(&c->st_mu);
    c->st.pending = 0;
    pthread_mutex_unlock(&c->st_mu);
    return 0;
}

/* ---- applying and checking -------------------------------------------- */

int cs_apply_changes(cs_client *c, const void *bytes, size_t len, int64_t cursor,
                     const char *page)
{
    cstack_apply_stats stats = {0};
    pthread_mutex_lock(&c->st_mu);
    c->st.phase = CSTACK_SYNC_PHASE_APPLYING;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_PROGRESS);
    /* A page whose rows were all invisible to this user may come empty. */
    int rc = len ? cs_changes_apply_relayed(c->db, bytes, len, &stats) : 0;
    if (rc)
        return cs_client_fail(c, rc, "cannot merge the server's changes (%s): %s",
                              cstack_errname(rc), cstack_errmsg(c->db));
    /* A replayed event must not move the cursor back. */
    if (page && page[0])
        rc = cs_state_save_page(c, page);
    else if (cursor > c->cursor || (cursor == c->cursor && c->page[0]))
        rc = cs_state_save_cursor(c, cursor);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->st_mu);
    c->st.rows_applied += stats.rows;
    c->st.hidden = stats.parked;
    c->st.rows_done += stats.rows;
    if (c->st.rows_total >= 0 && c->st.rows_total < c->st.rows_done)
        c->st.rows_total = c->st.rows_done;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_APPLIED);
    if (stats.parked > 0)
        cs_client_report(c, CSTACK_SYNC_EV_HIDDEN);
    return 0;
}

static int read_data_version(sqlite3 *conn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, "PRAGMA data_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *(int64_t *)ctx = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : cs_err(CSTACK_ESQLITE, "%s", sqlite3_errmsg(conn));
}

/* The local checksum, recomputed only when the database changed since the
 * last time (a checkpoint every few seconds must not rescan a large
 * database that did not move): its sync version says what cstack wrote,
 * PRAGMA data_version what other programs wrote to the file (a row deleted
 * behind cstack's back must be seen, and repaired). */
static int local_sum(cs_client *c, uint64_t *sum)
{
    int64_t ver = 0, dv = 0;
    int rc = cstack_sync_version(c->db, &ver);
    rc = rc ? rc : cstack_with_sqlite(c->db, read_data_version, &dv);
    if (rc == 0 && c->sum_valid && ver == c->sum_version && dv == c->sum_data_version) {
        *sum = c->sum;
        return 0;
    }
    if (rc == 0)
        rc = cstack_sync_checksum(c->db, sum);
    if (rc == 0) {
        c->sum = *sum;
        c->sum_version = ver;
        c->sum_data_version = dv;
        c->sum_valid = true;
    }
    return rc;
}

int cs_checkpoint(cs_client *c, int64_t cursor, uint64_t server_sum)
{
    int64_t pending = 0;
    uint64_t sum = 0;
    if (cursor < c->pushed_cursor)
        return 0; /* the server's state then did not hold our latest push */
    int rc = cstack_upload_pending(c->db, &pending);
    /* Local writes the server has not seen yet make the states differ
     * legitimately; the next checkpoint after they are pushed decides. */
    if (rc == 0 && pending > 0)
        return 0;
    if (rc == 0)
        rc = local_sum(c, &sum);
    if (rc)
        return cs_client_fail(c, rc, "cannot compute the local checksum: %s", cstack_errmsg(c->db));
    /* A difference is repaired (repair.c) once the pull that found it
     * ends; a repair's own pulls only note it. */
    c->need_repair = sum != server_sum;
    pthread_mutex_lock(&c->st_mu);
    c->st.checksum_ok = sum == server_sum;
    if (sum == server_sum)
        c->st.diverged = 0;
    else
        snprintf(c->st.last_error, sizeof c->st.last_error,
                 "state differs from the server's at cursor %" PRId64 " (local checksum %016" PRIx64
                 ", server %016" PRIx64 ")",
                 cursor, sum, server_sum);
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_CHECKPOINT);
    return 0;
}

/* ---- pull ----------------------------------------------------------------- */

/* What one pull page did. */
typedef struct page {
    bool moved;     /* the cursor moved: pull again */
    bool restarted; /* started over from cursor 0 (once per catch-up) */
    bool have_sum;  /* caught up, and the server's checksum at the cursor */
    uint64_t sum;
} page;

/* The catch-up's total once a page is merged: what is done plus what the
 * server says remains. */
static int note_remaining(cs_client *c, const cs_http_resp *r)
{
    pthread_mutex_lock(&c->st_mu);
    if (r->remaining >= 0)
        c->st.rows_total = c->st.rows_done + r->remaining;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_PROGRESS);
    return 0;
}

/* Takes a pull response: merges it, or starts over, or notes that the
 * replica is caught up. */
static int take_page(cs_client *c, const cs_http_resp *r, int64_t since, page *pg)
{
    if (r->status != 200)
        return cs_session_error(c, "pull", r);
    cs_upgrade_note(c, r);
    if (r->cursor < 0)
        return cs_client_fail(c, CSTACK_EIO, "pull: the response has no valid X-Cstack-Cursor");
    if (r->cursor < since) {
        /* The server's history is shorter than what we merged: it was
         * replaced or restored from a backup.  Start over from its
         * beginning; merging everything again is idempotent. */
        pg->moved = true;
        return cs_state_save_cursor(c, 0);
    }
    if (r->more && r->page[0]) {
        /* One page of several: merge it, keep its continuation cursor. */
        pg->moved = true;
        c->pull_base += (int64_t)r->body.len;
        int rc = cs_apply_changes(c, r->body.data, r->body.len, since, r->page);
        return rc ? rc : note_remaining(c, r);
    }
    /* A repair's answer (resend=) has rows even when the cursor stays. */
    if (r->cursor != since || c->page[0] || c->resend[0]) {
        pg->moved = r->cursor != since;
        c->pull_base += (int64_t)r->body.len;
        int rc = cs_apply_changes(c, r->body.data, r->body.len, r->cursor, NULL);
        rc = rc ? rc : note_remaining(c, r);
        if (rc || pg->moved)
            return rc;
    }
    pg->have_sum = r->has_checksum;
    pg->sum = r->checksum;
    cs_buf_reset(&c->model_sums);
    return r->model_sums.len ? cs_buf_append(&c->model_sums, r->model_sums.data, r->model_sums.len)
                             : 0;
}

/* One page.  A server that refuses our cursor (400: not a cursor it gave
 * out, the same situation as above) makes the pull start over: from the
 * start of the answer for a continuation cursor, else from 0. */
static int pull_page(cs_client *c, page *pg)
{
    char path[CS_CURSOR_MAX + 64 + sizeof c->resend];
    int64_t since = c->cursor;
    const char *echoes = c->echoes ? "&echoes=1" : "", *sums = c->want_sums ? "&sums=1" : "";
    const char *resend = c->resend[0] ? "&resend=" : "";
    if (c->page[0])
        snprintf(path, sizeof path, "/v1/pull?since=%s%s%s%s%s", c->page, echoes, sums, resend,
                 c->resend);
    else
        snprintf(path, sizeof path, "/v1/pull?since=%" PRId64 "%s%s%s%s", since, echoes, sums,
                 resend, c->resend);
    cs_http_resp r = {0};
    pthread_mutex_lock(&c->st_mu);
    c->st.phase = CSTACK_SYNC_PHASE_PREPARING;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_PROGRESS);
    c->progress_of = &r;
    int rc = cs_http_request(c, path, NULL, 0, NULL, &r);
    c->progress_of = NULL;
    pg->moved = false;
    if (rc == 0 && r.status == 400 && c->page[0]) {
        cs_http_error_text(c, "pull (starting the answer over)", &r);
        cs_client_report(c, CSTACK_SYNC_EV_ERROR);
        pg->moved = true;
        rc = cs_state_save_cursor(c, since);
    } else if (rc == 0 && r.status == 400 && since > 0 && !pg->restarted) {
        cs_http_error_text(c, "pull (starting over from cursor 0)", &r);
        cs_client_report(c, CSTACK_SYNC_EV_ERROR);
        pg->restarted = pg->moved = true;
        rc = cs_state_save_cursor(c, 0);
    } else if (rc == 0) {
        rc = take_page(c, &r, since, pg);
    }
    cs_http_resp_free(&r);
    return rc;
}

/* Caught up is reported as soon as the cursor stops moving (the data is all
 * there); the checksum comparison, which reads every row, follows. */
int cs_pull_all(cs_client *c)
{
    pthread_mutex_lock(&c->st_mu);
    c->st.initial = c->cursor == 0;
    c->st.bytes_received = 0;
    c->st.bytes_total = -1;
    c->st.rows_done = 0;
    c->st.rows_total = -1;
    pthread_mutex_unlock(&c->st_mu);
    c->pull_base = 0;
    cs_client_set_state(c, CSTACK_SYNC_DOWNLOADING);
    page pg = {.moved = true};
    int rc = cs_upgrade_pull(c);
    while (rc == 0 && pg.moved) {
        if (cs_client_stopping(c))
            return CSTACK_EIO;
        rc = pull_page(c, &pg);
    }
    pthread_mutex_lock(&c->st_mu);
    c->st.phase = CSTACK_SYNC_PHASE_IDLE;
    pthread_mutex_unlock(&c->st_mu);
    if (rc)
        return rc;
    c->echoes = false;
    pthread_mutex_lock(&c->st_mu);
    c->st.initial = 0;
    c->st.last_synced_ms = cs_wall_ms();
    c->st.cursor = c->cursor;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_CAUGHT_UP);
    rc = pg.have_sum ? cs_checkpoint(c, c->cursor, pg.sum) : 0;
    return rc == 0 && c->need_repair && !c->repairing ? cs_repair(c) : rc;
}
