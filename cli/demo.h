/*
 * demo.h -- private to `cstack demo` (cmd_demo.c and the demo_*.c files).
 *
 * The demo is a sequence of numbered steps over one notes database.  Each
 * step prints what it does and checks what it shows: a check that fails ends
 * the demo with exit status 1, so `make demo` in CI catches regressions in
 * the library underneath.
 */
#ifndef CSTACK_CLI_DEMO_H
#define CSTACK_CLI_DEMO_H

#include <stddef.h>

#include "cli.h"

#define DEMO_ID_LEN 36 /* a canonical Uuid */
#define DEMO_MAX_EVENTS 64
#define DEMO_MAX_NOTES 8

typedef struct demo_note {
    const char *title; /* static: the demo's own data */
    char id[DEMO_ID_LEN + 1];
} demo_note;

struct demo_sync;

typedef struct demo {
    cstack *db;
    struct demo_sync *sync; /* the sync part's server and devices (demo_sync.c) */
    char dir[4096]; /* where the database and schema files live */
    int colour;     /* stdout is a terminal and NO_COLOR is not set */
    int step;       /* number of the step running */
    const char *step_title;
    char ada[DEMO_ID_LEN + 1];
    char linus[DEMO_ID_LEN + 1];
    demo_note notes[DEMO_MAX_NOTES];
    size_t nnotes;
    /* Events delivered by the @@emit subscription, as "Note.created: title". */
    char events[DEMO_MAX_EVENTS][96];
    size_t nevents;
    size_t events_dropped;
} demo;

/* ---- the example schemas (cmd_demo.c) ---- */

/* The text of examples/notes.cstack and examples/notes_v2.cstack. */
extern const char DEMO_SCHEMA_V1[];
extern const char DEMO_SCHEMA_V2[];
/* Writes `text` to DIR/name and opens the database DIR/notes.db with it, after
 * closing the one open.  Does not bootstrap.  Returns 0 or CLI_FAIL (printed). */
int demo_reopen(demo *d, const char *name, const char *text);
/* Path of a file in the demo directory, in a static buffer. */
const char *demo_path(const demo *d, const char *name);

/* ---- output (demo_print.c) ---- */

/* SGR colour codes used by demo_style. */
#define DEMO_BOLD "1"
#define DEMO_DIM "2"
#define DEMO_GREEN "32"
#define DEMO_RED "31"
#define DEMO_CYAN "36"
#define DEMO_YELLOW "33"

/* Starts/ends an SGR style on stdout when colour is on. */
void demo_style(const demo *d, const char *sgr);
void demo_unstyle(const demo *d);
/* Prints the heading of the current step. */
void demo_heading(const demo *d);
/* Prints an indented paragraph of explanation (lines split on '\n'). */
void demo_say(const demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints an indented result line, marked as checked. */
void demo_ok(const demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a failed library call of the current step (with cstack_errmsg) and
 * returns CLI_FAIL. */
int demo_fail(const demo *d, const char *what, int rc);
/* When `cond` is false reports the broken expectation and returns CLI_FAIL;
 * otherwise returns 0. */
int demo_expect(const demo *d, int cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One column of a table of rows. */
typedef enum demo_fmt {
    DEMO_PLAIN, /* the value as text */
    DEMO_SHORT, /* a Uuid shortened to its first 8 digits */
    DEMO_OWNER  /* an Account id shown as the account's first name */
} demo_fmt;

typedef struct demo_col {
    const char *field;
    demo_fmt fmt;
    const char *label; /* the column heading; NULL: the field name */
} demo_col;

/* Prints `rows` as an aligned table of the given columns. */
void demo_table(const demo *d, const cstack_rows *rows, const demo_col *cols, size_t ncols);
/* Prints a table of text cells: `cells` holds nrows * ncols strings, row by
 * row; NULL cells print as "null". */
void demo_grid(const demo *d, const char *const *headers, size_t ncols, const char *const *cells,
               size_t nrows);
/* Formats a value for a table cell into buf. */
const char *demo_value_text(const demo *d, cstack_value v, demo_fmt fmt, char *buf, size_t cap);

/* ---- helpers for the steps (demo_data.c) ---- */

/* A cstack_data over a fixed array of cstack_field_value. */
#define DEMO_DATA(arr) ((cstack_data){(arr), sizeof(arr) / sizeof((arr)[0])})

/* Copies the text field `field` of `row` into buf (NUL-terminated, cut to
 * cap-1 bytes); "" when absent or not text. */
const char *demo_row_text(const cstack_row *row, const char *field, char *buf, size_t cap);
/* The id of the demo note titled `title`, or NULL. */
const char *demo_note_id(const demo *d, const char *title);
/* Runs a one-value SQL query through the raw-SQLite escape hatch. */
int demo_sql_int(demo *d, const char *sql, long long *out);
/* Reads one text field of a demo note into buf ("" when the note is not
 * live or the field not text). */
const char *demo_note_field(demo *d, const char *title, const char *field, char *buf, size_t cap);
/* Checks that a demo note's text field reads back as `want`. */
int demo_expect_field(demo *d, const char *title, const char *field, const char *want);
/* Checks that `rows` hold exactly the notes titled by the NULL-terminated
 * list of titles that follows, in that order. */
int demo_expect_titles(demo *d, const cstack_rows *rows, ...);
/* Runs find_many on `model`, prints the rows as a table, and hands them back
 * in *out (free with cstack_rows_free()) for checks. */
int demo_show(demo *d, const char *model, const cstack_query *q, const demo_col *cols, size_t ncols,
              cstack_rows **out);

/* ---- the steps ---- */

int demo_step_create(demo *d);      /* demo_data.c */
int demo_step_query(demo *d);       /* demo_query.c */
int demo_step_update(demo *d);      /* demo_query.c */
int demo_step_soft_delete(demo *d); /* demo_journal.c */
int demo_step_audit(demo *d);       /* demo_journal.c */
int demo_step_events(demo *d);      /* demo_journal.c */
int demo_step_rollback(demo *d);    /* demo_journal.c */
int demo_step_migrate(demo *d);     /* demo_migrate.c */
int demo_step_refuse(demo *d);      /* demo_migrate.c */

/* ---- the sync part: a server and four devices on loopback ---- */

struct cstack_server;

typedef struct demo_device {
    const char *name; /* "Ada's laptop" */
    const char *file; /* "ada-laptop.db" in the demo directory */
    int linus;        /* signs in as Linus (else as Ada) */
    cstack *db;
    cstack_sync_session *session;
} demo_device;

enum { DEV_LAPTOP, DEV_PHONE, DEV_TABLET, DEV_LINUS, DEMO_NDEVICES };

typedef struct demo_sync {
    struct cstack_server *srv;
    int port;
    char url[64];
    char secret[33];
    char *token[2]; /* Ada's and Linus's bearer tokens (free with cstack_free) */
    cstack_schema *schema;
    demo_device dev[DEMO_NDEVICES];
} demo_sync;

/* Stops sessions, closes devices, stops the server and frees d->sync.
 * Safe to call at any point, and more than once. */
void demo_sync_free(demo *d);
/* Opens a device's database (creating and bootstrapping it).  Returns 0 or
 * CLI_FAIL (printed). */
int demo_dev_open(demo *d, demo_device *dev);
/* Syncs a device once (push, pull, checkpoint); *st receives the status.
 * Returns the library's code (not printed: callers decide). */
int demo_dev_sync(demo *d, demo_device *dev, cstack_sync_status *st);
/* Starts / restarts the server on d->sync->port (0: any free port). */
int demo_server_start(demo *d);
/* Every live row of a device as text, models in schema order (malloc'd). */
char *demo_dev_dump(demo_device *dev);
/* Prints a device's live notes as a table, ordered by title. */
int demo_dev_show(demo *d, demo_device *dev);
/* Reads a text field of the note titled `title` on a device ("" when the
 * note is not live there). */
const char *demo_dev_field(demo *d, demo_device *dev, const char *title, const char *field,
                           char *buf, size_t cap);

int demo_step_serve(demo *d);       /* demo_sync.c */
int demo_step_sign_in(demo *d);     /* demo_sync.c */
int demo_step_offline(demo *d);     /* demo_sync.c */
int demo_step_converge(demo *d);    /* demo_converge.c */
int demo_step_initial(demo *d);     /* demo_converge.c */
int demo_step_isolation(demo *d);   /* demo_converge.c */
int demo_step_agree(demo *d);       /* demo_converge.c */

#endif
