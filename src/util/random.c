/* random.c -- operating-system randomness for identifiers.
 *
 * Identifiers (UUIDs, cuids) are generated once per inserted row, so a
 * system call per identifier would dominate bulk inserts; each thread keeps a
 * small pool filled from getrandom() and hands bytes out of it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/buf.h"

#define POOL_SIZE 512

static _Thread_local unsigned char pool[POOL_SIZE];
static _Thread_local size_t pool_left;

static void fill(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom only fails on ancient kernels; identifiers must never
             * silently lose their randomness, so stop here. */
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}

/* A forked child must not hand out the bytes its parent will also use. */
static void forget_pool(void)
{
    memset(pool, 0, sizeof pool);
    pool_left = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_pool);
}

void cs_random_bytes(void *out, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_atfork);
    unsigned char *p = out;
    if (n > POOL_SIZE / 2) {
        fill(p, n);
        return;
    }
    if (pool_left < n) {
        fill(pool, POOL_SIZE);
        pool_left = POOL_SIZE;
    }
    /* Hand out bytes from the end and wipe them so they are never reused. */
    memcpy(p, pool + pool_left - n, n);
    memset(pool + pool_left - n, 0, n);
    pool_left -= n;
}
