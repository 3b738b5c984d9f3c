/* runtime.c -- opening a database, the write lock, transactions, bootstrap. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"
#include "store/store.h"

#define DEFAULT_READERS 4
#define DEFAULT_BUSY_MS 5000

/* The message of the last failure in this thread (see cstack_errmsg). */
static _Thread_local char errbuf[1024];

int cs_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *cstack_errmsg(cstack *db)
{
    (void)db;
    return errbuf[0] ? errbuf : "no error";
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
    db->ext = ext;
    db->ext_ctx = ext_ctx;
    db->busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : DEFAULT_BUSY_MS;
    db->maxreaders = memory ? 0 : opts && opts->readers > 0 ? opts->readers : DEFAULT_READERS;
    char err[512];
    int rc = cs_conn_open(&db->writer, db->path, false, memory, db->busy_ms, err, sizeof err);
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
    if (holds_lock(db)) {
        /* Closing inside this thread's own transaction: roll it back. */
        sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
        set_held(db, false);
        pthread_mutex_unlock(&db->wlock);
    }
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

/* Opens transaction level depth+1: BEGIN at the outermost level, a savepoint
 * inside.  The caller holds the lock. */
static int level_open(cstack *db)
{
    if (db->depth >= (int)(sizeof db->marks / sizeof db->marks[0]))
        return cs_err(CSTACK_EMISUSE, "transactions nested too deeply");
    int rc = db->depth == 0 ? exec_cached(db, "BEGIN IMMEDIATE", 0)
                            : exec_cached(db, "SAVEPOINT", db->depth);
    if (rc)
        return rc;
    cs_events_mark(db, db->depth);
    db->cap_marks[db->depth] = cs_capture_mark(db);
    if (db->depth == 0)
        set_held(db, true);
    db->depth++;
    return 0;
}

/* Closes the innermost level, committing (ok) or rolling back. */
static int level_close(cstack *db, bool ok)
{
    int level = db->depth - 1;
    int rc = 0;
    if (level == 0) {
        /* The extension (sync) records what this transaction captured in
         * the transaction itself, just before it commits. */
        if (ok && db->ext && db->ext->before_commit)
            rc = db->ext->before_commit(db->ext_ctx, db);
        rc = ok && !rc ? exec_cached(db, "COMMIT", 0) : rc;
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
    if (level == 0)
        set_held(db, false);
    return rc;
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
    if (!holds_lock(db))
        pthread_mutex_unlock(&db->wlock);
}

int cs_write_begin(cstack *db)
{
    int rc = lock_writer(db);
    if (rc)
        return rc;
    rc = level_open(db);
    if (rc)
        unlock_writer(db);
    return rc;
}

int cs_write_end(cstack *db, int rc)
{
    int crc = level_close(db, rc == 0);
    bool outer = db->depth == 0;
    unlock_writer(db);
    if (outer && rc == 0 && crc == 0)
        cs_events_deliver(db);
    else if (outer)
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
    if (!db)
        return CSTACK_EMISUSE;
    return cs_write_begin(db);
}

int cstack_commit(cstack *db)
{
    if (!db)
        return CSTACK_EMISUSE;
    if (!holds_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_commit: this thread has no open transaction");
    return cs_write_end(db, 0);
}

int cstack_rollback(cstack *db)
{
    if (!db)
        return CSTACK_EMISUSE;
    if (!holds_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_rollback: this thread has no open transaction");
    int rc = cs_write_end(db, CSTACK_EERROR);
    return rc == CSTACK_EERROR ? 0 : rc;
}

int cstack_with_sqlite(cstack *db, int (*fn)(sqlite3 *conn, void *ctx), void *ctx)
{
    if (!db || !fn)
        return CSTACK_EMISUSE;
    /* A write scope, so whatever the callback writes is captured for sync
     * and committed together with that record, or not at all. */
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    int frc = fn(db->writer.db, ctx);
    rc = cs_write_end(db, frc ? CSTACK_EERROR : 0);
    return frc ? frc : rc;
}

/* ---- readers ------------------------------------------------------------- */

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
                return &db->readers[i];
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
            return c;
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
    pthread_mutex_lock(&db->plock);
    c->busy = false;
    pthread_cond_signal(&db->pcond);
    pthread_mutex_unlock(&db->plock);
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
