/* The through-server property with rolling upgrades: devices of two users
 * write and sync at random through one server that migrates from v1 to v2
 * at a random step, and each device upgrades at a random time after that
 * (some never do).  Once everything is pushed and pulled, every device
 * equals a fresh device of its user on the same schema, and no sync
 * reported divergence.  Seeds come from CSTACK_UPGRADE_SEEDS (default 8);
 * a failing seed prints its log. */
#include "upgrade_support.h"

#define NDEV 4
#define STEPS 70
#define SETTLE_ROUNDS 6

static const char *const USERS[2] = {"alice", "bob"};
static const char *const STATUS[3] = {"OPEN", "DONE", "ARCHIVED"};

typedef struct world {
    uint64_t rng;
    udev dev[NDEV];
    int user[NDEV];
    bool v2[NDEV];
    bool server_v2;
    int next_id;
    ts_str log;
} world;

static int pick(world *w, int n)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (int)(w->rng % (uint64_t)n);
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

/* The id of a random note device d holds, into id; false when none. */
static bool held_note(world *w, int d, char *id, size_t cap)
{
    cstack_query q = {0};
    cstack_rows *rows = NULL;
    cr_assert_eq(cstack_find_many(w->dev[d].db, "Note", &q, &rows), 0);
    size_t n = cstack_rows_count(rows);
    cstack_value v = {0};
    if (n)
        cstack_row_get(cstack_rows_get(rows, (size_t)pick(w, (int)n)), "id", &v);
    if (n)
        snprintf(id, cap, "%.*s", (int)v.u.s.n, v.u.s.p);
    cstack_rows_free(rows);
    return n > 0;
}

/* A write of device d: a note created, edited (v2-only values on v2
 * devices) or deleted, or (v2) a tag.  New keys are the device's own:
 * concurrent creations of one key on devices that never held it are the
 * base property test's business (test_server_converge.c), not upgrades'. */
static void random_write(world *w, int d)
{
    udev *u = &w->dev[d];
    const char *owner = USERS[w->user[d]];
    char id[32], title[16];
    snprintf(title, sizeof title, "t%d", pick(w, 1000));
    int op = pick(w, w->v2[d] ? 5 : 3);
    if (op == 0 || !held_note(w, d, id, sizeof id))
        snprintf(id, sizeof id, "%s-d%d-%d", owner, d, w->next_id++);
    logf_(w, "d%d(%s,%s) op %d on %s", d, owner, w->v2[d] ? "v2" : "v1", op, id);
    if (op == 2) {
        cstack_field_value key[] = {{"id", cstack_v_text(id)}};
        cstack_data where = {key, 1};
        int rc = cstack_delete(u->db, "Note", &where, NULL);
        cr_assert(rc == 0 || rc == CSTACK_ENOTFOUND, "delete: %s", cstack_errmsg(u->db));
        return;
    }
    if (op == 4) {
        snprintf(id, sizeof id, "%s-g%d-%d", owner, d, pick(w, 3));
        put(u, "Tag", id,
            (cstack_field_value[]){{"id", cstack_v_text(id)},
                                   {"ownerId", cstack_v_text(owner)},
                                   {"label", cstack_v_text(title)}},
            3);
        return;
    }
    cstack_field_value f[6] = {{"id", cstack_v_text(id)},
                               {"ownerId", cstack_v_text(owner)},
                               {"title", cstack_v_text(title)},
                               {"status", cstack_v_text(STATUS[pick(w, w->v2[d] ? 3 : 2)])}};
    size_t n = 4;
    if (op == 3) {
        f[n++] = (cstack_field_value){"body", cstack_v_text(title)};
        f[n++] = (cstack_field_value){"rank", cstack_v_int(pick(w, 9))};
    }
    put(u, "Note", id, f, n);
}

static void sync_dev(world *w, int d)
{
    int rc = udev_sync(&w->dev[d]);
    logf_(w, "d%d sync -> %s, pushed %lld, checksum %d %s", d, cstack_errname(rc),
          (long long)w->dev[d].st.pushed, w->dev[d].st.checksum_ok, w->dev[d].st.last_error);
    cr_assert_eq(rc, 0, "seed log:\n%s", w->log.p);
    cr_assert_neq(w->dev[d].st.checksum_ok, 0, "d%d reports divergence; seed log:\n%s", d,
                  w->log.p);
}

static void step(world *w)
{
    int r = pick(w, 20);
    int d = pick(w, NDEV);
    if (r == 0 && !w->server_v2) {
        logf_(w, "the server migrates to v2");
        stop();
        serve(V2);
        w->server_v2 = true;
    } else if (r == 1 && w->server_v2 && !w->v2[d]) {
        logf_(w, "d%d upgrades to v2", d);
        udev_upgrade(&w->dev[d], V2);
        w->v2[d] = true;
    } else if (r < 10) {
        random_write(w, d);
    } else {
        sync_dev(w, d);
    }
}

static void settle(world *w)
{
    for (int round = 0; round < SETTLE_ROUNDS; round++) {
        bool any = false;
        for (int d = 0; d < NDEV; d++) {
            int64_t pending = 0;
            sync_dev(w, d);
            cr_assert_eq(cstack_upload_pending(w->dev[d].db, &pending), 0);
            any = any || w->dev[d].st.pushed || pending;
        }
        if (!any)
            return;
    }
    cr_assert_fail("still moving after %d rounds; seed log:\n%s", SETTLE_ROUNDS, w->log.p);
}

/* Every device equals a fresh device of its user on its schema. */
static void verdict(world *w, uint64_t seed)
{
    for (int d = 0; d < NDEV; d++) {
        char name[32];
        snprintf(name, sizeof name, "fresh-%llu-%d", (unsigned long long)seed, d);
        udev fresh = udev_open(w->v2[d] ? V2 : V1, name, USERS[w->user[d]]);
        synced(&fresh, name);
        char *got = ts_dump(w->dev[d].db), *want = ts_dump(fresh.db);
        cr_assert_str_eq(got, want, "seed %llu: d%d (%s) differs from a fresh device:\n%s\nfresh:\n%s\nlog:\n%s",
                         (unsigned long long)seed, d, w->v2[d] ? "v2" : "v1", got, want, w->log.p);
        free(got);
        free(want);
        udev_free(&fresh);
    }
}

static void run_seed(uint64_t seed)
{
    world w = {.rng = seed * 0x9E3779B97F4A7C15ull + 1};
    ts_str_put(&w.log, "");
    serve(V1);
    for (int d = 0; d < NDEV; d++) {
        char name[32];
        snprintf(name, sizeof name, "d-%llu-%d", (unsigned long long)seed, d);
        w.user[d] = d % 2;
        w.dev[d] = udev_open(V1, name, USERS[w.user[d]]);
    }
    for (int i = 0; i < STEPS; i++)
        step(&w);
    if (!w.server_v2) {
        stop();
        serve(V2);
        w.server_v2 = true;
    }
    settle(&w);
    verdict(&w, seed);
    int upgraded = 0;
    for (int d = 0; d < NDEV; d++) {
        upgraded += w.v2[d];
        udev_free(&w.dev[d]);
    }
    fprintf(stderr, "seed %llu: %d of %d devices upgraded, all equal to fresh devices\n",
            (unsigned long long)seed, upgraded, NDEV);
    free(w.log.p);
    stop();
}

TestSuite(upgrade_prop, .fini = fini, .timeout = 240);

Test(upgrade_prop, devices_upgrading_at_random_times_end_equal_to_fresh_devices_of_their_schema)
{
    const char *env = getenv("CSTACK_UPGRADE_SEEDS");
    int seeds = env ? atoi(env) : 8;
    for (int s = 1; s <= seeds; s++) {
        run_seed((uint64_t)s);
        /* Every seed starts from an empty server. */
        t_store_remove(dir, "server.db");
    }
}
