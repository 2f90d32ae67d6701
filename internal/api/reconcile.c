/* reconcile.c - keeping Postgres and Redis in step (api.h api_reconcile).
 *
 * Redis is the truth for a live job, Postgres the durable record. Two
 * things can drift: a row whose job never reached Redis (the enqueue
 * failed after the insert and the undo failed too) or was lost with it
 * (FLUSHALL, a failover without persistence); and a job that finished
 * while Postgres was down, so the worker could not record it. Both show
 * as a row that is not final in Postgres; the pass pages through those,
 * oldest first, and looks each one up in Redis.
 */
#include "api/api.h"

#include "base/mem.h"
#include "queue/queue.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 500

static int64_t json_time(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	int64_t us = 0;

	if (json_is_string(v) && api_time_parse(json_string_value(v), &us) == 0)
		return us;
	return 0;
}

/* Re-enqueues the job of `row` under its own id. Returns 0 or -1. */
static int requeue(struct queue *q, const struct store_job *row, struct err *err)
{
	struct queue_spec spec;
	struct queue_enqueued out;

	memset(&spec, 0, sizeof(spec));
	spec.id = row->id;
	spec.type = row->type;
	spec.payload = row->payload;
	spec.priority = row->priority;
	spec.run_at_ms = row->run_at > 0 ? row->run_at / 1000 : 0;
	spec.max_attempts = row->max_attempts;
	spec.timeout_s = row->timeout_s;
	spec.idempotency_key = row->idempotency_key;
	spec.callback_url = row->callback_url;
	return queue_enqueue(q, row->queue, &spec, 1, &out, NULL, err);
}

int api_reconcile(struct queue *q, struct store *s, double min_age_s,
		  struct api_reconcile_stats *st, struct err *err)
{
	char after[UUID_STR_LEN] = "";
	struct store_job_list page;
	struct store_final *finals = NULL;
	json_t **docs = NULL;
	int n, rc = -1;
	size_t i, nf = 0;

	memset(st, 0, sizeof(*st));
	if (min_age_s <= 0)
		min_age_s = 10;
	for (;;) {
		memset(&page, 0, sizeof(page));
		n = store_list_unfinished(s, NULL, min_age_s, after[0] ? after : NULL, PAGE,
					  &page, err);
		if (n < 0)
			goto out;
		if (n == 0) {
			store_job_list_release(&page);
			break;
		}
		finals = xcalloc(page.len, sizeof(*finals));
		docs = xcalloc(page.len, sizeof(*docs));
		nf = 0;
		for (i = 0; i < page.len; i++) {
			const struct store_job *row = &page.items[i];
			struct err e;
			char *text;
			json_t *doc;
			const char *status;
			enum store_status fs;

			st->scanned++;
			text = queue_job_json(q, row->queue, row->id, &e);
			if (!text) {
				if (e.code == ERR_NOTFOUND) {
					if (requeue(q, row, &e) == 0) {
						st->requeued++;
						continue;
					}
				}
				if (e.code == ERR_UNAVAILABLE) {
					*err = e;
					store_job_list_release(&page);
					goto out_page;
				}
				st->errors++;
				continue;
			}
			doc = json_loads(text, 0, NULL);
			free(text);
			status = doc ? json_string_value(json_object_get(doc, "status")) : NULL;
			if (!status || store_status_parse(status, &fs, NULL) < 0 ||
			    !store_status_final(fs)) {
				json_decref(doc);
				continue;
			}
			docs[nf] = doc;
			finals[nf].id = row->id;
			finals[nf].status = fs;
			{
				json_t *res = json_object_get(doc, "result");

				/* the text lives in docs[nf] via a cached dump */
				if (res && !json_is_null(res)) {
					char *dump = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);

					json_object_set_new(doc, "_result_text", json_string(dump ? dump : "null"));
					free(dump);
					finals[nf].result = json_string_value(json_object_get(doc, "_result_text"));
				}
			}
			finals[nf].error = json_string_value(json_object_get(doc, "error"));
			finals[nf].attempts = (int)json_integer_value(json_object_get(doc, "attempts"));
			finals[nf].started_at = json_time(doc, "started_at");
			finals[nf].finished_at = json_time(doc, "finished_at");
			nf++;
		}
		if (nf > 0) {
			int changed = store_apply_finals(s, finals, nf, err);

			if (changed < 0) {
				store_job_list_release(&page);
				goto out_page;
			}
			st->finals += changed;
		}
		memcpy(after, page.items[page.len - 1].id, UUID_STR_LEN);
		for (i = 0; i < nf; i++)
			json_decref(docs[i]);
		free(docs);
		free(finals);
		docs = NULL;
		finals = NULL;
		store_job_list_release(&page);
		if (n < PAGE)
			break;
	}
	rc = 0;
	goto out;
out_page:
	for (i = 0; docs && i < nf; i++)
		json_decref(docs[i]);
out:
	free(docs);
	free(finals);
	return rc;
}
