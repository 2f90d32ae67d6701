/* flows.c - wakeq flow FILE and wakeq batch create FILE: jobs created
 * together, linked by their dependencies. FILE (or - for stdin) holds the
 * body of POST /v1/flows or POST /v1/batches. As for enqueue, it goes
 * through the API when WAKEQ_API_URL is set; otherwise it is parsed and
 * linked by the API's own parser (job_flow_parse, job_batch_parse) and
 * goes straight into Redis in one enqueue, followed by a wake when no
 * worker is live. Either way stdout has the answer the API gives: the
 * ids, as one line of JSON. */
#include "cli.h"

#include "base/clock.h"
#include "base/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The document of FILE ("-": stdin), with --queue in it when it names
 * none. Returns it (caller owns), or NULL once a usage error was said. */
static json_t *read_doc(struct cli *c)
{
	const char *path = c->args[0], *given = cli_get(c, "queue"), *inq;
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	json_error_t je;
	json_t *doc;

	if (!f) {
		cli_usage_error(c, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	if (f != stdin)
		fclose(f);
	if (!doc) {
		cli_usage_error(c, "bad JSON in '%s' (line %d, column %d): %s", path, je.line,
				je.column, je.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		cli_usage_error(c, "bad document in '%s': expected a JSON object", path);
		return NULL;
	}
	inq = json_string_value(json_object_get(doc, "queue"));
	if (given && inq && strcmp(given, inq)) {
		cli_usage_error(c, "--queue '%s' is not the document's queue '%s'", given, inq);
		json_decref(doc);
		return NULL;
	}
	if (given && !json_object_get(doc, "queue"))
		json_object_set_new(doc, "queue", json_string(given));
	return doc;
}

static int create_api(json_t *doc, const char *path)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	const char *base;
	json_t *answer = NULL;
	size_t blen = 0;
	int rc;

	if (!text)
		abort();
	rc = cli_api_post(path, text, &answer);
	free(text);
	if (rc != EXIT_OK)
		return rc;
	cli_print_json(answer, JSON_COMPACT);
	fflush(stdout);
	base = cli_api_url(&blen);
	fprintf(stderr, "wakeq: created through the API at '%.*s' (it wakes a worker when "
		"none is live)\n", (int)blen, base);
	return EXIT_OK;
}

/* Into Redis in one enqueue (without a Postgres record, as enqueue's). */
static int create_direct(struct cli *c, json_t *doc, job_linked_parse_fn parse, int flow)
{
	struct job_defaults d = { cli_queue(c), 0, 0 };
	struct queue_enqueued *out = NULL;
	enum job_status *st = NULL;
	struct job_linked l;
	struct queue *q = NULL;
	const char *code = "invalid_field";
	int64_t now = clock_now_us(), due = 0;
	size_t i, n, nnow = 0;
	int rc = EXIT_OK, live = 1;
	struct err e;

	if (parse(doc, &d, QUEUE_MAX_BATCH, now, &l, &code, &e) < 0)
		return cli_usage_error(c, "bad document in '%s': %s", c->args[0], e.msg);
	if (queue_name_check(l.queue, &e) < 0) {
		rc = cli_exit_for(&e);
		goto out;
	}
	n = l.n + 1;
	q = cli_connect();
	out = xcalloc(n, sizeof(*out));
	st = xcalloc(n, sizeof(*st));
	if (queue_enqueue(q, l.queue, l.specs, n, out, &live, &e) < 0) {
		rc = cli_exit_for(&e);
		goto out;
	}
	if (queue_enqueued_due(out, l.specs, n, &due, &nnow, &e) < 0) {
		rc = cli_exit_for(&e);
		goto out;
	}
	for (i = 0; i < n; i++)
		st[i] = out[i].status;
	cli_print_json(flow ? job_flow_doc(&l, st) : job_batch_doc(&l), JSON_COMPACT);
	fflush(stdout);
	if (nnow) {
		cli_wake_if_idle(q, l.queue, live);
	} else if (due) {
		char when[CLOCK_RFC3339_LEN];

		fprintf(stderr, "wakeq: the first due at %s: no wake now (the first wake after "
			"that runs it)\n", clock_rfc3339(due, when));
	}
out:
	queue_free(q);
	free(out);
	free(st);
	job_linked_release(&l);
	return rc;
}

static int create(struct cli *c, const char *path, job_linked_parse_fn parse, int flow)
{
	size_t alen;
	json_t *doc = read_doc(c);
	int rc;

	if (!doc)
		return EXIT_USAGE;
	rc = cli_api_url(&alen) ? create_api(doc, path) : create_direct(c, doc, parse, flow);
	json_decref(doc);
	return rc;
}

int cmd_flow(struct cli *c)
{
	return create(c, "/v1/flows", job_flow_parse, 1);
}

int cmd_batch_create(struct cli *c)
{
	return create(c, "/v1/batches", job_batch_parse, 0);
}
