/* wakestub - a stand-in for the worker's /wake endpoint and for the GCE
 * metadata server, on loopback, for the API's tests.
 *
 *   wakestub [--port N] [--hold SECONDS] [--status CODE] [--token-ttl S]
 *
 * Prints the port on the first line of stdout, then serves:
 *   POST /wake      counts the call (and by its X-Wakeq-Trigger header),
 *                   records its Authorization header,
 *                   holds the request for --hold seconds (as a draining
 *                   worker does), answers --status (200) with JSON
 *   GET  /count     {"wakes":N,"metadata":M,"auth":"last Authorization",
 *                   "triggers":{"api":N,...}}
 *   GET  /computeMetadata/v1/instance/service-accounts/default/identity
 *                   the metadata protocol: needs "Metadata-Flavor: Google"
 *                   and ?audience=, answers a JWT (header.payload.sig,
 *                   base64url) whose payload has aud and exp = now + ttl
 * Runs until killed. */
#include "base/clock.h"
#include "base/mem.h"
#include "httpd/httpd.h"
#include "fakeserve.h"
#include "toolargs.h"
#include "queue/queue.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

static atomic_int wakes, meta;
static double hold_s;
static int status = 200;
static int64_t ttl_s = 3600;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char last_auth[4096];
static int triggers[QUEUE_NTRIGGERS]; /* under lock */

static void handle(struct httpd_request *req, void *ctx)
{
	const char *path = httpd_path(req);

	(void)ctx;
	if (!strcmp(path, "/wake") && !strcmp(httpd_method(req), "POST")) {
		const char *a = httpd_header(req, "Authorization");

		atomic_fetch_add(&wakes, 1);
		pthread_mutex_lock(&lock);
		snprintf(last_auth, sizeof(last_auth), "%s", a ? a : "");
		triggers[queue_trigger_parse(httpd_header(req, QUEUE_TRIGGER_HEADER))]++;
		pthread_mutex_unlock(&lock);
		if (hold_s > 0)
			clock_sleep_us((int64_t)(hold_s * 1e6));
		httpd_respond_json(req, (unsigned)status, json_pack("{s:s}", "drain", "stub"));
		return;
	}
	if (!strcmp(path, "/count")) {
		json_t *j;
		int t;

		pthread_mutex_lock(&lock);
		j = json_pack("{s:i,s:i,s:s,s:{}}", "wakes", atomic_load(&wakes), "metadata",
			      atomic_load(&meta), "auth", last_auth, "triggers");
		for (t = 0; t < QUEUE_NTRIGGERS; t++)
			json_object_set_new(json_object_get(j, "triggers"),
					    queue_trigger_name((enum queue_trigger)t),
					    json_integer(triggers[t]));
		pthread_mutex_unlock(&lock);
		httpd_respond_json(req, 200, j);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/identity")) {
		const char *flavor = httpd_header(req, "Metadata-Flavor");
		const char *aud = httpd_query(req, "audience");
		char *payload, *tok;

		if (!flavor || strcmp(flavor, "Google")) {
			httpd_respond(req, 403, "text/html", "Missing Metadata-Flavor:Google header.", 38);
			return;
		}
		if (!aud || !*aud) {
			httpd_respond(req, 400, "text/html", "non-empty audience parameter required", 37);
			return;
		}
		atomic_fetch_add(&meta, 1);
		payload = xasprintf("{\"aud\":\"%.200s\",\"exp\":%lld,\"iat\":%lld,\"iss\":\"https://accounts.google.com\",\"n\":%d}",
				    aud, (long long)(clock_now_us() / 1000000 + ttl_s),
				    (long long)(clock_now_us() / 1000000), atomic_load(&meta));
		tok = fake_jwt(payload, "c2lnbmF0dXJl");
		free(payload);
		httpd_respond(req, 200, "text/html", tok, strlen(tok));
		free(tok);
		return;
	}
	httpd_error(req, 404, "not_found", "no route");
}

int main(int argc, char **argv)
{
	struct httpd_opts o = { .thread_per_connection = 1 };
	const struct tool_arg args[] = {
		{ "--port", TOOL_INT, &o.port },
		{ "--hold", TOOL_DOUBLE, &hold_s },
		{ "--status", TOOL_INT, &status },
		{ "--token-ttl", TOOL_INT64, &ttl_s },
		{ NULL, TOOL_INT, NULL },
	};

	if (tool_args(argc, argv, 1, args) < 0) {
		fprintf(stderr, "usage: wakestub [--port N] [--hold SECONDS] [--status CODE] "
			"[--token-ttl S]\n");
		return 2;
	}
	return fake_serve("wakestub", &o, handle);
}
