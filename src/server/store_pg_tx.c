/*
 * store_pg_tx.c -- every write transaction of the working copy is a
 * PostgreSQL transaction (docs/postgres.md): the store's transaction hook
 * (store/store.h) begins it under the global advisory lock, collects the key
 * of every row the transaction touches, and before SQLite's COMMIT writes
 * each touched row's current state to PostgreSQL (typed tables for app rows,
 * _cstack_pg_side for the rest), appends the log entry, notifies and commits
 * PostgreSQL.  Only then does SQLite commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_pg_int.h"
#include "sync/sync_ext.h"
#include "sync/varint.h"

/* Set when this thread's begin found the copy behind PostgreSQL: the
 * method catches up and runs again. */
static _Thread_local bool tl_behind;

/* Set by this thread before it opens a scope of its own catch-up or load:
 * the begin hook then marks the transaction as one the hook stays out of. */
static _Thread_local bool tl_applying;

void pg_applying_next(void)
{
    tl_applying = true;
}

bool pg_behind_take(void)
{
    bool b = tl_behind;
    tl_behind = false;
    return b;
}

int pg_fail(const cs_srv_err *err)
{
    return cs_err(err->code ? err->code : CSTACK_EIO, "%s", err->message);
}

/* ---- the touched keys ------------------------------------------------------------ */

/* A record of `keys`: u32 table index, u32 key length, the key. */
typedef struct touched_rec {
    uint32_t table;
    uint32_t len;
    const unsigned char *key;
} touched_rec;

static touched_rec rec_at(const pg_touched *t, size_t off)
{
    touched_rec r;
    memcpy(&r.table, t->keys.data + off, 4);
    memcpy(&r.len, t->keys.data + off + 4, 4);
    r.key = (const unsigned char *)t->keys.data + off + 8;
    return r;
}

static uint64_t rec_hash(uint32_t table, const void *key, size_t len)
{
    return cs_hash64(key, len) ^ ((uint64_t)table * 0x9E3779B97F4A7C15ull);
}

static int slots_grow(pg_touched *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 1024;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return CSTACK_ENOMEM;
    for (size_t i = 0; i < t->nslots; i++) {
        if (!t->slots[i])
            continue;
        touched_rec r = rec_at(t, t->slots[i] - 1);
        size_t h = rec_hash(r.table, r.key, r.len) & (n - 1);
        while (s[h])
            h = (h + 1) & (n - 1);
        s[h] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->nslots = n;
    return 0;
}

/* Adds (table, key) unless it is there. */
static int touch(pg_touched *t, uint32_t table, const cs_buf *key)
{
    if ((t->n + 1) * 2 > t->nslots && slots_grow(t))
        return CSTACK_ENOMEM;
    if (t->keys.len + key->len + 8 >= UINT32_MAX)
        return CSTACK_ETOOBIG;
    size_t h = rec_hash(table, key->data, key->len) & (t->nslots - 1);
    for (; t->slots[h]; h = (h + 1) & (t->nslots - 1)) {
        touched_rec r = rec_at(t, t->slots[h] - 1);
        if (r.table == table && r.len == key->len && memcmp(r.key, key->data, key->len) == 0)
            return 0;
    }
    size_t off = t->keys.len;
    uint32_t len = (uint32_t)key->len;
    int rc = cs_buf_append(&t->keys, &table, 4);
    rc = rc ? rc : cs_buf_append(&t->keys, &len, 4);
    rc = rc ? rc : cs_buf_append(&t->keys, key->data, key->len);
    if (rc)
        return rc;
    t->slots[h] = (uint32_t)off + 1;
    t->n++;
    return 0;
}

static void touched_clear(pg_touched *t)
{
    cs_buf_reset(&t->keys);
    if (t->slots)
        memset(t->slots, 0, t->nslots * sizeof *t->slots);
    t->n = 0;
    t->failed = false;
    t->unknown[0] = 0;
}

void pg_touched_free(pg_touched *t)
{
    cs_buf_free(&t->keys);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---- the hook -------------------------------------------------------------------- */

static pg_table *table_of(cs_pg *pg, const char *name)
{
    for (size_t i = 0; i < pg->ntables; i++)
        if (pg->tables[i].seen == name)
            return &pg->tables[i];
    pg_table *t = pg_table_find(pg, name);
    if (t)
        t->seen = name; /* SQLite passes the same pointer for a table each time */
    return t;
}

typedef int (*getter)(sqlite3 *, int, sqlite3_value **);

static int key_of(sqlite3 *conn, const pg_table *t, getter get, sqlite3_int64 rowid, cs_buf *out)
{
    cs_buf_reset(out);
    if (t->by_rowid) {
        cs_cs_value v = {.type = SQLITE_INTEGER, .i = rowid};
        return cs_cs_put_value(out, &v);
    }
    for (size_t i = 0; i < t->npk; i++) {
        sqlite3_value *sv = NULL;
        if (get(conn, t->pkcid[i], &sv) != SQLITE_OK)
            return CSTACK_ESQLITE;
        cs_cs_value v = {.type = sqlite3_value_type(sv)};
        if (v.type == SQLITE_INTEGER)
            v.i = sqlite3_value_int64(sv);
        else if (v.type == SQLITE_FLOAT)
            v.f = sqlite3_value_double(sv);
        else if (v.type == SQLITE_TEXT || v.type == SQLITE_BLOB) {
            v.p = v.type == SQLITE_TEXT ? sqlite3_value_text(sv) : sqlite3_value_blob(sv);
            v.n = (size_t)sqlite3_value_bytes(sv);
        }
        int rc = cs_cs_put_value(out, &v);
        if (rc)
            return rc;
    }
    return 0;
}

static void hook_row(void *ctx, sqlite3 *conn, int op, const char *table, sqlite3_int64 key1,
                     sqlite3_int64 key2)
{
    cs_pg *pg = ctx;
    if (pg->applying || pg->touched.failed)
        return;
    pg_table *t = table_of(pg, table);
    if (!t) {
        if (strcmp(table, PG_LOCAL_TABLE) != 0) {
            pg->touched.failed = true;
            snprintf(pg->touched.unknown, sizeof pg->touched.unknown, "%s", table);
        }
        return;
    }
    uint32_t ti = (uint32_t)(t - pg->tables);
    cs_buf key = CS_BUF_INIT;
    int rc = 0;
    if (op != SQLITE_INSERT)
        rc = key_of(conn, t, sqlite3_preupdate_old, key1, &key) || touch(&pg->touched, ti, &key);
    if (!rc && op != SQLITE_DELETE)
        rc = key_of(conn, t, sqlite3_preupdate_new, key2, &key) || touch(&pg->touched, ti, &key);
    cs_buf_free(&key);
    if (rc)
        pg->touched.failed = true;
}

int pg_tx_open(cs_pg *pg, int64_t *seq, cs_srv_err *err)
{
    PGresult *r = PQexec(pg->conn, "BEGIN; SET LOCAL " CS_PG_SERVER_SETTING " = 'on';"
                                   " SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ");"
                                   " SELECT coalesce(max(seq), 0) FROM _cstack_pg_log");
    int rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "beginning a transaction", err);
    if (!rc)
        *seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (rc)
        PQclear(PQexec(pg->conn, "ROLLBACK"));
    return rc;
}

static int hook_begin(void *ctx, cstack *db, unsigned flags)
{
    (void)db;
    cs_pg *pg = ctx;
    if (tl_applying) {
        tl_applying = false;
        pg->applying = true;
        return 0;
    }
    touched_clear(&pg->touched);
    pg->tx_local = !(flags & CS_WRITE_MERGE);
    cs_srv_err err = {0};
    int64_t seq = 0;
    if (pg_tx_open(pg, &seq, &err)) {
        if (PQstatus(pg->conn) != CONNECTION_OK)
            atomic_store(&pg->down, true);
        return pg_fail(&err);
    }
    if (seq != atomic_load(&pg->applied)) {
        PQclear(PQexec(pg->conn, "ROLLBACK"));
        int64_t seen = atomic_load(&pg->seen_seq);
        if (seq > seen)
            atomic_store(&pg->seen_seq, seq);
        tl_behind = true;
        return cs_err(CSTACK_EBUSY, "the working copy is behind PostgreSQL (log %lld of %lld)",
                      (long long)atomic_load(&pg->applied), (long long)seq);
    }
    pg->in_tx = true;
    return 0;
}

/* Appends one log record: the row's table, key and record (or deletion). */
static int log_record(cs_buf *log, const pg_table *t, const touched_rec *r, const cs_buf *row,
                      bool exists)
{
    size_t nlen = strlen(t->name);
    int rc = cs_wr_varint(log, nlen);
    rc = rc ? rc : cs_buf_append(log, t->name, nlen);
    rc = rc ? rc : cs_buf_putc(log, exists ? PG_REC_PUT : PG_REC_DEL);
    rc = rc ? rc : cs_wr_varint(log, r->len);
    rc = rc ? rc : cs_buf_append(log, r->key, r->len);
    rc = rc || !exists ? rc : cs_wr_varint(log, row->len);
    return rc || !exists ? rc : cs_buf_append(log, row->data, row->len);
}

/* The key's values as sqlite3_values (for the typed tables), through a
 * SELECT of its bound values on the copy: valid until the statement is
 * reset. */
static sqlite3_stmt *key_values(cs_pg *pg, const touched_rec *r, size_t npk,
                                sqlite3_value **out)
{
    char sql[8 + PG_MAX_PK * 6];
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT ?1");
    for (size_t i = 1; i < npk; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, ",?%zu", i + 1);
    sqlite3_stmt *st = cs_conn_prepare(cs_write_conn(pg->inner->db), 0, sql, n);
    cs_reader rd = {r->key, r->len, 0};
    for (size_t i = 0; st && i < npk; i++) {
        cs_cs_value v;
        if (cs_cs_read_value(&rd, &v))
            return NULL;
        cs_cs_bind(st, (int)i + 1, &v);
    }
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return NULL;
    for (size_t i = 0; i < npk; i++)
        out[i] = sqlite3_column_value(st, (int)i);
    return st;
}

/* Writes one touched row to PostgreSQL and the log. */
static int write_row(cs_pg *pg, const touched_rec *r, cs_buf *log, bool *named, cs_buf *row,
                     pg_side_batch *side, pg_side_batch *gone, cs_srv_err *err)
{
    const pg_table *t = &pg->tables[r->table];
    bool exists = false;
    cs_buf_reset(row);
    int rc = pg_row_record(pg, t, r->key, r->len, row, &exists);
    /* The table's columns precede its first record (store_pg_copy.c). */
    if (!rc && exists && !named[r->table]) {
        named[r->table] = true;
        rc = pg_layout_record(log, t);
    }
    rc = rc ? rc : log_record(log, t, r, row, exists);
    if (rc) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
        return rc;
    }
    if (t->model < 0)
        return exists ? pg_side_add(pg, side, t->name, r->key, r->len, row->data, row->len, err)
                      : pg_side_add(pg, gone, t->name, r->key, r->len, NULL, 0, err);
    size_t npk = pg->schema->models[t->model].npk;
    sqlite3_value *pk[PG_MAX_PK];
    sqlite3_stmt *st = npk <= PG_MAX_PK ? key_values(pg, r, npk, pk) : NULL;
    if (!st) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ESQLITE, "cannot read a touched row's key");
        return CSTACK_ESQLITE;
    }
    rc = cs_pg_typed_sync_row(pg->typed, cs_write_conn(pg->inner->db)->db, t->model, pk, err);
    sqlite3_reset(st);
    return rc;
}

/* Appends log entry `seq`, in parts of at most PG_LOG_PART bytes. */
static int log_append(cs_pg *pg, int64_t seq, const cs_buf *log, cs_srv_err *err)
{
    int rc = 0;
    size_t off = 0;
    for (int part = 0; !rc && (off < log->len || part == 0); part++) {
        size_t n = log->len - off < PG_LOG_PART ? log->len - off : PG_LOG_PART;
        char s[24], p[12];
        snprintf(s, sizeof s, "%lld", (long long)seq);
        snprintf(p, sizeof p, "%d", part);
        const char *vals[3] = {s, p, log->data + off};
        int lens[3] = {0, 0, (int)n};
        int fmts[3] = {0, 0, 1};
        PGresult *r = PQexecParams(pg->conn,
                                   "INSERT INTO _cstack_pg_log(seq, part, payload) VALUES "
                                   "($1, $2, $3)",
                                   3, NULL, vals, lens, fmts, 0);
        rc = cs_pg_check(pg->conn, r, PGRES_COMMAND_OK, "appending to the log", err);
        PQclear(r);
        off += n;
    }
    return rc;
}

/* Writes every touched row, the log entry and the applied seq, then
 * commits PostgreSQL. */
static int replicate(cs_pg *pg, cs_srv_err *err)
{
    const pg_touched *tt = &pg->touched;
    cs_buf log = CS_BUF_INIT, row = CS_BUF_INIT;
    pg_side_batch side = {0}, gone = {.deletes = true};
    bool *named = calloc(pg->ntables ? pg->ntables : 1, sizeof *named);
    int rc = named ? 0 : CSTACK_ENOMEM;
    if (rc)
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
    for (size_t off = 0; !rc && off < tt->keys.len;) {
        touched_rec r = rec_at(tt, off);
        rc = write_row(pg, &r, &log, named, &row, &side, &gone, err);
        off += 8 + r.len;
    }
    free(named);
    rc = rc ? rc : pg_side_flush(pg, &side, err);
    rc = rc ? rc : pg_side_flush(pg, &gone, err);
    rc = rc ? rc : cs_pg_typed_flush(pg->typed, err);
    int64_t seq = atomic_load(&pg->applied) + 1;
    rc = rc ? rc : log_append(pg, seq, &log, err);
    if (!rc && pg_local_set(pg, seq)) {
        rc = CSTACK_ESQLITE;
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot record the applied log entry");
    }
    if (!rc) {
        char sql[96];
        snprintf(sql, sizeof sql, "NOTIFY " CS_PG_CHANNEL_LOG ", '%lld'; COMMIT", (long long)seq);
        pg->in_tx = false; /* committed or, failing, ended */
        rc = cs_pg_exec(pg->conn, sql, err);
        if (!rc)
            pg->committed_seq = seq;
    }
    cs_buf_free(&log);
    cs_buf_free(&row);
    pg_side_free(&side);
    pg_side_free(&gone);
    return rc;
}

static int hook_before_commit(void *ctx, cstack *db)
{
    cs_pg *pg = ctx;
    if (pg->applying || !pg->in_tx)
        return 0;
    /* A local write scope's captured rows get their clocks now: the server's
     * exports read only the clock tables. */
    int frc = pg->tx_local ? cs_sync_fold(db) : 0;
    if (frc)
        return frc;
    if (pg->touched.failed)
        return pg->touched.unknown[0]
                   ? cs_err(CSTACK_ESQLITE,
                            "table %s is not known to the PostgreSQL store; restart the server",
                            pg->touched.unknown)
                   : cs_err(CSTACK_ENOMEM, "out of memory recording the touched rows");
    if (pg->touched.n == 0) {
        pg->in_tx = false;
        cs_srv_err err = {0};
        return cs_pg_exec(pg->conn, "COMMIT", &err) ? pg_fail(&err) : 0;
    }
    cs_srv_err err = {0};
    int rc = replicate(pg, &err);
    if (rc && PQstatus(pg->conn) != CONNECTION_OK)
        atomic_store(&pg->down, true);
    return rc ? pg_fail(&err) : 0;
}

static void hook_end(void *ctx, cstack *db, bool committed)
{
    (void)db;
    cs_pg *pg = ctx;
    pg->applying = false;
    if (pg->in_tx)
        PQclear(PQexec(pg->conn, "ROLLBACK"));
    pg->in_tx = false;
    if (committed && pg->committed_seq)
        atomic_store(&pg->applied, pg->committed_seq);
    pg->committed_seq = 0;
    /* A big push's keys are not kept for the next transaction. */
    pg_touched_free(&pg->touched);
}

const cs_txhook cs_pg_txhook = {hook_begin, hook_row, hook_before_commit, hook_end};
