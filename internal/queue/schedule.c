/* schedule.c - cron schedules, the parts that need no Redis: the request
 * parser and the document (one home for the API and the CLI), and the
 * fire times from a cron expression in a zone (queue.c stores them). */
#include "queue/priv.h"

#include "base/clock.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

void queue_schedule_release(struct queue_schedule *s)
{
	if (!s)
		return;
	job_spec_release(&s->job);
	job_info_release(&s->tmpl);
	memset(s, 0, sizeof(*s));
}

static const char *const catchup_names[] = {
	[QUEUE_CATCHUP_ONE] = "one", [QUEUE_CATCHUP_ALL] = "all",
	[QUEUE_CATCHUP_SKIP] = "skip",
};

const char *queue_catchup_name(enum queue_catchup c)
{
	return (unsigned)c <= QUEUE_CATCHUP_SKIP ? catchup_names[c] : "one";
}

int queue_catchup_parse(const char *s, enum queue_catchup *out)
{
	int i;

	for (i = 0; s && i <= QUEUE_CATCHUP_SKIP; i++)
		if (!strcmp(s, catchup_names[i])) {
			*out = (enum queue_catchup)i;
			return 0;
		}
	return -1;
}

int queue_schedule_times(const struct queue_schedule *s, int64_t after_ms,
			 int64_t *out, size_t max, struct err *err)
{
	struct cron c;
	struct cron_tz *tz;
	int64_t t = after_ms >= 0 ? after_ms / 1000 : -1;
	size_t n = 0;

	if (cron_parse(s->cron, &c, err) < 0)
		return -1;
	tz = cron_tz_load(s->tz[0] ? s->tz : "UTC", err);
	if (!tz)
		return -1;
	while (n < max && (t = cron_next(&c, tz, t)) >= 0)
		out[n++] = t * 1000;
	cron_tz_free(tz);
	return (int)n;
}

static int str_member(const json_t *obj, const char *name, const char **out)
{
	json_t *v = json_object_get(obj, name);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	*out = json_string_value(v);
	return 1;
}

int queue_schedule_from_json(const json_t *obj, struct queue_schedule *out,
			     const char **code, struct err *err)
{
	static const char *const known[] = {
		"name", "queue", "cron", "timezone", "job", "overlap", "catch_up",
		"catch_up_max", "paused", NULL
	};
	static const char *const not_in_job[] = {
		"queue", "delay_s", "run_at", "idempotency_key", "depends_on",
		"on_dependency_failure", NULL
	};
	struct queue_schedule s;
	const char *key, *v = NULL;
	json_t *m, *job;
	char *text;
	int64_t t[1];
	size_t i;

	memset(&s, 0, sizeof(s));
	*code = "invalid_field";
	if (!json_is_object(obj)) {
		*code = "invalid_json";
		return err_set(err, ERR_INVALID, "expected a JSON object (a schedule)");
	}
	json_object_foreach((json_t *)obj, key, m) {
		for (i = 0; known[i] && strcmp(key, known[i]); i++)
			;
		if (!known[i]) {
			*code = "unknown_field";
			return err_set(err, ERR_INVALID, "unknown field '%.64s'", key);
		}
	}
	if (str_member(obj, "name", &v) != 1 || queue_name_check(v, NULL) < 0)
		return err_set(err, ERR_INVALID,
			       "field 'name': expected 1 to %d of [A-Za-z0-9_.-]", QUEUE_NAME_MAX);
	snprintf(s.name, sizeof(s.name), "%s", v);
	if (str_member(obj, "cron", &v) != 1 || strlen(v) > QUEUE_SCHED_CRON_MAX)
		return err_set(err, ERR_INVALID, "field 'cron': expected a cron expression");
	snprintf(s.cron, sizeof(s.cron), "%s", v);
	v = "UTC";
	if (str_member(obj, "timezone", &v) < 0 || strlen(v) > CRON_TZ_NAME_MAX)
		return err_set(err, ERR_INVALID, "field 'timezone': expected an IANA zone name");
	snprintf(s.tz, sizeof(s.tz), "%s", v);
	s.overlap_allow = 0;
	v = NULL;
	if (str_member(obj, "overlap", &v) < 0 || (v && strcmp(v, "skip") && strcmp(v, "allow")))
		return err_set(err, ERR_INVALID, "field 'overlap': expected skip or allow");
	s.overlap_allow = v && !strcmp(v, "allow");
	v = NULL;
	if (str_member(obj, "catch_up", &v) < 0 || (v && queue_catchup_parse(v, &s.catchup) < 0))
		return err_set(err, ERR_INVALID, "field 'catch_up': expected one, all or skip");
	s.catchup_max = 1;
	if ((m = json_object_get(obj, "catch_up_max")) && !json_is_null(m)) {
		if (!json_is_integer(m) || json_integer_value(m) < 1 ||
		    json_integer_value(m) > QUEUE_SCHED_AHEAD)
			return err_set(err, ERR_INVALID, "field 'catch_up_max': expected 1 to %d",
				       QUEUE_SCHED_AHEAD);
		s.catchup_max = (int)json_integer_value(m);
	}
	if ((m = json_object_get(obj, "paused")) && !json_is_null(m)) {
		if (!json_is_boolean(m))
			return err_set(err, ERR_INVALID, "field 'paused': expected true or false");
		s.paused = json_is_true(m);
	}
	/* the cron and the zone, checked by asking for a fire time */
	if (queue_schedule_times(&s, clock_now_us() / 1000, t, 1, err) < 0) {
		err_wrap(err, "field 'cron' or 'timezone'");
		return -1;
	}
	if (queue_schedule_times(&s, clock_now_us() / 1000, t, 1, NULL) == 0)
		return err_set(err, ERR_INVALID, "field 'cron': '%s' never fires", s.cron);
	job = json_object_get(obj, "job");
	if (!json_is_object(job))
		return err_set(err, ERR_INVALID, "field 'job': expected a job request object");
	for (i = 0; not_in_job[i]; i++)
		if (json_object_get(job, not_in_job[i]))
			return err_set(err, ERR_INVALID,
				       "field 'job.%s': not in a schedule's job (the schedule says "
				       "where and when)", not_in_job[i]);
	text = json_dumps(job, JSON_COMPACT);
	if (!text)
		abort();
	if (job_spec_parse(text, strlen(text), &s.job, code, err) < 0) {
		free(text);
		err_wrap(err, "field 'job'");
		return -1;
	}
	free(text);
	*out = s;
	return 0;
}

static json_t *time_or_null(int64_t us)
{
	char buf[CLOCK_RFC3339_LEN];

	return us > 0 ? json_string(clock_rfc3339(us, buf)) : json_null();
}

json_t *queue_schedule_to_json(const char *queue, const struct queue_schedule *s)
{
	json_t *o = json_object(), *job = json_object(), *doc;

	if (!o || !job)
		abort();
	/* the template: the job document's fields a request may set */
	doc = job_info_to_json(&s->tmpl);
	json_object_set(job, "type", json_object_get(doc, "type"));
	json_object_set(job, "payload", json_object_get(doc, "payload"));
	json_object_set(job, "priority", json_object_get(doc, "priority"));
	json_object_set(job, "max_attempts", json_object_get(doc, "max_attempts"));
	json_object_set_new(job, "timeout_s", s->tmpl.timeout_s > 0 ? json_real(s->tmpl.timeout_s)
			    : json_null());
	json_object_set(job, "labels", json_object_get(doc, "labels"));
	json_object_set(job, "group", json_object_get(doc, "group"));
	json_object_set(job, "unique_key", json_object_get(doc, "unique_key"));
	json_object_set_new(job, "callback_url", s->tmpl.callback_url ?
			    json_string(s->tmpl.callback_url) : json_null());
	json_decref(doc);
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "cron", json_string(s->cron));
	json_object_set_new(o, "timezone", json_string(s->tz[0] ? s->tz : "UTC"));
	json_object_set_new(o, "job", job);
	json_object_set_new(o, "overlap", json_string(s->overlap_allow ? "allow" : "skip"));
	json_object_set_new(o, "catch_up", json_string(queue_catchup_name(s->catchup)));
	json_object_set_new(o, "catch_up_max", json_integer(s->catchup_max));
	json_object_set_new(o, "paused", json_boolean(s->paused));
	json_object_set_new(o, "next_run_at", time_or_null(s->next_ms * 1000));
	json_object_set_new(o, "last_run_at", time_or_null(s->last_fire_ms * 1000));
	json_object_set_new(o, "last_job_id", s->last_job[0] ? json_string(s->last_job) : json_null());
	json_object_set_new(o, "fired", json_integer(s->fired));
	json_object_set_new(o, "skipped", json_integer(s->skipped));
	json_object_set_new(o, "created_at", time_or_null(s->created_us));
	return o;
}
