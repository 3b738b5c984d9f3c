/*
 * schemas.c -- the schema versions a server has run, and the projections
 * that let devices on older (additive ancestor) versions keep syncing.
 *
 *   _cstack_srv_schemas(ord, hash, source, adopted_at)   one row per version,
 *                                                        in adoption order
 *
 * Projections work on changesets (docs/sync-protocol.md): model and field
 * indexes are rewritten by name, so the merge, the export and the policies
 * stay those of the current schema and only the bytes at the edge change.
 * Why projecting the bytes rather than teaching the engine several schemas:
 * the engine's invariants (one schema per replica, indexes checked against
 * the hash) stay true, and an old device merges exactly what it would have
 * merged from a server of its own schema.
 */
#include "server/schemas.h"

#include "cstack_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"
#include "store/store.h"
#include "sync/changeset.h"
#include "util/clock.h"
#include "value/value.h"

#define TABLE_SQL                                                                                  \
    "CREATE TABLE IF NOT EXISTS _cstack_srv_schemas (ord INTEGER PRIMARY KEY, "                    \
    "hash TEXT NOT NULL UNIQUE, source TEXT NOT NULL, adopted_at INTEGER NOT NULL)"

/* ---- the versions table ------------------------------------------------------ */

typedef struct record_ctx {
    const cstack_schema *s;
    bool create;
    bool recorded;
} record_ctx;

static int table_exists(sqlite3 *conn, bool *exists)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = '_cstack_srv_schemas'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        *exists = rc == SQLITE_ROW;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

static int record_cb(sqlite3 *conn, void *ctx)
{
    record_ctx *x = ctx;
    bool exists = false;
    int rc = x->create ? sqlite3_exec(conn, TABLE_SQL, NULL, NULL, NULL)
                       : table_exists(conn, &exists);
    if (rc != SQLITE_OK || (!x->create && !exists))
        return rc;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(conn,
                            "INSERT OR IGNORE INTO _cstack_srv_schemas(hash, source, adopted_at) "
                            "VALUES (?, ?, ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, x->s->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, x->s->source ? x->s->source : "", (int)x->s->source_len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, cs_wall_ms());
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
        x->recorded = rc == SQLITE_OK && sqlite3_changes(conn) > 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int cs_srv_versions_record(cstack *db, bool create, bool *recorded)
{
    record_ctx x = {cstack_schema_of(db), create, false};
    if (!x.s->source)
        return cs_err(CSTACK_EMISUSE, "the schema has no source text to record");
    int rc = cstack_with_sqlite(db, record_cb, &x);
    if (recorded)
        *recorded = x.recorded;
    return rc;
}

int cstack_server_record_schema(cstack *db, int *recorded)
{
    bool added = false;
    int rc = db ? cs_srv_versions_record(db, false, &added) : CSTACK_EMISUSE;
    if (recorded)
        *recorded = added;
    return rc;
}

/* An additive ancestor: the migration planner takes `old` to the current
 * schema without refusing anything. */
static bool is_ancestor(const cstack_schema *old, const cstack_schema *cur)
{
    cs_buf sql = CS_BUF_INIT, report = CS_BUF_INIT;
    char err[256];
    int rc = cs_sql_migrate(old, cur, &sql, &report, err, sizeof err);
    cs_buf_free(&sql);
    cs_buf_free(&report);
    return rc == 0;
}

static int add_version(cs_srv_versions *v, const char *hash, const char *src, size_t n)
{
    cs_srv_version *p = realloc(v->v, (v->n + 1) * sizeof *p);
    if (!p)
        return CSTACK_ENOMEM;
    v->v = p;
    cs_srv_version *e = &p[v->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->hash, sizeof e->hash, "%s", hash);
    cstack_diags *d = NULL;
    if (cstack_schema_parse("(recorded schema)", src, n, &e->schema, &d) != 0)
        e->schema = NULL;
    cstack_diags_free(d);
    e->ancestor = strcmp(hash, v->current->hash) == 0 ||
                  (e->schema && is_ancestor(e->schema, v->current));
    return 0;
}

static int load_cb(sqlite3 *conn, void *ctx)
{
    cs_srv_versions *v = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, "SELECT hash, source FROM _cstack_srv_schemas ORDER BY ord",
                                -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(st, 0);
        const char *src = (const char *)sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        rc = hash && add_version(v, hash, src ? src : "", n) ? SQLITE_NOMEM : SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_srv_versions_open(cstack *db, cs_srv_versions **out)
{
    *out = NULL;
    int rc = cs_srv_versions_record(db, true, NULL);
    cs_srv_versions *v = rc ? NULL : calloc(1, sizeof *v);
    if (!rc && !v)
        return CSTACK_ENOMEM;
    if (rc)
        return rc;
    v->current = cstack_schema_of(db);
    rc = cstack_with_sqlite(db, load_cb, v);
    if (rc) {
        cs_srv_versions_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void cs_srv_versions_free(cs_srv_versions *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        cstack_schema_free(v->v[i].schema);
    free(v->v);
    free(v);
}

const cs_srv_version *cs_srv_versions_find(const cs_srv_versions *v, const char *hash)
{
    for (size_t i = 0; v && hash && i < v->n; i++)
        if (strcmp(v->v[i].hash, hash) == 0)
            return &v->v[i];
    return NULL;
}

/* ---- enum members ------------------------------------------------------------ */

static bool is_member(const cs_enum *e, const char *s, size_t n)
{
    return cs_enum_member(e, s, n) >= 0;
}

bool cs_srv_enum_map(const cstack_schema *view, const cs_field *vf, const char **text,
                     size_t *len, bool *null)
{
    *null = false;
    if (vf->type != CS_T_ENUM || vf->type_index < 0 || (size_t)vf->type_index >= view->nenums)
        return false;
    const cs_enum *e = &view->enums[vf->type_index];
    if (is_member(e, *text, *len))
        return false;
    const char *lit = vf->def.kind == CS_DEF_LITERAL ? vf->def.literal : NULL;
    if (lit && is_member(e, lit, strlen(lit))) {
        *text = lit;
    } else if (vf->optional || e->nmembers == 0) {
        *null = true;
        *text = NULL;
    } else {
        *text = e->members[0];
    }
    *len = *text ? strlen(*text) : 0;
    return true;
}

/* True when a device on `had` lacks column `c` (of field `f`): the field is
 * new, or the value is an enum member `had` does not know (the device holds
 * the mapped value, at a clock one less). */
static bool col_lacked(const cs_field *f, const cs_cs_col *c, const cstack_schema *had,
                       const cs_model *hm)
{
    int hf = cs_field_find(hm, f->name);
    if (hf < 0)
        return true;
    const char *t = (const char *)c->value.p;
    size_t n = c->value.n;
    bool null = false;
    return c->value.type == SQLITE_TEXT && cs_srv_enum_map(had, &hm->fields[hf], &t, &n, &null);
}

/* ---- projecting a changeset ---------------------------------------------------- */

typedef struct proj {
    const cstack_schema *from, *to, *had;
    cs_cs_writer w;
    cs_cs_col *cols; /* the output row's columns */
    size_t ncols;
} proj;

/* The column `c` of `fm` as `to`'s field `tf`, enum members mapped. */
static void map_col(proj *p, const cs_field *tf, int tfi, cs_cs_col *c)
{
    cs_cs_col out = *c;
    out.field = tfi;
    if (c->value.type == SQLITE_TEXT) {
        const char *t = (const char *)c->value.p;
        size_t n = c->value.n;
        bool null = false;
        if (cs_srv_enum_map(p->to, tf, &t, &n, &null)) {
            out.value.type = null ? SQLITE_NULL : SQLITE_TEXT;
            out.value.p = (const unsigned char *)t;
            out.value.n = n;
            out.hlc = c->hlc > 0 ? c->hlc - 1 : 0;
        }
    }
    p->cols[p->ncols++] = out;
}

/* Required fields with a literal default that `from`'s model lacks, on an
 * alive row that carries columns (its creation, or an update): clock 0
 * loses to every written value, so an existing value is never replaced,
 * and a row created by an old device is complete. */
static void fill_defaults(proj *p, const cs_model *fm, const cs_model *tm, const cs_cs_row *row)
{
    if (row->cl % 2 == 0 || p->ncols == 0)
        return;
    for (size_t i = 0; i < tm->nfields; i++) {
        const cs_field *f = &tm->fields[i];
        cs_cs_value v;
        if (!cs_field_is_column(f) || f->optional || f->is_id || !cs_cs_default(f, &v) ||
            cs_field_find(fm, f->name) >= 0)
            continue;
        p->cols[p->ncols++] = (cs_cs_col){(int)i, 0, p->cols[0].site, v};
    }
}

static int write_row(proj *p, int model, const cs_cs_row *row)
{
    cs_buf *b = &p->w.body;
    int rc = cs_wr_varint(b, (uint64_t)model);
    rc = rc ? rc : cs_wr_varint(b, (uint64_t)row->ver);
    rc = rc ? rc : cs_wr_varint(b, row->cl);
    for (size_t i = 0; !rc && i < row->npk; i++)
        rc = cs_cs_put_value(b, &row->pk[i]);
    rc = rc ? rc : cs_wr_varint(b, p->ncols);
    for (size_t i = 0; !rc && i < p->ncols; i++) {
        const cs_cs_col *c = &p->cols[i];
        rc = cs_wr_varint(b, (uint64_t)c->field);
        rc = rc ? rc : cs_wr_u64(b, c->hlc);
        rc = rc ? rc : cs_wr_varint(b, c->site);
        rc = rc ? rc : cs_cs_put_value(b, &c->value);
    }
    p->w.nrows++;
    return rc;
}

/* One row: rewritten, or left out (a model `to` lacks, or nothing new for
 * a device on `had`). */
static int project_row(proj *p, const cs_cs_row *row)
{
    const cs_model *fm = &p->from->models[row->model];
    int tmi = cs_model_find(p->to, fm->name);
    if (tmi < 0 || p->to->models[tmi].local)
        return 0;
    const cs_model *tm = &p->to->models[tmi];
    int hmi = p->had ? cs_model_find(p->had, fm->name) : -1;
    const cs_model *hm = hmi >= 0 && !p->had->models[hmi].local ? &p->had->models[hmi] : NULL;
    p->ncols = 0;
    for (size_t i = 0; i < row->ncols; i++) {
        const cs_field *ff = &fm->fields[row->cols[i].field];
        int tfi = cs_field_find(tm, ff->name);
        if (tfi < 0 || (hm && !col_lacked(&tm->fields[tfi], &row->cols[i], p->had, hm)))
            continue;
        map_col(p, &tm->fields[tfi], tfi, &row->cols[i]);
    }
    if (hm && p->ncols == 0)
        return 0;
    fill_defaults(p, fm, tm, row);
    return write_row(p, tmi, row);
}

static size_t max_fields(const cstack_schema *s)
{
    size_t n = 1;
    for (size_t i = 0; i < s->nmodels; i++)
        if (s->models[i].nfields > n)
            n = s->models[i].nfields;
    return n;
}

static int project_rows(proj *p, cs_reader *r, const cs_cs_header *h, char *err, size_t errlen)
{
    cs_cs_row row;
    memset(&row, 0, sizeof row);
    row.cols = calloc(max_fields(p->from), sizeof *row.cols);
    /* Output rows may add a default for every field of the widest model. */
    p->cols = calloc(max_fields(p->from) + max_fields(p->to), sizeof *p->cols);
    int rc = row.cols && p->cols ? 0 : CSTACK_ENOMEM;
    for (uint64_t i = 0; !rc && i < h->nrows; i++) {
        rc = cs_cs_read_row(r, p->from, h, &row, err, errlen);
        rc = rc ? rc : project_row(p, &row);
    }
    if (!rc && r->pos != r->len) {
        snprintf(err, errlen, "changeset has %zu bytes after its last row", r->len - r->pos);
        rc = CSTACK_EINVAL;
    }
    free(row.cols);
    free(p->cols);
    return rc;
}

int cs_srv_project(const cstack_schema *from, const cstack_schema *to, const cstack_schema *had,
                   const void *in, size_t len, void **out, size_t *outlen, int64_t *rows,
                   char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    cs_reader r = {in, len, 0};
    cs_cs_header h;
    int rc = cs_cs_read_header(&r, &h, err, errlen);
    if (!rc && strcmp(h.hash, from->hash) != 0) {
        snprintf(err, errlen, "changeset made with schema %s, not %s", h.hash, from->hash);
        rc = CSTACK_EINVAL;
    }
    proj p = {.from = from, .to = to, .had = had};
    if (!rc && h.nsites) {
        p.w.sites = malloc(h.nsites * sizeof *p.w.sites);
        rc = p.w.sites ? 0 : CSTACK_ENOMEM;
        if (!rc)
            memcpy(p.w.sites, h.sites, h.nsites * sizeof *p.w.sites);
        p.w.nsites = h.nsites;
    }
    rc = rc ? rc : project_rows(&p, &r, &h, err, errlen);
    rc = rc ? rc : cs_cs_finish(&p.w, to, h.origin, h.since, h.until, out, outlen);
    if (!rc && rows)
        *rows = (int64_t)p.w.nrows;
    if (rc == CSTACK_ENOMEM)
        snprintf(err, errlen, "out of memory");
    cs_cs_writer_free(&p.w);
    return rc;
}

/* ---- checksums ------------------------------------------------------------------ */

int cs_srv_view_row_json(cs_buf *b, const cstack_schema *view, const cs_model *vm,
                         const cstack_row *row)
{
    int rc = cs_buf_putc(b, '{');
    bool first = true;
    for (size_t i = 0; !rc && i < vm->nfields; i++) {
        const cs_field *f = &vm->fields[i];
        if (!cs_field_is_column(f))
            continue;
        cstack_value v = cstack_v_null();
        for (size_t k = 0; k < row->shape->n; k++)
            if (strcmp(row->shape->names[k], f->name) == 0)
                v = row->vals[k];
        const char *t = v.type == CSTACK_TEXT ? v.u.s.p : NULL;
        size_t n = t ? v.u.s.n : 0;
        bool null = false;
        if (t && cs_srv_enum_map(view, f, &t, &n, &null))
            v = null ? cstack_v_null() : cstack_v_textn(t, n);
        rc = first ? 0 : cs_buf_putc(b, ',');
        first = false;
        rc = rc ? rc : cs_buf_json_str(b, f->name, strlen(f->name));
        rc = rc ? rc : cs_buf_putc(b, ':');
        rc = rc ? rc : cs_value_json(b, f->type, &v);
    }
    return rc ? rc : cs_buf_putc(b, '}');
}
