/* The functions the worker (web/worker.js) calls in the wasm module: open a
 * database for a schema text, run envelope requests, close.  Strings cross
 * as NUL-terminated UTF-8 in the module's memory; every returned string is
 * the caller's to free with csw_free(). */
#include <cstack.h>
#include <emscripten.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last_error[1024];

static void set_error(const char *what, const char *detail)
{
    snprintf(last_error, sizeof last_error, "%s: %s", what, detail ? detail : "");
}

/* The message of the last failed csw_open (borrowed). */
EMSCRIPTEN_KEEPALIVE const char *csw_error(void)
{
    return last_error;
}

static cstack_schema *parse_schema(const char *text)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    if (cstack_schema_parse("schema.cstack", text, strlen(text), &s, &d) != CSTACK_OK) {
        char *msg = d ? cstack_diags_format(d) : NULL;
        set_error("invalid schema", msg ? msg : "out of memory");
        cstack_free(msg);
    }
    cstack_diags_free(d);
    return s;
}

/* Opens (creating if needed) `path` for `schema_text` and bootstraps or
 * migrates it; `path` NULL opens a private in-memory database.  Returns the
 * handle, or NULL with csw_error() saying why. */
EMSCRIPTEN_KEEPALIVE cstack *csw_open(const char *schema_text, const char *path)
{
    cstack_schema *s = parse_schema(schema_text);
    if (!s)
        return NULL;
    cstack *db = NULL;
    int rc = path ? cstack_open(s, path, NULL, &db) : cstack_open_in_memory(s, &db);
    cstack_schema_free(s);
    if (rc != CSTACK_OK) {
        set_error("cannot open the database", db ? cstack_errmsg(db) : cstack_errstr(rc));
        cstack_close(db);
        return NULL;
    }
    char *report = NULL;
    if ((rc = cstack_bootstrap(db, &report)) != CSTACK_OK) {
        set_error("cannot bootstrap the database", cstack_errmsg(db));
        cstack_free(report);
        cstack_close(db);
        return NULL;
    }
    cstack_free(report);
    return db;
}

EMSCRIPTEN_KEEPALIVE void csw_close(cstack *db)
{
    cstack_close(db);
}

/* One envelope request of `len` bytes; the response string, or NULL when
 * none could be made (out of memory). */
EMSCRIPTEN_KEEPALIVE char *csw_call(cstack *db, const char *request, int len)
{
    char *response = NULL;
    if (len < 0 || cstack_envelope_call(db, request, (size_t)len, &response, NULL) != CSTACK_OK)
        return NULL;
    return response;
}

EMSCRIPTEN_KEEPALIVE void csw_free(void *p)
{
    cstack_free(p);
}
