/* api.c - the wiring of wakeq-api: api_start checks the settings and
 * starts the pieces (the Redis connection pool, the Postgres store, the
 * waker and its backlog callback, the event hub, the intake threads, the
 * HTTP server with the route table of routes.c, the reconcile timer when
 * in-process timers are on);
 * api_stop ends them in the reverse order. The handlers live in their own
 * files: intake.c (POST /v1/jobs), jobs.c, queues.c, health.c, events.c,
 * uploads.c, dashboard.c; reply.c sends and counts the answers. */
#include "api/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/thread.h"
#include "job/job.h"
#include "log/log.h"
#include "reconcile/reconcile.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 64

/* ---- the Redis pool ------------------------------------------------------- */

struct queue *api_qget(struct api *a, struct err *err)
{
	return queue_pool_get(a->pool, err);
}

void api_qput(struct api *a, struct queue *q)
{
	queue_pool_put(a->pool, q);
}

struct queue *api_qget_req(struct api *a, struct httpd_request *req)
{
	struct queue *q;
	struct err e;

	if (!(q = api_qget(a, &e)))
		api_reply_backend(a, req, &e, "redis");
	return q;
}

struct queue *api_qget_served(struct api *a, struct httpd_request *req,
			      const char *queue)
{
	if (api_served_index(a, queue) < 0) {
		api_reply_error(a, req, 404, "not_found", "queue '%.64s' is not served here", queue);
		return NULL;
	}
	return api_qget_req(a, req);
}

/* ---- settings -------------------------------------------------------------- */

static char **split_list(const char *s, size_t *n)
{
	char **out = NULL;
	size_t k = 0;
	const char *p = s ? s : "";

	while (*p) {
		size_t len = strcspn(p, ",");
		const char *b = p, *e = p + len;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			out = xrealloc(out, (k + 2) * sizeof(*out));
			out[k++] = xstrndup(b, (size_t)(e - b));
			out[k] = NULL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*n = k;
	return out;
}

static void free_list(char **l)
{
	size_t i;

	for (i = 0; l && l[i]; i++) {
		memset(l[i], 0, strlen(l[i]));
		free(l[i]);
	}
	free(l);
}

/* Replaces each QUEUES entry NAME*N of a->queues by its shards NAME#0 …
 * NAME#(N-1), noted in a->shards; checks every name. Returns 0 or -1. */
static int expand_shards(struct api *a, struct err *err)
{
	char **out = NULL, name[QUEUE_NAME_MAX + 1];
	size_t i, n = 0;
	int k, ns;

	for (i = 0; i < a->nqueues; i++) {
		if (queue_shard_spec(a->queues[i], name, &ns, err) < 0) {
			err_wrap(err, "bad QUEUES");
			goto fail;
		}
		if (ns > 1) {
			a->shards = xrealloc(a->shards, (a->nshards + 1) * sizeof(*a->shards));
			memcpy(a->shards[a->nshards].name, name, sizeof(name));
			a->shards[a->nshards].first = n;
			a->shards[a->nshards++].n = ns;
		}
		out = xrealloc(out, (n + (size_t)ns + 1) * sizeof(*out));
		for (k = 0; k < ns; k++)
			out[n++] = queue_shard_name(name, k, ns);
		out[n] = NULL;
	}
	free_list(a->queues);
	a->queues = out;
	a->nqueues = n;
	a->defaults.queue = a->queues[0];
	return 0;
fail:
	free_list(out);
	return -1;
}

const char *api_route_default(const struct api *a)
{
	return a->nshards && a->shards[0].first == 0 ? a->shards[0].name : a->queues[0];
}

const char *api_route_queue(struct api *a, struct httpd_request *req,
			    const char *queue, const char *key)
{
	const char *q = queue ? queue : api_route_default(a);
	const struct api_shards *set;
	size_t i;
	int k;

	/* a sharded queue's name is no queue of its own: it is its set */
	for (i = 0; i < a->nshards; i++) {
		set = &a->shards[i];
		if (strcmp(q, set->name))
			continue;
		k = key ? queue_shard_of(key, set->n) :
			  (int)(atomic_fetch_add(&a->shard_rr, 1) % (unsigned)set->n);
		return a->queues[set->first + (size_t)k];
	}
	if ((k = api_served_index(a, q)) < 0) {
		api_reply_error(a, req, 400, "invalid_field",
				"field 'queue': '%.64s' is not served here (QUEUES=%s)", q,
				a->cfg.queues ? a->cfg.queues : "default");
		return NULL;
	}
	return a->queues[k];
}

const char *api_body_queue(struct api *a, struct httpd_request *req, const json_t *body,
			   const char *key)
{
	const json_t *v = json_object_get(body, "queue");

	if (v && !json_is_null(v) && !json_is_string(v)) {
		api_reply_error(a, req, 400, "invalid_field",
				"field 'queue': expected a queue name (QUEUES=%s)",
				a->cfg.queues ? a->cfg.queues : "default");
		return NULL;
	}
	return api_route_queue(a, req, json_string_value(v), key);
}

int api_served_index(struct api *a, const char *queue)
{
	size_t i;

	for (i = 0; i < a->nqueues; i++)
		if (!strcmp(a->queues[i], queue))
			return (int)i;
	return -1;
}

/* ---- waker backlog and reconcile timer ---------------------------------------- */

static int backlog_cb(void *ctx, struct wake_backlog *out)
{
	struct api *a = ctx;
	struct err e;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!a->wake_q) {
		a->wake_q = queue_connect(&a->qopts, &e);
		if (!a->wake_q)
			return -1;
	}
	for (i = 0; i < a->nqueues; i++) {
		struct queue_counts c;

		if (queue_counts(a->wake_q, a->queues[i], &c, &e) < 0)
			return -1;
		if (c.workers > out->workers)
			out->workers = c.workers;
		if (c.paused)
			continue; /* nothing of it can run: no wake for it */
		/* jobs held by a rate limit count as due later, at wake_at */
		out->pending += c.due;
		out->waiting += c.n[JOB_SCHEDULED] + c.n[JOB_RETRYING] + c.held;
		if (c.wake_at_ms && (!c.next_due_ms || c.wake_at_ms < c.next_due_ms))
			c.next_due_ms = c.wake_at_ms;
		if (c.next_due_ms && (!out->next_due_us || c.next_due_ms * 1000 < out->next_due_us))
			out->next_due_us = c.next_due_ms * 1000;
	}
	return 0;
}

static void *reconcile_main(void *arg)
{
	struct api *a = arg;

	pthread_mutex_lock(&a->rec_lock);
	while (!a->rec_stop) {
		clock_cond_wait_us(&a->rec_cond, &a->rec_lock,
				   (int64_t)(a->cfg.reconcile_interval_s * 1e6));
		if (a->rec_stop)
			break;
		pthread_mutex_unlock(&a->rec_lock);
		{
			struct reconcile_stats st;
			struct err e;

			if (api_reconcile(a, &st, &e) < 0) {
				log_warn("reconcile failed", "error", e.msg);
			} else if (st.requeued || st.finals) {
				char rq[24], fn[24];

				snprintf(rq, sizeof(rq), "%lld", (long long)st.requeued);
				snprintf(fn, sizeof(fn), "%lld", (long long)st.finals);
				log_info("reconciled", "requeued", rq, "finals", fn);
			}
		}
		pthread_mutex_lock(&a->rec_lock);
	}
	pthread_mutex_unlock(&a->rec_lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

struct api *api_start(const struct api_config *cfg, struct err *err)
{
	struct api *a = xcalloc(1, sizeof(*a));
	struct httpd_opts ho;
	size_t i, ntok = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	a->cfg = *cfg;
	pthread_mutex_init(&a->in_lock, NULL);
	pthread_cond_init(&a->in_cond, NULL);
	pthread_mutex_init(&a->rec_lock, NULL);
	clock_cond_init(&a->rec_cond);
	a->queues = split_list(cfg->queues && *cfg->queues ? cfg->queues : "default", &a->nqueues);
	a->defaults.queue = a->queues[0];
	if (api_dashboard_init(a, err) < 0 || api_upload_check(cfg, err) < 0)
		goto fail;
	a->defaults.max_attempts = cfg->max_attempts;
	if (a->nqueues == 0) {
		err_set(err, ERR_INVALID, "bad QUEUES '%s': no queue named", cfg->queues);
		goto fail;
	}
	if (expand_shards(a, err) < 0)
		goto fail;
	a->tokens = split_list(cfg->api_tokens, &ntok);
	if (ntok == 0) {
		free_list(a->tokens);
		a->tokens = NULL;
		if (!cfg->no_auth) {
			err_set(err, ERR_INVALID,
				"API_TOKEN is not set: set it (comma-separated for rotation) or pass --no-auth explicitly");
			goto fail;
		}
	} else if (cfg->no_auth) {
		free_list(a->tokens);
		a->tokens = NULL;
	}
	{
		size_t ncors = 0;

		a->cors = split_list(cfg->cors_origins, &ncors);
		for (i = 0; i < ncors; i++)
			a->cors_any |= !strcmp(a->cors[i], "*");
	}
	if (queue_opts_init(&a->qopts, cfg->redis_url, err) < 0) {
		err_wrap(err, "bad REDIS_URL");
		goto fail;
	}
	a->qopts.connect_timeout_s = 1;
	a->qopts.command_timeout_s = cfg->redis_timeout_s > 0 ? cfg->redis_timeout_s : 5;
	a->pool = queue_pool_new(&a->qopts, POOL_MAX);
	if (cfg->database_url && *cfg->database_url) {
		int threads = cfg->threads > 0 ? cfg->threads : (int)(ncpu > 0 ? ncpu : 1) * 2;

		a->store = store_open(cfg->database_url,
				      cfg->store_conns > 0 ? cfg->store_conns : threads, err);
		if (!a->store) {
			err_wrap(err, "bad DATABASE_URL");
			goto fail;
		}
		if (cfg->migrate) {
			int n = store_migrate(a->store, err);

			if (n < 0) {
				err_wrap(err, "cannot migrate the database");
				goto fail;
			}
		}
		/* after the migrations, which may wait on another process */
		store_set_timeout(a->store, cfg->store_timeout_s);
	}
	if (cfg->wake_via == WAKE_VIA_CLOUDTASKS && (!cfg->wake_url || !*cfg->wake_url)) {
		err_set(err, ERR_INVALID, "WAKE_VIA=cloudtasks needs WAKE_URL (the worker's /wake)");
		goto fail;
	}
	if (cfg->wake_url && *cfg->wake_url) {
		struct wake_opts wo;

		memset(&wo, 0, sizeof(wo));
		wo.via = cfg->wake_via;
		wo.timers = cfg->timers;
		wo.tasks.project = cfg->tasks_project;
		wo.tasks.location = cfg->tasks_location;
		wo.tasks.queue = cfg->tasks_queue;
		wo.tasks.service_account = cfg->tasks_service_account;
		wo.tasks.endpoint = cfg->tasks_endpoint;
		wo.tasks.bucket_s = cfg->tasks_bucket_s;
		/* held past WAKE_MAX by the jobs still running then (a drain
		 * gives up on them a minute later) */
		wo.tasks.dispatch_deadline_s = cfg->wake_max_s > 0 ? cfg->wake_max_s + 60 : 0;
		wo.url = cfg->wake_url;
		wo.auth = cfg->wake_auth;
		if (wo.auth == WAKE_AUTH_TOKEN) {
			wo.token = cfg->wake_token;
			if (!wo.token || !*wo.token)
				wo.auth = WAKE_AUTH_NONE; /* the default, no token set */
		}
		wo.audience = cfg->wake_audience;
		wo.hold_s = cfg->wake_hold_s;
		wo.fanout_max = cfg->wake_fanout_max;
		wo.slot_concurrency = cfg->worker_concurrency;
		wo.backlog_per_slot = cfg->wake_backlog;
		wo.backlog = backlog_cb;
		wo.backlog_ctx = a;
		a->wake = wake_new(&wo, err);
		if (!a->wake)
			goto fail;
	}
	a->hub = api_hub_new(a, err);
	if (!a->hub)
		goto fail;
	memset(&ho, 0, sizeof(ho));
	ho.host = cfg->host;
	ho.port = cfg->port;
	ho.threads = cfg->threads > 0 ? cfg->threads : (int)(ncpu > 0 ? ncpu : 1) * 2;
	ho.max_connections = cfg->max_connections;
	ho.timeout_s = cfg->conn_timeout_s ? cfg->conn_timeout_s : 30;
	ho.per_ip_connections = cfg->per_ip_connections;
	ho.reserve = cfg->conn_reserve;
	ho.header_timeout_s = cfg->header_timeout_s;
	ho.body_timeout_s = cfg->body_timeout_s;
	ho.max_body = cfg->max_body;
	ho.allow_push = 1;
	ho.sink_for = api_upload_sink;
	api_intake_start(a);
	a->http = httpd_start(&ho, api_dispatch, a, err);
	if (!a->http)
		goto fail;
	if (cfg->timers && cfg->reconcile_interval_s > 0 && a->store) {
		if (pthread_create(&a->rec_thread, NULL, reconcile_main, a) == 0)
			a->rec_running = 1;
	}
	return a;
fail:
	api_stop(a);
	return NULL;
}

int api_port(const struct api *a)
{
	return httpd_port(a->http);
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	if (a->rec_running)
		thread_stop(&a->rec_lock, &a->rec_cond, &a->rec_stop,
			    &a->rec_thread, 1);
	/* every deferred POST is answered before the server stops */
	api_intake_stop(a);
	httpd_stop(a->http);
	api_hub_free(a->hub);
	wake_free(a->wake);
	queue_free(a->wake_q);
	store_free(a->store);
	queue_pool_free(a->pool);
	queue_opts_release(&a->qopts);
	free_list(a->queues);
	free(a->shards);
	free_list(a->tokens);
	free_list(a->cors);
	pthread_cond_destroy(&a->rec_cond);
	pthread_mutex_destroy(&a->rec_lock);
	pthread_cond_destroy(&a->in_cond);
	pthread_mutex_destroy(&a->in_lock);
	free(a);
}
