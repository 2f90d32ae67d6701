/* flows.c - jobs created together, linked by their dependencies:
 * POST /v1/flows (a parent that runs after its children, BullMQ's
 * FlowProducer; children may have children, a tree to any depth), POST
 * /v1/batches and GET /v1/batches/{id} (Sidekiq Pro's batches: a callback
 * job once every job of the batch has ended).
 *
 * Both are one Postgres INSERT and one enqueue script: the script stores
 * the jobs in order, so the parent (or the callback) that depends on the
 * ones before it is linked to them in the same atomic run, and no worker
 * can finish a child before its parent knows it (docs/QUEUE.md
 * "Dependencies"). Nothing here waits on the intake threads: a flow is
 * one request with its own batch.
 *
 * A batch is its callback job: the callback depends on every job of the
 * batch with on_dependency_failure "ignore", so it is queued once, by the
 * settle of the last one to end, and counts how they ended; the batch's
 * id is the callback's id. Without a callback in the request the callback
 * is a noop (a webhook with the counts when callback_url is given).
 */
#include "api/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "job/job.h"
#include "log/log.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The members of a flow or batch as parsed, in the order they are
 * enqueued (a job after those it depends on): specs[0..n-1] the children
 * (or the batch's jobs), specs[n] the parent (or the callback). */
struct linked {
	struct job_spec *specs;
	char **deps;              /* per spec: its depends_on text, or NULL */
	size_t n;                 /* specs has n + 1 */
	const char *asked;        /* the body's queue (borrowed), NULL = none */
	const char *queue;        /* where they all go (api_route_queue): a
				   * sharded queue's one shard, as linked jobs
				   * share one queue */
};

/* Room for `cap` members. */
static void linked_alloc(struct linked *l, size_t cap)
{
	l->specs = xcalloc(cap, sizeof(*l->specs));
	l->deps = xcalloc(cap, sizeof(*l->deps));
}

static void linked_release(struct linked *l)
{
	size_t i;

	for (i = 0; l->specs && i <= l->n; i++) {
		job_spec_release(&l->specs[i]);
		free(l->deps[i]);
	}
	free(l->specs);
	free(l->deps);
	memset(l, 0, sizeof(*l));
}

/* Links member i to the members whose ids are in `ids` (a JSON array). */
static void link_to(struct linked *l, size_t i, json_t *ids, enum job_dep_policy policy)
{
	l->deps[i] = json_dumps(ids, JSON_COMPACT);
	if (!l->deps[i])
		abort();
	l->specs[i].depends_on = l->deps[i];
	l->specs[i].dep_policy = policy;
}

/* One member (a job request object) into *out, as POST /v1/jobs checks
 * it, with what a linked job may not have refused: its links are made
 * here, and keys that could answer an existing job would break them.
 * `where` names it in messages ("children[3]"); a queue it names must be
 * l's (as routed, or as the body named it). Returns 0, or -1 with the
 * answer given (400). */
static int member_parse(struct api *a, struct httpd_request *req, json_t *v,
			const char *where, const struct linked *l, struct job_spec *out)
{
	static const char *const refused[] = {
		"depends_on", "on_dependency_failure", "idempotency_key", "unique_key",
		NULL
	};
	const char *code = "invalid_field";
	struct err e;
	char *text;
	size_t i;
	int rc;

	if (!json_is_object(v)) {
		api_reply_error(a, req, 400, "invalid_field", "%s: expected a job object", where);
		return -1;
	}
	for (i = 0; refused[i]; i++)
		if (json_object_get(v, refused[i])) {
			api_reply_error(a, req, 400, "invalid_field",
					"%s: field '%s' is not allowed here (the flow or "
					"batch links its jobs)", where, refused[i]);
			return -1;
		}
	text = json_dumps(v, JSON_COMPACT);
	if (!text)
		abort();
	rc = job_spec_parse(text, strlen(text), out, &code, &e);
	free(text);
	if (rc < 0) {
		api_reply_error(a, req, 400, code, "%s: %s", where, e.msg);
		return -1;
	}
	if (out->queue && strcmp(out->queue, l->queue) &&
	    (!l->asked || strcmp(out->queue, l->asked))) {
		api_reply_error(a, req, 400, "invalid_field",
				"%s: field 'queue': '%s' is not the flow's queue '%s' "
				"(linked jobs share one queue)", where, out->queue, l->queue);
		job_spec_release(out);
		return -1;
	}
	return 0;
}

/* The body's queue into l: a flow or batch has no key, so a sharded
 * queue's shard is the next in turn. Returns 0, or -1 with the answer
 * given. */
static int linked_queue(struct api *a, struct httpd_request *req, json_t *body,
			struct linked *l)
{
	l->asked = json_string_value(json_object_get(body, "queue"));
	return (l->queue = api_body_queue(a, req, body, NULL)) ? 0 : -1;
}

/* The request body as a JSON object with only the `known` members.
 * Returns it (caller owns), or NULL with the answer given. */
static json_t *body_object(struct api *a, struct httpd_request *req,
			   const char *const *known)
{
	const char *ct = httpd_header(req, "Content-Type"), *key;
	json_error_t je;
	const char *body;
	json_t *o, *v;
	size_t len, i;

	if (!ct || strncasecmp(ct, "application/json", 16) ||
	    (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
		api_reply_error(a, req, 415, "unsupported_media_type",
				"content type must be application/json");
		return NULL;
	}
	body = httpd_body(req, &len);
	o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!json_is_object(o)) {
		api_reply_error(a, req, 400, "invalid_json", "body: expected a JSON object");
		json_decref(o);
		return NULL;
	}
	json_object_foreach(o, key, v) {
		for (i = 0; known[i] && strcmp(key, known[i]); i++)
			;
		if (!known[i]) {
			api_reply_error(a, req, 400, "unknown_field", "unknown field '%.64s'", key);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* The body's queue and the jobs of its array member `name` (1 to
 * QUEUE_MAX_BATCH - 1 of them) into l->queue and l->specs[0..n-1]
 * (room for one more). Returns 0, or -1 with the answer given. */
static int members_parse(struct api *a, struct httpd_request *req, json_t *body,
			 const char *name, struct linked *l)
{
	json_t *arr = json_object_get(body, name), *v;
	char where[48];
	size_t i;

	if (linked_queue(a, req, body, l) < 0)
		return -1;
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > QUEUE_MAX_BATCH - 1) {
		api_reply_error(a, req, 400, "invalid_field",
				"field '%s': expected an array of 1 to %d jobs", name,
				QUEUE_MAX_BATCH - 1);
		return -1;
	}
	l->n = json_array_size(arr);
	linked_alloc(l, l->n + 1);
	json_array_foreach(arr, i, v) {
		snprintf(where, sizeof(where), "%s[%zu]", name, i);
		if (member_parse(a, req, v, where, l, &l->specs[i]) < 0)
			return -1;
	}
	return 0;
}

/* Resolves every member and links the last one to the others
 * (depends_on, with `policy`). */
static void link_members(struct api *a, struct linked *l, enum job_dep_policy policy)
{
	json_t *ids = json_array();
	int64_t now = clock_now_us();
	size_t i;

	for (i = 0; i <= l->n; i++) {
		l->specs[i].queue = l->queue;
		job_spec_resolve(&l->specs[i], &a->defaults, now);
		if (i < l->n)
			json_array_append_new(ids, json_string(l->specs[i].id));
	}
	link_to(l, l->n, ids, policy);
	json_decref(ids);
}

/* Writes the members (Postgres first, then one enqueue script) and wakes
 * a worker for the ones due. Returns 0 with out[] filled, or -1 with the
 * answer given (nothing stays written). An enqueue that went out
 * unanswered (ERR_UNKNOWN) with the rows written is accepted, as intake
 * does for one job: Redis may have run it (deleting the rows would let a
 * retry make the flow twice), and reconcile enqueues the rows if not. */
static int create_linked(struct api *a, struct httpd_request *req, struct linked *l,
			 struct queue_enqueued *out)
{
	size_t i, n = l->n + 1, nnow = 0;
	struct queue *q = NULL;
	int64_t due = 0;
	int live = 1, inserted = 0, rc = -1;
	struct err e;

	if (a->store) {
		int *st = xmalloc(n * sizeof(*st));

		if (store_insert_many(a->store, l->specs, n, st, NULL, NULL, &e) < 0) {
			free(st);
			if (e.code == ERR_INVALID)
				api_reply_error(a, req, 400, "invalid_field", "%s", e.msg);
			else
				api_reply_backend(a, req, &e, "postgres");
			return -1;
		}
		free(st);
		inserted = 1;
	}
	q = api_qget(a, &e);
	if (!q || queue_enqueue(q, l->queue, l->specs, n, out, &live, &e) < 0) {
		int64_t now = clock_now_us();

		if (!inserted || e.code != ERR_UNKNOWN) {
			api_reply_backend(a, req, &e, "redis");
			goto out;
		}
		log_warn("enqueue of linked jobs unanswered; the rows stay, reconcile enqueues "
			 "them if redis has not", "job_id", l->specs[n - 1].id, "error", e.msg);
		memset(out, 0, n * sizeof(*out));
		for (i = 0; i < n; i++) {
			memcpy(out[i].id, l->specs[i].id, UUID_STR_LEN);
			out[i].created = 1;
			out[i].status = job_spec_status(&l->specs[i], now);
		}
		live = 0;
	}
	for (i = 0; i < n; i++) {
		if (!out[i].created) {
			/* cannot happen: nothing of a member could be known */
			err_set(&e, ERR_INTERNAL, "job '%s' was not created", out[i].id);
			api_reply_backend(a, req, &e, "redis");
			goto out;
		}
		if (out[i].status == JOB_SCHEDULED) {
			if (!due || l->specs[i].run_at_us < due)
				due = l->specs[i].run_at_us;
		} else if (out[i].status != JOB_WAITING) {
			nnow++;
		}
	}
	atomic_fetch_add(&a->m_enqueued, n);
	if (due)
		wake_at(a->wake, due);
	if (nnow)
		wake_notify(a->wake, live);
	rc = 0;
out:
	api_qput(a, q);
	if (rc < 0 && inserted) {
		const char **ids = xmalloc(n * sizeof(*ids));

		for (i = 0; i < n; i++)
			ids[i] = l->specs[i].id;
		if (store_delete_many(a->store, ids, n, &e) < 0)
			log_warn("cannot undo the rows of a flow; reconcile will enqueue them",
				 "error", e.msg);
		free(ids);
	}
	return rc;
}

/* A node of a flow and, depth first, its children (`kids`: an array of
 * job objects, each with children of its own or not): they go into
 * l->specs before it, and it is linked to them (with `policy`). Ids are
 * minted here, so the links can name them. *count is how many members
 * there are; *shape gets {i: its index, children?: [their shapes]}, for
 * the answer. `where` names the node in messages ("children[1]"), "" for
 * the root (the parent, whose children are the body's). Returns its
 * index, or -1 with the answer given. */
static long flow_node(struct api *a, struct httpd_request *req, json_t *node, json_t *kids,
		      const char *where, struct linked *l, size_t *count,
		      enum job_dep_policy policy, json_t **shape)
{
	json_t *ids = NULL, *kshape = NULL, *copy = NULL, *v;
	char kwhere[256];
	long k, me = -1;
	size_t i;

	if (kids && (!json_is_array(kids) || json_array_size(kids) == 0)) {
		api_reply_error(a, req, 400, "invalid_field",
				"%s%sfield 'children': expected an array of 1 or more jobs", where,
				*where ? ": " : "");
		return -1;
	}
	if (kids) {
		ids = json_array();
		kshape = json_array();
		json_array_foreach(kids, i, v) {
			json_t *ks = NULL;

			snprintf(kwhere, sizeof(kwhere), "%s%schildren[%zu]", where,
				 *where ? "." : "", i);
			k = flow_node(a, req, v, json_is_object(v) ? json_object_get(v, "children")
					: NULL, kwhere, l, count, policy, &ks);
			if (k < 0)
				goto out;
			json_array_append_new(ids, json_string(l->specs[k].id));
			json_array_append_new(kshape, ks);
		}
	}
	if (*count >= QUEUE_MAX_BATCH) {
		api_reply_error(a, req, 400, "invalid_field",
				"a flow holds at most %d jobs", QUEUE_MAX_BATCH);
		goto out;
	}
	/* a child's own children were taken above; the parent's are the
	 * body's (a "children" member in it is refused as unknown) */
	copy = json_is_object(node) && *where ? json_copy(node) : json_incref(node);
	if (*where)
		json_object_del(copy, "children");
	if (member_parse(a, req, copy, *where ? where : "parent", l, &l->specs[*count]) < 0)
		goto out;
	me = (long)(*count)++;
	l->specs[me].queue = l->queue;
	job_spec_resolve(&l->specs[me], &a->defaults, clock_now_us());
	if (ids)
		link_to(l, (size_t)me, ids, policy);
	*shape = json_pack("{s:I}", "i", (json_int_t)me);
	if (kshape)
		json_object_set(*shape, "children", kshape);
out:
	json_decref(copy);
	json_decref(ids);
	json_decref(kshape);
	return me;
}

/* The answer's {id, status, children?} of a node from its shape. */
static json_t *flow_doc(const json_t *shape, const struct queue_enqueued *out)
{
	size_t i = (size_t)json_integer_value(json_object_get(shape, "i"));
	json_t *doc = json_pack("{s:s,s:s}", "id", out[i].id, "status",
				job_status_name(out[i].status));
	const json_t *kids = json_object_get(shape, "children");
	json_t *arr;
	size_t k;

	if (kids) {
		arr = json_array();
		for (k = 0; k < json_array_size(kids); k++)
			json_array_append_new(arr, flow_doc(json_array_get(kids, k), out));
		json_object_set_new(doc, "children", arr);
	}
	return doc;
}

/* POST /v1/flows {queue?, parent: job, children: [job...]}: the parent
 * depends on every child (on_dependency_failure?, default fail), and a
 * child with children of its own on them, to any depth (a tree of at
 * most QUEUE_MAX_BATCH jobs). */
void api_post_flow(struct api *a, struct httpd_request *req, const char *arg)
{
	static const char *const known[] = {
		"queue", "parent", "children", "on_dependency_failure", NULL
	};
	struct queue_enqueued *out = NULL;
	enum job_dep_policy policy = JOB_DEP_FAIL;
	struct linked l = { 0 };
	json_t *body, *v, *doc, *shape = NULL;
	size_t count = 0;
	struct err e;

	(void)arg;
	if (!(body = body_object(a, req, known)))
		return;
	if ((v = json_object_get(body, "on_dependency_failure")) &&
	    job_dep_policy_parse(json_string_value(v), &policy, &e) < 0) {
		api_reply_error(a, req, 400, "invalid_field", "field 'on_dependency_failure': %s",
				e.msg);
		goto out;
	}
	if (linked_queue(a, req, body, &l) < 0)
		goto out;
	v = json_object_get(body, "children");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		api_reply_error(a, req, 400, "invalid_field",
				"field 'children': expected an array of 1 or more jobs");
		goto out;
	}
	if (!json_object_get(body, "parent")) {
		api_reply_error(a, req, 400, "invalid_field", "field 'parent' is required");
		goto out;
	}
	linked_alloc(&l, QUEUE_MAX_BATCH);
	if (flow_node(a, req, json_object_get(body, "parent"), v, "", &l, &count, policy,
		      &shape) < 0)
		goto out;
	l.n = count - 1; /* the root, last */
	out = xmalloc(count * sizeof(*out));
	if (create_linked(a, req, &l, out) < 0)
		goto out;
	doc = flow_doc(shape, out);
	json_object_set_new(doc, "queue", json_string(l.queue));
	api_reply_json(a, req, 202, doc);
out:
	free(out);
	json_decref(shape);
	/* the members parsed (one refused is left zeroed) */
	l.n = count ? count - 1 : 0;
	linked_release(&l);
	json_decref(body);
}

/* POST /v1/batches {queue?, jobs: [job...], callback?: job,
 * callback_url?}: the callback (a noop when none) is the batch. */
void api_post_batch(struct api *a, struct httpd_request *req, const char *arg)
{
	static const char *const known[] = {
		"queue", "jobs", "callback", "callback_url", NULL
	};
	struct queue_enqueued *out = NULL;
	struct linked l = { 0 };
	json_t *body, *v, *cb = NULL, *doc;
	const char *url = NULL;
	char where[32];
	size_t i;

	(void)arg;
	if (!(body = body_object(a, req, known)))
		return;
	if ((v = json_object_get(body, "callback_url"))) {
		url = json_string_value(v);
		if (!job_url_ok(url)) {
			api_reply_error(a, req, 400, "invalid_field",
					"field 'callback_url': expected an http:// or https:// URL");
			goto out;
		}
	}
	if (members_parse(a, req, body, "jobs", &l) < 0)
		goto out;
	cb = json_object_get(body, "callback");
	cb = cb ? json_incref(cb) : json_pack("{s:s}", "type", "noop");
	if (url && json_object_get(cb, "callback_url")) {
		api_reply_error(a, req, 400, "invalid_field",
				"fields 'callback_url' and 'callback.callback_url' exclude each other");
		goto out;
	}
	if (url)
		json_object_set_new(cb, "callback_url", json_string(url));
	if (member_parse(a, req, cb, "callback", &l, &l.specs[l.n]) < 0)
		goto out;
	link_members(a, &l, JOB_DEP_IGNORE);
	for (i = 0; i <= l.n; i++)
		l.specs[i].batch = l.specs[l.n].id;
	out = xmalloc((l.n + 1) * sizeof(*out));
	if (create_linked(a, req, &l, out) < 0)
		goto out;
	snprintf(where, sizeof(where), "/v1/batches/");
	doc = json_pack("{s:s,s:s,s:s+,s:[]}", "id", out[l.n].id, "queue", l.queue,
			"status_url", where, out[l.n].id, "jobs");
	for (i = 0; i < l.n; i++)
		json_array_append_new(json_object_get(doc, "jobs"), json_string(out[i].id));
	api_reply_json(a, req, 202, doc);
out:
	json_decref(cb);
	free(out);
	linked_release(&l);
	json_decref(body);
}

/* GET /v1/batches/{id}: the batch's counts, from its callback job. */
void api_get_batch(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct job_info job;
	struct err e;
	size_t qi;

	if (!q) {
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	if (api_find_job(a, q, id, &qi, &job, &e) < 0) {
		api_qput(a, q);
		if (e.code == ERR_NOTFOUND)
			api_reply_error(a, req, 404, "not_found", "no batch '%s'", id);
		else
			api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	if (!job.batch || strcmp(job.batch, job.id))
		api_reply_error(a, req, 404, "not_found", "no batch '%s'", id);
	else
		api_reply_json(a, req, 200, job_batch_to_json(&job));
	job_info_release(&job);
}
