/* benchstat.h - the figures the benchmark tools print: nearest-rank
 * percentiles of int64 samples (microseconds, mostly). Header-only (libc
 * alone: tests/bench/spawnloop.c links nothing else), each program
 * includes it once. */
#ifndef WAKEQ_BENCHSTAT_H
#define WAKEQ_BENCHSTAT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline int stat_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v[0..n) in place. */
static inline void stat_sort(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), stat_cmp_i64);
}

/* The nearest-rank p-th percentile (0 < p <= 100) of sorted v[0..n), n > 0. */
static inline int64_t stat_pct(const int64_t *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

#endif
