/* events.c - GET /v1/jobs/{id}/events: server-sent events from the queue
 * scripts' PUBLISH messages.
 *
 * One hub thread per API holds one subscriber connection for all served
 * queues and fans messages out to the open streams (pushed responses, see
 * httpd.h: an idle stream is a suspended connection and costs no thread).
 *
 * A stream opens with the job's current state, so a client that connects
 * late misses nothing: the watcher is registered before the state is read,
 * messages that arrive meanwhile are held and written after the state, and
 * since messages are published in order, the last thing a client reads is
 * always the newest state. Then one `update` event per message, and an
 * `end` event with the whole job once it is done, failed or cancelled;
 * then the stream closes. A comment line every 15 s keeps proxies from
 * closing the stream and lets the hub notice clients that went away. After
 * the subscriber reconnects (Redis restart), every stream is refreshed
 * from Redis, since messages published meanwhile are lost.
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

/* Reads the job and returns its document as text for the stream (caller
 * frees) with its status in *st, or NULL with e. */
static char *job_text(struct queue *q, const char *queue, const char *id,
		      enum job_status *st, struct err *e)
{
	struct job_info job;
	json_t *doc;
	char *text;

	if (queue_job_get(q, queue, id, &job, e) < 0)
		return NULL;
	doc = job_info_to_json(&job);
	text = json_dumps(doc, JSON_COMPACT);
	if (st)
		*st = job.status;
	json_decref(doc);
	job_info_release(&job);
	return text;
}

static void event_text(struct buf *b, const char *name, const char *data)
{
	buf_printf(b, "event: %s\ndata: %s\n\n", name, data);
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

/* The job document as JSON text (caller frees) with its status in *st,
 * or NULL. Uses the hub thread's own connection. */
static char *fetch_doc(struct api_hub *h, const char *queue, const char *id,
		       enum job_status *st)
{
	struct err e;

	if (!h->q)
		h->q = queue_connect(&h->a->qopts, &e);
	if (!h->q)
		return NULL;
	return job_text(h->q, queue, id, st, &e);
}

static void send_end(struct watcher *w, const char *doc)
{
	struct buf b = BUF_INIT;

	event_text(&b, "end", doc);
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
	event_text(&b, "update", data ? data : "{}");
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
		char *doc = fetch_doc(h, ev->queue, ev->id, NULL);

		for (w = done; w; w = w->next)
			if (doc)
				send_end(w, doc);
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
		char *doc = fetch_doc(h, w->queue, w->id, &st);

		next = w->next;
		if (doc && job_status_final(st)) {
			send_end(w, doc);
			watcher_free(w);
		} else {
			if (doc) {
				struct buf b = BUF_INIT;

				event_text(&b, "state", doc);
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
		if (httpd_push_gone(w->push) || httpd_push_write(w->push, ping, sizeof(ping) - 1) < 0) {
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
		doc = job_text(q, queue, id, &st, &e);
		api_qput(h->a, q);
	}
	final = !doc || job_status_final(st);

	pthread_mutex_lock(&h->lock);
	if (!final)
		event_text(&b, "state", doc);
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
			doc = q ? job_text(q, queue, id, NULL, &e) : NULL;
			if (q)
				api_qput(h->a, q);
		}
		if (doc) {
			send_end(w, doc);
		} else {
			json_t *err_doc = json_pack("{s:s,s:s}", "code",
						    e.code == ERR_NOTFOUND ? "not_found" : "unavailable",
						    "message", e.msg);
			char *t = json_dumps(err_doc, JSON_COMPACT);

			event_text(&b, "error", t ? t : "{}");
			httpd_push_write(p, b.data, b.len);
			buf_release(&b);
			free(t);
			json_decref(err_doc);
		}
		watcher_free(w);
	}
	free(doc);
}
