/* linked.c - flows and batches: jobs created together, linked by their
 * dependencies (job.h "linked jobs"), parsed once for every door.
 *
 * Members go into specs[] in the order they are enqueued: a job after
 * those it depends on, so the enqueue script links each one to jobs it has
 * already stored, in the same atomic run, and no worker can finish a child
 * before its parent knows it (docs/QUEUE.md "Dependencies"). Ids are
 * minted here, so that the links can name them.
 *
 * A batch is its callback job: the callback depends on every job of the
 * batch with on_dependency_failure "ignore", so it is queued once, by the
 * settle of the last one to end, and counts how they ended.
 */
#include "job/job.h"

#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the parse of one request carries along. */
struct parse {
	struct job_linked *l;
	const struct job_defaults *d;
	size_t cap;               /* room in l->specs */
	int64_t now_us;
	const char **code;
	struct err *err;
};

static int refuse(struct parse *p, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct parse *p, const char *code, const char *fmt, ...)
{
	va_list ap;

	*p->code = code;
	va_start(ap, fmt);
	err_vset(p->err, ERR_INVALID, fmt, ap);
	va_end(ap);
	return -1;
}

/* Only the `known` members in the request object. */
static int known_only(struct parse *p, json_t *body, const char *const *known)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(body))
		return refuse(p, "invalid_json", "body: expected a JSON object");
	json_object_foreach(body, key, v) {
		for (i = 0; known[i] && strcmp(key, known[i]); i++)
			;
		if (!known[i])
			return refuse(p, "unknown_field", "unknown field '%.64s'", key);
	}
	return 0;
}

/* The request's queue into l->queue: its "queue", else the default. */
static int request_queue(struct parse *p, json_t *body)
{
	json_t *v = json_object_get(body, "queue");

	if (v && !json_is_string(v))
		return refuse(p, "invalid_field", "field 'queue': expected a queue name");
	p->l->queue = v ? json_string_value(v) : p->d->queue ? p->d->queue : "default";
	return 0;
}

/* Links member i to the members whose ids are in `ids` (a JSON array). */
static void link_to(struct job_linked *l, size_t i, json_t *ids, enum job_dep_policy policy)
{
	l->deps[i] = json_dumps(ids, JSON_COMPACT);
	if (!l->deps[i])
		abort();
	l->specs[i].depends_on = l->deps[i];
	l->specs[i].dep_policy = policy;
}

/* One member (a job request object) into specs[*count], checked as
 * job_spec_parse checks a job, with what a linked job may not have
 * refused (its links are made here, and keys that could answer an
 * existing job would break them), and resolved. `where` names it in
 * messages ("children[3]"). Returns its index, or -1 with the error. */
static long member(struct parse *p, json_t *v, const char *where, size_t *count)
{
	static const char *const refused[] = {
		"depends_on", "on_dependency_failure", "idempotency_key", "unique_key",
		NULL
	};
	struct job_linked *l = p->l;
	struct job_spec *out = &l->specs[*count];
	const char *code = "invalid_field";
	struct err e;
	char *text;
	size_t i;
	int rc;

	if (!json_is_object(v))
		return refuse(p, "invalid_field", "%s: expected a job object", where);
	for (i = 0; refused[i]; i++)
		if (json_object_get(v, refused[i]))
			return refuse(p, "invalid_field",
				      "%s: field '%s' is not allowed here (the flow or "
				      "batch links its jobs)", where, refused[i]);
	text = json_dumps(v, JSON_COMPACT);
	if (!text)
		abort();
	rc = job_spec_parse(text, strlen(text), out, &code, &e);
	free(text);
	if (rc < 0)
		return refuse(p, code, "%s: %s", where, e.msg);
	if (out->queue && strcmp(out->queue, l->queue)) {
		refuse(p, "invalid_field",
		       "%s: field 'queue': '%s' is not the flow's queue '%s' "
		       "(linked jobs share one queue)", where, out->queue, l->queue);
		job_spec_release(out);
		return -1;
	}
	out->queue = l->queue;
	job_spec_resolve(out, p->d, p->now_us);
	return (long)(*count)++;
}

/* A node of a flow and, depth first, its children (`kids`: an array of
 * job objects, each with children of its own or not): they go into specs
 * before it, and it is linked to them (with `policy`). *shape gets {i: its
 * index, children?: [their shapes]}, for the answer. `where` names the
 * node in messages ("children[1]"), "" for the root (the parent, whose
 * children are the request's). Returns its index, or -1 with the error. */
static long flow_node(struct parse *p, json_t *node, json_t *kids, const char *where,
		      size_t *count, enum job_dep_policy policy, json_t **shape)
{
	json_t *ids = NULL, *kshape = NULL, *copy = NULL, *v;
	char kwhere[256];
	long k, me = -1;
	size_t i;

	if (kids && (!json_is_array(kids) || json_array_size(kids) == 0)) {
		refuse(p, "invalid_field", "%s%sfield 'children': expected an array of 1 or more jobs",
		       where, *where ? ": " : "");
		return -1;
	}
	if (kids) {
		ids = json_array();
		kshape = json_array();
		json_array_foreach(kids, i, v) {
			json_t *ks = NULL;

			snprintf(kwhere, sizeof(kwhere), "%s%schildren[%zu]", where,
				 *where ? "." : "", i);
			k = flow_node(p, v, json_is_object(v) ? json_object_get(v, "children") : NULL,
				      kwhere, count, policy, &ks);
			if (k < 0)
				goto out;
			json_array_append_new(ids, json_string(p->l->specs[k].id));
			json_array_append_new(kshape, ks);
		}
	}
	if (*count >= p->cap) {
		refuse(p, "invalid_field", "a flow holds at most %zu jobs", p->cap);
		goto out;
	}
	/* a child's own children were taken above; the parent's are the
	 * request's (a "children" member in it is refused as unknown) */
	copy = json_is_object(node) && *where ? json_copy(node) : json_incref(node);
	if (*where)
		json_object_del(copy, "children");
	if ((me = member(p, copy, *where ? where : "parent", count)) < 0)
		goto out;
	if (ids)
		link_to(p->l, (size_t)me, ids, policy);
	*shape = json_pack("{s:I}", "i", (json_int_t)me);
	if (kshape)
		json_object_set(*shape, "children", kshape);
out:
	json_decref(copy);
	json_decref(ids);
	json_decref(kshape);
	return me;
}

/* Room for `cap` members. */
static void linked_alloc(struct parse *p, size_t cap)
{
	p->l->specs = xcalloc(cap, sizeof(*p->l->specs));
	p->l->deps = xcalloc(cap, sizeof(*p->l->deps));
	p->cap = cap;
}

int job_flow_parse(json_t *body, const struct job_defaults *d, size_t max, int64_t now_us,
		   struct job_linked *out, const char **code, struct err *err)
{
	static const char *const known[] = {
		"queue", "parent", "children", "on_dependency_failure", NULL
	};
	enum job_dep_policy policy = JOB_DEP_FAIL;
	struct job_linked l = { 0 };
	struct parse p = { &l, d, 0, now_us, code, err };
	size_t count = 0;
	json_t *v, *kids;
	struct err e;

	if (known_only(&p, body, known) < 0)
		goto fail;
	if ((v = json_object_get(body, "on_dependency_failure")) &&
	    job_dep_policy_parse(json_string_value(v), &policy, &e) < 0) {
		refuse(&p, "invalid_field", "field 'on_dependency_failure': %s", e.msg);
		goto fail;
	}
	if (request_queue(&p, body) < 0)
		goto fail;
	kids = json_object_get(body, "children");
	if (!json_is_array(kids) || json_array_size(kids) == 0) {
		refuse(&p, "invalid_field", "field 'children': expected an array of 1 or more jobs");
		goto fail;
	}
	if (!json_object_get(body, "parent")) {
		refuse(&p, "invalid_field", "field 'parent' is required");
		goto fail;
	}
	linked_alloc(&p, max);
	if (flow_node(&p, json_object_get(body, "parent"), kids, "", &count, policy,
		      &l.shape) < 0)
		goto fail;
	l.n = count - 1; /* the root, last */
	*out = l;
	return 0;
fail:
	/* the members parsed (one refused is left zeroed) */
	l.n = count ? count - 1 : 0;
	job_linked_release(&l);
	return -1;
}

int job_batch_parse(json_t *body, const struct job_defaults *d, size_t max, int64_t now_us,
		    struct job_linked *out, const char **code, struct err *err)
{
	static const char *const known[] = {
		"queue", "jobs", "callback", "callback_url", NULL
	};
	struct job_linked l = { 0 };
	struct parse p = { &l, d, 0, now_us, code, err };
	json_t *arr, *v, *cb = NULL, *ids;
	const char *url = NULL;
	char where[48];
	size_t i, count = 0;

	if (known_only(&p, body, known) < 0)
		goto fail;
	if ((v = json_object_get(body, "callback_url"))) {
		url = json_string_value(v);
		if (!job_url_ok(url)) {
			refuse(&p, "invalid_field",
			       "field 'callback_url': expected an http:// or https:// URL");
			goto fail;
		}
	}
	if (request_queue(&p, body) < 0)
		goto fail;
	arr = json_object_get(body, "jobs");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > max - 1) {
		refuse(&p, "invalid_field", "field 'jobs': expected an array of 1 to %zu jobs",
		       max - 1);
		goto fail;
	}
	linked_alloc(&p, json_array_size(arr) + 1);
	json_array_foreach(arr, i, v) {
		snprintf(where, sizeof(where), "jobs[%zu]", i);
		if (member(&p, v, where, &count) < 0)
			goto fail;
	}
	cb = json_object_get(body, "callback");
	cb = cb ? json_incref(cb) : json_pack("{s:s}", "type", "noop");
	if (url && json_object_get(cb, "callback_url")) {
		refuse(&p, "invalid_field",
		       "fields 'callback_url' and 'callback.callback_url' exclude each other");
		goto fail;
	}
	if (url && json_is_object(cb)) {
		/* the callback's own copy: the request stays as it came */
		json_t *own = json_copy(cb);

		json_decref(cb);
		cb = own;
		json_object_set_new(cb, "callback_url", json_string(url));
	}
	if (member(&p, cb, "callback", &count) < 0)
		goto fail;
	l.n = count - 1;
	ids = json_array();
	for (i = 0; i < l.n; i++)
		json_array_append_new(ids, json_string(l.specs[i].id));
	link_to(&l, l.n, ids, JOB_DEP_IGNORE);
	json_decref(ids);
	for (i = 0; i <= l.n; i++)
		l.specs[i].batch = l.specs[l.n].id;
	json_decref(cb);
	*out = l;
	return 0;
fail:
	json_decref(cb);
	l.n = count ? count - 1 : 0;
	job_linked_release(&l);
	return -1;
}

/* The {id, status, children?} of a node from its shape. */
static json_t *flow_doc(const json_t *shape, const struct job_linked *l,
			const enum job_status *st)
{
	size_t i = (size_t)json_integer_value(json_object_get(shape, "i"));
	json_t *doc = json_pack("{s:s,s:s}", "id", l->specs[i].id, "status",
				job_status_name(st[i]));
	const json_t *kids = json_object_get(shape, "children");
	json_t *arr;
	size_t k;

	if (kids) {
		arr = json_array();
		for (k = 0; k < json_array_size(kids); k++)
			json_array_append_new(arr, flow_doc(json_array_get(kids, k), l, st));
		json_object_set_new(doc, "children", arr);
	}
	return doc;
}

json_t *job_flow_doc(const struct job_linked *l, const enum job_status *st)
{
	json_t *doc = flow_doc(l->shape, l, st);

	json_object_set_new(doc, "queue", json_string(l->queue));
	return doc;
}

json_t *job_batch_doc(const struct job_linked *l)
{
	char where[64];
	json_t *doc;
	size_t i;

	snprintf(where, sizeof(where), "/v1/batches/%s", l->specs[l->n].id);
	doc = json_pack("{s:s,s:s,s:s,s:[]}", "id", l->specs[l->n].id, "queue", l->queue,
			"status_url", where, "jobs");

	for (i = 0; i < l->n; i++)
		json_array_append_new(json_object_get(doc, "jobs"), json_string(l->specs[i].id));
	return doc;
}

void job_linked_release(struct job_linked *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; l->specs && i <= l->n; i++) {
		job_spec_release(&l->specs[i]);
		free(l->deps[i]);
	}
	free(l->specs);
	free(l->deps);
	json_decref(l->shape);
	memset(l, 0, sizeof(*l));
}
