/* envelope_support.h -- helpers of the envelope tests (test_envelope.c and
 * test_envelope_errors.c): the test schema and calls that check the response
 * shape.  Defined here as static functions because each test file is its own
 * executable built from one source plus support.c. */
#ifndef CSTACK_TEST_ENVELOPE_SUPPORT_H
#define CSTACK_TEST_ENVELOPE_SUPPORT_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"

#define ENV_UNUSED __attribute__((unused))

/* Every scalar, a to-many and a to-one relation on both sides, a compound
 * unique, a composite key and soft delete. */
static const char *ENV_SCHEMA ENV_UNUSED =
    "enum Status { OPEN DONE }\n"
    "model Account {\n"
    "  id      Uuid     @id @default(uuid())\n"
    "  email   String   @unique\n"
    "  name    String?\n"
    "  notes   Note[]\n"
    "  profile Profile?\n"
    "}\n"
    "model Profile {\n"
    "  id        Int     @id @default(autoincrement())\n"
    "  bio       String\n"
    "  accountId Uuid    @unique\n"
    "  account   Account @relation(fields: [accountId], references: [id], onDelete: Cascade)\n"
    "}\n"
    "model Note {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  title     String\n"
    "  body      String?\n"
    "  status    Status   @default(OPEN)\n"
    "  price     Decimal?\n"
    "  tags      Json?\n"
    "  blob      Bytes?\n"
    "  score     Float?\n"
    "  views     Int      @default(0)\n"
    "  big       Int?\n"
    "  pinned    Boolean  @default(false)\n"
    "  due       DateTime?\n"
    "  ref       Cuid?\n"
    "  createdAt DateTime @default(now())\n"
    "  updatedAt DateTime @updatedAt\n"
    "  deletedAt DateTime?\n"
    "  ownerId   Uuid\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "  @@unique([ownerId, title])\n"
    "  @@soft_delete(deletedAt)\n"
    "}\n"
    "model Pair {\n"
    "  a Int\n"
    "  b Int\n"
    "  v String?\n"
    "  @@id([a, b])\n"
    "}\n";

static cstack *t_env_db;

static ENV_UNUSED void t_env_use(cstack *db)
{
    t_env_db = db;
}

/* printf into a new string. */
static ENV_UNUSED char *t_env_vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    cr_assert_geq(n, 0);
    char *s = malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

/* The raw response text to `req` (exact length), checked to be NUL-free
 * and one line.  Free with free(). */
static ENV_UNUSED char *t_env_call_len(const char *req, size_t len)
{
    char *resp = NULL;
    size_t n = 0;
    int rc = cstack_envelope_call(t_env_db, req, len, &resp, &n);
    cr_assert_eq(rc, CSTACK_OK, "envelope call failed: %d", rc);
    cr_assert_not_null(resp);
    cr_assert_eq(strlen(resp), n, "response length");
    cr_assert_null(strchr(resp, '\n'), "a response is one line");
    char *copy = strdup(resp);
    cstack_free(resp);
    return copy;
}

static ENV_UNUSED char *t_env_call_raw(const char *req)
{
    return t_env_call_len(req, strlen(req));
}

/* Parses a response and checks its envelope shape. */
static ENV_UNUSED json_t *t_env_parse(const char *resp)
{
    json_error_t e;
    json_t *j = json_loads(resp, 0, &e);
    cr_assert_not_null(j, "response is not JSON (%s): %s", e.text, resp);
    const char *status = json_string_value(json_object_get(j, "status"));
    cr_assert_not_null(status, "no status: %s", resp);
    if (strcmp(status, "ok") == 0) {
        cr_assert_eq(json_object_size(j), 2, "ok has status and data: %s", resp);
        cr_assert_not_null(json_object_get(j, "data"), "%s", resp);
    } else {
        cr_assert_str_eq(status, "err", "%s", resp);
        cr_assert_eq(json_object_size(j), 3, "err has status, code, message: %s", resp);
        cr_assert(json_is_string(json_object_get(j, "code")), "%s", resp);
        cr_assert(json_is_string(json_object_get(j, "message")), "%s", resp);
    }
    return j;
}

/* Runs a request built with printf; asserts ok and returns the data (a new
 * reference: json_decref it). */
static ENV_UNUSED json_t *ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static ENV_UNUSED json_t *ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *req = t_env_vfmt(fmt, ap);
    va_end(ap);
    char *resp = t_env_call_raw(req);
    json_t *j = t_env_parse(resp);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok", "request %s -> %s", req,
                     resp);
    json_t *data = json_incref(json_object_get(j, "data"));
    json_decref(j);
    free(resp);
    free(req);
    return data;
}

/* Asserts that a response is err with `code` and a message containing
 * `part`. */
static ENV_UNUSED void t_env_expect_err(const char *resp, const char *code, const char *part,
                                        const char *req)
{
    json_t *j = t_env_parse(resp);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "err", "request %.300s -> %s",
                     req, resp);
    cr_assert_str_eq(json_string_value(json_object_get(j, "code")), code, "request %.300s -> %s",
                     req, resp);
    const char *msg = json_string_value(json_object_get(j, "message"));
    cr_assert_not_null(strstr(msg, part), "message '%s' lacks '%s' (request %.300s)", msg, part,
                       req);
    json_decref(j);
}

/* Runs a request built with printf and asserts the err code and message. */
static ENV_UNUSED void err(const char *code, const char *part, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ENV_UNUSED void err(const char *code, const char *part, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *req = t_env_vfmt(fmt, ap);
    va_end(ap);
    char *resp = t_env_call_raw(req);
    t_env_expect_err(resp, code, part, req);
    free(resp);
    free(req);
}

#endif
