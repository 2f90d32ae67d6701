/* clock.h - time in integer microseconds. */
#ifndef WAKEQ_BASE_CLOCK_H
#define WAKEQ_BASE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>

/* Wall-clock time, microseconds since the Unix epoch. */
int64_t clock_now_us(void);

/* Monotonic time, microseconds since an arbitrary origin: for timeouts. */
int64_t clock_mono_us(void);

#define CLOCK_RFC3339_LEN 28 /* "2026-11-22T17:37:24.123456Z" + NUL */

/* Formats `us` (epoch microseconds) as RFC 3339 UTC with microseconds into
 * `out`, which holds at least CLOCK_RFC3339_LEN bytes. Returns `out`. */
char *clock_rfc3339(int64_t us, char out[CLOCK_RFC3339_LEN]);

/* Parses an RFC 3339 time ("2026-11-22T17:37:24.123456Z", offsets
 * allowed, fractions beyond microseconds truncated) into epoch
 * microseconds. The date must exist (2030-02-31 is refused) and lie
 * within 1970..9999. Returns 0, or -1 with *us untouched. */
int clock_parse_rfc3339(const char *s, int64_t *us);

/* Sleeps `us` microseconds (EINTR restarts). */
void clock_sleep_us(int64_t us);

/* Initialises `cv` so that timed waits on it run on CLOCK_MONOTONIC: a
 * wall-clock step (NTP, a VM resumed) neither cuts a wait short nor
 * stretches it. Every condition variable waited with a timeout is made
 * here and waited with clock_cond_wait_us. Aborts on failure (resources,
 * as for memory). Release with pthread_cond_destroy. */
void clock_cond_init(pthread_cond_t *cv);

/* pthread_cond_timedwait on `cv` (from clock_cond_init; `mu` held) for at
 * most `us` microseconds (<= 0: no wait beyond a check). Returns 0 when
 * woken (spuriously too: callers re-check their condition), ETIMEDOUT
 * when the time ran out. */
int clock_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t us);

#endif
