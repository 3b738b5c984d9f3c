#define _GNU_SOURCE /* memmem */
/* Rolling schema upgrades through one sync server (docs/sync.md, "Rolling
 * upgrades"): devices on v1 and v2 of a schema sync through a v2 server,
 * a v1 device upgrades to v2, a v3 device waits for the server. */
#include <sqlite3.h>

#include "upgrade_support.h"

TestSuite(upgrade, .fini = fini, .timeout = 60);

Test(upgrade, v1_and_v2_devices_sync_through_a_v2_server_and_v1_edits_keep_v2_only_values)
{
    serve(V1);
    udev a = udev_open(V1, "a", "alice");
    put(&a, "Note", "n1",
        (cstack_field_value[]){{"id", cstack_v_text("n1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"title", cstack_v_text("first")}},
        3);
    synced(&a, "v1 device on the v1 server");
    stop();
    serve(V2);
    udev b = udev_open(V2, "b", "alice");
    synced(&b, "v2 device");
    assert_row(&b, "Note", "n1",
               "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"first\",\"status\":\"OPEN\","
               "\"body\":null,\"rank\":3}");
    /* v2-only values: a body, a rank, an enum member v1 does not know, a
     * row of a model v1 does not have. */
    put(&b, "Note", "n1",
        (cstack_field_value[]){{"body", cstack_v_text("v2 text")},
                               {"rank", cstack_v_int(7)},
                               {"status", cstack_v_text("ARCHIVED")}},
        3);
    put(&b, "Tag", "t1",
        (cstack_field_value[]){{"id", cstack_v_text("t1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"label", cstack_v_text("red")}},
        3);
    synced(&b, "v2 device pushing");
    /* The v1 device keeps syncing: its projection (the unknown member is
     * the field's default) and no divergence. */
    synced(&a, "v1 device on the v2 server");
    cr_assert(a.st.schema_behind, "the status says the server runs a newer schema");
    cr_assert_str_eq(a.st.schema_server, hash);
    assert_row(&a, "Note", "n1",
               "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"first\",\"status\":\"OPEN\"}");
    /* Its edits (an update and a new row) merge without erasing v2 values. */
    put(&a, "Note", "n1", (cstack_field_value[]){{"title", cstack_v_text("renamed by v1")}}, 1);
    put(&a, "Note", "n2",
        (cstack_field_value[]){{"id", cstack_v_text("n2")},
                               {"ownerId", cstack_v_text("alice")},
                               {"title", cstack_v_text("made on v1")}},
        3);
    synced(&a, "v1 device pushing");
    synced(&b, "v2 device pulling");
    assert_row(&b, "Note", "n1",
               "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"renamed by v1\","
               "\"status\":\"ARCHIVED\",\"body\":\"v2 text\",\"rank\":7}");
    assert_row(&b, "Note", "n2",
               "{\"id\":\"n2\",\"ownerId\":\"alice\",\"title\":\"made on v1\",\"status\":\"OPEN\","
               "\"body\":null,\"rank\":3}");
    cr_assert(!b.st.schema_behind);
    synced(&a, "v1 device, again");
    udev_free(&a);
    udev_free(&b);
}

Test(upgrade, a_v1_device_that_upgrades_ends_equal_to_a_fresh_v2_device_and_keeps_its_queue)
{
    serve(V1);
    udev a = udev_open(V1, "a", "alice");
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%d", i);
        put(&a, "Note", id,
            (cstack_field_value[]){{"id", cstack_v_text(id)},
                                   {"ownerId", cstack_v_text("alice")},
                                   {"title", cstack_v_text("t")}},
            3);
    }
    synced(&a, "v1 device");
    stop();
    serve(V2);
    udev b = udev_open(V2, "b", "alice");
    synced(&b, "v2 device");
    put(&b, "Note", "n1",
        (cstack_field_value[]){{"body", cstack_v_text("only v2 knows")},
                               {"status", cstack_v_text("ARCHIVED")}},
        2);
    put(&b, "Tag", "t1",
        (cstack_field_value[]){{"id", cstack_v_text("t1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"label", cstack_v_text("red")}},
        3);
    synced(&b, "v2 device pushing");
    synced(&a, "v1 device pulling the projection");
    /* An offline write under v1, then the app update. */
    put(&a, "Note", "n2", (cstack_field_value[]){{"title", cstack_v_text("offline on v1")}}, 1);
    udev_upgrade(&a, V2);
    int64_t pending = 0;
    cr_assert_eq(cstack_upload_pending(a.db, &pending), 0);
    cr_assert_gt(pending, 0, "the write made under v1 is still queued after the upgrade");
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(a.db, &tx), 0);
    cr_assert(tx && strstr(cstack_upload_tx_json(tx), "offline on v1"), "%s",
              tx ? cstack_upload_tx_json(tx) : "nothing queued");
    cstack_upload_tx_free(tx);
    synced(&a, "upgraded device");
    cr_assert(!a.st.schema_behind);
    assert_row(&a, "Note", "n1",
               "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"t\",\"status\":\"ARCHIVED\","
               "\"body\":\"only v2 knows\",\"rank\":3}");
    synced(&b, "v2 device pulling the offline write");
    udev fresh = udev_open(V2, "fresh", "alice");
    synced(&fresh, "fresh v2 device");
    char *got = ts_dump(a.db), *want = ts_dump(fresh.db), *other = ts_dump(b.db);
    cr_assert_str_eq(got, want, "the upgraded device equals a fresh v2 device:\n%s\nfresh:\n%s", got,
                     want);
    cr_assert_str_eq(other, want);
    cr_assert(strstr(want, "offline on v1"), "the write queued under v1 reached the server");
    free(got);
    free(want);
    free(other);
    udev_free(&a);
    udev_free(&b);
    udev_free(&fresh);
}

Test(upgrade, the_upgrade_pull_carries_only_what_the_old_schema_lacked)
{
    serve(V1);
    udev a = udev_open(V1, "a", "alice");
    for (int i = 0; i < 20; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%02d", i);
        put(&a, "Note", id,
            (cstack_field_value[]){{"id", cstack_v_text(id)},
                                   {"ownerId", cstack_v_text("alice")},
                                   {"title", cstack_v_text("a title long enough to count")}},
            3);
    }
    synced(&a, "v1 device");
    stop();
    serve(V2);
    udev b = udev_open(V2, "b", "alice");
    synced(&b, "v2 device");
    put(&b, "Note", "n03", (cstack_field_value[]){{"body", cstack_v_text("new")}}, 1);
    synced(&b, "v2 device pushing");
    /* The wire: a pull naming the old schema sends one row (n03's body),
     * a plain pull from 0 all twenty. */
    char auth[4096], schema[128], site[64];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a.token);
    snprintf(schema, sizeof schema, "X-Cstack-Schema: %s", hash);
    snprintf(site, sizeof site, "X-Cstack-Site: %s", cstack_sync_site_id(a.db));
    const char *h[] = {auth, schema, site, NULL};
    cstack_schema *v1 = t_schema(V1);
    char path[160];
    snprintf(path, sizeof path, "/v1/pull?since=0&upgrade_from=%s", cstack_schema_hash(v1));
    res up = http("GET", path, h, NULL, 0);
    res all = http("GET", "/v1/pull?since=0&echoes=1", h, NULL, 0);
    cr_assert_eq(up.status, 200, "%s", up.body ? up.body : "");
    cr_assert_eq(all.status, 200);
    fprintf(stderr, "upgrade pull: %zu bytes; full pull: %zu bytes\n", up.len, all.len);
    cr_assert_lt(up.len * 4, all.len, "the upgrade pull is a fraction of a full one");
    cr_assert(memmem(up.body, up.len, "new", 3));
    cr_assert_null(memmem(up.body, up.len, "a title long", 12), "no unchanged column");
    res_free(&up);
    res_free(&all);
    res bad = http("GET", "/v1/pull?since=0&upgrade_from=00ff", h, NULL, 0);
    assert_err(&bad, 400, "unknown_schema", "never ran", "upgrade_from an unknown schema");
    res_free(&bad);
    cstack_schema_free(v1);
    udev_free(&a);
    udev_free(&b);
}

Test(upgrade, a_v3_device_waits_for_a_v2_server_then_syncs_once_it_is_migrated)
{
    serve(V2);
    udev c = udev_open(V2, "c", "alice");
    synced(&c, "v2 device");
    udev_upgrade(&c, V3);
    put(&c, "Note", "n1",
        (cstack_field_value[]){{"id", cstack_v_text("n1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"title", cstack_v_text("made on v3")},
                               {"pinned", cstack_v_bool(true)}},
        4);
    int rc = udev_sync(&c);
    cr_assert_eq(rc, CSTACK_EMISMATCH, "%s", cstack_errname(rc));
    cr_assert(c.st.schema_mismatch && c.st.schema_ahead, "ahead: %s", c.st.last_error);
    cr_assert(contains_ci(c.st.last_error, "the server runs an older schema"), "%s",
              c.st.last_error);
    cr_assert(contains_ci(c.st.last_error, "writes stay queued until it is migrated"));
    int64_t pending = 0;
    cr_assert_eq(cstack_upload_pending(c.db, &pending), 0);
    cr_assert_eq(pending, 1, "the write waits in the queue");
    /* The server is migrated (as `cstack serve` with the new schema does). */
    stop();
    serve(V3);
    synced(&c, "v3 device on the v3 server");
    cr_assert(!c.st.schema_ahead && !c.st.schema_mismatch);
    udev fresh = udev_open(V3, "fresh", "alice");
    synced(&fresh, "fresh v3 device");
    assert_row(&fresh, "Note", "n1",
               "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"made on v3\",\"status\":\"OPEN\","
               "\"body\":null,\"rank\":3,\"pinned\":true}");
    udev_free(&c);
    udev_free(&fresh);
}

Test(upgrade, a_schema_the_server_never_ran_is_a_409_naming_both)
{
    serve(V2);
    udev x = udev_open("auth User { id String  role String }\n"
                       "model Note { id String @id\n ownerId String\n"
                       " @@allow('all', ownerId == auth().id) }\n",
                       "x", "alice");
    int rc = udev_sync(&x);
    cr_assert_eq(rc, CSTACK_EMISMATCH);
    cr_assert(x.st.schema_mismatch && !x.st.schema_ahead);
    cr_assert_str_eq(x.st.schema_server, hash);
    udev_free(&x);
}

Test(upgrade, a_v1_device_streaming_from_a_v2_server_gets_its_projection_and_equal_checkpoints)
{
    serve(V1);
    udev a = udev_open(V1, "a", "alice");
    synced(&a, "v1 device on the v1 server");
    stop();
    serve(V2);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = a.token, .retry_min_ms = 10, .poll_ms = 20};
    cstack_sync_session *s = NULL;
    cr_assert_eq(cstack_sync_start(a.db, &o, NULL, NULL, &s), 0);
    udev b = udev_open(V2, "b", "alice");
    put(&b, "Note", "n1",
        (cstack_field_value[]){{"id", cstack_v_text("n1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"title", cstack_v_text("live")},
                               {"status", cstack_v_text("ARCHIVED")},
                               {"body", cstack_v_text("v2 only")}},
        5);
    put(&b, "Tag", "t1",
        (cstack_field_value[]){{"id", cstack_v_text("t1")},
                               {"ownerId", cstack_v_text("alice")},
                               {"label", cstack_v_text("red")}},
        3);
    synced(&b, "v2 device pushing");
    /* The live event arrives projected; a later checkpoint agrees. */
    cstack_sync_status st = {0};
    char *got = NULL;
    for (int i = 0; i < 500; i++) {
        cstack_free(got);
        got = row_of(&a, "Note", "n1");
        cr_assert_eq(cstack_sync_session_status(s, &st), 0);
        if (got[0] && st.checksum_ok == 1 && st.cursor >= b.st.cursor)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cstack_sync_stop(s);
    cr_assert_str_eq(got, "{\"id\":\"n1\",\"ownerId\":\"alice\",\"title\":\"live\",\"status\":\"OPEN\"}");
    cr_assert_eq(st.checksum_ok, 1, "the stream's checkpoint agrees: %s", st.last_error);
    cr_assert(st.schema_behind);
    cstack_free(got);
    udev_free(&a);
    udev_free(&b);
}

static int count_version_tables(sqlite3 *conn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "SELECT count(*) FROM sqlite_master WHERE name = "
                                "'_cstack_srv_schemas'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *(int *)ctx = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* SQLite only: it opens the server's file as a cstack database, as `cstack
 * migrate --db FILE` does; test_pg_multi.c runs `cstack migrate` on a
 * PostgreSQL database. */
Test(upgrade, cstack_migrate_records_a_version_only_in_a_server_database)
{
    if (t_store_pg())
        cr_skip_test("the server's state is a SQLite file only with the SQLite store");
    serve(V1);
    stop();
    /* What `cstack migrate --schema v2 --db server.db` does after migrating. */
    udev s = {0};
    snprintf(s.path, sizeof s.path, "%s/server.db", dir);
    udev_bootstrap(&s, V2);
    int recorded = -1;
    cr_assert_eq(cstack_server_record_schema(s.db, &recorded), 0, "%s", cstack_errmsg(s.db));
    cr_assert_eq(recorded, 1);
    cr_assert_eq(cstack_server_record_schema(s.db, &recorded), 0);
    cr_assert_eq(recorded, 0, "a version is recorded once");
    cstack_close(s.db);
    /* A device's database is left alone. */
    udev d = udev_open(V2, "device", "alice");
    cr_assert_eq(cstack_server_record_schema(d.db, &recorded), 0);
    cr_assert_eq(recorded, 0);
    int tables = -1;
    cr_assert_eq(cstack_with_sqlite(d.db, count_version_tables, &tables), 0);
    cr_assert_eq(tables, 0, "no server table in a device's database");
    udev_free(&d);
    /* The migrated server serves v1 devices. */
    serve(V2);
    udev a = udev_open(V1, "a", "alice");
    synced(&a, "v1 device on the migrated server");
    cr_assert(a.st.schema_behind);
    udev_free(&a);
}
