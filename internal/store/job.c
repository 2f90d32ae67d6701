/* job.c - the job row outside the database: status names, release, JSON.
 * Nothing here talks to Postgres, so the unit tests cover it without one. */
#include "store/store.h"

#include "base/clock.h"

#include <stdlib.h>
#include <string.h>

static const char *const status_names[STORE_NSTATUS] = {
	[STORE_QUEUED] = "queued",
	[STORE_SCHEDULED] = "scheduled",
	[STORE_ACTIVE] = "active",
	[STORE_RETRYING] = "retrying",
	[STORE_DONE] = "done",
	[STORE_FAILED] = "failed",
	[STORE_CANCELLED] = "cancelled",
};

const char *store_status_name(enum store_status st)
{
	if ((unsigned)st >= STORE_NSTATUS)
		return "unknown";
	return status_names[st];
}

int store_status_parse(const char *name, enum store_status *out,
		       struct err *err)
{
	int i;

	for (i = 0; name && i < STORE_NSTATUS; i++) {
		if (strcmp(name, status_names[i]) == 0) {
			*out = (enum store_status)i;
			return 0;
		}
	}
	return err_set(err, ERR_INVALID,
		       "invalid status '%s': expected queued, scheduled, "
		       "active, retrying, done, failed or cancelled",
		       name ? name : "");
}

int store_status_final(enum store_status st)
{
	return st == STORE_DONE || st == STORE_FAILED || st == STORE_CANCELLED;
}

void store_job_release(struct store_job *job)
{
	if (!job)
		return;
	free(job->queue);
	free(job->type);
	free(job->payload);
	free(job->stage);
	free(job->result);
	free(job->error);
	free(job->idempotency_key);
	free(job->callback_url);
	memset(job, 0, sizeof(*job));
}

void store_job_list_release(struct store_job_list *list)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < list->len; i++)
		store_job_release(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->len = 0;
}

/* A nullable string as a JSON string or null. */
static json_t *str_or_null(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;

	return v ? v : json_null();
}

/* Stored JSON text back as a value. Postgres only hands out valid JSON
 * from a jsonb column, but a row built by hand may not: keep such text as
 * a string rather than lose it. */
static json_t *json_or_null(const char *text)
{
	json_t *v;

	if (!text)
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v)
		v = json_string(text);
	return v ? v : json_null();
}

static json_t *time_or_null(int64_t us)
{
	char buf[CLOCK_RFC3339_LEN];

	if (us == 0)
		return json_null();
	return json_string(clock_rfc3339(us, buf));
}

json_t *store_job_to_json(const struct store_job *job)
{
	json_t *o = json_object();

	/* json_object_set_new takes the reference even on failure, and a
	 * failure here can only be out of memory: the fields below are all
	 * known-good values. A string that is not UTF-8 (json_string gives
	 * NULL) becomes null rather than a missing key. */
	json_object_set_new(o, "id", str_or_null(job->id));
	json_object_set_new(o, "queue", str_or_null(job->queue));
	json_object_set_new(o, "type", str_or_null(job->type));
	json_object_set_new(o, "status",
			    json_string(store_status_name(job->status)));
	json_object_set_new(o, "priority", json_integer(job->priority));
	json_object_set_new(o, "attempts", json_integer(job->attempts));
	json_object_set_new(o, "max_attempts", json_integer(job->max_attempts));
	json_object_set_new(o, "progress", json_real(job->progress));
	json_object_set_new(o, "stage", str_or_null(job->stage));
	json_object_set_new(o, "payload", job->payload ?
			    json_or_null(job->payload) : json_object());
	json_object_set_new(o, "result", json_or_null(job->result));
	json_object_set_new(o, "error", str_or_null(job->error));
	json_object_set_new(o, "created_at", time_or_null(job->created_at));
	json_object_set_new(o, "started_at", time_or_null(job->started_at));
	json_object_set_new(o, "finished_at", time_or_null(job->finished_at));
	json_object_set_new(o, "run_at", time_or_null(job->run_at));
	return o;
}
