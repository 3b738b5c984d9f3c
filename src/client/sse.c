/*
 * sse.c -- an incremental parser of text/event-stream (the WHATWG "server-sent
 * events" format) for the server's /v1/stream.
 *
 * Bytes arrive in arbitrary pieces from libcurl; the parser keeps the partial
 * line and the event being built between calls.  Lines end in LF, CRLF or
 * CR.  `event:` names the event, `data:` lines are joined with '\n', `id:`
 * sets the last event id, lines starting with ':' are comments (the server's
 * keep-alives) and an empty line dispatches the event.  A single line or an
 * event's data larger than the bound is refused (CSTACK_ETOOBIG) rather than
 * buffered without limit.
 */
#include <string.h>

#include "client/client.h"

void cs_sse_init(cs_sse *p, size_t max, cs_sse_fn fn, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->max = max;
    p->line.max = max;
    p->data.max = max;
    p->fn = fn;
    p->ctx = ctx;
}

void cs_sse_free(cs_sse *p)
{
    cs_buf_free(&p->line);
    cs_buf_free(&p->data);
}

static void copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int dispatch(cs_sse *p)
{
    int rc = 0;
    /* An event without data lines is not dispatched (per the format). */
    if (p->data.len > 0) {
        size_t n = p->data.len - 1; /* the last data line's '\n' */
        p->data.data[n] = '\0';
        cs_sse_event ev = {p->type[0] ? p->type : "message", p->data.data, n, p->id};
        rc = p->fn(p->ctx, &ev);
    }
    cs_buf_reset(&p->data);
    p->type[0] = '\0';
    return rc;
}

/* Handles one complete line (without its terminator). */
static int line(cs_sse *p, const char *s, size_t n)
{
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    size_t fn = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vn = colon ? n - fn - 1 : 0;
    if (vn > 0 && v[0] == ' ') {
        v++;
        vn--;
    }
    if (fn == 5 && memcmp(s, "event", 5) == 0) {
        copy_field(p->type, sizeof p->type, v, vn);
    } else if (fn == 4 && memcmp(s, "data", 4) == 0) {
        int rc = cs_buf_append(&p->data, v, vn);
        return rc ? rc : cs_buf_putc(&p->data, '\n');
    } else if (fn == 2 && memcmp(s, "id", 2) == 0) {
        if (!memchr(v, '\0', vn))
            copy_field(p->id, sizeof p->id, v, vn);
    }
    /* `retry:` and unknown fields are ignored: the session has its own
     * backoff. */
    return 0;
}

int cs_sse_feed(cs_sse *p, const char *bytes, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (p->cr) {
            p->cr = false;
            if (bytes[i] == '\n') {
                i++;
                continue;
            }
        }
        /* Find the end of the line in this piece. */
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r')
            j++;
        int rc = cs_buf_append(&p->line, bytes + i, j - i);
        if (rc)
            return rc;
        if (j == n)
            break;
        p->cr = bytes[j] == '\r';
        i = j + 1;
        rc = line(p, p->line.data ? p->line.data : "", p->line.len);
        cs_buf_reset(&p->line);
        if (rc)
            return rc;
    }
    return 0;
}
