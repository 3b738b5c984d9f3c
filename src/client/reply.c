/*
 * reply.c -- reading the server's answers, whatever carried them: the
 * headers of docs/server.md into a cs_http_resp, and error bodies into a
 * code and a message.  http.c (libcurl) and the browser's transport
 * (src/web/http.c) both fill their responses through these.
 */
#include <ctype.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"
#include "util/hex.h"

/* Matches the header `name` (case-insensitive): its value, trimmed, is the
 * *len bytes at *val.  False when the line is another header. */
static bool header_span(const char *line, size_t n, const char *name, const char **val,
                        size_t *len)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && isspace((unsigned char)*v))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    *val = v;
    *len = (size_t)(end - v);
    return true;
}

/* As header_span, the value copied (cut to fit) into buf; NULL when the
 * line is another header. */
static const char *header_value(const char *line, size_t n, const char *name, char *buf, size_t cap)
{
    const char *v = NULL;
    size_t len = 0;
    if (!header_span(line, n, name, &v, &len))
        return NULL;
    len = len < cap - 1 ? len : cap - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

void cs_http_resp_header(cs_http_resp *r, const char *p, size_t n)
{
    char v[CS_CURSOR_MAX], *end = NULL;
    const char *val = NULL;
    size_t len = 0;
    if (header_value(p, n, "X-Cstack-Cursor", v, sizeof v)) {
        long long x = strtoll(v, &end, 10);
        r->cursor = (end != v && *end == '\0' && x >= 0) ? x : -1;
        /* A continuation cursor: the answer goes on from there. */
        if (r->cursor < 0 && cs_page_base(v) >= 0) {
            r->cursor = cs_page_base(v);
            snprintf(r->page, sizeof r->page, "%s", v);
        }
    } else if (header_value(p, n, "X-Cstack-More", v, sizeof v)) {
        r->more = strcmp(v, "1") == 0;
    } else if (header_value(p, n, "X-Cstack-Remaining", v, sizeof v)) {
        long long x = strtoll(v, &end, 10);
        r->remaining = (end != v && *end == '\0' && x >= 0) ? x : -1;
    } else if (header_span(p, n, "X-Cstack-Model-Sums", &val, &len)) {
        /* Only a repair asks for it: a few bytes per model, cut off past
         * the bound (the repair then takes the missing models as
         * differing). */
        cs_buf_reset(&r->model_sums);
        cs_buf_append(&r->model_sums, val, len < CS_MODEL_SUMS_MAX ? len : CS_MODEL_SUMS_MAX);
    } else if (header_value(p, n, "X-Cstack-Checksum", v, sizeof v)) {
        uint64_t x = 0;
        r->has_checksum = cs_hex_u64(v, strlen(v), &x) == 0;
        r->checksum = x;
    } else {
        header_value(p, n, "X-Cstack-Schema", r->schema, sizeof r->schema);
    }
}

void cs_http_resp_reset(cs_http_resp *r, size_t max)
{
    cs_buf_reset(&r->body);
    r->body.max = max;
    r->status = 0;
    r->too_big = false;
    r->cursor = -1;
    r->page[0] = '\0';
    r->more = false;
    r->remaining = -1;
    r->has_checksum = false;
    r->checksum = 0;
    cs_buf_reset(&r->model_sums);
    r->schema[0] = '\0';
}

void cs_http_resp_free(cs_http_resp *r)
{
    cs_buf_free(&r->body);
    cs_buf_free(&r->model_sums);
}

const jr_val *cs_client_json(const char *s, size_t n, jr_val *room, size_t nroom, jr_doc *doc)
{
    /* The server's objects are flat and short; these bounds only keep a
     * wrong server from making the client build a large tree. */
    static const jr_limits lim = {.max_depth = 32, .max_values = 1 << 16};
    jr_error err;
    memset(doc, 0, sizeof *doc);
    if (!s || n == 0 || n > UINT32_MAX / 2 || jr_parse(s, n, &lim, room, nroom, doc, &err) != JR_OK)
        return NULL;
    return jr_is(&doc->vals[0], JR_OBJECT) ? &doc->vals[0] : NULL;
}

int cs_http_error_code(const cs_http_resp *r)
{
    static const struct {
        const char *name;
        int code;
    } NAMES[] = {{"unauthorized", CSTACK_EUNAUTHORIZED}, {"forbidden", CSTACK_EFORBIDDEN},
                 {"schema_mismatch", CSTACK_EMISMATCH},  {"too_big", CSTACK_ETOOBIG},
                 {"unavailable", CSTACK_EUNAVAILABLE},   {"locked", CSTACK_EBUSY},
                 {"clock_drift", CSTACK_ECLOCK}};
    jr_val room[16];
    jr_doc doc;
    const jr_val *v = jr_get(cs_client_json(r->body.data, r->body.len, room, 16, &doc), "code");
    int code = 0;
    for (size_t i = 0; jr_is(v, JR_STRING) && !code && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (jr_len(v) == strlen(NAMES[i].name) && memcmp(jr_str(v), NAMES[i].name, jr_len(v)) == 0)
            code = NAMES[i].code;
    jr_doc_free(&doc);
    if (code)
        return code;
    switch (r->status) {
    case 401:
        return CSTACK_EUNAUTHORIZED;
    case 403:
        return CSTACK_EFORBIDDEN;
    case 409:
        return CSTACK_EMISMATCH;
    case 413:
        return CSTACK_ETOOBIG;
    case 503:
        return CSTACK_EUNAVAILABLE;
    default:
        return CSTACK_EIO;
    }
}

void cs_http_error_text(cs_client *c, const char *what, const cs_http_resp *r)
{
    char msg[200] = "";
    jr_val room[16];
    jr_doc doc;
    const jr_val *m = jr_get(cs_client_json(r->body.data, r->body.len, room, 16, &doc), "message");
    if (jr_is(m, JR_STRING)) {
        snprintf(msg, sizeof msg, "%.*s", (int)(jr_len(m) < sizeof msg ? jr_len(m) : sizeof msg),
                 jr_str(m));
    } else if (r->body.len) {
        /* Not the JSON of docs/server.md: show its start, printable only. */
        size_t k = 0;
        for (size_t i = 0; i < r->body.len && k < 120; i++)
            msg[k++] = isprint((unsigned char)r->body.data[i]) ? r->body.data[i] : '?';
        msg[k] = '\0';
    }
    jr_doc_free(&doc);
    pthread_mutex_lock(&c->st_mu);
    snprintf(c->st.last_error, sizeof c->st.last_error, "%s: HTTP %ld%s%s", what, r->status,
             msg[0] ? ": " : "", msg);
    pthread_mutex_unlock(&c->st_mu);
}
