/*
 * cg.h -- the generator's private state, shared by the files of src/codegen/.
 *
 *   codegen.c   cs_codegen(): the passes, file layout, shared helpers
 *   names.c     C names for declarations, the registry of file-scope names
 *   types.c     enums; the model, list and input structs; descriptors
 *   codecs.c    row decoding, input encoding, the free functions
 *   delegates.c the typed delegates (create ... delete_many)
 *   helpers.c   field helpers: filters, relation filters, orderings
 *
 * Generation runs in passes.  A naming pass runs every emitter with output
 * switched off and records each file-scope name the generated code would
 * declare in a registry; when two declarations of different models or enums
 * collide (or one hits a C keyword or a standard library name), the later
 * owner is renamed (`note` -> `note_m`) and the naming pass runs again.  The
 * final pass then emits text, and parameter names are checked against the
 * complete registry so that none of them shadows a generated name.
 */
#ifndef CS_CODEGEN_CG_H
#define CS_CODEGEN_CG_H

#include <stdbool.h>
#include <stddef.h>

#include "codegen/codegen.h"
#include "schema/schema.h"
#include "util/buf.h"
#include "util/hash.h"

/* How a column field is represented in C. */
typedef enum cg_kind {
    CG_TEXT,  /* const char *: String Uuid Cuid DateTime Decimal Json */
    CG_INT,   /* int64_t */
    CG_FLOAT, /* double */
    CG_BOOL,  /* bool */
    CG_BYTES, /* const void * plus a size_t length */
    CG_ENUM   /* the generated C enum of the schema enum */
} cg_kind;

/* Pointer kinds express "absent" as NULL; value kinds need a has_ flag. */
static inline bool cg_is_pointer(cg_kind k)
{
    return k == CG_TEXT || k == CG_BYTES;
}

typedef struct cg_field {
    const cs_field *f;
    cg_kind kind;
    int col;            /* column number (index in a full row), -1: relation */
    const char *member; /* member name in the model and input structs */
    const char *has;    /* has_<f> */
    const char *len;    /* <f>_len */
    const char *set;    /* set_<f> */
} cg_field;

typedef struct cg_model {
    const cs_model *m;
    const char *prefix; /* "note": the struct and the start of every name */
    const char *upper;  /* "NOTE" */
    const char *row;    /* the member holding the owning cstack_row */
    cg_field *fields;   /* one per schema field, in schema order */
    size_t ncols;
    int bump; /* renames so far (0: the plain snake name) */
} cg_model;

typedef struct cg_enum {
    const cs_enum *e;
    const char *prefix; /* "status" */
    const char *upper;  /* "STATUS" */
    const char *type;   /* "status_t" */
    int bump;
    bool used; /* some column has this type */
} cg_enum;

typedef struct cg_entry {
    char *name;
    int owner; /* enum i: i; model i: nenums + i; -1: reserved */
} cg_entry;

typedef struct cg {
    const cstack_schema *s;
    const char *basename;
    cs_buf *h; /* header text */
    cs_buf *c; /* source text */
    bool emit; /* false during naming passes */
    int rc;    /* first error; every emitter is a no-op after one */
    char *err;
    size_t errlen;
    cg_model *models;
    cg_enum *enums;
    cg_entry *reg; /* the file-scope names, looked up through regset */
    size_t regcap, regn;
    cs_hset regset;
    char **pool; /* strings handed out by cg_str(), freed at the end */
    size_t npool, cappool;
    int conflict; /* owner to rename before the next pass, or -1 */
} cg;

/* ---- names.c ---- */

/* Records the first error (printf-style message into g->err). */
void cg_fail(cg *g, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A formatted string that lives until the generator finishes. NULL on OOM
 * (recorded in g->rc). */
const char *cg_str(cg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Declares a file-scope name owned by `owner` and returns it.  In a naming
 * pass a collision marks an owner for renaming (or fails when it cannot be
 * fixed that way). */
const char *cg_decl(cg *g, int owner, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A parameter name based on `base` that is neither a generated file-scope
 * name nor one of `taken[0..ntaken)`: `base`, else `base_`, `base__`... */
const char *cg_param(cg *g, const char *base, const char *const *taken, size_t ntaken);
/* Computes every prefix and member name for the current renames and
 * resets the registry (seeded with keywords and library names). */
int cg_names_begin(cg *g);
void cg_names_free(cg *g);
static inline int cg_model_owner(const cg *g, size_t mi)
{
    return (int)(g->s->nenums + mi);
}

/* ---- codegen.c ---- */

/* Append to the header / to the source (no-ops in a naming pass or after an
 * error). */
void cg_h(cg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_c(cg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `text` to the header as a block comment wrapped at 80 columns;
 * "\n * " breaks in the text are re-flowed, two spaces after a sentence
 * kept. */
void cg_note(cg *g, const char *text);
/* A public function: `doc` (a comment body, may be NULL) and `sig;` in the
 * header, `sig` and the opening brace in the source. */
void cg_fn(cg *g, const char *doc, const char *sig);
/* `text` made safe for a block comment: no comment delimiters, trigraphs or
 * control characters (newlines become spaces unless `lines`). */
const char *cg_safe(cg *g, const char *text, bool lines);
/* Appends a schema `///` doc as comment lines prefixed by `lead` (" * "). */
void cg_doc(cg *g, const char *doc, const char *lead);

/* ---- types.c ---- */

cg_kind cg_kind_of(const cs_field *f);
/* The C type of a field's value ("const char *", "int64_t", "status_t"...). */
const char *cg_ctype(cg *g, const cg_field *cf);
/* Whether a create input may leave the field out. */
bool cg_omittable(const cs_field *f);
/* An expression of type cstack_value for the C value `expr` of field cf
 * (`len` is the length expression of Bytes). */
const char *cg_value_expr(cg *g, const cg_field *cf, const char *expr, const char *len);
void cg_emit_enum(cg *g, size_t ei);
void cg_emit_model_types(cg *g, size_t mi);

/* ---- codecs.c ---- */

void cg_emit_model_codecs(cg *g, size_t mi);

/* ---- delegates.c ---- */

void cg_emit_delegates(cg *g, size_t mi);

/* ---- helpers.c ---- */

void cg_emit_field_helpers(cg *g, size_t mi);

#endif
