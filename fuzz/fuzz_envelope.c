/*
 * fuzz_envelope.c -- libFuzzer target for the JSON envelope: every input goes
 * to cstack_envelope_call() on an in-memory database of a schema with every
 * scalar type, relations both ways, a compound unique, a composite key and
 * soft delete, holding a few rows so that reads, updates and relation filters
 * meet data.
 *
 * Each input runs inside cstack_begin ... cstack_rollback, so every input
 * sees the same database and a crash reproduces from its input alone.  The
 * oracle, besides the sanitizers and the leak checker: a response always
 * exists, is one line of valid JSON (checked with the value layer's strict
 * validator) and has the envelope's shape.
 *
 * Seeds: fuzz/corpus/envelope/ (valid requests of every kind against the
 * rows below); dictionary: fuzz/envelope.dict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "value/value.h"

static const char SCHEMA[] =
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
    "  @@audit\n"
    "  @@emit(created, updated, deleted)\n"
    "}\n"
    "model Pair {\n"
    "  a Int\n"
    "  b Int\n"
    "  v String?\n"
    "  @@id([a, b])\n"
    "}\n";

/* The rows every input starts from; the seeds refer to these ids. */
static const char *const ROWS[] = {
    "{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":"
    "\"11111111-1111-4111-8111-111111111111\",\"email\":\"alice@x.io\",\"name\":\"Alice\"}}}",
    "{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":"
    "\"22222222-2222-4222-8222-222222222222\",\"email\":\"bob@x.io\"}}}",
    "{\"model\":\"Profile\",\"kind\":\"create\",\"payload\":{\"data\":{\"bio\":\"hi\","
    "\"accountId\":\"22222222-2222-4222-8222-222222222222\"}}}",
    "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":"
    "\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\",\"title\":\"apple\",\"ownerId\":"
    "\"11111111-1111-4111-8111-111111111111\",\"price\":\"9.50\",\"tags\":{\"k\":[1,2.5]},"
    "\"blob\":\"AAEC\",\"score\":1.5,\"views\":3,\"due\":\"2026-01-02T03:04:05Z\"}}}",
    "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":"
    "\"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb\",\"title\":\"Banana\",\"ownerId\":"
    "\"11111111-1111-4111-8111-111111111111\",\"price\":\"10.25\",\"pinned\":true,"
    "\"big\":\"9223372036854775807\",\"ref\":\"ckabc\"}}}",
    "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":\"cherry\","
    "\"ownerId\":\"22222222-2222-4222-8222-222222222222\",\"status\":\"DONE\"}}}",
    "{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":[{\"a\":1,\"b\":1},"
    "{\"a\":1,\"b\":2,\"v\":\"x\"}]}}",
};

static cstack *db;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_envelope: %s: %s\n", what, detail ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cstack_schema *s = NULL;
    if (cstack_schema_parse("fuzz.cstack", SCHEMA, sizeof SCHEMA - 1, &s, NULL) != CSTACK_OK)
        die("schema", NULL);
    if (cstack_open_in_memory(s, &db) != CSTACK_OK || cstack_bootstrap(db, NULL) != CSTACK_OK)
        die("open", db ? cstack_errmsg(db) : NULL);
    cstack_schema_free(s);
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        char *resp = NULL;
        if (cstack_envelope_call(db, ROWS[i], strlen(ROWS[i]), &resp, NULL) != CSTACK_OK ||
            strncmp(resp, "{\"status\":\"ok\"", 14) != 0)
            die("seed row", resp);
        cstack_free(resp);
    }
    /* The database lives for the whole process; LeakSanitizer ignores what
     * is still reachable from this static pointer at exit. */
    return 0;
}

/* The response must be strict JSON with the envelope's shape. */
static void check_response(const char *resp, size_t n)
{
    if (!resp || strlen(resp) != n || memchr(resp, '\n', n))
        die("response is not one NUL-terminated line", resp);
    static const char ok[] = "{\"status\":\"ok\",\"data\":";
    static const char err[] = "{\"status\":\"err\",\"code\":\"";
    if (strncmp(resp, ok, sizeof ok - 1) != 0 && strncmp(resp, err, sizeof err - 1) != 0)
        die("response shape", resp);
    cs_buf b = CS_BUF_INIT;
    char why[256];
    if (cs_json_canon(resp, n, &b, why, sizeof why) != CSTACK_OK)
        die("response is not valid JSON", why);
    cs_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cstack_begin(db) != CSTACK_OK)
        die("begin", cstack_errmsg(db));
    char *resp = NULL;
    size_t n = 0;
    if (cstack_envelope_call(db, (const char *)data, size, &resp, &n) != CSTACK_OK)
        die("no response", NULL);
    check_response(resp, n);
    cstack_free(resp);
    if (cstack_rollback(db) != CSTACK_OK)
        die("rollback", cstack_errmsg(db));
    return 0;
}
