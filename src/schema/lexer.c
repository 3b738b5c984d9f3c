/*
 * lexer.c -- turns .cstack source into tokens.
 *
 * Lexical errors (stray characters, NUL bytes, bad UTF-8, unterminated
 * strings, unknown escapes) are reported and the offending bytes skipped, so
 * the parser still sees a plausible token stream and can report later errors
 * without a cascade.  Identifiers are ASCII [A-Za-z_][A-Za-z0-9_]*; non-ASCII
 * bytes may only appear inside strings and comments, where they must be
 * valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"
#include "value/value.h"
#include "util/hex.h"

typedef struct lexer {
    cs_parse *p;
    size_t off;
    int line;
    size_t line_start;
    size_t cap;
    size_t ndiags; /* errors seen so far, to flag the next token */
} lexer;

static cs_pos lx_pos(const lexer *lx, size_t off)
{
    cs_pos pos = {lx->line, (int)(off - lx->line_start) + 1};
    return pos;
}

static cs_token *lx_push(lexer *lx, cs_tok_kind k, size_t start, size_t len)
{
    cs_parse *p = lx->p;
    /* The EOF token always fits: one slot is kept for it. */
    if (k != T_EOF && p->ntoks + 1 >= CS_MAX_TOKENS) {
        if (!p->too_big)
            cs_diag(p->diags, lx_pos(lx, start),
                    "schema is too large (more than %zu tokens); nothing was checked",
                    CS_MAX_TOKENS - 1);
        p->too_big = true;
        return NULL;
    }
    if (p->ntoks == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        cs_token *t = realloc(p->toks, cap * sizeof(*t));
        if (!t) {
            p->oom = true;
            return NULL;
        }
        p->toks = t;
        lx->cap = cap;
    }
    cs_token *t = &p->toks[p->ntoks++];
    t->kind = k;
    t->start = p->src + start;
    t->len = (uint32_t)len;
    t->text = NULL;
    t->pos = lx_pos(lx, start);
    t->lexerr = p->diags->errors != lx->ndiags;
    lx->ndiags = p->diags->errors;
    return t;
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(unsigned char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* Comments run to the end of the line; `///` ones become T_DOC tokens so the
 * parser can attach them to the next declaration. */
static void lex_comment(lexer *lx)
{
    cs_parse *p = lx->p;
    size_t start = lx->off;
    size_t end = start;
    while (end < p->len && p->src[end] != '\n')
        end++;
    bool doc = end - start >= 3 && p->src[start + 2] == '/' &&
               (end - start == 3 || p->src[start + 3] != '/');
    const char *nul = memchr(p->src + start, '\0', end - start);
    if (nul) {
        cs_diag(p->diags, lx_pos(lx, (size_t)(nul - p->src)), "unexpected NUL byte in comment");
    } else if (!cs_utf8_valid(p->src + start, end - start)) {
        cs_diag(p->diags, lx_pos(lx, start), "comment is not valid UTF-8");
    } else if (doc) {
        cs_token *t = lx_push(lx, T_DOC, start, end - start);
        size_t ts = start + 3;
        if (ts < end && p->src[ts] == ' ')
            ts++;
        size_t te = end;
        while (te > ts &&
               (p->src[te - 1] == ' ' || p->src[te - 1] == '\t' || p->src[te - 1] == '\r'))
            te--;
        if (t && !(t->text = cs_strndup(p->src + ts, te - ts)))
            p->oom = true;
    }
    lx->off = end;
}

static void put_utf8(cs_buf *b, unsigned long cp, int *rc)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    if (*rc == 0)
        *rc = cs_buf_append(b, u, n);
}

/* One escape after a backslash at src[i]; returns the bytes consumed after
 * the backslash, 0 when the escape is invalid. */
static size_t lex_escape(lexer *lx, size_t i, size_t end, cs_buf *b, int *rc)
{
    const char *s = lx->p->src;
    if (i + 1 >= end)
        return 0;
    char c = s[i + 1];
    const char *from = "nrt\\\"'";
    const char *to = "\n\r\t\\\"'";
    const char *m = memchr(from, c, 6);
    if (m) {
        if (*rc == 0)
            *rc = cs_buf_putc(b, to[m - from]);
        return 1;
    }
    if (c != 'u' || i + 5 >= end)
        return 0;
    unsigned long cp = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = cs_hex_digit((unsigned char)s[i + 2 + k]);
        if (h < 0)
            return 0;
        cp = cp * 16 + (unsigned long)h;
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    put_utf8(b, cp, rc);
    return 5;
}

/* Strings use single or double quotes, stay on one line and support the
 * escapes \n \r \t \\ \" \' \uXXXX (no NUL: names and defaults are C
 * strings). */
static void lex_string(lexer *lx)
{
    cs_parse *p = lx->p;
    size_t start = lx->off;
    char q = p->src[start];
    size_t i = start + 1;
    while (i < p->len && p->src[i] != q && p->src[i] != '\n') {
        if (p->src[i] == '\\' && i + 1 < p->len && p->src[i + 1] != '\n')
            i++;
        i++;
    }
    bool closed = i < p->len && p->src[i] == q;
    size_t end = i;
    lx->off = closed ? i + 1 : i;
    if (!closed)
        cs_diag(p->diags, lx_pos(lx, start), "unterminated string");
    cs_buf b = CS_BUF_INIT;
    int rc = cs_buf_puts(&b, "");
    bool bad = false;
    for (size_t k = start + 1; k < end; k++) {
        if (p->src[k] == '\\') {
            size_t used = lex_escape(lx, k, end, &b, &rc);
            if (!used && !bad) {
                cs_diag(p->diags, lx_pos(lx, k), "invalid escape sequence in string");
                bad = true;
            }
            k += used;
        } else if (p->src[k] == '\0') {
            if (!bad)
                cs_diag(p->diags, lx_pos(lx, k), "unexpected NUL byte in string");
            bad = true;
        } else if (rc == 0) {
            rc = cs_buf_putc(&b, p->src[k]);
        }
    }
    if (!bad && rc == 0 && !cs_utf8_valid(b.data, b.len))
        cs_diag(p->diags, lx_pos(lx, start), "string is not valid UTF-8");
    cs_token *t = rc == 0 ? lx_push(lx, T_STRING, start, lx->off - start) : NULL;
    if (!t) {
        p->oom = p->oom || rc != 0;
        cs_buf_free(&b);
        return;
    }
    t->text = cs_buf_take(&b);
    if (!t->text)
        p->oom = true;
}

/* A raw string `"""..."""` (CrateStack's form for SQL bodies) may span
 * lines and has no escapes; its text is kept verbatim. */
static void lex_raw_string(lexer *lx)
{
    cs_parse *p = lx->p;
    size_t start = lx->off, i = start + 3;
    cs_pos pos = lx_pos(lx, start);
    while (i + 2 < p->len && memcmp(p->src + i, "\"\"\"", 3) != 0)
        i++;
    bool closed = i + 2 < p->len;
    size_t end = closed ? i : p->len;
    /* Lines inside the string still count for later positions. */
    for (size_t k = start; k < end; k++)
        if (p->src[k] == '\n') {
            lx->line++;
            lx->line_start = k + 1;
        }
    lx->off = closed ? end + 3 : end;
    if (!closed)
        cs_diag(p->diags, pos, "unterminated raw string (\"\"\" never closed)");
    else if (memchr(p->src + start, '\0', end - start))
        cs_diag(p->diags, pos, "unexpected NUL byte in string");
    else if (!cs_utf8_valid(p->src + start + 3, end - start - 3))
        cs_diag(p->diags, pos, "string is not valid UTF-8");
    cs_token *t = lx_push(lx, T_STRING, start, lx->off - start);
    if (!t)
        return;
    t->pos = pos;
    size_t n = end - start - 3;
    t->text = malloc(n + 1);
    if (!t->text) {
        p->oom = true;
        return;
    }
    memcpy(t->text, p->src + start + 3, n);
    t->text[n] = '\0';
}

/* Numbers: -?digits(.digits)?([eE][+-]?digits)?; what they may mean is the
 * business of the parser and validator. */
static void lex_number(lexer *lx)
{
    const char *s = lx->p->src;
    size_t n = lx->p->len, i = lx->off;
    if (s[i] == '-')
        i++;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
        i++;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit((unsigned char)s[j])) {
            i = j;
            while (i < n && is_digit((unsigned char)s[i]))
                i++;
        }
    }
    lx_push(lx, T_NUMBER, lx->off, i - lx->off);
    lx->off = i;
}

static const struct {
    const char *text;
    cs_tok_kind kind;
} puncts[] = {
    {"@@", T_ATAT},  {"==", T_EQ},    {"!=", T_NE},    {"<=", T_LE},    {">=", T_GE},
    {"&&", T_AND},   {"||", T_OR},    {"{", T_LBRACE}, {"}", T_RBRACE}, {"(", T_LPAREN},
    {")", T_RPAREN}, {"[", T_LBRACK}, {"]", T_RBRACK}, {",", T_COMMA},  {":", T_COLON},
    {"=", T_ASSIGN}, {"?", T_QUEST},  {"!", T_BANG},   {"^", T_CARET},  {".", T_DOT},
    {"@", T_AT},     {"<", T_LT},     {">", T_GT},
};

static bool lex_punct(lexer *lx)
{
    const char *s = lx->p->src + lx->off;
    size_t rest = lx->p->len - lx->off;
    for (size_t i = 0; i < sizeof(puncts) / sizeof(puncts[0]); i++) {
        size_t n = strlen(puncts[i].text);
        if (n <= rest && memcmp(s, puncts[i].text, n) == 0) {
            lx_push(lx, puncts[i].kind, lx->off, n);
            lx->off += n;
            return true;
        }
    }
    return false;
}

static void lex_bad_char(lexer *lx)
{
    cs_parse *p = lx->p;
    unsigned char c = (unsigned char)p->src[lx->off];
    cs_pos pos = lx_pos(lx, lx->off);
    if (c == 0) {
        cs_diag(p->diags, pos, "unexpected NUL byte");
    } else if (c >= 0x80) {
        cs_diag(p->diags, pos, "unexpected non-ASCII character (identifiers are ASCII)");
        /* Skip the whole (possibly invalid) multi-byte sequence. */
        lx->off++;
        while (lx->off < p->len && ((unsigned char)p->src[lx->off] & 0xC0) == 0x80)
            lx->off++;
        return;
    } else if (c == '&' || c == '|') {
        cs_diag(p->diags, pos, "unexpected character '%c' (did you mean '%c%c'?)", c, c, c);
    } else if (c < 0x20 || c == 0x7f) {
        cs_diag(p->diags, pos, "unexpected control character 0x%02x", c);
    } else {
        cs_diag(p->diags, pos, "unexpected character '%c'", c);
    }
    lx->off++;
}

static bool is_bad_byte(unsigned char c)
{
    return c == 0 || c >= 0x80 || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f;
}

/* An identifier.  Stray bytes inside it (NUL, non-ASCII) are reported once
 * and left out of its text, so `ti\0tle` still names the field `title` and
 * the mistake does not cascade into further errors. */
static void lex_ident(lexer *lx)
{
    cs_parse *p = lx->p;
    size_t i = lx->off + 1, bad = 0;
    while (i < p->len &&
           (is_ident_char((unsigned char)p->src[i]) || is_bad_byte((unsigned char)p->src[i]))) {
        if (is_bad_byte((unsigned char)p->src[i]) && !bad++)
            cs_diag(p->diags, lx_pos(lx, i), "%s",
                    p->src[i] == 0                     ? "unexpected NUL byte"
                    : (unsigned char)p->src[i] >= 0x80 ? "unexpected non-ASCII character "
                                                         "(identifiers are ASCII)"
                                                       : "unexpected control character");
        i++;
    }
    cs_token *t = lx_push(lx, T_IDENT, lx->off, i - lx->off);
    if (t && bad) {
        if (!(t->text = malloc(i - lx->off + 1))) {
            p->oom = true;
        } else {
            size_t n = 0;
            for (size_t k = lx->off; k < i; k++)
                if (!is_bad_byte((unsigned char)p->src[k]))
                    t->text[n++] = p->src[k];
            t->text[n] = 0;
        }
    }
    lx->off = i;
}

int cs_lex(cs_parse *p)
{
    lexer lx = {p, 0, 1, 0, 0, p->diags->errors};
    while (lx.off < p->len && !p->oom && !p->too_big) {
        unsigned char c = (unsigned char)p->src[lx.off];
        const char *s = p->src + lx.off;
        if (c == '\n') {
            lx.off++;
            lx.line++;
            lx.line_start = lx.off;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx.off++;
        } else if (c == '/' && lx.off + 1 < p->len && s[1] == '/') {
            lex_comment(&lx);
        } else if (is_ident_start(c)) {
            lex_ident(&lx);
        } else if (is_digit(c) ||
                   (c == '-' && lx.off + 1 < p->len && is_digit((unsigned char)s[1]))) {
            lex_number(&lx);
        } else if (lx.off + 2 < p->len && memcmp(s, "\"\"\"", 3) == 0) {
            lex_raw_string(&lx);
        } else if (c == '"' || c == '\'') {
            lex_string(&lx);
        } else if (!lex_punct(&lx)) {
            lex_bad_char(&lx);
        }
    }
    lx_push(&lx, T_EOF, lx.off, 0);
    return p->oom ? CSTACK_ENOMEM : 0;
}

void cs_tokens_free(cs_parse *p)
{
    for (size_t i = 0; i < p->ntoks; i++)
        free(p->toks[i].text);
    free(p->toks);
    p->toks = NULL;
    p->ntoks = 0;
}

const char *cs_tok_kind_name(cs_tok_kind k)
{
    switch (k) {
    case T_EOF:
        return "end of file";
    case T_IDENT:
        return "identifier";
    case T_STRING:
        return "string";
    case T_NUMBER:
        return "number";
    case T_DOC:
        return "doc comment";
    default:
        break;
    }
    for (size_t i = 0; i < sizeof(puncts) / sizeof(puncts[0]); i++)
        if (puncts[i].kind == k)
            return puncts[i].text;
    return "token";
}
