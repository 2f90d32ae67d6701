/* lagproxy - a TCP relay that delays every byte by a fixed time in each
 * direction: a slow network for the chaos tests where tc netem is missing
 * (a kernel without sch_netem). It runs inside the test's own network
 * namespace, between a worker and Redis.
 *
 *   lagproxy LISTEN_IP:PORT UPSTREAM_IP:PORT DELAY_MS
 *
 * Starts without delay; SIGUSR1 turns the delay on (bytes read from then
 * on wait DELAY_MS before they are forwarded), SIGUSR2 turns it off.
 * Prints "ready" once listening. Runs until SIGTERM or SIGINT. One thread,
 * poll; at most 256 connection pairs; a close on one side is passed on
 * once the bytes queued towards the other side are out. */
#include "base/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXPAIRS 256
#define CHUNK 16384

struct chunk {
	struct chunk *next;
	int64_t due_us;
	size_t len, off;
	char data[];
};

struct dir { /* bytes read from `from`, queued for `to` */
	int from, to;
	struct chunk *head, *tail;
	int eof;        /* `from` closed: shut `to` down once drained */
	int shut;
};

struct pair {
	int used;
	struct dir d[2];
};

static struct pair pairs[MAXPAIRS];
static volatile sig_atomic_t delay_on, quit;
static int64_t delay_us;

static void on_sig(int sig)
{
	if (sig == SIGUSR1)
		delay_on = 1;
	else if (sig == SIGUSR2)
		delay_on = 0;
	else
		quit = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void pair_close(struct pair *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct chunk *c = p->d[i].head, *n;

		for (; c; c = n) {
			n = c->next;
			free(c);
		}
	}
	close(p->d[0].from);
	close(p->d[1].from);
	memset(p, 0, sizeof(*p));
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void accept_one(int lfd, const struct sockaddr_in *up)
{
	int c, u, i;

	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u < 0 || connect(u, (const struct sockaddr *)up, sizeof(*up)) < 0) {
		close(c);
		if (u >= 0)
			close(u);
		return;
	}
	for (i = 0; i < MAXPAIRS && pairs[i].used; i++)
		;
	if (i == MAXPAIRS) {
		close(c);
		close(u);
		return;
	}
	nodelay(c);
	nodelay(u);
	pairs[i].used = 1;
	pairs[i].d[0] = (struct dir){ .from = c, .to = u };
	pairs[i].d[1] = (struct dir){ .from = u, .to = c };
}

/* Reads what `d->from` has; -1 when the pair must close. */
static int dir_read(struct dir *d, int64_t now)
{
	struct chunk *c = malloc(sizeof(*c) + CHUNK);
	ssize_t n;

	if (!c)
		abort();
	n = read(d->from, c->data, CHUNK);
	if (n <= 0) {
		free(c);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -1;
		d->eof = 1;
		return 0;
	}
	c->next = NULL;
	c->len = (size_t)n;
	c->off = 0;
	c->due_us = now + (delay_on ? delay_us : 0);
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	return 0;
}

/* Writes the chunks that are due; -1 when the pair must close. */
static int dir_write(struct dir *d, int64_t now)
{
	while (d->head && d->head->due_us <= now) {
		struct chunk *c = d->head;
		ssize_t n = write(d->to, c->data + c->off, c->len - c->off);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)n;
		if (c->off < c->len)
			return 0;
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		free(c);
	}
	if (!d->head && d->eof && !d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in la, ua;
	struct pollfd pf[1 + 2 * MAXPAIRS];
	int pidx[1 + 2 * MAXPAIRS], lfd, one = 1, i, k, n;
	struct sigaction sa;

	if (argc != 4 || parse_addr(argv[1], &la) || parse_addr(argv[2], &ua)) {
		fprintf(stderr, "usage: lagproxy LISTEN_IP:PORT UPSTREAM_IP:PORT DELAY_MS\n");
		return 2;
	}
	delay_us = atol(argv[3]) * 1000;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(lfd, 128) < 0) {
		perror("lagproxy");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!quit) {
		int64_t now = clock_mono_us(), next = -1;
		int timeout;

		n = 0;
		pf[n].fd = lfd;
		pf[n].events = POLLIN;
		pidx[n++] = -1;
		for (i = 0; i < MAXPAIRS; i++) {
			if (!pairs[i].used)
				continue;
			for (k = 0; k < 2; k++) {
				struct dir *d = &pairs[i].d[k];

				/* queued bytes are written when due (a full
				 * socket buffer is retried on the next turn) */
				if (d->head && (next < 0 || d->head->due_us < next))
					next = d->head->due_us;
				pf[n].fd = d->from;
				pf[n].events = d->eof ? 0 : POLLIN;
				pidx[n++] = i * 2 + k;
			}
		}
		timeout = next < 0 ? 100 : next <= now ? 1 : (int)((next - now) / 1000) + 1;
		if (timeout > 100)
			timeout = 100;
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN)
			accept_one(lfd, &ua);
		now = clock_mono_us();
		for (k = 1; k < n; k++) {
			struct pair *p = &pairs[pidx[k] / 2];
			struct dir *d = &p->d[pidx[k] % 2];

			if (!p->used)
				continue;
			if ((pf[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    dir_read(d, now) < 0) {
				pair_close(p);
				continue;
			}
			if (dir_write(d, now) < 0) {
				pair_close(p);
				continue;
			}
			if (p->d[0].shut && p->d[1].shut)
				pair_close(p);
		}
	}
	for (i = 0; i < MAXPAIRS; i++)
		if (pairs[i].used)
			pair_close(&pairs[i]);
	close(lfd);
	return 0;
}
