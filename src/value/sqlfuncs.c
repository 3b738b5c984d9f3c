/*
 * sqlfuncs.c -- SQL helpers registered on every connection the runtime
 * opens: the numeric collation and exact aggregates of Decimal columns
 * (stored as TEXT, which SQLite alone would order and sum wrongly), and
 * cstack_now().
 *
 * The aggregates accept canonical decimal text and INTEGER values, skip
 * NULLs, return NULL when there was nothing to aggregate, and fail the
 * statement (rather than guess) on REAL, BLOB or malformed text.
 */
#include "value/value.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SQLITE_INNOCUOUS
#define SQLITE_INNOCUOUS 0 /* SQLite before 3.31 */
#endif

/* Fractional digits avg() adds beyond the largest input scale. */
#define AVG_EXTRA_SCALE 6

static int collate_decimal(void *unused, int an, const void *a, int bn, const void *b)
{
    return cs_decimal_cmp(a, (size_t)an, b, (size_t)bn);
}

typedef struct dec_agg {
    cs_buf sum;  /* the canonical running sum */
    cs_buf val;  /* the current input, canonical */
    cs_buf next; /* sum + val, swapped into sum */
    int64_t count;
    bool failed;
} dec_agg;

static void agg_free(dec_agg *a)
{
    cs_buf_free(&a->sum);
    cs_buf_free(&a->val);
    cs_buf_free(&a->next);
}

static void agg_error(sqlite3_context *ctx, dec_agg *a, int rc, const char *msg)
{
    a->failed = true;
    if (rc == CSTACK_ENOMEM)
        sqlite3_result_error_nomem(ctx);
    else if (rc == CSTACK_ETOOBIG)
        sqlite3_result_error_toobig(ctx);
    else
        sqlite3_result_error(ctx, msg, -1);
}

static void agg_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *fname = sqlite3_user_data(ctx);
    dec_agg *a = sqlite3_aggregate_context(ctx, sizeof *a);
    if (!a) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (a->failed)
        return;
    char num[24], err[256], msg[300];
    const char *s;
    size_t n;
    switch (sqlite3_value_type(argv[0])) {
    case SQLITE_NULL:
        return;
    case SQLITE_INTEGER:
        n = (size_t)snprintf(num, sizeof num, "%" PRId64, (int64_t)sqlite3_value_int64(argv[0]));
        s = num;
        break;
    case SQLITE_TEXT:
        s = (const char *)sqlite3_value_text(argv[0]);
        n = (size_t)sqlite3_value_bytes(argv[0]);
        if (!s) {
            agg_error(ctx, a, CSTACK_ENOMEM, NULL);
            return;
        }
        break;
    default:
        snprintf(msg, sizeof msg, "%s: expected decimal text or an integer, got %s", fname,
                 sqlite3_value_type(argv[0]) == SQLITE_FLOAT ? "a REAL" : "a BLOB");
        agg_error(ctx, a, CSTACK_EVALIDATION, msg);
        return;
    }
    cs_buf_reset(&a->val);
    int rc = cs_decimal_canon(s, n, &a->val, err, sizeof err);
    cs_buf *result = &a->val;
    if (rc == 0 && a->count > 0) {
        cs_buf_reset(&a->next);
        rc = cs_decimal_add(a->sum.data, a->sum.len, a->val.data, a->val.len, &a->next);
        result = &a->next;
        if (rc != 0)
            snprintf(err, sizeof err, "%s", cstack_errstr(rc));
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s: %s", fname, err);
        agg_error(ctx, a, rc, msg);
        return;
    }
    /* Swap rather than copy: the old sum's memory serves the next step. */
    cs_buf t = a->sum;
    a->sum = *result;
    *result = t;
    a->count++;
}

static void sum_final(sqlite3_context *ctx)
{
    dec_agg *a = sqlite3_aggregate_context(ctx, 0);
    if (a && a->failed)
        ; /* the error was reported by the step that failed */
    else if (!a || a->count == 0)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_text(ctx, a->sum.data, (int)a->sum.len, SQLITE_TRANSIENT);
    if (a)
        agg_free(a);
}

/* One step of long division: (r * 10 + d) / c with r < c, without the
 * overflow r * 10 would cause for divisors near 2^63. */
static unsigned div_step(uint64_t *r, unsigned d, uint64_t c)
{
    if (c <= (UINT64_MAX - 9) / 10) {
        uint64_t v = *r * 10 + d;
        *r = v % c;
        return (unsigned)(v / c);
    }
    /* Add r ten times, then d, modulo c, counting the wrap-arounds. */
    uint64_t acc = 0;
    unsigned q = 0;
    for (int k = 0; k < 10; k++) {
        if (acc >= c - *r) {
            acc -= c - *r;
            q++;
        } else {
            acc += *r;
        }
    }
    for (unsigned k = 0; k < d; k++) {
        if (acc >= c - 1) {
            acc -= c - 1;
            q++;
        } else {
            acc++;
        }
    }
    *r = acc;
    return q;
}

/* Appends sum / count, rounded half-even to scale(sum) + 6 fraction digits,
 * as canonical decimal text. */
static int decimal_div(const char *sum, size_t n, int64_t count, cs_buf *out)
{
    bool neg = n > 0 && sum[0] == '-';
    const char *dot = memchr(sum, '.', n);
    size_t scale = (dot ? (size_t)(sum + n - dot - 1) : 0) + AVG_EXTRA_SCALE;
    /* q holds one spare leading digit for a carry out of rounding. */
    size_t len = n + AVG_EXTRA_SCALE + 1;
    char *q = malloc(len);
    if (!q)
        return CSTACK_ENOMEM;
    size_t k = 0;
    uint64_t r = 0, c = (uint64_t)count;
    q[k++] = '0';
    for (size_t i = neg; i < n + AVG_EXTRA_SCALE; i++) {
        if (i < n && sum[i] == '.')
            continue;
        unsigned d = i < n ? (unsigned)(sum[i] - '0') : 0;
        q[k++] = (char)('0' + div_step(&r, d, c));
    }
    /* Half-even: round up past the half, or at exactly half to an even digit. */
    uint64_t rest = c - r;
    if (r > rest || (r == rest && (q[k - 1] - '0') % 2 == 1)) {
        size_t j = k;
        while (j-- > 0 && q[j] == '9')
            q[j] = '0';
        q[j]++;
    }
    size_t ilen = k - scale, skip = 0;
    while (skip + 1 < ilen && q[skip] == '0')
        skip++;
    bool zero = true;
    for (size_t j = skip; j < k && zero; j++)
        zero = q[j] == '0';
    int rc = cs_buf_reserve(out, k + 3);
    if (rc == 0) {
        if (neg && !zero)
            cs_buf_putc(out, '-');
        cs_buf_append(out, q + skip, ilen - skip);
        cs_buf_putc(out, '.');
        cs_buf_append(out, q + ilen, scale);
    }
    free(q);
    return rc;
}

static void avg_final(sqlite3_context *ctx)
{
    dec_agg *a = sqlite3_aggregate_context(ctx, 0);
    if (!a) {
        sqlite3_result_null(ctx);
        return;
    }
    if (!a->failed) {
        if (a->count == 0) {
            sqlite3_result_null(ctx);
        } else {
            cs_buf_reset(&a->next);
            int rc = decimal_div(a->sum.data, a->sum.len, a->count, &a->next);
            if (rc == CSTACK_ENOMEM)
                sqlite3_result_error_nomem(ctx);
            else if (rc != 0)
                sqlite3_result_error_toobig(ctx);
            else
                sqlite3_result_text(ctx, a->next.data, (int)a->next.len, SQLITE_TRANSIENT);
        }
    }
    agg_free(a);
}

static void now_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char now[CS_DATETIME_LEN + 1];
    cs_now(now);
    sqlite3_result_text(ctx, now, CS_DATETIME_LEN, SQLITE_TRANSIENT);
}

int cs_value_register_sqlite(struct sqlite3 *db)
{
    const int pure = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    /* The names double as user data so errors say which function failed. */
    static const char sum_name[] = "cstack_decimal_sum", avg_name[] = "cstack_decimal_avg";
    int rc =
        sqlite3_create_collation_v2(db, "cstack_decimal", SQLITE_UTF8, NULL, collate_decimal, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, sum_name, 1, pure, (void *)sum_name, NULL, agg_step,
                                        sum_final, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, avg_name, 1, pure, (void *)avg_name, NULL, agg_step,
                                        avg_final, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "cstack_now", 0, SQLITE_UTF8, NULL, now_func, NULL,
                                        NULL, NULL);
    return rc;
}
