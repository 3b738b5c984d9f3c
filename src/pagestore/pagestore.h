/* pagestore.h -- what the files of src/pagestore/ share: the small HTTP
 * client of the server's page storage (backup.c), used by backup and
 * restore and by the server page store (remote.c). */
#ifndef CS_PAGESTORE_H
#define CS_PAGESTORE_H

#include <curl/curl.h>
#include <stddef.h>

#include "cstack.h"
#include "util/buf.h"

#define HASH 32

/* One connection's worth of state; errors are written to info->error. */
typedef struct bk {
    CURL *h;
    struct curl_slist *hdrs;
    const char *url; /* borrowed */
    cs_buf resp;
    long status;
    cstack_backup_info *info;
} bk;

/* Headers for `schema` and device `site` (32 hex digits), url and token of
 * `o` (borrowed: they must outlive b).  Clears *info. */
int cs_bk_open(bk *b, const cstack_schema *schema, const char *site, const cstack_sync_options *o,
               cstack_backup_info *info);
void cs_bk_close(bk *b);
/* GET (body NULL) or POST; 0 when the answer is 200 (in b->resp), else the
 * CSTACK_E* code of the failure, with info->error set. */
int cs_bk_request(bk *b, const char *path, const void *body, size_t len);
/* Sets info->error; returns `code`. */
int cs_bk_fail(bk *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A random device id, for requests that belong to no database yet. */
void cs_bk_random_site(char site[33]);
/* Reads the manifest answer in b->resp (GET /v1/backups/ID): page size,
 * page count and id into b->info, *hashes pointing into b->resp. */
int cs_bk_manifest(bk *b, const unsigned char **hashes);
/* The pages of `hashes` (n of them, `size` bytes each) into b->resp, their
 * hashes checked.  n <= CS_BK_GET_CHUNK(size). */
int cs_bk_get_pages(bk *b, const unsigned char *hashes, uint32_t n, uint32_t size);
/* Uploads the pages (n of `size` bytes at data, hashes given) the server
 * lacks; counts them in info->pages_sent. */
int cs_bk_put_missing(bk *b, const unsigned char *data, const unsigned char *hashes, uint32_t n,
                      uint32_t size);
/* Commits a manifest of npages hashes under `name`; info->id gets its id. */
int cs_bk_commit(bk *b, const char *name, const unsigned char *hashes, uint32_t npages,
                 uint32_t size);

/* Pages of `size` bytes one /v1/pages/get may ask for: the server takes at
 * most 4096 hashes and 16 MiB of pages. */
#define CS_BK_GET_CHUNK(size) ((size) <= 4096u ? 4096u : (16u << 20) / (size))

#endif
