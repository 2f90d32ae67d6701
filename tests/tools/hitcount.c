/* hitcount - a counting HTTP endpoint on loopback for the chaos tests: every
 * http.request job of a scenario calls it once per execution, so the count
 * of hits per job is the count of times the job really ran.
 *
 *   hitcount LOG [--port N] [--name NAME]
 *
 * Prints its port on the first line, then serves (thread per connection):
 *   any method /hit?k=KEY[&ms=N]   appends "NAME KEY START_US\n" to LOG at
 *                                  arrival (one write on an O_APPEND file,
 *                                  so several counters, in several network
 *                                  namespaces, may share one LOG), then
 *                                  holds the answer N ms (0..60000) and
 *                                  answers 200 {"n":HITS_OF_THIS_PROCESS}
 *     &span=1                      logs after the hold instead, one line
 *                                  "NAME KEY START_US END_US STATUS"
 *                                  (handler start/end for cap checks)
 *     &busy=S                      the first hit of this process carrying
 *                                  busy answers 429 with Retry-After: S at
 *                                  once (a rate-limited upstream); later
 *                                  ones answer as usual
 *   GET /count                     {"hits":N}
 * START_US is the wall clock in microseconds (Redis's `finished` times
 * are on the same clock on this machine). Runs until SIGTERM or SIGINT. */
#include "base/clock.h"
#include "httpd/httpd.h"
#include "fakeserve.h"
#include "toolargs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static const char *name = "c";
static atomic_int hits;
static atomic_int busy_sent;

static int key_ok(const char *k)
{
	size_t i;

	if (!k || !*k || strlen(k) > 128)
		return 0;
	for (i = 0; k[i]; i++)
		if ((unsigned char)k[i] <= ' ' || k[i] == 0x7f)
			return 0;
	return 1;
}

static void handle(struct httpd_request *req, void *ctx)
{
	const char *k, *ms, *busy;
	char line[256];
	int n, len, span, status = 200;
	long wait_ms = 0;
	int64_t start;

	(void)ctx;
	if (!strcmp(httpd_path(req), "/count")) {
		httpd_respond_json(req, 200, json_pack("{s:i}", "hits", atomic_load(&hits)));
		return;
	}
	if (strcmp(httpd_path(req), "/hit")) {
		httpd_error(req, 404, "not_found", "no route");
		return;
	}
	k = httpd_query(req, "k");
	if (!key_ok(k)) {
		httpd_error(req, 400, "invalid_query", "bad or missing 'k'");
		return;
	}
	ms = httpd_query(req, "ms");
	if (ms)
		wait_ms = strtol(ms, NULL, 10);
	if (wait_ms < 0 || wait_ms > 60000)
		wait_ms = 0;
	span = httpd_query(req, "span") != NULL;
	busy = httpd_query(req, "busy");
	if (busy && (!*busy || strspn(busy, "0123456789") != strlen(busy) || strlen(busy) > 6)) {
		httpd_error(req, 400, "invalid_query", "'busy' takes whole seconds");
		return;
	}
	start = clock_now_us();
	n = atomic_fetch_add(&hits, 1) + 1;
	if (busy && atomic_exchange(&busy_sent, 1) == 0) {
		status = 429;
		wait_ms = 0;
	}
	len = snprintf(line, sizeof(line), "%s %s %" PRId64 "\n", name, k, start);
	/* one write of a short line on O_APPEND: never interleaved */
	if (!span)
		while (write(log_fd, line, (size_t)len) < 0 && errno == EINTR)
			;
	if (wait_ms > 0) {
		struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (span) {
		len = snprintf(line, sizeof(line), "%s %s %" PRId64 " %" PRId64 " %d\n", name, k,
			       start, clock_now_us(), status);
		while (write(log_fd, line, (size_t)len) < 0 && errno == EINTR)
			;
	}
	if (status == 429) {
		httpd_add_header(req, "Retry-After", busy);
		httpd_error(req, 429, "rate_limited", "busy");
		return;
	}
	httpd_respond_json(req, 200, json_pack("{s:i}", "n", n));
}

int main(int argc, char **argv)
{
	struct httpd_opts o = { 0 };
	const struct tool_arg args[] = {
		{ "--port", TOOL_INT, &o.port },
		{ "--name", TOOL_STRING, &name },
		{ NULL, TOOL_INT, NULL },
	};
	int rc;

	if (argc < 2 || tool_args(argc, argv, 2, args) < 0) {
		fprintf(stderr, "usage: hitcount LOG [--port N] [--name NAME]\n");
		return 2;
	}
	log_fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		perror(argv[1]);
		return 1;
	}
	/* handlers sleep: a thread per connection, as many as the workers
	 * can have in flight */
	o.thread_per_connection = 1;
	o.max_connections = 4096;
	rc = fake_serve("hitcount", &o, handle);
	close(log_fd);
	return rc;
}
