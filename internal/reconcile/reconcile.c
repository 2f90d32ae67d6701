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
	return queue_enqueue(q, row->queue, &spec, 1, &out, NULL, err);
}

int reconcile_run(struct queue *q, struct store *s, double min_age_s,
		  struct reconcile_stats *st, struct err *err)
{
	char after[UUID_STR_LEN] = "";
	struct store_job_list page;
	struct job_info *finals = NULL;
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

			st->scanned++;
			if (queue_job_get(q, row->queue, row->id, &finals[nf], &e) < 0) {
				if (e.code == ERR_NOTFOUND && requeue(q, row, &e) == 0) {
					st->requeued++;
					continue;
				}
				if (e.code == ERR_UNAVAILABLE) {
					*err = e;
					store_job_list_release(&page);
					goto out;
				}
				st->errors++;
				continue;
			}
			if (job_status_final(finals[nf].status))
				nf++;
			else
				job_info_release(&finals[nf]);
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
	return rc;
}
