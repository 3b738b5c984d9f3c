/*
 * demo_print.c -- how `cstack demo` talks to a person: step headings,
 * explanations, checked results and aligned tables.  Colour is used only when
 * stdout is a terminal (and NO_COLOR is unset), so logs and pipes stay plain.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* Cells wider than this are cut with "..." so a table fits a terminal. */
#define CELL_MAX 38
#define CELL_BUF 128

void demo_style(const demo *d, const char *sgr)
{
    if (d->colour)
        printf("\033[%sm", sgr);
}

void demo_unstyle(const demo *d)
{
    if (d->colour)
        fputs("\033[0m", stdout);
}

void demo_heading(const demo *d)
{
    putchar('\n');
    demo_style(d, DEMO_BOLD);
    demo_style(d, DEMO_CYAN);
    printf("%2d. %s", d->step, d->step_title);
    demo_unstyle(d);
    putchar('\n');
}

/* Prints `text` line by line with an indent. */
static void print_indented(const char *indent, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        printf("%s%.*s\n", n ? indent : "", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

void demo_say(const demo *d, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (void)d;
    print_indented("    ", buf);
}

void demo_ok(const demo *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fputs("    ", stdout);
    demo_style(d, DEMO_GREEN);
    fputs("[ok]", stdout);
    demo_unstyle(d);
    printf(" %s\n", buf);
}

/* Failures go to stderr (for CI logs) after flushing what was shown so far,
 * so the message appears where the demo stopped. */
static void fail_prefix(const demo *d)
{
    fflush(stdout);
    fprintf(stderr, "cstack demo: step %d (%s) failed: ", d->step,
            d->step_title ? d->step_title : "setup");
}

int demo_fail(const demo *d, const char *what, int rc)
{
    fail_prefix(d);
    fprintf(stderr, "%s: %s (%s)\n", what, d->db ? cstack_errmsg(d->db) : cstack_errstr(rc),
            cstack_errname(rc));
    return CLI_FAIL;
}

int demo_expect(const demo *d, int cond, const char *fmt, ...)
{
    if (cond)
        return 0;
    fail_prefix(d);
    fputs("expected ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

const char *demo_value_text(const demo *d, cstack_value v, demo_fmt fmt, char *buf, size_t cap)
{
    switch (v.type) {
    case CSTACK_NULL:
        return NULL;
    case CSTACK_INT:
        snprintf(buf, cap, "%" PRId64, v.u.i);
        return buf;
    case CSTACK_FLOAT:
        snprintf(buf, cap, "%.17g", v.u.f);
        return buf;
    case CSTACK_BOOL:
        return v.u.b ? "true" : "false";
    case CSTACK_BLOB:
        snprintf(buf, cap, "<%zu bytes>", v.u.s.n);
        return buf;
    case CSTACK_TEXT:
        break;
    }
    size_t n = v.u.s.n;
    if (fmt == DEMO_OWNER && n == DEMO_ID_LEN) {
        if (memcmp(v.u.s.p, d->ada, n) == 0)
            return "Ada";
        if (memcmp(v.u.s.p, d->linus, n) == 0)
            return "Linus";
    }
    if (fmt == DEMO_SHORT && n > 8)
        snprintf(buf, cap, "%.8s...", v.u.s.p);
    else
        snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), v.u.s.p);
    return buf;
}

/* Display width of UTF-8 text: one column per code point. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Cuts a cell to CELL_MAX columns (on a code point boundary) with "...". */
static void clip(char *s)
{
    if (text_width(s) <= CELL_MAX)
        return;
    size_t w = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++w > CELL_MAX - 3)
            break;
    }
    memcpy(s + i, "...", 4);
}

static void print_cell(const demo *d, const char *text, size_t width, int last)
{
    const char *shown = text ? text : "null";
    if (!text)
        demo_style(d, DEMO_DIM);
    fputs(shown, stdout);
    if (!text)
        demo_unstyle(d);
    if (!last)
        for (size_t w = text_width(shown); w < width + 2; w++)
            putchar(' ');
}

void demo_grid(const demo *d, const char *const *headers, size_t ncols, const char *const *cells,
               size_t nrows)
{
    size_t width[16] = {0};
    if (ncols > 16)
        ncols = 16;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = text_width(headers[c]);
        for (size_t r = 0; r < nrows; r++) {
            const char *t = cells[r * ncols + c];
            size_t w = text_width(t ? t : "null");
            if (w > width[c])
                width[c] = w;
        }
    }
    fputs("    ", stdout);
    demo_style(d, DEMO_BOLD);
    for (size_t c = 0; c < ncols; c++)
        print_cell(d, headers[c], width[c], c + 1 == ncols);
    demo_unstyle(d);
    fputs("\n    ", stdout);
    for (size_t c = 0; c < ncols; c++) {
        for (size_t w = 0; w < width[c]; w++)
            putchar('-');
        if (c + 1 < ncols)
            fputs("  ", stdout);
    }
    putchar('\n');
    for (size_t r = 0; r < nrows; r++) {
        fputs("    ", stdout);
        for (size_t c = 0; c < ncols; c++)
            print_cell(d, cells[r * ncols + c], width[c], c + 1 == ncols);
        putchar('\n');
    }
    if (nrows == 0)
        demo_say(d, "(no rows)");
}

void demo_table(const demo *d, const cstack_rows *rows, const demo_col *cols, size_t ncols)
{
    size_t nrows = cstack_rows_count(rows);
    const char *headers[16];
    if (ncols > 16)
        ncols = 16;
    for (size_t c = 0; c < ncols; c++)
        headers[c] = cols[c].label ? cols[c].label : cols[c].field;
    /* One buffer per cell keeps every formatted value alive until printed. */
    char(*bufs)[CELL_BUF] = calloc(nrows * ncols + 1, CELL_BUF);
    const char **cells = calloc(nrows * ncols + 1, sizeof *cells);
    if (!bufs || !cells) {
        free(bufs);
        free(cells);
        demo_say(d, "(out of memory printing %zu rows)", nrows);
        return;
    }
    for (size_t r = 0; r < nrows; r++) {
        const cstack_row *row = cstack_rows_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            size_t k = r * ncols + c;
            cstack_value v;
            if (cstack_row_get(row, cols[c].field, &v) != CSTACK_OK)
                v = cstack_v_null();
            cells[k] = demo_value_text(d, v, cols[c].fmt, bufs[k], CELL_BUF);
            if (cells[k] == bufs[k])
                clip(bufs[k]);
        }
    }
    demo_grid(d, headers, ncols, cells, nrows);
    free(cells);
    free(bufs);
}
