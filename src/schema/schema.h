/*
 * schema.h -- the validated in-memory form (IR) of a .cstack schema.
 *
 * Produced by cs_schema_parse() (lexer.c, parser.c, validate.c); read by every
 * later stage (sql, store, cli).  A cstack_schema is immutable once built and
 * reference counted, so runtimes can outlive the caller's handle.
 *
 * Every index below (model, field, enum) is an index into the owning array;
 * -1 means "none".
 */
#ifndef CS_SCHEMA_H
#define CS_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "cstack.h"
#include "value/value.h"

typedef struct cs_pos {
    int line; /* from 1 */
    int col;  /* from 1, in bytes */
} cs_pos;

typedef enum cs_default_kind {
    CS_DEF_NONE,
    CS_DEF_LITERAL, /* `literal` holds the canonical stored value text */
    CS_DEF_UUID,
    CS_DEF_CUID,
    CS_DEF_NOW,
    CS_DEF_AUTOINCREMENT
} cs_default_kind;

typedef struct cs_default {
    cs_default_kind kind;
    /* For CS_DEF_LITERAL: the canonical storage form as text.  Int and
     * Boolean literals are decimal text ("42", "1"/"0" for true/false), Float
     * text as written, Decimal canonical, enum the member name, String the
     * unescaped string.  Bytes/Json defaults are not supported. */
    char *literal;
} cs_default;

/* Referential actions of @relation(onDelete:, onUpdate:). */
typedef enum cs_action {
    CS_ACT_DEFAULT, /* not given: NO ACTION */
    CS_ACT_CASCADE,
    CS_ACT_RESTRICT,
    CS_ACT_NO_ACTION,
    CS_ACT_SET_NULL,
    CS_ACT_SET_DEFAULT
} cs_action;

typedef struct cs_relation {
    char *name;       /* @relation("name") or @relation(name: "x"); may be NULL */
    int target;       /* target model index */
    /* The owning side (fields: [...] references: [...]) has nfields > 0:
     * fields[i] of this model references refs[i] of the target. */
    size_t nfields;
    int *fields;      /* field indices in this model */
    int *refs;        /* field indices in the target model */
    cs_action on_delete;
    cs_action on_update;
    /* Back side (no fields:): the field index, in the target model, of the
     * owning relation field this one mirrors; -1 on the owning side. */
    int back_field;
    bool to_many;     /* declared as Target[] */
} cs_relation;

/* Validators (@length, @email, @range, @regex, @iso4217): checked on every
 * write of the field (cs_field_check), never on filter values. */
typedef struct cs_checks {
    bool length;            /* @length(min:, max:): String characters, Bytes bytes */
    long long len_min, len_max; /* -1: no bound */
    bool email;             /* @email */
    bool range;             /* @range(min:, max:) on Int, Float, Decimal */
    bool has_min, has_max;
    double min, max;
    /* An Int field whose bounds are integer literals: compared exactly as
     * int64 (a double cannot hold every 64-bit bound). */
    bool int_bounds;
    long long imin, imax;
    char *regex;            /* @regex("ERE"): the pattern, or NULL */
    void *re;               /* its compiled regex_t (POSIX extended) */
    bool iso4217;           /* @iso4217: three upper-case letters of a currency code */
    /* CrateStack's Geography / Geometry(Subtype, SRID): the value (Bytes) is
     * the EWKB of one geometry of that shape (exttypes.c). */
    bool geo;
    bool geo_geography;     /* Geography (a missing SRID reads as 4326), not Geometry */
    unsigned char geo_kind; /* WKB type code 1..7; 0: any */
    signed char geo_dims;   /* 0 XY, 1 XYZ, 2 XYM, 3 XYZM; -1: any */
    int geo_srid;           /* 0: not given */
} cs_checks;

typedef struct cs_field {
    char *name;
    char *column;     /* @map("col") or the name */
    char *doc;        /* /// comment, or NULL */
    cs_scalar type;
    char *type_name;  /* as written: "String", "Status", "Account"; CrateStack's extension
                       * types spelled canonically: "Vector(3)", "Geography(Point, 4326)" */
    int type_index;   /* enum or model index for CS_T_ENUM / CS_T_MODEL */
    bool optional;    /* Type? */
    bool list;        /* Type[]: a to-many relation, or a scalar list */
    /* A scalar list (String[], Role[]) has type CS_T_JSON (stored as a JSON
     * array, canonical compact text) and its element type here; elem_index:
     * the enum of an enum list.  CS_T_JSON otherwise. */
    cs_scalar elem;
    int elem_index;
    /* CrateStack's Vector(n): a Float list whose every value has exactly
     * vec_dim elements, each within float32 range (exttypes.c); 0 on any
     * other field. */
    int vec_dim;
    bool is_id;       /* @id */
    bool is_unique;   /* @unique */
    bool updated_at;  /* @updatedAt */
    bool version;     /* @version: optimistic-locking counter (Int) */
    bool readonly;    /* @readonly: written at create only */
    bool sensitive;   /* @pii / @sensitive: value redacted from logs, audit, errors */
    /* Auth block only: a field whose type is a CrateStack `type` block.  Its
     * value is the claim's JSON object (type CS_T_JSON); each member of the
     * type follows it as a field named "name.member" (nested types nest the
     * names: "org.owner.id"), so auth().org.id is the field "org.id". */
    bool composite;
    cs_checks checks;
    cs_default def;
    cs_relation *rel; /* non-NULL iff type == CS_T_MODEL */
    cs_pos pos;
} cs_field;

/* A field set: @@id, @@unique, @@index (and single-field @unique). */
typedef struct cs_index {
    char *name;       /* generated name: "<table>_<col>_<col>_key" / "_idx" */
    size_t n;
    int *fields;      /* field indices (scalar fields only) */
    bool unique;
    cs_pos pos;
} cs_index;

typedef enum cs_expr_kind {
    CS_E_NULL,
    CS_E_BOOL,     /* bval */
    CS_E_NUMBER,   /* text: the literal as written */
    CS_E_STRING,   /* text: unescaped */
    CS_E_ENUM,     /* text: member name; type_index: enum (set by validator) */
    CS_E_FIELD,    /* path[0..npath): field names through to-one relations */
    CS_E_AUTH,     /* auth() */
    CS_E_AUTH_FIELD, /* auth().text; text may be dotted (auth().org.id: "org.id") */
    CS_E_BINARY,   /* op, lhs, rhs */
    CS_E_NOT,      /* lhs */
    CS_E_SOME,     /* path names a to-many relation; lhs: predicate on it */
    CS_E_EVERY,
    CS_E_NONE
} cs_expr_kind;

typedef enum cs_binop {
    CS_OP_EQ,
    CS_OP_NE,
    CS_OP_LT,
    CS_OP_LE,
    CS_OP_GT,
    CS_OP_GE,
    CS_OP_AND,
    CS_OP_OR
} cs_binop;

typedef struct cs_expr cs_expr;
struct cs_expr {
    cs_expr_kind kind;
    cs_binop op;
    bool bval;
    char *text;
    char **path;
    size_t npath;
    cs_expr *lhs;
    cs_expr *rhs;
    /* CS_E_AUTH_FIELD as written: the position of each of the nseg segments
     * of text, for diagnostics about one member (NULL when made by a
     * rewrite such as hasRole()). */
    cs_pos *seg_pos;
    size_t nseg;
    /* Set by the validator: the scalar type of this expression's value
     * (CS_T_BOOLEAN for comparisons and logic) and, for enums and fields,
     * type_index.  The null literal is kind CS_E_NULL and takes the type of
     * what it is compared with.  Number literals are CS_T_INT (integral) or
     * CS_T_FLOAT; string literals CS_T_STRING (those compared with a Uuid or
     * DateTime are rewritten to canonical form).  A path ending at a to-one
     * relation is CS_T_MODEL (type_index: the target); auth() is CS_T_MODEL
     * with type_index -1.  Predicates (SOME/EVERY/NONE) are CS_T_BOOLEAN. */
    cs_scalar vtype;
    int type_index;
    cs_pos pos;
};

/* Operation bits of @@allow / @@deny. */
enum {
    CS_POL_READ = 1,
    CS_POL_CREATE = 2,
    CS_POL_UPDATE = 4,
    CS_POL_DELETE = 8,
    CS_POL_ALL = 15
};

typedef struct cs_policy {
    bool deny;
    unsigned ops;     /* CS_POL_* bits; 'all' sets every bit */
    cs_expr *expr;
    cs_pos pos;
} cs_policy;

/* Event bits of @@emit. */
enum { CS_EMIT_CREATED = 1, CS_EMIT_UPDATED = 2, CS_EMIT_DELETED = 4 };

typedef struct cs_model {
    char *name;
    char *table;      /* @@map("t") or the name */
    char *doc;
    cs_field *fields;
    size_t nfields;
    /* Primary key: @id field or @@id([...]) fields, in order. */
    int *pk;
    size_t npk;
    cs_index *uniques;   /* every @unique and @@unique, in declaration order */
    size_t nuniques;
    cs_index *indexes;   /* every @@index */
    size_t nindexes;
    cs_policy *policies;
    size_t npolicies;
    int soft_delete;     /* field index of @@soft_delete, or -1 */
    bool audit;          /* @@audit */
    unsigned emit;       /* CS_EMIT_* bits */
    bool local;          /* @@local */
    cs_pos pos;
} cs_model;

typedef struct cs_enum {
    char *name;
    char *doc;
    char **members;
    size_t nmembers;
    cs_pos pos;
} cs_enum;

typedef struct cs_datasource {
    char *name;          /* NULL when the schema has no datasource block */
    char *provider;      /* "sqlite" or "postgresql" */
    char *url;           /* literal url, or NULL */
    char *url_env;       /* env("X") variable name, or NULL */
} cs_datasource;

/* The auth block: fields only (scalars, enums and composites of them made
 * of CrateStack `type` blocks; no relations).  A composite's members follow
 * it, flattened under dotted names (cs_field.composite). */
typedef struct cs_auth_block {
    char *name;          /* NULL when the schema has no auth block */
    cs_field *fields;
    size_t nfields;
} cs_auth_block;

struct cstack_schema {
    int refcount;
    char *filename;
    cs_datasource datasource;
    cs_auth_block auth;
    cs_enum *enums;
    size_t nenums;
    cs_model *models;
    size_t nmodels;
    char hash[65];       /* lowercase hex SHA-256 of the canonical form */
    char *canonical;     /* the canonical text the hash is computed over */
    /* A copy of the source text (NUL-terminated), set by cstack_schema_parse
     * and freed with the schema: bootstrap stores it so a later migration can
     * re-parse the schema the database was built with. */
    char *source;
    size_t source_len;
};

/* Lookups; return the index or -1. */
int cs_model_find(const cstack_schema *s, const char *name);
int cs_field_find(const cs_model *m, const char *name);
int cs_enum_find(const cstack_schema *s, const char *name);
int cs_enum_member(const cs_enum *e, const char *name, size_t n);

/* True when the field is stored in a column (everything but relations). */
static inline bool cs_field_is_column(const cs_field *f)
{
    return f->type != CS_T_MODEL;
}

cstack_schema *cs_schema_retain(const cstack_schema *s);

/* cs_value_canon for a field of schema s (its enum looked up when it has
 * one): validates `in` and produces the canonical storage value. */
int cs_field_canon(const cstack_schema *s, const cs_field *f, const cstack_value *in,
                   cs_buf *scratch, cstack_value *out, char *err, size_t errlen);

/* A scalar list's value (lists.c): a JSON array (as text) whose elements are
 * valid canonical values of the element type; canonical output is compact. */
int cs_list_canon(const cstack_schema *s, const cs_field *f, const cstack_value *in,
                  cs_buf *scratch, cstack_value *out, char *err, size_t errlen);

/* The list field f as the has / hasSome / hasEvery filters read it: the
 * same list, but of any length (a Vector's filter lists are not vectors).
 * Returns f, or tmp made a shallow copy of f (valid as long as f). */
const cs_field *cs_list_filter_field(const cs_field *f, cs_field *tmp);

/* The field's validators on a canonical value (checks.c).  0, or
 * CSTACK_EVALIDATION with `err` naming the field and the rule broken (the
 * value itself is never quoted for @pii/@sensitive fields). */
int cs_field_check(const cs_field *f, const cstack_value *v, char *err, size_t errlen);

#endif
