/*
 * authblock.c -- the auth block: the shape of auth() in policies.
 *
 *   auth NAME '{' (NAME TYPE '?'?)* '}'
 *
 * A field's type is a scalar, an enum, or (CrateStack) the name of a `type`
 * block, which makes it a composite claim:
 *
 *   type OrganizationScope { id String  slug String? }
 *   auth SessionUser { id String  organization OrganizationScope }
 *
 * A composite is flattened here: the field `organization` (a JSON object,
 * cs_field.composite) is followed by one field per member of the type,
 * named `organization.id`, `organization.slug`, so that everything after
 * the parser (the validator, policies, the server's claim mapping and SQL)
 * works on plain auth fields and auth().organization.id is the field
 * "organization.id".  Types may nest (up to CS_MAX_TYPE_DEPTH levels); a
 * type that contains itself is an error.  Diagnostics about a member point
 * into the type, where it is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

/* Claims nested deeper than this are not a real token's shape. */
#define CS_MAX_TYPE_DEPTH 8

typedef struct auth_ctx {
    cs_auth_block *a;
    const char *prefix; /* the composite field whose type is being read, or NULL */
    const char *owner;  /* the auth block's or the type's name, for messages */
    int depth;
} auth_ctx;

static bool auth_member(cs_parse *p, void *vctx, char *doc);

/* The members of type ti become fields after composite field fi. */
static void expand(cs_parse *p, const auth_ctx *c, size_t fi, int ti)
{
    cs_field *f = &c->a->fields[fi];
    cs_pfield *pf = &p->pauth_tmp[fi];
    unsigned char *st = &p->types.state[ti];
    f->composite = true;
    *st |= CS_BLOCK_USED;
    if (f->list || (*st & CS_BLOCK_OPEN) || c->depth >= CS_MAX_TYPE_DEPTH) {
        if (f->list)
            cs_diag(p->diags, pf->type_pos, "auth field '%s' cannot be a list of type '%s'",
                    f->name, f->type_name);
        else if (*st & CS_BLOCK_OPEN)
            cs_diag(p->diags, pf->type_pos, "type '%s' contains itself (auth().%s)", f->type_name,
                    f->name);
        else
            cs_diag(p->diags, pf->type_pos, "auth claims nest too deeply (limit %d levels)",
                    CS_MAX_TYPE_DEPTH);
        pf->bad_type = true;
        return;
    }
    /* The strings stay put while the field array grows. */
    auth_ctx sub = {c->a, f->name, f->type_name, c->depth + 1};
    size_t cur = p->cur, start = p->member_start;
    *st |= CS_BLOCK_OPEN;
    p->cur = p->types.body[ti];
    cs_parse_block(p, "type", sub.owner, auth_member, &sub);
    p->types.state[ti] &= (unsigned char)~CS_BLOCK_OPEN;
    p->cur = cur;
    p->member_start = start;
}

/* "prefix.name" for a member of a composite. */
static bool member_name(cs_parse *p, cs_field *f, const char *prefix)
{
    size_t n = strlen(prefix) + 1 + strlen(f->name) + 1;
    char *name = malloc(n);
    char *col = name ? malloc(n) : NULL;
    if (!col) {
        free(name);
        p->oom = true;
        return false;
    }
    snprintf(name, n, "%s.%s", prefix, f->name);
    memcpy(col, name, n);
    free(f->name);
    free(f->column);
    f->name = name;
    f->column = col;
    return true;
}

static bool auth_member(cs_parse *p, void *vctx, char *doc)
{
    const auth_ctx *c = vctx;
    cs_auth_block *a = c->a;
    const cs_token *t = cs_peek(p);
    if (t->kind != T_IDENT || a->nfields >= CS_MAX_FIELDS) {
        char b[64];
        if (t->kind != T_IDENT)
            cs_syntax(p, t->pos, "expected a field in %s '%s', found %s",
                      c->prefix ? "type" : "auth", c->owner, cs_tok_desc(t, b, sizeof(b)));
        else if (cs_limit_once(p))
            cs_diag(p->diags, t->pos, "too many fields in auth '%s' (limit %d)", a->name,
                    CS_MAX_FIELDS);
        free(doc);
        p->auth_broken = true;
        return false;
    }
    cs_field *f = cs_push(p, &a->fields, a->nfields, sizeof(*f));
    cs_pfield *pf = f ? cs_push(p, &p->pauth_tmp, a->nfields, sizeof(*pf)) : NULL;
    if (!pf) {
        free(doc);
        return false;
    }
    size_t fi = a->nfields++;
    f->doc = doc;
    if (cs_parse_field(p, c->owner, f, pf, NULL) && (!c->prefix || member_name(p, f, c->prefix))) {
        int ti = cs_block_find_name(&p->types, f->type_name);
        if (ti >= 0)
            expand(p, c, fi, ti);
        return true;
    }
    if (!f->type_name) {
        cs_field_clear(f);
        cs_pfield_free(pf);
        a->nfields--;
    }
    p->auth_broken = true;
    return false;
}

void cs_parse_auth(cs_parse *p)
{
    const cs_token *kw = cs_peek(p);
    const cs_token *name = cs_decl_head(p, "auth");
    if (!name) {
        cs_skip_toplevel(p);
        return;
    }
    bool dup = p->auth_pos.line != 0;
    if (dup)
        cs_diag(p->diags, kw->pos, "only one auth block is allowed");
    else
        p->auth_pos = name->pos;
    cs_auth_block a = {0};
    a.name = cs_tok_strdup(p, name);
    p->pauth_tmp = NULL;
    auth_ctx c = {&a, NULL, a.name, 0};
    if (a.name)
        cs_parse_block(p, "auth", a.name, auth_member, &c);
    if (dup) {
        for (size_t i = 0; i < a.nfields; i++) {
            cs_field_clear(&a.fields[i]);
            cs_pfield_free(&p->pauth_tmp[i]);
        }
        free(a.fields);
        free(a.name);
        free(p->pauth_tmp);
    } else {
        p->s->auth = a;
        p->pauth = p->pauth_tmp;
    }
    p->pauth_tmp = NULL;
}
