/* One round of sync for the worker (web/worker.js): push the upload queue,
 * then pull until caught up, through the sync client of src/client/ over
 * the browser transport (src/web/http.c).  Every status report reaches the
 * worker as JSON (Module.cstackHost.syncStatus). */
#include <emscripten.h>
#include <inttypes.h>
#include <string.h>

#include "util/buf.h"
#include "cstack.h"

EM_JS(void, host_sync_status, (const char *json), { Module.cstackHost.syncStatus(UTF8ToString(json)); });

static void on_status(const cstack_sync_status *st, void *ctx)
{
    cs_buf b = {0};
    cs_buf_printf(&b,
                  "{\"state\":\"%s\",\"event\":\"%s\",\"cursor\":%" PRId64 ",\"pending\":%" PRId64
                  ",\"pushed\":%" PRId64 ",\"rowsDone\":%" PRId64 ",\"rowsTotal\":%" PRId64
                  ",\"rowsApplied\":%" PRId64 ",\"lastSyncedMs\":%" PRId64
                  ",\"httpStatus\":%d,\"schemaMismatch\":%d,\"lastError\":",
                  cstack_sync_state_name(st->state), cstack_sync_event_name(st->event), st->cursor,
                  st->pending, st->pushed, st->rows_done, st->rows_total, st->rows_applied,
                  st->last_synced_ms, st->http_status, st->schema_mismatch);
    cs_buf_json_str(&b, st->last_error, strlen(st->last_error));
    if (cs_buf_putc(&b, '}') == 0)
        host_sync_status(b.data);
    cs_buf_free(&b);
}

/* Returns 0 or the CSTACK_E* code of the failure (csw_errmsg says why). */
EMSCRIPTEN_KEEPALIVE int csw_sync_once(cstack *db, const char *url, const char *token)
{
    cstack_sync_options o = {.url = url, .token = token};
    return cstack_sync_run_once(db, &o, on_status, NULL, NULL);
}

/* Local transactions not yet pushed, or -1 on failure. */
EMSCRIPTEN_KEEPALIVE double csw_sync_pending(cstack *db)
{
    int64_t n = 0;
    return cstack_upload_pending(db, &n) == CSTACK_OK ? (double)n : -1;
}

/* What the stream request carries besides the token (borrowed). */
EMSCRIPTEN_KEEPALIVE const char *csw_site(cstack *db)
{
    return cstack_sync_site_id(db);
}

EMSCRIPTEN_KEEPALIVE const char *csw_schema_hash(cstack *db)
{
    return cstack_schema_hash(cstack_schema_of(db));
}
