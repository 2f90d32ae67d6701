/* reconcile.c - keeping Postgres and Redis in step (reconcile.h). */
#include "reconcile/reconcile.h"

#include "base/mem.h"
#include "job/job.h"
#include "queue/queue.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 500

/* Re-enqueues the job of `row` under its own id, as it was asked for. */
static int requeue(struct queue *q, const struct job_info *row, struct err *err)
{
	struct job_spec spec;
	struct queue_enqueued out;

	job_info_spec(row, &spec);
	if (queue_enqueue(q, row->queue, &spec, 1, &out, NULL, err) < 0)
		return -1;
	if (out.missing[0])
		/* a waiting job whose dependency Redis no longer knows */
		return err_set(err, ERR_CONFLICT, "cannot enqueue job '%s' again: its "
			       "dependency '%s' is gone from queue '%s'", row->id,
			       out.missing, row->queue);
	return 0;
}

#define FINALS_BATCH 256

int reconcile_finals(struct queue *q, struct store *s, const char *queue,
		     int max_batches, int64_t *applied, struct err *err)
{
	struct job_info *f = xcalloc(FINALS_BATCH, sizeof(*f));
	char (*ids)[QUEUE_FINAL_ID_MAX] = xmalloc(FINALS_BATCH * sizeof(*ids));
	int n, i, batches = 0, rc = -1;

	for (;;) {
		struct job_info *ok = xcalloc(FINALS_BATCH, sizeof(*ok));
		int changed, nok = 0;

		n = queue_finals_read(q, queue, f, ids, FINALS_BATCH, err);
		if (n < 0) {
			free(ok);
			goto out;
		}
		/* unreadable entries (zeroed) are dropped with the batch */
		for (i = 0; i < n; i++)
			if (f[i].id[0])
				ok[nok++] = f[i];
		changed = nok ? store_apply_finals(s, ok, (size_t)nok, err) : 0;
		free(ok);
		for (i = 0; i < n; i++)
			job_info_release(&f[i]);
		if (changed < 0)
			goto out;
		if (applied)
			*applied += changed;
		if (n > 0 && queue_finals_ack(q, queue, ids, (size_t)n, err) < 0)
			goto out;
		if (n < FINALS_BATCH || (max_batches > 0 && ++batches >= max_batches))
			break;
	}
	rc = 0;
out:
	free(f);
	free(ids);
	return rc;
}

/* Copies the finals log of `queue` once per pass (pumped[] remembers). */
static int pump_once(struct queue *q, struct store *s, const char *queue,
		     char ***pumped, size_t *npumped, struct reconcile_stats *st,
		     struct err *err)
{
	size_t i;

	for (i = 0; i < *npumped; i++)
		if (!strcmp((*pumped)[i], queue))
			return 0;
	if (reconcile_finals(q, s, queue, 0, &st->finals, err) < 0)
		return -1;
	*pumped = xrealloc(*pumped, (*npumped + 1) * sizeof(**pumped));
	(*pumped)[(*npumped)++] = xstrdup(queue);
	return 1;
}

/* A row whose job Redis does not have: lost, or finished and evicted with
 * its completion still in the finals log. Copies the log first and reads
 * the row again; a row the log made final is not lost. Otherwise the job
 * is enqueued again under its own id. Returns 0 or -1 with err. */
static int missing(struct queue *q, struct store *s, const struct job_info *row,
		   char ***pumped, size_t *npumped, struct reconcile_stats *st,
		   struct err *err)
{
	struct job_info now;
	int final;

	if (pump_once(q, s, row->queue, pumped, npumped, st, err) < 0)
		return -1;
	if (store_get(s, row->id, &now, err) < 0)
		return err->code == ERR_NOTFOUND ? 0 : -1;
	final = job_status_final(now.status);
	job_info_release(&now);
	if (final)
		return 0;
	if (requeue(q, row, err) < 0)
		return -1;
	st->requeued++;
	return 0;
}

int reconcile_run(struct queue *q, struct store *s, double min_age_s,
		  struct reconcile_stats *st, struct err *err)
{
	char after[UUID_STR_LEN] = "";
	struct store_job_list page;
	struct job_info *finals = NULL;
	char **pumped = NULL;
	size_t npumped = 0;
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
		nf = 0;
		for (i = 0; i < page.len; i++) {
			const struct job_info *row = &page.items[i];
			struct err e;
			int r;

			st->scanned++;
			err_clear(&e);
			if (queue_job_get(q, row->queue, row->id, &finals[nf], &e) < 0) {
				r = e.code == ERR_NOTFOUND ? missing(q, s, row, &pumped, &npumped, st, &e) : -1;
				if (r < 0 && e.code == ERR_UNAVAILABLE) {
					*err = e;
					store_job_list_release(&page);
					goto out;
				}
				if (r < 0)
					st->errors++;
				continue;
			}
			if (!job_status_final(finals[nf].status)) {
				job_info_release(&finals[nf]);
				continue;
			}
			/* final in Redis, not in Postgres: its completion may
			 * wait in the log too (a burial by lease expiry, made
			 * by a take that has no Postgres to tell), where no
			 * worker copies it until one next ends a job */
			if (pump_once(q, s, row->queue, &pumped, &npumped, st, &e) < 0)
				st->errors++;
			nf++;
		}
		if (nf > 0) {
			int changed = store_apply_finals(s, finals, nf, err);

			if (changed < 0) {
				store_job_list_release(&page);
				goto out;
			}
			st->finals += changed;
		}
		memcpy(after, page.items[page.len - 1].id, UUID_STR_LEN);
		for (i = 0; i < nf; i++)
			job_info_release(&finals[i]);
		free(finals);
		finals = NULL;
		nf = 0;
		store_job_list_release(&page);
		if (n < PAGE)
			break;
	}
	rc = 0;
out:
	for (i = 0; finals && i < nf; i++)
		job_info_release(&finals[i]);
	free(finals);
	for (i = 0; i < npumped; i++)
		free(pumped[i]);
	free(pumped);
	return rc;
}
