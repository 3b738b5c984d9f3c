/* lmdb.c -- the LMDB page store, the on-disk default for the page-store VFS.
 *
 * One LMDB environment (a directory) holds any number of files.  Keys are
 * the file name, a NUL, then 'M' for the file's meta or 'P' and the page
 * number (big-endian, so a file's pages sort in order).  put_pages is one
 * LMDB write transaction: LMDB's copy-on-write B-tree commits it whole or
 * not at all, which is what makes the VFS crash-safe.  A lock file held with
 * flock keeps a second process out (the VFS's locks are per process). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cstack.h"

#define NAME_MAX_LEN 400 /* LMDB keys are at most 511 bytes */

typedef struct lm_store {
    cstack_pagestore base;
    MDB_env *env;
    MDB_dbi dbi;
    int lockfd;
} lm_store;

typedef struct lm_key {
    unsigned char b[NAME_MAX_LEN + 6];
    MDB_val v;
} lm_key;

static int key_of(lm_key *k, const char *file, char tag, uint32_t pgno)
{
    size_t n = strlen(file);
    if (n > NAME_MAX_LEN)
        return CSTACK_EINVAL;
    memcpy(k->b, file, n);
    k->b[n] = 0;
    k->b[n + 1] = (unsigned char)tag;
    size_t len = n + 2;
    if (tag == 'P') {
        for (int i = 0; i < 4; i++)
            k->b[len + i] = (unsigned char)(pgno >> (24 - 8 * i));
        len += 4;
    }
    k->v = (MDB_val){len, k->b};
    return 0;
}

static int lm_rc(int rc)
{
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? CSTACK_ENOTFOUND
                     : rc == MDB_MAP_FULL   ? CSTACK_ETOOBIG
                     : rc == ENOMEM         ? CSTACK_ENOMEM
                                            : CSTACK_EIO;
}

static int l_get(cstack_pagestore *ps, const char *file, uint32_t pgno, void *buf, uint32_t size)
{
    lm_store *s = (lm_store *)ps;
    lm_key k;
    if (key_of(&k, file, 'P', pgno))
        return CSTACK_EINVAL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lm_rc(rc);
    MDB_val v;
    rc = mdb_get(txn, s->dbi, &k.v, &v);
    if (rc == 0 && v.mv_size != size)
        rc = MDB_NOTFOUND;
    if (rc == 0)
        memcpy(buf, v.mv_data, size);
    mdb_txn_abort(txn);
    return lm_rc(rc);
}

static int read_meta(lm_store *s, MDB_txn *txn, const char *file, cstack_pagestore_meta *m)
{
    lm_key k;
    memset(m, 0, sizeof *m);
    if (key_of(&k, file, 'M', 0))
        return CSTACK_EINVAL;
    MDB_val v;
    int rc = mdb_get(txn, s->dbi, &k.v, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lm_rc(rc);
    if (v.mv_size != sizeof *m)
        return CSTACK_EIO;
    memcpy(m, v.mv_data, sizeof *m);
    return 0;
}

/* Deletes pages from..to (inclusive) inside txn. */
static int drop_pages(lm_store *s, MDB_txn *txn, const char *file, uint32_t from, uint32_t to)
{
    for (uint32_t p = from; p && p <= to; p++) {
        lm_key k;
        key_of(&k, file, 'P', p);
        int rc = mdb_del(txn, s->dbi, &k.v, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

static int l_put(cstack_pagestore *ps, const char *file, const cstack_page *pages, size_t n,
                 const cstack_pagestore_meta *meta)
{
    lm_store *s = (lm_store *)ps;
    lm_key k;
    if (key_of(&k, file, 'M', 0))
        return CSTACK_EINVAL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return lm_rc(rc);
    cstack_pagestore_meta old;
    int crc = read_meta(s, txn, file, &old);
    for (size_t i = 0; !crc && !rc && i < n; i++) {
        if (pages[i].pgno == 0 || pages[i].pgno > meta->npages) {
            crc = CSTACK_EINVAL;
            break;
        }
        lm_key pk;
        key_of(&pk, file, 'P', pages[i].pgno);
        MDB_val v = {meta->page_size, (void *)pages[i].data};
        rc = mdb_put(txn, s->dbi, &pk.v, &v, 0);
    }
    if (!crc && !rc && meta->npages < old.npages)
        rc = drop_pages(s, txn, file, meta->npages + 1, old.npages);
    if (!crc && !rc) {
        MDB_val v = {sizeof *meta, (void *)meta};
        rc = mdb_put(txn, s->dbi, &k.v, &v, 0);
    }
    if (crc || rc) {
        mdb_txn_abort(txn);
        return crc ? crc : lm_rc(rc);
    }
    return lm_rc(mdb_txn_commit(txn));
}

static int l_size(cstack_pagestore *ps, const char *file, cstack_pagestore_meta *meta)
{
    lm_store *s = (lm_store *)ps;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lm_rc(rc);
    rc = read_meta(s, txn, file, meta);
    mdb_txn_abort(txn);
    return rc;
}

static int l_truncate(cstack_pagestore *ps, const char *file, uint32_t npages)
{
    lm_store *s = (lm_store *)ps;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return lm_rc(rc);
    cstack_pagestore_meta m;
    int crc = read_meta(s, txn, file, &m);
    if (!crc && npages < m.npages) {
        rc = drop_pages(s, txn, file, npages + 1, m.npages);
        m.npages = npages;
        m.commit++;
        lm_key k;
        key_of(&k, file, 'M', 0);
        MDB_val v = {sizeof m, &m};
        if (!rc)
            rc = mdb_put(txn, s->dbi, &k.v, &v, 0);
    }
    if (crc || rc) {
        mdb_txn_abort(txn);
        return crc ? crc : lm_rc(rc);
    }
    return lm_rc(mdb_txn_commit(txn));
}

static void l_destroy(cstack_pagestore *ps)
{
    lm_store *s = (lm_store *)ps;
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    free(s);
}

static int open_env(lm_store *s, const char *dir, uint64_t max_bytes)
{
    char lockpath[PATH_MAX];
    if (snprintf(lockpath, sizeof lockpath, "%s/cstack.lock", dir) >= (int)sizeof lockpath)
        return CSTACK_EINVAL;
    if (mkdir(dir, 0700) && errno != EEXIST)
        return CSTACK_EIO;
    s->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0)
        return CSTACK_EIO;
    if (flock(s->lockfd, LOCK_EX | LOCK_NB))
        return errno == EWOULDBLOCK ? CSTACK_EBUSY : CSTACK_EIO;
    int rc = mdb_env_create(&s->env);
    if (!rc)
        rc = mdb_env_set_mapsize(s->env, max_bytes ? max_bytes : (uint64_t)1 << 30);
    if (!rc)
        rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    MDB_txn *txn = NULL;
    if (!rc)
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
    if (txn)
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    return lm_rc(rc);
}

int cstack_pagestore_lmdb(const char *dir, uint64_t max_bytes, cstack_pagestore **out)
{
    *out = NULL;
    if (!dir || !*dir)
        return CSTACK_EMISUSE;
    lm_store *s = calloc(1, sizeof *s);
    if (!s)
        return CSTACK_ENOMEM;
    s->lockfd = -1;
    s->base = (cstack_pagestore){CSTACK_PAGESTORE_VERSION, l_get, l_put, l_size, l_truncate,
                                 l_destroy};
    int rc = open_env(s, dir, max_bytes);
    if (rc) {
        l_destroy(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
