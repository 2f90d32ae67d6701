/* conn.c - how the queue module reaches Redis: REDIS_URL checked once
 * (queue_opts_init) and the one handshake every connection runs, the
 * queue's own (queue.c) and the subscriber's (pubsub.c) alike, so no
 * connection can skip TLS or AUTH. */
#include "queue/priv.h"

#include "base/clock.h"
#include "base/mem.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WAKEQ_HIREDIS_SSL
#include <arpa/inet.h>
#include <hiredis_ssl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
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
/* The TLS context is OpenSSL's own, not hiredis's redisSSLContext: that
 * one verifies the chain but never the host name (hiredis 1.2 sends SNI
 * only), so any certificate from a trusted CA, for any host, would do. */
struct queue_tls {
	SSL_CTX *ctx;
};

/* Peers must show a chain to the CA of REDIS_TLS_CA_FILE, else of the
 * system store, for the URL's host (below); TLS 1.2 at least. */
static struct queue_tls *tls_new(struct err *err)
{
	const char *ca = getenv("REDIS_TLS_CA_FILE");
	struct queue_tls *t;
	SSL_CTX *ctx;
	int loaded;

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		err_set(err, ERR_INVALID, "cannot set up TLS for redis: no TLS client context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca && *ca)
		loaded = SSL_CTX_load_verify_locations(ctx, ca, NULL);
	else
		loaded = SSL_CTX_set_default_verify_paths(ctx);
	if (loaded != 1) {
		if (ca && *ca)
			err_set(err, ERR_INVALID,
				"cannot set up TLS for redis: cannot load CA file '%s' (REDIS_TLS_CA_FILE)", ca);
		else
			err_set(err, ERR_INVALID,
				"cannot set up TLS for redis: cannot load the system CA store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	return t;
}

void queue_conn_tls_free(struct queue_tls *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

/* Starts TLS on `c` for `host`: SNI (names only, RFC 6066) and a check
 * of the certificate's names against host (an IP address against its IP
 * addresses). Returns 0, or -1 with *why set to the verifier's reason
 * (static) when the certificate was refused, else NULL (see c->errstr). */
static int tls_start(redisContext *c, const struct queue_tls *t, const char *host,
		     const char **why)
{
	unsigned char ip[sizeof(struct in6_addr)];
	long vr;
	SSL *ssl;

	*why = NULL;
	ssl = SSL_new(t->ctx);
	if (!ssl)
		return -1;
	if (inet_pton(AF_INET, host, ip) != 1 && inet_pton(AF_INET6, host, ip) != 1)
		SSL_set_tlsext_host_name(ssl, host);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* OpenSSL 3 takes an IP literal here as an IP address to match */
	if (SSL_set1_host(ssl, host) != 1) {
		SSL_free(ssl);
		return -1;
	}
	/* on success the context owns ssl; on failure the caller does */
	if (redisInitiateSSL(c, ssl) != REDIS_OK) {
		vr = SSL_get_verify_result(ssl);
		if (vr != X509_V_OK)
			*why = X509_verify_cert_error_string(vr);
		SSL_free(ssl);
		return -1;
	}
	return 0;
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
	/* a peer gone silently (a NAT that forgot an idle flow) fails the
	 * connection within about 30 s instead of the next command waiting
	 * out its timeout; hiredis 0.14 and 1.x both probe after 15 s */
	if (!u->unix_socket && redisEnableKeepAlive(c) != REDIS_OK)
		goto unreachable;
	/* the TLS handshake is bounded by the connect timeout too */
	if (redisSetTimeout(c, ct) != REDIS_OK)
		goto unreachable;
#ifdef WAKEQ_HIREDIS_SSL
	if (u->tls) {
		const char *why;

		if (!*tls && !(*tls = tls_new(err)))
			goto fail;
		if (tls_start(c, *tls, u->host, &why) < 0) {
			if (!why)
				goto unreachable;
			/* unavailable, not invalid: callers answer 503 and
			 * retry, and a rotated CA file or certificate heals */
			err_set(err, ERR_UNAVAILABLE,
				"cannot connect to redis at '%s:%d': certificate verify failed: %s",
				u->host, u->port, why);
			goto fail;
		}
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

/* Whether the read that failed on `c` (errno `saved`) ran out of time. */
static int timed_out(const redisContext *c, int saved)
{
#ifdef REDIS_ERR_TIMEOUT
	if (c->err == REDIS_ERR_TIMEOUT)
		return 1;
#endif
	return c->err == REDIS_ERR_IO &&
	       (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT);
}

redisReply *queue_conn_command(redisContext *c, int asking, int argc,
			       const char **argv, const size_t *lens, int *in_doubt)
{
	void *r = NULL, *ok = NULL;
	int done = 0, doubt = 0;

	/* redisCommandArgv, with the write apart from the read: once the
	 * command has left whole (into the kernel: closing the socket does
	 * not take it back), an answer that does not come in time leaves its
	 * outcome in doubt, since the server runs what it has read even
	 * after we gave up (a frozen Redis runs it when it thaws). A closed
	 * or reset connection does not: a server that is gone runs nothing
	 * later (a stale pooled connection to a restarted Redis is the
	 * common case). */
	if ((asking && redisAppendCommand(c, "ASKING") != REDIS_OK) ||
	    redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
		goto out;
	do {
		if (redisBufferWrite(c, &done) != REDIS_OK)
			goto out;
	} while (!done);
	/* ASKING's answer is not read for itself: the command's tells */
	if ((asking && redisGetReply(c, &ok) != REDIS_OK) ||
	    redisGetReply(c, &r) != REDIS_OK || !r) {
		doubt = timed_out(c, errno);
		r = NULL;
	}
out:
	if (ok)
		freeReplyObject(ok);
	if (in_doubt)
		*in_doubt = doubt;
	return r;
}

int queue_conn_skew(redisContext *c, int64_t *skew_ms)
{
	static const char *const argv[] = { "TIME" };
	redisReply *r = queue_conn_command(c, 0, 1, (const char **)argv, NULL, NULL);

	if (!r)
		return -1;
	*skew_ms = 0;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING)
		*skew_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
			   strtoll(r->element[1]->str, NULL, 10) / 1000 - clock_now_us() / 1000;
	freeReplyObject(r);
	return 0;
}
