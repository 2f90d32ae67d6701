/* find.c - pages of jobs that match a filter, and the dependencies of a
 * job, over queue_list and queue_job_get (the public calls: no script of
 * its own). */
#include "queue/queue.h"

#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids read per round trip while filtering; without a filter a window is
 * exactly the page asked for. */
#define FIND_WINDOW 200

static int matches(const struct queue_find *f, const struct job_info *j)
{
	if (j->status != f->state)
		return 0;
	if (f->type && (!j->type || strcmp(j->type, f->type)))
		return 0;
	if (f->id_part && !strstr(j->id, f->id_part))
		return 0;
	return !f->labels || job_info_has_labels(j, f->labels);
}

int queue_find(struct queue *q, const char *queue, struct queue_find *f,
	       struct err *err)
{
	size_t scan_max = f->scan_max ? f->scan_max : QUEUE_FIND_SCAN;
	size_t scanned = 0, win, i;
	/* the delayed set holds scheduled and retrying jobs alike */
	int filtered = f->type || f->id_part || f->labels ||
		       f->state == JOB_SCHEDULED || f->state == JOB_RETRYING;
	char **ids;
	struct err e;
	int n, rc = 0;

	f->njobs = 0;
	f->more = 1;
	while (f->more && f->njobs < f->max && scanned < scan_max) {
		win = filtered ? FIND_WINDOW : f->max - f->njobs;
		if (win > scan_max - scanned)
			win = scan_max - scanned;
		n = queue_list(q, queue, f->state, f->offset + scanned, win, &ids, err);
		if (n < 0) {
			rc = -1;
			break;
		}
		f->more = (size_t)n == win;
		for (i = 0; i < (size_t)n; i++) {
			struct job_info j;

			/* ids past a full page stay unread: the next page
			 * starts with them */
			if (rc == 0 && f->njobs < f->max) {
				scanned++;
				if (queue_job_get(q, queue, ids[i], &j, &e) == 0) {
					if (matches(f, &j))
						f->jobs[f->njobs++] = j;
					else
						job_info_release(&j);
				} else if (e.code != ERR_NOTFOUND) {
					if (err)
						*err = e;
					rc = -1;
				}
			} else {
				f->more = 1;
			}
			free(ids[i]);
		}
		free(ids);
		if (rc < 0)
			break;
	}
	f->next_offset = f->offset + scanned;
	if (rc < 0) {
		for (i = 0; i < f->njobs; i++)
			job_info_release(&f->jobs[i]);
		f->njobs = 0;
	}
	return rc;
}

int queue_job_deps(struct queue *q, const char *queue, const struct job_info *j,
		   json_t **out, struct err *err)
{
	json_t *ids = j->depends_on ? json_loads(j->depends_on, 0, NULL) : NULL;
	struct job_info *v = NULL;
	const char **s = NULL;
	int *found = NULL;
	size_t i, k = 0;
	json_t *id;
	int rc = 0;

	*out = NULL;
	if (!json_is_array(ids)) {
		json_decref(ids);
		return 0;
	}
	v = xcalloc(json_array_size(ids) + 1, sizeof(*v));
	s = xcalloc(json_array_size(ids) + 1, sizeof(*s));
	found = xcalloc(json_array_size(ids) + 1, sizeof(*found));
	json_array_foreach(ids, i, id) {
		if (json_string_value(id) && uuid_valid(json_string_value(id)))
			s[k++] = json_string_value(id);
	}
	/* one round trip for them all (a batch's callback has up to 1000) */
	if (queue_jobs_get(q, queue, s, k, v, found, err) < 0) {
		rc = -1;
		k = 0;
	}
	for (i = 0; i < k; i++) {
		if (found[i])
			continue;
		/* its record is gone (RESULT_TTL): only its id */
		memset(&v[i], 0, sizeof(v[i]));
		snprintf(v[i].id, sizeof(v[i].id), "%s", s[i]);
		v[i].status = JOB_NSTATUS;
	}
	if (rc == 0)
		*out = job_deps_to_json(v, k);
	for (i = 0; i < k; i++)
		if (found[i])
			job_info_release(&v[i]);
	free(v);
	free(s);
	free(found);
	json_decref(ids);
	return rc;
}
