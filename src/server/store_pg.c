/*
 * store_pg.c -- the server's store on PostgreSQL (docs/postgres.md): the
 * SQLite store's engine runs on a private working copy, every write
 * transaction of the copy is a PostgreSQL transaction under one advisory
 * lock (store_pg_tx.c), and PostgreSQL holds the truth: the app tables
 * typed (pg_typed*.c), every other table's rows in _cstack_pg_side, and a
 * log of what each transaction wrote, from which the other servers' copies
 * catch up.
 *
 * Every method catches the copy up first when the listener heard of a newer
 * log entry, then runs the SQLite store's method on the copy; a write whose
 * begin finds the copy behind (another server committed meanwhile) fails in
 * the hook, and the method catches up and runs again.  The listener thread
 * (its own connection) LISTENs on the log and backend channels, catches up
 * and wakes the streams (cfg->changed), applies backend writes, and prunes
 * the log.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/store_pg_int.h"
#include "sync/sync_ext.h"
#include "util/clock.h"

/* A write that keeps finding the copy behind gives up after this many
 * catch-ups (each server commits between two of ours). */
#define PG_RETRIES 16
/* Backend writes applied per transaction. */
#define PG_BACKEND_ROUND 500
/* Log entries older than this are pruned, keeping the last PG_LOG_KEEP. */
#define PG_LOG_KEEP_MS (10LL * 60 * 1000)
#define PG_LOG_KEEP 1000
/* Log entries read per query while catching up. */
#define PG_CATCHUP_SEQS 256

/* Under the lock: servers starting together would race to create them. */
static const char TABLES_SQL[] =
    "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ");"
    "CREATE TABLE IF NOT EXISTS _cstack_pg_meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _cstack_pg_side(tbl text NOT NULL, key bytea NOT NULL,"
    " row bytea NOT NULL, PRIMARY KEY (tbl, key));"
    "CREATE TABLE IF NOT EXISTS _cstack_pg_log(seq bigint NOT NULL, part int NOT NULL,"
    " payload bytea NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (seq, part));"
    "COMMIT";

/* ---- the target in messages --------------------------------------------------- */

void cs_pg_target_safe(const char *target, char *out, size_t cap)
{
    size_t o = 0;
    const char *s = target ? target : "";
    const char *at = NULL, *colon = NULL;
    if (cs_pg_is_target(s) && strstr(s, "://")) {
        const char *u = strstr(s, "://") + 3;
        at = strchr(u, '@');
        const char *slash = strchr(u, '/');
        if (at && (!slash || at < slash))
            colon = memchr(u, ':', (size_t)(at - u));
    }
    for (const char *p = s; *p && o + 1 < cap;) {
        if (colon && p == colon) {
            p = at; /* drop ":password" */
            continue;
        }
        if (strncmp(p, "password=", 9) == 0) {
            int w = snprintf(out + o, cap - o, "password=***");
            o += w > 0 && (size_t)w < cap - o ? (size_t)w : 0;
            p += 9;
            while (*p && *p != '&' && *p != ' ')
                p++;
            continue;
        }
        out[o++] = *p++;
    }
    out[o < cap ? o : cap - 1] = 0;
}

/* PostgreSQL's notices ("relation ... already exists, skipping") are not
 * the server's to print. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int connect_to(const char *target, PGconn **out, cs_srv_err *err)
{
    *out = PQconnectdb(target);
    if (*out && PQstatus(*out) == CONNECTION_OK) {
        PQsetNoticeProcessor(*out, quiet, NULL);
        return 0;
    }
    char safe[256], msg[480];
    cs_pg_target_safe(target, safe, sizeof safe);
    snprintf(msg, sizeof msg, "cannot connect to PostgreSQL at %s: %s", safe,
             *out ? PQerrorMessage(*out) : "out of memory");
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = 0;
    cs_srv_err_set(err, CS_SRV_UNAVAILABLE, CSTACK_EIO, msg);
    PQfinish(*out);
    *out = NULL;
    return CSTACK_EIO;
}

/* ---- the working copy -------------------------------------------------------------- */

static void copy_files_remove(const char *dir)
{
    static const char *const SUFFIX[] = {"", "-wal", "-shm", "-journal"};
    char path[4200];
    for (size_t i = 0; i < sizeof SUFFIX / sizeof SUFFIX[0]; i++) {
        snprintf(path, sizeof path, "%s/copy.db%s", dir, SUFFIX[i]);
        unlink(path);
    }
}

static void copy_close(cs_pg *pg, bool remove)
{
    if (pg->inner) {
        cs_store_set_txhook(pg->inner->db, NULL, NULL);
        pg->inner->pg = NULL;
        cs_srv_store_sqlite.close(pg->inner);
        pg->inner = NULL;
    }
    pg_catalog_free(pg);
    cs_pg_typed_free(pg->typed);
    pg->typed = NULL;
    if (remove && pg->dir)
        copy_files_remove(pg->dir);
}

static int local_table(cs_pg *pg)
{
    cstack *db = pg->inner->db;
    int rc = cs_write_lock(db);
    if (rc)
        return rc;
    rc = sqlite3_exec(cs_write_conn(db)->db,
                      "CREATE TABLE IF NOT EXISTS " PG_LOCAL_TABLE
                      "(k INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
                      NULL, NULL, NULL) == SQLITE_OK
             ? 0
             : CSTACK_ESQLITE;
    cs_write_unlock(db);
    return rc;
}

/* Opens the SQLite store on the copy file for `schema` (creating or
 * migrating it), with every table it will write, and reads its catalog. */
static int copy_open(cs_pg *pg, const cstack_schema *schema, const cs_srv_store_cfg *cfg,
                     cs_srv_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/copy.db", pg->dir);
    int rc = cs_srv_store_sqlite.open(schema, path, cfg, &pg->inner, err);
    if (rc)
        return rc;
    pg->inner->pg = pg;
    cs_srv_versions *v = NULL;
    if ((rc = cs_srv_store_sqlite.versions(pg->inner, &v)) || (rc = local_table(pg))) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
        return rc;
    }
    cs_srv_versions_free(v);
    rc = cs_pg_typed_new(pg->conn, cstack_schema_of(pg->inner->db), &pg->typed, err);
    if (!rc && !(rc = cs_write_lock(pg->inner->db))) {
        rc = pg_catalog_load(pg, err);
        cs_write_unlock(pg->inner->db);
    }
    return rc;
}

/* ---- catching up ------------------------------------------------------------------- */

/* Replaces the copy with PostgreSQL's state, read in one snapshot; in the
 * caller's merge scope. */
static int reload(cs_pg *pg, cs_srv_err *err)
{
    int rc = cs_pg_exec(pg->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    PGresult *r = rc ? NULL : PQexec(pg->conn, "SELECT coalesce(max(seq), 0) FROM _cstack_pg_log");
    rc = rc ? rc : cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading the log", err);
    int64_t seq = rc ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    rc = rc ? rc : pg_load_all(pg, err);
    PQclear(PQexec(pg->conn, rc ? "ROLLBACK" : "COMMIT"));
    if (!rc && pg_local_set(pg, seq)) {
        rc = CSTACK_ESQLITE;
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot record the applied log entry");
    }
    if (!rc)
        pg->committed_seq = seq;
    return rc;
}

/* Sets *gap when the log ends before `cur`, the copy's seq: the database
 * is older than the copy (restored from a backup), which must reload. */
static int log_behind(cs_pg *pg, int64_t cur, bool *gap, cs_srv_err *err)
{
    PGresult *r = PQexec(pg->conn, "SELECT coalesce(max(seq), 0) FROM _cstack_pg_log");
    int rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading the log", err);
    *gap = !rc && strtoll(PQgetvalue(r, 0, 0), NULL, 10) != cur;
    PQclear(r);
    return rc;
}

/* Applies the log entries after the copy's seq; *gap when the next one was
 * pruned (the copy must reload).  In the caller's merge scope. */
static int apply_new(cs_pg *pg, bool *gap, cs_srv_err *err)
{
    int64_t cur = atomic_load(&pg->applied);
    int rc = 0;
    cs_buf entry = CS_BUF_INIT;
    for (bool more = true; more && !rc && !*gap;) {
        char from[24], to[24];
        snprintf(from, sizeof from, "%lld", (long long)cur);
        snprintf(to, sizeof to, "%lld", (long long)(cur + PG_CATCHUP_SEQS));
        const char *p[2] = {from, to};
        PGresult *r = PQexecParams(pg->conn,
                                   "SELECT seq, part, payload FROM _cstack_pg_log WHERE seq > $1 "
                                   "AND seq <= $2 ORDER BY seq, part",
                                   2, NULL, p, NULL, NULL, 0);
        rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading the log", err);
        int n = rc ? 0 : PQntuples(r);
        more = n > 0;
        if (!rc && n == 0 && cur == atomic_load(&pg->applied))
            rc = log_behind(pg, cur, gap, err);
        for (int i = 0; !rc && i < n; i++) {
            int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            if (seq != cur && seq != cur + 1) {
                *gap = true;
                break;
            }
            size_t len = 0;
            unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);
            rc = bytes ? cs_buf_append(&entry, bytes, len) : CSTACK_ENOMEM;
            PQfreemem(bytes);
            bool last = i + 1 == n || strtoll(PQgetvalue(r, i + 1, 0), NULL, 10) != seq;
            if (!rc && last) {
                rc = pg_apply_entry(pg, (const unsigned char *)entry.data, entry.len, err);
                cs_buf_reset(&entry);
                cur = seq;
            }
        }
        PQclear(r);
    }
    cs_buf_free(&entry);
    if (!rc && !*gap && cur != atomic_load(&pg->applied)) {
        if (pg_local_set(pg, cur))
            rc = CSTACK_ESQLITE;
        pg->committed_seq = cur;
    }
    return rc;
}

/* Brings the copy up to PostgreSQL's log, and wakes the streams when it
 * applied any.  Whichever thread catches up wakes them: a request that found
 * the copy behind (a push's transaction, a pull's probe) applies the entries
 * the listener then finds applied, and would otherwise leave the streams
 * asleep until their next heartbeat. */
static int catch_up(cs_pg *pg, cs_srv_err *err)
{
    cstack *db = pg->inner->db;
    pg_applying_next(); /* the hook's end clears it */
    int rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    if (rc) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
        return rc;
    }
    bool gap = false;
    rc = apply_new(pg, &gap, err);
    if (rc || gap) {
        /* A conflict or a pruned entry: the copy starts again from
         * PostgreSQL's state.  Nothing of the failed apply stays. */
        cs_write_end(db, CSTACK_EERROR);
        pg_applying_next();
        if ((rc = cs_write_begin_opts(db, CS_WRITE_MERGE)))
            return rc;
        rc = reload(pg, err);
    }
    bool applied = pg->committed_seq != 0;
    if (!rc && applied && (rc = cs_sync_reload(db)))
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
    rc = cs_write_end(db, rc);
    if (!rc && applied && pg->changed)
        pg->changed(pg->changed_ctx);
    return rc;
}

/* ---- backend writes -------------------------------------------------------------- */

/* Merges the queue of backend writes in rounds, each a merge transaction
 * of the copy. */
static int backend_ingest(cs_pg *pg, bool *any, cs_srv_err *err)
{
    cstack *db = pg->inner->db;
    size_t n = PG_BACKEND_ROUND;
    int rc = 0;
    for (int tries = 0; n == PG_BACKEND_ROUND && tries <= PG_RETRIES;) {
        if ((rc = cs_write_begin_opts(db, CS_WRITE_MERGE)) == 0) {
            rc = cs_pg_backend_ingest(pg->typed, db, PG_BACKEND_ROUND, &n, err);
            rc = cs_write_end(db, rc ? pg_fail(err) : 0);
        }
        if (!rc) {
            *any = *any || n > 0;
            continue;
        }
        if (!pg_behind_take())
            break;
        tries++;
        if ((rc = catch_up(pg, err)))
            break;
    }
    if (rc && !err->message[0])
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
    return rc;
}

/* ---- the listener ------------------------------------------------------------------- */

static int listen_start(cs_pg *pg, cs_srv_err *err)
{
    return cs_pg_exec(pg->listen, "LISTEN " CS_PG_CHANNEL_LOG "; LISTEN " CS_PG_CHANNEL_BACKEND,
                      err);
}

static void prune(cs_pg *pg)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM _cstack_pg_log WHERE at < now() - interval '%lld milliseconds' AND "
             "seq <= (SELECT max(seq) - %d FROM _cstack_pg_log)",
             (long long)PG_LOG_KEEP_MS, PG_LOG_KEEP);
    PQclear(PQexec(pg->listen, sql));
}

/* Takes the notifications libpq has read; whether there were any. */
static bool heard(cs_pg *pg)
{
    PGnotify *n;
    bool any = false;
    while ((n = PQnotifies(pg->listen)) != NULL) {
        any = true;
        if (strcmp(n->relname, CS_PG_CHANNEL_LOG) == 0) {
            int64_t seq = strtoll(n->extra, NULL, 10);
            if (seq > atomic_load(&pg->seen_seq))
                atomic_store(&pg->seen_seq, seq);
        } else
            atomic_store(&pg->backend, true);
        PQfreemem(n);
    }
    return any;
}

/* Waits up to `ms` for the listener's socket (or a stop).  Notifications
 * that arrived with the answer of a command on this connection (LISTEN, the
 * prune) are already in libpq's buffer, and the socket will not signal them
 * again: they are taken first. */
static void listen_wait(cs_pg *pg, int ms)
{
    if (heard(pg))
        return;
    struct pollfd p = {.fd = PQsocket(pg->listen), .events = POLLIN};
    if (p.fd < 0 || PQstatus(pg->listen) != CONNECTION_OK) {
        usleep((useconds_t)ms * 1000);
        return;
    }
    if (poll(&p, 1, ms) > 0 && PQconsumeInput(pg->listen))
        heard(pg);
}

static void *listener(void *arg)
{
    cs_pg *pg = arg;
    int backoff = 100;
    int64_t pruned = 0;
    while (!atomic_load(&pg->stop)) {
        cs_srv_err err = {0};
        if (PQstatus(pg->listen) != CONNECTION_OK) {
            listen_wait(pg, backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            PQreset(pg->listen);
            if (PQstatus(pg->listen) != CONNECTION_OK || listen_start(pg, &err))
                continue;
            backoff = 100;
            atomic_store(&pg->backend, true); /* anything missed meanwhile */
            atomic_store(&pg->seen_seq, atomic_load(&pg->seen_seq) + 1);
        }
        listen_wait(pg, 200);
        bool any = false;
        if (atomic_load(&pg->seen_seq) > atomic_load(&pg->applied) && !atomic_load(&pg->down))
            catch_up(pg, &err); /* a failure is the next request's to report */
        if (atomic_exchange(&pg->backend, false) && !atomic_load(&pg->down) &&
            backend_ingest(pg, &any, &err))
            atomic_store(&pg->backend, true); /* retried on the next turn */
        if (any && pg->changed)
            pg->changed(pg->changed_ctx);
        if (cs_wall_ms() - pruned > 60 * 1000) {
            prune(pg);
            pruned = cs_wall_ms();
        }
    }
    return NULL;
}

/* ---- open / close ----------------------------------------------------------------- */

static void pg_free(cs_pg *pg)
{
    if (!pg)
        return;
    if (pg->thread_on) {
        atomic_store(&pg->stop, true);
        pthread_join(pg->thread, NULL);
    }
    copy_close(pg, true);
    pg_touched_free(&pg->touched);
    PQfinish(pg->conn);
    PQfinish(pg->listen);
    if (pg->dir) {
        char lock[4200];
        snprintf(lock, sizeof lock, "%s/lock", pg->dir);
        unlink(lock);
        rmdir(pg->dir);
    }
    if (pg->lock_fd >= 0)
        close(pg->lock_fd);
    free(pg->dir);
    free(pg->target);
    free(pg);
}

/* The schema the database last ran (NULL: none yet). */
static int schema_of_db(cs_pg *pg, cstack_schema **old, cs_srv_err *err)
{
    *old = NULL;
    PGresult *r = PQexec(pg->conn, "SELECT value FROM _cstack_pg_meta WHERE key = 'schema'");
    int rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading the schema", err);
    if (!rc && PQntuples(r) == 1) {
        const char *src = PQgetvalue(r, 0, 0);
        if (cstack_schema_parse("(the database's schema)", src, strlen(src), old, NULL)) {
            rc = CSTACK_ESCHEMA;
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc,
                           "the schema recorded in PostgreSQL (_cstack_pg_meta) does not parse");
        }
    }
    PQclear(r);
    return rc;
}

static int schema_record(cs_pg *pg, const cstack_schema *schema, cs_srv_err *err)
{
    const char *p[1] = {schema->source ? schema->source : ""};
    PGresult *r = PQexecParams(pg->conn,
                               "INSERT INTO _cstack_pg_meta(key, value) VALUES ('schema', $1) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               1, NULL, p, NULL, NULL, 0);
    int rc = cs_pg_check(pg->conn, r, PGRES_COMMAND_OK, "recording the schema", err);
    PQclear(r);
    return rc;
}

/* Loads the copy from PostgreSQL (run by `old`, migrated to `schema` when
 * they differ: the copy then migrates too and is saved whole). */
static int start_from_db(cs_pg *pg, const cstack_schema *old, const cstack_schema *schema,
                         const cs_srv_store_cfg *cfg, cs_srv_err *err)
{
    bool same = strcmp(cstack_schema_hash(old), cstack_schema_hash(schema)) == 0;
    int rc = copy_open(pg, same ? schema : old, cfg, err);
    cstack *db = rc ? NULL : pg->inner->db;
    if (!rc && !(rc = cs_write_begin_opts(db, CS_WRITE_MERGE))) {
        PGresult *r = PQexec(pg->conn, "SELECT coalesce(max(seq), 0) FROM _cstack_pg_log");
        rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading the log", err);
        int64_t seq = rc ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        rc = rc ? rc : pg_load_all(pg, err);
        if (!rc && (pg_local_set(pg, seq) || cs_sync_reload(db))) {
            rc = CSTACK_ESQLITE;
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
        }
        rc = cs_write_end(db, rc);
        atomic_store(&pg->applied, seq);
    }
    if (rc || same)
        return rc;
    copy_close(pg, false);
    rc = copy_open(pg, schema, cfg, err);
    if (!rc && !(rc = cs_write_lock(pg->inner->db))) {
        rc = pg_save_all(pg, err);
        cs_write_unlock(pg->inner->db);
    }
    return rc;
}

/* Under the lock: PostgreSQL's tables, then the copy loaded from them, or
 * (a new database) saved into them. */
static int start(cs_pg *pg, const cstack_schema *schema, const cs_srv_store_cfg *cfg,
                 cs_srv_err *err)
{
    int64_t seq = 0;
    int rc = cs_pg_exec(pg->conn, TABLES_SQL, err);
    rc = rc ? rc : pg_tx_open(pg, &seq, err);
    if (rc)
        return rc;
    cstack_schema *old = NULL;
    rc = schema_of_db(pg, &old, err);
    rc = rc ? rc : cs_pg_typed_ensure(pg->conn, old, schema, err);
    if (!rc && old)
        rc = start_from_db(pg, old, schema, cfg, err);
    else if (!rc && !(rc = copy_open(pg, schema, cfg, err)) &&
             !(rc = cs_write_lock(pg->inner->db))) {
        rc = pg_save_all(pg, err);
        cs_write_unlock(pg->inner->db);
    }
    rc = rc ? rc : schema_record(pg, schema, err);
    cstack_schema_free(old);
    if (rc) {
        PQclear(PQexec(pg->conn, "ROLLBACK"));
        return rc;
    }
    return cs_pg_exec(pg->conn, "COMMIT", err);
}

#define COPY_DIR_PREFIX "cstack-pg-"

/* Removes the working copies of servers that died without closing (a
 * SIGKILL): each live server holds an flock on its directory's lock file,
 * which the kernel drops when the process ends, whatever its PID namespace.
 * Only directories of this user with a lock file nobody holds go; a
 * directory still being made has no lock file yet and is left alone. */
static void sweep_dead_copies(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    char dir[4096], lock[4200];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (strncmp(e->d_name, COPY_DIR_PREFIX, strlen(COPY_DIR_PREFIX)) != 0)
            continue;
        snprintf(dir, sizeof dir, "%s/%s", tmp, e->d_name);
        if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid())
            continue;
        snprintf(lock, sizeof lock, "%s/lock", dir);
        int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            copy_files_remove(dir);
            unlink(lock);
            rmdir(dir);
        }
        close(fd);
    }
    closedir(d);
}

static int make_dir(cs_pg *pg, cs_srv_err *err)
{
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    sweep_dead_copies(tmp);
    char path[4096];
    snprintf(path, sizeof path, "%s/" COPY_DIR_PREFIX "XXXXXX", tmp);
    if (!mkdtemp(path)) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EIO,
                       "cannot create a temporary directory for the working copy");
        return CSTACK_EIO;
    }
    if (!(pg->dir = cs_strdup(path)))
        return CSTACK_ENOMEM;
    snprintf(path, sizeof path, "%s/lock", pg->dir);
    pg->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pg->lock_fd < 0 || flock(pg->lock_fd, LOCK_EX) != 0) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EIO,
                       "cannot lock the working copy's temporary directory");
        return CSTACK_EIO;
    }
    return 0;
}

static int pg_open(const cstack_schema *schema, const char *target, const cs_srv_store_cfg *cfg,
                   cs_srv_store **out, cs_srv_err *err)
{
    *out = NULL;
    cs_pg *pg = calloc(1, sizeof *pg);
    if (!pg || !(pg->target = cs_strdup(target))) {
        free(pg);
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
        return CSTACK_ENOMEM;
    }
    pg->lock_fd = -1;
    pg->schema = schema;
    pg->changed = cfg ? cfg->changed : NULL;
    pg->changed_ctx = cfg ? cfg->changed_ctx : NULL;
    int rc = make_dir(pg, err);
    rc = rc ? rc : connect_to(target, &pg->conn, err);
    rc = rc ? rc : connect_to(target, &pg->listen, err);
    /* Listening before the load: no commit after it goes unheard. */
    rc = rc ? rc : listen_start(pg, err);
    rc = rc ? rc : start(pg, schema, cfg, err);
    if (!rc) {
        cs_store_set_txhook(pg->inner->db, &cs_pg_txhook, pg);
        bool any = false;
        rc = backend_ingest(pg, &any, err);
    }
    if (!rc && pthread_create(&pg->thread, NULL, listener, pg) != 0) {
        rc = CSTACK_ENOMEM;
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot start the PostgreSQL listener");
    }
    pg->thread_on = !rc;
    if (rc) {
        pg_free(pg);
        return rc;
    }
    *out = pg->inner;
    return 0;
}

static void pg_close(cs_srv_store *st)
{
    if (st)
        pg_free(st->pg);
}

/* ---- the methods --------------------------------------------------------------------- */

/* Before a method: the connection (re-established when lost, at most once
 * a second) and the copy caught up when the listener heard of newer
 * entries, or `force`. */
static int ready(cs_pg *pg, bool force, cs_srv_err *err)
{
    if (atomic_load(&pg->down) || PQstatus(pg->conn) != CONNECTION_OK) {
        int64_t now = cs_wall_ms();
        int rc = CSTACK_EIO;
        if (now - pg->reset_ms >= 1000 && !cs_write_lock(pg->inner->db)) {
            pg->reset_ms = now;
            PQreset(pg->conn);
            rc = PQstatus(pg->conn) == CONNECTION_OK ? 0 : CSTACK_EIO;
            cs_write_unlock(pg->inner->db);
        }
        if (rc) {
            cs_srv_err_set(err, CS_SRV_UNAVAILABLE, rc, "PostgreSQL cannot be reached");
            return rc;
        }
        atomic_store(&pg->down, false);
        force = true;
    }
    if (!force && atomic_load(&pg->seen_seq) <= atomic_load(&pg->applied))
        return 0;
    int rc = catch_up(pg, err);
    if (rc && PQstatus(pg->conn) != CONNECTION_OK) {
        atomic_store(&pg->down, true);
        err->kind = CS_SRV_UNAVAILABLE;
    }
    return rc;
}

/* After a method failed: whether to run it again (it began behind). */
static bool again(cs_pg *pg, int rc, int *tries, cs_srv_err *err)
{
    if (!rc)
        return false;
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        atomic_store(&pg->down, true);
        cs_srv_err_set(err, CS_SRV_UNAVAILABLE, rc, "PostgreSQL cannot be reached");
        return false;
    }
    return pg_behind_take() && ++*tries <= PG_RETRIES;
}

/* Holds (on) or releases PostgreSQL's advisory lock for this server's
 * session, beyond one transaction: while held, no other server commits, so
 * a catch-up followed by the method cannot find the copy behind again.  The
 * store's threads share the session, so they are not held up by it. */
static bool hold_log(cs_pg *pg, bool on)
{
    cstack *db = pg->inner->db;
    if (cs_write_lock(db))
        return false;
    PGresult *r = PQexec(pg->conn, on ? "SELECT pg_advisory_lock(" PG_LOCK_KEY ")"
                                      : "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    cs_write_unlock(db);
    return ok;
}

typedef int (*pg_method)(cs_srv_store *st, void *arg, cs_srv_err *err);

/* Runs a method of the SQLite store on the copy, caught up first.  A method
 * that began behind (another server committed meanwhile) catches up and runs
 * again; after its first loss it runs holding the log's lock, so under a
 * storm of commits through other servers it cannot lose every time. */
static int on_copy(cs_srv_store *st, pg_method m, void *arg, cs_srv_err *err)
{
    cs_pg *pg = st->pg;
    int rc, tries = 0;
    bool force = false, held = false;
    do {
        if (force && !held)
            held = hold_log(pg, true);
        rc = ready(pg, force, err);
        rc = rc ? rc : m(st, arg, err);
        force = true;
    } while (again(pg, rc, &tries, err));
    if (held)
        hold_log(pg, false);
    return rc;
}

typedef struct push_args {
    const cs_srv_push *req;
    cs_srv_push_result *res;
} push_args;

static int push_m(cs_srv_store *st, void *arg, cs_srv_err *err)
{
    push_args *a = arg;
    return cs_srv_store_sqlite.push(st, a->req, a->res, err);
}

static int pg_push(cs_srv_store *st, const cs_srv_push *req, cs_srv_push_result *res,
                   cs_srv_err *err)
{
    push_args a = {req, res};
    return on_copy(st, push_m, &a, err);
}

/* A pull answers from a copy that holds every commit that ended before the
 * pull began, through whichever server: a device pushing through one server
 * and pulling through another (a load balancer) must not get an older
 * state, whose checksum would differ from its own and start a repair.  The
 * listener's notification may still be on its way, so the log's end is read
 * here (an index lookup, on the store's connection under the write lock). */
static void probe_log(cs_pg *pg)
{
    cstack *db = pg->inner->db;
    if (atomic_load(&pg->down) || cs_write_lock(db))
        return;
    PGresult *r = PQexec(pg->conn, "SELECT coalesce(max(seq), 0) FROM _cstack_pg_log");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (seq > atomic_load(&pg->seen_seq))
            atomic_store(&pg->seen_seq, seq);
    }
    PQclear(r);
    cs_write_unlock(db);
}

typedef struct pull_args {
    const cs_srv_pull *reqs;
    size_t n;
    cs_srv_pull_result *res;
} pull_args;

static int pull_m(cs_srv_store *st, void *arg, cs_srv_err *err)
{
    pull_args *a = arg;
    return cs_srv_store_sqlite.pull(st, a->reqs, a->n, a->res, err);
}

static int pg_pull(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, cs_srv_pull_result *res,
                   cs_srv_err *err)
{
    probe_log(st->pg);
    pull_args a = {reqs, n, res};
    return on_copy(st, pull_m, &a, err);
}

typedef struct claim_args {
    const cs_auth *auth;
    const char *site;
} claim_args;

static int claim_m(cs_srv_store *st, void *arg, cs_srv_err *err)
{
    claim_args *a = arg;
    return cs_srv_store_sqlite.claim(st, a->auth, a->site, err);
}

static int pg_claim(cs_srv_store *st, const cs_auth *auth, const char *site, cs_srv_err *err)
{
    claim_args a = {auth, site};
    return on_copy(st, claim_m, &a, err);
}

static int pg_version(cs_srv_store *st, int64_t *version)
{
    cs_srv_err err = {0};
    int rc = ready(st->pg, false, &err);
    return rc ? rc : cs_srv_store_sqlite.version(st, version);
}

static int versions_m(cs_srv_store *st, void *arg, cs_srv_err *err)
{
    (void)err;
    return cs_srv_store_sqlite.versions(st, arg);
}

static int pg_versions(cs_srv_store *st, cs_srv_versions **out)
{
    cs_srv_err err = {0};
    return on_copy(st, versions_m, out, &err);
}

const cs_srv_store_ops cs_srv_store_pg = {
    .iversion = 3,
    .name = "postgres",
    .open = pg_open,
    .push = pg_push,
    .pull = pg_pull,
    .version = pg_version,
    .claim = pg_claim,
    .close = pg_close,
    .versions = pg_versions,
};

int cstack_server_db_is_postgres(const char *db)
{
    return cs_pg_is_target(db);
}

int cstack_server_migrate_postgres(const char *schema_path, const char *db, char *err,
                                   size_t errlen)
{
    cstack_schema *schema = NULL;
    int rc = cstack_schema_load(schema_path, &schema, NULL);
    if (rc) {
        snprintf(err, errlen, "%s: the schema has errors (cstack check shows them)", schema_path);
        return rc;
    }
    cs_srv_store *st = NULL;
    cs_srv_err e = {0};
    rc = cs_srv_store_pg.open(schema, db, NULL, &st, &e);
    if (rc)
        snprintf(err, errlen, "%s", e.message);
    cs_srv_store_pg.close(st);
    cstack_schema_free(schema);
    return rc;
}
