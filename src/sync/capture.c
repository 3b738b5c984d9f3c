/* capture.c -- recording local writes, and folding them into clock tables.
 *
 * Every row change on the write connection passes SQLite's preupdate hook,
 * whatever made it: a delegate, the envelope, raw SQL through
 * cstack_with_sqlite, a foreign-key cascade.  The hook appends a short record
 * (model, operation, primary key, changed columns) to an in-memory buffer;
 * just before the transaction commits, the buffer becomes one row of
 * _cstack_txlog keyed by the transaction's version and clock, in the same
 * transaction.  A write therefore costs a few bytes of memory, and a
 * transaction one extra row, however many rows it touched.
 *
 * Before anything reads the clock tables (export, merge, the upload queue,
 * compaction) the logged transactions are folded into them, in version
 * order, and the log is emptied: the per-row clock work is done once per
 * sync rather than once per write, and repeated writes to a row between two
 * syncs cost it once.  A transaction that captured many rows is folded as
 * it commits instead (after the log, so the order holds): its rows cost the
 * same either way, and it spares a large log row and a second commit.
 *
 * Most of a fold is inserted rows, whose clock row does not depend on the
 * old one; they are written many per statement, since the cost of a
 * single-row upsert is mostly the statement's, and in key order.  The fold runs without the
 * preupdate hook (it writes only sync tables).
 *
 *   record := varint(model) u8(op) value*npk [varint(nmask) mask[nmask]]
 *   op     := 1 insert | 2 update (with the mask of changed blob columns)
 *           | 3 delete
 *
 * Writes made outside this library (another process, the stock sqlite3
 * shell) are not captured; docs/sync.md says so.
 */
#include <stdlib.h>
#include <string.h>

#include "sql/clocksql.h"
#include "sync/changeset.h"
#include "sync/parked.h"
#include "sync/sync_ext.h"

enum { OP_INSERT = 1, OP_UPDATE = 2, OP_DELETE = 3 };

#define CAPTURE_MAX ((size_t)1 << 30)

void cs_capture_clear(cs_sync *s)
{
    cs_buf_reset(&s->captured);
    s->capture_failed = false;
}

size_t cs_capture_mark_fn(void *ctx)
{
    return ((cs_sync *)ctx)->captured.len;
}

void cs_capture_reset_fn(void *ctx, size_t mark)
{
    cs_sync *s = ctx;
    if (mark <= s->captured.len) {
        s->captured.len = mark;
        if (s->captured.data)
            s->captured.data[mark] = 0;
    }
}

static int model_of(cs_sync *s, const char *table)
{
    for (size_t i = 0; i < s->nmodels; i++)
        if (s->models[i].seen_name == table)
            return (int)i;
    const cstack_schema *schema = s->schema;
    for (size_t i = 0; i < s->nmodels; i++) {
        if (strcmp(schema->models[i].table, table) == 0) {
            /* SQLite passes the same name pointer for a table every time. */
            s->models[i].seen_name = table;
            return (int)i;
        }
    }
    return -1;
}

static void value_of(sqlite3_value *v, cs_cs_value *out)
{
    memset(out, 0, sizeof *out);
    out->type = v ? sqlite3_value_type(v) : SQLITE_NULL;
    switch (out->type) {
    case SQLITE_INTEGER:
        out->i = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        out->f = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
        out->p = sqlite3_value_text(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        break;
    case SQLITE_BLOB:
        out->p = sqlite3_value_blob(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        break;
    default:
        break;
    }
}

typedef int (*getter)(sqlite3 *, int, sqlite3_value **);

/* The hook runs once per written row, so the common record (model,
 * operation, integer keys) is written in place, without an append per
 * field; other key types take the general encoder. */
static int put_pk(cs_buf *b, sqlite3 *db, const cs_model *m, const cs_sync_model *sm, getter get)
{
    for (size_t i = 0; i < m->npk; i++) {
        sqlite3_value *v = NULL;
        if (get(db, sm->pkcid[i], &v) != SQLITE_OK)
            return CSTACK_ESQLITE;
        int rc;
        if (v && sqlite3_value_type(v) == SQLITE_INTEGER) {
            rc = cs_buf_reserve(b, 11);
            if (rc)
                return rc;
            unsigned char *p = (unsigned char *)b->data + b->len;
            p[0] = 1; /* the changeset's integer tag (cs_cs_put_value) */
            b->len += 1 + cs_varint_put(p + 1, cs_zigzag(sqlite3_value_int64(v)));
            b->data[b->len] = 0;
            continue;
        }
        cs_cs_value cv;
        value_of(v, &cv);
        rc = cs_cs_put_value(b, &cv);
        if (rc)
            return rc;
    }
    return 0;
}

static int record(cs_sync *s, sqlite3 *db, int mi, int op, getter get, const unsigned char *mask,
                  size_t nmask)
{
    const cs_model *m = &s->schema->models[mi];
    cs_buf *b = &s->captured;
    b->max = CAPTURE_MAX;
    int rc = cs_buf_reserve(b, 11);
    if (rc)
        return rc;
    unsigned char *p = (unsigned char *)b->data + b->len;
    size_t n = cs_varint_put(p, (uint64_t)mi);
    p[n++] = (unsigned char)op;
    b->len += n;
    b->data[b->len] = 0;
    rc = put_pk(b, db, m, &s->models[mi], get);
    if (!rc && op == OP_UPDATE) {
        rc = cs_wr_varint(b, nmask);
        rc = rc ? rc : cs_buf_append(b, mask, nmask);
    }
    return rc;
}

static bool same_value(sqlite3_value *a, sqlite3_value *b)
{
    cs_cs_value x, y;
    value_of(a, &x);
    value_of(b, &y);
    return cs_cs_value_cmp(&x, &y) == 0;
}

static int capture_update(cs_sync *s, sqlite3 *db, int mi)
{
    const cs_model *m = &s->schema->models[mi];
    const cs_sync_model *sm = &s->models[mi];
    bool key_changed = false;
    for (size_t i = 0; i < m->npk && !key_changed; i++) {
        sqlite3_value *o = NULL, *n = NULL;
        sqlite3_preupdate_old(db, sm->pkcid[i], &o);
        sqlite3_preupdate_new(db, sm->pkcid[i], &n);
        key_changed = !same_value(o, n);
    }
    if (key_changed) {
        /* A new primary key is another row: delete the old, insert the new. */
        int rc = record(s, db, mi, OP_DELETE, sqlite3_preupdate_old, NULL, 0);
        return rc ? rc : record(s, db, mi, OP_INSERT, sqlite3_preupdate_new, NULL, 0);
    }
    size_t nmask = (sm->ncols + 7) / 8;
    unsigned char small[64];
    unsigned char *mask = nmask <= sizeof small ? small : calloc(nmask, 1);
    if (!mask)
        return CSTACK_ENOMEM;
    memset(mask, 0, nmask);
    bool any = false;
    for (size_t k = 0; k < sm->ncols; k++) {
        if (sm->tcols[k] < 0)
            continue;
        sqlite3_value *o = NULL, *n = NULL;
        sqlite3_preupdate_old(db, sm->tcols[k], &o);
        sqlite3_preupdate_new(db, sm->tcols[k], &n);
        if (!same_value(o, n)) {
            mask[k / 8] |= (unsigned char)(1u << (k % 8));
            any = true;
        }
    }
    int rc = any ? record(s, db, mi, OP_UPDATE, sqlite3_preupdate_new, mask, nmask) : 0;
    if (mask != small)
        free(mask);
    return rc;
}

void cs_capture_hook(void *ctx, sqlite3 *db, int op, const char *zdb, const char *table,
                     sqlite3_int64 key1, sqlite3_int64 key2)
{
    cs_sync *s = ctx;
    if (strcmp(zdb, "main") != 0)
        return;
    /* A mirror of the store (the PostgreSQL server store) sees every row,
     * merges and sync's own tables included. */
    cs_store_row_changed(s->db, db, op, table, key1, key2);
    if (!s->ready || cs_write_quiet(s->db))
        return;
    int mi = model_of(s, table);
    if (mi < 0 || !s->models[mi].synced || !s->models[mi].tcols)
        return;
    int rc;
    if (op == SQLITE_INSERT)
        rc = record(s, db, mi, OP_INSERT, sqlite3_preupdate_new, NULL, 0);
    else if (op == SQLITE_DELETE)
        rc = record(s, db, mi, OP_DELETE, sqlite3_preupdate_old, NULL, 0);
    else
        rc = capture_update(s, db, mi);
    if (rc)
        s->capture_failed = true;
}

static int fold_all(cs_sync *s, const cs_buf *cur);

/* The preupdate hook while the fold writes clock rows: only the store's
 * mirror looks at them. */
static void rows_only(void *ctx, sqlite3 *db, int op, const char *zdb, const char *table,
                      sqlite3_int64 key1, sqlite3_int64 key2)
{
    cs_sync *s = ctx;
    if (strcmp(zdb, "main") == 0)
        cs_store_row_changed(s->db, db, op, table, key1, key2);
}

/* A transaction that captured this many bytes of records (a few thousand
 * rows) is folded as it commits instead of being logged: its rows cost the
 * same clock work either way, and folding them in the transaction that wrote
 * them spares writing, reading back and deleting a large log row, and a
 * second commit. */
#define FOLD_AT_COMMIT (16 * 1024)

int cs_capture_flush(void *ctx, cstack *db)
{
    cs_sync *s = ctx;
    if (s->capture_failed) {
        cs_capture_clear(s);
        return cs_err(CSTACK_ENOMEM, "sync could not record this transaction's changes; "
                                     "it was rolled back");
    }
    if (s->captured.len == 0)
        return 0;
    cs_conn *c = cs_write_conn(db);
    sqlite3 *conn = c->db;
    int src = cs_sync_tx(s, conn);
    if (src == SQLITE_OK && s->captured.len >= FOLD_AT_COMMIT) {
        int rc = fold_all(s, &s->captured);
        cs_capture_clear(s);
        return rc;
    }
    sqlite3_stmt *st = NULL;
    static const char sql[] = "INSERT INTO _cstack_txlog(ver, hlc, payload) VALUES (?1, ?2, ?3) "
                              "ON CONFLICT(ver) DO UPDATE SET payload = payload || excluded.payload";
    if (src == SQLITE_OK)
        st = cs_conn_prepare(c, CS_KEY_CONST(CS_STMT_TXLOG_APPEND), sql, sizeof sql - 1);
    if (src == SQLITE_OK && !st)
        src = sqlite3_errcode(conn);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, s->tx_ver);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)s->tx_hlc);
        sqlite3_bind_blob64(st, 3, s->captured.data, s->captured.len, SQLITE_STATIC);
        src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
        sqlite3_reset(st);
    }
    cs_capture_clear(s);
    return src == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, src);
}

/* ---- folding the log into the clock tables ------------------------------- */

/* Inserted rows written per statement. */
#define FOLD_BATCH 64
/* Inserted rows queued at most, then sorted by key and written: 64k keys
 * are about 2.5 MiB of queue. */
#define FOLD_QUEUE 65536

typedef struct fold {
    cs_sync *s;
    cs_conn *c;
    int64_t ver;
    uint64_t hlc;
    cs_clk clk;
    cs_buf blob, sql;
    /* The clock blob of a row inserted by the transaction being folded
     * (every column and the row at its clock), for model `all_model`. */
    cs_buf all;
    int all_model;
    int64_t all_ver;
    bool parked;    /* _cstack_parked is not empty */
    cs_buf key;
    /* The insert upserts of one row and of FOLD_BATCH rows, of the models
     * in ins_model. */
    sqlite3_stmt *ins[2];
    int ins_model[2];
    /* Inserted rows not yet written (primary keys, npk values each), all of
     * model q_model, pointing into the log row being folded. */
    cs_cs_value *queue; /* qcap values */
    size_t nqueued, qcap;
    int q_model;
} fold;

/* A local write to a row supersedes any parked copy of it (the app can write
 * a row with the key of a hidden one): the copy must not come back later. */
static int forget_parked(fold *f, int mi, const cs_cs_value *pk)
{
    if (!f->parked)
        return 0;
    const cs_model *m = &f->s->schema->models[mi];
    int rc = cs_parked_key(&f->key, pk, m->npk);
    int src = rc ? SQLITE_OK : cs_parked_del(f->c, m, &f->key);
    return rc ? cs_err(CSTACK_ENOMEM, "out of memory")
               : src == SQLITE_OK ? 0 : cs_err_sqlite(m, f->c->db, src);
}

/* The clock blob of a row inserted by the transaction being folded: every
 * column and the row's existence at the transaction's clock.  The same for
 * every such row of a model, so built once per transaction and model. */
static int insert_blob(fold *f, int mi)
{
    if (f->all_model == mi && f->all_ver == f->ver)
        return 0;
    const cs_sync_model *sm = &f->s->models[mi];
    cs_clk_entry e = {f->hlc, 0, f->ver};
    cs_clk_free(&f->clk);
    int rc = cs_clk_set(&f->clk, SIZE_MAX, &e);
    for (size_t k = 0; !rc && k < sm->ncols; k++)
        rc = cs_clk_set(&f->clk, k, &e);
    rc = rc ? rc : cs_clk_encode(&f->clk, &f->all);
    if (rc)
        return rc;
    f->all_model = mi;
    f->all_ver = f->ver;
    return 0;
}

/* The upsert of `nrows` inserted rows of model mi; owned by the fold (not
 * the connection's cache, which may evict), one per size. */
static sqlite3_stmt *insert_stmt(fold *f, int mi, size_t nrows, int *rc)
{
    int which = nrows == 1 ? 0 : 1;
    if (f->ins_model[which] == mi)
        return f->ins[which];
    const cs_model *m = &f->s->schema->models[mi];
    const cs_sync_model *sm = &f->s->models[mi];
    cs_buf *sql = &f->sql;
    cs_buf_reset(sql);
    *rc = cs_clock_sql_insert(sql, m, sm->clk_table, nrows);
    sqlite3_finalize(f->ins[which]);
    f->ins[which] = NULL;
    f->ins_model[which] = -1;
    sqlite3_stmt *st = NULL;
    int src = *rc ? SQLITE_NOMEM
                  : sqlite3_prepare_v3(f->c->db, sql->data, (int)sql->len,
                                       SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (src != SQLITE_OK) {
        *rc = *rc ? *rc : cs_err_sqlite(m, f->c->db, src);
        return NULL;
    }
    f->ins[which] = st;
    f->ins_model[which] = mi;
    return st;
}

static int insert_rows(fold *f, int mi, const cs_cs_value *pk, size_t nrows)
{
    const cs_model *m = &f->s->schema->models[mi];
    int rc = insert_blob(f, mi);
    sqlite3_stmt *st = rc ? NULL : insert_stmt(f, mi, nrows, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, f->ver);
    sqlite3_bind_blob(st, 2, f->all.data, (int)f->all.len, SQLITE_STATIC);
    for (size_t i = 0; i < nrows * m->npk; i++)
        cs_cs_bind(st, (int)i + 3, &pk[i]);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(m, f->c->db, step);
}

static int key_cmp(const void *a, const void *b)
{
    return cs_cs_value_cmp(a, b);
}

/* An insert rewrites every column and the row's existence, so its clock row
 * does not depend on the old one: inserts are queued and written FOLD_BATCH
 * rows per statement (the per-statement cost is most of a single-row
 * upsert's).  The queue is flushed before any other record is folded, so
 * the order of the log is kept; within the queue order does not matter (the
 * rows share their clock, and a key queued twice gets the same row), so
 * single-column keys are written in key order: B-tree inserts in random
 * key order (random ids such as Uuids) split and spill pages on nearly
 * every row, and cost many times sorted ones. */
static int flush_inserts(fold *f)
{
    size_t n = f->nqueued, done = 0;
    f->nqueued = 0;
    if (!n)
        return 0;
    size_t npk = f->s->schema->models[f->q_model].npk;
    bool sorted = true;
    for (size_t i = 1; npk == 1 && sorted && i < n; i++)
        sorted = cs_cs_value_cmp(&f->queue[i - 1], &f->queue[i]) <= 0;
    if (!sorted)
        qsort(f->queue, n, sizeof *f->queue, key_cmp);
    int rc = 0;
    while (!rc && n - done >= FOLD_BATCH) {
        rc = insert_rows(f, f->q_model, f->queue + done * npk, FOLD_BATCH);
        done += FOLD_BATCH;
    }
    for (; !rc && done < n; done++)
        rc = insert_rows(f, f->q_model, f->queue + done * npk, 1);
    return rc;
}

static int fold_insert(fold *f, int mi, const cs_cs_value *pk)
{
    size_t npk = f->s->schema->models[mi].npk;
    int rc = 0;
    if (f->nqueued && (f->q_model != mi || (f->nqueued + 1) * npk > FOLD_QUEUE))
        rc = flush_inserts(f);
    if (rc)
        return rc;
    if ((f->nqueued + 1) * npk > f->qcap) {
        size_t cap = f->qcap * 2 < FOLD_QUEUE ? f->qcap * 2 : FOLD_QUEUE;
        cs_cs_value *q = realloc(f->queue, cap * sizeof *q);
        if (!q)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        f->queue = q;
        f->qcap = cap;
    }
    f->q_model = mi;
    memcpy(f->queue + f->nqueued++ * npk, pk, npk * sizeof *pk);
    return 0;
}

static int fold_row(fold *f, int mi, int op, const cs_cs_value *pk, const unsigned char *mask,
                    size_t nmask)
{
    const cs_model *m = &f->s->schema->models[mi];
    const cs_sync_model *sm = &f->s->models[mi];
    uint64_t cl = 0;
    int rc = cs_clkrow_load(f->c, sm, m, pk, &cl, &f->clk);
    cs_clk_entry e = {f->hlc, 0, f->ver};
    bool all = op == OP_UPDATE && cl == 0; /* no clock row yet: every column */
    /* Inserts never come here (fold_insert); deletes mark the existence. */
    if (op == OP_DELETE)
        cl = cl == 0 ? 2 : cl + cl % 2;
    else if (cl == 0)
        cl = 1;
    if (!rc && op == OP_DELETE)
        rc = cs_clk_set(&f->clk, SIZE_MAX, &e);
    for (size_t k = 0; !rc && k < sm->ncols; k++) {
        bool hit = all || (op == OP_UPDATE && k / 8 < nmask && (mask[k / 8] >> (k % 8) & 1));
        if (!hit)
            continue;
        /* A write overwrites the value it saw, even one whose clock is
         * ahead of ours (a merged clock past our bound, clock.c). */
        const cs_clk_entry *old = cs_clk_get(&f->clk, k);
        cs_clk_entry ek = e;
        if (old && old->hlc >= ek.hlc)
            ek.hlc = old->hlc + 1;
        rc = cs_clk_set(&f->clk, k, &ek);
    }
    rc = rc ? rc : cs_clk_encode(&f->clk, &f->blob);
    return rc ? rc : cs_clkrow_store(f->c, sm, m, pk, cl, f->ver, f->blob.data, f->blob.len);
}

static int fold_payload(fold *f, const unsigned char *p, size_t len)
{
    cs_reader r = {p, len, 0};
    const cstack_schema *schema = f->s->schema;
    while (r.pos < r.len) {
        uint64_t mi, nmask = 0;
        const unsigned char *opb, *mask = NULL;
        cs_cs_value pk[16];
        if (cs_rd_varint(&r, &mi))
            return cs_err(CSTACK_ESQLITE, "corrupt capture log");
        if (f->s->log_models)
            mi = mi < f->s->nlog_models && f->s->log_models[mi] >= 0
                     ? (uint64_t)f->s->log_models[mi]
                     : UINT64_MAX;
        if (mi >= schema->nmodels || cs_rd_bytes(&r, 1, &opb) ||
            *opb < OP_INSERT || *opb > OP_DELETE || schema->models[mi].npk > 16)
            return cs_err(CSTACK_ESQLITE, "corrupt capture log");
        for (size_t i = 0; i < schema->models[mi].npk; i++)
            if (cs_cs_read_value(&r, &pk[i]))
                return cs_err(CSTACK_ESQLITE, "corrupt capture log");
        if (*opb == OP_UPDATE &&
            (cs_rd_varint(&r, &nmask) || nmask > r.len - r.pos || cs_rd_bytes(&r, nmask, &mask)))
            return cs_err(CSTACK_ESQLITE, "corrupt capture log");
        if (!f->s->models[mi].synced)
            continue;
        int rc = forget_parked(f, (int)mi, pk);
        if (!rc && *opb != OP_INSERT)
            rc = flush_inserts(f);
        if (!rc)
            rc = *opb == OP_INSERT ? fold_insert(f, (int)mi, pk)
                                   : fold_row(f, (int)mi, *opb, pk, mask, (size_t)nmask);
        if (rc)
            return rc;
    }
    /* The queued keys point into this log row. */
    return flush_inserts(f);
}

/* Folds the logged transactions in version order, then `cur` when not NULL:
 * the records of the transaction being committed, which are not logged. */
static int fold_all(cs_sync *s, const cs_buf *cur)
{
    cs_conn *c = cs_write_conn(s->db);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c->db, "SELECT ver, hlc, payload FROM _cstack_txlog ORDER BY ver",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return cs_err_sqlite(NULL, c->db, src);
    fold f = {.s = s, .c = c, .all_model = -1, .ins_model = {-1, -1}};
    f.qcap = FOLD_BATCH * 16;
    f.queue = malloc(f.qcap * sizeof *f.queue);
    if (!f.queue) {
        sqlite3_finalize(st);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    sqlite3_stmt *pk_st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM _cstack_parked LIMIT 1", -1, &pk_st, NULL) ==
        SQLITE_OK)
        f.parked = sqlite3_step(pk_st) == SQLITE_ROW;
    sqlite3_finalize(pk_st);
    cs_clk_init(&f.clk);
    /* The fold writes only sync tables, which capture ignores: without the
     * hook SQLite does not build its view of every clock row written.  A
     * mirror of the store still needs each row (rows_only). */
    void *hook = sqlite3_preupdate_hook(c->db, cs_store_watches_rows(s->db) ? rows_only : NULL,
                                        s);
    int rc = 0;
    int64_t last = -1;
    bool logged = false;
    while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        f.ver = sqlite3_column_int64(st, 0);
        f.hlc = (uint64_t)sqlite3_column_int64(st, 1);
        last = f.ver;
        logged = true;
        rc = fold_payload(&f, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
    }
    if (!rc && src != SQLITE_DONE)
        rc = cs_err_sqlite(NULL, c->db, src);
    sqlite3_finalize(st);
    if (!rc && cur) {
        f.ver = last = s->tx_ver;
        f.hlc = s->tx_hlc;
        rc = fold_payload(&f, (const unsigned char *)cur->data, cur->len);
    }
    if (!rc && last >= 0) {
        /* The folded clocks now live in the clock tables; keep the highest
         * in the state too in case compaction drops those rows. */
        src = logged ? sqlite3_exec(c->db, "DELETE FROM _cstack_txlog", NULL, NULL, NULL)
                     : SQLITE_OK;
        if (src == SQLITE_OK)
            src = cs_sync_state_put(c->db, "ver", s->last_ver > last ? s->last_ver : last);
        if (src != SQLITE_OK)
            rc = cs_err_sqlite(NULL, c->db, src);
    }
    sqlite3_preupdate_hook(c->db, hook ? cs_capture_hook : NULL, hook);
    cs_clk_free(&f.clk);
    cs_buf_free(&f.blob);
    cs_buf_free(&f.sql);
    cs_buf_free(&f.all);
    cs_buf_free(&f.key);
    sqlite3_finalize(f.ins[0]);
    sqlite3_finalize(f.ins[1]);
    free(f.queue);
    return rc;
}

int cs_sync_materialize(cs_sync *s)
{
    return fold_all(s, NULL);
}

int cs_sync_reload(cstack *db)
{
    cs_sync *s = cs_sync_of(db);
    if (!s)
        return CSTACK_EMISUSE;
    sqlite3 *conn = cs_write_conn(db)->db;
    s->sites_stale = false;
    int rc = cs_sync_load_all(s, conn);
    return rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, rc);
}

int cs_sync_fold(cstack *db)
{
    cs_sync *s = cs_sync_of(db);
    return s && s->ready ? fold_all(s, NULL) : 0;
}
