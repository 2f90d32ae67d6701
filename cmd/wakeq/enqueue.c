/* enqueue.c - wakeq enqueue: through the API (WAKEQ_API_URL), or straight
 * into Redis followed by a wake when no worker is live.
 *
 * Both ways start the same: the options become the body of a POST
 * /v1/jobs, checked by job_spec_parse, the one parser of job requests,
 * so the CLI refuses what the API would refuse, with the same words. */
#include "cli.h"

#include "base/clock.h"
#include "base/mem.h"
#include "fetch/fetch.h"

#include <stdlib.h>
#include <string.h>

json_t *cli_job_request(struct cli *c, const char *type)
{
	const char *payload = cli_get(c, "payload");
	int64_t priority = -1, attempts = 0;
	double timeout = 0;
	json_error_t je;
	json_t *b, *p;

	if (cli_int(c, "priority", 0, JOB_PRIORITY_MAX, &priority) ||
	    cli_int(c, "max-attempts", 1, JOB_MAX_ATTEMPTS_MAX, &attempts) ||
	    cli_seconds(c, "timeout", 0, JOB_TIMEOUT_MAX_S, &timeout))
		return NULL;
	b = json_pack("{s:s}", "type", type);
	if (payload) {
		p = json_loads(payload, JSON_REJECT_DUPLICATES, &je);
		if (!p || !json_is_object(p)) {
			json_decref(p);
			json_decref(b);
			cli_usage_error(c, "bad --payload: %s", p ? "expected a JSON object" : je.text);
			return NULL;
		}
		json_object_set_new(b, "payload", p);
	}
	if (priority >= 0)
		json_object_set_new(b, "priority", json_integer(priority));
	if (attempts > 0)
		json_object_set_new(b, "max_attempts", json_integer(attempts));
	if (timeout > 0)
		json_object_set_new(b, "timeout_s", json_real(timeout));
	cli_copy_opt(c, "group", b, "group");
	cli_copy_opt(c, "unique-key", b, "unique_key");
	return b;
}

/* The request body of the options; NULL once a usage error was said. */
static json_t *request_body(struct cli *c, int api)
{
	double delay = 0;
	json_t *b;

	if (cli_seconds(c, "delay", 0, JOB_DELAY_MAX_S, &delay) ||
	    !(b = cli_job_request(c, c->args[0])))
		return NULL;
	/* through the API, the API's default queue unless one was named */
	if (!api || cli_get(c, "queue"))
		json_object_set_new(b, "queue", json_string(cli_queue(c)));
	if (delay > 0)
		json_object_set_new(b, "delay_s", json_real(delay));
	cli_copy_opt(c, "idempotency-key", b, "idempotency_key");
	cli_copy_opt(c, "callback-url", b, "callback_url");
	if (cli_get(c, "depends-on")) {
		/* ID,ID,...: the array job_spec_parse checks */
		const char *d = cli_get(c, "depends-on");
		json_t *ids = json_array();

		while (*d) {
			size_t n = strcspn(d, ",");

			json_array_append_new(ids, json_stringn(d, n));
			d += n + (d[n] == ',');
		}
		json_object_set_new(b, "depends_on", ids);
	}
	cli_copy_opt(c, "on-dependency-failure", b, "on_dependency_failure");
	return b;
}

/* ---- through the API ------------------------------------------------------ */

/* The exit code of an API error answer. */
static int exit_for_status(long status)
{
	switch (status) {
	case 400: case 413: case 415: return EXIT_USAGE;
	case 404: return EXIT_NOTFOUND;
	case 409: return EXIT_CONFLICT;
	default: return EXIT_FAIL;
	}
}

const char *cli_api_url(size_t *len)
{
	const char *base = getenv("WAKEQ_API_URL");
	size_t n;

	if (!base || !*base)
		return NULL;
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	*len = n;
	return base;
}

int cli_api_post(const char *path, const char *body, json_t **answer)
{
	const char *token = getenv("WAKEQ_API_TOKEN"), *headers[4], *base, *msg, *code;
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct fetch_request req;
	char *url, *auth = NULL;
	json_t *doc = NULL;
	struct err e;
	size_t blen = 0;
	int rc = EXIT_OK, h = 0;

	base = cli_api_url(&blen);
	url = xasprintf("%.*s%s", (int)blen, base, path);
	if (!token || !*token) {
		/* API_TOKEN may list several (rotation): any one will do */
		const char *list = getenv("API_TOKEN");

		if (list && *list)
			auth = xasprintf("Authorization: Bearer %.*s", (int)strcspn(list, ","), list);
	} else {
		auth = xasprintf("Authorization: Bearer %s", token);
	}
	headers[h++] = "Content-Type: application/json";
	headers[h++] = "Accept: application/json";
	if (auth)
		headers[h++] = auth;
	headers[h] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_s = 30;
	req.no_follow = 1;
	/* the operator named this URL: loopback and private networks are
	 * where an API usually is, unlike a job's URLs */
	req.allow_private = "all";
	if (fetch_http(&req, &resp, &e) < 0) {
		rc = cli_exit_for(&e);
		goto out;
	}
	doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
	if (resp.status >= 200 && resp.status < 300) {
		*answer = doc;
		doc = NULL;
		goto out;
	}
	msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
	code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
	fprintf(stderr, "wakeq: the API at '%s' answered HTTP %ld%s%s%s%s\n", url, resp.status,
		code ? " " : "", code ? code : "", msg ? ": " : "", msg ? msg : "");
	rc = exit_for_status(resp.status);
out:
	json_decref(doc);
	fetch_response_release(&resp);
	free(auth);
	free(url);
	return rc;
}

static int enqueue_api(const char *body, int64_t count)
{
	size_t blen = 0;
	const char *base = cli_api_url(&blen);
	int64_t i;
	int rc = EXIT_OK;

	for (i = 0; i < count && rc == EXIT_OK; i++) {
		json_t *doc = NULL;
		const char *id;

		if ((rc = cli_api_post("/v1/jobs", body, &doc)) != EXIT_OK)
			break;
		id = json_string_value(json_object_get(doc, "id"));
		if (id) {
			printf("%s\n", id);
			if (json_is_true(json_object_get(doc, "duplicate")))
				fprintf(stderr, "wakeq: an existing job has this idempotency key or unique key\n");
		} else {
			fprintf(stderr, "wakeq: the API at '%.*s' answered no job id\n", (int)blen, base);
			rc = EXIT_FAIL;
		}
		json_decref(doc);
	}
	fflush(stdout);
	if (rc == EXIT_OK)
		fprintf(stderr, "wakeq: enqueued through the API at '%.*s' (it wakes a worker "
			"when none is live)\n", (int)blen, base);
	return rc;
}

/* ---- straight into Redis ------------------------------------------------------ */

static int enqueue_direct(struct cli *c, const struct job_spec *spec, int64_t count)
{
	struct job_defaults d = { cli_queue(c), 0, 0 };
	size_t batch = count < QUEUE_MAX_BATCH ? (size_t)count : QUEUE_MAX_BATCH, i;
	struct job_spec *specs = xcalloc(batch, sizeof(*specs));
	struct queue_enqueued *out = xcalloc(batch, sizeof(*out));
	struct queue *q = cli_connect();
	int64_t done = 0, now = 0;
	int rc = EXIT_OK, live = 1, scheduled = 0, waiting = 0;
	struct err e;

	while (done < count) {
		size_t n = count - done > (int64_t)batch ? batch : (size_t)(count - done);
		int l = 1;

		now = clock_now_us();
		for (i = 0; i < n; i++) {
			/* copies of one parsed spec, each with an id of its own */
			specs[i] = *spec;
			specs[i].id[0] = '\0';
			job_spec_resolve(&specs[i], &d, now);
		}
		scheduled = job_spec_status(&specs[0], now) == JOB_SCHEDULED;
		if (queue_enqueue(q, specs[0].queue, specs, n, out, &l, &e) < 0) {
			rc = cli_exit_for(&e);
			break;
		}
		if (!l)
			live = 0;
		for (i = 0; i < n && rc == EXIT_OK; i++) {
			if (out[i].missing[0]) {
				fprintf(stderr, "wakeq: no job '%s' in queue '%s' (--depends-on names "
					"jobs of the job's own queue)\n", out[i].missing, specs[0].queue);
				rc = EXIT_NOTFOUND;
				break;
			}
			printf("%s\n", out[i].id);
			if (!out[i].created)
				fprintf(stderr, "wakeq: an existing job has this idempotency key or unique key\n");
			waiting = out[i].created && out[i].status == JOB_WAITING;
		}
		if (rc != EXIT_OK)
			break;
		done += (int64_t)n;
	}
	fflush(stdout);
	if (done > 0) {
		if (waiting) {
			fprintf(stderr, "wakeq: waiting for its dependencies: no wake now (the "
				"worker that ends the last one runs it)\n");
		} else if (scheduled) {
			char when[CLOCK_RFC3339_LEN];

			fprintf(stderr, "wakeq: scheduled for %s: no wake now (the first wake after "
				"that runs it)\n", clock_rfc3339(specs[0].run_at_us, when));
		} else {
			cli_wake_if_idle(q, specs[0].queue, live);
		}
	}
	queue_free(q);
	free(specs);
	free(out);
	return rc;
}

int cmd_enqueue(struct cli *c)
{
	size_t alen;
	const char *api = cli_api_url(&alen);
	struct job_spec spec;
	const char *code;
	int64_t count = 1;
	json_t *body;
	char *text;
	struct err e;
	int rc;

	if ((rc = cli_int(c, "count", 1, 10000000, &count)) != 0)
		return rc;
	if (cli_get(c, "idempotency-key") && count > 1)
		return cli_usage_error(c, "--idempotency-key and --count > 1 do not mix");
	body = request_body(c, api != NULL);
	if (!body)
		return EXIT_USAGE;
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (job_spec_parse(text, strlen(text), &spec, &code, &e) < 0) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		free(text);
		return EXIT_USAGE;
	}
	rc = api ? enqueue_api(text, count) : enqueue_direct(c, &spec, count);
	job_spec_release(&spec);
	free(text);
	return rc;
}
