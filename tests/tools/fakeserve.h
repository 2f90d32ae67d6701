/* fakeserve.h - how the fake services of tests/tools (hitcount, hookrecv,
 * wakestub, fakegcp) serve: httpd on 127.0.0.1, the port it got printed
 * as the first line of stdout (tests/lib/servers.sh start_fake reads it),
 * until SIGTERM or SIGINT; and the identity tokens the Google fakes
 * (wakestub's metadata server, fakegcp) mint. Header-only, each tool
 * includes it once. */
#ifndef WAKEQ_FAKESERVE_H
#define WAKEQ_FAKESERVE_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "crypto/crypto.h"
#include "httpd/httpd.h"

/* `n` bytes of `in` as base64url without padding (JWT, RFC 7515);
 * caller frees. */
static inline char *fake_b64url(const char *in, size_t n)
{
	char *s = xmalloc(CRYPTO_BASE64_LEN(n));
	size_t m = crypto_base64_encode(in, n, s), i;

	for (i = 0; i < m && s[i] != '='; i++)
		s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	s[i] = '\0';
	return s;
}

/* A Google identity token as the fakes mint one: the header
 * {"alg":"RS256","typ":"JWT"}, `payload` (JSON text) and `sig` (already
 * base64url; no one under test checks it), joined by dots. Caller frees. */
static inline char *fake_jwt(const char *payload, const char *sig)
{
	static const char head[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	char *h = fake_b64url(head, sizeof(head) - 1);
	char *p = fake_b64url(payload, strlen(payload));
	char *tok = xasprintf("%s.%s.%s", h, p, sig);

	free(h);
	free(p);
	return tok;
}

/* Serves `handle` as `o` says (its host is set to 127.0.0.1) until SIGTERM
 * or SIGINT, then stops. Blocks those signals in the calling thread first,
 * so threads started from here on leave them to it; ignores SIGPIPE.
 * Returns 0, or 1 with "PROG: why" on stderr when it cannot listen. */
static int fake_serve(const char *prog, struct httpd_opts *o, httpd_handler handle)
{
	struct httpd *h;
	struct err e;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	o->host = "127.0.0.1";
	h = httpd_start(o, handle, NULL, &e);
	if (!h) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	printf("%d\n", httpd_port(h));
	fflush(stdout);
	sigwait(&set, &sig);
	httpd_stop(h);
	return 0;
}

#endif
