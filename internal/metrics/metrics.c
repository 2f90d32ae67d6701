/* metrics.c - Prometheus text exposition (metrics.h). */
#include "metrics/metrics.h"

static const double bounds[METRICS_BUCKETS] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300, 600,
};

void metrics_hist_observe(struct metrics_hist *h, double seconds)
{
	int i;

	for (i = 0; i < METRICS_BUCKETS && seconds > bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

void metrics_family(struct buf *b, const char *name, const char *type,
		    const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct buf *b, const char *name, const char *labels,
		    double value)
{
	if (labels && *labels)
		buf_printf(b, "%s{%s} %.17g\n", name, labels, value);
	else
		buf_printf(b, "%s %.17g\n", name, value);
}

void metrics_one(struct buf *b, const char *name, const char *type, const char *help,
		 double value)
{
	metrics_family(b, name, type, help);
	metrics_sample(b, name, NULL, value);
}

/* Appends the _bucket/_sum/_count lines of a histogram. */
static void hist_render(struct buf *b, const char *name, const char *labels,
			const struct metrics_hist *h)
{
	const char *sep = labels && *labels ? "," : "";
	uint64_t cum = 0;
	int i;

	if (!labels)
		labels = "";
	for (i = 0; i <= METRICS_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		if (i < METRICS_BUCKETS)
			buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
				   bounds[i], (unsigned long long)cum);
		else
			buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
				   (unsigned long long)cum);
	}
	buf_printf(b, "%s_sum%s%s%s%s %.6f\n", name, *labels ? "{" : "", labels,
		   *labels ? "}" : "", "",
		   (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	buf_printf(b, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels,
		   *labels ? "}" : "", (unsigned long long)cum);
}

void metrics_hist_one(struct buf *b, const char *name, const char *help,
		      const struct metrics_hist *h)
{
	metrics_family(b, name, "histogram", help);
	hist_render(b, name, NULL, h);
}

void metrics_hist_render_counts(struct buf *b, const char *name, const char *labels,
				const double *bounds, size_t n, const int64_t *counts,
				double sum)
{
	const char *sep = labels && *labels ? "," : "";
	int64_t cum = 0;
	size_t i;

	if (!labels)
		labels = "";
	for (i = 0; i < n; i++) {
		cum += counts[i];
		buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %lld\n", name, labels, sep, bounds[i],
			   (long long)cum);
	}
	cum += counts[n];
	buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %lld\n", name, labels, sep, (long long)cum);
	buf_printf(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels,
		   *labels ? "}" : "", sum);
	buf_printf(b, "%s_count%s%s%s %lld\n", name, *labels ? "{" : "", labels,
		   *labels ? "}" : "", (long long)cum);
}

void metrics_label(struct buf *b, const char *key, const char *value)
{
	if (b->len)
		buf_addc(b, ',');
	buf_printf(b, "%s=\"", key);
	for (; *value; value++) {
		if (*value == '\\' || *value == '"')
			buf_addc(b, '\\');
		if (*value == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *value);
	}
	buf_addc(b, '"');
}
