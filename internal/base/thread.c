#include "base/thread.h"

void thread_stop(pthread_mutex_t *mu, pthread_cond_t *cv, int *quit,
		 const pthread_t *threads, size_t n)
{
	size_t i;

	pthread_mutex_lock(mu);
	*quit = 1;
	/* broadcast: a pool of threads may wait on one cv, and a waiter that
	 * is not ours re-checks its own condition (a spurious wake-up) */
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(mu);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
}
