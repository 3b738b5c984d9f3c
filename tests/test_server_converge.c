/* test_server_converge.c -- the promise of sync through a server: whatever
 * devices write and whenever they sync, once every sync has settled each
 * device equals a fresh device of its user, and no device reports that its
 * state differs from the server's.
 *
 * Each seed starts a server (in this process, a database of its own) on the
 * schema below and gives two users two devices each (in-memory runtimes,
 * each with its own site id).  A seeded PRNG then drives steps: a random
 * device either makes a write the app of its user could attempt from what
 * that device shows (creates, re-creates of deleted ids, duplicate unique
 * names, renames, moves, deletes that cascade, joining and leaving teams,
 * notes and posts in teams another device may have deleted meanwhile), or
 * syncs through the real client (cstack_sync_run_once: push its upload
 * queue, pull from its cursor).  The server may refuse or park some writes
 * because of concurrent changes; that is part of the test.  At the end
 * every device syncs until a round in which nothing is pushed (a bounded
 * number of rounds), then each user gets a fresh device that syncs once, and:
 *
 *  - every device's visible rows (every model, sorted by key, as JSON) equal
 *    those of the fresh device of its user;
 *  - every device's last sync compared its checksum with the server's
 *    checkpoint and found them equal, and cstack_sync_checksum equals the
 *    X-Cstack-Checksum the server gives that user;
 *  - nothing is left in any upload queue;
 *  - no sync needed a self-repair (docs/sync.md): the merge converges by
 *    itself, the repair is only a safety net for what happens outside it.
 *
 * The schema covers both pull paths of the server: odd seeds read Post
 * through a to-many predicate over a relation (visibility changes with
 * other rows: the server tracks what each device holds), even seeds with a
 * rule on the row itself (the server scans changes since the cursor).
 *
 * Environment (docs/testing.md):
 *   CSTACK_PROPTEST_SEEDS=N   seeds 1..N (default 100); the long mode is a
 *                             large N, e.g. 5000
 *   CSTACK_PROPTEST_STEPS=M   steps per seed (default 30); more steps find
 *                             longer histories, fewer shorter reproductions
 *   CSTACK_PROPTEST_DEVICES=K devices per user (default 2, at most 4)
 *   CSTACK_PROPTEST_SEED=S    only seed S, to replay a failure
 *   CSTACK_PROPTEST_VERBOSE=1 the operations of every failing seed (by
 *                             default only the first few are printed whole),
 *                             and the server's parked rows
 * A failure prints the seed, the operations of the seed (every write with
 * its outcome, every sync with what it pushed, what the server refused and
 * what it merged), the rows where devices differ from the fresh device of
 * their user, and the line that replays it alone. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <unistd.h>

#include "server_support.h"

/* Teams are public (every signed-in user reads them) and belong to their
 * creator; their names are unique.  Notes are private to their owner and
 * live in a team.  Anyone joins a team (Member, one per user and team); the
 * team's owner may remove members.  Posts live in a team and are written by
 * their author; who reads them is POST_READ below. */
#define SCHEMA_FMT                                                                                 \
    "auth User { id String }\n"                                                                    \
    "model Team {\n"                                                                               \
    "  id      String   @id\n"                                                                     \
    "  name    String   @unique\n"                                                                 \
    "  ownerId String\n"                                                                           \
    "  notes   Note[]\n"                                                                           \
    "  members Member[]\n"                                                                         \
    "  posts   Post[]\n"                                                                           \
    "  @@allow('read', auth() != null)\n"                                                          \
    "  @@allow('create,update,delete', ownerId == auth().id)\n"                                    \
    "}\n"                                                                                          \
    "model Note {\n"                                                                               \
    "  id      String @id\n"                                                                       \
    "  ownerId String\n"                                                                           \
    "  teamId  String\n"                                                                           \
    "  team    Team   @relation(fields: [teamId], references: [id], onDelete: Cascade)\n"          \
    "  title   String\n"                                                                           \
    "  @@allow('all', ownerId == auth().id)\n"                                                     \
    "}\n"                                                                                          \
    "model Member {\n"                                                                             \
    "  id      String @id\n"                                                                       \
    "  teamId  String\n"                                                                           \
    "  team    Team   @relation(fields: [teamId], references: [id], onDelete: Cascade)\n"          \
    "  userId  String\n"                                                                           \
    "  @@unique([teamId, userId])\n"                                                               \
    "  @@allow('read', auth() != null)\n"                                                          \
    "  @@allow('create,update', userId == auth().id)\n"                                            \
    "  @@allow('delete', userId == auth().id || team.ownerId == auth().id)\n"                      \
    "}\n"                                                                                          \
    "model Post {\n"                                                                               \
    "  id       String @id\n"                                                                      \
    "  teamId   String\n"                                                                          \
    "  team     Team   @relation(fields: [teamId], references: [id], onDelete: Cascade)\n"         \
    "  authorId String\n"                                                                          \
    "  body     String\n"                                                                          \
    "  @@allow('read', %s)\n"                                                                      \
    "  @@allow('create,update', authorId == auth().id)\n"                                          \
    "  @@allow('delete', authorId == auth().id || team.ownerId == auth().id)\n"                    \
    "}\n"

/* Odd seeds: members of the post's team read it (a to-many predicate
 * through a relation).  Even seeds: only the author (a rule on the row). */
static const char *const POST_READ[2] = {"authorId == auth().id",
                                         "authorId == auth().id || "
                                         "team.members?[userId == auth().id]"};

#define NUSERS 2
#define MAX_DEVS 4 /* per user */
#define MAX_DEV (NUSERS * MAX_DEVS)
#define MAX_ROWS 32
#define SETTLE_ROUNDS 6
#define DEFAULT_STEPS 30
#define FULL_REPORTS 3 /* failing seeds printed whole unless verbose */

static const char *const USERS[NUSERS] = {"alice", "bob"};

/* In name order: the order of the dumps. */
enum { M_MEMBER, M_NOTE, M_POST, M_TEAM, NMODELS };
static const char *const MODEL[NMODELS] = {"Member", "Note", "Post", "Team"};
static const char *const OWNER_FIELD[NMODELS] = {"userId", "ownerId", "authorId", "ownerId"};
/* Ids each user draws from, per model: small pools, so that ids come back
 * (re-inserts of deleted rows, two devices creating the same row). */
static const char ID_PREFIX[NMODELS] = {'M', 'N', 'P', 'T'};
static const int ID_POOL[NMODELS] = {4, 5, 4, 4};
#define NAME_POOL 5 /* team names, shared by everyone: duplicates happen */

/* A visible row of a device, with the fields the generator reads. */
typedef struct vrow {
    char id[16];
    char owner[16];
    char team[16];
    char *json;
} vrow;

typedef struct view {
    vrow rows[NMODELS][MAX_ROWS];
    int n[NMODELS];
} view;

typedef struct app_dev {
    cstack *db;
    int user;
    cstack_sync_status last; /* of its last sync */
} app_dev;

typedef struct world {
    uint64_t rng;
    int steps;
    int variant; /* which POST_READ */
    char schema[4096];
    char url[64];
    char *token[NUSERS];
    int ndev;              /* devices, the first half alice's */
    cstack_schema *parsed; /* the schema, parsed once per seed */
    app_dev dev[MAX_DEV];
    app_dev fresh[NUSERS];
    ts_str log;
    ts_str report; /* what differs, when something does */
    char err[512];
    int64_t last_write_ms; /* wall clock when the last write returned */
    /* Syncs that needed a self-repair: the merge must converge by itself,
     * the repair is only a safety net, so any is a failure. */
    int repairs;
    char repaired[128]; /* the first one, for the report */
} world;

/* ---- randomness and logs --------------------------------------------------- */

static uint64_t rnd(world *w)
{
    /* splitmix64: tiny, seedable, good enough to spread choices. */
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int pick(world *w, int n)
{
    return (int)(rnd(w) % (uint64_t)n);
}

static int chance(world *w, int percent)
{
    return pick(w, 100) < percent;
}

static void put_line(ts_str *s, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    ts_str_put(s, line);
    ts_str_put(s, "\n");
}

static void logf_(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(world *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_line(&w->log, fmt, ap);
    va_end(ap);
}

static void reportf(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reportf(world *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_line(&w->report, fmt, ap);
    va_end(ap);
}

/* Records the first failure; returns -1 so callers can `return fail(...)`. */
static int fail(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(world *w, const char *fmt, ...)
{
    if (w->err[0])
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- what a device shows ----------------------------------------------------- */

static void copy_text(char *out, size_t cap, const cstack_row *row, const char *field)
{
    cstack_value v;
    out[0] = '\0';
    if (cstack_row_get(row, field, &v) == CSTACK_OK && v.type == CSTACK_TEXT)
        snprintf(out, cap, "%.*s", (int)v.u.s.n, v.u.s.p);
}

static void view_free(view *v)
{
    for (int m = 0; m < NMODELS; m++)
        for (int i = 0; i < v->n[m]; i++)
            cstack_free(v->rows[m][i].json);
    memset(v, 0, sizeof *v);
}

/* Every visible row of every model, in primary-key order. */
static int view_load(world *w, cstack *db, view *v)
{
    memset(v, 0, sizeof *v);
    for (int m = 0; m < NMODELS; m++) {
        cstack_query q = {0};
        cstack_rows *rows = NULL;
        if (cstack_find_many(db, MODEL[m], &q, &rows) != CSTACK_OK)
            return fail(w, "find_many %s: %s", MODEL[m], cstack_errmsg(db));
        size_t n = cstack_rows_count(rows);
        if (n > MAX_ROWS) {
            cstack_rows_free(rows);
            return fail(w, "%zu rows of %s: more than the pools allow", n, MODEL[m]);
        }
        for (size_t i = 0; i < n; i++) {
            const cstack_row *row = cstack_rows_get(rows, i);
            vrow *r = &v->rows[m][v->n[m]++];
            copy_text(r->id, sizeof r->id, row, "id");
            copy_text(r->owner, sizeof r->owner, row, OWNER_FIELD[m]);
            copy_text(r->team, sizeof r->team, row, "teamId");
            r->json = cstack_row_json(row);
            if (!r->json) {
                cstack_rows_free(rows);
                return fail(w, "row json: out of memory");
            }
        }
        cstack_rows_free(rows);
    }
    return 0;
}

static const vrow *find_row(const view *v, int m, const char *id)
{
    for (int i = 0; i < v->n[m]; i++)
        if (strcmp(v->rows[m][i].id, id) == 0)
            return &v->rows[m][i];
    return NULL;
}

/* ---- writes -------------------------------------------------------------------- */

/* Outcomes of a local write that are the app's problem, not sync's: the
 * device's own constraints refused what the app tried. */
static int acceptable(int rc)
{
    return rc == CSTACK_OK || rc == CSTACK_EUNIQUE || rc == CSTACK_EFOREIGNKEY ||
           rc == CSTACK_ENOTFOUND;
}

/* A random id of user `u`'s pool for model `m` that the device does not
 * show (a new row, or the re-insert of a deleted or hidden one); "" when
 * every id of the pool is visible. */
static void free_id(world *w, const view *v, int m, int u, char *out, size_t cap)
{
    int start = pick(w, ID_POOL[m]);
    out[0] = '\0';
    for (int k = 0; k < ID_POOL[m]; k++) {
        char id[16];
        snprintf(id, sizeof id, "%c%c%d", ID_PREFIX[m], USERS[u][0], (start + k) % ID_POOL[m]);
        if (!find_row(v, m, id)) {
            snprintf(out, cap, "%s", id);
            return;
        }
    }
}

/* A random visible row of model `m` that `ok` accepts, or NULL. */
static const vrow *pick_row(world *w, const view *v, int m,
                            bool (*ok)(const view *v, const vrow *r, const char *user),
                            const char *user)
{
    const vrow *cand[MAX_ROWS];
    int n = 0;
    for (int i = 0; i < v->n[m]; i++)
        if (!ok || ok(v, &v->rows[m][i], user))
            cand[n++] = &v->rows[m][i];
    return n ? cand[pick(w, n)] : NULL;
}

static bool owned(const view *v, const vrow *r, const char *user)
{
    (void)v;
    return strcmp(r->owner, user) == 0;
}

/* A member row or post the user may remove: their own, or one in a team
 * they own. */
static bool removable(const view *v, const vrow *r, const char *user)
{
    const vrow *t = find_row(v, M_TEAM, r->team);
    return strcmp(r->owner, user) == 0 || (t && strcmp(t->owner, user) == 0);
}

/* A team the user has not joined (as far as the device shows). */
static bool joinable(const view *v, const vrow *t, const char *user)
{
    for (int i = 0; i < v->n[M_MEMBER]; i++)
        if (strcmp(v->rows[M_MEMBER][i].team, t->id) == 0 &&
            strcmp(v->rows[M_MEMBER][i].owner, user) == 0)
            return false;
    return true;
}

typedef struct fields {
    cstack_field_value f[6];
    size_t n;
    char text[6][32];
} fields;

static void put(fields *fs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(fields *fs, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fs->text[fs->n], sizeof fs->text[0], fmt, ap);
    va_end(ap);
    fs->f[fs->n].field = field;
    fs->f[fs->n].value = cstack_v_text(fs->text[fs->n]);
    fs->n++;
}

enum { OP_CREATE, OP_UPDATE, OP_DELETE };

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the wall clock to pass the millisecond of the previous write.
 * Each write then gets a clock later than every clock before it, whatever
 * its device merged, so concurrent writes are ordered by the steps that made
 * them and a seed replays the same merges: without this, two writes in one
 * millisecond would be ordered by their devices' clock counters and random
 * site ids, and a seed would not always replay its own history. */
static void next_millisecond(world *w)
{
    struct timespec nap = {0, 100 * 1000};
    while (wall_ms() <= w->last_write_ms)
        nanosleep(&nap, NULL);
}

/* Runs one write and logs it with its outcome.  `fs` holds the values
 * (create) or the changed values (update); the key is `id`. */
static int write_row(world *w, int d, int op, int m, const char *id, fields *fs)
{
    cstack *db = w->dev[d].db;
    cstack_field_value kf = {"id", cstack_v_text(id)};
    cstack_data key = {&kf, 1};
    cstack_data data = {fs->f, fs->n};
    int rc;
    static const char *const OPS[] = {"create", "update", "delete"};
    next_millisecond(w);
    if (op == OP_CREATE)
        rc = cstack_create(db, MODEL[m], &data, NULL);
    else if (op == OP_UPDATE)
        rc = cstack_update(db, MODEL[m], &key, &data, NULL);
    else
        rc = cstack_delete(db, MODEL[m], &key, NULL);
    w->last_write_ms = wall_ms();
    char vals[256] = "";
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].field, "id") != 0)
            snprintf(vals + strlen(vals), sizeof vals - strlen(vals), " %s=%s", fs->f[i].field,
                     fs->text[i]);
    logf_(w, "d%d(%s) %s %s %s%s -> %s", d, USERS[w->dev[d].user], OPS[op], MODEL[m], id, vals,
          cstack_errname(rc));
    if (!acceptable(rc))
        return fail(w, "d%d %s %s %s: %s: %s", d, OPS[op], MODEL[m], id, cstack_errname(rc),
                    cstack_errmsg(db));
    return 0;
}

/* Each generator returns 1 when it wrote (or tried to), 0 when the device
 * shows nothing it applies to, -1 on failure. */

static int gen_team_create(world *w, int d, const view *v)
{
    const char *user = USERS[w->dev[d].user];
    char id[16];
    free_id(w, v, M_TEAM, w->dev[d].user, id, sizeof id);
    if (!id[0])
        return 0;
    fields fs = {.n = 0};
    put(&fs, "id", "%s", id);
    put(&fs, "name", "name%d", pick(w, NAME_POOL));
    put(&fs, "ownerId", "%s", user);
    return write_row(w, d, OP_CREATE, M_TEAM, id, &fs) ? -1 : 1;
}

static int gen_team_rename(world *w, int d, const view *v)
{
    const vrow *t = pick_row(w, v, M_TEAM, owned, USERS[w->dev[d].user]);
    if (!t)
        return 0;
    fields fs = {.n = 0};
    put(&fs, "name", "name%d", pick(w, NAME_POOL));
    return write_row(w, d, OP_UPDATE, M_TEAM, t->id, &fs) ? -1 : 1;
}

/* Deleting a team cascades to its notes, members and posts on the device;
 * the cascaded deletes are synced like any other. */
static int gen_team_delete(world *w, int d, const view *v)
{
    const vrow *t = pick_row(w, v, M_TEAM, owned, USERS[w->dev[d].user]);
    if (!t)
        return 0;
    fields fs = {.n = 0};
    return write_row(w, d, OP_DELETE, M_TEAM, t->id, &fs) ? -1 : 1;
}

/* A note, member row or post in a visible team (which another device may
 * have deleted meanwhile). */
static int gen_child_create(world *w, int d, const view *v, int m)
{
    int u = w->dev[d].user;
    const vrow *t = pick_row(w, v, M_TEAM, m == M_MEMBER ? joinable : NULL, USERS[u]);
    char id[16];
    free_id(w, v, m, u, id, sizeof id);
    if (!t || !id[0])
        return 0;
    fields fs = {.n = 0};
    put(&fs, "id", "%s", id);
    put(&fs, "teamId", "%s", t->id);
    put(&fs, OWNER_FIELD[m], "%s", USERS[u]);
    if (m == M_NOTE)
        put(&fs, "title", "title%d", pick(w, 100));
    else if (m == M_POST)
        put(&fs, "body", "body%d", pick(w, 100));
    return write_row(w, d, OP_CREATE, m, id, &fs) ? -1 : 1;
}

/* A new title for a note (sometimes moving it to another team), a new body
 * for a post. */
static int gen_child_update(world *w, int d, const view *v, int m)
{
    const vrow *r = pick_row(w, v, m, owned, USERS[w->dev[d].user]);
    if (!r)
        return 0;
    fields fs = {.n = 0};
    if (m == M_NOTE) {
        put(&fs, "title", "title%d", pick(w, 100));
        const vrow *t = chance(w, 40) ? pick_row(w, v, M_TEAM, NULL, NULL) : NULL;
        if (t)
            put(&fs, "teamId", "%s", t->id);
    } else {
        put(&fs, "body", "body%d", pick(w, 100));
    }
    return write_row(w, d, OP_UPDATE, m, r->id, &fs) ? -1 : 1;
}

static int gen_child_delete(world *w, int d, const view *v, int m)
{
    const vrow *r = pick_row(w, v, m, m == M_NOTE ? owned : removable, USERS[w->dev[d].user]);
    if (!r)
        return 0;
    fields fs = {.n = 0};
    return write_row(w, d, OP_DELETE, m, r->id, &fs) ? -1 : 1;
}

/* One write the app of the device's user could attempt from what the device
 * shows; a kind with nothing to apply to gives way to another. */
static int random_write(world *w, int d)
{
    view v;
    if (view_load(w, w->dev[d].db, &v) != 0) {
        view_free(&v);
        return -1;
    }
    int rc = 0;
    for (int tries = 0; tries < 8 && rc == 0; tries++) {
        int k = pick(w, 100);
        if (k < 14)
            rc = gen_team_create(w, d, &v);
        else if (k < 21)
            rc = gen_team_rename(w, d, &v);
        else if (k < 27)
            rc = gen_team_delete(w, d, &v);
        else if (k < 41)
            rc = gen_child_create(w, d, &v, M_NOTE);
        else if (k < 50)
            rc = gen_child_update(w, d, &v, M_NOTE);
        else if (k < 56)
            rc = gen_child_delete(w, d, &v, M_NOTE);
        else if (k < 67)
            rc = gen_child_create(w, d, &v, M_MEMBER);
        else if (k < 74)
            rc = gen_child_delete(w, d, &v, M_MEMBER);
        else if (k < 86)
            rc = gen_child_create(w, d, &v, M_POST);
        else if (k < 93)
            rc = gen_child_update(w, d, &v, M_POST);
        else
            rc = gen_child_delete(w, d, &v, M_POST);
    }
    view_free(&v);
    return rc < 0 ? -1 : 0;
}

/* ---- syncs --------------------------------------------------------------------- */

/* Logs what a sync's reports say that the final status does not: each
 * refused batch with the server's reason. */
static void on_status(const cstack_sync_status *st, void *ctx)
{
    if (st->event == CSTACK_SYNC_EV_REJECTED)
        logf_((world *)ctx, "    refused batch %lld: %s", (long long)st->version, st->last_error);
}

static const char *sum_state(int ok)
{
    return ok == 1 ? "checksum equal" : ok == 0 ? "CHECKSUM DIFFERS" : "checksum not compared";
}

/* One sync of device `ad`: pushes its queue, pulls from its cursor. */
static int sync_device(world *w, app_dev *ad, const char *name)
{
    cstack_sync_options o = {.url = w->url,
                             .token = w->token[ad->user],
                             .connect_timeout_ms = 5000,
                             .request_timeout_ms = 30000};
    cstack_sync_status st;
    memset(&st, 0, sizeof st);
    int rc = cstack_sync_run_once(ad->db, &o, on_status, w, &st);
    ad->last = st;
    logf_(w, "  %s(%s) sync -> %s: pushed %lld, refused %lld, merged %lld rows, cursor %lld, %s%s%s",
          name, USERS[ad->user], cstack_errname(rc), (long long)st.pushed, (long long)st.rejected,
          (long long)st.rows_applied, (long long)st.cursor, sum_state(st.checksum_ok),
          st.checksum_ok == 0 || rc ? ": " : "", st.checksum_ok == 0 || rc ? st.last_error : "");
    if (st.repaired_models > 0) {
        logf_(w, "    SELF-REPAIR: re-pulled %s (%lld rows)", st.repaired_names,
              (long long)st.repaired_rows);
        if (!w->repairs++)
            snprintf(w->repaired, sizeof w->repaired, "%s(%s) re-pulled %.64s", name,
                     USERS[ad->user], st.repaired_names);
    }
    if (rc != CSTACK_OK)
        return fail(w, "%s sync: %s: %s", name, cstack_errname(rc), cstack_errmsg(ad->db));
    return 0;
}

static int sync_dev(world *w, int d)
{
    char name[8];
    snprintf(name, sizeof name, "d%d", d);
    return sync_device(w, &w->dev[d], name);
}

/* Every device syncs, round after round, until a round in which nobody
 * pushed and after which nothing is left to push: the server did not change
 * during that round, so every device pulled its final state, and another
 * round would move nothing. */
static int settle(world *w)
{
    for (int round = 0; round < SETTLE_ROUNDS; round++) {
        logf_(w, "settle round %d", round);
        bool any = false;
        for (int d = 0; d < w->ndev; d++) {
            int64_t pending = 0;
            if (sync_dev(w, d) != 0)
                return -1;
            if (cstack_upload_pending(w->dev[d].db, &pending) != CSTACK_OK)
                return fail(w, "d%d: %s", d, cstack_errmsg(w->dev[d].db));
            any = any || w->dev[d].last.pushed || w->dev[d].last.rejected || pending;
        }
        if (!any)
            return 0;
    }
    return fail(w, "still moving after %d rounds of syncs on every device", SETTLE_ROUNDS);
}

/* An empty device on the seed's schema, with a site id of its own. */
static int open_device(world *w, app_dev *ad)
{
    if (cstack_open_in_memory(w->parsed, &ad->db) != CSTACK_OK ||
        cstack_bootstrap(ad->db, NULL) != CSTACK_OK)
        return fail(w, "open a device: %s", cstack_errmsg(ad->db));
    ad->last.checksum_ok = -1;
    return 0;
}

/* ---- the verdict ------------------------------------------------------------------ */

/* The server's checksum of what `user` may read, through a pull that merges
 * nothing new (the fresh device's own site and cursor); 0 with *ok false
 * when the server does not give one. */
static uint64_t server_sum(world *w, app_dev *fresh, bool *ok)
{
    char auth[4096], schema[128], site[64], path[64];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->token[fresh->user]);
    snprintf(schema, sizeof schema, "X-Cstack-Schema: %s", hash);
    snprintf(site, sizeof site, "X-Cstack-Site: %s", cstack_sync_site_id(fresh->db));
    snprintf(path, sizeof path, "/v1/pull?since=%lld", (long long)fresh->last.cursor);
    const char *h[] = {auth, schema, site, NULL};
    res r = http("GET", path, h, NULL, 0);
    *ok = r.status == 200 && strlen(r.checksum) == 16 && strcmp(r.cursor, "") != 0 &&
          strtoll(r.cursor, NULL, 10) == fresh->last.cursor;
    uint64_t sum = *ok ? strtoull(r.checksum, NULL, 16) : 0;
    if (!*ok)
        reportf(w, "the server's checksum for %s: pull since %lld answered %ld, cursor '%s'",
                USERS[fresh->user], (long long)fresh->last.cursor, r.status, r.cursor);
    res_free(&r);
    return sum;
}

/* Reports the rows where `v` differs from the fresh device's `f`; returns
 * the number of differing rows. */
static int diff_views(world *w, const char *name, const view *v, const view *f)
{
    int diffs = 0;
    for (int m = 0; m < NMODELS; m++) {
        int i = 0, j = 0;
        while (i < v->n[m] || j < f->n[m]) {
            const vrow *a = i < v->n[m] ? &v->rows[m][i] : NULL;
            const vrow *b = j < f->n[m] ? &f->rows[m][j] : NULL;
            int c = !a ? 1 : !b ? -1 : strcmp(a->id, b->id);
            if (c < 0) {
                reportf(w, "  %s has       %s %s (a fresh device has not)", name, MODEL[m], a->json);
                i++;
            } else if (c > 0) {
                reportf(w, "  %s lacks     %s %s", name, MODEL[m], b->json);
                j++;
            } else {
                if (strcmp(a->json, b->json) != 0)
                    reportf(w, "  %s has       %s %s\n      fresh has %s %s", name, MODEL[m],
                            a->json, MODEL[m], b->json);
                diffs += strcmp(a->json, b->json) != 0;
                i++;
                j++;
                continue;
            }
            diffs++;
        }
    }
    return diffs;
}

/* The final comparison: every device of each user against a fresh device of
 * that user, and every checksum against the server's. */
static int verdict(world *w)
{
    int bad = 0;
    for (int u = 0; u < NUSERS; u++) {
        app_dev *fr = &w->fresh[u];
        fr->user = u;
        if (open_device(w, fr) != 0)
            return -1;
        char name[16];
        snprintf(name, sizeof name, "fresh%d", u);
        if (sync_device(w, fr, name) != 0)
            return -1;
        view f;
        if (view_load(w, fr->db, &f) != 0) {
            view_free(&f);
            return -1;
        }
        bool have = false;
        uint64_t server = server_sum(w, fr, &have);
        for (int d = -1; d < w->ndev; d++) {
            app_dev *ad = d < 0 ? fr : &w->dev[d];
            if (ad->user != u)
                continue;
            char dn[16];
            snprintf(dn, sizeof dn, d < 0 ? "fresh%d" : "d%d", d < 0 ? u : d);
            view v;
            int rc = d < 0 ? 0 : view_load(w, ad->db, &v);
            int diffs = rc == 0 && d >= 0 ? diff_views(w, dn, &v, &f) : 0;
            if (d >= 0)
                view_free(&v);
            if (rc != 0) {
                view_free(&f);
                return -1;
            }
            uint64_t sum = 0;
            int64_t pending = 0;
            if (cstack_sync_checksum(ad->db, &sum) != CSTACK_OK ||
                cstack_upload_pending(ad->db, &pending) != CSTACK_OK) {
                view_free(&f);
                return fail(w, "%s: %s", dn, cstack_errmsg(ad->db));
            }
            bool sum_bad = have && sum != server;
            if (diffs || ad->last.checksum_ok != 1 || sum_bad || pending) {
                reportf(w, "%s(%s): %d rows differ from a fresh device; last sync: %s%s%s; "
                           "checksum %016llx, the server's %016llx%s; %lld pending",
                        dn, USERS[u], diffs, sum_state(ad->last.checksum_ok),
                        ad->last.checksum_ok == 0 ? ": " : "",
                        ad->last.checksum_ok == 0 ? ad->last.last_error : "",
                        (unsigned long long)sum, (unsigned long long)server,
                        have ? "" : " (none given)", (long long)pending);
                if (!bad)
                    fail(w, "%s(%s) diverged: %d rows differ from a fresh device, %s", dn,
                         USERS[u], diffs, sum_state(ad->last.checksum_ok));
                bad++;
            }
        }
        view_free(&f);
    }
    if (!bad && w->repairs)
        return fail(w, "%d sync(s) needed a self-repair, first %s", w->repairs, w->repaired);
    return bad ? -1 : 0;
}

/* ---- hidden rows, for the report ---------------------------------------------------- */

/* Appends "Model key" for each row of _cstack_parked (keys in their
 * encoding, non-printable bytes as dots). */
static int list_parked(sqlite3 *conn, void *ctx)
{
    ts_str *out = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, "SELECT model, pk FROM _cstack_parked ORDER BY model, pk", -1, &st,
                           NULL) != SQLITE_OK)
        return CSTACK_EIO;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[128];
        const unsigned char *pk = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        int k = snprintf(line, sizeof line, " %s:", (const char *)sqlite3_column_text(st, 0));
        for (int i = 0; i < n && k < (int)sizeof line - 2; i++)
            line[k++] = pk[i] >= 0x20 && pk[i] < 0x7f ? (char)pk[i] : '.';
        line[k] = '\0';
        ts_str_put(out, line);
    }
    sqlite3_finalize(st);
    return CSTACK_OK;
}

/* The rows each device and the server hold parked; the server's are read
 * from its SQLite file, so with PostgreSQL only the devices' are listed. */
static void report_parked(world *w, const char *db_name)
{
    for (int d = 0; d < w->ndev; d++) {
        ts_str s = {0};
        ts_str_put(&s, "");
        cstack_with_sqlite(w->dev[d].db, list_parked, &s);
        if (s.p && s.p[0])
            reportf(w, "d%d parks%s", d, s.p);
        free(s.p);
    }
    if (t_store_pg())
        return;
    char server_db[600];
    snprintf(server_db, sizeof server_db, "%s/%s", dir, db_name);
    sqlite3 *conn = NULL;
    if (sqlite3_open_v2(server_db, &conn, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        ts_str s = {0};
        ts_str_put(&s, "");
        list_parked(conn, &s);
        reportf(w, "the server parks%s", s.p && s.p[0] ? s.p : " nothing");
        free(s.p);
    }
    sqlite3_close(conn);
}

/* ---- one seed ------------------------------------------------------------------------ */

/* Runs one seed against a server of its own; returns 0, or -1 with w->err
 * (and w->report when devices diverged). */
static int run_seed(world *w, uint64_t seed, bool verbose)
{
    w->rng = seed * 0x2545f4914f6cdd1du + 1;
    w->variant = (int)(seed & 1);
    snprintf(w->schema, sizeof w->schema, SCHEMA_FMT, POST_READ[w->variant]);
    char db_name[64];
    snprintf(db_name, sizeof db_name, "converge-%llu.db", (unsigned long long)seed);
    start_opts(w->schema, db_name, 0);
    snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d", cstack_server_port(srv));
    logf_(w, "seed %llu: Post read by %s", (unsigned long long)seed, POST_READ[w->variant]);
    for (int u = 0; u < NUSERS; u++)
        w->token[u] = mint(USERS[u], NULL, (int64_t)time(NULL), 3600);
    w->parsed = t_schema(w->schema);
    int rc = 0;
    for (int d = 0; d < w->ndev && rc == 0; d++) {
        w->dev[d].user = d / (w->ndev / NUSERS);
        rc = open_device(w, &w->dev[d]);
        logf_(w, "d%d is a device of %s, site %s", d, USERS[w->dev[d].user],
              rc ? "-" : cstack_sync_site_id(w->dev[d].db));
    }
    for (int step = 0; step < w->steps && rc == 0; step++) {
        int d = pick(w, w->ndev);
        rc = chance(w, 30) ? sync_dev(w, d) : random_write(w, d);
    }
    if (rc == 0)
        rc = settle(w);
    if (rc == 0)
        rc = verdict(w);
    stop();
    if (rc != 0 && verbose)
        report_parked(w, db_name);
    t_store_remove(dir, db_name);
    return rc;
}

static void world_free(world *w)
{
    for (int d = 0; d < w->ndev; d++)
        cstack_close(w->dev[d].db);
    cstack_schema_free(w->parsed);
    for (int u = 0; u < NUSERS; u++) {
        cstack_close(w->fresh[u].db);
        cstack_free(w->token[u]);
    }
    free(w->log.p);
    free(w->report.p);
    free(w);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    return end && *end == '\0' ? (uint64_t)n : dflt;
}

TestSuite(server_converge, .fini = fini, .timeout = 1800);

Test(server_converge, every_device_equals_a_fresh_device_of_its_user_once_syncs_settle)
{
    uint64_t nseeds = env_u64("CSTACK_PROPTEST_SEEDS", 100);
    uint64_t only = env_u64("CSTACK_PROPTEST_SEED", UINT64_MAX);
    uint64_t first = only == UINT64_MAX ? 1 : only;
    uint64_t last = only == UINT64_MAX ? nseeds : only;
    int steps = (int)env_u64("CSTACK_PROPTEST_STEPS", DEFAULT_STEPS);
    uint64_t per_user = env_u64("CSTACK_PROPTEST_DEVICES", 2);
    int ndev = NUSERS * (int)(per_user < 1 ? 1 : per_user > MAX_DEVS ? MAX_DEVS : per_user);
    bool verbose = env_u64("CSTACK_PROPTEST_VERBOSE", 0) != 0;
    ts_str failed = {0};
    ts_str_put(&failed, "");
    uint64_t nfailed = 0;
    for (uint64_t seed = first; seed <= last; seed++) {
        world *w = calloc(1, sizeof *w);
        cr_assert_not_null(w);
        w->steps = steps;
        w->ndev = ndev;
        int diverged = run_seed(w, seed, verbose || nfailed < FULL_REPORTS);
        if (diverged != 0) {
            if (verbose || nfailed < FULL_REPORTS)
                cr_log_error("seed %llu failed: %s\n"
                             "replay: CSTACK_PROPTEST_SEED=%llu CSTACK_PROPTEST_STEPS=%d "
                             "CSTACK_PROPTEST_DEVICES=%d ./test_server_converge\n"
                             "operations:\n%s\nwhat differs:\n%s",
                             (unsigned long long)seed, w->err, (unsigned long long)seed, steps,
                             ndev / NUSERS,
                             w->log.p ? w->log.p : "", w->report.p ? w->report.p : "");
            else
                cr_log_error("seed %llu failed: %s", (unsigned long long)seed, w->err);
            char num[32];
            snprintf(num, sizeof num, "%s%llu", nfailed ? " " : "", (unsigned long long)seed);
            ts_str_put(&failed, num);
            nfailed++;
        }
        world_free(w);
    }
    uint64_t total = last - first + 1;
    char summary[512];
    snprintf(summary, sizeof summary,
             "%llu of %llu seeds diverged (%d steps, %d devices per user): %.400s",
             (unsigned long long)nfailed, (unsigned long long)total, steps, ndev / NUSERS,
             failed.p ? failed.p : "");
    free(failed.p);
    cr_assert_eq(nfailed, 0, "%s", summary);
}
