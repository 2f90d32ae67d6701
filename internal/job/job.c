#include "job/job.h"

#include "base/buf.h"
#include "base/mem.h"
#include "job/checks.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job_settings job_settings = {
	.data_dir = "/tmp",
	.tmp_dir = "/tmp",
	.allow_private = "",
	.max_input_bytes = (int64_t)2 << 30,
	.webhook_secret = "",
};

/* Every type wakeq knows. Run functions are bound by the worker. */
static struct job_type types[] = {
	{ .name = "noop", .check = job_check_noop },
	{ .name = "sleep", .check = job_check_sleep },
	{ .name = "fail", .check = job_check_fail },
	{ .name = "media.probe", .check = job_check_media_probe },
	{ .name = "media.thumbnail", .check = job_check_media_thumbnail },
	{ .name = "media.transcode", .check = job_check_media_transcode },
	{ .name = "http.request", .check = job_check_http_request },
	{ .name = "webhook.deliver", .check = job_check_webhook_deliver, .internal = 1 },
};

#define NTYPES (sizeof(types) / sizeof(types[0]))

/* Types added at start-up (job_register), in registration order. */
static struct job_type *registered;
static size_t nregistered;
static char *names_cache; /* job_type_names(), rebuilt after a change */

const struct job_type *job_type_at(size_t i)
{
	if (i < NTYPES)
		return &types[i];
	i -= NTYPES;
	return i < nregistered ? &registered[i] : NULL;
}

static struct job_type *find(const char *name)
{
	size_t i;

	for (i = 0; name && i < NTYPES; i++)
		if (!strcmp(types[i].name, name))
			return &types[i];
	for (i = 0; name && i < nregistered; i++)
		if (!strcmp(registered[i].name, name))
			return &registered[i];
	return NULL;
}

const struct job_type *job_find(const char *name)
{
	return find(name);
}

int job_register(const struct job_type *t, struct err *err)
{
	const struct job_type *old;

	if (!t->name || !*t->name)
		return err_set(err, ERR_INVALID, "job type name is empty");
	old = find(t->name);
	if (old)
		return err_set(err, ERR_INVALID, "job type '%s' is already defined%s",
			       t->name, old >= types && old < types + NTYPES
			       ? " (built in)" : "");
	/* job_find's pointers stay valid: registration ends before any
	 * lookup (start-up only). */
	registered = xrealloc(registered, (nregistered + 1) * sizeof(*registered));
	registered[nregistered++] = *t;
	free(names_cache);
	names_cache = NULL;
	return 0;
}

void job_unregister_all(void)
{
	free(registered);
	registered = NULL;
	nregistered = 0;
	free(names_cache);
	names_cache = NULL;
}

void job_spec_type_defaults(struct job_spec *s)
{
	const struct job_type *t = find(s->type);

	if (!t)
		return;
	if (!s->max_attempts && t->max_attempts > 0)
		s->max_attempts = t->max_attempts;
	if (s->timeout_s <= 0 && t->timeout_s > 0)
		s->timeout_s = t->timeout_s;
}

const char *job_type_names(void)
{
	struct buf b;
	const struct job_type *t;
	size_t i;

	if (names_cache)
		return names_cache;
	buf_init(&b);
	for (i = 0; (t = job_type_at(i)); i++)
		if (!t->internal)
			buf_printf(&b, "%s%s", b.len ? ", " : "", t->name);
	names_cache = buf_detach(&b, NULL);
	return names_cache;
}

static int type_check(const struct job_type *t, const json_t *payload, struct err *err)
{
	return t->check_data ? t->check_data(payload, t->data, err) : t->check(payload, err);
}

int job_check(const char *type, const char *payload, struct err *err)
{
	const struct job_type *t = job_find(type);
	json_error_t jerr;
	json_t *p;
	int r;

	if (!t || t->internal)
		return err_set(err, ERR_INVALID, "unknown job type '%s' (known: %s)",
			       type ? type : "", job_type_names());
	if (!payload)
		payload = "{}";
	p = json_loads(payload, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!p)
		return err_set(err, ERR_INVALID, "payload is not JSON: %s", jerr.text);
	r = type_check(t, p, err);
	json_decref(p);
	return r;
}

int job_bind(const char *name, job_run_fn run)
{
	struct job_type *t = find(name);

	if (!t)
		return -1;
	t->run = run;
	return 0;
}

int job_execute(const struct job_run *run, struct job_outcome *out)
{
	const struct job_type *t = job_find(run->type);
	struct err e;

	if (!t)
		return job_fail(out, 0, "unknown job type '%s'", run->type);
	if (!t->run)
		return job_fail(out, 0, "no handler for job type '%s' in this worker",
				 run->type);
	if (type_check(t, run->payload, &e) < 0)
		return job_fail(out, 0, "bad payload: %s", e.msg);
	return t->run(run, out);
}

int job_fail(struct job_outcome *out, int retryable, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
	out->retryable = retryable;
	return -1;
}

void job_outcome_release(struct job_outcome *out)
{
	json_decref(out->result);
	out->result = NULL;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* What a getter wants a member to be, and its name in the error. */
enum want { WANT_STRING, WANT_NUMBER, WANT_BOOL };
static const char *const want_name[] = {
	[WANT_STRING] = "a string", [WANT_NUMBER] = "a number", [WANT_BOOL] = "true or false",
};

/* The payload's member `name` when present and what `want` says; NULL
 * when absent (an error when required) or of another kind (an error),
 * *rc -1 after an error, else 0. */
static const json_t *member(const json_t *obj, const char *name, int required,
			    enum want want, struct err *err, int *rc)
{
	const json_t *v;

	*rc = 0;
	if (!json_is_object(obj)) {
		*rc = err_set(err, ERR_INVALID, "payload must be a JSON object, not %s",
			      json_kind(obj));
		return NULL;
	}
	v = json_object_get(obj, name);
	if (!v || json_is_null(v)) {
		if (required)
			*rc = err_set(err, ERR_INVALID, "payload field '%s' is required", name);
		return NULL;
	}
	if (want == WANT_STRING ? !json_is_string(v) : want == WANT_NUMBER ?
	    !json_is_number(v) : !json_is_boolean(v)) {
		*rc = err_set(err, ERR_INVALID, "payload field '%s' must be %s, not %s", name,
			      want_name[want], json_kind(v));
		return NULL;
	}
	return v;
}

int job_get_string(const json_t *obj, const char *name, int required,
		    const char **out, struct err *err)
{
	int rc;
	const json_t *v = member(obj, name, required, WANT_STRING, err, &rc);

	if (v)
		*out = json_string_value(v);
	return rc;
}

int job_get_number(const json_t *obj, const char *name, int required,
		    double min, double max, double *out, struct err *err)
{
	int rc;
	const json_t *v = member(obj, name, required, WANT_NUMBER, err, &rc);
	double d;

	if (!v)
		return rc;
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		return err_set(err, ERR_INVALID, "payload field '%s' must be from %g to %g",
			       name, min, max);
	*out = d;
	return 0;
}

int job_get_bool(const json_t *obj, const char *name, int required,
		  int *out, struct err *err)
{
	int rc;
	const json_t *v = member(obj, name, required, WANT_BOOL, err, &rc);

	if (v)
		*out = json_is_true(v);
	return rc;
}
