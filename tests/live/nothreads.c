/* nothreads.c -- live queries built with CSTACK_NO_THREADS, as the browser
 * (single-threaded wasm) builds them: no delivery thread, so nothing is
 * delivered until the host calls cstack_watch_pump, which then delivers the
 * first result, each change, and reports when the next poll is due.  This
 * executable compiles src/live/ once more with the define (CMakeLists.txt),
 * so that mode is compiled and run natively before any browser build. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstack.h"
#include "support.h"

#ifndef CSTACK_NO_THREADS
#error "build this test with -DCSTACK_NO_THREADS"
#endif

static const char *SCHEMA = "model Note {\n  id String @id\n  title String\n}\n";

typedef struct seen {
    int n;
    char last[256];
} seen;

static void on_response(void *ctx, const char *resp, size_t len)
{
    seen *s = ctx;
    s->n++;
    snprintf(s->last, sizeof s->last, "%.*s", (int)len, resp);
}

static void call(cstack *db, const char *req)
{
    char *resp = NULL;
    cr_assert_eq(cstack_envelope_call(db, req, strlen(req), &resp, NULL), 0);
    cr_assert_not_null(strstr(resp, "\"status\":\"ok\""), "%s", resp);
    cstack_free(resp);
}

Test(live_nothreads, deliveries_happen_only_in_pump_and_follow_each_commit)
{
    cstack *db = t_open_mem(SCHEMA);
    seen s = {0};
    const char *req = "{\"model\":\"Note\",\"kind\":\"count\"}";
    cstack_watch *w = NULL;
    cr_assert_eq(cstack_watch_envelope(db, req, strlen(req), 0, on_response, &s, &w), 0, "%s",
                 cstack_errmsg(db));
    cr_assert_eq(s.n, 0, "delivered without a pump");
    int next = -2;
    cr_assert_eq(cstack_watch_pump(db, &next), 1);
    cr_assert_str_eq(s.last, "{\"status\":\"ok\",\"data\":{\"count\":0}}");
    cr_assert(next >= 0, "the poll for other connections is due in %d ms", next);
    call(db, "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"1\",\"title\":\"a\"}}}");
    cr_assert_eq(s.n, 1, "delivered without a pump");
    cr_assert_eq(cstack_watch_pump(db, NULL), 1);
    cr_assert_str_eq(s.last, "{\"status\":\"ok\",\"data\":{\"count\":1}}");
    cr_assert_eq(cstack_watch_pump(db, NULL), 0, "nothing changed, nothing delivered");
    cstack_watch_stop(w);
    cr_assert_eq(cstack_watch_pump(db, &next), 0);
    cr_assert_eq(next, -1, "no watch, nothing due");
    cstack_close(db);
}

Test(live_nothreads, a_throttled_watch_reports_when_it_is_due)
{
    cstack *db = t_open_mem(SCHEMA);
    seen s = {0};
    const char *req = "{\"model\":\"Note\",\"kind\":\"count\"}";
    cstack_watch *w = NULL;
    cr_assert_eq(cstack_watch_envelope(db, req, strlen(req), 500, on_response, &s, &w), 0);
    cr_assert_eq(cstack_watch_pump(db, NULL), 1);
    call(db, "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"1\",\"title\":\"a\"}}}");
    int next = -1;
    cr_assert_eq(cstack_watch_pump(db, &next), 0, "ran before its throttle allowed");
    cr_assert(next > 0 && next <= 500, "due in %d ms", next);
    cstack_watch_stop(w);
    cstack_close(db);
}

static cstack *open_file(const char *path, int live_poll_ms)
{
    cstack_schema *schema = t_schema(SCHEMA);
    cstack_open_options o = {.live_poll_ms = live_poll_ms};
    cstack *db = NULL;
    int rc = cstack_open(schema, path, &o, &db);
    cstack_schema_free(schema);
    cr_assert_eq(rc, 0, "open: %s", db ? cstack_errmsg(db) : "nomem");
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    return db;
}

/* With live_poll_ms 300, another connection's commit is seen at the first
 * poll 300 ms after the previous one, not earlier, and the pump says when
 * that is. */
Test(live_nothreads, another_connections_commit_is_seen_at_the_poll_period_of_the_open_options)
{
    char *dir = t_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/poll.db", dir);
    cstack *db = open_file(path, 300);
    cstack *other = open_file(path, 0);
    seen s = {0};
    const char *req = "{\"model\":\"Note\",\"kind\":\"count\"}";
    cstack_watch *w = NULL;
    cr_assert_eq(cstack_watch_envelope(db, req, strlen(req), 0, on_response, &s, &w), 0);
    int next = -1;
    cr_assert_eq(cstack_watch_pump(db, &next), 1); /* the first result, and a poll */
    cr_assert(next > 200 && next <= 300, "the next poll is due in %d ms", next);
    call(other, "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                "{\"id\":\"1\",\"title\":\"a\"}}}");
    cr_assert_eq(cstack_watch_pump(db, NULL), 0, "polled before its period");
    cr_assert_eq(cstack_watch_pump(db, &next), 0);
    struct timespec ts = {0, ((long)next + 5) * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert_eq(cstack_watch_pump(db, NULL), 1, "the poll did not see the other commit");
    cr_assert_str_eq(s.last, "{\"status\":\"ok\",\"data\":{\"count\":1}}");
    cstack_watch_stop(w);
    cstack_close(other);
    cstack_close(db);
    db = open_file(path, 0);
    cr_assert_eq(cstack_watch_envelope(db, req, strlen(req), 0, on_response, &s, &w), 0);
    cr_assert_eq(cstack_watch_pump(db, &next), 1);
    cr_assert(next >= 0 && next <= 20, "by default the next poll is due in %d ms", next);
    cstack_watch_stop(w);
    cstack_close(db);
    free(dir);
}
