/* mem.c -- the memory page store, for tests: a list of files, each an array
 * of pages.  A batch is built aside and swapped in, so it lands whole. */
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "util/buf.h"

typedef struct mem_file {
    struct mem_file *next;
    char *name;
    cstack_pagestore_meta meta;
    unsigned char **pages; /* page i + 1; NULL = never written */
    uint32_t cap;
} mem_file;

typedef struct mem_store {
    cstack_pagestore base;
    mem_file *files;
} mem_store;

static mem_file *find(mem_store *m, const char *name)
{
    for (mem_file *f = m->files; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static int m_get(cstack_pagestore *ps, const char *file, uint32_t pgno, void *buf, uint32_t size)
{
    mem_file *f = find((mem_store *)ps, file);
    if (!f || pgno == 0 || pgno > f->meta.npages || pgno > f->cap || !f->pages[pgno - 1] ||
        size != f->meta.page_size)
        return CSTACK_ENOTFOUND;
    memcpy(buf, f->pages[pgno - 1], size);
    return 0;
}

static void drop_from(mem_file *f, uint32_t n)
{
    for (uint32_t i = n; i < f->cap; i++) {
        free(f->pages[i]);
        f->pages[i] = NULL;
    }
}

static int m_put(cstack_pagestore *ps, const char *file, const cstack_page *pages, size_t n,
                 const cstack_pagestore_meta *meta)
{
    mem_store *m = (mem_store *)ps;
    mem_file *f = find(m, file);
    if (!f) {
        if (!(f = calloc(1, sizeof *f)) || !(f->name = cs_strdup(file))) {
            free(f);
            return CSTACK_ENOMEM;
        }
        f->next = m->files;
        m->files = f;
    }
    /* Everything that can fail first (copies, room), then the swap. */
    uint32_t need = meta->npages > f->cap ? meta->npages : f->cap;
    unsigned char **copies = calloc(n ? n : 1, sizeof *copies);
    int rc = copies ? 0 : CSTACK_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        if (pages[i].pgno == 0 || pages[i].pgno > meta->npages)
            rc = CSTACK_EINVAL;
        else if (!(copies[i] = malloc(meta->page_size)))
            rc = CSTACK_ENOMEM;
        else
            memcpy(copies[i], pages[i].data, meta->page_size);
    }
    if (!rc && need > f->cap) {
        unsigned char **p = realloc(f->pages, need * sizeof *p);
        if (!p) {
            rc = CSTACK_ENOMEM;
        } else {
            memset(p + f->cap, 0, (need - f->cap) * sizeof *p);
            f->pages = p;
            f->cap = need;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rc) {
            free(copies[i]);
            continue;
        }
        free(f->pages[pages[i].pgno - 1]);
        f->pages[pages[i].pgno - 1] = copies[i];
    }
    free(copies);
    if (rc)
        return rc;
    drop_from(f, meta->npages);
    f->meta = *meta;
    return 0;
}

static int m_size(cstack_pagestore *ps, const char *file, cstack_pagestore_meta *meta)
{
    mem_file *f = find((mem_store *)ps, file);
    *meta = f ? f->meta : (cstack_pagestore_meta){0, 0, 0};
    return 0;
}

static int m_truncate(cstack_pagestore *ps, const char *file, uint32_t npages)
{
    mem_file *f = find((mem_store *)ps, file);
    if (f && npages < f->meta.npages) {
        drop_from(f, npages);
        f->meta.npages = npages;
        f->meta.commit++;
    }
    return 0;
}

static void m_destroy(cstack_pagestore *ps)
{
    mem_store *m = (mem_store *)ps;
    while (m && m->files) {
        mem_file *f = m->files;
        m->files = f->next;
        drop_from(f, 0);
        free(f->pages);
        free(f->name);
        free(f);
    }
    free(m);
}

int cstack_pagestore_memory(cstack_pagestore **out)
{
    mem_store *m = calloc(1, sizeof *m);
    *out = m ? &m->base : NULL;
    if (!m)
        return CSTACK_ENOMEM;
    m->base = (cstack_pagestore){CSTACK_PAGESTORE_VERSION, m_get, m_put, m_size, m_truncate,
                                 m_destroy};
    return 0;
}
