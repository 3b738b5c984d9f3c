/*
 * demo_converge.c -- the last steps of `cstack demo`'s sync part: the server
 * comes back and the devices converge, a third device syncs from scratch,
 * a second user sees only his own notes, and every device agrees.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cstack_server.h"
#include "demo.h"

#define CONVERGE_TIMEOUT_MS 8000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Both sessions connected, nothing left to push, the same rows. */
static int converged(demo *d)
{
    demo_device *a = &d->sync->dev[DEV_LAPTOP], *b = &d->sync->dev[DEV_PHONE];
    cstack_sync_status sa, sb;
    int64_t pa = 1, pb = 1;
    if (cstack_sync_session_status(a->session, &sa) != 0 ||
        cstack_sync_session_status(b->session, &sb) != 0 || sa.state != CSTACK_SYNC_CONNECTED ||
        sb.state != CSTACK_SYNC_CONNECTED || cstack_upload_pending(a->db, &pa) != 0 ||
        cstack_upload_pending(b->db, &pb) != 0 || pa || pb)
        return 0;
    char *da = demo_dev_dump(a), *db = demo_dev_dump(b);
    int same = da && db && strcmp(da, db) == 0;
    free(da);
    free(db);
    return same;
}

/* Restarts the server on its old port so the sessions find it by
 * themselves; should the port have been taken meanwhile, the sessions are
 * restarted on the new one. */
static int restart_server(demo *d)
{
    int old = d->sync->port;
    if (demo_server_start(d) == 0)
        return 0;
    d->sync->port = 0;
    if (demo_server_start(d) != 0)
        return CLI_FAIL;
    demo_say(d, "(port %d was taken; the sessions move to %s)", old, d->sync->url);
    for (int i = DEV_LAPTOP; i <= DEV_PHONE; i++) {
        demo_device *dev = &d->sync->dev[i];
        cstack_sync_stop(dev->session);
        cstack_sync_options o = {.url = d->sync->url,
                                 .token = d->sync->token[0],
                                 .retry_min_ms = 100,
                                 .retry_max_ms = 400,
                                 .poll_ms = 20};
        dev->session = NULL;
        if (cstack_sync_start(dev->db, &o, NULL, NULL, &dev->session) != CSTACK_OK)
            return demo_expect(d, 0, "a session for %s", dev->name);
    }
    return 0;
}

typedef struct outcome {
    const char *title, *field, *want, *why;
} outcome;

static const outcome OUTCOMES[] = {
    {"Coffee beans", "body", "Ethiopian, whole bean", "both edits kept: different fields"},
    {"Coffee beans", "price", "11.00", "(body from the laptop, price from the phone)"},
    {"Conference ticket", "body", "Sold out: on the waitlist",
     "same field: the later write wins everywhere"},
    {"Buy the SQLite book", "title", "", "stays deleted: an edit does not resurrect it"},
    {"Dentist", "body", "Tuesday 9:30", "created offline, now on both"},
};
#define NOUTCOMES (sizeof OUTCOMES / sizeof OUTCOMES[0])

static int check_outcomes(demo *d)
{
    const char *cells[NOUTCOMES][4];
    char vals[NOUTCOMES][64], label[NOUTCOMES][64];
    char other[64];
    for (size_t i = 0; i < NOUTCOMES; i++) {
        const outcome *o = &OUTCOMES[i];
        demo_dev_field(d, &d->sync->dev[DEV_LAPTOP], o->title, o->field, vals[i], sizeof vals[i]);
        demo_dev_field(d, &d->sync->dev[DEV_PHONE], o->title, o->field, other, sizeof other);
        if (demo_expect(d, strcmp(vals[i], o->want) == 0 && strcmp(other, o->want) == 0,
                        "%s.%s to be \"%s\" on both devices, got \"%s\" and \"%s\"", o->title,
                        o->field, o->want, vals[i], other) != 0)
            return CLI_FAIL;
        snprintf(label[i], sizeof label[i], "%s", o->want[0] ? o->field : "(not live)");
        cells[i][0] = o->title;
        cells[i][1] = label[i];
        cells[i][2] = o->want[0] ? vals[i] : "";
        cells[i][3] = o->why;
    }
    static const char *const headers[] = {"note", "field", "on both devices", "why"};
    demo_grid(d, headers, 4, &cells[0][0], NOUTCOMES);
    return 0;
}

int demo_step_converge(demo *d)
{
    demo_say(d, "The server comes back on the same address.  The sessions notice on their\n"
                "next retry, push their queues (the server checks every row against the\n"
                "write policies), pull what the other device pushed and follow the stream.");
    if (restart_server(d) != 0)
        return CLI_FAIL;
    int64_t t0 = mono_ms();
    while (!converged(d) && mono_ms() - t0 < CONVERGE_TIMEOUT_MS)
        sleep_ms(20);
    if (demo_expect(d, converged(d), "the devices to converge within %d ms", CONVERGE_TIMEOUT_MS) !=
        0)
        return CLI_FAIL;
    demo_ok(d, "converged %lld ms after the server came back; merge is per field:\n",
            (long long)(mono_ms() - t0));
    if (check_outcomes(d) != 0)
        return CLI_FAIL;
    putchar('\n');
    for (int i = DEV_LAPTOP; i <= DEV_PHONE; i++) {
        cstack_sync_status st;
        cstack_sync_session_status(d->sync->dev[i].session, &st);
        demo_ok(d, "%s: %s, %" PRId64 " transactions pushed, %" PRId64 " rows merged",
                d->sync->dev[i].name, cstack_sync_state_name(st.state), st.pushed, st.rows_applied);
    }
    putchar('\n');
    return demo_dev_show(d, &d->sync->dev[DEV_LAPTOP]);
}

/* ---- a third device ---------------------------------------------------------- */

typedef struct progress {
    demo *d;
    int64_t bytes, rows;
    int checked;
} progress;

static void on_progress(const cstack_sync_status *st, void *ctx)
{
    progress *p = ctx;
    if (st->event == CSTACK_SYNC_EV_PROGRESS && st->bytes_received > p->bytes)
        p->bytes = st->bytes_received;
    if (st->event == CSTACK_SYNC_EV_APPLIED)
        p->rows = st->rows_applied;
    if (st->event == CSTACK_SYNC_EV_CHECKPOINT)
        p->checked = st->checksum_ok;
}

int demo_step_initial(demo *d)
{
    demo_say(d, "Ada adds a tablet.  Its first sync downloads her whole visible state in\n"
                "one compact binary changeset (progress is reported through the status\n"
                "callback; `cstack sync` draws it as a bar on a terminal).");
    demo_device *tab = &d->sync->dev[DEV_TABLET];
    if (demo_dev_open(d, tab) != 0)
        return CLI_FAIL;
    progress p = {d, 0, 0, -1};
    cstack_sync_options o = {.url = d->sync->url, .token = d->sync->token[0]};
    cstack_sync_status st;
    int64_t t0 = mono_ms();
    int rc = cstack_sync_run_once(tab->db, &o, on_progress, &p, &st);
    if (demo_expect(d, rc == CSTACK_OK, "the tablet to sync: %s", cstack_errmsg(tab->db)) != 0 ||
        demo_expect(d, p.checked == 1, "the tablet's checksum to match the server's") != 0)
        return CLI_FAIL;
    demo_ok(d, "initial sync: %" PRId64 " rows merged in %lld ms, checksum matches the server's",
            st.rows_applied, (long long)(mono_ms() - t0));
    char *a = demo_dev_dump(&d->sync->dev[DEV_LAPTOP]), *b = demo_dev_dump(tab);
    int same = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    if (demo_expect(d, same, "the tablet to hold exactly the laptop's rows") != 0)
        return CLI_FAIL;
    demo_ok(d, "the tablet holds exactly what the laptop holds");
    return 0;
}

/* ---- a second user ----------------------------------------------------------- */

/* Notes on `dev` owned by `owner`. */
static int64_t notes_of(demo_device *dev, const char *owner)
{
    cstack_filter *f = cstack_filter_cmp("ownerId", CSTACK_OP_EQ, 0, cstack_v_text(owner));
    int64_t n = -1;
    if (cstack_count(dev->db, "Note", f, &n) != CSTACK_OK)
        n = -1;
    cstack_filter_free(f);
    return n;
}

static int linus_writes(demo *d, demo_device *lin)
{
    cstack_field_value f[] = {{"title", cstack_v_text("Plan the merge window")},
                              {"ownerId", cstack_v_text(d->linus)}};
    cstack_data data = DEMO_DATA(f);
    cstack_sync_status st;
    int rc = cstack_create(lin->db, "Note", &data, NULL);
    if (rc == CSTACK_OK)
        rc = demo_dev_sync(d, lin, &st);
    if (demo_expect(d, rc == CSTACK_OK && st.pushed == 1, "Linus's new note to be pushed: %s",
                    cstack_errmsg(lin->db)) != 0)
        return CLI_FAIL;
    /* Ada's sessions are streaming: give the server time to (not) send it. */
    demo_device *laptop = &d->sync->dev[DEV_LAPTOP];
    cstack_sync_status ls;
    int64_t t0 = mono_ms();
    do {
        sleep_ms(20);
        cstack_sync_session_status(laptop->session, &ls);
    } while (ls.cursor < st.cursor && mono_ms() - t0 < 2000);
    char buf[64];
    if (demo_expect(d,
                    !*demo_dev_field(d, laptop, "Plan the merge window", "title", buf, sizeof buf),
                    "Ada's laptop never to receive Linus's note") != 0)
        return CLI_FAIL;
    demo_ok(d,
            "Linus writes \"Plan the merge window\"; Ada's streaming laptop moves past\n"
            "         it (cursor %" PRId64 ") without ever receiving it",
            ls.cursor);
    return 0;
}

int demo_step_isolation(demo *d)
{
    demo_say(d, "Linus signs in on his laptop.  The schema says\n"
                "  @@allow('read', auth() != null && ownerId == auth().id)\n"
                "so the server sends him his notes and nobody else's (accounts are readable\n"
                "by every signed-in user).");
    demo_device *lin = &d->sync->dev[DEV_LINUS];
    cstack_sync_status st;
    if (demo_dev_open(d, lin) != 0)
        return CLI_FAIL;
    int rc = demo_dev_sync(d, lin, &st);
    if (demo_expect(d, rc == CSTACK_OK, "Linus's laptop to sync: %s", cstack_errmsg(lin->db)) ||
        demo_expect(d, st.checksum_ok == 1, "Linus's checksum to match the server's view") ||
        demo_expect(d, notes_of(lin, d->linus) == 2 && notes_of(lin, d->ada) == 0,
                    "Linus to see his 2 notes and none of Ada's"))
        return CLI_FAIL;
    if (demo_dev_show(d, lin) != 0)
        return CLI_FAIL;
    demo_ok(d, "2 notes, both his; Ada's %lld are not on his device",
            (long long)notes_of(&d->sync->dev[DEV_LAPTOP], d->ada));
    return linus_writes(d, lin);
}

/* ---- agreement --------------------------------------------------------------- */

typedef struct final_state {
    char *dump;
    uint64_t sum;
    int64_t notes;
    int matches;
} final_state;

static int final_sync(demo *d, demo_device *dev, final_state *f)
{
    cstack_sync_stop(dev->session);
    dev->session = NULL;
    cstack_sync_status st;
    int rc = demo_dev_sync(d, dev, &st);
    if (demo_expect(d, rc == CSTACK_OK, "%s to sync: %s", dev->name, cstack_errmsg(dev->db)))
        return CLI_FAIL;
    f->matches = st.checksum_ok == 1;
    f->dump = demo_dev_dump(dev);
    cstack_count(dev->db, "Note", NULL, &f->notes);
    cstack_sync_checksum(dev->db, &f->sum);
    return demo_expect(d, f->dump != NULL, "a dump of %s", dev->name);
}

static int print_agreement(demo *d, final_state *f)
{
    const char *cells[DEMO_NDEVICES][5];
    char notes[DEMO_NDEVICES][16], sum[DEMO_NDEVICES][20];
    for (int i = 0; i < DEMO_NDEVICES; i++) {
        snprintf(notes[i], sizeof notes[i], "%" PRId64, f[i].notes);
        snprintf(sum[i], sizeof sum[i], "%016" PRIx64, f[i].sum);
        cells[i][0] = d->sync->dev[i].name;
        cells[i][1] = d->sync->dev[i].linus ? "Linus" : "Ada";
        cells[i][2] = notes[i];
        cells[i][3] = sum[i];
        cells[i][4] = f[i].matches ? "yes" : "NO";
    }
    static const char *const headers[] = {"device", "user", "notes", "checksum",
                                          "matches the server"};
    demo_grid(d, headers, 5, &cells[0][0], DEMO_NDEVICES);
    return 0;
}

int demo_step_agree(demo *d)
{
    demo_say(d, "The sessions stop; each device syncs once more and compares its checksum\n"
                "with the server's view for its user.");
    final_state f[DEMO_NDEVICES];
    memset(f, 0, sizeof f);
    int rc = 0;
    for (int i = 0; i < DEMO_NDEVICES && rc == 0; i++)
        rc = final_sync(d, &d->sync->dev[i], &f[i]);
    if (rc == 0) {
        print_agreement(d, f);
        putchar('\n');
        int same = strcmp(f[0].dump, f[1].dump) == 0 && strcmp(f[0].dump, f[2].dump) == 0;
        int all = f[0].matches && f[1].matches && f[2].matches && f[3].matches;
        demo_device *lin = &d->sync->dev[DEV_LINUS];
        rc = demo_expect(d, same, "Ada's three devices to hold identical rows") ||
             demo_expect(d, all, "every device to match the server") ||
             demo_expect(d, notes_of(lin, d->ada) == 0, "none of Ada's notes on Linus's laptop") ||
             demo_expect(d, notes_of(&d->sync->dev[DEV_LAPTOP], d->linus) == 0,
                         "none of Linus's notes on Ada's devices");
    }
    if (rc == 0) {
        demo_ok(d, "Ada's laptop, phone and tablet hold identical rows (same checksum)");
        demo_ok(d, "every device's checksum equals the server's checkpoint for its user");
        demo_ok(d, "Linus holds only his notes; Ada's devices never saw his");
    }
    for (int i = 0; i < DEMO_NDEVICES; i++)
        free(f[i].dump);
    return rc ? CLI_FAIL : 0;
}
