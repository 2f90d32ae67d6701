/* metrics.h - Prometheus text exposition: counters, gauges and
 * histograms updated lock-free from any thread, rendered into a buffer. */
#ifndef WAKEQ_METRICS_H
#define WAKEQ_METRICS_H

#include "base/buf.h"

#include <stdatomic.h>
#include <stdint.h>

#define METRICS_BUCKETS 14

/* Latency histogram with fixed buckets from 1 ms to 10 min (seconds). */
struct metrics_hist {
	atomic_uint_least64_t counts[METRICS_BUCKETS + 1]; /* last: +Inf */
	atomic_uint_least64_t sum_us;
};

/* Records one observation of `seconds`. */
void metrics_hist_observe(struct metrics_hist *h, double seconds);

/* Appends "# HELP", "# TYPE" lines for a metric family. */
void metrics_family(struct buf *b, const char *name, const char *type,
		    const char *help);

/* Appends one sample line: name{labels} value. labels may be NULL or "". */
void metrics_sample(struct buf *b, const char *name, const char *labels,
		    double value);

/* Appends a family of one sample without labels: metrics_family, then
 * metrics_sample. */
void metrics_one(struct buf *b, const char *name, const char *type, const char *help,
		 double value);

/* Appends a histogram family of one histogram without labels:
 * metrics_family, then its _bucket/_sum/_count lines. */
void metrics_hist_one(struct buf *b, const char *name, const char *help,
		      const struct metrics_hist *h);

/* Appends the _bucket/_sum/_count lines of a histogram kept elsewhere
 * (Redis): `n` upper bounds (seconds, ascending) and n + 1 counts per
 * bucket, not cumulative (the last above every bound), and the sum in
 * seconds. labels may be NULL or "". */
void metrics_hist_render_counts(struct buf *b, const char *name, const char *labels,
				const double *bounds, size_t n, const int64_t *counts,
				double sum);

/* Appends `key="value"` to b, with a comma first when b is not empty and
 * the value escaped as the text format wants (backslash, quote, newline). */
void metrics_label(struct buf *b, const char *key, const char *value);

#endif
