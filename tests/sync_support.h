/*
 * sync_support.h -- helpers shared by the sync proofs (test_sync.c,
 * test_convergence.c, test_crash.c).  Header-only (static inline) because
 * each test executable is built from one test file plus support.c.
 *
 * None of these assert: they return NULL or an error code so that a caller
 * running in a forked child or a seed loop decides how to report.
 */
#ifndef CSTACK_TEST_SYNC_SUPPORT_H
#define CSTACK_TEST_SYNC_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"

/* A growable string; `failed` sticks once an allocation fails. */
typedef struct ts_str {
    char *p;
    size_t n, cap;
    int failed;
} ts_str;

static inline void ts_str_put(ts_str *s, const char *text)
{
    size_t k = strlen(text);
    if (s->failed)
        return;
    if (s->n + k + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + k + 1)
            cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) {
            s->failed = 1;
            return;
        }
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->n, text, k + 1);
    s->n += k;
}

static inline int ts_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every live row of every model, exactly as `cstack dump` prints it: models
 * in name order, rows in primary-key order, one
 * {"model":"M","row":{...}} line each.  malloc'd; NULL on any error (the
 * reason is then in cstack_errmsg(db)). */
static inline char *ts_dump(cstack *db)
{
    const cstack_schema *s = cstack_schema_of(db);
    size_t nm = cstack_schema_model_count(s);
    const char **names = calloc(nm ? nm : 1, sizeof *names);
    if (!names)
        return NULL;
    for (size_t i = 0; i < nm; i++)
        names[i] = cstack_schema_model_name(s, i);
    qsort(names, nm, sizeof *names, ts_cmp_names);
    ts_str out = {0};
    ts_str_put(&out, "");
    int ok = 1;
    for (size_t m = 0; m < nm && ok; m++) {
        cstack_query q = {0};
        cstack_rows *rows = NULL;
        if (cstack_find_many(db, names[m], &q, &rows) != CSTACK_OK) {
            ok = 0;
            break;
        }
        for (size_t i = 0; i < cstack_rows_count(rows) && ok; i++) {
            char *json = cstack_row_json(cstack_rows_get(rows, i));
            if (!json) {
                ok = 0;
                break;
            }
            ts_str_put(&out, "{\"model\":\"");
            ts_str_put(&out, names[m]);
            ts_str_put(&out, "\",\"row\":");
            ts_str_put(&out, json);
            ts_str_put(&out, "}\n");
            cstack_free(json);
        }
        cstack_rows_free(rows);
    }
    free(names);
    if (!ok || out.failed) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

/* Exports `src`'s changes since `since` and applies them to `dst`.  *cursor
 * (optional) receives the export cursor, *st (optional) the apply stats.
 * Returns the first failing code; `*failed_on` (optional) says which side
 * failed (the one whose cstack_errmsg explains). */
static inline int ts_sync(cstack *src, cstack *dst, int64_t since, int64_t *cursor,
                          cstack_apply_stats *st, cstack **failed_on)
{
    void *buf = NULL;
    size_t len = 0;
    int64_t cur = 0;
    int rc = cstack_changes_export(src, since, &buf, &len, &cur);
    if (rc != CSTACK_OK) {
        if (failed_on)
            *failed_on = src;
        return rc;
    }
    cstack_apply_stats local = {0};
    rc = cstack_changes_apply(dst, buf, len, st ? st : &local);
    cstack_free(buf);
    if (rc != CSTACK_OK) {
        if (failed_on)
            *failed_on = dst;
        return rc;
    }
    if (cursor)
        *cursor = cur;
    return CSTACK_OK;
}

#endif
