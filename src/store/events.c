/* events.c -- the @@audit journal, @@emit events and the durable outbox.
 *
 * Journal rows and outbox rows are written by the same statement scope as
 * the change they describe, so they commit or roll back with it.  In-process
 * events are queued on the runtime while the transaction is open and handed
 * to subscribers only after the outermost COMMIT succeeds; a savepoint that
 * rolls back drops the events queued since it began. */
#include <stdlib.h>
#include <string.h>

#include "store/runtime_int.h"
#include "value/value.h"

static const char *const op_names[] = {"create", "update", "delete"};
static const char *const event_names[] = {"created", "updated", "deleted"};
static const unsigned emit_bits[] = {CS_EMIT_CREATED, CS_EMIT_UPDATED, CS_EMIT_DELETED};

/* The primary key of a full row as a JSON object. */
static int pk_json(cs_buf *b, const cs_model *m, const cstack_row *row)
{
    int rc = cs_buf_putc(b, '{');
    for (size_t p = 0; p < m->npk && !rc; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        for (size_t i = 0; i < row->shape->n && !rc; i++) {
            if (row->shape->fields[i] != f)
                continue;
            if (p)
                rc = cs_buf_putc(b, ',');
            if (!rc)
                rc = cs_buf_json_str(b, f->name, strlen(f->name));
            if (!rc)
                rc = cs_buf_putc(b, ':');
            if (!rc)
                rc = cs_value_json(b, f->type, &row->vals[i]);
        }
    }
    return rc ? rc : cs_buf_putc(b, '}');
}

/* A row as JSON for the audit journal: the values of @pii/@sensitive
 * fields are replaced by "[redacted]" (the journal outlives the data and is
 * read by people; the row itself is still in its table). */
static int redacted_row_json(cs_buf *b, const cstack_row *row)
{
    int rc = cs_buf_putc(b, '{');
    for (size_t i = 0; !rc && i < row->shape->n; i++) {
        const cs_field *f = row->shape->fields[i];
        const char *name = row->shape->names[i];
        rc = i ? cs_buf_putc(b, ',') : 0;
        if (!rc)
            rc = cs_buf_json_str(b, name, strlen(name));
        if (!rc)
            rc = cs_buf_putc(b, ':');
        if (!rc && f && f->sensitive && row->vals[i].type != CSTACK_NULL)
            rc = cs_buf_puts(b, "\"[redacted]\"");
        else if (!rc)
            rc = cs_value_json(b, row->shape->types[i], &row->vals[i]);
    }
    return rc ? rc : cs_buf_putc(b, '}');
}

static int bind_json_row(sqlite3_stmt *st, int idx, const cstack_row *row, cs_buf *b,
                         bool redact)
{
    if (!row)
        return sqlite3_bind_null(st, idx);
    cs_buf_reset(b);
    if (redact ? redacted_row_json(b, row) : cs_row_json(b, row))
        return SQLITE_NOMEM;
    return sqlite3_bind_text64(st, idx, b->data, b->len, SQLITE_TRANSIENT, SQLITE_UTF8);
}

/* Runs a journal INSERT whose parameters are: 1 op or event name, 2 model,
 * 3 primary key JSON, 4 before row JSON, 5 after row JSON, 6 timestamp. */
static int run_insert(cstack *db, const cs_model *m, enum cs_const_stmt id, const char *sql,
                      const char *what, const cs_buf *pk, const cstack_row *before,
                      const cstack_row *after, const char *now)
{
    sqlite3_stmt *st = cs_conn_prepare(&db->writer, CS_KEY_CONST(id), sql, strlen(sql));
    if (!st)
        return cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    cs_buf tmp = CS_BUF_INIT;
    sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, pk->data, (int)pk->len, SQLITE_STATIC);
    bool redact = id == CS_STMT_AUDIT_INSERT;
    int rc = bind_json_row(st, 4, before, &tmp, redact);
    if (rc == SQLITE_OK)
        rc = bind_json_row(st, 5, after, &tmp, redact);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    cs_buf_free(&tmp);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : cs_err_sqlite(m, db->writer.db, rc);
}

static int queue_event(cstack *db, int mi, const char *name, const cstack_row *row)
{
    if (db->npending == db->cappending) {
        size_t cap = db->cappending ? db->cappending * 2 : 16;
        cs_pending *p = realloc(db->pending, cap * sizeof *p);
        if (!p)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        db->pending = p;
        db->cappending = cap;
    }
    cs_pending *e = &db->pending[db->npending];
    e->name = cs_strdup(name);
    e->row = row ? cs_row_copy(row) : NULL;
    e->model = mi;
    if (!e->name || (row && !e->row)) {
        free(e->name);
        cstack_row_free(e->row);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    db->npending++;
    return 0;
}

int cs_record_write(cstack *db, int mi, int op, const cstack_row *before,
                    const cstack_row *after)
{
    const cs_model *m = &db->schema->models[mi];
    const cstack_row *key_row = after ? after : before;
    if (!key_row)
        return 0;
    char now[CS_DATETIME_LEN + 1];
    cs_now(now);
    cs_buf pk = CS_BUF_INIT, name = CS_BUF_INIT;
    int rc = pk_json(&pk, m, key_row);
    if (!rc)
        rc = cs_buf_printf(&name, "%s.%s", m->name, event_names[op]);
    if (rc) {
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    } else if (m->audit) {
        rc = run_insert(db, m, CS_STMT_AUDIT_INSERT,
                        "INSERT INTO _cstack_audit(op, model, pk, before, after, at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        op_names[op], &pk, before, after, now);
    }
    if (!rc && (m->emit & emit_bits[op])) {
        /* The outbox payload is the row after the write (before, for a hard
         * delete). */
        rc = run_insert(db, m, CS_STMT_OUTBOX_INSERT,
                        "INSERT INTO _cstack_outbox(event, model, pk, payload, at) "
                        "VALUES (?1, ?2, ?3, coalesce(?5, ?4), ?6)",
                        name.data, &pk, before, after, now);
        if (!rc)
            rc = queue_event(db, mi, name.data, key_row);
    }
    cs_buf_free(&pk);
    cs_buf_free(&name);
    return rc;
}

void cs_events_mark(cstack *db, int depth)
{
    db->marks[depth] = db->npending;
}

static void drop_from(cstack *db, size_t from)
{
    while (db->npending > from) {
        cs_pending *e = &db->pending[--db->npending];
        free(e->name);
        cstack_row_free(e->row);
    }
}

void cs_events_rollback(cstack *db, int depth)
{
    drop_from(db, db->marks[depth]);
}

void cs_events_clear(cstack *db)
{
    drop_from(db, 0);
}

static bool pattern_matches(const char *pattern, const char *name, const char *model)
{
    if (!pattern || strcmp(pattern, "*") == 0)
        return true;
    return strcmp(pattern, name) == 0 || strcmp(pattern, model) == 0;
}

/* Runs after the outermost commit, on the committing thread, without the
 * write lock.  Subscribers are copied first so a callback may (un)subscribe. */
void cs_events_deliver(cstack *db)
{
    size_t n = db->npending;
    if (n == 0)
        return;
    cs_pending *events = db->pending;
    db->pending = NULL;
    db->npending = db->cappending = 0;
    pthread_mutex_lock(&db->slock);
    size_t ns = db->nsubs;
    cs_sub *subs = ns ? malloc(ns * sizeof *subs) : NULL;
    if (subs)
        memcpy(subs, db->subs, ns * sizeof *subs);
    else
        ns = 0;
    pthread_mutex_unlock(&db->slock);
    for (size_t i = 0; i < n; i++) {
        const char *model = db->schema->models[events[i].model].name;
        cstack_event ev = {events[i].name, model, events[i].row};
        for (size_t s = 0; s < ns; s++)
            if (pattern_matches(subs[s].pattern, ev.name, model))
                subs[s].fn(&ev, subs[s].ctx);
        free(events[i].name);
        cstack_row_free(events[i].row);
    }
    free(subs);
    free(events);
}

int cstack_subscribe(cstack *db, const char *pattern, cstack_event_fn fn, void *ctx,
                     uint64_t *id)
{
    cs_enter(db);
    if (!db || !fn)
        return CSTACK_EMISUSE;
    char *pat = NULL;
    if (pattern && !(pat = cs_strdup(pattern)))
        return cs_err(CSTACK_ENOMEM, "out of memory");
    pthread_mutex_lock(&db->slock);
    cs_sub *subs = realloc(db->subs, (db->nsubs + 1) * sizeof *subs);
    if (!subs) {
        pthread_mutex_unlock(&db->slock);
        free(pat);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    db->subs = subs;
    cs_sub *s = &subs[db->nsubs++];
    s->id = db->next_sub++;
    s->pattern = pat;
    s->fn = fn;
    s->ctx = ctx;
    if (id)
        *id = s->id;
    pthread_mutex_unlock(&db->slock);
    return 0;
}

int cstack_unsubscribe(cstack *db, uint64_t id)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    int rc = cs_err(CSTACK_ENOTFOUND, "no subscription with id %llu", (unsigned long long)id);
    pthread_mutex_lock(&db->slock);
    for (size_t i = 0; i < db->nsubs; i++) {
        if (db->subs[i].id != id)
            continue;
        free(db->subs[i].pattern);
        memmove(&db->subs[i], &db->subs[i + 1], (db->nsubs - i - 1) * sizeof *db->subs);
        db->nsubs--;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&db->slock);
    return rc;
}

void cs_subs_free(cstack *db)
{
    for (size_t i = 0; i < db->nsubs; i++)
        free(db->subs[i].pattern);
    free(db->subs);
    db->subs = NULL;
    db->nsubs = 0;
}

static int drain_one(cstack *db, sqlite3_stmt *st, int (*fn)(const cstack_outbox_entry *, void *),
                     void *ctx, bool *stop)
{
    cstack_outbox_entry e;
    e.id = sqlite3_column_int64(st, 0);
    e.event = (const char *)sqlite3_column_text(st, 1);
    e.model = (const char *)sqlite3_column_text(st, 2);
    e.key = (const char *)sqlite3_column_text(st, 3);
    e.payload = (const char *)sqlite3_column_text(st, 4);
    e.at = (const char *)sqlite3_column_text(st, 5);
    if (fn(&e, ctx) != 0) {
        *stop = true;
        return 0;
    }
    sqlite3_stmt *del = cs_conn_prepare(&db->writer, 0, "DELETE FROM _cstack_outbox WHERE id = ?1",
                                        strlen("DELETE FROM _cstack_outbox WHERE id = ?1"));
    if (!del)
        return cs_err_sqlite(NULL, db->writer.db, sqlite3_errcode(db->writer.db));
    sqlite3_bind_int64(del, 1, e.id);
    int rc = sqlite3_step(del);
    sqlite3_reset(del);
    return rc == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, db->writer.db, rc);
}

int cstack_outbox_drain(cstack *db, size_t max, int (*fn)(const cstack_outbox_entry *e, void *ctx),
                        void *ctx, size_t *drained)
{
    cs_enter(db);
    if (drained)
        *drained = 0;
    if (!db || !fn)
        return CSTACK_EMISUSE;
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db->writer.db,
                            "SELECT id, event, model, pk, payload, at FROM _cstack_outbox "
                            "ORDER BY id LIMIT ?1",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = cs_err_sqlite(NULL, db->writer.db, rc);
    } else {
        sqlite3_bind_int64(st, 1, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
        bool stop = false;
        size_t n = 0;
        while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            if ((rc = drain_one(db, st, fn, ctx, &stop)))
                break;
            n += !stop;
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0
             : rc > 0                              ? cs_err_sqlite(NULL, db->writer.db, rc)
                                                   : rc;
        if (!rc && drained)
            *drained = n;
    }
    sqlite3_finalize(st);
    return cs_write_end(db, rc);
}
