/* wake.c - the waker: the HTTP transport's thread (curl multi), the
 * Cloud Tasks transport's synchronous calls (tasks.c does the calls), and
 * the synchronous wake_once. The policy is described in wake.h. */
#include "wake/wake.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "fetch/fetch.h"
#include "log/log.h"
#include "queue/queue.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_MIN_US 250000
#define BACKOFF_MAX_US 30000000
#define MAX_FAILURES 20          /* then give up until the next notify */
#define CHECK_EVERY_US 1000000   /* fan-out checks at most this often */
#define QUICK_US 1000000         /* a drain shorter than this backs off */
#define MAX_FANOUT 64
#define HANDOFF_MAX_US 2000000   /* timers off: longest wait for "sent" */
#define SUMMARY_MAX 4096         /* bytes of a drain summary read */

const struct config_choice wake_auth_choices[] = {
	{ "token", WAKE_AUTH_TOKEN }, { "google", WAKE_AUTH_GOOGLE },
	{ "none", WAKE_AUTH_NONE }, CONFIG_CHOICES_END
};

const struct config_choice wake_via_choices[] = {
	{ "http", WAKE_VIA_HTTP }, { "cloudtasks", WAKE_VIA_CLOUDTASKS },
	CONFIG_CHOICES_END
};

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	int base;          /* the one base wake (vs a fan-out wake) */
	int sent;          /* pre-transfer reached: the request went out */
	int64_t start_us;  /* monotonic */
	struct buf answer; /* the start of the answer: the drain summary */
	char errbuf[CURL_ERROR_SIZE];
};

struct wake {
	/* settings, read-only after wake_new */
	enum wake_via via;
	struct wake_tasks *tasks;  /* CLOUDTASKS: the client */
	int timers;
	char *url, *token, *audience;
	enum wake_auth auth;
	long connect_ms, hold_ms;
	int fanout_max, slots, backlog_per_slot;
	wake_backlog_fn backlog;
	void *backlog_ctx;

	CURLM *multi;
	pthread_t thread;

	pthread_mutex_t lock;   /* guards the fields below */
	int stop;
	int want;               /* a base wake is wanted */
	int want_during;        /* ... and was asked for while one was open */
	int check;              /* a fan-out check was asked for */
	int base_busy;          /* a base transfer is open */
	int64_t due_us;         /* earliest scheduled job (wall clock), 0 none */
	uint64_t handoffs;      /* base transfers sent or failed (timers off) */
	pthread_cond_t handoff_cv;
	struct wake_stats stats;
	int64_t tasks_check_us; /* CLOUDTASKS: last fan-out check (mono) */
	pthread_mutex_t check_lock; /* CLOUDTASKS: one backlog check at a time */

	/* waker thread only */
	struct xfer *xfers[MAX_FANOUT + 1];
	int nxfers;
	int64_t backoff_us, next_try_us, last_check_us;
	int failures;
};

/* ---- helpers --------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;

	if (b->len + size * n > 64 * 1024)
		return 0; /* a drain summary is far smaller; refuse more */
	buf_add(b, p, size * n);
	return size * n;
}

/* Keeps the start of a held wake's answer (the drain summary). */
static size_t keep_start(char *p, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * n;

	if (b->len < SUMMARY_MAX)
		buf_add(b, p, len < SUMMARY_MAX - b->len ? len : SUMMARY_MAX - b->len);
	return len;
}

/* Whether a drain summary says the drain was cut short with work maybe
 * left: WAKE_MAX or a SIGTERM. */
static int cut_short(const struct buf *answer)
{
	json_t *j = json_loadb(answer->data, answer->len, 0, NULL);
	const char *r = json_string_value(json_object_get(json_object_get(j, "drain"), "reason"));
	int cut = r && (!strcmp(r, "wake_max") || !strcmp(r, "shutdown"));

	json_decref(j);
	return cut;
}

/* ---- the waker thread ------------------------------------------------ */

/* The Authorization header value for the next wake, or NULL for none;
 * refreshes the identity token when needed. Returns 0 or -1. */
static int auth_header(struct wake *w, struct curl_slist **headers)
{
	char *line;
	const char *tok = NULL;

	if (w->auth == WAKE_AUTH_TOKEN) {
		tok = w->token;
	} else if (w->auth == WAKE_AUTH_GOOGLE) {
		struct err e;
		char *id = fetch_gcp_id_token(w->audience, &e);

		if (!id) {
			log_warn("cannot get an identity token for the wake call",
				 "error", e.msg);
			return -1;
		}
		line = xasprintf("Authorization: Bearer %s", id);
		*headers = curl_slist_append(*headers, line);
		memset(line, 0, strlen(line));
		memset(id, 0, strlen(id));
		free(line);
		free(id);
		return 0;
	}
	if (tok) {
		line = xasprintf("Authorization: Bearer %s", tok);
		*headers = curl_slist_append(*headers, line);
		free(line);
	}
	return 0;
}

static void xfer_free(struct wake *w, struct xfer *x)
{
	curl_multi_remove_handle(w->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	buf_release(&x->answer);
	free(x);
}

/* Names the trigger of a wake, which the worker counts (queue.h). */
static struct curl_slist *trigger_header(struct curl_slist *h, enum queue_trigger t)
{
	char line[64];

	snprintf(line, sizeof(line), "%s: %s", QUEUE_TRIGGER_HEADER, queue_trigger_name(t));
	return curl_slist_append(h, line);
}

/* A base transfer was sent, or failed: a hand-off waiting in wake_notify
 * (timers off) may return. */
static void handed_off(struct wake *w)
{
	pthread_mutex_lock(&w->lock);
	w->handoffs++;
	pthread_cond_broadcast(&w->handoff_cv);
	pthread_mutex_unlock(&w->lock);
}

/* Counts `x` as sent once its request has gone out (libcurl is past the
 * connect and TLS handshake). Returns 1 the first time it is seen so. */
static int mark_sent(struct wake *w, struct xfer *x)
{
	curl_off_t pre = 0;

	if (x->sent)
		return 0;
	curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
	if (pre <= 0)
		return 0;
	x->sent = 1;
	pthread_mutex_lock(&w->lock);
	w->stats.sent++;
	pthread_mutex_unlock(&w->lock);
	if (x->base)
		handed_off(w);
	return 1;
}

/* Starts a wake; `t` is the trigger it names (api: due work and no live
 * worker; fanout: backlog scale-out, whether or not it becomes the base
 * transfer). */
static int start_xfer(struct wake *w, int base, enum queue_trigger t)
{
	struct xfer *x;

	if (w->nxfers >= MAX_FANOUT)
		return -1;
	x = xcalloc(1, sizeof(*x));
	x->base = base;
	x->start_us = clock_mono_us();
	buf_init(&x->answer);
	x->headers = curl_slist_append(NULL, "Content-Type: application/json");
	x->headers = trigger_header(x->headers, t);
	if (auth_header(w, &x->headers) < 0) {
		curl_slist_free_all(x->headers);
		free(x);
		return -1;
	}
	x->easy = curl_easy_init();
	if (!x->easy) {
		curl_slist_free_all(x->headers);
		free(x);
		return -1;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, w->url);
	curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, 2L);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, w->connect_ms);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, w->hold_ms);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, keep_start);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->answer);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "wakeq-api");
	/* Keep the TCP connection alive through a long drain behind proxies. */
	curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_multi_add_handle(w->multi, x->easy);
	w->xfers[w->nxfers++] = x;
	if (base) {
		pthread_mutex_lock(&w->lock);
		w->base_busy = 1;
		w->want_during = 0;
		pthread_mutex_unlock(&w->lock);
	}
	log_debug("wake call started", "url", w->url, "kind", base ? "base" : "fanout");
	return 0;
}

static void backoff(struct wake *w)
{
	w->next_try_us = clock_mono_us() + w->backoff_us;
	w->backoff_us = w->backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : w->backoff_us * 2;
}

static void set_due(struct wake *w, int64_t due_us)
{
	if (!w->timers)
		return; /* no in-process timers: the cron (or Cloud Tasks) */
	pthread_mutex_lock(&w->lock);
	if (!w->due_us || due_us < w->due_us)
		w->due_us = due_us;
	pthread_mutex_unlock(&w->lock);
}

/* After a drain: when jobs wait for a later time (a retry's backoff) and
 * no worker is left to wait for them, look again when they are due. */
static void schedule_due(struct wake *w)
{
	struct wake_backlog b;

	if (!w->backlog || w->backlog(w->backlog_ctx, &b) < 0)
		return;
	if (b.next_due_us && b.workers == 0)
		set_due(w, b.next_due_us);
}

/* Asks the backlog callback; starts base and fan-out wakes as needed.
 * `base_ok`: whether a base wake may be started by this check; `due`: a
 * scheduled job is due now, so waiting jobs count as pending. */
static void check_backlog(struct wake *w, int base_ok, int due)
{
	struct wake_backlog b;
	int64_t cap, desired, have;
	int i, base_open = 0;

	w->last_check_us = clock_mono_us();
	if (!w->backlog || w->backlog(w->backlog_ctx, &b) < 0)
		return;
	/* Jobs due later (a retry's backoff, a job scheduled by another API)
	 * with no worker left to wait for them: look again when they are due,
	 * rather than leave them to the cron. */
	if (b.next_due_us && b.workers == 0) {
		if (b.next_due_us <= clock_now_us())
			due = 1; /* due already: a wake is needed now */
		else
			set_due(w, b.next_due_us);
	}
	for (i = 0; i < w->nxfers; i++)
		base_open |= w->xfers[i]->base;
	if (due)
		b.pending += b.waiting;
	if (base_ok && !base_open && b.pending > 0 && b.workers == 0) {
		if (clock_mono_us() >= w->next_try_us && start_xfer(w, 1, QUEUE_TRIGGER_API) == 0) {
			log_info("waking the worker: due jobs and no live worker");
			base_open = 1;
		} else {
			pthread_mutex_lock(&w->lock);
			w->want = 1; /* after the backoff */
			pthread_mutex_unlock(&w->lock);
		}
	}
	if (w->fanout_max <= 1 || b.pending <= 0)
		return;
	cap = (int64_t)w->slots * w->backlog_per_slot;
	desired = (b.pending + cap - 1) / cap;
	if (desired > w->fanout_max)
		desired = w->fanout_max;
	have = b.workers > w->nxfers ? b.workers : w->nxfers;
	for (; have < desired; have++)
		if (start_xfer(w, !base_open, QUEUE_TRIGGER_FANOUT) < 0)
			break;
		else
			base_open = 1;
}

/* Whether a finished transfer is a failure to reach the worker. */
static int xfer_failed(struct xfer *x, CURLcode cc, long status)
{
	if (status == 401 || status == 403 || status == 408 || status == 429 || status >= 500)
		return 1;
	if (status > 0)
		return 0;
	return cc != CURLE_OK && !x->sent;
}

static void finish_xfer(struct wake *w, struct xfer *x, CURLcode cc)
{
	long status = 0;
	int failed, i, want_during;
	int64_t took = clock_mono_us() - x->start_us;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	failed = xfer_failed(x, cc, status);
	for (i = 0; i < w->nxfers; i++)
		if (w->xfers[i] == x) {
			w->xfers[i] = w->xfers[--w->nxfers];
			break;
		}
	pthread_mutex_lock(&w->lock);
	if (failed)
		w->stats.failed++;
	else
		w->stats.completed++;
	if (!x->sent && !failed)
		w->stats.sent++; /* an answer came before we saw pre-transfer */
	if (x->base)
		w->base_busy = 0;
	want_during = w->want_during;
	w->want_during = 0;
	if (failed && x->base && ++w->failures <= MAX_FAILURES)
		w->want = 1;
	pthread_mutex_unlock(&w->lock);
	if (x->base && !x->sent)
		handed_off(w); /* failed, or answered before "sent" was seen */
	if (failed) {
		char st[16];

		snprintf(st, sizeof(st), "%ld", status);
		log_warn("wake call failed", "url", w->url, "status", status ? st : NULL,
			 "error", cc != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc)) : NULL);
		if (x->base)
			backoff(w);
	} else {
		log_debug("wake call ended", "url", w->url);
		w->failures = 0;
		if (took < QUICK_US)
			backoff(w);
		else
			w->backoff_us = BACKOFF_MIN_US;
		/* The drain is over: anything enqueued meanwhile that saw no
		 * worker may have missed it, a drain cut short at WAKE_MAX
		 * (or by SIGTERM) may have left work, and work due later (a
		 * retry's backoff) needs a timer now that no worker waits for
		 * it. */
		if (x->base && (want_during || cut_short(&x->answer)))
			check_backlog(w, 1, 0);
		else if (x->base)
			schedule_due(w);
	}
	xfer_free(w, x);
}

static void *waker_main(void *arg)
{
	struct wake *w = arg;

	for (;;) {
		int want, check, running, msgs, i;
		int64_t due, now_mono = clock_mono_us();
		CURLMsg *m;
		int timeout_ms = 1000;

		pthread_mutex_lock(&w->lock);
		if (w->stop) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		want = w->want && !w->base_busy && now_mono >= w->next_try_us;
		if (want)
			w->want = 0;
		check = w->check && now_mono - w->last_check_us >= CHECK_EVERY_US;
		if (check)
			w->check = 0;
		due = w->due_us;
		if (due && clock_now_us() >= due) {
			w->due_us = 0;
			check = 2;
		}
		pthread_mutex_unlock(&w->lock);

		if (want && start_xfer(w, 1, QUEUE_TRIGGER_API) < 0) {
			pthread_mutex_lock(&w->lock);
			if (++w->failures <= MAX_FAILURES)
				w->want = 1;
			w->stats.failed++;
			pthread_mutex_unlock(&w->lock);
			handed_off(w);
			backoff(w);
		}
		if (check)
			check_backlog(w, check == 2, check == 2);

		curl_multi_perform(w->multi, &running);
		for (i = 0; i < w->nxfers; i++)
			if (mark_sent(w, w->xfers[i]))
				log_info("wake call sent", "url", w->url);
		while ((m = curl_multi_info_read(w->multi, &msgs))) {
			struct xfer *x = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (x) {
				mark_sent(w, x);
				finish_xfer(w, x, m->data.result);
			}
		}
		/* Sleep until curl, a notify, a retry or a scheduled job. */
		pthread_mutex_lock(&w->lock);
		now_mono = clock_mono_us();
		if (w->want && !w->base_busy) {
			int64_t t = (w->next_try_us - now_mono) / 1000;

			timeout_ms = t < 1 ? 1 : t < timeout_ms ? (int)t : timeout_ms;
		}
		if (w->due_us) {
			int64_t t = (w->due_us - clock_now_us()) / 1000;

			timeout_ms = t < 1 ? 1 : t < timeout_ms ? (int)t : timeout_ms;
		}
		if (w->check) {
			int64_t t = (w->last_check_us + CHECK_EVERY_US - now_mono) / 1000;

			timeout_ms = t < 1 ? 1 : t < timeout_ms ? (int)t : timeout_ms;
		}
		pthread_mutex_unlock(&w->lock);
		/* Unsent transfers are polled often to notice "sent" quickly. */
		for (i = 0; i < w->nxfers; i++)
			if (!w->xfers[i]->sent && timeout_ms > 10)
				timeout_ms = 10;
		curl_multi_poll(w->multi, NULL, 0, timeout_ms, NULL);
	}
	while (w->nxfers > 0)
		xfer_free(w, w->xfers[--w->nxfers]);
	return NULL;
}

/* ---- the Cloud Tasks transport ------------------------------------------ */

/* Arranges one wake (slot 0 = the base one) and counts it. */
static int tasks_wake(struct wake *w, int64_t at_us, int slot)
{
	struct err e;
	int rc = wake_tasks_arrange(w->tasks, NULL, at_us, slot, &e);

	pthread_mutex_lock(&w->lock);
	if (rc < 0)
		w->stats.failed++;
	else
		w->stats.sent++;
	pthread_mutex_unlock(&w->lock);
	if (rc < 0)
		log_warn("cannot arrange a wake with Cloud Tasks; the cron's tick will serve it",
			 "error", e.msg);
	else if (rc == 1)
		log_info(at_us ? "wake task scheduled" : "wake task created", "url", w->url);
	return rc;
}

/* Fan-out with Cloud Tasks: at most once a second (one caller at a time),
 * a task per instance wanted beyond the live workers and the base wake. */
static void tasks_fanout(struct wake *w, int base_sent)
{
	struct wake_backlog b;
	int64_t now = clock_mono_us(), cap, desired, k;

	if (w->fanout_max <= 1 || !w->backlog || pthread_mutex_trylock(&w->check_lock))
		return;
	if (now - w->tasks_check_us < CHECK_EVERY_US ||
	    w->backlog(w->backlog_ctx, &b) < 0) {
		pthread_mutex_unlock(&w->check_lock);
		return;
	}
	w->tasks_check_us = now;
	pthread_mutex_unlock(&w->check_lock);
	if (b.pending <= 0)
		return;
	cap = (int64_t)w->slots * w->backlog_per_slot;
	desired = (b.pending + cap - 1) / cap;
	if (desired > w->fanout_max)
		desired = w->fanout_max;
	/* slot k wakes the k+1-th instance: slot 0 is the base wake */
	for (k = b.workers > base_sent ? b.workers : base_sent; k < desired; k++)
		if (tasks_wake(w, 0, (int)k) < 0)
			break;
}

/* ---- public ------------------------------------------------------------ */

struct wake *wake_new(const struct wake_opts *opts, struct err *err)
{
	struct wake *w;

	if (!opts->url || (strncasecmp(opts->url, "http://", 7) && strncasecmp(opts->url, "https://", 8))) {
		err_set(err, ERR_INVALID, "bad WAKE_URL '%s': expected http:// or https://",
			opts->url ? opts->url : "");
		return NULL;
	}
	if (opts->via == WAKE_VIA_HTTP && opts->auth == WAKE_AUTH_TOKEN &&
	    (!opts->token || !*opts->token)) {
		err_set(err, ERR_INVALID, "WAKE_TOKEN is empty");
		return NULL;
	}
	if (fetch_curl_load(err) < 0)
		return NULL;
	w = xcalloc(1, sizeof(*w));
	w->via = opts->via;
	w->timers = opts->timers;
	w->url = xstrdup(opts->url);
	w->auth = opts->auth;
	w->token = opts->token ? xstrdup(opts->token) : NULL;
	w->audience = opts->audience && *opts->audience ? xstrdup(opts->audience) : fetch_gcp_audience(opts->url);
	w->connect_ms = (long)((opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 5) * 1000);
	w->hold_ms = (long)((opts->hold_s > 0 ? opts->hold_s : 3600) * 1000);
	w->fanout_max = opts->fanout_max > 0 ? (opts->fanout_max > MAX_FANOUT ? MAX_FANOUT : opts->fanout_max) : 1;
	w->slots = opts->slot_concurrency > 0 ? opts->slot_concurrency : 1;
	w->backlog_per_slot = opts->backlog_per_slot > 0 ? opts->backlog_per_slot : 10;
	w->backlog = opts->backlog;
	w->backlog_ctx = opts->backlog_ctx;
	w->backoff_us = BACKOFF_MIN_US;
	w->last_check_us = clock_mono_us() - CHECK_EVERY_US;
	w->tasks_check_us = w->last_check_us;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->check_lock, NULL);
	clock_cond_init(&w->handoff_cv);
	if (w->via == WAKE_VIA_CLOUDTASKS) {
		struct wake_tasks_opts to = opts->tasks;

		if (!to.url || !*to.url)
			to.url = w->url;
		if (!to.audience || !*to.audience)
			to.audience = w->audience;
		w->tasks = wake_tasks_new(&to, err);
		if (!w->tasks)
			goto fail;
		return w;
	}
	w->multi = curl_multi_init();
	if (!w->multi || pthread_create(&w->thread, NULL, waker_main, w) != 0) {
		err_set(err, ERR_INTERNAL, "cannot start the waker");
		if (w->multi)
			curl_multi_cleanup(w->multi);
		goto fail;
	}
	return w;
fail:
	pthread_cond_destroy(&w->handoff_cv);
	pthread_mutex_destroy(&w->check_lock);
	pthread_mutex_destroy(&w->lock);
	free(w->url);
	free(w->token);
	free(w->audience);
	free(w);
	return NULL;
}

void wake_free(struct wake *w)
{
	if (!w)
		return;
	if (w->via == WAKE_VIA_HTTP) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_mutex_unlock(&w->lock);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
		curl_multi_cleanup(w->multi);
	}
	wake_tasks_free(w->tasks);
	pthread_cond_destroy(&w->handoff_cv);
	pthread_mutex_destroy(&w->check_lock);
	pthread_mutex_destroy(&w->lock);
	free(w->url);
	if (w->token)
		memset(w->token, 0, strlen(w->token));
	free(w->token);
	free(w->audience);
	free(w);
}

void wake_notify(struct wake *w, int live_worker)
{
	int kick = 0, wait = 0;
	uint64_t h0 = 0;

	if (!w)
		return;
	if (w->via == WAKE_VIA_CLOUDTASKS) {
		int sent = 0;

		if (!live_worker) {
			pthread_mutex_lock(&w->lock);
			w->stats.requested++;
			pthread_mutex_unlock(&w->lock);
			sent = tasks_wake(w, 0, 0) >= 0;
		}
		tasks_fanout(w, sent);
		return;
	}
	pthread_mutex_lock(&w->lock);
	if (!live_worker) {
		w->stats.requested++;
		w->failures = 0;
		if (w->base_busy) {
			w->want_during = 1;
		} else if (!w->want) {
			w->want = 1;
			kick = 1;
		}
		/* Without timers, hand the wake off before the caller answers:
		 * wait until the request went out (or failed). One already in
		 * flight needs no wait. */
		wait = !w->timers && !w->base_busy;
		h0 = w->handoffs;
	} else if (w->fanout_max > 1 && w->backlog && !w->check) {
		w->check = 1;
		kick = 1;
	}
	pthread_mutex_unlock(&w->lock);
	if (kick)
		curl_multi_wakeup(w->multi);
	if (wait) {
		int64_t until = clock_mono_us() + HANDOFF_MAX_US;

		pthread_mutex_lock(&w->lock);
		while (w->handoffs == h0 && !w->base_busy && clock_mono_us() < until)
			clock_cond_wait_us(&w->handoff_cv, &w->lock, until - clock_mono_us());
		/* base_busy: started; now wait for "sent" */
		while (w->handoffs == h0 && clock_mono_us() < until)
			clock_cond_wait_us(&w->handoff_cv, &w->lock, until - clock_mono_us());
		pthread_mutex_unlock(&w->lock);
	}
}

void wake_at(struct wake *w, int64_t due_us)
{
	int kick = 0;

	if (!w)
		return;
	if (w->via == WAKE_VIA_CLOUDTASKS) {
		tasks_wake(w, due_us > 0 ? due_us : 1, 0);
		return;
	}
	if (!w->timers)
		return; /* the cron's tick serves it */
	pthread_mutex_lock(&w->lock);
	if (!w->due_us || due_us < w->due_us) {
		w->due_us = due_us;
		kick = 1;
	}
	pthread_mutex_unlock(&w->lock);
	if (kick)
		curl_multi_wakeup(w->multi);
}

void wake_get_stats(struct wake *w, struct wake_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	*out = w->stats;
	out->in_flight = w->base_busy; /* approximate: fan-out not counted */
	pthread_mutex_unlock(&w->lock);
}

int wake_once(const char *url, const char *token, double timeout_s,
	      int *http_status, char **body, struct err *err)
{
	struct buf answer = BUF_INIT;
	struct curl_slist *h = NULL;
	char *line = NULL;
	CURL *c;
	CURLcode cc;
	long status = 0;
	curl_off_t pre = 0;
	int rc = -1;

	if (fetch_curl_load(err) < 0)
		return -1;
	*http_status = 0;
	if (!url || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)))
		return err_set(err, ERR_INVALID, "bad wake url '%s': expected http:// or https://",
			       url ? url : "");
	c = curl_easy_init();
	if (!c)
		return err_set(err, ERR_INTERNAL, "cannot start curl");
	h = curl_slist_append(h, "Content-Type: application/json");
	h = trigger_header(h, QUEUE_TRIGGER_CLI);
	if (token && *token) {
		line = xasprintf("Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 2L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)((timeout_s > 0 ? timeout_s : 30) * 1000));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body ? collect : discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "wakeq");
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pre);
	*http_status = (int)status;
	if (status == 0) {
		if (cc == CURLE_OPERATION_TIMEDOUT && pre > 0)
			rc = 0; /* sent, and held open by a draining worker */
		else
			err_set(err, ERR_UNAVAILABLE, "cannot wake '%s': %s", url,
				curl_easy_strerror(cc));
	} else if (status == 401 || status == 403) {
		err_set(err, ERR_AUTH, "wake '%s' refused: HTTP %ld", url, status);
	} else if (status >= 400) {
		err_set(err, ERR_PROTOCOL, "wake '%s' failed: HTTP %ld", url, status);
	} else if (cc == CURLE_WRITE_ERROR) {
		err_set(err, ERR_PROTOCOL, "wake '%s': answer over 64 KiB", url);
	} else {
		rc = 0;
	}
	if (rc == 0 && body)
		*body = status ? buf_detach(&answer, NULL) : NULL;
	buf_release(&answer);
	free(line);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}
