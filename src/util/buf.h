/*
 * buf.h -- growable byte buffers with a hard maximum size.
 *
 * Every buffer that grows from outside input is bounded: appends past `max`
 * fail with CSTACK_ETOOBIG and leave the buffer unchanged.  Appends return 0
 * or a negative CSTACK_E* code; after a failure the buffer is still valid.
 * The content is always NUL-terminated (the NUL is not counted in `len`).
 */
#ifndef CS_BUF_H
#define CS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define CS_BUF_DEFAULT_MAX ((size_t)1 << 30)

typedef struct cs_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 means CS_BUF_DEFAULT_MAX */
} cs_buf;

#define CS_BUF_INIT {NULL, 0, 0, 0}

int cs_buf_reserve(cs_buf *b, size_t extra);
int cs_buf_append(cs_buf *b, const void *p, size_t n);
int cs_buf_puts(cs_buf *b, const char *s);
int cs_buf_putc(cs_buf *b, char c);
int cs_buf_printf(cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap);
/* Appends `s` as a double-quoted SQL identifier ("a""b"). */
int cs_buf_ident(cs_buf *b, const char *s);
/* Appends `s` (n bytes) as a JSON string literal with escapes. */
int cs_buf_json_str(cs_buf *b, const char *s, size_t n);
/* Appends `s` as a single-quoted SQL string literal ('it''s'); only for DDL
 * text built from the schema itself, never for user values. */
int cs_buf_sql_str(cs_buf *b, const char *s);
void cs_buf_reset(cs_buf *b);
/* Hands the data to the caller (free with free()); the buffer is emptied.
 * Returns an empty string rather than NULL for an empty buffer; NULL on OOM. */
char *cs_buf_take(cs_buf *b);
void cs_buf_free(cs_buf *b);

/* strdup / strndup that are C11-clean. NULL on OOM (or NULL input). */
char *cs_strdup(const char *s);
char *cs_strndup(const char *s, size_t n);

/* SHA-256 of `n` bytes, binary. */
void cs_sha256(const void *data, size_t n, unsigned char digest[32]);
/* SHA-256 of `n` bytes as 64 lowercase hex digits plus NUL. */
void cs_sha256_hex(const void *data, size_t n, char out[65]);

/* Base64 (RFC 4648, padded). Encode appends to `b`.  Decode returns 0, or
 * CSTACK_EVALIDATION on bad input; the output is appended to `b`. */
int cs_base64_encode(cs_buf *b, const void *p, size_t n);
int cs_base64_decode(cs_buf *b, const char *s, size_t n);

/* Fills `out` with `n` cryptographically random bytes (getrandom). */
void cs_random_bytes(void *out, size_t n);

#endif
