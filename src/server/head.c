/*
 * head.c -- the request line and headers of one HTTP/1.x request, checked
 * before libmicrohttpd reads them (intake.c).
 *
 * libmicrohttpd 0.9.75 answers a request it cannot parse or hold with a
 * built-in HTML page (400, 414, 431, 505) before any of our code runs.  So a
 * request's head is looked at (peeked, not consumed) first, and one MHD
 * would refuse is refused here with our JSON error instead; a head that
 * passes is one MHD parses: the rules below are at least as strict as its
 * own, and the bounds are well inside its per-connection memory (32 KiB,
 * which holds the head, one record per header and query argument, and the
 * response's headers).
 *
 *   request line   METHOD SP target SP HTTP/1.0|HTTP/1.1 CRLF: the method a
 *                  token, the target visible ASCII (no spaces or controls),
 *                  at most CS_HEAD_TARGET_MAX bytes (414), at most
 *                  CS_HEAD_FIELDS_MAX query arguments (414); another HTTP
 *                  version is a 505, anything else a 400
 *   header lines   name ":" value CRLF: the name a token, the value without
 *                  controls but tab; no folded lines, no bare LF (400)
 *   the head       at most CS_HEAD_MAX bytes and CS_HEAD_FIELDS_MAX header
 *                  lines, ended by an empty line (431); an HTTP/1.1 one with
 *                  a Host header (400, as MHD and RFC 9112 want)
 *   body framing   Content-Length at most once, one decimal number (400),
 *                  not over the body limit (413); no Transfer-Encoding:
 *                  chunked is 411 (send Content-Length), any other coding
 *                  501, and with Content-Length too 400 (RFC 9112 6.3).
 *                  Chunked bodies are refused because MHD answers a
 *                  malformed chunk with its own page in the middle of the
 *                  body, where no check of ours can come first; none of our
 *                  clients sends one (they all know the length).
 */
#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/server_int.h"

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int refuse(cs_head_err *e, int status, const char *code, const char *message)
{
    e->status = status;
    e->code = code;
    e->message = message;
    return CS_HEAD_BAD;
}

/* The request line, [p, end) without its CRLF; *needs_host when it is an
 * HTTP/1.1 one. */
static int check_line(const unsigned char *p, const unsigned char *end, bool *needs_host,
                      cs_head_err *e)
{
    const unsigned char *m = p;
    while (p < end && is_tchar(*p))
        p++;
    if (p == m || p == end || *p != ' ')
        return refuse(e, 400, "bad_request", "malformed request line");
    const unsigned char *target = ++p;
    size_t args = 1;
    while (p < end && *p > ' ' && *p < 0x7f)
        args += *p++ == '&';
    if (p == target || p == end || *p != ' ')
        return refuse(e, 400, "bad_request", "malformed request line");
    if ((size_t)(p - target) > CS_HEAD_TARGET_MAX || args > CS_HEAD_FIELDS_MAX)
        return refuse(e, 414, "too_big", "the request target is too long");
    p++;
    size_t n = (size_t)(end - p);
    *needs_host = n == 8 && memcmp(p, "HTTP/1.1", 8) == 0;
    if (*needs_host || (n == 8 && memcmp(p, "HTTP/1.0", 8) == 0))
        return CS_HEAD_OK;
    if (n == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' && p[6] == '.' &&
        p[7] >= '0' && p[7] <= '9')
        return refuse(e, 505, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served");
    return refuse(e, 400, "bad_request", "malformed request line");
}

/* What the header lines say so far. */
typedef struct fields {
    bool host;
    unsigned lengths, codings; /* Content-Length and Transfer-Encoding lines */
    bool chunked;              /* the only coding is chunked */
    bool bad_length, long_length;
    uint64_t length;
} fields;

static bool named(const unsigned char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp((const char *)name, want, n) == 0;
}

/* The value of a framing header, [v, end) with its surrounding blanks. */
static void framing(fields *f, bool length, const unsigned char *v, const unsigned char *end)
{
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!length) {
        f->codings++;
        f->chunked = end - v == 7 && strncasecmp((const char *)v, "chunked", 7) == 0;
        return;
    }
    f->lengths++;
    f->bad_length |= v == end;
    for (; v < end; v++) {
        if (*v < '0' || *v > '9')
            f->bad_length = true;
        else if (f->length > UINT64_MAX / 10 - 1)
            f->long_length = true;
        else
            f->length = f->length * 10 + (uint64_t)(*v - '0');
    }
}

/* The framing of the body once the head is complete. */
static int check_framing(const fields *f, uint64_t max_body, cs_head_err *e)
{
    if (f->lengths > 1)
        return refuse(e, 400, "bad_request", "Content-Length is given more than once");
    if (f->bad_length)
        return refuse(e, 400, "bad_request", "Content-Length is not a decimal number");
    if (f->codings && f->lengths)
        return refuse(e, 400, "bad_request",
                      "Transfer-Encoding and Content-Length cannot both be given");
    if (f->codings == 1 && f->chunked)
        return refuse(e, 411, "length_required",
                      "Transfer-Encoding: chunked is not accepted; send Content-Length");
    if (f->codings)
        return refuse(e, 501, "unsupported", "no Transfer-Encoding is supported");
    if (f->long_length || f->length > max_body) {
        snprintf(e->text, sizeof e->text, "the body (Content-Length) exceeds %" PRIu64 " bytes",
                 max_body);
        return refuse(e, 413, "too_big", e->text);
    }
    return CS_HEAD_OK;
}

/* One header line, [p, end) without its CRLF, noted in `f`. */
static int check_field(const unsigned char *p, const unsigned char *end, fields *f,
                       cs_head_err *e)
{
    const unsigned char *name = p;
    while (p < end && is_tchar(*p))
        p++;
    if (p == name || p == end || *p != ':')
        return refuse(e, 400, "bad_request", "malformed header line");
    size_t n = (size_t)(p - name);
    f->host |= named(name, n, "host");
    const unsigned char *value = ++p;
    for (; p < end; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
            return refuse(e, 400, "bad_request", "a header value holds a control character");
    if (named(name, n, "content-length") || named(name, n, "transfer-encoding"))
        framing(f, named(name, n, "content-length"), value, end);
    return CS_HEAD_OK;
}

int cs_head_check(const void *buf, size_t len, uint64_t max_body, size_t *head_len,
                  uint64_t *body_len, cs_head_err *e)
{
    const unsigned char *p = buf, *end = p + (len < CS_HEAD_MAX ? len : CS_HEAD_MAX);
    size_t lines = 0;
    bool needs_host = false;
    fields f = {0};
    for (const unsigned char *line = p; line < end;) {
        const unsigned char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break;
        if (nl == line || nl[-1] != '\r')
            return refuse(e, 400, "bad_request", "a line of the head does not end with CRLF");
        if (nl - 1 == line) { /* the empty line: the head is complete */
            if (lines == 0)
                return refuse(e, 400, "bad_request", "malformed request line");
            if (needs_host && !f.host)
                return refuse(e, 400, "bad_request", "an HTTP/1.1 request needs a Host header");
            if (check_framing(&f, max_body, e))
                return CS_HEAD_BAD;
            *head_len = (size_t)(nl + 1 - p);
            *body_len = f.length;
            return CS_HEAD_OK;
        }
        int rc = lines == 0 ? check_line(line, nl - 1, &needs_host, e)
                            : check_field(line, nl - 1, &f, e);
        if (rc)
            return rc;
        if (++lines > CS_HEAD_FIELDS_MAX + 1)
            return refuse(e, 431, "too_big", "too many header lines");
        line = nl + 1;
    }
    if (len < CS_HEAD_MAX)
        return CS_HEAD_PARTIAL;
    if (lines == 0)
        return refuse(e, 414, "too_big", "the request line is too long");
    return refuse(e, 431, "too_big", "the request headers are too large");
}
