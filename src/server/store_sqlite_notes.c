/*
 * store_sqlite_notes.c -- what pulls record about each device
 * (_cstack_srv_sent), kept in memory until a write scope writes it, so that
 * a pull never waits for the write lock only to record what it sent.
 *
 * A pull that sent rows or drops adds its notes here (cs_srv_notes_add),
 * then tries the write lock without waiting: free, it writes them at once
 * (and the answer waits for that short transaction as before); held by a
 * push's merge, the pull answers and the notes are written by the next
 * write scope of the store: every push, claim and pull scope begins by
 * writing them (cs_srv_notes_drain), and a flusher thread, started by the
 * first pull that leaves notes behind, waits for the lock and writes them
 * as soon as the merge commits.
 *
 * Readers see one state.  A pull looks a row up here first, then in
 * _cstack_srv_sent as its snapshot reads it.  A note not yet written is
 * seen by every pull.  A written note stays here until no pull whose
 * snapshot may predate its transaction is still reading: each drain's
 * commit gets a generation (counted while the write lock is still held,
 * cs_write_end_then, so no later write commits before it is counted), and
 * each pull records the generation when its snapshot starts (under the same
 * mutex, cs_srv_notes_enter).  A pull uses a written note only when the
 * note's generation is not older than its own, i.e. when its snapshot may
 * lack the note; otherwise the table, which also holds whatever was
 * written after the note (a push's held record), answers.
 *
 * Order.  A push, a claim and the flusher write the notes first in their
 * transaction, so anything a device does after receiving an answer (a push
 * of a row it was told to forget) is recorded after that answer's notes,
 * and the push's held records win.  Notes added while a merge runs are
 * written after it commits, so they win over its held records, as they did
 * when such a pull waited for the merge to record them.
 *
 * Bounds.  The notes take at most `max` bytes (entry, key and user id
 * counted); a pull whose notes do not fit waits for the write lock, and
 * its scope writes every note held here.  A drain copies at most
 * DRAIN_CHUNK entries at a time, so it holds the mutex only briefly.
 *
 * Ownership.  Notes are written only for a site still bound to the user
 * whose pull made them (the statement checks _cstack_srv_sites): notes of a
 * site evicted or collected meanwhile are dropped, never recorded for
 * another user who bound the site since.  A note is keyed by site, user,
 * model and key, and a pull sees only its own user's notes.
 *
 * Crash.  Notes not yet written when the process dies are lost, as a pull
 * whose commit the disk lost after a power cut (synchronous=NORMAL): the
 * server may then resend a row, or miss a drop or a deletion for that
 * device; its next checkpoint's checksum differs and the client's
 * self-repair (src/client/repair.c) makes it whole.  Only pulls answered
 * while the write lock was taken leave notes in memory, until the flusher
 * writes them (right after the merge in progress).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_int.h"
#include "util/hash.h"

/* Entries copied per turn of a drain. */
#define DRAIN_CHUNK 256
/* A flusher whose write failed tries again after this long (or at the
 * next write scope, which drains too). */
#define RETRY_MS 1000
/* The model index of a sighting: the site's last_seen to raise. */
#define SIGHTING (-1)
/* The model index of a binding: a new site's first pull binds it to its
 * user (cs_srv_site_use_sub) before its notes are written. */
#define BINDING (-2)

enum { NOTE_PENDING, NOTE_FLIGHT, NOTE_WRITTEN };

typedef struct note note;
struct note {
    note *chain;       /* the hash bucket's next */
    note *prev, *next; /* the pending list (pending, in flight) or the written list */
    uint64_t hash;
    uint64_t gen; /* NOTE_WRITTEN: the generation of its drain */
    int state;
    int model; /* a model index, or SIGHTING */
    int present;
    int64_t at; /* a sighting's wall-clock ms */
    unsigned char site[CS_SITE_LEN];
    size_t klen;
    unsigned char *key; /* klen bytes, then the user id, NUL-terminated */
    const char *sub;
};

typedef struct note_list {
    note *head, *tail;
} note_list;

struct cs_srv_notes {
    cs_srv_store *st;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    uint64_t seed;
    note **bucket;
    size_t nbuckets;
    atomic_size_t count;
    size_t bytes, max;
    note_list pending, written;
    uint64_t gen;                       /* drains committed so far */
    cs_srv_notes_reader *rhead, *rtail; /* in order of registration */
    pthread_t flusher;
    bool flusher_on, stop;
};

static void list_push(note_list *l, note *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

static void list_cut(note_list *l, note *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

static size_t note_bytes(size_t klen, const char *sub)
{
    return sizeof(note) + sizeof(note *) + klen + strlen(sub) + 1;
}

static uint64_t note_hash(const cs_srv_notes *n, const unsigned char *site, const char *sub,
                          int model, const void *key, size_t klen)
{
    /* A binding hashes by its site alone: binding_of finds any user's. */
    if (model == BINDING) {
        sub = "";
        klen = 0;
    }
    uint64_t h = cs_fnv1a64(n->seed, site, CS_SITE_LEN);
    h = cs_fnv1a64(h, sub, strlen(sub) + 1);
    h = cs_fnv1a64(h, &model, sizeof model);
    return cs_fnv1a64(h, key, klen);
}

static note *find(const cs_srv_notes *n, uint64_t hash, const unsigned char *site, const char *sub,
                  int model, const void *key, size_t klen)
{
    if (!n->nbuckets)
        return NULL;
    for (note *e = n->bucket[hash & (n->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == hash && e->model == model && e->klen == klen &&
            memcmp(e->site, site, CS_SITE_LEN) == 0 && memcmp(e->key, key, klen) == 0 &&
            strcmp(e->sub, sub) == 0)
            return e;
    return NULL;
}

/* Another user's binding of `site` held here (pending, being written, or
 * written and not yet swept), or NULL. */
static note *binding_of(const cs_srv_notes *n, const unsigned char *site, const char *sub)
{
    uint64_t hash = note_hash(n, site, "", BINDING, "", 0);
    if (!n->nbuckets)
        return NULL;
    for (note *e = n->bucket[hash & (n->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == hash && e->model == BINDING && memcmp(e->site, site, CS_SITE_LEN) == 0 &&
            strcmp(e->sub, sub) != 0)
            return e;
    return NULL;
}

/* Keeps about one entry per bucket; a table that cannot grow stays as it
 * is (longer chains, still correct). */
static void grow(cs_srv_notes *n)
{
    size_t count = atomic_load(&n->count);
    if (count < n->nbuckets)
        return;
    size_t nb = n->nbuckets ? n->nbuckets * 2 : 64;
    note **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < n->nbuckets; i++)
        for (note *e = n->bucket[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(n->bucket);
    n->bucket = b;
    n->nbuckets = nb;
}

static void unchain(cs_srv_notes *n, note *e)
{
    note **p = &n->bucket[e->hash & (n->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
}

/* Frees the written notes no registered pull may need: those of
 * generations before the oldest registration's. */
static void sweep(cs_srv_notes *n)
{
    while (n->written.head && (!n->rhead || n->written.head->gen < n->rhead->gen)) {
        note *e = n->written.head;
        list_cut(&n->written, e);
        unchain(n, e);
        n->bytes -= note_bytes(e->klen, e->sub);
        atomic_fetch_sub(&n->count, 1);
        free(e->key);
        free(e);
    }
}

/* Records one note (or sighting); the mutex is held. */
static int put(cs_srv_notes *n, const unsigned char *site, const char *sub, int model,
               const void *key, size_t klen, int present, int64_t at)
{
    uint64_t hash = note_hash(n, site, sub, model, key, klen);
    note *e = find(n, hash, site, sub, model, key, klen);
    if (e) {
        if (e->state == NOTE_WRITTEN) {
            list_cut(&n->written, e);
            list_push(&n->pending, e);
        }
        /* In flight: the drain wrote older values; it leaves this one
         * pending (cs_srv_notes_settle). */
        e->state = NOTE_PENDING;
        e->present = present;
        e->at = model == SIGHTING && e->at > at ? e->at : at;
        return 0;
    }
    size_t sublen = strlen(sub);
    e = calloc(1, sizeof *e);
    unsigned char *k = e ? malloc(klen + sublen + 1) : NULL;
    if (!k) {
        free(e);
        return cs_err(CSTACK_ENOMEM, "out of memory recording what a device holds");
    }
    memcpy(k, key, klen);
    memcpy(k + klen, sub, sublen + 1);
    *e = (note){.hash = hash,
                .state = NOTE_PENDING,
                .model = model,
                .present = present,
                .at = at,
                .klen = klen,
                .key = k,
                .sub = (const char *)k + klen};
    memcpy(e->site, site, CS_SITE_LEN);
    grow(n);
    note **slot = &n->bucket[hash & (n->nbuckets - 1)];
    e->chain = *slot;
    *slot = e;
    list_push(&n->pending, e);
    n->bytes += note_bytes(klen, sub);
    atomic_fetch_add(&n->count, 1);
    return 0;
}

/* Calls fn on each note of a pull's buffer (pull_ctx.notes: varint model,
 * varint key length, key, one byte present). */
static int each_note(const cs_buf *b,
                     int (*fn)(void *ctx, int model, const unsigned char *key, size_t klen,
                               int present),
                     void *ctx)
{
    cs_reader r = {(const unsigned char *)b->data, b->len, 0};
    int rc = 0;
    while (!rc && r.pos < r.len) {
        uint64_t model = 0, klen = 0;
        const unsigned char *key = NULL, *present = NULL;
        if (cs_rd_varint(&r, &model) || cs_rd_varint(&r, &klen) ||
            cs_rd_bytes(&r, (size_t)klen, &key) || cs_rd_bytes(&r, 1, &present) ||
            model > INT32_MAX)
            return cs_err(CSTACK_ERROR, "corrupt sent-set notes");
        rc = fn(ctx, (int)model, key, (size_t)klen, *present);
    }
    return rc;
}

typedef struct add_ctx {
    cs_srv_notes *n;
    const cs_srv_note_set *set;
    size_t bytes;
} add_ctx;

static int count_one(void *ctx, int model, const unsigned char *key, size_t klen, int present)
{
    (void)model;
    (void)key;
    (void)present;
    add_ctx *a = ctx;
    a->bytes += note_bytes(klen, a->set->sub);
    return 0;
}

static int add_one(void *ctx, int model, const unsigned char *key, size_t klen, int present)
{
    add_ctx *a = ctx;
    return put(a->n, a->set->site, a->set->sub, model, key, klen, present, a->set->at);
}

int cs_srv_notes_add(cs_srv_notes *n, const cs_srv_note_set *sets, size_t count, bool force,
                     bool *foreign)
{
    add_ctx a = {n, NULL, 0};
    int rc = 0;
    /* An upper bound: a note replacing one held here takes nothing more. */
    for (size_t i = 0; i < count && !rc; i++) {
        a.set = &sets[i];
        rc = each_note(sets[i].notes, count_one, &a);
        a.bytes += sets[i].seen ? note_bytes(0, sets[i].sub) : 0;
        a.bytes += sets[i].bind ? note_bytes(0, sets[i].sub) : 0;
    }
    if (rc)
        return rc;
    pthread_mutex_lock(&n->mu);
    if (!force && n->bytes + a.bytes > n->max)
        rc = CSTACK_EBUSY;
    for (size_t i = 0; i < count && !rc; i++) {
        a.set = &sets[i];
        /* Of two users binding one new site here, the first holds it. */
        bool lost = sets[i].bind && binding_of(n, sets[i].site, sets[i].sub);
        if (foreign)
            foreign[i] = lost;
        if (lost)
            continue;
        /* The binding first: a drain writes in this order, and a note is
         * written only for a site bound to its user. */
        if (sets[i].bind)
            rc = put(n, sets[i].site, sets[i].sub, BINDING, "", 0, 0, sets[i].at);
        rc = rc ? rc : each_note(sets[i].notes, add_one, &a);
        if (!rc && sets[i].seen)
            rc = put(n, sets[i].site, sets[i].sub, SIGHTING, "", 0, 0, sets[i].seen);
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

/* ---- readers ------------------------------------------------------------------- */

int cs_srv_notes_enter(cs_srv_notes *n, cs_srv_notes_reader *r, int (*first_read)(void *ctx),
                       void *ctx)
{
    /* The snapshot starts with the first read, under the mutex that also
     * counts the drains: every drain counted before it is in the snapshot,
     * and one counted after it is not older than r->gen. */
    pthread_mutex_lock(&n->mu);
    int rc = first_read(ctx);
    r->gen = n->gen;
    r->next = NULL;
    r->prev = n->rtail;
    if (n->rtail)
        n->rtail->next = r;
    else
        n->rhead = r;
    n->rtail = r;
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void cs_srv_notes_leave(cs_srv_notes *n, cs_srv_notes_reader *r)
{
    pthread_mutex_lock(&n->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        n->rhead = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        n->rtail = r->prev;
    sweep(n);
    pthread_mutex_unlock(&n->mu);
}

bool cs_srv_notes_get(cs_srv_notes *n, const cs_srv_notes_reader *r, const unsigned char *site,
                      const char *sub, int model, const void *key, size_t klen, int *present,
                      int64_t *at)
{
    if (atomic_load(&n->count) == 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&n->mu);
    note *e = find(n, note_hash(n, site, sub, model, key, klen), site, sub, model, key, klen);
    if (e && (e->state != NOTE_WRITTEN || e->gen >= r->gen)) {
        *present = e->present;
        *at = e->at;
        found = true;
    }
    pthread_mutex_unlock(&n->mu);
    return found;
}

/* ---- writing them ---------------------------------------------------------------- */

/* Writes one note, or raises a site's last_seen.  The records of rows a
 * device was told to forget stay (present = 0): without them a row coming
 * back would look like one the device may hold from its own writes, and
 * echo suppression would leave out the columns it wrote.  A push that
 * committed since the pull's snapshot changes nothing here: the note
 * describes the state at its version (`at`), and the push's rows are past
 * it. */
static int write_note(cs_srv_store *st, cs_conn *c, const note *e, int present, int64_t at)
{
    if (e->model == BINDING) {
        /* Another user who bound the site first keeps it: this user's
         * notes of it are then dropped (the ownership test below), and
         * its device's next request is refused. */
        bool foreign = false;
        return cs_srv_site_use_sub(st, e->sub, e->site, &foreign);
    }
    static const char ins[] =
        "INSERT OR REPLACE INTO _cstack_srv_sent(site, model, pk, present, at)"
        " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM"
        " _cstack_srv_sites WHERE site = ?1 AND sub = ?6)";
    static const char seen[] = "UPDATE _cstack_srv_sites SET last_seen = ?1"
                               " WHERE site = ?2 AND sub = ?3 AND last_seen < ?1";
    bool sighting = e->model == SIGHTING;
    sqlite3_stmt *s = sighting ? cs_conn_prepare(c, 0, seen, sizeof seen - 1)
                               : cs_conn_prepare(c, 0, ins, sizeof ins - 1);
    if (!s)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    if (sighting) {
        sqlite3_bind_int64(s, 1, at);
        sqlite3_bind_blob(s, 2, e->site, CS_SITE_LEN, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, e->sub, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(s, 1, e->site, CS_SITE_LEN, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, st->schema->models[e->model].name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(s, 3, e->klen ? (const void *)e->key : "", (int)e->klen, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, present);
        sqlite3_bind_int64(s, 5, at);
        sqlite3_bind_text(s, 6, e->sub, -1, SQLITE_STATIC);
    }
    int step = sqlite3_step(s);
    sqlite3_reset(s);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, c->db, step);
}

int cs_srv_notes_drain(cs_srv_store *st)
{
    cs_srv_notes *n = st->notes;
    cs_conn *c = cs_write_conn(st->db);
    struct {
        const note *e;
        int present;
        int64_t at;
    } chunk[DRAIN_CHUNK];
    int rc = 0;
    /* Entries leave the pending list only when a drain settles, and this
     * thread holds the write lock: the cursor stays valid between turns
     * (the key, site and user id of an entry never change). */
    pthread_mutex_lock(&n->mu);
    note *cur = n->pending.head;
    pthread_mutex_unlock(&n->mu);
    while (!rc && cur) {
        size_t k = 0;
        pthread_mutex_lock(&n->mu);
        for (; cur && k < DRAIN_CHUNK; cur = cur->next) {
            if (cur->state != NOTE_PENDING)
                continue;
            cur->state = NOTE_FLIGHT;
            chunk[k].e = cur;
            chunk[k].present = cur->present;
            chunk[k++].at = cur->at;
        }
        pthread_mutex_unlock(&n->mu);
        for (size_t i = 0; i < k && !rc; i++)
            rc = write_note(st, c, chunk[i].e, chunk[i].present, chunk[i].at);
    }
    return rc;
}

/* After the scope that drained: the notes in flight are written (a new
 * generation) or, rolled back, pending again. */
static void settle(void *ctx, bool committed)
{
    cs_srv_notes *n = ctx;
    pthread_mutex_lock(&n->mu);
    bool any = false, left = false;
    for (note *e = n->pending.head, *next; e; e = next) {
        next = e->next;
        if (e->state != NOTE_FLIGHT) {
            left = true;
            continue;
        }
        if (!committed) {
            e->state = NOTE_PENDING;
            left = true;
            continue;
        }
        list_cut(&n->pending, e);
        e->state = NOTE_WRITTEN;
        e->gen = n->gen;
        list_push(&n->written, e);
        any = true;
    }
    n->gen += any;
    sweep(n);
    if (left)
        pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
}

int cs_srv_scope_end(cs_srv_store *st, int rc)
{
    return cs_write_end_then(st->db, rc, settle, st->notes);
}

/* ---- the flusher ------------------------------------------------------------------- */

static bool has_pending(const cs_srv_notes *n)
{
    for (const note *e = n->pending.head; e; e = e->next)
        if (e->state == NOTE_PENDING)
            return true;
    return false;
}

static int drain_scope(cs_srv_store *st)
{
    int rc = cs_write_begin(st->db);
    return rc ? rc : cs_srv_scope_end(st, cs_srv_notes_drain(st));
}

static void *flusher_main(void *arg)
{
    cs_srv_notes *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        if (!has_pending(n)) {
            pthread_cond_wait(&n->wake, &n->mu);
            continue;
        }
        pthread_mutex_unlock(&n->mu);
        /* Waits for the merge in progress, then writes. */
        int rc = drain_scope(n->st);
        pthread_mutex_lock(&n->mu);
        if (rc && !n->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += RETRY_MS / 1000;
            pthread_cond_timedwait(&n->wake, &n->mu, &until);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int cs_srv_notes_defer(cs_srv_notes *n)
{
    int rc = 0;
    pthread_mutex_lock(&n->mu);
    if (!n->flusher_on && !n->stop)
        n->flusher_on = pthread_create(&n->flusher, NULL, flusher_main, n) == 0;
    if (!n->flusher_on)
        rc = cs_err(CSTACK_ERROR, "cannot start the thread that records pulls");
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------ */

int cs_srv_notes_new(cs_srv_store *st, size_t max_bytes, cs_srv_notes **out)
{
    *out = NULL;
    cs_srv_notes *n = calloc(1, sizeof *n);
    if (!n)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    n->st = st;
    n->max = max_bytes ? max_bytes : CS_SRV_NOTES_MAX;
    cs_random_bytes(&n->seed, sizeof n->seed);
    n->seed |= 1;
    atomic_init(&n->count, 0);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->wake, NULL);
    *out = n;
    return 0;
}

void cs_srv_notes_free(cs_srv_notes *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_signal(&n->wake);
    bool join = n->flusher_on;
    bool left = has_pending(n);
    pthread_mutex_unlock(&n->mu);
    if (join)
        pthread_join(n->flusher, NULL);
    /* What is still held is written before the database closes (a failure
     * here loses it, as a crash would). */
    if (left)
        drain_scope(n->st);
    for (note *e = n->pending.head, *next; e; e = next) {
        next = e->next;
        free(e->key);
        free(e);
    }
    for (note *e = n->written.head, *next; e; e = next) {
        next = e->next;
        free(e->key);
        free(e);
    }
    free(n->bucket);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->wake);
    free(n);
}
