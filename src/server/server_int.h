/*
 * server_int.h -- what the server's modules share:
 *
 *   http.c     the daemon, routes, limits, the request log, start/stop/drain
 *   stream.c   GET /v1/stream: the hub that feeds every open stream
 *   metrics.c  counters and the Prometheus text of /metrics
 *   guard.c    every open connection: header deadline, per-address limit
 *   intake.c   accepting connections; each request's head checked (head.c)
 *              before libmicrohttpd reads it
 *   relay.c    connections that pipeline requests: MHD gets checked ones only
 */
#ifndef CS_SERVER_INT_H
#define CS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cstack_server.h"
#include "server/pages.h"
#include "server/store.h"

/* ---- metrics ------------------------------------------------------------- */

enum {
    CS_ROUTE_PUSH,
    CS_ROUTE_PULL,
    CS_ROUTE_STREAM,
    CS_ROUTE_HEALTHZ,
    CS_ROUTE_METRICS,
    CS_ROUTE_OTHER,
    CS_NROUTES
};

enum { CS_PUSH_OK, CS_PUSH_DUPLICATE, CS_PUSH_REJECTED, CS_NPUSH };

#define CS_METRICS_MAX_STATUS 600

/* Why the server refused or ended a client for its own protection. */
enum {
    CS_REFUSE_HEADER_TIMEOUT, /* headers not in by the deadline */
    CS_REFUSE_PER_ADDRESS,    /* too many connections from one address */
    CS_REFUSE_UPLOAD_MEMORY,  /* push bodies in flight at their cap */
    CS_REFUSE_STREAM_MEMORY,  /* stream queues at their cap: slowest closed */
    CS_REFUSE_BODY_RATE,      /* a push body slower than min_body_rate */
    CS_NREFUSE
};

typedef struct cs_metrics {
    atomic_long connections; /* open TCP connections */
    atomic_long streams;     /* open streams */
    atomic_llong push[CS_NPUSH];
    atomic_llong changes_in;  /* column changes accepted */
    atomic_llong changes_out; /* rows sent by pulls and streams */
    atomic_llong requests[CS_NROUTES][CS_METRICS_MAX_STATUS];
    atomic_llong refused[CS_NREFUSE];
    /* The largest commit-to-delivery time in the current and the previous
     * minute: "recent" without keeping every sample. */
    pthread_mutex_t lag_mu;
    int64_t lag_minute;
    int64_t lag_max[2];
} cs_metrics;

void cs_metrics_init(cs_metrics *m);
void cs_metrics_free(cs_metrics *m);
void cs_metrics_request(cs_metrics *m, int route, int status);
void cs_metrics_lag(cs_metrics *m, int64_t ms);
/* The Prometheus text exposition of every metric, appended to `out`. */
int cs_metrics_render(cstack_server *srv, cs_buf *out);
const char *cs_route_name(int route);

/* ---- streams ---------------------------------------------------------------- */

typedef struct cs_hub cs_hub;
typedef struct cs_stream cs_stream;

int cs_hub_start(cstack_server *srv, cs_hub **out);
/* Ends every stream and joins the hub's thread; streams still referenced by
 * their responses are freed when those go.  NULL ok. */
void cs_hub_stop(cs_hub *h);
void cs_hub_free(cs_hub *h);
/* A push committed at `commit_ms` (wall clock): streams get their share. */
void cs_hub_notify(cs_hub *h, int64_t commit_ms);

/* Opens a stream for `auth` (taken over, freed with the stream) on device
 * `site` from cursor `since` (resuming a paged answer at `pos`, NULL ok).  The stream holds three references: the hub's,
 * the response's (dropped by cs_stream_response_free, the MHD free callback)
 * and the caller's (dropped with cs_stream_release). */
/* A device on an older schema has `view` (borrowed from srv->versions,
 * NULL: the served one): its events and checkpoints are projected onto it. */
int cs_stream_open(cs_hub *h, cs_auth *auth, const char *site, int64_t since,
                   const cs_srv_pos *pos, const cstack_schema *view, cs_stream **out);
/* The guard id of the stream's connection, shut down when the stream is
 * shed for memory. */
void cs_stream_set_conn(cs_stream *s, uint64_t conn);
void cs_stream_release(cs_stream *s);
/* The MHD content reader and its free callback (cls is the stream). */
ssize_t cs_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void cs_stream_response_free(void *cls);
/* Bytes handed to the connection so far. */
uint64_t cs_stream_bytes(cs_stream *s);

/* ---- connections (guard.c) ------------------------------------------------ */

typedef struct cs_guard cs_guard;
typedef struct cs_conn cs_conn;

int cs_guard_start(cstack_server *srv, cs_guard **out);
/* Stops the watchdog and frees what MHD did not report closed.  Call once
 * the daemon has stopped.  NULL ok. */
void cs_guard_free(cs_guard *g);
/* A connection MHD accepted (NOTIFY_CONNECTION started): its record, with
 * the header deadline running.  Past the per-address limit it is answered
 * 503 and shut down at once.  NULL when out of memory (the socket is shut
 * down). */
cs_conn *cs_guard_open(cs_guard *g, int fd, const struct sockaddr *addr);
/* MHD closed it (before closing its descriptor).  NULL ok. */
void cs_guard_close(cs_guard *g, cs_conn *c);
/* The request line and headers are in: no deadline while it is served. */
void cs_guard_headers_in(cs_guard *g, cs_conn *c);
/* A push body of Content-Length bytes is coming: it must be in by
 * header_timeout_ms from now, plus 1 s per min_body_rate bytes received
 * (cs_guard_body_bytes); past that it is answered 408 and shut down. */
void cs_guard_body_begin(cs_guard *g, cs_conn *c);
void cs_guard_body_bytes(cs_guard *g, cs_conn *c, size_t n);
/* The body is in (or its request was answered): no deadline while served. */
void cs_guard_body_end(cs_guard *g, cs_conn *c);
/* Whether its body was cut for its rate (answered 408 by the guard, so the
 * request's own log line says 408). */
bool cs_guard_body_cut(cs_guard *g, cs_conn *c);
/* Its response is complete: the next request's headers have a deadline. */
void cs_guard_request_done(cs_guard *g, cs_conn *c);
/* Its request was refused and answered outside MHD: it lingers (is read
 * and dropped) for at most `ms`, then is shut down without another answer. */
void cs_guard_answered(cs_guard *g, cs_conn *c, int64_t ms);
/* The connection's id for cs_guard_kill (0 for NULL). */
uint64_t cs_guard_id(cs_guard *g, cs_conn *c);
/* Shuts the socket of connection `id` down if it is still open. */
void cs_guard_kill(cs_guard *g, uint64_t id);
/* Writes a whole JSON error response ({"status":"err","code":..,
 * "message":..}, `extra` header lines before it, "Connection: close") to a
 * socket no response is being written to.  Best effort, never blocking;
 * `code` and `message` are literals needing no escaping. */
void cs_raw_answer(int fd, int status, const char *reason, const char *extra, const char *code,
                   const char *message);

/* ---- request heads (head.c, intake.c) -------------------------------------- */

/* Bounds of a request's line and headers, inside MHD's per-connection
 * memory (CS_MHD_MEMORY). */
#define CS_HEAD_MAX (16u * 1024u)
#define CS_HEAD_TARGET_MAX (8u * 1024u)
#define CS_HEAD_FIELDS_MAX 100u
#define CS_MHD_MEMORY (64u * 1024u)

enum { CS_HEAD_OK = 0, CS_HEAD_PARTIAL = 1, CS_HEAD_BAD = 2 };

/* Why a head is refused: the HTTP status, error code and message (a
 * literal, or `text`). */
typedef struct cs_head_err {
    int status;
    const char *code;
    const char *message;
    char text[96];
} cs_head_err;

/* Checks the start of a request, `len` bytes at `buf` (a body longer than
 * `max_body` is refused): CS_HEAD_OK with *head_len and the body's length
 * (Content-Length, 0 without one) in *body_len when its line and headers
 * are complete and good, CS_HEAD_PARTIAL when more must arrive, CS_HEAD_BAD
 * with `e` filled otherwise. */
int cs_head_check(const void *buf, size_t len, uint64_t max_body, size_t *head_len,
                  uint64_t *body_len, cs_head_err *e);

typedef struct cs_intake cs_intake;
typedef struct cs_relay cs_relay;
typedef struct cs_link cs_link;

/* Accepts on `listen_fd` (non-blocking, listening; the intake closes it)
 * and hands each connection to MHD (cs_relay_handover) once its first head
 * is in and good. */
int cs_intake_start(cstack_server *srv, int listen_fd, cs_intake **out);
/* Stops accepting, closes the listening socket and every connection not yet
 * handed over.  NULL ok. */
void cs_intake_stop(cs_intake *in);

/* What cs_intake_next_head found after a response on a connection MHD
 * reads itself. */
enum {
    CS_NEXT_DIRECT,    /* the next head is good; MHD may read it (*end moved past it) */
    CS_NEXT_PIPELINED, /* good, and more bytes follow it: relay the connection */
    CS_NEXT_ENDED      /* refused (answered), gone, or not checkable: shut down */
};
/* On a kept-alive connection whose response is complete: waits until the
 * next request's head is in and checks it.  `*end` is the stream offset
 * just past the last checked request (UINT64_MAX: unknown); MHD holding
 * bytes past it (read ahead of the check) ends the connection cleanly. */
int cs_intake_next_head(cstack_server *srv, cs_conn *conn, int fd, uint64_t *end);
/* How many bytes of the connection's stream have been read from socket `fd`
 * (by MHD): false when the socket cannot say (not TCP). */
bool cs_intake_consumed(int fd, uint64_t *out);
/* Answers a refused head on `fd` and shuts its sending side; the caller
 * lingers (cs_drain) before closing. */
void cs_intake_refuse(int fd, const cs_head_err *e);
/* Reads and drops what has arrived on a refused connection: true when it
 * is over (the client closed, a failure, or CS_DRAIN_MAX bytes dropped). */
bool cs_drain(int fd, size_t *drained);
#define CS_DRAIN_MAX (256u * 1024u)
#define CS_LINGER_MS 2000

/* ---- connections MHD serves (relay.c) ------------------------------------- */

int cs_relay_start(cstack_server *srv, cs_relay **out);
/* Stops the relay thread and closes every relayed connection.  Call once
 * MHD has stopped.  NULL ok. */
void cs_relay_stop(cs_relay *rl);
/* Hands an accepted socket whose first head was checked to MHD through
 * the relay, which checks every head that follows and hands the connection
 * back to MHD itself once nothing is in flight (cs_link_headers,
 * cs_link_completed).  The socket is the relay's afterwards, closed on
 * failure. */
void cs_relay_handover(cs_relay *rl, int fd, const struct sockaddr *addr, socklen_t addrlen);
/* MHD's NOTIFY_CONNECTION: the link of a connection MHD took (its guard
 * record opened), and its close (before MHD closes the descriptor).  NULL
 * when out of memory (the socket is shut down). */
cs_link *cs_link_open(cs_relay *rl, int fd, const struct sockaddr *addr);
void cs_link_close(cs_relay *rl, cs_link *l);
/* The guard's record of the connection (NULL for NULL). */
cs_conn *cs_link_conn(const cs_link *l);
/* Whether the connection was ended after a response (a refused or
 * unchecked next head): MHD must not serve what it still holds. */
bool cs_link_cut(const cs_link *l);
/* A request's line and headers are in (the first call of the request
 * handler); `body`: it has a body (Content-Length not 0); `endless`: its
 * answer does not end (a stream). */
void cs_link_headers(cs_relay *rl, cs_link *l, bool body, bool endless);
/* A request of the connection completed (MHD's completed callback, in the
 * connection's thread); `next`: MHD keeps the connection for another. */
void cs_link_completed(cs_relay *rl, cs_link *l, bool next);

/* ---- the server ---------------------------------------------------------- */

struct cstack_server {
    cstack_server_config cfg; /* strings below replace the borrowed ones */
    char *secret;
    char *db_path;
    char *bind;
    cstack_schema *schema;
    cs_srv_versions *versions; /* every schema the store has run (schemas.h) */
    const cs_srv_store_ops *ops;
    cs_srv_store *store;
    struct MHD_Daemon *mhd;
    cs_intake *intake; /* owns the listening socket */
    cs_relay *relay;   /* heads after the first, pipelining; every link */
    int listen_fd;     /* the listening socket until the intake takes it, else -1 */
    int port;
    cs_metrics metrics;
    cs_hub *hub;
    cs_guard *guard;
    atomic_llong upload_bytes; /* push bodies being received (reserved) */
    atomic_llong stream_bytes; /* queued by every stream */
    atomic_bool draining;
    pthread_mutex_t mu; /* guards `active` */
    pthread_cond_t idle;
    long active; /* requests in flight, streams excluded */
    cs_pages *pages; /* page storage for backups (pages.c) */
};

/* Writes one line (a newline is added) to cfg.log, whole: one fwrite under
 * the stream's lock, cut at 2 KiB.  Nothing when there is no log. */
void cs_srv_log(const cstack_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- static files (static.c): `cstack serve --web DIR` ------------------ */

/* The MIME type of a file name by its extension (application/wasm for
 * .wasm; application/octet-stream when unknown). */
const char *cs_static_mime(const char *path);
/* Opens the regular file `url` (a request path; "/" and ".../" mean
 * index.html) strictly inside `dir`: no `..`, no symbolic link, no control
 * character.  On success *fd_out is an open descriptor (the caller's to
 * close, or MHD's once given to a response), *size_out its size and
 * *mime_out its type (static).  Errors: CSTACK_ENOTFOUND for anything not
 * served. */
int cs_static_open(const char *dir, const char *url, int *fd_out, size_t *size_out,
                   const char **mime_out);

#endif
