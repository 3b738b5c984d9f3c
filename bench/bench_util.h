/* bench_util.h -- what the benchmarks share: a monotonic clock, a fatal
 * error, and the rows both sides of a comparison insert (built before any
 * timing so neither side pays for making them).  Header-only: each bench is
 * one executable built from one .c file. */
#ifndef CSTACK_BENCH_UTIL_H
#define CSTACK_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

#endif
