/* The sync client's transport in the browser: src/client/ (exchange.c,
 * state.c, session.c) runs unchanged in the worker, and its requests go
 * through synchronous XMLHttpRequest, which a Dedicated Worker may use.  The
 * worker calls cstack_sync_run_once (push, then pull until caught up) from
 * its own loop and follows /v1/stream with fetch (web/worker.js), so the
 * libcurl stream of src/client/stream.c has no part here. */
#include <emscripten.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

/* Performs the request; returns the status (0: no response) and keeps the
 * response in the worker for the two calls below. */
EM_JS(int, host_http, (const char *url, const char *headers, const void *body, int len),
      {
          return Module.cstackHost.http(UTF8ToString(url), UTF8ToString(headers),
                                        body ? HEAPU8.slice(body, body + len) : null);
      });
EM_JS(int, host_http_body_len, (void), { return Module.cstackHost.httpBody.length; });
EM_JS(void, host_http_body, (void *dst), { HEAPU8.set(Module.cstackHost.httpBody, dst); });
/* The response's header lines ("name: value\r\n"...), as a new C string. */
EM_JS(char *, host_http_headers, (void), {
    const s = Module.cstackHost.httpHeaders;
    const n = lengthBytesUTF8(s) + 1;
    const p = _malloc(n);
    if (p) stringToUTF8(s, p, n);
    return p;
});
EM_JS(void, host_http_error, (char *buf, int cap),
      { stringToUTF8(Module.cstackHost.httpError || "", buf, cap); });

int cs_http_global_init(void)
{
    return 0;
}

int cs_http_open(cs_client *c)
{
    return 0;
}

void cs_http_close(cs_client *c)
{
}

void cs_http_wake(cs_client *c)
{
}

static void read_headers(cs_http_resp *r)
{
    char *all = host_http_headers();
    for (char *line = all; line && *line;) {
        char *end = strstr(line, "\r\n");
        size_t n = end ? (size_t)(end - line) : strlen(line);
        cs_http_resp_header(r, line, n);
        line += n + (end ? 2 : 0);
    }
    free(all);
}

int cs_http_request(cs_client *c, const char *path, const void *body, size_t len, const char *hdr,
                    cs_http_resp *r)
{
    cs_http_resp_reset(r, c->o.max_response);
    char url[4096], headers[4096];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    int n = snprintf(headers, sizeof headers,
                     "Authorization: Bearer %s\nX-Cstack-Schema: %s\nX-Cstack-Site: %s\n%s%s",
                     c->token, cstack_schema_hash(cstack_schema_of(c->db)), c->site,
                     body ? "Content-Type: application/octet-stream\n" : "", hdr ? hdr : "");
    if (n < 0 || (size_t)n >= sizeof headers)
        return cs_client_fail(c, CSTACK_ETOOBIG, "%s: request headers too long", path);
    r->status = host_http(url, headers, body, (int)len);
    if (r->status == 0) {
        char why[200];
        host_http_error(why, sizeof why);
        return cs_client_fail(c, CSTACK_EIO, "%s%s: %s", c->url, path, why);
    }
    size_t blen = (size_t)host_http_body_len();
    if (blen > c->o.max_response)
        return cs_client_fail(c, CSTACK_ETOOBIG, "%s: response larger than %zu bytes", path,
                              c->o.max_response);
    if (cs_buf_reserve(&r->body, blen + 1))
        return cs_client_fail(c, CSTACK_ENOMEM, "%s: out of memory", path);
    host_http_body(r->body.data);
    r->body.len = blen;
    r->body.data[blen] = '\0';
    read_headers(r);
    c->st.http_status = (int)r->status;
    return 0;
}

/* Sessions on a thread of their own (cstack_sync_start) do not exist in
 * the browser: the worker follows the stream itself. */
int cs_stream(cs_client *c)
{
    return cs_client_fail(c, CSTACK_EMISUSE, "sync sessions on a thread are not available here");
}
