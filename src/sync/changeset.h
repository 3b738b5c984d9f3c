/* changeset.h -- the sync wire format (described at the top of changeset.c
 * and in docs/sync-protocol.md). */
#ifndef CS_CHANGESET_H
#define CS_CHANGESET_H

#include <stdbool.h>
#include <stdint.h>

#include "sync/sync.h"
#include "sync/varint.h"

#define CS_CS_MAGIC "CSCS"
#define CS_CS_FORMAT 1
#define CS_CS_MAX_SITES 65536

/* One value as it travels: the SQLite storage class and its bytes. */
typedef struct cs_cs_value {
    int type; /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB */
    int64_t i;
    double f;
    const unsigned char *p;
    size_t n;
} cs_cs_value;

typedef struct cs_cs_col {
    int field;        /* field index in the model */
    uint64_t hlc;
    uint32_t site;    /* index into the changeset's site table */
    cs_cs_value value;
} cs_cs_col;

/* A decoded row change; pointers borrow from the changeset bytes. */
typedef struct cs_cs_row {
    int model;
    int64_t ver;      /* the origin's version that last touched the row */
    uint64_t cl;
    size_t npk;
    cs_cs_value pk[16];
    size_t ncols;
    cs_cs_col *cols;  /* capacity: the model's field count */
} cs_cs_row;

typedef struct cs_cs_header {
    char hash[65];    /* schema hash, hex */
    unsigned char origin[CS_SITE_LEN];
    int64_t since, until;
    size_t nsites;
    const unsigned char *sites; /* nsites x 16 bytes */
    uint64_t nrows;
} cs_cs_header;

/* Reads and checks the header; the reader is left at the first row. */
int cs_cs_read_header(cs_reader *r, cs_cs_header *h, char *err, size_t errlen);
/* Reads the next row, checking it against the schema (model, key count,
 * fields, values' storage classes).  `row->cols` must hold the largest
 * model's field count. */
int cs_cs_read_row(cs_reader *r, const cstack_schema *s, const cs_cs_header *h, cs_cs_row *row,
                   char *err, size_t errlen);

/* Writing. */
typedef struct cs_cs_writer {
    cs_buf body;      /* rows */
    size_t nrows;
    unsigned char (*sites)[CS_SITE_LEN];
    size_t nsites;
} cs_cs_writer;

void cs_cs_writer_free(cs_cs_writer *w);
/* The changeset index of a site id, adding it. */
int cs_cs_site(cs_cs_writer *w, const unsigned char site[CS_SITE_LEN], uint32_t *idx);
int cs_cs_put_value(cs_buf *b, const cs_cs_value *v);
/* Reads a value from column `col` of a statement row. */
void cs_cs_value_from_stmt(cs_cs_value *v, sqlite3_stmt *st, int col);
/* The same value as a cstack_value (borrowing its bytes), as the store's
 * API and cs_value_json take it. */
cstack_value cs_cs_value_get(const cs_cs_value *v);
/* The literal default of field f as it travels (its canonical storage
 * form): false when f has none.  The bytes borrow from the schema.  A row
 * that arrives without one of its columns (written by a replica that ran
 * an older schema, or never written since a migration added the column)
 * takes this value, as a local insert would. */
bool cs_cs_default(const cs_field *f, cs_cs_value *v);
/* Binds a value. */
int cs_cs_bind(sqlite3_stmt *st, int idx, const cs_cs_value *v);
int cs_cs_read_value(cs_reader *r, cs_cs_value *v);
/* Total order on values (storage class, then bytes), for merge ties. */
int cs_cs_value_cmp(const cs_cs_value *a, const cs_cs_value *b);
/* Assembles header + rows into one allocation. */
int cs_cs_finish(cs_cs_writer *w, const cstack_schema *s, const unsigned char origin[CS_SITE_LEN],
                 int64_t since, int64_t until, void **out, size_t *len);

#endif
