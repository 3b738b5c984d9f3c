/* names.c -- C names for the declarations of a schema, and the registry that
 * keeps every generated file-scope name unique.
 *
 * Models and enums are named by the lower snake form of their schema name
 * (`NoteTag` -> `note_tag`, `HTTPRequest` -> `http_request`); fields keep
 * their spelling (`note_createdAt_desc`), as SPEC section 5 shows.  When a
 * generated name would collide with a C keyword, a name of the standard
 * headers the generated files include, or a name of another model or enum,
 * the later owner is renamed with a suffix: `_m` for models, `_e` for enums
 * (then `_m2`, `_m3`...).  Struct members that are C keywords get a trailing
 * underscore (`default_`). */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"

/* Words no generated identifier may be: C11 and C++ keywords (the header is
 * usable from C++) and object-like macros of the standard headers. */
/* clang-format off */
static const char *const KEYWORDS[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local",
    "alignas", "alignof", "and", "and_eq", "asm", "bitand", "bitor", "bool", "catch", "char16_t",
    "char32_t", "char8_t", "class", "co_await", "co_return", "co_yield", "compl", "concept",
    "const_cast", "consteval", "constexpr", "constinit", "decltype", "delete", "dynamic_cast",
    "explicit", "export", "false", "friend", "mutable", "namespace", "new", "noexcept", "not",
    "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public",
    "reinterpret_cast", "requires", "static_assert", "static_cast", "template", "this",
    "thread_local", "throw", "true", "try", "typeid", "typename", "using", "virtual", "wchar_t",
    "xor", "xor_eq", "NULL", "errno", "assert", "offsetof", "unix", "linux", "i386", "noreturn",
    "complex", "imaginary", "I", "EOF", "BUFSIZ", "EXIT_SUCCESS", "EXIT_FAILURE", "RAND_MAX",
    "MB_CUR_MAX", "EDOM", "ERANGE", "EILSEQ", "SIZE_MAX", "PTRDIFF_MIN", "PTRDIFF_MAX",
    "INTPTR_MIN", "INTPTR_MAX", "UINTPTR_MAX", "INTMAX_MIN", "INTMAX_MAX", "UINTMAX_MAX",
    "WCHAR_MIN", "WCHAR_MAX", "WINT_MIN", "WINT_MAX", "SIG_ATOMIC_MIN", "SIG_ATOMIC_MAX", "stdin",
    "stdout", "stderr", "__bool_true_false_are_defined",
};
/* clang-format on */

/* File-scope names of <stdbool.h>, <stddef.h>, <stdint.h>, <stdlib.h> and
 * <string.h> (with the POSIX and BSD additions glibc declares under
 * _DEFAULT_SOURCE), which the generated files include, plus cstack.h's
 * own non-prefixed names. */
/* clang-format off */
static const char *const LIBRARY[] = {
    "size_t", "ptrdiff_t", "max_align_t", "wchar_t", "div_t", "ldiv_t", "lldiv_t", "int8_t",
    "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "int_least8_t",
    "int_least16_t", "int_least32_t", "int_least64_t", "uint_least8_t", "uint_least16_t",
    "uint_least32_t", "uint_least64_t", "int_fast8_t", "int_fast16_t", "int_fast32_t",
    "int_fast64_t", "uint_fast8_t", "uint_fast16_t", "uint_fast32_t", "uint_fast64_t", "intptr_t",
    "uintptr_t", "intmax_t", "uintmax_t", "abort", "abs", "aligned_alloc", "at_quick_exit",
    "atexit", "atof", "atoi", "atol", "atoll", "bsearch", "calloc", "div", "exit", "free",
    "getenv", "labs", "ldiv", "llabs", "lldiv", "malloc", "mblen", "mbstowcs", "mbtowc", "qsort",
    "quick_exit", "rand", "realloc", "srand", "strtod", "strtof", "strtol", "strtold", "strtoll",
    "strtoul", "strtoull", "system", "wcstombs", "wctomb", "_Exit", "memchr", "memcmp", "memcpy",
    "memmove", "memset", "strcat", "strchr", "strcmp", "strcoll", "strcpy", "strcspn", "strerror",
    "strlen", "strncat", "strncmp", "strncpy", "strpbrk", "strrchr", "strspn", "strstr", "strtok",
    "strxfrm", "random", "srandom", "initstate", "setstate", "drand48", "erand48", "lrand48",
    "nrand48", "mrand48", "jrand48", "srand48", "seed48", "lcong48", "mkstemp", "mkstemps",
    "mkdtemp", "mkostemp", "mktemp", "realpath", "setenv", "unsetenv", "putenv", "clearenv",
    "posix_memalign", "valloc", "alloca", "grantpt", "ptsname", "unlockpt", "posix_openpt",
    "getsubopt", "rand_r", "l64a", "a64l", "ecvt", "fcvt", "gcvt", "qecvt", "qfcvt", "qgcvt",
    "on_exit", "getloadavg", "reallocarray", "strdup", "strndup", "strtok_r", "strerror_r",
    "stpcpy", "stpncpy", "strnlen", "strsignal", "memccpy", "strcasecmp", "strncasecmp", "bzero",
    "bcopy", "bcmp", "index", "rindex", "ffs", "ffsl", "ffsll", "strsep", "explicit_bzero",
    "strlcpy", "strlcat", "memmem", "mempcpy", "locale_t", "strcoll_l", "strxfrm_l", "strerror_l",
    "strcasecmp_l", "strncasecmp_l", "main", "sqlite3",
};
/* clang-format on */

static bool in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool is_keyword(const char *s)
{
    return in_list(KEYWORDS, sizeof KEYWORDS / sizeof KEYWORDS[0], s);
}

void cg_fail(cg *g, int rc, const char *fmt, ...)
{
    if (g->rc)
        return;
    g->rc = rc;
    if (g->err && g->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, g->errlen, fmt, ap);
        va_end(ap);
    }
}

static const char *pool_keep(cg *g, char *s)
{
    if (!s) {
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
        return NULL;
    }
    if (g->npool == g->cappool) {
        size_t cap = g->cappool ? g->cappool * 2 : 256;
        char **p = realloc(g->pool, cap * sizeof *p);
        if (!p) {
            free(s);
            cg_fail(g, CSTACK_ENOMEM, "out of memory");
            return NULL;
        }
        g->pool = p;
        g->cappool = cap;
    }
    g->pool[g->npool++] = s;
    return s;
}

static const char *vstr(cg *g, const char *fmt, va_list ap)
{
    if (g->rc)
        return "";
    cs_buf b = CS_BUF_INIT;
    if (cs_buf_vprintf(&b, fmt, ap)) {
        cs_buf_free(&b);
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
        return "";
    }
    const char *s = pool_keep(g, cs_buf_take(&b));
    return s ? s : "";
}

const char *cg_str(cg *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = vstr(g, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- the registry: file-scope names in util/'s hash set ---- */

static uint64_t hash_name(const char *s)
{
    return cs_fnv1a64(CS_FNV64_INIT, s, strlen(s));
}

typedef struct reg_probe {
    const cg *g;
    const char *name;
} reg_probe;

static bool reg_eq(const void *ctx, size_t id)
{
    const reg_probe *q = ctx;
    return strcmp(q->g->reg[id].name, q->name) == 0;
}

/* The entry of a registered name, or NULL. */
static cg_entry *reg_find(cg *g, const char *name)
{
    reg_probe q = {g, name};
    size_t id = cs_hset_find(&g->regset, hash_name(name), reg_eq, &q);
    return id == CS_HSET_NONE ? NULL : &g->reg[id];
}

static void reg_clear(cg *g)
{
    for (size_t i = 0; i < g->regn; i++)
        free(g->reg[i].name);
    free(g->reg);
    cs_hset_free(&g->regset);
    g->reg = NULL;
    g->regcap = g->regn = 0;
}

/* Registers a name that reg_find does not know. */
static void reg_add(cg *g, const char *name, int owner)
{
    if (g->regn == g->regcap) {
        size_t cap = g->regcap ? g->regcap * 2 : 512;
        cg_entry *reg = realloc(g->reg, cap * sizeof *reg);
        if (!reg) {
            cg_fail(g, CSTACK_ENOMEM, "out of memory");
            return;
        }
        g->reg = reg;
        g->regcap = cap;
    }
    char *copy = cs_strdup(name);
    if (!copy || cs_hset_add(&g->regset, hash_name(name), g->regn)) {
        free(copy);
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
        return;
    }
    g->reg[g->regn++] = (cg_entry){copy, owner};
}

static const char *owner_name(const cg *g, int owner)
{
    if (owner < 0)
        return "a C keyword or library name";
    if ((size_t)owner < g->s->nenums)
        return g->s->enums[owner].name;
    return g->s->models[(size_t)owner - g->s->nenums].name;
}

const char *cg_decl(cg *g, int owner, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *name = vstr(g, fmt, ap);
    va_end(ap);
    if (g->emit || g->rc)
        return name;
    cg_entry *e = reg_find(g, name);
    if (!e) {
        reg_add(g, name, owner);
    } else if (e->owner == owner) {
        cg_fail(g, CSTACK_EINVAL,
                "%s: the generated name '%s' would be declared twice (two fields or unique "
                "keys whose names run together); rename one of them",
                owner_name(g, owner), name);
    } else if (g->conflict < 0) {
        g->conflict = owner;
    }
    return name;
}

const char *cg_param(cg *g, const char *base, const char *const *taken, size_t ntaken)
{
    const char *name = base;
    for (;;) {
        cg_entry *e = reg_find(g, name);
        if (!e && !in_list(taken, ntaken, name) && !is_keyword(name))
            return name;
        name = cg_str(g, "%s_", name);
        if (g->rc)
            return base;
    }
}

/* ---- prefixes and members ---- */

/* The lower snake form of an ASCII identifier: `HTTPRequest` ->
 * `http_request`; runs of underscores collapse, leading and trailing ones
 * go. */
static int snake(cs_buf *b, const char *name)
{
    int rc = 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)name[i];
        bool last_us = b->len == 0 || b->data[b->len - 1] == '_';
        if (c == '_') {
            if (!last_us)
                rc = cs_buf_putc(b, '_');
            continue;
        }
        if (isupper(c) && i > 0 && !last_us) {
            unsigned char p = (unsigned char)name[i - 1];
            unsigned char nx = i + 1 < n ? (unsigned char)name[i + 1] : 0;
            if (islower(p) || isdigit(p) || (isupper(p) && islower(nx)))
                rc = cs_buf_putc(b, '_');
        }
        if (!rc)
            rc = cs_buf_putc(b, (char)tolower(c));
    }
    while (!rc && b->len && b->data[b->len - 1] == '_')
        b->data[--b->len] = 0;
    if (!rc && b->len == 0)
        rc = cs_buf_putc(b, 'x');
    return rc;
}

/* The prefix of an owner renamed `bump` times; names that would start in
 * the library's own namespaces move out of them. */
static const char *prefix_for(cg *g, const char *schema_name, int bump, char tag)
{
    cs_buf b = CS_BUF_INIT;
    if (snake(&b, schema_name)) {
        cs_buf_free(&b);
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
        return "";
    }
    bool foreign = strncmp(b.data, "cstack", 6) == 0 || strncmp(b.data, "sqlite", 6) == 0;
    const char *p = cg_str(g, "%s%s", foreign ? (tag == 'm' ? "m_" : "e_") : "", b.data);
    if (bump == 1)
        p = cg_str(g, "%s_%c", p, tag);
    else if (bump > 1)
        p = cg_str(g, "%s_%c%d", p, tag, bump);
    cs_buf_free(&b);
    return p;
}

static const char *upper_of(cg *g, const char *s)
{
    char *u = cs_strdup(s);
    for (char *p = u; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    const char *kept = pool_keep(g, u);
    return kept ? kept : "";
}

/* Struct members of one model share a namespace: a name already used, or a
 * keyword, gets underscores appended.  Field members are placed first so they
 * keep their spelling whenever possible. */
typedef struct members {
    const char **names;
    size_t n;
} members;

static const char *member(cg *g, members *ms, const char *base)
{
    const char *name = base;
    while (!g->rc && (is_keyword(name) || in_list(ms->names, ms->n, name)))
        name = cg_str(g, "%s_", name);
    if (!g->rc)
        ms->names[ms->n++] = name;
    return name;
}

static void model_members(cg *g, cg_model *cm)
{
    const cs_model *m = cm->m;
    members ms = {calloc(m->nfields * 4 + 1, sizeof(char *)), 0};
    if (!ms.names) {
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < m->nfields; i++)
        if (cm->fields[i].col >= 0)
            cm->fields[i].member = member(g, &ms, m->fields[i].name);
    for (size_t i = 0; i < m->nfields; i++) {
        cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        bool has = !cg_is_pointer(cf->kind) && (cf->f->optional || cg_omittable(cf->f));
        cf->has = has ? member(g, &ms, cg_str(g, "has_%s", cf->f->name)) : NULL;
        cf->len = cf->kind == CG_BYTES ? member(g, &ms, cg_str(g, "%s_len", cf->f->name)) : NULL;
        cf->set = member(g, &ms, cg_str(g, "set_%s", cf->f->name));
    }
    cm->row = member(g, &ms, "row");
    free(ms.names);
}

static void name_model(cg *g, cg_model *cm)
{
    const cs_model *m = cm->m;
    cm->prefix = prefix_for(g, m->name, cm->bump, 'm');
    cm->upper = upper_of(g, cm->prefix);
    cm->ncols = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        cg_field *cf = &cm->fields[i];
        memset(cf, 0, sizeof *cf);
        cf->f = &m->fields[i];
        cf->col = cs_field_is_column(cf->f) ? (int)cm->ncols++ : -1;
        cf->kind = cf->col >= 0 ? cg_kind_of(cf->f) : CG_TEXT;
        if (cf->col >= 0 && cf->kind == CG_ENUM)
            g->enums[cf->f->type_index].used = true;
    }
    model_members(g, cm);
}

static void seed_registry(cg *g)
{
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof KEYWORDS[0]; i++)
        reg_add(g, KEYWORDS[i], -1);
    for (size_t i = 0; i < sizeof LIBRARY / sizeof LIBRARY[0]; i++)
        reg_add(g, LIBRARY[i], -1);
}

int cg_names_begin(cg *g)
{
    for (size_t i = 0; i < g->npool; i++)
        free(g->pool[i]);
    g->npool = 0;
    reg_clear(g);
    seed_registry(g);
    for (size_t i = 0; i < g->s->nenums && !g->rc; i++) {
        cg_enum *ce = &g->enums[i];
        ce->e = &g->s->enums[i];
        ce->prefix = prefix_for(g, ce->e->name, ce->bump, 'e');
        ce->upper = upper_of(g, ce->prefix);
        ce->type = cg_str(g, "%s_t", ce->prefix);
        ce->used = false;
    }
    for (size_t i = 0; i < g->s->nmodels && !g->rc; i++) {
        g->models[i].m = &g->s->models[i];
        name_model(g, &g->models[i]);
    }
    return g->rc;
}

void cg_names_free(cg *g)
{
    for (size_t i = 0; i < g->npool; i++)
        free(g->pool[i]);
    free(g->pool);
    g->pool = NULL;
    g->npool = g->cappool = 0;
    reg_clear(g);
}
