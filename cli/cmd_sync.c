/*
 * cmd_sync.c -- `cstack sync`: keeps a database in step with a `cstack serve`
 * server through the library's sync client (cstack_sync_* in cstack.h).
 *
 * With --once it pushes, pulls until caught up and exits; otherwise it runs a
 * session until SIGINT or SIGTERM.  On a terminal the first download shows a
 * progress bar; otherwise (a log, a pipe) it prints plain status lines.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char SYNC_USAGE[] =
    "usage: cstack sync --schema FILE --db DB --server URL [--token T] [--once]\n"
    "\n"
    "Syncs DB with a cstack server (`cstack serve`): pushes the local changes\n"
    "not yet uploaded, pulls the server's changes until caught up, then (without\n"
    "--once) follows the server's stream of changes and pushes new local writes\n"
    "as they are made, reconnecting with backoff, until interrupted (SIGINT or\n"
    "SIGTERM).  A change the server refuses (a write policy forbids it, it is\n"
    "invalid) is reported and undone (its rows return to the server's state),\n"
    "and each refused row is kept with the reason in the table _cstack_refusals;\n"
    "later changes still go through.  If the server runs another schema,\n"
    "nothing is pushed and local changes stay queued until the app or the\n"
    "server is upgraded.  On a terminal the first download shows a\n"
    "progress bar; otherwise one line is printed per event.  When the data\n"
    "differs from the server's at a checkpoint (say, another program changed\n"
    "the file), the models that differ are pulled again (a self-repair); if\n"
    "they still differ the sync fails with `diverged`.\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema (the server must run the same one)\n"
    "  --db DB         the SQLite database file (created or migrated first)\n"
    "  --server URL    the server, e.g. http://127.0.0.1:8080\n"
    "  --token T       the bearer token (JWT); default: $CSTACK_TOKEN\n"
    "  --once          push, pull until caught up, and exit\n"
    "\n"
    "Exit status: 0 synced (or stopped by a signal), 1 the server could not be\n"
    "reached or refused the session, the data still differs from the server's\n"
    "after a self-repair (diverged), or (with --once) a change was refused,\n"
    "2 bad command line.\n";

typedef struct sync_ui {
    int tty; /* stdout is a terminal: draw a progress bar */
    int bar; /* a bar is on the screen and must be cleared first */
    int64_t last_cursor;
    int64_t checked_cursor; /* of the last matching checkpoint printed */
    int streaming;          /* "connected" was printed and still holds */
    int once;
} sync_ui;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void clear_bar(sync_ui *ui)
{
    if (ui->bar) {
        fputs("\r\033[K", stdout);
        ui->bar = 0;
    }
}

static void draw_bar(sync_ui *ui, const cstack_sync_status *st)
{
    double mb = (double)st->bytes_received / 1e6;
    static const char *const PHASES[] = {"", "  (server preparing)", "  (receiving)",
                                         "  (applying)"};
    const char *phase = (unsigned)st->phase < 4 ? PHASES[st->phase] : "";
    if (st->rows_total > 0) {
        /* Rows, as the server counts what remains: the bar moves through
         * the apply too, and across the pages of one catch-up. */
        int width = 30;
        int64_t done = st->rows_done > st->rows_total ? st->rows_total : st->rows_done;
        int fill = (int)(done * width / st->rows_total);
        printf("\r  initial sync [%.*s%*s] %3d%%  %" PRId64 "/%" PRId64 " rows  %.1f MB%s\033[K",
               fill, "##############################", width - fill, "",
               (int)(done * 100 / st->rows_total), st->rows_done, st->rows_total, mb, phase);
    } else if (st->bytes_total > 0) {
        int width = 30;
        int64_t done = st->bytes_received > st->bytes_total ? st->bytes_total : st->bytes_received;
        int fill = (int)(done * width / st->bytes_total);
        printf("\r  initial sync [%.*s%*s] %3d%%  %.1f/%.1f MB  %" PRId64 " rows\033[K", fill,
               "##############################", width - fill, "",
               (int)(done * 100 / st->bytes_total), mb, (double)st->bytes_total / 1e6,
               st->rows_applied);
    } else {
        printf("\r  initial sync  %.1f MB  %" PRId64 " rows%s\033[K", mb, st->rows_applied, phase);
    }
    fflush(stdout);
    ui->bar = 1;
}

/* One line for an event worth a line; progress only on a terminal. */
static void on_status(const cstack_sync_status *st, void *ctx)
{
    sync_ui *ui = ctx;
    if (st->event == CSTACK_SYNC_EV_PROGRESS ||
        (st->event == CSTACK_SYNC_EV_APPLIED && st->initial)) {
        if (ui->tty && st->initial)
            draw_bar(ui, st);
        return;
    }
    clear_bar(ui);
    switch (st->event) {
    case CSTACK_SYNC_EV_STATE:
        /* Pushing while streaming passes through "uploading"; only a new
         * connection is worth a line. */
        if (st->state == CSTACK_SYNC_CONNECTED && !ui->streaming)
            printf("connected: following the server's changes (cursor %" PRId64 ")\n", st->cursor);
        else if (st->state == CSTACK_SYNC_OFFLINE && !ui->once)
            printf("offline: retrying (attempt %" PRId64 ")\n", st->attempts);
        if (st->state == CSTACK_SYNC_CONNECTED)
            ui->streaming = 1;
        else if (st->state != CSTACK_SYNC_UPLOADING)
            ui->streaming = 0;
        break;
    case CSTACK_SYNC_EV_PUSHED:
        printf("pushed local transaction %" PRId64 "\n", st->version);
        break;
    case CSTACK_SYNC_EV_REJECTED:
        fprintf(stderr, "cstack sync: %s (undone; the refused rows are in _cstack_refusals)\n",
                st->last_error);
        break;
    case CSTACK_SYNC_EV_APPLIED:
        printf("merged the server's changes up to cursor %" PRId64 "\n", st->cursor);
        break;
    case CSTACK_SYNC_EV_CAUGHT_UP:
        if (st->cursor != ui->last_cursor || ui->once)
            printf("caught up at cursor %" PRId64 " (%" PRId64 " rows merged)\n", st->cursor,
                   st->rows_applied);
        ui->last_cursor = st->cursor;
        break;
    case CSTACK_SYNC_EV_CHECKPOINT:
        /* Checkpoints repeat every few seconds: a match is news only when
         * the cursor moved. */
        if (st->checksum_ok == 1 && st->cursor != ui->checked_cursor)
            printf("checkpoint: the database matches the server at cursor %" PRId64 "\n",
                   st->cursor);
        else if (st->checksum_ok == 0)
            fprintf(stderr, "cstack sync: %s: repairing\n", st->last_error);
        ui->checked_cursor = st->checksum_ok == 1 ? st->cursor : -1;
        break;
    case CSTACK_SYNC_EV_HIDDEN:
        printf("hid %" PRId64 " row(s) that lost a unique value or a parent (kind hidden_rows "
               "lists them)\n",
               st->hidden);
        break;
    case CSTACK_SYNC_EV_REPAIRED:
        printf("repaired: pulled %s again (%" PRId64 " local rows forgotten and re-pulled); %s\n",
               st->repaired_names[0] ? st->repaired_names : "every model", st->repaired_rows,
               st->diverged ? "still diverged" : "the database matches the server");
        break;
    case CSTACK_SYNC_EV_ERROR:
        /* With --once the failure ends the run and is reported once, there. */
        if (!ui->once)
            fprintf(stderr, "cstack sync: %s\n", st->last_error);
        break;
    default:
        break;
    }
    fflush(stdout);
}

static int run_once(cstack *db, const cstack_sync_options *o, sync_ui *ui)
{
    cstack_sync_status st;
    memset(&st, 0, sizeof st);
    int rc = cstack_sync_run_once(db, o, on_status, ui, &st);
    clear_bar(ui);
    if (rc != CSTACK_OK) {
        fprintf(stderr, "cstack sync: failed (%s): %s\n", cstack_errname(rc), cstack_errmsg(db));
        return CLI_FAIL;
    }
    printf("synced: %" PRId64 " pushed, %" PRId64 " refused, %" PRId64
           " rows merged, cursor %" PRId64 "%s\n",
           st.pushed, st.rejected, st.rows_applied, st.cursor,
           st.repaired_models > 0 ? " (after a self-repair)" : "");
    if (st.rejected > 0) {
        fprintf(stderr, "cstack sync: %" PRId64 " local transaction(s) refused by the server\n",
                st.rejected);
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int run_session(cstack *db, const cstack_sync_options *o, sync_ui *ui)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cstack_sync_session *s = NULL;
    int rc = cstack_sync_start(db, o, on_status, ui, &s);
    if (rc != CSTACK_OK) {
        fprintf(stderr, "cstack sync: %s\n", cstack_errmsg(db));
        return CLI_FAIL;
    }
    const struct timespec tick = {0, 100 * 1000000L};
    while (!stop_signal)
        nanosleep(&tick, NULL);
    cstack_sync_stop(s);
    clear_bar(ui);
    printf("stopped by %s\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    return CLI_OK;
}

int cmd_sync(int argc, char **argv)
{
    const char *schema = NULL, *dbpath = NULL, *url = NULL, *token = NULL;
    int once = 0;
    const cli_opt opts[] = {{"--schema", &schema, NULL},
                            {"--db", &dbpath, NULL},
                            {"--server", &url, NULL},
                            {"--token", &token, NULL},
                            {"--once", NULL, &once}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, sizeof opts / sizeof opts[0], 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(SYNC_USAGE, stdout);
        return CLI_OK;
    }
    if (!token)
        token = getenv("CSTACK_TOKEN");
    if (!schema || !dbpath || !url)
        return cli_usage_error(argv[0], "--schema, --db and --server are required");
    if (!token || !*token)
        return cli_usage_error(argv[0], "a token is required (--token or $CSTACK_TOKEN)");
    cstack *db = NULL;
    if (cli_open_db(argv[0], schema, dbpath, NULL, &db) != CLI_OK)
        return CLI_FAIL;
    sync_ui ui = {
        .tty = isatty(STDOUT_FILENO), .last_cursor = -1, .checked_cursor = -1, .once = once};
    cstack_sync_options o = {.url = url, .token = token};
    rc = once ? run_once(db, &o, &ui) : run_session(db, &o, &ui);
    cstack_close(db);
    return rc;
}
