/* What the core asks of the system that Emscripten's libc lacks. */
#include <emscripten.h>
#include <stddef.h>
#include <sys/types.h>

EM_JS(void, host_fill_random, (void *buf, int n),
      { crypto.getRandomValues(HEAPU8.subarray(buf, buf + n)); });

/* util/random.c fills its pool with getrandom(); the browser's source is
 * crypto.getRandomValues, which takes at most 65536 bytes a call. */
ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done > 65536 ? 65536 : n - done;
        host_fill_random((char *)buf + done, (int)chunk);
        done += chunk;
    }
    return (ssize_t)n;
}
