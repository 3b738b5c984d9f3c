/*
 * policy.c -- @@allow / @@deny rules rendered to SQL for one user.
 *
 * A model's rules for one operation become one SQL expression over the row
 * (aliased tN) that is always 0 or 1, never NULL:
 *
 *     (NOT (deny1 OR deny2 ...) AND (allow1 OR allow2 ...))
 *
 * and "0" when no allow rule names the operation.  Decisions:
 *
 * - Deny by default.  A model without any @@allow for an operation permits
 *   it to nobody, as SPEC section 2 says ("else denied"): a server with a
 *   schema that has no policies serves and accepts nothing, so the schema
 *   author must write the @@allow rules (`@@allow('all', true)` opens a
 *   model to everyone, anonymous requests included).
 * - Two-valued logic.  Every boolean sub-expression renders to 0/1: a
 *   comparison with a NULL operand is 0 (false), so `a != b` with a null
 *   side is false, and `x == y` is false when both are NULL at run time
 *   (only the literal `null` makes a null test: `x == null` is `x IS NULL`,
 *   `x != null` is `x IS NOT NULL`; an anonymous user therefore never
 *   matches rows whose owner is null through `ownerId == auth().id`).  A
 *   Boolean field or auth() field used as a condition is true only when it
 *   is true (null is false).  `!` negates that 0/1, so the negation of a
 *   comparison that was false because of a null is *true*: with status
 *   null, `!(status == DONE)` holds.  This keeps `!` an ordinary boolean
 *   negation everywhere; SQL's three-valued NOT (which would leave it
 *   unknown) is never used.
 * - auth() is bound as 1 when signed in and NULL when anonymous, so it
 *   compares with null only; auth().field is bound as the user's canonical
 *   value (NULL when anonymous: member access on null is null).  Every
 *   literal is bound too.  The SQL text therefore depends only on the
 *   schema, model and operation, never on the user: callers may cache one
 *   prepared statement per (model, operation) and rebind per user.
 * - Paths through to-one relations are scalar subqueries joined on the
 *   relation (`owner.orgId` is (SELECT t1."orgId" FROM "Account" AS t1 WHERE
 *   t1."id" = t0."ownerId" AND <t1 not soft-deleted>)); a missing or
 *   soft-deleted related row makes the value NULL.  A path ending at a
 *   relation (`owner == null`) is (SELECT 1 ...), NULL when absent.
 * - To-many predicates ignore soft-deleted related rows:
 *   `rel?[p]` EXISTS(... AND p), `rel^[p]` NOT EXISTS(... AND p) and
 *   `rel![p]` NOT EXISTS(... AND NOT p) (p is 0/1, so "not true" includes
 *   the rows where p failed on a null).  When a to-one hop before the
 *   to-many relation is missing there are no related rows: `?` is false, `!`
 *   and `^` are (vacuously) true.
 * - Coercions, so that values compare as the types they are:
 *   Decimal with Decimal (and with Int, cast to text, or with a number
 *   literal, bound as canonical decimal text) compares under the
 *   cstack_decimal collation, exactly; Decimal with Float (or a literal with
 *   an exponent) compares as REAL.  A String or Cuid compared with a Uuid is
 *   lowered, because Uuids are stored lowercase.  Everything else is stored
 *   in canonical form on both sides (auth values are canonicalised for their
 *   auth field when the token is verified) and compares as stored.
 * - The row's own soft-delete field is an ordinary column here: whether
 *   soft-deleted rows are served at all is the caller's business.
 * - PostgreSQL (cs_policy_render_pg, for row-level security: policy_pg.c)
 *   gets the same expression from the same code, in its dialect: booleans
 *   are boolean (true/false, `IS TRUE`, coalesce(..., false)), so the logic
 *   stays two-valued; literals are quoted SQL literals (a number as written
 *   by strtoll/strtod, a Float with 17 digits); auth() is the session
 *   setting cstack.auth (the token's claims as JSON, NULL when unset or
 *   empty) and auth().field its claim (`sub` for id; a composite member
 *   from its flat claim, else its parent's member, as auth.c reads tokens)
 *   cast to the field's column type; the row itself is named by the caller
 *   (the table inside a policy, $1 inside a function).  Coercions: numeric
 *   compares with bigint and double precision exactly, so Decimal needs no
 *   collation (and with Float is cast to double precision, like REAL
 *   here); a Uuid compared with text compares as its lowercase text (the
 *   other side lowered as here); text compares under COLLATE "C", byte by
 *   byte like SQLite's BINARY; timestamptz compares as the canonical
 *   DateTime text does, for the years 0001..9999 both allow.
 */
#include "server/policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "value/value.h"

typedef struct pctx {
    cs_sqlb *q;
    const cstack_schema *s;
    const cs_auth *auth; /* SQLite: the user whose values are bound */
    /* PostgreSQL (cs_policy_render_pg): literals are written into the text,
     * auth() is read from the session, and the policy's own row (alias 0)
     * is written as row_sql rather than as t0. */
    bool pg;
    const char *row_sql;
} pctx;

static int render_bool(pctx *c, const cs_expr *e, const cs_model *m, int alias);

static int put(pctx *c, const char *text)
{
    return cs_buf_puts(&c->q->sql, text);
}

static int col(pctx *c, int alias, const cs_field *f)
{
    int rc = c->pg && alias == 0 ? cs_buf_printf(&c->q->sql, "%s.", c->row_sql)
                                 : cs_buf_printf(&c->q->sql, "t%d.", alias);
    return rc ? rc : cs_buf_ident(&c->q->sql, f->column);
}

/* Takes ownership of `p` for the lifetime of the query (bound text). */
static int own(cs_sqlb *q, char *p)
{
    if (q->nowned == q->capowned) {
        size_t cap = q->capowned ? q->capowned * 2 : 8;
        char **o = realloc(q->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return cs_err(CSTACK_ENOMEM, "out of memory");
        }
        q->owned = o;
        q->capowned = cap;
    }
    q->owned[q->nowned++] = p;
    return 0;
}

/* ---- relation hops -------------------------------------------------------- */

/* The join condition between alias `a` (model m, relation field f) and alias
 * `b` (the related model), whichever side holds the foreign key. */
static int join(pctx *c, const cs_model *m, const cs_field *f, int a, int b)
{
    const cs_relation *r = f->rel;
    const cs_model *tm = &c->s->models[r->target];
    const cs_relation *owner = r->nfields ? r : tm->fields[r->back_field].rel;
    const cs_model *om = r->nfields ? m : tm; /* holds the foreign key */
    const cs_model *rm = r->nfields ? tm : m; /* is referenced */
    int oa = r->nfields ? a : b, ra = r->nfields ? b : a;
    int rc = 0;
    for (size_t i = 0; i < owner->nfields && !rc; i++) {
        if (i)
            rc = put(c, " AND ");
        if (!rc)
            rc = col(c, ra, &rm->fields[owner->refs[i]]);
        if (!rc)
            rc = put(c, " = ");
        if (!rc)
            rc = col(c, oa, &om->fields[owner->fields[i]]);
    }
    return rc;
}

/* The relation field `name` of m; the validator guarantees it exists. */
static const cs_field *rel_field(const cs_model *m, const char *name)
{
    int fi = cs_field_find(m, name);
    return fi >= 0 && m->fields[fi].type == CS_T_MODEL ? &m->fields[fi] : NULL;
}

/* The model reached after the relation hops path[0..nhops) from m. */
static const cs_model *walk(const cstack_schema *s, const cs_model *m, char *const *path,
                            size_t nhops)
{
    for (size_t i = 0; i < nhops && m; i++) {
        const cs_field *f = rel_field(m, path[i]);
        m = f ? &s->models[f->rel->target] : NULL;
    }
    if (!m)
        cs_err(CSTACK_EINVAL, "policy path '%s' does not follow relations", path[0]);
    return m;
}

/* Emits "FROM T1 AS tA, ... WHERE <joins and soft-delete conditions>" for
 * the hops path[0..nhops) from m (aliased `alias`); the hops take the aliases
 * `first`, first+1, ...  (reserved by the caller). */
static int emit_hops(pctx *c, const cs_model *m, int alias, char *const *path, size_t nhops,
                     int first)
{
    const cs_model *cur = m;
    int rc = put(c, " FROM ");
    for (size_t i = 0; i < nhops && !rc; i++) {
        const cs_model *tm = &c->s->models[rel_field(cur, path[i])->rel->target];
        rc = put(c, i ? ", " : "");
        if (!rc)
            rc = cs_buf_ident(&c->q->sql, tm->table);
        if (!rc)
            rc = cs_buf_printf(&c->q->sql, " AS t%d", first + (int)i);
        cur = tm;
    }
    if (!rc)
        rc = put(c, " WHERE ");
    cur = m;
    for (size_t i = 0; i < nhops && !rc; i++) {
        const cs_field *f = rel_field(cur, path[i]);
        const cs_model *tm = &c->s->models[f->rel->target];
        int a = i ? first + (int)i - 1 : alias, b = first + (int)i;
        rc = put(c, i ? " AND " : "");
        if (!rc)
            rc = join(c, cur, f, a, b);
        if (!rc && tm->soft_delete >= 0) {
            rc = put(c, " AND ");
            if (!rc)
                rc = col(c, b, &tm->fields[tm->soft_delete]);
            if (!rc)
                rc = put(c, " IS NULL");
        }
        cur = tm;
    }
    return rc;
}

/* Reserves `n` aliases and returns the first. */
static int reserve(pctx *c, size_t n)
{
    int first = c->q->alias + 1;
    c->q->alias += (int)n;
    return first;
}

/* A field path's value: the column, or a scalar subquery through the
 * to-one relations (SELECT 1 when the path ends at a relation). */
static int render_path(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    const cs_model *last = walk(c->s, m, e->path, e->npath - 1);
    if (!last)
        return CSTACK_EINVAL;
    int fi = cs_field_find(last, e->path[e->npath - 1]);
    if (fi < 0)
        return cs_err(CSTACK_EINVAL, "policy names unknown field '%s'", e->path[e->npath - 1]);
    const cs_field *f = &last->fields[fi];
    if (e->npath == 1 && cs_field_is_column(f))
        return col(c, alias, f);
    /* A trailing relation is one more hop, whose existence is the value. */
    size_t nhops = e->npath - (cs_field_is_column(f) ? 1 : 0);
    int first = reserve(c, nhops);
    int rc = put(c, "(SELECT ");
    if (!rc)
        rc = cs_field_is_column(f) ? col(c, first + (int)nhops - 1, f) : put(c, "1");
    if (!rc)
        rc = emit_hops(c, m, alias, e->path, nhops, first);
    return rc ? rc : put(c, ")");
}

/* rel?[p], rel![p], rel^[p] (the path may start with to-one hops). */
static int render_predicate(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    const cs_model *tm = walk(c->s, m, e->path, e->npath);
    if (!tm)
        return CSTACK_EINVAL;
    int first = reserve(c, e->npath);
    int rc = put(c, e->kind == CS_E_SOME ? "EXISTS (SELECT 1" : "NOT EXISTS (SELECT 1");
    if (!rc)
        rc = emit_hops(c, m, alias, e->path, e->npath, first);
    if (!rc)
        rc = put(c, e->kind == CS_E_EVERY ? " AND NOT " : " AND ");
    if (!rc)
        rc = render_bool(c, e->lhs, tm, first + (int)e->npath - 1);
    return rc ? rc : put(c, ")");
}

/* ---- values ----------------------------------------------------------------- */

static int bind(pctx *c, cstack_value v)
{
    return cs_sqlb_bind(c->q, v);
}

/* A number literal: an Int when it is integral and fits, else a Float.
 * PostgreSQL gets the same value as text, the Float with every digit. */
static int bind_number(pctx *c, const char *text)
{
    char *end;
    errno = 0;
    if (!strpbrk(text, ".eE")) {
        long long i = strtoll(text, &end, 10);
        if (!errno && !*end)
            return c->pg ? cs_buf_printf(&c->q->sql, "(%lld)", i) : bind(c, cstack_v_int(i));
    }
    errno = 0;
    double d = strtod(text, &end);
    if (*end || errno)
        return cs_err(CSTACK_EINVAL, "policy number '%s' is out of range", text);
    if (c->pg)
        return cs_buf_printf(&c->q->sql, "'%.17g'::double precision", d);
    return bind(c, cstack_v_float(d));
}

/* PostgreSQL's auth(): the session's auth JSON (cstack.auth), NULL when it
 * is unset or empty (anonymous). */
#define PG_AUTH "nullif(current_setting('cstack.auth', true), '')"

/* The claim of auth field `name` (its first n bytes) as jsonb, NULL when the
 * claim is absent or JSON null: auth().id is `sub`; any other field is the
 * claim of its name; a member of a composite ("org.id") is the flat claim
 * "org.id" when there is one, else the member "id" of the value of "org",
 * as the server reads a token (auth.c). */
static int pg_claim(pctx *c, const char *name, size_t n)
{
    size_t dot = n;
    while (dot > 0 && name[dot - 1] != '.')
        dot--;
    char *key = n == 2 && !memcmp(name, "id", 2) ? strdup("sub") : strndup(name, n);
    char *member = dot ? strndup(name + dot, n - dot) : NULL;
    int rc = !key || (dot && !member) ? CSTACK_ENOMEM : 0;
    if (!rc && dot)
        rc = put(c, "coalesce(");
    rc = rc ? rc : put(c, "nullif((" PG_AUTH "::jsonb) -> ");
    rc = rc ? rc : cs_buf_sql_str(&c->q->sql, key);
    rc = rc ? rc : put(c, ", 'null')");
    if (!rc && dot) {
        rc = put(c, ", nullif(");
        rc = rc ? rc : pg_claim(c, name, dot - 1);
        rc = rc ? rc : put(c, " -> ");
        rc = rc ? rc : cs_buf_sql_str(&c->q->sql, member);
        rc = rc ? rc : put(c, ", 'null'))");
    }
    free(key);
    free(member);
    return rc;
}

/* auth().name: the user's value, NULL when anonymous.  PostgreSQL reads
 * it from the session's claims, cast to the field's type. */
static int bind_auth_field(pctx *c, const char *name)
{
    if (c->pg) {
        const cs_field *f = NULL;
        for (size_t i = 0; i < c->s->auth.nfields && !f; i++)
            if (!strcmp(c->s->auth.fields[i].name, name))
                f = &c->s->auth.fields[i];
        if (!f)
            return cs_err(CSTACK_EINVAL, "policy names unknown auth field '%s'", name);
        /* A Json or Bytes claim stays jsonb (it only compares with null). */
        bool raw = f->type == CS_T_JSON || f->type == CS_T_BYTES;
        const char *type = raw ? NULL : cs_pg_type_name(f);
        int rc = put(c, type ? "CAST((" : "");
        rc = rc ? rc : pg_claim(c, name, strlen(name));
        if (!rc && type)
            rc = cs_buf_printf(&c->q->sql, " #>> '{}') AS %s)", type);
        return rc;
    }
    const cstack_value *v = c->auth->signed_in ? cs_auth_value(c->s, c->auth, name) : NULL;
    return bind(c, v ? *v : cstack_v_null());
}

/* A value operand of a comparison (possibly NULL at run time). */
static int render_value(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    switch (e->kind) {
    case CS_E_BOOL:
        if (c->pg)
            return put(c, e->bval ? "true" : "false");
        return bind(c, cstack_v_int(e->bval ? 1 : 0));
    case CS_E_NUMBER:
        return bind_number(c, e->text);
    case CS_E_STRING:
    case CS_E_ENUM:
        if (c->pg)
            return cs_buf_sql_str(&c->q->sql, e->text);
        return bind(c, cstack_v_text(e->text));
    case CS_E_AUTH:
        if (c->pg)
            return put(c, PG_AUTH);
        return bind(c, c->auth->signed_in ? cstack_v_int(1) : cstack_v_null());
    case CS_E_AUTH_FIELD:
        return bind_auth_field(c, e->text);
    case CS_E_FIELD:
        return render_path(c, e, m, alias);
    default:
        return render_bool(c, e, m, alias);
    }
}

/* ---- comparisons ------------------------------------------------------------ */

/* How an operand is wrapped so both sides compare as the same type.
 * W_UUIDTEXT is PostgreSQL's only: its uuid type does not compare with
 * text, so a Uuid compared with a String or Cuid compares as its text. */
typedef enum wrap { W_NONE, W_TEXT, W_REAL, W_LOWER, W_DECLIT, W_UUIDTEXT } wrap;

typedef struct cmp_plan {
    wrap w[2];
    bool decimal; /* SQLite: COLLATE cstack_decimal */
    bool bytes;   /* PostgreSQL: text compared byte by byte (COLLATE "C") */
} cmp_plan;

static bool decimal_literal(const cs_expr *e)
{
    if (e->kind != CS_E_NUMBER)
        return false;
    cs_buf b = CS_BUF_INIT;
    char err[8];
    bool ok = cs_decimal_canon(e->text, strlen(e->text), &b, err, sizeof err) == 0;
    cs_buf_free(&b);
    return ok;
}

static bool textual(cs_scalar t)
{
    return t == CS_T_STRING || t == CS_T_CUID || t == CS_T_ENUM || t == CS_T_UUID;
}

/* PostgreSQL's plan from SQLite's: numeric compares with bigint and double
 * precision natively and exactly, so Decimal needs no text or collation;
 * a Uuid against text compares as its (canonical, lowercase) text; text
 * compares as SQLite's BINARY does, byte by byte, whatever the database's
 * collation (ordering operators included). */
static cmp_plan plan_pg(cmp_plan p, const cs_expr *const x[2])
{
    for (int i = 0; i < 2; i++) {
        if (p.w[i] == W_TEXT)
            p.w[i] = W_NONE;
        if (x[i]->vtype == CS_T_UUID && x[1 - i]->vtype != CS_T_UUID)
            p.w[i] = W_UUIDTEXT;
    }
    p.decimal = false;
    p.bytes = textual(x[0]->vtype) && textual(x[1]->vtype) &&
              !(x[0]->vtype == CS_T_UUID && x[1]->vtype == CS_T_UUID);
    return p;
}

static cmp_plan plan_compare(const cs_expr *const x[2], bool pg)
{
    cmp_plan p = {{W_NONE, W_NONE}, false, false};
    for (int i = 0; i < 2; i++) {
        const cs_expr *a = x[i], *b = x[1 - i];
        if (a->vtype == CS_T_DECIMAL && b->vtype == CS_T_DECIMAL) {
            p.decimal = true;
        } else if (a->vtype == CS_T_DECIMAL && (b->vtype == CS_T_INT || b->vtype == CS_T_FLOAT)) {
            if (b->kind == CS_E_NUMBER && decimal_literal(b)) {
                p.w[1 - i] = W_DECLIT;
                p.decimal = true;
            } else if (b->vtype == CS_T_INT && b->kind != CS_E_NUMBER) {
                p.w[1 - i] = W_TEXT;
                p.decimal = true;
            } else {
                p.w[i] = W_REAL;
            }
        } else if (a->vtype == CS_T_UUID && b->kind != CS_E_STRING &&
                   (b->vtype == CS_T_STRING || b->vtype == CS_T_CUID)) {
            p.w[1 - i] = W_LOWER;
        }
    }
    return pg ? plan_pg(p, x) : p;
}

static int render_operand(pctx *c, const cs_expr *e, wrap w, const cs_model *m, int alias)
{
    if (w == W_DECLIT) {
        cs_buf b = CS_BUF_INIT;
        char err[8];
        int rc = cs_decimal_canon(e->text, strlen(e->text), &b, err, sizeof err);
        char *text = rc ? NULL : cs_buf_take(&b);
        cs_buf_free(&b);
        if (!text)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        if (c->pg) {
            rc = cs_buf_sql_str(&c->q->sql, text);
            free(text);
            return rc ? rc : put(c, "::numeric");
        }
        if ((rc = own(c->q, text)))
            return rc;
        return bind(c, cstack_v_text(text));
    }
    static const char *const open[] = {"(", "CAST(", "CAST(", "lower(", "", "CAST("};
    static const char *const close[] = {")", " AS TEXT)", " AS REAL)", ")", "", " AS text)"};
    int rc = put(c, open[w]);
    if (!rc)
        rc = render_value(c, e, m, alias);
    if (!rc && c->pg && w == W_REAL)
        return put(c, " AS double precision)");
    return rc ? rc : put(c, close[w]);
}

static const char *const cmp_sql[] = {" = ", " <> ", " < ", " <= ", " > ", " >= "};

/* A comparison with the literal null: a null test, or false. */
static int render_null_test(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    const cs_expr *other = e->lhs->kind == CS_E_NULL ? e->rhs : e->lhs;
    if (e->op != CS_OP_EQ && e->op != CS_OP_NE)
        return put(c, c->pg ? "false" : "0");
    if (other->kind == CS_E_NULL) {
        bool t = e->op == CS_OP_EQ;
        return put(c, c->pg ? (t ? "true" : "false") : (t ? "1" : "0"));
    }
    int rc = put(c, "(");
    if (!rc)
        rc = render_value(c, other, m, alias);
    return rc ? rc : put(c, e->op == CS_OP_EQ ? " IS NULL)" : " IS NOT NULL)");
}

static int render_compare(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    if (e->lhs->kind == CS_E_NULL || e->rhs->kind == CS_E_NULL)
        return render_null_test(c, e, m, alias);
    const cs_expr *x[2] = {e->lhs, e->rhs};
    cmp_plan p = plan_compare(x, c->pg);
    /* NULL on either side makes the comparison NULL, which coalesce turns
     * into false. */
    int rc = put(c, "coalesce(");
    if (!rc)
        rc = render_operand(c, e->lhs, p.w[0], m, alias);
    if (!rc)
        rc = put(c, cmp_sql[e->op]);
    if (!rc)
        rc = render_operand(c, e->rhs, p.w[1], m, alias);
    if (!rc && p.decimal)
        rc = put(c, " COLLATE cstack_decimal");
    if (!rc && p.bytes)
        rc = put(c, " COLLATE \"C\"");
    return rc ? rc : put(c, c->pg ? ", false)" : ", 0)");
}

/* ---- booleans --------------------------------------------------------------- */

/* A boolean expression as 0/1, never NULL. */
static int render_bool(pctx *c, const cs_expr *e, const cs_model *m, int alias)
{
    int rc;
    switch (e->kind) {
    case CS_E_BOOL:
        return render_value(c, e, m, alias);
    case CS_E_FIELD:
    case CS_E_AUTH_FIELD:
        if (e->vtype != CS_T_BOOLEAN)
            break;
        /* True only when true: a null Boolean is false. */
        rc = put(c, "(");
        if (!rc)
            rc = render_value(c, e, m, alias);
        return rc ? rc : put(c, c->pg ? " IS TRUE)" : " IS 1)");
    case CS_E_NOT:
        rc = put(c, "(NOT ");
        if (!rc)
            rc = render_bool(c, e->lhs, m, alias);
        return rc ? rc : put(c, ")");
    case CS_E_SOME:
    case CS_E_EVERY:
    case CS_E_NONE:
        return render_predicate(c, e, m, alias);
    case CS_E_BINARY:
        if (e->op != CS_OP_AND && e->op != CS_OP_OR)
            return render_compare(c, e, m, alias);
        rc = put(c, "(");
        if (!rc)
            rc = render_bool(c, e->lhs, m, alias);
        if (!rc)
            rc = put(c, e->op == CS_OP_AND ? " AND " : " OR ");
        if (!rc)
            rc = render_bool(c, e->rhs, m, alias);
        return rc ? rc : put(c, ")");
    default:
        break;
    }
    return cs_err(CSTACK_EINVAL, "a policy of %s is not a boolean expression", m->name);
}

/* ---- rules -------------------------------------------------------------------- */

/* "r1 OR r2 ..." for the rules of one kind (allow or deny) naming op;
 * *count is how many there were. */
static int render_rules(pctx *c, const cs_model *m, int alias, unsigned op, bool deny,
                        size_t *count)
{
    int rc = 0;
    *count = 0;
    for (size_t i = 0; i < m->npolicies && !rc; i++) {
        const cs_policy *p = &m->policies[i];
        if (p->deny != deny || !(p->ops & op))
            continue;
        if ((*count)++)
            rc = put(c, " OR ");
        if (!rc)
            rc = render_bool(c, p->expr, m, alias);
    }
    return rc;
}

static size_t rule_count(const cs_model *m, unsigned op, bool deny)
{
    size_t n = 0;
    for (size_t i = 0; i < m->npolicies; i++)
        n += m->policies[i].deny == deny && (m->policies[i].ops & op);
    return n;
}

/* The checks both dialects make before rendering. */
static int check_op(unsigned op)
{
    if (op == 0 || op > CS_POL_DELETE || (op & (op - 1)))
        return cs_err(CSTACK_EINVAL,
                      "policy operation must be one of read, create, update, "
                      "delete (got %u)",
                      op);
    return 0;
}

/* (NOT (denies) AND (allows)), or false when no allow names op. */
static int render_op(pctx *c, const cs_model *m, int alias, unsigned op)
{
    if (rule_count(m, op, false) == 0)
        return put(c, c->pg ? "false" : "0");
    size_t n;
    int rc = put(c, "(");
    if (!rc && rule_count(m, op, true)) {
        rc = put(c, "NOT (");
        if (!rc)
            rc = render_rules(c, m, alias, op, true, &n);
        if (!rc)
            rc = put(c, ") AND ");
    }
    if (!rc)
        rc = put(c, "(");
    if (!rc)
        rc = render_rules(c, m, alias, op, false, &n);
    return rc ? rc : put(c, "))");
}

int cs_policy_render(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias, unsigned op,
                     const cs_auth *auth)
{
    int rc = check_op(op);
    if (rc)
        return rc;
    if (!auth)
        return cs_err(CSTACK_EINVAL, "policy check without a user (use cs_auth_anonymous)");
    if (q->alias < alias)
        q->alias = alias;
    pctx c = {q, s, auth, false, NULL};
    return render_op(&c, m, alias, op);
}

int cs_policy_render_pg(cs_buf *out, const cstack_schema *s, const cs_model *m, unsigned op,
                        const char *row)
{
    int rc = check_op(op);
    if (rc)
        return rc;
    if (!row || !*row)
        return cs_err(CSTACK_EINVAL, "a PostgreSQL policy needs the SQL naming its row");
    cs_sqlb q = {0};
    pctx c = {&q, s, NULL, true, row};
    rc = render_op(&c, m, 0, op);
    if (!rc)
        rc = cs_buf_append(out, q.sql.data, q.sql.len);
    cs_sqlb_free(&q);
    return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
}

/* ---- locality ------------------------------------------------------------------- */

/* Whether an expression reads only the row's own columns, auth() and
 * literals. */
static bool expr_local(const cs_expr *e)
{
    switch (e->kind) {
    case CS_E_FIELD:
        /* One segment that is a relation (`owner == null`) depends on the
         * related row: vtype tells them apart. */
        return e->npath == 1 && e->vtype != CS_T_MODEL;
    case CS_E_SOME:
    case CS_E_EVERY:
    case CS_E_NONE:
        return false;
    case CS_E_NOT:
        return expr_local(e->lhs);
    case CS_E_BINARY:
        return expr_local(e->lhs) && expr_local(e->rhs);
    default:
        return true;
    }
}

bool cs_policy_model_is_local(const cs_model *m, unsigned op)
{
    for (size_t i = 0; i < m->npolicies; i++)
        if ((m->policies[i].ops & op) && !expr_local(m->policies[i].expr))
            return false;
    return true;
}

bool cs_policy_model_read_is_local(const cs_model *m)
{
    return cs_policy_model_is_local(m, CS_POL_READ);
}

bool cs_policy_read_is_local(const cstack_schema *s)
{
    for (size_t i = 0; i < s->nmodels; i++)
        if (!s->models[i].local && !cs_policy_model_read_is_local(&s->models[i]))
            return false;
    return true;
}
