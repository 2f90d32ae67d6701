/* runmodel_meter.h - the billing meter of the Cloud Run model
 * (tests/tools/runmodel.c): what one instance would be billed, under
 * request-based and under instance-based billing, from the moments the
 * model saw. Pure accounting, no I/O; unit-tested in tests/unit/runmodel.
 *
 * Times are monotonic microseconds. Cloud Run rounds billable time up to
 * the next 100 ms; the model rounds each piece it bills on its own:
 *
 *   request-based:  the start-up (process start to startup probe passed),
 *                   every request span (from the moment an idle instance
 *                   gets a request to the moment its last open request
 *                   ends: overlapping requests are billed once), and the
 *                   shutdown (SIGTERM to exit), each rounded up;
 *   instance-based: the whole life (process start to exit), rounded up.
 *
 * A piece still running is counted up to `now`, rounded up too.
 */
#ifndef WAKEQ_TESTS_RUNMODEL_METER_H
#define WAKEQ_TESTS_RUNMODEL_METER_H

#include <stdint.h>

#define METER_ROUND_US 100000 /* Cloud Run bills in steps of 100 ms */

struct meter {
	int64_t start_us;  /* the process was started */
	int64_t ready_us;  /* the startup probe passed; 0 while starting */
	int64_t term_us;   /* SIGTERM sent by the platform; 0 = not yet */
	int64_t end_us;    /* the process is gone; 0 = alive */
	int open;          /* requests in flight now */
	int64_t span_us;   /* start of the current span (open > 0) */
	int64_t spans_us;  /* closed spans, each rounded up */
	int64_t nspans;    /* closed spans */
	int64_t requests;  /* requests routed to the instance */
};

/* `us` rounded up to the next 100 ms; 0 (and less) stays 0. */
static inline int64_t meter_round(int64_t us)
{
	if (us <= 0)
		return 0;
	return (us + METER_ROUND_US - 1) / METER_ROUND_US * METER_ROUND_US;
}

/* The process was started at `now`: a meter reading zero. */
static inline void meter_start(struct meter *m, int64_t now)
{
	struct meter z = { 0 };

	*m = z;
	m->start_us = now;
}

static inline void meter_ready(struct meter *m, int64_t now)
{
	if (!m->ready_us)
		m->ready_us = now;
}

/* A request was routed to the instance: the first one opens a span. */
static inline void meter_open(struct meter *m, int64_t now)
{
	if (m->open++ == 0)
		m->span_us = now;
	m->requests++;
}

/* A request ended: the last one closes the span, billed rounded up. */
static inline void meter_close(struct meter *m, int64_t now)
{
	if (m->open <= 0)
		return;
	if (--m->open == 0) {
		m->spans_us += meter_round(now - m->span_us);
		m->nspans++;
	}
}

static inline void meter_term(struct meter *m, int64_t now)
{
	if (!m->term_us)
		m->term_us = now;
}

/* The process is gone: requests still open end with it. */
static inline void meter_end(struct meter *m, int64_t now)
{
	if (m->end_us)
		return;
	if (m->open > 0) {
		m->open = 1;
		meter_close(m, now);
	}
	m->end_us = now;
}

/* Billed microseconds under request-based billing, as of `now`. */
static inline int64_t meter_request_us(const struct meter *m, int64_t now)
{
	int64_t t = m->end_us ? m->end_us : now;
	int64_t up = (m->ready_us ? m->ready_us : t) - m->start_us;
	int64_t billed = meter_round(up) + m->spans_us;

	if (m->open > 0)
		billed += meter_round(t - m->span_us);
	if (m->term_us)
		billed += meter_round(t - m->term_us);
	return billed;
}

/* Billed microseconds under instance-based billing, as of `now`. */
static inline int64_t meter_instance_us(const struct meter *m, int64_t now)
{
	return meter_round((m->end_us ? m->end_us : now) - m->start_us);
}

#endif
