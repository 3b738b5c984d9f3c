/*
 * demo_data.c -- the helpers the demo steps share to read and check rows,
 * and the step that creates the demo's accounts and notes (showing defaults
 * and the canonical forms cstack stores).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "demo.h"

#define DATA DEMO_DATA

/* The demo's notes.  Values are written the way a user might type them;
 * cstack stores their canonical forms (step 3 shows and checks that). */
typedef struct note_spec {
    int by_linus;
    const char *title;
    const char *body;
    const char *price;
    const char *tags;
    const char *created_at;
    int pinned;
} note_spec;

static const note_spec NOTES[] = {
    {0, "Buy the SQLite book", NULL, "10.25", "[ \"books\", \"sqlite\" ]", NULL, 0},
    {0, "Coffee beans", NULL, "9.5", "[\"groceries\"]", NULL, 0},
    {0, "Parking", NULL, "1.10", NULL, NULL, 0},
    {0, "Conference ticket", "Early bird until March", "120.00", "{\"city\": \"Lisbon\"}", NULL, 0},
    {1, "Review sqlite patch", "The WAL one", NULL, "[\"work\",  \"sqlite\"]",
     "2026-01-01T12:00:00+02:00", 1},
    {1, "Release notes", NULL, NULL, NULL, NULL, 0},
};
#define NNOTES (sizeof NOTES / sizeof NOTES[0])

const char *demo_row_text(const cstack_row *row, const char *field, char *buf, size_t cap)
{
    cstack_value v;
    buf[0] = '\0';
    if (row && cstack_row_get(row, field, &v) == CSTACK_OK && v.type == CSTACK_TEXT) {
        size_t n = v.u.s.n < cap ? v.u.s.n : cap - 1;
        memcpy(buf, v.u.s.p, n);
        buf[n] = '\0';
    }
    return buf;
}

const char *demo_note_id(const demo *d, const char *title)
{
    for (size_t i = 0; i < d->nnotes; i++)
        if (strcmp(d->notes[i].title, title) == 0)
            return d->notes[i].id;
    return NULL;
}

typedef struct sql_int {
    const char *sql;
    long long value;
    char err[256];
} sql_int;

static int sql_int_fn(sqlite3 *conn, void *ctx)
{
    sql_int *q = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, q->sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        q->value = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        snprintf(q->err, sizeof q->err, "%s", sqlite3_errmsg(conn));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : CSTACK_ESQLITE;
}

int demo_sql_int(demo *d, const char *sql, long long *out)
{
    sql_int q = {sql, 0, ""};
    int rc = cstack_with_sqlite(d->db, sql_int_fn, &q);
    if (rc != 0)
        return demo_expect(d, 0, "raw SQL `%s` to work: %s", sql, q.err);
    *out = q.value;
    return 0;
}

const char *demo_note_field(demo *d, const char *title, const char *field, char *buf, size_t cap)
{
    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, title))}};
    cstack_data where = DATA(key);
    cstack_row *row = NULL;
    buf[0] = '\0';
    if (cstack_find_unique(d->db, "Note", &where, NULL, 0, &row) == CSTACK_OK)
        demo_row_text(row, field, buf, cap);
    cstack_row_free(row);
    return buf;
}

int demo_expect_field(demo *d, const char *title, const char *field, const char *want)
{
    char got[256];
    demo_note_field(d, title, field, got, sizeof got);
    return demo_expect(d, strcmp(got, want) == 0, "%s.%s to read back as %s, got \"%s\"", title,
                       field, want, got);
}

int demo_expect_titles(demo *d, const cstack_rows *rows, ...)
{
    va_list ap;
    va_start(ap, rows);
    size_t i = 0, n = cstack_rows_count(rows);
    int rc = 0;
    for (const char *want; rc == 0 && (want = va_arg(ap, const char *)) != NULL; i++) {
        char got[128];
        demo_row_text(i < n ? cstack_rows_get(rows, i) : NULL, "title", got, sizeof got);
        rc = demo_expect(d, strcmp(got, want) == 0, "row %zu to be \"%s\", got \"%s\"", i + 1, want,
                         got);
    }
    va_end(ap);
    if (rc == 0)
        rc = demo_expect(d, i == n, "%zu rows, got %zu", i, n);
    return rc;
}

static int create_account(demo *d, const char *email, const char *name, char *id)
{
    cstack_field_value f[] = {{"email", cstack_v_text(email)}, {"name", cstack_v_text(name)}};
    cstack_data data = DATA(f);
    cstack_row *row = NULL;
    int rc = cstack_create(d->db, "Account", &data, &row);
    if (rc != CSTACK_OK)
        return demo_fail(d, "creating an Account", rc);
    demo_row_text(row, "id", id, DEMO_ID_LEN + 1);
    cstack_row_free(row);
    return demo_expect(d, strlen(id) == DEMO_ID_LEN, "a generated Uuid id, got \"%s\"", id);
}

static int create_note(demo *d, const note_spec *n)
{
    if (d->nnotes == DEMO_MAX_NOTES)
        return demo_expect(d, 0, "at most %d demo notes", DEMO_MAX_NOTES);
    cstack_field_value f[8];
    size_t k = 0;
    f[k++] = (cstack_field_value){"title", cstack_v_text(n->title)};
    f[k++] = (cstack_field_value){"ownerId", cstack_v_text(n->by_linus ? d->linus : d->ada)};
    if (n->body)
        f[k++] = (cstack_field_value){"body", cstack_v_text(n->body)};
    if (n->price)
        f[k++] = (cstack_field_value){"price", cstack_v_text(n->price)};
    if (n->tags)
        f[k++] = (cstack_field_value){"tags", cstack_v_text(n->tags)};
    if (n->created_at)
        f[k++] = (cstack_field_value){"createdAt", cstack_v_text(n->created_at)};
    if (n->pinned)
        f[k++] = (cstack_field_value){"pinned", cstack_v_bool(1)};
    cstack_data data = {f, k};
    cstack_row *row = NULL;
    int rc = cstack_create(d->db, "Note", &data, &row);
    if (rc != CSTACK_OK)
        return demo_fail(d, "creating a Note", rc);
    demo_note *dn = &d->notes[d->nnotes++];
    dn->title = n->title;
    demo_row_text(row, "id", dn->id, sizeof dn->id);
    cstack_row_free(row);
    return 0;
}

int demo_show(demo *d, const char *model, const cstack_query *q, const demo_col *cols, size_t ncols,
              cstack_rows **out)
{
    int rc = cstack_find_many(d->db, model, q, out);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_find_many", rc);
    demo_table(d, *out, cols, ncols);
    return 0;
}

static int show_all_notes(demo *d)
{
    static const demo_col cols[] = {
        {"title", DEMO_PLAIN, NULL},  {"ownerId", DEMO_OWNER, "owner"},
        {"status", DEMO_PLAIN, NULL}, {"price", DEMO_PLAIN, NULL},
        {"tags", DEMO_PLAIN, NULL},   {"createdAt", DEMO_PLAIN, NULL},
    };
    cstack_order by_title[] = {{"title", 0}};
    cstack_query q = {0};
    q.order_by = by_title;
    q.n_order = 1;
    cstack_rows *rows = NULL;
    int rc = demo_show(d, "Note", &q, cols, sizeof cols / sizeof cols[0], &rows);
    if (rc == 0)
        rc = demo_expect(d, cstack_rows_count(rows) == NNOTES, "%zu notes", NNOTES);
    cstack_rows_free(rows);
    return rc;
}

/* Checks and explains what cstack did to the values as written. */
static int explain_canonical(demo *d)
{
    if (demo_expect_field(d, "Parking", "price", "1.10") ||
        demo_expect_field(d, "Buy the SQLite book", "tags", "[\"books\",\"sqlite\"]") ||
        demo_expect_field(d, "Review sqlite patch", "createdAt", "2026-01-01T10:00:00.000000Z") ||
        demo_expect_field(d, "Coffee beans", "status", "OPEN"))
        return CLI_FAIL;
    cstack_filter *unpinned = cstack_filter_cmp("pinned", CSTACK_OP_EQ, 0, cstack_v_bool(0));
    int64_t n = 0;
    int rc = cstack_count(d->db, "Note", unpinned, &n);
    cstack_filter_free(unpinned);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_count", rc);
    if (demo_expect(d, n == NNOTES - 1, "%zu notes with pinned false, got %lld", NNOTES - 1,
                    (long long)n))
        return CLI_FAIL;
    demo_ok(d, "Decimal 1.10 reads back as 1.10: exact text, never a binary float");
    demo_ok(d, "Json [ \"books\", \"sqlite\" ] is stored compact: [\"books\",\"sqlite\"]");
    demo_ok(d, "DateTime 2026-01-01T12:00:00+02:00 is stored in UTC: 2026-01-01T10:00:00.000000Z");
    demo_ok(d, "defaults filled in: id uuid(), status OPEN, pinned false, createdAt now()");

    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, "Review sqlite patch"))}};
    cstack_data where = DATA(key);
    cstack_row *row = NULL;
    rc = cstack_find_unique(d->db, "Note", &where, NULL, 0, &row);
    if (rc != CSTACK_OK || !row)
        return demo_fail(d, "cstack_find_unique", rc);
    char *json = cstack_row_json(row);
    cstack_row_free(row);
    demo_say(d, "\nOne row as JSON (cstack_row_json, the mapping FFI hosts see):");
    demo_style(d, DEMO_DIM);
    demo_say(d, "%s", json ? json : "(out of memory)");
    demo_unstyle(d);
    cstack_free(json);
    return 0;
}

int demo_step_create(demo *d)
{
    demo_say(d, "cstack_create() validates each value against its field, fills in\n"
                "@default and @updatedAt, and returns the row as stored.");
    if (create_account(d, "ada@example.com", "Ada Lovelace", d->ada) != 0 ||
        create_account(d, "linus@example.com", "Linus Torvalds", d->linus) != 0)
        return CLI_FAIL;
    for (size_t i = 0; i < NNOTES; i++)
        if (create_note(d, &NOTES[i]) != 0)
            return CLI_FAIL;
    demo_ok(d, "2 accounts and %zu notes created; the notes, ordered by title:\n", NNOTES);
    if (show_all_notes(d) != 0)
        return CLI_FAIL;
    putchar('\n');
    return explain_canonical(d);
}
