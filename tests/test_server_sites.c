/* test_server_sites.c -- a device's site id belongs to the first user that
 * presents it: another user presenting it on pull, stream or push is refused
 * and changes nothing, two users racing for a new site id cannot both win,
 * and what the server keeps per device is bounded per user and collected
 * when the device is gone. */
#include <criterion/criterion.h>

#include "server/pg.h"
#include "server/store_int.h"
#include "sync/changeset.h"
#include "util/hex.h"
#include "server_support.h"

static const char *SCHEMA = T_PRIVATE_NOTES_SCHEMA;

TestSuite(sites, .fini = fini);

static bool has_text(const res *r, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; r->body && i + k <= r->len; i++)
        if (memcmp(r->body + i, needle, k) == 0)
            return true;
    return false;
}

/* Bob's device with the headers of `victim`'s site. */
static void spoof_site(dev *bob, const dev *victim)
{
    snprintf(bob->site, sizeof bob->site, "%s", victim->site);
}

static res pull_raw(dev *d, int64_t since)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, since);
    const char *h[] = {d->auth, d->schema, d->site, NULL};
    return http("GET", path, h, NULL, 0);
}

static void delete_note(dev *d, const char *id)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(d->db, "Note", &where, NULL), 0, "%s", cstack_errmsg(d->db));
}

static void assert_foreign(const res *r, const char *what)
{
    assert_err(r, 403, "forbidden", "belongs to another user", what);
    cr_assert(!has_text(r, "alice"), "%s: the refusal names the owner: %s", what, r->body);
    cr_assert(!has_text(r, "a1") && !has_text(r, "a2"), "%s: carries alice's keys: %s", what,
              r->body);
}

Test(sites,
     another_users_site_is_refused_on_pull_stream_and_push_and_its_device_still_gets_deletions)
{
    start_opts(SCHEMA, "spoof.db", 0);
    dev alice = device(SCHEMA, "alice");
    dev alice2 = device(SCHEMA, "alice");
    dev bob = device(SCHEMA, "bob");
    note(&alice, "a1", "alice", "one");
    note(&alice, "a2", "alice", "two");
    push_all(&alice);
    pull(&alice);
    pull(&alice2);
    delete_note(&alice2, "a1");
    push_all(&alice2);
    int64_t version = server_version();

    /* Bob learns alice's site id (it is in the changesets of her public
     * rows) and presents it: from 0 (drops and tombstones for her rows),
     * then from the current version (which would confirm them and forget
     * what her device holds). */
    spoof_site(&bob, &alice);
    res r = pull_raw(&bob, 0);
    assert_foreign(&r, "pull from 0");
    res_free(&r);
    r = pull_raw(&bob, version);
    assert_foreign(&r, "pull from the version");
    res_free(&r);

    const char *h[] = {bob.auth, bob.schema, bob.site, NULL};
    r = http("GET", "/v1/stream?since=0", h, NULL, 0);
    assert_foreign(&r, "stream");
    res_free(&r);

    note(&bob, "b1", "bob", "mine");
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(bob.db, &tx), 0);
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    char bh[160];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:%" PRId64, cstack_sync_site_id(alice.db),
             cstack_upload_tx_version(tx));
    const char *ph[] = {bob.auth, bob.schema, bob.site, bh, NULL};
    r = http("POST", "/v1/push", ph, cs, len);
    cstack_upload_tx_free(tx);
    assert_foreign(&r, "push");
    res_free(&r);
    cr_assert_eq(server_version(), version, "a refused push changed the server");

    /* Alice's device still receives the deletion it has not seen. */
    cr_assert_eq(count(&alice, "Note"), 2);
    uint64_t sum = pull(&alice);
    cr_assert_eq(count(&alice, "Note"), 1, "alice's device missed the deletion of a1");
    cr_assert_eq(sum, checksum(&alice));

    /* Bob with his own site is served as usual, and sees none of alice's keys. */
    dev bob2 = device(SCHEMA, "bob");
    r = pull_raw(&bob2, 0);
    cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "");
    cr_assert(!has_text(&r, "a1") && !has_text(&r, "a2"), "bob's pull carries alice's keys");
    res_free(&r);

    dev_free(&alice);
    dev_free(&alice2);
    dev_free(&bob);
    dev_free(&bob2);
    stop();
}

typedef struct racer {
    dev *d;
    pthread_barrier_t *go;
    long status;
} racer;

static void *race(void *arg)
{
    racer *x = arg;
    pthread_barrier_wait(x->go);
    res r = pull_raw(x->d, 0);
    x->status = r.status;
    res_free(&r);
    return NULL;
}

Test(sites, two_users_racing_to_claim_one_new_site_cannot_both_win)
{
    start_opts(SCHEMA, "race.db", 0);
    for (int round = 0; round < 20; round++) {
        dev carol = device(SCHEMA, "carol");
        dev dave = device(SCHEMA, "dave");
        spoof_site(&dave, &carol);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer a = {&carol, &go, 0}, b = {&dave, &go, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race, &a);
        pthread_create(&tb, NULL, race, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        cr_assert((a.status == 200 && b.status == 403) || (a.status == 403 && b.status == 200),
                  "round %d: carol %ld, dave %ld", round, a.status, b.status);
        /* The winner keeps it. */
        res r = pull_raw(a.status == 200 ? &carol : &dave, 0);
        cr_assert_eq(r.status, 200);
        res_free(&r);
        r = pull_raw(a.status == 200 ? &dave : &carol, 0);
        cr_assert_eq(r.status, 403);
        res_free(&r);
        dev_free(&carol);
        dev_free(&dave);
    }
    stop();
}

/* ---- the store's bounds, below HTTP ------------------------------------------ */

/* Any signed-in user reads every note: the store below needs no auth()
 * values besides the user's sub. */
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

static void store_open(fixture *f, unsigned max_sites, int64_t ttl_ms)
{
    cs_srv_store_cfg cfg = {.max_sites_per_user = max_sites, .site_ttl_ms = ttl_ms};
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.open(cstack_schema_of(f->dev), f->path, &cfg, &f->st, &err), 0,
                 "%s", err.message);
}

static void setup(fixture *f, unsigned max_sites, int64_t ttl_ms)
{
    memset(f, 0, sizeof *f);
    f->dev = t_open_mem(STORE_SCHEMA);
    char *d = t_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/server.db", d);
    free(d);
    f->user = (cs_auth){.signed_in = true, .sub = "u1"};
    store_open(f, max_sites, ttl_ms);
    cstack_field_value v[] = {{"id", cstack_v_text("n1")},
                              {"ownerId", cstack_v_text("u1")},
                              {"title", cstack_v_text("t")}};
    cstack_data data = {v, 3};
    cr_assert_eq(cstack_create(f->dev, "Note", &data, NULL), 0, "%s", cstack_errmsg(f->dev));
    void *cs = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    cr_assert_eq(cstack_changes_export(f->dev, 0, &cs, &len, &cursor), 0);
    char batch[64];
    snprintf(batch, sizeof batch, "%s:1", cstack_sync_site_id(f->dev));
    cs_srv_push req = {&f->user, cstack_sync_site_id(f->dev), batch, cs, len};
    cs_srv_push_result out;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.push(f->st, &req, &out, &err), 0, "%s", err.message);
    cstack_free(cs);
}

static void teardown(fixture *f)
{
    cs_srv_store_sqlite.close(f->st);
    cstack_close(f->dev);
}

static const char *site_n(int i)
{
    static char buf[8][33];
    char *s = buf[i % 8];
    snprintf(s, 33, "%032x", 0xabc000 + i);
    return s;
}

/* Pulls from 0 with site `i`; returns whether the site was refused. */
static bool store_pull(fixture *f, const cs_auth *who, int i)
{
    cs_srv_pull req = {.auth = who, .site = site_n(i), .want_changes = true};
    cs_srv_pull_result out;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.pull(f->st, &req, 1, &out, &err), 0, "%s", err.message);
    bool forbidden = out.forbidden;
    if (forbidden)
        cr_assert(out.body == NULL && out.rows == 0, "a refused pull carries rows");
    else
        cr_assert_eq(out.rows, 1);
    cs_srv_pull_result_free(&out);
    return forbidden;
}

/* Rows of a server table, with an optional site. */
static int64_t rows_of(fixture *f, const char *table, int site)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s%s", table,
             site >= 0 ? " WHERE site = ?" : "");
    cr_assert_eq(cs_write_lock(f->st->db), 0);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(cs_write_conn(f->st->db)->db, sql, -1, &s, NULL), SQLITE_OK);
    unsigned char bin[16];
    if (site >= 0) {
        cr_assert_eq(cs_srv_site_parse(site_n(site), bin), 0);
        sqlite3_bind_blob(s, 1, bin, 16, SQLITE_STATIC);
    }
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    cs_write_unlock(f->st->db);
    return n;
}

Test(sites, a_users_new_site_past_the_bound_evicts_the_least_recently_seen_and_its_records)
{
    fixture f;
    setup(&f, 3, 0);
    struct timespec ms = {0, 3 * 1000 * 1000};
    for (int i = 0; i < 3; i++) {
        nanosleep(&ms, NULL); /* each site seen at its own millisecond */
        cr_assert(!store_pull(&f, &f.user, i));
    }
    /* The device's push bound a site first: the third pull evicted it. */
    cr_assert_eq(rows_of(&f, "_cstack_srv_sites", -1), 3);
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 0), 1);
    nanosleep(&ms, NULL);
    cr_assert(!store_pull(&f, &f.user, 3));
    cr_assert_eq(rows_of(&f, "_cstack_srv_sites", -1), 3, "the bound of 3 sites was not kept");
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 0), 0, "the evicted site's records stayed");
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 3), 1);
    /* Another user's sites do not count against u1's bound. */
    cs_auth other = {.signed_in = true, .sub = "u2"};
    cr_assert(store_pull(&f, &other, 3), "u2 took u1's site");
    teardown(&f);
}

Test(sites, the_records_of_sites_not_seen_for_the_ttl_are_collected)
{
    fixture f;
    setup(&f, 64, 300);
    cr_assert(!store_pull(&f, &f.user, 0));
    cr_assert(!store_pull(&f, &f.user, 1));
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 0), 1);
    struct timespec nap = {0, 400 * 1000 * 1000};
    nanosleep(&nap, NULL);
    /* Lazily: binding a new site collects dead ones. */
    cr_assert(!store_pull(&f, &f.user, 2));
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 0), 0, "a dead site's records stayed");
    cr_assert_eq(rows_of(&f, "_cstack_srv_sites", 0), 0);
    cr_assert_eq(rows_of(&f, "_cstack_srv_sites", 2), 1);
    /* At open: every dead site goes. */
    cs_srv_store_sqlite.close(f.st);
    nanosleep(&nap, NULL);
    store_open(&f, 64, 300);
    cr_assert_eq(rows_of(&f, "_cstack_srv_sites", -1), 0);
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", -1), 0);
    /* A forgotten site is free again. */
    cs_auth other = {.signed_in = true, .sub = "u2"};
    cr_assert(!store_pull(&f, &other, 2));
    teardown(&f);
}

Test(sites, in_a_pull_call_of_several_devices_only_the_foreign_one_is_refused)
{
    fixture f;
    setup(&f, 64, 0);
    cs_auth other = {.signed_in = true, .sub = "u2"};
    cr_assert(!store_pull(&f, &f.user, 0));
    /* As a stream round asks: u1's device 1, u2 with u1's site 0, u2's own. */
#define PULL(who, s)                                                                              \
    {.auth = who, .site = s, .want_changes = true, .want_checksum = true}
    cs_srv_pull reqs[3] = {PULL(&f.user, site_n(1)), PULL(&other, site_n(0)),
                           PULL(&other, site_n(2))};
#undef PULL
    cs_srv_pull_result out[3];
    cs_srv_err err;
    int64_t sent0 = rows_of(&f, "_cstack_srv_sent", 0);
    cr_assert_eq(cs_srv_store_sqlite.pull(f.st, reqs, 3, out, &err), 0, "%s", err.message);
    cr_assert(!out[0].forbidden && out[0].rows == 1);
    cr_assert(out[1].forbidden && out[1].rows == 0 && out[1].body == NULL);
    cr_assert(!out[2].forbidden && out[2].rows == 1);
    cr_assert_eq(rows_of(&f, "_cstack_srv_sent", 0), sent0, "the refused request moved records");
    for (int i = 0; i < 3; i++)
        cs_srv_pull_result_free(&out[i]);
    teardown(&f);
}

/* A copy of d's oldest pending transaction, and its X-Cstack-Batch header. */
static void *pending_changeset(dev *d, size_t *len, char *bh, size_t cap)
{
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(d->db, &tx), 0);
    cr_assert_not_null(tx);
    const void *cs = cstack_upload_tx_changeset(tx, len);
    void *copy = malloc(*len);
    cr_assert_not_null(copy);
    memcpy(copy, cs, *len);
    snprintf(bh, cap, "X-Cstack-Batch: %s:%" PRId64, cstack_sync_site_id(d->db),
             cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
    return copy;
}

static void forged_push_refused(dev *bob, const void *cs, size_t len, const char *bh,
                                const char *site, const char *what)
{
    int64_t version = server_version();
    const char *h[] = {bob->auth, bob->schema, bob->site, bh, NULL};
    res r = http("POST", "/v1/push", h, cs, len);
    assert_err(&r, 400, "bad_request", "a device pushes only its own writes", what);
    cr_assert(has_text(&r, site), "%s: the refusal does not name site %s: %s", what, site, r.body);
    res_free(&r);
    cr_assert_eq(server_version(), version, "%s: a refused push changed the server", what);
}

Test(sites, a_push_whose_changeset_stamps_writes_with_another_site_is_refused)
{
    start_opts(SCHEMA, "forge.db", 0);
    dev alice = device(SCHEMA, "alice");
    dev bob = device(SCHEMA, "bob");
    note(&alice, "a1", "alice", "one");
    push_all(&alice);
    pull(&alice);
    pull(&bob);
    const char *alice_site = cstack_sync_site_id(alice.db);
    unsigned char alice_bin[16];
    cr_assert_eq(cs_hex_decode(alice_site, 16, alice_bin), 0);

    /* Alice's own changeset, presented by bob's device under bob's site. */
    note(&alice, "a2", "alice", "two");
    note(&bob, "b1", "bob", "mine");
    size_t alen = 0, len = 0;
    char ah[160], bh[160];
    void *cs = pending_changeset(&alice, &alen, ah, sizeof ah);
    free(pending_changeset(&bob, &len, bh, sizeof bh));
    forged_push_refused(&bob, cs, alen, bh, alice_site, "another device's changeset");
    free(cs);

    /* Bob's own changeset with its site table naming alice's site: its
     * columns would be stamped as alice's writes, and echo suppression would
     * then keep them from alice's device. */
    cs = pending_changeset(&bob, &len, bh, sizeof bh);
    cs_reader rd = {cs, len, 0};
    cs_cs_header h;
    char err[256];
    cr_assert_eq(cs_cs_read_header(&rd, &h, err, sizeof err), 0, "%s", err);
    cr_assert_eq(h.nsites, 1, "bob's changeset has %zu sites", h.nsites);
    unsigned char *table = (unsigned char *)cs + (h.sites - (const unsigned char *)cs);
    memcpy(table, alice_bin, 16);
    forged_push_refused(&bob, cs, len, bh, alice_site, "site table naming alice");

    /* ... or the backend's reserved site. */
    memcpy(table, CS_PG_BACKEND_SITE, 16);
    char backend[33];
    cs_hex_encode(CS_PG_BACKEND_SITE, 16, backend);
    forged_push_refused(&bob, cs, len, bh, backend, "site table naming the backend");
    free(cs);

    /* The genuine batch is accepted. */
    push_all(&bob);
    uint64_t sum = pull(&bob);
    cr_assert_eq(sum, checksum(&bob));
    dev_free(&alice);
    dev_free(&bob);
    stop();
}
