/* fakeserve.h - how the fake services of tests/tools (hitcount, hookrecv,
 * wakestub, fakegcp) serve: httpd on 127.0.0.1, the port it got printed
 * as the first line of stdout (tests/lib/servers.sh start_fake reads it),
 * until SIGTERM or SIGINT. Header-only, each tool includes it once. */
#ifndef WAKEQ_FAKESERVE_H
#define WAKEQ_FAKESERVE_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "httpd/httpd.h"

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
