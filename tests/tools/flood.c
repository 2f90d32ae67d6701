/* flood - connection floods against one loopback HTTP server, for the tests
 * of httpd's connection limits (tests/integration/16_floods.sh).
 *
 *   flood --port P [--slow N] [--idle N] [--from 127.0.0.2] [--ips K]
 *         [--every MS] [--reconnect MS] [--seconds S]
 *
 * --slow N    slowloris connections: a request line, then one header byte
 *             every --every ms (10000), never the blank line that ends the
 *             headers;
 * --idle N    connections that send nothing;
 * --from, --ips  the connections are bound round-robin to K source
 *             addresses from --from on (127.0.0.2, 127.0.0.3, ...), so a
 *             client on 127.0.0.1 is another peer for per-IP limits;
 * --reconnect MS  a connection the server closed is opened again after MS
 *             (0, the default: never), the way an attacker keeps a flood up;
 * --seconds S runs S seconds (default: until SIGTERM or SIGINT).
 *
 * The target is 127.0.0.1:P. The soft RLIMIT_NOFILE is raised to the hard
 * one. Prints "ready open=N" once every first connect has ended (connected
 * or failed), then, at the end, one JSON line per kind:
 *   {"kind":"slow","opened":A,"open":B,"closed":C,"failed":D,
 *    "peak_open":E,"max_closed_age_ms":F,"oldest_open_ms":G}
 * where closed counts closes by the server (EOF or reset), and the ages are
 * from connect to close (or to the end). Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "toolargs.h"

enum kind { SLOW, IDLE };
enum state { DOWN, CONNECTING, OPEN };

struct conn {
	int fd;
	enum kind kind;
	enum state state;
	int first;            /* the first connect has not ended yet */
	int64_t t_open;       /* connect ended (ms) */
	int64_t t_next;       /* next byte (slow) or next connect (down), ms */
	size_t sent;          /* header bytes sent */
	struct in_addr from;
};

struct stats {
	long opened, open, closed, failed, peak_open;
	int64_t max_closed_age;
};

static volatile sig_atomic_t stop;
static int port, every_ms = 10000, reconnect_ms;
static struct stats st[2];

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_connect(struct conn *c, int64_t now)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	c->state = DOWN;
	c->t_next = reconnect_ms > 0 ? now + reconnect_ms : INT64_MAX;
	if (fd < 0)
		goto failed;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr = c->from;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto failed;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		goto failed;
	c->fd = fd;
	c->state = CONNECTING;
	return;
failed:
	if (fd >= 0)
		close(fd);
	c->fd = -1;
	c->first = 0;
	st[c->kind].failed++;
}

static void opened(struct conn *c, int64_t now)
{
	struct stats *s = &st[c->kind];

	c->state = OPEN;
	c->first = 0;
	c->t_open = now;
	c->sent = 0;
	c->t_next = now;
	s->opened++;
	if (++s->open > s->peak_open)
		s->peak_open = s->open;
}

static void closed(struct conn *c, int64_t now, int by_server)
{
	struct stats *s = &st[c->kind];

	if (c->state == OPEN) {
		s->open--;
		if (by_server) {
			s->closed++;
			if (now - c->t_open > s->max_closed_age)
				s->max_closed_age = now - c->t_open;
		}
	} else {
		s->failed++;
	}
	close(c->fd);
	c->fd = -1;
	c->first = 0;
	c->state = DOWN;
	c->t_next = reconnect_ms > 0 ? now + reconnect_ms : INT64_MAX;
}

/* One header byte of a request that never ends. */
static void send_byte(struct conn *c, int64_t now)
{
	static const char line[] = "GET /healthz HTTP/1.1\r\nHost: flood\r\n";
	static const char hdr[] = "X-Slow: aaaaaaaa\r\n";
	char b;

	if (c->sent < sizeof(line) - 1) {
		/* the request line and Host at once: the server sees a
		 * request begin, then a header that never ends */
		if (send(c->fd, line, sizeof(line) - 1, MSG_NOSIGNAL) < 0)
			goto gone;
		c->sent = sizeof(line) - 1;
	} else {
		b = hdr[(c->sent - (sizeof(line) - 1)) % (sizeof(hdr) - 1)];
		if (send(c->fd, &b, 1, MSG_NOSIGNAL) < 0)
			goto gone;
		c->sent++;
	}
	c->t_next = now + every_ms;
	return;
gone:
	closed(c, now, 1);
}

static void report(const struct conn *cs, size_t n, int64_t now)
{
	int k;

	for (k = SLOW; k <= IDLE; k++) {
		int64_t oldest = 0;
		size_t i;

		for (i = 0; i < n; i++)
			if ((int)cs[i].kind == k && cs[i].state == OPEN &&
			    now - cs[i].t_open > oldest)
				oldest = now - cs[i].t_open;
		printf("{\"kind\":\"%s\",\"opened\":%ld,\"open\":%ld,\"closed\":%ld,"
		       "\"failed\":%ld,\"peak_open\":%ld,\"max_closed_age_ms\":%lld,"
		       "\"oldest_open_ms\":%lld}\n",
		       k == SLOW ? "slow" : "idle", st[k].opened, st[k].open, st[k].closed,
		       st[k].failed, st[k].peak_open, (long long)st[k].max_closed_age,
		       (long long)oldest);
	}
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr, "usage: flood --port P [--slow N] [--idle N] [--from ADDR] [--ips K]\n"
			"             [--every MS] [--reconnect MS] [--seconds S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long nslow = 0, nidle = 0, nips = 1, seconds = 0;
	const char *from = "127.0.0.2";
	struct in_addr base;
	struct conn *cs;
	struct pollfd *pfd;
	size_t *idx, n, i;
	struct rlimit rl;
	struct sigaction sa;
	int64_t start, end, now;
	int ready = 0;
	const struct tool_arg args[] = {
		{ "--port", TOOL_INT, &port },
		{ "--slow", TOOL_LONG, &nslow },
		{ "--idle", TOOL_LONG, &nidle },
		{ "--from", TOOL_STRING, &from },
		{ "--ips", TOOL_LONG, &nips },
		{ "--every", TOOL_INT, &every_ms },
		{ "--reconnect", TOOL_INT, &reconnect_ms },
		{ "--seconds", TOOL_LONG, &seconds },
		{ NULL, TOOL_INT, NULL },
	};

	if (tool_args(argc, argv, 1, args) < 0)
		usage();
	if (port <= 0 || port > 65535 || nslow < 0 || nidle < 0 || nslow + nidle < 1 ||
	    nips < 1 || nips > 250 || every_ms < 1 || reconnect_ms < 0 ||
	    inet_pton(AF_INET, from, &base) != 1 || (ntohl(base.s_addr) >> 24) != 127)
		usage();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	n = (size_t)(nslow + nidle);
	cs = calloc(n, sizeof(*cs));
	pfd = calloc(n, sizeof(*pfd));
	idx = calloc(n, sizeof(*idx));
	if (!cs || !pfd || !idx)
		return 1;
	start = now_ms();
	end = seconds > 0 ? start + seconds * 1000 : INT64_MAX;
	for (i = 0; i < n; i++) {
		cs[i].kind = (long)i < nslow ? SLOW : IDLE;
		cs[i].from.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)(i % (size_t)nips));
		cs[i].first = 1;
		cs[i].fd = -1;
		start_connect(&cs[i], start);
	}
	while (!stop && (now = now_ms()) < end) {
		int64_t next = now + 100;
		size_t np = 0;
		int pending = 0;

		for (i = 0; i < n; i++) {
			struct conn *c = &cs[i];

			pending |= c->first;
			if (c->state == DOWN && c->t_next <= now) {
				start_connect(c, now);
				pending |= c->first;
			}
			if (c->state == OPEN && c->kind == SLOW && c->t_next <= now)
				send_byte(c, now);
			if (c->state == DOWN && c->t_next < next)
				next = c->t_next;
			if (c->state == OPEN && c->kind == SLOW && c->t_next < next)
				next = c->t_next;
			if (c->state == DOWN)
				continue;
			pfd[np].fd = c->fd;
			pfd[np].events = c->state == CONNECTING ? POLLOUT : POLLIN;
			pfd[np].revents = 0;
			idx[np++] = i;
		}
		if (!pending && !ready) {
			ready = 1;
			printf("ready open=%ld\n", st[SLOW].open + st[IDLE].open);
			fflush(stdout);
		}
		if (next > end)
			next = end;
		if (poll(pfd, np, next > now ? (int)(next - now) : 0) < 0 && errno != EINTR)
			break;
		now = now_ms();
		for (i = 0; i < np; i++) {
			struct conn *c = &cs[idx[i]];
			char buf[512];
			ssize_t r;

			if (!pfd[i].revents)
				continue;
			if (c->state == CONNECTING) {
				int err = 0;
				socklen_t len = sizeof(err);

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err || (pfd[i].revents & (POLLERR | POLLHUP)))
					closed(c, now, 0);
				else
					opened(c, now);
				continue;
			}
			/* an answer (a 408, a 400) is read and dropped; EOF or
			 * an error is a close by the server */
			do
				r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
			while (r > 0);
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				closed(c, now, 1);
		}
	}
	report(cs, n, now_ms());
	for (i = 0; i < n; i++)
		if (cs[i].fd >= 0 && cs[i].state != DOWN)
			close(cs[i].fd);
	free(cs);
	free(pfd);
	free(idx);
	return 0;
}
