/* bootstrap.c -- creating and migrating a database to the runtime's schema.
 *
 * The schema a database was last bootstrapped with is kept in _cstack_meta
 * (its hash and its source).  Bootstrap compares it with the runtime's schema:
 * equal hashes mean nothing to do; otherwise the old source is parsed again
 * and the migration planner (sql/migrate.c) says what SQL brings the tables
 * from one to the other, or refuses.  Everything happens in one transaction,
 * with foreign keys off so that table rebuilds can drop and rename, and a
 * foreign_key_check before commit so that no violation slips through. */
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"
#include "store/runtime_int.h"

static int exec(cstack *db, const char *sql)
{
    int rc = sqlite3_exec(db->writer.db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, db->writer.db, rc);
}

/* Reads a _cstack_meta value into *out (NULL when absent). */
static int meta_get(cstack *db, const char *key, char **out)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->writer.db, "SELECT value FROM _cstack_meta WHERE key = ?", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, db->writer.db, rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *out = cs_strndup(v ? v : "", (size_t)sqlite3_column_bytes(st, 0));
        rc = *out ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = cs_err_sqlite(NULL, db->writer.db, rc);
    }
    sqlite3_finalize(st);
    return rc;
}

static int meta_put(cstack *db, const char *key, const char *val, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->writer.db,
                                "INSERT INTO _cstack_meta(key, value) VALUES (?, ?) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, db->writer.db, rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, val, (int)n, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, db->writer.db, rc);
}

static int record_schema(cstack *db)
{
    const cstack_schema *s = db->schema;
    int rc = meta_put(db, "schema_hash", s->hash, strlen(s->hash));
    if (!rc)
        rc = meta_put(db, "schema_source", s->source ? s->source : "", s->source_len);
    return rc;
}

static int fresh_database(cstack *db, cs_buf *report)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_sql_schema_ddl(&sql, db->schema, CS_DIALECT_SQLITE);
    if (rc) {
        cs_buf_free(&sql);
        return cs_err(rc, "cannot render the schema's DDL");
    }
    rc = exec(db, sql.data);
    cs_buf_free(&sql);
    for (size_t i = 0; !rc && i < db->schema->nmodels; i++) {
        const cs_model *m = &db->schema->models[i];
        rc = cs_buf_printf(report, "created model %s (table \"%s\")\n", m->name, m->table);
    }
    return rc;
}

static int migrate_database(cstack *db, const char *old_src, cs_buf *report)
{
    cstack_schema *old = NULL;
    cstack_diags *diags = NULL;
    int rc = cstack_schema_parse("(stored schema)", old_src, strlen(old_src), &old, &diags);
    cstack_diags_free(diags);
    if (rc)
        return cs_err(CSTACK_EMIGRATION,
                      "the schema stored in the database no longer parses; cannot compare it "
                      "with the new schema");
    cs_buf sql = CS_BUF_INIT;
    char err[512] = "";
    rc = cs_sql_migrate(old, db->schema, &sql, report, err, sizeof err);
    cstack_schema_free(old);
    if (rc) {
        cs_buf_free(&sql);
        return cs_err(rc, "%s", err[0] ? err : "migration failed");
    }
    if (sql.len)
        rc = exec(db, sql.data);
    cs_buf_free(&sql);
    return rc;
}

static int check_foreign_keys(cstack *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->writer.db, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, db->writer.db, rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = cs_err(CSTACK_EMIGRATION, "migration would leave a foreign key violation in table '%s'",
                    (const char *)sqlite3_column_text(st, 0));
    else
        rc = rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, db->writer.db, rc);
    sqlite3_finalize(st);
    return rc;
}

static int bootstrap_locked(cstack *db, cs_buf *report)
{
    cs_buf ddl = CS_BUF_INIT;
    int rc = cs_sql_internal_ddl(&ddl);
    if (!rc)
        rc = exec(db, ddl.data);
    cs_buf_free(&ddl);
    char *hash = NULL, *src = NULL;
    if (!rc)
        rc = meta_get(db, "schema_hash", &hash);
    if (!rc)
        rc = meta_get(db, "schema_source", &src);
    if (!rc && !hash)
        rc = fresh_database(db, report);
    else if (!rc && strcmp(hash, db->schema->hash) != 0)
        rc = migrate_database(db, src ? src : "", report);
    /* The extension (sync) brings its own tables up to date every time:
     * it is cheap when nothing changed and it must follow every migration. */
    if (!rc && db->ext && db->ext->bootstrap)
        rc = db->ext->bootstrap(db->ext_ctx, db, report);
    if (!rc && (!hash || strcmp(hash, db->schema->hash) != 0))
        rc = check_foreign_keys(db);
    if (!rc && (!hash || strcmp(hash, db->schema->hash) != 0))
        rc = record_schema(db);
    free(hash);
    free(src);
    return rc;
}

int cstack_bootstrap(cstack *db, char **report)
{
    cs_enter(db);
    if (report)
        *report = NULL;
    if (!db)
        return CSTACK_EMISUSE;
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_bootstrap cannot run inside a transaction");
    pthread_mutex_lock(&db->wlock);
    /* foreign_keys cannot change inside a transaction, so switch it off
     * around the whole migration. */
    int rc = exec(db, "PRAGMA foreign_keys=OFF");
    if (!rc)
        rc = exec(db, "BEGIN IMMEDIATE");
    cs_buf rep = CS_BUF_INIT;
    if (!rc) {
        rc = bootstrap_locked(db, &rep);
        if (rc)
            sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
        else
            rc = exec(db, "COMMIT");
        if (rc)
            sqlite3_exec(db->writer.db, "ROLLBACK", NULL, NULL, NULL);
    }
    int frc = exec(db, "PRAGMA foreign_keys=ON");
    pthread_mutex_unlock(&db->wlock);
    if (!rc)
        rc = frc;
    if (!rc && report) {
        *report = cs_buf_take(&rep);
        if (!*report)
            rc = cs_err(CSTACK_ENOMEM, "out of memory");
    }
    cs_buf_free(&rep);
    return rc;
}
