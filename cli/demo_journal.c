/*
 * demo_journal.c -- the demo steps about what happens around a write: soft
 * delete, the @@audit journal, @@emit events and the outbox, and a
 * transaction that rolls back.
 *
 * The audit journal and the outbox are plain tables (_cstack_audit and
 * _cstack_outbox) so that they stay readable with the stock sqlite3 shell;
 * the journal has no reader in the public API, so the demo reads it through
 * the raw-SQLite escape hatch, as a user would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "demo.h"

/* What the demo expects in the journals after steps 3 to 6: six notes
 * created, one updated, one (soft) deleted. */
#define NOTE_WRITES 8

int demo_step_soft_delete(demo *d)
{
    demo_say(d, "Note has @@soft_delete(deletedAt): cstack_delete() stamps deletedAt\n"
                "instead of removing the row, and every read, count and relation filter\n"
                "skips the row from then on.  Deleting \"Parking\":");
    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, "Parking"))}};
    cstack_data where = DEMO_DATA(key);
    int rc = cstack_delete(d->db, "Note", &where, NULL);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_delete", rc);
    int64_t live = 0;
    rc = cstack_count(d->db, "Note", NULL, &live);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_count", rc);
    cstack_row *row = NULL;
    rc = cstack_find_unique(d->db, "Note", &where, NULL, 0, &row);
    cstack_row_free(row);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_find_unique", rc);
    if (demo_expect(d, live == 5 && row == NULL, "5 live notes and Parking gone") != 0)
        return CLI_FAIL;
    demo_ok(d, "cstack_count(\"Note\") = %lld, and find_unique() no longer finds it",
            (long long)live);
    long long all = 0, stamped = 0;
    if (demo_sql_int(d, "SELECT count(*) FROM \"Note\"", &all) != 0 ||
        demo_sql_int(d, "SELECT count(*) FROM \"Note\" WHERE \"deletedAt\" IS NOT NULL",
                     &stamped) != 0)
        return CLI_FAIL;
    if (demo_expect(d, all == 6 && stamped == 1, "6 rows in the table, 1 stamped") != 0)
        return CLI_FAIL;
    demo_ok(d,
            "yet the row is still in the table: raw SQL through cstack_with_sqlite()\n"
            "         counts %lld rows in \"Note\", %lld with deletedAt set",
            all, stamped);
    return 0;
}

/* Rows collected as text cells for demo_grid(), from raw SQL or the outbox. */
typedef struct grid {
    const char *headers[8];
    size_t ncols, nrows, cap;
    char **cells;
    const char *sql; /* for grid_sql_fn: the query, one column per header */
} grid;

static void grid_free(grid *g)
{
    for (size_t i = 0; i < g->nrows * g->ncols; i++)
        free(g->cells[i]);
    free(g->cells);
    g->cells = NULL;
}

static int grid_add(grid *g, const char *const *row)
{
    if (g->nrows == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        char **cells = realloc(g->cells, cap * g->ncols * sizeof *cells);
        if (!cells)
            return -1;
        g->cells = cells;
        g->cap = cap;
    }
    for (size_t c = 0; c < g->ncols; c++) {
        char **cell = &g->cells[g->nrows * g->ncols + c];
        *cell = row[c] ? strdup(row[c]) : NULL;
        if (row[c] && !*cell) {
            while (c-- > 0)
                free(g->cells[g->nrows * g->ncols + c]);
            return -1;
        }
    }
    g->nrows++;
    return 0;
}

static int grid_sql_fn(sqlite3 *conn, void *ctx)
{
    grid *g = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, g->sql, -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row[8];
        for (size_t c = 0; c < g->ncols; c++)
            row[c] = (const char *)sqlite3_column_text(st, (int)c);
        rc = grid_add(g, row) == 0 ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (rc != SQLITE_DONE)
        fprintf(stderr, "cstack demo: %s\n", sqlite3_errmsg(conn));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : CSTACK_ESQLITE;
}

int demo_step_audit(demo *d)
{
    demo_say(d, "Note has @@audit: every create, update and delete appends an entry\n"
                "(model, key, operation, row before and after, time) to the journal\n"
                "table _cstack_audit, in the same transaction as the change:");
    grid g = {.headers = {"id", "at", "op", "model", "title"},
              .ncols = 5,
              .sql = "SELECT id, at, op, model, json_extract(coalesce(\"after\", \"before\"),"
                     " '$.title') FROM _cstack_audit ORDER BY id"};
    int rc = cstack_with_sqlite(d->db, grid_sql_fn, &g);
    if (rc == 0)
        demo_grid(d, g.headers, g.ncols, (const char *const *)g.cells, g.nrows);
    size_t n = g.nrows;
    grid_free(&g);
    if (rc != 0)
        return demo_expect(d, 0, "the audit journal to be readable");
    if (demo_expect(d, n == NOTE_WRITES, "%d journal entries, found %zu", NOTE_WRITES, n) != 0)
        return CLI_FAIL;
    demo_ok(d,
            "%zu entries: 6 creates, the update and the soft delete (Account has no\n"
            "         @@audit, so its writes are not journalled)",
            n);
    return 0;
}

static int outbox_fn(const cstack_outbox_entry *e, void *ctx)
{
    grid *g = ctx;
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)e->id);
    const char *row[] = {id, e->at, e->event};
    return grid_add(g, row);
}

int demo_step_events(demo *d)
{
    demo_say(d, "Note has @@emit(created, updated, deleted): subscribers get an event after\n"
                "each transaction commits.  The subscription made in step 2 received:");
    for (size_t i = 0; i < d->nevents; i++)
        demo_say(d, "  %s", d->events[i]);
    if (demo_expect(d, d->nevents == NOTE_WRITES && d->events_dropped == 0, "%d events, got %zu",
                    NOTE_WRITES, d->nevents) != 0)
        return CLI_FAIL;
    demo_say(d, "\nThe same events sit in a durable outbox written in the write's own\n"
                "transaction, for an app to drain (e.g. to send them to a server):");
    grid g = {.headers = {"id", "at", "event"}, .ncols = 3};
    size_t drained = 0;
    int rc = cstack_outbox_drain(d->db, 100, outbox_fn, &g, &drained);
    if (rc == CSTACK_OK)
        demo_grid(d, g.headers, g.ncols, (const char *const *)g.cells, g.nrows);
    grid_free(&g);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_outbox_drain", rc);
    long long left = -1;
    if (demo_sql_int(d, "SELECT count(*) FROM _cstack_outbox", &left) != 0)
        return CLI_FAIL;
    if (demo_expect(d, drained == NOTE_WRITES && left == 0, "%d drained and none left",
                    NOTE_WRITES) != 0)
        return CLI_FAIL;
    demo_ok(d, "drained %zu entries; the outbox is now empty", drained);
    return 0;
}

/* The writes inside the rolled-back transaction; returns the error of the
 * second create, which must be a unique violation. */
static int doomed_writes(demo *d)
{
    cstack_field_value draft[] = {{"title", cstack_v_text("Draft")},
                                  {"ownerId", cstack_v_text(d->ada)}};
    cstack_field_value dup[] = {{"title", cstack_v_text("Coffee beans")},
                                {"ownerId", cstack_v_text(d->ada)}};
    cstack_data data = DEMO_DATA(draft);
    int rc = cstack_create(d->db, "Note", &data, NULL);
    if (rc != CSTACK_OK)
        return demo_fail(d, "creating \"Draft\"", rc);
    demo_ok(d, "created \"Draft\" inside the transaction");
    data = DEMO_DATA(dup);
    rc = cstack_create(d->db, "Note", &data, NULL);
    if (demo_expect(d, rc == CSTACK_EUNIQUE, "CSTACK_EUNIQUE, got %s", cstack_errname(rc)) != 0)
        return CLI_FAIL;
    demo_ok(d, "a second \"Coffee beans\" for Ada is refused (%s):\n         %s",
            cstack_errname(rc), cstack_errmsg(d->db));
    return 0;
}

int demo_step_rollback(demo *d)
{
    demo_say(d, "Writes between cstack_begin() and cstack_commit() apply together or not\n"
                "at all.  This transaction creates a note, then breaks @@unique([ownerId,\n"
                "title]), and is rolled back:");
    size_t events = d->nevents;
    long long rows_before = 0, rows_after = 0, audit = 0, outbox = 0;
    if (demo_sql_int(d, "SELECT count(*) FROM \"Note\"", &rows_before) != 0)
        return CLI_FAIL;
    int rc = cstack_begin(d->db);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_begin", rc);
    if (doomed_writes(d) != 0) {
        cstack_rollback(d->db);
        return CLI_FAIL;
    }
    rc = cstack_rollback(d->db);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_rollback", rc);
    if (demo_sql_int(d, "SELECT count(*) FROM \"Note\"", &rows_after) != 0 ||
        demo_sql_int(d, "SELECT count(*) FROM _cstack_audit", &audit) != 0 ||
        demo_sql_int(d, "SELECT count(*) FROM _cstack_outbox", &outbox) != 0)
        return CLI_FAIL;
    int ok =
        rows_after == rows_before && audit == NOTE_WRITES && outbox == 0 && d->nevents == events;
    if (demo_expect(d, ok, "the rollback to leave rows, journal, outbox and events alone") != 0)
        return CLI_FAIL;
    demo_ok(d,
            "rolled back: still %lld rows in \"Note\", no \"Draft\", no journal entry,\n"
            "         no outbox entry and no event for it",
            rows_after);
    return 0;
}
