/* test_ddl.c -- the SQLite and PostgreSQL DDL rendered from schemas. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema.h"
#include "sql/sql.h"
#include "support.h"
#include "value/value.h"

/* Declared out of dependency order on purpose: Note references Account. */
static const char *NOTES =
    "datasource db { provider = \"sqlite\" }\n"
    "enum Status { OPEN DONE }\n"
    "model Note {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  title     String\n"
    "  body      String?\n"
    "  status    Status   @default(OPEN)\n"
    "  price     Decimal?\n"
    "  tags      Json?\n"
    "  data      Bytes?\n"
    "  pinned    Boolean  @default(false)\n"
    "  score     Float    @default(2)\n"
    "  views     Int      @default(0)\n"
    "  quote     String   @default(\"it's\")\n"
    "  createdAt DateTime @default(now())\n"
    "  updatedAt DateTime @updatedAt\n"
    "  ownerId   Int\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "  @@index([ownerId, createdAt])\n"
    "  @@unique([ownerId, title])\n"
    "}\n"
    "model Account {\n"
    "  id    Int    @id @default(autoincrement())\n"
    "  email String @unique\n"
    "  notes Note[]\n"
    "}\n";

static char *ddl_of(const char *src, const char *dialect)
{
    cstack_schema *s = t_schema(src);
    char *out = NULL;
    int rc = cstack_schema_ddl(s, dialect, &out);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "cstack_schema_ddl(%s): %s", dialect, cstack_errstr(rc));
    cr_assert_not_null(out);
    return out;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s\nin:\n%s", msg ? msg : sqlite3_errstr(rc), sql);
    sqlite3_free(msg);
}

/* A fresh in-memory database holding the SQLite DDL of `src`. */
static sqlite3 *db_of(const char *src)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(cs_value_register_sqlite(db), SQLITE_OK);
    exec_ok(db, "PRAGMA foreign_keys=ON");
    char *ddl = ddl_of(src, "sqlite");
    exec_ok(db, ddl);
    cstack_free(ddl);
    return db;
}

/* The first column of the first row of `sql` as text (malloc'd), or NULL. */
static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static void expect_text(sqlite3 *db, const char *sql, const char *want)
{
    char *got = query_text(db, sql);
    if (want == NULL)
        cr_expect_null(got, "%s gave %s, expected NULL", sql, got);
    else
        cr_expect(got && strcmp(got, want) == 0, "%s gave %s, expected %s", sql, got ? got : "NULL",
                  want);
    free(got);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s returned no row", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void expect_contains(const char *text, const char *needle)
{
    cr_expect(strstr(text, needle) != NULL, "expected to find\n  %s\nin:\n%s", needle, text);
}

Test(ddl_sqlite, every_column_is_blob_with_a_comment_naming_its_type)
{
    char *ddl = ddl_of(NOTES, "sqlite");
    expect_contains(ddl, "\"price\" BLOB /* Decimal? */,");
    expect_contains(ddl, "\"title\" BLOB /* String */ NOT NULL,");
    expect_contains(ddl, "\"status\" BLOB /* Status */ NOT NULL DEFAULT 'OPEN',");
    expect_contains(ddl, "\"pinned\" BLOB /* Boolean */ NOT NULL DEFAULT 0,");
    expect_contains(ddl, "\"score\" BLOB /* Float */ NOT NULL DEFAULT 2.0,");
    expect_contains(ddl, "\"views\" BLOB /* Int */ NOT NULL DEFAULT 0,");
    expect_contains(ddl, "\"quote\" BLOB /* String */ NOT NULL DEFAULT 'it''s',");
    expect_contains(ddl, "\"createdAt\" BLOB /* DateTime */ NOT NULL,");
    expect_contains(ddl, "PRIMARY KEY (\"id\")");
    expect_contains(ddl, "CONSTRAINT \"Note_ownerId_fkey\" FOREIGN KEY (\"ownerId\") "
                         "REFERENCES \"Account\" (\"id\") ON DELETE CASCADE\n);");
    cr_expect_null(strstr(ddl, "ON UPDATE"), "an action left at its default is omitted");
    cstack_free(ddl);

    sqlite3 *db = db_of(NOTES);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM pragma_table_info('Note') "
                               "WHERE type <> 'BLOB'"),
                 0);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM pragma_table_info('Note')"), 14);
    expect_text(db, "SELECT \"notnull\" FROM pragma_table_info('Note') WHERE name='body'", "0");
    expect_text(db, "SELECT \"notnull\" FROM pragma_table_info('Note') WHERE name='title'", "1");
    expect_text(db, "SELECT dflt_value FROM pragma_table_info('Note') WHERE name='status'",
                "'OPEN'");
    sqlite3_close(db);
}

Test(ddl_sqlite, relation_fields_have_no_column)
{
    sqlite3 *db = db_of(NOTES);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM pragma_table_info('Note') "
                               "WHERE name = 'owner'"),
                 0);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM pragma_table_info('Account') "
                               "WHERE name = 'notes'"),
                 0);
    expect_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('Account')", "id,email");
    sqlite3_close(db);
}

Test(ddl_sqlite, referenced_tables_come_first)
{
    char *ddl = ddl_of(NOTES, "sqlite");
    const char *account = strstr(ddl, "CREATE TABLE IF NOT EXISTS \"Account\"");
    const char *note = strstr(ddl, "CREATE TABLE IF NOT EXISTS \"Note\"");
    const char *index = strstr(ddl, "CREATE ");
    cr_assert(account && note);
    cr_expect_lt(account, note);
    cr_expect_eq(index, account, "tables come before indexes");
    cstack_free(ddl);
}

Test(ddl_sqlite, indexes_are_named_from_the_schema)
{
    cstack_schema *s = t_schema(NOTES);
    const cs_model *note = &s->models[cs_model_find(s, "Note")];
    const cs_model *acct = &s->models[cs_model_find(s, "Account")];
    char *ddl = NULL;
    cr_assert_eq(cstack_schema_ddl(s, "sqlite", &ddl), 0);
    char want[256];
    snprintf(want, sizeof want,
             "CREATE UNIQUE INDEX IF NOT EXISTS \"%s\" ON \"Note\" "
             "(\"ownerId\", \"title\");",
             note->uniques[0].name);
    expect_contains(ddl, want);
    snprintf(want, sizeof want,
             "CREATE INDEX IF NOT EXISTS \"%s\" ON \"Note\" "
             "(\"ownerId\", \"createdAt\");",
             note->indexes[0].name);
    expect_contains(ddl, want);
    snprintf(want, sizeof want,
             "CREATE UNIQUE INDEX IF NOT EXISTS \"%s\" ON \"Account\" "
             "(\"email\");",
             acct->uniques[0].name);
    expect_contains(ddl, want);

    sqlite3 *db = db_of(NOTES);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index' "
                               "AND sql IS NOT NULL"),
                 3);
    sqlite3_close(db);
    cstack_free(ddl);
    cstack_schema_free(s);
}

Test(ddl_sqlite, running_the_ddl_twice_is_harmless)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (1, 'a@x')");
    int64_t objects = query_int(db, "SELECT count(*) FROM sqlite_master");
    char *ddl = ddl_of(NOTES, "sqlite");
    exec_ok(db, ddl);
    cstack_free(ddl);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM sqlite_master"), objects);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM Account"), 1);
    sqlite3_close(db);
}

Test(ddl_sqlite, decimal_text_is_stored_exactly)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (1, 'a@x')");
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "INSERT INTO Note (id, title, createdAt, updatedAt, "
                                    "ownerId, price) VALUES ('n1', 't', 'c', 'u', 1, ?)",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, "1.10", -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    expect_text(db, "SELECT typeof(price) || ':' || price FROM Note", "text:1.10");
    sqlite3_close(db);
}

Test(ddl_sqlite, literal_defaults_are_stored_in_canonical_form)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (1, 'a@x');"
                "INSERT INTO Note (id, title, createdAt, updatedAt, ownerId) "
                "VALUES ('n1', 't', 'c', 'u', 1)");
    expect_text(db, "SELECT typeof(status) || ':' || status FROM Note", "text:OPEN");
    expect_text(db, "SELECT typeof(pinned) || ':' || pinned FROM Note", "integer:0");
    expect_text(db, "SELECT typeof(score) || ':' || score FROM Note", "real:2.0");
    expect_text(db, "SELECT typeof(views) || ':' || views FROM Note", "integer:0");
    expect_text(db, "SELECT quote FROM Note", "it's");
    expect_text(db, "SELECT body FROM Note", NULL);
    sqlite3_close(db);
}

Test(ddl_sqlite, integer_primary_keys_do_not_alias_the_rowid)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (100, 'a@x')");
    cr_expect_eq(query_int(db, "SELECT rowid FROM Account"), 1);
    cr_expect_eq(query_int(db, "SELECT id FROM Account"), 100);
    /* An alias would turn this text into a datatype mismatch error. */
    exec_ok(db, "INSERT INTO Account (id, email) VALUES ('x', 'b@x')");
    expect_text(db, "SELECT typeof(id) FROM Account WHERE email = 'b@x'", "text");
    sqlite3_close(db);
}

Test(ddl_sqlite, required_and_primary_key_columns_reject_null)
{
    sqlite3 *db = db_of(NOTES);
    cr_expect_neq(
        sqlite3_exec(db, "INSERT INTO Account (id, email) VALUES (NULL, 'a')", NULL, NULL, NULL),
        SQLITE_OK);
    cr_expect_neq(sqlite3_exec(db, "INSERT INTO Account (id) VALUES (1)", NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
}

Test(ddl_sqlite, foreign_keys_are_enforced_and_cascade)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (1, 'a@x'), (2, 'b@x');"
                "INSERT INTO Note (id, title, createdAt, updatedAt, ownerId) VALUES "
                "('n1', 't1', 'c', 'u', 1), ('n2', 't2', 'c', 'u', 2)");
    int rc = sqlite3_exec(db,
                          "INSERT INTO Note (id, title, createdAt, updatedAt, ownerId) "
                          "VALUES ('n3', 't', 'c', 'u', 99)",
                          NULL, NULL, NULL);
    cr_expect_eq(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_FOREIGNKEY, "rc %d", rc);
    exec_ok(db, "DELETE FROM Account WHERE id = 1");
    expect_text(db, "SELECT group_concat(id) FROM Note", "n2");
    sqlite3_close(db);
}

Test(ddl_sqlite, unique_indexes_are_enforced)
{
    sqlite3 *db = db_of(NOTES);
    exec_ok(db, "INSERT INTO Account (id, email) VALUES (1, 'a@x')");
    cr_expect_neq(
        sqlite3_exec(db, "INSERT INTO Account (id, email) VALUES (2, 'a@x')", NULL, NULL, NULL),
        SQLITE_OK);
    cr_expect_eq(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_UNIQUE);
    sqlite3_close(db);
}

Test(ddl_sqlite, maps_composite_keys_actions_and_local_models)
{
    const char *src = "model Org {\n"
                      "  id   Int @id\n"
                      "  name String @map(\"org_name\")\n"
                      "  @@map(\"orgs\")\n"
                      "}\n"
                      "model Member {\n"
                      "  orgId Int\n"
                      "  user  String\n"
                      "  org   Org @relation(fields: [orgId], references: [id], "
                      "onDelete: Restrict, onUpdate: Cascade)\n"
                      "  @@id([orgId, user])\n"
                      "}\n"
                      "model Draft {\n"
                      "  id Int @id\n"
                      "  @@local\n"
                      "}\n";
    char *ddl = ddl_of(src, "sqlite");
    expect_contains(ddl, "CREATE TABLE IF NOT EXISTS \"orgs\" (");
    expect_contains(ddl, "\"org_name\" BLOB /* String */ NOT NULL");
    expect_contains(ddl, "PRIMARY KEY (\"orgId\", \"user\")");
    expect_contains(ddl, "CONSTRAINT \"Member_orgId_fkey\" FOREIGN KEY (\"orgId\") REFERENCES "
                         "\"orgs\" (\"id\") ON DELETE RESTRICT ON UPDATE CASCADE");
    expect_contains(ddl, "CREATE TABLE IF NOT EXISTS \"Draft\" (");
    cstack_free(ddl);
    sqlite3 *db = db_of(src);
    exec_ok(db, "INSERT INTO orgs (id, org_name) VALUES (1, 'o');"
                "INSERT INTO Member (orgId, user) VALUES (1, 'u')");
    cr_expect_neq(sqlite3_exec(db, "DELETE FROM orgs", NULL, NULL, NULL), SQLITE_OK,
                  "RESTRICT keeps a referenced org");
    sqlite3_close(db);
}

Test(ddl_sqlite, cyclic_relations_render_and_run)
{
    const char *src = "model A {\n"
                      "  id  Int @id\n"
                      "  bId Int?\n"
                      "  b   B?  @relation(\"ab\", fields: [bId], references: [id])\n"
                      "  bs  B[] @relation(\"ba\")\n"
                      "}\n"
                      "model B {\n"
                      "  id  Int @id\n"
                      "  aId Int?\n"
                      "  a   A?  @relation(\"ba\", fields: [aId], references: [id])\n"
                      "  aList A[] @relation(\"ab\")\n"
                      "}\n";
    sqlite3 *db = db_of(src);
    exec_ok(db, "INSERT INTO A (id) VALUES (1); INSERT INTO B (id, aId) VALUES (1, 1);"
                "UPDATE A SET bId = 1");
    cr_expect_eq(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    sqlite3_close(db);
    char *pg = ddl_of(src, "postgres");
    expect_contains(pg, "ALTER TABLE \"A\" ADD CONSTRAINT \"A_bId_fkey\"");
    expect_contains(pg, "ALTER TABLE \"B\" ADD CONSTRAINT \"B_aId_fkey\"");
    cstack_free(pg);
}

Test(ddl_sqlite, internal_tables_are_idempotent_rowid_tables)
{
    sqlite3 *db = NULL;
    cs_buf b = CS_BUF_INIT;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(cs_sql_internal_ddl(&b), 0);
    exec_ok(db, b.data);
    exec_ok(db, b.data);
    cs_buf_free(&b);
    const char *tables[] = {"_cstack_meta", "_cstack_audit", "_cstack_outbox", "_cstack_sequence"};
    for (size_t i = 0; i < 4; i++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT count(*) FROM sqlite_master WHERE name = '%s'", tables[i]);
        cr_expect_eq(query_int(db, q), 1, "%s exists", tables[i]);
    }
    exec_ok(db, "INSERT INTO _cstack_outbox (event, model, pk, payload, at) "
                "VALUES ('Note.created', 'Note', '{}', '{}', 'now');"
                "INSERT INTO _cstack_audit (model, pk, op, before, after, at) "
                "VALUES ('Note', '{}', 'create', NULL, '{}', 'now');"
                "INSERT INTO _cstack_meta (key, value) VALUES ('schema_hash', 'h');"
                "INSERT INTO _cstack_sequence (model, value) VALUES ('Note', 1)");
    cr_expect_eq(query_int(db, "SELECT id FROM _cstack_outbox"), 1);
    exec_ok(db, "DELETE FROM _cstack_outbox; INSERT INTO _cstack_outbox "
                "(event, model, pk, payload, at) VALUES ('e', 'm', '{}', '{}', 'now')");
    cr_expect_eq(query_int(db, "SELECT id FROM _cstack_outbox"), 2, "ids are never reused");
    sqlite3_close(db);
}

Test(ddl_postgres, maps_types_defaults_and_constraints)
{
    char *ddl = ddl_of(NOTES, "postgres");
    expect_contains(ddl, "CREATE TABLE \"Account\" (\n"
                         "    \"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY NOT NULL,\n"
                         "    \"email\" TEXT NOT NULL,\n"
                         "    PRIMARY KEY (\"id\")\n"
                         ");\n");
    expect_contains(ddl, "\"id\" UUID NOT NULL DEFAULT gen_random_uuid(),");
    expect_contains(ddl, "\"title\" TEXT NOT NULL,");
    expect_contains(ddl, "\"body\" TEXT,");
    expect_contains(ddl, "\"status\" TEXT NOT NULL DEFAULT 'OPEN',");
    expect_contains(ddl, "\"price\" NUMERIC,");
    expect_contains(ddl, "\"tags\" JSONB,");
    expect_contains(ddl, "\"data\" BYTEA,");
    expect_contains(ddl, "\"pinned\" BOOLEAN NOT NULL DEFAULT false,");
    expect_contains(ddl, "\"score\" DOUBLE PRECISION NOT NULL DEFAULT 2,");
    expect_contains(ddl, "\"views\" BIGINT NOT NULL DEFAULT 0,");
    expect_contains(ddl, "\"quote\" TEXT NOT NULL DEFAULT 'it''s',");
    expect_contains(ddl, "\"createdAt\" TIMESTAMPTZ NOT NULL DEFAULT now(),");
    expect_contains(ddl, "\"updatedAt\" TIMESTAMPTZ NOT NULL,");
    expect_contains(ddl, "\"ownerId\" BIGINT NOT NULL,");
    expect_contains(ddl, "CONSTRAINT \"Note_status_check\" CHECK (\"status\" IN ('OPEN', "
                         "'DONE'))\n);");
    expect_contains(ddl, "CREATE UNIQUE INDEX \"Note_ownerId_title_key\" ON \"Note\" "
                         "(\"ownerId\", \"title\");\n");
    expect_contains(ddl, "CREATE INDEX \"Note_ownerId_createdAt_idx\" ON \"Note\" "
                         "(\"ownerId\", \"createdAt\");\n");
    expect_contains(ddl, "ALTER TABLE \"Note\" ADD CONSTRAINT \"Note_ownerId_fkey\" FOREIGN KEY "
                         "(\"ownerId\") REFERENCES \"Account\" (\"id\") ON DELETE CASCADE;\n");
    cr_expect_null(strstr(ddl, "BLOB"));
    cr_expect_null(strstr(ddl, "IF NOT EXISTS"));
    cr_expect_null(strstr(ddl, "/*"));
    /* Foreign keys come after every table, so cycles need no ordering. */
    const char *alter = strstr(ddl, "ALTER TABLE");
    cr_expect(alter && !strstr(alter, "CREATE TABLE"));
    cstack_free(ddl);
}

Test(ddl_postgres, string_uuid_defaults_are_cast_to_text)
{
    char *ddl = ddl_of(
        "model T {\n  id String @id @default(uuid())\n  c Cuid @default(cuid())\n}\n", "postgres");
    expect_contains(ddl, "\"id\" TEXT NOT NULL DEFAULT gen_random_uuid()::text,");
    expect_contains(ddl, "\"c\" TEXT NOT NULL,");
    cstack_free(ddl);
}

Test(ddl_api, unknown_dialect_is_einval)
{
    cstack_schema *s = t_schema(NOTES);
    char *out = (char *)1;
    cr_expect_eq(cstack_schema_ddl(s, "mysql", &out), CSTACK_EINVAL);
    cr_expect_null(out);
    cr_expect_eq(cstack_schema_ddl(s, NULL, &out), CSTACK_EINVAL);
    cr_expect_eq(cstack_schema_ddl(NULL, "sqlite", &out), CSTACK_EINVAL);
    cr_expect_eq(cstack_schema_ddl(s, "sqlite", NULL), CSTACK_EINVAL);
    cstack_schema_free(s);
}

Test(ddl_api, public_ddl_matches_the_internal_renderer)
{
    cstack_schema *s = t_schema(NOTES);
    cs_buf b = CS_BUF_INIT;
    char *out = NULL;
    cr_assert_eq(cs_sql_schema_ddl(&b, s, CS_DIALECT_SQLITE), 0);
    cr_assert_eq(cstack_schema_ddl(s, "sqlite", &out), 0);
    cr_expect_str_eq(out, b.data);
    cstack_free(out);
    cs_buf_free(&b);
    cstack_schema_free(s);
}

Test(ddl_api, model_ddl_creates_one_table_with_its_indexes)
{
    cstack_schema *s = t_schema(NOTES);
    cs_buf b = CS_BUF_INIT;
    const cs_model *acct = &s->models[cs_model_find(s, "Account")];
    cr_assert_eq(cs_sql_model_ddl(&b, s, acct, CS_DIALECT_SQLITE), 0);
    expect_contains(b.data, "CREATE TABLE IF NOT EXISTS \"Account\"");
    expect_contains(b.data, "CREATE UNIQUE INDEX IF NOT EXISTS");
    cr_expect_null(strstr(b.data, "\"Note\""));
    cs_buf_free(&b);
    cstack_schema_free(s);
}

Test(ddl_api, dependency_order_is_stable_under_cycles)
{
    const char *src = "model A {\n  id Int @id\n  aId Int?\n"
                      "  parent A? @relation(\"t\", fields: [aId], references: [id])\n"
                      "  kids A[] @relation(\"t\")\n}\n"
                      "model B {\n  id Int @id\n  cId Int\n"
                      "  c C @relation(fields: [cId], references: [id])\n}\n"
                      "model C {\n  id Int @id\n  bs B[]\n}\n";
    cstack_schema *s = t_schema(src);
    int order[3];
    cr_assert_eq(cs_sql_model_order(s, order), 0);
    cr_expect_str_eq(s->models[order[0]].name, "A");
    cr_expect_str_eq(s->models[order[1]].name, "C");
    cr_expect_str_eq(s->models[order[2]].name, "B");
    cstack_schema_free(s);
}
