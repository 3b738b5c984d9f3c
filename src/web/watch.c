/* Live queries for the worker (web/worker.js): the envelope-level watches of
 * src/live, delivered through cstack_watch_pump since the browser build has
 * no delivery thread.  A watch is known to JS by the number it registered it
 * with; each delivery calls the worker's Module.cstackHost.watchEvent. */
#include <cstack.h>
#include <emscripten.h>
#include <stdint.h>

EM_JS(void, host_watch_event, (int wid, const char *response, int len),
      { Module.cstackHost.watchEvent(wid, UTF8ToString(response, len)); });

static void deliver(void *ctx, const char *response, size_t len)
{
    host_watch_event((int)(intptr_t)ctx, response, (int)len);
}

/* Watches `request` (`len` bytes) for the worker's watch number `wid`;
 * NULL when the request cannot be watched (cstack_errmsg(db) says why). */
EMSCRIPTEN_KEEPALIVE cstack_watch *csw_watch(cstack *db, const char *request, int len,
                                             int throttle_ms, int wid)
{
    cstack_watch *w = NULL;
    if (len < 0 || cstack_watch_envelope(db, request, (size_t)len, throttle_ms, deliver,
                                         (void *)(intptr_t)wid, &w) != CSTACK_OK)
        return NULL;
    return w;
}

EMSCRIPTEN_KEEPALIVE void csw_watch_stop(cstack_watch *w)
{
    cstack_watch_stop(w);
}

/* Runs due deliveries; returns the ms until the next is due, or -1. */
EMSCRIPTEN_KEEPALIVE int csw_pump(cstack *db)
{
    int next = -1;
    cstack_watch_pump(db, &next);
    return next;
}

/* The message of the last failure on `db` (borrowed). */
EMSCRIPTEN_KEEPALIVE const char *csw_errmsg(cstack *db)
{
    return cstack_errmsg(db);
}
