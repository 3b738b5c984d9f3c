/*
 * store_sqlite_sites.c -- which user each device (site id) belongs to.
 *
 * _cstack_srv_sent records what each device holds by site id, and a site id
 * is no secret: it is in every changeset that carries its device's rows.  So
 * the first user (token `sub`) to present a site id owns it, and any other
 * user presenting it is refused before anything is read or written: a pull
 * with someone else's site id would receive drops and tombstones for that
 * device's rows and move its tracking, so that the real device later misses
 * a deletion or a row that became visible.
 *
 *   _cstack_srv_sites(site, sub, first_seen, last_seen)
 *
 * Every binding runs in the caller's write scope (a push, a pull call of a
 * new site, or the claim of a stream as it opens): the write lock
 * serialises them, so of two users racing to present a new site id exactly
 * one binds it.  A known site's sighting (last_seen) is written there too,
 * or, by a pull that did not wait for the write lock, with its notes
 * (store_sqlite_notes.c).
 *
 * Bounds.  A user owns at most `max_sites` sites: a new one past the bound
 * evicts that user's least recently seen site and its records.  Refusing
 * instead would lock a user out of every new install (each reinstall is a
 * new site id) until the old ones expire, while the least recently seen site
 * is almost always an install that is gone; the cost falls only on the user
 * who made the sites.  A site not seen for `site_ttl_ms` is dead: its
 * binding and records are collected at open and, a few at a time, whenever
 * a new site is bound.
 */
#include <stdio.h>
#include <string.h>

#include "server/store_int.h"

/* Dead sites collected per new binding: the work a claim adds stays small. */
#define COLLECT_PER_CLAIM 8

/* last_seen is refreshed at most this often, not on every pull. */
#define SEEN_EVERY_MS (60LL * 1000)

const char *cs_srv_sub_of(const cs_auth *a)
{
    return a && a->signed_in && a->sub ? a->sub : "";
}

static int step_done(sqlite3 *conn, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, conn, rc);
}

/* Forgets one site: its binding and what its device holds. */
static int forget_site(cs_conn *c, const void *site, int len)
{
    static const char del_sent[] = "DELETE FROM _cstack_srv_sent WHERE site = ?";
    static const char del_site[] = "DELETE FROM _cstack_srv_sites WHERE site = ?";
    sqlite3_stmt *a = cs_conn_prepare(c, 0, del_sent, sizeof del_sent - 1);
    sqlite3_stmt *b = a ? cs_conn_prepare(c, 0, del_site, sizeof del_site - 1) : NULL;
    if (!a || !b)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_blob(a, 1, site, len, SQLITE_TRANSIENT);
    sqlite3_bind_blob(b, 1, site, len, SQLITE_TRANSIENT);
    int rc = step_done(c->db, a);
    return rc ? rc : step_done(c->db, b);
}

/* Forgets the sites (at most 64) a prepared statement with bound
 * parameters selects, one per row. */
static int forget_selected(cs_conn *c, sqlite3_stmt *st)
{
    /* The selection is read completely before deleting, so the deletes
     * never run under an open cursor of the same table. */
    unsigned char sites[64][CS_SITE_LEN];
    size_t n = 0;
    int step;
    while (n < sizeof sites / sizeof sites[0] && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != CS_SITE_LEN)
            continue;
        memcpy(sites[n++], sqlite3_column_blob(st, 0), CS_SITE_LEN);
    }
    sqlite3_reset(st);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = forget_site(c, sites[i], CS_SITE_LEN);
    return rc;
}

int cs_srv_sites_collect(cs_srv_store *st, cs_conn *c, int limit)
{
    static const char sql[] = "SELECT site FROM _cstack_srv_sites WHERE last_seen < ? "
                              "ORDER BY last_seen LIMIT ?";
    int rc = 0;
    for (;;) {
        sqlite3_stmt *s = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
        if (!s)
            return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
        int chunk = limit > 0 && limit < 64 ? limit : 64;
        sqlite3_bind_int64(s, 1, cs_wall_ms() - st->site_ttl_ms);
        sqlite3_bind_int(s, 2, chunk);
        int before = sqlite3_total_changes(c->db);
        rc = forget_selected(c, s);
        int forgot = (sqlite3_total_changes(c->db) - before) > 0;
        if (rc || limit > 0 || !forgot)
            return rc;
    }
}

/* Makes room for one more site of `sub`: evicts its least recently seen
 * sites past max_sites - 1. */
static int make_room(cs_srv_store *st, cs_conn *c, const char *sub)
{
    static const char count_sql[] = "SELECT count(*) FROM _cstack_srv_sites WHERE sub = ?";
    static const char lru_sql[] = "SELECT site FROM _cstack_srv_sites WHERE sub = ? "
                                  "ORDER BY last_seen, first_seen LIMIT ?";
    sqlite3_stmt *s = cs_conn_prepare(c, 0, count_sql, sizeof count_sql - 1);
    if (!s)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_text(s, 1, sub, -1, SQLITE_STATIC);
    int64_t have = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    int64_t over = have - (int64_t)st->max_sites + 1;
    if (over <= 0)
        return 0;
    s = cs_conn_prepare(c, 0, lru_sql, sizeof lru_sql - 1);
    if (!s)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_text(s, 1, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, over);
    return forget_selected(c, s);
}

/* Who owns `site` (found, mine) and when it was last seen. */
static int site_lookup(cs_conn *c, const unsigned char *site, const char *sub, bool *found,
                       bool *mine, int64_t *seen)
{
    static const char get_sql[] = "SELECT sub, last_seen FROM _cstack_srv_sites WHERE site = ?";
    sqlite3_stmt *s = cs_conn_prepare(c, 0, get_sql, sizeof get_sql - 1);
    if (!s)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_blob(s, 1, site, CS_SITE_LEN, SQLITE_STATIC);
    int step = sqlite3_step(s);
    *found = step == SQLITE_ROW;
    *mine = *found && strcmp((const char *)sqlite3_column_text(s, 0), sub) == 0;
    *seen = *found ? sqlite3_column_int64(s, 1) : 0;
    sqlite3_reset(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, c->db, step);
}

int cs_srv_site_peek(cs_srv_store *st, cs_conn *c, const cs_auth *auth, const char *site_hex,
                     bool *foreign, bool *bind, bool *seen)
{
    (void)st;
    unsigned char site[CS_SITE_LEN];
    bool found = false, mine = false;
    int64_t last = 0;
    *foreign = *seen = false;
    *bind = true;
    if (cs_srv_site_parse(site_hex, site))
        return cs_err(CSTACK_EINVAL, "a request needs the device's site id (32 hex digits)");
    int rc = site_lookup(c, site, cs_srv_sub_of(auth), &found, &mine, &last);
    *foreign = found && !mine;
    *bind = !found;
    *seen = mine && cs_wall_ms() - last >= SEEN_EVERY_MS;
    return rc;
}

int cs_srv_site_use(cs_srv_store *st, const cs_auth *auth, const char *site_hex, bool *foreign)
{
    *foreign = false;
    unsigned char site[CS_SITE_LEN];
    if (cs_srv_site_parse(site_hex, site))
        return cs_err(CSTACK_EINVAL, "a request needs the device's site id (32 hex digits)");
    return cs_srv_site_use_sub(st, cs_srv_sub_of(auth), site, foreign);
}

int cs_srv_site_use_sub(cs_srv_store *st, const char *sub, const unsigned char site[CS_SITE_LEN],
                        bool *foreign)
{
    *foreign = false;
    cs_conn *c = cs_write_conn(st->db);
    bool found = false, mine = false;
    int64_t seen = 0, now = cs_wall_ms();
    int rc = site_lookup(c, site, sub, &found, &mine, &seen);
    if (rc)
        return rc;
    if (found && !mine) {
        *foreign = true;
        return 0;
    }
    sqlite3_stmt *s;
    if (found) {
        if (now - seen < SEEN_EVERY_MS)
            return 0;
        static const char seen_sql[] = "UPDATE _cstack_srv_sites SET last_seen = ? WHERE site = ?";
        s = cs_conn_prepare(c, 0, seen_sql, sizeof seen_sql - 1);
        if (!s)
            return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_blob(s, 2, site, CS_SITE_LEN, SQLITE_STATIC);
        return step_done(c->db, s);
    }
    rc = cs_srv_sites_collect(st, c, COLLECT_PER_CLAIM);
    rc = rc ? rc : make_room(st, c, sub);
    if (rc)
        return rc;
    static const char ins_sql[] = "INSERT INTO _cstack_srv_sites(site, sub, first_seen, last_seen)"
                                  " VALUES (?, ?, ?, ?)";
    s = cs_conn_prepare(c, 0, ins_sql, sizeof ins_sql - 1);
    if (!s)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_blob(s, 1, site, CS_SITE_LEN, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, now);
    return step_done(c->db, s);
}

void cs_srv_site_refuse(cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_FORBIDDEN, CSTACK_EINVAL, CS_SRV_SITE_FOREIGN);
}

int cs_srv_sqlite_claim(cs_srv_store *st, const cs_auth *auth, const char *site, cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_OK, 0, "");
    bool foreign = false;
    int rc = cs_write_begin(st->db);
    if (!rc) {
        rc = cs_srv_notes_drain(st);
        rc = cs_srv_scope_end(st, rc ? rc : cs_srv_site_use(st, auth, site, &foreign));
    }
    if (rc) {
        cs_srv_err_set(err, rc == CSTACK_EINVAL ? CS_SRV_BAD : CS_SRV_INTERNAL, rc,
                       cs_errmsg_last());
        return rc;
    }
    if (foreign) {
        cs_srv_site_refuse(err);
        return CSTACK_EINVAL;
    }
    return 0;
}
