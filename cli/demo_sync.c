/*
 * demo_sync.c -- the second part of `cstack demo`: sync through a server.
 *
 * A server starts on 127.0.0.1 with an empty database (server.db), run by
 * the server library in this process (cstack_server.h: the same server as
 * `cstack serve`).  The notes database built by the first part reaches it
 * the way every device's writes do: it syncs once, pushing its upload queue
 * through the server's write policies, signed in as an admin because it
 * holds both users' rows.  Ada has a laptop, a phone and later a tablet;
 * Linus has a laptop.  Each device is a database file of its own, synced by
 * the library's client (cstack_sync_*).
 *
 * This file holds the helpers of the part and its first three steps:
 * starting the server, signing two devices in, and editing offline.
 * demo_converge.c has the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstack_server.h"
#include "demo.h"

static const demo_device DEVICES[DEMO_NDEVICES] = {
    {"Ada's laptop", "ada-laptop.db", 0, NULL, NULL},
    {"Ada's phone", "ada-phone.db", 0, NULL, NULL},
    {"Ada's tablet", "ada-tablet.db", 0, NULL, NULL},
    {"Linus's laptop", "linus-laptop.db", 1, NULL, NULL},
};

/* ---- helpers ------------------------------------------------------------- */

void demo_sync_free(demo *d)
{
    demo_sync *s = d->sync;
    if (!s)
        return;
    for (int i = 0; i < DEMO_NDEVICES; i++) {
        cstack_sync_stop(s->dev[i].session);
        cstack_close(s->dev[i].db);
    }
    cstack_server_stop(s->srv);
    cstack_free(s->token[0]);
    cstack_free(s->token[1]);
    cstack_schema_free(s->schema);
    free(s);
    d->sync = NULL;
}

int demo_dev_open(demo *d, demo_device *dev)
{
    if (dev->db)
        return 0;
    int rc = cstack_open(d->sync->schema, demo_path(d, dev->file), NULL, &dev->db);
    if (rc == CSTACK_OK)
        rc = cstack_bootstrap(dev->db, NULL);
    if (rc != CSTACK_OK)
        return demo_expect(d, 0, "%s to open: %s", dev->name,
                           dev->db ? cstack_errmsg(dev->db) : cstack_errstr(rc));
    return 0;
}

int demo_dev_sync(demo *d, demo_device *dev, cstack_sync_status *st)
{
    cstack_sync_options o = {
        .url = d->sync->url, .token = d->sync->token[dev->linus], .connect_timeout_ms = 2000};
    return cstack_sync_run_once(dev->db, &o, NULL, NULL, st);
}

int demo_server_start(demo *d)
{
    demo_sync *s = d->sync;
    cstack_server_config cfg = {.schema = s->schema,
                                .db_path = demo_path(d, "server.db"),
                                .port = s->port,
                                .jwt_secret = s->secret,
                                .checkpoint_ms = 500,
                                .keepalive_ms = 2000,
                                .drain_ms = 2000};
    char err[512] = "";
    int rc = cstack_server_start(&cfg, &s->srv, err, sizeof err);
    if (rc != 0)
        return demo_expect(d, 0, "the server to start: %s", err);
    s->port = cstack_server_port(s->srv);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return 0;
}

static void put_json_line(cstack_rows *rows, const char *model, char **out, size_t *len)
{
    for (size_t i = 0; i < cstack_rows_count(rows) && *out; i++) {
        char *json = cstack_row_json(cstack_rows_get(rows, i));
        size_t add = (json ? strlen(json) : 0) + strlen(model) + 3;
        char *p = json ? realloc(*out, *len + add + 1) : NULL;
        if (!p) {
            free(*out);
            *out = NULL;
        } else {
            *len += (size_t)snprintf(p + *len, add + 1, "%s %s\n", model, json);
            *out = p;
        }
        cstack_free(json);
    }
}

char *demo_dev_dump(demo_device *dev)
{
    const cstack_schema *s = cstack_schema_of(dev->db);
    char *out = calloc(1, 1);
    size_t len = 0;
    for (size_t m = 0; m < cstack_schema_model_count(s) && out; m++) {
        cstack_query q = {0};
        cstack_rows *rows = NULL;
        const char *model = cstack_schema_model_name(s, m);
        if (cstack_find_many(dev->db, model, &q, &rows) != CSTACK_OK) {
            free(out);
            return NULL;
        }
        put_json_line(rows, model, &out, &len);
        cstack_rows_free(rows);
    }
    return out;
}

int demo_dev_show(demo *d, demo_device *dev)
{
    static const demo_col cols[] = {{"title", DEMO_PLAIN, NULL},
                                    {"ownerId", DEMO_OWNER, "owner"},
                                    {"status", DEMO_PLAIN, NULL},
                                    {"price", DEMO_PLAIN, NULL},
                                    {"body", DEMO_PLAIN, NULL}};
    cstack_order by_title[] = {{"title", 0}};
    cstack_query q = {.order_by = by_title, .n_order = 1};
    cstack_rows *rows = NULL;
    int rc = cstack_find_many(dev->db, "Note", &q, &rows);
    if (rc != CSTACK_OK)
        return demo_expect(d, 0, "to read the notes of %s: %s", dev->name, cstack_errmsg(dev->db));
    demo_style(d, DEMO_DIM);
    printf("    %s:\n", dev->name);
    demo_unstyle(d);
    demo_table(d, rows, cols, sizeof cols / sizeof cols[0]);
    cstack_rows_free(rows);
    return 0;
}

const char *demo_dev_field(demo *d, demo_device *dev, const char *title, const char *field,
                           char *buf, size_t cap)
{
    const char *id = demo_note_id(d, title);
    buf[0] = '\0';
    cstack_filter *f = id ? cstack_filter_cmp("id", CSTACK_OP_EQ, 0, cstack_v_text(id))
                          : cstack_filter_cmp("title", CSTACK_OP_EQ, 0, cstack_v_text(title));
    cstack_query q = {.where = f};
    cstack_row *row = NULL;
    if (cstack_find_first(dev->db, "Note", &q, &row) == CSTACK_OK)
        demo_row_text(row, field, buf, cap);
    cstack_row_free(row);
    cstack_filter_free(f);
    return buf;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- step: the server ------------------------------------------------------ */

/* The id the demo's admin token signs in with: any Uuid that is nobody's
 * Account. */
#define DEMO_ADMIN_ID "00000000-0000-4000-8000-000000000001"

static int mint(demo *d, const char *sub, const char *role_claim, char **out)
{
    const char *claims[] = {role_claim};
    char err[256] = "";
    int rc = cstack_server_mint_token(d->sync->secret, sub, claims, 1, (int64_t)time(NULL), 3600,
                                      out, err, sizeof err);
    return demo_expect(d, rc == 0, "a token for %s: %s", sub, err);
}

static void random_secret(char out[33])
{
    unsigned char raw[16] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(raw, 1, sizeof raw, f) != sizeof raw)
        snprintf((char *)raw, sizeof raw, "%lx", (unsigned long)time(NULL));
    if (f)
        fclose(f);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* notes.db syncs once, like any device: its upload queue goes through the
 * server's write policies.  It holds both users' rows, written before
 * anyone signed in, so it signs in as an admin (the schema's
 * @@allow('all', auth().role == 'admin')). */
static int upload_first_database(demo *d)
{
    demo_sync *s = d->sync;
    cstack *db = NULL;
    char *token = NULL;
    int64_t pending = 0;
    cstack_sync_status st = {0};
    int rc = cstack_open(s->schema, demo_path(d, "notes.db"), NULL, &db);
    if (rc == CSTACK_OK)
        rc = cstack_bootstrap(db, NULL);
    if (rc == CSTACK_OK)
        rc = cstack_upload_pending(db, &pending);
    if (rc == CSTACK_OK && mint(d, DEMO_ADMIN_ID, "role=admin", &token) != 0) {
        cstack_close(db);
        return CLI_FAIL;
    }
    if (rc == CSTACK_OK) {
        cstack_sync_options o = {.url = s->url, .token = token, .connect_timeout_ms = 2000};
        rc = cstack_sync_run_once(db, &o, NULL, NULL, &st);
    }
    int fail = demo_expect(d, rc == CSTACK_OK, "notes.db to sync: %s",
                           db ? cstack_errmsg(db) : cstack_errstr(rc)) ||
               demo_expect(d, pending > 0 && st.pushed == pending && st.rejected == 0,
                           "the server to take all %lld transactions of notes.db, it took %lld",
                           (long long)pending, (long long)st.pushed) ||
               demo_expect(d, st.checksum_ok == 1, "notes.db to match the server");
    free(token);
    cstack_close(db);
    if (fail)
        return CLI_FAIL;
    demo_ok(d,
            "notes.db pushed its %lld transactions, signed in as an admin; the server\n"
            "         checked every row against the write policies and took them all",
            (long long)pending);
    return 0;
}

int demo_step_serve(demo *d)
{
    demo_say(d, "Now the same notes, on several devices.  A sync server starts on 127.0.0.1\n"
                "with an empty database (server.db): the server `cstack serve` runs, here\n"
                "in-process.  It signs users in with JWTs (HS256): `sub` is auth().id and\n"
                "the `role` claim is auth().role.  It takes a push only when the schema's\n"
                "write policies allow every row of it, and sends each user only the rows\n"
                "@@allow('read', ...) grants them.\n"
                "\n"
                "The database built above uploads its rows like any device.  It holds both\n"
                "users' rows, written before anyone signed in, so it signs in as an admin:\n"
                "  @@allow('all', auth().role == 'admin')");
    cstack_close(d->db);
    d->db = NULL;
    demo_sync *s = calloc(1, sizeof *s);
    if (!s)
        return demo_expect(d, 0, "memory for the sync part");
    d->sync = s;
    memcpy(s->dev, DEVICES, sizeof DEVICES);
    random_secret(s->secret);
    cstack_diags *diags = NULL;
    int rc = cstack_schema_parse("notes_v2.cstack", DEMO_SCHEMA_V2, strlen(DEMO_SCHEMA_V2),
                                 &s->schema, &diags);
    cstack_diags_free(diags);
    if (demo_expect(d, rc == CSTACK_OK, "notes_v2.cstack to parse") != 0 ||
        demo_server_start(d) != 0)
        return CLI_FAIL;
    demo_ok(d, "listening on %s, serving server.db", s->url);
    if (upload_first_database(d) != 0)
        return CLI_FAIL;
    if (mint(d, d->ada, "role=member", &s->token[0]) != 0 ||
        mint(d, d->linus, "role=member", &s->token[1]) != 0)
        return CLI_FAIL;
    demo_ok(d, "tokens minted (like `cstack token --secret S --sub ID --claim role=member`):");
    demo_style(d, DEMO_DIM);
    demo_say(d, "         Ada:   %.40s...\n         Linus: %.40s...", s->token[0], s->token[1]);
    demo_unstyle(d);
    return 0;
}

/* ---- step: two devices sign in --------------------------------------------- */

static int expect_titles(demo *d, demo_device *dev, const char *const *titles, size_t n)
{
    int64_t count = -1;
    if (cstack_count(dev->db, "Note", NULL, &count) != CSTACK_OK)
        return demo_expect(d, 0, "to count the notes of %s", dev->name);
    if (demo_expect(d, count == (int64_t)n, "%zu notes on %s, found %lld", n, dev->name,
                    (long long)count) != 0)
        return CLI_FAIL;
    char buf[64];
    for (size_t i = 0; i < n; i++)
        if (demo_expect(d, *demo_dev_field(d, dev, titles[i], "title", buf, sizeof buf),
                        "\"%s\" on %s", titles[i], dev->name) != 0)
            return CLI_FAIL;
    return 0;
}

int demo_step_sign_in(demo *d)
{
    demo_say(d, "Ada signs in on two new devices.  cstack_sync_run_once() pushes what the\n"
                "device has not uploaded, pulls until caught up, and compares a checksum of\n"
                "the device's rows with the server's checkpoint.");
    static const char *const ada_notes[] = {"Buy the SQLite book", "Coffee beans",
                                            "Conference ticket"};
    for (int i = DEV_LAPTOP; i <= DEV_PHONE; i++) {
        demo_device *dev = &d->sync->dev[i];
        cstack_sync_status st;
        if (demo_dev_open(d, dev) != 0)
            return CLI_FAIL;
        int rc = demo_dev_sync(d, dev, &st);
        if (demo_expect(d, rc == CSTACK_OK, "%s to sync: %s", dev->name, cstack_errmsg(dev->db)) !=
                0 ||
            demo_expect(d, st.checksum_ok == 1, "%s to match the server", dev->name) != 0 ||
            expect_titles(d, dev, ada_notes, 3) != 0)
            return CLI_FAIL;
        demo_ok(d, "%s: %lld rows downloaded, checksum matches the server's", dev->name,
                (long long)st.rows_applied);
    }
    demo_ok(d, "each holds Ada's 3 live notes (and both accounts), never Linus's:\n");
    return demo_dev_show(d, &d->sync->dev[DEV_PHONE]);
}

/* ---- step: offline edits ----------------------------------------------------- */

typedef struct demo_edit {
    int dev;
    const char *title;
    const char *field; /* NULL: delete the note */
    const char *value;
    const char *why;
} demo_edit;

/* In this order, a few milliseconds apart: the phone's body of "Conference
 * ticket" is written after the laptop's, so it is the later write. */
static const demo_edit EDITS[] = {
    {DEV_LAPTOP, "Coffee beans", "body", "Ethiopian, whole bean", "different fields"},
    {DEV_PHONE, "Coffee beans", "price", "11.00", "of one note"},
    {DEV_LAPTOP, "Conference ticket", "body", "Bought: row 12", "the same field"},
    {DEV_PHONE, "Conference ticket", "body", "Sold out: on the waitlist", "(written later)"},
    {DEV_LAPTOP, "Buy the SQLite book", NULL, NULL, "a delete"},
    {DEV_PHONE, "Buy the SQLite book", "price", "12.00", "an edit of the deleted note"},
};
#define NEDITS (sizeof EDITS / sizeof EDITS[0])

static int apply_edit(demo *d, const demo_edit *e)
{
    demo_device *dev = &d->sync->dev[e->dev];
    cstack_field_value key[] = {{"id", cstack_v_text(demo_note_id(d, e->title))}};
    cstack_field_value set[] = {{e->field, cstack_v_text(e->value)}};
    cstack_data where = DEMO_DATA(key), data = DEMO_DATA(set);
    int rc = e->field ? cstack_update(dev->db, "Note", &where, &data, NULL)
                      : cstack_delete(dev->db, "Note", &where, NULL);
    sleep_ms(3); /* distinct clocks, so "later" is unambiguous */
    return demo_expect(d, rc == CSTACK_OK, "%s to edit \"%s\": %s", dev->name, e->title,
                       cstack_errmsg(dev->db));
}

static int create_dentist(demo *d)
{
    demo_device *phone = &d->sync->dev[DEV_PHONE];
    cstack_field_value f[] = {{"title", cstack_v_text("Dentist")},
                              {"body", cstack_v_text("Tuesday 9:30")},
                              {"ownerId", cstack_v_text(d->ada)}};
    cstack_data data = DEMO_DATA(f);
    int rc = cstack_create(phone->db, "Note", &data, NULL);
    return demo_expect(d, rc == CSTACK_OK, "the phone to create a note: %s",
                       cstack_errmsg(phone->db));
}

static int start_sessions(demo *d)
{
    for (int i = DEV_LAPTOP; i <= DEV_PHONE; i++) {
        demo_device *dev = &d->sync->dev[i];
        cstack_sync_options o = {.url = d->sync->url,
                                 .token = d->sync->token[0],
                                 .retry_min_ms = 100,
                                 .retry_max_ms = 400,
                                 .poll_ms = 20,
                                 .connect_timeout_ms = 2000};
        int rc = cstack_sync_start(dev->db, &o, NULL, NULL, &dev->session);
        if (demo_expect(d, rc == CSTACK_OK, "a session for %s: %s", dev->name,
                        cstack_errmsg(dev->db)) != 0)
            return CLI_FAIL;
    }
    return 0;
}

static void print_edits(demo *d)
{
    const char *cells[NEDITS + 1][4];
    char change[NEDITS + 1][80];
    for (size_t i = 0; i < NEDITS; i++) {
        const demo_edit *e = &EDITS[i];
        cells[i][0] = d->sync->dev[e->dev].name;
        cells[i][1] = e->title;
        if (e->field)
            snprintf(change[i], sizeof change[i], "%s = %s", e->field, e->value);
        else
            snprintf(change[i], sizeof change[i], "deleted");
        cells[i][2] = change[i];
        cells[i][3] = e->why;
    }
    cells[NEDITS][0] = d->sync->dev[DEV_PHONE].name;
    cells[NEDITS][1] = "Dentist";
    cells[NEDITS][2] = "created";
    cells[NEDITS][3] = "a new note";
    static const char *const headers[] = {"device", "note", "change", "conflict"};
    demo_grid(d, headers, 4, &cells[0][0], NEDITS + 1);
}

int demo_step_offline(demo *d)
{
    demo_say(d, "The server goes down.  Both devices keep reading and writing locally, and\n"
                "their edits conflict: different fields of one note, the same field, and an\n"
                "edit of a note the other device deletes.");
    cstack_server_stop(d->sync->srv);
    d->sync->srv = NULL;
    for (size_t i = 0; i < NEDITS; i++)
        if (apply_edit(d, &EDITS[i]) != 0)
            return CLI_FAIL;
    if (create_dentist(d) != 0)
        return CLI_FAIL;
    print_edits(d);
    putchar('\n');
    demo_device *laptop = &d->sync->dev[DEV_LAPTOP], *phone = &d->sync->dev[DEV_PHONE];
    int rc = demo_dev_sync(d, laptop, NULL);
    if (demo_expect(d, rc == CSTACK_EIO,
                    "the laptop's sync to fail while the server is down, "
                    "got %s",
                    cstack_errname(rc)) != 0)
        return CLI_FAIL;
    demo_ok(d, "syncing now fails (%s): %.60s...", cstack_errname(rc), cstack_errmsg(laptop->db));
    int64_t pl = 0, pp = 0;
    cstack_upload_pending(laptop->db, &pl);
    cstack_upload_pending(phone->db, &pp);
    if (demo_expect(d, pl == 3 && pp == 4, "3 and 4 queued transactions, got %lld and %lld",
                    (long long)pl, (long long)pp) != 0)
        return CLI_FAIL;
    demo_ok(d,
            "nothing is lost: %lld transactions wait in the laptop's upload queue, %lld in\n"
            "         the phone's (durable: they survive a restart)",
            (long long)pl, (long long)pp);
    if (start_sessions(d) != 0)
        return CLI_FAIL;
    demo_ok(d, "both devices now run a sync session (cstack_sync_start): a thread that\n"
               "         retries with backoff until the server answers");
    return 0;
}
