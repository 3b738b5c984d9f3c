/* test_pg_policy.c -- the schema's policies as PostgreSQL row-level
 * security (policy_pg.c; docs/postgres.md, "Policies in PostgreSQL"):
 * for random rows and users, a role that does not own the app tables, with
 * the user's claims in cstack.auth, reads exactly the rows the server's
 * SQLite checks let that user read, and its INSERT, UPDATE and DELETE
 * succeed exactly when the server's write rules allow them.  Also: the
 * policies are installed by the tables' creation, replaced by a migration,
 * bind neither the owner nor the capture of backend writes, and `cstack ddl
 * --dialect postgres` prints them.  Needs the test cluster (FIXTURES_REQUIRED
 * pg). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cstack_server.h"
#include "server/auth.h"
#include "server/pg.h"
#include "server/pg_typed_int.h"
#include "server/policy.h"
#include "support.h"

/* Every form of rule the language has, over every type a rule compares. */
static const char *const SCHEMA =
    "enum Role { ADMIN MEMBER }\n"
    "enum Status { OPEN DONE }\n"
    "type Team {\n"
    "  id String\n"
    "}\n"
    "auth User {\n"
    "  id     Uuid\n"
    "  role   Role?\n"
    "  orgId  Uuid?\n"
    "  level  Int?\n"
    "  budget Decimal?\n"
    "  staff  Boolean?\n"
    "  handle String?\n"
    "  since  DateTime?\n"
    "  team   Team?\n"
    "}\n"
    "model Org {\n"
    "  id        Uuid      @id\n"
    "  name      String\n"
    "  plan      String?\n"
    "  deletedAt DateTime?\n"
    "  accounts  Account[]\n"
    "  members   Membership[]\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@allow('read', members?[accountId == auth().id && active] || plan == \"pro\")\n"
    "  @@allow('all', auth().role == ADMIN)\n"
    "}\n"
    "model Account {\n"
    "  id          Uuid   @id\n"
    "  handle      String\n"
    "  orgId       Uuid?\n"
    "  org         Org?   @relation(fields: [orgId], references: [id])\n"
    "  notes       Note[]\n"
    "  memberships Membership[]\n"
    "  @@allow('read', id == auth().id || org.plan == \"pro\" || handle == auth().handle)\n"
    "  @@allow('create,update', id == auth().id)\n"
    "}\n"
    "model Membership {\n"
    "  id        Uuid    @id\n"
    "  accountId Uuid\n"
    "  account   Account @relation(fields: [accountId], references: [id])\n"
    "  orgId     Uuid\n"
    "  org       Org     @relation(fields: [orgId], references: [id])\n"
    "  role      Role\n"
    "  active    Boolean\n"
    "  deletedAt DateTime?\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@allow('read', accountId == auth().id || org.members![active])\n"
    "  @@allow('all', hasRole('ADMIN'))\n"
    "}\n"
    "model Note {\n"
    "  id      String    @id\n"
    "  title   String\n"
    "  status  Status?\n"
    "  price   Decimal?\n"
    "  ratio   Float?\n"
    "  pinned  Boolean?\n"
    "  due     DateTime?\n"
    "  level   Int?\n"
    "  ownerId Uuid\n"
    "  owner   Account   @relation(fields: [ownerId], references: [id])\n"
    "  refId   String?\n"
    "  teamId  String?\n"
    "  @@allow('read', ownerId == auth().id || owner.org.plan == \"pro\" || refId == auth().id || "
    "teamId == auth().team.id)\n"
    "  @@allow('read', status == OPEN && price >= 10 && auth() != null)\n"
    "  @@allow('read', owner.memberships?[role == ADMIN && active] && owner.org != null)\n"
    "  @@allow('read', (due > \"2026-03-01T00:00:00Z\" && level < auth().level) || due <= "
    "auth().since)\n"
    "  @@allow('read', price < auth().budget || ratio > 0.5 || price == level || price > ratio || "
    "!(pinned || status == DONE))\n"
    "  @@allow('create', ownerId == auth().id && (price == null || price <= 100.5) && status in "
    "[OPEN, DONE])\n"
    "  @@allow('update', ownerId == auth().id || owner.memberships![active && role == MEMBER])\n"
    "  @@allow('update', title < auth().handle && auth().staff)\n"
    "  @@deny('update,delete', pinned)\n"
    "  @@deny('all', title == \"locked\" || auth().isSystem())\n"
    "  @@allow('delete', auth().staff || hasRole('ADMIN') || owner.notes^[status == DONE && "
    "ownerId != auth().id])\n"
    "  @@allow('delete', level not in [1, 2, 3] && refId != null)\n"
    "}\n";

#define SECRET "pg-policy-secret"
#define ROLE "cstack_test_backend"
#define NSEEDS 3
#define NUSERS 8   /* user 0 is anonymous */
#define NWRITES 60 /* per user */
#define MAXROWS 400
#define MAXCOLS 12

/* ---- random rows ---------------------------------------------------------- */

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

static const char *pick(const char *const *v, size_t n)
{
    return v[rnd((uint32_t)n)];
}
#define PICK(...)                                                                                  \
    pick((const char *const[]){__VA_ARGS__},                                                       \
         sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Model and row counts; ids are "<letter>0000nnn-0000-4000-8000-000000000000". */
enum { ORG, ACCOUNT, MEMBERSHIP, NOTE, NMODELS };
static const char *const MODEL[NMODELS] = {"Org", "Account", "Membership", "Note"};
static const int COUNT[NMODELS] = {5, 10, 16, 160};

static char *uuid_of(char letter, int i)
{
    char *u = malloc(37);
    snprintf(u, 37, "%c%07d-0000-4000-8000-000000000000", letter, i);
    return u;
}

static char *upper(const char *s)
{
    char *u = strdup(s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *datetime(void)
{
    char *d = malloc(40);
    snprintf(d, 40, "2026-%02u-%02uT%02u:00:00.000000Z", 2 + rnd(3), 1 + rnd(28), rnd(24));
    return d;
}

/* A random value for column `col` of model `mi` (text, NULL for null;
 * Boolean "t"/"f"); row `i` gives the primary key. */
static char *gen(int mi, const char *col, int i)
{
    if (!strcmp(col, "id") && mi == NOTE) {
        char *id = malloc(16);
        snprintf(id, 16, "n%d", i);
        return id;
    }
    if (!strcmp(col, "id"))
        return uuid_of("abc"[mi], i);
    if (!strcmp(col, "deletedAt"))
        return rnd(4) ? NULL : datetime();
    if (!strcmp(col, "orgId"))
        return mi == ACCOUNT && !rnd(4) ? NULL : uuid_of('a', (int)rnd(COUNT[ORG]));
    if (!strcmp(col, "accountId") || !strcmp(col, "ownerId"))
        return uuid_of('b', (int)rnd(COUNT[ACCOUNT]));
    if (!strcmp(col, "name"))
        return strdup(PICK("Acme", "beta", "Gamma"));
    if (!strcmp(col, "plan"))
        return dup_or_null(PICK("pro", "free", NULL));
    if (!strcmp(col, "handle"))
        return strdup(PICK("h1", "H2", "h3", "alice"));
    if (!strcmp(col, "role"))
        return strdup(PICK("ADMIN", "MEMBER"));
    if (!strcmp(col, "active") || !strcmp(col, "pinned"))
        return dup_or_null(mi == NOTE ? PICK("t", "f", NULL) : PICK("t", "f"));
    if (!strcmp(col, "title"))
        return strdup(PICK("alpha", "Beta", "gamma", "locked", "Zeta", "h1", "delta", "H2"));
    if (!strcmp(col, "status"))
        return dup_or_null(PICK("OPEN", "DONE", NULL));
    if (!strcmp(col, "price"))
        return dup_or_null(PICK(NULL, "9.5", "10", "10.00", "100.5", "101", "0.25", "12", "5"));
    if (!strcmp(col, "ratio"))
        return dup_or_null(PICK(NULL, "0.25", "0.5", "0.75", "10", "12", "5"));
    if (!strcmp(col, "due"))
        return rnd(3) ? datetime() : NULL;
    if (!strcmp(col, "level"))
        return dup_or_null(PICK(NULL, "1", "2", "3", "5", "10", "12"));
    if (!strcmp(col, "refId")) {
        char *u = uuid_of('b', (int)rnd(COUNT[ACCOUNT]));
        int k = (int)rnd(4);
        if (k == 1) {
            char *up = upper(u);
            free(u);
            return up;
        }
        if (k >= 2) {
            free(u);
            return k == 2 ? NULL : strdup("x");
        }
        return u;
    }
    if (!strcmp(col, "teamId"))
        return dup_or_null(PICK(NULL, "t1", "t2"));
    cr_assert_fail("no generator for %s.%s", MODEL[mi], col);
    return NULL;
}

/* One model's columns, as the schema has them. */
typedef struct table {
    const cs_model *m;
    int mi;
    size_t ncols;
    int field[MAXCOLS]; /* field index of each column */
} table;

typedef struct row {
    char *v[MAXCOLS];
} row;

typedef struct world {
    const cstack_schema *s;
    table t[NMODELS];
    row rows[NMODELS][MAXROWS];
    int nrows[NMODELS];
} world;

static void tables_of(world *w)
{
    for (int k = 0; k < NMODELS; k++) {
        table *t = &w->t[k];
        t->mi = cs_model_find(w->s, MODEL[k]);
        cr_assert_geq(t->mi, 0);
        t->m = &w->s->models[t->mi];
        t->ncols = 0;
        for (size_t f = 0; f < t->m->nfields; f++)
            if (cs_field_is_column(&t->m->fields[f]))
                t->field[t->ncols++] = (int)f;
        cr_assert_eq(strcmp(t->m->fields[t->field[0]].name, "id"), 0);
    }
}

static const char *col_name(const table *t, size_t c)
{
    return t->m->fields[t->field[c]].column;
}

static void row_gen(const table *t, int k, int i, row *r)
{
    for (size_t c = 0; c < t->ncols; c++)
        r->v[c] = gen(k, col_name(t, c), i);
}

static void row_free(const table *t, row *r)
{
    for (size_t c = 0; c < t->ncols; c++) {
        free(r->v[c]);
        r->v[c] = NULL;
    }
}

static void row_copy(const table *t, const row *from, row *to)
{
    for (size_t c = 0; c < t->ncols; c++)
        to->v[c] = dup_or_null(from->v[c]);
}

/* The value of column c as the SQLite store holds it (its stored form:
 * Boolean and Int as integers, Float real, everything else canonical text),
 * or, with `api`, as cstack_create takes it. */
static cstack_value value_of(const table *t, const row *r, size_t c, bool api)
{
    const char *v = r->v[c];
    if (!v)
        return cstack_v_null();
    switch (t->m->fields[t->field[c]].type) {
    case CS_T_INT:
        return cstack_v_int(atoll(v));
    case CS_T_FLOAT:
        return cstack_v_float(strtod(v, NULL));
    case CS_T_BOOLEAN:
        return api ? cstack_v_bool(v[0] == 't') : cstack_v_int(v[0] == 't');
    default:
        return cstack_v_text(v);
    }
}

/* PostgreSQL's type of column c, for the casts of text parameters. */
static const char *pg_type(const table *t, size_t c)
{
    return cs_pg_type_name(&t->m->fields[t->field[c]]);
}

/* The row's values indexed by field, as cs_policy_check_values takes them. */
static void stored(const table *t, const row *r, cstack_value *vals)
{
    for (size_t f = 0; f < t->m->nfields; f++)
        vals[f] = cstack_v_null();
    for (size_t c = 0; c < t->ncols; c++)
        vals[t->field[c]] = value_of(t, r, c, false);
}

/* ---- users ----------------------------------------------------------------- */

typedef struct user {
    cs_auth *auth;
    char json[1024]; /* the token's claims, as a backend sets cstack.auth ("" anonymous) */
} user;

/* Appends claim key=value to the claims JSON as the token carries it: an
 * integer or boolean as such, an object as is, anything else a string. */
static void json_claim(char *json, size_t cap, const char *kv)
{
    const char *eq = strchr(kv, '=');
    const char *v = eq + 1;
    bool raw = *v == '{' || !strcmp(v, "true") || !strcmp(v, "false") ||
               strspn(v, "-0123456789") == strlen(v);
    size_t n = strlen(json);
    snprintf(json + n - 1, cap - n + 1, ",\"%.*s\":%s%s%s}", (int)(eq - kv), kv, raw ? "" : "\"", v,
             raw ? "" : "\"");
}

static void user_make(world *w, user *u, bool anonymous)
{
    memset(u, 0, sizeof *u);
    if (anonymous) {
        cr_assert_eq(cs_auth_anonymous(w->s, &u->auth), 0);
        return;
    }
    char *sub = uuid_of('b', (int)rnd(COUNT[ACCOUNT]));
    if (rnd(3) == 0) {
        char *up = upper(sub);
        free(sub);
        sub = up;
    }
    char since[48], *dt = datetime();
    snprintf(since, sizeof since, "since=%s", dt);
    free(dt);
    char org[48], *o = uuid_of('a', (int)rnd(COUNT[ORG]));
    snprintf(org, sizeof org, "orgId=%s", o);
    free(o);
    const char *pool[][4] = {
        {"role=ADMIN", "role=MEMBER", NULL, NULL},
        {org, NULL, NULL, NULL},
        {"level=2", "level=5", "level=11", NULL},
        {"budget=10", "budget=12.5", NULL, NULL},
        {"staff=true", "staff=false", NULL, NULL},
        {"handle=h1", "handle=H2", "handle=beta", NULL},
        {since, NULL, NULL, NULL},
        {"team={\"id\":\"t1\"}", NULL, NULL, NULL},
    };
    const char *claims[8];
    size_t n = 0;
    snprintf(u->json, sizeof u->json, "{\"sub\":\"%s\"}", sub);
    for (size_t i = 0; i < sizeof pool / sizeof pool[0]; i++) {
        const char *c = pool[i][rnd(4)];
        if (c) {
            claims[n++] = c;
            json_claim(u->json, sizeof u->json, c);
        }
    }
    char *tok = NULL, err[256] = "", header[2048];
    cr_assert_eq(cstack_server_mint_token(SECRET, sub, claims, n, 0, 0, &tok, err, sizeof err), 0,
                 "%s", err);
    snprintf(header, sizeof header, "Bearer %s", tok);
    cstack_free(tok);
    free(sub);
    cr_assert_eq(cs_auth_verify(w->s, header, SECRET, 1000, &u->auth, err, sizeof err), 0, "%s: %s",
                 u->json, err);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

static void pg_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    pg_ok(c, "SET client_min_messages = warning");
    return c;
}

static void ensure(PGconn *c, const cstack_schema *old, const cstack_schema *s)
{
    cs_srv_err err = {0};
    pg_ok(c, "BEGIN");
    int rc = cs_pg_typed_ensure(c, old, s, &err);
    cr_assert_eq(rc, 0, "ensure: %s", err.message);
    pg_ok(c, "COMMIT");
}

/* The backend role: not the tables' owner, not a superuser, with every
 * right on the app tables of s and none on cstack's own. */
static void role_grant(PGconn *c, const cstack_schema *s)
{
    pg_ok(c, "DO $$BEGIN CREATE ROLE " ROLE " NOLOGIN; EXCEPTION WHEN duplicate_object OR "
             "unique_violation THEN NULL; END$$");
    for (size_t i = 0; i < s->nmodels; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "GRANT SELECT, INSERT, UPDATE, DELETE ON \"%s\" TO " ROLE,
                 s->models[i].table);
        pg_ok(c, sql);
    }
}

static long pg_long(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* Begins a transaction acting for u through the backend role, as
 * docs/postgres.md tells a backend to. */
static void act_as(PGconn *c, const user *u)
{
    pg_ok(c, "BEGIN");
    pg_ok(c, "SET LOCAL ROLE " ROLE);
    if (!u->json[0])
        return;
    const char *p[1] = {u->json};
    PGresult *r =
        PQexecParams(c, "SELECT set_config('cstack.auth', $1, true)", 1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    PQclear(r);
}

/* INSERT INTO t (cols) VALUES ($1::type, ...) for row r; as the owner
 * when `u` is NULL.  Returns whether it succeeded. */
static bool pg_insert(PGconn *c, const table *t, const row *r)
{
    char sql[2048];
    int n = snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (", t->m->table);
    for (size_t k = 0; k < t->ncols; k++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, "%s\"%s\"", k ? ", " : "", col_name(t, k));
    n += snprintf(sql + n, sizeof sql - (size_t)n, ") VALUES (");
    for (size_t k = 0; k < t->ncols; k++)
        n += snprintf(sql + n, sizeof sql - (size_t)n, "%s$%zu::%s", k ? ", " : "", k + 1,
                      pg_type(t, k));
    snprintf(sql + n, sizeof sql - (size_t)n, ")");
    PGresult *res =
        PQexecParams(c, sql, (int)t->ncols, NULL, (const char *const *)r->v, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

/* UPDATE of the columns where `to` differs from `from`, by key. */
static bool pg_update(PGconn *c, const table *t, const row *from, const row *to)
{
    char sql[2048];
    const char *params[MAXCOLS + 1] = {to->v[0]};
    int np = 1, n = snprintf(sql, sizeof sql, "UPDATE \"%s\" SET ", t->m->table);
    for (size_t k = 1; k < t->ncols; k++) {
        bool same = from->v[k] && to->v[k] ? !strcmp(from->v[k], to->v[k]) : from->v[k] == to->v[k];
        if (same)
            continue;
        params[np++] = to->v[k];
        n += snprintf(sql + n, sizeof sql - (size_t)n, "%s\"%s\" = $%d::%s", np > 2 ? ", " : "",
                      col_name(t, k), np, pg_type(t, k));
    }
    if (np == 1)
        n += snprintf(sql + n, sizeof sql - (size_t)n, "\"id\" = \"id\"");
    snprintf(sql + n, sizeof sql - (size_t)n, " WHERE \"id\" = $1::%s", pg_type(t, 0));
    PGresult *res = PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && !strcmp(PQcmdTuples(res), "1");
    PQclear(res);
    return ok;
}

static bool pg_delete(PGconn *c, const table *t, const row *r)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE \"id\" = $1::%s", t->m->table,
             pg_type(t, 0));
    const char *p[1] = {r->v[0]};
    PGresult *res = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && !strcmp(PQcmdTuples(res), "1");
    PQclear(res);
    return ok;
}

/* ---- the differential run -------------------------------------------------- */

/* A new database whose default collation is ICU's root locale, where
 * "alpha" sorts before "Beta" (SQLite and the C locale sort it after): the
 * policies must compare text byte by byte whatever the database's
 * collation.  Its name in *name (to drop it), its URL returned (malloc'd). */
static char *icu_database(char *name, size_t cap)
{
    char *admin = t_pg_url();
    static int made;
    snprintf(name, cap, "cstack_pol_%d_%d", (int)getpid(), made++);
    PGconn *c = pg_connect(admin);
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' "
             "LOCALE_PROVIDER icu ICU_LOCALE 'und'",
             name);
    pg_ok(c, sql);
    PQfinish(c);
    char *slash = strrchr(admin, '/');
    cr_assert_not_null(slash);
    size_t n = (size_t)(slash - admin) + strlen(name) + 2;
    char *url = malloc(n);
    snprintf(url, n, "%.*s/%s", (int)(slash - admin), admin, name);
    free(admin);
    return url;
}

static void icu_drop(const char *name)
{
    char *admin = t_pg_url(), sql[160];
    PGconn *c = pg_connect(admin);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_ok(c, sql);
    PQfinish(c);
    free(admin);
}

typedef enum wkind { W_INSERT, W_UPDATE, W_DELETE } wkind;
static const char *const WKIND[] = {"INSERT", "UPDATE", "DELETE"};

typedef struct wop {
    int k; /* model */
    int i; /* the row (update, delete) */
    wkind kind;
    row r; /* the new row (insert, update) */
    bool expect;
} wop;

typedef struct run {
    world w;
    user users[NUSERS];
    bool can_read[NUSERS][NMODELS][MAXROWS];
    wop writes[NUSERS][NWRITES];
} run;

static void writes_gen(run *x)
{
    for (int u = 0; u < NUSERS; u++)
        for (int j = 0; j < NWRITES; j++) {
            wop *wr = &x->writes[u][j];
            wr->k = rnd(2) ? NOTE : (int)rnd(NMODELS);
            wr->kind = (wkind)rnd(3);
            const table *t = &x->w.t[wr->k];
            wr->i = (int)rnd((uint32_t)x->w.nrows[wr->k]);
            if (wr->kind == W_INSERT) {
                row_gen(t, wr->k, MAXROWS + j, &wr->r);
            } else if (wr->kind == W_UPDATE) {
                row_copy(t, &x->w.rows[wr->k][wr->i], &wr->r);
                for (int n = 1 + (int)rnd(2); n > 0; n--) {
                    size_t c = 1 + rnd((uint32_t)t->ncols - 1);
                    free(wr->r.v[c]);
                    wr->r.v[c] = gen(wr->k, col_name(t, c), wr->i);
                }
            }
        }
}

/* The server's checks for one user, on the SQLite copy. */
typedef struct checks {
    cs_policy_check *row[NMODELS][3]; /* read, update, delete on a stored row */
    cs_policy_check *val[NMODELS][3]; /* read, update, create on values */
} checks;

static bool on_row(cs_policy_check *c, const table *t, const row *r)
{
    cstack_value pk = value_of(t, r, 0, false);
    bool ok = false;
    cr_assert_eq(cs_policy_check_row(c, &pk, &ok), 0, "%s", cs_errmsg_last());
    return ok;
}

static bool on_values(cs_policy_check *c, const table *t, const row *r)
{
    cstack_value vals[32];
    cr_assert_leq(t->m->nfields, 32);
    stored(t, r, vals);
    bool ok = false;
    cr_assert_eq(cs_policy_check_values(c, vals, &ok), 0, "%s", cs_errmsg_last());
    return ok;
}

/* What the server's rules say, user by user: every row's visibility and
 * each write's fate.  An UPDATE or DELETE that names its row by key needs
 * the row readable in PostgreSQL (its WHERE reads it) and an UPDATE's new
 * row too: that is the one thing a backend's write needs beyond the
 * server's write rules (docs/postgres.md). */
static int expect_job(sqlite3 *conn, void *ctx)
{
    run *x = ctx;
    static const unsigned rops[3] = {CS_POL_READ, CS_POL_UPDATE, CS_POL_DELETE};
    static const unsigned vops[3] = {CS_POL_READ, CS_POL_UPDATE, CS_POL_CREATE};
    for (int u = 0; u < NUSERS; u++) {
        checks ck = {0};
        for (int k = 0; k < NMODELS; k++)
            for (int o = 0; o < 3; o++) {
                cr_assert_eq(cs_policy_check_open(x->w.s, conn, x->users[u].auth, x->w.t[k].mi,
                                                  rops[o], &ck.row[k][o]),
                             0);
                cr_assert_eq(cs_policy_values_check_open(x->w.s, conn, x->users[u].auth,
                                                         x->w.t[k].mi, vops[o], &ck.val[k][o]),
                             0);
            }
        for (int k = 0; k < NMODELS; k++)
            for (int i = 0; i < x->w.nrows[k]; i++)
                x->can_read[u][k][i] = on_row(ck.row[k][0], &x->w.t[k], &x->w.rows[k][i]);
        for (int j = 0; j < NWRITES; j++) {
            wop *wr = &x->writes[u][j];
            const table *t = &x->w.t[wr->k];
            const row *pre = &x->w.rows[wr->k][wr->i];
            if (wr->kind == W_INSERT)
                wr->expect = on_values(ck.val[wr->k][2], t, &wr->r);
            else if (wr->kind == W_UPDATE)
                wr->expect = x->can_read[u][wr->k][wr->i] && on_row(ck.row[wr->k][1], t, pre) &&
                             on_values(ck.val[wr->k][1], t, &wr->r) &&
                             on_values(ck.val[wr->k][0], t, &wr->r);
            else
                wr->expect = x->can_read[u][wr->k][wr->i] && on_row(ck.row[wr->k][2], t, pre);
        }
        for (int k = 0; k < NMODELS; k++)
            for (int o = 0; o < 3; o++) {
                cs_policy_check_close(ck.row[k][o]);
                cs_policy_check_close(ck.val[k][o]);
            }
    }
    return 0;
}

static int row_index(const world *w, int k, const char *id)
{
    for (int i = 0; i < w->nrows[k]; i++)
        if (!strcmp(w->rows[k][i].v[0], id))
            return i;
    return -1;
}

/* Runs seed `seed`; returns the number of mismatches (each printed) and
 * adds the cases it compared to *cases. */
static long allowed[4], total[4]; /* reads, then each kind of write */

static int differential(uint64_t seed, long *cases)
{
    run *x = calloc(1, sizeof *x);
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    cstack *db = t_open_mem(SCHEMA);
    world *w = &x->w;
    w->s = cstack_schema_of(db);
    tables_of(w);
    for (int k = 0; k < NMODELS; k++) {
        const table *t = &w->t[k];
        w->nrows[k] = COUNT[k];
        for (int i = 0; i < COUNT[k]; i++) {
            row_gen(t, k, i, &w->rows[k][i]);
            cstack_field_value fv[MAXCOLS];
            for (size_t c = 0; c < t->ncols; c++)
                fv[c] = FV(t->m->fields[t->field[c]].name, value_of(t, &w->rows[k][i], c, true));
            cstack_data d = {fv, t->ncols};
            cr_assert_eq(cstack_create(db, MODEL[k], &d, NULL), 0, "%s", cstack_errmsg(db));
        }
    }
    for (int u = 0; u < NUSERS; u++)
        user_make(w, &x->users[u], u == 0);
    writes_gen(x);
    cr_assert_eq(cstack_with_sqlite(db, expect_job, x), 0);

    char dbname[64];
    char *url = icu_database(dbname, sizeof dbname);
    PGconn *c = pg_connect(url);
    free(url);
    cr_assert_eq(pg_long(c, "SELECT count(*) FROM (VALUES ('alpha'), ('Beta')) v(t) "
                            "WHERE t < 'Beta'"),
                 1, "the database sorts text unlike SQLite");
    ensure(c, NULL, w->s);
    role_grant(c, w->s);
    pg_ok(c, "BEGIN");
    pg_ok(c, "SET LOCAL " CS_PG_SERVER_SETTING " = 'on'");
    for (int k = 0; k < NMODELS; k++)
        for (int i = 0; i < w->nrows[k]; i++)
            cr_assert(pg_insert(c, &w->t[k], &w->rows[k][i]), "load %s: %s", MODEL[k],
                      PQerrorMessage(c));
    pg_ok(c, "COMMIT");

    int bad = 0;
    for (int u = 0; u < NUSERS; u++) {
        const user *us = &x->users[u];
        for (int k = 0; k < NMODELS; k++) {
            bool got[MAXROWS] = {false};
            char sql[128];
            snprintf(sql, sizeof sql, "SELECT \"id\"::text FROM \"%s\"", w->t[k].m->table);
            act_as(c, us);
            PGresult *r = PQexec(c, sql);
            cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
            for (int j = 0; j < PQntuples(r); j++) {
                int i = row_index(w, k, PQgetvalue(r, j, 0));
                cr_assert_geq(i, 0);
                got[i] = true;
            }
            PQclear(r);
            pg_ok(c, "ROLLBACK");
            for (int i = 0; i < w->nrows[k]; i++, (*cases)++, total[0]++, allowed[0] += got[i])
                if (got[i] != x->can_read[u][k][i] && bad++ < 20)
                    fprintf(stderr, "seed %llu user %s: %s %s read: PostgreSQL %d, server %d\n",
                            (unsigned long long)seed, us->json, MODEL[k], w->rows[k][i].v[0],
                            got[i], x->can_read[u][k][i]);
        }
        for (int j = 0; j < NWRITES; j++, (*cases)++) {
            wop *wr = &x->writes[u][j];
            const table *t = &w->t[wr->k];
            const row *pre = &w->rows[wr->k][wr->i];
            act_as(c, us);
            bool ok = wr->kind == W_INSERT   ? pg_insert(c, t, &wr->r)
                      : wr->kind == W_UPDATE ? pg_update(c, t, pre, &wr->r)
                                             : pg_delete(c, t, pre);
            const char *why = ok ? "" : PQerrorMessage(c);
            total[1 + wr->kind]++;
            allowed[1 + wr->kind] += wr->expect;
            if (ok != wr->expect && bad++ < 20)
                fprintf(stderr, "seed %llu user %s: %s %s %s: PostgreSQL %d (%s), server %d\n",
                        (unsigned long long)seed, us->json, WKIND[wr->kind], MODEL[wr->k],
                        wr->kind == W_INSERT ? wr->r.v[0] : pre->v[0], ok, why, wr->expect);
            PQclear(PQexec(c, "ROLLBACK"));
            row_free(t, &wr->r);
        }
    }
    PQfinish(c);
    icu_drop(dbname);
    for (int u = 0; u < NUSERS; u++)
        cs_auth_free(x->users[u].auth);
    for (int k = 0; k < NMODELS; k++)
        for (int i = 0; i < w->nrows[k]; i++)
            row_free(&w->t[k], &w->rows[k][i]);
    cstack_close(db);
    free(x);
    return bad;
}

Test(pg_policy, a_backend_role_reads_and_writes_exactly_what_the_servers_rules_allow,
     .timeout = 300)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long cases = 0;
    int bad = 0;
    for (uint64_t seed = 1; seed <= NSEEDS; seed++)
        bad += differential(seed, &cases);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr,
            "pg_policy: %ld cases (%d seeds, %d users), %d mismatches, %.0f ms; allowed: "
            "reads %ld/%ld, inserts %ld/%ld, updates %ld/%ld, deletes %ld/%ld\n",
            cases, NSEEDS, NUSERS, bad, ms, allowed[0], total[0], allowed[1], total[1], allowed[2],
            total[2], allowed[3], total[3]);
    cr_assert_eq(bad, 0, "%d of %ld decisions differ (first ones above)", bad, cases);
}

/* ---- installation ------------------------------------------------------------ */

#define SMALL_HEAD                                                                                 \
    "auth User {\n  id String\n}\n"                                                                \
    "model Team {\n  id String @id\n  open Boolean\n  items Item[]\n"                              \
    "  @@allow('read', true)\n}\n"                                                                 \
    "model Item {\n  id String @id\n  teamId String?\n"                                            \
    "  team Team? @relation(fields: [teamId], references: [id])\n  ownerId String?\n"              \
    "  @@allow('create', auth() != null && ownerId == auth().id)\n"

/* v1 reads through the relation (a function), v2 only the row (inline). */
static const char *const SMALL_V1 = SMALL_HEAD "  @@allow('read', team.open)\n}\n";
static const char *const SMALL_V2 =
    SMALL_HEAD "  @@allow('read', id == \"a\" || ownerId == auth().id)\n}\n";

/* How many Item rows the backend role sees with cstack.auth = `json`
 * (NULL: not set). */
static long items_seen(PGconn *c, const char *json)
{
    user u = {0};
    if (json)
        snprintf(u.json, sizeof u.json, "%s", json);
    act_as(c, &u);
    if (json && !*json)
        pg_ok(c, "SELECT set_config('cstack.auth', '', true)");
    long n = pg_long(c, "SELECT count(*) FROM \"Item\"");
    pg_ok(c, "ROLLBACK");
    return n;
}

Test(pg_policy, row_level_security_is_enabled_not_forced_and_a_migration_replaces_the_policies)
{
    cstack_schema *v1 = t_schema(SMALL_V1), *v2 = t_schema(SMALL_V2);
    char *url = t_pg_database();
    PGconn *c = pg_connect(url);
    free(url);
    ensure(c, NULL, v1);
    role_grant(c, v1);
    pg_ok(c, "INSERT INTO \"Team\" VALUES ('t1', true), ('t2', false)");
    pg_ok(c, "INSERT INTO \"Item\" VALUES ('a', 't2', NULL), ('b', 't1', NULL), "
             "('c', NULL, 'u1'), ('d', 't1', 'u2')");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_class WHERE relname IN ('Team', 'Item') "
                            "AND relrowsecurity AND NOT relforcerowsecurity"),
                 2);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_policies WHERE tablename = 'Item'"), 4);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_proc WHERE proname = '_cstack_policy_read' "
                            "AND prosecdef"),
                 1);
    /* The owner (the tests' role, also a superuser) is not bound; the
     * backend role sees the rows of open teams. */
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\""), 4);
    cr_expect_eq(items_seen(c, NULL), 2);

    ensure(c, v1, v2);
    ensure(c, v2, v2); /* idempotent */
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_policies WHERE tablename = 'Item'"), 4);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_proc WHERE proname = '_cstack_policy_read'"),
                 0, "the function of a rule that became local is dropped");
    cr_expect_eq(items_seen(c, NULL), 1, "anonymous: 'a' only");
    cr_expect_eq(items_seen(c, ""), 1, "an empty cstack.auth is anonymous");
    cr_expect_eq(items_seen(c, "{\"sub\":\"u1\"}"), 2);
    cr_expect_eq(items_seen(c, "{\"sub\":\"u2\"}"), 2);
    /* Claims that are not JSON are an error, not a silent anonymous. */
    pg_ok(c, "BEGIN");
    pg_ok(c, "SET LOCAL ROLE " ROLE);
    pg_ok(c, "SET LOCAL cstack.auth = 'not json'");
    PGresult *r = PQexec(c, "SELECT count(*) FROM \"Item\"");
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    pg_ok(c, "ROLLBACK");
    PQfinish(c);
    cstack_schema_free(v1);
    cstack_schema_free(v2);
}

Test(pg_policy, a_write_through_the_backend_role_is_checked_then_captured_for_the_servers)
{
    cstack_schema *s = t_schema(SMALL_V2);
    char *url = t_pg_database();
    PGconn *c = pg_connect(url);
    free(url);
    ensure(c, NULL, s);
    role_grant(c, s);
    user u = {0};
    snprintf(u.json, sizeof u.json, "{\"sub\":\"u1\"}");
    act_as(c, &u);
    PGresult *r = PQexec(c, "INSERT INTO \"Item\" (id, \"ownerId\") VALUES ('x', 'u2')");
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "another owner's row is refused");
    cr_expect(strstr(PQerrorMessage(c), "row-level security") != NULL, "%s", PQerrorMessage(c));
    PQclear(r);
    pg_ok(c, "ROLLBACK");
    act_as(c, &u);
    pg_ok(c, "INSERT INTO \"Item\" (id, \"ownerId\") VALUES ('y', 'u1')");
    pg_ok(c, "COMMIT");
    /* The capture trigger queued it, though the role has no right on the
     * queue (its function is SECURITY DEFINER). */
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM _cstack_pg_backend WHERE model = 'Item' "
                            "AND new IS NOT NULL"),
                 1);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM information_schema.role_table_grants WHERE "
                            "grantee = '" ROLE "' AND table_name = '_cstack_pg_backend'"),
                 0);
    PQfinish(c);
    cstack_schema_free(s);
}

Test(pg_policy, ddl_for_postgres_prints_the_policies_and_they_load)
{
    cstack_schema *s = t_schema(SCHEMA);
    char *ddl = NULL, *pol = NULL;
    cr_assert_eq(cstack_schema_ddl(s, "postgres", &ddl), 0);
    cr_assert_eq(cstack_server_postgres_policies(s, &pol), 0);
    cr_expect(strstr(pol, "CREATE POLICY cstack_read ON \"Note\" FOR SELECT USING") != NULL, "%s",
              pol);
    cr_expect(strstr(pol, "ALTER TABLE \"Org\" ENABLE ROW LEVEL SECURITY") != NULL);
    cr_expect(strstr(pol, "FORCE") == NULL);
    char *url = t_pg_database();
    PGconn *c = pg_connect(url);
    free(url);
    pg_ok(c, "BEGIN");
    pg_ok(c, ddl);
    pg_ok(c, pol);
    pg_ok(c, pol); /* again: idempotent */
    pg_ok(c, "COMMIT");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_policies WHERE policyname LIKE 'cstack_%'"),
                 16);
    PQfinish(c);
    cstack_free(ddl);
    cstack_free(pol);
    cstack_schema_free(s);
    cr_expect_eq(cstack_server_postgres_policies(NULL, &pol), CSTACK_EINVAL);
}
