/*
 * session.c -- the public sync client: sessions on their own thread, the
 * reconnect loop with backoff, status reporting and cstack_sync_run_once.
 *
 * A session's thread repeats: push the upload queue, pull until caught up,
 * follow the stream (pushing new local writes as they appear) until the
 * connection fails, then wait with exponential backoff and full jitter
 * (capped) before trying again.  It touches the database only through the
 * public runtime calls, which serialise with the application's own writes;
 * the application never waits for the network.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "store/store.h"

struct cstack_sync_session {
    cs_client c;
    pthread_t thread;
    pthread_mutex_t mu; /* with `cv`: the backoff wait */
    pthread_cond_t cv;
};

/* ---- status --------------------------------------------------------------- */


bool cs_client_stopping(const cs_client *c)
{
    return atomic_load(&((cs_client *)c)->stop);
}

void cs_client_report(cs_client *c, cstack_sync_event ev)
{
    pthread_mutex_lock(&c->st_mu);
    c->st.event = ev;
    cstack_sync_status copy = c->st;
    pthread_mutex_unlock(&c->st_mu);
    if (c->on_status)
        c->on_status(&copy, c->ctx);
}

void cs_client_set_state(cs_client *c, cstack_sync_state s)
{
    pthread_mutex_lock(&c->st_mu);
    bool same = c->st.state == s;
    c->st.state = s;
    pthread_mutex_unlock(&c->st_mu);
    if (!same)
        cs_client_report(c, CSTACK_SYNC_EV_STATE);
}

int cs_client_fail(cs_client *c, int code, const char *fmt, ...)
{
    char msg[sizeof c->st.last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->st_mu);
    memcpy(c->st.last_error, msg, sizeof msg);
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_ERROR);
    /* Also the runtime's message, for cstack_sync_run_once's caller. */
    return cs_err(code, "%s", msg);
}

/* ---- setting a client up ------------------------------------------------ */

static void defaults(cstack_sync_options *o)
{
    if (o->retry_min_ms <= 0)
        o->retry_min_ms = 200;
    if (o->retry_max_ms <= 0)
        o->retry_max_ms = 30000;
    if (o->retry_max_ms < o->retry_min_ms)
        o->retry_max_ms = o->retry_min_ms;
    if (o->poll_ms <= 0)
        o->poll_ms = 50;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = 10000;
    if (o->request_timeout_ms <= 0)
        o->request_timeout_ms = 300000;
    if (o->stall_timeout_ms <= 0)
        o->stall_timeout_ms = 60000;
    if (o->max_response == 0)
        o->max_response = (size_t)256 << 20;
}

static int check_options(cstack *db, const cstack_sync_options *o)
{
    if (!db || !o || !o->url || !o->token || !*o->token)
        return cs_err(CSTACK_EMISUSE, "sync: a server URL and a token are required");
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return cs_err(CSTACK_EINVAL, "sync: '%s' is not an http:// or https:// URL", o->url);
    if (strlen(o->url) > 2000 || strlen(o->token) > 1900)
        return cs_err(CSTACK_ETOOBIG, "sync: the URL or the token is too long");
    if (strpbrk(o->token, "\r\n"))
        return cs_err(CSTACK_EINVAL, "sync: the token contains a line break");
    return 0;
}

static void client_free(cs_client *c)
{
    cs_http_close(c);
    free(c->url);
    free(c->token);
    cs_buf_free(&c->model_sums);
    pthread_mutex_destroy(&c->st_mu);
}

/* Builds a client (on the caller's memory).  On failure everything it
 * allocated is freed. */
static int client_init(cs_client *c, cstack *db, const cstack_sync_options *o,
                       cstack_sync_status_fn fn, void *ctx)
{
    int rc = check_options(db, o);
    if (rc)
        return rc;
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->st_mu, NULL);
    c->db = db;
    c->o = *o;
    defaults(&c->o);
    c->on_status = fn;
    c->ctx = ctx;
    c->st.checksum_ok = -1;
    c->st.bytes_total = -1;
    c->url = cs_strdup(o->url);
    c->token = cs_strdup(o->token);
    if (c->url) {
        size_t n = strlen(c->url);
        while (n > 0 && c->url[n - 1] == '/')
            c->url[--n] = '\0';
    }
    const char *site = cstack_sync_site_id(db);
    if (!c->url || !c->token)
        rc = cs_err(CSTACK_ENOMEM, "sync: out of memory");
    else if (!site || strlen(site) != 32)
        rc = cs_err(CSTACK_EMISUSE, "sync: the database is not bootstrapped for sync");
    else
        snprintf(c->site, sizeof c->site, "%s", site);
    if (rc == 0 && (rc = cs_http_global_init()))
        rc = cs_err(rc, "sync: libcurl could not be initialised");
    if (rc == 0 && (rc = cs_http_open(c)))
        rc = cs_err(rc, "sync: cannot set up HTTP requests");
    if (rc == 0)
        rc = cs_state_load(c);
    if (rc) {
        client_free(c);
        return rc;
    }
    c->o.url = c->url;
    c->o.token = c->token;
    c->st.cursor = c->cursor;
    return 0;
}

/* ---- sessions ----------------------------------------------------------- */

/* The delay before attempt `n` (1-based): exponential from retry_min_ms,
 * capped at retry_max_ms, with full jitter in its upper half so that many
 * devices cut off together do not reconnect in step. */
static int64_t backoff_ms(const cstack_sync_options *o, int64_t n)
{
    int64_t d = o->retry_min_ms;
    for (int64_t i = 1; i < n && d < o->retry_max_ms; i++)
        d *= 2;
    if (d > o->retry_max_ms)
        d = o->retry_max_ms;
    uint32_t r = 0;
    cs_random_bytes(&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* Waits `ms` or until the session is stopped or nudged. */
static void wait_ms(cstack_sync_session *s, int64_t ms)
{
    struct timespec until = cs_deadline(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->c.stop) && !atomic_load(&s->c.nudge)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *session_main(void *arg)
{
    cstack_sync_session *s = arg;
    cs_client *c = &s->c;
    while (!cs_client_stopping(c)) {
        cs_client_set_state(c, CSTACK_SYNC_CONNECTING);
        int rc = cs_push_all(c);
        if (rc == 0)
            rc = cs_pull_all(c);
        if (rc == 0)
            rc = cs_stream(c);
        if (cs_client_stopping(c))
            break;
        (void)rc; /* reported through the status callback already */
        pthread_mutex_lock(&c->st_mu);
        int64_t n = ++c->st.attempts;
        pthread_mutex_unlock(&c->st_mu);
        cs_client_set_state(c, CSTACK_SYNC_OFFLINE);
        atomic_store(&c->nudge, false);
        wait_ms(s, backoff_ms(&c->o, n));
    }
    cs_client_set_state(c, CSTACK_SYNC_STOPPED);
    return NULL;
}

int cstack_sync_start(cstack *db, const cstack_sync_options *o, cstack_sync_status_fn on_status,
                      void *ctx, cstack_sync_session **out)
{
    cs_enter(db);
    if (!out)
        return CSTACK_EMISUSE;
    *out = NULL;
    cstack_sync_session *s = calloc(1, sizeof *s);
    if (!s)
        return cs_err(CSTACK_ENOMEM, "sync: out of memory");
    int rc = client_init(&s->c, db, o, on_status, ctx);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, session_main, s) != 0) {
        rc = cs_err(CSTACK_ENOMEM, "sync: cannot start the session thread");
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        client_free(&s->c);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void wake(cstack_sync_session *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cs_http_wake(&s->c);
}

void cstack_sync_stop(cstack_sync_session *s)
{
    if (!s)
        return;
    atomic_store(&s->c.stop, true);
    wake(s);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    client_free(&s->c);
    free(s);
}

void cstack_sync_nudge(cstack_sync_session *s)
{
    if (!s)
        return;
    atomic_store(&s->c.nudge, true);
    wake(s);
}

int cstack_sync_session_status(cstack_sync_session *s, cstack_sync_status *out)
{
    if (!s || !out)
        return CSTACK_EMISUSE;
    pthread_mutex_lock(&s->c.st_mu);
    *out = s->c.st;
    pthread_mutex_unlock(&s->c.st_mu);
    return 0;
}

/* ---- once --------------------------------------------------------------- */

int cstack_sync_run_once(cstack *db, const cstack_sync_options *o, cstack_sync_status_fn on_status,
                         void *ctx, cstack_sync_status *final)
{
    cs_enter(db);
    cs_client *c = calloc(1, sizeof *c);
    if (!c)
        return cs_err(CSTACK_ENOMEM, "sync: out of memory");
    int rc = client_init(c, db, o, on_status, ctx);
    if (rc) {
        free(c);
        return rc;
    }
    cs_client_set_state(c, CSTACK_SYNC_CONNECTING);
    rc = cs_push_all(c);
    if (rc == 0)
        rc = cs_pull_all(c);
    cs_client_set_state(c, rc ? CSTACK_SYNC_OFFLINE : CSTACK_SYNC_STOPPED);
    if (final)
        *final = c->st;
    if (rc) /* the callbacks above may have overwritten the message */
        cs_err(rc, "%s", c->st.last_error);
    client_free(c);
    free(c);
    return rc;
}

/* ---- names ---------------------------------------------------------------- */

const char *cstack_sync_state_name(cstack_sync_state state)
{
    static const char *const names[] = {"offline",     "connecting", "uploading",
                                        "downloading", "connected",  "stopped"};
    return (unsigned)state < sizeof names / sizeof names[0] ? names[state] : "unknown";
}

const char *cstack_sync_event_name(cstack_sync_event event)
{
    static const char *const names[] = {"state",   "progress",  "pushed",     "rejected",
                                        "applied", "caught-up", "checkpoint", "error",
                                        "hidden",  "repaired"};
    return (unsigned)event < sizeof names / sizeof names[0] ? names[event] : "unknown";
}
