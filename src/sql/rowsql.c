/* rowsql.c -- the SQL that reads and writes one row of a model.
 *
 * The store (create, update, delete), the merge (load, insert, update,
 * delete, unique and foreign key lookups) and through it the server all
 * address rows the same way, so their SQL is built here, once: the
 * statements that do not depend on a column set when the runtime opens, the
 * others the first time a column set is used, then kept.  Each statement
 * carries a key that identifies it among all row statements of the runtime,
 * so a connection's cache finds it without hashing or comparing its text.
 *
 * A column set is a bitset over field indices of any width (a model may have
 * up to 2000 fields), interned per model: the key holds the set's ordinal,
 * never the bits themselves, so wide models cannot make two sets share a key.
 * The number of sets kept per model is bounded (CS_ROWSQL_MAX_SETS); past it
 * a statement is built into a scratch buffer and has key 0, which a cache
 * treats as "identify me by my text".
 *
 * Parameters are numbered so that one binding rule serves every statement:
 * ?N (N <= nfields) is the new value of field N-1, and ?nfields+1+p the
 * current value of the p-th primary key column (cs_rowsql_key_param), so an
 * UPDATE can change a key column and still find its row. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql.h"

/* Row keys: model (14 bits) | kind (4 bits) | set ordinal (38 bits).  The
 * kinds are the fixed ones, then the set ones, then KIND_INSERT_MANY. */
#define KEY_MODEL_SHIFT 42
#define KEY_KIND_SHIFT 38
#define KEY_MAX_MODELS (1u << 14)
#define KIND_INSERT_MANY (CS_ROW_FIXED_KINDS + CS_ROW_SET_KINDS)

typedef struct rowset {
    uint64_t *bits;
    char *sql[CS_ROW_SET_KINDS]; /* built on first use */
    size_t len[CS_ROW_SET_KINDS];
} rowset;

typedef struct rowmodel {
    cs_rowstmt fixed[CS_ROW_FIXED_KINDS];
    size_t words; /* CS_FIELDSET_WORDS(nfields) */
    rowset *sets;
    size_t nsets, capsets;
    uint32_t *slots; /* open addressing: set index + 1, 0 = empty */
    size_t nslots;   /* a power of two, or 0 */
    uint32_t last;   /* the set asked for last, + 1: bulk writes repeat it */
    cs_rowstmt many; /* cs_rowsql_insert_many, built on first use */
} rowmodel;

struct cs_rowsql {
    const cstack_schema *s;
    rowmodel *models;
    cs_buf scratch; /* the last statement of a set past the bound */
};

static uint64_t row_key(size_t mi, unsigned kind, uint64_t ordinal)
{
    return (uint64_t)mi << KEY_MODEL_SHIFT | (uint64_t)kind << KEY_KIND_SHIFT | ordinal;
}

static bool is_pk(const cs_model *m, size_t f)
{
    for (size_t p = 0; p < m->npk; p++)
        if (m->pk[p] == (int)f)
            return true;
    return false;
}

static bool in_set(const uint64_t *bits, size_t f)
{
    return bits[f / 64] >> (f % 64) & 1;
}

/* ---- text ---------------------------------------------------------------- */

/* `"c1", "c2", ...` for every column field, in field order. */
static int put_columns(cs_buf *b, const cs_model *m)
{
    int rc = 0;
    size_t n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!cs_field_is_column(&m->fields[f]))
            continue;
        rc = cs_buf_puts(b, n++ ? ", " : "");
        rc = rc ? rc : cs_buf_ident(b, m->fields[f].column);
    }
    return rc;
}

/* ` WHERE "k1" = ?K1 AND ...` on the key parameters. */
static int put_where_key(cs_buf *b, const cs_model *m)
{
    int rc = 0;
    for (size_t p = 0; p < m->npk && !rc; p++) {
        rc = cs_buf_puts(b, p ? " AND " : " WHERE ");
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[p]].column);
        rc = rc ? rc : cs_buf_printf(b, " = ?%d", cs_rowsql_key_param(m, p));
    }
    return rc;
}

static int put_select(cs_buf *b, const cs_model *m)
{
    int rc = cs_buf_puts(b, "SELECT ");
    rc = rc ? rc : put_columns(b, m);
    rc = rc ? rc : cs_buf_puts(b, " FROM ");
    return rc ? rc : cs_buf_ident(b, m->table);
}

/* The name by which SQL reaches the rowid: the first of SQLite's three
 * aliases that no column shadows, or NULL when all three are columns. */
static const char *rowid_alias(const cs_model *m)
{
    static const char *const names[] = {"rowid", "_rowid_", "oid"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool taken = false;
        for (size_t f = 0; f < m->nfields && !taken; f++)
            taken =
                cs_field_is_column(&m->fields[f]) && strcasecmp(m->fields[f].column, names[i]) == 0;
        if (!taken)
            return names[i];
    }
    return NULL;
}

/* INSERT of the set's columns; `bits` NULL means every column. */
static int put_insert(cs_buf *b, const cs_model *m, const uint64_t *bits)
{
    int rc = cs_buf_puts(b, "INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    size_t n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!cs_field_is_column(&m->fields[f]) || (bits && !in_set(bits, f)))
            continue;
        rc = cs_buf_puts(b, n++ ? ", " : " (");
        rc = rc ? rc : cs_buf_ident(b, m->fields[f].column);
    }
    if (!n)
        return rc ? rc : cs_buf_puts(b, " DEFAULT VALUES");
    rc = rc ? rc : cs_buf_puts(b, ") VALUES (");
    n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++)
        if (cs_field_is_column(&m->fields[f]) && (!bits || in_set(bits, f)))
            rc = cs_buf_printf(b, "%s?%zu", n++ ? ", " : "", f + 1);
    return rc ? rc : cs_buf_puts(b, ")");
}

/* UPDATE of the set's columns by key; `bits` NULL means every column that is
 * not part of the key.  Leaves `b` empty when there is nothing to set. */
static int put_update(cs_buf *b, const cs_model *m, const uint64_t *bits, bool returning)
{
    int rc = cs_buf_puts(b, "UPDATE ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    size_t n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!cs_field_is_column(&m->fields[f]) || (bits ? !in_set(bits, f) : is_pk(m, f)))
            continue;
        rc = cs_buf_puts(b, n++ ? ", " : " SET ");
        rc = rc ? rc : cs_buf_ident(b, m->fields[f].column);
        rc = rc ? rc : cs_buf_printf(b, " = ?%zu", f + 1);
    }
    if (!rc && !n) {
        cs_buf_reset(b);
        return 0;
    }
    rc = rc ? rc : put_where_key(b, m);
    if (returning) {
        rc = rc ? rc : cs_buf_puts(b, " RETURNING ");
        rc = rc ? rc : put_columns(b, m);
    }
    return rc;
}

/* SELECT of the key columns of the rows whose set columns equal ?f+1. */
static int put_keys_where(cs_buf *b, const cs_model *m, const uint64_t *bits)
{
    int rc = cs_buf_puts(b, "SELECT ");
    for (size_t p = 0; p < m->npk && !rc; p++) {
        rc = cs_buf_puts(b, p ? ", " : "");
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[p]].column);
    }
    rc = rc ? rc : cs_buf_puts(b, " FROM ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    size_t n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!in_set(bits, f))
            continue;
        rc = cs_buf_puts(b, n++ ? " AND " : " WHERE ");
        rc = rc ? rc : cs_buf_ident(b, m->fields[f].column);
        rc = rc ? rc : cs_buf_printf(b, " = ?%zu", f + 1);
    }
    return rc;
}

/* INSERT of every column of `nrows` rows, field f of row r at
 * ?(r * nfields + f + 1). */
static int put_insert_many(cs_buf *b, const cs_model *m, size_t nrows)
{
    int rc = cs_buf_puts(b, "INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    rc = rc ? rc : cs_buf_puts(b, " (");
    rc = rc ? rc : put_columns(b, m);
    rc = rc ? rc : cs_buf_puts(b, ") VALUES ");
    for (size_t r = 0; r < nrows && !rc; r++) {
        rc = cs_buf_puts(b, r ? ", (" : "(");
        size_t n = 0;
        for (size_t f = 0; f < m->nfields && !rc; f++)
            if (cs_field_is_column(&m->fields[f]))
                rc = cs_buf_printf(b, "%s?%zu", n++ ? ", " : "", r * m->nfields + f + 1);
        rc = rc ? rc : cs_buf_puts(b, ")");
    }
    return rc;
}

static int build_fixed(cs_buf *b, const cs_model *m, cs_row_fixed kind)
{
    int rc = 0;
    switch (kind) {
    case CS_ROW_LOAD:
        rc = put_select(b, m);
        return rc ? rc : put_where_key(b, m);
    case CS_ROW_LOAD_ROWID: {
        const char *rowid = rowid_alias(m);
        if (!rowid)
            return 0;
        rc = put_select(b, m);
        rc = rc ? rc : cs_buf_printf(b, " WHERE %s = ?1", rowid);
        return rc;
    }
    case CS_ROW_DELETE:
        rc = cs_buf_puts(b, "DELETE FROM ");
        rc = rc ? rc : cs_buf_ident(b, m->table);
        return rc ? rc : put_where_key(b, m);
    case CS_ROW_INSERT_ALL:
        return put_insert(b, m, NULL);
    case CS_ROW_UPDATE_ALL:
        return put_update(b, m, NULL, false);
    default:
        return CSTACK_EMISUSE;
    }
}

static int build_set(cs_buf *b, const cs_model *m, cs_row_set kind, const uint64_t *bits)
{
    switch (kind) {
    case CS_ROW_INSERT:
        return put_insert(b, m, bits);
    case CS_ROW_UPDATE:
    case CS_ROW_UPDATE_RETURNING: {
        int rc = put_update(b, m, bits, kind == CS_ROW_UPDATE_RETURNING);
        return rc ? rc : b->len ? 0 : CSTACK_EMISUSE;
    }
    case CS_ROW_KEYS_WHERE:
        return put_keys_where(b, m, bits);
    default:
        return CSTACK_EMISUSE;
    }
}

/* ---- building and freeing ------------------------------------------------ */

void cs_rowsql_free(cs_rowsql *rs)
{
    if (!rs)
        return;
    for (size_t mi = 0; rs->models && mi < rs->s->nmodels; mi++) {
        rowmodel *rm = &rs->models[mi];
        for (size_t k = 0; k < CS_ROW_FIXED_KINDS; k++)
            free((char *)rm->fixed[k].sql);
        for (size_t i = 0; i < rm->nsets; i++) {
            free(rm->sets[i].bits);
            for (size_t k = 0; k < CS_ROW_SET_KINDS; k++)
                free(rm->sets[i].sql[k]);
        }
        free(rm->sets);
        free(rm->slots);
        free((char *)rm->many.sql);
    }
    free(rs->models);
    cs_buf_free(&rs->scratch);
    free(rs);
}

int cs_rowsql_new(const cstack_schema *s, cs_rowsql **out)
{
    *out = NULL;
    if (s->nmodels > KEY_MAX_MODELS)
        return CSTACK_ETOOBIG;
    cs_rowsql *rs = calloc(1, sizeof *rs);
    if (!rs)
        return CSTACK_ENOMEM;
    rs->s = s;
    rs->models = calloc(s->nmodels ? s->nmodels : 1, sizeof *rs->models);
    int rc = rs->models ? 0 : CSTACK_ENOMEM;
    cs_buf b = CS_BUF_INIT;
    for (size_t mi = 0; mi < s->nmodels && !rc; mi++) {
        const cs_model *m = &s->models[mi];
        rowmodel *rm = &rs->models[mi];
        rm->words = CS_FIELDSET_WORDS(m->nfields);
        if (!m->npk)
            rc = CSTACK_ESCHEMA; /* the validator gives every model a key */
        for (unsigned k = 0; k < CS_ROW_FIXED_KINDS && !rc; k++) {
            cs_buf_reset(&b);
            rc = build_fixed(&b, m, (cs_row_fixed)k);
            if (rc || !b.len)
                continue;
            rm->fixed[k].len = b.len;
            rm->fixed[k].key = row_key(mi, k, 0);
            rm->fixed[k].sql = cs_buf_take(&b);
            rc = rm->fixed[k].sql ? 0 : CSTACK_ENOMEM;
        }
    }
    cs_buf_free(&b);
    if (rc) {
        cs_rowsql_free(rs);
        return rc;
    }
    *out = rs;
    return 0;
}

const cs_rowstmt *cs_rowsql_fixed(const cs_rowsql *rs, int mi, cs_row_fixed kind)
{
    const cs_rowstmt *st = &rs->models[mi].fixed[kind];
    return st->sql ? st : NULL;
}

/* ---- interned column sets -------------------------------------------------- */

static uint64_t set_hash(const uint64_t *bits, size_t words)
{
    uint64_t h = 0;
    for (size_t i = 0; i < words; i++)
        h = (h ^ bits[i]) * 0x9E3779B97F4A7C15ull;
    return h ^ h >> 29;
}

/* Sets are mostly one or two words: a loop beats a call to memcmp. */
static bool same_set(const uint64_t *a, const uint64_t *b, size_t words)
{
    for (size_t i = 0; i < words; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* The slot holding `bits`, or the empty slot where it belongs. */
static uint32_t *set_slot(const rowmodel *rm, const uint64_t *bits)
{
    size_t mask = rm->nslots - 1;
    for (size_t i = (size_t)set_hash(bits, rm->words) & mask;; i = (i + 1) & mask) {
        uint32_t *slot = &rm->slots[i];
        if (!*slot || same_set(rm->sets[*slot - 1].bits, bits, rm->words))
            return slot;
    }
}

static int grow_slots(rowmodel *rm)
{
    size_t n = rm->nslots ? rm->nslots * 2 : 16;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return CSTACK_ENOMEM;
    free(rm->slots);
    rm->slots = slots;
    rm->nslots = n;
    for (size_t i = 0; i < rm->nsets; i++)
        *set_slot(rm, rm->sets[i].bits) = (uint32_t)i + 1;
    return 0;
}

/* Whether `bits` names only column fields of m, and no bit past its last
 * field (which would make an equal set intern twice). */
static bool valid_set(const cs_model *m, const rowmodel *rm, const uint64_t *bits)
{
    if (m->nfields % 64 && bits[rm->words - 1] >> (m->nfields % 64))
        return false;
    for (size_t f = 0; f < m->nfields; f++)
        if (in_set(bits, f) && !cs_field_is_column(&m->fields[f]))
            return false;
    return true;
}

/* The interned set equal to `bits`, added when new; NULL when the model has
 * CS_ROWSQL_MAX_SETS sets already, or on an error (*rc says which). */
static rowset *intern(const cs_model *m, rowmodel *rm, const uint64_t *bits, int *rc)
{
    *rc = 0;
    size_t size = rm->words * sizeof *bits;
    if (rm->last && same_set(rm->sets[rm->last - 1].bits, bits, rm->words))
        return &rm->sets[rm->last - 1];
    uint32_t *slot = rm->nslots ? set_slot(rm, bits) : NULL;
    if (slot && *slot) {
        rm->last = *slot;
        return &rm->sets[*slot - 1];
    }
    /* Only a new set needs checking: every interned one was. */
    if (!valid_set(m, rm, bits)) {
        *rc = CSTACK_EMISUSE;
        return NULL;
    }
    if (rm->nsets >= CS_ROWSQL_MAX_SETS)
        return NULL;
    if ((rm->nsets + 1) * 2 > rm->nslots) {
        if ((*rc = grow_slots(rm)))
            return NULL;
        slot = set_slot(rm, bits);
    }
    if (rm->nsets == rm->capsets) {
        size_t cap = rm->capsets ? rm->capsets * 2 : 8;
        rowset *sets = realloc(rm->sets, cap * sizeof *sets);
        if (!sets) {
            *rc = CSTACK_ENOMEM;
            return NULL;
        }
        rm->sets = sets;
        rm->capsets = cap;
    }
    rowset *set = &rm->sets[rm->nsets];
    memset(set, 0, sizeof *set);
    set->bits = malloc(rm->words * sizeof *bits);
    if (!set->bits) {
        *rc = CSTACK_ENOMEM;
        return NULL;
    }
    memcpy(set->bits, bits, size);
    *slot = (uint32_t)++rm->nsets;
    rm->last = *slot;
    return set;
}

int cs_rowsql_set(cs_rowsql *rs, int mi, cs_row_set kind, const uint64_t *bits, cs_rowstmt *out)
{
    const cs_model *m = &rs->s->models[mi];
    rowmodel *rm = &rs->models[mi];
    memset(out, 0, sizeof *out);
    if ((unsigned)kind >= CS_ROW_SET_KINDS)
        return CSTACK_EMISUSE;
    int rc;
    rowset *set = intern(m, rm, bits, &rc);
    if (rc)
        return rc;
    if (!set) {
        cs_buf_reset(&rs->scratch);
        if ((rc = build_set(&rs->scratch, m, kind, bits)))
            return rc;
        out->sql = rs->scratch.data;
        out->len = rs->scratch.len;
        return 0;
    }
    if (!set->sql[kind]) {
        cs_buf b = CS_BUF_INIT;
        rc = build_set(&b, m, kind, bits);
        set->len[kind] = b.len;
        set->sql[kind] = rc ? NULL : cs_buf_take(&b);
        cs_buf_free(&b);
        if (rc || !set->sql[kind])
            return rc ? rc : CSTACK_ENOMEM;
    }
    out->sql = set->sql[kind];
    out->len = set->len[kind];
    out->key =
        row_key((size_t)mi, CS_ROW_FIXED_KINDS + (unsigned)kind, (uint64_t)(set - rm->sets) + 1);
    return 0;
}

int cs_rowsql_insert_many(cs_rowsql *rs, int mi, cs_rowstmt *out)
{
    rowmodel *rm = &rs->models[mi];
    if (!rm->many.sql) {
        const cs_model *m = &rs->s->models[mi];
        cs_buf b = CS_BUF_INIT;
        int rc = put_insert_many(&b, m, cs_sql_batch_rows(m));
        rm->many.len = b.len;
        rm->many.key = row_key((size_t)mi, KIND_INSERT_MANY, 0);
        rm->many.sql = rc ? NULL : cs_buf_take(&b);
        cs_buf_free(&b);
        if (!rm->many.sql)
            return rc ? rc : CSTACK_ENOMEM;
    }
    *out = rm->many;
    return 0;
}
