/*
 * clock.h -- the library's clocks: wall time since the Unix epoch (for
 * stored timestamps, HLCs, ids and tokens) and a monotonic clock (for
 * timeouts and rates, which must not jump when the wall clock is set).
 */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall time: milliseconds, microseconds since the Unix epoch. */
int64_t cs_wall_ms(void);
int64_t cs_wall_us(void);
/* Monotonic milliseconds from an arbitrary start. */
int64_t cs_mono_ms(void);
/* The absolute time `ms` (>= 0) from now on clock `clk`, normalised, as
 * pthread_cond_timedwait wants it (for a condition variable on that clock). */
struct timespec cs_deadline(clockid_t clk, int64_t ms);

#endif
