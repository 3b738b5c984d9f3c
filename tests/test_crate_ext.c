/*
 * test_crate_ext.c -- CrateStack's PostgreSQL extension types in the
 * embedded runtime (docs/schema.md, "Vector and Geography"): Vector(n) is a
 * Float list of exactly n float32 values, Geography/Geometry a Bytes field
 * holding one EWKB geometry of the declared shape.  Each is checked on the
 * typed API and the envelope here; test_crate_server.c shows the sync
 * server's checks of pushed rows.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cstack.h"
#include "support.h"

static const char *DOCS = "extension pgvector {\n}\n"
                          "model Doc {\n  id Int @id\n  embedding Vector(3)\n"
                          "  draft Vector(2)?\n}\n";

static void expect_refused(cstack *db, const char *model, const cstack_data *data,
                           const char *words)
{
    int rc = cstack_create(db, model, data, NULL);
    cr_expect_eq(rc, CSTACK_EVALIDATION, "%s: rc %d (%s)", words, rc, cstack_errmsg(db));
    cr_expect(strstr(cstack_errmsg(db), words) != NULL, "'%s' lacks '%s'", cstack_errmsg(db),
              words);
}

static void expect_text(cstack *db, const char *model, int64_t id, const char *field,
                        const char *want)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, model, DATA(FV("id", I(id))), NULL, 0, &r), 0, "%s",
                 cstack_errmsg(db));
    cr_assert_not_null(r);
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, field, &v), 0);
    cr_expect(v.type == CSTACK_TEXT && v.u.s.n == strlen(want) &&
                  memcmp(v.u.s.p, want, v.u.s.n) == 0,
              "%s is %.*s, not %s", field, (int)v.u.s.n, v.u.s.p, want);
    cstack_row_free(r);
}

/* ---- Vector(n) ------------------------------------------------------------------- */

Test(crate_ext, a_vector_holds_exactly_its_dimension_of_numbers)
{
    cstack *db = t_open_mem(DOCS);
    cr_assert_eq(cstack_create(db, "Doc",
                               DATA(FV("id", I(1)), FV("embedding", T("[ 1, 2.5 , -3e-2 ]"))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    expect_text(db, "Doc", 1, "embedding", "[1,2.5,-3e-2]");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("[1, 2]"))),
                   "field 'embedding' (Vector(3)) has 2 elements, not 3");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("[1, 2, 3, 4]"))),
                   "has 4 elements, not 3");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("[1, \"2\", 3]"))),
                   "field 'embedding' (Vector(3)): element 1 is not a number");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("[1, null, 3]"))),
                   "element 1 is not a number");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("[1, 2, 1e39]"))),
                   "element 2 is outside the 32-bit float range");
    expect_refused(db, "Doc", DATA(FV("id", I(2)), FV("embedding", T("{\"x\": 1}"))),
                   "field 'embedding' (Vector(3)) is a JSON array of 3 numbers");
    /* An update is checked like a create; a null optional vector is fine. */
    int rc = cstack_update(db, "Doc", DATA(FV("id", I(1))), DATA(FV("embedding", T("[1]"))), NULL);
    cr_expect_eq(rc, CSTACK_EVALIDATION, "%s", cstack_errmsg(db));
    cr_expect(strstr(cstack_errmsg(db), "has 1 elements, not 3"), "%s", cstack_errmsg(db));
    expect_text(db, "Doc", 1, "embedding", "[1,2.5,-3e-2]");
    cr_expect_eq(
        cstack_update(db, "Doc", DATA(FV("id", I(1))), DATA(FV("draft", T("[0.5, 0.25]"))), NULL),
        0, "%s", cstack_errmsg(db));
    expect_text(db, "Doc", 1, "draft", "[0.5,0.25]");
    cr_expect_eq(
        cstack_update(db, "Doc", DATA(FV("id", I(1))), DATA(FV("draft", cstack_v_null())), NULL), 0,
        "%s", cstack_errmsg(db));
    /* It filters like any Float list. */
    int64_t n = -1;
    cstack_filter *f = cstack_filter_cmp("embedding", CSTACK_OP_HAS, 0, cstack_v_float(2.5));
    cr_assert_eq(cstack_count(db, "Doc", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    cstack_close(db);
}

static char *call(cstack *db, const char *req)
{
    char *resp = NULL;
    size_t n = 0;
    cr_assert_eq(cstack_envelope_call(db, req, strlen(req), &resp, &n), 0);
    return resp;
}

static void expect_call(cstack *db, const char *req, const char *want)
{
    char *resp = call(db, req);
    cr_expect(strstr(resp, want) != NULL, "%s\n-> %s\nlacks %s", req, resp, want);
    cstack_free(resp);
}

Test(crate_ext, the_envelope_takes_a_vector_as_an_array_and_names_the_field_when_it_is_wrong)
{
    cstack *db = t_open_mem(DOCS);
    expect_call(db,
                "{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"embedding\":[0.1, 0.2, 0.3]}}}",
                "\"embedding\":[0.1,0.2,0.3]");
    expect_call(db,
                "{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"embedding\":[0.1, 0.2]}}}",
                "\"code\":\"validation\"");
    expect_call(db,
                "{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"embedding\":[0.1, 0.2]}}}",
                "field 'embedding' (Vector(3)) has 2 elements, not 3");
    expect_call(db, "{\"model\":\"Doc\",\"kind\":\"count\",\"payload\":null}", "{\"count\":1}");
    cstack_close(db);
}

/* ---- Geography / Geometry (EWKB) ------------------------------------------------ */

static const char *ZONES = "extension postgis {\n}\n"
                           "model Zone {\n  id Int @id\n"
                           "  area Geography(Polygon, 4326)\n"
                           "  pickup Geography(point, 4326)?\n"
                           "  peak Geometry(GeometryZ)?\n"
                           "  any Geography?\n}\n";

typedef struct wkb {
    unsigned char b[512];
    size_t n;
} wkb;

static void put(wkb *w, const void *p, size_t n)
{
    cr_assert(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

/* Little-endian on the test machines; the byte order byte says so. */
static void u32(wkb *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}

static void dbl(wkb *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++) {
        unsigned char c = (unsigned char)(u >> (8 * i));
        put(w, &c, 1);
    }
}

/* The header of an EWKB geometry: little-endian, type, SRID when srid > 0. */
static void head(wkb *w, uint32_t type, uint32_t srid)
{
    unsigned char le = 1;
    put(w, &le, 1);
    u32(w, type | (srid ? 0x20000000u : 0));
    if (srid)
        u32(w, srid);
}

static wkb point(uint32_t srid, double x, double y)
{
    wkb w = {0};
    head(&w, 1, srid);
    dbl(&w, x);
    dbl(&w, y);
    return w;
}

/* A square ring, closed unless `open`. */
static wkb square(uint32_t srid, bool open)
{
    static const double c[5][2] = {{0, 0}, {2, 0}, {2, 2}, {0, 2}, {0, 0}};
    wkb w = {0};
    head(&w, 3, srid);
    u32(&w, 1);
    u32(&w, 5);
    for (int i = 0; i < 5; i++) {
        dbl(&w, c[i][0] + (open && i == 4 ? 1 : 0));
        dbl(&w, c[i][1]);
    }
    return w;
}

#define BLOB(w) cstack_v_blob((w).b, (w).n)

/* A zone whose `field` is w (and whose area is a valid square otherwise). */
static void expect_geo_refused(cstack *db, const char *field, wkb w, const char *words)
{
    wkb area = square(4326, false);
    bool is_area = strcmp(field, "area") == 0;
    cstack_field_value f[] = {FV("id", I(9)), FV("area", is_area ? BLOB(w) : BLOB(area)),
                              FV(field, BLOB(w))};
    cstack_data d = {f, is_area ? 2 : 3};
    expect_refused(db, "Zone", &d, words);
}

Test(crate_ext, a_geography_holds_one_ewkb_geometry_of_its_declared_shape)
{
    cstack *db = t_open_mem(ZONES);
    wkb area = square(4326, false), pickup = point(0, 11.5, 48.1);
    cr_assert_eq(
        cstack_create(db, "Zone",
                      DATA(FV("id", I(1)), FV("area", BLOB(area)), FV("pickup", BLOB(pickup))),
                      NULL),
        0, "a closed ring with SRID 4326, a point without SRID (read as 4326): %s",
        cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "Zone", DATA(FV("id", I(1))), NULL, 0, &r), 0);
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "area", &v), 0);
    cr_expect(v.type == CSTACK_BLOB && v.u.s.n == area.n && memcmp(v.u.s.p, area.b, area.n) == 0,
              "the EWKB is stored as given");
    cstack_row_free(r);

    expect_geo_refused(db, "area", point(4326, 1, 2),
                       "field 'area' breaks Geography(Polygon, 4326): the value is a Point");
    expect_geo_refused(db, "area", square(3857, false), "the value has SRID 3857");
    expect_geo_refused(db, "area", square(4326, true), "polygon ring that is not closed");
    wkb cut = square(4326, false);
    cut.n -= 3;
    expect_geo_refused(db, "area", cut, "the value has a count larger than the bytes");
    wkb extra = square(4326, false);
    put(&extra, "\0", 1);
    expect_geo_refused(db, "area", extra, "the value has bytes after the geometry");
    wkb text = {{'P', 'O', 'I', 'N', 'T'}, 5};
    expect_geo_refused(db, "pickup", text, "is not WKB");
    /* A 3D point where a 2D one is declared, as PostGIS refuses it. */
    wkb z = {0};
    head(&z, 1 | 0x80000000u, 4326);
    dbl(&z, 1);
    dbl(&z, 2);
    dbl(&z, 3);
    expect_geo_refused(db, "pickup", z, "Geography(Point, 4326): the value has XYZ coordinates");
    cr_expect_eq(cstack_create(db, "Zone",
                               DATA(FV("id", I(2)), FV("area", BLOB(area)), FV("peak", BLOB(z))),
                               NULL),
                 0, "Geometry(GeometryZ) takes any 3D geometry: %s", cstack_errmsg(db));
    /* ISO WKB writes the dimensions in the type code (1001: Point Z). */
    wkb iso = {0};
    head(&iso, 1001, 0);
    dbl(&iso, 1);
    dbl(&iso, 2);
    dbl(&iso, 3);
    cr_expect_eq(cstack_create(db, "Zone",
                               DATA(FV("id", I(3)), FV("area", BLOB(area)), FV("peak", BLOB(iso))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    /* A bare Geography takes any geometry; a collection nests members. */
    wkb coll = {0};
    head(&coll, 7, 4326);
    u32(&coll, 2);
    wkb a = point(0, 1, 2), b = square(0, false);
    put(&coll, a.b, a.n);
    put(&coll, b.b, b.n);
    cr_expect_eq(cstack_create(db, "Zone",
                               DATA(FV("id", I(4)), FV("area", BLOB(area)), FV("any", BLOB(coll))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    wkb nested_srid = {0};
    head(&nested_srid, 4, 4326);
    u32(&nested_srid, 1);
    wkb p = point(4326, 1, 2);
    put(&nested_srid, p.b, p.n);
    expect_geo_refused(db, "any", nested_srid, "an SRID on a nested geometry");
    cstack_close(db);
}

Test(crate_ext, the_envelope_takes_a_geography_as_base64_and_refuses_a_wrong_shape)
{
    cstack *db = t_open_mem(ZONES);
    /* AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA== is POINT(1 2) with SRID 4326. */
    expect_call(db,
                "{\"model\":\"Zone\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"area\":\"AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA==\"}}}",
                "field 'area' breaks Geography(Polygon, 4326): the value is a Point");
    expect_call(db,
                "{\"model\":\"Zone\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"area\":\"AQMAACDmEAAAAQAAAAUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAA"
                "AAAAAABAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAA==\","
                "\"pickup\":\"AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA==\"}}}",
                "\"pickup\":\"AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA==\"");
    cstack_close(db);
}

Test(crate_ext, vector_and_geography_spell_their_arguments_canonically)
{
    cstack_schema *a = t_schema("extension pgvector {\n}\nextension postgis {\n}\n"
                                "model M {\n  id Int @id\n  v Vector(4)\n"
                                "  g Geography(pointzm, 4326)?\n}\n");
    cstack_schema *b = t_schema("extension postgis {\n}\nextension pgvector {\n}\n"
                                "model M {\n  id Int @id\n  v Vector( 4 )\n"
                                "  g Geography(PointZM,4326)?\n}\n");
    cstack_schema *c = t_schema("extension pgvector {\n}\nextension postgis {\n}\n"
                                "model M {\n  id Int @id\n  v Vector(5)\n"
                                "  g Geography(PointZM, 4326)?\n}\n");
    cr_expect_str_eq(cstack_schema_hash(a), cstack_schema_hash(b));
    cr_expect_str_neq(cstack_schema_hash(a), cstack_schema_hash(c),
                      "the dimension is part of the schema");
    cstack_schema_free(a);
    cstack_schema_free(b);
    cstack_schema_free(c);
}
