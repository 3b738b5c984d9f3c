/* test_live.c -- live queries (docs/live.md): a watch delivers its result at
 * once and again after every commit that changes it, whatever path the
 * commit took (delegate, envelope, raw SQL, a sync merge, another connection
 * or process); unchanged results are not delivered again; bursts are
 * coalesced; a watch can stop itself from its callback; relation filters
 * make the related table a dependency; a rollback triggers nothing. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstack.h"
#include "live/live_int.h"
#include "support.h"

static const char *SCHEMA = "model Account {\n"
                            "  id    String @id\n"
                            "  email String @unique\n"
                            "  notes Note[]\n"
                            "}\n"
                            "model Note {\n"
                            "  id      String @id\n"
                            "  title   String\n"
                            "  views   Int    @default(0)\n"
                            "  ownerId String\n"
                            "  owner   Account @relation(fields: [ownerId], references: [id])\n"
                            "}\n"
                            "model Tag {\n"
                            "  id String @id\n"
                            "}\n";

static cstack *db;
static char *dir;
static char path[512];

/* What a watch delivered: every response, in order. */
typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *last;
    int n;
    cstack_watch *self; /* stopped from its callback at delivery stop_at */
    int stop_at;
} collector;

static void on_response(void *ctx, const char *resp, size_t len)
{
    collector *c = ctx;
    pthread_mutex_lock(&c->mu);
    free(c->last);
    c->last = strndup(resp, len);
    c->n++;
    if (c->stop_at && c->n == c->stop_at)
        cstack_watch_stop(c->self);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void coll_init(collector *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void coll_free(collector *c)
{
    free(c->last);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* Waits up to ms for delivery n; returns whether it came. */
static bool wait_for(collector *c, int n, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->n < n && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
        ;
    bool ok = c->n >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Requires delivery n and that its response contains `want`. */
static void expect(collector *c, int n, const char *want)
{
    cr_assert(wait_for(c, n, 3000), "delivery %d did not come (got %d)", n, c->n);
    pthread_mutex_lock(&c->mu);
    cr_assert_not_null(strstr(c->last, want), "delivery %d: %s (wanted %s)", n, c->last, want);
    pthread_mutex_unlock(&c->mu);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void call(cstack *on, const char *req)
{
    char *resp = NULL;
    cr_assert_eq(cstack_envelope_call(on, req, strlen(req), &resp, NULL), 0);
    cr_assert_not_null(strstr(resp, "\"status\":\"ok\""), "%s -> %s", req, resp);
    cstack_free(resp);
}

static cstack *open_file(void)
{
    cstack_schema *s = t_schema(SCHEMA);
    cstack *h = NULL;
    int rc = cstack_open(s, path, NULL, &h);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open: %s", h ? cstack_errmsg(h) : "nomem");
    cr_assert_eq(cstack_bootstrap(h, NULL), 0, "bootstrap: %s", cstack_errmsg(h));
    return h;
}

static void setup(void)
{
    dir = t_tmpdir();
    snprintf(path, sizeof path, "%s/live.db", dir);
    db = open_file();
    call(db, "{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"a1\",\"email\":\"ada@x.io\"}}}");
}

static void teardown(void)
{
    cstack_close(db);
    db = NULL;
    free(dir);
}

TestSuite(live, .init = setup, .fini = teardown);

static const char COUNT_NOTES[] = "{\"model\":\"Note\",\"kind\":\"count\"}";

static cstack_watch *watch(const char *req, int throttle, collector *c)
{
    cstack_watch *w = NULL;
    int rc = cstack_watch_envelope(db, req, strlen(req), throttle, on_response, c, &w);
    cr_assert_eq(rc, 0, "watch: %s", cstack_errmsg(db));
    return w;
}

/* Starts a watch of `req` collecting into c, and requires its first
 * delivery to contain `first`. */
static cstack_watch *watch_from(const char *req, int throttle, collector *c, const char *first)
{
    coll_init(c);
    cstack_watch *w = watch(req, throttle, c);
    expect(c, 1, first);
    return w;
}

static void unwatch(cstack_watch *w, collector *c)
{
    cstack_watch_stop(w);
    coll_free(c);
}

static void create_note(cstack *on, const char *id, const char *title)
{
    char req[256];
    snprintf(req, sizeof req,
             "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"%s\",\"title\":\"%s\",\"ownerId\":\"a1\"}}}",
             id, title);
    call(on, req);
}

Test(live, the_first_result_arrives_at_once_and_a_delegate_write_delivers_the_new_one)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "{\"status\":\"ok\",\"data\":{\"count\":0}}");
    cstack_row *row = NULL;
    int rc = cstack_create(db, "Note", DATA(FV("id", T("n1")), FV("title", T("x")),
                                          FV("ownerId", T("a1"))),
                           &row);
    cr_assert_eq(rc, 0, "%s", cstack_errmsg(db));
    cstack_row_free(row);
    expect(&c, 2, "\"count\":1");
    unwatch(w, &c);
}

Test(live, an_envelope_write_delivers_the_new_result)
{
    collector c;
    cstack_watch *w = watch_from("{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":"
                                 "{\"select\":[\"title\"]}}",
                                 0, &c, "\"data\":[]");
    create_note(db, "n1", "hello");
    expect(&c, 2, "[{\"title\":\"hello\"}]");
    unwatch(w, &c);
}

static int raw_insert(sqlite3 *conn, void *ctx)
{
    (void)ctx;
    return sqlite3_exec(conn,
                        "INSERT INTO \"Note\"(id, title, views, ownerId) VALUES ('r1','raw',0,'a1')",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : CSTACK_ESQLITE;
}

Test(live, raw_sql_through_the_escape_hatch_delivers_the_new_result)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    cr_assert_eq(cstack_with_sqlite(db, raw_insert, NULL), 0, "%s", cstack_errmsg(db));
    expect(&c, 2, "\"count\":1");
    unwatch(w, &c);
}

Test(live, a_merge_applied_by_sync_delivers_the_new_result)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    cstack *other = t_open_mem(SCHEMA);
    call(other, "{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":"
                "{\"id\":\"a2\",\"email\":\"bob@x.io\"}}}");
    call(other, "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                "{\"id\":\"m1\",\"title\":\"merged\",\"ownerId\":\"a2\"}}}");
    void *cs = NULL;
    size_t len = 0;
    cr_assert_eq(cstack_changes_export(other, 0, &cs, &len, NULL), 0, "%s", cstack_errmsg(other));
    cr_assert_eq(cstack_changes_apply(db, cs, len, NULL), 0, "%s", cstack_errmsg(db));
    expect(&c, 2, "\"count\":1");
    cstack_free(cs);
    cstack_close(other);
    unwatch(w, &c);
}

Test(live, a_commit_by_another_connection_on_the_same_file_delivers_the_new_result)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    cstack *other = open_file();
    create_note(other, "o1", "other");
    expect(&c, 2, "\"count\":1");
    cstack_close(other);
    unwatch(w, &c);
}

Test(live, a_commit_by_another_process_delivers_the_new_result)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    char schema_path[600], cmd[2048];
    t_write_file(schema_path, sizeof schema_path, dir, "live.cstack", SCHEMA);
    snprintf(cmd, sizeof cmd,
             "echo '{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"p1\",\"title\":\"proc\",\"ownerId\":\"a1\"}}}' | "
             "'%s' call --schema '%s' --db '%s'",
             CSTACK_CLI, schema_path, path);
    char *out = NULL;
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out ? out : "");
    free(out);
    expect(&c, 2, "\"count\":1");
    unwatch(w, &c);
}

Test(live, an_unchanged_result_is_re_run_but_not_delivered_again)
{
    collector c;
    cstack_watch *w = watch_from("{\"model\":\"Note\",\"kind\":\"count\",\"payload\":"
                                 "{\"where\":{\"title\":\"wanted\"}}}",
                                 0, &c, "\"count\":0");
    uint64_t runs = cs_live_runs(db);
    create_note(db, "n1", "other");
    for (int i = 0; i < 300 && cs_live_runs(db) == runs; i++)
        sleep_ms(10);
    cr_assert_gt(cs_live_runs(db), runs, "the watch was not re-run");
    sleep_ms(50);
    cr_assert_eq(c.n, 1, "an unchanged result was delivered again");
    create_note(db, "n2", "wanted");
    expect(&c, 2, "\"count\":1");
    unwatch(w, &c);
}

Test(live, a_burst_is_coalesced_and_the_last_delivery_is_the_final_result)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 200, &c, "\"count\":0");
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", i);
        create_note(db, id, "burst");
    }
    expect(&c, 2, "\"count\""); /* the leading edge, or the whole burst */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&c.mu);
        bool done = strstr(c.last, "\"count\":40") != NULL;
        pthread_mutex_unlock(&c.mu);
        if (done)
            break;
        sleep_ms(20);
    }
    sleep_ms(300); /* nothing more is due */
    pthread_mutex_lock(&c.mu);
    cr_assert_not_null(strstr(c.last, "\"count\":40"), "last: %s", c.last);
    cr_assert_leq(c.n, 4, "40 commits in a 200 ms throttle made %d deliveries", c.n);
    pthread_mutex_unlock(&c.mu);
    unwatch(w, &c);
}

Test(live, a_watch_stopped_inside_its_callback_is_never_called_again)
{
    collector c;
    coll_init(&c);
    c.stop_at = 2;
    pthread_mutex_lock(&c.mu); /* c.self is set before any delivery reads it */
    c.self = watch(COUNT_NOTES, 0, &c);
    pthread_mutex_unlock(&c.mu);
    expect(&c, 1, "\"count\":0");
    create_note(db, "n1", "one");
    expect(&c, 2, "\"count\":1");
    create_note(db, "n2", "two");
    sleep_ms(100);
    cstack_watch_pump(db, NULL);
    cr_assert_eq(c.n, 2, "a stopped watch was called again");
    coll_free(&c);
}

Test(live, a_relation_filter_fires_when_only_the_related_table_changes)
{
    create_note(db, "n1", "mine");
    collector c;
    cstack_watch *w = watch_from("{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":"
                                 "{\"owner\":{\"is\":{\"email\":\"new@x.io\"}}}}}",
                                 0, &c, "\"count\":0");
    call(db, "{\"model\":\"Account\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":\"a1\"},"
             "\"data\":{\"email\":\"new@x.io\"}}}");
    expect(&c, 2, "\"count\":1");
    unwatch(w, &c);
}

Test(live, a_write_to_a_table_the_query_does_not_read_re_runs_nothing)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    uint64_t runs = cs_live_runs(db);
    call(db, "{\"model\":\"Tag\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":\"t\"}}}");
    sleep_ms(100);
    cr_assert_eq(cs_live_runs(db), runs, "a write to Tag re-ran a watch of Note");
    unwatch(w, &c);
}

Test(live, a_rolled_back_transaction_triggers_nothing)
{
    collector c;
    cstack_watch *w = watch_from(COUNT_NOTES, 0, &c, "\"count\":0");
    uint64_t runs = cs_live_runs(db);
    cr_assert_eq(cstack_begin(db), 0);
    create_note(db, "n1", "gone");
    cr_assert_eq(cstack_rollback(db), 0);
    sleep_ms(100);
    cr_assert_eq(cs_live_runs(db), runs, "a rollback re-ran the watch");
    cr_assert_eq(c.n, 1);
    unwatch(w, &c);
}

Test(live, a_write_request_or_a_bad_query_is_refused_and_watches_nothing)
{
    collector c;
    coll_init(&c);
    cstack_watch *w = (cstack_watch *)&c;
    const char *create = "{\"model\":\"Tag\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":\"t\"}}}";
    cr_assert_eq(cstack_watch_envelope(db, create, strlen(create), 0, on_response, &c, &w),
                 CSTACK_EINVAL);
    cr_assert_null(w);
    cr_assert_not_null(strstr(cstack_errmsg(db), "read request"), "%s", cstack_errmsg(db));
    const char *bad = "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"wehre\":{}}}";
    cr_assert_eq(cstack_watch_envelope(db, bad, strlen(bad), 0, on_response, &c, &w),
                 CSTACK_EINVAL);
    cr_assert_not_null(strstr(cstack_errmsg(db), "wehre"), "%s", cstack_errmsg(db));
    sleep_ms(20);
    cr_assert_eq(c.n, 0);
    cstack_watch_stop(NULL);
    coll_free(&c);
}

/* group_by (docs/envelope.md), the read kind added for watches. */
static char *call_resp(const char *req)
{
    char *resp = NULL;
    cr_assert_eq(cstack_envelope_call(db, req, strlen(req), &resp, NULL), 0);
    return resp;
}

Test(live, group_by_groups_aggregates_and_orders_and_refuses_an_order_outside_by)
{
    call(db, "{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"a2\",\"email\":\"bob@x.io\"}}}");
    call(db, "{\"model\":\"Note\",\"kind\":\"create_many\",\"payload\":{\"data\":["
             "{\"id\":\"1\",\"title\":\"x\",\"views\":2,\"ownerId\":\"a1\"},"
             "{\"id\":\"2\",\"title\":\"y\",\"views\":5,\"ownerId\":\"a1\"},"
             "{\"id\":\"3\",\"title\":\"x\",\"views\":7,\"ownerId\":\"a2\"}]}}");
    char *r = call_resp("{\"model\":\"Note\",\"kind\":\"group_by\",\"payload\":{\"by\":[\"ownerId\"],"
                        "\"_count\":true,\"_sum\":[\"views\"],\"_max\":[\"title\"],"
                        "\"orderBy\":[{\"field\":\"ownerId\",\"direction\":\"desc\"}]}}");
    cr_assert_str_eq(r, "{\"status\":\"ok\",\"data\":["
                        "{\"ownerId\":\"a2\",\"_count\":1,\"_sum\":{\"views\":7},\"_max\":{\"title\":\"x\"}},"
                        "{\"ownerId\":\"a1\",\"_count\":2,\"_sum\":{\"views\":7},\"_max\":{\"title\":\"y\"}}]}");
    cstack_free(r);
    r = call_resp("{\"model\":\"Note\",\"kind\":\"group_by\",\"payload\":{\"by\":[\"title\",\"ownerId\"],"
                  "\"where\":{\"views\":{\"gt\":2}}}}");
    cr_assert_str_eq(r, "{\"status\":\"ok\",\"data\":[{\"title\":\"x\",\"ownerId\":\"a2\"},"
                        "{\"title\":\"y\",\"ownerId\":\"a1\"}]}");
    cstack_free(r);
    r = call_resp("{\"model\":\"Note\",\"kind\":\"group_by\",\"payload\":{\"by\":[\"title\"],"
                  "\"orderBy\":{\"field\":\"views\"}}}");
    cr_assert_not_null(strstr(r, "not one of the by fields"), "%s", r);
    cstack_free(r);
    r = call_resp("{\"model\":\"Note\",\"kind\":\"group_by\",\"payload\":{\"_count\":true}}");
    cr_assert_not_null(strstr(r, "missing 'by'"), "%s", r);
    cstack_free(r);
}

Test(live, a_group_by_watch_delivers_when_a_group_changes)
{
    collector c;
    cstack_watch *w = watch_from("{\"model\":\"Note\",\"kind\":\"group_by\",\"payload\":"
                                 "{\"by\":[\"title\"],\"_count\":true}}",
                                 0, &c, "\"data\":[]");
    create_note(db, "n1", "t");
    expect(&c, 2, "[{\"title\":\"t\",\"_count\":1}]");
    create_note(db, "n2", "t");
    expect(&c, 3, "[{\"title\":\"t\",\"_count\":2}]");
    unwatch(w, &c);
}

/* A callback that sleeps inside its second delivery, to be stopped meanwhile. */
typedef struct slow {
    volatile int entered, inside, calls;
} slow;

static void on_slow(void *ctx, const char *resp, size_t len)
{
    (void)resp;
    (void)len;
    slow *s = ctx;
    if (__atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST) < 2)
        return;
    __atomic_store_n(&s->inside, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->entered, 1, __ATOMIC_SEQ_CST);
    sleep_ms(300);
    __atomic_store_n(&s->inside, 0, __ATOMIC_SEQ_CST);
}

Test(live, a_stop_from_another_thread_waits_for_a_running_callback_and_a_slow_one_blocks_no_writer)
{
    slow s = {0};
    cstack_watch *w = NULL;
    cr_assert_eq(cstack_watch_envelope(db, COUNT_NOTES, strlen(COUNT_NOTES), 0, on_slow, &s, &w),
                 0);
    for (int i = 0; i < 300 && __atomic_load_n(&s.calls, __ATOMIC_SEQ_CST) < 1; i++)
        sleep_ms(10);
    create_note(db, "n1", "one");
    for (int i = 0; i < 300 && !__atomic_load_n(&s.entered, __ATOMIC_SEQ_CST); i++)
        sleep_ms(5);
    cr_assert(s.entered, "the second delivery did not start");
    /* The callback sleeps: a write goes through meanwhile. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    create_note(db, "n2", "two");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_assert(__atomic_load_n(&s.inside, __ATOMIC_SEQ_CST), "the callback returned too early");
    cr_assert_lt(ms, 100, "a write waited %.1f ms for a slow callback", ms);
    cstack_watch_stop(w);
    cr_assert_eq(__atomic_load_n(&s.inside, __ATOMIC_SEQ_CST), 0,
                 "cstack_watch_stop returned while the callback was still running");
    int calls = __atomic_load_n(&s.calls, __ATOMIC_SEQ_CST);
    create_note(db, "n3", "three");
    sleep_ms(100);
    cr_assert_eq(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), calls, "called after stop");
}

Test(live, a_commit_visits_only_the_watches_of_the_tables_it_changed)
{
    enum { N = 40 };
    static const char COUNT_TAGS[] = "{\"model\":\"Tag\",\"kind\":\"count\"}";
    collector tags[N], note;
    cstack_watch *tw[N];
    for (int i = 0; i < N; i++)
        tw[i] = watch_from(COUNT_TAGS, 0, &tags[i], "\"count\":0");
    cstack_watch *nw = watch_from(COUNT_NOTES, 0, &note, "\"count\":0");
    for (int i = 0; i < N; i += 2) /* the index forgets stopped watches */
        cstack_watch_stop(tw[i]);
    uint64_t visits = cs_live_visits(db);
    create_note(db, "n1", "x");
    expect(&note, 2, "\"count\":1");
    cr_assert_eq(cs_live_visits(db) - visits, 1, "a commit of Note looked at %llu watches",
                 (unsigned long long)(cs_live_visits(db) - visits));
    call(db, "{\"model\":\"Tag\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":\"t\"}}}");
    for (int i = 1; i < N; i += 2)
        expect(&tags[i], 2, "\"count\":1");
    cr_assert_eq(cs_live_visits(db) - visits, 1 + N / 2, "a commit of Tag looked at %llu watches",
                 (unsigned long long)(cs_live_visits(db) - visits - 1));
    cr_assert_eq(note.n, 2, "a commit of Tag delivered to a watch of Note");
    for (int i = 0; i < N; i++)
        unwatch(i % 2 ? tw[i] : NULL, &tags[i]);
    unwatch(nw, &note);
}

Test(live, a_poll_period_out_of_bounds_is_refused_at_open_and_its_bounds_are_taken)
{
    cstack_schema *s = t_schema(SCHEMA);
    static const int bad[] = {-1, 60001};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cstack_open_options o = {.live_poll_ms = bad[i]};
        cstack *h = NULL;
        cr_assert_eq(cstack_open(s, path, &o, &h), CSTACK_EINVAL, "live_poll_ms %d", bad[i]);
        cr_assert_not_null(strstr(cstack_errmsg(h), "live_poll_ms is"), "%s", cstack_errmsg(h));
        cstack_close(h);
    }
    static const int good[] = {1, 60000};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cstack_open_options o = {.live_poll_ms = good[i]};
        cstack *h = NULL;
        cr_assert_eq(cstack_open(s, path, &o, &h), 0, "live_poll_ms %d: %s", good[i],
                     cstack_errmsg(h));
        cstack_close(h);
    }
    cstack_schema_free(s);
}
