/* jobs.c - the commands about jobs: status (and --watch), cancel, jobs,
 * dead list / retry / purge. */
#include "cli.h"

#include "base/clock.h"
#include "base/mem.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* Reads the job `id` from the queue given, else from every queue in
 * Redis. Returns 0 with *out filled (release it), or -1 with e. */
static int job_anywhere(struct queue *q, const struct cli *c, const char *id,
			struct job_info *out, struct err *e)
{
	char **names;
	int n, i, rc;

	rc = queue_job_get(q, cli_queue(c), id, out, e);
	if (rc == 0 || cli_get(c, "queue") || e->code != ERR_NOTFOUND)
		return rc;
	n = queue_discover(q, &names, e);
	for (i = 0; i < n; i++) {
		if (rc < 0)
			rc = queue_job_get(q, names[i], id, out, e);
		free(names[i]);
	}
	free(names);
	if (rc < 0 && n >= 0)
		err_set(e, ERR_NOTFOUND, "no job '%s' in any queue", id);
	return rc;
}

/* Prints the job's document compact on one line. */
static void print_doc(const struct job_info *job)
{
	cli_print_json(job_info_to_json(job), JSON_COMPACT);
}

/* ---- status --watch ---------------------------------------------------------
 *
 * Follows a job through the queue's events (PUBLISH on every progress
 * update and state change): subscribed before the job is read, so no
 * change falls between. A state change reads the job again (attempts,
 * result, error); progress comes from the event alone. A slow re-read
 * covers what pub/sub cannot promise (a lost connection, a job purged). */

#define WATCH_POLL_SUB_US 2000000   /* re-read while subscribed */
#define WATCH_POLL_US 250000        /* re-read without a subscription: 4 Hz */
#define WATCH_RESUB_US 1000000      /* between subscription attempts */

/* A subscriber to `queue` whose subscription is confirmed, or NULL. */
static struct queue_sub *subscribe(const char *queue)
{
	struct queue_sub *s;
	struct queue_event ev;
	struct pollfd p;
	struct err e;

	s = queue_sub_connect(cli_queue_opts(), &e);
	if (!s)
		return NULL;
	if (queue_sub_subscribe(s, queue, &e) < 0)
		goto fail;
	p.fd = queue_sub_fd(s);
	p.events = POLLIN;
	/* the confirmation: from here on, every change reaches us */
	if (poll(&p, 1, 2000) != 1 || queue_sub_read(s, &ev, &e) < 0)
		goto fail;
	return s;
fail:
	queue_sub_free(s);
	return NULL;
}

struct view {
	struct job_info *job;
	double progress;
	char stage[128];
	int drawn;
};

static void view_set(struct view *v)
{
	v->progress = v->job->progress;
	snprintf(v->stage, sizeof(v->stage), "%s", v->job->stage ? v->job->stage : "");
}

/* The one line of a watch on a terminal, redrawn in place. */
static void draw(struct view *v)
{
	const struct job_info *j = v->job;
	int width = term_width(), bw = width - 60;
	char bar[64], age[16];
	double pct = j->status == JOB_DONE ? 100 : v->progress;

	if (!term_tty())
		return;
	if (bw > 30)
		bw = 30;
	if (bw < 10)
		bw = 10;
	term_bar(bar, bw, pct);
	term_age(age, sizeof(age), j->started_at ? j->started_at : j->created_at);
	printf("\r\033[K%-9s %s %3.0f%%  attempt %d/%d  %s%s%.*s", job_status_name(j->status), bar,
	       pct, j->attempts, j->max_attempts, age, *v->stage ? "  " : "",
	       width > 75 ? width - 75 : 0, v->stage);
	fflush(stdout);
	v->drawn = 1;
}

/* Reads the job again. Returns 0, or -1 with e (ERR_NOTFOUND: gone). */
static int reread(struct queue *q, struct view *v, struct err *e)
{
	struct job_info fresh;

	/* fresh is another struct: v->job's queue and id stay valid until
	 * the release below */
	if (queue_job_get(q, v->job->queue, v->job->id, &fresh, e) < 0)
		return -1;
	job_info_release(v->job);
	*v->job = fresh;
	view_set(v);
	return 0;
}

static int outcome(const struct job_info *j)
{
	return j->status == JOB_DONE ? EXIT_OK :
	       j->status == JOB_CANCELLED ? EXIT_JOB_CANCELLED : EXIT_JOB_FAILED;
}

static void summary(const struct job_info *j)
{
	if (!term_tty()) {
		print_doc(j);
		return;
	}
	if (j->status == JOB_DONE) {
		printf("done in %.1fs: %s\n",
		       j->started_at && j->finished_at ?
			       (double)(j->finished_at - j->started_at) / 1e6 : 0.0,
		       j->result ? j->result : "null");
	} else if (j->status == JOB_FAILED) {
		printf("failed after %d attempt%s: %s\n", j->attempts, j->attempts == 1 ? "" : "s",
		       j->error ? j->error : "(no error given)");
	} else {
		printf("cancelled%s%s\n", j->error ? ": " : "", j->error ? j->error : "");
	}
}

static int watch(struct queue *q, struct job_info *job)
{
	struct queue_sub *sub = NULL;
	struct view v;
	struct err e;
	int64_t now, next_read = 0, next_sub = 0;
	int rc = -1;

	memset(&v, 0, sizeof(v));
	v.job = job;
	view_set(&v);
	term_catch_signals();
	if (term_tty()) {
		printf("%s: %s on '%s' (Ctrl-C stops watching)\n", job->id, job->type, job->queue);
		draw(&v);
	}
	while (!job_status_final(job->status) && !term_interrupted()) {
		struct pollfd p = { -1, POLLIN, 0 };
		struct queue_event ev;
		int64_t wait;
		int r;

		now = clock_mono_us();
		if (!sub && now >= next_sub) {
			sub = subscribe(job->queue);
			next_sub = now + WATCH_RESUB_US;
			next_read = 0; /* read once subscribed */
		}
		if (now >= next_read) {
			if (reread(q, &v, &e) < 0) {
				if (e.code == ERR_NOTFOUND) {
					rc = EXIT_NOTFOUND;
					break;
				}
				/* Redis away: keep trying, say nothing yet */
			}
			draw(&v);
			next_read = now + (sub ? WATCH_POLL_SUB_US : WATCH_POLL_US);
			continue;
		}
		wait = next_read - now;
		if (!sub && next_sub - now < wait)
			wait = next_sub - now;
		if (sub)
			p.fd = queue_sub_fd(sub);
		r = poll(&p, 1, (int)(wait / 1000) + 1);
		if (r <= 0 || !sub)
			continue;
		while ((r = queue_sub_read(sub, &ev, &e)) == 1) {
			if (strcmp(ev.id, job->id))
				continue;
			if (strcmp(ev.status, job_status_name(job->status))) {
				next_read = 0; /* a state change: read it all */
			} else {
				if (ev.progress >= 0)
					v.progress = ev.progress;
				if (ev.stage[0])
					snprintf(v.stage, sizeof(v.stage), "%s", ev.stage);
				draw(&v);
			}
		}
		if (r < 0) {
			queue_sub_free(sub);
			sub = NULL;
			next_sub = clock_mono_us() + WATCH_RESUB_US;
			next_read = 0;
		}
	}
	queue_sub_free(sub);
	if (v.drawn) {
		draw(&v);
		printf("\n");
	}
	if (term_interrupted())
		return 130;
	if (rc == EXIT_NOTFOUND) {
		fprintf(stderr, "wakeq: job '%s' is gone (expired or purged)\n", job->id);
		return rc;
	}
	summary(job);
	return outcome(job);
}

int cmd_status(struct cli *c)
{
	struct job_info job;
	struct queue *q = cli_connect();
	struct err e;
	int rc;

	rc = job_anywhere(q, c, c->args[0], &job, &e);
	if (rc < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	if (cli_get(c, "watch")) {
		rc = watch(q, &job);
	} else if (job.depends_on) {
		/* with its dependencies' states and results (a flow's children) */
		json_t *doc = job_info_to_json(&job), *deps;

		if (queue_job_deps(q, job.queue, &job, &deps, &e) == 0)
			json_object_set_new(doc, "dependencies", deps);
		cli_print_json(doc, JSON_COMPACT);
		rc = EXIT_OK;
	} else {
		print_doc(&job);
		rc = EXIT_OK;
	}
	job_info_release(&job);
	queue_free(q);
	return rc;
}

int cmd_batch(struct cli *c)
{
	struct job_info job;
	struct queue *q = cli_connect();
	struct err e;
	int rc;

	rc = job_anywhere(q, c, c->args[0], &job, &e);
	queue_free(q);
	if (rc < 0) {
		if (e.code == ERR_NOTFOUND)
			err_set(&e, ERR_NOTFOUND, "no batch '%s'", c->args[0]);
		return cli_exit_for(&e);
	}
	if (!job.batch || strcmp(job.batch, job.id)) {
		err_set(&e, ERR_NOTFOUND, "no batch '%s': job '%s' is not a batch's callback",
			c->args[0], job.id);
		job_info_release(&job);
		return cli_exit_for(&e);
	}
	cli_print_json(job_batch_to_json(&job), JSON_COMPACT);
	job_info_release(&job);
	return EXIT_OK;
}

int cmd_cancel(struct cli *c)
{
	struct queue *q = cli_connect();
	const char *queue = cli_queue(c);
	struct err e;
	int r;

	r = queue_cancel(q, queue, c->args[0], &e);
	if (r < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	printf("%s\n", r == 1 ? "cancel requested" :
	       r == QUEUE_CANCELLED_DELIVERY ? "cancelled (its webhook waits for a worker)" :
	       "cancelled");
	fflush(stdout);
	if (r == QUEUE_CANCELLED_DELIVERY)
		cli_wake_if_idle(q, queue, -1);
	queue_free(q);
	return EXIT_OK;
}

/* ---- lists -------------------------------------------------------------------- */

void cli_print_jobs(const struct cli *c, const struct job_info *jobs, size_t n, int dead)
{
	static const char *const heads[] = {
		"ID", "QUEUE", "TYPE", "STATE", "ATTEMPTS", "PROGRESS", "AGE", "STAGE/ERROR"
	};
	static const char *const dead_heads[] = { "ID", "TYPE", "ATTEMPTS", "AGE", "ERROR" };
	struct term_table t;
	size_t i;

	if (cli_get(c, "json") || (!cli_get(c, "table") && !term_tty())) {
		printf("[");
		for (i = 0; i < n; i++) {
			json_t *doc = job_info_to_json(&jobs[i]);
			char *text = json_dumps(doc, JSON_COMPACT);

			printf("%s\n%s", i ? "," : "", text);
			free(text);
			json_decref(doc);
		}
		printf("%s]\n", n ? "\n" : "");
		return;
	}
	if (n == 0) {
		printf("no jobs\n");
		return;
	}
	term_table_init(&t, dead ? dead_heads : heads, dead ? 5 : 8);
	for (i = 0; i < n; i++) {
		const struct job_info *j = &jobs[i];
		char att[32], pct[16], age[16];

		snprintf(att, sizeof(att), "%d/%d", j->attempts, j->max_attempts);
		snprintf(pct, sizeof(pct), "%.0f%%", j->progress);
		if (dead) {
			const char *row[] = { j->id, j->type, att, age, j->error };

			term_age(age, sizeof(age), j->finished_at ? j->finished_at : j->updated_at);
			term_table_row(&t, row);
		} else {
			const char *info = j->status == JOB_ACTIVE ? j->stage : j->error;
			const char *row[] = {
				j->id, j->queue, j->type, job_status_name(j->status), att, pct, age, info
			};

			term_age(age, sizeof(age), j->created_at);
			term_table_row(&t, row);
		}
	}
	term_table_print(&t, stdout);
	term_table_release(&t);
}

static int check_type(const struct cli *c)
{
	const char *type = cli_get(c, "type");

	if (type && !job_find(type))
		return cli_usage_error(c, "unknown job type '%s' (known: %s)", type, job_type_names());
	return 0;
}

int cmd_jobs(struct cli *c)
{
	static const enum job_status order[] = {
		JOB_ACTIVE, JOB_QUEUED, JOB_SCHEDULED, JOB_RETRYING, JOB_FAILED, JOB_DONE
	};
	const char *state = cli_get(c, "state");
	enum job_status st = JOB_QUEUED;
	struct job_info *jobs;
	struct queue *q;
	struct err e;
	int64_t limit = 50;
	char **names = NULL;
	size_t nst, s, n = 0, i;
	int nq = 0, k, rc = EXIT_OK;

	if ((rc = cli_int(c, "limit", 1, 100000, &limit)) != 0 || (rc = check_type(c)) != 0)
		return rc;
	if (state && job_status_parse(state, &st, &e) < 0)
		return cli_usage_error(c, "bad --state: %s", e.msg);
	if (cli_get(c, "queue") && queue_name_check(cli_get(c, "queue"), &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	if ((nq = cli_queue_names(c, q, &names, &e)) < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	jobs = xcalloc((size_t)limit, sizeof(*jobs));
	nst = state ? 1 : sizeof(order) / sizeof(order[0]);
	for (k = 0; k < nq && rc == EXIT_OK; k++) {
		for (s = 0; s < nst && n < (size_t)limit; s++) {
			struct queue_find f;

			memset(&f, 0, sizeof(f));
			f.state = state ? st : order[s];
			f.type = cli_get(c, "type");
			f.max = (size_t)limit - n;
			f.jobs = jobs + n;
			if (queue_find(q, names[k], &f, &e) < 0) {
				rc = cli_exit_for(&e);
				break;
			}
			n += f.njobs;
		}
	}
	if (rc == EXIT_OK)
		cli_print_jobs(c, jobs, n, 0);
	for (i = 0; i < n; i++)
		job_info_release(&jobs[i]);
	for (k = 0; k < nq; k++)
		free(names[k]);
	free(names);
	free(jobs);
	queue_free(q);
	return rc;
}

/* ---- dead letters ------------------------------------------------------------- */

int cmd_dead_list(struct cli *c)
{
	const char *queue = cli_queue(c);
	struct queue_find f;
	struct queue *q;
	struct err e;
	int64_t limit = 100;
	size_t i;
	int rc;

	if ((rc = cli_int(c, "limit", 1, 100000, &limit)) != 0 || (rc = check_type(c)) != 0)
		return rc;
	if (queue_name_check(queue, &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	memset(&f, 0, sizeof(f));
	f.state = JOB_FAILED;
	f.type = cli_get(c, "type");
	f.max = (size_t)limit;
	f.jobs = xcalloc(f.max, sizeof(*f.jobs));
	if (queue_find(q, queue, &f, &e) < 0) {
		rc = cli_exit_for(&e);
	} else {
		cli_print_jobs(c, f.jobs, f.njobs, 1);
		rc = EXIT_OK;
	}
	for (i = 0; i < f.njobs; i++)
		job_info_release(&f.jobs[i]);
	free(f.jobs);
	queue_free(q);
	return rc;
}

/* The ids of every dead job of `queue` (of `type`, when not NULL). Returns
 * the count (ids: caller frees each and the array) or -1 with e. */
static int dead_ids(struct queue *q, const char *queue, const char *type, char ***ids,
		    struct err *e)
{
	struct job_info page[500];
	struct queue_find f;
	char **out = NULL;
	size_t n = 0, i;

	memset(&f, 0, sizeof(f));
	f.state = JOB_FAILED;
	f.type = type;
	f.max = sizeof(page) / sizeof(page[0]);
	f.jobs = page;
	do {
		f.offset = f.next_offset;
		if (queue_find(q, queue, &f, e) < 0) {
			for (i = 0; i < n; i++)
				free(out[i]);
			free(out);
			return -1;
		}
		out = xrealloc(out, (n + f.njobs + 1) * sizeof(*out));
		for (i = 0; i < f.njobs; i++) {
			out[n++] = xstrdup(page[i].id);
			job_info_release(&page[i]);
		}
	} while (f.more);
	*ids = out;
	return (int)n;
}

static void retry_progress(size_t done, size_t total)
{
	char bar[40];

	if (!term_tty())
		return;
	term_bar(bar, 30, total ? 100.0 * (double)done / (double)total : 100);
	printf("\r\033[Kretrying %s %zu/%zu", bar, done, total);
	fflush(stdout);
}

static int retry_all(struct cli *c, struct queue *q, const char *queue)
{
	char **ids = NULL;
	struct err e;
	size_t i, ok = 0, skipped = 0;
	int n, rc = EXIT_OK;

	n = dead_ids(q, queue, cli_get(c, "type"), &ids, &e);
	if (n < 0)
		return cli_exit_for(&e);
	term_catch_signals();
	retry_progress(0, (size_t)n);
	for (i = 0; i < (size_t)n; i++) {
		if (rc == EXIT_OK && !term_interrupted()) {
			if (queue_retry_dead(q, queue, ids[i], &e) == 0) {
				ok++;
			} else if (e.code == ERR_CONFLICT || e.code == ERR_NOTFOUND) {
				skipped++; /* retried, purged or expired meanwhile */
			} else {
				if (term_tty())
					printf("\n");
				rc = cli_exit_for(&e);
			}
			if (rc == EXIT_OK)
				retry_progress(i + 1, (size_t)n);
		}
		free(ids[i]);
	}
	free(ids);
	if (term_tty() && rc == EXIT_OK)
		printf("\n");
	printf("retried %zu dead job%s of '%s'", ok, ok == 1 ? "" : "s", queue);
	if (skipped)
		printf(", %zu skipped (no longer dead)", skipped);
	printf("\n");
	fflush(stdout);
	if (term_interrupted() && rc == EXIT_OK)
		rc = 130;
	if (ok)
		cli_wake_if_idle(q, queue, -1);
	return rc;
}

int cmd_dead_retry(struct cli *c)
{
	const char *queue = cli_queue(c);
	struct queue *q;
	struct err e;
	int rc = EXIT_OK;

	if (cli_get(c, "all") && c->nargs)
		return cli_usage_error(c, "give an ID or --all, not both");
	if (!cli_get(c, "all") && !c->nargs)
		return cli_usage_error(c, "dead retry needs an ID, or --all");
	if (cli_get(c, "type") && !cli_get(c, "all"))
		return cli_usage_error(c, "--type goes with --all");
	if ((rc = check_type(c)) != 0)
		return rc;
	if (queue_name_check(queue, &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	if (cli_get(c, "all")) {
		rc = retry_all(c, q, queue);
	} else if (queue_retry_dead(q, queue, c->args[0], &e) < 0) {
		rc = cli_exit_for(&e);
	} else {
		printf("queued %s\n", c->args[0]);
		fflush(stdout);
		cli_wake_if_idle(q, queue, -1);
	}
	queue_free(q);
	return rc;
}

int cmd_dead_purge(struct cli *c)
{
	struct queue *q = cli_connect();
	struct err e;
	int64_t n = queue_purge_dead(q, cli_queue(c), &e);
	int rc = EXIT_OK;

	if (n < 0)
		rc = cli_exit_for(&e);
	else
		printf("purged %lld\n", (long long)n);
	queue_free(q);
	return rc;
}
