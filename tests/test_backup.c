/*
 * test_backup.c -- backup and restore through a server's page storage
 * (docs/pagestore.md), against a real server on loopback (port picked by
 * the kernel, stopped at the end of each test).  What the tests prove:
 *
 *   - a backup restored as a new device is the same database (`cstack
 *     dump` prints the same rows, @@local ones included), and that device
 *     syncs on from its cursor: it downloads only what changed since;
 *   - a second backup after changing 1% of the rows sends a few percent of
 *     the pages at most, and one with nothing changed sends no page;
 *   - a user can neither list, restore nor read the pages of another user's
 *     backups, nor commit a manifest naming pages it did not store;
 *   - the per-user quota refuses a backup that does not fit (413);
 *   - a backup taken while another thread writes is a snapshot at a
 *     transaction boundary;
 *   - a database on the server page store reopens with its rows.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cstack_server.h"
#include "support.h"
#include "util/buf.h"

#define SECRET "backup-test-secret"

static const char SCHEMA[] = "datasource db {\n"
                             "  provider = \"sqlite\"\n"
                             "  url      = env(\"DATABASE_URL\")\n"
                             "}\n"
                             "auth User {\n"
                             "  id String\n"
                             "}\n"
                             "model Doc {\n"
                             "  id    Int    @id\n"
                             "  owner String\n"
                             "  title String\n"
                             "  @@allow('all', owner == auth().id)\n"
                             "}\n"
                             "model Draft {\n"
                             "  id   Int    @id\n"
                             "  text String\n"
                             "  @@local\n"
                             "}\n";

typedef struct fixture {
    char *dir;
    cstack_schema *schema;
    cstack_server *srv;
    char url[64];
    char *alice, *bob;
} fixture;

static char *token_for(const char *sub)
{
    char *tok = NULL, err[256];
    int rc =
        cstack_server_mint_token(SECRET, sub, NULL, 0, time(NULL), 3600, &tok, err, sizeof err);
    cr_assert_eq(rc, 0, "mint: %s", err);
    return tok;
}

static void start(fixture *f, uint64_t quota)
{
    f->dir = t_tmpdir();
    f->schema = t_schema(SCHEMA);
    char db[1024];
    snprintf(db, sizeof db, "%s/server.db", f->dir);
    cstack_server_config cfg = {.schema = f->schema, .db_path = db, .jwt_secret = SECRET,
                                .drain_ms = 2000, .backup_quota = quota};
    char err[512] = "";
    cr_assert_eq(cstack_server_start(&cfg, &f->srv, err, sizeof err), 0, "server: %s", err);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", cstack_server_port(f->srv));
    f->alice = token_for("alice");
    f->bob = token_for("bob");
}

static void stop(fixture *f)
{
    cstack_server_stop(f->srv);
    cstack_schema_free(f->schema);
    cstack_free(f->alice);
    cstack_free(f->bob);
    free(f->dir);
}

static cstack *device(fixture *f, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s.db", f->dir, name);
    cstack *db = NULL;
    cr_assert_eq(cstack_open(f->schema, path, NULL, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    return db;
}

static void add_docs(cstack *db, int from, int n, const char *owner)
{
    char title[128];
    cr_assert_eq(cstack_begin(db), 0);
    for (int i = from; i < from + n; i++) {
        snprintf(title, sizeof title, "document %d, a title long enough to fill some pages", i);
        cr_assert_eq(cstack_create(db, "Doc", DATA(FV("id", I(i)), FV("owner", T(owner)),
                                                   FV("title", T(title))), NULL), 0, "%s",
                     cstack_errmsg(db));
    }
    cr_assert_eq(cstack_commit(db), 0);
}

static void add_drafts(cstack *db, int n)
{
    for (int i = 1; i <= n; i++)
        cr_assert_eq(cstack_create(db, "Draft", DATA(FV("id", I(i)), FV("text", T("local only"))),
                                   NULL), 0, "%s", cstack_errmsg(db));
}

static cstack_sync_status sync_once(fixture *f, cstack *db, const char *token)
{
    cstack_sync_options o = {.url = f->url, .token = token};
    cstack_sync_status st;
    memset(&st, 0, sizeof st);
    cr_assert_eq(cstack_sync_run_once(db, &o, NULL, NULL, &st), 0, "sync: %s", cstack_errmsg(db));
    return st;
}

static cstack_backup_info backup(fixture *f, const char *path, const char *token)
{
    cstack_sync_options o = {.url = f->url, .token = token};
    cstack_backup_info info;
    int rc = cstack_backup(f->schema, path, NULL, &o, &info);
    cr_assert_eq(rc, 0, "backup: %s", info.error);
    return info;
}

/* `cstack dump` of the database at db_path, with the schema written next to
 * it. */
static char *dump_of(fixture *f, const char *db_path)
{
    char schema[1024], cmd[4096], *out = NULL;
    snprintf(schema, sizeof schema, "%s/schema.cstack", f->dir);
    FILE *fp = fopen(schema, "w");
    cr_assert(fp);
    fputs(SCHEMA, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s dump --schema %s --db %s", CSTACK_CLI, schema, db_path);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", cmd);
    return out;
}

Test(backup, a_restored_device_dumps_the_same_rows_and_syncs_on_without_a_full_download,
     .timeout = 120)
{
    fixture f;
    start(&f, 0);
    char a_path[1024], b_path[1024], c_path[1024];
    cstack *a = device(&f, "a", a_path, sizeof a_path);
    add_docs(a, 1, 300, "alice");
    add_drafts(a, 40);
    sync_once(&f, a, f.alice);
    cstack_backup_info info = backup(&f, a_path, f.alice);
    /* Every page but repeats (runs of empty pages are sent once). */
    cr_expect_geq(info.pages_sent * 10, info.pages * 9, "%u of %u pages sent", info.pages_sent,
                  info.pages);
    cr_expect_gt(info.id, 0);
    cstack_close(a); /* the device is lost */

    snprintf(b_path, sizeof b_path, "%s/restored.db", f.dir);
    cstack_sync_options o = {.url = f.url, .token = f.alice};
    cstack_backup_info got;
    cr_assert_eq(cstack_restore(f.schema, b_path, 0, &o, &got), 0, "restore: %s", got.error);
    cr_expect_eq(got.id, info.id);
    cr_expect_eq(cstack_restore(f.schema, b_path, 0, &o, &got), CSTACK_EINVAL,
                 "restore never overwrites a file");
    char *before = dump_of(&f, a_path), *after = dump_of(&f, b_path);
    cr_expect_str_eq(after, before);
    cr_expect(strstr(after, "local only") != NULL, "the @@local rows came back");
    free(before);
    free(after);

    /* Another device of alice's writes 5 docs; the restored one gets those
     * 5 and nothing else. */
    cstack *c = device(&f, "c", c_path, sizeof c_path);
    sync_once(&f, c, f.alice);
    add_docs(c, 1000, 5, "alice");
    sync_once(&f, c, f.alice);
    cstack *b = NULL;
    cr_assert_eq(cstack_open(f.schema, b_path, NULL, &b), 0);
    cr_assert_eq(cstack_bootstrap(b, NULL), 0);
    cstack_sync_status st = sync_once(&f, b, f.alice);
    fprintf(stderr, "restored device: %lld rows applied on its next sync\n",
            (long long)st.rows_applied);
    cr_expect_eq(st.rows_applied, 5, "only what changed since the backup is downloaded");
    int64_t n = 0;
    cr_assert_eq(cstack_count(b, "Doc", NULL, &n), 0);
    cr_expect_eq(n, 305);
    cstack_close(b);
    cstack_close(c);
    stop(&f);
}

/* The lost device pushed a batch after its last backup; the restored device's
 * first new batch must not take that batch's id, or the server answers it as
 * a duplicate and its rows never reach anyone. */
Test(backup, a_restored_device_never_reuses_a_batch_id_the_lost_device_pushed_after_its_backup,
     .timeout = 120)
{
    fixture f;
    start(&f, 0);
    char a_path[1024], b_path[1024], c_path[1024];
    cstack *a = device(&f, "a", a_path, sizeof a_path);
    add_docs(a, 1, 10, "alice");
    sync_once(&f, a, f.alice);
    backup(&f, a_path, f.alice);
    add_docs(a, 100, 3, "alice"); /* pushed, then the device is lost */
    sync_once(&f, a, f.alice);
    cstack_close(a);

    snprintf(b_path, sizeof b_path, "%s/restored.db", f.dir);
    cstack_sync_options o = {.url = f.url, .token = f.alice};
    cstack_backup_info got;
    cr_assert_eq(cstack_restore(f.schema, b_path, 0, &o, &got), 0, "restore: %s", got.error);
    cstack *b = NULL;
    cr_assert_eq(cstack_open(f.schema, b_path, NULL, &b), 0);
    cr_assert_eq(cstack_bootstrap(b, NULL), 0);
    add_docs(b, 200, 2, "alice");
    sync_once(&f, b, f.alice);
    int64_t n = 0;
    cr_assert_eq(cstack_count(b, "Doc", NULL, &n), 0);
    cr_expect_eq(n, 15, "the restored device holds its own rows and the lost device's last ones");

    cstack *c = device(&f, "c", c_path, sizeof c_path);
    sync_once(&f, c, f.alice);
    cr_assert_eq(cstack_count(c, "Doc", NULL, &n), 0);
    cr_expect_eq(n, 15, "a fresh device gets the restored device's new rows too");
    cstack_close(b);
    cstack_close(c);
    stop(&f);
}

Test(backup, a_second_backup_after_changing_1pct_of_rows_sends_a_few_pct_of_the_pages,
     .timeout = 120)
{
    fixture f;
    start(&f, 0);
    char path[1024];
    cstack *a = device(&f, "a", path, sizeof path);
    add_docs(a, 1, 10000, "alice");
    cstack_backup_info first = backup(&f, path, f.alice);
    cstack_backup_info same = backup(&f, path, f.alice);
    cr_expect_eq(same.pages_sent, 0, "nothing changed: no page sent");
    /* 1% of the rows: 100 recent documents get a new title. */
    cr_assert_eq(cstack_begin(a), 0);
    for (int i = 9901; i <= 10000; i++)
        cr_assert_eq(cstack_update(a, "Doc", DATA(FV("id", I(i))),
                                   DATA(FV("title", T("changed"))), NULL), 0);
    cr_assert_eq(cstack_commit(a), 0);
    cstack_backup_info second = backup(&f, path, f.alice);
    fprintf(stderr,
            "incremental backup: first %u of %u pages (%llu bytes); after 1%% of rows changed "
            "%u of %u pages (%llu bytes)\n",
            first.pages_sent, first.pages, (unsigned long long)first.bytes_sent,
            second.pages_sent, second.pages, (unsigned long long)second.bytes_sent);
    cr_expect_gt(second.pages_sent, 0);
    cr_expect_leq(second.pages_sent * 100, second.pages * 5, "more than 5%% of the pages sent");
    cr_expect_lt(second.bytes_sent * 10, first.bytes_sent);
    cstack_close(a);
    stop(&f);
}

/* ---- isolation ---- */

static long raw_post(fixture *f, const char *token, const char *path, const void *body,
                     size_t len)
{
    CURL *h = curl_easy_init();
    char url[256], auth[4096], schema[128];
    snprintf(url, sizeof url, "%s%s", f->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(schema, sizeof schema, "X-Cstack-Schema: %s", cstack_schema_hash(f->schema));
    struct curl_slist *hd = curl_slist_append(NULL, auth);
    hd = curl_slist_append(hd, schema);
    hd = curl_slist_append(hd, "X-Cstack-Site: 0123456789abcdef0123456789abcdef");
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, null);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    fclose(null);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return status;
}

Test(backup, a_user_cannot_list_restore_read_or_reuse_another_users_backups, .timeout = 60)
{
    fixture f;
    start(&f, 0);
    char path[1024], other[1024];
    cstack *a = device(&f, "a", path, sizeof path);
    add_docs(a, 1, 200, "alice");
    cstack_backup_info mine = backup(&f, path, f.alice);
    cstack_sync_options bob = {.url = f.url, .token = f.bob};
    char *json = NULL;
    cstack_backup_info info;
    cr_assert_eq(cstack_backup_list(f.schema, &bob, &json, &info), 0, "%s", info.error);
    cr_expect_str_eq(json, "{\"status\":\"ok\",\"backups\":[]}");
    cstack_free(json);
    snprintf(other, sizeof other, "%s/stolen.db", f.dir);
    cr_expect_eq(cstack_restore(f.schema, other, mine.id, &bob, &info), CSTACK_ENOTFOUND);
    cr_expect_eq(cstack_restore(f.schema, other, 0, &bob, &info), CSTACK_ENOTFOUND);
    cr_expect_neq(access(other, F_OK), 0, "no file left behind");

    /* Bob's own backup leaves alice's latest as it was. */
    char bpath[1024];
    cstack *b = device(&f, "b", bpath, sizeof bpath);
    add_docs(b, 1, 10, "bob");
    backup(&f, bpath, f.bob);
    cstack_sync_options alice = {.url = f.url, .token = f.alice};
    snprintf(other, sizeof other, "%s/alice-again.db", f.dir);
    cr_assert_eq(cstack_restore(f.schema, other, 0, &alice, &info), 0, "%s", info.error);
    cr_expect_eq(info.id, mine.id);

    /* Bob knows a page's hash (page 1 of alice's backup, say): he can
     * neither fetch it nor commit a manifest naming it. */
    unsigned char page[4096], hash[32];
    FILE *fp = fopen(other, "rb");
    cr_assert(fp && fread(page, 1, sizeof page, fp) == sizeof page);
    fclose(fp);
    cs_sha256(page, sizeof page, hash);
    cr_expect_eq(raw_post(&f, f.alice, "/v1/pages/get?size=4096", hash, 32), 200);
    cr_expect_eq(raw_post(&f, f.bob, "/v1/pages/get?size=4096", hash, 32), 404);
    cr_expect_eq(raw_post(&f, f.bob, "/v1/backups?size=4096", hash, 32), 409);
    cr_expect_eq(raw_post(&f, "not-a-token", "/v1/pages/missing", hash, 32), 401);

    cstack_close(b);
    cstack_close(a);
    stop(&f);
}

Test(backup, a_backup_past_the_users_quota_is_refused_413, .timeout = 60)
{
    fixture f;
    start(&f, 64 * 1024);
    char path[1024];
    cstack *a = device(&f, "a", path, sizeof path);
    add_docs(a, 1, 2000, "alice");
    cstack_sync_options o = {.url = f.url, .token = f.alice};
    cstack_backup_info info;
    cr_expect_eq(cstack_backup(f.schema, path, NULL, &o, &info), CSTACK_ETOOBIG);
    cr_expect(strstr(info.error, "quota") != NULL, "%s", info.error);
    cstack_close(a);
    stop(&f);
}

Test(backup, a_database_on_the_server_page_store_reopens_through_a_new_store_with_its_rows,
     .timeout = 60)
{
    fixture f;
    start(&f, 0);
    cstack_sync_options o = {.url = f.url, .token = f.alice};
    cstack_pagestore *ps;
    cr_assert_eq(cstack_pagestore_server(f.schema, &o, NULL, &ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-server", ps), 0);
    cstack_open_options opts = {.vfs = "t-server"};
    cstack *db = NULL;
    cr_assert_eq(cstack_open(f.schema, "remote.db", &opts, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    for (int i = 0; i < 5; i++)
        add_docs(db, 1 + i * 200, 200, "alice");
    cstack_close(db);
    cr_assert_eq(cstack_pagestore_unregister("t-server"), 0);

    cr_assert_eq(cstack_pagestore_server(f.schema, &o, NULL, &ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-server", ps), 0);
    cr_assert_eq(cstack_open(f.schema, "remote.db", &opts, &db), 0);
    int64_t n = 0;
    cr_assert_eq(cstack_count(db, "Doc", NULL, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1000);
    cstack_close(db);
    cr_assert_eq(cstack_pagestore_unregister("t-server"), 0);
    stop(&f);
}

typedef struct writer {
    cstack *db;
    atomic_bool stop;
    int batches;
} writer;

/* Writes transactions of 50 docs until told to stop. */
static void *write_on(void *arg)
{
    writer *w = arg;
    char title[64];
    while (!atomic_load(&w->stop)) {
        int from = 100000 + w->batches * 50;
        if (cstack_begin(w->db))
            break;
        for (int i = from; i < from + 50; i++) {
            snprintf(title, sizeof title, "written during a backup %d", i);
            cstack_create(w->db, "Doc", DATA(FV("id", I(i)), FV("owner", T("alice")),
                                             FV("title", T(title))), NULL);
        }
        if (cstack_commit(w->db))
            break;
        w->batches++;
    }
    return NULL;
}

Test(backup, a_backup_taken_while_the_app_writes_restores_at_a_transaction_boundary,
     .timeout = 120)
{
    fixture f;
    start(&f, 0);
    char path[1024], out[1024];
    cstack *a = device(&f, "a", path, sizeof path);
    add_docs(a, 1, 50, "alice");
    writer w = {.db = a};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_on, &w), 0);
    cstack_backup_info info = {0};
    for (int i = 0; i < 3; i++)
        info = backup(&f, path, f.alice);
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    fprintf(stderr, "backup while writing: %d transactions written meanwhile\n", w.batches);
    snprintf(out, sizeof out, "%s/snapshot.db", f.dir);
    cstack_sync_options o = {.url = f.url, .token = f.alice};
    cstack_backup_info got;
    cr_assert_eq(cstack_restore(f.schema, out, info.id, &o, &got), 0, "%s", got.error);
    cstack *r = NULL;
    cr_assert_eq(cstack_open(f.schema, out, NULL, &r), 0);
    int64_t n = 0;
    cr_assert_eq(cstack_count(r, "Doc", NULL, &n), 0, "%s", cstack_errmsg(r));
    cr_expect_eq(n % 50, 0, "%lld docs: a transaction is there in part", (long long)n);
    cr_expect_geq(n, 50);
    cstack_close(r);
    cstack_close(a);
    stop(&f);
}

Test(backup, the_cli_backs_up_lists_and_restores_and_prints_pages_and_bytes_sent, .timeout = 120)
{
    fixture f;
    start(&f, 0);
    char path[1024], schema[1024], cmd[8192], *out = NULL;
    cstack *a = device(&f, "a", path, sizeof path);
    add_docs(a, 1, 500, "alice");
    cstack_close(a);
    free(dump_of(&f, path)); /* writes the schema file */
    snprintf(schema, sizeof schema, "%s/schema.cstack", f.dir);
    snprintf(cmd, sizeof cmd, "CSTACK_TOKEN='%s' %s backup --schema %s --db %s --server %s",
             f.alice, CSTACK_CLI, schema, path, f.url);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    fprintf(stderr, "cstack backup: %s", out);
    cr_expect(strstr(out, "pages sent") && strstr(out, "bytes sent"), "%s", out);
    free(out);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    cr_expect(strstr(out, " 0 pages sent") != NULL, "nothing changed: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s backup --schema %s --server %s --token '%s' --list", CSTACK_CLI,
             schema, f.url, f.alice);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    cr_expect(strstr(out, "\"id\":2") && strstr(out, "\"id\":1"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s restore --schema %s --db %s/cli.db --server %s --token '%s' "
                              "--at 1", CSTACK_CLI, schema, f.dir, f.url, f.alice);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    cr_expect(strstr(out, "restored backup 1") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s restore --schema %s --db %s/cli.db --server %s --token '%s' "
                              "2>&1", CSTACK_CLI, schema, f.dir, f.url, f.alice);
    cr_expect_eq(t_run(cmd, &out), 1, "restoring over a file fails: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/cli.db", f.dir);
    char *before = dump_of(&f, path), *after = dump_of(&f, cmd);
    cr_expect_str_eq(after, before);
    free(before);
    free(after);
    stop(&f);
}
