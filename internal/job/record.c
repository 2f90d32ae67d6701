/* record.c - the job record: status names, the spec a client sends, the
 * info read back, the one JSON document, and the Redis hash layout of the
 * fields a client sets. */
#include "job/job.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/parse.h"

#include <ctype.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- status ------------------------------------------------------------- */

static const char *const status_names[JOB_NSTATUS] = {
	[JOB_QUEUED] = "queued",
	[JOB_SCHEDULED] = "scheduled",
	[JOB_ACTIVE] = "active",
	[JOB_RETRYING] = "retrying",
	[JOB_DONE] = "done",
	[JOB_FAILED] = "failed",
	[JOB_CANCELLED] = "cancelled",
	[JOB_WAITING] = "waiting",
};

const char *job_status_name(enum job_status st)
{
	return (unsigned)st < JOB_NSTATUS ? status_names[st] : "unknown";
}

int job_status_parse(const char *name, enum job_status *out, struct err *err)
{
	int i;

	for (i = 0; name && i < JOB_NSTATUS; i++)
		if (!strcmp(name, status_names[i])) {
			*out = (enum job_status)i;
			return 0;
		}
	return err_set(err, ERR_INVALID,
		       "invalid status '%.32s': expected queued, scheduled, "
		       "active, retrying, done, failed, cancelled or waiting",
		       name ? name : "");
}

int job_status_final(enum job_status st)
{
	return st == JOB_DONE || st == JOB_FAILED || st == JOB_CANCELLED;
}

/* ---- checks shared by every door ------------------------------------------ */

int job_idem_key_ok(const char *key)
{
	size_t i, n = key ? strlen(key) : 0;

	if (n == 0 || n > JOB_IDEM_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
			return 0;
	return 1;
}

int job_group_ok(const char *g)
{
	return job_idem_key_ok(g) && strlen(g) <= JOB_GROUP_MAX;
}

int job_url_ok(const char *u)
{
	return u && strlen(u) >= 9 && strlen(u) <= JOB_URL_MAX &&
	       (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8)) &&
	       !strpbrk(u, " \t\r\n");
}

static const char *const dep_policy_names[] = {
	[JOB_DEP_FAIL] = "fail", [JOB_DEP_CANCEL] = "cancel",
	[JOB_DEP_IGNORE] = "ignore",
};

const char *job_dep_policy_name(enum job_dep_policy p)
{
	return (unsigned)p <= JOB_DEP_IGNORE ? dep_policy_names[p] : NULL;
}

int job_dep_policy_parse(const char *name, enum job_dep_policy *out,
			 struct err *err)
{
	int i;

	for (i = 0; name && i <= JOB_DEP_IGNORE; i++)
		if (!strcmp(name, dep_policy_names[i])) {
			*out = (enum job_dep_policy)i;
			return 0;
		}
	return err_set(err, ERR_INVALID, "expected fail, cancel or ignore");
}

int job_deps_parse(const json_t *deps, char **text, struct err *err)
{
	size_t i, k, n;
	json_t *v;

	if (!json_is_array(deps))
		return err_set(err, ERR_INVALID, "expected an array of job ids");
	n = json_array_size(deps);
	if (n == 0 || n > JOB_DEPS_MAX)
		return err_set(err, ERR_INVALID, "expected 1 to %d job ids, not %zu",
			       JOB_DEPS_MAX, n);
	json_array_foreach(deps, i, v) {
		const char *id = json_string_value(v);

		if (!json_is_string(v) || strlen(id) != json_string_length(v) ||
		    !uuid_valid(id))
			return err_set(err, ERR_INVALID,
				       "entry %zu: expected a job id (a UUID)", i);
		for (k = 0; k < i; k++)
			if (!strcasecmp(id, json_string_value(json_array_get(deps, k))))
				return err_set(err, ERR_INVALID,
					       "entry %zu: job '%s' is listed twice", i, id);
	}
	*text = json_dumps(deps, JSON_COMPACT);
	if (!*text)
		abort();
	/* ids are stored lowercase, as the API's routes hand them out */
	for (i = 0; (*text)[i]; i++)
		if ((*text)[i] >= 'A' && (*text)[i] <= 'F')
			(*text)[i] = (char)((*text)[i] - 'A' + 'a');
	return 0;
}

/* A string member without NUL bytes inside. */
static const char *get_str(json_t *v)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static int label_key_ok(const char *k)
{
	size_t n = strlen(k);

	return n > 0 && n <= JOB_LABEL_KEY_MAX &&
	       strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_./-") == n;
}

int job_labels_check(const json_t *labels, struct err *err)
{
	const char *k;
	json_t *v;

	if (!json_is_object(labels))
		return err_set(err, ERR_INVALID, "expected an object of strings");
	if (json_object_size(labels) > JOB_LABELS_MAX)
		return err_set(err, ERR_INVALID, "at most %d entries",
			       JOB_LABELS_MAX);
	json_object_foreach((json_t *)labels, k, v) {
		if (!label_key_ok(k))
			return err_set(err, ERR_INVALID,
				       "label '%.64s': keys are 1 to %d of [A-Za-z0-9_./-]",
				       k, JOB_LABEL_KEY_MAX);
		if (!get_str(v) || json_string_length(v) > JOB_LABEL_VALUE_MAX)
			return err_set(err, ERR_INVALID,
				       "label '%s': expected a string of at most %d bytes",
				       k, JOB_LABEL_VALUE_MAX);
	}
	return 0;
}

/* ---- the spec ------------------------------------------------------------- */

static const char *const known_fields[] = {
	"type", "payload", "queue", "priority", "delay_s", "run_at",
	"max_attempts", "timeout_s", "idempotency_key", "callback_url",
	"labels", "unique_key", "group", "depends_on", "on_dependency_failure",
	NULL
};

static int bad(struct err *err, const char **code, const char *c,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int bad(struct err *err, const char **code, const char *c,
	       const char *fmt, ...)
{
	va_list ap;

	*code = c;
	va_start(ap, fmt);
	err_vset(err, ERR_INVALID, fmt, ap);
	va_end(ap);
	return -1;
}

/* An integer member in [min, max] (a real with no fraction is accepted). */
static int get_int(json_t *v, const char *name, int min, int max, int *out,
		   const char **code, struct err *err)
{
	double d;

	if (!json_is_number(v))
		goto bad;
	d = json_number_value(v);
	if (!isfinite(d) || d != floor(d) || d < min || d > max)
		goto bad;
	*out = (int)d;
	return 0;
bad:
	return bad(err, code, "invalid_field",
		   "field '%s': expected an integer from %d to %d", name, min, max);
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define PRINTABLE(max) "1 to " STR(max) " printable ASCII characters"

/* Field `name` of `root`, a string that `ok` accepts (`expected` says
 * which), into *out; absent, or null when `nullable`, it is left alone.
 * Returns 0, or -1 with err and *code. */
static int get_text(json_t *root, const char *name, int nullable, int (*ok)(const char *),
		    const char *expected, const char **out, const char **code,
		    struct err *err)
{
	json_t *v = json_object_get(root, name);

	if (!v || (nullable && json_is_null(v)))
		return 0;
	*out = get_str(v);
	if (ok(*out))
		return 0;
	return bad(err, code, "invalid_field", "field '%s': expected %s", name, expected);
}

static int get_secs(json_t *v, const char *name, double min, double max,
		    double *out, const char **code, struct err *err)
{
	double d;

	if (!json_is_number(v))
		goto bad;
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		goto bad;
	*out = d;
	return 0;
bad:
	return bad(err, code, "invalid_field",
		   "field '%s': expected seconds from %g to %g", name, min, max);
}

static int queue_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_.-") == n;
}

int job_spec_parse(const char *body, size_t len, struct job_spec *out,
		   const char **code, struct err *err)
{
	const struct job_type *t;
	struct job_spec r;
	json_error_t je;
	const char *key;
	json_t *v;
	struct err e;
	size_t i;

	memset(&r, 0, sizeof(r));
	if (len == 0)
		return bad(err, code, "invalid_json", "empty body: expected a JSON object");
	r.root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!r.root) {
		bad(err, code, "invalid_json",
		    "body is not valid JSON: %s (line %d, column %d)", je.text,
		    je.line, je.column);
		goto fail;
	}
	if (!json_is_object(r.root)) {
		bad(err, code, "invalid_json", "body: expected a JSON object");
		goto fail;
	}
	json_object_foreach(r.root, key, v) {
		for (i = 0; known_fields[i]; i++)
			if (!strcmp(key, known_fields[i]))
				break;
		if (!known_fields[i]) {
			bad(err, code, "unknown_field", "unknown field '%.64s'", key);
			goto fail;
		}
	}

	v = json_object_get(r.root, "type");
	if (!v) {
		bad(err, code, "invalid_field", "field 'type' is required");
		goto fail;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		bad(err, code, "invalid_field", "field 'type': expected a non-empty string");
		goto fail;
	}
	r.type = json_string_value(v);
	t = job_find(r.type);
	if (!t || t->internal || strlen(r.type) != json_string_length(v)) {
		bad(err, code, "unknown_type",
		    "field 'type': unknown job type '%.64s' (known: %s)", r.type,
		    job_type_names());
		goto fail;
	}

	v = json_object_get(r.root, "payload");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		bad(err, code, "invalid_field", "field 'payload': expected an object");
		goto fail;
	}
	r.payload_text = v && json_is_object(v) ? json_dumps(v, JSON_COMPACT)
		       : xstrdup("{}");
	if (!r.payload_text)
		abort();
	r.payload = r.payload_text;
	if (job_check(r.type, r.payload, &e) < 0) {
		bad(err, code, "invalid_payload", "%s%s",
		    strncmp(e.msg, "payload", 7) ? "payload: " : "", e.msg);
		goto fail;
	}

	if (get_text(r.root, "queue", 0, queue_name_ok,
		     "a queue name (1 to 64 of [A-Za-z0-9_.-])", &r.queue, code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "priority")) &&
	    get_int(v, "priority", 0, JOB_PRIORITY_MAX, &r.priority, code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "max_attempts")) &&
	    get_int(v, "max_attempts", 1, JOB_MAX_ATTEMPTS_MAX, &r.max_attempts,
		    code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "timeout_s")) &&
	    get_secs(v, "timeout_s", 0.001, JOB_TIMEOUT_MAX_S, &r.timeout_s, code,
		     err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "delay_s"))) {
		double d;

		if (get_secs(v, "delay_s", 0, JOB_DELAY_MAX_S, &d, code, err) < 0)
			goto fail;
		r.delay_ms = (int64_t)llround(d * 1000);
	}
	if ((v = json_object_get(r.root, "run_at"))) {
		if (json_object_get(r.root, "delay_s")) {
			bad(err, code, "invalid_field",
			    "fields 'delay_s' and 'run_at' exclude each other");
			goto fail;
		}
		if (!get_str(v) || clock_parse_rfc3339(get_str(v), &r.run_at_us) < 0) {
			bad(err, code, "invalid_field",
			    "field 'run_at': expected an RFC 3339 time such as 2030-01-02T03:04:05Z");
			goto fail;
		}
	}
	if (get_text(r.root, "idempotency_key", 0, job_idem_key_ok, PRINTABLE(JOB_IDEM_MAX),
		     &r.idempotency_key, code, err) < 0 ||
	    get_text(r.root, "unique_key", 1, job_idem_key_ok, PRINTABLE(JOB_UNIQUE_MAX),
		     &r.unique_key, code, err) < 0 ||
	    get_text(r.root, "group", 1, job_group_ok, PRINTABLE(JOB_GROUP_MAX), &r.group,
		     code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "depends_on")) && !json_is_null(v)) {
		if (job_deps_parse(v, &r.deps_text, &e) < 0) {
			bad(err, code, "invalid_field", "field 'depends_on': %s", e.msg);
			goto fail;
		}
		r.depends_on = r.deps_text;
	}
	if ((v = json_object_get(r.root, "on_dependency_failure")) && !json_is_null(v)) {
		if (job_dep_policy_parse(get_str(v), &r.dep_policy, &e) < 0) {
			bad(err, code, "invalid_field", "field 'on_dependency_failure': %s",
			    e.msg);
			goto fail;
		}
	}
	if (get_text(r.root, "callback_url", 0, job_url_ok, "an http:// or https:// URL",
		     &r.callback_url, code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "labels")) && !json_is_null(v)) {
		if (job_labels_check(v, &e) < 0) {
			bad(err, code, "invalid_field", "field 'labels': %s", e.msg);
			goto fail;
		}
		if (json_object_size(v) > 0) {
			r.labels_text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
			if (!r.labels_text)
				abort();
			r.labels = r.labels_text;
		}
	}
	*out = r;
	return 0;
fail:
	job_spec_release(&r);
	return -1;
}

void job_spec_resolve(struct job_spec *s, const struct job_defaults *d,
		      int64_t now_us)
{
	if (!s->queue)
		s->queue = d && d->queue ? d->queue : "default";
	job_spec_type_defaults(s); /* the type's defaults before the deployment's */
	if (!s->max_attempts)
		s->max_attempts = d && d->max_attempts ? d->max_attempts
				  : JOB_MAX_ATTEMPTS_DEFAULT;
	if (!s->idempotency_ttl_s)
		s->idempotency_ttl_s = d && d->idempotency_ttl_s ? d->idempotency_ttl_s
				       : JOB_IDEM_TTL_DEFAULT_S;
	if (!s->payload)
		s->payload = "{}";
	if (!s->id[0])
		uuid7_new(s->id);
	if (!s->run_at_us && s->delay_ms > 0)
		s->run_at_us = now_us + s->delay_ms * 1000;
}

enum job_status job_spec_status(const struct job_spec *s, int64_t now_us)
{
	if (s->depends_on)
		return JOB_WAITING;
	return s->delay_ms > 0 || s->run_at_us > now_us ? JOB_SCHEDULED : JOB_QUEUED;
}

void job_spec_release(struct job_spec *s)
{
	if (!s)
		return;
	json_decref(s->root);
	free(s->payload_text);
	free(s->labels_text);
	free(s->deps_text);
	memset(s, 0, sizeof(*s));
}

/* ---- the info and its document -------------------------------------------- */

/* The hash fields of a job and where each lands in struct job_info (its
 * strings, also what job_info_release frees). */
enum hash_kind { H_STR, H_INT, H_I64, H_DBL, H_STATUS, H_FLAG, H_DEPFAIL };

static const struct hash_field {
	const char *name;
	enum hash_kind kind;
	size_t off;
} hash_fields[] = {
	{ "type", H_STR, offsetof(struct job_info, type) },
	{ "payload", H_STR, offsetof(struct job_info, payload) },
	{ "status", H_STATUS, offsetof(struct job_info, status) },
	{ "priority", H_INT, offsetof(struct job_info, priority) },
	{ "attempts", H_INT, offsetof(struct job_info, attempts) },
	{ "max_attempts", H_INT, offsetof(struct job_info, max_attempts) },
	{ "progress", H_DBL, offsetof(struct job_info, progress) },
	{ "stage", H_STR, offsetof(struct job_info, stage) },
	{ "result", H_STR, offsetof(struct job_info, result) },
	{ "error", H_STR, offsetof(struct job_info, error) },
	{ "idem", H_STR, offsetof(struct job_info, idempotency_key) },
	{ "callback", H_STR, offsetof(struct job_info, callback_url) },
	{ "trace", H_STR, offsetof(struct job_info, trace) },
	{ "labels", H_STR, offsetof(struct job_info, labels) },
	{ "unique", H_STR, offsetof(struct job_info, unique_key) },
	{ "group", H_STR, offsetof(struct job_info, group) },
	{ "deps", H_STR, offsetof(struct job_info, depends_on) },
	{ "depfail", H_DEPFAIL, offsetof(struct job_info, dep_policy) },
	{ "batch", H_STR, offsetof(struct job_info, batch) },
	{ "dep_done", H_INT, offsetof(struct job_info, deps_done) },
	{ "dep_failed", H_INT, offsetof(struct job_info, deps_failed) },
	{ "dep_cancelled", H_INT, offsetof(struct job_info, deps_cancelled) },
	{ "timeout", H_DBL, offsetof(struct job_info, timeout_s) },
	{ "cancel", H_FLAG, offsetof(struct job_info, cancel_requested) },
	{ "created", H_I64, offsetof(struct job_info, created_at) },
	{ "started", H_I64, offsetof(struct job_info, started_at) },
	{ "finished", H_I64, offsetof(struct job_info, finished_at) },
	{ "run_at", H_I64, offsetof(struct job_info, run_at) },
};

void job_info_release(struct job_info *j)
{
	size_t i;

	if (!j)
		return;
	free(j->queue);
	for (i = 0; i < sizeof(hash_fields) / sizeof(hash_fields[0]); i++)
		if (hash_fields[i].kind == H_STR)
			free(*(char **)(void *)((char *)j + hash_fields[i].off));
	memset(j, 0, sizeof(*j));
}

static json_t *str_or_null(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;

	return v ? v : json_null();
}

/* Stored JSON text back as a value; a text that is not JSON is kept as a
 * string rather than lost. */
static json_t *json_of(const char *text, json_t *absent)
{
	json_t *v;

	if (!text || !*text)
		return absent;
	json_decref(absent);
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v)
		v = json_string(text);
	return v ? v : json_null();
}

static json_t *time_or_null(int64_t us)
{
	char buf[CLOCK_RFC3339_LEN];

	return us > 0 ? json_string(clock_rfc3339(us, buf)) : json_null();
}

json_t *job_info_to_json(const struct job_info *j)
{
	json_t *o = json_object();

	if (!o)
		abort();
	/* json_object_set_new takes the reference even on failure, which can
	 * only be out of memory here. */
	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "queue", str_or_null(j->queue));
	json_object_set_new(o, "type", str_or_null(j->type));
	json_object_set_new(o, "status", json_string(job_status_name(j->status)));
	json_object_set_new(o, "priority", json_integer(j->priority));
	json_object_set_new(o, "attempts", json_integer(j->attempts));
	json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
	json_object_set_new(o, "progress", json_real(j->progress));
	json_object_set_new(o, "stage", str_or_null(j->stage && *j->stage ? j->stage : NULL));
	json_object_set_new(o, "payload", json_of(j->payload, json_object()));
	json_object_set_new(o, "result", json_of(j->result, json_null()));
	json_object_set_new(o, "error", str_or_null(j->error && *j->error ? j->error : NULL));
	json_object_set_new(o, "labels", json_of(j->labels, json_object()));
	json_object_set_new(o, "unique_key", str_or_null(j->unique_key));
	json_object_set_new(o, "group", str_or_null(j->group));
	json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
	json_object_set_new(o, "created_at", time_or_null(j->created_at));
	json_object_set_new(o, "started_at", time_or_null(j->started_at));
	json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
	json_object_set_new(o, "run_at", time_or_null(j->run_at));
	if (j->depends_on) {
		json_object_set_new(o, "depends_on", json_of(j->depends_on, json_array()));
		json_object_set_new(o, "on_dependency_failure",
				    json_string(job_dep_policy_name(j->dep_policy)));
	}
	if (j->batch)
		json_object_set_new(o, "batch", json_string(j->batch));
	return o;
}

json_t *job_deps_to_json(const struct job_info *deps, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		const struct job_info *d = &deps[i];
		json_t *o = json_object();

		json_object_set_new(o, "id", json_string(d->id));
		json_object_set_new(o, "status", json_string(job_status_name(d->status)));
		json_object_set_new(o, "result", json_of(d->result, json_null()));
		json_object_set_new(o, "error",
				    str_or_null(d->error && *d->error ? d->error : NULL));
		json_object_set_new(o, "finished_at", time_or_null(d->finished_at));
		json_array_append_new(a, o);
	}
	return a;
}

json_t *job_batch_to_json(const struct job_info *cb)
{
	json_t *deps = cb->depends_on ? json_loads(cb->depends_on, 0, NULL) : NULL;
	int total = (int)json_array_size(deps);
	int ended = cb->deps_done + cb->deps_failed + cb->deps_cancelled;
	json_t *o = json_object();

	json_decref(deps);
	json_object_set_new(o, "id", json_string(cb->id));
	json_object_set_new(o, "queue", str_or_null(cb->queue));
	/* a callback cancelled while jobs still ran: the batch was given up */
	json_object_set_new(o, "status", json_string(cb->status == JOB_WAITING ? "running" :
						     cb->status == JOB_CANCELLED &&
						     ended < total ? "cancelled" : "finished"));
	json_object_set_new(o, "total", json_integer(total));
	json_object_set_new(o, "done", json_integer(cb->deps_done));
	json_object_set_new(o, "failed", json_integer(cb->deps_failed));
	json_object_set_new(o, "cancelled", json_integer(cb->deps_cancelled));
	json_object_set_new(o, "pending", json_integer(ended < total ? total - ended : 0));
	json_object_set_new(o, "callback", json_pack("{s:s,s:o,s:s}", "id", cb->id,
						     "type", str_or_null(cb->type), "status",
						     job_status_name(cb->status)));
	json_object_set_new(o, "created_at", time_or_null(cb->created_at));
	return o;
}

int job_info_has_labels(const struct job_info *j, const json_t *want)
{
	json_t *have, *v;
	const char *k;
	int ok = 1;

	if (!want || json_object_size(want) == 0)
		return 1;
	have = j->labels ? json_loads(j->labels, 0, NULL) : NULL;
	json_object_foreach((json_t *)want, k, v) {
		if (!json_equal(json_object_get(have, k), v)) {
			ok = 0;
			break;
		}
	}
	json_decref(have);
	return ok;
}

void job_info_spec(const struct job_info *j, struct job_spec *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->id, j->id, UUID_STR_LEN);
	out->queue = j->queue;
	out->type = j->type;
	out->payload = j->payload;
	out->priority = j->priority;
	out->run_at_us = j->run_at;
	out->max_attempts = j->max_attempts;
	out->timeout_s = j->timeout_s;
	out->idempotency_key = j->idempotency_key;
	out->callback_url = j->callback_url;
	out->trace = j->trace;
	out->labels = j->labels;
	out->unique_key = j->unique_key;
	out->group = j->group;
	out->depends_on = j->depends_on;
	out->dep_policy = j->dep_policy;
	out->batch = j->batch;
}

/* ---- the record in a Redis hash ------------------------------------------ */

static int has(const char *v)
{
	return v && *v;
}

unsigned job_spec_flags(const struct job_spec *s)
{
	return (has(s->callback_url) ? JOB_SPEC_HAS_CALLBACK : 0) |
	       (has(s->unique_key) ? JOB_SPEC_HAS_UNIQUE : 0) |
	       (has(s->group) ? JOB_SPEC_HAS_GROUP : 0) |
	       (has(s->trace) ? JOB_SPEC_HAS_TRACE : 0) |
	       (has(s->depends_on) ? JOB_SPEC_HAS_DEPS : 0);
}

/* Field `s` into packed; 0 when the type does not fit (a record without
 * it takes the fallback: take.lua reads the fields one by one). */
static int spec_pack(const struct job_spec *s, char packed[JOB_SPEC_PACKED_MAX])
{
	int n = snprintf(packed, JOB_SPEC_PACKED_MAX, "%c%s\t%d\t%.17g", '@' + job_spec_flags(s),
			 s->type, s->max_attempts, s->timeout_s);

	return n > 0 && n < JOB_SPEC_PACKED_MAX && !strchr(s->type, '\t');
}

int job_spec_unpack(const char *s, size_t len, unsigned *flags, char **type,
		    int *max_attempts, double *timeout_s)
{
	char buf[JOB_SPEC_PACKED_MAX], *t1, *t2;
	int64_t m;
	double d;

	if (len < 2 || len >= sizeof(buf) || s[0] < '@' || s[0] > '@' + 31 ||
	    memchr(s, '\0', len))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* TYPE, then two numbers, each starting with a digit */
	if (!(t1 = strchr(buf + 1, '\t')) || t1 == buf + 1 || !(t2 = strchr(t1 + 1, '\t')))
		return -1;
	*t1++ = *t2++ = '\0';
	if (!isdigit((unsigned char)*t1) || !isdigit((unsigned char)*t2) ||
	    parse_int64(t1, 0, INT_MAX, &m) < 0 || parse_seconds(t2, 0, DBL_MAX, &d) < 0)
		return -1;
	*flags = (unsigned)(s[0] - '@');
	*type = xstrdup(buf + 1);
	*max_attempts = (int)m;
	*timeout_s = d;
	return 0;
}

size_t job_spec_hash(const struct job_spec *s,
		     const char *names[JOB_HASH_SPEC_MAX],
		     const char *values[JOB_HASH_SPEC_MAX],
		     struct job_hash_buf *buf)
{
	size_t n = 0;

#define PUT(name, value) do { \
		if ((value) && *(value)) { \
			names[n] = (name); \
			values[n] = (value); \
			n++; \
		} \
	} while (0)
#define PUTNUM(name, fmt, v) do { \
		snprintf(buf->num[n], sizeof(buf->num[n]), fmt, v); \
		names[n] = (name); \
		values[n] = buf->num[n]; \
		n++; \
	} while (0)
	PUT("type", s->type);
	PUT("payload", s->payload ? s->payload : "{}");
	PUTNUM("max_attempts", "%d", s->max_attempts);
	PUTNUM("timeout", "%.17g", s->timeout_s);
	PUT("idem", s->idempotency_key);
	PUT("callback", s->callback_url);
	PUT("trace", s->trace);
	PUT("labels", s->labels);
	PUT("unique", s->unique_key);
	PUT("group", s->group);
	PUT("deps", s->depends_on);
	if (s->depends_on)
		PUT("depfail", job_dep_policy_name(s->dep_policy));
	PUT("batch", s->batch);
	if (s->type && spec_pack(s, buf->packed))
		PUT("s", buf->packed);
#undef PUT
#undef PUTNUM
	return n;
}


static void set_field(struct job_info *j, const struct hash_field *f, const char *v)
{
	char *p = (char *)j + f->off;

	switch (f->kind) {
	case H_STR:
		free(*(char **)p);
		*(char **)p = *v ? xstrdup(v) : NULL;
		break;
	case H_INT:
		*(int *)p = (int)strtol(v, NULL, 10);
		break;
	case H_I64:
		*(int64_t *)p = strtoll(v, NULL, 10);
		break;
	case H_DBL:
		*(double *)p = strtod(v, NULL);
		break;
	case H_STATUS:
		if (job_status_parse(v, (enum job_status *)p, NULL) < 0)
			*(enum job_status *)p = JOB_QUEUED;
		break;
	case H_FLAG:
		*(int *)p = *v != 0;
		break;
	case H_DEPFAIL:
		if (job_dep_policy_parse(v, (enum job_dep_policy *)p, NULL) < 0)
			*(enum job_dep_policy *)p = JOB_DEP_FAIL;
		break;
	}
}

void job_info_from_hash(struct job_info *out, const char *id,
			const char *queue, const char *const *fields,
			const char *const *values, size_t n)
{
	size_t i, k;

	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", id);
	out->queue = xstrdup(queue);
	out->status = JOB_QUEUED;
	for (i = 0; i < n; i++) {
		if (!fields[i] || !values[i])
			continue;
		for (k = 0; k < sizeof(hash_fields) / sizeof(hash_fields[0]); k++)
			if (!strcmp(fields[i], hash_fields[k].name)) {
				set_field(out, &hash_fields[k], values[i]);
				break;
			}
	}
}
