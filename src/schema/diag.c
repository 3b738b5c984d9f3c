/*
 * diag.c -- schema diagnostics: collection, source-order sorting, rendering.
 *
 * Diagnostics are collected in emission order (lexer, parser, validator each
 * walk the file in order, but one after the other) and sorted by position at
 * the end.  The offending source lines are copied then, in one pass over the
 * source, so the caller may free the source before formatting; a long line
 * is cut to a window around the column (window_of).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

cstack_diags *cs_diags_new(const char *file)
{
    cstack_diags *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->file = cs_strdup(file ? file : "<schema>");
    if (!d->file) {
        free(d);
        return NULL;
    }
    return d;
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *m = malloc((size_t)n + 1);
    if (m)
        vsnprintf(m, (size_t)n + 1, fmt, ap);
    return m;
}

static cs_diag_item *diag_slot(cstack_diags *d)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        cs_diag_item *v = realloc(d->v, cap * sizeof(*v));
        if (!v) {
            d->oom = true;
            return NULL;
        }
        d->v = v;
        d->cap = cap;
    }
    cs_diag_item *it = &d->v[d->n];
    memset(it, 0, sizeof(*it));
    it->pub.file = d->file;
    it->seq = d->n;
    return it;
}

/* Appends a diagnostic with message `msg` (taken; NULL means OOM). */
static void add_item(cstack_diags *d, cs_pos pos, char *msg, bool warning)
{
    cs_diag_item *it = msg ? diag_slot(d) : NULL;
    if (!it) {
        free(msg);
        d->oom = true;
        return;
    }
    it->pub.message = msg;
    it->pub.warning = warning;
    it->pub.line = pos.line > 0 ? pos.line : 1;
    it->pub.col = pos.col > 0 ? pos.col : 1;
    d->n++;
}

void cs_vdiag(cstack_diags *d, cs_pos pos, const char *fmt, va_list ap)
{
    d->errors++;
    if (d->n >= CS_MAX_DIAGS) {
        if (d->errors == CS_MAX_DIAGS + 1)
            d->first_dropped = pos;
        return;
    }
    add_item(d, pos, vformat(fmt, ap), false);
}

void cs_warn(cstack_diags *d, cs_pos pos, const char *fmt, ...)
{
    if (d->n >= CS_MAX_DIAGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *body = vformat(fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (body) {
        msg = malloc(strlen(body) + sizeof("warning: "));
        if (msg)
            sprintf(msg, "warning: %s", body);
    }
    free(body);
    add_item(d, pos, msg, true);
}

void cs_diag(cstack_diags *d, cs_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_vdiag(d, pos, fmt, ap);
    va_end(ap);
}

static int cmp_item(const void *a, const void *b)
{
    const cs_diag_item *x = a, *y = b;
    if (x->pub.line != y->pub.line)
        return x->pub.line < y->pub.line ? -1 : 1;
    if (x->pub.col != y->pub.col)
        return x->pub.col < y->pub.col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Bytes of a source line shown under a diagnostic: a window around the
 * column, so that a 10 MB line does not mean 10 MB of stderr. */
#define LINE_WINDOW 120
#define ELLIPSIS "..."

static bool utf8_cont(const char *p)
{
    return ((unsigned char)*p & 0xC0) == 0x80;
}

/* The text shown for bytes [off, off + n) of the source holding column `col`
 * (from 1): the whole line when it fits LINE_WINDOW, else a window of about
 * LINE_WINDOW bytes around the column, cut on UTF-8 character boundaries and
 * marked with "..." on each side that was cut.  *caret receives the column
 * of the caret in the text returned (from 1).  NULL on OOM. */
static char *window_of(const char *line, size_t n, int col, int *caret)
{
    size_t at = col > 1 ? (size_t)col - 1 : 0;
    size_t start = 0, end = n;
    if (n > LINE_WINDOW) {
        start = at > LINE_WINDOW / 2 ? at - LINE_WINDOW / 2 : 0;
        if (start > n - LINE_WINDOW)
            start = n - LINE_WINDOW;
        end = start + LINE_WINDOW;
        /* A character has at most three continuation bytes; a longer run is
         * not UTF-8 (the lexer reports it), and is cut anywhere. */
        for (int k = 0; k < 3 && start > 0 && utf8_cont(line + start); k++)
            start--;
        for (int k = 0; k < 3 && end < n && utf8_cont(line + end); k++)
            end--;
    }
    bool head = start > 0, tail = end < n;
    size_t len = (head ? strlen(ELLIPSIS) : 0) + (end - start) + (tail ? strlen(ELLIPSIS) : 0);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    char *p = out;
    if (head)
        p += sprintf(p, "%s", ELLIPSIS);
    memcpy(p, line + start, end - start);
    p += end - start;
    if (tail)
        p += sprintf(p, "%s", ELLIPSIS);
    *p = 0;
    *caret = (int)(at - start + (head ? strlen(ELLIPSIS) : 0)) + 1;
    return out;
}

/* Copies the text shown for line `line` (without its newline; see
 * window_of) into `it`.  The scan state is carried between calls because
 * diagnostics are visited in line order. */
static char *copy_line(const char *src, size_t len, cs_diag_item *it, int *cur_line,
                       size_t *cur_off)
{
    int line = it->pub.line;
    it->caret = it->pub.col;
    while (*cur_line < line && *cur_off < len) {
        const char *nl = memchr(src + *cur_off, '\n', len - *cur_off);
        if (!nl) {
            *cur_off = len;
            break;
        }
        *cur_off = (size_t)(nl - src) + 1;
        (*cur_line)++;
    }
    if (*cur_line != line)
        return cs_strdup("");
    const char *nl = memchr(src + *cur_off, '\n', len - *cur_off);
    size_t n = (nl ? (size_t)(nl - src) : len) - *cur_off;
    if (n > 0 && src[*cur_off + n - 1] == '\r')
        n--;
    return window_of(src + *cur_off, n, it->pub.col, &it->caret);
}

/* Drops a diagnostic equal to an earlier one at the same position: a type
 * used by two auth fields is read twice (authblock.c), and its mistakes are
 * reported once.  The items are sorted, so equal positions are adjacent. */
static void drop_repeats(cstack_diags *d)
{
    size_t out = 0;
    for (size_t i = 0; i < d->n; i++) {
        cs_diag_item *it = &d->v[i];
        bool repeat = false;
        for (size_t k = out; k-- > 0 && d->v[k].pub.line == it->pub.line &&
                             d->v[k].pub.col == it->pub.col && !repeat;)
            repeat = strcmp(d->v[k].pub.message, it->pub.message) == 0;
        if (repeat)
            free((char *)it->pub.message);
        else
            d->v[out++] = *it;
    }
    d->n = out;
}

void cs_diags_finish(cstack_diags *d, const char *src, size_t len)
{
    if (d->n > 1)
        qsort(d->v, d->n, sizeof(d->v[0]), cmp_item);
    drop_repeats(d);
    int cur_line = 1;
    size_t cur_off = 0;
    for (size_t i = 0; i < d->n; i++) {
        d->v[i].line = src ? copy_line(src, len, &d->v[i], &cur_line, &cur_off) : cs_strdup("");
        if (!d->v[i].line)
            d->oom = true;
    }
    if (d->errors > d->n && d->n == CS_MAX_DIAGS) {
        cs_diag_item *it = diag_slot(d);
        if (!it)
            return;
        it->pub.line = d->first_dropped.line > 0 ? d->first_dropped.line : 1;
        it->pub.col = d->first_dropped.col > 0 ? d->first_dropped.col : 1;
        char msg[160];
        snprintf(msg, sizeof(msg), "too many errors (%zu in all); stopping after %d", d->errors,
                 CS_MAX_DIAGS);
        it->pub.message = cs_strdup(msg);
        it->line = cs_strdup("");
        if (!it->pub.message || !it->line) {
            free((char *)it->pub.message);
            free(it->line);
            d->oom = true;
            return;
        }
        d->n++;
    }
}

size_t cstack_diags_count(const cstack_diags *d)
{
    return d ? d->n : 0;
}

const cstack_diag *cstack_diags_get(const cstack_diags *d, size_t i)
{
    if (!d || i >= d->n)
        return NULL;
    return &d->v[i].pub;
}

/* Control bytes would garble a terminal; the caret line copies tabs so the
 * caret stays aligned under the column whatever the tab width, and has one
 * space per character (not per byte) of the text before the column. */
static int put_line(cs_buf *b, const char *line, int col)
{
    int rc = 0;
    for (const char *p = line; *p && rc == 0; p++) {
        unsigned char c = (unsigned char)*p;
        rc = cs_buf_putc(b, (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c);
    }
    if (rc == 0)
        rc = cs_buf_putc(b, '\n');
    size_t n = strlen(line);
    for (int i = 1; i < col && rc == 0; i++)
        if ((size_t)(i - 1) >= n || !utf8_cont(line + i - 1))
            rc = cs_buf_putc(b, (size_t)(i - 1) < n && line[i - 1] == '\t' ? '\t' : ' ');
    if (rc == 0)
        rc = cs_buf_puts(b, "^\n");
    return rc;
}

char *cstack_diags_format(const cstack_diags *d)
{
    cs_buf b = CS_BUF_INIT;
    int rc = cs_buf_puts(&b, "");
    for (size_t i = 0; d && i < d->n && rc == 0; i++) {
        const cs_diag_item *it = &d->v[i];
        rc = cs_buf_printf(&b, "%s:%d:%d: %s\n", it->pub.file, it->pub.line, it->pub.col,
                           it->pub.message);
        if (rc == 0 && it->line && it->line[0])
            rc = put_line(&b, it->line, it->caret);
    }
    if (rc != 0) {
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_take(&b);
}

void cstack_diags_free(cstack_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->v[i].pub.message);
        free(d->v[i].line);
    }
    free(d->v);
    free(d->file);
    free(d);
}
