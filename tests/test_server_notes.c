/* test_server_notes.c -- a pull records what it sent (_cstack_srv_sent)
 * without waiting for the write lock: while a push holds the lock, a pull
 * that sends rows is answered at once, and what it recorded still decides
 * later pulls (no resend, deletions and drops reach the device); the notes
 * held in memory are bounded (past the bound a pull waits and writes them)
 * and written once the lock is free, or when the store closes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <unistd.h>

#include "server/store_int.h"
#include "server_support.h"

/* Docs are readable by the members of their team: every pull re-examines
 * every doc, so what the server recorded decides what is sent again. */
static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Team {\n"
                            "  id      String   @id\n"
                            "  members Member[]\n"
                            "  docs    Doc[]\n"
                            "  @@allow('all', true)\n"
                            "}\n"
                            "model Member {\n"
                            "  id     String @id\n"
                            "  teamId String\n"
                            "  team   Team   @relation(fields: [teamId], references: [id])\n"
                            "  userId String\n"
                            "  @@allow('all', true)\n"
                            "}\n"
                            "model Doc {\n"
                            "  id     String @id\n"
                            "  teamId String\n"
                            "  team   Team   @relation(fields: [teamId], references: [id])\n"
                            "  title  String\n"
                            "  @@allow('read', team.members?[userId == auth().id])\n"
                            "  @@allow('create,update,delete', true)\n"
                            "}\n";

/* How long another program holds the database's write lock. */
#define HOLD_MS 2000

TestSuite(notes, .fini = fini, .timeout = 120);

static void create(dev *d, const char *model, cstack_field_value *f, size_t n)
{
    cstack_data data = {f, n};
    cr_assert_eq(cstack_create(d->db, model, &data, NULL), 0, "create %s: %s", model,
                 cstack_errmsg(d->db));
}

static void team(dev *d, const char *id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}};
    create(d, "Team", f, 1);
}

static void member(dev *d, const char *id, const char *team_id, const char *user)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"teamId", cstack_v_text(team_id)},
                              {"userId", cstack_v_text(user)}};
    create(d, "Member", f, 3);
}

static void doc(dev *d, const char *id, const char *team_id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"teamId", cstack_v_text(team_id)},
                              {"title", cstack_v_text("a doc")}};
    create(d, "Doc", f, 3);
}

static void remove_row(dev *d, const char *model, const char *id)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(d->db, model, &where, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* Pulls since the device's cursor and applies; returns the rows received. */
static int64_t pull_rows(dev *d)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, d->cursor);
    const char *h[] = {d->auth, d->schema, d->site, NULL};
    res r = http("GET", path, h, NULL, 0);
    cr_assert_eq(r.status, 200, "pull: %ld %s", r.status, r.body ? r.body : "");
    cstack_apply_stats stats = {0};
    cr_assert_eq(cstack_changes_apply(d->db, r.body, r.len, &stats), 0, "apply: %s",
                 cstack_errmsg(d->db));
    d->cursor = strtoll(r.cursor, NULL, 10);
    res_free(&r);
    return stats.rows;
}

typedef struct pending_push {
    dev *d;
    long status;
    atomic_bool done;
} pending_push;

static void *push_main(void *arg)
{
    pending_push *p = arg;
    char batch[128];
    res r = push_next(p->d, batch, sizeof batch);
    p->status = r.status;
    res_free(&r);
    atomic_store(&p->done, true);
    return NULL;
}

/* Another program's write transaction on the server's file, committed
 * after HOLD_MS. */
typedef struct holder {
    sqlite3 *db;
} holder;

static void *release_main(void *arg)
{
    holder *h = arg;
    usleep(HOLD_MS * 1000);
    sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

Test(
    notes,
    a_pull_that_sends_rows_is_answered_while_a_push_holds_the_write_lock_and_its_notes_decide_later_pulls)
{
    start_opts(SCHEMA, "notes.db", 0);
    dev alice1 = device(SCHEMA, "alice"), alice2 = device(SCHEMA, "alice");
    dev bob = device(SCHEMA, "bob"), carol = device(SCHEMA, "carol");
    team(&carol, "t9");
    push_all(&carol);
    team(&alice1, "t1");
    member(&alice1, "m1", "t1", "alice");
    doc(&alice1, "d1", "t1");
    doc(&alice1, "d2", "t1");
    push_all(&alice1);
    pull_rows(&alice2); /* alice2's site is bound: its next pull binds nothing */
    doc(&alice1, "d3", "t1");
    doc(&alice1, "d4", "t1");
    doc(&alice1, "d5", "t1");
    push_all(&alice1);
    pull_rows(&bob);         /* bob's next pull sends nothing */
    dev alice3 = device(SCHEMA, "alice"); /* a new site: its first pull binds it (8 rows) */
    doc(&carol, "c1", "t9"); /* nobody else may read it */

    /* Another program holds the database's write lock; carol's push takes
     * the server's write lock and waits inside its scope for it. */
    char path[700];
    snprintf(path, sizeof path, "%s/notes.db", dir);
    holder h = {NULL};
    cr_assert_eq(sqlite3_open(path, &h.db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int64_t locked = cs_mono_ms();
    pthread_t release, pusher;
    cr_assert_eq(pthread_create(&release, NULL, release_main, &h), 0);
    pending_push p = {.d = &carol};
    cr_assert_eq(pthread_create(&pusher, NULL, push_main, &p), 0);
    usleep(300 * 1000);

    int64_t t0 = cs_mono_ms();
    int64_t sent = pull_rows(&alice2);
    int64_t took_rows = cs_mono_ms() - t0;
    t0 = cs_mono_ms();
    int64_t sent_bob = pull_rows(&bob);
    int64_t took_none = cs_mono_ms() - t0;
    t0 = cs_mono_ms();
    int64_t sent_new = pull_rows(&alice3);
    int64_t took_new = cs_mono_ms() - t0;
    bool waiting = !atomic_load(&p.done);
    int64_t answered = cs_mono_ms() - locked;
    pthread_join(release, NULL);
    pthread_join(pusher, NULL);
    sqlite3_close(h.db);
    fprintf(stderr,
            "pulls while a push waits for the write lock: %lld ms (3 rows), %lld ms (none), "
            "%lld ms (a new site's first)\n",
            (long long)took_rows, (long long)took_none, (long long)took_new);
    cr_assert(waiting && answered < HOLD_MS, "the pulls were answered only after the push");
    cr_assert_eq(sent, 3, "the pull sent %lld rows, not d3-d5", (long long)sent);
    cr_assert_eq(sent_bob, 0);
    cr_assert_lt(took_rows, HOLD_MS / 4, "the pull that sent rows took %lld ms",
                 (long long)took_rows);
    cr_assert_lt(took_none, HOLD_MS / 4, "the pull that sent nothing took %lld ms",
                 (long long)took_none);
    cr_assert_lt(took_new, HOLD_MS / 4, "a new site's first pull took %lld ms", (long long)took_new);
    cr_assert_eq(sent_new, 8, "the new site's first pull sent %lld rows", (long long)sent_new);
    cr_assert_eq(p.status, 200, "the push goes through once the lock is free");
    cr_assert_eq(count(&alice2, "Doc"), 5);

    /* The new site was bound to alice once the lock was free: bob
     * presenting it is refused, and what its first pull sent is recorded. */
    dev spoof = device(SCHEMA, "bob");
    snprintf(spoof.site, sizeof spoof.site, "%s", alice3.site);
    const char *sh[] = {spoof.auth, spoof.schema, spoof.site, NULL};
    res r = http("GET", "/v1/pull?since=0", sh, NULL, 0);
    assert_err(&r, 403, "forbidden", "belongs to another user", "bob with alice3's site");
    res_free(&r);
    dev_free(&spoof);
    cr_assert_eq(pull_rows(&alice3), 0, "the new site's first rows were sent again");

    /* What that pull recorded holds: nothing is sent again, a deletion and
     * the drops of a lost membership reach alice2. */
    cr_assert_eq(pull_rows(&alice2), 0, "the pull's rows were sent again");
    remove_row(&alice1, "Doc", "d3");
    push_all(&alice1);
    pull_rows(&alice2);
    cr_assert_eq(count(&alice2, "Doc"), 4, "the deletion of d3 did not reach alice2");
    remove_row(&alice1, "Member", "m1");
    push_all(&alice1);
    pull_rows(&alice2);
    cr_assert_eq(count(&alice2, "Doc"), 0, "alice2 kept docs it may no longer read");
    pull_rows(&alice3);
    cr_assert_eq(count(&alice3, "Doc"), 0, "the new site kept docs it may no longer read");
    dev_free(&alice3);
    dev_free(&alice1);
    dev_free(&alice2);
    dev_free(&bob);
    dev_free(&carol);
}

/* ---- the store below HTTP ------------------------------------------------------- */

static const char *STORE_SCHEMA = "auth User { id String }\n"
                                  "model Note {\n"
                                  "  id      String  @id\n"
                                  "  ownerId String\n"
                                  "  title   String\n"
                                  "  @@allow('all', auth() != null)\n"
                                  "}\n";

typedef struct fixture {
    cstack *dev;
    cs_srv_store *st;
    char path[512];
    cs_auth user;
} fixture;

static const char SITE[] = "00000000000000000000000000abc001";

static void store_open(fixture *f, size_t notes_max)
{
    cs_srv_store_cfg cfg = {.notes_max = notes_max};
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.open(cstack_schema_of(f->dev), f->path, &cfg, &f->st, &err), 0,
                 "%s", err.message);
}

/* The writing device creates note `id` and pushes it to the store. */
static void push_note(fixture *f, const char *id)
{
    cstack_field_value v[] = {
        {"id", cstack_v_text(id)}, {"ownerId", cstack_v_text("u1")}, {"title", cstack_v_text("t")}};
    cstack_data data = {v, 3};
    cr_assert_eq(cstack_create(f->dev, "Note", &data, NULL), 0, "%s", cstack_errmsg(f->dev));
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(f->dev, &tx), 0);
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    char batch[96];
    snprintf(batch, sizeof batch, "%s:%" PRId64, cstack_sync_site_id(f->dev),
             cstack_upload_tx_version(tx));
    cs_srv_push req = {&f->user, cstack_sync_site_id(f->dev), batch, cs, len};
    cs_srv_push_result out;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.push(f->st, &req, &out, &err), 0, "%s", err.message);
    cstack_upload_complete(f->dev, cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
}

/* A store holding one note of the user, and a device (SITE) whose site is
 * bound and of which nothing is recorded yet. */
static void setup(fixture *f, size_t notes_max)
{
    memset(f, 0, sizeof *f);
    f->dev = t_open_mem(STORE_SCHEMA);
    char *d = t_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/server.db", d);
    free(d);
    f->user = (cs_auth){.signed_in = true, .sub = "u1"};
    store_open(f, notes_max);
    push_note(f, "n1");
    /* A checksum-only pull binds SITE and records nothing. */
    cs_srv_pull pr = {.auth = &f->user, .site = SITE, .want_checksum = true};
    cs_srv_pull_result out;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.pull(f->st, &pr, 1, &out, &err), 0, "%s", err.message);
    cs_srv_pull_result_free(&out);
}

static void teardown(fixture *f)
{
    cs_srv_store_sqlite.close(f->st);
    cstack_close(f->dev);
}

/* The records of SITE committed to the store's file (read on a connection
 * of its own, so that it never waits for the write lock). */
static int64_t records(fixture *f)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM _cstack_srv_sent WHERE site = ?", -1,
                                    &s, NULL),
                 SQLITE_OK);
    unsigned char bin[CS_SITE_LEN];
    cr_assert_eq(cs_srv_site_parse(SITE, bin), 0);
    sqlite3_bind_blob(s, 1, bin, CS_SITE_LEN, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* The device's pull from `since`; returns the rows sent, *cursor the
 * answer's cursor. */
static int64_t store_pull(fixture *f, int64_t since, int64_t *cursor)
{
    cs_srv_pull req = {.auth = &f->user, .site = SITE, .since = since, .want_changes = true};
    cs_srv_pull_result out;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.pull(f->st, &req, 1, &out, &err), 0, "%s", err.message);
    int64_t rows = out.rows;
    if (cursor)
        *cursor = out.cursor;
    cs_srv_pull_result_free(&out);
    return rows;
}

/* Holds the store's write lock, in its own thread, for `ms`. */
typedef struct lock_holder {
    fixture *f;
    int ms;
    atomic_bool held;
} lock_holder;

static void *hold_main(void *arg)
{
    lock_holder *h = arg;
    cr_assert_eq(cs_write_begin(h->f->st->db), 0);
    atomic_store(&h->held, true);
    usleep((unsigned)h->ms * 1000);
    cs_write_end(h->f->st->db, 0);
    return NULL;
}

static pthread_t hold_lock(lock_holder *h)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, hold_main, h), 0);
    while (!atomic_load(&h->held))
        usleep(1000);
    return th;
}

Test(notes, notes_left_in_memory_are_written_once_the_write_lock_is_free_and_none_is_lost_at_close)
{
    fixture f;
    setup(&f, 0);
    lock_holder h = {&f, 500, false};
    pthread_t th = hold_lock(&h);
    int64_t t0 = cs_mono_ms();
    cr_assert_eq(store_pull(&f, 0, NULL), 1);
    int64_t took = cs_mono_ms() - t0;
    cr_assert_lt(took, 250, "the pull waited %lld ms for the write lock", (long long)took);
    cr_assert_eq(records(&f), 0, "recorded while another thread held the write lock");
    pthread_join(th, NULL);
    int64_t n = 0;
    for (int i = 0; i < 200 && (n = records(&f)) == 0; i++)
        usleep(10 * 1000);
    cr_assert_eq(n, 1, "the note was not written after the lock was released");

    /* Held in memory when the store closes: none is lost. */
    push_note(&f, "n2");
    h = (lock_holder){&f, 300, false};
    th = hold_lock(&h);
    int64_t cursor = 0;
    cr_assert_eq(store_pull(&f, 0, &cursor), 2);
    pthread_join(th, NULL);
    cs_srv_store_sqlite.close(f.st);
    f.st = NULL;
    store_open(&f, 0);
    cr_assert_eq(records(&f), 2);
    cr_assert_eq(store_pull(&f, cursor, NULL), 0);
    teardown(&f);
}

Test(notes, a_pull_whose_notes_pass_the_bound_waits_for_the_write_lock_and_writes_them)
{
    fixture f;
    setup(&f, 1); /* one byte: no note fits */
    lock_holder h = {&f, 400, false};
    pthread_t th = hold_lock(&h);
    int64_t t0 = cs_mono_ms();
    cr_assert_eq(store_pull(&f, 0, NULL), 1);
    int64_t took = cs_mono_ms() - t0;
    cr_assert_geq(took, 250, "the pull did not wait (%lld ms)", (long long)took);
    cr_assert_eq(records(&f), 1, "the pull that waited did not write its note");
    pthread_join(th, NULL);
    teardown(&f);
}

/* The version of a snapshot, its first read (cs_srv_notes_enter). */
typedef struct snap {
    fixture *f;
    cs_conn *c;
} snap;

static int snap_read(void *ctx)
{
    snap *s = ctx;
    int64_t v = 0;
    return cs_export_snapshot_version(s->f->st->db, s->c, &v);
}

Test(notes, a_written_note_is_read_from_memory_only_by_pulls_whose_snapshot_may_lack_it)
{
    fixture f;
    setup(&f, 0);
    unsigned char site[CS_SITE_LEN];
    cr_assert_eq(cs_srv_site_parse(SITE, site), 0);
    cs_buf notes = CS_BUF_INIT;
    unsigned char one[] = {0, 2, 'k', '1', 1}; /* model 0, key "k1", present */
    cr_assert_eq(cs_buf_append(&notes, one, sizeof one), 0);
    cs_srv_note_set set = {site, "u1", &notes, 7, 0, false};
    int present = 0;
    int64_t at = 0;

    /* A pull whose snapshot starts before the note is written. */
    snap old = {&f, cs_read_begin(f.st->db)};
    cs_srv_notes_reader r_old;
    cr_assert_eq(cs_srv_notes_enter(f.st->notes, &r_old, snap_read, &old), 0);
    cr_assert_eq(cs_srv_notes_add(f.st->notes, &set, 1, false, NULL), 0);
    cr_assert(cs_srv_notes_get(f.st->notes, &r_old, site, "u1", 0, "k1", 2, &present, &at),
              "a held note is seen by every pull");
    cr_assert(!cs_srv_notes_get(f.st->notes, &r_old, site, "u2", 0, "k1", 2, &present, &at),
              "another user's pull saw the note");
    cr_assert_eq(cs_write_begin(f.st->db), 0);
    cr_assert_eq(cs_srv_scope_end(f.st, cs_srv_notes_drain(f.st)), 0);
    cr_assert_eq(records(&f), 1);

    /* Written: a pull that started later reads it from the table (which
     * may hold later writes), the older one still from memory. */
    snap late = {&f, cs_read_begin(f.st->db)};
    cs_srv_notes_reader r_late;
    cr_assert_eq(cs_srv_notes_enter(f.st->notes, &r_late, snap_read, &late), 0);
    cr_assert(!cs_srv_notes_get(f.st->notes, &r_late, site, "u1", 0, "k1", 2, &present, &at),
              "a pull whose snapshot holds the note read it from memory");
    cr_assert(cs_srv_notes_get(f.st->notes, &r_old, site, "u1", 0, "k1", 2, &present, &at),
              "a pull whose snapshot lacks the note lost it");
    cr_assert_eq(present, 1);
    cr_assert_eq(at, 7);
    cs_read_end(f.st->db, late.c);
    cs_srv_notes_leave(f.st->notes, &r_late);
    cs_read_end(f.st->db, old.c);
    cs_srv_notes_leave(f.st->notes, &r_old);

    /* A note held again after it was written is seen by every pull. */
    snap again = {&f, cs_read_begin(f.st->db)};
    cs_srv_notes_reader r_again;
    cr_assert_eq(cs_srv_notes_enter(f.st->notes, &r_again, snap_read, &again), 0);
    set.at = 9;
    cr_assert_eq(cs_srv_notes_add(f.st->notes, &set, 1, false, NULL), 0);
    cr_assert(cs_srv_notes_get(f.st->notes, &r_again, site, "u1", 0, "k1", 2, &present, &at));
    cr_assert_eq(at, 9);
    cs_read_end(f.st->db, again.c);
    cs_srv_notes_leave(f.st->notes, &r_again);
    cs_buf_free(&notes);
    teardown(&f);
}
