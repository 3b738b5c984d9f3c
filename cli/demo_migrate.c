/*
 * demo_migrate.c -- the demo steps about schema changes: re-opening the
 * database with notes_v2.cstack (an additive change, applied in place) and
 * with a v3 that drops a field (refused, nothing changed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#define V3_HEADER                                                                                  \
    "// notes_v3.cstack -- notes_v2.cstack without the field Note.body.  Dropping a\n"             \
    "// field would lose data, so cstack refuses to migrate a database to this.\n"

/* The dropped field's line in DEMO_SCHEMA_V2. */
#define V3_DROPPED "\n  body      String?\n"

/* Builds notes_v3.cstack from notes_v2.cstack (its own header comment, the
 * body field removed), so the two can never drift apart in any other way.
 * Returns a string to free(), or NULL. */
static char *schema_v3(void)
{
    const char *src = DEMO_SCHEMA_V2;
    while (strncmp(src, "//", 2) == 0 && strchr(src, '\n'))
        src = strchr(src, '\n') + 1;
    const char *cut = strstr(src, V3_DROPPED);
    if (!cut)
        return NULL;
    size_t head = strlen(V3_HEADER), before = (size_t)(cut - src) + 1;
    const char *rest = cut + strlen(V3_DROPPED);
    char *out = malloc(head + before + strlen(rest) + 1);
    if (!out)
        return NULL;
    memcpy(out, V3_HEADER, head);
    memcpy(out + head, src, before);
    strcpy(out + head + before, rest);
    return out;
}

static int bootstrap_report(demo *d)
{
    char *report = NULL;
    int rc = cstack_bootstrap(d->db, &report);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_bootstrap", rc);
    int changed = report && report[strspn(report, " \t\r\n")] != '\0';
    demo_style(d, DEMO_DIM);
    demo_say(d, "%s", changed ? report : "(nothing)");
    demo_unstyle(d);
    cstack_free(report);
    return demo_expect(d, changed, "the migration to report what it changed");
}

static int show_due_dates(demo *d)
{
    static const demo_col cols[] = {
        {"title", DEMO_PLAIN, NULL}, {"status", DEMO_PLAIN, NULL}, {"dueAt", DEMO_PLAIN, NULL}};
    static const cstack_order by_title[] = {{"title", 0}};
    cstack_query q = {0};
    q.order_by = by_title;
    q.n_order = 1;
    cstack_rows *rows = NULL;
    int rc = demo_show(d, "Note", &q, cols, 3, &rows);
    if (rc == 0)
        rc = demo_expect_titles(d, rows, "Buy the SQLite book", "Coffee beans", "Conference ticket",
                                "Release notes", "Review sqlite patch", (char *)NULL);
    cstack_rows_free(rows);
    return rc;
}

int demo_step_migrate(demo *d)
{
    demo_say(d, "notes_v2.cstack adds an optional field (Note.dueAt) and an index.  Both\n"
                "are additive, so re-opening the database with it migrates in place, in\n"
                "one transaction:");
    long long before = 0, after = 0;
    if (demo_sql_int(d, "SELECT count(*) FROM \"Note\"", &before) != 0 ||
        demo_reopen(d, "notes_v2.cstack", DEMO_SCHEMA_V2) != 0 || bootstrap_report(d) != 0 ||
        demo_sql_int(d, "SELECT count(*) FROM \"Note\"", &after) != 0)
        return CLI_FAIL;
    if (demo_expect(d, before == after, "%lld rows after migrating, got %lld", before, after))
        return CLI_FAIL;
    demo_ok(d, "all %lld rows kept (soft-deleted one included); dueAt is null until set", after);

    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, "Review sqlite patch"))}};
    cstack_field_value set[] = {{"dueAt", cstack_v_text("2026-03-01T09:00:00-05:00")}};
    cstack_data where = DEMO_DATA(key), data = DEMO_DATA(set);
    int rc = cstack_update(d->db, "Note", &where, &data, NULL);
    if (rc != CSTACK_OK)
        return demo_fail(d, "setting dueAt", rc);
    demo_say(d, "\nThe new field works at once (dueAt 2026-03-01T09:00:00-05:00 set on one):");
    if (show_due_dates(d) != 0)
        return CLI_FAIL;
    return demo_expect_field(d, "Review sqlite patch", "dueAt", "2026-03-01T14:00:00.000000Z");
}

/* Re-opens with v2 and checks the refused migration left everything as it
 * was: nothing to migrate, and the field v3 wanted to drop still has data. */
static int check_untouched(demo *d)
{
    if (demo_reopen(d, "notes_v2.cstack", DEMO_SCHEMA_V2) != 0)
        return CLI_FAIL;
    char *report = NULL;
    int rc = cstack_bootstrap(d->db, &report);
    int unchanged = report == NULL || report[strspn(report, " \t\r\n")] == '\0';
    cstack_free(report);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_bootstrap (v2 again)", rc);
    if (demo_expect(d, unchanged, "the database to still match notes_v2.cstack") != 0 ||
        demo_expect_field(d, "Conference ticket", "body", "Early bird until March") != 0)
        return CLI_FAIL;
    demo_ok(d, "nothing was changed: re-opened with notes_v2.cstack, every body is intact");
    return 0;
}

int demo_step_refuse(demo *d)
{
    demo_say(d, "notes_v3.cstack drops the field Note.body.  That would lose data, so\n"
                "cstack_bootstrap() refuses with CSTACK_EMIGRATION and a message that says\n"
                "exactly what changed:");
    char *v3 = schema_v3();
    if (!v3)
        return demo_expect(d, 0, "notes_v2.cstack to have a body field to drop");
    int rc = demo_reopen(d, "notes_v3.cstack", v3);
    free(v3);
    if (rc != 0)
        return CLI_FAIL;
    rc = cstack_bootstrap(d->db, NULL);
    if (demo_expect(d, rc == CSTACK_EMIGRATION, "CSTACK_EMIGRATION, got %s", cstack_errname(rc)))
        return CLI_FAIL;
    const char *msg = cstack_errmsg(d->db);
    demo_style(d, DEMO_YELLOW);
    demo_say(d, "%s", msg);
    demo_unstyle(d);
    if (demo_expect(d, strstr(msg, "body") != NULL, "the message to name the field body") != 0)
        return CLI_FAIL;
    return check_untouched(d);
}
