/*
 * scan.c -- the pre-scan of request bytes and their parsing with jansson.
 *
 * Before jansson sees a request, one pass over its bytes:
 *   - rejects NUL bytes and "\u0000" escapes (C strings would cut a value
 *     short, and the value layer refuses U+0000 anyway);
 *   - bounds the nesting of arrays and objects to ENV_MAX_DEPTH, so neither
 *     jansson nor the recursive readers of where filters and Json values can
 *     exhaust the stack;
 *   - bounds the number of values and keys to ENV_MAX_VALUES, since jansson
 *     spends some 50 to 100 bytes on each: 16 MiB of "1," would otherwise
 *     become half a gigabyte of tree;
 *   - finds the numbers whose exact text jansson would lose.
 *
 * Why numbers need care: jansson turns 1.10 into the double 1.1, refuses
 * integers beyond int64 outright, and prints doubles with 17 digits.  A Json
 * value must read back with its numbers as written, and a Decimal or big Int
 * must never pass through a double.  So every number that is not a plain
 * int64 literal (one jansson reproduces exactly) is replaced, in a copy of
 * the request, by the marker string "\u0000" followed by its index in
 * env->nums; the exact text stays in the original bytes.  A marker cannot be
 * confused with a string of the request, because those cannot contain NUL.
 * Markers are only placed where a value may stand (never as an object key), so
 * a request is valid JSON after the rewrite exactly when it was before, and
 * jansson's error positions are mapped back to the original bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"

/* Line and column (from 1, in bytes) of byte `off` of the request. */
static void line_col(const env *e, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, start = 0;
    if (off > e->raw_len)
        off = e->raw_len;
    for (size_t i = 0; i < off; i++)
        if (e->raw[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = off - start + 1;
}

static int fail_at(env *e, int code, size_t off, const char *what)
{
    size_t line, col;
    line_col(e, off, &line, &col);
    return env_fail(e, code, "%s (line %zu, column %zu)", what, line, col);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the run of number characters at s, and whether it is exactly one
 * RFC 8259 number (*valid) that jansson keeps exactly (*plain: an integer
 * without sign trouble that fits int64). */
static size_t number_run(const char *s, size_t n, bool *valid, bool *plain)
{
    size_t run = 0;
    while (run < n && (is_digit(s[run]) || strchr("+-.eE", s[run])))
        run++;
    size_t i = 0;
    bool neg = s[0] == '-';
    i += neg;
    size_t int_start = i;
    if (i < run && s[i] == '0') {
        i++;
    } else if (i < run && is_digit(s[i])) {
        while (i < run && is_digit(s[i]))
            i++;
    } else {
        *valid = *plain = false;
        return run;
    }
    size_t int_len = i - int_start;
    bool simple = true;
    if (i < run && s[i] == '.') {
        simple = false;
        size_t d = ++i;
        while (i < run && is_digit(s[i]))
            i++;
        if (i == d)
            i = run + 1; /* "1." is not a number */
    }
    if (i < run && (s[i] == 'e' || s[i] == 'E')) {
        simple = false;
        i++;
        if (i < run && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < run && is_digit(s[i]))
            i++;
        if (i == d)
            i = run + 1;
    }
    *valid = i == run;
    /* int64 holds every 18-digit number; 19 digits need a comparison. */
    bool fits =
        int_len < 19 ||
        (int_len == 19 &&
         memcmp(s + int_start, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0);
    *plain = *valid && simple && fits && !(neg && int_len == 1 && s[int_start] == '0');
    return run;
}

static int add_num(env *e, size_t off, size_t len)
{
    if (e->nnums == e->capnums) {
        size_t cap = e->capnums ? e->capnums * 2 : 16;
        env_num *p = realloc(e->nums, cap * sizeof *p);
        if (!p)
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        e->nums = p;
        e->capnums = cap;
    }
    e->nums[e->nnums++] = (env_num){off, len, 0, 0};
    return 0;
}

/* Skips the string starting at s[*i] (the quote); rejects NUL in it. */
static int skip_string(env *e, size_t *i)
{
    const char *s = e->raw;
    size_t n = e->raw_len, k = *i + 1;
    while (k < n && s[k] != '"') {
        if (s[k] == '\0')
            return fail_at(e, CSTACK_EINVAL, k, "a NUL byte is not allowed in a request");
        if (s[k] != '\\') {
            k++;
            continue;
        }
        if (k + 5 < n && s[k + 1] == 'u' && memcmp(s + k + 2, "0000", 4) == 0)
            return fail_at(e, CSTACK_EINVAL, k,
                           "strings cannot contain \\u0000 (NUL): it cannot be stored");
        /* The escaped character is skipped (hex digits of \uXXXX need no
         * care); a malformed escape is left for jansson to report. */
        k += 2;
    }
    *i = k + 1;
    return 0;
}

static int too_many_values(env *e, size_t at)
{
    char what[64];
    snprintf(what, sizeof what, "more than %d JSON values", ENV_MAX_VALUES);
    return fail_at(e, CSTACK_ETOOBIG, at, what);
}

/* The pass described at the top of the file. */
static int scan_bytes(env *e)
{
    const char *s = e->raw;
    size_t n = e->raw_len, i = 0, values = 0;
    uint64_t objects = 0; /* bit d: nesting level d is an object */
    int depth = 0;
    bool key = false; /* the next token is an object key */
    while (i < n) {
        char c = s[i];
        /* Every value starts with one of these (true, false, null by their
         * first letter; no other letter is valid outside strings). */
        if (strchr("\"{[-0123456789tfn", c) && c != '\0' && ++values > ENV_MAX_VALUES)
            return too_many_values(e, i);
        if (c == '"') {
            if (skip_string(e, &i))
                return e->code;
            key = false;
        } else if (c == '{' || c == '[') {
            if (depth >= ENV_MAX_DEPTH) {
                char what[64];
                snprintf(what, sizeof what, "JSON nested deeper than %d levels", ENV_MAX_DEPTH);
                return fail_at(e, CSTACK_ETOOBIG, i, what);
            }
            if (c == '{')
                objects |= (uint64_t)1 << depth;
            else
                objects &= ~((uint64_t)1 << depth);
            depth++;
            key = c == '{';
            i++;
        } else if (c == '}' || c == ']' || c == ':') {
            if (c != ':' && depth > 0)
                depth--;
            key = false;
            i++;
        } else if (c == ',') {
            key = depth > 0 && (objects >> (depth - 1) & 1);
            i++;
        } else if (c == '-' || is_digit(c)) {
            bool valid, plain;
            size_t run = number_run(s + i, n - i, &valid, &plain);
            if (valid && !plain && !key && add_num(e, i, run))
                return e->code;
            key = false;
            i += run;
        } else if (c == '\0') {
            return fail_at(e, CSTACK_EINVAL, i, "a NUL byte is not allowed in a request");
        } else {
            i++;
        }
    }
    return 0;
}

/* The request with every collected number replaced by its marker. */
static int rewrite(env *e, cs_buf *out)
{
    size_t at = 0;
    int rc = 0;
    for (size_t k = 0; k < e->nnums && !rc; k++) {
        env_num *m = &e->nums[k];
        rc = cs_buf_append(out, e->raw + at, m->raw_off - at);
        m->new_off = out->len;
        if (!rc)
            rc = cs_buf_printf(out, "\"\\u0000%zu\"", k);
        m->new_len = out->len - m->new_off;
        at = m->raw_off + m->raw_len;
    }
    if (!rc)
        rc = cs_buf_append(out, e->raw + at, e->raw_len - at);
    if (rc)
        return env_fail(e, rc, "%s", cstack_errstr(rc));
    return 0;
}

/* Maps a byte offset of the rewritten text back to the request. */
static size_t raw_offset(const env *e, size_t off)
{
    size_t lo = 0, hi = e->nnums;
    while (lo < hi) { /* the last marker starting at or before off */
        size_t mid = lo + (hi - lo) / 2;
        if (e->nums[mid].new_off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return off;
    const env_num *m = &e->nums[lo - 1];
    if (off < m->new_off + m->new_len)
        return m->raw_off;
    return m->raw_off + m->raw_len + (off - m->new_off - m->new_len);
}

static int parse_error(env *e, const json_error_t *err)
{
    if (json_error_code(err) == json_error_out_of_memory)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    char text[JSON_ERROR_TEXT_LENGTH + 16];
    snprintf(text, sizeof text, "%s", err->text);
    /* jansson quotes the token it stopped at; a marker would show as
     * "\u0000..." there, which means nothing to the sender. */
    char *near = strstr(text, " near ");
    if (near && strstr(near, "\\u0000"))
        *near = '\0';
    size_t off = err->position > 0 ? (size_t)err->position : 0;
    char what[JSON_ERROR_TEXT_LENGTH + 64];
    snprintf(what, sizeof what, "not valid JSON: %s", text);
    return fail_at(e, CSTACK_EINVAL, raw_offset(e, off), what);
}

int env_parse(env *e, const char *req, size_t len, json_t **root)
{
    *root = NULL;
    e->raw = req;
    e->raw_len = len;
    if (scan_bytes(e))
        return e->code;
    json_error_t err;
    if (e->nnums == 0) {
        *root = json_loadb(req, len, JSON_REJECT_DUPLICATES, &err);
    } else {
        cs_buf text = CS_BUF_INIT;
        if (rewrite(e, &text)) {
            cs_buf_free(&text);
            return e->code;
        }
        *root = json_loadb(text.data, text.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        cs_buf_free(&text);
    }
    return *root ? 0 : parse_error(e, &err);
}

bool env_is_string(const json_t *j)
{
    return json_is_string(j) && !(json_string_length(j) > 0 && json_string_value(j)[0] == '\0');
}

size_t env_fmt_int(char buf[24], int64_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    /* Negate in unsigned arithmetic: -INT64_MIN does not fit in int64. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    buf[k] = '\0';
    return k;
}

bool env_get_number(const env *e, const json_t *j, env_number *out)
{
    if (json_is_integer(j)) {
        out->is_int = true;
        out->i = (int64_t)json_integer_value(j);
        out->len = env_fmt_int(out->buf, out->i);
        out->text = out->buf;
        return true;
    }
    if (!json_is_string(j) || json_string_length(j) < 2 || json_string_value(j)[0] != '\0')
        return false;
    /* A marker: "\0" then the decimal index written by rewrite(). */
    const char *s = json_string_value(j) + 1;
    size_t idx = 0;
    for (; *s; s++) {
        if (!is_digit(*s) || idx > e->nnums)
            return false;
        idx = idx * 10 + (size_t)(*s - '0');
    }
    if (idx >= e->nnums)
        return false;
    out->is_int = false;
    out->i = 0;
    out->text = e->raw + e->nums[idx].raw_off;
    out->len = e->nums[idx].raw_len;
    return true;
}
