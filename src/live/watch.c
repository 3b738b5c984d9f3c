/* watch.c -- live queries: creating and stopping watches, their
 * dependencies, and marking them dirty when a commit touches them.
 *
 * A watch is an envelope read request.  Its first run happens in
 * cstack_watch_envelope, on the caller's thread, recording the tables its
 * statements read (SQLite's authorizer, through cs_store_record_reads); the
 * response becomes the first delivery.  Later runs happen in deliver.c when
 * a commit changed one of those tables (the store's update hook), or when
 * another connection committed (data_version). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "live/live_int.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/jsonr.h"

static const char *const READ_KINDS[] = {"find_many", "find_first", "find_unique",
                                         "count",     "aggregate",  "group_by", NULL};

/* ---- dependencies ----------------------------------------------------------- */

/* The tables a first run read, as the store reports them. */
typedef struct deps {
    char **names;
    size_t n;
    bool all; /* one could not be remembered: every commit counts */
} deps;

static void add_table(void *ctx, const char *table)
{
    deps *d = ctx;
    for (size_t i = 0; i < d->n; i++)
        if (strcasecmp(d->names[i], table) == 0)
            return;
    char **grown = realloc(d->names, (d->n + 1) * sizeof *grown);
    char *copy = grown ? strdup(table) : NULL;
    if (grown)
        d->names = grown;
    if (!copy) {
        d->all = true;
        return;
    }
    d->names[d->n++] = copy;
}

static void deps_free(deps *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
}

/* The bit of table `name` in l's list (mu held), adding it when `add`; 0
 * when absent (or the list of 64 is full). */
static uint64_t table_bit(cs_live *l, const char *name, bool add)
{
    for (int i = 0; i < l->ntables; i++)
        if (strcasecmp(l->tables[i], name) == 0)
            return 1ull << i;
    char *copy = add && l->ntables < 64 ? strdup(name) : NULL;
    if (!copy)
        return 0;
    l->tables[l->ntables] = copy;
    return 1ull << l->ntables++;
}

/* A watch's dependency bits (mu held): every bit when unknown. */
static uint64_t deps_mask(cs_live *l, const deps *d)
{
    uint64_t mask = 0;
    for (size_t i = 0; i < d->n && !d->all; i++) {
        uint64_t bit = table_bit(l, d->names[i], true);
        if (!bit)
            return UINT64_MAX;
        mask |= bit;
    }
    return d->all || !mask ? UINT64_MAX : mask;
}

/* ---- the index by table -------------------------------------------------------- */

static int list_add(cs_watch_list *list, cstack_watch *w)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        cstack_watch **grown = realloc(list->v, cap * sizeof *grown);
        if (!grown)
            return CSTACK_ENOMEM;
        list->v = grown;
        list->cap = cap;
    }
    list->v[list->n++] = w;
    return 0;
}

static void list_remove(cs_watch_list *list, cstack_watch *w)
{
    for (size_t i = 0; i < list->n; i++) {
        if (list->v[i] == w) {
            list->v[i] = list->v[--list->n];
            return;
        }
    }
}

/* Files a watch whose first run is done under its tables (mu held).  Out
 * of memory, it stays in `wide`: every commit then re-runs it, which is
 * slower but still correct. */
static void index_watch(cs_live *l, cstack_watch *w)
{
    if (w->deps == UINT64_MAX)
        return;
    for (int i = 0; i < l->ntables; i++) {
        if ((w->deps >> i & 1) && list_add(&l->by_table[i], w)) {
            while (i-- > 0)
                if (w->deps >> i & 1)
                    list_remove(&l->by_table[i], w);
            return;
        }
    }
    list_remove(&l->wide, w);
    w->wide = false;
}

static void unindex_watch(cs_live *l, cstack_watch *w)
{
    if (w->wide) {
        list_remove(&l->wide, w);
        return;
    }
    for (int i = 0; i < l->ntables; i++)
        if (w->deps >> i & 1)
            list_remove(&l->by_table[i], w);
}

static bool mark_list(cs_live *l, const cs_watch_list *list)
{
    bool any = false;
    for (size_t i = 0; i < list->n; i++)
        any |= cs_live_mark(l, list->v[i]);
    l->visits += list->n;
    return any;
}

/* The store's hook, on the committing thread (holding the write lock): marks
 * the watches of the tables the commit changed, and the wide ones. */
static void on_committed(void *ctx, const char *const *tables, size_t n, bool all)
{
    cs_live *l = ctx;
    LIVE_LOCK(l);
    uint64_t mask = all ? UINT64_MAX : 0;
    for (size_t i = 0; i < n && mask != UINT64_MAX; i++)
        mask |= table_bit(l, tables[i], false);
    bool any = false;
    if (mask == UINT64_MAX) {
        for (cstack_watch *w = l->head; w; w = w->next, l->visits++)
            any |= cs_live_mark(l, w);
    } else {
        for (int i = 0; i < l->ntables; i++)
            if (mask >> i & 1)
                any |= mark_list(l, &l->by_table[i]);
        any |= mark_list(l, &l->wide);
    }
    if (any) {
        l->kick = true;
        LIVE_SIGNAL(l);
    }
    LIVE_UNLOCK(l);
}

/* ---- the runtime's live context ---------------------------------------------- */

static void watch_free(cstack_watch *w)
{
    free(w->first);
    free(w->request);
    free(w);
}

void cs_live_unlink(cs_live *l, cstack_watch *w)
{
    for (cstack_watch **p = &l->head; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    unindex_watch(l, w);
    cs_live_dequeue(l, w);
    watch_free(w);
}

static void live_destroy(void *ctx)
{
    cs_live *l = ctx;
    cs_live_stop_thread(l);
    while (l->head)
        cs_live_unlink(l, l->head);
    for (int i = 0; i < l->ntables; i++) {
        free(l->tables[i]);
        free(l->by_table[i].v);
    }
    free(l->wide.v);
#ifndef CSTACK_NO_THREADS
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
#endif
    free(l);
}

static const cs_live_hooks HOOKS = {on_committed, live_destroy};

static void *live_make(cstack *db)
{
    cs_live *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->db = db;
    int poll_ms = cs_store_live_poll_ms(db);
    l->poll_ms = poll_ms > 0 ? poll_ms : CS_LIVE_POLL_MS;
#ifndef CSTACK_NO_THREADS
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
#endif
    if (cs_live_start(l)) {
        live_destroy(l);
        return NULL;
    }
    return l;
}

/* ---- watches ----------------------------------------------------------------- */

/* Whether the request parses and names a read kind; else the envelope's own
 * run reports what is wrong with it. */
static int check_kind(const char *request, size_t len)
{
    jr_val room[64];
    jr_doc doc;
    jr_error jerr;
    const jr_limits lim = {64, 1u << 20};
    if (jr_parse(request, len, &lim, room, 64, &doc, &jerr) != JR_OK)
        return 0;
    const jr_val *kind = jr_is(&doc.vals[0], JR_OBJECT) ? jr_get(&doc.vals[0], "kind") : NULL;
    int rc = 0;
    if (kind && jr_is(kind, JR_STRING)) {
        rc = CSTACK_EINVAL;
        for (int i = 0; READ_KINDS[i]; i++)
            if (jr_str_is(kind, READ_KINDS[i]))
                rc = 0;
    }
    jr_doc_free(&doc);
    return rc ? cs_err(rc, "watch: a watch takes a read request (find_many, find_first, "
                           "find_unique, count, aggregate, group_by)")
              : 0;
}

/* The first run: the response, and in *d the tables it read (made into
 * w's bits under the lock afterwards: commits read them meanwhile). */
static int first_run(cstack *db, cstack_watch *w, deps *d)
{
    cs_store_record_reads(add_table, d);
    int rc = cstack_envelope_call(db, w->request, w->len, &w->first, &w->first_len);
    cs_store_record_reads(NULL, NULL);
    if (rc)
        return rc;
    static const char ok[] = "{\"status\":\"ok\"";
    if (w->first_len < sizeof ok - 1 || memcmp(w->first, ok, sizeof ok - 1) != 0) {
        cs_enter(db);
        return cs_err(CSTACK_EINVAL, "watch: %s", w->first);
    }
    w->hash = cs_live_hash(w->first, w->first_len);
    return 0;
}

int cstack_watch_envelope(cstack *db, const char *request, size_t len, int throttle_ms,
                          cstack_watch_cb cb, void *ctx, cstack_watch **out)
{
    cs_enter(db);
    if (out)
        *out = NULL;
    if (!db || !request || !cb || !out)
        return cs_err(CSTACK_EMISUSE, "cstack_watch_envelope: NULL argument");
    int rc = check_kind(request, len);
    if (rc)
        return rc;
    cstack_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->request = malloc(len ? len : 1))) {
        free(w);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    memcpy(w->request, request, len);
    w->len = len;
    w->throttle_ms = throttle_ms < 0 ? CS_LIVE_DEFAULT_THROTTLE_MS : throttle_ms;
    w->cb = cb;
    w->ctx = ctx;
    cs_live *l = cs_store_live(db, &HOOKS, live_make);
    if (!l) {
        watch_free(w);
        return cs_err(CSTACK_ENOMEM, "watch: cannot start live queries");
    }
    /* Linked before the first run so a commit racing with it marks it
     * (every commit does while its tables are not known yet). */
    w->live = l;
    w->last_run = cs_mono_ms();
    w->wide = true;
    w->deps = UINT64_MAX;
    LIVE_LOCK(l);
    if (list_add(&l->wide, w)) {
        LIVE_UNLOCK(l);
        watch_free(w);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    w->next = l->head;
    l->head = w;
    LIVE_UNLOCK(l);
    deps d = {0};
    rc = first_run(db, w, &d);
    LIVE_LOCK(l);
    if (rc) {
        cs_live_unlink(l, w); /* never picked: not ready */
        LIVE_UNLOCK(l);
        deps_free(&d);
        return rc;
    }
    w->deps = deps_mask(l, &d);
    deps_free(&d);
    index_watch(l, w);
    w->ready = true;
    cs_live_enqueue(l, w); /* its first delivery */
    l->kick = true;
    LIVE_SIGNAL(l);
    LIVE_UNLOCK(l);
    *out = w;
    return 0;
}
