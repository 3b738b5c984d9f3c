/*
 * demo_query.c -- the demo steps that read with filters (Decimal ordering,
 * case-insensitive search, relation filters, aggregates) and that update
 * part of a row.
 */
#include <stdio.h>
#include <string.h>

#include "demo.h"

static const demo_col TITLE_PRICE[] = {{"title", DEMO_PLAIN, NULL}, {"price", DEMO_PLAIN, NULL}};
static const demo_col TITLE_OWNER[] = {{"title", DEMO_PLAIN, NULL},
                                       {"ownerId", DEMO_OWNER, "owner"}};

static void subheading(const demo *d, const char *text)
{
    fputs("\n    ", stdout);
    demo_style(d, DEMO_BOLD);
    fputs(text, stdout);
    demo_unstyle(d);
    putchar('\n');
}

/* Runs a query whose filter the caller built, prints it, checks the titles
 * (up to 3, the unused entries NULL) and frees everything. */
static int query_titles(demo *d, const char *model, cstack_filter *where, const cstack_order *order,
                        size_t norder, const demo_col *cols, size_t ncols,
                        const char *const want[4])
{
    if (!where)
        return demo_fail(d, "building a filter", CSTACK_ENOMEM);
    cstack_query q = {0};
    q.where = where;
    q.order_by = order;
    q.n_order = norder;
    cstack_rows *rows = NULL;
    int rc = demo_show(d, model, &q, cols, ncols, &rows);
    if (rc == 0)
        rc = demo_expect_titles(d, rows, want[0], want[1], want[2], want[3], (char *)NULL);
    cstack_rows_free(rows);
    cstack_filter_free(where);
    return rc;
}

static int query_decimal_order(demo *d)
{
    subheading(d, "Decimals compare and sort as numbers");
    demo_say(d, "Notes with price >= 9.5, ordered by price.  Sorted as text, \"10.25\" and\n"
                "\"120.00\" would come before \"9.5\"; cstack orders Decimals numerically:");
    static const cstack_order by_price[] = {{"price", 0}};
    static const char *const want[4] = {"Coffee beans", "Buy the SQLite book", "Conference ticket",
                                        NULL};
    return query_titles(d, "Note",
                        cstack_filter_cmp("price", CSTACK_OP_GTE, 0, cstack_v_text("9.5")),
                        by_price, 1, TITLE_PRICE, 2, want);
}

static int query_contains(demo *d)
{
    subheading(d, "Case-insensitive search");
    demo_say(d, "Notes whose title contains \"SQLITE\", ignoring case:");
    static const cstack_order by_title[] = {{"title", 0}};
    static const char *const want[4] = {"Buy the SQLite book", "Review sqlite patch", NULL};
    return query_titles(
        d, "Note",
        cstack_filter_cmp("title", CSTACK_OP_CONTAINS, CSTACK_CI, cstack_v_text("SQLITE")),
        by_title, 1, TITLE_OWNER, 2, want);
}

static int query_relations(demo *d)
{
    subheading(d, "Filters through relations");
    demo_say(d, "Notes whose owner's name starts with \"Linus\" (to-one `is`):");
    static const cstack_order by_title[] = {{"title", 0}};
    static const char *const want[4] = {"Release notes", "Review sqlite patch", NULL};
    cstack_filter *linus =
        cstack_filter_cmp("name", CSTACK_OP_STARTS_WITH, 0, cstack_v_text("Linus"));
    int rc = query_titles(d, "Note", cstack_filter_rel("owner", CSTACK_REL_IS, linus), by_title, 1,
                          TITLE_OWNER, 2, want);
    if (rc != 0)
        return rc;
    demo_say(d, "\nAccounts with at least one pinned note (to-many `some`):");
    cstack_filter *pinned = cstack_filter_cmp("pinned", CSTACK_OP_EQ, 0, cstack_v_bool(1));
    cstack_filter *where = cstack_filter_rel("notes", CSTACK_REL_SOME, pinned);
    if (!where)
        return demo_fail(d, "building a filter", CSTACK_ENOMEM);
    static const demo_col cols[] = {{"name", DEMO_PLAIN, NULL}, {"email", DEMO_PLAIN, NULL}};
    cstack_query q = {0};
    q.where = where;
    cstack_rows *rows = NULL;
    rc = demo_show(d, "Account", &q, cols, 2, &rows);
    char name[64] = "";
    if (rc == 0 && cstack_rows_count(rows) == 1)
        demo_row_text(cstack_rows_get(rows, 0), "name", name, sizeof name);
    if (rc == 0)
        rc = demo_expect(d, strcmp(name, "Linus Torvalds") == 0, "only Linus Torvalds");
    cstack_rows_free(rows);
    cstack_filter_free(where);
    return rc;
}

/* Prints every column of one row as a one-line table. */
static void row_grid(const demo *d, const cstack_row *row)
{
    const char *headers[16], *cells[16];
    char bufs[16][64];
    size_t n = cstack_row_size(row);
    if (n > 16)
        n = 16;
    for (size_t i = 0; i < n; i++) {
        headers[i] = cstack_row_name(row, i);
        cells[i] = demo_value_text(d, cstack_row_value(row, i), DEMO_PLAIN, bufs[i], 64);
    }
    demo_grid(d, headers, n, cells, 1);
}

static int query_aggregate(demo *d)
{
    subheading(d, "Aggregates");
    demo_say(d, "Count, sum, average and maximum price of Ada's notes; Decimal sums are\n"
                "exact (no 140.85000000000002):");
    static const char *const price[] = {"price"};
    cstack_aggregate_spec agg = {0};
    agg.where = cstack_filter_cmp("ownerId", CSTACK_OP_EQ, 0, cstack_v_text(d->ada));
    agg.count = 1;
    agg.sum = agg.avg = agg.max = price;
    agg.n_sum = agg.n_avg = agg.n_max = 1;
    cstack_row *row = NULL;
    int rc = cstack_aggregate(d->db, "Note", &agg, &row);
    cstack_filter_free((cstack_filter *)agg.where);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_aggregate", rc);
    row_grid(d, row);
    cstack_value count, sum;
    char buf[64] = "";
    int ok = cstack_row_get(row, "_count", &count) == CSTACK_OK && count.type == CSTACK_INT &&
             count.u.i == 4 && cstack_row_get(row, "_sum.price", &sum) == CSTACK_OK &&
             strcmp(demo_value_text(d, sum, DEMO_PLAIN, buf, sizeof buf), "140.85") == 0;
    cstack_row_free(row);
    return demo_expect(d, ok, "_count 4 and _sum.price 140.85 (got sum \"%s\")", buf);
}

int demo_step_query(demo *d)
{
    demo_say(d, "cstack_find_many() takes a filter tree, an ordering and paging.  Values\n"
                "are always bound, never spliced into SQL.");
    if (query_decimal_order(d) != 0 || query_contains(d) != 0 || query_relations(d) != 0 ||
        query_aggregate(d) != 0)
        return CLI_FAIL;
    return 0;
}

/* Fills one row of the before/after table of the update step. */
static void update_cells(const demo *d, const cstack_row *row, const char *label,
                         const char **cells, char (*bufs)[64])
{
    static const char *const fields[] = {"title", "status", "price", "createdAt", "updatedAt"};
    cells[0] = label;
    for (size_t i = 0; i < 5; i++) {
        cstack_value v = cstack_v_null();
        cstack_row_get(row, fields[i], &v);
        cells[i + 1] = demo_value_text(d, v, DEMO_PLAIN, bufs[i], 64);
    }
}

/* strcmp that treats a NULL (a null value) as different from everything. */
static int cmp_cells(const char *a, const char *b)
{
    if (!a || !b)
        return a == b ? 0 : (a ? 1 : -1);
    return strcmp(a, b);
}

static int check_update(demo *d, const cstack_row *before, const cstack_row *after)
{
    static const char *const headers[] = {"", "title", "status", "price", "createdAt", "updatedAt"};
    const char *cells[12];
    char bufs[10][64];
    update_cells(d, before, "before", cells, bufs);
    update_cells(d, after, "after", cells + 6, bufs + 5);
    demo_grid(d, headers, 6, cells, 2);
    int ok = cells[1] && cmp_cells(cells[1], cells[7]) == 0 && cmp_cells(cells[8], "DONE") == 0 &&
             cmp_cells(cells[9], "8.75") == 0 && cells[4] && cmp_cells(cells[4], cells[10]) == 0 &&
             cells[5] && cmp_cells(cells[11], cells[5]) > 0;
    if (demo_expect(d, ok, "only status, price and updatedAt to change, updatedAt forward") != 0)
        return CLI_FAIL;
    demo_ok(d, "status and price changed, title and createdAt did not, updatedAt moved on");
    return 0;
}

int demo_step_update(demo *d)
{
    demo_say(d, "cstack_update() changes only the fields it is given; cstack stamps\n"
                "@updatedAt.  Marking \"Coffee beans\" DONE with a new price:");
    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, "Coffee beans"))}};
    cstack_field_value set[] = {{"status", cstack_v_text("DONE")},
                                {"price", cstack_v_text("8.75")}};
    cstack_data where = DEMO_DATA(key), data = DEMO_DATA(set);
    cstack_row *before = NULL, *after = NULL;
    int rc = cstack_find_unique(d->db, "Note", &where, NULL, 0, &before);
    if (rc != CSTACK_OK || !before)
        return demo_fail(d, "cstack_find_unique", rc);
    rc = cstack_update(d->db, "Note", &where, &data, &after);
    if (rc != CSTACK_OK) {
        cstack_row_free(before);
        return demo_fail(d, "cstack_update", rc);
    }
    rc = check_update(d, before, after);
    cstack_row_free(before);
    cstack_row_free(after);
    if (rc != 0)
        return rc;

    demo_say(d, "\nInvalid values are refused with a message naming model, field and value,\n"
                "and nothing is written.  Setting the price to \"1e5\":");
    cstack_field_value bad[] = {{"price", cstack_v_text("1e5")}};
    data = DEMO_DATA(bad);
    rc = cstack_update(d->db, "Note", &where, &data, NULL);
    if (demo_expect(d, rc == CSTACK_EVALIDATION, "CSTACK_EVALIDATION, got %s",
                    cstack_errname(rc)) != 0)
        return CLI_FAIL;
    demo_ok(d, "refused (%s): %s", cstack_errname(rc), cstack_errmsg(d->db));
    return demo_expect_field(d, "Coffee beans", "price", "8.75");
}
