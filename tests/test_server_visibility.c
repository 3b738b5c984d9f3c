/* test_server_visibility.c -- visibility changes are changes, through a
 * real server: a row the server hides (parks) or shows again reaches every
 * device whose cursor passed it, a pushed row that loses a unique value or
 * its parent is accepted and hidden rather than refused, and every device
 * ends equal to a fresh device of its user. */
#include <criterion/criterion.h>

#include "server_support.h"

static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Team {\n"
                            "  id    String @id\n"
                            "  name  String\n"
                            "  notes Note[]\n"
                            "  @@allow('all', auth() != null)\n"
                            "}\n"
                            "model Note {\n"
                            "  id     String @id\n"
                            "  teamId String\n"
                            "  team   Team   @relation(fields: [teamId], references: [id], "
                            "onDelete: Cascade)\n"
                            "  title  String\n"
                            "  @@allow('all', auth() != null)\n"
                            "}\n"
                            "model Person {\n"
                            "  id    String @id\n"
                            "  email String @unique\n"
                            "  name  String\n"
                            "  @@allow('all', auth() != null)\n"
                            "}\n"
                            "model Secret {\n"
                            "  id      String @id\n"
                            "  ownerId String\n"
                            "  code    String @unique\n"
                            "  @@allow('all', ownerId == auth().id)\n"
                            "}\n";

TestSuite(visibility, .fini = fini);

static void create(dev *d, const char *model, cstack_field_value *f, size_t n)
{
    cstack_data data = {f, n};
    cr_assert_eq(cstack_create(d->db, model, &data, NULL), 0, "create %s: %s", model,
                 cstack_errmsg(d->db));
}

static void team(dev *d, const char *id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"name", cstack_v_text("team")}};
    create(d, "Team", f, 2);
}

static void team_note(dev *d, const char *id, const char *team_id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"teamId", cstack_v_text(team_id)},
                              {"title", cstack_v_text("a note")}};
    create(d, "Note", f, 3);
}

static void person(dev *d, const char *id, const char *email)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"email", cstack_v_text(email)},
                              {"name", cstack_v_text(id)}};
    create(d, "Person", f, 3);
}

static void remove_row(dev *d, const char *model, const char *id)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(d->db, model, &where, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* The next write's clock is later than the last one's, on any device. */
static void later(void)
{
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static char *hidden(dev *d, const char *model)
{
    char *json = NULL;
    cr_assert_eq(cstack_sync_hidden(d->db, model, &json), 0, "%s", cstack_errmsg(d->db));
    return json;
}

/* Pulls, and checks that the device's state is the server's for its user. */
static void pull_equal(dev *d, const char *who)
{
    uint64_t server = pull(d);
    cr_assert_eq(checksum(d), server, "%s: local checksum differs from the server's", who);
}

/* A fresh device of `sub` pulls everything: its state is what `d` must
 * hold. */
static void assert_like_fresh(dev *d, const char *sub, const char *who)
{
    dev fresh = device(SCHEMA, sub);
    pull_equal(&fresh, "fresh device");
    cr_assert_eq(checksum(d), checksum(&fresh), "%s differs from a fresh device of %s", who, sub);
    const char *models[] = {"Team", "Note", "Person", "Secret"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(count(d, models[i]), count(&fresh, models[i]), "%s: %s rows", who,
                     models[i]);
    dev_free(&fresh);
}

Test(visibility, a_row_shown_again_reaches_a_device_whose_cursor_passed_it)
{
    start_opts(SCHEMA, "reshown.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob"), c = device(SCHEMA, "carol");
    team(&a, "T");
    push_all(&a);
    pull_equal(&a, "a");
    pull_equal(&b, "b");

    remove_row(&a, "Team", "T");
    push_all(&a);
    pull_equal(&a, "a");

    /* B still holds T and writes a note in it; the server hides the note
     * (its parent is gone) instead of refusing it, and B hides it too
     * when it learns that T is gone. */
    team_note(&b, "N", "T");
    push_all(&b);
    pull_equal(&b, "b");
    cr_assert_eq(count(&b, "Note"), 0, "b still shows a note whose team is gone");
    char *json = hidden(&b, "Note");
    cr_assert(strstr(json, "\"key\":{\"id\":\"N\"},\"reason\":\"parent\""), "b's hidden rows: %s",
              json);
    cstack_free(json);

    pull_equal(&c, "c");
    cr_assert_eq(count(&c, "Note"), 0);

    /* T comes back with the same id: the note is visible again on the
     * server, and C, whose cursor passed the note, must receive it. */
    team(&a, "T");
    push_all(&a);
    pull_equal(&c, "c");
    cr_assert_eq(count(&c, "Team"), 1);
    cr_assert_eq(count(&c, "Note"), 1, "c never received the note shown again");
    pull_equal(&a, "a");
    pull_equal(&b, "b");
    cr_assert_eq(count(&a, "Note"), 1);
    cr_assert_eq(count(&b, "Note"), 1);
    json = hidden(&b, NULL);
    cr_assert_str_eq(json, "[]");
    cstack_free(json);
    assert_like_fresh(&a, "alice", "a");
    assert_like_fresh(&b, "bob", "b");
    assert_like_fresh(&c, "carol", "c");
    dev_free(&a);
    dev_free(&b);
    dev_free(&c);
}

Test(visibility, a_pushed_row_that_loses_a_unique_value_is_accepted_and_hidden)
{
    start_opts(SCHEMA, "unique.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob");
    /* Offline, A claims the address first, then B. */
    person(&a, "pa", "x@example.com");
    later();
    person(&b, "pb", "x@example.com");
    push_all(&a);
    char batch[128];
    res r = push_next(&b, batch, sizeof batch);
    cr_assert_eq(r.status, 200, "the later claim was refused: %ld %s", r.status,
                 r.body ? r.body : "");
    res_free(&r);
    pull_equal(&a, "a");
    pull_equal(&b, "b");
    cr_assert_eq(count(&b, "Person"), 1);
    char *json = hidden(&b, "Person");
    cr_assert(strstr(json, "\"key\":{\"id\":\"pb\"},\"reason\":\"unique\",\"values\":{\"id\":"
                           "\"pb\",\"email\":\"x@example.com\",\"name\":\"pb\"}"),
              "b's hidden rows: %s", json);
    cstack_free(json);
    assert_like_fresh(&a, "alice", "a");
    assert_like_fresh(&b, "bob", "b");
    dev_free(&a);
    dev_free(&b);
}

Test(visibility, a_row_that_loses_its_unique_value_leaves_the_devices_holding_it_and_comes_back)
{
    start_opts(SCHEMA, "claim.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob"), c = device(SCHEMA, "carol");
    /* B claims first but pushes last: A's row, already on every device,
     * must be hidden everywhere when B's earlier claim arrives. */
    person(&b, "pb", "y@example.com");
    later();
    person(&a, "pa", "y@example.com");
    push_all(&a);
    pull_equal(&a, "a");
    pull_equal(&c, "c");
    cr_assert_eq(count(&c, "Person"), 1);
    push_all(&b);
    pull_equal(&a, "a");
    pull_equal(&b, "b");
    pull_equal(&c, "c");
    assert_like_fresh(&c, "carol", "c");

    /* B gives the address up: A's row is shown again everywhere. */
    remove_row(&b, "Person", "pb");
    push_all(&b);
    pull_equal(&a, "a");
    pull_equal(&b, "b");
    pull_equal(&c, "c");
    cr_assert_eq(count(&c, "Person"), 1);
    cr_assert_eq(count(&a, "Person"), 1);
    assert_like_fresh(&a, "alice", "a");
    assert_like_fresh(&b, "bob", "b");
    assert_like_fresh(&c, "carol", "c");
    dev_free(&a);
    dev_free(&b);
    dev_free(&c);
}

Test(visibility, a_hidden_row_is_still_checked_against_the_write_policy)
{
    start_opts(SCHEMA, "policy.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob");
    cstack_field_value mine[] = {{"id", cstack_v_text("s1")},
                                 {"ownerId", cstack_v_text("alice")},
                                 {"code", cstack_v_text("k")}};
    create(&a, "Secret", mine, 3);
    push_all(&a);
    later();
    /* Bob writes a secret for alice with the same code: it would be hidden
     * (the code is taken), and it is refused for what it is. */
    cstack_field_value forged[] = {{"id", cstack_v_text("s2")},
                                   {"ownerId", cstack_v_text("alice")},
                                   {"code", cstack_v_text("k")}};
    create(&b, "Secret", forged, 3);
    char batch[128];
    res r = push_next(&b, batch, sizeof batch);
    assert_err(&r, 403, "forbidden", "not allowed for user 'bob'", "forged hidden row");
    res_free(&r);
    /* Alice's own secret with a taken code, written offline on another
     * device, is accepted and hidden. */
    dev a2 = device(SCHEMA, "alice");
    cstack_field_value own[] = {{"id", cstack_v_text("s3")},
                                {"ownerId", cstack_v_text("alice")},
                                {"code", cstack_v_text("k")}};
    create(&a2, "Secret", own, 3);
    r = push_next(&a2, batch, sizeof batch);
    cr_assert_eq(r.status, 200, "alice's own hidden row was refused: %ld %s", r.status,
                 r.body ? r.body : "");
    res_free(&r);
    pull_equal(&a2, "a2");
    pull_equal(&a, "a");
    cr_assert_eq(count(&a2, "Secret"), 1);
    assert_like_fresh(&a2, "alice", "a2");
    dev_free(&a);
    dev_free(&a2);
    dev_free(&b);
}

typedef struct seen {
    int hidden_events;
    int64_t hidden;
} seen;

static void on_status(const cstack_sync_status *st, void *ctx)
{
    seen *s = ctx;
    if (st->event == CSTACK_SYNC_EV_HIDDEN) {
        s->hidden_events++;
        s->hidden += st->hidden;
    }
}

Test(visibility, a_sync_that_hides_rows_reports_it_in_its_status)
{
    start_opts(SCHEMA, "status.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob");
    person(&a, "pa", "z@example.com");
    later();
    person(&b, "pb", "z@example.com");
    push_all(&a);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = b.token};
    seen s = {0};
    cstack_sync_status final;
    cr_assert_eq(cstack_sync_run_once(b.db, &o, on_status, &s, &final), 0, "%s",
                 cstack_errmsg(b.db));
    cr_assert_eq(s.hidden_events, 1, "%d hidden events", s.hidden_events);
    cr_assert_eq(s.hidden, 1);
    cr_assert_eq(final.rejected, 0, "the hidden row was refused: %s", final.last_error);
    cr_assert_eq(final.checksum_ok, 1, "%s", final.last_error);
    cr_assert_str_eq(cstack_sync_event_name(CSTACK_SYNC_EV_HIDDEN), "hidden");
    assert_like_fresh(&b, "bob", "b");
    dev_free(&a);
    dev_free(&b);
}

Test(visibility, a_pushed_row_hidden_by_a_row_its_user_cannot_read_leaves_the_device_that_wrote_it)
{
    start_opts(SCHEMA, "unseen.db", 0);
    dev a = device(SCHEMA, "alice"), b = device(SCHEMA, "bob");
    cstack_field_value hers[] = {{"id", cstack_v_text("s1")},
                                 {"ownerId", cstack_v_text("alice")},
                                 {"code", cstack_v_text("k")}};
    create(&a, "Secret", hers, 3);
    push_all(&a);
    later();
    /* Bob's own secret takes a code alice holds: the server hides it, and
     * bob cannot read the row that wins, so only the server can tell his
     * device. */
    cstack_field_value his[] = {{"id", cstack_v_text("s2")},
                                {"ownerId", cstack_v_text("bob")},
                                {"code", cstack_v_text("k")}};
    create(&b, "Secret", his, 3);
    push_all(&b);
    pull_equal(&b, "b");
    cr_assert_eq(count(&b, "Secret"), 0, "b shows a secret the server hides");
    assert_like_fresh(&b, "bob", "b");

    /* Alice gives the code up: bob's secret is shown again, whole. */
    cstack_field_value w[] = {{"id", cstack_v_text("s1")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(a.db, "Secret", &where, NULL), 0);
    push_all(&a);
    pull_equal(&b, "b");
    cr_assert_eq(count(&b, "Secret"), 1);
    assert_like_fresh(&b, "bob", "b");
    dev_free(&a);
    dev_free(&b);
}
