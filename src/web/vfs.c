/* The browser's SQLite VFS ("cstack-opfs"): files live behind a handful of
 * host functions that the worker implements over OPFS
 * FileSystemSyncAccessHandles (web/worker.js), or over plain memory when the
 * page has no sync handles.  Creating a sync handle is asynchronous, so the
 * worker opens the database file and its rollback journal before SQLite
 * runs; every call here is then synchronous.
 *
 * The io methods are version 1 (no shared memory), so SQLite keeps a
 * rollback journal: the runtime's `PRAGMA journal_mode=WAL` leaves the mode
 * as it was.  Deleting a journal truncates it to zero bytes (a pre-opened
 * handle cannot be removed synchronously), and a zero-byte file counts as
 * absent, which is all SQLite asks of a journal.
 *
 * Locks: one worker owns the files (Web Locks, web/worker.js), but the
 * runtime opens several connections to one file inside it, so the locks are
 * kept here per file, as SQLite's unix VFS keeps them per inode. */
#include <emscripten.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- host functions (implemented by the worker's Module.cstackHost) ------ */

EM_JS(int, host_lookup, (const char *name, int create),
      { return Module.cstackHost.lookup(name ? UTF8ToString(name) : null, create); });
EM_JS(int, host_read, (int id, void *buf, int n, double off),
      { return Module.cstackHost.read(id, HEAPU8.subarray(buf, buf + n), off); });
EM_JS(int, host_write, (int id, const void *buf, int n, double off),
      { return Module.cstackHost.write(id, HEAPU8.subarray(buf, buf + n), off); });
EM_JS(int, host_truncate, (int id, double size), { return Module.cstackHost.truncate(id, size); });
EM_JS(double, host_size, (int id), { return Module.cstackHost.size(id); });
EM_JS(int, host_flush, (int id), { return Module.cstackHost.flush(id); });
EM_JS(void, host_release, (int id), { Module.cstackHost.release(id); });
EM_JS(double, host_now_ms, (void), { return Date.now(); });

/* ---- per-file lock state ------------------------------------------------ */

typedef struct lockstate {
    int id;                 /* host file id */
    int nshared;            /* connections holding SHARED or more */
    const void *holder;     /* the connection holding RESERVED or more */
    int holder_level;
    struct lockstate *next;
} lockstate;

static lockstate *locks;

static lockstate *lock_of(int id)
{
    for (lockstate *l = locks; l; l = l->next)
        if (l->id == id)
            return l;
    lockstate *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->id = id;
    l->next = locks;
    locks = l;
    return l;
}

typedef struct wfile {
    sqlite3_file base;
    int id;
    int level;              /* this connection's lock */
    int temp;               /* no name: released on close */
    lockstate *ls;
} wfile;

static int w_close(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    if (w->temp)
        host_release(w->id);
    return SQLITE_OK;
}

static int w_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    int got = host_read(((wfile *)f)->id, buf, n, (double)off);
    if (got < 0)
        return SQLITE_IOERR_READ;
    if (got < n) {
        memset((char *)buf + got, 0, (size_t)(n - got));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int w_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return host_write(((wfile *)f)->id, buf, n, (double)off) == 0 ? SQLITE_OK
                                                                   : SQLITE_IOERR_WRITE;
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return host_truncate(((wfile *)f)->id, (double)size) == 0 ? SQLITE_OK
                                                               : SQLITE_IOERR_TRUNCATE;
}

static int w_sync(sqlite3_file *f, int flags)
{
    return host_flush(((wfile *)f)->id) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int w_size(sqlite3_file *f, sqlite3_int64 *size)
{
    double s = host_size(((wfile *)f)->id);
    if (s < 0)
        return SQLITE_IOERR_FSTAT;
    *size = (sqlite3_int64)s;
    return SQLITE_OK;
}

static int w_lock(sqlite3_file *f, int level)
{
    wfile *w = (wfile *)f;
    lockstate *ls = w->ls;
    if (w->level >= level)
        return SQLITE_OK;
    if (level == SQLITE_LOCK_SHARED) {
        if (ls->holder && ls->holder_level >= SQLITE_LOCK_PENDING)
            return SQLITE_BUSY;
        ls->nshared++;
    } else {
        if (ls->holder && ls->holder != w)
            return SQLITE_BUSY;
        ls->holder = w;
        if (level == SQLITE_LOCK_EXCLUSIVE && ls->nshared > 1) {
            /* Readers still in: PENDING keeps new ones out until they leave. */
            ls->holder_level = w->level = SQLITE_LOCK_PENDING;
            return SQLITE_BUSY;
        }
        ls->holder_level = level;
    }
    w->level = level;
    return SQLITE_OK;
}

static int w_unlock(sqlite3_file *f, int level)
{
    wfile *w = (wfile *)f;
    lockstate *ls = w->ls;
    if (w->level <= level)
        return SQLITE_OK;
    if (w->level > SQLITE_LOCK_SHARED && ls->holder == w) {
        ls->holder = NULL;
        ls->holder_level = 0;
    }
    if (level == SQLITE_LOCK_NONE && w->level >= SQLITE_LOCK_SHARED)
        ls->nshared--;
    w->level = level;
    return SQLITE_OK;
}

static int w_check_reserved(sqlite3_file *f, int *out)
{
    *out = ((wfile *)f)->ls->holder != NULL;
    return SQLITE_OK;
}

static int w_control(sqlite3_file *f, int op, void *arg)
{
    return SQLITE_NOTFOUND;
}

static int w_sector(sqlite3_file *f)
{
    return 4096;
}

static int w_caps(sqlite3_file *f)
{
    return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static const sqlite3_io_methods w_methods = {
    1, w_close, w_read, w_write, w_truncate, w_sync, w_size, w_lock, w_unlock,
    w_check_reserved, w_control, w_sector, w_caps,
};

/* ---- the VFS ------------------------------------------------------------ */

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                  int *out_flags)
{
    wfile *w = (wfile *)f;
    memset(w, 0, sizeof *w);
    w->id = host_lookup(name, (flags & SQLITE_OPEN_CREATE) != 0 || !name);
    if (w->id < 0)
        return SQLITE_CANTOPEN;
    w->temp = !name;
    if (!(w->ls = lock_of(w->id)))
        return SQLITE_NOMEM;
    w->base.pMethods = &w_methods;
    if (out_flags)
        *out_flags = flags;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    int id = host_lookup(name, 0);
    return id < 0 || host_truncate(id, 0) == 0 ? SQLITE_OK : SQLITE_IOERR_DELETE;
}

static int v_access(sqlite3_vfs *vfs, const char *name, int what, int *out)
{
    int id = host_lookup(name, 0);
    *out = id >= 0 && host_size(id) > 0;
    return SQLITE_OK;
}

static int v_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    sqlite3_snprintf(n, out, "%s", name);
    return SQLITE_OK;
}

static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
    return (int)getrandom(out, (size_t)n, 0);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    /* One thread owns every connection: waiting cannot free a lock. */
    return 0;
}

static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    *out = (sqlite3_int64)host_now_ms() + 210866760000000LL; /* Julian day 0 */
    return SQLITE_OK;
}

static int v_time(sqlite3_vfs *vfs, double *out)
{
    sqlite3_int64 ms;
    v_time64(vfs, &ms);
    *out = (double)ms / 86400000.0;
    return SQLITE_OK;
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return 0;
}

static sqlite3_vfs cstack_vfs = {
    2, sizeof(wfile), 512, NULL, "cstack-opfs", NULL, v_open, v_delete, v_access,
    v_fullpath, NULL, NULL, NULL, NULL, v_random, v_sleep, v_time, v_last_error,
    v_time64,
};

/* SQLite is built with SQLITE_OS_OTHER: this VFS is its only one. */
int sqlite3_os_init(void)
{
    return sqlite3_vfs_register(&cstack_vfs, 1);
}

int sqlite3_os_end(void)
{
    return SQLITE_OK;
}
