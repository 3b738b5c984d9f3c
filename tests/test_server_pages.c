/* test_server_pages.c -- paged pulls and streams, continuation cursors, echo
 * suppression, and a device's catch-up through pages (docs/server.md,
 * "Pages"). */
#include "server_support.h"

#include <unistd.h>

#define SCHEMA T_PRIVATE_NOTES_SCHEMA
#define PAGE_ROWS 7

static bool has_bytes(const void *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp((const char *)p + i, needle, k) == 0)
            return true;
    return false;
}

static void start_paged(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    dir = t_tmpdir();
    cstack_schema *s = t_schema(SCHEMA);
    snprintf(hash, sizeof hash, "%s", cstack_schema_hash(s));
    char db[600];
    snprintf(db, sizeof db, "%s/pages.db", dir);
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    log_file = fopen(logpath, "a");
    cstack_server_config cfg = {.schema = s,
                                .db_path = db,
                                .jwt_secret = SECRET,
                                .log = log_file,
                                .checkpoint_ms = 300,
                                .keepalive_ms = 200,
                                .drain_ms = 2000,
                                .pull_page_rows = PAGE_ROWS};
    char err[1024] = "";
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "server start: %s", err);
}

TestSuite(pages, .fini = fini, .timeout = 60);

/* Writes `n` notes of `owner` in one transaction (one server version once
 * pushed: pages must end inside it) and `m` more one per transaction. */
static void write_notes(dev *d, const char *owner, int n, int m)
{
    cr_assert_eq(cstack_begin(d->db), 0);
    for (int i = 0; i < n; i++) {
        char id[32], title[64];
        snprintf(id, sizeof id, "big-%03d", i);
        snprintf(title, sizeof title, "title of note %d", i);
        note(d, id, owner, title);
    }
    cr_assert_eq(cstack_commit(d->db), 0);
    for (int i = 0; i < m; i++) {
        char id[32];
        snprintf(id, sizeof id, "small-%03d", i);
        note(d, id, owner, "a small one");
    }
}

/* Pulls page after page from cursor 0 as a device would; returns the pages
 * and checks each page's headers. */
static int pull_pages(dev *d, uint64_t *sum, int *mid_version)
{
    char since[1200] = "0";
    int pages = 0;
    *mid_version = 0;
    for (;;) {
        char path[1300];
        snprintf(path, sizeof path, "/v1/pull?since=%s", since);
        const char *h[] = {d->auth, d->schema, d->site, NULL};
        res r = http("GET", path, h, NULL, 0);
        cr_assert_eq(r.status, 200, "pull %s: %ld %s", since, r.status, r.body ? r.body : "");
        cr_assert_eq(cstack_changes_apply(d->db, r.body, r.len, NULL), 0, "%s",
                     cstack_errmsg(d->db));
        pages++;
        cr_assert(strcmp(r.more, "1") == 0 || strcmp(r.more, "0") == 0, "X-Cstack-More '%s'",
                  r.more);
        cr_assert(r.remaining[0], "every page says what remains");
        bool more = strcmp(r.more, "1") == 0;
        if (!more) {
            cr_assert_eq(strlen(r.checksum), 16, "the last page carries the checksum");
            cr_assert_eq(strchr(r.cursor, '.'), NULL, "the last cursor is a version: %s",
                         r.cursor);
            cr_assert_eq(strcmp(r.remaining, "0"), 0);
            *sum = strtoull(r.checksum, NULL, 16);
            res_free(&r);
            return pages;
        }
        cr_assert_eq(r.checksum[0], 0, "a page that is not the last has no checksum");
        *mid_version += strchr(r.cursor, '.') != NULL;
        snprintf(since, sizeof since, "%s", r.cursor);
        res_free(&r);
        cr_assert(pages < 1000);
    }
}

Test(pages, a_pull_larger_than_a_page_arrives_in_pages_with_the_final_state_and_checksum)
{
    start_paged();
    dev a = device(SCHEMA, "alice");
    write_notes(&a, "alice", 40, 12);
    push_all(&a);
    dev b = device(SCHEMA, "alice");
    uint64_t sum = 0;
    int mid = 0;
    int pages = pull_pages(&b, &sum, &mid);
    cr_expect_geq(pages, 52 / PAGE_ROWS, "%d pages", pages);
    cr_expect_geq(mid, 1, "no page ended inside the 40-row version");
    cr_expect_eq(count(&b, "Note"), 52);
    cr_expect_eq(sum, checksum(&b), "the device's state is the server's");
    cr_expect_eq(checksum(&b), checksum(&a));
    dev_free(&a);
    dev_free(&b);
}

Test(pages, a_malformed_or_foreign_continuation_cursor_is_a_400)
{
    start_paged();
    dev a = device(SCHEMA, "alice");
    write_notes(&a, "alice", 20, 0);
    push_all(&a);
    dev b = device(SCHEMA, "alice");
    const char *h[] = {b.auth, b.schema, b.site, NULL};
    /* A real one first: it works. */
    res ok = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(ok.status, 200);
    cr_assert(strchr(ok.cursor, '.'), "a continuation cursor: %s", ok.cursor);
    char path[1300];
    snprintf(path, sizeof path, "/v1/pull?since=%s", ok.cursor);
    res next = http("GET", path, h, NULL, 0);
    cr_assert_eq(next.status, 200, "%s", next.body);
    res_free(&next);
    res_free(&ok);
    static const char *const BAD[] = {
        "1.2",                        /* too few parts */
        "0.1.0.5.",                   /* no key */
        "0.1.0.5.zz",                 /* not hex */
        "0.1.0.5.0A",                 /* uppercase */
        "0.1.0.5.030",                /* odd length */
        "0.1.0.5.03020",              /* odd length */
        "0.1.0.5.ff",                 /* no value encoding */
        "0.1.0.5.0305",               /* a text value shorter than it says */
        "0.99999.0.5.030161",         /* a version the server never reached */
        "0.1.7.5.030161",             /* no such model */
        "0.1.0.5.03016103016161",     /* two values for a one-column key */
        "0.1.0.1234567890123456789.030161", /* more than 18 digits */
        "0.-1.0.5.030161",            /* a sign */
        "0..0.5.030161",              /* an empty number */
        "0.1.0.5.030161.",            /* a trailing dot */
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        snprintf(path, sizeof path, "/v1/pull?since=%s", BAD[i]);
        res r = http("GET", path, h, NULL, 0);
        assert_err(&r, 400, "bad_request", "cursor", BAD[i]);
        res_free(&r);
    }
    /* A key far past the bound. */
    char *huge = malloc(4000);
    cr_assert_not_null(huge);
    memcpy(huge, "/v1/pull?since=0.1.0.5.", 23);
    memset(huge + 23, 'a', 3000);
    huge[3023] = 0;
    res r = http("GET", huge, h, NULL, 0);
    assert_err(&r, 400, "bad_request", "cursor", "a long key");
    res_free(&r);
    free(huge);
    dev_free(&b);
    dev_free(&a);
}

/* ---- the client ------------------------------------------------------------ */

typedef struct watch {
    atomic_int applied;
    atomic_llong rows_total;
    atomic_int preparing;
    int pause_ms; /* slows each merge so the test can stop mid-way */
} watch;

static void on_status(const cstack_sync_status *st, void *ctx)
{
    watch *w = ctx;
    if (st->event == CSTACK_SYNC_EV_APPLIED) {
        atomic_fetch_add(&w->applied, 1);
        if (w->pause_ms)
            usleep((useconds_t)w->pause_ms * 1000);
    }
    if (st->rows_total > atomic_load(&w->rows_total))
        atomic_store(&w->rows_total, st->rows_total);
    if (st->phase == CSTACK_SYNC_PHASE_PREPARING)
        atomic_store(&w->preparing, 1);
}

static char *url(void)
{
    static char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", cstack_server_port(srv));
    return u;
}

Test(pages, an_interrupted_paged_catch_up_resumes_where_it_stopped)
{
    start_paged();
    dev a = device(SCHEMA, "alice");
    write_notes(&a, "alice", 60, 10);
    push_all(&a);
    dev b = device(SCHEMA, "alice");
    cstack_sync_options o = {.url = url(), .token = b.token, .poll_ms = 50};
    watch w = {.pause_ms = 100};
    cstack_sync_session *s = NULL;
    cr_assert_eq(cstack_sync_start(b.db, &o, on_status, &w, &s), 0);
    for (int i = 0; i < 200 && atomic_load(&w.applied) < 2; i++)
        usleep(10 * 1000);
    cstack_sync_stop(s);
    int64_t part = count(&b, "Note");
    cr_assert(part > 0 && part < 70, "stopped after some pages: %lld rows",
              (long long)part);
    cr_expect_geq(atomic_load(&w.rows_total), 70, "the total comes from the server");
    cr_expect(atomic_load(&w.preparing), "a phase says the server prepares");
    /* The stored cursor is a continuation cursor: the next run resumes. */
    cstack_sync_status st;
    watch w2 = {0};
    cr_assert_eq(cstack_sync_run_once(b.db, &o, on_status, &w2, &st), 0, "%s", st.last_error);
    cr_expect_eq(count(&b, "Note"), 70);
    cr_expect_eq(st.checksum_ok, 1, "%s", st.last_error);
    cr_expect_leq(st.rows_applied, 70 - part + PAGE_ROWS,
                  "resumed: %lld rows merged again after %lld", (long long)st.rows_applied,
                  (long long)part);
    cr_expect_eq(st.rows_done, st.rows_applied);
    dev_free(&a);
    dev_free(&b);
}

/* ---- echoes ------------------------------------------------------------------ */

Test(pages, a_device_does_not_download_what_it_pushed_but_gets_what_others_changed_since)
{
    start_paged();
    dev a = device(SCHEMA, "alice");
    write_notes(&a, "alice", 30, 0);
    push_all(&a);
    const char *h[] = {a.auth, a.schema, a.site, NULL};
    res r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_expect(!has_bytes(r.body, r.len, "title of note"), "a pushed row came back");
    cr_expect_lt(r.len, 200, "the echo-free answer is a header: %zu bytes", r.len);
    cr_expect_eq(strcmp(r.more, "0"), 0, "a device's own rows take no pages");
    int64_t cursor = strtoll(r.cursor, NULL, 10);
    uint64_t sum = strtoull(r.checksum, NULL, 16);
    cr_expect_eq(sum, checksum(&a), "the device holds the server's state");
    res_free(&r);
    /* Another device of alice changes one title. */
    dev c = device(SCHEMA, "alice");
    uint64_t csum = 0;
    int mid = 0;
    pull_pages(&c, &csum, &mid);
    cstack_field_value f[] = {{"title", cstack_v_text("changed by c")}};
    cstack_data data = {f, 1};
    cstack_field_value k[] = {{"id", cstack_v_text("big-007")}};
    cstack_data key = {k, 1};
    cr_assert_eq(cstack_update(c.db, "Note", &key, &data, NULL), 0, "%s", cstack_errmsg(c.db));
    push_all(&c);
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, cursor);
    r = http("GET", path, h, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_expect(has_bytes(r.body, r.len, "changed by c"), "another device's change arrives");
    cr_expect(!has_bytes(r.body, r.len, "title of note"), "only the changed column");
    cr_assert_eq(cstack_changes_apply(a.db, r.body, r.len, NULL), 0, "%s", cstack_errmsg(a.db));
    cr_expect_eq(strtoull(r.checksum, NULL, 16), checksum(&a));
    res_free(&r);
    dev_free(&c);
    dev_free(&a);
}

/* ---- streams ------------------------------------------------------------------ */

Test(pages, a_stream_sends_a_large_catch_up_in_pages)
{
    start_paged();
    dev a = device(SCHEMA, "alice");
    write_notes(&a, "alice", 30, 5);
    push_all(&a);
    dev b = device(SCHEMA, "alice");
    sse s;
    sse_open(&s, &b, 0);
    size_t pos = 0;
    int events = 0, mid = 0;
    for (;;) {
        char *ev = sse_next(&s, "event: ", pos, &pos);
        cr_assert_not_null(ev, "the stream stopped after %d events", events);
        if (strstr(ev, "event: checkpoint")) {
            free(ev);
            break;
        }
        if (strstr(ev, "event: changes")) {
            char *id = ev_field(ev, "id");
            mid += strchr(id, '.') != NULL;
            free(id);
            apply_event(&b, ev);
            events++;
        }
        free(ev);
    }
    cr_expect_geq(events, 35 / PAGE_ROWS, "%d changes events", events);
    cr_expect_geq(mid, 1, "continuation ids");
    cr_expect_eq(count(&b, "Note"), 35);
    cr_expect_eq(checksum(&b), checksum(&a));
    sse_close(&s);
    dev_free(&a);
    dev_free(&b);
}
