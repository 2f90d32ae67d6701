/* persist.c - persistent exec handlers: long-lived processes that run
 * many jobs, so a handler pays its start-up (imports, a loaded model, a
 * connection pool) once per drain rather than once per job.
 *
 * Protocol, newline-delimited JSON (docs/HANDLERS.md):
 *   worker -> handler, one line per job:
 *     {"id","type","queue","attempt","max_attempts","deadline","trace","payload"}
 *   handler -> worker, any number of progress lines, then one answer:
 *     {"progress":40,"stage":"encoding"}
 *     {"result":ANY}  |  {"error":"text","retryable":bool,"retry_after_s":N,
 *                          "rate_limit_group":bool}
 *
 * A process serves one job at a time; an entry has as many as jobs of its
 * type run at once (one per slot at most, or its concurrency). Between
 * jobs it waits in the entry's idle list; one that died there is replaced
 * on the next job. Cancel and timeout stop the process (SIGTERM to its
 * group, SIGKILL after the grace): a job cannot be taken back from a
 * process mid-way. One that breaks the protocol (a line that is not a
 * JSON object, bytes after its answer) is stopped too. The reaper thread
 * stops processes idle for the worker's IDLE_TIMEOUT, which is when the
 * drain ends; handler_stop stops the rest (EOF on stdin, then SIGTERM,
 * then SIGKILL).
 */
#include "handler/priv.h"

#include "base/clock.h"
#include "base/fd.h"
#include "base/mem.h"
#include "base/thread.h"
#include "log/log.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS 100
#define LINE_SLACK 65536 /* a line may exceed result_max by its envelope */

static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static pthread_t reaper;
static int reaper_on, reaper_quit;

static void proc_free(struct proc *p)
{
	proc_destroy(p);
	free(p);
}

/* An idle process of the entry that is still alive, or NULL. */
static struct proc *take_idle(struct handler_rt *rt)
{
	struct proc *p;

	for (;;) {
		pthread_mutex_lock(&rt->mu);
		p = rt->idle;
		if (p)
			rt->idle = p->next;
		pthread_mutex_unlock(&rt->mu);
		if (!p || !proc_check_exit(p))
			return p;
		proc_read_stderr(p);
		{
			char st[32];

			snprintf(st, sizeof(st), "%d", WIFSIGNALED(p->status) ?
				 -WTERMSIG(p->status) : WEXITSTATUS(p->status));
			log_info("persistent handler exited while idle, restarting",
				 "handler", rt->h->type, "status", st);
		}
		proc_free(p);
	}
}

static void put_idle(struct handler_rt *rt, struct proc *p)
{
	p->idle_since = clock_mono_us();
	p->next = NULL;
	pthread_mutex_lock(&rt->mu);
	p->next = rt->idle;
	rt->idle = p;
	pthread_mutex_unlock(&rt->mu);
}

static char *request_line(const struct job_run *run, size_t *len)
{
	char *s = handler_request_json(run);

	*len = strlen(s) + 1;
	s = xrealloc(s, *len + 1);
	s[*len - 1] = '\n';
	s[*len] = '\0';
	return s;
}

enum answer { A_NONE, A_RESULT, A_ERROR, A_BAD };

/* One line from the handler: progress (A_NONE), an answer, or A_BAD. */
static enum answer read_line(const struct handler *h, const struct job_run *run,
			     const char *line, size_t len, double *pct,
			     struct job_outcome *out)
{
	json_error_t je;
	json_t *o, *v;
	enum answer a = A_BAD;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return A_NONE; /* blank lines are allowed */
	o = json_loadb(line, len, 0, &je);
	if (!json_is_object(o)) {
		job_fail(out, 0, "handler '%s' answered a line that is not a JSON object: "
			 "%s", h->type, o ? "another JSON value" : je.text);
		goto out;
	}
	if ((v = json_object_get(o, "result"))) {
		out->result = json_incref(v);
		a = A_RESULT;
	} else if ((v = json_object_get(o, "error"))) {
		const json_t *r = json_object_get(o, "retryable");
		const json_t *ra = json_object_get(o, "retry_after_s");

		job_fail(out, json_is_true(r), "%s", json_is_string(v) ? json_string_value(v)
				: "handler error");
		if (json_is_number(ra) && json_number_value(ra) > 0 &&
		    json_number_value(ra) < 86400 * 7)
			out->retry_after_s = json_number_value(ra);
		out->rate_limit_group = out->retryable && out->retry_after_s > 0 &&
					json_is_true(json_object_get(o, "rate_limit_group"));
		a = A_ERROR;
	} else if (progress_line(run, line, len, pct)) {
		a = A_NONE;
	} else {
		job_fail(out, 0, "handler '%s' answered an object with neither \"result\", "
			 "\"error\" nor \"progress\"", h->type);
	}
out:
	json_decref(o);
	return a;
}

/* Reads what stdout has; returns 0, or -1 at end of file. */
static int read_out(struct proc *p)
{
	char b[16384];
	ssize_t got;

	while (p->fd_out >= 0) {
		got = read(p->fd_out, b, sizeof(b));
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (got <= 0) {
			fd_close(&p->fd_out);
			return -1;
		}
		buf_add(&p->out, b, (size_t)got);
	}
	return -1;
}

/* Takes whole lines from p->out until an answer (or a bad line). */
static enum answer take_lines(struct proc *p, const struct job_run *run, double *pct,
			      struct job_outcome *out)
{
	const struct handler *h = p->h;
	size_t max = (size_t)h->result_max + LINE_SLACK, len;
	enum answer a = A_NONE;
	char *nl;

	while (a == A_NONE) {
		nl = memchr(p->out.data, '\n', p->out.len);
		len = nl ? (size_t)(nl - p->out.data) : p->out.len;
		if (len > max) {
			job_fail(out, 0, "handler '%s' wrote a result larger than %lld bytes "
				 "(result_max)", h->type, (long long)h->result_max);
			return A_BAD;
		}
		if (!nl)
			break;
		a = read_line(h, run, p->out.data, len, pct, out);
		memmove(p->out.data, nl + 1, p->out.len - len - 1);
		p->out.len -= len + 1;
		p->out.data[p->out.len] = '\0';
	}
	return a;
}

int persist_run(struct handler_rt *rt, const struct job_run *run, struct job_outcome *out)
{
	const struct handler *h = rt->h;
	struct proc *p = take_idle(rt);
	char *req;
	size_t reqlen, reqoff = 0;
	enum answer ans = A_NONE;
	int64_t kill_at = 0;
	int termed = 0, killed = 0, cancelled = 0, keep = 0, rc;
	double pct = 0;
	struct err e;

	if (!p) {
		p = xmalloc(sizeof(*p));
		if (proc_spawn(rt, NULL, p, &e) < 0) {
			free(p);
			return job_fail(out, e.code == ERR_UNAVAILABLE, "handler '%s': %s",
					h->type, e.msg);
		}
		log_debug("persistent handler started", "handler", h->type);
	}
	p->errlen = p->errpos = 0; /* the tail of this job's stderr only */
	buf_reset(&p->out);
	req = request_line(run, &reqlen);
	for (;;) {
		struct pollfd pf[4];
		nfds_t n = 0;
		int64_t now = clock_mono_us();
		int timeout = TICK_MS, exited;

		while (p->fd_in >= 0 && reqoff < reqlen) {
			ssize_t got = write(p->fd_in, req + reqoff, reqlen - reqoff);

			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (got <= 0) {
				fd_close(&p->fd_in); /* it closed stdin: it is going away */
				break;
			}
			reqoff += (size_t)got;
		}
		if (p->fd_err >= 0)
			proc_read_stderr(p);
		/* exit first, then the last reads: what it wrote before
		 * exiting is still in the pipe */
		exited = proc_check_exit(p);
		if (!termed) {
			read_out(p);
			ans = take_lines(p, run, &pct, out);
			if (ans != A_NONE)
				break;
		}
		if (exited)
			break;
		if (!termed && (job_cancelled(run) || p->fd_out < 0)) {
			/* cancel, timeout, shutdown; or stdout closed: exiting */
			cancelled = job_cancelled(run);
			proc_signal(p, SIGTERM);
			termed = 1;
			kill_at = now + (int64_t)(h->kill_grace_s * 1e6);
		}
		if (termed && !killed && now >= kill_at) {
			proc_signal(p, SIGKILL);
			killed = 1;
		}
		if (p->fd_in >= 0 && reqoff < reqlen)
			pf[n++] = (struct pollfd){ p->fd_in, POLLOUT, 0 };
		if (p->fd_out >= 0 && !termed)
			pf[n++] = (struct pollfd){ p->fd_out, POLLIN, 0 };
		if (p->fd_err >= 0)
			pf[n++] = (struct pollfd){ p->fd_err, POLLIN, 0 };
		if (p->pidfd >= 0)
			pf[n++] = (struct pollfd){ p->pidfd, POLLIN, 0 };
		else if (termed)
			timeout = 10;
		if (termed && !killed && (kill_at - now) / 1000 + 1 < timeout)
			timeout = (int)((kill_at - now) / 1000 + 1);
		if (poll(pf, n, timeout) < 0 && errno != EINTR) {
			proc_signal(p, SIGKILL);
			termed = killed = 1;
		}
	}
	if (ans == A_RESULT || ans == A_ERROR) {
		rc = ans == A_RESULT ? 0 : -1;
		/* anything after the answer breaks the one-line rule: the
		 * next job would read it as its own */
		keep = p->out.len == 0 && !p->exited && p->fd_in >= 0 && p->fd_out >= 0;
		if (!keep && !p->exited)
			log_warn("persistent handler broke the protocol after its answer, "
				 "restarting it", "handler", h->type);
	} else if (ans == A_BAD) {
		rc = -1;
	} else if (cancelled) {
		rc = job_fail(out, 0, "cancelled");
	} else if (p->exited) {
		rc = proc_fail_status(h, p, p->status, " before answering", out);
	} else {
		rc = job_fail(out, 1, "handler '%s' closed its stdout before answering", h->type);
	}
	free(req);
	if (keep)
		put_idle(rt, p);
	else
		proc_free(p);
	return rc;
}

/* ---- stopping ------------------------------------------------------------------ */

/* Stops every process of `list` at once: EOF on stdin, SIGTERM after the
 * grace, SIGKILL after another. */
static void stop_list(struct proc *list, double grace)
{
	struct proc *p, *next;
	int64_t end;
	int phase, alive;

	for (p = list; p; p = p->next)
		fd_close(&p->fd_in);
	for (phase = 0; phase < 2; phase++) {
		end = clock_mono_us() + (int64_t)(grace * 1e6);
		do {
			alive = 0;
			for (p = list; p; p = p->next) {
				if (p->fd_err >= 0)
					proc_read_stderr(p);
				alive += !proc_check_exit(p);
			}
			if (alive)
				clock_sleep_us(10000);
		} while (alive && clock_mono_us() < end);
		if (!alive)
			break;
		if (phase == 0)
			for (p = list; p; p = p->next)
				proc_signal(p, SIGTERM);
	}
	for (p = list; p; p = next) {
		next = p->next;
		proc_free(p);
	}
}

static struct proc *detach_idle(struct handler_rt *rt, int64_t older_than)
{
	struct proc **pp, *p, *out = NULL;

	pthread_mutex_lock(&rt->mu);
	for (pp = &rt->idle; (p = *pp);) {
		if (older_than == 0 || p->idle_since <= older_than) {
			*pp = p->next;
			p->next = out;
			out = p;
		} else {
			/* keep an idle process's stderr from filling up */
			if (p->fd_err >= 0)
				proc_read_stderr(p);
			pp = &p->next;
		}
	}
	pthread_mutex_unlock(&rt->mu);
	return out;
}

static void *reaper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&reaper_mu);
	while (!reaper_quit) {
		struct handler_rt *rt;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&reaper_cv, &reaper_mu, &ts);
		if (reaper_quit)
			break;
		pthread_mutex_unlock(&reaper_mu);
		for (rt = handler_rts; rt; rt = rt->next) {
			double idle = rt->o ? rt->o->idle_s : 0;
			struct proc *list;

			if (!rt->h->persistent || idle <= 0)
				continue;
			list = detach_idle(rt, clock_mono_us() - (int64_t)(idle * 1e6));
			if (list) {
				log_debug("stopping idle persistent handlers", "handler",
					  rt->h->type);
				stop_list(list, rt->h->kill_grace_s);
			}
		}
		pthread_mutex_lock(&reaper_mu);
	}
	pthread_mutex_unlock(&reaper_mu);
	return NULL;
}

void persist_start_reaper(void)
{
	pthread_mutex_lock(&reaper_mu);
	if (!reaper_on && pthread_create(&reaper, NULL, reaper_main, NULL) == 0)
		reaper_on = 1;
	pthread_mutex_unlock(&reaper_mu);
}

void persist_stop_all(void)
{
	struct handler_rt *rt;
	struct proc *all = NULL, *list, *last;
	double grace = 0;

	thread_stop(&reaper_mu, &reaper_cv, &reaper_quit, &reaper,
		    reaper_on ? 1 : 0);
	reaper_on = 0;
	for (rt = handler_rts; rt; rt = rt->next) {
		if (!rt->h->persistent)
			continue;
		list = detach_idle(rt, 0);
		if (!list)
			continue;
		for (last = list; last->next; last = last->next)
			;
		last->next = all;
		all = list;
		if (rt->h->kill_grace_s > grace)
			grace = rt->h->kill_grace_s;
	}
	if (all)
		stop_list(all, grace);
}
