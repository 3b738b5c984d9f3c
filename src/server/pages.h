/* pages.h -- the server's page storage for backups (pages.c,
 * docs/pagestore.md): its routes are /v1/pages/... and /v1/backups[/ID],
 * authenticated like the sync routes; http.c hands them over whole. */
#ifndef CS_SERVER_PAGES_H
#define CS_SERVER_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstack_server.h"

/* One /v1/pages/get asks for at most this many hashes, and at most
 * CS_PAGES_MAX_GET_BYTES of pages: its answer is built in memory. */
#define CS_PAGES_MAX_GET 4096
#define CS_PAGES_MAX_GET_BYTES ((size_t)16 << 20)

typedef struct cs_pages cs_pages;

/* A request, once authenticated and its body read.  Borrowed. */
typedef struct cs_pages_req {
    const char *user; /* the token's sub */
    const char *site; /* X-Cstack-Site: the device */
    const char *method;
    const char *url;
    const char *name; /* query "name", NULL if absent */
    const char *size; /* query "size", NULL if absent */
    const void *body;
    size_t len;
} cs_pages_req;

/* The answer: status 200 with a body (malloc'd, the caller frees it), or an
 * error status with code and message. */
typedef struct cs_pages_resp {
    int status;
    const char *ctype;
    char *body;
    size_t len;
    const char *code;
    char msg[256];
} cs_pages_resp;

/* The page storage at `path` (created on its first request); quota 0 =
 * the default.  CSTACK_ENOMEM only. */
int cs_pages_open(const char *path, uint64_t quota, cs_pages **out);
/* srv->pages as its configuration says. */
int cs_pages_start(cstack_server *srv);
void cs_pages_close(cs_pages *p); /* NULL ok */
/* Whether `url` is one of the page-storage routes. */
bool cs_pages_route(const char *url);
void cs_pages_handle(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out);

#endif
