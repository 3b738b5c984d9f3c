/*
 * cursor.c -- what every parsing file of the schema module shares: the
 * token cursor (doc comments skipped), syntax diagnostics that stay quiet
 * after a lexical error, growth of the parse arrays, name lists and the
 * once-only report of a size limit.  parser.c, authblock.c, attrs.c,
 * checks.c, policy.c and serveronly.c all parse with these.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

void *cs_push(cs_parse *p, void *arrp, size_t n, size_t elem)
{
    char **arr = arrp;
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        char *v = realloc(*arr, cap * elem);
        if (!v) {
            p->oom = true;
            return NULL;
        }
        *arr = v;
    }
    void *slot = *arr + n * elem;
    memset(slot, 0, elem);
    return slot;
}

char *cs_xstrdup(cs_parse *p, const char *s)
{
    char *d = cs_strdup(s);
    if (!d)
        p->oom = true;
    return d;
}

char *cs_tok_strdup(cs_parse *p, const cs_token *t)
{
    char *d = t->text ? cs_strdup(t->text) : cs_strndup(t->start, t->len);
    if (!d)
        p->oom = true;
    return d;
}

const cs_token *cs_peek(cs_parse *p)
{
    while (p->toks[p->cur].kind == T_DOC)
        p->cur++;
    return &p->toks[p->cur];
}

const cs_token *cs_next(cs_parse *p)
{
    const cs_token *t = cs_peek(p);
    if (t->kind != T_EOF)
        p->cur++;
    return t;
}

bool cs_accept(cs_parse *p, cs_tok_kind k)
{
    if (cs_peek(p)->kind != k)
        return false;
    cs_next(p);
    return true;
}

bool cs_tok_is(const cs_token *t, const char *word)
{
    return t->kind == T_IDENT && t->len == strlen(word) && memcmp(t->start, word, t->len) == 0;
}

const char *cs_tok_desc(const cs_token *t, char *buf, size_t n)
{
    switch (t->kind) {
    case T_EOF:
        return "end of file";
    case T_STRING:
        return "a string";
    case T_IDENT:
    case T_NUMBER:
        snprintf(buf, n, "'%.*s'", t->len > 40 ? 40 : (int)t->len, t->start);
        return buf;
    default:
        snprintf(buf, n, "'%s'", cs_tok_kind_name(t->kind));
        return buf;
    }
}

void cs_syntax(cs_parse *p, cs_pos pos, const char *fmt, ...)
{
    size_t end = p->cur < p->ntoks ? p->cur : p->ntoks - 1;
    for (size_t i = p->member_start; i <= end; i++)
        if (p->toks[i].lexerr)
            return;
    va_list ap;
    va_start(ap, fmt);
    cs_vdiag(p->diags, pos, fmt, ap);
    va_end(ap);
}

void cs_err_expected(cs_parse *p, const char *what)
{
    char b[64];
    const cs_token *t = cs_peek(p);
    cs_pos pos = t->pos;
    /* When the line ended before what was expected (an unclosed `(`), point
     * just after the last token of that line rather than at the next one. */
    size_t i = p->cur;
    while (i > 0 && p->toks[i - 1].kind == T_DOC)
        i--;
    if (i > 0 && p->toks[i - 1].pos.line < pos.line) {
        pos = p->toks[i - 1].pos;
        pos.col += (int)p->toks[i - 1].len;
    }
    cs_syntax(p, pos, "expected %s, found %s", what, cs_tok_desc(t, b, sizeof(b)));
}

void cs_names_free(cs_names *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->v[i]);
    free(n->v);
    free(n->pos);
    memset(n, 0, sizeof(*n));
}

bool cs_names_push(cs_parse *p, cs_names *n, const cs_token *t)
{
    char **v = cs_push(p, &n->v, n->n, sizeof(*v));
    cs_pos *pos = v ? cs_push(p, &n->pos, n->n, sizeof(*pos)) : NULL;
    if (!pos)
        return false;
    *v = cs_tok_strdup(p, t);
    *pos = t->pos;
    n->n++;
    return *v != NULL;
}

void cs_pfield_free(cs_pfield *pf)
{
    free(pf->def_text);
    cs_names_free(&pf->rel_fields);
    cs_names_free(&pf->rel_refs);
    free(pf->rel_name);
}

void cs_pmodel_free(cs_pmodel *pm, size_t nfields)
{
    for (size_t i = 0; i < nfields; i++)
        cs_pfield_free(&pm->fields[i]);
    free(pm->fields);
    for (size_t i = 0; i < pm->nsets; i++)
        cs_names_free(&pm->sets[i].names);
    free(pm->sets);
    free(pm->soft_name);
}

/* Size limits are reported once: one overflow would otherwise flood the
 * diagnostics with the same message. */
bool cs_limit_once(cs_parse *p)
{
    bool first = !p->limit_hit;
    p->limit_hit = true;
    return first;
}
