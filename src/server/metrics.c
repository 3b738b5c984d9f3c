/*
 * metrics.c -- the server's counters and their Prometheus text exposition
 * (format 0.0.4) for GET /metrics.
 *
 * Counters are atomics bumped on the request path without a lock; only the
 * lag maximum, which needs a compare-and-window step, takes a mutex.
 */
#include <inttypes.h>
#include <string.h>

#include "server/server_int.h"

static const char *const ROUTES[CS_NROUTES] = {"push",    "pull",    "stream",
                                               "healthz", "metrics", "other"};

const char *cs_route_name(int route)
{
    return route >= 0 && route < CS_NROUTES ? ROUTES[route] : "other";
}

void cs_metrics_init(cs_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lag_mu, NULL);
}

void cs_metrics_free(cs_metrics *m)
{
    pthread_mutex_destroy(&m->lag_mu);
}

void cs_metrics_request(cs_metrics *m, int route, int status)
{
    /* Status 0: the client went away before any answer; not a response. */
    if (route < 0 || route >= CS_NROUTES || status < 100 || status >= CS_METRICS_MAX_STATUS)
        return;
    atomic_fetch_add(&m->requests[route][status], 1);
}

/* Moves the window so that lag_max[0] is this minute and [1] the last. */
static void lag_window(cs_metrics *m, int64_t minute)
{
    if (minute == m->lag_minute)
        return;
    m->lag_max[1] = minute == m->lag_minute + 1 ? m->lag_max[0] : 0;
    m->lag_max[0] = 0;
    m->lag_minute = minute;
}

void cs_metrics_lag(cs_metrics *m, int64_t ms)
{
    pthread_mutex_lock(&m->lag_mu);
    lag_window(m, cs_mono_ms() / 60000);
    if (ms > m->lag_max[0])
        m->lag_max[0] = ms;
    pthread_mutex_unlock(&m->lag_mu);
}

static int64_t lag_recent(cs_metrics *m)
{
    pthread_mutex_lock(&m->lag_mu);
    lag_window(m, cs_mono_ms() / 60000);
    int64_t v = m->lag_max[0] > m->lag_max[1] ? m->lag_max[0] : m->lag_max[1];
    pthread_mutex_unlock(&m->lag_mu);
    return v;
}

static int gauge(cs_buf *b, const char *name, const char *help, const char *type, double v)
{
    return cs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                         v);
}

static int requests(cs_metrics *m, cs_buf *b)
{
    int rc = cs_buf_puts(b, "# HELP cstack_http_requests_total HTTP requests answered, by route "
                            "and status.\n"
                            "# TYPE cstack_http_requests_total counter\n");
    for (int r = 0; r < CS_NROUTES && !rc; r++) {
        for (int s = 0; s < CS_METRICS_MAX_STATUS && !rc; s++) {
            long long n = atomic_load(&m->requests[r][s]);
            if (n)
                rc = cs_buf_printf(b,
                                   "cstack_http_requests_total{route=\"%s\",status=\"%d\"} %lld\n",
                                   ROUTES[r], s, n);
        }
    }
    return rc;
}

int cs_metrics_render(cstack_server *srv, cs_buf *b)
{
    cs_metrics *m = &srv->metrics;
    int64_t version = 0;
    srv->ops->version(srv->store, &version);
    int rc = gauge(b, "cstack_clients_connected", "Open client connections.", "gauge",
                   (double)atomic_load(&m->connections));
    rc = rc ? rc
            : gauge(b, "cstack_streams_active", "Open change streams.", "gauge",
                    (double)atomic_load(&m->streams));
    rc = rc ? rc
            : cs_buf_puts(b, "# HELP cstack_push_batches_total Pushed batches by outcome.\n"
                             "# TYPE cstack_push_batches_total counter\n");
    static const char *const RESULTS[CS_NPUSH] = {"ok", "duplicate", "rejected"};
    for (int i = 0; i < CS_NPUSH && !rc; i++)
        rc = cs_buf_printf(b, "cstack_push_batches_total{result=\"%s\"} %lld\n", RESULTS[i],
                           (long long)atomic_load(&m->push[i]));
    rc = rc ? rc
            : gauge(b, "cstack_changes_in_total", "Column changes accepted from pushes.", "counter",
                    (double)atomic_load(&m->changes_in));
    rc = rc ? rc
            : gauge(b, "cstack_changes_out_total", "Rows sent by pulls and streams.", "counter",
                    (double)atomic_load(&m->changes_out));
    rc = rc ? rc
            : gauge(b, "cstack_server_version", "The server's cursor (latest version).", "gauge",
                    (double)version);
    rc = rc ? rc
            : gauge(b, "cstack_stream_lag_seconds",
                    "Longest time from a commit to its delivery to a stream, over the last "
                    "one to two minutes.",
                    "gauge", (double)lag_recent(m) / 1000.0);
    rc = rc ? rc
            : cs_buf_puts(b, "# HELP cstack_refused_total Clients refused or cut off to protect "
                             "the server, by limit.\n"
                             "# TYPE cstack_refused_total counter\n");
    static const char *const KINDS[CS_NREFUSE] = {"header_timeout", "per_address",
                                                  "upload_memory", "stream_memory",
                                                  "body_rate"};
    for (int i = 0; i < CS_NREFUSE && !rc; i++)
        rc = cs_buf_printf(b, "cstack_refused_total{limit=\"%s\"} %lld\n", KINDS[i],
                           (long long)atomic_load(&m->refused[i]));
    return rc ? rc : requests(m, b);
}
