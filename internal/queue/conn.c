/* conn.c - how the queue module reaches Redis: REDIS_URL checked once
 * (queue_opts_init) and the one handshake every connection runs, the
 * queue's own (queue.c) and the subscriber's (pubsub.c) alike, so no
 * connection can skip TLS or AUTH. */
#include "queue/priv.h"

#include "base/mem.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WAKEQ_HIREDIS_SSL
#include <hiredis_ssl.h>
#include <pthread.h>
#endif

#define DEFAULT_URL "redis://127.0.0.1:6379"

int queue_tls_supported(void)
{
#ifdef WAKEQ_HIREDIS_SSL
	return 1;
#else
	return 0;
#endif
}

int queue_opts_init(struct queue_opts *o, const char *url, struct err *err)
{
	struct queue_opts n;

	memset(&n, 0, sizeof(n));
	if (queue_url_parse(url && *url ? url : DEFAULT_URL, &n.url, err) < 0)
		return -1;
	if (n.url.tls && !queue_tls_supported()) {
		memset(&n, 0, sizeof(n));
		return err_set(err, ERR_INVALID,
			       "rediss:// needs TLS, and this build's hiredis has none (hiredis >= 1.0 with hiredis_ssl)");
	}
	*o = n;
	memset(&n, 0, sizeof(n));
	return 0;
}

void queue_opts_release(struct queue_opts *o)
{
	if (o)
		memset(o, 0, sizeof(*o));
}

static struct timeval tv_of(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

#ifdef WAKEQ_HIREDIS_SSL
struct queue_tls {
	redisSSLContext *ctx;
};

static void init_openssl(void)
{
	redisInitOpenSSL();
}

/* The CA is REDIS_TLS_CA_FILE, else the system store; the host name goes
 * out as SNI. */
static struct queue_tls *tls_new(const struct queue_url *u, struct err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	redisSSLContextError serr = REDIS_SSL_CTX_NONE;
	const char *ca = getenv("REDIS_TLS_CA_FILE");
	struct queue_tls *t;

	pthread_once(&once, init_openssl);
	t = xcalloc(1, sizeof(*t));
	t->ctx = redisCreateSSLContext(ca && *ca ? ca : NULL, ca && *ca ? NULL : "/etc/ssl/certs",
				       NULL, NULL, u->host, &serr);
	if (!t->ctx) {
		err_set(err, ERR_INVALID, "cannot set up TLS for redis: %s",
			redisSSLContextGetError(serr));
		free(t);
		return NULL;
	}
	return t;
}

void queue_conn_tls_free(struct queue_tls *tls)
{
	if (!tls)
		return;
	redisFreeSSLContext(tls->ctx);
	free(tls);
}
#else
void queue_conn_tls_free(struct queue_tls *tls)
{
	(void)tls;
}
#endif

/* Runs one handshake command; a refusal sets err with `code` and `what`.
 * Returns 0, -1 on a refusal, -2 on an I/O error (err not set). */
static int step(redisContext *c, enum err_code code, const char *what,
		struct err *err, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;
	int rc = 0;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r)
		return -2;
	if (r->type == REDIS_REPLY_ERROR)
		rc = err_set(err, code, "redis refused %s: %s", what, r->str);
	freeReplyObject(r);
	return rc;
}

redisContext *queue_conn_open(const struct queue_opts *o, struct queue_tls **tls,
			      struct err *err)
{
	const struct queue_url *u = &o->url;
	struct timeval ct = tv_of(o->connect_timeout_s > 0 ? o->connect_timeout_s : 5);
	struct timeval cmd = tv_of(o->command_timeout_s > 0 ? o->command_timeout_s : 10);
	redisContext *c;
	char db[32];
	int rc;

	/* an opts that did not come from queue_opts_init is a programmer
	 * error, and rediss:// must never go out in clear text */
	assert(u->host[0]);
	assert(!u->tls || queue_tls_supported());
	if (u->unix_socket)
		c = redisConnectUnixWithTimeout(u->host, ct);
	else
		c = redisConnectWithTimeout(u->host, u->port, ct);
	if (!c || c->err)
		goto unreachable;
	/* the TLS handshake is bounded by the connect timeout too */
	if (redisSetTimeout(c, ct) != REDIS_OK)
		goto unreachable;
#ifdef WAKEQ_HIREDIS_SSL
	if (u->tls) {
		if (!*tls && !(*tls = tls_new(u, err)))
			goto fail;
		if (redisInitiateSSLWithContext(c, (*tls)->ctx) != REDIS_OK)
			goto unreachable;
	}
#else
	(void)tls;
#endif
	if (redisSetTimeout(c, cmd) != REDIS_OK)
		goto unreachable;
	rc = 0;
	if (u->password[0] && u->user[0])
		rc = step(c, ERR_AUTH, "the password", err, "AUTH %s %s", u->user, u->password);
	else if (u->password[0])
		rc = step(c, ERR_AUTH, "the password", err, "AUTH %s", u->password);
	if (rc == 0 && u->db) {
		snprintf(db, sizeof(db), "db %d", u->db);
		rc = step(c, ERR_INVALID, db, err, "SELECT %d", u->db);
	}
	if (rc == -2)
		goto unreachable;
	if (rc < 0)
		goto fail;
	return c;
unreachable:
	if (u->unix_socket)
		err_set(err, ERR_UNAVAILABLE, "cannot connect to redis at '%s': %s", u->host,
			c && c->errstr[0] ? c->errstr : c ? "connection lost" : "out of memory");
	else
		err_set(err, ERR_UNAVAILABLE, "cannot connect to redis at '%s:%d': %s", u->host,
			u->port, c && c->errstr[0] ? c->errstr : c ? "connection lost" : "out of memory");
fail:
	if (c)
		redisFree(c);
	return NULL;
}
