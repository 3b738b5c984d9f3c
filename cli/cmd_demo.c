/*
 * cmd_demo.c -- `cstack demo`: builds a small notes database in a temporary
 * directory and walks through what cstack does, step by step.
 *
 * The example schemas are compiled in (below) so the demo runs from any
 * directory; they must stay byte-identical to examples/notes.cstack and
 * examples/notes_v2.cstack, which tests/test_cli.c checks by comparing the
 * files the demo writes into its --keep directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

const char DEMO_SCHEMA_V1[] =
    "// notes.cstack -- the example schema of `cstack demo`: a small notes app.\n"
    "// Accounts own notes; a note has a price, tags and a status, is soft-deleted,\n"
    "// journalled and announced to subscribers.  The demo embeds this exact text.\n"
    "\n"
    "datasource db {\n"
    "  provider = \"sqlite\"\n"
    "  url      = env(\"DATABASE_URL\")\n"
    "}\n"
    "\n"
    "/// Who is signed in: the shape of auth() in the policies below.  Users have\n"
    "/// the role \"member\"; an \"admin\" may read and write every row (the demo\n"
    "/// signs its first database in as one to upload both users' notes).\n"
    "auth User {\n"
    "  id   Uuid\n"
    "  role String\n"
    "}\n"
    "\n"
    "enum Status {\n"
    "  OPEN\n"
    "  DONE\n"
    "}\n"
    "\n"
    "/// A person who writes notes.\n"
    "model Account {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  email     String   @unique\n"
    "  name      String\n"
    "  createdAt DateTime @default(now())\n"
    "  notes     Note[]\n"
    "\n"
    "  @@allow('read', auth() != null)\n"
    "  @@allow('create,update', id == auth().id)\n"
    "  @@allow('all', auth().role == 'admin')\n"
    "}\n"
    "\n"
    "/// A note.  Deleting one only stamps deletedAt; reads skip it from then on.\n"
    "model Note {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  title     String\n"
    "  body      String?\n"
    "  status    Status   @default(OPEN)\n"
    "  price     Decimal?\n"
    "  tags      Json?\n"
    "  pinned    Boolean  @default(false)\n"
    "  createdAt DateTime @default(now())\n"
    "  updatedAt DateTime @updatedAt\n"
    "  deletedAt DateTime?\n"
    "  ownerId   Uuid\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "\n"
    "  @@index([ownerId, createdAt])\n"
    "  @@unique([ownerId, title])\n"
    "  @@allow('read', auth() != null && ownerId == auth().id)\n"
    "  @@allow('create,update,delete', ownerId == auth().id)\n"
    "  @@allow('all', auth().role == 'admin')\n"
    "  @@deny('delete', pinned)\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@audit\n"
    "  @@emit(created, updated, deleted)\n"
    "}\n";

const char DEMO_SCHEMA_V2[] =
    "// notes_v2.cstack -- the second version of notes.cstack, used by the\n"
    "// migration step of `cstack demo`: notes gain an optional due date and an\n"
    "// index on (status, dueAt).  Both are additive, so an existing database is\n"
    "// upgraded in place and keeps every row.  The demo embeds this exact text.\n"
    "\n"
    "datasource db {\n"
    "  provider = \"sqlite\"\n"
    "  url      = env(\"DATABASE_URL\")\n"
    "}\n"
    "\n"
    "/// Who is signed in: the shape of auth() in the policies below.  Users have\n"
    "/// the role \"member\"; an \"admin\" may read and write every row (the demo\n"
    "/// signs its first database in as one to upload both users' notes).\n"
    "auth User {\n"
    "  id   Uuid\n"
    "  role String\n"
    "}\n"
    "\n"
    "enum Status {\n"
    "  OPEN\n"
    "  DONE\n"
    "}\n"
    "\n"
    "/// A person who writes notes.\n"
    "model Account {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  email     String   @unique\n"
    "  name      String\n"
    "  createdAt DateTime @default(now())\n"
    "  notes     Note[]\n"
    "\n"
    "  @@allow('read', auth() != null)\n"
    "  @@allow('create,update', id == auth().id)\n"
    "  @@allow('all', auth().role == 'admin')\n"
    "}\n"
    "\n"
    "/// A note.  Deleting one only stamps deletedAt; reads skip it from then on.\n"
    "model Note {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  title     String\n"
    "  body      String?\n"
    "  status    Status   @default(OPEN)\n"
    "  price     Decimal?\n"
    "  tags      Json?\n"
    "  pinned    Boolean  @default(false)\n"
    "  createdAt DateTime @default(now())\n"
    "  updatedAt DateTime @updatedAt\n"
    "  deletedAt DateTime?\n"
    "  dueAt     DateTime?\n"
    "  ownerId   Uuid\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "\n"
    "  @@index([ownerId, createdAt])\n"
    "  @@index([status, dueAt])\n"
    "  @@unique([ownerId, title])\n"
    "  @@allow('read', auth() != null && ownerId == auth().id)\n"
    "  @@allow('create,update,delete', ownerId == auth().id)\n"
    "  @@allow('all', auth().role == 'admin')\n"
    "  @@deny('delete', pinned)\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@audit\n"
    "  @@emit(created, updated, deleted)\n"
    "}\n";

static const char DEMO_USAGE[] =
    "usage: cstack demo [--keep DIR]\n"
    "\n"
    "Builds a small notes database from the example schema (examples/notes.cstack)\n"
    "and shows, step by step, what cstack does: creates with defaults, exact\n"
    "Decimals and UTC DateTimes, filtered and ordered queries, partial updates,\n"
    "soft delete, the audit journal, events and the outbox, a transaction rolled\n"
    "back, and two schema migrations (one applied, one refused).\n"
    "\n"
    "Then the same notes sync through a server on loopback (127.0.0.1): two\n"
    "devices edit them offline with conflicts, converge when the server comes\n"
    "back, a third device syncs from scratch, and a second user sees only his\n"
    "own notes.  It ends by checking that every device agrees with the server.\n"
    "\n"
    "options:\n"
    "  --keep DIR   work in DIR (created when missing) and keep the database and\n"
    "               the schema files there; an old notes.db in DIR is replaced.\n"
    "               Without it a temporary directory is used and removed.\n"
    "\n"
    "Exit status: 0 every step worked, 1 a step failed, 2 bad command line.\n";

/* Every file the demo may create in its directory. */
static const char *const DEMO_FILES[] = {
    "notes.db",     "notes.db-wal",    "notes.db-shm",    "notes.db-journal",
    "notes.cstack", "notes_v2.cstack", "notes_v3.cstack",
    /* the sync part (demo_sync.c) */
    "server.db",       "server.db-wal",   "server.db-shm",
    "ada-laptop.db",   "ada-laptop.db-wal",   "ada-laptop.db-shm",
    "ada-phone.db",    "ada-phone.db-wal",    "ada-phone.db-shm",
    "ada-tablet.db",   "ada-tablet.db-wal",   "ada-tablet.db-shm",
    "linus-laptop.db", "linus-laptop.db-wal", "linus-laptop.db-shm",
};
#define DEMO_NFILES (sizeof DEMO_FILES / sizeof DEMO_FILES[0])

const char *demo_path(const demo *d, const char *name)
{
    static char path[sizeof d->dir + 64];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    return path;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

int demo_reopen(demo *d, const char *name, const char *text)
{
    char path[sizeof d->dir + 64];
    snprintf(path, sizeof path, "%s", demo_path(d, name));
    if (write_file(path, text) != 0)
        return demo_expect(d, 0, "to write %s: %s", path, strerror(errno));
    cstack_schema *s = NULL;
    if (cli_load_schema(path, &s) != CLI_OK)
        return demo_expect(d, 0, "%s to be a valid schema", name);
    cstack_close(d->db);
    d->db = NULL;
    int rc = cstack_open(s, demo_path(d, "notes.db"), NULL, &d->db);
    cstack_schema_free(s);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_open", rc);
    return 0;
}

/* Removes the demo's own files only, never anything else in the directory. */
static void remove_files(const demo *d, int db_only)
{
    for (size_t i = 0; i < DEMO_NFILES; i++) {
        if (db_only && !strstr(DEMO_FILES[i], ".db"))
            continue;
        unlink(demo_path(d, DEMO_FILES[i]));
    }
}

static int setup_dir(demo *d, const char *keep)
{
    if (keep) {
        if (mkdir(keep, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "cstack demo: cannot create %s: %s\n", keep, strerror(errno));
            return CLI_FAIL;
        }
        if ((size_t)snprintf(d->dir, sizeof d->dir, "%s", keep) >= sizeof d->dir) {
            fprintf(stderr, "cstack demo: directory name too long\n");
            return CLI_FAIL;
        }
        /* A database left by an earlier run would make the steps' counts
         * wrong; start from nothing. */
        remove_files(d, 1);
        return CLI_OK;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(d->dir, sizeof d->dir, "%s/cstack-demo-XXXXXX", tmp);
    if (!mkdtemp(d->dir)) {
        fprintf(stderr, "cstack demo: cannot create a directory in %s: %s\n", tmp, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static void on_event(const cstack_event *ev, void *ctx)
{
    demo *d = ctx;
    if (d->nevents == DEMO_MAX_EVENTS) {
        d->events_dropped++;
        return;
    }
    char title[64];
    demo_row_text(ev->row, "title", title, sizeof title);
    snprintf(d->events[d->nevents++], sizeof d->events[0], "%-13s %s", ev->name, title);
}

static int step_schema(demo *d)
{
    demo_say(d, "A .cstack file describes the data once.  This one has an enum, two\n"
                "models (Account and Note), a relation, indexes, access policies, soft\n"
                "delete, an audit journal and events.  It is parsed and validated in full\n"
                "before any database is touched.");
    if (demo_reopen(d, "notes.cstack", DEMO_SCHEMA_V1) != 0)
        return CLI_FAIL;
    const cstack_schema *s = cstack_schema_of(d->db);
    size_t n = cstack_schema_model_count(s);
    int rc = demo_expect(d, n == 2, "2 models, found %zu", n);
    if (rc == 0)
        demo_ok(d, "%s: models %s and %s, schema hash %.12s...", demo_path(d, "notes.cstack"),
                cstack_schema_model_name(s, 0), cstack_schema_model_name(s, 1),
                cstack_schema_hash(s));
    return rc;
}

static int step_bootstrap(demo *d)
{
    demo_say(d, "cstack_bootstrap() creates the tables and indexes, and cstack's own\n"
                "tables (audit journal, outbox, sync metadata).  It reports what it did:");
    char *report = NULL;
    int rc = cstack_bootstrap(d->db, &report);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_bootstrap", rc);
    demo_style(d, DEMO_DIM);
    demo_say(d, "%s", report ? report : "");
    demo_unstyle(d);
    cstack_free(report);
    report = NULL;
    rc = cstack_bootstrap(d->db, &report);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_bootstrap (again)", rc);
    int empty = !report || report[strspn(report, " \t\r\n")] == '\0';
    cstack_free(report);
    if (demo_expect(d, empty, "a second bootstrap to change nothing") != 0)
        return CLI_FAIL;
    demo_ok(d, "running it again changes nothing: bootstrap is idempotent");
    uint64_t sub = 0;
    rc = cstack_subscribe(d->db, "Note", on_event, d, &sub);
    if (rc != CSTACK_OK)
        return demo_fail(d, "cstack_subscribe", rc);
    demo_ok(d, "subscribed to Note events (@@emit); step 8 shows what arrived");
    return 0;
}

typedef struct demo_stepdef {
    const char *title;
    int (*run)(demo *d);
} demo_stepdef;

static const demo_stepdef STEPS[] = {
    {"Load the example schema", step_schema},
    {"Create the database", step_bootstrap},
    {"Create accounts and notes", demo_step_create},
    {"Query: filters, ordering, relations, aggregates", demo_step_query},
    {"Update part of a note", demo_step_update},
    {"Soft delete", demo_step_soft_delete},
    {"The audit journal (@@audit)", demo_step_audit},
    {"Events and the outbox (@@emit)", demo_step_events},
    {"A transaction that rolls back", demo_step_rollback},
    {"Migrate to notes_v2.cstack", demo_step_migrate},
    {"A migration that would lose data", demo_step_refuse},
    {"Start a sync server and upload the notes", demo_step_serve},
    {"Ada signs in on two devices", demo_step_sign_in},
    {"Offline: both devices edit the same notes", demo_step_offline},
    {"The server comes back: the devices converge", demo_step_converge},
    {"A third device syncs from scratch", demo_step_initial},
    {"A second user sees only his own notes", demo_step_isolation},
    {"Every device agrees", demo_step_agree},
};
#define DEMO_NSTEPS (sizeof STEPS / sizeof STEPS[0])

static void print_intro(const demo *d)
{
    demo_style(d, DEMO_BOLD);
    fputs("cstack demo", stdout);
    demo_unstyle(d);
    printf(" -- an offline-first data layer over SQLite, in %zu steps.\n", DEMO_NSTEPS);
    printf("Working in %s\n", d->dir);
}

static void print_outro(const demo *d, int kept)
{
    putchar('\n');
    demo_style(d, DEMO_BOLD);
    demo_style(d, DEMO_GREEN);
    printf("All %zu steps passed: every device agrees with the server, and Linus sees only "
           "his notes.",
           DEMO_NSTEPS);
    demo_unstyle(d);
    putchar('\n');
    if (kept) {
        printf("The databases are kept in %s.  Look inside with:\n", d->dir);
        printf("  sqlite3 %s/notes.db 'SELECT title, price, deletedAt FROM Note ORDER BY title'\n",
               d->dir);
        printf("  cstack dump --schema %s/notes_v2.cstack --db %s/notes.db\n", d->dir, d->dir);
        printf("  cstack dump --schema %s/notes_v2.cstack --db %s/ada-phone.db\n", d->dir,
               d->dir);
        printf("Sync a device yourself (Ada's phone; the server in the background):\n");
        printf("  cstack serve --schema %s/notes_v2.cstack --db %s/server.db --jwt-secret S &\n",
               d->dir, d->dir);
        printf("  TOKEN=$(cstack token --secret S --sub %s --claim role=member)\n", d->ada);
        printf("  cstack sync --schema %s/notes_v2.cstack --db %s/ada-phone.db \\\n"
               "    --server http://127.0.0.1:8080 --token \"$TOKEN\" --once\n",
               d->dir, d->dir);
    } else {
        puts("The temporary directory was removed; `cstack demo --keep DIR` keeps it.");
    }
}

static int run_steps(demo *d)
{
    for (size_t i = 0; i < DEMO_NSTEPS; i++) {
        d->step = (int)i + 1;
        d->step_title = STEPS[i].title;
        demo_heading(d);
        if (STEPS[i].run(d) != 0)
            return CLI_FAIL;
    }
    return CLI_OK;
}

static int use_colour(void)
{
    const char *term = getenv("TERM");
    return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && term && strcmp(term, "dumb") != 0;
}

int cmd_demo(int argc, char **argv)
{
    const char *keep = NULL;
    const cli_opt opts[] = {{"--keep", &keep, NULL}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, 1, 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(DEMO_USAGE, stdout);
        return CLI_OK;
    }
    demo *d = calloc(1, sizeof *d);
    if (!d) {
        fputs("cstack demo: out of memory\n", stderr);
        return CLI_FAIL;
    }
    d->colour = use_colour();
    rc = setup_dir(d, keep);
    if (rc == CLI_OK) {
        print_intro(d);
        rc = run_steps(d);
        demo_sync_free(d);
        cstack_close(d->db);
        d->db = NULL;
        if (!keep) {
            remove_files(d, 0);
            rmdir(d->dir);
        }
        if (rc == CLI_OK)
            print_outro(d, keep != NULL);
    }
    free(d);
    return rc;
}
