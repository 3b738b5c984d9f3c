/*
 * live_int.h -- live queries' private state, shared by watch.c (the API,
 * dependencies, commit notification) and deliver.c (running due watches on
 * the delivery thread or in cstack_watch_pump).
 *
 * Locking: one mutex per runtime (`mu`) guards the watch list and every
 * watch's scheduling fields.  It is never held while a query runs or a
 * callback is called, so a committing writer, which takes it briefly to
 * mark watches dirty, never waits for either.  With CSTACK_NO_THREADS (the
 * single-threaded browser build) there is no thread and no lock: deliveries
 * happen only in cstack_watch_pump.
 */
#ifndef CS_LIVE_INT_H
#define CS_LIVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstack.h"

#ifndef CSTACK_NO_THREADS
#include <pthread.h>
#endif

/* How often the delivery thread (or the pump) asks SQLite whether another
 * connection or process committed, when cstack_open_options.live_poll_ms
 * does not say: the latency of such changes. */
#define CS_LIVE_POLL_MS 20
#define CS_LIVE_DEFAULT_THROTTLE_MS 30

typedef struct cs_live cs_live;

/* A growable array of watches: one entry of the index by table. */
typedef struct cs_watch_list {
    cstack_watch **v;
    size_t n, cap;
} cs_watch_list;

struct cstack_watch {
    cs_live *live;
    cstack_watch *next;
    char *request; /* the envelope request, owned */
    size_t len;
    int throttle_ms;
    cstack_watch_cb cb;
    void *ctx;
    uint64_t deps;      /* the tables it reads: bit i is live->tables[i] (all
                           bits when unknown); set once its first run is done */
    bool wide;          /* in live->wide, not under its tables in by_table */
    /* Scheduling, under mu. */
    bool ready;         /* its first run is done: a runner may pick it */
    bool dirty;         /* a commit may have changed the result */
    bool queued;        /* in the run queue (qprev, qnext) */
    bool stopped;       /* cstack_watch_stop ran: never called again */
    bool orphan;        /* stopped from its own callback: the runner frees it */
    cstack_watch *qprev, *qnext;
    int64_t last_run;   /* monotonic ms of the last run */
    char *first;        /* the first response, until delivered (owned) */
    size_t first_len;
    uint64_t hash;      /* of the last response delivered (or pending first) */
};

struct cs_live {
    cstack *db;
#ifndef CSTACK_NO_THREADS
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* kick (a commit, a new watch, quit) and runner done */
    pthread_t thread;
    bool has_thread;
#endif
    char *tables[64];      /* the tables watches read, named once (owned) */
    int ntables;
    /* The index a commit consults, so that it visits only the watches of
     * the tables it changed: by_table[i] holds the ready watches that read
     * tables[i]; `wide` those every commit concerns (first run going, or
     * tables unknown). */
    cs_watch_list by_table[64];
    cs_watch_list wide;
    cstack_watch *head; /* every watch */
    /* The run queue: the watches with a run or a first delivery pending,
     * oldest first, so that a runner never scans the idle ones and a watch
     * dirtied by every commit cannot keep the others waiting. */
    cstack_watch *qhead, *qtail;
    cstack_watch *current; /* the watch a runner is running (do not free) */
    bool running;          /* a runner (thread or pump) is active */
    bool kick;             /* work may be due: the thread re-checks */
    bool quit;
    bool dv_known;
    int64_t dv;            /* last PRAGMA data_version of the writer */
    int poll_ms;           /* the data_version poll's period */
    int64_t next_poll;     /* monotonic ms */
    uint64_t runs;         /* queries re-run since the start (for tests) */
    uint64_t visits;       /* watches commits looked at (for tests) */
};

#ifdef CSTACK_NO_THREADS
#define LIVE_LOCK(l) ((void)(l))
#define LIVE_UNLOCK(l) ((void)(l))
#define LIVE_SIGNAL(l) ((void)(l))
#else
#define LIVE_LOCK(l) pthread_mutex_lock(&(l)->mu)
#define LIVE_UNLOCK(l) pthread_mutex_unlock(&(l)->mu)
#define LIVE_SIGNAL(l) pthread_cond_broadcast(&(l)->cv)
#endif

/* deliver.c */
/* Runs every due watch once (and the data_version poll when due); returns
 * the number of callbacks called; *next_ms as cstack_watch_pump. */
int cs_live_run(cs_live *l, int *next_ms);
/* Starts the delivery thread (no-op with CSTACK_NO_THREADS). */
int cs_live_start(cs_live *l);
/* Stops and joins it. */
void cs_live_stop_thread(cs_live *l);
/* How many times db's watches were re-run after their first run (0 when
 * db has no live context): lets tests tell "not re-run" from "re-run,
 * result unchanged". */
uint64_t cs_live_runs(cstack *db);
/* The FNV-1a hash of a response. */
uint64_t cs_live_hash(const char *s, size_t n);

/* Marks w dirty and queues it when ready (mu held); whether it was not
 * dirty before.  A stopped watch is left alone. */
bool cs_live_mark(cs_live *l, cstack_watch *w);
/* Adds w to the run queue when not in it (mu held). */
void cs_live_enqueue(cs_live *l, cstack_watch *w);
/* Takes w out of the run queue when in it (mu held). */
void cs_live_dequeue(cs_live *l, cstack_watch *w);
/* How many watches db's commits looked at (0 when db has no live context):
 * lets tests tell a commit that visits only the watches of its tables from
 * one that scans them all. */
uint64_t cs_live_visits(cstack *db);

/* watch.c */
/* Unlinks and frees w (mu held, w not current). */
void cs_live_unlink(cs_live *l, cstack_watch *w);

#endif
