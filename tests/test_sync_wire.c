/* test_sync_wire.c -- changesets as bytes: two file databases synced by hand
 * through `cstack changes export|apply` (issue 4, "Done means"), and the
 * decoder's refusal of truncated, corrupted and random input without a
 * crash or a partial apply. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA =
    "model Account {\n"
    "  id    Int     @id\n"
    "  email String  @unique\n"
    "  name  String?\n"
    "  notes Note[]\n"
    "}\n"
    "model Note {\n"
    "  id      Int      @id\n"
    "  title   String\n"
    "  body    String?\n"
    "  price   Decimal?\n"
    "  meta    Json?\n"
    "  raw     Bytes?\n"
    "  ownerId Int\n"
    "  owner   Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "}\n";

static const char *OTHER_SCHEMA = "model Account {\n"
                                  "  id    Int    @id\n"
                                  "  email String @unique\n"
                                  "}\n";

#define KEY(id) DATA(FV("id", I(id)))

static char *dir;

static void setup(void)
{
    dir = t_tmpdir();
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
    free(dir);
}

TestSuite(sync_wire, .init = setup, .fini = teardown);

static void ok(cstack *db, int rc, const char *what)
{
    cr_assert_eq(rc, CSTACK_OK, "%s: %s (%s)", what, cstack_errname(rc), cstack_errmsg(db));
}

/* dir/name, in a static ring so several can be live in one expression. */
static const char *in_dir(const char *name)
{
    static char ring[8][512];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Runs `cstack ARGS` with the shell; returns the exit status. *out
 * (optional) receives stdout. */
static int cli(char **out, const char *fmt, ...)
{
    char args[2048], cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s", CSTACK_CLI, args);
    return t_run(cmd, out);
}

static cstack *open_file(const char *schema, const char *path)
{
    cstack_schema *s = t_schema(schema);
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open %s", path);
    ok(db, cstack_bootstrap(db, NULL), "bootstrap");
    return db;
}

/* Writes some rows to a new file database offline, then closes it. */
static void offline_writes(const char *name, int64_t base, const char *shared_title)
{
    cstack *db = open_file(SCHEMA, in_dir(name));
    char email[64];
    snprintf(email, sizeof email, "user%d@x.io", (int)base);
    ok(db, cstack_create(db, "Account", DATA(FV("id", I(base)), FV("email", T(email))), NULL),
       "create");
    ok(db,
       cstack_create(db, "Note",
                     DATA(FV("id", I(base + 1)), FV("ownerId", I(base)), FV("title", T("t")),
                          FV("price", T("1.10")), FV("meta", T("{\"a\":[1,2]}")),
                          FV("raw", cstack_v_blob("\0\1\2", 3))),
                     NULL),
       "create");
    /* The same row written on both sides: the merge must pick one title. */
    ok(db, cstack_create(db, "Account", DATA(FV("id", I(1000)), FV("email", T("both@x.io"))), NULL),
       "create");
    ok(db, cstack_update(db, "Account", KEY(1000), DATA(FV("name", T(shared_title))), NULL),
       "update");
    cstack_close(db);
}

static void export_to(const char *db, const char *file)
{
    char *err = NULL;
    int st = cli(NULL, "changes export --schema '%s' --db '%s' > '%s' 2> '%s'",
                 in_dir("app.cstack"), in_dir(db), in_dir(file), in_dir("err.txt"));
    err = t_read_file(in_dir("err.txt"), NULL);
    cr_assert_eq(st, 0, "export %s: %s", db, err ? err : "");
    long long cursor = -1;
    char tail = 0;
    cr_expect_eq(sscanf(err, "cursor: %lld%c", &cursor, &tail), 2, "stderr: %s", err);
    cr_expect_eq(tail, '\n');
    cr_expect_gt(cursor, 0);
    cr_expect_eq(strchr(err, '\n')[1], '\0', "exactly one line: %s", err);
    free(err);
}

static void apply_from(const char *db, const char *file)
{
    int st = cli(NULL, "changes apply --schema '%s' --db '%s' < '%s' 2> '%s'", in_dir("app.cstack"),
                 in_dir(db), in_dir(file), in_dir("err.txt"));
    char *err = t_read_file(in_dir("err.txt"), NULL);
    cr_assert_eq(st, 0, "apply %s to %s: %s", file, db, err ? err : "");
    /* Migration notes of a new database come first; the summary is last. */
    char *last = strstr(err, "applied: ");
    cr_expect(last && (last == err || last[-1] == '\n'), "stderr: %s", err);
    cr_expect(last && strchr(last, '\n') && strchr(last, '\n')[1] == '\0', "stderr: %s", err);
    free(err);
}

static char *dump(const char *db)
{
    char *out = NULL;
    int st =
        cli(&out, "dump --schema '%s' --db '%s' 2>/dev/null", in_dir("app.cstack"), in_dir(db));
    cr_assert_eq(st, 0, "dump %s", db);
    return out;
}

Test(sync_wire, two_databases_converge_through_the_cli_in_either_order)
{
    write_file(in_dir("app.cstack"), SCHEMA);
    offline_writes("a.db", 1, "from a");
    offline_writes("b.db", 100, "from b");
    export_to("a.db", "a.cs");
    export_to("b.db", "b.cs");
    /* a and b swap; c and d get both, in opposite orders, each twice. */
    apply_from("a.db", "b.cs");
    apply_from("b.db", "a.cs");
    apply_from("c.db", "a.cs");
    apply_from("c.db", "b.cs");
    apply_from("c.db", "a.cs");
    apply_from("c.db", "b.cs");
    apply_from("d.db", "b.cs");
    apply_from("d.db", "a.cs");
    apply_from("d.db", "b.cs");
    apply_from("d.db", "a.cs");
    char *da = dump("a.db"), *db = dump("b.db"), *dc = dump("c.db"), *dd = dump("d.db");
    cr_expect_str_eq(db, da);
    cr_expect_str_eq(dc, da);
    cr_expect_str_eq(dd, da);
    cr_expect_not_null(strstr(da, "\"id\":101"), "b's note reached a:\n%s", da);
    cr_expect_not_null(strstr(da, "\"id\":2,"), "a's note is there:\n%s", da);
    free(da);
    free(db);
    free(dc);
    free(dd);
}

Test(sync_wire, cli_refuses_another_schema_naming_both_hashes)
{
    write_file(in_dir("app.cstack"), SCHEMA);
    write_file(in_dir("other.cstack"), OTHER_SCHEMA);
    offline_writes("a.db", 1, "x");
    int st = cli(NULL, "changes export --schema '%s' --db '%s' > '%s' 2>/dev/null",
                 in_dir("other.cstack"), in_dir("o.db"), in_dir("o.cs"));
    cr_assert_eq(st, 0);
    char *before = dump("a.db");
    st = cli(NULL, "changes apply --schema '%s' --db '%s' < '%s' 2> '%s'", in_dir("app.cstack"),
             in_dir("a.db"), in_dir("o.cs"), in_dir("err.txt"));
    char *err = t_read_file(in_dir("err.txt"), NULL);
    cr_expect_eq(st, 1, "stderr: %s", err);
    cstack_schema *s1 = t_schema(SCHEMA), *s2 = t_schema(OTHER_SCHEMA);
    cr_expect_not_null(strstr(err, cstack_schema_hash(s1)), "%s", err);
    cr_expect_not_null(strstr(err, cstack_schema_hash(s2)), "%s", err);
    cstack_schema_free(s1);
    cstack_schema_free(s2);
    char *after = dump("a.db");
    cr_expect_str_eq(after, before, "nothing applied");
    free(err);
    free(before);
    free(after);
}

Test(sync_wire, cli_usage_and_bad_input)
{
    write_file(in_dir("app.cstack"), SCHEMA);
    write_file(in_dir("junk.cs"), "this is not a changeset");
    cr_expect_eq(cli(NULL, "changes --help > /dev/null"), 0);
    cr_expect_eq(cli(NULL, "changes export --help > /dev/null"), 0);
    cr_expect_eq(cli(NULL, "changes apply --help > /dev/null"), 0);
    cr_expect_eq(cli(NULL, "help changes > /dev/null"), 0);
    cr_expect_eq(cli(NULL, "changes 2>/dev/null"), 2);
    cr_expect_eq(cli(NULL, "changes frobnicate 2>/dev/null"), 2);
    cr_expect_eq(cli(NULL, "changes export --db x.db 2>/dev/null"), 2, "missing --schema");
    cr_expect_eq(cli(NULL, "changes export --schema '%s' --db '%s' --since -1 2>/dev/null",
                     in_dir("app.cstack"), in_dir("a.db")),
                 2);
    cr_expect_eq(cli(NULL, "changes export --schema '%s' --db '%s' --since 12x 2>/dev/null",
                     in_dir("app.cstack"), in_dir("a.db")),
                 2);
    int st = cli(NULL, "changes apply --schema '%s' --db '%s' < '%s' 2> '%s'", in_dir("app.cstack"),
                 in_dir("a.db"), in_dir("junk.cs"), in_dir("err.txt"));
    char *err = t_read_file(in_dir("err.txt"), NULL);
    cr_expect_eq(st, 1, "junk refused: %s", err);
    cr_expect_not_null(strstr(err, "refused"), "%s", err);
    free(err);
}

/* ---- malformed input ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* A changeset with inserts, updates, a delete and a re-insert over several
 * value types, from a fresh in-memory replica.  *len receives its size. */
static void *rich_changeset(size_t *len)
{
    cstack *a = t_open_mem(SCHEMA);
    ok(a, cstack_create(a, "Account", DATA(FV("id", I(1)), FV("email", T("a@x.io"))), NULL), "c");
    for (int i = 0; i < 4; i++)
        ok(a,
           cstack_create(a, "Note",
                         DATA(FV("id", I(10 + i)), FV("ownerId", I(1)), FV("title", T("t")),
                              FV("price", T("12.50")), FV("meta", T("{\"k\":true}")),
                              FV("raw", cstack_v_blob("\xff\x00", 2))),
                         NULL),
           "c");
    ok(a, cstack_update(a, "Note", KEY(11), DATA(FV("body", T("b"))), NULL), "u");
    ok(a, cstack_delete(a, "Note", KEY(12), NULL), "d");
    ok(a,
       cstack_create(a, "Note", DATA(FV("id", I(12)), FV("ownerId", I(1)), FV("title", T("again"))),
                     NULL),
       "c");
    void *cs = NULL;
    ok(a, cstack_changes_export(a, 0, &cs, len, NULL), "export");
    cstack_close(a);
    return cs;
}

/* A target replica with rows of its own, so "nothing applied" is visible. */
static cstack *target(void)
{
    cstack *b = t_open_mem(SCHEMA);
    ok(b, cstack_create(b, "Account", DATA(FV("id", I(5)), FV("email", T("b@x.io"))), NULL), "c");
    return b;
}

static int64_t version(cstack *db)
{
    int64_t v = -1;
    ok(db, cstack_sync_version(db, &v), "version");
    return v;
}

Test(sync_wire, every_truncation_is_refused_and_applies_nothing)
{
    size_t len = 0;
    unsigned char *cs = rich_changeset(&len);
    cr_assert_gt(len, 0);
    cstack *b = target();
    char *before = ts_dump(b);
    int64_t v0 = version(b);
    cr_expect_neq(cstack_changes_apply(b, NULL, 0, NULL), CSTACK_OK, "an empty input");
    size_t accepted = 0, first = 0, not_inval = 0;
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so ASan catches any read past it. */
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, cs, n);
        int rc = cstack_changes_apply(b, copy, n, NULL);
        free(copy);
        if (rc == CSTACK_OK && accepted++ == 0)
            first = n;
        if (rc != CSTACK_OK && rc != CSTACK_EINVAL)
            not_inval++;
    }
    cr_expect_eq(accepted, 0, "%zu of %zu prefixes accepted (first: %zu bytes)", accepted, len,
                 first);
    cr_expect_eq(not_inval, 0, "%zu truncations refused with another code than EINVAL", not_inval);
    char *after = ts_dump(b);
    cr_expect_str_eq(after, before, "nothing applied");
    cr_expect_eq(version(b), v0);
    /* The whole changeset still applies afterwards. */
    ok(b, cstack_changes_apply(b, cs, len, NULL), "full apply");
    free(before);
    free(after);
    cstack_free(cs);
    cstack_close(b);
}

Test(sync_wire, corrupted_and_random_bytes_never_crash_nor_half_apply)
{
    size_t len = 0;
    unsigned char *cs = rich_changeset(&len);
    cstack *b = target();
    char *base = ts_dump(b);
    int64_t v0 = version(b);
    rng_state = 0x9e3779b97f4a7c15u;
    size_t accepted = 0, refused = 0;
    for (int iter = 0; iter < 1500; iter++) {
        size_t n = len;
        unsigned char *m;
        if (iter % 5 == 4) {
            /* Random bytes, sometimes behind the real header. */
            n = 1 + rnd() % (2 * len);
            m = malloc(n);
            for (size_t i = 0; i < n; i++)
                m[i] = (unsigned char)rnd();
            if (iter % 10 == 9)
                memcpy(m, cs, n < len / 4 ? n : len / 4);
        } else {
            m = malloc(n);
            memcpy(m, cs, n);
            for (int k = 1 + (int)(rnd() % 3); k > 0; k--)
                m[rnd() % n] ^= (unsigned char)(1 + rnd() % 255);
        }
        int rc = cstack_changes_apply(b, m, n, NULL);
        free(m);
        char *now = ts_dump(b);
        cr_assert_not_null(now, "dump after iteration %d: %s", iter, cstack_errmsg(b));
        if (rc == CSTACK_OK) {
            /* A flip inside a value can make another valid changeset; it
             * then simply becomes the new baseline. */
            accepted++;
            free(base);
            base = now;
            v0 = version(b);
            continue;
        }
        refused++;
        cr_assert_str_eq(now, base, "iteration %d: refused (%s) but something was applied", iter,
                         cstack_errname(rc));
        cr_assert_eq(version(b), v0, "iteration %d: refused but the version moved", iter);
        free(now);
    }
    cr_log_info("corruption: %zu refused, %zu accepted", refused, accepted);
    free(base);
    cstack_free(cs);
    cstack_close(b);
}

/* ---- the clock bound ----
 *
 * A changeset with a clock from the future cannot be made by a replica
 * (clocks follow the wall clock), so the test rewrites the clocks of a real
 * one, walking it by the wire format documented at the top of
 * src/sync/changeset.c and in docs/sync-protocol.md:
 *
 *   header := "CSCS" u8 hash[32] origin[16] varint(since) varint(until)
 *             varint(nsites) site[16]*nsites varint(nrows)
 *   row    := varint(model) varint(ver) varint(cl) value*npk varint(ncols) col*
 *   col    := varint(field) u64le(hlc) varint(site) value
 *   value  := u8(0) | u8(1) varint | u8(2) u64 | u8(3|4) varint(len) bytes
 *
 * and an HLC is milliseconds << 16 | a logical counter. */

static size_t skip_varint(const unsigned char *p, size_t len, size_t i)
{
    while (i < len && (p[i] & 0x80))
        i++;
    cr_assert_lt(i, len, "varint runs off the changeset");
    return i + 1;
}

static size_t skip_value(const unsigned char *p, size_t len, size_t i)
{
    cr_assert_lt(i, len);
    unsigned char tag = p[i++];
    if (tag == 0)
        return i;
    if (tag == 1)
        return skip_varint(p, len, i);
    if (tag == 2)
        return i + 8;
    cr_assert(tag == 3 || tag == 4, "value tag %u", tag);
    uint64_t n = 0;
    for (int shift = 0; i < len; shift += 7) {
        n |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80))
            break;
    }
    return i + (size_t)n;
}

/* Sets every column clock of a changeset whose rows have a one-column
 * primary key to `hlc`; returns how many it set. */
static int set_clocks(unsigned char *p, size_t len, uint64_t hlc)
{
    size_t i = 4 + 1 + 32 + 16;
    i = skip_varint(p, len, i); /* since */
    i = skip_varint(p, len, i); /* until */
    cr_assert_lt(p[i], 0x80, "test expects fewer than 128 sites");
    i = skip_varint(p, len, i) + 16 * (size_t)p[i];
    cr_assert_lt(p[i], 0x80);
    size_t nrows = p[i];
    i = skip_varint(p, len, i);
    int set = 0;
    for (size_t r = 0; r < nrows; r++) {
        i = skip_varint(p, len, i); /* model */
        i = skip_varint(p, len, i); /* ver */
        i = skip_varint(p, len, i); /* cl */
        i = skip_value(p, len, i);  /* the key */
        cr_assert_lt(p[i], 0x80);
        size_t ncols = p[i];
        i = skip_varint(p, len, i);
        for (size_t c = 0; c < ncols; c++) {
            i = skip_varint(p, len, i);
            cr_assert_leq(i + 8, len);
            for (int b = 0; b < 8; b++)
                p[i + (size_t)b] = (unsigned char)(hlc >> (8 * b));
            set++;
            i = skip_varint(p, len, i + 8);
            i = skip_value(p, len, i);
        }
    }
    cr_assert_eq(i, len, "walked the whole changeset");
    return set;
}

static uint64_t hlc_in(int64_t ms_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms_from_now;
    return (uint64_t)ms << 16;
}

Test(sync_wire, a_clock_beyond_the_drift_is_refused_and_applies_nothing)
{
    cstack *a = t_open_mem(SCHEMA), *b = target();
    ok(a, cstack_create(a, "Account", DATA(FV("id", I(1)), FV("email", T("a@x.io"))), NULL), "c");
    unsigned char *cs = NULL;
    size_t len = 0;
    ok(a, cstack_changes_export(a, 0, (void **)&cs, &len, NULL), "export");
    char *before = ts_dump(b);
    int64_t v0 = version(b);

    cr_assert_gt(set_clocks(cs, len, hlc_in(3600 * 1000)), 0);
    int rc = cstack_changes_apply(b, cs, len, NULL);
    cr_expect_eq(rc, CSTACK_ECLOCK, "an hour ahead: got %s (%s)", cstack_errname(rc),
                 cstack_errmsg(b));
    char *after = ts_dump(b);
    cr_expect_str_eq(after, before, "nothing applied");
    cr_expect_eq(version(b), v0);
    free(after);

    /* A minute ahead is within the default 5 minutes, but not within a
     * drift lowered to one second. */
    set_clocks(cs, len, hlc_in(60 * 1000));
    ok(b, cstack_sync_set_max_drift(b, 1000), "set_max_drift");
    rc = cstack_changes_apply(b, cs, len, NULL);
    cr_expect_eq(rc, CSTACK_ECLOCK, "a minute ahead, 1 s allowed: got %s", cstack_errname(rc));
    ok(b, cstack_sync_set_max_drift(b, 300000), "set_max_drift");
    ok(b, cstack_changes_apply(b, cs, len, NULL), "a minute ahead, 5 minutes allowed");
    after = ts_dump(b);
    cr_expect_str_neq(after, before, "now it merged");
    free(after);
    free(before);
    cstack_free(cs);
    cstack_close(a);
    cstack_close(b);
}
