/* changes.c -- which tables each commit changed, for live queries.
 *
 * The live layer (src/live/) attaches itself once per runtime; from then on
 * SQLite's update hook on the write connection names every table a row
 * change touches, and the write scope hands the names to the layer when the
 * change is committed (cs_changes_end).  Everything here runs on the thread
 * holding the write lock, which guards the list.  A savepoint rolled back
 * inside a committed transaction still reports its tables: a spare re-run
 * of a query, which result-hash suppression then hides, costs less than
 * tracking tables per savepoint. */
#include <stdlib.h>
#include <string.h>

#include "store/runtime_int.h"

static void note_table(cstack *db, const char *table)
{
    for (size_t i = db->nchanged; i-- > 0;)
        if (strcmp(db->changed[i], table) == 0)
            return;
    if (db->nchanged == db->capchanged) {
        size_t cap = db->capchanged ? 2 * db->capchanged : 8;
        char **grown = realloc(db->changed, cap * sizeof *grown);
        if (!grown) {
            db->changed_all = true; /* cannot name it: report everything */
            return;
        }
        db->changed = grown;
        db->capchanged = cap;
    }
    char *copy = cs_strdup(table);
    if (!copy) {
        db->changed_all = true;
        return;
    }
    db->changed[db->nchanged++] = copy;
}

/* The update hook: once per row inserted, updated or deleted. */
static void on_update(void *p, int op, const char *schema, const char *table, sqlite3_int64 rowid)
{
    cstack *db = p;
    (void)op;
    (void)rowid;
    /* The common case, many rows of one table: one compare. */
    if (db->nchanged && strcmp(db->changed[db->nchanged - 1], table) == 0)
        return;
    if (strcmp(schema, "main") == 0)
        note_table(db, table);
}

static void forget(cstack *db)
{
    for (size_t i = 0; i < db->nchanged; i++)
        free(db->changed[i]);
    db->nchanged = 0;
    db->changed_all = false;
}

void cs_changes_end(cstack *db, bool committed)
{
    if (committed && db->live && (db->nchanged || db->changed_all))
        db->live->committed(db->live_ctx, (const char *const *)db->changed, db->nchanged,
                            db->changed_all);
    forget(db);
}

void cs_changes_free(cstack *db)
{
    forget(db);
    free(db->changed);
    db->changed = NULL;
    db->capchanged = 0;
}

void *cs_store_live(cstack *db, const cs_live_hooks *hooks, void *(*make)(cstack *db))
{
    void *ctx = db->live_ctx;
    if (ctx)
        return ctx;
    if (cs_write_lock(db))
        return NULL;
    ctx = db->live_ctx;
    if (!ctx && (ctx = make(db)) != NULL) {
        db->live = hooks;
        sqlite3_update_hook(db->writer.db, on_update, db);
        db->live_ctx = ctx;
    }
    cs_write_unlock(db);
    return ctx;
}

void *cs_store_live_peek(cstack *db)
{
    return db->live_ctx;
}

int cs_store_live_poll_ms(const cstack *db)
{
    return db->live_poll_ms;
}

int cs_store_data_version(cstack *db, int64_t *out)
{
    if (pthread_mutex_trylock(&db->wlock) != 0)
        return CSTACK_EBUSY;
    static const char sql[] = "PRAGMA data_version";
    sqlite3_stmt *st = cs_conn_prepare(&db->writer, 0, sql, sizeof sql - 1);
    int rc = st && sqlite3_step(st) == SQLITE_ROW ? 0 : CSTACK_ESQLITE;
    if (!rc)
        *out = sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&db->wlock);
    return rc;
}
