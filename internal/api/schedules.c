/* schedules.c - cron schedules over HTTP: POST /v1/schedules (create or
 * replace), GET /v1/schedules (every served queue's), GET and DELETE
 * /v1/schedules/{name}, POST /v1/schedules/{name}/pause and /resume. A
 * schedule posted to a sharded queue (or to none, when it comes first)
 * lives in the shard its name maps to (api_route_queue), or in the shard
 * of that set that holds the name already (schedule_home); a name is looked
 * for in the served queues, shards among them, in QUEUES order. The waker
 * is told each schedule's next fire time, so a worker is woken for it. */
#include "api/priv.h"

#include "log/log.h"
#include "wake/wake.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Finds schedule `name` in the served queues into *out. Returns the
 * queue's index, or -1 with err (ERR_NOTFOUND). */
static int find_schedule(struct api *a, struct queue *q, const char *name,
			 struct queue_schedule *out, struct err *err)
{
	size_t i;

	for (i = 0; i < a->nqueues; i++) {
		struct err e;

		if (queue_schedule_get(q, a->queues[i], name, out, &e) == 0)
			return (int)i;
		if (e.code != ERR_NOTFOUND) {
			if (err)
				*err = e;
			return -1;
		}
	}
	return err_set(err, ERR_NOTFOUND, "no schedule '%.64s'", name);
}

/* Where a schedule posted to a shard set (named `routed` by its name's
 * shard) goes: to a shard of the same set that holds that name already
 * when there is one (a schedule made before sets routed schedules by
 * name, when it went to NAME#0, or posted to a shard by name), so that
 * posting it again replaces it rather than making a second one that
 * would fire too; else to `routed`. Returns it, or NULL with err when a
 * shard could not be asked (it might hold the name). */
static const char *schedule_home(struct api *a, struct queue *q, const char *routed,
				 const char *name, struct err *err)
{
	int k = api_served_index(a, routed);
	size_t i, j;

	for (i = 0; k >= 0 && i < a->nshards; i++) {
		const struct api_shards *set = &a->shards[i];

		if ((size_t)k < set->first || (size_t)k >= set->first + (size_t)set->n)
			continue;
		for (j = set->first; j < set->first + (size_t)set->n; j++) {
			struct queue_schedule old;

			if (j == (size_t)k)
				continue;
			if (queue_schedule_get(q, a->queues[j], name, &old, err) == 0) {
				queue_schedule_release(&old);
				return a->queues[j];
			}
			if (err->code != ERR_NOTFOUND)
				return NULL;
		}
	}
	return routed;
}

static void reply_find_error(struct api *a, struct httpd_request *req, const struct err *e,
			     const char *name)
{
	if (e->code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no schedule '%.64s'", name);
	else
		api_reply_backend(a, req, e, "redis");
}

void api_post_schedule(struct api *a, struct httpd_request *req, const char *arg)
{
	const char *body, *code = "invalid_json", *queue, *asked;
	struct queue_schedule s, back;
	json_error_t je;
	json_t *root;
	struct queue *q;
	struct err e;
	size_t len;
	int created = 0, sharded;

	(void)arg;
	if (api_require_json(a, req) < 0)
		return;
	body = httpd_body(req, &len);
	root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!root) {
		api_reply_error(a, req, 400, "invalid_json", "body: expected a JSON object (a schedule)");
		return;
	}
	if (queue_schedule_from_json(root, &s, &code, &e) < 0) {
		json_decref(root);
		api_reply_error(a, req, 400, code, "%s", e.msg);
		return;
	}
	/* by its name: posting the same name again replaces it in its shard,
	 * never makes a second one in another */
	asked = json_string_value(json_object_get(root, "queue"));
	sharded = !asked || api_served_index(a, asked) < 0; /* a set, not a shard named */
	queue = api_body_queue(a, req, root, s.name);
	json_decref(root);
	if (!queue) {
		queue_schedule_release(&s);
		return;
	}
	job_spec_resolve(&s.job, &a->defaults, 0);
	if (!(q = api_qget_req(a, req))) {
		queue_schedule_release(&s);
		return;
	}
	if (sharded && !(queue = schedule_home(a, q, queue, s.name, &e))) {
		api_qput(a, q);
		queue_schedule_release(&s);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	if (queue_schedule_put(q, queue, &s, &created, &e) < 0 ||
	    queue_schedule_get(q, queue, s.name, &back, &e) < 0) {
		api_qput(a, q);
		queue_schedule_release(&s);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	if (back.next_ms)
		wake_at(a->wake, back.next_ms * 1000);
	log_info(created ? "schedule created" : "schedule replaced", "queue", queue,
		 "schedule", s.name);
	api_reply_json(a, req, created ? 201 : 200, queue_schedule_to_json(queue, &back));
	queue_schedule_release(&back);
	queue_schedule_release(&s);
}

void api_list_schedules(struct api *a, struct httpd_request *req, const char *arg)
{
	struct queue *q = api_qget_req(a, req);
	json_t *arr;
	struct err e;
	size_t i;
	int n, k;

	(void)arg;
	if (!q)
		return;
	arr = json_array();
	for (i = 0; i < a->nqueues; i++) {
		char **names = NULL;

		n = queue_schedule_names(q, a->queues[i], &names, &e);
		if (n < 0) {
			api_qput(a, q);
			json_decref(arr);
			api_reply_backend(a, req, &e, "redis");
			return;
		}
		for (k = 0; k < n; k++) {
			struct queue_schedule s;

			if (queue_schedule_get(q, a->queues[i], names[k], &s, NULL) == 0) {
				json_array_append_new(arr, queue_schedule_to_json(a->queues[i], &s));
				queue_schedule_release(&s);
			}
			free(names[k]);
		}
		free(names);
	}
	api_qput(a, q);
	api_reply_json(a, req, 200, json_pack("{s:o}", "schedules", arr));
}

enum schedule_op { SCHED_GET, SCHED_DELETE, SCHED_PAUSE, SCHED_RESUME };

/* Finds schedule `name` in the served queues, applies `op` and answers:
 * the schedule as it is afterwards, or {name, queue, deleted}. */
static void schedule_op(struct api *a, struct httpd_request *req, const char *name,
			enum schedule_op op)
{
	struct queue_schedule s;
	struct queue *q = api_qget_req(a, req);
	int64_t next = 0;
	struct err e;
	int qi;

	if (!q)
		return;
	qi = find_schedule(a, q, name, &s, &e);
	if (qi >= 0 && op != SCHED_GET) {
		const char *queue = a->queues[qi];
		int rc;

		queue_schedule_release(&s);
		if (op == SCHED_DELETE)
			rc = queue_schedule_delete(q, queue, name, &e);
		else if ((rc = queue_schedule_pause(q, queue, name, op == SCHED_PAUSE, &next,
						    &e)) == 0)
			rc = queue_schedule_get(q, queue, name, &s, &e);
		if (rc < 0)
			qi = -1;
	}
	api_qput(a, q);
	if (qi < 0) {
		reply_find_error(a, req, &e, name);
		return;
	}
	if (op == SCHED_DELETE) {
		log_info("schedule deleted", "queue", a->queues[qi], "schedule", name);
		api_reply_json(a, req, 200, json_pack("{s:s,s:s,s:b}", "name", name, "queue",
						      a->queues[qi], "deleted", 1));
		return;
	}
	if (next)
		wake_at(a->wake, next * 1000);
	api_reply_json(a, req, 200, queue_schedule_to_json(a->queues[qi], &s));
	queue_schedule_release(&s);
}

void api_get_schedule(struct api *a, struct httpd_request *req, const char *name)
{
	schedule_op(a, req, name, SCHED_GET);
}

void api_delete_schedule(struct api *a, struct httpd_request *req, const char *name)
{
	schedule_op(a, req, name, SCHED_DELETE);
}

void api_pause_schedule(struct api *a, struct httpd_request *req, const char *name)
{
	schedule_op(a, req, name, SCHED_PAUSE);
}

void api_resume_schedule(struct api *a, struct httpd_request *req, const char *name)
{
	schedule_op(a, req, name, SCHED_RESUME);
}
