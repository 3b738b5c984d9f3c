/* vfs.c -- a SQLite VFS over a cstack_pagestore (docs/pagestore.md).
 *
 * The main database file is a set of pages in the store.  Every write of a
 * transaction is kept in memory (the "pending" pages of the file) and reaches
 * the store in one put_pages batch at xSync, which SQLite calls once per
 * commit after it has written every page.  A crash before the batch lands
 * leaves the store at the previous commit; the batch itself is atomic.  So
 * the journal never has to be durable: connections run with
 * journal_mode=MEMORY (it only serves ROLLBACK, whose page restores land in
 * the pending set and never reach the store as a torn state).  Journal and
 * WAL files of the main database are refused; temporary files go to the
 * default VFS.  Locks are kept per file name inside this process. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cstack.h"
#include "util/buf.h"

typedef struct ps_lock {
    struct ps_lock *next;
    char *name;
    int shared;      /* connections holding SHARED or more */
    void *reserved;  /* holder of RESERVED/PENDING/EXCLUSIVE, NULL if none */
    int pending;     /* the holder is at PENDING or EXCLUSIVE: no new SHARED */
    int refs;
} ps_lock;

typedef struct ps_vfs {
    sqlite3_vfs base;
    sqlite3_vfs *dflt;
    cstack_pagestore *store;
    pthread_mutex_t mu; /* the lock table and every store call */
    ps_lock *locks;
    char *name;
} ps_vfs;

typedef struct ps_file {
    sqlite3_file base;
    ps_vfs *vfs;
    ps_lock *lk;
    int level;
    cstack_pagestore_meta meta; /* as committed in the store */
    uint32_t npages;            /* size including pending writes */
    uint32_t page_size;
    unsigned char **pend;       /* pending page i + 1, NULL if clean */
    uint32_t cap;
    int dirty;
} ps_file;

static void pend_drop(ps_file *f, uint32_t from)
{
    for (uint32_t i = from; i < f->cap; i++) {
        free(f->pend[i]);
        f->pend[i] = NULL;
    }
}

static int store_rc(int rc)
{
    return rc == 0 ? SQLITE_OK : rc == CSTACK_ENOMEM ? SQLITE_NOMEM : SQLITE_IOERR;
}

/* Sends the pending pages and size as one batch.  Called with vfs->mu. */
static int flush(ps_file *f)
{
    if (!f->dirty)
        return SQLITE_OK;
    size_t n = 0;
    for (uint32_t i = 0; i < f->cap && i < f->npages; i++)
        n += f->pend[i] != NULL;
    cstack_page *pages = malloc((n ? n : 1) * sizeof *pages);
    if (!pages)
        return SQLITE_NOMEM;
    n = 0;
    for (uint32_t i = 0; i < f->cap && i < f->npages; i++)
        if (f->pend[i])
            pages[n++] = (cstack_page){i + 1, f->pend[i]};
    cstack_pagestore_meta m = {f->npages, f->page_size, f->meta.commit + 1};
    cstack_pagestore *ps = f->vfs->store;
    int rc = ps->put_pages(ps, f->lk->name, pages, n, &m);
    free(pages);
    if (rc)
        return store_rc(rc);
    f->meta = m;
    pend_drop(f, 0);
    f->dirty = 0;
    return SQLITE_OK;
}

/* Forgets the pending pages: the file is again what the store holds. */
static void discard(ps_file *f)
{
    pend_drop(f, 0);
    f->dirty = 0;
    f->npages = f->meta.npages;
    f->page_size = f->meta.page_size;
}

static int x_close(sqlite3_file *file)
{
    ps_file *f = (ps_file *)file;
    ps_vfs *v = f->vfs;
    pthread_mutex_lock(&v->mu);
    int rc = flush(f);
    pend_drop(f, 0);
    free(f->pend);
    if (--f->lk->refs == 0) {
        for (ps_lock **p = &v->locks; *p; p = &(*p)->next) {
            if (*p == f->lk) {
                *p = f->lk->next;
                break;
            }
        }
        free(f->lk->name);
        free(f->lk);
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

/* The bytes of page `pgno` (pending or stored) into buf; 1 if past the end. */
static int page_of(ps_file *f, uint32_t pgno, unsigned char *buf)
{
    if (pgno > f->npages)
        return 1;
    if (pgno <= f->cap && f->pend[pgno - 1]) {
        memcpy(buf, f->pend[pgno - 1], f->page_size);
        return 0;
    }
    if (pgno > f->meta.npages) {
        memset(buf, 0, f->page_size); /* grown by truncate, never written */
        return 0;
    }
    cstack_pagestore *ps = f->vfs->store;
    int rc = ps->get_page(ps, f->lk->name, pgno, buf, f->page_size);
    if (rc == CSTACK_ENOTFOUND) {
        memset(buf, 0, f->page_size);
        return 0;
    }
    return rc ? -1 : 0;
}

static int x_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
    ps_file *f = (ps_file *)file;
    unsigned char *dst = out;
    if (f->page_size == 0) {
        memset(out, 0, (size_t)amt);
        return SQLITE_IOERR_SHORT_READ;
    }
    unsigned char *tmp = malloc(f->page_size);
    if (!tmp)
        return SQLITE_NOMEM;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&f->vfs->mu);
    while (amt > 0) {
        uint32_t pgno = (uint32_t)(off / f->page_size) + 1;
        size_t in = (size_t)(off % f->page_size);
        size_t take = f->page_size - in < (size_t)amt ? f->page_size - in : (size_t)amt;
        int got = page_of(f, pgno, tmp);
        if (got < 0) {
            rc = SQLITE_IOERR_READ;
            break;
        }
        if (got > 0) {
            memset(dst, 0, (size_t)amt);
            rc = SQLITE_IOERR_SHORT_READ;
            break;
        }
        memcpy(dst, tmp + in, take);
        dst += take;
        off += (sqlite3_int64)take;
        amt -= (int)take;
    }
    pthread_mutex_unlock(&f->vfs->mu);
    free(tmp);
    return rc;
}

static int valid_page_size(int n)
{
    return n >= 512 && n <= 65536 && (n & (n - 1)) == 0;
}

static int grow(ps_file *f, uint32_t pgno)
{
    if (pgno <= f->cap)
        return 0;
    uint32_t cap = f->cap ? f->cap : 64;
    while (cap < pgno)
        cap *= 2;
    unsigned char **p = realloc(f->pend, cap * sizeof *p);
    if (!p)
        return -1;
    memset(p + f->cap, 0, (cap - f->cap) * sizeof *p);
    f->pend = p;
    f->cap = cap;
    return 0;
}

/* Whole pages only: SQLite writes the main database a page at a time.  The
 * page size is set by the first write to an empty file. */
static int x_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    ps_file *f = (ps_file *)file;
    if (f->npages == 0 && f->meta.npages == 0 && valid_page_size(amt))
        f->page_size = (uint32_t)amt;
    if (!f->page_size || (uint32_t)amt != f->page_size || off % amt != 0 ||
        off / amt >= 0xfffffffe)
        return SQLITE_IOERR_WRITE;
    uint32_t pgno = (uint32_t)(off / amt) + 1;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&f->vfs->mu);
    if (grow(f, pgno)) {
        rc = SQLITE_NOMEM;
    } else if (!f->pend[pgno - 1] && !(f->pend[pgno - 1] = malloc(f->page_size))) {
        rc = SQLITE_NOMEM;
    } else {
        memcpy(f->pend[pgno - 1], data, f->page_size);
        if (pgno > f->npages)
            f->npages = pgno;
        f->dirty = 1;
    }
    pthread_mutex_unlock(&f->vfs->mu);
    return rc;
}

static int x_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    ps_file *f = (ps_file *)file;
    if (!f->page_size)
        return size == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
    pthread_mutex_lock(&f->vfs->mu);
    uint32_t n = (uint32_t)((size + f->page_size - 1) / f->page_size);
    if (n < f->npages) {
        pend_drop(f, n);
        f->npages = n;
        f->dirty = 1;
    }
    pthread_mutex_unlock(&f->vfs->mu);
    return SQLITE_OK;
}

static int x_sync(sqlite3_file *file, int flags)
{
    ps_file *f = (ps_file *)file;
    pthread_mutex_lock(&f->vfs->mu);
    int rc = flush(f);
    pthread_mutex_unlock(&f->vfs->mu);
    return rc == SQLITE_OK ? rc : SQLITE_IOERR_FSYNC;
}

static int x_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    ps_file *f = (ps_file *)file;
    pthread_mutex_lock(&f->vfs->mu);
    *size = (sqlite3_int64)f->npages * f->page_size;
    pthread_mutex_unlock(&f->vfs->mu);
    return SQLITE_OK;
}

/* Re-reads the committed meta when a connection takes its first lock:
 * another connection of this process may have committed since. */
static int refresh(ps_file *f)
{
    cstack_pagestore *ps = f->vfs->store;
    cstack_pagestore_meta m;
    if (ps->size(ps, f->lk->name, &m))
        return SQLITE_IOERR_LOCK;
    f->meta = m;
    discard(f);
    return SQLITE_OK;
}

static int x_lock(sqlite3_file *file, int level)
{
    ps_file *f = (ps_file *)file;
    ps_lock *lk = f->lk;
    if (f->level >= level)
        return SQLITE_OK;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&f->vfs->mu);
    if (level == SQLITE_LOCK_SHARED) {
        if (lk->pending)
            rc = SQLITE_BUSY;
        else if ((rc = refresh(f)) == SQLITE_OK)
            lk->shared++;
    } else if (level == SQLITE_LOCK_RESERVED) {
        if (lk->reserved && lk->reserved != f)
            rc = SQLITE_BUSY;
        else
            lk->reserved = f;
    } else {
        /* PENDING or EXCLUSIVE: block new readers, wait for the others. */
        if (lk->reserved && lk->reserved != f) {
            rc = SQLITE_BUSY;
        } else {
            lk->reserved = f;
            lk->pending = 1;
            if (lk->shared > 1)
                rc = SQLITE_BUSY; /* stays PENDING; SQLite retries */
        }
    }
    if (rc == SQLITE_OK)
        f->level = level;
    else if (level == SQLITE_LOCK_EXCLUSIVE && lk->reserved == f)
        f->level = SQLITE_LOCK_PENDING;
    pthread_mutex_unlock(&f->vfs->mu);
    return rc;
}

/* Leaving a write lock sends what is pending: SQLite syncs before it
 * unlocks after a commit, so this only matters with synchronous=OFF; after
 * a rollback the pending pages hold what the store already has. */
static int x_unlock(sqlite3_file *file, int level)
{
    ps_file *f = (ps_file *)file;
    ps_lock *lk = f->lk;
    if (f->level <= level)
        return SQLITE_OK;
    pthread_mutex_lock(&f->vfs->mu);
    if (f->level >= SQLITE_LOCK_RESERVED && flush(f) != SQLITE_OK)
        discard(f);
    if (lk->reserved == f) {
        lk->reserved = NULL;
        lk->pending = 0;
    }
    if (level == SQLITE_LOCK_NONE && f->level >= SQLITE_LOCK_SHARED)
        lk->shared--;
    f->level = level;
    pthread_mutex_unlock(&f->vfs->mu);
    return SQLITE_OK;
}

static int x_check_reserved(sqlite3_file *file, int *out)
{
    ps_file *f = (ps_file *)file;
    pthread_mutex_lock(&f->vfs->mu);
    *out = f->lk->reserved != NULL;
    pthread_mutex_unlock(&f->vfs->mu);
    return SQLITE_OK;
}

static int x_file_control(sqlite3_file *file, int op, void *arg)
{
    return SQLITE_NOTFOUND;
}

static int x_sector_size(sqlite3_file *file)
{
    return 4096;
}

static int x_device_characteristics(sqlite3_file *file)
{
    return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

/* Version 1: no xShmMap, so SQLite refuses WAL on this VFS. */
static const sqlite3_io_methods PS_METHODS = {
    .iVersion = 1, .xClose = x_close, .xRead = x_read, .xWrite = x_write,
    .xTruncate = x_truncate, .xSync = x_sync, .xFileSize = x_file_size, .xLock = x_lock,
    .xUnlock = x_unlock, .xCheckReservedLock = x_check_reserved,
    .xFileControl = x_file_control, .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_characteristics,
};

static ps_lock *lock_of(ps_vfs *v, const char *name)
{
    for (ps_lock *l = v->locks; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    ps_lock *l = calloc(1, sizeof *l);
    if (!l || !(l->name = cs_strdup(name))) {
        free(l);
        return NULL;
    }
    l->next = v->locks;
    v->locks = l;
    return l;
}

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *oflags)
{
    ps_vfs *v = (ps_vfs *)vfs;
    ps_file *f = (ps_file *)file;
    memset(f, 0, sizeof *f);
    if (!(flags & SQLITE_OPEN_MAIN_DB)) {
        /* No durable journal or WAL here (see the top of this file). */
        if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL | SQLITE_OPEN_SUPER_JOURNAL))
            return SQLITE_CANTOPEN;
        return v->dflt->xOpen(v->dflt, name, file, flags, oflags);
    }
    if (!name || !*name)
        return SQLITE_CANTOPEN;
    pthread_mutex_lock(&v->mu);
    cstack_pagestore_meta m;
    int rc = v->store->size(v->store, name, &m) ? SQLITE_IOERR : SQLITE_OK;
    if (rc == SQLITE_OK && m.npages == 0 && !(flags & SQLITE_OPEN_CREATE))
        rc = SQLITE_CANTOPEN;
    if (rc == SQLITE_OK && !(f->lk = lock_of(v, name)))
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK) {
        f->lk->refs++;
        f->vfs = v;
        f->meta = m;
        discard(f);
        f->base.pMethods = &PS_METHODS;
        if (oflags)
            *oflags = flags;
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
    return SQLITE_OK; /* journals never exist here */
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    *out = 0; /* asked about journals and WAL files only: there are none */
    return SQLITE_OK;
}

static int x_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    /* Names are keys in the store, not paths. */
    if ((int)strlen(name) >= n)
        return SQLITE_CANTOPEN;
    strcpy(out, name);
    return SQLITE_OK;
}

#define DFLT(v) (((ps_vfs *)(v))->dflt)
static void *x_dlopen(sqlite3_vfs *v, const char *p) { return DFLT(v)->xDlOpen(DFLT(v), p); }
static void x_dlerror(sqlite3_vfs *v, int n, char *m) { DFLT(v)->xDlError(DFLT(v), n, m); }
static void (*x_dlsym(sqlite3_vfs *v, void *h, const char *s))(void)
{
    return DFLT(v)->xDlSym(DFLT(v), h, s);
}
static void x_dlclose(sqlite3_vfs *v, void *h) { DFLT(v)->xDlClose(DFLT(v), h); }
static int x_random(sqlite3_vfs *v, int n, char *o) { return DFLT(v)->xRandomness(DFLT(v), n, o); }
static int x_sleep(sqlite3_vfs *v, int us) { return DFLT(v)->xSleep(DFLT(v), us); }
static int x_time(sqlite3_vfs *v, double *t) { return DFLT(v)->xCurrentTime(DFLT(v), t); }
static int x_last_error(sqlite3_vfs *v, int n, char *m)
{
    return DFLT(v)->xGetLastError(DFLT(v), n, m);
}
static int x_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
    return DFLT(v)->xCurrentTimeInt64(DFLT(v), t);
}

int cstack_pagestore_register(const char *name, cstack_pagestore *store)
{
    if (!name || !*name || !store || store->iVersion < 1) {
        if (store)
            store->destroy(store);
        return CSTACK_EMISUSE;
    }
    sqlite3_initialize();
    sqlite3_vfs *dflt = sqlite3_vfs_find(NULL);
    ps_vfs *v = calloc(1, sizeof *v);
    if (!v || !dflt || !(v->name = cs_strdup(name))) {
        free(v);
        store->destroy(store);
        return dflt ? CSTACK_ENOMEM : CSTACK_ESQLITE;
    }
    v->dflt = dflt;
    v->store = store;
    pthread_mutex_init(&v->mu, NULL);
    int os = dflt->szOsFile > (int)sizeof(ps_file) ? dflt->szOsFile : (int)sizeof(ps_file);
    v->base = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = os, .mxPathname = dflt->mxPathname, .zName = v->name,
        .xOpen = x_open, .xDelete = x_delete, .xAccess = x_access,
        .xFullPathname = x_full_pathname, .xDlOpen = x_dlopen, .xDlError = x_dlerror,
        .xDlSym = x_dlsym, .xDlClose = x_dlclose, .xRandomness = x_random, .xSleep = x_sleep,
        .xCurrentTime = x_time, .xGetLastError = x_last_error, .xCurrentTimeInt64 = x_time64,
    };
    if (sqlite3_vfs_find(name) || sqlite3_vfs_register(&v->base, 0) != SQLITE_OK) {
        pthread_mutex_destroy(&v->mu);
        free(v->name);
        free(v);
        store->destroy(store);
        return CSTACK_EMISUSE;
    }
    return 0;
}

int cstack_pagestore_unregister(const char *name)
{
    sqlite3_vfs *found = name ? sqlite3_vfs_find(name) : NULL;
    if (!found || found->xOpen != x_open)
        return CSTACK_ENOTFOUND;
    ps_vfs *v = (ps_vfs *)found;
    if (v->locks)
        return CSTACK_EBUSY;
    sqlite3_vfs_unregister(found);
    v->store->destroy(v->store);
    pthread_mutex_destroy(&v->mu);
    free(v->name);
    free(v);
    return 0;
}
