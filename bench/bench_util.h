/* bench_util.h -- what the benchmarks share: a monotonic clock, a fatal
 * error, and the rows both sides of a comparison insert (built before any
 * timing so neither side pays for making them).  Header-only: each bench is
 * one executable built from one .c file. */
#ifndef CSTACK_BENCH_UTIL_H
#define CSTACK_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstack.h"

/* The running benchmark's name, for error messages; set it first in main. */
static const char *bench_name = "bench";

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void die(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s\n", bench_name, what, detail);
    exit(1);
}

/* The values of row i: a name, a quantity, a score and a DateTime. */
typedef struct dataset {
    size_t n;
    char (*name)[32];
    char (*at)[32];
} dataset;

static inline int64_t qty_of(size_t i)
{
    return (int64_t)(i * 7919 % 1000);
}

static inline double score_of(size_t i)
{
    return (double)i * 0.25;
}

static inline void make_dataset(dataset *ds, size_t n)
{
    ds->n = n;
    ds->name = malloc(n * sizeof *ds->name);
    ds->at = malloc(n * sizeof *ds->at);
    if (!ds->name || !ds->at)
        die("dataset", "out of memory");
    /* 2026-01-01T00:00:00Z plus i seconds, already canonical. */
    time_t base = 1767225600;
    for (size_t i = 0; i < n; i++) {
        time_t t = base + (time_t)i;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(ds->name[i], sizeof ds->name[i], "item-%zu", i);
        strftime(ds->at[i], sizeof ds->at[i], "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    }
}

static inline void free_dataset(dataset *ds)
{
    free(ds->name);
    free(ds->at);
    ds->name = NULL;
    ds->at = NULL;
}

/* ---- the command line, the schema and the directory of a run ---- */

/* The count given to option `opt`: 1 to max, else the run exits with 2. */
static inline size_t bench_count(const char *opt, const char *v, size_t max)
{
    char *end = NULL;
    unsigned long long n = v && *v >= '0' && *v <= '9' ? strtoull(v, &end, 10) : 0;
    if (!v || (end && *end) || n == 0 || n > max) {
        fprintf(stderr, "%s: %s needs a count from 1 to %zu; try --help\n", bench_name, opt, max);
        exit(2);
    }
    return (size_t)n;
}

/* The options of the benchmarks that insert rows and read some back:
 * --rows N (default 100000), --find-rows M (default 10000, at most N) and
 * --help, which prints `help`. */
static inline void bench_rows_args(int argc, char **argv, size_t *rows, size_t *find_rows,
                                   const char *help)
{
    *rows = 100000;
    *find_rows = 10000;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--rows") == 0) {
            *rows = bench_count("--rows", v, 10000000);
            i++;
        } else if (strcmp(argv[i], "--find-rows") == 0) {
            *find_rows = bench_count("--find-rows", v, 10000000);
            i++;
        } else if (strcmp(argv[i], "--help") == 0) {
            puts(help);
            exit(0);
        } else {
            fprintf(stderr, "%s: unknown argument '%s'; try --help\n", bench_name, argv[i]);
            exit(2);
        }
    }
    if (*find_rows > *rows)
        *find_rows = *rows;
}

/* The benchmark's schema, parsed from `src`; the run dies when it does not
 * parse.  Free it with cstack_schema_free(). */
static inline cstack_schema *bench_schema(const char *src)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    if (cstack_schema_parse("bench.cstack", src, strlen(src), &s, &d) != 0)
        die("schema", "the benchmark schema does not parse");
    cstack_diags_free(d);
    return s;
}

/* Makes a fresh directory $TMPDIR/NAME-XXXXXX (/tmp without TMPDIR) and
 * puts its path in dir. */
static inline void bench_tmpdir(char *dir, size_t cap, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
}

#endif
