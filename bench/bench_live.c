/*
 * bench_live.c -- live queries (docs/live.md): how soon a watch hears of a
 * commit, what 1,000 open watches cost a write, how fast reads stay while a
 * large merge runs, and how soon another process's commit is seen.
 *
 * usage: bench_live [--writes N] [--merge-rows R] [--quick]
 *
 * Every figure is measured in this one run, on file databases (WAL, reader
 * pool) in a temporary directory, and every delivered result is checked.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "cstack.h"

static const char SCHEMA[] = "model Note {\n"
                             "  id    Int    @id\n"
                             "  title String\n"
                             "  views Int    @default(0)\n"
                             "}\n"
                             "model Other {\n"
                             "  id Int @id\n"
                             "  n  Int\n"
                             "}\n"
                             "model Wide {\n"
                             "  id Int @id\n"
                             "  a1 Int\n  a2 Int\n  a3 Int\n  a4 Int\n  a5 Int\n"
                             "  s1 String\n  s2 String\n  s3 String\n  s4 String\n  s5 String\n"
                             "}\n";

typedef struct cfg {
    int writes;      /* commits timed per latency figure */
    int merge_rows;  /* rows of Wide in the merged changeset (10 columns each) */
    char dir[256];
    cstack_schema *schema;
} cfg;

/* ---- helpers ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of v[0..n) (sorts v). */
static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static cstack *open_db(const cfg *c, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.db", c->dir, name);
    cstack *db = NULL;
    if (cstack_open(c->schema, path, NULL, &db) != 0 || cstack_bootstrap(db, NULL) != 0)
        die("open", db ? cstack_errmsg(db) : path);
    return db;
}

static void call(cstack *db, const char *req)
{
    char *resp = NULL;
    if (cstack_envelope_call(db, req, strlen(req), &resp, NULL) != 0 || !resp ||
        strncmp(resp, "{\"status\":\"ok\"", 14) != 0)
        die(req, resp ? resp : cstack_errmsg(db));
    cstack_free(resp);
}

static void create_note(cstack *db, int id)
{
    char req[160];
    snprintf(req, sizeof req,
             "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":%d,"
             "\"title\":\"t%d\",\"views\":%d}}}",
             id, id, id);
    call(db, req);
}

/* What one watch saw: the time and the count of its latest delivery. */
typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int deliveries;
    long long count; /* parsed from {"count":N} */
    double at;       /* now_ms() of the latest delivery */
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->count = -1;
}

static void on_count(void *ctx, const char *resp, size_t len)
{
    double t = now_ms();
    seen *s = ctx;
    char buf[96]; /* a count response is short */
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 95 ? len : 95), resp);
    const char *p = strstr(buf, "\"count\":");
    pthread_mutex_lock(&s->mu);
    s->deliveries++;
    s->count = p ? strtoll(p + 8, NULL, 10) : -2;
    s->at = t;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits (at most 10 s) until s saw `count`; returns the time it did. */
static double wait_count(seen *s, long long count)
{
    struct timespec give_up;
    clock_gettime(CLOCK_REALTIME, &give_up);
    give_up.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (s->count != count && pthread_cond_timedwait(&s->cv, &s->mu, &give_up) == 0)
        ;
    long long got = s->count;
    double at = s->at;
    pthread_mutex_unlock(&s->mu);
    if (got != count) {
        char msg[96];
        snprintf(msg, sizeof msg, "wanted count %lld, last delivered %lld", count, got);
        die("watch", msg);
    }
    return at;
}

static cstack_watch *watch_count(cstack *db, const char *req, seen *s)
{
    cstack_watch *w = NULL;
    if (cstack_watch_envelope(db, req, strlen(req), 0, on_count, s, &w) != 0)
        die("watch", cstack_errmsg(db));
    return w;
}

static void print_lat(const char *what, double *v, size_t n, double target)
{
    double p50 = pct(v, n, 50), p99 = pct(v, n, 99), max = pct(v, n, 100);
    printf("  %-44s p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms", what, p50, p99, max);
    if (target > 0)
        printf("  (target p99 <= %g ms: %s)", target, p99 <= target ? "met" : "MISSED");
    putchar('\n');
}

/* ---- 1. commit to callback, one watch ---------------------------------------- */

static const char COUNT_NOTES[] = "{\"model\":\"Note\",\"kind\":\"count\"}";

static void bench_one_watch(const cfg *c)
{
    cstack *db = open_db(c, "one");
    seen s;
    seen_init(&s);
    cstack_watch *w = watch_count(db, COUNT_NOTES, &s);
    wait_count(&s, 0);
    double *lat = malloc((size_t)c->writes * sizeof *lat);
    double *write = malloc((size_t)c->writes * sizeof *write);
    double *whole = malloc((size_t)c->writes * sizeof *whole);
    for (int i = 0; i < c->writes; i++) {
        double t0 = now_ms();
        create_note(db, i + 1);
        double t1 = now_ms();
        double at = wait_count(&s, i + 1);
        write[i] = t1 - t0;
        whole[i] = at - t0;
        lat[i] = at > t1 ? at - t1 : 0; /* delivered before the call returned: 0 */
    }
    printf("1. one watch (count of Note, throttle 0), %d commits:\n", c->writes);
    print_lat("write (envelope create, its commit)", write, (size_t)c->writes, 0);
    print_lat("write call -> callback (write included)", whole, (size_t)c->writes, 0);
    print_lat("commit returned -> callback", lat, (size_t)c->writes, 5);
    cstack_watch_stop(w);
    cstack_close(db);
    free(lat);
    free(write);
    free(whole);
}

/* ---- 2. 1,000 watches, 10 on the written table --------------------------------- */

#define N_WATCHES 1000
#define N_HOT 10

/* Mean write time of `n` creates of Note from id `from`. */
static double time_writes(cstack *db, int from, int n, double *each)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        create_note(db, from + i);
        each[i] = now_ms() - t0;
        sum += each[i];
    }
    return sum / n;
}

/* A fresh database holding notes 1..N_HOT: each figure of section 2 is
 * taken on its own, so all time the same writes into the same table (a
 * write costs more as the table and its log grow). */
static cstack *many_db(const cfg *c, const char *name)
{
    cstack *db = open_db(c, name);
    for (int i = 1; i <= N_HOT; i++)
        create_note(db, i);
    return db;
}

/* Watch i of section 2: the first N_HOT count Notes (the written table),
 * the others count rows of Other. */
static cstack_watch *watch_nth(cstack *db, int i, seen *s)
{
    char req[160];
    seen_init(s);
    if (i < N_HOT)
        snprintf(req, sizeof req,
                 "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":"
                 "{\"views\":{\"gt\":%d}}}}",
                 i);
    else
        snprintf(req, sizeof req,
                 "{\"model\":\"Other\",\"kind\":\"count\",\"payload\":{\"where\":"
                 "{\"n\":%d}}}",
                 i);
    return watch_count(db, req, s);
}

/* Opens the watches from..to-1 and waits for their first results (the
 * table holds notes 1..notes). */
static void open_watches(cstack *db, cstack_watch **w, seen *s, int from, int to, int notes)
{
    for (int i = from; i < to; i++)
        w[i] = watch_nth(db, i, &s[i]);
    for (int i = from; i < to; i++)
        wait_count(&s[i], i < N_HOT ? notes - i : 0);
}

static void close_watches(cstack_watch **w, seen *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        cstack_watch_stop(w[i]);
        pthread_mutex_destroy(&s[i].mu);
        pthread_cond_destroy(&s[i].cv);
    }
}

static void bench_many_watches(const cfg *c)
{
    int n = c->writes;
    double *each = malloc((size_t)n * sizeof *each), *notify = malloc((size_t)n * sizeof *notify);
    cstack *db = many_db(c, "many_none");
    double base = time_writes(db, N_HOT + 1, n, each);
    double base_p50 = pct(each, (size_t)n, 50);
    cstack_close(db);
    seen *s = malloc(N_WATCHES * sizeof *s);
    cstack_watch **w = malloc(N_WATCHES * sizeof *w);
    /* Only the watches of the other table: what a commit pays for watches
     * it does not concern. */
    db = many_db(c, "many_cold");
    open_watches(db, w, s, N_HOT, N_WATCHES, N_HOT);
    double cold_mean = time_writes(db, N_HOT + 1, n, each);
    double cold_p50 = pct(each, (size_t)n, 50);
    int cold = 0;
    for (int i = N_HOT; i < N_WATCHES; i++)
        cold += s[i].deliveries - 1;
    close_watches(w, s, N_HOT, N_WATCHES);
    cstack_close(db);
    /* All the watches: time each write, and the time from its return to
     * the last of the 10 deliveries. */
    db = many_db(c, "many");
    open_watches(db, w, s, 0, N_WATCHES, N_HOT);
    double sum = 0;
    for (int k = 0; k < n; k++) {
        int id = N_HOT + 1 + k;
        double t0 = now_ms();
        create_note(db, id);
        double t1 = now_ms();
        each[k] = t1 - t0;
        sum += each[k];
        double last = t1;
        for (int i = 0; i < N_HOT; i++) {
            double at = wait_count(&s[i], id - i);
            last = at > last ? at : last;
        }
        notify[k] = last - t1;
    }
    double with = sum / n, with_p50 = pct(each, (size_t)n, 50);
    for (int i = N_HOT; i < N_WATCHES; i++)
        cold += s[i].deliveries - 1;
    printf("2. %d watches open, %d of them on the written table, %d commits each:\n", N_WATCHES,
           N_HOT, n);
    printf("  write mean %.3f ms without watches, %.3f ms with (x%.2f); p50 %.3f -> %.3f ms\n",
           base, with, with / base, base_p50, with_p50);
    printf("  with only the %d of another table: mean %.3f ms (x%.2f), p50 %.3f ms\n",
           N_WATCHES - N_HOT, cold_mean, cold_mean / base, cold_p50);
    print_lat("commit returned -> all 10 callbacks", notify, (size_t)n, 0);
    printf("  deliveries to the watches of another table: %d (want 0)\n", cold);
    if (cold)
        die("many watches", "a watch of another table was delivered to");
    close_watches(w, s, 0, N_WATCHES);
    cstack_close(db);
    free(s);
    free(w);
    free(each);
    free(notify);
}

/* ---- 3. reads during a large merge --------------------------------------------- */

typedef struct merge_job {
    cstack *db;
    void *cs;
    size_t len;
    cstack_apply_stats st;
    double ms;
    volatile int done;
} merge_job;

static void *run_merge(void *arg)
{
    merge_job *j = arg;
    double t0 = now_ms();
    if (cstack_changes_apply(j->db, j->cs, j->len, &j->st) != 0)
        die("merge", cstack_errmsg(j->db));
    j->ms = now_ms() - t0;
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A changeset of `rows` Wide rows made on another replica. */
static void *wide_changeset(const cfg *c, size_t *len)
{
    cstack *src = open_db(c, "merge_src");
    enum { BATCH = 5000 };
    cstack_field_value *fv = malloc(BATCH * 11 * sizeof *fv);
    cstack_data *rows = malloc(BATCH * sizeof *rows);
    char (*text)[5][24] = malloc(BATCH * sizeof *text);
    static const char *const names[] = {"id", "a1", "a2", "a3", "a4", "a5",
                                        "s1", "s2", "s3", "s4", "s5"};
    for (int at = 0; at < c->merge_rows; at += BATCH) {
        int n = c->merge_rows - at < BATCH ? c->merge_rows - at : BATCH;
        for (int r = 0; r < n; r++) {
            cstack_field_value *f = &fv[r * 11];
            for (int k = 0; k < 11; k++) {
                f[k].field = names[k];
                if (k < 6) {
                    f[k].value = cstack_v_int((int64_t)(at + r) * 11 + k);
                } else {
                    snprintf(text[r][k - 6], sizeof text[r][k - 6], "v%d-%d", at + r, k);
                    f[k].value = cstack_v_text(text[r][k - 6]);
                }
            }
            rows[r] = (cstack_data){f, 11};
        }
        int64_t made = 0;
        if (cstack_create_many(src, "Wide", rows, (size_t)n, &made) != 0 || made != n)
            die("merge source", cstack_errmsg(src));
    }
    void *cs = NULL;
    if (cstack_changes_export(src, 0, &cs, len, NULL) != 0)
        die("export", cstack_errmsg(src));
    cstack_close(src);
    free(fv);
    free(rows);
    free(text);
    return cs;
}

/* Times envelope reads (find_many of 20 Notes) until *stop or max reads. */
static size_t time_reads(cstack *db, volatile int *stop, double *lat, size_t max)
{
    static const char req[] = "{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":"
                              "{\"where\":{\"views\":{\"gte\":10}},\"take\":20}}";
    size_t n = 0;
    while (n < max && !(stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))) {
        double t0 = now_ms();
        call(db, req);
        lat[n++] = now_ms() - t0;
        usleep(1000);
    }
    return n;
}

static void bench_merge_reads(const cfg *c)
{
    printf("3. reads on a reader while a large merge runs on the writer:\n");
    double t0 = now_ms();
    merge_job j = {0};
    j.cs = wide_changeset(c, &j.len);
    printf("  changeset of %d rows built in %.0f ms (%.1f MB)\n", c->merge_rows, now_ms() - t0,
           (double)j.len / 1e6);
    j.db = open_db(c, "merge_dst");
    for (int i = 1; i <= 1000; i++)
        create_note(j.db, i);
    enum { MAX_READS = 200000 };
    double *lat = malloc(MAX_READS * sizeof *lat);
    size_t n = time_reads(j.db, NULL, lat, 500);
    print_lat("find_many take 20, no merge running", lat, n, 0);
    seen s;
    seen_init(&s);
    cstack_watch *w = watch_count(j.db, "{\"model\":\"Wide\",\"kind\":\"count\"}", &s);
    wait_count(&s, 0);
    pthread_t th;
    pthread_create(&th, NULL, run_merge, &j);
    n = time_reads(j.db, &j.done, lat, MAX_READS);
    pthread_join(th, NULL);
    printf("  merge: %lld rows, %lld column changes, %.0f ms\n", (long long)j.st.rows,
           (long long)j.st.columns, j.ms);
    print_lat("find_many take 20, during the merge", lat, n, 10);
    printf("  (%zu reads during the merge)\n", n);
    wait_count(&s, c->merge_rows); /* the watch of Wide saw the merged rows */
    cstack_watch_stop(w);
    cstack_close(j.db);
    cstack_free(j.cs);
    free(lat);
}

/* ---- 4. another process's commit ------------------------------------------------- */

/* The child: opens DB, and for each byte read from stdin creates a Note and
 * writes back the monotonic time its commit returned. */
static int child_writer(const char *path)
{
    cstack_schema *s = bench_schema(SCHEMA);
    cstack *db = NULL;
    if (cstack_open(s, path, NULL, &db) != 0 || cstack_bootstrap(db, NULL) != 0)
        return 1;
    char b;
    int id = 0;
    while (read(0, &b, 1) == 1) {
        create_note(db, ++id);
        double t = now_ms();
        if (write(1, &t, sizeof t) != sizeof t)
            break;
    }
    cstack_close(db);
    cstack_schema_free(s);
    return 0;
}

static void bench_cross_process(const cfg *c, const char *self)
{
    cstack *db = open_db(c, "xproc");
    char path[400];
    snprintf(path, sizeof path, "%s/xproc.db", c->dir);
    int to[2], from[2];
    if (pipe(to) || pipe(from))
        die("pipe", "failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execl(self, self, "--child-writer", path, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    seen s;
    seen_init(&s);
    cstack_watch *w = watch_count(db, COUNT_NOTES, &s);
    wait_count(&s, 0);
    int n = c->writes < 200 ? c->writes : 200;
    double *lat = malloc((size_t)n * sizeof *lat);
    for (int i = 0; i < n; i++) {
        double t;
        if (write(to[1], "w", 1) != 1 || read(from[0], &t, sizeof t) != sizeof t)
            die("child writer", "no answer");
        double at = wait_count(&s, i + 1);
        lat[i] = at > t ? at - t : 0;
    }
    close(to[1]);
    close(from[0]);
    waitpid(pid, NULL, 0);
    printf("4. another process commits (cstack_open on the same file), %d commits:\n", n);
    print_lat("its commit returned -> callback here", lat, (size_t)n, 0);
    printf("  (the poll of PRAGMA data_version runs every 20 ms: expect up to ~20 ms)\n");
    cstack_watch_stop(w);
    cstack_close(db);
    free(lat);
}

/* ---- main -------------------------------------------------------------------------- */

static const char USAGE[] =
    "usage: bench_live [--writes N] [--merge-rows R] [--quick]\n"
    "\n"
    "Measures live queries on file databases, in one run:\n"
    "  1. commit -> callback latency of one watch (target p99 <= 5 ms);\n"
    "  2. with 1,000 watches open, 10 on the written table: the write's extra\n"
    "     cost (ratio) and the latency until all 10 are called back;\n"
    "  3. read latency on a reader while a merge of R rows x 10 columns runs on\n"
    "     the writer (target p99 <= 10 ms);\n"
    "  4. how soon a commit by another process is delivered.\n"
    "Every delivery is checked against the expected result.\n"
    "\n"
    "options:\n"
    "  --writes N       commits per latency figure (default 500)\n"
    "  --merge-rows R   rows of the merged changeset (default 100000: 1M columns)\n"
    "  --quick          --writes 50 --merge-rows 5000 (a smoke run)\n";

int main(int argc, char **argv)
{
    bench_name = "bench_live";
    if (argc == 3 && strcmp(argv[1], "--child-writer") == 0)
        return child_writer(argv[2]);
    cfg c = {.writes = 500, .merge_rows = 100000};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (strcmp(argv[i], "--writes") == 0) {
            c.writes = (int)bench_count("--writes", i + 1 < argc ? argv[++i] : NULL, 1000000);
        } else if (strcmp(argv[i], "--merge-rows") == 0) {
            c.merge_rows =
                (int)bench_count("--merge-rows", i + 1 < argc ? argv[++i] : NULL, 10000000);
        } else if (strcmp(argv[i], "--quick") == 0) {
            c.writes = 50;
            c.merge_rows = 5000;
        } else {
            fprintf(stderr, "bench_live: unknown argument '%s'; try --help\n", argv[i]);
            return 2;
        }
    }
    c.schema = bench_schema(SCHEMA);
    bench_tmpdir(c.dir, sizeof c.dir, "cstack-bench-live");
    printf("bench_live: file databases in %s\n", c.dir);
    bench_one_watch(&c);
    bench_many_watches(&c);
    bench_merge_reads(&c);
    bench_cross_process(&c, "/proc/self/exe");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_live: could not remove %s\n", c.dir);
    cstack_schema_free(c.schema);
    return 0;
}
