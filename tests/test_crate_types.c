/*
 * test_crate_types.c -- the CrateStack data-model constructs measured on
 * CrateStack's own schemas (docs/schema.md, "CrateStack compatibility"):
 * BigInt, exact integer @range bounds, @length on Bytes, the deletedAt that
 * an argument-less @@soft_delete adds, @computed fields (no column) and
 * @db_enforce.  The corpus fixtures in tests/schemas/crate/ pin their
 * diagnostics; these tests show their effect on reads and writes.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cstack.h"
#include "schema/schema.h"
#include "support.h"

static void expect_invalid(cstack *db, const char *model, const cstack_data *data, const char *rule)
{
    int rc = cstack_create(db, model, data, NULL);
    cr_expect_eq(rc, CSTACK_EVALIDATION, "%s: rc %d (%s)", rule, rc, cstack_errmsg(db));
    cr_expect(strstr(cstack_errmsg(db), rule) != NULL, "'%s' lacks '%s'", cstack_errmsg(db), rule);
}

static int64_t int_of(cstack *db, const char *model, int64_t id, const char *field)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, model, DATA(FV("id", I(id))), NULL, 0, &r), 0, "%s",
                 cstack_errmsg(db));
    cr_assert_not_null(r, "row %lld", (long long)id);
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, field, &v), 0);
    cstack_row_free(r);
    cr_assert_eq(v.type, CSTACK_INT);
    return v.u.i;
}

/* ---- BigInt and exact bounds ---------------------------------------------------- */

static const char *LEDGER = "model Ledger {\n"
                            "  id      BigInt @id\n"
                            "  wide    BigInt @range(min: -9223372036854775807, "
                            "max: 9223372036854775806) @db_enforce\n"
                            "  small   BigInt? @range(min: 0, max: 1000000)\n"
                            "  version BigInt @version\n"
                            "}\n";

Test(crate_types, bigint_fields_are_64_bit_ints_end_to_end)
{
    cstack *db = t_open_mem(LEDGER);
    const int64_t id = INT64_C(9007199254740993); /* 2^53 + 1: no double holds it */
    cr_assert_eq(
        cstack_create(db, "Ledger", DATA(FV("id", I(id)), FV("wide", I(INT64_MAX - 1))), NULL), 0,
        "%s", cstack_errmsg(db));
    cr_expect_eq(int_of(db, "Ledger", id, "wide"), INT64_MAX - 1);
    cr_expect_eq(int_of(db, "Ledger", id, "version"), 1, "@version on a BigInt counts");
    cr_assert_eq(cstack_update(db, "Ledger", DATA(FV("id", I(id))),
                               DATA(FV("wide", I(INT64_MIN + 1))), NULL),
                 0, "%s", cstack_errmsg(db));
    cr_expect_eq(int_of(db, "Ledger", id, "wide"), INT64_MIN + 1);
    cr_expect_eq(int_of(db, "Ledger", id, "version"), 2);
    cstack_close(db);
}

Test(crate_types, int_range_bounds_are_compared_exactly_at_the_ends_of_int64)
{
    cstack *db = t_open_mem(LEDGER);
    /* As doubles both ends round to +-2^63 and these would pass. */
    expect_invalid(db, "Ledger", DATA(FV("id", I(1)), FV("wide", I(INT64_MAX))),
                   "field 'wide' breaks @range(min: -9223372036854775807, max: "
                   "9223372036854775806)");
    expect_invalid(db, "Ledger", DATA(FV("id", I(1)), FV("wide", I(INT64_MIN))),
                   "field 'wide' breaks @range");
    expect_invalid(db, "Ledger", DATA(FV("id", I(1)), FV("wide", I(0)), FV("small", I(1000001))),
                   "field 'small' breaks @range(min: 0, max: 1000000)");
    cr_expect_eq(cstack_create(db, "Ledger",
                               DATA(FV("id", I(1)), FV("wide", I(0)), FV("small", I(1000000))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    cstack_close(db);
}

Test(crate_types, bigint_reads_as_int_in_the_schema)
{
    cstack_schema *s = t_schema(LEDGER);
    const cs_model *m = &s->models[0];
    for (size_t i = 0; i < m->nfields; i++) {
        cr_expect_eq(m->fields[i].type, CS_T_INT, "%s", m->fields[i].name);
        cr_expect_str_eq(m->fields[i].type_name, "Int");
    }
    cstack_schema_free(s);
}

/* ---- @length on Bytes ------------------------------------------------------------- */

Test(crate_types, length_on_bytes_counts_bytes)
{
    cstack *db = t_open_mem("model Key {\n  id Int @id\n"
                            "  digest Bytes @length(min: 4, max: 4)\n"
                            "  salt Bytes? @length(max: 2)\n}\n");
    expect_invalid(db, "Key", DATA(FV("id", I(1)), FV("digest", cstack_v_blob("abc", 3))),
                   "field 'digest' breaks @length(min: 4, max: 4)");
    expect_invalid(db, "Key",
                   DATA(FV("id", I(1)), FV("digest", cstack_v_blob("abcd", 4)),
                        FV("salt", cstack_v_blob("xyz", 3))),
                   "field 'salt' breaks @length(max: 2)");
    /* Bytes, not characters: four bytes that are not UTF-8 text. */
    cr_expect_eq(
        cstack_create(db, "Key",
                      DATA(FV("id", I(1)), FV("digest", cstack_v_blob("\xff\0\xfe\x01", 4))), NULL),
        0, "%s", cstack_errmsg(db));
    cstack_close(db);
}

/* ---- @@soft_delete without a declared field ---------------------------------------- */

static const char *IMPLICIT = "model Customer {\n  id Int @id\n  name String\n"
                              "  @@soft_delete\n}\n";
static const char *EXPLICIT = "model Customer {\n  id Int @id\n  name String\n"
                              "  deletedAt DateTime?\n  @@soft_delete\n}\n";

Test(crate_types, soft_delete_without_a_field_adds_deletedAt_like_crate_stack)
{
    cstack_schema *s = t_schema(IMPLICIT);
    const cs_model *m = &s->models[0];
    int fi = cs_field_find(m, "deletedAt");
    cr_assert_geq(fi, 0, "deletedAt is added");
    cr_expect_eq(m->soft_delete, fi);
    cr_expect_eq(m->fields[fi].type, CS_T_DATETIME);
    cr_expect(m->fields[fi].optional);
    cstack_schema *e = t_schema(EXPLICIT);
    cr_expect_str_eq(cstack_schema_hash(s), cstack_schema_hash(e),
                     "the same schema as one that declares it");
    cstack_schema_free(e);
    cstack_schema_free(s);

    cstack *db = t_open_mem(IMPLICIT);
    cr_assert_eq(cstack_create(db, "Customer", DATA(FV("id", I(1)), FV("name", T("Ann"))), NULL), 0,
                 "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_create(db, "Customer", DATA(FV("id", I(2)), FV("name", T("Bo"))), NULL), 0,
                 "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_delete(db, "Customer", DATA(FV("id", I(1))), NULL), 0, "%s",
                 cstack_errmsg(db));
    int64_t n = -1;
    cr_expect_eq(cstack_count(db, "Customer", NULL, &n), 0);
    cr_expect_eq(n, 1, "the deleted row is hidden from reads");
    cstack_row *r = NULL;
    cr_expect_eq(cstack_find_unique(db, "Customer", DATA(FV("id", I(1))), NULL, 0, &r), 0);
    cr_expect_null(r, "find_unique does not see it either");
    cstack_row_free(r);
    cstack_close(db);
}

/* ---- @computed -------------------------------------------------------------------- */

Test(crate_types, computed_fields_have_no_column)
{
    cstack *db = t_open_mem("type Size {\n  width Int?\n}\n"
                            "model Photo {\n  id Int @id\n  key String\n"
                            "  thumb String @computed(params: Size?)\n"
                            "  caption String @computed\n}\n");
    cr_assert_eq(cstack_create(db, "Photo", DATA(FV("id", I(1)), FV("key", T("k"))), NULL), 0,
                 "a computed field is not required on create: %s", cstack_errmsg(db));
    cr_expect_neq(cstack_create(db, "Photo",
                                DATA(FV("id", I(2)), FV("key", T("k")), FV("thumb", T("x"))), NULL),
                  0, "nor can it be written");
    cr_expect(strstr(cstack_errmsg(db), "thumb") != NULL, "%s", cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "Photo", DATA(FV("id", I(1))), NULL, 0, &r), 0);
    cstack_value v;
    cr_expect_eq(cstack_row_get(r, "caption", &v), CSTACK_ENOTFOUND, "and rows have no such field");
    cstack_row_free(r);
    cstack_close(db);
}

/* ---- Bytes[] ------------------------------------------------------------------------ */

Test(crate_types, bytes_lists_hold_canonical_base64_and_filter_by_bytes)
{
    cstack *db = t_open_mem("model Sample {\n  id Int @id\n  chunks Bytes[]\n}\n");
    /* "AQI=" is 0x01 0x02, "/w==" is 0xff: elements are base64 strings. */
    cr_assert_eq(cstack_create(db, "Sample",
                               DATA(FV("id", I(1)), FV("chunks", T("[\"AQI=\", \"/w==\"]"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "Sample", DATA(FV("id", I(1))), NULL, 0, &r), 0);
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "chunks", &v), 0);
    cr_expect_eq(v.type, CSTACK_TEXT);
    cr_expect(v.u.s.n == 15 && memcmp(v.u.s.p, "[\"AQI=\",\"/w==\"]", 15) == 0, "%.*s",
              (int)v.u.s.n, v.u.s.p);
    cstack_row_free(r);
    expect_invalid(db, "Sample", DATA(FV("id", I(2)), FV("chunks", T("[\"not base64!\"]"))),
                   "element 0 is not base64");
    int64_t n = -1;
    cstack_filter *f = cstack_filter_cmp("chunks", CSTACK_OP_HAS, 0, cstack_v_blob("\xff", 1));
    cr_assert_eq(cstack_count(db, "Sample", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1, "has finds the row by the element's bytes");
    cstack_filter_free(f);
    f = cstack_filter_cmp("chunks", CSTACK_OP_HAS, 0, cstack_v_blob("\x01", 1));
    cr_assert_eq(cstack_count(db, "Sample", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 0);
    cstack_filter_free(f);
    cstack_close(db);
}
