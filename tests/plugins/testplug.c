/* testplug.c - a handler plugin for the tests (tests/unit/handler/
 * test_plugin.c, tests/integration/21_plugins.sh), built three ways:
 *
 *   testplug.so   ABI of this tree; the payload's "mode" picks a behaviour
 *   badabi.so     -DTESTPLUG_ABI=999: claims a handler ABI the worker
 *                 does not speak
 *   noabi.so      -DTESTPLUG_NOABI: no wakeq_handler_abi_version at all,
 *                 as the media plugin was before the ABI
 *
 * Modes: "echo" (the payload back, with the job's attempt and type),
 * "null" (a null result), "badjson", "big" (a 100 KiB string), "retry"
 * (a retryable error, retry_after_s 2), "hard" (a final error), "silent"
 * (a failure without text), "spin" (progress until cancelled), "initfail"
 * is the type name that makes init fail.
 */
#define _POSIX_C_SOURCE 200809L

#include <wakeq/handler.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int init(const struct wakeq_handler_host *host, void **state, char *error,
		size_t error_len)
{
	if (!strcmp(host->type, "t.initfail")) {
		snprintf(error, error_len, "cannot open the model file '/nonexistent'");
		return -1;
	}
	host->log(host, WAKEQ_LOG_INFO, "testplug: started");
	*state = (void *)host;
	return 0;
}

static int has(const struct wakeq_job *job, const char *mode)
{
	char want[64];

	snprintf(want, sizeof(want), "\"mode\":\"%s\"", mode);
	return strstr(job->payload, want) != NULL;
}

static int run(void *state, const struct wakeq_job *job, struct wakeq_result *out)
{
	(void)state;
	if (has(job, "null"))
		return 0;
	if (has(job, "badjson")) {
		out->json = strdup("{\"a\":");
		return 0;
	}
	if (has(job, "big")) {
		size_t n = 100 * 1024;
		char *s = malloc(n + 3);

		memset(s + 1, 'x', n);
		s[0] = s[n + 1] = '"';
		s[n + 2] = '\0';
		out->json = s;
		return 0;
	}
	if (has(job, "retry")) {
		snprintf(out->error, sizeof(out->error), "model server busy");
		out->retryable = 1;
		out->retry_after_s = 2;
		return -1;
	}
	if (has(job, "hard")) {
		snprintf(out->error, sizeof(out->error), "bad input '%s'", job->id);
		return -1;
	}
	if (has(job, "silent"))
		return -1;
	if (has(job, "spin")) {
		struct timespec ts = { 0, 10 * 1000000L };
		int i;

		for (i = 0; !wakeq_cancelled(job); i++) {
			job->progress(job, i % 100, "spinning");
			nanosleep(&ts, NULL);
		}
		snprintf(out->error, sizeof(out->error), "cancelled");
		return -1;
	}
	{
		size_t n = job->payload_len + 256;
		char *s = malloc(n);

		snprintf(s, n, "{\"payload\":%s,\"attempt\":%d,\"type\":\"%s\",\"deadline\":%s}",
			 job->payload, job->attempt, job->type,
			 job->deadline > 0 ? "true" : "false");
		job->progress(job, NAN, NULL); /* NaN: ignored */
		job->progress(job, 50, "half");
		out->json = s;
		return 0;
	}
}

static void shutdown_state(void *state)
{
	const struct wakeq_handler_host *host = state;

	host->log(host, WAKEQ_LOG_INFO, "testplug: shutdown");
}

static const char *const types[] = { "t.plug", "t.plug2", "t.initfail", NULL };

#if defined(TESTPLUG_NOABI)
/* only the struct, no version symbol */
extern const struct wakeq_handler wakeq_handler;
const struct wakeq_handler wakeq_handler = {
	WAKEQ_HANDLER_ABI_VERSION, sizeof(struct wakeq_handler), "noabi", "0",
	types, init, run, shutdown_state
};
#elif defined(TESTPLUG_ABI)
extern const unsigned wakeq_handler_abi_version;
const unsigned wakeq_handler_abi_version = TESTPLUG_ABI;
extern const struct wakeq_handler wakeq_handler;
const struct wakeq_handler wakeq_handler = {
	TESTPLUG_ABI, sizeof(struct wakeq_handler), "badabi", "0",
	types, init, run, shutdown_state
};
#else
WAKEQ_HANDLER_PLUGIN("testplug", "0", types, init, run, shutdown_state);
#endif
