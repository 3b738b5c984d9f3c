/* test_hidden.c -- rows a merge hides, peer to peer: a row shown again is
 * exported whole to a reader whose cursor passed it, and the app can list
 * hidden rows with their reason (cstack_sync_hidden, the envelope's
 * hidden_rows). */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA = "model Team {\n"
                            "  id    String @id\n"
                            "  name  String\n"
                            "  notes Note[]\n"
                            "}\n"
                            "model Note {\n"
                            "  id     String @id\n"
                            "  teamId String\n"
                            "  team   Team   @relation(fields: [teamId], references: [id], "
                            "onDelete: Cascade)\n"
                            "  title  String\n"
                            "}\n"
                            "model Person {\n"
                            "  id    String @id\n"
                            "  email String @unique\n"
                            "}\n";

static void put(cstack *db, const char *model, cstack_field_value *f, size_t n)
{
    cstack_data data = {f, n};
    cr_assert_eq(cstack_create(db, model, &data, NULL), 0, "create %s: %s", model,
                 cstack_errmsg(db));
}

static void team(cstack *db, const char *id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"name", cstack_v_text("team")}};
    put(db, "Team", f, 2);
}

static void team_note(cstack *db, const char *id, const char *team_id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"teamId", cstack_v_text(team_id)},
                              {"title", cstack_v_text("kept")}};
    put(db, "Note", f, 3);
}

static void person(cstack *db, const char *id, const char *email)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"email", cstack_v_text(email)}};
    put(db, "Person", f, 2);
}

/* The next write's clock is later than the last one's, on any replica. */
static void later(void)
{
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void sync_all(cstack *src, cstack *dst)
{
    cstack *failed = NULL;
    int rc = ts_sync(src, dst, 0, NULL, NULL, &failed);
    cr_assert_eq(rc, 0, "sync: %s", failed ? cstack_errmsg(failed) : "");
}

static int64_t count(cstack *db, const char *model)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, model, NULL, &n), 0);
    return n;
}

static char *hidden(cstack *db, const char *model)
{
    char *json = NULL;
    cr_assert_eq(cstack_sync_hidden(db, model, &json), 0, "%s", cstack_errmsg(db));
    return json;
}

static char *call(cstack *db, const char *req)
{
    char *out = NULL;
    cr_assert_eq(cstack_envelope_call(db, req, strlen(req), &out, NULL), 0);
    return out;
}

/* H is a hub; N is hidden on H (its team was deleted) when a reader takes
 * its cursor, then shown again when the team comes back. */
static void hide_then_show(cstack *h, int64_t *cursor)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA);
    team(a, "T");
    sync_all(a, h);
    sync_all(h, b);
    cstack_field_value w[] = {{"id", cstack_v_text("T")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(a, "Team", &where, NULL), 0);
    sync_all(a, h);
    team_note(b, "N", "T");
    sync_all(b, h);
    cr_assert_eq(count(h, "Note"), 0, "a note whose team is gone is shown");
    char *json = hidden(h, NULL);
    cr_assert_str_eq(json, "[{\"model\":\"Note\",\"key\":{\"id\":\"N\"},\"reason\":\"parent\","
                           "\"values\":{\"id\":\"N\",\"teamId\":\"T\",\"title\":\"kept\"}}]");
    cstack_free(json);
    cr_assert_eq(cstack_sync_version(h, cursor), 0);
    team(a, "T");
    sync_all(a, h);
    cr_assert_eq(count(h, "Note"), 1, "the note did not come back with its team");
    cstack_close(a);
    cstack_close(b);
}

Test(hidden, a_row_shown_again_is_exported_whole_since_a_cursor_that_passed_it)
{
    cstack *h = t_open_mem(SCHEMA);
    int64_t cursor = 0;
    hide_then_show(h, &cursor);
    /* A reader that has nothing but what H exports since the cursor (as a
     * server's device that was sent nothing while the note was hidden)
     * gets the note with every column. */
    cstack *reader = t_open_mem(SCHEMA);
    cstack *failed = NULL;
    cr_assert_eq(ts_sync(h, reader, cursor, NULL, NULL, &failed), 0, "%s",
                 failed ? cstack_errmsg(failed) : "");
    cr_assert_eq(count(reader, "Team"), 1);
    cr_assert_eq(count(reader, "Note"), 1, "the note shown again is not in the export");
    char *json = hidden(reader, NULL);
    cr_assert_str_eq(json, "[]");
    cstack_free(json);
    cstack_close(reader);
    cstack_close(h);
}

Test(hidden, a_peer_whose_cursor_passed_a_hidden_row_shows_it_when_it_comes_back)
{
    cstack *h = t_open_mem(SCHEMA), *c = t_open_mem(SCHEMA);
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA);
    team(a, "T");
    sync_all(a, h);
    sync_all(h, b);
    cstack_field_value w[] = {{"id", cstack_v_text("T")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(a, "Team", &where, NULL), 0);
    sync_all(a, h);
    team_note(b, "N", "T");
    sync_all(b, h);
    int64_t cursor = 0;
    cstack *failed = NULL;
    cr_assert_eq(ts_sync(h, c, 0, &cursor, NULL, &failed), 0);
    cr_assert_eq(count(c, "Note"), 0);
    team(a, "T");
    sync_all(a, h);
    cr_assert_eq(ts_sync(h, c, cursor, NULL, NULL, &failed), 0);
    cr_assert_eq(count(c, "Note"), 1);
    char *dh = ts_dump(h), *dc = ts_dump(c);
    cr_assert_str_eq(dc, dh);
    free(dh);
    free(dc);
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
    cstack_close(h);
}

Test(hidden, hidden_rows_are_listed_with_their_reason_through_the_api_and_the_envelope)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA);
    person(a, "p1", "x@example.com");
    later();
    person(b, "p2", "x@example.com");
    sync_all(a, b);
    cr_assert_eq(count(b, "Person"), 1);
    const char *want = "[{\"model\":\"Person\",\"key\":{\"id\":\"p2\"},\"reason\":\"unique\","
                       "\"values\":{\"id\":\"p2\",\"email\":\"x@example.com\"}}]";
    char *json = hidden(b, "Person");
    cr_assert_str_eq(json, want);
    cstack_free(json);
    json = hidden(b, "Team");
    cr_assert_str_eq(json, "[]");
    cstack_free(json);
    char *bad = NULL;
    cr_assert_eq(cstack_sync_hidden(b, "Nope", &bad), CSTACK_EINVAL);
    cr_assert_null(bad);

    char *r = call(b, "{\"kind\":\"hidden_rows\"}");
    char expect[512];
    snprintf(expect, sizeof expect, "{\"status\":\"ok\",\"data\":%s}", want);
    cr_assert_str_eq(r, expect);
    cstack_free(r);
    r = call(b, "{\"model\":\"Team\",\"kind\":\"hidden_rows\"}");
    cr_assert_str_eq(r, "{\"status\":\"ok\",\"data\":[]}");
    cstack_free(r);
    r = call(b, "{\"kind\":\"hidden_rows\",\"payload\":{\"where\":{}}}");
    cr_assert(strstr(r, "\"status\":\"err\"") && strstr(r, "unknown key"), "%s", r);
    cstack_free(r);
    r = call(b, "{\"kind\":\"count\"}");
    cr_assert(strstr(r, "needs a model"), "%s", r);
    cstack_free(r);

    /* The address is given up: the hidden row comes back and leaves the
     * list. */
    cstack_field_value w[] = {{"id", cstack_v_text("p1")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(a, "Person", &where, NULL), 0);
    sync_all(a, b);
    cr_assert_eq(count(b, "Person"), 1);
    json = hidden(b, NULL);
    cr_assert_str_eq(json, "[]");
    cstack_free(json);
    cstack_close(a);
    cstack_close(b);
}
