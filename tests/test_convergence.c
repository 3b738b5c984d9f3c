/* test_convergence.c -- the convergence property of SPEC sections 7 and 14:
 * five replicas take random inserts, updates, deletes and re-inserts (also
 * grouped in transactions, some rolled back) of related models with every
 * kind of scalar; changesets exported from random replicas (since tracked
 * cursors, sometimes since 0) travel to random replicas in random order,
 * duplicated, delayed or lost; after a final all-to-all exchange until
 * nothing wins any more, every replica's dump (as `cstack dump` prints it)
 * is identical.
 *
 * CSTACK_CONVERGENCE_SEEDS=N runs N seeds (default 200; the long mode is a
 * large N); CSTACK_CONVERGENCE_SEED=S runs only seed S, to replay a failure;
 * CSTACK_CONVERGENCE_OPS=K sets the writes per seed (default 32; a small K
 * finds short reproductions).
 * A failure prints the seed, the operations and the diverging dumps. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA =
    "model Account {\n"
    "  id      Int      @id\n"
    "  email   String\n"
    "  name    String?\n"
    "  balance Decimal\n"
    "  active  Boolean\n"
    "  joined  DateTime\n"
    "  notes   Note[]\n"
    "  @@unique([email])\n"
    "}\n"
    "model Note {\n"
    "  id      Int       @id\n"
    "  title   String\n"
    "  body    String?\n"
    "  meta    Json?\n"
    "  raw     Bytes?\n"
    "  score   Float?\n"
    "  due     DateTime?\n"
    "  pinned  Boolean   @default(false)\n"
    "  ownerId Int\n"
    "  owner   Account   @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "}\n"
    "model Tag {\n"
    "  id        Int       @id\n"
    "  label     String\n"
    "  deletedAt DateTime?\n"
    "  @@soft_delete(deletedAt)\n"
    "}\n";

#define NREP 5
#define MAX_INFLIGHT 24
#define MAX_ROUNDS 8
#define N_ACCOUNTS 6
#define N_NOTES 10
#define N_TAGS 4

typedef struct inflight {
    int src, dst;
    void *buf;
    size_t len;
} inflight;

typedef struct world {
    int ops; /* local writes (or transactions) in the seed */
    cstack *r[NREP];
    int64_t cursor[NREP][NREP]; /* [src][dst]: since for the next export */
    inflight fl[MAX_INFLIGHT];
    size_t nfl;
    uint64_t rng;
    ts_str log;
    char err[1024];
} world;

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

static void logf_(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(world *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ts_str_put(&w->log, line);
    ts_str_put(&w->log, "\n");
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

/* Outcomes of a local write that are the app's problem, not the engine's:
 * the random operation was simply not possible on that replica. */
static int acceptable(int rc)
{
    return rc == CSTACK_OK || rc == CSTACK_EUNIQUE || rc == CSTACK_EFOREIGNKEY ||
           rc == CSTACK_ENOTFOUND;
}

/* Scratch storage for the values of one write (they are borrowed by the
 * cstack_data until the call returns). */
typedef struct scratch {
    cstack_field_value f[12];
    size_t n;
    char text[12][64];
    unsigned char bytes[8];
} scratch;

static void put(scratch *s, const char *field, cstack_value v)
{
    s->f[s->n].field = field;
    s->f[s->n].value = v;
    s->n++;
}

static void put_text(scratch *s, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put_text(scratch *s, const char *field, const char *fmt, ...)
{
    char *t = s->text[s->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof s->text[0], fmt, ap);
    va_end(ap);
    put(s, field, cstack_v_text(t));
}

/* Ids of the visible rows of `model` on `db` (at most `max`). */
static int ids_of(world *w, cstack *db, const char *model, int64_t *ids, int max, int *n)
{
    static const char *const SEL[] = {"id"};
    cstack_query q = {.select = SEL, .n_select = 1};
    cstack_rows *rows = NULL;
    int rc = cstack_find_many(db, model, &q, &rows);
    if (rc != CSTACK_OK)
        return fail(w, "find_many %s: %s", model, cstack_errmsg(db));
    *n = 0;
    for (size_t i = 0; i < cstack_rows_count(rows) && *n < max; i++) {
        cstack_value v = cstack_row_value(cstack_rows_get(rows, i), 0);
        ids[(*n)++] = v.u.i;
    }
    cstack_rows_free(rows);
    return 0;
}

/* A random value for one field (by name; the schema above is the table). */
static void gen_field(world *w, cstack *db, scratch *s, const char *field)
{
    if (strcmp(field, "email") == 0) {
        put_text(s, field, "user%d@x.io", pick(w, 8));
    } else if (strcmp(field, "name") == 0 || strcmp(field, "body") == 0) {
        if (chance(w, 30))
            put(s, field, cstack_v_null());
        else
            put_text(s, field, "%s %d", field, pick(w, 1000));
    } else if (strcmp(field, "balance") == 0) {
        put_text(s, field, "%s%d.%02d", chance(w, 20) ? "-" : "", pick(w, 10000), pick(w, 100));
    } else if (strcmp(field, "active") == 0 || strcmp(field, "pinned") == 0) {
        put(s, field, cstack_v_bool(chance(w, 50)));
    } else if (strcmp(field, "joined") == 0 || strcmp(field, "due") == 0) {
        if (field[0] == 'd' && chance(w, 30))
            put(s, field, cstack_v_null());
        else
            put_text(s, field, "2026-%02d-%02dT%02d:%02d:00+02:00", 1 + pick(w, 12),
                     1 + pick(w, 28), pick(w, 24), pick(w, 60));
    } else if (strcmp(field, "title") == 0 || strcmp(field, "label") == 0) {
        put_text(s, field, "%s-%d", field, pick(w, 1000));
    } else if (strcmp(field, "meta") == 0) {
        int k = pick(w, 4);
        if (k == 0)
            put(s, field, cstack_v_null());
        else if (k == 1)
            put_text(s, field, "{ \"k\" : %d, \"l\": [1, 2] }", pick(w, 100));
        else
            put_text(s, field, "[%d, \"x\", null, true]", pick(w, 100));
    } else if (strcmp(field, "raw") == 0) {
        size_t n = (size_t)pick(w, 5);
        for (size_t i = 0; i < n; i++)
            s->bytes[i] = (unsigned char)rnd(w);
        put(s, field, chance(w, 20) ? cstack_v_null() : cstack_v_blob(s->bytes, n));
    } else if (strcmp(field, "score") == 0) {
        put(s, field, chance(w, 25) ? cstack_v_null() : cstack_v_float(pick(w, 400) * 0.25 - 50));
    } else if (strcmp(field, "ownerId") == 0) {
        int64_t ids[N_ACCOUNTS];
        int n = 0;
        if (ids_of(w, db, "Account", ids, N_ACCOUNTS, &n) == 0 && n > 0)
            put(s, field, cstack_v_int(ids[pick(w, n)]));
        else
            put(s, field, cstack_v_int(1 + pick(w, N_ACCOUNTS)));
    }
}

typedef struct model_desc {
    const char *name;
    int nids;
    const char *const *fields; /* every writable field but the id */
    int nfields;
} model_desc;

static const char *const ACCOUNT_FIELDS[] = {"email", "name", "balance", "active", "joined"};
static const char *const NOTE_FIELDS[] = {"title", "body", "meta",   "raw",
                                          "score", "due",  "pinned", "ownerId"};
static const char *const TAG_FIELDS[] = {"label"};
static const model_desc MODELS[] = {
    {"Account", N_ACCOUNTS, ACCOUNT_FIELDS, 5},
    {"Note", N_NOTES, NOTE_FIELDS, 8},
    {"Tag", N_TAGS, TAG_FIELDS, 1},
};

/* One random write on replica `r`: create (or re-create) a missing row, or
 * update a random subset of fields of / delete an existing one. */
static int random_write(world *w, int r)
{
    cstack *db = w->r[r];
    int k = pick(w, 100);
    const model_desc *m = &MODELS[k < 35 ? 0 : k < 85 ? 1 : 2];
    int64_t id = 1 + pick(w, m->nids);
    cstack_field_value keyf = {"id", cstack_v_int(id)};
    cstack_data key = {&keyf, 1};
    cstack_row *row = NULL;
    int rc = cstack_find_unique(db, m->name, &key, NULL, 0, &row);
    if (rc != CSTACK_OK)
        return fail(w, "find_unique: %s", cstack_errmsg(db));
    int exists = row != NULL;
    cstack_row_free(row);
    scratch s;
    s.n = 0;
    const char *what;
    if (!exists) {
        what = "create";
        put(&s, "id", cstack_v_int(id));
        for (int i = 0; i < m->nfields; i++)
            if (strcmp(m->fields[i], "pinned") != 0 || chance(w, 50))
                gen_field(w, db, &s, m->fields[i]);
        cstack_data d = {s.f, s.n};
        rc = cstack_create(db, m->name, &d, NULL);
    } else if (chance(w, 25)) {
        what = "delete";
        rc = cstack_delete(db, m->name, &key, NULL);
    } else {
        what = "update";
        for (int i = 0; i < m->nfields; i++)
            if (chance(w, 40))
                gen_field(w, db, &s, m->fields[i]);
        if (s.n == 0)
            gen_field(w, db, &s, m->fields[pick(w, m->nfields)]);
        cstack_data d = {s.f, s.n};
        rc = cstack_update(db, m->name, &key, &d, NULL);
    }
    char fields[128] = "";
    for (size_t i = 0; i < s.n; i++)
        snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%s", i ? "," : "",
                 s.f[i].field);
    logf_(w, "r%d %s %s %lld (%s) -> %s", r, what, m->name, (long long)id, fields,
          cstack_errname(rc));
    if (!acceptable(rc))
        return fail(w, "r%d %s %s %lld: %s: %s", r, what, m->name, (long long)id,
                    cstack_errname(rc), cstack_errmsg(db));
    return 0;
}

/* A few writes in one transaction, sometimes rolled back (whose writes must
 * then never travel). */
static int random_tx(world *w, int r)
{
    cstack *db = w->r[r];
    if (cstack_begin(db) != CSTACK_OK)
        return fail(w, "begin: %s", cstack_errmsg(db));
    logf_(w, "r%d begin", r);
    for (int i = 2 + pick(w, 3); i > 0; i--)
        if (random_write(w, r) != 0) {
            cstack_rollback(db);
            return -1;
        }
    int rollback = chance(w, 25);
    int rc = rollback ? cstack_rollback(db) : cstack_commit(db);
    logf_(w, "r%d %s -> %s", r, rollback ? "rollback" : "commit", cstack_errname(rc));
    if (rc != CSTACK_OK)
        return fail(w, "r%d end of transaction: %s", r, cstack_errmsg(db));
    return 0;
}

static int do_apply(world *w, int src, int dst, const void *buf, size_t len, cstack_apply_stats *st)
{
    int rc = cstack_changes_apply(w->r[dst], buf, len, st);
    logf_(w, "  apply r%d -> r%d (%zu bytes): %s, %lld rows, %lld won, %lld parked", src, dst, len,
          cstack_errname(rc), (long long)st->rows, (long long)st->won, (long long)st->parked);
    if (rc != CSTACK_OK)
        return fail(w, "apply r%d -> r%d: %s: %s", src, dst, cstack_errname(rc),
                    cstack_errmsg(w->r[dst]));
    return 0;
}

static int export_from(world *w, int src, int64_t since, void **buf, size_t *len, int64_t *cur)
{
    int rc = cstack_changes_export(w->r[src], since, buf, len, cur);
    if (rc != CSTACK_OK)
        return fail(w, "export r%d since %lld: %s", src, (long long)since,
                    cstack_errmsg(w->r[src]));
    return 0;
}

/* Exports from a random replica to a random other one and puts the
 * changeset in flight (it travels later, in any order). */
static int random_export(world *w)
{
    int src = pick(w, NREP), dst = (src + 1 + pick(w, NREP - 1)) % NREP;
    int64_t since = chance(w, 15) ? 0 : w->cursor[src][dst];
    inflight *f = &w->fl[w->nfl];
    int64_t cur = 0;
    if (export_from(w, src, since, &f->buf, &f->len, &cur) != 0)
        return -1;
    logf_(w, "  export r%d for r%d since %lld -> %zu bytes, cursor %lld", src, dst,
          (long long)since, f->len, (long long)cur);
    f->src = src;
    f->dst = dst;
    w->nfl++;
    w->cursor[src][dst] = cur;
    return 0;
}

/* Delivers a random changeset in flight; it may stay in flight (a duplicate
 * to come) or be lost without being applied. */
static int random_delivery(world *w)
{
    size_t i = (size_t)pick(w, (int)w->nfl);
    inflight f = w->fl[i];
    int lost = chance(w, 10), again = !lost && chance(w, 30);
    if (!lost) {
        cstack_apply_stats st = {0};
        if (do_apply(w, f.src, f.dst, f.buf, f.len, &st) != 0)
            return -1;
    } else {
        logf_(w, "  lost r%d -> r%d", f.src, f.dst);
    }
    if (again)
        return 0;
    cstack_free(f.buf);
    w->fl[i] = w->fl[--w->nfl];
    return 0;
}

/* Every pair, both ways, until a whole round wins nothing; the first round
 * starts from 0 to repair lost deliveries. */
static int exchange_until_quiescent(world *w)
{
    for (size_t i = 0; i < w->nfl; i++)
        cstack_free(w->fl[i].buf);
    w->nfl = 0;
    int64_t cur[NREP][NREP] = {{0}};
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int64_t won = 0;
        for (int s = 0; s < NREP; s++)
            for (int d = 0; d < NREP; d++) {
                if (s == d)
                    continue;
                void *buf = NULL;
                size_t len = 0;
                if (export_from(w, s, cur[s][d], &buf, &len, &cur[s][d]) != 0)
                    return -1;
                cstack_apply_stats st = {0};
                int rc = do_apply(w, s, d, buf, len, &st);
                cstack_free(buf);
                if (rc != 0)
                    return -1;
                won += st.won;
            }
        logf_(w, "final round %d: %lld won", round, (long long)won);
        if (won == 0 && round > 0)
            return 0;
    }
    return fail(w, "no quiescence after %d all-to-all rounds", MAX_ROUNDS);
}

/* Runs one seed; returns 0, or -1 with w->err (and the dumps in *dumps when
 * they diverge). */
static int run_seed(world *w, uint64_t seed, char *dumps[NREP])
{
    w->rng = seed * 0x2545f4914f6cdd1du + 1;
    for (int i = 0; i < NREP; i++) {
        cstack_schema *s = t_schema(SCHEMA);
        int rc = cstack_open_in_memory(s, &w->r[i]);
        cstack_schema_free(s);
        if (rc != CSTACK_OK || cstack_bootstrap(w->r[i], NULL) != CSTACK_OK)
            return fail(w, "open replica %d: %s", i, cstack_errmsg(w->r[i]));
    }
    for (int op = 0; op < w->ops; op++) {
        int r = pick(w, NREP);
        if ((chance(w, 12) ? random_tx(w, r) : random_write(w, r)) != 0)
            return -1;
        for (int k = pick(w, 3); k > 0; k--) {
            int rc = (w->nfl > 0 && (w->nfl == MAX_INFLIGHT || chance(w, 50))) ? random_delivery(w)
                                                                               : random_export(w);
            if (rc != 0)
                return -1;
        }
    }
    if (exchange_until_quiescent(w) != 0)
        return -1;
    int diverged = 0;
    for (int i = 0; i < NREP; i++) {
        dumps[i] = ts_dump(w->r[i]);
        if (!dumps[i])
            return fail(w, "dump of replica %d: %s", i, cstack_errmsg(w->r[i]));
        if (i > 0 && strcmp(dumps[i], dumps[0]) != 0)
            diverged = 1;
    }
    return diverged ? fail(w, "replicas diverged") : 0;
}

static void world_free(world *w, char *dumps[NREP])
{
    for (size_t i = 0; i < w->nfl; i++)
        cstack_free(w->fl[i].buf);
    for (int i = 0; i < NREP; i++) {
        cstack_close(w->r[i]);
        free(dumps[i]);
    }
    free(w->log.p);
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

Test(convergence, five_replicas_converge_whatever_the_delivery, .timeout = 900)
{
    uint64_t nseeds = env_u64("CSTACK_CONVERGENCE_SEEDS", 200);
    uint64_t only = env_u64("CSTACK_CONVERGENCE_SEED", UINT64_MAX);
    uint64_t first = only == UINT64_MAX ? 1 : only;
    uint64_t last = only == UINT64_MAX ? nseeds : only;
    int ops = (int)env_u64("CSTACK_CONVERGENCE_OPS", 32);
    for (uint64_t seed = first; seed <= last; seed++) {
        world *w = calloc(1, sizeof *w);
        cr_assert_not_null(w);
        w->ops = ops;
        char *dumps[NREP] = {0};
        int rc = run_seed(w, seed, dumps);
        if (rc != 0) {
            cr_log_error("seed %llu failed: %s (replay: CSTACK_CONVERGENCE_SEED=%llu)\n"
                         "operations:\n%s",
                         (unsigned long long)seed, w->err, (unsigned long long)seed,
                         w->log.p ? w->log.p : "");
            for (int i = 0; i < NREP; i++)
                if (dumps[i])
                    cr_log_error("replica %d dump:\n%s", i, dumps[i]);
        }
        char err[sizeof w->err];
        memcpy(err, w->err, sizeof err);
        world_free(w, dumps);
        free(w);
        cr_assert_eq(rc, 0, "seed %llu: %s", (unsigned long long)seed, err);
    }
}
