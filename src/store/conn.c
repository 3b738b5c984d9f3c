/* conn.c -- one SQLite connection and its prepared-statement cache.
 *
 * Statements are cached per connection under a 64-bit key: a caller-chosen
 * key (CS_KEY_CUSTOM: row statements from sql/, whose key names their model,
 * kind and column set), or for rare statements a hash of their text, which
 * is then compared too.  The cache is a direct-mapped table indexed by a mix
 * of the key's bits (custom keys differ in their high bits): a collision
 * finalizes the older statement, which is cheap and bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/hash.h"
#include "value/value.h"

uint64_t cs_hash64(const void *p, size_t n)
{
    /* FNV-1a: fast and good enough to tell statements apart; a collision
     * costs only a re-prepare because the text is compared too. */
    uint64_t h = cs_fnv1a64(CS_FNV64_INIT, p, n);
    /* Text hashes never have the top bit set; custom keys always do. */
    h &= ~CS_KEY_CUSTOM;
    return h ? h : 1;
}

/* The high half is folded in first: a product's bits 32..38 depend only on
 * the key's low 39 bits, and row statement keys differ above them (model
 * and kind), so without the fold they all shared a handful of slots. */
static cs_stmt_slot *slot_of(cs_conn *c, uint64_t key)
{
    return &c->cache[(((key ^ key >> 32) * 0x9E3779B97F4A7C15ull) >> 32) % CS_STMT_CACHE];
}

static int exec_pragma(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

int cs_conn_open(cs_conn *c, const char *path, bool readonly, bool memory, int busy_ms,
                 char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    flags |= readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(memory ? ":memory:" : path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database '%s': %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close(c->db);
        c->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(c->db, busy_ms);
    sqlite3_extended_result_codes(c->db, 1);
    if ((rc = cs_value_register_sqlite(c->db)) != SQLITE_OK) {
        snprintf(err, errlen, "cannot register SQL functions: %s", sqlite3_errstr(rc));
        return rc;
    }
    if (!readonly && !memory) {
        if ((rc = exec_pragma(c->db, "PRAGMA journal_mode=WAL", err, errlen)) ||
            (rc = exec_pragma(c->db, "PRAGMA synchronous=NORMAL", err, errlen)))
            return rc;
    }
    if ((rc = exec_pragma(c->db, "PRAGMA foreign_keys=ON", err, errlen)))
        return rc;
    return SQLITE_OK;
}

void cs_conn_close(cs_conn *c)
{
    for (size_t i = 0; i < c->nretired; i++)
        sqlite3_finalize(c->retired[i]);
    free(c->retired);
    c->retired = NULL;
    c->nretired = 0;
    for (size_t i = 0; i < CS_STMT_CACHE; i++)
        sqlite3_finalize(c->cache[i].stmt);
    memset(c->cache, 0, sizeof c->cache);
    sqlite3_close_v2(c->db);
    c->db = NULL;
}

/* Gives up a cached statement.  One still being stepped (its caller is in
 * the middle of a scan) is kept aside until it is done: finalizing it would
 * pull it from under that caller.  Returns non-zero only when out of memory
 * (the statement then stays where it is). */
static int evict(cs_conn *c, sqlite3_stmt *old)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->nretired; i++) {
        if (sqlite3_stmt_busy(c->retired[i]))
            c->retired[keep++] = c->retired[i];
        else
            sqlite3_finalize(c->retired[i]);
    }
    c->nretired = keep;
    if (!old || !sqlite3_stmt_busy(old)) {
        sqlite3_finalize(old);
        return 0;
    }
    sqlite3_stmt **r = realloc(c->retired, (c->nretired + 1) * sizeof *r);
    if (!r)
        return CSTACK_ENOMEM;
    c->retired = r;
    c->retired[c->nretired++] = old;
    return 0;
}

/* ---- dependencies of live queries ----------------------------------------
 *
 * While a thread records (cs_store_record_reads), every statement it asks
 * for is prepared once more with an authorizer that reports the tables it
 * reads.  Only a watch's first run records, so the extra prepare (and the
 * expiry of the connection's statements that setting an authorizer causes)
 * is paid once per watch. */
static _Thread_local void (*record_fn)(void *ctx, const char *table);
static _Thread_local void *record_ctx;

void cs_store_record_reads(void (*fn)(void *ctx, const char *table), void *ctx)
{
    record_fn = fn;
    record_ctx = ctx;
}

static int on_authorize(void *p, int action, const char *a1, const char *a2, const char *a3,
                        const char *a4)
{
    (void)p;
    (void)a2;
    (void)a3;
    (void)a4;
    if (action == SQLITE_READ && a1 && strncmp(a1, "sqlite_", 7) != 0)
        record_fn(record_ctx, a1);
    return SQLITE_OK;
}

static void record_reads(cs_conn *c, const char *sql, size_t len)
{
    sqlite3_stmt *st = NULL;
    sqlite3_set_authorizer(c->db, on_authorize, NULL);
    sqlite3_prepare_v2(c->db, sql, (int)len, &st, NULL);
    sqlite3_set_authorizer(c->db, NULL, NULL);
    sqlite3_finalize(st);
}

sqlite3_stmt *cs_conn_prepare(cs_conn *c, uint64_t key, const char *sql, size_t len)
{
    if (record_fn && len <= (size_t)INT32_MAX)
        record_reads(c, sql, len);
    if (!key)
        key = cs_hash64(sql, len);
    cs_stmt_slot *slot = slot_of(c, key);
    if (slot->key == key && slot->stmt && (key & CS_KEY_CUSTOM)) {
        /* Callers of custom keys bind every parameter, so only a reset. */
        sqlite3_reset(slot->stmt);
        return slot->stmt;
    }
    if (slot->key == key && slot->stmt) {
        const char *txt = sqlite3_sql(slot->stmt);
        if (txt && strlen(txt) == len && memcmp(txt, sql, len) == 0) {
            sqlite3_reset(slot->stmt);
            sqlite3_clear_bindings(slot->stmt);
            return slot->stmt;
        }
    }
    sqlite3_stmt *st = NULL;
    if (len > (size_t)INT32_MAX)
        return NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
        return NULL;
    if (evict(c, slot->stmt)) {
        sqlite3_finalize(st);
        return NULL;
    }
    slot->key = key;
    slot->stmt = st;
    return st;
}

sqlite3_stmt *cs_conn_prepare_row(cs_conn *c, const cs_rowstmt *st)
{
    return cs_conn_prepare(c, st->key ? CS_KEY_ROWSQL | st->key : 0, st->sql, st->len);
}
