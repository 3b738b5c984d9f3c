/* test_pg_multi.c -- several `cstack serve` processes on one PostgreSQL
 * database (docs/postgres.md, docs/server.md "Deployment"): a push through
 * one server reaches devices streaming from another, and its pulls; users
 * see only their rows and forged writes are refused through either server;
 * rows a backend inserts, updates and deletes with libpq reach devices and
 * merge with device writes by last-writer-wins; a SIGKILLed server loses no
 * acknowledged push while the other keeps serving; `cstack migrate` on a
 * PostgreSQL database.
 *
 * The servers are real `cstack serve` children (t_serve) on one fresh
 * database of the test cluster (CTest's pg fixture, t_pg_database); the
 * devices are in-memory runtimes talking HTTP through server_support.h,
 * pointed at one server or the other with `use_port`. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server_support.h"

static const char *SCHEMA = T_PRIVATE_NOTES_SCHEMA;

/* A stream event must arrive within this bound after the commit (the
 * design says milliseconds; the margin is for a loaded CI machine). */
#define DELIVERY_BOUND_MS 3000

typedef struct served {
    pid_t pid;
    int port;
} served;

static char *pg;              /* the database every server of a test shares */
static char schema_path[600];
static pid_t children[8];
static int nchildren;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void init(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    dir = t_tmpdir();
    pg = t_pg_database();
    snprintf(schema_path, sizeof schema_path, "%s/app.cstack", dir);
    FILE *f = fopen(schema_path, "w");
    cr_assert_not_null(f);
    fputs(SCHEMA, f);
    fclose(f);
    cstack_schema *s = t_schema(SCHEMA);
    snprintf(hash, sizeof hash, "%s", cstack_schema_hash(s));
    cstack_schema_free(s);
}

/* Every child is ended, also when the test failed. */
static void end_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    nchildren = 0;
    free(pg);
    pg = NULL;
    fini();
}

TestSuite(pg_multi, .init = init, .fini = end_children, .timeout = 180);

/* A `cstack serve` of schema file `path` on the shared database, its
 * output in DIR/NAME.log. */
static served serve_schema(const char *name, const char *path)
{
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    served s = {0};
    s.pid = t_serve(path, pg, SECRET, log, &s.port);
    cr_assert_lt(nchildren, 8);
    children[nchildren++] = s.pid;
    return s;
}

static served serve(const char *name)
{
    return serve_schema(name, schema_path);
}

static void kill9(served *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    for (int i = 0; i < nchildren; i++)
        if (children[i] == s->pid)
            children[i] = 0;
}

static void on(const served *s)
{
    use_port = s->port;
}

/* ---- PostgreSQL as a backend sees it ---------------------------------------- */

/* Runs `sql` on the shared database as another client would. */
static void backend(const char *sql)
{
    PGconn *c = PQconnectdb(pg);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The first column of the first row of `sql` on database `url` (malloc'd),
 * NULL when there is no row. */
static char *query_value(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *out = PQntuples(r) > 0 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    PQfinish(c);
    return out;
}

/* ---- devices ------------------------------------------------------------------ */

static void set_title(dev *d, const char *id, const char *title)
{
    cr_assert_eq(cstack_update(d->db, "Note", DATA(FV("id", T(id))), DATA(FV("title", T(title))),
                               NULL),
                 0, "%s", cstack_errmsg(d->db));
}

/* True when the device's note `id` has title `want` (NULL: no such note). */
static bool title_is(dev *d, const char *id, const char *want)
{
    char *t = t_text_of(d->db, "Note", id, "title");
    bool ok = want ? t && strcmp(t, want) == 0 : !t;
    free(t);
    return ok;
}

/* Applies the stream's changes until note `id` has title `want` (NULL:
 * gone); returns how long that took after `since` (now_ms), failing after
 * DELIVERY_BOUND_MS. */
static int64_t stream_until(sse *s, size_t *pos, dev *d, const char *id, const char *want,
                            int64_t since)
{
    while (!title_is(d, id, want)) {
        char *ev = sse_next(s, "event: changes", *pos, pos);
        cr_assert_not_null(ev, "the stream did not deliver %s = %s", id, want ? want : "(gone)");
        apply_event(d, ev);
        free(ev);
    }
    int64_t took = now_ms() - since;
    cr_assert_leq(took, DELIVERY_BOUND_MS, "%s = %s took %lld ms", id, want ? want : "(gone)",
                  (long long)took);
    return took;
}

/* A device of `sub` whose stream from server `at` is open and has sent
 * its first checkpoint. */
static dev streaming(const char *sub, const served *at, sse *s, size_t *pos)
{
    dev d = device(SCHEMA, sub);
    on(at);
    sse_open(s, &d, 0);
    *pos = 0;
    checkpoint_at(s, -1, pos);
    return d;
}

/* ---- two servers, one database ------------------------------------------------ */

Test(pg_multi, pushes_through_either_server_reach_streams_and_pulls_on_the_other)
{
    served a = serve("a"), b = serve("b");
    on(&a);
    res h = http("GET", "/healthz", NULL, NULL, 0);
    cr_assert(h.body && strstr(h.body, "\"store\":\"postgres\""), "/healthz: %s",
              h.body ? h.body : "");
    res_free(&h);
    sse s;
    size_t pos;
    dev watcher = streaming("alice", &b, &s, &pos);
    dev writer = device(SCHEMA, "alice");
    note(&writer, "n1", "alice", "through a");
    on(&a);
    int64_t t0 = now_ms();
    push_all(&writer);
    int64_t took = stream_until(&s, &pos, &watcher, "n1", "through a", t0);
    fprintf(stderr, "pg_multi: a push through server A streamed from B in %lld ms\n",
            (long long)took);
    /* And the other way round, by pull. */
    note(&writer, "n2", "alice", "through b");
    on(&b);
    push_all(&writer);
    dev reader = device(SCHEMA, "alice");
    on(&a);
    uint64_t sum = pull(&reader);
    cr_assert_eq(count(&reader, "Note"), 2);
    cr_assert(title_is(&reader, "n2", "through b"));
    cr_assert_eq(sum, checksum(&reader), "server A's checksum covers B's push");
    stream_until(&s, &pos, &watcher, "n2", "through b", now_ms());
    sse_close(&s);
    dev_free(&watcher);
    dev_free(&writer);
    dev_free(&reader);
}

Test(pg_multi, users_see_only_their_rows_and_forged_writes_are_refused_through_either_server)
{
    served a = serve("a"), b = serve("b");
    dev alice = device(SCHEMA, "alice"), bob = device(SCHEMA, "bob");
    note(&alice, "a1", "alice", "alice's");
    note(&bob, "b1", "bob", "bob's");
    on(&a);
    push_all(&alice);
    on(&b);
    push_all(&bob);
    const served *servers[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        dev fa = device(SCHEMA, "alice"), fb = device(SCHEMA, "bob");
        on(servers[i]);
        pull(&fa);
        pull(&fb);
        cr_assert_eq(count(&fa, "Note"), 1, "server %c", 'A' + i);
        cr_assert(title_is(&fa, "a1", "alice's") && title_is(&fa, "b1", NULL));
        cr_assert_eq(count(&fb, "Note"), 1, "server %c", 'A' + i);
        cr_assert(title_is(&fb, "b1", "bob's") && title_is(&fb, "a1", NULL));
        /* Alice writes a row owned by bob. */
        dev forger = device(SCHEMA, "alice");
        note(&forger, "forged", "bob", "not alice's to write");
        char batch[128];
        res r = push_next(&forger, batch, sizeof batch);
        assert_err(&r, 403, "forbidden", "Note", "a forged write");
        res_free(&r);
        dev_free(&forger);
        dev_free(&fa);
        dev_free(&fb);
    }
    dev check = device(SCHEMA, "bob");
    on(&a);
    pull(&check);
    cr_assert_eq(count(&check, "Note"), 1, "no forged row was applied");
    char *n = query_value(pg, "SELECT count(*) FROM \"Note\"");
    cr_assert_str_eq(n, "2", "PostgreSQL holds the two real notes only");
    free(n);
    dev_free(&check);
    dev_free(&alice);
    dev_free(&bob);
}

/* ---- backend writes ----------------------------------------------------------- */

Test(pg_multi, backend_inserts_updates_and_deletes_reach_devices_by_stream_and_pull)
{
    served a = serve("a"), b = serve("b");
    sse s;
    size_t pos;
    dev watcher = streaming("alice", &b, &s, &pos);
    dev puller = device(SCHEMA, "alice"), other = device(SCHEMA, "bob");
    static const struct {
        const char *sql;
        const char *title; /* NULL: the row is gone */
    } steps[] = {
        {"INSERT INTO \"Note\" (\"id\", \"ownerId\", \"title\") VALUES ('k1', 'alice', 'inserted')",
         "inserted"},
        {"UPDATE \"Note\" SET \"title\" = 'updated' WHERE \"id\" = 'k1'", "updated"},
        {"DELETE FROM \"Note\" WHERE \"id\" = 'k1'", NULL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t t0 = now_ms();
        backend(steps[i].sql);
        int64_t took = stream_until(&s, &pos, &watcher, "k1", steps[i].title, t0);
        fprintf(stderr, "pg_multi: backend step %zu streamed in %lld ms\n", i, (long long)took);
        on(&a);
        pull(&puller);
        cr_assert(title_is(&puller, "k1", steps[i].title), "pull after step %zu", i);
        pull(&other);
        cr_assert_eq(count(&other, "Note"), 0, "bob never sees alice's row");
    }
    sse_close(&s);
    dev_free(&watcher);
    dev_free(&puller);
    dev_free(&other);
}

/* Pulls through `at` until note `id` has title `want` (a backend write is
 * applied by a server shortly after its commit). */
static void pull_until(dev *d, const served *at, const char *id, const char *want)
{
    on(at);
    for (int64_t until = now_ms() + DELIVERY_BOUND_MS;;) {
        pull(d);
        if (title_is(d, id, want))
            return;
        cr_assert_lt(now_ms(), until, "%s never became '%s'", id, want);
        usleep(20000);
    }
}

Test(pg_multi, a_backend_write_and_a_device_write_to_one_row_merge_by_last_writer_wins)
{
    served a = serve("a"), b = serve("b");
    dev d = device(SCHEMA, "alice"), seer = device(SCHEMA, "alice");
    note(&d, "n1", "alice", "first");
    on(&a);
    push_all(&d);
    /* The device edits offline, then the backend writes later: the
     * backend's write is the later one and wins once the device syncs. */
    set_title(&d, "n1", "device, earlier");
    usleep(5000);
    backend("UPDATE \"Note\" SET \"title\" = 'backend, later' WHERE \"id\" = 'n1'");
    pull_until(&seer, &b, "n1", "backend, later");
    on(&a);
    push_all(&d);
    pull(&d);
    cr_assert(title_is(&d, "n1", "backend, later"), "the later backend write wins");
    /* The backend writes, then the device writes later (without having
     * seen it): the device's write wins, and PostgreSQL's row says so. */
    backend("UPDATE \"Note\" SET \"title\" = 'backend, earlier' WHERE \"id\" = 'n1'");
    pull_until(&seer, &b, "n1", "backend, earlier");
    usleep(5000);
    set_title(&d, "n1", "device, later");
    on(&b);
    push_all(&d);
    pull_until(&seer, &a, "n1", "device, later");
    pull(&d);
    cr_assert(title_is(&d, "n1", "device, later"));
    char *t = query_value(pg, "SELECT \"title\" FROM \"Note\" WHERE \"id\" = 'n1'");
    cr_assert_str_eq(t, "device, later", "the app table holds the winner");
    free(t);
    dev_free(&d);
    dev_free(&seer);
}

/* Waits until no server has backend writes left to apply, then returns
 * PostgreSQL's `title|body` of note `id` (malloc'd). */
static char *settled_row(const char *id)
{
    for (int64_t until = now_ms() + DELIVERY_BOUND_MS;;) {
        char *n = query_value(pg, "SELECT count(*) FROM _cstack_pg_backend");
        bool empty = n && strcmp(n, "0") == 0;
        free(n);
        if (empty)
            break;
        cr_assert_lt(now_ms(), until, "the backend queue was never emptied");
        usleep(2000);
    }
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT \"title\" || '|' || coalesce(\"body\", '') FROM \"Note\" WHERE \"id\" = '%s'",
             id);
    return query_value(pg, sql);
}

static void set_body(dev *d, const char *id, const char *body)
{
    cr_assert_eq(cstack_update(d->db, "Note", DATA(FV("id", T(id))), DATA(FV("body", T(body))),
                               NULL),
                 0, "%s", cstack_errmsg(d->db));
}

Test(pg_multi, a_backend_write_is_stamped_at_its_commit_even_when_no_server_runs)
{
    served a = serve("a");
    dev d = device(SCHEMA, "alice");
    note(&d, "n1", "alice", "first");
    on(&a);
    push_all(&d);
    kill9(&a);
    /* No server runs: the backend commits, and the device, offline, writes
     * the same column 50 ms later.  The device's write is the later one,
     * however late a server applies the backend's. */
    backend("UPDATE \"Note\" SET \"title\" = 'backend, earlier' WHERE \"id\" = 'n1'");
    usleep(50000);
    set_title(&d, "n1", "device, later");
    usleep(50000);
    served b = serve("b");
    on(&b);
    push_all(&d);
    pull(&d);
    cr_assert(title_is(&d, "n1", "device, later"), "the device's later write wins");
    char *t = settled_row("n1");
    cr_assert_str_eq(t, "device, later|", "the app table holds the winner");
    free(t);
    /* The converse: the device writes first, the backend 50 ms later while
     * no server runs; the backend's write wins. */
    set_title(&d, "n1", "device, earlier");
    usleep(50000);
    kill9(&b);
    backend("UPDATE \"Note\" SET \"title\" = 'backend, later' WHERE \"id\" = 'n1'");
    served c = serve("c");
    on(&c);
    push_all(&d);
    pull(&d);
    cr_assert(title_is(&d, "n1", "backend, later"), "the backend's later write wins");
    t = settled_row("n1");
    cr_assert_str_eq(t, "backend, later|");
    free(t);
    dev_free(&d);
}

typedef struct racer {
    PGconn *c;
    char sql[160];
    bool ok;
} racer;

static void *backend_race(void *arg)
{
    racer *r = arg;
    PGresult *out = PQexec(r->c, r->sql);
    r->ok = PQresultStatus(out) == PGRES_COMMAND_OK;
    PQclear(out);
    return NULL;
}

Test(pg_multi, a_device_push_to_a_row_the_backend_just_wrote_does_not_undo_the_backends_write)
{
    served a = serve("a");
    dev d = device(SCHEMA, "alice");
    note(&d, "r", "alice", "t-start");
    on(&a);
    push_all(&d);
    racer r = {.c = PQconnectdb(pg)};
    cr_assert_eq(PQstatus(r.c), CONNECTION_OK, "%s", PQerrorMessage(r.c));
    /* The backend changes the title while, at the same moment, a push
     * changes the body of the same row through the server: both writes
     * must stay, whichever reaches PostgreSQL first. */
    enum { ROUNDS = 40 };
    int lost = 0;
    for (int i = 0; i < ROUNDS; i++) {
        char body[32], want[80];
        snprintf(body, sizeof body, "b%d", i);
        set_body(&d, "r", body);
        snprintf(r.sql, sizeof r.sql, "UPDATE \"Note\" SET \"title\" = 't%d' WHERE \"id\" = 'r'",
                 i);
        pthread_t th;
        pthread_create(&th, NULL, backend_race, &r);
        char batch[128];
        res p = push_next(&d, batch, sizeof batch);
        pthread_join(th, NULL);
        cr_assert_eq(p.status, 200, "push: %ld %s", p.status, p.body ? p.body : "");
        res_free(&p);
        cr_assert(r.ok, "backend update: %s", PQerrorMessage(r.c));
        char *got = settled_row("r");
        snprintf(want, sizeof want, "t%d|b%d", i, i);
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "pg_multi: round %d: PostgreSQL holds '%s', not '%s'\n", i, got,
                    want);
            lost++;
        }
        free(got);
    }
    fprintf(stderr, "pg_multi: %d of %d racing backend writes lost\n", lost, ROUNDS);
    PQfinish(r.c);
    pull(&d);
    char want[32];
    snprintf(want, sizeof want, "t%d", ROUNDS - 1);
    cr_assert(title_is(&d, "r", want), "the device has the backend's last title");
    cr_assert_eq(lost, 0, "%d of %d backend writes were lost to a racing push", lost, ROUNDS);
    dev_free(&d);
}

/* ---- SIGKILL -------------------------------------------------------------------- */

typedef struct pusher {
    dev d;
    atomic_int acked; /* notes n0..acked-1 were acknowledged */
    atomic_bool stop;
} pusher;

/* Pushes one note per batch through the server use_port names until a
 * push is not acknowledged. */
static void *push_loop(void *arg)
{
    pusher *p = arg;
    for (int i = 0; !atomic_load(&p->stop); i++) {
        char id[32], batch[128];
        snprintf(id, sizeof id, "n%d", i);
        note(&p->d, id, "alice", id);
        res r = push_next(&p->d, batch, sizeof batch);
        long status = r.status;
        res_free(&r);
        if (status != 200)
            break;
        atomic_store(&p->acked, i + 1);
    }
    return NULL;
}

static void assert_has_notes(dev *d, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%d", i);
        cr_assert(title_is(d, id, id), "%s: acknowledged note %s is lost", what, id);
    }
}

Test(pg_multi, a_sigkilled_server_loses_no_acknowledged_push_and_the_other_keeps_serving)
{
    served a = serve("a"), b = serve("b");
    pusher p = {.d = device(SCHEMA, "alice")};
    on(&a);
    pthread_t th;
    pthread_create(&th, NULL, push_loop, &p);
    while (atomic_load(&p.acked) < 20)
        usleep(1000);
    kill9(&a); /* while pushes are in flight */
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    int acked = atomic_load(&p.acked);
    fprintf(stderr, "pg_multi: %d pushes acknowledged before the SIGKILL\n", acked);
    /* Server B serves on at once: it has every acknowledged push, and takes
     * new ones. */
    on(&b);
    dev c = device(SCHEMA, "alice");
    pull(&c);
    assert_has_notes(&c, acked, "server B");
    dev w = device(SCHEMA, "alice");
    note(&w, "after", "alice", "after the kill");
    push_all(&w);
    /* A new server on the same database has them too. */
    served a2 = serve("a2");
    dev fresh = device(SCHEMA, "alice");
    on(&a2);
    pull(&fresh);
    assert_has_notes(&fresh, acked, "the new server");
    cr_assert(title_is(&fresh, "after", "after the kill"));
    /* What was pushed but not acknowledged is pushed again: nothing is
     * lost or doubled. */
    push_all(&p.d);
    pull(&p.d);
    pull(&fresh);
    char *dp = ts_dump(p.d.db), *df = ts_dump(fresh.db);
    cr_assert_str_eq(dp, df);
    free(dp);
    free(df);
    dev_free(&p.d);
    dev_free(&c);
    dev_free(&w);
    dev_free(&fresh);
}

/* ---- cstack migrate ------------------------------------------------------------- */

/* `cstack migrate --schema FIXTURE --db URL`: its exit status, its output
 * in *out (malloc'd). */
static int migrate(const char *schema_file, const char *url, char **out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' migrate --schema '%s' --db '%s' 2>&1", CSTACK_CLI,
             schema_file, url);
    return t_run(cmd, out);
}

static bool has_column(const char *url, const char *table, const char *column)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT 1 FROM information_schema.columns WHERE table_name = '%s' AND "
             "column_name = '%s'",
             table, column);
    char *v = query_value(url, sql);
    bool found = v != NULL;
    free(v);
    return found;
}

Test(pg_multi, cstack_migrate_creates_applies_additive_changes_and_refuses_a_dropped_field)
{
    char *url = t_pg_database(), *out = NULL;
    int rc = migrate(CSTACK_TEST_DIR "/cli/migrate_base.cstack", url, &out);
    cr_assert_eq(rc, 0, "create: %s", out);
    cr_assert(has_column(url, "Item", "color"), "the typed table was created: %s", out);
    free(out);
    char added[700];
    snprintf(added, sizeof added, "%s/added.cstack", dir);
    FILE *f = fopen(added, "w");
    cr_assert_not_null(f);
    fputs("model Item {\n  id    Int     @id\n  name  String\n  color String?\n"
          "  size  Int?\n}\n",
          f);
    fclose(f);
    rc = migrate(added, url, &out);
    cr_assert_eq(rc, 0, "an added optional field is applied: %s", out);
    cr_assert(has_column(url, "Item", "size"), "%s", out);
    free(out);
    rc = migrate(CSTACK_TEST_DIR "/cli/migrate_drop_field.refused.cstack", url, &out);
    cr_assert_eq(rc, 1, "a dropped field is refused: %s", out);
    cr_assert(strstr(out, "color"), "the refusal names the field: %s", out);
    cr_assert(has_column(url, "Item", "color"), "nothing was dropped");
    free(out);
    free(url);
}

/* ---- copies whose columns differ ---------------------------------------------- */

/* v2 adds `tag` between two fields of v1: a copy migrated in place has it
 * last, a copy built from v2 has it second. */
#define V1_NOTE "  id String @id\n  ownerId String\n  title String\n"
static const char *V1 = "model Note {\n" V1_NOTE "  @@allow('all', auth() != null)\n}\n";
static const char *V2 = "model Note {\n  id String @id\n  tag String?\n  ownerId String\n"
                        "  title String\n  @@allow('all', auth() != null)\n}\n";

/* Writes schema `src` to DIR/NAME.cstack; returns the path (static). */
static const char *schema_file(const char *name, const char *src)
{
    static char path[2][700];
    static int turn;
    char *p = path[turn++ % 2];
    snprintf(p, sizeof path[0], "%s/%s.cstack", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(src, f);
    fclose(f);
    return p;
}

/* A device of schema `src` (its hash in the X-Cstack-Schema header). */
static dev device_of(const char *src, const char *sub)
{
    dev d = device(src, sub);
    cstack_schema *s = t_schema(src);
    snprintf(d.schema, sizeof d.schema, "X-Cstack-Schema: %s", cstack_schema_hash(s));
    cstack_schema_free(s);
    return d;
}

static void tagged_note(dev *d, const char *id, const char *tag, const char *title)
{
    cr_assert_eq(cstack_create(d->db, "Note",
                               DATA(FV("id", T(id)), FV("tag", T(tag)), FV("ownerId", T("alice")),
                                    FV("title", T(title))),
                               NULL),
                 0, "%s", cstack_errmsg(d->db));
}

static void assert_note(dev *d, const char *id, const char *tag, const char *title,
                        const char *what)
{
    char *got_title = t_text_of(d->db, "Note", id, "title");
    cr_assert(got_title && strcmp(got_title, title) == 0, "%s: title '%s', wanted '%s'", what,
              got_title ? got_title : "(none)", title);
    free(got_title);
    if (!tag)
        return;
    char *got_tag = t_text_of(d->db, "Note", id, "tag");
    cr_assert(got_tag && strcmp(got_tag, tag) == 0, "%s: tag '%s', wanted '%s'", what,
              got_tag ? got_tag : "(none)", tag);
    free(got_tag);
}

static void stop_served(served *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    for (int i = 0; i < nchildren; i++)
        if (children[i] == s->pid)
            children[i] = 0;
}

Test(pg_multi, servers_whose_copies_order_columns_differently_exchange_rows_by_column_name)
{
    served first = serve_schema("a-v1", schema_file("v1", V1));
    stop_served(&first);
    const char *v2 = schema_file("v2", V2);
    served a = serve_schema("a-v2", v2); /* migrates: its copy has tag last */
    served b = serve_schema("b-v2", v2); /* built from v2: tag second */
    dev d = device_of(V2, "alice"), e = device_of(V2, "alice");
    tagged_note(&d, "n1", "T", "hello");
    on(&a);
    push_all(&d);
    on(&b);
    pull(&e);
    assert_note(&e, "n1", "T", "hello", "a row written through the migrated copy, read through b");
    set_title(&e, "n1", "from b");
    push_all(&e);
    dev fresh = device_of(V2, "alice");
    on(&a);
    pull(&fresh);
    assert_note(&fresh, "n1", "T", "from b", "a row written through b, read through a");
    char *tag = query_value(pg, "SELECT \"tag\" FROM \"Note\" WHERE \"id\" = 'n1'");
    cr_assert_str_eq(tag, "T", "PostgreSQL holds the tag");
    free(tag);
    dev_free(&d);
    dev_free(&e);
    dev_free(&fresh);
}

Test(pg_multi, a_server_of_the_older_schema_keeps_serving_through_a_rolling_upgrade)
{
    const char *v1 = schema_file("v1", V1);
    served a = serve_schema("a-v1", v1), b = serve_schema("b-v1", v1);
    stop_served(&a);
    a = serve_schema("a-v2", schema_file("v2", V2)); /* migrates the database */
    dev newer = device_of(V2, "alice"), older = device_of(V1, "alice");
    tagged_note(&newer, "n1", "T", "hello");
    on(&a);
    push_all(&newer);
    on(&b);
    pull(&older);
    assert_note(&older, "n1", NULL, "hello", "a v2 row through the v1 server");
    set_title(&older, "n1", "edited on v1");
    push_all(&older);
    dev fresh = device_of(V2, "alice");
    on(&a);
    pull(&fresh);
    assert_note(&fresh, "n1", "T", "edited on v1", "a v1 edit keeps the v2-only value");
    on(&b);
    pull(&older);
    assert_note(&older, "n1", NULL, "edited on v1", "the v1 server still answers");
    dev_free(&newer);
    dev_free(&older);
    dev_free(&fresh);
}
