/* httpd.h - a small HTTP server over libmicrohttpd for the worker and the
 * API: one handler per server, called once the whole body is in, which
 * answers with exactly one httpd_respond* call.
 *
 * Bodies over max_body are refused with 413 before they are read whole
 * (from Content-Length when given, else as they stream in).
 *
 * Errors found here are answered with the JSON error document, as the
 * handlers' are: 413 too_large, 414 uri_too_long (a request target over
 * HTTPD_MAX_URI), 431 headers_too_large (headers over HTTPD_MAX_HEADERS).
 * Requests libmicrohttpd refuses while parsing, before any hook of ours
 * runs, get its own HTML page instead: a malformed request line or HTTP
 * version (400, 505), a bad Content-Length (400, 413), bad chunked
 * encoding (400), and a request line or headers past its per-connection
 * memory (414, 431 from about 32 KiB). docs/API.md lists them.
 *
 * Floods: a client that opens connections and never finishes a request
 * cannot starve others. A request's headers must arrive whole within
 * header_timeout_s of the connect (or of the previous answer, on a
 * keep-alive connection), and a buffered body within body_timeout_s of
 * its headers; bytes trickled in do not extend either deadline (unlike
 * the idle timeout_s). At most max_connections - reserve connections may
 * be waiting for their headers or body: past that, each new connection
 * closes the oldest waiting one, so a new client whose request arrives
 * whole always gets a slot, and `reserve` slots are left for requests
 * being answered (held /wake calls, event streams, uploads). One peer
 * address holds per_ip_connections at most (further ones are closed on
 * accept).
 */
#ifndef WAKEQ_HTTPD_H
#define WAKEQ_HTTPD_H

#include "base/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTPD_MAX_URI 8192       /* bytes of request target (path, query) */
#define HTTPD_MAX_HEADERS 16384  /* bytes of headers, names and values */

struct httpd;
struct httpd_request;
struct httpd_sink;

/* Called on a server thread; may block (thread-per-connection mode). */
typedef void (*httpd_handler)(struct httpd_request *req, void *ctx);

struct httpd_opts {
	const char *host;          /* bind address; NULL = all (0.0.0.0) */
	int port;                  /* 0 = pick a free one (see httpd_port) */
	int thread_per_connection; /* handlers may block (the worker's /wake);
				    * otherwise a pool of `threads` threads */
	int threads;               /* pool size; 0 = number of CPUs */
	unsigned max_connections;  /* 0 = 1024; lowered to fit under the fd
				    * limit (the soft RLIMIT_NOFILE is raised
				    * up to the hard one first) */
	unsigned timeout_s;        /* idle connection timeout; 0 = 60 */
	unsigned per_ip_connections; /* from one peer address; 0 = no limit */
	unsigned reserve;          /* slots only for requests whose headers
				    * are in (see above); 0 = max/16; at most
				    * max_connections - 1 */
	double header_timeout_s;   /* headers whole within this; 0 = 10 */
	double body_timeout_s;     /* a buffered body whole within this (not
				    * sinks: they stream under their own
				    * cap and the idle timeout); 0 = 30 */
	size_t max_body;           /* 0 = 1 MiB */
	int allow_push;            /* enables httpd_respond_push (suspend and
				    * resume of connections in pool mode) */
	/* streamed bodies (see httpd_sink below); NULL = none */
	int (*sink_for)(struct httpd_request *req, void *ctx,
			struct httpd_sink *sink);
};

/* Starts serving. Returns the server, or NULL with err set (e.g. the port
 * is taken). Caller stops it with httpd_stop. */
struct httpd *httpd_start(const struct httpd_opts *opts, httpd_handler handler,
			  void *ctx, struct err *err);

/* The port actually bound. */
int httpd_port(const struct httpd *h);

/* Stops accepting, closes connections and waits for handler threads.
 * Accepts NULL. */
void httpd_stop(struct httpd *h);

/* ---- requests (all borrowed until the handler returns) ------------------ */

const char *httpd_method(const struct httpd_request *req);
const char *httpd_path(const struct httpd_request *req);
/* A request header or query argument, or NULL. */
const char *httpd_header(const struct httpd_request *req, const char *name);
const char *httpd_query(const struct httpd_request *req, const char *name);
const char *httpd_body(const struct httpd_request *req, size_t *len);
/* The peer's address as text ("127.0.0.1"). */
const char *httpd_peer(const struct httpd_request *req);

/* A cookie of the request (Cookie header), or NULL. */
const char *httpd_cookie(const struct httpd_request *req, const char *name);

/* Whether the request carries "Authorization: Bearer T" with T equal to one
 * of `tokens` (NULL-terminated), compared in constant time. */
int httpd_bearer_ok(const struct httpd_request *req, const char *const *tokens);

/* Whether `given` (may be NULL) equals one of `tokens`, compared in
 * constant time. */
int httpd_token_ok(const char *given, const char *const *tokens);

/* ---- responses ----------------------------------------------------------- */

/* Adds a header to the response about to be sent (copied). */
void httpd_add_header(struct httpd_request *req, const char *name,
		      const char *value);

/* Sends `len` bytes (copied). Returns 0 or -1 (connection gone). */
int httpd_respond(struct httpd_request *req, unsigned status,
		  const char *content_type, const char *body, size_t len);

/* Sends a JSON value (takes ownership of `body`). */
int httpd_respond_json(struct httpd_request *req, unsigned status, json_t *body);

/* Sends {"error":{"code":CODE,"message":…}} with `status`. */
int httpd_error(struct httpd_request *req, unsigned status, const char *code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Streams a response: `read` is called (on a server thread) to fill buf
 * with up to max bytes; it returns the count, 0 to be called again later
 * (after blocking briefly itself), or -1 to end the response. `done` is
 * called once when the stream is over (may be NULL). */
typedef ssize_t (*httpd_reader)(void *ctx, char *buf, size_t max);
int httpd_respond_stream(struct httpd_request *req, unsigned status,
			 const char *content_type, httpd_reader read,
			 void *ctx, void (*done)(void *ctx));

/* ---- deferred answers ---------------------------------------------------- */

/* Lets another thread answer `req`: for handlers that hand requests to a
 * batching thread instead of blocking a pool thread. Call it from the
 * handler, then return without answering; the connection is suspended
 * (no thread held, no timeout) until any thread answers with one of the
 * httpd_respond* calls above (httpd_respond, httpd_respond_json,
 * httpd_error; httpd_add_header before it). That answer is sent from the
 * connection's own thread. After the answering call returns, `req` and
 * every string borrowed from it (headers, body) are gone. Returns 0, or
 * -1 when deferral is not available (thread-per-connection mode, or
 * allow_push off): the handler then answers itself as usual. Every
 * deferred request must be answered before httpd_stop. */
int httpd_defer(struct httpd_request *req);


/* ---- pushed streams (server-sent events) --------------------------------- */

/* A response whose body is written later, from any thread, with
 * httpd_push_write: for event streams. In pool mode the connection is
 * suspended while nothing is buffered, so an idle stream costs no thread.
 * Needs opts.allow_push. */
struct httpd_push;

/* Starts a pushed response. Returns the handle (the caller must end it
 * with httpd_push_end exactly once), or NULL when the response could not
 * be queued (or allow_push is off). */
struct httpd_push *httpd_respond_push(struct httpd_request *req, unsigned status,
				      const char *content_type);

/* Appends `len` bytes (copied) to the stream. Never blocks on the client.
 * Returns 0, or -1 when the client is gone or the stream has ended. */
int httpd_push_write(struct httpd_push *p, const char *data, size_t len);

/* Ends the stream after what is buffered and releases the caller's handle
 * (do not use `p` afterwards). Accepts NULL. */
void httpd_push_end(struct httpd_push *p);


/* ---- streamed request bodies ----------------------------------------------
 *
 * A route that takes large bodies (file uploads) can have its body written
 * to a sink as it arrives instead of being gathered in memory.
 * opts.sink_for is called once per request when its headers are in (on a
 * server thread, before any body byte is read, with the handler's ctx);
 * the request accessors work there. It returns:
 *   1  stream this body into *sink (filled by sink_for);
 *   0  buffer it as usual (max_body applies; *sink is ignored), or, when
 *      sink_for already answered with an httpd_respond* call (a 401, a
 *      503), read none of it: the connection is closed after that answer.
 * A streamed body has its own cap, sink->max (max_body does not apply): a
 * Content-Length over it is refused before any byte is read, and a body
 * without one (chunked) is stopped as soon as it passes the cap.
 *
 * The handler is called once, as usual, when the body is in whole, or as
 * soon as it cannot be (over the cap, or sink->write failed); it reads the
 * outcome with httpd_sink_result and answers. An answer given before the
 * whole body was read may not reach the client (libmicrohttpd can only
 * close the connection then); a 413 for a Content-Length over the cap
 * always does. When the client goes away mid-body the handler is not
 * called. In every case sink->release is called exactly once, when the
 * request is over (after the handler and its answer), on a server thread:
 * it is where partial output is removed unless the handler kept it. */
struct httpd_sink {
	/* Takes the next `len` bytes of the body (borrowed for the call);
	 * may block (disk writes). Returns 0, or -1 to stop reading. */
	int (*write)(void *ctx, const char *data, size_t len);
	/* Called once when the request is over; frees ctx. May be NULL. */
	void (*release)(void *ctx);
	void *ctx;
	uint64_t max;              /* cap in bytes; 0 = no cap */
};

enum httpd_sink_result {
	HTTPD_SINK_NONE = -1,      /* the request has no sink */
	HTTPD_SINK_OK = 0,         /* the whole body was written */
	HTTPD_SINK_TOO_LARGE,      /* over sink->max (nothing more written) */
	HTTPD_SINK_FAILED          /* sink->write returned -1 */
};

/* The outcome of a streamed body, for the handler; *bytes (may be NULL)
 * gets the count written to the sink, *ctx (may be NULL) the sink's ctx
 * (still owned by the sink: release frees it later). */
enum httpd_sink_result httpd_sink_result(const struct httpd_request *req,
					 uint64_t *bytes, void **ctx);

#endif
