/* testcall.h - one job run through the job module as the worker runs it
 * (job_execute), for the handler unit tests: exec and persistent
 * processes, C plugins. Header-only, each test program includes it once
 * after registering its types.
 *
 * The job: id CALL_JOB_ID, trace CALL_TRACE, queue "default", attempt 2
 * of 3, a deadline CALL_TIMEOUT_S from the start (define it before the
 * include; 0, the default, is none). Progress reports are kept in
 * `seen`, the first eight in full.
 */
#ifndef WAKEQ_TESTCALL_H
#define WAKEQ_TESTCALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "job/job.h"

#define CALL_JOB_ID "0190c6c8-0000-7000-8000-000000000001"
#define CALL_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#ifndef CALL_TIMEOUT_S
#define CALL_TIMEOUT_S 0
#endif

struct seen {
	int n;
	double pct[8];
	char stage[8][32];
};

static void on_progress(void *opaque, double pct, const char *stage)
{
	struct seen *s = opaque;

	if (s->n < 8) {
		s->pct[s->n] = pct;
		snprintf(s->stage[s->n], sizeof(s->stage[0]), "%s", stage ? stage : "");
	}
	s->n++;
}

struct call {
	const char *type;
	const char *payload; /* JSON, NULL: {} */
	atomic_int cancel;   /* set to 1 to cancel the running job */
	struct seen seen;
	struct job_outcome out;
	int rc;              /* job_execute's */
	double secs;         /* how long it ran */
};

/* A call of TYPE with PAYLOAD, not run yet; free it with done(). */
static struct call *call_new(const char *type, const char *payload)
{
	struct call *c = calloc(1, sizeof(*c));

	c->type = type;
	c->payload = payload;
	atomic_init(&c->cancel, 0);
	return c;
}

/* Runs the call (a pthread start routine: `arg` is the struct call). */
static void *call_run(void *arg)
{
	struct call *c = arg;
	struct job_run r;
	int64_t t0 = clock_mono_us();

	memset(&r, 0, sizeof(r));
	memset(&c->out, 0, sizeof(c->out));
	r.id = CALL_JOB_ID;
	r.queue = "default";
	r.type = c->type;
	r.trace = CALL_TRACE;
	r.payload = json_loads(c->payload ? c->payload : "{}", JSON_DECODE_ANY, NULL);
	r.attempt = 2;
	r.max_attempts = 3;
	r.timeout_s = CALL_TIMEOUT_S;
	r.cancel = &c->cancel;
	r.progress = on_progress;
	r.opaque = &c->seen;
	c->rc = job_execute(&r, &c->out);
	c->secs = (double)(clock_mono_us() - t0) / 1e6;
	json_decref(r.payload);
	return NULL;
}

/* Runs a call of TYPE with PAYLOAD in a thread of its own (*th). */
static struct call *call_start(const char *type, const char *payload, pthread_t *th)
{
	struct call *c = call_new(type, payload);

	if (pthread_create(th, NULL, call_run, c) != 0)
		abort();
	return c;
}

/* Runs a call of TYPE with PAYLOAD to its end. */
static struct call *run(const char *type, const char *payload)
{
	struct call *c = call_new(type, payload);

	call_run(c);
	return c;
}

static void done(struct call *c)
{
	job_outcome_release(&c->out);
	free(c);
}

/* The result as compact JSON ("null" for none), valid until the next call. */
static const char *result_text(struct call *c)
{
	static char buf[4096];
	char *t = c->out.result ? json_dumps(c->out.result, JSON_COMPACT | JSON_ENCODE_ANY)
				: strdup("null");

	snprintf(buf, sizeof(buf), "%s", t);
	free(t);
	return buf;
}

#endif
