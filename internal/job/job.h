/* job.h - the job: what each one accepts and the code that runs it.
 *
 * Every type wakeq knows is listed once, in jobs.c, with a payload check
 * that needs no heavy library, so the API can refuse a bad job at the door
 * without linking FFmpeg. The worker binds a run function to each type it
 * can execute (job_bind); a type without one fails non-retryably.
 *
 * A run function is given the parsed payload, a progress callback and a
 * cancel flag; it returns 0 with a JSON result, or -1 with an error marked
 * retryable or not. It must poll job_cancelled() at least every few
 * hundred milliseconds during long work and return promptly once set.
 */
#ifndef WAKEQ_JOB_H
#define WAKEQ_JOB_H

#include "base/err.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

/* Attempts a job may have at most (from 1): the bound of max_attempts in
 * POST /v1/jobs, `wakeq enqueue --max-attempts` and MAX_ATTEMPTS. */
#define JOB_MAX_ATTEMPTS_MAX 100

/* Settings that handlers read; filled once by the worker's main, then
 * read-only. Strings are borrowed for the life of the process. */
struct job_settings {
	const char *data_dir;        /* file:// inputs and outputs live here */
	const char *tmp_dir;         /* scratch files */
	const char *allow_private;   /* ALLOW_PRIVATE_NETWORKS ("" = none) */
	int64_t max_input_bytes;     /* cap on downloaded inputs */
	const char *webhook_secret;  /* HMAC key for callbacks ("" = unsigned) */
};

extern struct job_settings job_settings;

/* One run of one job. Everything is borrowed for the duration of the run. */
struct job_run {
	const char *id;
	const char *queue;
	const char *type;
	json_t *payload;          /* parsed; an object for every built-in type */
	int attempt;              /* 1 on the first run */
	int max_attempts;
	double timeout_s;         /* 0 = none; the worker also sets *cancel */
	atomic_int *cancel;       /* non-zero: stop now (cancel, lease lost,
				   * timeout, shutdown) */
	/* Reports progress (0–100, clamped) and a stage name ("decode"; NULL
	 * keeps the last one). Cheap; the worker throttles what it sends. */
	void (*progress)(void *opaque, double percent, const char *stage);
	void *opaque;
};

static inline int job_cancelled(const struct job_run *r)
{
	return r->cancel && atomic_load_explicit(r->cancel, memory_order_relaxed);
}

static inline void job_progress(const struct job_run *r, double percent,
				 const char *stage)
{
	if (r->progress)
		r->progress(r->opaque, percent, stage);
}

#define JOB_ERROR_MAX 1024

/* What a run produced. The run function fills it; the caller releases it. */
struct job_outcome {
	json_t *result;           /* on success; owned here, may stay NULL */
	int retryable;            /* on failure: worth another attempt */
	double retry_after_s;     /* on retryable failure: minimum delay, 0 =
				   * the queue's backoff */
	char error[JOB_ERROR_MAX]; /* on failure: one readable line */
};

/* Returns 0 with out->result set (or left NULL for null), or -1 with
 * out->error and out->retryable set. Blocks for as long as the work takes. */
typedef int (*job_run_fn)(const struct job_run *run, struct job_outcome *out);

/* Checks a payload's shape. Returns 0, or -1 with err naming the field. */
typedef int (*job_check_fn)(const json_t *payload, struct err *err);

struct job_type {
	const char *name;
	job_check_fn check;
	job_run_fn run; /* NULL until bound */
};

/* The type named `name`, or NULL. */
const struct job_type *job_find(const char *name);

/* Checks that `type` is known and `payload` (a JSON text, NULL = {}) fits
 * it. Returns 0, or -1 with err (ERR_INVALID) naming the field. */
int job_check(const char *type, const char *payload, struct err *err);

/* Binds a run function to a known type. Returns 0, or -1 if unknown.
 * Call before any job runs (not thread-safe against job_find). */
int job_bind(const char *name, job_run_fn run);

/* Binds noop, sleep and fail. */
void job_bind_core(void);

/* Runs one job: finds the type, parses nothing (the caller did), calls the
 * run function, and turns "no such type" or "no handler" into a
 * non-retryable failure. Returns as the run function does. */
int job_execute(const struct job_run *run, struct job_outcome *out);

/* Sets a failure on `out`; returns -1. */
int job_fail(struct job_outcome *out, int retryable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Releases out->result. */
void job_outcome_release(struct job_outcome *out);

/* Comma-separated names of every known type, for error messages. */
const char *job_type_names(void);

/* Helpers for payload checks: fetch an optional member of a given JSON
 * type; -1 with err naming `name` when present with the wrong type. */
int job_get_string(const json_t *obj, const char *name, int required,
		    const char **out, struct err *err);
int job_get_number(const json_t *obj, const char *name, int required,
		    double min, double max, double *out, struct err *err);
int job_get_bool(const json_t *obj, const char *name, int required,
		  int *out, struct err *err);

#endif
