/* codegen.c -- cs_codegen() and its public face cstack_codegen(): the
 * passes, the layout of the two generated files and the text utilities the
 * emitters share.
 *
 * Layout of the header: preamble (the rules every generated API follows),
 * includes, then each enum, then each model: descriptors, structs, delegates,
 * field helpers.  The source follows the same order, so a reader finds a
 * definition where the header declares it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"

/* Renames one model or enum may receive before generation gives up. */
#define MAX_BUMPS 16

static void vappend(cg *g, cs_buf *b, const char *fmt, va_list ap)
{
    if (!g->emit || g->rc)
        return;
    int rc = cs_buf_vprintf(b, fmt, ap);
    if (rc)
        cg_fail(g, rc, "the generated text exceeds its buffer");
}

void cg_h(cg *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(g, g->h, fmt, ap);
    va_end(ap);
}

void cg_c(cg *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(g, g->c, fmt, ap);
    va_end(ap);
}

/* Appends `text` as a block comment wrapped to the header's width.  Line
 * breaks written into the text as "\n * " are re-flowed; a run of two spaces
 * (a sentence break) is kept. */
void cg_note(cg *g, const char *text)
{
    enum { WIDTH = 80 };
    cs_buf flat = CS_BUF_INIT;
    int rc = 0;
    for (const char *p = text; *p && !rc; p++) {
        if (p[0] == '\n' && strncmp(p + 1, " * ", 3) == 0) {
            rc = cs_buf_puts(&flat, p > text && p[-1] == '.' ? "  " : " ");
            p += 3;
        } else {
            rc = cs_buf_putc(&flat, *p);
        }
    }
    size_t col = 2;
    cg_h(g, "/*");
    for (const char *p = flat.data ? flat.data : ""; *p;) {
        size_t sp = 0, n = 0;
        while (p[sp] == ' ')
            sp++;
        p += sp;
        while (p[n] && p[n] != ' ')
            n++;
        if (!n)
            break;
        size_t sep = sp >= 2 && col > 2 ? 2 : 1;
        if (col > 2 && col + sep + n > WIDTH) {
            cg_h(g, "\n *");
            col = 2;
            sep = 1;
        }
        cg_h(g, "%*s%.*s", (int)sep, "", (int)n, p);
        col += sep + n;
        p += n;
    }
    cg_h(g, " */\n");
    cs_buf_free(&flat);
    if (rc)
        cg_fail(g, rc, "out of memory");
}

/* `sig` with its parameters wrapped under the opening parenthesis when the
 * line would be longer than 100 columns (manual breaks are re-flowed). */
static const char *wrap_sig(cg *g, const char *sig)
{
    cs_buf flat = CS_BUF_INIT, out = CS_BUF_INIT;
    int rc = 0;
    for (const char *p = sig; *p && !rc; p++) {
        if (*p == '\n') {
            while (p[1] == ' ')
                p++;
            rc = cs_buf_putc(&flat, ' ');
        } else {
            rc = cs_buf_putc(&flat, *p);
        }
    }
    const char *text = flat.data ? flat.data : "";
    const char *open = strchr(text, '(');
    if (rc || strlen(text) < 100 || !open) {
        const char *s = cg_str(g, "%s", text);
        cs_buf_free(&flat);
        return s;
    }
    size_t indent = (size_t)(open - text) + 1, col = indent;
    rc = cs_buf_append(&out, text, indent);
    for (const char *p = open + 1; *p && !rc;) {
        const char *comma = strstr(p, ", ");
        size_t n = comma ? (size_t)(comma - p) + 1 : strlen(p);
        if (col > indent && col + 1 + n > 99) {
            rc = cs_buf_printf(&out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            rc = cs_buf_putc(&out, ' ');
            col++;
        }
        if (!rc)
            rc = cs_buf_append(&out, p, n);
        col += n;
        p += n + (comma ? 1 : 0);
    }
    const char *s = rc ? "" : cg_str(g, "%s", out.data);
    if (rc)
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
    cs_buf_free(&flat);
    cs_buf_free(&out);
    return s;
}

void cg_fn(cg *g, const char *doc, const char *sig)
{
    if (!g->emit)
        return;
    sig = wrap_sig(g, sig);
    cg_h(g, "\n");
    if (doc)
        cg_note(g, doc);
    cg_h(g, "%s;\n", sig);
    cg_c(g, "\n%s\n{\n", sig);
}

const char *cg_safe(cg *g, const char *text, bool lines)
{
    if (!g->emit || g->rc)
        return "";
    cs_buf b = CS_BUF_INIT;
    int rc = 0;
    for (const char *p = text; *p && !rc; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*') ||
            (p[0] == '?' && p[1] == '?'))
            rc = cs_buf_printf(&b, "%c ", p[0]); /* "* /", "/ *", "? ?" */
        else if (ch == '\n' && lines)
            rc = cs_buf_putc(&b, '\n');
        else if (ch < 0x20 || ch == 0x7f)
            rc = cs_buf_putc(&b, ' ');
        else
            rc = cs_buf_putc(&b, (char)ch);
    }
    const char *s = rc ? "" : cg_str(g, "%s", b.data ? b.data : "");
    if (rc)
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
    cs_buf_free(&b);
    return s;
}

void cg_doc(cg *g, const char *doc, const char *lead)
{
    if (!doc || !*doc || !g->emit)
        return;
    const char *safe = cg_safe(g, doc, true);
    while (*safe) {
        const char *nl = strchr(safe, '\n');
        size_t n = nl ? (size_t)(nl - safe) : strlen(safe);
        while (n && safe[n - 1] == ' ')
            n--;
        cg_h(g, "%s%.*s\n", n ? lead : " *", (int)n, safe);
        safe += nl ? (size_t)(nl - safe) + 1 : strlen(safe);
    }
}

/* The last component of a path, for comments (output must not depend on
 * where the schema lives). */
static const char *base_of(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path ? path : "schema";
}

static const char PREAMBLE_RULES[] =
    " * Rules (docs/codegen.md):\n"
    " *\n"
    " * - Names.  Model `NoteTag` gives the struct `note_tag` and the functions\n"
    " *   `note_tag_*`; enum `Status` gives `status_t` with members\n"
    " *   `STATUS_<MEMBER>`.  Field helpers keep the field's spelling\n"
    " *   (`note_createdAt_desc`).  A name that would clash with a C keyword, the\n"
    " *   C library or another model gets `_m` (models) or `_e` (enums) appended.\n"
    " * - Values.  String, Uuid, Cuid, DateTime, Decimal and Json are `const\n"
    " *   char *` text, read back in canonical form (lowercase UUIDs, UTC\n"
    " *   DateTimes with 6 digits, exact Decimals); Int is `int64_t`, Float\n"
    " *   `double`, Boolean `bool`, Bytes `const void *` plus `size_t <f>_len`.\n"
    " * - Absent values.  A pointer member is NULL when the value is null (in a\n"
    " *   create input: not given).  A value member (Int, Float, Boolean, enum)\n"
    " *   that can be absent has a `bool has_<f>` flag.  In a create input, a\n"
    " *   field left out gets its @default / @updatedAt (or null when optional);\n"
    " *   a required field left out fails with CSTACK_EREQUIRED.  In an update\n"
    " *   input only fields whose `bool set_<f>` is true are written; a set\n"
    " *   field with a NULL pointer (or a false has_ flag) is written as null.\n"
    " * - Ownership.  Inputs and the strings they point to are borrowed for the\n"
    " *   call.  A model struct filled by a function owns its row (member `row`):\n"
    " *   its strings and bytes live until `<model>_free()`.  A `<model>_list`\n"
    " *   owns the memory of all its items until `<model>_list_free()`; an item's\n"
    " *   `row` is NULL, so `<model>_free()` on an item is a harmless no-op.\n"
    " *   Output structs must not hold a row when passed in (free them first).\n"
    " *   Filter helpers return a new cstack_filter owned by the caller: free it\n"
    " *   with cstack_filter_free() or hand it to a combinator\n"
    " *   (cstack_filter_and2...) or a relation helper, which take ownership\n"
    " *   (even on failure).  They copy their arguments and return NULL only\n"
    " *   when out of memory; a query given a NULL filter child fails with\n"
    " *   CSTACK_ENOMEM.  Ordering helpers return a value naming a static string.\n"
    " * - Errors.  Functions return 0 or a negative CSTACK_E* code;\n"
    " *   cstack_errmsg(db) explains what the runtime reports.  On failure every\n"
    " *   output is zeroed and owns nothing.  Thread safety is the runtime's.\n";

static const char *guard_of(cg *g)
{
    cs_buf b = CS_BUF_INIT;
    int rc = cs_buf_puts(&b, "CSTACK_GEN_");
    for (const char *p = g->basename; *p && !rc; p++) {
        char ch = *p;
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        rc = cs_buf_putc(&b, !alnum ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch);
    }
    const char *s = rc ? "CSTACK_GEN_H" : cg_str(g, "%s_H", b.data);
    cs_buf_free(&b);
    return s;
}

static void file_start(cg *g)
{
    const char *schema = cg_safe(g, base_of(g->s->filename), false);
    const char *guard = guard_of(g);
    cg_h(g,
         "/*\n * %s.h -- the typed C API of the schema %s.\n *\n"
         " * Generated by `cstack gen`; do not edit: change the schema and generate\n"
         " * again.  Schema hash %s.\n *\n%s */\n",
         g->basename, schema, g->s->hash, PREAMBLE_RULES);
    cg_h(g,
         "#ifndef %s\n#define %s\n\n#include <stdbool.h>\n#include <stddef.h>\n"
         "#include <stdint.h>\n\n#include <cstack.h>\n\n"
         "#ifdef __cplusplus\nextern \"C\" {\n#endif\n",
         guard, guard);
    cg_c(g,
         "/*\n * %s.c -- the typed C API of the schema %s, generated by `cstack gen`;\n"
         " * do not edit.  Declarations, ownership and naming rules: %s.h.\n */\n"
         "#include \"%s.h\"\n\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n",
         g->basename, schema, g->basename, g->basename);
}

/* `text` as the body of a C string literal (quotes, backslashes, question
 * marks and control bytes escaped). */
static const char *c_string(cg *g, const char *text)
{
    cs_buf b = CS_BUF_INIT;
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && !rc; p++) {
        if (*p == '"' || *p == '\\' || *p == '?')
            rc = cs_buf_printf(&b, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            rc = cs_buf_printf(&b, "\\%03o", *p);
        else
            rc = cs_buf_putc(&b, (char)*p);
    }
    const char *out = rc ? "" : cg_str(g, "%s", b.data ? b.data : "");
    if (rc)
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
    cs_buf_free(&b);
    return out;
}

/* A C identifier made of the basename: "my-app.v2" -> "my_app_v2". */
static const char *file_ident(cg *g)
{
    const char *id =
        cg_str(g, "%s%s", g->basename[0] >= '0' && g->basename[0] <= '9' ? "s" : "", g->basename);
    for (char *p = (char *)id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    return id;
}

/* The schema text the API was generated from, so an application can open
 * its database with exactly the schema its typed code matches.  Emitted as
 * character constants: a string literal longer than 4095 bytes would draw
 * -pedantic's -Woverlength-strings. */
static void embed_schema(cg *g)
{
    const char *id = file_ident(g);
    const char *src = cg_decl(g, -1, "%s_schema_source", id);
    const char *len = cg_decl(g, -1, "%s_schema_source_len", id);
    const char *hash = cg_decl(g, -1, "%s_schema_hash", id);
    const char *parse = cg_decl(g, -1, "%s_schema_parse", id);
    size_t n = g->s->source ? g->s->source_len : 0;
    cg_h(g, "\n");
    cg_note(g, cg_str(g,
                      "The schema this API was generated from (%s): its source text (%s_len "
                      "bytes, not NUL-terminated) and its cstack_schema_hash().  Static.",
                      cg_safe(g, base_of(g->s->filename), false), src));
    cg_h(g, "extern const char %s[];\nextern const size_t %s;\nextern const char %s[];\n", src, len,
         hash);
    cg_c(g, "\nconst char %s[%zu] = {", src, n ? n : 1);
    for (size_t i = 0; i < n; i++)
        cg_c(g, "%s'\\x%02x',", i % 12 ? " " : "\n    ", (unsigned char)g->s->source[i]);
    cg_c(g, "%s\n};\nconst size_t %s = %zu;\nconst char %s[] = \"%s\";\n", n ? "" : "\n    0,", len,
         n, hash, g->s->hash);
    const char *out = cg_param(g, "out", NULL, 0);
    cg_fn(g,
          cg_str(g,
                 "Parses the embedded schema (the one this API matches) into *%s, to free "
                 "with cstack_schema_free().  Errors as cstack_schema_parse().",
                 out),
          cg_str(g, "int %s(cstack_schema **%s)", parse, out));
    cg_c(g, "    return cstack_schema_parse(\"%s\", %s, %s, %s, NULL);\n}\n",
         c_string(g, base_of(g->s->filename)), src, len, out);
}

static void file_end(cg *g)
{
    cg_h(g, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

static void emit_all(cg *g)
{
    file_start(g);
    embed_schema(g);
    for (size_t i = 0; i < g->s->nenums && !g->rc; i++)
        cg_emit_enum(g, i);
    for (size_t i = 0; i < g->s->nmodels && !g->rc; i++) {
        cg_emit_model_types(g, i);
        cg_emit_model_codecs(g, i);
        cg_emit_delegates(g, i);
        cg_emit_field_helpers(g, i);
    }
    file_end(g);
}

static bool basename_ok(const char *s)
{
    if (!s || !*s || *s == '.' || *s == '-' || strlen(s) > 200)
        return false;
    for (; *s; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Renames the owner named by the last naming pass; false when it has been
 * renamed too often (then g->rc is set). */
static bool bump(cg *g)
{
    int owner = g->conflict;
    int *count = (size_t)owner < g->s->nenums ? &g->enums[owner].bump
                                              : &g->models[(size_t)owner - g->s->nenums].bump;
    if (++*count > MAX_BUMPS) {
        const char *name = (size_t)owner < g->s->nenums
                               ? g->s->enums[owner].name
                               : g->s->models[(size_t)owner - g->s->nenums].name;
        cg_fail(g, CSTACK_EINVAL, "%s: no free C name found after %d renames", name, MAX_BUMPS);
        return false;
    }
    return true;
}

static int alloc_state(cg *g)
{
    g->enums = calloc(g->s->nenums + 1, sizeof *g->enums);
    g->models = calloc(g->s->nmodels + 1, sizeof *g->models);
    if (!g->enums || !g->models)
        return CSTACK_ENOMEM;
    for (size_t i = 0; i < g->s->nmodels; i++) {
        g->models[i].fields = calloc(g->s->models[i].nfields + 1, sizeof(cg_field));
        if (!g->models[i].fields)
            return CSTACK_ENOMEM;
    }
    return 0;
}

static void free_state(cg *g)
{
    for (size_t i = 0; g->models && i < g->s->nmodels; i++)
        free(g->models[i].fields);
    free(g->models);
    free(g->enums);
    cg_names_free(g);
}

int cs_codegen(const cstack_schema *s, const char *basename, cs_buf *header, cs_buf *source,
               char *err, size_t errlen)
{
    cg g;
    memset(&g, 0, sizeof g);
    g.s = s;
    g.basename = basename;
    g.err = err;
    g.errlen = errlen;
    g.h = header;
    g.c = source;
    if (err && errlen)
        err[0] = 0;
    if (!s || !header || !source || !basename_ok(basename)) {
        cg_fail(&g, CSTACK_EINVAL, "invalid basename '%s': use letters, digits, '_', '.', '-'",
                basename ? basename : "(null)");
        return g.rc;
    }
    if (alloc_state(&g))
        cg_fail(&g, CSTACK_ENOMEM, "out of memory");
    /* Naming passes until no two owners collide. */
    while (!g.rc) {
        g.conflict = -1;
        g.emit = false;
        if (cg_names_begin(&g))
            break;
        emit_all(&g);
        if (g.rc || g.conflict < 0 || !bump(&g))
            break;
    }
    if (!g.rc) {
        g.emit = true;
        emit_all(&g);
    }
    int rc = g.rc;
    free_state(&g);
    return rc;
}

int cstack_codegen(const cstack_schema *schema, const char *basename, char **header, char **source,
                   char *err, size_t errlen)
{
    if (!header || !source) {
        if (err && errlen)
            snprintf(err, errlen, "no place for the generated text");
        return CSTACK_EMISUSE;
    }
    *header = *source = NULL;
    cs_buf h = CS_BUF_INIT, c = CS_BUF_INIT;
    int rc = cs_codegen(schema, basename, &h, &c, err, errlen);
    if (!rc) {
        *header = cs_buf_take(&h);
        *source = cs_buf_take(&c);
        if (!*header || !*source) {
            free(*header);
            free(*source);
            *header = *source = NULL;
            rc = CSTACK_ENOMEM;
            if (err && errlen)
                snprintf(err, errlen, "out of memory");
        }
    }
    cs_buf_free(&h);
    cs_buf_free(&c);
    return rc;
}
