/*
 * offline_first.c -- a file database that an app would keep on the device:
 * two related models (Wallet, Entry), money summed exactly as Decimals,
 * filters through a relation, partial updates, and a close and re-open that
 * shows everything persisted.  The typed API comes from offline_first.cstack
 * through `cstack gen` (see README.md).
 *
 * The database lives in a fresh temporary directory, removed at the end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offline_first.h"

static int fail(cstack *db, const char *what, int rc)
{
    fprintf(stderr, "offline_first: %s failed: %s: %s\n", what, cstack_errname(rc),
            db ? cstack_errmsg(db) : cstack_errstr(rc));
    return 1;
}

/* Opens (creating) the database file and brings it to the schema. */
static int open_db(const char *path, cstack **out)
{
    cstack_schema *schema = NULL;
    char *report = NULL;
    int rc = offline_first_schema_parse(&schema);
    if (rc)
        return fail(NULL, "offline_first_schema_parse", rc);
    rc = cstack_open(schema, path, NULL, out);
    cstack_schema_free(schema);
    if (rc == 0)
        rc = cstack_bootstrap(*out, &report);
    if (rc) {
        rc = fail(*out, "open", rc);
        cstack_close(*out);
        *out = NULL;
        return rc;
    }
    printf("open %s: %s\n", path, report && *report ? "created the tables" : "up to date");
    cstack_free(report);
    return 0;
}

/* The exact sum of Entry.amount over `where` (taken), into `out`. */
static int sum_amount(cstack *db, cstack_filter *where, char *out, size_t cap)
{
    const char *const fields[] = {"amount"};
    cstack_aggregate_spec spec = {.where = where, .sum = fields, .n_sum = 1};
    cstack_row *row = NULL;
    int rc = entry_aggregate(db, &spec, &row);
    cstack_filter_free(where);
    if (rc)
        return fail(db, "entry_aggregate", rc);
    cstack_value v;
    rc = cstack_row_get(row, "_sum.amount", &v);
    if (rc == 0 && v.type == CSTACK_TEXT)
        snprintf(out, cap, "%.*s", (int)v.u.s.n, v.u.s.p);
    else
        snprintf(out, cap, "0");
    cstack_row_free(row);
    return 0;
}

static int add_wallet(cstack *db, const char *name, char id[37])
{
    wallet_create_input in = {.name = name};
    wallet w;
    int rc = wallet_create(db, &in, &w);
    if (rc)
        return fail(db, "wallet_create", rc);
    printf("  wallet %-9s %s (%s)\n", w.name, w.id, w.currency);
    snprintf(id, 37, "%s", w.id);
    wallet_free(&w);
    return 0;
}

/* Two wallets and four entries, written in one transaction. */
static int seed(cstack *db)
{
    char groceries[37], travel[37];
    puts("seed:");
    int rc = add_wallet(db, "Groceries", groceries) || add_wallet(db, "Travel", travel);
    if (rc)
        return 1;
    entry_create_input rows[] = {
        {.walletId = groceries, .amount = "0.10", .category = "snacks"},
        {.walletId = groceries, .amount = "0.20", .category = "snacks"},
        {.walletId = groceries, .amount = "12.35", .category = "market", .memo = "weekly"},
        {.walletId = travel, .amount = "3.10", .category = "bus"},
    };
    int64_t n = 0;
    if ((rc = entry_create_many(db, rows, 4, &n)))
        return fail(db, "entry_create_many", rc);
    printf("  %" PRId64 " entries\n", n);
    return 0;
}

/* 0.10 + 0.20 summed by the database, against the same sum in doubles. */
static int exact_money(cstack *db)
{
    char total[64];
    const char *small[] = {"0.10", "0.20"};
    if (sum_amount(db, entry_amount_in(small, 2), total, sizeof total))
        return 1;
    printf("money: 0.10 + 0.20 = %s as Decimal (a double says %.17g)\n", total, 0.10 + 0.20);
    if (strcmp(total, "0.30") != 0) {
        fprintf(stderr, "offline_first: expected 0.30, got %s\n", total);
        return 1;
    }
    return 0;
}

/* Entries over 1.00 in the Groceries wallet: a filter through the relation. */
static int filters(cstack *db)
{
    cstack_filter *where =
        cstack_filter_and2(entry_wallet_is(wallet_name_eq("Groceries")), entry_amount_gt("1.00"));
    cstack_query q = {.where = where};
    entry_list list;
    int rc = entry_find_many(db, &q, &list);
    cstack_filter_free(where);
    if (rc)
        return fail(db, "entry_find_many", rc);
    puts("filter: Groceries entries over 1.00");
    for (size_t i = 0; i < list.count; i++)
        printf("  %-7s %6s %s\n", list.items[i].category, list.items[i].amount,
               list.items[i].memo ? list.items[i].memo : "");
    rc = list.count == 1 ? 0 : 1;
    entry_list_free(&list);
    int64_t n = 0;
    cstack_filter *open = wallet_entries_some(entry_cleared_is_false());
    if (!rc && (rc = wallet_count(db, open, &n)))
        rc = fail(db, "wallet_count", rc);
    cstack_filter_free(open);
    printf("filter: %" PRId64 " wallets have uncleared entries\n", n);
    return rc || n != 2;
}

/* Clears the market entry and the whole Travel wallet; only the fields the
 * updates set change. */
static int partial_updates(cstack *db)
{
    entry e;
    bool found = false;
    cstack_filter *market = entry_category_eq("market");
    cstack_query q = {.where = market};
    int rc = entry_find_first(db, &q, &e, &found);
    cstack_filter_free(market);
    if (rc || !found)
        return rc ? fail(db, "entry_find_first", rc) : 1;
    entry_update_input up = {
        .set_cleared = true, .cleared = true, .set_memo = true, .memo = "weekly, paid"};
    entry after;
    rc = entry_update_by_id(db, e.id, &up, &after);
    entry_free(&e);
    if (rc)
        return fail(db, "entry_update_by_id", rc);
    printf("update: %s %s cleared=%s memo=\"%s\" (amount and category untouched)\n", after.category,
           after.amount, after.cleared ? "true" : "false", after.memo);
    entry_free(&after);
    int64_t n = 0;
    cstack_filter *travel = entry_wallet_is(wallet_name_eq("Travel"));
    entry_update_input clear = {.set_cleared = true, .cleared = true};
    rc = entry_update_many(db, travel, &clear, &n);
    cstack_filter_free(travel);
    if (rc)
        return fail(db, "entry_update_many", rc);
    printf("update: cleared %" PRId64 " Travel entries\n", n);
    return 0;
}

/* After re-opening: the rows, the sums and the updates are all there. */
static int check_persisted(cstack *db)
{
    int64_t n = 0, cleared = 0;
    cstack_filter *c = entry_cleared_is_true();
    int rc = entry_count(db, NULL, &n);
    if (!rc)
        rc = entry_count(db, c, &cleared);
    cstack_filter_free(c);
    if (rc)
        return fail(db, "entry_count", rc);
    char groceries[64], all[64];
    if (sum_amount(db, entry_wallet_is(wallet_name_eq("Groceries")), groceries, sizeof groceries) ||
        sum_amount(db, NULL, all, sizeof all))
        return 1;
    printf("persisted: %" PRId64 " entries, %" PRId64 " cleared, Groceries %s, total %s\n", n,
           cleared, groceries, all);
    return n == 4 && cleared == 2 && strcmp(groceries, "12.65") == 0 && strcmp(all, "15.75") == 0
               ? 0
               : 1;
}

static void remove_db(const char *dir, const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[600];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/cstack-offline-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("offline_first: mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/expenses.db", dir);
    cstack *db = NULL;
    int rc = open_db(path, &db);
    if (!rc) {
        rc = seed(db);
        if (!rc)
            rc = exact_money(db);
        if (!rc)
            rc = filters(db);
        if (!rc)
            rc = partial_updates(db);
        cstack_close(db);
        puts("closed the database");
    }
    if (!rc && !(rc = open_db(path, &db))) {
        rc = check_persisted(db);
        cstack_close(db);
    }
    remove_db(dir, path);
    puts(rc ? "offline_first: FAILED" : "offline_first: ok");
    return rc;
}
