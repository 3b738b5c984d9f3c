/* test_migrate.c -- migration planning: allowed changes keep every row and
 * value; refused changes say what changed and plan nothing. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema.h"
#include "sql/sql.h"
#include "support.h"
#include "value/value.h"

/* The schema every test starts from; tests derive the next one by editing
 * a line of it (edit()). */
static const char *V1 = "enum Status { OPEN DONE }\n"
                        "model Account {\n"
                        "  id Int @id\n"
                        "  name String\n"
                        "  notes Note[]\n"
                        "}\n"
                        "model Note {\n"
                        "  id Uuid @id\n"
                        "  title String\n"
                        "  body String?\n"
                        "  status Status @default(OPEN)\n"
                        "  price Decimal?\n"
                        "  ownerId Int\n"
                        "  owner Account @relation(fields: [ownerId], references: [id], "
                        "onDelete: Cascade)\n"
                        "  @@index([ownerId])\n"
                        "}\n";

static const char *SEED =
    "INSERT INTO Account (id, name) VALUES (1, 'ann'), (2, 'bob');"
    "INSERT INTO Note (id, title, body, status, price, ownerId) VALUES "
    "('00000000-0000-4000-8000-000000000001', 'first', 'hello', 'OPEN', '1.10', 1),"
    "('00000000-0000-4000-8000-000000000002', 'second', NULL, 'DONE', '-0.50', 1),"
    "('00000000-0000-4000-8000-000000000003', 'third', 'x', 'OPEN', NULL, 2);";

#define NOTE_COLS "id,title,body,status,price,ownerId"

/* `src` with the first occurrence of `from` replaced by `to` (malloc'd). */
static char *edit(const char *src, const char *from, const char *to)
{
    const char *at = strstr(src, from);
    cr_assert_not_null(at, "edit: '%s' not in the schema", from);
    size_t head = (size_t)(at - src), nf = strlen(from), nt = strlen(to);
    char *out = malloc(strlen(src) - nf + nt + 1);
    memcpy(out, src, head);
    memcpy(out + head, to, nt);
    strcpy(out + head + nt, at + nf);
    return out;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s\nin:\n%s", msg ? msg : sqlite3_errstr(rc), sql);
    sqlite3_free(msg);
}

static sqlite3 *db_of(const char *src)
{
    sqlite3 *db = NULL;
    cstack_schema *s = t_schema(src);
    cs_buf ddl = CS_BUF_INIT;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(cs_value_register_sqlite(db), SQLITE_OK);
    exec_ok(db, "PRAGMA foreign_keys=ON");
    cr_assert_eq(cs_sql_schema_ddl(&ddl, s, CS_DIALECT_SQLITE), 0);
    exec_ok(db, ddl.data);
    cs_buf_free(&ddl);
    cstack_schema_free(s);
    return db;
}

static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out ? out : strdup("");
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Every row of `table` (columns `cols`, comma-separated), quote()d so both
 * value and storage class show, ordered by the first column. */
static char *snapshot(sqlite3 *db, const char *table, const char *cols)
{
    char sql[1024] = "SELECT group_concat(r, char(10)) FROM (SELECT ";
    char copy[256];
    snprintf(copy, sizeof copy, "%s", cols);
    const char *first = NULL;
    for (char *c = strtok(copy, ","); c; c = strtok(NULL, ",")) {
        if (first)
            strcat(sql, " || ',' || ");
        else
            first = c;
        strcat(sql, "quote(\"");
        strcat(sql, c);
        strcat(sql, "\")");
    }
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " AS r FROM \"%s\" ORDER BY \"%s\")",
             table, first);
    return query_text(db, sql);
}

typedef struct plan_out {
    int rc;
    char *sql;
    char *report;
    char err[512];
} plan_out;

static plan_out plan(const char *old_src, const char *new_src)
{
    cstack_schema *o = t_schema(old_src), *n = t_schema(new_src);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    plan_out p;
    p.rc = cs_sql_migrate(o, n, &sql, &rep, p.err, sizeof p.err);
    p.sql = cs_buf_take(&sql);
    p.report = cs_buf_take(&rep);
    cs_buf_free(&sql);
    cs_buf_free(&rep);
    cstack_schema_free(o);
    cstack_schema_free(n);
    return p;
}

static void plan_free(plan_out *p)
{
    free(p->sql);
    free(p->report);
}

/* As the runtime does it: foreign keys off around one transaction, and no
 * violation left behind. */
static void apply(sqlite3 *db, const char *sql)
{
    exec_ok(db, "PRAGMA foreign_keys=OFF");
    exec_ok(db, "BEGIN");
    exec_ok(db, sql);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0,
                 "the migration left a foreign key violation");
    exec_ok(db, "COMMIT");
    exec_ok(db, "PRAGMA foreign_keys=ON");
}

/* Plans old -> new, asserts success, applies it to `db`; returns the plan. */
static plan_out migrate(sqlite3 *db, const char *old_src, const char *new_src)
{
    plan_out p = plan(old_src, new_src);
    cr_assert_eq(p.rc, 0, "migration refused: %s", p.err);
    apply(db, p.sql);
    return p;
}

static void expect_contains(const char *text, const char *needle)
{
    cr_expect(strstr(text, needle) != NULL, "expected to find\n  %s\nin:\n%s", needle, text);
}

/* Seeds V1, migrates to `next` and checks every original row is unchanged. */
static plan_out migrate_seeded(sqlite3 **dbp, const char *next)
{
    sqlite3 *db = db_of(V1);
    exec_ok(db, SEED);
    char *notes = snapshot(db, "Note", NOTE_COLS), *accounts = snapshot(db, "Account", "id");
    plan_out p = migrate(db, V1, next);
    char *notes2 = snapshot(db, "Note", NOTE_COLS), *accounts2 = snapshot(db, "Account", "id");
    cr_expect_str_eq(notes2, notes, "Note rows changed");
    cr_expect_str_eq(accounts2, accounts, "Account rows changed");
    free(notes), free(notes2), free(accounts), free(accounts2);
    *dbp = db;
    return p;
}

Test(migrate, an_unchanged_schema_plans_nothing)
{
    plan_out p = plan(V1, V1);
    cr_expect_eq(p.rc, 0);
    cr_expect_str_eq(p.sql, "");
    cr_expect_str_eq(p.report, "");
    plan_free(&p);
}

Test(migrate, a_new_model_is_created)
{
    char *next = malloc(strlen(V1) + 128);
    sprintf(next, "%smodel Tag {\n  id Int @id\n  label String @unique\n}\n", V1);
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "added model Tag (table \"Tag\")\n");
    exec_ok(db, "INSERT INTO Tag (id, label) VALUES (1, 'a')");
    cr_expect_neq(sqlite3_exec(db, "INSERT INTO Tag (id, label) VALUES (2, 'a')", NULL, NULL, NULL),
                  SQLITE_OK, "the new model's unique index exists");
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, a_new_model_whose_table_already_exists_fails_loudly)
{
    /* A stale stored schema must not make a migration skip its changes. */
    const char *empty = "enum Unused { A }\n";
    plan_out p = plan(empty, V1);
    cr_assert_eq(p.rc, 0, "%s", p.err);
    expect_contains(p.sql, "CREATE TABLE \"Account\" (");
    sqlite3 *db = db_of(V1);
    cr_expect_neq(sqlite3_exec(db, p.sql, NULL, NULL, NULL), SQLITE_OK);
    plan_free(&p);
    sqlite3_close(db);
}

Test(migrate, a_new_optional_field_is_added_in_place)
{
    char *next = edit(V1, "  body String?\n", "  body String?\n  subtitle String?\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.sql, "ALTER TABLE \"Note\" ADD COLUMN \"subtitle\" BLOB /* String? */;\n");
    cr_expect_str_eq(p.report, "added field Note.subtitle (column \"subtitle\")\n");
    cr_expect_eq(query_int(db, "SELECT count(*) FROM Note WHERE subtitle IS NULL"), 3);
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, new_fields_with_literal_defaults_are_added_in_place)
{
    char *next = edit(V1, "  body String?\n",
                      "  body String?\n  views Int @default(0)\n"
                      "  label String @default(\"none\")\n  flag Boolean @default(true)\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_null(strstr(p.sql, "_cstack_new_"), "no rebuild:\n%s", p.sql);
    expect_contains(p.sql, "ADD COLUMN \"views\" BLOB /* Int */ NOT NULL DEFAULT 0;");
    expect_contains(p.report, "added field Note.label (column \"label\")\n");
    char *s = snapshot(db, "Note", "id,views,label,flag");
    cr_expect_str_eq(s, "'00000000-0000-4000-8000-000000000001',0,'none',1\n"
                        "'00000000-0000-4000-8000-000000000002',0,'none',1\n"
                        "'00000000-0000-4000-8000-000000000003',0,'none',1");
    free(s);
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, a_new_now_field_rebuilds_the_table_and_fills_existing_rows)
{
    char *next = edit(V1, "  price Decimal?\n",
                      "  price Decimal?\n  createdAt DateTime "
                      "@default(now())\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    expect_contains(p.sql, "CREATE TABLE \"_cstack_new_Note\" (");
    expect_contains(p.sql, "cstack_now()");
    expect_contains(p.sql, "DROP TABLE \"Note\";\n"
                           "ALTER TABLE \"_cstack_new_Note\" RENAME TO \"Note\";\n");
    cr_expect_str_eq(p.report, "added field Note.createdAt (column \"createdAt\")\n"
                               "rebuilt table \"Note\" to fill new field Note.createdAt with "
                               "now()\n");
    cr_expect_eq(query_int(db, "SELECT count(*) FROM Note WHERE typeof(createdAt) = 'text' "
                               "AND length(createdAt) = 27 AND createdAt LIKE '20%Z'"),
                 3);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                               "AND name = 'Note_ownerId_idx'"),
                 1, "indexes are recreated");
    char *sql = query_text(db, "SELECT sql FROM sqlite_master WHERE name = 'Note'");
    expect_contains(sql, "CREATE TABLE \"Note\"");
    free(sql);
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

static bool is_uuid_v4(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4' || !strchr("89ab", s[19]))
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

static bool is_cuid(const char *s)
{
    if (strlen(s) != 25 || s[0] != 'c')
        return false;
    for (int i = 1; i < 25; i++) {
        if (!strchr("0123456789abcdefghijklmnopqrstuvwxyz", s[i]))
            return false;
    }
    return true;
}

static void expect_generated(sqlite3 *db, const char *col, bool (*valid)(const char *))
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT \"%s\" FROM Note", col);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        cr_expect(v && valid(v), "%s: bad generated value %s", col, v ? v : "NULL");
        n++;
    }
    sqlite3_finalize(st);
    cr_expect_eq(n, 3);
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT \"%s\") FROM Note", col);
    cr_expect_eq(query_int(db, sql), 3, "%s values are distinct", col);
}

Test(migrate, new_uuid_and_cuid_fields_get_a_distinct_value_per_row)
{
    char *next = edit(V1, "  price Decimal?\n",
                      "  price Decimal?\n  ref Uuid @default(uuid())\n"
                      "  slug Cuid @unique @default(cuid())\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    expect_generated(db, "ref", is_uuid_v4);
    expect_generated(db, "slug", is_cuid);
    cr_expect_str_eq(p.report, "added field Note.ref (column \"ref\")\n"
                               "added field Note.slug (column \"slug\")\n"
                               "rebuilt table \"Note\" to fill new field Note.ref with uuid(), "
                               "fill new field Note.slug with cuid()\n"
                               "added index Note_slug_key\n");
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, a_required_field_becomes_optional_by_rebuild)
{
    char *next = edit(V1, "  title String\n", "  title String?\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "rebuilt table \"Note\" to make field Note.title optional\n");
    exec_ok(db, "INSERT INTO Note (id, ownerId) VALUES ('n4', 1)");
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, a_changed_literal_default_rebuilds_so_the_table_matches_the_schema)
{
    char *next = edit(V1, "@default(OPEN)", "@default(DONE)");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "rebuilt table \"Note\" to change the default of Note.status\n");
    char *d = query_text(db, "SELECT dflt_value FROM pragma_table_info('Note') "
                             "WHERE name = 'status'");
    cr_expect_str_eq(d, "'DONE'");
    free(d);
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, indexes_are_added_and_dropped)
{
    char *next =
        edit(V1, "  @@index([ownerId])\n", "  @@unique([ownerId, title])\n  @@index([status])\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "dropped index Note_ownerId_idx\n"
                               "added index Note_ownerId_title_key\n"
                               "added index Note_status_idx\n");
    cr_expect_str_eq(p.sql, "DROP INDEX IF EXISTS \"Note_ownerId_idx\";\n"
                            "CREATE UNIQUE INDEX IF NOT EXISTS \"Note_ownerId_title_key\" ON "
                            "\"Note\" (\"ownerId\", \"title\");\n"
                            "CREATE INDEX IF NOT EXISTS \"Note_status_idx\" ON \"Note\" "
                            "(\"status\");\n");
    char *names = query_text(db, "SELECT group_concat(name, ',') FROM (SELECT name FROM "
                                 "sqlite_master WHERE type = 'index' AND tbl_name = 'Note' "
                                 "AND sql IS NOT NULL ORDER BY name)");
    cr_expect_str_eq(names, "Note_ownerId_title_key,Note_status_idx");
    free(names);
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, changes_that_touch_no_stored_data_need_no_sql)
{
    const char *edits[][2] = {
        {"enum Status { OPEN DONE }", "enum Status { OPEN DONE ARCHIVED }"},
        {"  notes Note[]\n", "  items Note[]\n"}, /* a back relation renamed */
        {"model Note {\n", "/// Notes.\nmodel Note {\n"},
        {"  @@index([ownerId])\n", "  @@index([ownerId])\n  @@audit\n  @@emit(created)\n"},
        {"  id Uuid @id\n", "  id Uuid @id @default(uuid())\n"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *next = edit(V1, edits[i][0], edits[i][1]);
        plan_out p = plan(V1, next);
        cr_expect_eq(p.rc, 0, "%s: %s", edits[i][1], p.err);
        cr_expect_str_eq(p.sql, "", "%s", edits[i][1]);
        cr_expect_str_eq(p.report, "", "%s", edits[i][1]);
        plan_free(&p);
        free(next);
    }
}

Test(migrate, a_changed_referential_action_rebuilds_the_child)
{
    char *next = edit(V1, "onDelete: Cascade", "onDelete: Restrict");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "rebuilt table \"Note\" to change the foreign key of "
                               "Note.owner\n");
    cr_expect_neq(sqlite3_exec(db, "DELETE FROM Account WHERE id = 2", NULL, NULL, NULL), SQLITE_OK,
                  "RESTRICT is in force");
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, foreign_keys_are_added_and_dropped_by_rebuild)
{
    const char *loose = "model Doc {\n  id Int @id\n}\n"
                        "model Tag {\n  id Int @id\n  docId Int?\n}\n";
    const char *linked = "model Doc {\n  id Int @id\n  tags Tag[]\n}\n"
                         "model Tag {\n  id Int @id\n  docId Int?\n"
                         "  doc Doc? @relation(fields: [docId], references: [id])\n}\n";
    sqlite3 *db = db_of(loose);
    exec_ok(db, "INSERT INTO Doc VALUES (1); INSERT INTO Tag VALUES (1, 1), (2, NULL)");
    plan_out p = migrate(db, loose, linked);
    cr_expect_str_eq(p.report, "rebuilt table \"Tag\" to add the foreign key of Tag.doc\n");
    cr_expect_neq(sqlite3_exec(db, "INSERT INTO Tag VALUES (3, 9)", NULL, NULL, NULL), SQLITE_OK);
    plan_free(&p);
    p = migrate(db, linked, loose);
    cr_expect_str_eq(p.report, "rebuilt table \"Tag\" to drop the foreign key of Tag.doc\n");
    exec_ok(db, "INSERT INTO Tag VALUES (3, 9)");
    char *rows = snapshot(db, "Tag", "id,docId");
    cr_expect_str_eq(rows, "1,1\n2,NULL\n3,9");
    free(rows);
    plan_free(&p);
    sqlite3_close(db);
}

Test(migrate, rebuilding_a_parent_keeps_its_children_and_their_foreign_keys)
{
    char *next = edit(V1, "  name String\n", "  name String?\n");
    sqlite3 *db;
    plan_out p = migrate_seeded(&db, next);
    cr_expect_str_eq(p.report, "rebuilt table \"Account\" to make field Account.name optional\n");
    cr_expect_neq(sqlite3_exec(db, "INSERT INTO Note (id, title, ownerId) VALUES ('n9', 't', 99)",
                               NULL, NULL, NULL),
                  SQLITE_OK, "the child's foreign key still points at the rebuilt parent");
    exec_ok(db, "DELETE FROM Account WHERE id = 1");
    cr_expect_eq(query_int(db, "SELECT count(*) FROM Note"), 1, "and still cascades");
    plan_free(&p);
    free(next);
    sqlite3_close(db);
}

Test(migrate, a_self_referencing_table_is_rebuilt_with_its_links)
{
    const char *v1 = "model Node {\n"
                     "  id Int @id\n"
                     "  label String\n"
                     "  parentId Int?\n"
                     "  parent Node? @relation(\"tree\", fields: [parentId], references: [id])\n"
                     "  kids Node[] @relation(\"tree\")\n"
                     "}\n";
    char *v2 = edit(v1, "  label String\n", "  label String?\n");
    sqlite3 *db = db_of(v1);
    exec_ok(db, "INSERT INTO Node VALUES (1, 'root', NULL), (2, 'a', 1), (3, 'b', 2)");
    char *before = snapshot(db, "Node", "id,label,parentId");
    plan_out p = migrate(db, v1, v2);
    char *after = snapshot(db, "Node", "id,label,parentId");
    cr_expect_str_eq(after, before);
    cr_expect_neq(sqlite3_exec(db, "INSERT INTO Node VALUES (4, 'x', 42)", NULL, NULL, NULL),
                  SQLITE_OK);
    free(before), free(after), free(v2);
    plan_free(&p);
    sqlite3_close(db);
}

Test(migrate, local_models_migrate_the_same_way)
{
    const char *v1 = "model Draft {\n  id Int @id\n  text String\n  @@local\n}\n";
    char *v2 = edit(v1, "  text String\n",
                    "  text String?\n  savedAt DateTime @default(now())\n  n Int @default(7)\n");
    char *v3 = malloc(strlen(v2) + 64);
    sprintf(v3, "%smodel Scratch {\n  id Int @id\n  @@local\n}\n", v2);
    sqlite3 *db = db_of(v1);
    exec_ok(db, "INSERT INTO Draft VALUES (1, 'a'), (2, 'b')");
    plan_out p = migrate(db, v1, v3);
    cr_expect_str_eq(p.report, "added model Scratch (table \"Scratch\")\n"
                               "added field Draft.savedAt (column \"savedAt\")\n"
                               "added field Draft.n (column \"n\")\n"
                               "rebuilt table \"Draft\" to make field Draft.text optional, fill "
                               "new field Draft.savedAt with now()\n");
    char *rows = snapshot(db, "Draft", "id,text,n");
    cr_expect_str_eq(rows, "1,'a',7\n2,'b',7");
    free(rows), free(v2), free(v3);
    plan_free(&p);
    sqlite3_close(db);
}

/* The structure SQLite reports for every table: columns, indexes, keys. */
static char *structure(sqlite3 *db)
{
    static const char *sql =
        "SELECT group_concat(x, char(10)) FROM ("
        " SELECT 'col ' || m.name || '.' || p.name || ' ' || p.type || ' ' || p.\"notnull\" ||"
        "   ' ' || ifnull(p.dflt_value, '-') || ' ' || p.pk AS x"
        "  FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'"
        " UNION ALL"
        " SELECT 'idx ' || m.name || '.' || i.name || ' ' || i.\"unique\" || ' ' ||"
        "   (SELECT group_concat(c.name) FROM pragma_index_info(i.name) c)"
        "  FROM sqlite_master m, pragma_index_list(m.name) i WHERE m.type = 'table'"
        " UNION ALL"
        " SELECT 'fk ' || m.name || ' ' || f.\"table\" || ' ' || f.\"from\" || ' ' || f.\"to\""
        "   || ' ' || f.on_update || ' ' || f.on_delete"
        "  FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'"
        " ORDER BY x)";
    return query_text(db, sql);
}

Test(migrate, a_migrated_database_has_the_structure_of_a_fresh_one)
{
    char *a = edit(V1, "enum Status { OPEN DONE }", "enum Status { OPEN DONE ARCHIVED }");
    char *b = edit(a, "  name String\n", "  name String?\n  email String? @unique\n");
    char *c = edit(b, "  price Decimal?\n",
                   "  price Decimal?\n  createdAt DateTime @default(now())\n"
                   "  views Int @default(0)\n");
    char *d = edit(c, "@default(OPEN)", "@default(DONE)");
    char *e = edit(d, "onDelete: Cascade", "onDelete: Restrict");
    char *f = edit(e, "  @@index([ownerId])\n", "  @@index([status, ownerId])\n  tags Tag[]\n");
    char *v2 = malloc(strlen(f) + 256);
    sprintf(v2,
            "%smodel Tag {\n  id Int @id\n  noteId Uuid\n"
            "  note Note @relation(fields: [noteId], references: [id])\n}\n",
            f);
    sqlite3 *migrated = db_of(V1);
    exec_ok(migrated, SEED);
    plan_out p = migrate(migrated, V1, v2);
    sqlite3 *fresh = db_of(v2);
    char *s1 = structure(migrated), *s2 = structure(fresh);
    cr_expect_str_eq(s1, s2);
    cr_expect_eq(query_int(migrated, "SELECT count(*) FROM Note"), 3);

    plan_out again = plan(v2, v2);
    cr_expect_str_eq(again.sql, "");
    free(s1), free(s2), free(a), free(b), free(c), free(d), free(e), free(f), free(v2);
    plan_free(&p);
    plan_free(&again);
    sqlite3_close(migrated);
    sqlite3_close(fresh);
}

Test(migrate, output_is_appended_to_what_the_buffers_hold)
{
    cstack_schema *o = t_schema(V1);
    char *next = edit(V1, "  body String?\n", "  body String?\n  subtitle String?\n");
    cstack_schema *n = t_schema(next);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    char err[128];
    cs_buf_puts(&sql, "-- before\n");
    cs_buf_puts(&rep, "earlier\n");
    cr_assert_eq(cs_sql_migrate(o, n, &sql, &rep, err, sizeof err), 0);
    cr_expect(strncmp(sql.data, "-- before\nALTER TABLE", 21) == 0, "%s", sql.data);
    cr_expect_str_eq(rep.data, "earlier\nadded field Note.subtitle (column \"subtitle\")\n");
    cs_buf_free(&sql), cs_buf_free(&rep), free(next);
    cstack_schema_free(o), cstack_schema_free(n);
}

/* ---------------------------------------------------------------------- */
/* Refusals                                                                */
/* ---------------------------------------------------------------------- */

typedef struct refusal {
    const char *from, *to; /* the edit of V1 that makes the new schema */
    const char *message;
} refusal;

static const refusal REFUSALS[] = {
    {"  body String?\n", "",
     "cannot migrate: field 'Note.body' was removed (its data would be lost)"},
    {"  price Decimal?\n", "  price Float?\n",
     "cannot migrate: field 'Note.price' changed type from Decimal to Float"},
    {"  body String?\n", "  body String\n",
     "cannot migrate: field 'Note.body' became required without a default"},
    {"  body String?\n", "  body String @default(\"\")\n",
     "cannot migrate: field 'Note.body' became required (rows holding null would change)"},
    {"enum Status { OPEN DONE }", "enum Status { OPEN CLOSED }",
     "cannot migrate: enum 'Status' lost member 'DONE' used by 'Note.status'"},
    {"  status Status @default(OPEN)\n", "  status String @default(\"OPEN\")\n",
     "cannot migrate: field 'Note.status' changed type from Status to String"},
    {"  body String?\n", "  body String?\n  summary String\n",
     "cannot migrate: field 'Note.summary' was added as required without a default (existing "
     "rows would have no value)"},
    {"  body String?\n", "  body String? @map(\"text\")\n",
     "cannot migrate: field 'Note.body' changed its column from \"body\" to \"text\" (renames "
     "are not supported)"},
    {"  @@index([ownerId])\n", "  @@index([ownerId])\n  @@map(\"notes\")\n",
     "cannot migrate: model 'Note' changed its table from \"Note\" to \"notes\" (renames are "
     "not supported)"},
    {"  body String?\n  status Status @default(OPEN)\n  price Decimal?\n",
     "  status Status @default(OPEN)\n",
     "cannot migrate: field 'Note.body' was removed (its data would be lost); field "
     "'Note.price' was removed (its data would be lost)"},
};

/* Plans V1 -> new and checks the refusal and that nothing was appended. */
static void expect_refused(const char *old_src, const char *new_src, const char *message)
{
    cstack_schema *o = t_schema(old_src), *n = t_schema(new_src);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    char err[512];
    cs_buf_puts(&sql, "-- keep\n");
    cs_buf_puts(&rep, "keep\n");
    int rc = cs_sql_migrate(o, n, &sql, &rep, err, sizeof err);
    cr_expect_eq(rc, CSTACK_EMIGRATION, "expected a refusal: %s", message);
    cr_expect_str_eq(err, message);
    cr_expect_str_eq(sql.data, "-- keep\n");
    cr_expect_str_eq(rep.data, "keep\n");
    cs_buf_free(&sql), cs_buf_free(&rep);
    cstack_schema_free(o), cstack_schema_free(n);
}

Test(migrate_refused, changes_that_lose_or_reinterpret_data)
{
    for (size_t i = 0; i < sizeof REFUSALS / sizeof REFUSALS[0]; i++) {
        char *next = edit(V1, REFUSALS[i].from, REFUSALS[i].to);
        expect_refused(V1, next, REFUSALS[i].message);
        free(next);
    }
}

Test(migrate_refused, a_removed_model)
{
    char *old = malloc(strlen(V1) + 64);
    sprintf(old, "%smodel Tag {\n  id Int @id\n}\n", V1);
    expect_refused(old, V1, "cannot migrate: model 'Tag' was removed");
    free(old);
}

Test(migrate_refused, a_changed_primary_key)
{
    expect_refused("model K {\n  id Int @id\n  n Int\n}\n",
                   "model K {\n  id Int\n  n Int\n  @@id([id, n])\n}\n",
                   "cannot migrate: model 'K' changed its primary key from (id) to (id, n)");
}

Test(migrate_refused, a_new_autoincrement_field)
{
    expect_refused("model K {\n  id String @id\n}\n",
                   "model K {\n  id String @id\n  seq Int @default(autoincrement())\n}\n",
                   "cannot migrate: field 'K.seq' was added with @default(autoincrement()) "
                   "(existing rows cannot be numbered)");
}

Test(migrate_refused, a_long_message_is_truncated_safely)
{
    cstack_schema *o = t_schema(V1);
    char *next = edit(V1, "  body String?\n", "");
    cstack_schema *n = t_schema(next);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    char err[16];
    cr_expect_eq(cs_sql_migrate(o, n, &sql, &rep, err, sizeof err), CSTACK_EMIGRATION);
    cr_expect_str_eq(err, "cannot migrate:");
    cr_expect_eq(cs_sql_migrate(o, n, &sql, &rep, NULL, 0), CSTACK_EMIGRATION);
    cr_expect_eq(sql.len, 0);
    cs_buf_free(&sql), cs_buf_free(&rep), free(next);
    cstack_schema_free(o), cstack_schema_free(n);
}

Test(migrate_limits, a_full_output_buffer_fails_without_appending)
{
    cstack_schema *o = t_schema(V1);
    char *next = edit(V1, "  title String\n", "  title String?\n");
    cstack_schema *n = t_schema(next);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    char err[128];
    sql.max = 64;
    cr_expect_eq(cs_sql_migrate(o, n, &sql, &rep, err, sizeof err), CSTACK_ETOOBIG);
    cr_expect_eq(sql.len, 0);
    cr_expect_eq(rep.len, 0);
    cr_expect(strncmp(err, "cannot plan the migration: ", 27) == 0, "%s", err);
    cr_expect_eq(cs_sql_schema_ddl(&sql, n, CS_DIALECT_SQLITE), CSTACK_ETOOBIG);
    cs_buf_free(&sql), cs_buf_free(&rep), free(next);
    cstack_schema_free(o), cstack_schema_free(n);
}

Test(migrate_limits, null_arguments_are_einval)
{
    cstack_schema *s = t_schema(V1);
    cs_buf sql = CS_BUF_INIT, rep = CS_BUF_INIT;
    char err[64];
    cr_expect_eq(cs_sql_migrate(NULL, s, &sql, &rep, err, sizeof err), CSTACK_EINVAL);
    cr_expect_eq(cs_sql_migrate(s, NULL, &sql, &rep, err, sizeof err), CSTACK_EINVAL);
    cr_expect_eq(cs_sql_migrate(s, s, NULL, &rep, err, sizeof err), CSTACK_EINVAL);
    cr_expect_eq(cs_sql_migrate(s, s, &sql, NULL, err, sizeof err), CSTACK_EINVAL);
    cstack_schema_free(s);
}
