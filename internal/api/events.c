/* events.c - GET /v1/jobs/{id}/events: server-sent events from the queue
 * scripts' PUBLISH messages.
 *
 * One hub thread per API holds one subscriber connection for all served
 * queues and fans the lines of each message (a script run's changes, see
 * queue.h) out to the streams that follow their jobs (pushed responses,
 * see httpd.h: an idle stream is a suspended connection and costs no
 * thread).
 *
 * A stream opens with a `retry:` hint and the job's current state, so a
 * client that connects late misses nothing: the watcher is registered
 * before the state is read, messages that arrive meanwhile are held and
 * written after the state, and since messages are published in order,
 * the last thing a client reads is always the newest state. Then one
 * `update` event per state change (`active` included) or progress
 * report, and an `end` event with the whole job once it is done, failed
 * or cancelled; then the stream closes. A comment line every 15 s keeps
 * proxies from closing the stream and lets the hub notice clients that
 * went away. After the subscriber reconnects (Redis restart), every stream
 * is refreshed from Redis, since messages published meanwhile are lost.
 *
 * Every event has an `id:`, the time of the change in µs on the Redis
 * clock (for `state`, the job's latest time; for `end`, its finish time).
 * A browser's EventSource reconnects after a stream closes and sends the
 * last id in Last-Event-ID: when the job has ended and that id is its
 * finish time or later, the client has seen the end and is answered 204,
 * which tells EventSource to stop (api_events_final).
 */
#include "api/priv.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "log/log.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PING_US 15000000
#define RETRY_MS 2000   /* the reconnect delay browsers are told */

struct watcher {
	struct watcher *next;
	char id[UUID_STR_LEN];
	char queue[QUEUE_NAME_MAX + 1];
	struct httpd_push *push;
	int ready;          /* the state was written: write straight through */
	int saw_final;      /* a final message arrived before ready */
	struct buf pending; /* messages held until ready */
};

struct api_hub {
	struct api *a;
	pthread_t thread;
	int pipe[2];
	pthread_mutex_t lock;     /* guards list, n, stop */
	struct watcher *list;
	int n;
	int stop;
	struct queue *q;          /* hub thread only: final documents */
};

/* Whether an event's status names a final state. */
static int status_final(const char *status)
{
	enum job_status st;

	return job_status_parse(status, &st, NULL) == 0 && job_status_final(st);
}

/* A job's event id: its latest time (µs); for a job that ended, when it
 * did, the same value as the id of the change that ended it. */
static int64_t job_version(const struct job_info *j)
{
	int64_t v = j->created_at;

	if (j->started_at > v)
		v = j->started_at;
	if (j->finished_at > v)
		v = j->finished_at;
	return v;
}

/* The job's document as text (caller frees). */
static char *doc_text(const struct job_info *job)
{
	json_t *doc = job_info_to_json(job);
	char *text = json_dumps(doc, JSON_COMPACT);

	json_decref(doc);
	return text;
}

/* Reads the job and returns its document as text for the stream (caller
 * frees) with its status in *st and its event id in *ver (both may be
 * NULL), or NULL with e. */
static char *job_text(struct queue *q, const char *queue, const char *id,
		      enum job_status *st, int64_t *ver, struct err *e)
{
	struct job_info job;
	char *text;

	if (queue_job_get(q, queue, id, &job, e) < 0)
		return NULL;
	text = doc_text(&job);
	if (st)
		*st = job.status;
	if (ver)
		*ver = job_version(&job);
	job_info_release(&job);
	return text;
}

/* One event; id 0 = none. */
static void event_text(struct buf *b, const char *name, int64_t id, const char *data)
{
	if (id > 0)
		buf_printf(b, "id: %lld\n", (long long)id);
	buf_printf(b, "event: %s\ndata: %s\n\n", name, data);
}

/* The Last-Event-ID of a reconnecting EventSource, or 0. */
static int64_t last_event_id(struct httpd_request *req)
{
	const char *s = httpd_header(req, "Last-Event-ID");
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	v = strtoll(s, &end, 10);
	return *end == '\0' && v > 0 ? v : 0;
}

void api_events_final(struct api *a, struct httpd_request *req,
		      const struct job_info *job)
{
	struct buf b = BUF_INIT;
	int64_t ver = job_version(job);
	char *text;

	if (ver > 0 && last_event_id(req) >= ver) {
		/* it has seen the end: EventSource stops on 204 */
		api_count_status(a, 204);
		httpd_respond(req, 204, NULL, "", 0);
		return;
	}
	text = doc_text(job);
	buf_printf(&b, "retry: %d\n", RETRY_MS);
	event_text(&b, "end", ver, text ? text : "{}");
	free(text);
	api_count_status(a, 200);
	httpd_add_header(req, "Cache-Control", "no-cache");
	httpd_respond(req, 200, "text/event-stream", b.data, b.len);
	buf_release(&b);
}

static void watcher_free(struct watcher *w)
{
	httpd_push_end(w->push);
	buf_release(&w->pending);
	free(w);
}

/* Unlinks `w`; h->lock held. */
static void unlink_watcher(struct api_hub *h, struct watcher *w)
{
	struct watcher **pp;

	for (pp = &h->list; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			h->n--;
			return;
		}
}

/* The job document as JSON text (caller frees) with its status in *st
 * and event id in *ver (may be NULL), or NULL. Uses the hub thread's own
 * connection. */
static char *fetch_doc(struct api_hub *h, const char *queue, const char *id,
		       enum job_status *st, int64_t *ver)
{
	struct err e;

	if (!h->q)
		h->q = queue_connect(&h->a->qopts, &e);
	if (!h->q)
		return NULL;
	return job_text(h->q, queue, id, st, ver, &e);
}

static void send_end(struct watcher *w, const char *doc, int64_t ver)
{
	struct buf b = BUF_INIT;

	event_text(&b, "end", ver, doc);
	httpd_push_write(w->push, b.data, b.len);
	buf_release(&b);
}

static void dispatch(struct api_hub *h, const struct queue_event *ev)
{
	struct watcher *w, *next, *done = NULL;
	struct buf b = BUF_INIT;
	json_t *j = json_object();
	char *data;
	int final = status_final(ev->status);

	json_object_set_new(j, "id", json_string(ev->id));
	json_object_set_new(j, "status", json_string(ev->status));
	json_object_set_new(j, "progress", ev->progress >= 0 ? json_real(ev->progress) : json_null());
	json_object_set_new(j, "stage", ev->stage[0] ? json_string(ev->stage) : json_null());
	data = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	event_text(&b, "update", ev->time_us, data ? data : "{}");
	free(data);

	pthread_mutex_lock(&h->lock);
	for (w = h->list; w; w = next) {
		next = w->next;
		if (strcmp(w->id, ev->id) || strcmp(w->queue, ev->queue))
			continue;
		if (!w->ready) {
			buf_add(&w->pending, b.data, b.len);
			if (final)
				w->saw_final = 1;
			continue;
		}
		if (!final) {
			if (httpd_push_write(w->push, b.data, b.len) < 0) {
				unlink_watcher(h, w);
				w->next = done;
				done = w;
			}
			continue;
		}
		unlink_watcher(h, w);
		w->next = done;
		done = w;
	}
	pthread_mutex_unlock(&h->lock);
	buf_release(&b);

	if (final && done) {
		int64_t ver = ev->time_us;
		char *doc = fetch_doc(h, ev->queue, ev->id, NULL, &ver);

		for (w = done; w; w = w->next)
			if (doc)
				send_end(w, doc, ver);
		free(doc);
	}
	for (w = done; w; w = next) {
		next = w->next;
		watcher_free(w);
	}
}

/* After a (re)subscribe: re-read every ready stream's job; end the ones
 * that finished meanwhile. */
static void refresh_all(struct api_hub *h)
{
	struct watcher *w, *next, *todo = NULL;

	pthread_mutex_lock(&h->lock);
	for (w = h->list; w; w = next) {
		next = w->next;
		if (w->ready) {
			unlink_watcher(h, w);
			w->next = todo;
			todo = w;
		}
	}
	pthread_mutex_unlock(&h->lock);
	for (w = todo; w; w = next) {
		enum job_status st = JOB_QUEUED;
		int64_t ver = 0;
		char *doc = fetch_doc(h, w->queue, w->id, &st, &ver);

		next = w->next;
		if (doc && job_status_final(st)) {
			send_end(w, doc, ver);
			watcher_free(w);
		} else {
			if (doc) {
				struct buf b = BUF_INIT;

				event_text(&b, "state", ver, doc);
				httpd_push_write(w->push, b.data, b.len);
				buf_release(&b);
			}
			pthread_mutex_lock(&h->lock);
			w->next = h->list;
			h->list = w;
			h->n++;
			pthread_mutex_unlock(&h->lock);
		}
		free(doc);
	}
}

static void ping_all(struct api_hub *h)
{
	static const char ping[] = ": ping\n\n";
	struct watcher *w, *next, *gone = NULL;

	pthread_mutex_lock(&h->lock);
	for (w = h->list; w; w = next) {
		next = w->next;
		if (!w->ready)
			continue;
		/* fails once the client has gone: then the watcher goes */
		if (httpd_push_write(w->push, ping, sizeof(ping) - 1) < 0) {
			unlink_watcher(h, w);
			w->next = gone;
			gone = w;
		}
	}
	pthread_mutex_unlock(&h->lock);
	for (w = gone; w; w = next) {
		next = w->next;
		watcher_free(w);
	}
}

static void *hub_main(void *arg)
{
	struct api_hub *h = arg;
	struct queue_sub *sub = NULL;
	int64_t last_ping = clock_mono_us(), retry_at = 0;
	int first = 1;

	for (;;) {
		struct pollfd pf[2];
		int stop, nfds = 1;
		char drain[64];

		pthread_mutex_lock(&h->lock);
		stop = h->stop;
		pthread_mutex_unlock(&h->lock);
		if (stop)
			break;
		if (!sub && clock_mono_us() >= retry_at) {
			struct err e;
			size_t i;

			sub = queue_sub_connect(&h->a->qopts, &e);
			for (i = 0; sub && i < h->a->nqueues; i++)
				if (queue_sub_subscribe(sub, h->a->queues[i], &e) < 0) {
					queue_sub_free(sub);
					sub = NULL;
				}
			if (!sub) {
				retry_at = clock_mono_us() + 1000000;
			} else if (!first) {
				log_info("event subscriber reconnected");
				refresh_all(h);
			}
			if (sub)
				first = 0;
		}
		pf[0].fd = h->pipe[0];
		pf[0].events = POLLIN;
		if (sub) {
			pf[1].fd = queue_sub_fd(sub);
			pf[1].events = POLLIN;
			nfds = 2;
		}
		poll(pf, (nfds_t)nfds, 1000);
		while (read(h->pipe[0], drain, sizeof(drain)) > 0)
			;
		if (sub && nfds == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			struct queue_event ev;
			struct err e;
			int rc;

			while ((rc = queue_sub_read(sub, &ev, &e)) == 1)
				dispatch(h, &ev);
			if (rc < 0) {
				log_warn("event subscriber lost", "error", e.msg);
				queue_sub_free(sub);
				sub = NULL;
				retry_at = clock_mono_us() + 200000;
			}
		}
		if (clock_mono_us() - last_ping >= PING_US) {
			last_ping = clock_mono_us();
			ping_all(h);
		}
	}
	queue_sub_free(sub);
	return NULL;
}

struct api_hub *api_hub_new(struct api *a, struct err *err)
{
	struct api_hub *h = xcalloc(1, sizeof(*h));

	h->a = a;
	pthread_mutex_init(&h->lock, NULL);
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		err_set(err, ERR_INTERNAL, "cannot make a pipe");
		goto fail;
	}
	if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
		err_set(err, ERR_INTERNAL, "cannot start the event hub");
		close(h->pipe[0]);
		close(h->pipe[1]);
		goto fail;
	}
	return h;
fail:
	pthread_mutex_destroy(&h->lock);
	free(h);
	return NULL;
}

void api_hub_free(struct api_hub *h)
{
	struct watcher *w, *next;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = 1;
	pthread_mutex_unlock(&h->lock);
	if (write(h->pipe[1], "x", 1) < 0) {
		/* the hub notices stop within a second anyway */
	}
	pthread_join(h->thread, NULL);
	for (w = h->list; w; w = next) {
		next = w->next;
		watcher_free(w);
	}
	close(h->pipe[0]);
	close(h->pipe[1]);
	queue_free(h->q);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int api_hub_streams(struct api_hub *h)
{
	int n;

	pthread_mutex_lock(&h->lock);
	n = h->n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

void api_hub_serve(struct api_hub *h, struct httpd_request *req,
		   const char *queue, const char *id)
{
	struct watcher *w;
	struct httpd_push *p;
	struct queue *q;
	struct err e;
	enum job_status st = JOB_QUEUED;
	int64_t ver = 0;
	char *doc = NULL;
	int final, saw;
	struct buf b = BUF_INIT;

	p = httpd_respond_push(req, 200, "text/event-stream");
	if (!p) {
		httpd_error(req, 500, "internal", "cannot open an event stream");
		return;
	}
	if (!strcmp(httpd_method(req), "HEAD")) {
		/* a stream's status and headers, without the stream */
		httpd_push_end(p);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	buf_init(&w->pending);
	memcpy(w->id, id, UUID_STR_LEN);
	snprintf(w->queue, sizeof(w->queue), "%s", queue);
	w->push = p;
	pthread_mutex_lock(&h->lock);
	w->next = h->list;
	h->list = w;
	h->n++;
	pthread_mutex_unlock(&h->lock);

	q = api_qget(h->a, &e);
	if (q) {
		doc = job_text(q, queue, id, &st, &ver, &e);
		api_qput(h->a, q);
	}
	final = !doc || job_status_final(st);

	pthread_mutex_lock(&h->lock);
	buf_printf(&b, "retry: %d\n", RETRY_MS);
	if (!final)
		event_text(&b, "state", ver, doc);
	buf_add(&b, w->pending.data, w->pending.len);
	buf_reset(&w->pending);
	saw = w->saw_final;
	if (final || saw)
		unlink_watcher(h, w);
	else
		w->ready = 1;
	httpd_push_write(p, b.data, b.len);
	pthread_mutex_unlock(&h->lock);
	buf_release(&b);

	if (final || saw) {
		if (saw && !final) {
			free(doc);
			q = api_qget(h->a, &e);
			doc = q ? job_text(q, queue, id, NULL, &ver, &e) : NULL;
			if (q)
				api_qput(h->a, q);
		}
		if (doc) {
			send_end(w, doc, ver);
		} else {
			json_t *err_doc = json_pack("{s:s,s:s}", "code",
						    e.code == ERR_NOTFOUND ? "not_found" : "unavailable",
						    "message", e.msg);
			char *t = json_dumps(err_doc, JSON_COMPACT);

			event_text(&b, "error", 0, t ? t : "{}");
			httpd_push_write(p, b.data, b.len);
			buf_release(&b);
			free(t);
			json_decref(err_doc);
		}
		watcher_free(w);
	}
	free(doc);
}
