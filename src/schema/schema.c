/*
 * schema.c -- the public schema API: parse/load entry points, lookups,
 * reference counting, and the canonical text behind the schema hash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/schema_int.h"

int cs_field_canon(const cstack_schema *s, const cs_field *f, const cstack_value *in,
                   cs_buf *scratch, cstack_value *out, char *err, size_t errlen)
{
    if (f->list && f->type == CS_T_JSON)
        return cs_list_canon(s, f, in, scratch, out, err, errlen);
    cs_enum_members en = {NULL, NULL, 0};
    if (f->type == CS_T_ENUM) {
        const cs_enum *e = &s->enums[f->type_index];
        en = (cs_enum_members){e->name, (const char *const *)e->members, e->nmembers};
    }
    int rc = cs_value_canon(f->type, f->type == CS_T_ENUM ? &en : NULL, in, scratch, out, err,
                            errlen);
    /* The messages quote the value: not for a @pii/@sensitive field. */
    if (rc && rc != CSTACK_ENOMEM && f->sensitive && errlen)
        snprintf(err, errlen, "invalid %s (value redacted: @pii/@sensitive field)",
                 cs_scalar_name(f->type));
    return rc;
}

int cs_model_find(const cstack_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nmodels; i++)
        if (strcmp(s->models[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cs_field_find(const cs_model *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].name && strcmp(m->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cs_enum_find(const cstack_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nenums; i++)
        if (s->enums[i].name && strcmp(s->enums[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cs_enum_member(const cs_enum *e, const char *name, size_t n)
{
    for (size_t i = 0; i < e->nmembers; i++)
        if (strlen(e->members[i]) == n && memcmp(e->members[i], name, n) == 0)
            return (int)i;
    return -1;
}

/* Runtimes on several threads may retain and release one schema. */
cstack_schema *cs_schema_retain(const cstack_schema *s)
{
    cstack_schema *m = (cstack_schema *)s;
    if (m)
        __atomic_add_fetch(&m->refcount, 1, __ATOMIC_RELAXED);
    return m;
}

/* ---- name sets ------------------------------------------------------------ */

static uint64_t name_hash(const char *k, bool ci)
{
    uint64_t h = CS_FNV64_INIT;
    for (; *k; k++) {
        unsigned char c = (unsigned char)*k;
        if (ci && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = cs_fnv1a64_byte(h, c);
    }
    return h;
}

typedef struct name_probe {
    const cs_nameset *s;
    const char *key;
} name_probe;

static bool name_eq(const void *ctx, size_t id)
{
    const name_probe *q = ctx;
    const char *a = q->s->items[id].key;
    return q->s->ci ? strcasecmp(a, q->key) == 0 : strcmp(a, q->key) == 0;
}

int cs_nameset_add(cs_parse *p, cs_nameset *s, const char *key, int val)
{
    uint64_t h = name_hash(key, s->ci);
    name_probe q = {s, key};
    size_t id = cs_hset_find(&s->set, h, name_eq, &q);
    if (id != CS_HSET_NONE)
        return s->items[id].val;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        cs_name_entry *items = realloc(s->items, cap * sizeof *items);
        if (!items) {
            p->oom = true;
            return -1;
        }
        s->items = items;
        s->cap = cap;
    }
    if (cs_hset_add(&s->set, h, s->n)) {
        p->oom = true;
        return -1;
    }
    s->items[s->n++] = (cs_name_entry){key, val};
    return -1;
}

void cs_nameset_free(cs_nameset *s)
{
    cs_hset_free(&s->set);
    free(s->items);
    memset(s, 0, sizeof(*s));
}

/* ---- destruction -------------------------------------------------------- */

void cs_field_clear(cs_field *f)
{
    free(f->name);
    free(f->column);
    free(f->doc);
    free(f->type_name);
    free(f->def.literal);
    cs_checks_free(&f->checks);
    if (f->rel) {
        free(f->rel->name);
        free(f->rel->fields);
        free(f->rel->refs);
        free(f->rel);
    }
    memset(f, 0, sizeof(*f));
}

static void model_clear(cs_model *m)
{
    free(m->name);
    free(m->table);
    free(m->doc);
    for (size_t i = 0; i < m->nfields; i++)
        cs_field_clear(&m->fields[i]);
    free(m->fields);
    free(m->pk);
    for (size_t i = 0; i < m->nuniques; i++) {
        free(m->uniques[i].name);
        free(m->uniques[i].fields);
    }
    free(m->uniques);
    for (size_t i = 0; i < m->nindexes; i++) {
        free(m->indexes[i].name);
        free(m->indexes[i].fields);
    }
    free(m->indexes);
    for (size_t i = 0; i < m->npolicies; i++)
        cs_expr_free(m->policies[i].expr);
    free(m->policies);
}

void cs_schema_destroy(cstack_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nmodels; i++)
        model_clear(&s->models[i]);
    free(s->models);
    for (size_t i = 0; i < s->nenums; i++) {
        for (size_t k = 0; k < s->enums[i].nmembers; k++)
            free(s->enums[i].members[k]);
        free(s->enums[i].members);
        free(s->enums[i].name);
        free(s->enums[i].doc);
    }
    free(s->enums);
    for (size_t i = 0; i < s->auth.nfields; i++)
        cs_field_clear(&s->auth.fields[i]);
    free(s->auth.fields);
    free(s->auth.name);
    free(s->datasource.name);
    free(s->datasource.provider);
    free(s->datasource.url);
    free(s->datasource.url_env);
    free(s->filename);
    free(s->canonical);
    free(s->source);
    free(s);
}

void cstack_schema_free(cstack_schema *schema)
{
    if (schema && __atomic_sub_fetch(&schema->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        cs_schema_destroy(schema);
}

/* ---- canonical form ------------------------------------------------------ */

/*
 * The canonical text is a normalised rendering of the validated IR: one line
 * per field and attribute, names resolved, literals canonical, policies fully
 * parenthesised; no comments, docs or layout.  So the hash changes exactly
 * when the data model changes.  Deliberately left out: the datasource block
 * (where data lives, not its shape: a SQLite client and a PostgreSQL server
 * must agree on the hash) and the spelling of keys (`a Int @unique` and
 * `@@unique([a])` are the same constraint).  The first line versions the
 * format itself.
 */
static const char *const action_kw[] = {"",         "Cascade", "Restrict",
                                        "NoAction", "SetNull", "SetDefault"};

static int canon_field_list(cs_buf *b, const cs_model *m, const int *idx, size_t n)
{
    int rc = cs_buf_putc(b, '[');
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cs_buf_printf(b, "%s%s", i ? ", " : "", m->fields[idx[i]].name);
    return rc ? rc : cs_buf_putc(b, ']');
}

static int canon_relation(cs_buf *b, const cstack_schema *s, const cs_model *m,
                          const cs_relation *r)
{
    int rc = cs_buf_puts(b, " @relation(");
    if (rc == 0 && r->name)
        rc = cs_buf_json_str(b, r->name, strlen(r->name));
    if (rc == 0 && r->nfields) {
        rc = cs_buf_puts(b, r->name ? ", fields: " : "fields: ");
        if (rc == 0)
            rc = canon_field_list(b, m, r->fields, r->nfields);
        if (rc == 0)
            rc = cs_buf_puts(b, ", references: ");
        if (rc == 0)
            rc = canon_field_list(b, &s->models[r->target], r->refs, r->nfields);
    }
    if (rc == 0 && r->on_delete)
        rc = cs_buf_printf(b, ", onDelete: %s", action_kw[r->on_delete]);
    if (rc == 0 && r->on_update)
        rc = cs_buf_printf(b, ", onUpdate: %s", action_kw[r->on_update]);
    return rc ? rc : cs_buf_putc(b, ')');
}

static int canon_field(cs_buf *b, const cstack_schema *s, const cs_model *m, const cs_field *f)
{
    static const char *const fn[] = {"", "", "uuid()", "cuid()", "now()", "autoincrement()"};
    int rc = cs_buf_printf(b, "  %s %s%s", f->name, f->type_name,
                           f->list && !f->vec_dim ? "[]"
                           : f->optional ? "?"
                                         : "");
    if (rc == 0 && f->is_id && m->npk == 1)
        rc = cs_buf_puts(b, " @id");
    if (rc == 0 && f->updated_at)
        rc = cs_buf_puts(b, " @updatedAt");
    if (rc == 0 && f->def.kind == CS_DEF_LITERAL) {
        rc = cs_buf_puts(b, " @default(");
        if (rc == 0)
            rc = cs_buf_json_str(b, f->def.literal, strlen(f->def.literal));
        if (rc == 0)
            rc = cs_buf_putc(b, ')');
    } else if (rc == 0 && f->def.kind != CS_DEF_NONE) {
        rc = cs_buf_printf(b, " @default(%s)", fn[f->def.kind]);
    }
    if (rc == 0 && f->type != CS_T_MODEL && strcmp(f->column, f->name) != 0)
        rc = cs_buf_printf(b, " @map(\"%s\")", f->column);
    if (rc == 0 && f->rel && (f->rel->name || f->rel->nfields))
        rc = canon_relation(b, s, m, f->rel);
    return rc ? rc : cs_buf_putc(b, '\n');
}

static int canon_model_attrs(cs_buf *b, const cs_model *m)
{
    int rc = 0;
    if (m->npk > 1) {
        rc = cs_buf_puts(b, "  @@id(");
        if (rc == 0)
            rc = canon_field_list(b, m, m->pk, m->npk);
        if (rc == 0)
            rc = cs_buf_puts(b, ")\n");
    }
    for (size_t i = 0; i < m->nuniques + m->nindexes && rc == 0; i++) {
        const cs_index *ix = i < m->nuniques ? &m->uniques[i] : &m->indexes[i - m->nuniques];
        rc = cs_buf_puts(b, ix->unique ? "  @@unique(" : "  @@index(");
        if (rc == 0)
            rc = canon_field_list(b, m, ix->fields, ix->n);
        if (rc == 0)
            rc = cs_buf_puts(b, ")\n");
    }
    if (rc == 0 && strcmp(m->table, m->name) != 0)
        rc = cs_buf_printf(b, "  @@map(\"%s\")\n", m->table);
    for (size_t i = 0; i < m->npolicies && rc == 0; i++) {
        const cs_policy *pol = &m->policies[i];
        rc = cs_buf_printf(b, "  @@%s(%u, ", pol->deny ? "deny" : "allow", pol->ops);
        if (rc == 0)
            rc = cs_expr_canon(b, pol->expr);
        if (rc == 0)
            rc = cs_buf_puts(b, ")\n");
    }
    if (rc == 0 && m->soft_delete >= 0)
        rc = cs_buf_printf(b, "  @@soft_delete(%s)\n", m->fields[m->soft_delete].name);
    if (rc == 0 && m->audit)
        rc = cs_buf_puts(b, "  @@audit\n");
    if (rc == 0 && m->emit)
        rc = cs_buf_printf(b, "  @@emit(%u)\n", m->emit);
    if (rc == 0 && m->local)
        rc = cs_buf_puts(b, "  @@local\n");
    return rc;
}

static int canon_text(cs_buf *b, const cstack_schema *s)
{
    int rc = cs_buf_puts(b, "cstack-schema 1\n");
    if (rc == 0 && s->auth.name) {
        rc = cs_buf_printf(b, "auth %s {\n", s->auth.name);
        for (size_t i = 0; i < s->auth.nfields && rc == 0; i++)
            rc = cs_buf_printf(b, "  %s %s%s\n", s->auth.fields[i].name,
                               s->auth.fields[i].type_name, s->auth.fields[i].optional ? "?" : "");
        if (rc == 0)
            rc = cs_buf_puts(b, "}\n");
    }
    for (size_t i = 0; i < s->nenums && rc == 0; i++) {
        rc = cs_buf_printf(b, "enum %s {", s->enums[i].name);
        for (size_t k = 0; k < s->enums[i].nmembers && rc == 0; k++)
            rc = cs_buf_printf(b, " %s", s->enums[i].members[k]);
        if (rc == 0)
            rc = cs_buf_puts(b, " }\n");
    }
    for (size_t i = 0; i < s->nmodels && rc == 0; i++) {
        const cs_model *m = &s->models[i];
        rc = cs_buf_printf(b, "model %s {\n", m->name);
        for (size_t k = 0; k < m->nfields && rc == 0; k++)
            rc = canon_field(b, s, m, &m->fields[k]);
        if (rc == 0)
            rc = canon_model_attrs(b, m);
        if (rc == 0)
            rc = cs_buf_puts(b, "}\n");
    }
    return rc;
}

int cs_canon(cstack_schema *s)
{
    cs_buf b = CS_BUF_INIT;
    int rc = canon_text(&b, s);
    if (rc != 0) {
        cs_buf_free(&b);
        return rc;
    }
    cs_sha256_hex(b.data, b.len, s->hash);
    s->canonical = cs_buf_take(&b);
    return s->canonical ? 0 : CSTACK_ENOMEM;
}

/* ---- entry points -------------------------------------------------------- */

static void parse_state_free(cs_parse *p)
{
    cs_tokens_free(p);
    for (size_t i = 0; p->s && i < p->s->nmodels; i++)
        cs_pmodel_free(&p->pm[i], p->s->models[i].nfields);
    free(p->pm);
    for (size_t i = 0; p->s && i < p->s->auth.nfields; i++)
        cs_pfield_free(&p->pauth[i]);
    free(p->pauth);
    cs_blocks_free(&p->mixins);
    cs_blocks_free(&p->types);
    free(p->params);
    free(p->params_optional);
}

/* Lexes, parses and validates into a new schema; the result code says
 * whether the schema is usable. */
static int build(cs_parse *p, const char *filename)
{
    p->s = calloc(1, sizeof(*p->s));
    if (!p->s)
        return CSTACK_ENOMEM;
    p->s->refcount = 1;
    p->s->filename = cs_strdup(filename);
    if (!p->s->filename)
        return CSTACK_ENOMEM;
    if (cs_lex(p) != 0)
        return CSTACK_ENOMEM;
    if (p->too_big)
        return CSTACK_ETOOBIG;
    cs_parse_tokens(p);
    if (!p->oom)
        cs_validate(p);
    if (p->oom || p->diags->oom)
        return CSTACK_ENOMEM;
    if (p->diags->errors)
        return CSTACK_ESCHEMA;
    return cs_canon(p->s);
}

int cstack_schema_parse(const char *filename, const char *src, size_t len, cstack_schema **out,
                        cstack_diags **diags)
{
    if (out)
        *out = NULL;
    if (diags)
        *diags = NULL;
    if (!out || (!src && len))
        return CSTACK_EMISUSE;
    if (!filename)
        filename = "<schema>";
    cstack_diags *d = cs_diags_new(filename);
    if (!d)
        return CSTACK_ENOMEM;
    int rc;
    cs_parse p = {0};
    if (len > CS_SCHEMA_MAX_SOURCE) {
        cs_pos pos = {1, 1};
        cs_diag(d, pos, "schema source is larger than the limit of 16 MiB");
        rc = CSTACK_ETOOBIG;
    } else {
        p.file = filename;
        p.src = src ? src : "";
        p.len = len;
        p.diags = d;
        rc = build(&p, filename);
        parse_state_free(&p);
        if (rc == 0) {
            /* Kept so bootstrap can store the exact schema a database was
             * built with, for a later migration to compare against. */
            p.s->source = cs_strndup(p.src, len);
            p.s->source_len = len;
            if (!p.s->source)
                rc = CSTACK_ENOMEM;
        }
        if (rc == 0)
            *out = p.s;
        else
            cs_schema_destroy(p.s);
    }
    cs_diags_finish(d, len > CS_SCHEMA_MAX_SOURCE ? NULL : src, len);
    if (diags)
        *diags = d;
    else
        cstack_diags_free(d);
    return rc;
}

/* Reads at most the source limit plus one byte, so an oversized file is
 * detected without reading all of it. */
static int read_all(FILE *f, char **out, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) {
            if (cap > CS_SCHEMA_MAX_SOURCE)
                break;
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return CSTACK_ENOMEM;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        errno = e ? e : EIO;
        return CSTACK_EIO;
    }
    *out = buf;
    *len = n;
    return 0;
}

int cstack_schema_load(const char *path, cstack_schema **out, cstack_diags **diags)
{
    if (out)
        *out = NULL;
    if (diags)
        *diags = NULL;
    if (!path || !out)
        return CSTACK_EMISUSE;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    int rc = f ? read_all(f, &buf, &len) : CSTACK_EIO;
    int err = errno;
    if (f)
        fclose(f);
    if (rc == 0) {
        rc = cstack_schema_parse(path, buf ? buf : "", len, out, diags);
        free(buf);
        return rc;
    }
    cstack_diags *d = cs_diags_new(path);
    if (!d)
        return CSTACK_ENOMEM;
    if (rc == CSTACK_EIO) {
        cs_pos pos = {1, 1};
        cs_diag(d, pos, "cannot read file: %s", strerror(err));
    }
    cs_diags_finish(d, NULL, 0);
    if (diags)
        *diags = d;
    else
        cstack_diags_free(d);
    return rc;
}

const char *cstack_schema_hash(const cstack_schema *schema)
{
    return schema ? schema->hash : "";
}

size_t cstack_schema_model_count(const cstack_schema *schema)
{
    return schema ? schema->nmodels : 0;
}

const char *cstack_schema_model_name(const cstack_schema *schema, size_t i)
{
    return schema && i < schema->nmodels ? schema->models[i].name : NULL;
}
