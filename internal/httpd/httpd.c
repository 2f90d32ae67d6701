#include "httpd/httpd.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/thread.h"
#include "crypto/crypto.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <pthread.h>
#include <time.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

struct httpd {
	struct MHD_Daemon *d;
	httpd_handler handler;
	void *ctx;
	size_t max_body;
	int port;
	int thread_per_connection;
	int allow_push;
	pthread_mutex_t push_lock;    /* guards `pushes` */
	LIST_HEAD(, httpd_push) pushes; /* live pushed streams, for httpd_stop */
	atomic_int active;            /* requests not yet completed */
	int (*sink_for)(struct httpd_request *req, void *ctx,
			struct httpd_sink *sink);
	/* connection limits (see "connection limits" below) */
	pthread_mutex_t conn_lock;    /* guards the fields below and every
				       * struct hconn */
	pthread_cond_t conn_cond;     /* wakes the sweep thread */
	TAILQ_HEAD(, hconn) waiting;  /* waiting connections, oldest first */
	size_t nwaiting;
	size_t wait_cap;              /* max_connections - reserve */
	int64_t header_us, body_us;   /* the deadlines */
	pthread_t sweeper;
	int sweeping;                 /* sweeper started */
	int stopping;                 /* sweeper asked to end */
};

struct header {
	char *name, *value;
};

struct httpd_request {
	struct httpd *h;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	struct buf body;
	int too_large;
	int responded;
	int deferred;                 /* answered later by another thread */
	int lost;                     /* deferred, and no answer could be made */
	struct MHD_Response *pending; /* deferred answer, queued on resume */
	unsigned pending_status;
	struct header *headers;
	size_t nheaders;
	size_t uri_len;               /* the request target as sent, in bytes */
	char peer[INET6_ADDRSTRLEN];
	/* streamed body (httpd_sink): sinking once sink_for chose it */
	int sinking;
	int sink_done;                /* handler called early (cap, failure) */
	enum httpd_sink_result sink_res;
	uint64_t sink_bytes;
	struct httpd_sink sink;
	struct hconn *hc;             /* its connection's limits entry */
};

const char *httpd_method(const struct httpd_request *req) { return req->method; }
const char *httpd_path(const struct httpd_request *req) { return req->path; }

const char *httpd_header(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *httpd_query(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *httpd_body(const struct httpd_request *req, size_t *len)
{
	if (len)
		*len = req->body.len;
	return req->body.data;
}

const char *httpd_peer(const struct httpd_request *req)
{
	return req->peer;
}

const char *httpd_cookie(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

int httpd_token_ok(const char *given, const char *const *tokens)
{
	int ok = 0;

	if (!given)
		return 0;
	for (; tokens && *tokens; tokens++)
		ok |= (*tokens)[0] && crypto_equal(given, strlen(given), *tokens,
						   strlen(*tokens));
	return ok;
}

int httpd_bearer_ok(const struct httpd_request *req, const char *const *tokens)
{
	const char *auth = httpd_header(req, "Authorization");

	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return 0;
	auth += 7;
	while (*auth == ' ')
		auth++;
	return httpd_token_ok(auth, tokens);
}

void httpd_add_header(struct httpd_request *req, const char *name,
		      const char *value)
{
	req->headers = xrealloc(req->headers, (req->nheaders + 1) * sizeof(*req->headers));
	req->headers[req->nheaders].name = xstrdup(name);
	req->headers[req->nheaders].value = xstrdup(value);
	req->nheaders++;
}

static int queue_response(struct httpd_request *req, unsigned status,
			  const char *content_type, struct MHD_Response *resp)
{
	size_t i;
	MHD_RESULT r;

	if (!resp) {
		if (req->deferred && !req->responded) {
			/* no answer to give: resume to close the connection */
			req->lost = 1;
			req->responded = 1;
			MHD_resume_connection(req->conn);
		}
		return -1;
	}
	if (content_type)
		MHD_add_response_header(resp, "Content-Type", content_type);
	for (i = 0; i < req->nheaders; i++)
		MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value);
	if (req->deferred) {
		/* Not our connection's thread: park the answer and resume; MHD
		 * calls access_cb again on its own thread, which queues it.
		 * The resume publishes these fields (MHD takes its lock). */
		req->pending = resp;
		req->pending_status = status;
		req->responded = 1;
		MHD_resume_connection(req->conn);
		return 0; /* `req` may be freed from here on */
	}
	r = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	req->responded = 1;
	return r == MHD_YES ? 0 : -1;
}

int httpd_respond(struct httpd_request *req, unsigned status,
		  const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *resp;

	if (req->responded)
		return -1;
	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	return queue_response(req, status, content_type, resp);
}

int httpd_respond_json(struct httpd_request *req, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	struct MHD_Response *resp;

	json_decref(body);
	if (!text)
		return httpd_respond(req, 500, "application/json",
				     "{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode\"}}", 58);
	if (req->responded) {
		free(text);
		return -1;
	}
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	return queue_response(req, status, "application/json", resp);
}

int httpd_error(struct httpd_request *req, unsigned status, const char *code,
		const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return httpd_respond_json(req, status,
				  json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* libmicrohttpd 0.9.75 ends a chunked answer to HEAD with the last-chunk
 * marker "0\r\n\r\n", bytes a client reads as the start of the next
 * response. An answer of unknown length to HEAD goes unchunked instead:
 * the headers alone, then the connection closes. */
static void head_unchunked(const struct httpd_request *req,
			   struct MHD_Response *resp)
{
	if (!strcmp(req->method, "HEAD"))
		MHD_set_response_options(resp, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
}

struct stream {
	httpd_reader read;
	void *ctx;
	void (*done)(void *ctx);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	ssize_t n;

	(void)pos;
	n = s->read(s->ctx, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	if (s->done)
		s->done(s->ctx);
	free(s);
}

int httpd_respond_stream(struct httpd_request *req, unsigned status,
			 const char *content_type, httpd_reader read,
			 void *ctx, void (*done)(void *ctx))
{
	struct stream *s = xmalloc(sizeof(*s));
	struct MHD_Response *resp;

	s->read = read;
	s->ctx = ctx;
	s->done = done;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
						 stream_free);
	if (!resp) {
		stream_free(s);
		return -1;
	}
	head_unchunked(req, resp);
	return queue_response(req, status, content_type, resp);
}


/* ---- pushed streams -------------------------------------------------------
 *
 * Two references: the producer's (dropped by httpd_push_end) and MHD's
 * response (dropped when MHD destroys it: stream over, client gone or
 * server stopped). The reader runs on the connection's MHD thread; with
 * nothing buffered it suspends the connection and returns 0 (the pattern
 * microhttpd.h prescribes), and a write resumes it. `suspended` is only
 * changed under the lock, so a resume always matches a suspend. In
 * thread-per-connection mode suspending is not available: the reader
 * waits on a condition variable for up to a second instead.
 */
struct httpd_push {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct httpd *h;             /* NULL once MHD has let go */
	struct MHD_Connection *conn;
	struct buf buf;
	size_t off;                  /* bytes of buf already sent */
	int suspended, ended, gone;
	int refs;
	LIST_ENTRY(httpd_push) link;  /* on h->pushes while h is set */
};

static void push_unref(struct httpd_push *p)
{
	int last;

	pthread_mutex_lock(&p->lock);
	last = --p->refs == 0;
	pthread_mutex_unlock(&p->lock);
	if (!last)
		return;
	buf_release(&p->buf);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Wakes the reader; p->lock held. Returns the connection to resume (after
 * unlocking: MHD takes its own locks, which must never nest inside ours),
 * or NULL. While `suspended` was set nothing else touches the connection,
 * so resuming it just after the unlock is safe. */
static struct MHD_Connection *push_kick(struct httpd_push *p)
{
	pthread_cond_broadcast(&p->cond);
	if (p->suspended && !p->gone) {
		p->suspended = 0;
		return p->conn;
	}
	return NULL;
}

static ssize_t push_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct httpd_push *p = cls;
	ssize_t n = 0;

	(void)pos;
	pthread_mutex_lock(&p->lock);
	if (p->off == p->buf.len && !p->ended && p->h && p->h->thread_per_connection)
		clock_cond_wait_us(&p->cond, &p->lock, 1000000);
	if (p->off < p->buf.len) {
		n = (ssize_t)(p->buf.len - p->off < max ? p->buf.len - p->off : max);
		memcpy(out, p->buf.data + p->off, (size_t)n);
		p->off += (size_t)n;
		if (p->off == p->buf.len) {
			buf_reset(&p->buf);
			p->off = 0;
		}
	} else if (p->ended) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else if (p->h && !p->h->thread_per_connection) {
		p->suspended = 1;
		MHD_suspend_connection(p->conn);
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void push_released(void *cls)
{
	struct httpd_push *p = cls;
	struct httpd *h;

	pthread_mutex_lock(&p->lock);
	h = p->h;
	p->gone = 1;
	p->suspended = 0;
	pthread_mutex_unlock(&p->lock);
	if (h) {
		pthread_mutex_lock(&h->push_lock);
		LIST_REMOVE(p, link);
		pthread_mutex_unlock(&h->push_lock);
		pthread_mutex_lock(&p->lock);
		p->h = NULL;
		pthread_mutex_unlock(&p->lock);
	}
	push_unref(p);
}

struct httpd_push *httpd_respond_push(struct httpd_request *req, unsigned status,
				      const char *content_type)
{
	struct httpd *h = req->h;
	struct httpd_push *p;
	struct MHD_Response *resp;

	if (!h->allow_push || req->responded)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	clock_cond_init(&p->cond);
	buf_init(&p->buf);
	p->h = h;
	p->conn = req->conn;
	p->refs = 2;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, push_read, p,
						 push_released);
	if (!resp) {
		free(p);
		return NULL;
	}
	head_unchunked(req, resp);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	pthread_mutex_lock(&h->push_lock);
	LIST_INSERT_HEAD(&h->pushes, p, link);
	pthread_mutex_unlock(&h->push_lock);
	if (queue_response(req, status, content_type, resp) < 0) {
		/* MHD_destroy_response ran push_released: one reference left */
		httpd_push_end(p);
		return NULL;
	}
	return p;
}

int httpd_push_write(struct httpd_push *p, const char *data, size_t len)
{
	int rc = -1;

	struct MHD_Connection *resume = NULL;

	pthread_mutex_lock(&p->lock);
	if (!p->gone && !p->ended) {
		buf_add(&p->buf, data, len);
		resume = push_kick(p);
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (resume)
		MHD_resume_connection(resume);
	return rc;
}

void httpd_push_end(struct httpd_push *p)
{
	struct MHD_Connection *resume;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->ended = 1;
	resume = push_kick(p);
	pthread_mutex_unlock(&p->lock);
	if (resume)
		MHD_resume_connection(resume);
	push_unref(p);
}

/* MHD must not stop with suspended connections: end and resume them all.
 * References are taken under the list lock and the streams kicked after. */
static void push_stop_all(struct httpd *h)
{
	struct httpd_push *p, **all = NULL;
	size_t n = 0, i;

	pthread_mutex_lock(&h->push_lock);
	LIST_FOREACH(p, &h->pushes, link) {
		pthread_mutex_lock(&p->lock);
		p->refs++;
		pthread_mutex_unlock(&p->lock);
		all = xrealloc(all, (n + 1) * sizeof(*all));
		all[n++] = p;
	}
	pthread_mutex_unlock(&h->push_lock);
	for (i = 0; i < n; i++)
		httpd_push_end(all[i]); /* ends it and drops the reference taken above */
	free(all);
}

/* ---- connection limits ------------------------------------------------------
 *
 * libmicrohttpd's own timeout is an idle timeout, reset by every byte: a
 * client sending a header byte every few seconds keeps its connection
 * forever, and a thousand such clients hold every slot (and, in
 * thread-per-connection mode, a thread each). So every connection is
 * tracked here from accept to close (MHD_OPTION_NOTIFY_CONNECTION), in one
 * of these phases:
 *   HEADERS  waiting for a request's headers, since the connect or since
 *            the previous answer went out (keep-alive);
 *   BODY     headers in, a buffered body arriving (since the headers);
 *   BUSY     in the handler, deferred, answering, or streaming its body to
 *            a sink: never closed here;
 *   KICKED   shut down here; libmicrohttpd has not closed it yet.
 * HEADERS and BODY connections are "waiting", on a list ordered by `since`
 * (a connection entering a phase goes to the tail). Two rules:
 *   - deadlines: the sweep thread closes a connection that has been
 *     HEADERS for header_us or BODY for body_us, whatever it trickled;
 *   - reserve: at most wait_cap connections wait; a new connection past
 *     that closes the oldest waiting one, right on accept. A flood of
 *     connections that never finish a request thus only ever holds the
 *     waiting slots, and only until newer connections come, while a new
 *     client whose request arrives whole (the youngest, BUSY within a
 *     round trip) gets a slot and keeps it until answered.
 * Closing is shutdown(2): libmicrohttpd sees the end of the stream on the
 * connection's own thread and closes it as usual. A socket is only shut
 * down under conn_lock while its connection is registered, and it is
 * unregistered (NOTIFY_CLOSED) before libmicrohttpd closes the descriptor
 * (in 0.9.75 and 1.0), so a number reused by a newer connection is never
 * touched.
 */
enum hconn_phase { HCONN_HEADERS, HCONN_BODY, HCONN_BUSY, HCONN_KICKED };

struct hconn {
	TAILQ_ENTRY(hconn) link;      /* on h->waiting while HEADERS or BODY */
	int fd;
	enum hconn_phase phase;
	int64_t since_us;             /* monotonic: entered its phase */
};

static int hconn_waits(const struct hconn *hc)
{
	return hc->phase == HCONN_HEADERS || hc->phase == HCONN_BODY;
}

/* conn_lock held. */
static void hconn_unlink(struct httpd *h, struct hconn *hc)
{
	if (!hconn_waits(hc))
		return;
	TAILQ_REMOVE(&h->waiting, hc, link);
	h->nwaiting--;
}

/* conn_lock held. */
static void hconn_kick(struct httpd *h, struct hconn *hc)
{
	hconn_unlink(h, hc);
	hc->phase = HCONN_KICKED;
	shutdown(hc->fd, SHUT_RDWR);
}

/* Moves `hc` to `phase` (a kicked connection stays kicked). conn_lock held. */
static void hconn_enter(struct httpd *h, struct hconn *hc, enum hconn_phase phase)
{
	if (hc->phase == HCONN_KICKED)
		return;
	hconn_unlink(h, hc);
	hc->phase = phase;
	hc->since_us = clock_mono_us();
	if (!hconn_waits(hc))
		return;
	TAILQ_INSERT_TAIL(&h->waiting, hc, link);
	if (h->nwaiting++ == 0)
		pthread_cond_signal(&h->conn_cond); /* the sweep had nothing to wait for */
}

static void hconn_set(struct httpd *h, struct hconn *hc, enum hconn_phase phase)
{
	if (!hc)
		return;
	pthread_mutex_lock(&h->conn_lock);
	hconn_enter(h, hc, phase);
	pthread_mutex_unlock(&h->conn_lock);
}

static struct hconn *hconn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void hconn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			 enum MHD_ConnectionNotificationCode code)
{
	struct httpd *h = cls;
	struct hconn *hc = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (!ci)
			return;
		hc = xcalloc(1, sizeof(*hc));
		hc->fd = ci->connect_fd;
		hc->phase = HCONN_BUSY;
		*socket_context = hc;
		pthread_mutex_lock(&h->conn_lock);
		hconn_enter(h, hc, HCONN_HEADERS);
		while (h->nwaiting > h->wait_cap)
			hconn_kick(h, TAILQ_FIRST(&h->waiting));
		pthread_mutex_unlock(&h->conn_lock);
		return;
	}
	if (!hc)
		return;
	pthread_mutex_lock(&h->conn_lock);
	hconn_unlink(h, hc);
	pthread_mutex_unlock(&h->conn_lock);
	free(hc);
	*socket_context = NULL;
}

/* Closes waiting connections past their deadline; sleeps until the next
 * one (at most a second). */
static void *sweep_main(void *arg)
{
	struct httpd *h = arg;
	int64_t first = h->header_us < h->body_us ? h->header_us : h->body_us;

	pthread_mutex_lock(&h->conn_lock);
	while (!h->stopping) {
		int64_t now = clock_mono_us(), next = now + 1000000;
		struct hconn *hc, *after;

		/* Entries are in `since` order: none past the first whose
		 * shorter deadline is still ahead can be due. */
		for (hc = TAILQ_FIRST(&h->waiting); hc && hc->since_us + first <= now;
		     hc = after) {
			int64_t due = hc->since_us +
				      (hc->phase == HCONN_HEADERS ? h->header_us : h->body_us);

			after = TAILQ_NEXT(hc, link);
			if (due <= now)
				hconn_kick(h, hc);
			else if (due < next)
				next = due;
		}
		if (hc && hc->since_us + first < next)
			next = hc->since_us + first;
		clock_cond_wait_us(&h->conn_cond, &h->conn_lock, next - now);
	}
	pthread_mutex_unlock(&h->conn_lock);
	return NULL;
}

/* max_connections, after making room under RLIMIT_NOFILE: the soft limit
 * is raised towards the hard one (as Go's runtime does at start), and the
 * count lowered when even that is short. `spare` descriptors are kept for
 * the rest of the process (Redis, Postgres, wake calls, logs). */
static unsigned fit_fd_limit(unsigned want)
{
	const rlim_t spare = 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return want;
	if (rl.rlim_cur < want + spare && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want + spare
				      ? want + spare : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return want;
	}
	if (rl.rlim_cur < want + spare)
		want = rl.rlim_cur > 2 * spare ? (unsigned)(rl.rlim_cur - spare)
					       : (unsigned)(rl.rlim_cur / 2);
	return want > 0 ? want : 1;
}

static void request_free(struct httpd_request *req)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		free(req->headers[i].name);
		free(req->headers[i].value);
	}
	free(req->headers);
	buf_release(&req->body);
	free(req);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct httpd *h = cls;

	(void)c;
	(void)toe;
	if (*con_cls) {
		struct httpd_request *req = *con_cls;

		if (req->pending)
			MHD_destroy_response(req->pending);
		if (req->sinking && req->sink.release)
			req->sink.release(req->sink.ctx);
		/* keep-alive: the next request's headers are due from now */
		hconn_set(h, req->hc, HCONN_HEADERS);
		request_free(req);
		atomic_fetch_sub(&h->active, 1);
	}
	*con_cls = NULL;
}

static void set_peer(struct httpd_request *req)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	strcpy(req->peer, "?");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->peer,
			  sizeof(req->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->peer,
			  sizeof(req->peer));
}

/* ---- streamed bodies ------------------------------------------------------ */

enum httpd_sink_result httpd_sink_result(const struct httpd_request *req,
					 uint64_t *bytes, void **ctx)
{
	if (bytes)
		*bytes = req->sinking ? req->sink_bytes : 0;
	if (ctx)
		*ctx = req->sinking ? req->sink.ctx : NULL;
	return req->sinking ? req->sink_res : HTTPD_SINK_NONE;
}

/* The body cannot arrive whole: the handler answers now. Returns what
 * access_cb returns: mid-body, libmicrohttpd 0.9.75 takes no answer, and
 * MHD_NO closes the connection rather than read the rest. */
static MHD_RESULT sink_stop(struct httpd_request *req, int before_body)
{
	req->sink_done = 1;
	req->h->handler(req, req->h->ctx);
	if (!req->responded)
		httpd_error(req, req->sink_res == HTTPD_SINK_TOO_LARGE ? 413 : 500,
			    req->sink_res == HTTPD_SINK_TOO_LARGE ? "too_large" : "internal",
			    "request body not stored");
	return before_body ? MHD_YES : MHD_NO;
}

/* First call of a request whose body is read into memory: a declared
 * Content-Length over max_body is answered 413 before reading (MHD then
 * closes instead of draining). */
static MHD_RESULT body_start(struct httpd_request *req, const char *cl)
{
	if (cl && strtoull(cl, NULL, 10) > req->h->max_body) {
		req->too_large = 1;
		return httpd_error(req, 413, "too_large", "request body over %zu bytes",
				   req->h->max_body) == 0
			       ? MHD_YES : MHD_NO;
	}
	return MHD_YES;
}

/* First call of a request when sink_for is set. */
static MHD_RESULT sink_start(struct httpd_request *req, const char *cl)
{
	struct httpd *h = req->h;
	int r = h->sink_for(req, h->ctx, &req->sink);

	if (req->responded) {
		/* answered at once (401, 503): its body is not wanted */
		req->too_large = 1;
		return MHD_YES;
	}
	if (r != 1) {
		memset(&req->sink, 0, sizeof(req->sink));
		return body_start(req, cl);
	}
	req->sinking = 1;
	req->sink_res = HTTPD_SINK_OK;
	hconn_set(h, req->hc, HCONN_BUSY); /* long uploads: the idle timeout */
	if (cl && req->sink.max && strtoull(cl, NULL, 10) > req->sink.max) {
		/* before reading: MHD closes instead of draining */
		req->sink_res = HTTPD_SINK_TOO_LARGE;
		return sink_stop(req, 1);
	}
	return MHD_YES;
}

/* A piece of a streamed body. */
static MHD_RESULT sink_feed(struct httpd_request *req, const char *data,
			    size_t *len)
{
	size_t n = *len;

	*len = 0;
	if (req->sink_done)
		return MHD_NO;
	if (req->sink.max && (req->sink_bytes + n > req->sink.max ||
			      req->sink_bytes + n < req->sink_bytes))
		req->sink_res = HTTPD_SINK_TOO_LARGE;
	else if (req->sink.write(req->sink.ctx, data, n) < 0)
		req->sink_res = HTTPD_SINK_FAILED;
	else
		req->sink_bytes += n;
	if (req->sink_res != HTTPD_SINK_OK)
		return sink_stop(req, 0);
	return MHD_YES;
}

/* The request is made as soon as its request line is parsed (libmicrohttpd
 * calls this once per request, before the headers; `completed` frees it),
 * when the target is still whole, query included. */
static void *request_new(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct httpd *h = cls;
	struct httpd_request *req = xcalloc(1, sizeof(*req));

	atomic_fetch_add(&h->active, 1);
	req->h = h;
	req->conn = c;
	req->uri_len = strlen(uri);
	buf_init(&req->body);
	return req;
}

static MHD_RESULT add_header_len(void *cls, enum MHD_ValueKind kind,
				 const char *key, const char *value)
{
	size_t *total = cls;

	(void)kind;
	*total += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": ", CRLF */
	return MHD_YES;
}

/* Our own limits on the request line and headers, below libmicrohttpd's
 * (its per-connection memory), so that what it would refuse in HTML is
 * refused here first, as JSON. Returns 0, or -1 once answered. */
static int line_or_headers_too_large(struct httpd_request *req)
{
	size_t total = 0;

	if (req->uri_len > HTTPD_MAX_URI) {
		httpd_error(req, 414, "uri_too_long", "request target over %d bytes",
			    HTTPD_MAX_URI);
		return -1;
	}
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, add_header_len, &total);
	if (total > HTTPD_MAX_HEADERS) {
		httpd_error(req, 431, "headers_too_large", "request headers over %d bytes",
			    HTTPD_MAX_HEADERS);
		return -1;
	}
	return 0;
}

static MHD_RESULT access_cb(void *cls, struct MHD_Connection *c, const char *url,
			    const char *method, const char *version,
			    const char *upload, size_t *upload_size, void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_request *req = *con_cls;
	MHD_RESULT r;

	(void)version;
	if (!req) /* not seen by request_new: cannot happen, but be whole */
		req = *con_cls = request_new(h, url, c);
	if (!req->method) {
		const char *cl;

		req->method = method;
		req->path = url;
		set_peer(req);
		req->hc = hconn_of(c);
		hconn_set(h, req->hc, HCONN_BODY);
		if (line_or_headers_too_large(req) < 0) {
			req->too_large = 1; /* its body is not read */
			return req->responded ? MHD_YES : MHD_NO;
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		return h->sink_for ? sink_start(req, cl) : body_start(req, cl);
	}
	if (*upload_size && req->sinking)
		return sink_feed(req, upload, upload_size);
	if (*upload_size) {
		if (!req->too_large && req->body.len + *upload_size > h->max_body)
			req->too_large = 1;
		if (!req->too_large)
			buf_add(&req->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (req->pending) {
		/* a deferred answer, back on the connection's thread */
		struct MHD_Response *resp = req->pending;

		req->pending = NULL;
		r = MHD_queue_response(c, req->pending_status, resp);
		MHD_destroy_response(resp);
		return r;
	}
	if (req->lost)
		return MHD_NO;
	if (req->responded || req->deferred)
		return MHD_YES;
	if (req->too_large)
		return httpd_error(req, 413, "too_large", "request body over %zu bytes",
				   h->max_body) == 0 ? MHD_YES : MHD_NO;
	hconn_set(h, req->hc, HCONN_BUSY);
	h->handler(req, h->ctx);
	/* A deferred request may already be answered (and resumed) by
	 * another thread: `responded` is theirs to set then. */
	if (!req->deferred && !req->responded)
		httpd_error(req, 500, "internal", "no response");
	return MHD_YES;
}

int httpd_defer(struct httpd_request *req)
{
	struct httpd *h = req->h;

	if (req->responded || req->deferred || !h->allow_push ||
	    h->thread_per_connection)
		return -1;
	req->deferred = 1;
	MHD_suspend_connection(req->conn);
	return 0;
}

struct httpd *httpd_start(const struct httpd_opts *opts, httpd_handler handler,
			  void *ctx, struct err *err)
{
	struct httpd *h = xcalloc(1, sizeof(*h));
	struct sockaddr_in addr;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	unsigned threads = opts->threads > 0 ? (unsigned)opts->threads
					     : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	const union MHD_DaemonInfo *info;
	unsigned max_conns = opts->max_connections ? opts->max_connections : 1024u;
	/* libmicrohttpd's own limit leaves room for connections closed here
	 * but not yet reaped by it: under a flood they come and go by
	 * thousands a second, and a new client must not find them in its
	 * way. */
	unsigned mhd_limit = fit_fd_limit(max_conns + max_conns / 4 + 16);
	unsigned reserve;

	if (max_conns > mhd_limit - mhd_limit / 5)
		max_conns = mhd_limit - mhd_limit / 5;
	reserve = opts->reserve ? opts->reserve : max_conns / 16;

	h->handler = handler;
	h->ctx = ctx;
	h->max_body = opts->max_body ? opts->max_body : 1 << 20;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)opts->port);
	if (opts->host && *opts->host) {
		if (inet_pton(AF_INET, opts->host, &addr.sin_addr) != 1) {
			err_set(err, ERR_INVALID, "bad listen address '%s'", opts->host);
			free(h);
			return NULL;
		}
	} else {
		addr.sin_addr.s_addr = htonl(INADDR_ANY);
	}
	h->thread_per_connection = opts->thread_per_connection;
	h->allow_push = opts->allow_push;
	h->sink_for = opts->sink_for;
	pthread_mutex_init(&h->push_lock, NULL);
	pthread_mutex_init(&h->conn_lock, NULL);
	LIST_INIT(&h->pushes);
	TAILQ_INIT(&h->waiting);
	clock_cond_init(&h->conn_cond);
	h->wait_cap = reserve < max_conns ? max_conns - reserve : 1;
	h->header_us = (int64_t)((opts->header_timeout_s > 0 ? opts->header_timeout_s : 10) * 1e6);
	h->body_us = (int64_t)((opts->body_timeout_s > 0 ? opts->body_timeout_s : 30) * 1e6);
	if (opts->allow_push && !opts->thread_per_connection)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	if (opts->thread_per_connection)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL; /* no FD_SETSIZE cap */
	else
		flags |= MHD_USE_EPOLL;
	if (opts->thread_per_connection || threads < 1)
		threads = 1;
	h->d = MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, access_cb, h,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				MHD_OPTION_URI_LOG_CALLBACK, request_new, h,
				MHD_OPTION_NOTIFY_CONNECTION, hconn_notify, h,
				MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
				MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s ? opts->timeout_s : 60u,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, opts->per_ip_connections,
				opts->thread_per_connection ? MHD_OPTION_END : MHD_OPTION_THREAD_POOL_SIZE,
				threads, MHD_OPTION_END);
	if (!h->d) {
		err_set(err, ERR_UNAVAILABLE, "cannot listen on %s:%d (port taken?)",
			opts->host && *opts->host ? opts->host : "0.0.0.0", opts->port);
		goto fail;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : opts->port;
	if (pthread_create(&h->sweeper, NULL, sweep_main, h)) {
		err_set(err, ERR_INTERNAL, "cannot start the connection sweep thread");
		MHD_stop_daemon(h->d);
		goto fail;
	}
	h->sweeping = 1;
	return h;
fail:
	pthread_cond_destroy(&h->conn_cond);
	pthread_mutex_destroy(&h->conn_lock);
	pthread_mutex_destroy(&h->push_lock);
	free(h);
	return NULL;
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	push_stop_all(h);
	/* Answers already queued (a held /wake's summary at shutdown) get up
	 * to a second to reach their clients before connections are closed. */
	{
		int i;

		for (i = 0; i < 100 && atomic_load(&h->active) > 0; i++)
			usleep(10000);
	}
	if (h->sweeping)
		thread_stop(&h->conn_lock, &h->conn_cond, &h->stopping,
			    &h->sweeper, 1);
	MHD_stop_daemon(h->d); /* every connection is unregistered here */
	pthread_cond_destroy(&h->conn_cond);
	pthread_mutex_destroy(&h->conn_lock);
	pthread_mutex_destroy(&h->push_lock);
	free(h);
}
