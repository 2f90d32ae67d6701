/* thread.h - ending the threads that wait on a condition variable. */
#ifndef WAKEQ_BASE_THREAD_H
#define WAKEQ_BASE_THREAD_H

#include <pthread.h>
#include <stddef.h>

/* Asks the `n` threads of `threads` to end and waits for them: sets *quit
 * to 1 under `mu`, wakes every waiter of `cv`, then (with `mu` released)
 * joins each thread. The threads are the kind that wait on `cv` under `mu`
 * in a loop that checks *quit; `mu` must not be held by the caller.
 * n == 0 only sets the flag and wakes the waiters. Blocks until every
 * thread has returned. */
void thread_stop(pthread_mutex_t *mu, pthread_cond_t *cv, int *quit,
		 const pthread_t *threads, size_t n);

#endif
