/* core.c - the job types for tests and benchmarks: noop, sleep, fail. */
#include "job/job.h"

#include "base/clock.h"
#include "job/checks.h"

int job_check_noop(const json_t *payload, struct err *err)
{
	(void)payload;
	(void)err;
	return 0;
}

int job_check_sleep(const json_t *payload, struct err *err)
{
	double ms;

	return job_get_number(payload, "ms", 1, 0, 86400e3, &ms, err);
}

int job_check_fail(const json_t *payload, struct err *err)
{
	const char *msg;
	int retryable;

	if (!json_is_object(payload))
		return err_set(err, ERR_INVALID, "payload must be a JSON object");
	if (job_get_bool(payload, "retryable", 0, &retryable, err) < 0)
		return -1;
	return job_get_string(payload, "message", 0, &msg, err);
}

static int run_noop(const struct job_run *run, struct job_outcome *out)
{
	(void)run;
	(void)out;
	return 0;
}

/* Sleeps in slices of at most 10 ms so cancel takes effect promptly. */
static int run_sleep(const struct job_run *run, struct job_outcome *out)
{
	double ms = 0;
	int64_t end, now;

	job_get_number(run->payload, "ms", 1, 0, 86400e3, &ms, NULL);
	end = clock_mono_us() + (int64_t)(ms * 1000);
	while ((now = clock_mono_us()) < end) {
		if (job_cancelled(run))
			return job_fail(out, 0, "cancelled");
		clock_sleep_us(end - now < 10000 ? end - now : 10000);
	}
	out->result = json_pack("{s:f}", "slept_ms", ms);
	return 0;
}

static int run_fail(const struct job_run *run, struct job_outcome *out)
{
	const char *msg = "failed on purpose";
	int retryable = 0;

	job_get_bool(run->payload, "retryable", 0, &retryable, NULL);
	job_get_string(run->payload, "message", 0, &msg, NULL);
	return job_fail(out, retryable, "%s", msg);
}

void job_bind_core(void)
{
	job_bind("noop", run_noop);
	job_bind("sleep", run_sleep);
	job_bind("fail", run_fail);
}
