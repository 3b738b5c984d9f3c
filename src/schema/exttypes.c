/*
 * exttypes.c -- CrateStack's column types that PostgreSQL extensions
 * provide, given semantics the embedded runtime can keep.
 *
 *   Vector(n)                   pgvector: n single-precision floats.  Stored
 *                               as a Float list (lists.c): one column, a
 *                               compact JSON array, which must have exactly
 *                               n elements, each a JSON number within float32
 *                               range.  1 <= n <= 16000 (pgvector's limit).
 *   Geography(Subtype, SRID)    PostGIS.  CrateStack's generated models hold
 *   Geometry(Subtype, SRID)     these columns as bytes, the geometry's EWKB
 *                               (what ST_AsEWKB returns), so the field is a
 *                               Bytes field whose value must be one
 *                               well-formed (E)WKB geometry of the declared
 *                               shape.  Both arguments are optional
 *                               (`Geography`, `Geography(Point)`); an SRID
 *                               needs a subtype before it.
 *
 * Checked on every write (cs_field_canon / cs_field_check, so the store,
 * the envelope and the sync server alike): a Vector's length and element
 * type; a geometry's byte order, type code (the subtype and its Z/M
 * dimensions, ISO 1000-offset codes or EWKB flags), SRID (when the value
 * carries none, a Geography reads it as 4326 as PostGIS does, a Geometry as
 * 0), every count against the bytes present, ring closure (at least 4
 * points, first = last), no trailing bytes.  Coordinates themselves are not
 * checked (ranges, self-intersection): PostGIS decides those on the server.
 *
 * No operator comes with them: distance ordering and spatial predicates are
 * PostgreSQL operators, which SQLite does not have.  A Vector still filters
 * with equals and has/hasSome/hasEvery like any Float list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/schema_int.h"

#define VECTOR_MAX_DIM 16000 /* pgvector's own limit */
#define SRID_MAX 999999      /* PostGIS's */
#define WKB_MAX_DEPTH 32     /* nested geometry collections */

bool cs_ext_type_name(const char *name)
{
    return strcmp(name, "Vector") == 0 || strcmp(name, "Geography") == 0 ||
           strcmp(name, "Geometry") == 0;
}

bool cs_parse_ext_args(cs_parse *p, cs_pfield *pf)
{
    if (!cs_accept(p, T_LPAREN))
        return true;
    pf->ext_args = true;
    while (cs_peek(p)->kind != T_RPAREN) {
        const cs_token *t = cs_peek(p);
        if (t->kind != T_IDENT && t->kind != T_NUMBER) {
            cs_err_expected(p, "a type argument (a name or a number) or ')'");
            return false;
        }
        if (pf->ext_n < sizeof pf->ext_arg / sizeof pf->ext_arg[0])
            pf->ext_arg[pf->ext_n] = t;
        pf->ext_n++;
        cs_next(p);
        if (!cs_accept(p, T_COMMA))
            break;
    }
    if (!cs_accept(p, T_RPAREN)) {
        cs_err_expected(p, "',' or ')' after the type's argument");
        return false;
    }
    return true;
}

/* ---- resolution ---------------------------------------------------------------- */

/* A whole decimal number token in [lo, hi], or -1. */
static long int_arg(const cs_token *t, long lo, long hi)
{
    if (t->kind != T_NUMBER || t->len > 12)
        return -1;
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)t->len, t->start);
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    return errno || *end || v < lo || v > hi ? -1 : v;
}

static void set_type_name(cs_parse *p, cs_field *f, const char *name)
{
    char *n = cs_xstrdup(p, name);
    if (n) {
        free(f->type_name);
        f->type_name = n;
    }
}

static void resolve_vector(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf)
{
    long n = pf->ext_n == 1 ? int_arg(pf->ext_arg[0], 1, VECTOR_MAX_DIM) : -1;
    if (n < 0) {
        cs_diag(p->diags, pf->ext_n ? pf->ext_arg[0]->pos : pf->type_pos,
                "field '%s.%s': Vector takes one dimension, a whole number from 1 to %d "
                "(Vector(1536))",
                owner, f->name, VECTOR_MAX_DIM);
        pf->bad_type = true;
        return;
    }
    char name[32];
    snprintf(name, sizeof name, "Vector(%ld)", n);
    set_type_name(p, f, name);
    f->type = CS_T_JSON;
    f->type_index = -1;
    f->list = true;
    f->elem = CS_T_FLOAT;
    f->elem_index = -1;
    f->vec_dim = (int)n;
}

static const char *const GEO_KINDS[] = {
    "Geometry",   "Point",           "LineString",   "Polygon",
    "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"};
static const char *const GEO_DIMS[] = {"", "Z", "M", "ZM"};

/* `Polygon`, `pointzm`, ... (any case, as PostGIS takes them): the WKB type
 * code (0: Geometry, any) and the dimensions; false when not a subtype. */
static bool geo_subtype(const cs_token *t, unsigned char *kind, signed char *dims)
{
    if (t->kind != T_IDENT)
        return false;
    for (size_t k = 0; k < sizeof GEO_KINDS / sizeof GEO_KINDS[0]; k++) {
        size_t n = strlen(GEO_KINDS[k]);
        if (t->len < n || strncasecmp(t->start, GEO_KINDS[k], n) != 0)
            continue;
        for (size_t d = 0; d < 4; d++) {
            if (t->len == n + strlen(GEO_DIMS[d]) &&
                strncasecmp(t->start + n, GEO_DIMS[d], t->len - n) == 0) {
                *kind = (unsigned char)k;
                /* A bare `Geometry` subtype leaves the dimensions free too. */
                *dims = k == 0 && d == 0 ? -1 : (signed char)d;
                return true;
            }
        }
    }
    return false;
}

static void resolve_spatial(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf)
{
    cs_checks *k = &f->checks;
    const char *type = f->type_name;
    unsigned char kind = 0;
    signed char dims = -1;
    long srid = 0;
    const char *why = NULL;
    cs_pos at = pf->ext_n ? pf->ext_arg[0]->pos : pf->type_pos;
    if (pf->ext_args && pf->ext_n == 0)
        why = "takes a geometry subtype and an SRID, or nothing";
    else if (pf->ext_n > 2)
        why = "takes at most two arguments, a geometry subtype and an SRID";
    else if (pf->ext_n && pf->ext_arg[0]->kind == T_NUMBER)
        why = "cannot take an SRID without a geometry subtype before it";
    else if (pf->ext_n && !geo_subtype(pf->ext_arg[0], &kind, &dims))
        why = "has an unknown geometry subtype (Point, LineString, Polygon, MultiPoint, "
              "MultiLineString, MultiPolygon, GeometryCollection or Geometry, each with an "
              "optional Z, M or ZM)";
    else if (pf->ext_n == 2 && (srid = int_arg(pf->ext_arg[1], 1, SRID_MAX)) < 0) {
        why = "takes an SRID from 1 to 999999 as its second argument";
        at = pf->ext_arg[1]->pos;
    }
    if (why) {
        cs_diag(p->diags, at, "field '%s.%s': %s %s", owner, f->name, type, why);
        pf->bad_type = true;
        return;
    }
    char name[64];
    if (pf->ext_n == 0)
        snprintf(name, sizeof name, "%s", type);
    else if (srid)
        snprintf(name, sizeof name, "%s(%s%s, %ld)", type, GEO_KINDS[kind],
                 GEO_DIMS[dims < 0 ? 0 : dims], srid);
    else
        snprintf(name, sizeof name, "%s(%s%s)", type, GEO_KINDS[kind],
                 GEO_DIMS[dims < 0 ? 0 : dims]);
    k->geo = true;
    k->geo_geography = strcmp(type, "Geography") == 0;
    k->geo_kind = kind;
    k->geo_dims = dims;
    k->geo_srid = (int)srid;
    set_type_name(p, f, name);
    f->type = CS_T_BYTES;
    f->type_index = -1;
}

void cs_ext_resolve(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf, bool auth)
{
    bool vector = strcmp(f->type_name, "Vector") == 0;
    const char *ext = vector ? "pgvector" : "postgis";
    if (auth) {
        cs_diag(p->diags, pf->type_pos,
                "auth field '%s.%s' cannot have the column type %s (a claim is a scalar or an "
                "enum)",
                owner, f->name, f->type_name);
    } else if (f->list) {
        cs_diag(p->diags, pf->type_pos,
                "field '%s.%s' cannot be a list of %s (PostgreSQL has no such column type)", owner,
                f->name, f->type_name);
    } else if (!(vector ? p->has_pgvector : p->has_postgis)) {
        cs_diag(p->diags, pf->type_pos,
                "field '%s.%s' has type %s, which needs `extension %s { }` in the schema (as "
                "CrateStack requires)",
                owner, f->name, f->type_name, ext);
    } else {
        if (vector)
            resolve_vector(p, owner, f, pf);
        else
            resolve_spatial(p, owner, f, pf);
        return;
    }
    pf->bad_type = true;
}

/* ---- EWKB --------------------------------------------------------------------- */

typedef struct wkb {
    const unsigned char *b;
    size_t n, off;
    char *why;
    size_t whylen;
} wkb;

static bool fail(wkb *w, const char *fmt, const char *arg)
{
    snprintf(w->why, w->whylen, fmt, arg);
    return false;
}

static bool u32(wkb *w, bool le, uint32_t *out)
{
    if (w->n - w->off < 4)
        return fail(w, "%s", "ends early");
    const unsigned char *q = w->b + w->off;
    *out = le ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24
              : (uint32_t)q[3] | (uint32_t)q[2] << 8 | (uint32_t)q[1] << 16 | (uint32_t)q[0] << 24;
    w->off += 4;
    return true;
}

/* `count` points of `dims` coordinates; a ring (closed) when `ring`. */
static bool points(wkb *w, uint32_t count, int ncoord, bool ring)
{
    size_t size = (size_t)ncoord * 8;
    if ((w->n - w->off) / size < count)
        return fail(w, "%s", "has a count larger than the bytes that follow");
    if (ring && count > 0 && count < 4)
        return fail(w, "%s", "has a polygon ring of fewer than 4 points");
    if (ring && count > 0 && memcmp(w->b + w->off, w->b + w->off + (count - 1) * size, size) != 0)
        return fail(w, "%s",
                    "has a polygon ring that is not closed (its first and last points differ)");
    w->off += count * size;
    return true;
}

/* One geometry at w->off.  `want`: the type code it must have (0: any);
 * `dims`: the dimensions it must have (-1: any, set from the first one). */
static bool geometry(wkb *w, unsigned want, int *dims, int depth, int32_t *srid, bool top)
{
    if (depth > WKB_MAX_DEPTH)
        return fail(w, "%s", "nests geometry collections too deeply");
    if (w->off >= w->n)
        return fail(w, "%s", "ends early");
    unsigned char order = w->b[w->off++];
    if (order > 1)
        return fail(w, "%s", "is not WKB (its first byte is not a byte order)");
    bool le = order == 1;
    uint32_t t;
    if (!u32(w, le, &t))
        return false;
    int d = (t & 0x80000000u ? 1 : 0) | (t & 0x40000000u ? 2 : 0);
    bool has_srid = t & 0x20000000u;
    uint32_t code = t & 0x0fffffffu;
    if (code >= 1000 && code < 4000) { /* ISO WKB: 1000 Z, 2000 M, 3000 ZM */
        d |= (int)(code / 1000);
        code %= 1000;
    }
    if (code < 1 || code > 7)
        return fail(w, "%s", "has an unknown geometry type code");
    if (want && code != want)
        return fail(w, "is a %s", GEO_KINDS[code]);
    if (*dims >= 0 && d != *dims)
        return fail(w, "has %s coordinates",
                    d == 0   ? "XY"
                    : d == 1 ? "XYZ"
                    : d == 2 ? "XYM"
                             : "XYZM");
    *dims = d;
    if (has_srid) {
        uint32_t s;
        if (!top)
            return fail(w, "%s", "has an SRID on a nested geometry");
        if (!u32(w, le, &s))
            return false;
        *srid = (int32_t)s;
    }
    int ncoord = 2 + (d & 1) + (d >> 1 & 1);
    uint32_t n, rings;
    switch (code) {
    case 1:
        return points(w, 1, ncoord, false);
    case 2:
        if (!u32(w, le, &n))
            return false;
        if (n == 1)
            return fail(w, "%s", "has a LineString of a single point");
        return points(w, n, ncoord, false);
    case 3:
        if (!u32(w, le, &rings))
            return false;
        if (rings > (w->n - w->off) / 4)
            return fail(w, "%s", "has a count larger than the bytes that follow");
        for (uint32_t r = 0; r < rings; r++)
            if (!u32(w, le, &n) || !points(w, n, ncoord, true))
                return false;
        return true;
    default:
        if (!u32(w, le, &n))
            return false;
        if (n > (w->n - w->off) / 5)
            return fail(w, "%s", "has a count larger than the bytes that follow");
        for (uint32_t i = 0; i < n; i++) {
            int32_t ignored = 0;
            /* Multi* hold their single kind (1..3); a collection anything. */
            if (!geometry(w, code == 7 ? 0 : code - 3, dims, depth + 1, &ignored, false))
                return false;
        }
        return true;
    }
}

const char *cs_geo_check(const cs_checks *k, const unsigned char *b, size_t n, char *why,
                         size_t whylen)
{
    wkb w = {b, n, 0, why, whylen};
    int dims = k->geo_dims;
    int32_t srid = k->geo_geography ? 4326 : 0;
    if (!geometry(&w, k->geo_kind, &dims, 0, &srid, true))
        return why;
    if (w.off != n) {
        snprintf(why, whylen, "has bytes after the geometry");
        return why;
    }
    if (k->geo_srid && srid != k->geo_srid) {
        snprintf(why, whylen, "has SRID %ld", (long)srid);
        return why;
    }
    return NULL;
}
