/* schedules.c - wakeq schedules list|get|add|delete|pause|resume: cron
 * schedules over Redis, with the API's parser and document (queue.h). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_schedules_list(struct cli *c)
{
	struct queue *q = cli_connect();
	json_t *arr = json_array();
	char **qnames = NULL;
	struct err e;
	int nq, i, k, rc = EXIT_OK;

	if ((nq = cli_queue_names(c, q, &qnames, &e)) < 0) {
		rc = cli_exit_for(&e);
		nq = 0;
	}
	for (i = 0; i < nq; i++) {
		char **names = NULL;
		int n = queue_schedule_names(q, qnames[i], &names, &e);

		if (n < 0)
			rc = cli_exit_for(&e);
		for (k = 0; k < n; k++) {
			struct queue_schedule s;

			if (queue_schedule_get(q, qnames[i], names[k], &s, NULL) == 0) {
				json_array_append_new(arr, queue_schedule_to_json(qnames[i], &s));
				queue_schedule_release(&s);
			}
			free(names[k]);
		}
		free(names);
		free(qnames[i]);
	}
	free(qnames);
	queue_free(q);
	cli_print_json(arr, JSON_INDENT(2));
	return rc;
}

/* Schedule `name` of the queue given, else of the first queue in Redis
 * (by name) that has one, as GET /v1/schedules/{name} looks in every
 * queue. */
int cmd_schedules_get(struct cli *c)
{
	struct queue *q = cli_connect();
	struct queue_schedule s;
	char **names;
	struct err e;
	int n, i, found = -1, rc = EXIT_OK;

	if ((n = cli_queue_names(c, q, &names, &e)) < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	for (i = 0; i < n && found < 0; i++) {
		if (queue_schedule_get(q, names[i], c->args[0], &s, &e) == 0)
			found = i;
		else if (e.code != ERR_NOTFOUND)
			break;
	}
	if (found >= 0) {
		cli_print_json(queue_schedule_to_json(names[found], &s), JSON_INDENT(2));
		queue_schedule_release(&s);
	} else {
		if (i == n && !cli_get(c, "queue"))
			err_set(&e, ERR_NOTFOUND, "no schedule '%s' in any queue", c->args[0]);
		rc = cli_exit_for(&e);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	queue_free(q);
	return rc;
}

/* The request of `wakeq schedules add NAME CRON TYPE [options]`, as the
 * API takes it; NULL once a usage error was said. */
static json_t *add_request(struct cli *c)
{
	int64_t cmax = 0;
	json_t *b, *job;

	if (cli_int(c, "catch-up-max", 1, QUEUE_SCHED_AHEAD, &cmax) ||
	    !(job = cli_job_request(c, c->args[2])))
		return NULL;
	b = json_pack("{s:s,s:s,s:o}", "name", c->args[0], "cron", c->args[1], "job", job);
	cli_copy_opt(c, "tz", b, "timezone");
	cli_copy_opt(c, "overlap", b, "overlap");
	cli_copy_opt(c, "catch-up", b, "catch_up");
	if (cmax > 0)
		json_object_set_new(b, "catch_up_max", json_integer(cmax));
	if (cli_get(c, "paused"))
		json_object_set_new(b, "paused", json_true());
	return b;
}

int cmd_schedules_add(struct cli *c)
{
	struct job_defaults d = { cli_queue(c), 0, 0 };
	struct queue_schedule s, back;
	json_t *req = add_request(c);
	const char *code;
	struct queue *q;
	struct err e;
	int rc = EXIT_OK, created = 0;

	if (!req)
		return EXIT_USAGE;
	if (queue_schedule_from_json(req, &s, &code, &e) < 0) {
		json_decref(req);
		return cli_usage_error(c, "%s", e.msg);
	}
	json_decref(req);
	job_spec_resolve(&s.job, &d, 0);
	q = cli_connect();
	if (queue_schedule_put(q, cli_queue(c), &s, &created, &e) < 0 ||
	    queue_schedule_get(q, cli_queue(c), s.name, &back, &e) < 0) {
		rc = cli_exit_for(&e);
	} else {
		fprintf(stderr, "wakeq: schedule '%s' %s on '%s'\n", s.name,
			created ? "created" : "replaced", cli_queue(c));
		cli_print_json(queue_schedule_to_json(cli_queue(c), &back),
			       JSON_INDENT(2));
		queue_schedule_release(&back);
	}
	queue_schedule_release(&s);
	queue_free(q);
	return rc;
}

int cmd_schedules_delete(struct cli *c)
{
	struct queue *q = cli_connect();
	struct err e;
	int rc = EXIT_OK;

	if (queue_schedule_delete(q, cli_queue(c), c->args[0], &e) < 0)
		rc = cli_exit_for(&e);
	else
		printf("%s deleted\n", c->args[0]);
	queue_free(q);
	return rc;
}

static int pause_one(struct cli *c, int paused)
{
	struct queue *q = cli_connect();
	struct err e;
	int rc = EXIT_OK;

	if (queue_schedule_pause(q, cli_queue(c), c->args[0], paused, NULL, &e) < 0)
		rc = cli_exit_for(&e);
	else
		printf("%s %s\n", c->args[0], paused ? "paused" : "resumed");
	queue_free(q);
	return rc;
}

int cmd_schedules_pause(struct cli *c)
{
	return pause_one(c, 1);
}

int cmd_schedules_resume(struct cli *c)
{
	return pause_one(c, 0);
}
