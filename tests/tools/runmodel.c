/* runmodel - a model of one Cloud Run service, for tests: a front proxy
 * on loopback that starts instances of a binary, routes HTTP/1.1
 * requests to them, and enforces what Cloud Run enforces (docs/CLOUDRUN.md
 * says what is modelled and what is not).
 *
 *   runmodel [OPTIONS] -- PROGRAM [ARGS...]
 *
 *   --port N            proxy port on 127.0.0.1 (0: any); the port is
 *                       printed on the first line of stdout
 *   --name NAME         service name (K_SERVICE, log lines)
 *   --billing MODE      request (default): an instance with no open
 *                       request is frozen (SIGSTOP) and thawed (SIGCONT)
 *                       when a request is routed to it; instance: never
 *                       frozen
 *   --concurrency N     containerConcurrency (80)
 *   --min N, --max N    min and max instances (0, 100)
 *   --idle S            an instance with no request for S seconds is shut
 *                       down (SIGTERM, SIGKILL after --kill-after), while
 *                       more than --min run (900)
 *   --kill-after S      SIGTERM to SIGKILL (10)
 *   --timeout S         request timeout: the request is cut, the client
 *                       gets 504 (300)
 *   --pending S         how long a request waits for an instance (all at
 *                       --concurrency, --max reached or starting) before
 *                       429 (60)
 *   --startup S         startup probe deadline (60): the instance must
 *                       answer GET /healthz with 200 within it
 *   --max-body BYTES    request body cap, 413 above (32 MiB, HTTP/1)
 *   --log FILE          instances' stdout and stderr, appended (default:
 *                       this process's stderr)
 *
 * Every instance gets the proxy's environment plus PORT (a free loopback
 * port), K_SERVICE, K_REVISION and K_CONFIGURATION, and dies with the
 * model (PR_SET_PDEATHSIG). Requests to /_model/stats are answered by the
 * model itself: the meter (runmodel_meter.h) and counters, as JSON.
 * SIGTERM or SIGINT: every instance gets SIGTERM (SIGKILL after
 * --kill-after), then the model exits 0.
 *
 * Locking: one mutex `M.mu` guards all of `M` and every instance; no
 * network I/O happens under it (signals and fork do). Connection threads
 * block on `M.cv` for an instance; the supervisor thread (which forks
 * every instance, so that PR_SET_PDEATHSIG holds for the model's whole
 * life) waits on `M.sup_cv` with a 10 ms tick.
 */
#include "base/clock.h"
#include "base/mem.h"
#include "base/parse.h"
#include "loopback.h"
#include "runmodel_meter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define HEAD_MAX (64 * 1024)  /* request head, as Cloud Run's front end */
#define BUF_SIZE (64 * 1024)

static struct {
	int port;
	const char *name;
	int instance_billing;
	int concurrency, min, max;
	double idle_s, kill_after_s, timeout_s, pending_s, startup_s;
	int64_t max_body;
	const char *log_path;
	char **argv;
} O = { 0, "service", 0, 80, 0, 100, 900, 10, 300, 60, 60, 32 << 20, NULL, NULL };

enum inst_state { I_STARTING, I_READY, I_STOPPING, I_GONE };
static const char *const state_names[] = { "starting", "ready", "stopping", "gone" };

struct inst {
	struct inst *next;
	int id;
	pid_t pid;
	int port;
	enum inst_state state;
	int frozen;          /* SIGSTOP sent, no SIGCONT since */
	int broken;          /* a connect to it failed: never routed again */
	int reaped;          /* the platform shut it down */
	int64_t idle_since;  /* monotonic µs: its last request ended */
	int64_t kill_at;     /* monotonic µs: SIGKILL due (stopping) */
	int64_t started_wall_us; /* epoch µs of m.start_us (for a client's
				  * latency from its own clock) */
	struct meter m;
};

/* A request waiting for an instance; served in arrival order. */
struct waiter {
	struct waiter *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* capacity changed: waiters look again */
	pthread_cond_t sup_cv;  /* the supervisor has something to do */
	struct inst *insts;     /* every instance ever started, newest first
				 * (never freed: connection threads keep
				 * pointers, and a test starts few) */
	int next_id;
	struct waiter *wq_head, *wq_tail;
	int nwaiting;
	int stopping;           /* SIGTERM to the model */
	int64_t t0;             /* monotonic µs: the model's start (logs) */
	int64_t spawn_after;    /* monotonic µs: an instance died starting,
				 * so no new one before (no crash loop) */
	/* counters */
	int64_t starts, start_failures, ready, reaps, kills, exits;
	int64_t requests, routed, answered, client_gone;
	int64_t r413, r429, r503, r504;
	int64_t cold_n, cold_sum_us, cold_max_us, cold_last_us;
} M;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	char line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%.3f runmodel %s: %s\n", (double)(clock_mono_us() - M.t0) / 1e6,
		O.name, line);
}

/* ---- sockets ---------------------------------------------------------- */

/* Writes all of buf to a blocking or non-blocking fd within `ms`. */
static int write_all(int fd, const char *buf, size_t len, int ms)
{
	int64_t until = clock_mono_us() + (int64_t)ms * 1000;

	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int64_t left = until - clock_mono_us();

			if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) < 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* An answer of the platform itself (not of an instance). */
static void reply(int fd, int code, const char *reason, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 code, reason, strlen(body));

	if (write_all(fd, head, (size_t)n, 1000) == 0)
		write_all(fd, body, strlen(body), 1000);
}

/* ---- instances -------------------------------------------------------- */

static int alive(const struct inst *in)
{
	return in->state == I_STARTING || in->state == I_READY;
}

/* Request-based billing: no open request, no CPU. mu held. */
static void settle_cpu(struct inst *in)
{
	if (O.instance_billing || in->state != I_READY || in->m.open > 0 || in->frozen)
		return;
	if (kill(in->pid, SIGSTOP) == 0)
		in->frozen = 1;
}

static void thaw(struct inst *in)
{
	if (in->frozen) {
		kill(in->pid, SIGCONT);
		in->frozen = 0;
	}
}

/* The platform shuts an instance down: SIGTERM, CPU for the grace. */
static void stop_inst(struct inst *in, int64_t now)
{
	if (in->state == I_STOPPING || in->state == I_GONE)
		return;
	in->state = I_STOPPING;
	kill(in->pid, SIGTERM);
	thaw(in);
	meter_term(&in->m, now);
	in->kill_at = now + (int64_t)(O.kill_after_s * 1e6);
}

struct probe_arg {
	struct inst *in;
	int port;
};

/* GET /healthz once; 1 when it answered 200. */
static int probe_once(int port)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "User-Agent: runmodel-probe\r\nConnection: close\r\n\r\n";
	char buf[64];
	size_t got = 0;
	int fd = loopback_dial(port), ok = 0;

	if (fd < 0)
		return 0;
	if (write_all(fd, req, sizeof(req) - 1, 1000) == 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		while (got < 12 && poll(&p, 1, 1000) > 0) {
			ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
		buf[got] = '\0';
		ok = got >= 12 && !strncmp(buf, "HTTP/1.", 7) && !strncmp(buf + 9, "200", 3);
	}
	close(fd);
	return ok;
}

/* The startup probe of one instance: /healthz every 5 ms until 200. */
static void *probe_main(void *arg)
{
	struct probe_arg *pa = arg;
	struct inst *in = pa->in;
	int port = pa->port;

	free(pa);
	for (;;) {
		int ok = probe_once(port);
		int64_t now = clock_mono_us();

		pthread_mutex_lock(&M.mu);
		if (in->state != I_STARTING) {
			pthread_mutex_unlock(&M.mu);
			break;
		}
		if (ok) {
			int64_t cold = now - in->m.start_us;

			in->state = I_READY;
			meter_ready(&in->m, now);
			in->idle_since = now;
			M.ready++;
			M.cold_n++;
			M.cold_sum_us += cold;
			M.cold_last_us = cold;
			if (cold > M.cold_max_us)
				M.cold_max_us = cold;
			logf_("instance %d (pid %d) ready, cold start %.1f ms", in->id,
			      (int)in->pid, (double)cold / 1000);
			if (!M.nwaiting)
				settle_cpu(in);
			pthread_cond_broadcast(&M.cv);
			pthread_mutex_unlock(&M.mu);
			break;
		}
		pthread_mutex_unlock(&M.mu);
		clock_sleep_us(5000);
	}
	return NULL;
}

/* Starts one instance. mu held; called by the supervisor thread only. */
static void spawn(int64_t now)
{
	struct inst *in;
	struct probe_arg *pa;
	pthread_t t;
	char **envp, portvar[32], svc[160], rev[192], conf[160];
	size_t n = 0, i, j = 0;
	int port = loopback_free_port(), logfd = -1;
	pid_t pid;

	if (port < 0) {
		M.start_failures++;
		return;
	}
	while (environ[n])
		n++;
	envp = xcalloc(n + 5, sizeof(*envp));
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "PORT=", 5) && strncmp(environ[i], "K_SERVICE=", 10) &&
		    strncmp(environ[i], "K_REVISION=", 11) &&
		    strncmp(environ[i], "K_CONFIGURATION=", 16))
			envp[j++] = environ[i];
	snprintf(portvar, sizeof(portvar), "PORT=%d", port);
	snprintf(svc, sizeof(svc), "K_SERVICE=%s", O.name);
	snprintf(rev, sizeof(rev), "K_REVISION=%s-00001-mod", O.name);
	snprintf(conf, sizeof(conf), "K_CONFIGURATION=%s", O.name);
	envp[j++] = portvar;
	envp[j++] = svc;
	envp[j++] = rev;
	envp[j++] = conf;
	envp[j] = NULL;
	if (O.log_path)
		logfd = open(O.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	pid = fork();
	if (pid == 0) {
		/* Async-signal-safe calls only until exec. */
		sigset_t none;
		struct sigaction dfl;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (logfd >= 0) {
			dup2(logfd, 1);
			dup2(logfd, 2);
		}
		execve(O.argv[0], O.argv, envp);
		_exit(127);
	}
	if (logfd >= 0)
		close(logfd);
	free(envp);
	if (pid < 0) {
		M.start_failures++;
		logf_("cannot start an instance: %s", strerror(errno));
		return;
	}
	in = xcalloc(1, sizeof(*in));
	in->id = ++M.next_id;
	in->pid = pid;
	in->port = port;
	in->state = I_STARTING;
	meter_start(&in->m, now);
	in->started_wall_us = clock_now_us() - (clock_mono_us() - now);
	in->next = M.insts;
	M.insts = in;
	M.starts++;
	logf_("instance %d started: pid %d, port %d", in->id, (int)pid, port);
	pa = xcalloc(1, sizeof(*pa));
	pa->in = in;
	pa->port = port;
	if (pthread_create(&t, NULL, probe_main, pa) == 0)
		pthread_detach(t);
	else
		free(pa); /* the startup deadline shuts it down */
}

/* ---- the supervisor --------------------------------------------------- */

/* Reaps exited children. mu held. */
static void collect_exits(int64_t now)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct inst *in;

		for (in = M.insts; in && in->pid != pid; in = in->next)
			;
		if (!in)
			continue;
		if (!in->reaped)
			M.exits++;
		if (!in->reaped && !in->m.ready_us) {
			M.start_failures++;
			M.spawn_after = now + 1000000;
		}
		logf_("instance %d (pid %d) %s %d%s", in->id, (int)pid,
		      WIFSIGNALED(status) ? "killed by signal" : "exited",
		      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		      in->m.open ? ", requests open" : "");
		in->state = I_GONE;
		in->frozen = 0;
		meter_end(&in->m, now);
		pthread_cond_broadcast(&M.cv);
	}
}

static void *supervisor_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&M.mu);
	for (;;) {
		int64_t now = clock_mono_us();
		int nalive = 0, nlive = 0, cap = 0, need;
		struct inst *in;

		collect_exits(now);
		for (in = M.insts; in; in = in->next) {
			if (in->state == I_STOPPING && now >= in->kill_at && in->kill_at) {
				kill(in->pid, SIGKILL);
				in->kill_at = 0;
				M.kills++;
				logf_("instance %d (pid %d) killed: no exit within %.0f s of SIGTERM",
				      in->id, (int)in->pid, O.kill_after_s);
			}
			if (in->state == I_STARTING &&
			    now - in->m.start_us > (int64_t)(O.startup_s * 1e6)) {
				logf_("instance %d failed its startup probe", in->id);
				M.start_failures++;
				in->reaped = 1;
				stop_inst(in, now);
				in->kill_at = now; /* no grace for a failed start */
			}
			if (in->state == I_READY && in->broken) {
				in->reaped = 1;
				stop_inst(in, now);
			}
		}
		/* Idle instances go, the oldest idle first, down to --min. */
		/* --min counts instances serving; --max every one not gone
		 * (one shutting down still holds its place). */
		for (in = M.insts; in; in = in->next) {
			nalive += alive(in);
			nlive += in->state != I_GONE;
		}
		for (in = M.insts; in && !M.stopping; in = in->next) {
			if (in->state != I_READY || in->m.open > 0 || nalive <= O.min ||
			    now - in->idle_since < (int64_t)(O.idle_s * 1e6))
				continue;
			logf_("instance %d (pid %d) idle for %.1f s: shut down", in->id, (int)in->pid,
			      (double)(now - in->idle_since) / 1e6);
			in->reaped = 1;
			M.reaps++;
			stop_inst(in, now);
			nalive--;
		}
		/* Capacity: free slots on ready instances plus starting ones. */
		for (in = M.insts; in; in = in->next) {
			if (in->state == I_READY && !in->broken)
				cap += O.concurrency - in->m.open;
			else if (in->state == I_STARTING)
				cap += O.concurrency;
		}
		need = M.stopping ? 0 : M.nwaiting - cap;
		while (!M.stopping && now >= M.spawn_after && nlive < O.max &&
		       (need > 0 || nalive < O.min)) {
			spawn(now);
			nalive++;
			nlive++;
			need -= O.concurrency;
		}
		for (in = M.insts; in; in = in->next)
			settle_cpu(in); /* e.g. ready with nobody waiting after all */
		clock_cond_wait_us(&M.sup_cv, &M.mu, 10000);
	}
	return NULL;
}

/* ---- routing ---------------------------------------------------------- */

/* A ready instance with room, the busiest first (Cloud Run packs
 * requests onto warm instances). mu held. */
static struct inst *pick(void)
{
	struct inst *in, *best = NULL;

	for (in = M.insts; in; in = in->next)
		if (in->state == I_READY && !in->broken && in->m.open < O.concurrency &&
		    (!best || in->m.open > best->m.open ||
		     (in->m.open == best->m.open && in->id < best->id)))
			best = in;
	return best;
}

/* Waits (in arrival order) until an instance has room and routes the
 * request to it: thawed, the meter's span opened. NULL after --pending
 * seconds (429) or when the model stops. */
static struct inst *acquire(void)
{
	struct waiter me = { NULL };
	struct inst *in = NULL;
	int64_t deadline = clock_mono_us() + (int64_t)(O.pending_s * 1e6);

	pthread_mutex_lock(&M.mu);
	if (M.wq_tail)
		M.wq_tail->next = &me;
	else
		M.wq_head = &me;
	M.wq_tail = &me;
	M.nwaiting++;
	for (;;) {
		int64_t now = clock_mono_us();

		if (M.wq_head == &me && (in = pick()) != NULL)
			break;
		if (M.stopping || now >= deadline)
			break;
		pthread_cond_signal(&M.sup_cv);
		clock_cond_wait_us(&M.cv, &M.mu, deadline - now);
	}
	/* Leave the queue (from anywhere in it: a timed-out waiter). */
	{
		struct waiter **pp, *prev = NULL;

		for (pp = &M.wq_head; *pp != &me; pp = &(*pp)->next)
			prev = *pp;
		*pp = me.next;
		if (M.wq_tail == &me)
			M.wq_tail = prev;
	}
	M.nwaiting--;
	if (in) {
		meter_open(&in->m, clock_mono_us());
		thaw(in);
		M.routed++;
	}
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.mu);
	return in;
}

static void release(struct inst *in)
{
	int64_t now = clock_mono_us();

	pthread_mutex_lock(&M.mu);
	if (in->state != I_GONE) {
		meter_close(&in->m, now);
		if (in->m.open == 0) {
			in->idle_since = now;
			settle_cpu(in);
		}
	}
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.mu);
}

/* ---- one request ------------------------------------------------------- */

struct head {
	char buf[HEAD_MAX + 1];
	size_t len;        /* bytes read, head and maybe some body */
	size_t head_len;   /* through the blank line */
	char method[16];
	char target[2048];
	int64_t content_length; /* -1: none */
	int chunked;
	int expect_continue;
};

/* Reads the request head. 0, or the status to answer (400, 431, 408). */
static int read_head(int fd, struct head *h)
{
	int64_t until = clock_mono_us() + 30 * 1000000LL;
	char *end;

	h->len = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = until - clock_mono_us();
		ssize_t n;

		if (left <= 0)
			return 408;
		if (h->len == HEAD_MAX)
			return 431;
		if (poll(&p, 1, (int)(left / 1000) + 1) <= 0)
			continue;
		n = recv(fd, h->buf + h->len, HEAD_MAX - h->len, 0);
		if (n <= 0)
			return -1;
		h->len += (size_t)n;
		h->buf[h->len] = '\0';
		end = strstr(h->buf, "\r\n\r\n");
		if (end) {
			h->head_len = (size_t)(end - h->buf) + 4;
			return 0;
		}
	}
}

/* Parses the request line and the headers the proxy acts on. */
static int parse_head(struct head *h)
{
	char *line = h->buf, *eol, version[16];

	h->content_length = -1;
	eol = strstr(line, "\r\n");
	if (!eol || sscanf(line, "%15s %2047s %15s", h->method, h->target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7))
		return -1;
	for (line = eol + 2; line < h->buf + h->head_len - 2; line = eol + 2) {
		char *colon, *v;

		eol = strstr(line, "\r\n");
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon)
			return -1;
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (!strncasecmp(line, "Content-Length:", 15)) {
			char *e;
			long long cl = strtoll(v, &e, 10);

			if (e == v || cl < 0)
				return -1;
			h->content_length = cl;
		} else if (!strncasecmp(line, "Transfer-Encoding:", 18)) {
			h->chunked = !strncasecmp(v, "chunked", 7);
		} else if (!strncasecmp(line, "Expect:", 7)) {
			h->expect_continue = !strncasecmp(v, "100-continue", 12);
		}
	}
	return 0;
}

/* The head sent to the instance: hop-by-hop headers dropped, one request
 * per connection, X-Forwarded-* added as Cloud Run's front end does. */
static char *upstream_head(const struct head *h, size_t *len)
{
	char *out = xmalloc(h->head_len + 256), *line, *eol;
	size_t o = 0;

	eol = strstr(h->buf, "\r\n");
	o += (size_t)sprintf(out, "%s %s HTTP/1.1\r\n", h->method, h->target);
	for (line = eol + 2; line < h->buf + h->head_len - 2; line = eol + 2) {
		eol = strstr(line, "\r\n");
		if (!strncasecmp(line, "Connection:", 11) || !strncasecmp(line, "Keep-Alive:", 11) ||
		    !strncasecmp(line, "Proxy-Connection:", 17) || !strncasecmp(line, "Expect:", 7) ||
		    !strncasecmp(line, "X-Forwarded-For:", 16) ||
		    !strncasecmp(line, "X-Forwarded-Proto:", 18))
			continue;
		memcpy(out + o, line, (size_t)(eol - line) + 2);
		o += (size_t)(eol - line) + 2;
	}
	o += (size_t)sprintf(out + o, "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
			     "Connection: close\r\n\r\n");
	*len = o;
	return out;
}

/* A message body seen so far: where it ends, and its size. */
struct body {
	int mode;             /* 0 none, 1 Content-Length, 2 chunked,
			       * 3 until the connection closes */
	int64_t left;         /* mode 1: bytes to come */
	int64_t size;         /* decoded bytes so far */
	int cstate;           /* mode 2: 0 size line, 1 data, 2 data CRLF,
			       * 3 trailer line, 4 done */
	int64_t chunk;        /* mode 2: data bytes left in this chunk */
	int line_empty;       /* mode 2: the trailer line has no text yet */
	int hexok;            /* mode 2: digits still count (before ';') */
};

static int body_done(const struct body *b)
{
	return b->mode == 0 || (b->mode == 1 && b->left == 0) || (b->mode == 2 && b->cstate == 4);
}

static void body_init(struct body *b, int chunked, int64_t content_length)
{
	memset(b, 0, sizeof(*b));
	if (chunked) {
		b->mode = 2;
		b->hexok = 1;
	} else if (content_length > 0) {
		b->mode = 1;
		b->left = content_length;
	}
}

/* Consumes up to n bytes of body; returns how many belong to it (the
 * rest is not the body: dropped). -1 on a malformed chunked body. */
static ssize_t body_feed(struct body *b, const char *p, size_t n)
{
	size_t i = 0;

	if (b->mode == 1) {
		size_t take = (int64_t)n < b->left ? n : (size_t)b->left;

		b->left -= (int64_t)take;
		b->size += (int64_t)take;
		return (ssize_t)take;
	}
	if (b->mode == 3) {
		b->size += (int64_t)n;
		return (ssize_t)n;
	}
	if (b->mode != 2)
		return 0;
	while (i < n && b->cstate != 4) {
		char c = p[i];

		switch (b->cstate) {
		case 0: /* hex size [;ext] CRLF */
			i++;
			if (c == '\n') {
				b->cstate = b->chunk ? 1 : 3;
				b->line_empty = 1;
				b->hexok = 1;
			} else if (c == ';' || c == ' ' || c == '\t') {
				b->hexok = 0;
			} else if (b->hexok && c != '\r') {
				int d = c >= '0' && c <= '9' ? c - '0' :
					c >= 'a' && c <= 'f' ? c - 'a' + 10 :
					c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

				if (d < 0 || b->chunk > (INT64_MAX >> 4))
					return -1;
				b->chunk = b->chunk * 16 + d;
			}
			break;
		case 1: { /* data */
			size_t take = (int64_t)(n - i) < b->chunk ? n - i : (size_t)b->chunk;

			i += take;
			b->chunk -= (int64_t)take;
			b->size += (int64_t)take;
			if (b->chunk == 0)
				b->cstate = 2;
			break;
		}
		case 2: /* CRLF after data */
			i++;
			if (c == '\n') {
				b->cstate = 0;
				b->hexok = 1;
			}
			break;
		case 3: /* trailer lines until an empty one */
			i++;
			if (c == '\n') {
				if (b->line_empty)
					b->cstate = 4;
				b->line_empty = 1;
			} else if (c != '\r') {
				b->line_empty = 0;
			}
			break;
		}
	}
	return (ssize_t)i;
}

/* Where the instance's response ends: its head, then its body framed by
 * Content-Length, chunked, or the connection's end. The request span
 * ends when the whole response has reached the client. */
struct resp {
	char head[HEAD_MAX];
	size_t hlen;
	int head_done;
	int status;
	int no_body;          /* a HEAD request: the head is all */
	struct body b;
};

static void resp_head(struct resp *r)
{
	char *line, *eol, *end = r->head + r->hlen - 2;
	int chunked = 0;
	int64_t cl = -1;

	if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
		r->status = 0;
	for (line = strstr(r->head, "\r\n"); line && line + 2 < end; line = eol) {
		line += 2;
		eol = strstr(line, "\r\n");
		if (!strncasecmp(line, "Content-Length:", 15))
			cl = strtoll(line + 15, NULL, 10);
		else if (!strncasecmp(line, "Transfer-Encoding:", 18))
			chunked = strstr(line, "chunked") != NULL && strstr(line, "chunked") < eol;
	}
	if (r->no_body || r->status == 204 || r->status == 304)
		body_init(&r->b, 0, 0);
	else if (chunked || cl >= 0)
		body_init(&r->b, chunked, cl);
	else
		r->b.mode = 3;
}

/* Follows n response bytes. */
static void resp_feed(struct resp *r, const char *p, size_t n)
{
	while (n > 0) {
		if (r->head_done) {
			body_feed(&r->b, p, n);
			return;
		}
		if (r->hlen == sizeof(r->head) - 1) {
			r->head_done = 1; /* an absurd head: wait for the end */
			r->b.mode = 3;
			continue;
		}
		r->head[r->hlen++] = *p++;
		n--;
		r->head[r->hlen] = '\0';
		if (r->hlen >= 4 && !memcmp(r->head + r->hlen - 4, "\r\n\r\n", 4)) {
			resp_head(r);
			if (r->status >= 100 && r->status < 200)
				r->hlen = 0; /* an interim answer: the real one follows */
			else
				r->head_done = 1;
		}
	}
}

static int resp_complete(const struct resp *r)
{
	return r->head_done && r->b.mode != 3 && body_done(&r->b);
}

enum relay_end { R_DONE, R_CLIENT_GONE, R_TIMEOUT, R_UPSTREAM_FAILED, R_TOO_LARGE };

struct pipebuf {
	char *data;
	size_t off, len;
};

/* Moves the request body up and the response down until the instance
 * closes the connection (the response is complete), the client goes
 * away, the request timeout passes, or the body grows past the cap.
 * *answered: bytes of the response have reached the client. */
static enum relay_end relay(int cfd, int ufd, struct pipebuf *up, struct body *b,
			    struct resp *resp, int64_t deadline, int *answered)
{
	struct pipebuf down = { xmalloc(BUF_SIZE), 0, 0 };
	char *tmp = xmalloc(BUF_SIZE);
	enum relay_end r;
	int up_eof = 0;

	*answered = 0;
	fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
	fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd p[2];
		int64_t left = deadline - clock_mono_us();
		ssize_t n;

		if ((up_eof || resp_complete(resp)) && down.len == 0) {
			r = R_DONE;
			break;
		}
		if (left <= 0) {
			r = R_TIMEOUT;
			break;
		}
		p[0].fd = cfd;
		p[0].events = (short)((up->len < BUF_SIZE ? POLLIN : 0) | (down.len ? POLLOUT : 0));
		p[1].fd = ufd;
		p[1].events = (short)((!up_eof && down.len == 0 ? POLLIN : 0) | (up->len ? POLLOUT : 0));
		p[0].revents = p[1].revents = 0;
		if (poll(p, 2, (int)(left / 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			r = R_CLIENT_GONE;
			break;
		}
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && up->len < BUF_SIZE) {
			n = recv(cfd, tmp, BUF_SIZE - up->len, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				r = R_CLIENT_GONE;
				break;
			}
			if (n > 0 && !body_done(b)) {
				ssize_t keep = body_feed(b, tmp, (size_t)n);

				if (keep < 0 || b->size > O.max_body) {
					r = R_TOO_LARGE;
					break;
				}
				if (up->off + up->len + (size_t)keep > BUF_SIZE) {
					memmove(up->data, up->data + up->off, up->len);
					up->off = 0;
				}
				memcpy(up->data + up->off + up->len, tmp, (size_t)keep);
				up->len += (size_t)keep;
			}
			/* bytes after the body (pipelining) are dropped */
		}
		if (up->len && (p[1].revents & POLLOUT)) {
			n = send(ufd, up->data + up->off, up->len, MSG_NOSIGNAL);
			if (n > 0) {
				up->off += (size_t)n;
				up->len -= (size_t)n;
				if (!up->len)
					up->off = 0;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				up->len = 0; /* the instance stopped reading: see its answer */
			}
		}
		if (!up_eof && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = recv(ufd, down.data, BUF_SIZE, 0);
			if (n > 0) {
				down.off = 0;
				down.len = (size_t)n;
				resp_feed(resp, down.data, (size_t)n);
			} else if (n == 0) {
				up_eof = 1;
			} else if (errno != EAGAIN && errno != EINTR) {
				if (!*answered) {
					r = R_UPSTREAM_FAILED;
					break;
				}
				up_eof = 1;
			}
		}
		if (down.len && (p[0].revents & POLLOUT)) {
			n = send(cfd, down.data + down.off, down.len, MSG_NOSIGNAL);
			if (n > 0) {
				down.off += (size_t)n;
				down.len -= (size_t)n;
				*answered = 1;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				r = R_CLIENT_GONE;
				break;
			}
		}
	}
	/* An instance that closed without a word failed the request. */
	if (r == R_DONE && !*answered)
		r = R_UPSTREAM_FAILED;
	free(down.data);
	free(tmp);
	return r;
}

static json_t *stats_json(void);

static void serve_model(int fd, const struct head *h)
{
	if (!strcmp(h->target, "/_model/stats")) {
		char *s;
		char head[160];
		int n;

		pthread_mutex_lock(&M.mu);
		{
			json_t *o = stats_json();

			s = json_dumps(o, JSON_COMPACT);
			json_decref(o);
		}
		pthread_mutex_unlock(&M.mu);
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(s));
		if (write_all(fd, head, (size_t)n, 1000) == 0)
			write_all(fd, s, strlen(s), 1000);
		free(s);
		return;
	}
	reply(fd, 404, "Not Found", "no such model endpoint\n");
}

static void count(int64_t *c)
{
	pthread_mutex_lock(&M.mu);
	(*c)++;
	pthread_mutex_unlock(&M.mu);
}

static void *conn_main(void *arg)
{
	int cfd = (int)(intptr_t)arg, ufd = -1, rc, answered = 0, tries;
	struct head *h = xcalloc(1, sizeof(*h));
	struct pipebuf up = { NULL, 0, 0 };
	struct body b;
	struct resp *resp = NULL;
	struct inst *in = NULL;
	char *uh = NULL;
	size_t uhlen = 0, extra;
	ssize_t keep;
	enum relay_end r;

	rc = read_head(cfd, h);
	if (rc != 0) {
		if (rc > 0)
			reply(cfd, rc, rc == 408 ? "Request Timeout" : "Request Header Fields Too Large",
			      "bad request head\n");
		goto out;
	}
	if (parse_head(h) < 0) {
		reply(cfd, 400, "Bad Request", "malformed request\n");
		goto out;
	}
	if (!strncmp(h->target, "/_model/", 8)) {
		serve_model(cfd, h);
		goto out;
	}
	count(&M.requests);
	body_init(&b, h->chunked, h->content_length);
	/* Cloud Run refuses an HTTP/1 request over 32 MiB before routing. */
	if (b.mode == 1 && b.left > O.max_body) {
		count(&M.r413);
		reply(cfd, 413, "Payload Too Large", "request body over the platform's limit\n");
		goto out;
	}
	up.data = xmalloc(BUF_SIZE);
	extra = h->len - h->head_len;
	keep = body_feed(&b, h->buf + h->head_len, extra);
	if (keep < 0 || b.size > O.max_body) {
		count(&M.r413);
		reply(cfd, 413, "Payload Too Large", "request body over the platform's limit\n");
		goto out;
	}
	uh = upstream_head(h, &uhlen);
	for (tries = 0; tries < 3 && ufd < 0; tries++) {
		in = acquire();
		if (!in)
			break;
		ufd = loopback_dial(in->port);
		if (ufd < 0) {
			/* Gone meanwhile (exited on its own): another one. */
			pthread_mutex_lock(&M.mu);
			in->broken = 1;
			pthread_mutex_unlock(&M.mu);
			release(in);
			in = NULL;
		}
	}
	if (!in) {
		int stopping;

		pthread_mutex_lock(&M.mu);
		stopping = M.stopping;
		if (tries < 3 && !stopping)
			M.r429++;
		else
			M.r503++;
		pthread_mutex_unlock(&M.mu);
		if (tries < 3 && !stopping)
			reply(cfd, 429, "Too Many Requests",
			      "Rejected: no available instance (max instances or concurrency)\n");
		else
			reply(cfd, 503, "Service Unavailable", "no instance could be reached\n");
		goto out;
	}
	if (h->expect_continue && !body_done(&b))
		write_all(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25, 1000);
	/* The head, then the body bytes that came with it. */
	if (uhlen + (size_t)keep > BUF_SIZE) {
		write_all(ufd, uh, uhlen, 5000);
		uhlen = 0;
	}
	memcpy(up.data, uh, uhlen);
	memcpy(up.data + uhlen, h->buf + h->head_len, (size_t)keep);
	up.len = uhlen + (size_t)keep;
	resp = xcalloc(1, sizeof(*resp));
	resp->no_body = !strcmp(h->method, "HEAD");
	r = relay(cfd, ufd, &up, &b, resp, clock_mono_us() + (int64_t)(O.timeout_s * 1e6),
		  &answered);
	close(ufd);
	switch (r) {
	case R_DONE:
		count(&M.answered);
		break;
	case R_CLIENT_GONE:
		count(&M.client_gone);
		logf_("request %s %s to instance %d: the client went away", h->method, h->target,
		      in->id);
		break;
	case R_TIMEOUT:
		count(&M.r504);
		logf_("request %s %s to instance %d cut at the %.1f s timeout", h->method,
		      h->target, in->id, O.timeout_s);
		if (!answered)
			reply(cfd, 504, "Gateway Timeout", "upstream request timeout\n");
		break;
	case R_UPSTREAM_FAILED:
		count(&M.r503);
		logf_("request %s %s to instance %d: closed without an answer", h->method,
		      h->target, in->id);
		if (!answered)
			reply(cfd, 503, "Service Unavailable",
			      "the instance handling the request exited\n");
		break;
	case R_TOO_LARGE:
		count(&M.r413);
		if (!answered)
			reply(cfd, 413, "Payload Too Large", "request body over the platform's limit\n");
		break;
	}
	release(in);
out:
	free(resp);
	free(uh);
	free(up.data);
	free(h);
	close(cfd);
	return NULL;
}

/* ---- stats -------------------------------------------------------------- */

/* The meter and counters. mu held. */
static json_t *stats_json(void)
{
	int64_t now = clock_mono_us(), req_us = 0, inst_us = 0;
	json_t *list = json_array();
	struct inst *in;
	int nalive = 0;

	for (in = M.insts; in; in = in->next) {
		int64_t r = meter_request_us(&in->m, now), i = meter_instance_us(&in->m, now);

		req_us += r;
		inst_us += i;
		if (in->state == I_GONE)
			continue;
		nalive++;
		json_array_append_new(list, json_pack(
			"{s:i,s:i,s:i,s:s,s:b,s:i,s:I,s:f,s:f,s:f,s:f}",
			"id", in->id, "pid", (int)in->pid, "port", in->port,
			"state", state_names[in->state], "frozen", in->frozen,
			"open", in->m.open, "requests", (json_int_t)in->m.requests,
			"cold_start_s", in->m.ready_us ? (double)(in->m.ready_us - in->m.start_us) / 1e6 : 0.0,
			"billed_request_s", (double)r / 1e6, "billed_instance_s", (double)i / 1e6,
			"started_at", (double)in->started_wall_us / 1e6));
	}
	return json_pack(
		"{s:s,s:s,s:i,s:i,s:i,s:f,s:f,"
		"s:f,s:f,s:f,"
		"s:I,s:I,s:I,s:I,s:I,s:I,"
		"s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		"s:{s:I,s:f,s:f,s:f},s:i,s:i,s:o}",
		"service", O.name, "billing", O.instance_billing ? "instance" : "request",
		"concurrency", O.concurrency, "min", O.min, "max", O.max,
		"idle_s", O.idle_s, "timeout_s", O.timeout_s,
		"billed_s", (double)(O.instance_billing ? inst_us : req_us) / 1e6,
		"billed_request_s", (double)req_us / 1e6, "billed_instance_s", (double)inst_us / 1e6,
		"starts", (json_int_t)M.starts, "start_failures", (json_int_t)M.start_failures,
		"reaps", (json_int_t)M.reaps, "kills", (json_int_t)M.kills,
		"exits", (json_int_t)M.exits, "ready", (json_int_t)M.ready,
		"requests", (json_int_t)M.requests, "routed", (json_int_t)M.routed,
		"answered", (json_int_t)M.answered, "client_gone", (json_int_t)M.client_gone,
		"rejected_413", (json_int_t)M.r413, "rejected_429", (json_int_t)M.r429,
		"failed_503", (json_int_t)M.r503, "timeouts_504", (json_int_t)M.r504,
		"cold_start", "count", (json_int_t)M.cold_n,
		"last_s", (double)M.cold_last_us / 1e6, "max_s", (double)M.cold_max_us / 1e6,
		"mean_s", M.cold_n ? (double)M.cold_sum_us / (double)M.cold_n / 1e6 : 0.0,
		"instances_alive", nalive, "waiting", M.nwaiting, "instances", list);
}

/* ---- start and stop ------------------------------------------------------ */

/* SIGTERM/SIGINT: shut every instance down, then exit 0. */
static void *signals_main(void *arg)
{
	sigset_t *set = arg;
	int sig = 0, left;
	int64_t until;
	struct inst *in;

	sigwait(set, &sig);
	pthread_mutex_lock(&M.mu);
	M.stopping = 1;
	for (in = M.insts; in; in = in->next)
		stop_inst(in, clock_mono_us());
	pthread_cond_broadcast(&M.cv);
	pthread_mutex_unlock(&M.mu);
	until = clock_mono_us() + (int64_t)(O.kill_after_s * 1e6);
	do {
		clock_sleep_us(10000);
		left = 0;
		pthread_mutex_lock(&M.mu);
		for (in = M.insts; in; in = in->next)
			left += in->state != I_GONE;
		pthread_mutex_unlock(&M.mu);
	} while (left && clock_mono_us() < until);
	pthread_mutex_lock(&M.mu);
	for (in = M.insts; in; in = in->next)
		if (in->state != I_GONE)
			kill(in->pid, SIGKILL);
	pthread_mutex_unlock(&M.mu);
	fflush(NULL);
	_exit(0);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: runmodel [--port N] [--name NAME] [--billing request|instance]\n"
		   "                [--concurrency N] [--min N] [--max N] [--idle S]\n"
		   "                [--kill-after S] [--timeout S] [--pending S] [--startup S]\n"
		   "                [--max-body BYTES] [--log FILE] -- PROGRAM [ARGS...]\n");
}

static int parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		double d;

		if (!strcmp(a, "--")) {
			if (i + 1 >= argc)
				return -1;
			O.argv = argv + i + 1;
			return 0;
		}
		if (!v)
			return -1;
		i++;
		if (!strcmp(a, "--name")) {
			O.name = v;
		} else if (!strcmp(a, "--log")) {
			O.log_path = v;
		} else if (!strcmp(a, "--billing")) {
			if (strcmp(v, "request") && strcmp(v, "instance"))
				return -1;
			O.instance_billing = !strcmp(v, "instance");
		} else if (parse_seconds(v, 0, 1e12, &d) < 0) {
			return -1;
		} else if (!strcmp(a, "--port")) {
			O.port = (int)d;
		} else if (!strcmp(a, "--concurrency")) {
			O.concurrency = d < 1 ? 1 : (int)d;
		} else if (!strcmp(a, "--min")) {
			O.min = (int)d;
		} else if (!strcmp(a, "--max")) {
			O.max = d < 1 ? 1 : (int)d;
		} else if (!strcmp(a, "--idle")) {
			O.idle_s = d;
		} else if (!strcmp(a, "--kill-after")) {
			O.kill_after_s = d;
		} else if (!strcmp(a, "--timeout")) {
			O.timeout_s = d;
		} else if (!strcmp(a, "--pending")) {
			O.pending_s = d;
		} else if (!strcmp(a, "--startup")) {
			O.startup_s = d;
		} else if (!strcmp(a, "--max-body")) {
			O.max_body = (int64_t)d;
		} else {
			return -1;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	static sigset_t set;
	pthread_t t;
	int lfd, one = 1;

	if (parse_args(argc, argv) < 0 || O.min > O.max) {
		usage(stderr);
		return 2;
	}
	M.t0 = clock_mono_us();
	pthread_mutex_init(&M.mu, NULL);
	clock_cond_init(&M.cv);
	clock_cond_init(&M.sup_cv);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)O.port);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 512) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		fprintf(stderr, "runmodel: cannot listen on port %d: %s\n", O.port, strerror(errno));
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	if (pthread_create(&t, NULL, signals_main, &set) ||
	    pthread_create(&t, NULL, supervisor_main, NULL)) {
		fprintf(stderr, "runmodel: cannot start threads\n");
		return 1;
	}
	logf_("listening on 127.0.0.1:%d, %s billing, concurrency %d, instances %d..%d",
	      ntohs(a.sin_port), O.instance_billing ? "instance-based" : "request-based",
	      O.concurrency, O.min, O.max);
	for (;;) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			break;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)cfd) == 0)
			pthread_detach(t);
		else
			close(cfd);
	}
	return 1;
}
