/* remote.c -- the page storage of a `cstack serve` server as a page store
 * (docs/pagestore.md, "Server store").
 *
 * A file is the latest backup of its name: its manifest (every page's
 * hash) is kept here once loaded, and the commit marker is the backup's id.
 * put_pages hashes the batch, uploads the pages the server lacks and
 * commits the new manifest: the server inserts it in one row, so a batch is
 * there whole or not at all (pages uploaded by a batch that never committed
 * are only unused).  get_page fetches up to READ_AHEAD pages in one request
 * and keeps every page it saw in memory. */
#include <stdlib.h>
#include <string.h>

#include "pagestore/pagestore.h"

#define READ_AHEAD 64u

typedef struct rfile {
    struct rfile *next;
    char *name;
    cstack_pagestore_meta meta;
    unsigned char *hashes;  /* meta.npages of them */
    unsigned char **pages;  /* cached page i + 1, NULL if not fetched */
} rfile;

typedef struct remote {
    cstack_pagestore base;
    bk b;
    cstack_backup_info info;
    char *url, *token;
    cstack_sync_options o;
    rfile *files;
} remote;

static void drop_cache(rfile *f)
{
    for (uint32_t i = 0; f->pages && i < f->meta.npages; i++)
        free(f->pages[i]);
    free(f->pages);
    free(f->hashes);
    f->pages = NULL;
    f->hashes = NULL;
    memset(&f->meta, 0, sizeof f->meta);
}

/* Loads the latest manifest of `name`: the file, or none yet. */
static int load(remote *r, rfile *f)
{
    char *esc = curl_easy_escape(r->b.h, f->name, 0);
    char path[600];
    snprintf(path, sizeof path, "/v1/backups/latest?name=%.500s", esc ? esc : "");
    curl_free(esc);
    int rc = cs_bk_request(&r->b, path, NULL, 0);
    if (rc == CSTACK_ENOTFOUND)
        return 0;
    const unsigned char *m;
    if (rc || (rc = cs_bk_manifest(&r->b, &m)))
        return rc;
    uint32_t n = r->info.pages;
    f->hashes = malloc((size_t)(n ? n : 1) * HASH);
    f->pages = calloc(n ? n : 1, sizeof *f->pages);
    if (!f->hashes || !f->pages) {
        drop_cache(f);
        return CSTACK_ENOMEM;
    }
    memcpy(f->hashes, m, (size_t)n * HASH);
    f->meta = (cstack_pagestore_meta){n, r->info.page_size, (uint64_t)r->info.id};
    return 0;
}

static int file_of(remote *r, const char *name, rfile **out)
{
    for (rfile *f = r->files; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return *out = f, 0;
    rfile *f = calloc(1, sizeof *f);
    if (!f || !(f->name = cs_strdup(name))) {
        free(f);
        return CSTACK_ENOMEM;
    }
    int rc = load(r, f);
    if (rc) {
        free(f->name);
        free(f);
        return rc;
    }
    f->next = r->files;
    r->files = f;
    *out = f;
    return 0;
}

static int r_get(cstack_pagestore *ps, const char *file, uint32_t pgno, void *buf, uint32_t size)
{
    remote *r = (remote *)ps;
    rfile *f;
    int rc = file_of(r, file, &f);
    if (rc)
        return rc;
    if (pgno == 0 || pgno > f->meta.npages || size != f->meta.page_size)
        return CSTACK_ENOTFOUND;
    if (!f->pages[pgno - 1]) {
        /* Read ahead: the pages after this one that are not here yet. */
        uint32_t n = 0;
        while (n < READ_AHEAD && pgno + n <= f->meta.npages && !f->pages[pgno - 1 + n])
            n++;
        if ((rc = cs_bk_get_pages(&r->b, f->hashes + (size_t)(pgno - 1) * HASH, n, size)))
            return rc;
        for (uint32_t i = 0; i < n; i++) {
            if (!(f->pages[pgno - 1 + i] = malloc(size)))
                return CSTACK_ENOMEM;
            memcpy(f->pages[pgno - 1 + i], r->b.resp.data + (size_t)i * size, size);
        }
    }
    memcpy(buf, f->pages[pgno - 1], size);
    return 0;
}

/* The file's manifest and cache at meta->npages, with the batch applied
 * (hashes set, pages cached). */
static int apply(rfile *f, const cstack_page *pages, size_t n, const cstack_pagestore_meta *meta,
                 unsigned char **hashes_out)
{
    uint32_t np = meta->npages, old = f->meta.npages;
    unsigned char *h = calloc(np ? np : 1, HASH);
    unsigned char **cache = calloc(np ? np : 1, sizeof *cache);
    if (!h || !cache) {
        free(h);
        free(cache);
        return CSTACK_ENOMEM;
    }
    for (uint32_t i = 0; i < old && i < np; i++) {
        memcpy(h + (size_t)i * HASH, f->hashes + (size_t)i * HASH, HASH);
        cache[i] = f->pages[i];
        f->pages[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t p = pages[i].pgno - 1;
        cs_sha256(pages[i].data, meta->page_size, h + (size_t)p * HASH);
        free(cache[p]);
        if ((cache[p] = malloc(meta->page_size)))
            memcpy(cache[p], pages[i].data, meta->page_size);
    }
    drop_cache(f);
    f->hashes = h;
    f->pages = cache;
    *hashes_out = h;
    return 0;
}

static int r_put(cstack_pagestore *ps, const char *file, const cstack_page *pages, size_t n,
                 const cstack_pagestore_meta *meta)
{
    remote *r = (remote *)ps;
    rfile *f;
    int rc = file_of(r, file, &f);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (pages[i].pgno == 0 || pages[i].pgno > meta->npages)
            return CSTACK_EINVAL;
    /* The batch packed and hashed, for the upload. */
    unsigned char *data = malloc(n ? n * meta->page_size : 1);
    unsigned char *bh = malloc(n ? n * HASH : 1);
    unsigned char *manifest = NULL;
    rc = data && bh ? 0 : CSTACK_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        memcpy(data + i * meta->page_size, pages[i].data, meta->page_size);
        cs_sha256(pages[i].data, meta->page_size, bh + i * HASH);
    }
    rc = rc ? rc : cs_bk_put_missing(&r->b, data, bh, (uint32_t)n, meta->page_size);
    free(data);
    free(bh);
    rc = rc ? rc : apply(f, pages, n, meta, &manifest);
    rc = rc ? rc : cs_bk_commit(&r->b, file, manifest, meta->npages, meta->page_size);
    if (rc) {
        /* What the server holds is the truth: reload it next time. */
        drop_cache(f);
        load(r, f);
        return rc;
    }
    f->meta = (cstack_pagestore_meta){meta->npages, meta->page_size, (uint64_t)r->info.id};
    return 0;
}

static int r_size(cstack_pagestore *ps, const char *file, cstack_pagestore_meta *meta)
{
    rfile *f;
    int rc = file_of((remote *)ps, file, &f);
    if (!rc)
        *meta = f->meta;
    return rc;
}

static int r_truncate(cstack_pagestore *ps, const char *file, uint32_t npages)
{
    rfile *f;
    int rc = file_of((remote *)ps, file, &f);
    if (rc || npages >= f->meta.npages || npages == 0)
        return rc; /* a manifest cannot be empty: a deleted file keeps its last one */
    cstack_pagestore_meta m = {npages, f->meta.page_size, f->meta.commit};
    return r_put(ps, file, NULL, 0, &m);
}

static void r_destroy(cstack_pagestore *ps)
{
    remote *r = (remote *)ps;
    if (!r)
        return;
    while (r->files) {
        rfile *f = r->files;
        r->files = f->next;
        drop_cache(f);
        free(f->name);
        free(f);
    }
    cs_bk_close(&r->b);
    free(r->url);
    free(r->token);
    free(r);
}

int cstack_pagestore_server(const cstack_schema *schema, const cstack_sync_options *o,
                            const char *site, cstack_pagestore **out)
{
    *out = NULL;
    if (!schema || !o || !o->url || !o->token)
        return CSTACK_EMISUSE;
    remote *r = calloc(1, sizeof *r);
    if (!r)
        return CSTACK_ENOMEM;
    r->base = (cstack_pagestore){CSTACK_PAGESTORE_VERSION, r_get, r_put, r_size, r_truncate,
                                 r_destroy};
    r->url = cs_strdup(o->url);
    r->token = cs_strdup(o->token);
    r->o = (cstack_sync_options){.url = r->url, .token = r->token,
                                 .connect_timeout_ms = o->connect_timeout_ms};
    char any[33];
    if (!site)
        cs_bk_random_site(any);
    int rc = r->url && r->token ? cs_bk_open(&r->b, schema, site ? site : any, &r->o, &r->info)
                                : CSTACK_ENOMEM;
    if (rc) {
        r_destroy(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}
