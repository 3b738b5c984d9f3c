/*
 * client.h -- private interface of the sync client (src/client/).
 *
 *   http.c     libcurl requests with the headers of docs/server.md and
 *              bounded response buffers
 *   sse.c      an incremental, bounded text/event-stream parser
 *   state.c    the client's own tables (cursor, refused batches and rows)
 *   exchange.c push and pull against the server, merging, checkpoints
 *   repair.c   self-repair when a checkpoint differs from the server's
 *   stream.c   following the server's event stream while pushing
 *   session.c  the public API: sessions on a thread, backoff, run-once
 *
 * A `cs_client` is one connection's worth of state; a session owns one and
 * drives it from its thread, cstack_sync_run_once builds one on the stack.
 */
#ifndef CS_CLIENT_H
#define CS_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstack.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/jsonr.h"

/* ---- SSE parsing (sse.c) ---------------------------------------------- */

/* One dispatched event.  Borrowed: valid for the callback only. */
typedef struct cs_sse_event {
    const char *type; /* "message" when the stream named none */
    const char *data; /* data lines joined with '\n' */
    size_t data_len;
    const char *id; /* the last `id:` seen, "" when none */
} cs_sse_event;

/* Returns 0 to go on, non-zero (a CSTACK_E* code) to stop the stream. */
typedef int (*cs_sse_fn)(void *ctx, const cs_sse_event *ev);

/* The longest cursor the client keeps: a server version in digits, or a
 * continuation cursor between the pages of one answer (docs/server.md). */
#define CS_CURSOR_MAX 1200

typedef struct cs_sse {
    cs_buf line; /* the line being read (no terminator) */
    cs_buf data; /* data of the event being built */
    char type[64];
    char id[CS_CURSOR_MAX];
    bool cr;    /* the last byte was CR: a following LF is part of it */
    size_t max; /* bound of one line and of one event's data */
    cs_sse_fn fn;
    void *ctx;
} cs_sse;

void cs_sse_init(cs_sse *p, size_t max, cs_sse_fn fn, void *ctx);
/* Feeds bytes; dispatches complete events.  Returns 0, CSTACK_ETOOBIG when a
 * line or an event exceeds the bound, CSTACK_ENOMEM, or the callback's code. */
int cs_sse_feed(cs_sse *p, const char *bytes, size_t n);
void cs_sse_free(cs_sse *p);

/* ---- HTTP (http.c) ------------------------------------------------------ */

typedef struct cs_client cs_client;

/* A buffered response. */
typedef struct cs_http_resp {
    long status; /* 0: no response (transport failure) */
    cs_buf body;
    bool too_big;   /* the body went past the bound and was cut off */
    int64_t cursor; /* X-Cstack-Cursor, -1 when absent or not digits */
    char page[CS_CURSOR_MAX]; /* X-Cstack-Cursor when a continuation, else "" */
    bool more;                /* X-Cstack-More: 1 */
    int64_t remaining;        /* X-Cstack-Remaining, -1 when absent */
    bool has_checksum;
    uint64_t checksum; /* X-Cstack-Checksum */
    char schema[65];   /* X-Cstack-Schema (a 409, a pull): the server's schema hash */
    cs_buf model_sums; /* X-Cstack-Model-Sums (asked for by a repair), "" when absent */
} cs_http_resp;

/* The longest X-Cstack-Model-Sums value kept ("Model=<16 hex>" per model). */
#define CS_MODEL_SUMS_MAX (64 * 1024)

/* Makes sure libcurl is initialised (once per process). */
int cs_http_global_init(void);
/* Builds the handles and the common headers of `c`.  Returns 0 or
 * CSTACK_ENOMEM. */
int cs_http_open(cs_client *c);
void cs_http_close(cs_client *c);
/* Cuts short the stream's wait on the network (stop, nudge). */
void cs_http_wake(cs_client *c);
/* Performs one request on the reusable handle: GET when `body` is NULL, else
 * POST of `len` bytes with the extra header `hdr` (may be NULL).  Returns 0
 * when a response arrived (whatever its status), CSTACK_EIO on a transport
 * failure or when stopped, CSTACK_ETOOBIG when the body exceeds the bound;
 * the client's error text says why. */
int cs_http_request(cs_client *c, const char *path, const void *body, size_t len, const char *hdr,
                    cs_http_resp *r);
void cs_http_resp_free(cs_http_resp *r);
/* Empties a response before a request; its body may grow to `max` bytes. */
void cs_http_resp_reset(cs_http_resp *r, size_t max);
/* Reads one header line (`n` bytes, no terminator needed) of a response
 * into r's fields; lines of other headers are ignored (reply.c). */
void cs_http_resp_header(cs_http_resp *r, const char *line, size_t n);
/* The "message" of an error response, or its first bytes, into the client's
 * error text, prefixed with `what`. */
void cs_http_error_text(cs_client *c, const char *what, const cs_http_resp *r);
/* The CSTACK_E* code naming the cause of an error response: from the JSON
 * error's "code" when it is one the client knows, else from the status. */
int cs_http_error_code(const cs_http_resp *r);
/* Parses a JSON object the server sent (docs/server.md): the small bodies of
 * errors, push results and checkpoints, whose nodes fit in the caller's
 * `room`.  Returns the object, or NULL when the n bytes at s are no JSON
 * object.  Free *doc with jr_doc_free either way. */
const jr_val *cs_client_json(const char *s, size_t n, jr_val *room, size_t nroom, jr_doc *doc);

/* ---- the client --------------------------------------------------------- */

struct cs_client {
    cstack *db;
    cstack_sync_options o; /* strings point into url/token below */
    char *url;             /* without a trailing '/' */
    char *token;
    char site[33];
    cstack_sync_status_fn on_status;
    void *ctx;
    /* Set by cstack_sync_stop; every wait and transfer checks it. */
    atomic_bool stop;
    /* Set by cstack_sync_nudge: push without waiting for the next poll. */
    atomic_bool nudge;
    void *curl;    /* CURL * for push and pull */
    void *stream;  /* CURL * for the stream */
    void *multi;   /* CURLM * driving the stream */
    void *headers; /* struct curl_slist * shared by both */
    char curl_err[256];
    cs_http_resp *progress_of; /* the download whose progress is reported */
    int64_t cursor;
    /* Between the pages of one answer: the continuation cursor to pass next
     * ("" otherwise); `cursor` stays the version the answer started from. */
    char page[CS_CURSOR_MAX];
    int64_t last_version; /* sync version when the queue was last examined */
    bool stored_cursor;   /* the cursor row exists for this URL */
    /* The server cursor of our latest acknowledged push: a checkpoint older
     * than it describes a state without that push, so it is not compared. */
    int64_t pushed_cursor;
    int64_t pull_base; /* bytes of the earlier pages of this catch-up */
    /* The last cs_push_all undid a refused batch: pull from cursor 0. */
    bool repull;
    /* Rows were forgotten (a refused batch undone): pulls ask for the
     * device's own writes too (echoes=1) until an answer is complete. */
    bool echoes;
    /* The schema this device last caught up under was read (upgrade.c):
     * the app's schema cannot change while the database is open. */
    bool schema_checked;
    bool sum_valid;    /* `sum` is the local checksum at `sum_version` */
    int64_t sum_version;
    int64_t sum_data_version; /* and at this PRAGMA data_version (other programs) */
    uint64_t sum;
    /* Self-repair (repair.c): a checkpoint found the state differing from
     * the server's; pulls ask for the per-model checksums (want_sums), kept
     * in model_sums; `repairing` keeps a repair's own pulls from starting
     * another. */
    bool need_repair;
    bool want_sums;
    bool repairing;
    cs_buf model_sums;
    /* The models a repair forgot, comma-separated, asked for again from the
     * start with the pull's other changes (resend=); "" otherwise. */
    char resend[2048];
    cstack_sync_status st;
    pthread_mutex_t st_mu; /* guards `st` for cstack_sync_session_status */
};

/* Status: sets fields under the lock and reports them. */
void cs_client_report(cs_client *c, cstack_sync_event ev);
void cs_client_set_state(cs_client *c, cstack_sync_state s);
/* Records the failure text (printf-style) in st.last_error and reports
 * EV_ERROR; returns `code`. */
int cs_client_fail(cs_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool cs_client_stopping(const cs_client *c);

/* ---- state tables (state.c) --------------------------------------------- */

/* Creates the client tables when missing and loads the cursor kept for the
 * client's URL (0 when none, or when it was kept for another server). */
int cs_state_load(cs_client *c);
/* Stores the cursor durably (and ends a paged answer). */
int cs_state_save_cursor(cs_client *c, int64_t cursor);
/* Undoes a refused batch in one transaction, so a crash can neither lose
 * the record nor push the batch again nor keep its effect: forgets the rows
 * it carries (cs_changes_forget), keeps it in _cstack_rejected and one
 * _cstack_refusals row per operation of `ops` (its cstack_upload_tx_json;
 * *rows receives their number), acknowledges it, and moves the cursor to 0
 * so that the next pull brings back what the server holds of those rows. */
int cs_state_refuse(cs_client *c, int64_t version, long status, const char *message,
                    const void *changeset, size_t len, const char *ops, int64_t *rows);
/* Forgets every row of the models flagged in `models` but those written
 * locally after version `keep_after` (cs_changes_forget_models) and, with
 * `restart`, moves the cursor to 0, in one transaction; *rows receives the
 * rows forgotten. */
int cs_state_forget_models(cs_client *c, const bool *models, int64_t keep_after, bool restart,
                           int64_t *rows);
/* Stores a continuation cursor durably: the answer from `cursor` goes on
 * there after a restart. */
int cs_state_save_page(cs_client *c, const char *page);
/* The version a continuation cursor's answer started from; -1 when the text
 * is no continuation cursor (docs/server.md, "Pages"). */
int64_t cs_page_base(const char *page);

/* ---- the exchanges (exchange.c, stream.c) ----------------------------------------- */

/* Pushes every pending local transaction, oldest first.  Returns 0 when the
 * queue is empty (refused batches undone and set aside: `repull` then says
 * a pull must follow), else the failure's code. */
int cs_push_all(cs_client *c);
/* Pulls pages until the server's cursor stops moving. */
int cs_pull_all(cs_client *c);
/* Follows the stream until it ends, fails or the client stops, pushing new
 * local writes in between.  Returns 0 when stopped, else the failure's
 * code (a closed stream is CSTACK_EIO). */
int cs_stream(cs_client *c);
/* Applies one changeset received from the server and moves the cursor (or,
 * with a non-empty `page`, stores that continuation cursor). */
int cs_apply_changes(cs_client *c, const void *bytes, size_t len, int64_t cursor,
                     const char *page);
/* Fails the session on a response that is not a batch's fault (a 409
 * reports the schemas, and whether this device is ahead of the server). */
int cs_session_error(cs_client *c, const char *what, const cs_http_resp *r);

/* ---- rolling schema upgrades (upgrade.c) ------------------------------------ */

/* After the app's schema changed: fetches once what the schema this device
 * last synced under lacked (new columns of held rows, rows of new models),
 * without moving the cursor.  Nothing to do otherwise. */
int cs_upgrade_pull(cs_client *c);
/* Notes the server's schema (X-Cstack-Schema of an accepted answer) in the
 * status: which one it runs, and whether this device is behind it. */
void cs_upgrade_note(cs_client *c, const cs_http_resp *r);
/* True when the server still runs the schema this device last synced under
 * and the app's schema has moved on: the device is ahead and waits. */
bool cs_upgrade_ahead(cs_client *c, const char *server_hash);

/* Compares the local checksum with the server's at `cursor` when nothing is
 * pending and the checkpoint is not older than our last push; reports
 * EV_CHECKPOINT. */
int cs_checkpoint(cs_client *c, int64_t cursor, uint64_t server_sum);

/* ---- self-repair (repair.c) ---------------------------------------------- */

/* Repairs after a checkpoint that differed (need_repair): finds the models
 * whose checksums differ from the server's, forgets their rows (but those
 * with pending local writes) and pulls again from cursor 0, then compares
 * again.  Returns 0 (repaired, or nothing to repair after all) or the
 * failure's code: CSTACK_EDIVERGED when the state still differs. */
int cs_repair(cs_client *c);

#endif
