/* wordcount.c - a wakeq handler plugin in C: the job type text.wordcount
 * counts the words, lines and characters of a text, in the worker's own
 * process (no fork, no exec per job).
 *
 * Payload: {"text": "...", "delay_ms": 0, "fail": "transient" | "hard"}
 *   text      required, the text to count
 *   delay_ms  optional, a pause after each tenth of the text (to watch
 *             progress, or to cancel a job mid-way)
 *   fail      optional, fail on purpose: "transient" (retried with
 *             backoff) or "hard" (dead letter at once)
 * Result:  {"words": 3, "lines": 1, "chars": 13, "runs": 7}
 *   runs     jobs this plugin state has run so far, this one included:
 *            the state lives as long as the worker, like a loaded model
 *
 * Build (make does it: build/examples/wordcount.so):
 *   cc -std=c11 -O2 -shared -fPIC -o wordcount.so wordcount.c \
 *      $(pkg-config --cflags --libs jansson)
 * with wakeq/handler.h installed by `make install` (or -I build/include).
 *
 * Register (docs/examples/plugin/handlers.json):
 *   "text.wordcount": {"kind": "plugin", "path": "/opt/wakeq/wordcount.so"}
 */
#define _POSIX_C_SOURCE 200809L

#include <wakeq/handler.h>

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One per registry entry; run may be called from several threads at once,
 * so what it changes is atomic. */
struct state {
	const struct wakeq_handler_host *host;
	atomic_long runs;
};

static int init(const struct wakeq_handler_host *host, void **out, char *error,
		size_t error_len)
{
	struct state *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(error, error_len, "out of memory");
		return -1;
	}
	s->host = host;
	atomic_init(&s->runs, 0);
	*out = s;
	return 0;
}

static void shutdown_state(void *state)
{
	struct state *s = state;
	char line[96];

	snprintf(line, sizeof(line), "wordcount: shutting down after %ld jobs",
		 (long)atomic_load(&s->runs));
	s->host->log(s->host, WAKEQ_LOG_INFO, line);
	free(s);
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int run(void *state, const struct wakeq_job *job, struct wakeq_result *out)
{
	struct state *s = state;
	json_error_t je;
	json_t *payload, *result;
	const char *text, *fail;
	size_t len, i, step;
	long words = 0, lines = 0, chars = 0, delay_ms, runs;
	int in_word = 0, tenth = 0, rc = -1;

	runs = atomic_fetch_add(&s->runs, 1) + 1;
	payload = json_loadb(job->payload, job->payload_len, 0, &je);
	if (!payload) {
		snprintf(out->error, sizeof(out->error), "payload is not JSON: %s", je.text);
		return -1;
	}
	text = json_string_value(json_object_get(payload, "text"));
	fail = json_string_value(json_object_get(payload, "fail"));
	delay_ms = (long)json_number_value(json_object_get(payload, "delay_ms"));
	if (!text) {
		snprintf(out->error, sizeof(out->error),
			 "payload field 'text' is required (a string)");
		goto out;
	}
	if (fail && !strcmp(fail, "transient")) {
		snprintf(out->error, sizeof(out->error), "upstream is busy, try again later");
		out->retryable = 1;
		goto out;
	}
	if (fail && !strcmp(fail, "hard")) {
		snprintf(out->error, sizeof(out->error), "this text cannot be counted");
		goto out;
	}

	len = strlen(text);
	step = len / 10 ? len / 10 : 1;
	job->progress(job, 0, "counting");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (is_space(c)) {
			in_word = 0;
		} else if (!in_word) {
			in_word = 1;
			words++;
		}
		lines += c == '\n';
		chars += (c & 0xC0) != 0x80; /* UTF-8: count lead bytes only */
		if ((i + 1) % step == 0 && tenth < 9) {
			tenth++;
			job->progress(job, tenth * 10, "counting");
			if (delay_ms > 0)
				pause_ms(delay_ms);
			/* the worker asks (cancel, timeout, shutdown): stop now */
			if (wakeq_cancelled(job)) {
				snprintf(out->error, sizeof(out->error), "cancelled");
				goto out;
			}
		}
	}
	if (len && text[len - 1] != '\n')
		lines++;
	job->progress(job, 100, "done");

	result = json_pack("{s:I, s:I, s:I, s:I}", "words", (json_int_t)words,
			   "lines", (json_int_t)lines, "chars", (json_int_t)chars,
			   "runs", (json_int_t)runs);
	out->json = result ? json_dumps(result, JSON_COMPACT) : NULL; /* malloc'd */
	json_decref(result);
	if (!out->json) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		out->retryable = 1;
		goto out;
	}
	rc = 0;
out:
	json_decref(payload);
	return rc;
}

static const char *const types[] = { "text.wordcount", NULL };

WAKEQ_HANDLER_PLUGIN("wordcount", "1.0", types, init, run, shutdown_state);
