/* controls.c - the queue controls: pause and resume, settings. */
#include "cli.h"

#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pause_or_resume(struct cli *c, int paused)
{
	const char *queue = c->args[0];
	struct queue_resumed r;
	struct queue *q;
	struct err e;

	if (queue_name_check(queue, &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	if (queue_pause(q, queue, paused, &r, &e) < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	printf("%s %s\n", queue, paused ? "paused" : "resumed");
	/* due work and nobody to run it: wake a worker, as enqueue does
	 * (work due later is left to its wake: the API's timer, cron) */
	if (!paused && r.due > 0)
		cli_wake_if_idle(q, queue, r.live > 0);
	queue_free(q);
	return EXIT_OK;
}

int cmd_pause(struct cli *c)
{
	return pause_or_resume(c, 1);
}

int cmd_resume(struct cli *c)
{
	return pause_or_resume(c, 0);
}

/* wakeq settings QUEUE [NAME=VALUE...]: the current settings merged with
 * the ones given (VALUE a number, or null to clear), through the same
 * parser as the API's PUT body; then printed. */
int cmd_settings(struct cli *c)
{
	const char *queue = c->args[0], *code;
	struct queue_settings st;
	json_t *given = json_object();
	struct queue *q;
	struct err e;
	int i, rc = EXIT_OK;

	if (queue_name_check(queue, &e) < 0) {
		json_decref(given);
		return cli_exit_for(&e);
	}
	for (i = 1; i < c->nargs; i++) {
		const char *eq = strchr(c->args[i], '=');
		char *name;
		json_t *v;

		if (!eq || eq == c->args[i]) {
			json_decref(given);
			return cli_usage_error(c, "expected NAME=VALUE, not '%s'", c->args[i]);
		}
		v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		if (!v) {
			json_decref(given);
			return cli_usage_error(c, "bad value in '%s': a number, or null", c->args[i]);
		}
		name = xstrndup(c->args[i], (size_t)(eq - c->args[i]));
		json_object_set_new(given, name, v);
		free(name);
	}
	q = cli_connect();
	if (queue_settings_get(q, queue, &st, &e) < 0) {
		rc = cli_exit_for(&e);
		goto out;
	}
	if (json_object_size(given) > 0) {
		if (queue_settings_from_json(given, &st, &code, &e) < 0) {
			rc = cli_usage_error(c, "%s", e.msg);
			goto out;
		}
		if (queue_settings_set(q, queue, &st, &e) < 0) {
			rc = cli_exit_for(&e);
			goto out;
		}
	}
	cli_print_json(queue_settings_to_json(queue, &st),
		       JSON_INDENT(2) | JSON_PRESERVE_ORDER);
out:
	json_decref(given);
	queue_free(q);
	return rc;
}
