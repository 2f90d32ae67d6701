/* core.c - the job types for tests and benchmarks: noop, sleep, fail. */
#include "jobs/jobs.h"

#include "base/clock.h"
#include "jobs/checks.h"

int jobs_check_noop(const json_t *payload, struct err *err)
{
	(void)payload;
	(void)err;
	return 0;
}

int jobs_check_sleep(const json_t *payload, struct err *err)
{
	double ms;

	return jobs_get_number(payload, "ms", 1, 0, 86400e3, &ms, err);
}

int jobs_check_fail(const json_t *payload, struct err *err)
{
	const char *msg;
	int retryable;

	if (!json_is_object(payload))
		return err_set(err, ERR_INVALID, "payload must be a JSON object");
	if (jobs_get_bool(payload, "retryable", 0, &retryable, err) < 0)
		return -1;
	return jobs_get_string(payload, "message", 0, &msg, err);
}

static int run_noop(const struct jobs_run *run, struct jobs_outcome *out)
{
	(void)run;
	(void)out;
	return 0;
}

/* Sleeps in slices of at most 10 ms so cancel takes effect promptly. */
static int run_sleep(const struct jobs_run *run, struct jobs_outcome *out)
{
	double ms = 0;
	int64_t end, now;

	jobs_get_number(run->payload, "ms", 1, 0, 86400e3, &ms, NULL);
	end = clock_mono_us() + (int64_t)(ms * 1000);
	while ((now = clock_mono_us()) < end) {
		if (jobs_cancelled(run))
			return jobs_fail(out, 0, "cancelled");
		clock_sleep_us(end - now < 10000 ? end - now : 10000);
	}
	out->result = json_pack("{s:f}", "slept_ms", ms);
	return 0;
}

static int run_fail(const struct jobs_run *run, struct jobs_outcome *out)
{
	const char *msg = "failed on purpose";
	int retryable = 0;

	jobs_get_bool(run->payload, "retryable", 0, &retryable, NULL);
	jobs_get_string(run->payload, "message", 0, &msg, NULL);
	return jobs_fail(out, retryable, "%s", msg);
}

void jobs_bind_core(void)
{
	jobs_bind("noop", run_noop);
	jobs_bind("sleep", run_sleep);
	jobs_bind("fail", run_fail);
}
