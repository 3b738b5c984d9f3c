/* runtime.c -- opening a database, the write lock, transactions, bootstrap. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"
#include "store/runtime_int.h"

#define DEFAULT_READERS 4
#define DEFAULT_BUSY_MS 5000
#define MAX_LIVE_POLL_MS 60000

/* ---- error messages ---------------------------------------------------------
 *
 * The one error sink.  Code that fails calls cs_err, which sets the calling
 * thread's message and files a copy under the handle the thread is working
 * on: every public entry point that takes a handle names it first
 * (cs_enter).  Each thread keeps the messages of its ERR_SLOTS handles that
 * failed most recently, so a failure on one handle never changes another
 * handle's message, in this thread or in any other, and no lock is taken.
 * A handle is known by its address and a serial number, so a new handle
 * opened at the address of a closed one starts without a message. */
#define ERR_SLOTS 8
#define ERR_LEN 1024

typedef struct err_slot {
    const cstack *db;
    uint64_t serial;
    uint64_t used; /* when this slot last took a message (replacement order) */
    char msg[ERR_LEN];
} err_slot;

static _Thread_local char errbuf[ERR_LEN]; /* the thread's last message */
static _Thread_local err_slot err_slots[ERR_SLOTS];
static _Thread_local uint64_t err_clock;
static _Thread_local const cstack *entered;
static _Thread_local uint64_t entered_serial;

static _Atomic uint64_t next_serial = 1;

void cs_enter(const cstack *db)
{
    entered = db;
    entered_serial = db ? db->serial : 0;
}

static err_slot *slot_of(const cstack *db, uint64_t serial)
{
    for (int i = 0; i < ERR_SLOTS; i++)
        if (err_slots[i].db == db && err_slots[i].serial == serial)
            return &err_slots[i];
    return NULL;
}

int cs_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (!entered)
        return code;
    err_slot *s = slot_of(entered, entered_serial);
    if (!s) {
        /* The least recently used slot (an unused one first). */
        s = &err_slots[0];
        for (int i = 1; i < ERR_SLOTS; i++)
            if (err_slots[i].used < s->used)
                s = &err_slots[i];
    }
    s->db = entered;
    s->serial = entered_serial;
    s->used = ++err_clock;
    memcpy(s->msg, errbuf, sizeof s->msg);
    return code;
}

const char *cs_errmsg_last(void)
{
    return errbuf[0] ? errbuf : "no error";
}

const char *cstack_errmsg(cstack *db)
{
    if (!db)
        return cs_errmsg_last();
    const err_slot *s = slot_of(db, db->serial);
    return s ? s->msg : "no error";
}

const cstack_schema *cstack_schema_of(const cstack *db)
{
    return db ? db->schema : NULL;
}

cs_rowsql *cs_store_rowsql(cstack *db)
{
    return db->rowsql;
}

const cs_model *cs_store_model(cstack *db, const char *name, int *index)
{
    int i = name ? cs_model_find(db->schema, name) : -1;
    if (i < 0) {
        cs_err(CSTACK_EINVAL, "unknown model '%s'", name ? name : "(null)");
        return NULL;
    }
    if (index)
        *index = i;
    return &db->schema->models[i];
}

/* The runtimes whose write lock this thread holds for an open transaction.
 * Kept per thread so that asking "do I hold it?" never reads another
 * thread's state. */
#define MAX_HELD 16
static _Thread_local cstack *held[MAX_HELD];
static _Thread_local int nheld;

static bool holds_lock(cstack *db)
{
    for (int i = 0; i < nheld; i++)
        if (held[i] == db)
            return true;
    return false;
}

static void set_held(cstack *db, bool on)
{
    if (on) {
        held[nheld++] = db;
        return;
    }
    for (int i = 0; i < nheld; i++)
        if (held[i] == db) {
            held[i] = held[--nheld];
            return;
        }
}

bool cs_holds_write_lock(cstack *db)
{
    return holds_lock(db);
}

static cstack *runtime_new(const cstack_schema *schema, const char *path, bool memory)
{
    cstack *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    db->path = cs_strdup(path ? path : ":memory:");
    if (!db->path) {
        free(db);
        return NULL;
    }
    db->schema = cs_schema_retain(schema);
    db->serial = next_serial++;
    db->memory = memory;
    pthread_mutex_init(&db->wlock, NULL);
    pthread_mutex_init(&db->plock, NULL);
    pthread_mutex_init(&db->slock, NULL);
    pthread_cond_init(&db->pcond, NULL);
    db->next_sub = 1;
    return db;
}

int cs_store_conn_init(cstack *db, sqlite3 *conn, bool writer, char *err, size_t errlen)
{
    if (!db->ext || !db->ext->conn_init)
        return SQLITE_OK;
    int rc = db->ext->conn_init(db->ext_ctx, conn, writer);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "cannot prepare a connection: %s", sqlite3_errstr(rc));
    return rc;
}

int cs_store_open(const cstack_schema *schema, const char *path, bool memory,
                  const cstack_open_options *opts, const cs_store_ext *ext, void *ext_ctx,
                  cstack **out)
{
    *out = NULL;
    if (!schema)
        return cs_err(CSTACK_EMISUSE, "cstack_open: schema is NULL");
    if (!memory && (!path || !*path))
        return cs_err(CSTACK_EMISUSE, "cstack_open: path is empty");
    cstack *db = runtime_new(schema, path, memory);
    if (!db)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    *out = db;
    /* From here on failures are this handle's (cstack_open documents that
     * *out is set so that cstack_errmsg can explain). */
    cs_enter(db);
    db->ext = ext;
    db->ext_ctx = ext_ctx;
    db->busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : DEFAULT_BUSY_MS;
    db->live_poll_ms = opts ? opts->live_poll_ms : 0;
    if (db->live_poll_ms < 0 || db->live_poll_ms > MAX_LIVE_POLL_MS)
        return cs_err(CSTACK_EINVAL,
                      "cstack_open: live_poll_ms is %d; it takes 0 (the default, 20 ms) or 1 to %d",
                      db->live_poll_ms, MAX_LIVE_POLL_MS);
    /* A page-store VFS has no WAL: readers would only wait on the writer. */
    const char *vfs = opts ? opts->vfs : NULL;
    db->maxreaders = memory || vfs                       ? 0
                     : opts && opts->readers > 0 ? opts->readers
                                                 : DEFAULT_READERS;
    char err[512];
    int rc = cs_conn_open_vfs(&db->writer, db->path, vfs, false, memory, db->busy_ms, err,
                              sizeof err);
    if (rc == SQLITE_OK)
        rc = cs_store_conn_init(db, db->writer.db, true, err, sizeof err);
    if (rc != SQLITE_OK) {
        int code = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? CSTACK_EBUSY
                   : rc == SQLITE_CANTOPEN ? CSTACK_EIO
                                           : CSTACK_ESQLITE;
        return cs_err(code, "%s", err);
    }
    db->shapes = calloc(schema->nmodels ? schema->nmodels : 1, sizeof *db->shapes);
    if (!db->shapes)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    for (size_t i = 0; i < schema->nmodels; i++)
        if ((rc = cs_model_shape(&schema->models[i], NULL, 0, &db->shapes[i])))
            return rc;
    if ((rc = cs_rowsql_new(db->schema, &db->rowsql)))
        return cs_err(rc, "cannot build the row SQL of the schema: %s", cstack_errstr(rc));
    if (db->maxreaders) {
        db->readers = calloc((size_t)db->maxreaders, sizeof *db->readers);
        if (!db->readers)
            return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    return 0;
}

void cstack_close(cstack *db)
{
    if (!db)
        return;
    err_slot *slot = slot_of(db, db->serial);
    if (slot)
        memset(slot, 0, sizeof *slot);
    if (holds_lock(db)) {
        /* Closing inside this thread's own transaction: roll it back. */
        sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
        set_held(db, false);
        pthread_mutex_unlock(&db->wlock);
    }
    /* The live layer's delivery thread reads through this handle: stop it
     * before anything closes (and after the lock is free, which it may be
     * waiting for). */
    void *live = db->live_ctx;
    if (live) {
        db->live->destroy(live);
        db->live_ctx = NULL; /* the extension's last writes report to no one */
        db->live = NULL;
        sqlite3_update_hook(db->writer.db, NULL, NULL);
    }
    cs_changes_free(db);
    if (db->ext && db->ext->destroy)
        db->ext->destroy(db->ext_ctx);
    cs_events_clear(db);
    free(db->pending);
    cs_subs_free(db);
    for (int i = 0; i < db->nreaders; i++)
        cs_conn_close(&db->readers[i]);
    free(db->readers);
    cs_conn_close(&db->writer);
    for (size_t i = 0; db->shapes && i < db->schema->nmodels; i++)
        cs_shape_release(db->shapes[i]);
    free(db->shapes);
    cs_rowsql_free(db->rowsql);
    pthread_mutex_destroy(&db->wlock);
    pthread_mutex_destroy(&db->plock);
    pthread_mutex_destroy(&db->slock);
    pthread_cond_destroy(&db->pcond);
    cstack_schema_free(db->schema);
    free(db->path);
    free(db);
}

/* ---- the write lock and transactions ------------------------------------ */


/* Runs a transaction-control statement through the statement cache: they
 * run once per delegate call, so parsing them each time would show. */
static int exec_cached(cstack *db, const char *verb, int level)
{
    char sql[48];
    size_t n = strlen(verb);
    memcpy(sql, verb, n);
    if (level > 0) {
        memcpy(sql + n, " cs_sp", 6);
        n += 6;
        if (level >= 10)
            sql[n++] = (char)('0' + level / 10);
        sql[n++] = (char)('0' + level % 10);
    }
    sql[n] = 0;
    sqlite3_stmt *st = cs_conn_prepare(&db->writer, 0, sql, n);
    if (!st)
        return cs_err_sqlite(NULL, db->writer.db, sqlite3_errcode(db->writer.db));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, db->writer.db, rc);
}

/* Switches foreign keys, which SQLite allows only outside a transaction. */
static int foreign_keys(cstack *db, bool on)
{
    return exec_cached(db, on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", 0);
}

/* Opens transaction level depth+1: BEGIN at the outermost level, a savepoint
 * inside.  The caller holds the lock. */
static int level_open(cstack *db, unsigned flags)
{
    if (db->depth >= (int)(sizeof db->marks / sizeof db->marks[0]))
        return cs_err(CSTACK_EMISUSE, "transactions nested too deeply");
    if (db->depth > 0 && (flags & CS_WRITE_MERGE) && !(db->flags & CS_WRITE_MERGE))
        return cs_err(CSTACK_EMISUSE, "a merge cannot run inside a transaction");
    int rc = 0;
    if (db->depth == 0 && (flags & CS_WRITE_MERGE))
        rc = foreign_keys(db, false);
    rc = rc                ? rc
         : db->depth == 0 ? exec_cached(db, "BEGIN IMMEDIATE", 0)
                          : exec_cached(db, "SAVEPOINT", db->depth);
    if (!rc && db->depth == 0 && db->txhook && db->txhook->begin &&
        (rc = db->txhook->begin(db->txhook_ctx, db, flags)) != 0)
        sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
    if (rc) {
        if (db->depth == 0 && (flags & CS_WRITE_MERGE))
            foreign_keys(db, true);
        return rc;
    }
    if (db->depth == 0)
        db->flags = flags;
    cs_events_mark(db, db->depth);
    db->cap_marks[db->depth] = cs_capture_mark(db);
    if (db->depth == 0)
        set_held(db, true);
    db->depth++;
    return 0;
}

/* Closes the innermost level, committing (ok) or rolling back; *committed:
 * it was the outermost and its COMMIT succeeded. */
static int level_close(cstack *db, bool ok, bool *committed)
{
    int level = db->depth - 1;
    int rc = 0;
    *committed = false;
    if (level == 0) {
        /* The extension (sync) records what this transaction captured in
         * the transaction itself, just before it commits. */
        if (ok && db->ext && db->ext->before_commit)
            rc = db->ext->before_commit(db->ext_ctx, db);
        if (ok && !rc && db->txhook && db->txhook->before_commit)
            rc = db->txhook->before_commit(db->txhook_ctx, db);
        rc = ok && !rc ? exec_cached(db, "COMMIT", 0) : rc;
        *committed = ok && !rc;
        if (!ok || rc) {
            /* A failed COMMIT (e.g. SQLITE_BUSY) still must not leave the
             * transaction open behind the caller's back. */
            sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
            ok = false;
        }
    } else {
        if (!ok)
            exec_cached(db, "ROLLBACK TO", level);
        rc = exec_cached(db, "RELEASE", level);
    }
    if (!ok) {
        cs_events_rollback(db, level);
        cs_capture_reset(db, db->cap_marks[level]);
    }
    db->depth = level;
    if (level == 0) {
        if (db->flags & CS_WRITE_MERGE) {
            int frc = foreign_keys(db, true);
            rc = rc ? rc : frc;
        }
        db->flags = 0;
        if (db->txhook && db->txhook->end)
            db->txhook->end(db->txhook_ctx, db, ok && !rc);
        set_held(db, false);
        cs_changes_end(db, ok && !rc);
    }
    return rc;
}

void cs_store_set_txhook(cstack *db, const cs_txhook *h, void *ctx)
{
    pthread_mutex_lock(&db->wlock);
    db->txhook = h;
    db->txhook_ctx = ctx;
    pthread_mutex_unlock(&db->wlock);
}

void cs_store_row_changed(cstack *db, sqlite3 *conn, int op, const char *table,
                          sqlite3_int64 key1, sqlite3_int64 key2)
{
    if (db->txhook && db->txhook->row)
        db->txhook->row(db->txhook_ctx, conn, op, table, key1, key2);
}

bool cs_store_watches_rows(const cstack *db)
{
    return db->txhook && db->txhook->row;
}

static int lock_writer(cstack *db)
{
    if (holds_lock(db))
        return 0;
    if (nheld >= MAX_HELD)
        return cs_err(CSTACK_EMISUSE, "too many runtimes with open transactions in one thread");
    pthread_mutex_lock(&db->wlock);
    return 0;
}

/* Releases the lock unless this thread's transaction still holds it. */
static void unlock_writer(cstack *db)
{
    if (!holds_lock(db)) {
        /* A lone statement under cs_write_lock committed by itself. */
        cs_changes_end(db, true);
        pthread_mutex_unlock(&db->wlock);
    }
}

int cs_write_begin(cstack *db)
{
    return cs_write_begin_opts(db, 0);
}

int cs_write_begin_opts(cstack *db, unsigned flags)
{
    int rc = lock_writer(db);
    if (rc)
        return rc;
    rc = level_open(db, flags);
    if (rc)
        unlock_writer(db);
    return rc;
}

int cs_write_try_begin(cstack *db)
{
    if (holds_lock(db))
        return cs_err(CSTACK_EMISUSE, "cs_write_try_begin: this thread's transaction is open");
    if (nheld >= MAX_HELD)
        return cs_err(CSTACK_EMISUSE, "too many runtimes with open transactions in one thread");
    if (pthread_mutex_trylock(&db->wlock) != 0)
        return CSTACK_EBUSY;
    /* Another process's transaction on the file is a busy lock too. */
    sqlite3_busy_timeout(db->writer.db, 0);
    int rc = level_open(db, 0);
    sqlite3_busy_timeout(db->writer.db, db->busy_ms);
    if (rc) {
        int code = sqlite3_errcode(db->writer.db);
        unlock_writer(db);
        if ((code & 0xff) == SQLITE_BUSY)
            rc = CSTACK_EBUSY;
    }
    return rc;
}

int cs_write_end(cstack *db, int rc)
{
    return cs_write_end_then(db, rc, NULL, NULL);
}

int cs_write_end_then(cstack *db, int rc, void (*done)(void *ctx, bool committed), void *ctx)
{
    bool committed = false;
    int crc = level_close(db, rc == 0, &committed);
    bool outer = db->depth == 0;
    if (done)
        done(ctx, committed);
    unlock_writer(db);
    if (outer && rc == 0 && crc == 0) {
        cs_events_deliver(db);
        /* Subscribers may have called into other handles. */
        cs_enter(db);
    } else if (outer)
        cs_events_clear(db);
    return rc ? rc : crc;
}

size_t cs_capture_mark(cstack *db)
{
    return db->ext && db->ext->capture_mark ? db->ext->capture_mark(db->ext_ctx) : 0;
}

void cs_capture_reset(cstack *db, size_t mark)
{
    if (db->ext && db->ext->capture_reset)
        db->ext->capture_reset(db->ext_ctx, mark);
}

bool cs_write_quiet(const cstack *db)
{
    return db->depth > 0 && (db->flags & CS_WRITE_MERGE);
}

cs_conn *cs_write_conn(cstack *db)
{
    return &db->writer;
}

void *cs_store_ext_ctx(const cstack *db, const cs_store_ext *ext)
{
    return db && db->ext == ext ? db->ext_ctx : NULL;
}

cs_shape *cs_store_shape(const cstack *db, int mi)
{
    return db->shapes[mi];
}

bool cs_in_transaction(cstack *db)
{
    return holds_lock(db) && db->depth > 0;
}

int cs_write_lock(cstack *db)
{
    return lock_writer(db);
}

void cs_write_unlock(cstack *db)
{
    unlock_writer(db);
}

int cstack_begin(cstack *db)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    return cs_write_begin(db);
}

int cstack_commit(cstack *db)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (!holds_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_commit: this thread has no open transaction");
    return cs_write_end(db, 0);
}

int cstack_rollback(cstack *db)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (!holds_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_rollback: this thread has no open transaction");
    int rc = cs_write_end(db, CSTACK_EERROR);
    return rc == CSTACK_EERROR ? 0 : rc;
}

int cstack_with_sqlite(cstack *db, int (*fn)(sqlite3 *conn, void *ctx), void *ctx)
{
    cs_enter(db);
    if (!db || !fn)
        return CSTACK_EMISUSE;
    /* A write scope, so whatever the callback writes is captured for sync
     * and committed together with that record, or not at all. */
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    sqlite3_int64 before = sqlite3_total_changes64(db->writer.db);
    int frc = fn(db->writer.db, ctx);
    /* Raw SQL may change rows the update hook never sees (a DELETE without
     * WHERE truncates): tell live queries every table may have changed. */
    if (sqlite3_total_changes64(db->writer.db) != before)
        db->changed_all = true;
    /* The callback may have called into other handles. */
    cs_enter(db);
    rc = cs_write_end(db, frc ? CSTACK_EERROR : 0);
    return frc ? frc : rc;
}

/* ---- readers ------------------------------------------------------------- */

/* A reader's statements share one snapshot only inside a transaction:
 * without one, each statement stepped after the others were reset would see
 * the commits made in between.  A reader that cannot begin one is given
 * back and the caller reads through the writer under its lock instead. */
static void release_reader(cstack *db, cs_conn *c)
{
    pthread_mutex_lock(&db->plock);
    c->busy = false;
    pthread_cond_signal(&db->pcond);
    pthread_mutex_unlock(&db->plock);
}

static cs_conn *snapshot(cstack *db, cs_conn *c)
{
    if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
        return c;
    release_reader(db, c);
    pthread_mutex_lock(&db->wlock);
    return &db->writer;
}

cs_conn *cs_read_begin(cstack *db)
{
    if (holds_lock(db))
        return &db->writer;
    if (db->maxreaders == 0) {
        pthread_mutex_lock(&db->wlock);
        return &db->writer;
    }
    pthread_mutex_lock(&db->plock);
    for (;;) {
        for (int i = 0; i < db->nreaders; i++) {
            if (!db->readers[i].busy) {
                db->readers[i].busy = true;
                pthread_mutex_unlock(&db->plock);
                return snapshot(db, &db->readers[i]);
            }
        }
        if (db->nreaders < db->maxreaders) {
            cs_conn *c = &db->readers[db->nreaders];
            char err[512];
            if (cs_conn_open(c, db->path, true, false, db->busy_ms, err, sizeof err) !=
                    SQLITE_OK ||
                cs_store_conn_init(db, c->db, false, err, sizeof err) != SQLITE_OK) {
                /* A reader that cannot open is not fatal: read through the
                 * writer, which sees the same committed data. */
                cs_conn_close(c);
                pthread_mutex_unlock(&db->plock);
                pthread_mutex_lock(&db->wlock);
                return &db->writer;
            }
            c->busy = true;
            db->nreaders++;
            pthread_mutex_unlock(&db->plock);
            return snapshot(db, c);
        }
        pthread_cond_wait(&db->pcond, &db->plock);
    }
}

void cs_read_end(cstack *db, cs_conn *c)
{
    if (!c)
        return;
    if (c == &db->writer) {
        if (!holds_lock(db))
            pthread_mutex_unlock(&db->wlock);
        return;
    }
    /* It only read: COMMIT ends it; ROLLBACK if a statement were left
     * running. */
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    release_reader(db, c);
}

/* ---- SQLite errors -------------------------------------------------------- */

/* Rewrites SQLite's "Table.column, Table.column" into "Model.field, ...". */
static void name_columns(const cstack_schema *s, const char *list, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = 0;
    while (*list && used + 1 < outlen) {
        const char *end = strstr(list, ", ");
        size_t len = end ? (size_t)(end - list) : strlen(list);
        const char *dot = memchr(list, '.', len);
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)len, list);
        if (dot) {
            size_t tlen = (size_t)(dot - list);
            for (size_t i = 0; i < s->nmodels; i++) {
                const cs_model *m = &s->models[i];
                if (strlen(m->table) != tlen || strncmp(m->table, list, tlen) != 0)
                    continue;
                for (size_t f = 0; f < m->nfields; f++) {
                    const char *col = m->fields[f].column;
                    if (cs_field_is_column(&m->fields[f]) && strlen(col) == len - tlen - 1 &&
                        strncmp(col, dot + 1, len - tlen - 1) == 0)
                        snprintf(item, sizeof item, "%s.%s", m->name, m->fields[f].name);
                }
            }
        }
        int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", item);
        if (w < 0 || (size_t)w >= outlen - used)
            break;
        used += (size_t)w;
        if (!end)
            break;
        list = end + 2;
    }
}

int cs_err_sqlite(const cs_model *m, sqlite3 *conn, int rc)
{
    const char *msg = sqlite3_errmsg(conn);
    const char *list = strstr(msg, "failed: ");
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return cs_err(CSTACK_EUNIQUE, "unique constraint failed: a row with the same %s exists",
                      list ? list + 8 : "key");
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return cs_err(CSTACK_EFOREIGNKEY,
                      "foreign key constraint failed%s%s: a related row is missing or still "
                      "referenced",
                      m ? " on " : "", m ? m->name : "");
    case SQLITE_CONSTRAINT_NOTNULL:
        return cs_err(CSTACK_EREQUIRED, "%s is required", list ? list + 8 : msg);
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return cs_err(CSTACK_EBUSY, "database is busy: %s", msg);
    case SQLITE_NOMEM:
        return cs_err(CSTACK_ENOMEM, "out of memory");
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
        return cs_err(CSTACK_EIO, "I/O error: %s", msg);
    default:
        return cs_err(CSTACK_ESQLITE, "SQLite error: %s", msg);
    }
}

/* Like cs_err_sqlite, with Model.field names for constraint messages. */
int cs_err_sqlite_named(const cstack_schema *s, const cs_model *m, sqlite3 *conn, int rc)
{
    const char *msg = sqlite3_errmsg(conn);
    const char *list = strstr(msg, "failed: ");
    char names[512];
    if (!list)
        return cs_err_sqlite(m, conn, rc);
    name_columns(s, list + 8, names, sizeof names);
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return cs_err(CSTACK_EUNIQUE, "unique constraint failed: a row with the same %s exists",
                      names);
    case SQLITE_CONSTRAINT_NOTNULL:
        return cs_err(CSTACK_EREQUIRED, "%s is required", names);
    default:
        return cs_err_sqlite(m, conn, rc);
    }
}
