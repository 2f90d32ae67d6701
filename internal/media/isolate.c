/* isolate.c - runs media work in a forked child under resource limits.
 *
 * Protocol on the pipe, child to parent, one line each:
 *   P <percent> <stage>     progress
 *   R <json>                result (compact JSON has no newline)
 *   E <code> <message>      error (struct err)
 * The parent stops the child with SIGTERM (the child's interrupt callback
 * sees it and removes its partial output), then SIGKILL after a grace.
 * The child dies with the worker (PR_SET_PDEATHSIG): a SIGKILLed worker
 * leaves no decoder running. Its partial output then stays behind, so
 * while the child runs the parent refreshes that file's mtime every
 * FETCH_PART_TOUCH_S, and the next worker to start removes partial
 * outputs left untouched for longer (fetch_sweep_parts).
 *
 * media_isolate_copy keeps one such child per thread and reuses it, job
 * after job, over a socket that carries each job (a flat copy of its
 * argument, the limits, the deadline): a warm child skips the fork and
 * FFmpeg's first-touch costs (see "spares" below and media.h).
 *
 * After fork() in a multi-threaded process only the forking thread exists
 * in the child, and locks other threads held stay held. The child
 * therefore takes no lock of ours (no logging, no config), silences
 * FFmpeg's logger (it has a mutex), uses malloc (glibc makes it safe after
 * fork) and FFmpeg, and leaves by _exit.
 */
#include "media/internal.h"

#include "base/clock.h"
#include "fetch/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

struct media_limits media_limits = {
	.cpu_s = 3600,
	.as_bytes = (int64_t)4 << 30,
	.fsize_bytes = (int64_t)16 << 30,
	.nofile = 64,
	.kill_grace_s = 2,
};

#define CHILD_FD 3
#define LINE_MAX_BYTES (4 << 20) /* a result larger than this is refused */

/* The child's cancel flag, raised by SIGTERM. Lock-free, so a store from
 * a signal handler is fine. */
static atomic_int child_stop;

static void on_term(int sig)
{
	(void)sig;
	atomic_store(&child_stop, 1);
}

static void quiet_log(void *avcl, int level, const char *fmt, va_list ap)
{
	(void)avcl;
	(void)level;
	(void)fmt;
	(void)ap;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the parent is gone: nothing to tell */
		p += w;
		n -= (size_t)w;
	}
}

static void child_progress(void *opaque, double percent, const char *stage)
{
	char line[96];
	int n;

	(void)opaque;
	n = snprintf(line, sizeof(line), "P %.1f %s\n", percent,
		     stage ? stage : "-");
	if (n > 0 && (size_t)n < sizeof(line))
		write_all(CHILD_FD, line, (size_t)n);
}

static void set_limit(int res, int64_t soft, int64_t hard)
{
	struct rlimit rl;

	if (soft <= 0)
		return;
	rl.rlim_cur = (rlim_t)soft;
	rl.rlim_max = (rlim_t)hard;
	setrlimit(res, &rl);
}

/* The child's start: signals, descriptors (the pipe to the parent on
 * CHILD_FD; `rfd`, when >= 0, the job's socket of a spare on
 * CHILD_FD + 1; nothing else) and limits. */
static void child_setup(int wfd, int rfd, pid_t parent)
{
	struct sigaction sa;
	sigset_t none;

	/* Die with the worker, at once: otherwise a decoder outlives a
	 * SIGKILLed worker until its next write to the pipe fails. The signal
	 * comes when the forking thread ends, and that thread waits for this
	 * child. A worker that died before the prctl is seen by getppid. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	/* Signals: the forking thread's mask and the worker's handlers are
	 * not what a decoder child wants. */
	/* Every handler back to the default: a crash handler of the
	 * worker's (or a test framework's) must not run in the child. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGXFSZ, &sa, NULL); /* file size limit: EFBIG, not death */
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Above every descriptor first, so that neither dup2 below closes
	 * the other one. */
	wfd = fcntl(wfd, F_DUPFD, 64);
	if (rfd >= 0)
		rfd = fcntl(rfd, F_DUPFD, 64);
	if (wfd < 0 || dup2(wfd, CHILD_FD) < 0 || (rfd >= 0 && dup2(rfd, CHILD_FD + 1) < 0))
		_exit(1);
	/* The worker's sockets and files are none of the child's business. */
	close_range(rfd >= 0 ? CHILD_FD + 2 : CHILD_FD + 1, ~0U, 0);

	av_log_set_callback(quiet_log);
}

static void child_limits_rest(const struct media_limits *l);

/* The limits of a child forked for one job (media_isolate), applied just
 * before the work; a spare's are child_limits_reused's. */
static void child_limits(const struct media_limits *l)
{
	set_limit(RLIMIT_CPU, l->cpu_s, l->cpu_s + 5);
	child_limits_rest(l);
}

/* A reused child's CPU limit, from its first job on: the CPU time it used
 * so far plus the job's allowance, as a soft limit (SIGXCPU). The hard
 * limit is left as it is (unlimited unless the worker was started under
 * one), never lowered: an unprivileged child cannot raise it again, and a
 * hard limit set for the first job would bound the sum of all its jobs.
 * The parent's deadline kill remains the backstop. Returns -1 with `err`
 * set when the limit cannot be set: the job is not run without it. */
static int child_limits_reused(const struct media_limits *l, struct err *err)
{
	struct rlimit rl = { 0, 0 };
	struct rusage ru;

	if (l->cpu_s > 0) {
		if (getrusage(RUSAGE_SELF, &ru) < 0 || getrlimit(RLIMIT_CPU, &rl) < 0)
			return err_set(err, ERR_INTERNAL, "cannot read the cpu time: %s",
				       strerror(errno));
		rl.rlim_cur = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1 + l->cpu_s);
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_CPU, &rl) < 0)
			return err_set(err, ERR_INTERNAL, "cannot set the cpu limit: %s",
				       strerror(errno));
	}
	child_limits_rest(l);
	return 0;
}

/* The limits both kinds of child share: memory, file size, descriptors,
 * and no core dump. */
static void child_limits_rest(const struct media_limits *l)
{
	static const struct rlimit nocore = { 0, 0 };

	if (!UNDER_ASAN)
		set_limit(RLIMIT_AS, l->as_bytes, l->as_bytes);
	set_limit(RLIMIT_FSIZE, l->fsize_bytes, l->fsize_bytes);
	set_limit(RLIMIT_NOFILE, l->nofile, l->nofile);
	setrlimit(RLIMIT_CORE, &nocore);
}

/* Sends the job's error to the parent. */
static void child_error(struct err *e)
{
	char line[ERR_MSG_MAX + 32], *p;
	int n;

	for (p = e->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = snprintf(line, sizeof(line), "E %d %s\n", (int)e->code, e->msg);
	if (n > 0)
		write_all(CHILD_FD, line, (size_t)n < sizeof(line) ?
			  (size_t)n : sizeof(line) - 1);
}

/* Runs the work and sends its result or error to the parent. */
static void child_work(media_work_fn fn, void *arg, int cancelled, int64_t deadline_us)
{
	struct media_ctl cc;
	struct err e;
	json_t *res = NULL;
	char *text;
	int rc;

	memset(&cc, 0, sizeof(cc));
	atomic_store(&child_stop, 0);
	cc.cancel = &child_stop;
	cc.deadline_us = deadline_us;
	cc.progress = child_progress;
	if (cancelled)
		atomic_store(&child_stop, 1);

	err_clear(&e);
	rc = fn(arg, &cc, &res, &e);
	if (rc == 0) {
		text = json_dumps(res ? res : json_null(),
				  JSON_COMPACT | JSON_ENCODE_ANY);
		if (text) {
			write_all(CHILD_FD, "R ", 2);
			write_all(CHILD_FD, text, strlen(text));
			write_all(CHILD_FD, "\n", 1);
		}
	} else {
		child_error(&e);
	}
	json_decref(res);
}

static _Noreturn void child_run(media_work_fn fn, void *arg, int cancelled,
				int64_t deadline_us)
{
	child_work(fn, arg, cancelled, deadline_us);
	_exit(0);
}

/* What the parent learned from the pipe. */
struct heard {
	json_t *result;
	int has_error;
	struct err error;
};

static void handle_line(char *line, const struct media_ctl *ctl,
			struct heard *h)
{
	if (line[0] == 'P' && line[1] == ' ') {
		char *end, *stage;
		double pct = strtod(line + 2, &end);

		stage = *end == ' ' ? end + 1 : NULL;
		if (stage && !strcmp(stage, "-"))
			stage = NULL;
		if (ctl && ctl->progress)
			ctl->progress(ctl->opaque, pct, stage);
	} else if (line[0] == 'R' && line[1] == ' ') {
		json_decref(h->result);
		h->result = json_loads(line + 2, JSON_DECODE_ANY, NULL);
	} else if (line[0] == 'E' && line[1] == ' ') {
		char *end;
		long code = strtol(line + 2, &end, 10);

		if (code <= ERR_OK || code > ERR_INTERNAL)
			code = ERR_INTERNAL;
		h->has_error = 1;
		err_set(&h->error, (enum err_code)code, "%s",
			*end == ' ' ? end + 1 : "decoder failed");
	}
}

/* Reads the child `pid`'s lines on `rfd` (closed here) until it ended,
 * enforcing cancel, deadline and grace; reaps it and maps how it ended.
 * See media_isolate. */
static int watch(pid_t pid, int rfd, const char *cleanup, const struct media_ctl *ctl,
		 int *alive, json_t **out, struct err *err)
{
	struct heard h = { NULL, 0, { ERR_OK, "" } };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int status = 0, stopped = 0, killed = 0, ret = -1;
	int64_t term_at = 0, touched_at = INT64_MIN / 2;

	for (;;) {
		struct pollfd pfd = { rfd, POLLIN, 0 };
		int64_t now;
		int n = poll(&pfd, 1, 50);

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			ssize_t r;
			char *nl, *line;

			if (cap - len < 65536) {
				cap = cap ? cap * 2 : 131072;
				buf = realloc(buf, cap);
				if (!buf)
					abort();
			}
			r = read(rfd, buf + len, cap - len - 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break; /* EOF: the child is done or dead */
			len += (size_t)r;
			buf[len] = 0;
			line = buf;
			while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
				*nl = 0;
				handle_line(line, ctl, &h);
				line = nl + 1;
			}
			/* A reused child answered and waits for its next job;
			 * one asked to stop is not reused: EOF comes now. */
			if (alive && (h.result || h.has_error)) {
				if (!stopped && !killed)
					break;
				kill(pid, SIGKILL);
			}
			len -= (size_t)(line - buf);
			memmove(buf, line, len);
			if (len > LINE_MAX_BYTES) {
				kill(pid, SIGKILL);
				killed = -1;
			}
		}
		now = clock_mono_us();
		if (cleanup && now - touched_at >= (int64_t)FETCH_PART_TOUCH_S * 1000000) {
			/* still written: not stale (fetch.h) */
			utimensat(AT_FDCWD, cleanup, NULL, 0);
			touched_at = now;
		}
		if (!stopped && ctl) {
			if (ctl->cancel && atomic_load(ctl->cancel))
				stopped = ERR_CANCELLED;
			else if (ctl->deadline_us && now >= ctl->deadline_us)
				stopped = ERR_TIMEOUT;
			if (stopped) {
				kill(pid, SIGTERM);
				term_at = now;
			}
		}
		if (stopped && !killed &&
		    now - term_at > (int64_t)(media_limits.kill_grace_s * 1e6)) {
			kill(pid, SIGKILL);
			killed = 1;
		}
	}
	free(buf);
	if (alive && (h.result || h.has_error) && !stopped && !killed) {
		*alive = 1; /* rfd stays open for its next job */
		if (h.has_error) {
			if (err)
				*err = h.error;
		} else {
			*out = h.result;
			h.result = NULL;
			ret = 0;
		}
		goto out;
	}
	if (alive)
		*alive = 0;
	close(rfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	if (stopped) {
		err_set(err, (enum err_code)stopped, "%s",
			stopped == ERR_CANCELLED ? "cancelled" : "timed out");
	} else if (killed < 0) {
		err_set(err, ERR_TOOLARGE, "decoder result too large");
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		if (sig == SIGXCPU || (sig == SIGKILL && media_limits.cpu_s > 0 &&
				       !h.result && !h.has_error))
			err_set(err, sig == SIGXCPU ? ERR_TOOLARGE : ERR_INTERNAL,
				sig == SIGXCPU ?
				"decoder exceeded its cpu limit (%lld s)" :
				"decoder was killed (cpu limit %lld s or out of memory)",
				(long long)media_limits.cpu_s);
		else
			err_set(err, ERR_INTERNAL, "decoder crashed: signal %d", sig);
	} else if (h.has_error) {
		if (err)
			*err = h.error;
	} else if (!h.result) {
		err_set(err, ERR_INTERNAL,
			"decoder exited without a result (status %d)",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	} else {
		*out = h.result;
		h.result = NULL;
		ret = 0;
	}
out:
	json_decref(h.result);
	if (ret < 0 && cleanup)
		media_unlink(cleanup);
	return ret;
}

/* Forks a decoder child with its result pipe in res (res[1] the child's
 * end) and, when `job` is given, a socket pair for its jobs (job[1] the
 * child's end); every descriptor is close-on-exec. Returns the child's
 * pid in the parent, 0 in the child, or -1 with err set and nothing left
 * open. */
static pid_t fork_decoder(int res[2], int job[2], struct err *err)
{
	pid_t pid;

	if (pipe2(res, O_CLOEXEC) < 0)
		return err_set(err, ERR_INTERNAL, "cannot create a pipe: %s", strerror(errno));
	if (job && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, job) < 0) {
		close(res[0]);
		close(res[1]);
		return err_set(err, ERR_INTERNAL, "cannot create a socket pair: %s",
			       strerror(errno));
	}
	pid = fork();
	if (pid < 0) {
		close(res[0]);
		close(res[1]);
		if (job) {
			close(job[0]);
			close(job[1]);
		}
		return err_set(err, ERR_UNAVAILABLE, "cannot fork a decoder: %s",
			       strerror(errno));
	}
	return pid;
}

int media_isolate(media_work_fn fn, void *arg, const char *cleanup,
		  const struct media_ctl *ctl, json_t **out, struct err *err)
{
	int fds[2];
	pid_t pid, self = getpid();

	pid = fork_decoder(fds, NULL, err);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		child_setup(fds[1], -1, self);
		child_limits(&media_limits);
		child_run(fn, arg, ctl && ctl->cancel && atomic_load(ctl->cancel),
			  ctl ? ctl->deadline_us : 0);
	}
	close(fds[1]);
	return watch(pid, fds[0], cleanup, ctl, NULL, out, err);
}

/* ---- spares: children forked before their job, reused ------------------ */

/* Jobs one child serves at most before it exits and is replaced: bounds
 * what a leak in FFmpeg (memory, descriptors) can pile up. */
#define SPARE_JOBS_MAX 64

/* A child forked ahead of its first job, then reused for the jobs that
 * follow, waiting for each on its socket. */
struct spare {
	pid_t pid;   /* 0: none */
	int job_fd;  /* our end of the job socket */
	int res_fd;  /* read end of its result pipe */
	int jobs;    /* jobs handed to it */
	struct media_limits limits; /* those of its first job */
};

/* What a spare is sent for a job, then `size` bytes of the argument. */
struct job_head {
	media_work_fn fn;
	size_t size;
	int cancelled;
	int64_t deadline_us;
	struct media_limits limits;
};

/* One spare per thread: the worker's slot threads each run one media job
 * at a time, and a spare dies with the thread that forked it. */
static _Thread_local struct spare thread_spare;

static void spare_discard(struct spare *sp)
{
	if (sp->pid <= 0)
		return;
	kill(sp->pid, SIGKILL);
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(sp->job_fd);
	close(sp->res_fd);
	sp->pid = 0;
}

static int read_full(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The spare's side: set up at once (signals, descriptors), then serve
 * jobs one after the other; the parent closing the socket ends it. */
static _Noreturn void spare_main(int wfd, int jfd, pid_t parent)
{
	struct job_head head;
	struct err e;
	void *arg;
	int n;

	child_setup(wfd, jfd, parent);
	for (n = 0; n < SPARE_JOBS_MAX; n++) {
		struct pollfd pfd = { CHILD_FD + 1, POLLIN, 0 };

		/* Freed frames go back to the system once no job came for a
		 * second: jobs back to back keep their memory warm (trimming
		 * after each made a thumbnail ~2x slower), an idle worker is
		 * small again. */
		if (n > 0 && poll(&pfd, 1, 1000) == 0)
			malloc_trim(0);
		if (read_full(CHILD_FD + 1, &head, sizeof(head)) < 0 ||
		    head.size > LINE_MAX_BYTES)
			break;
		arg = malloc(head.size ? head.size : 1);
		if (!arg || read_full(CHILD_FD + 1, arg, head.size) < 0)
			break;
		err_clear(&e);
		if (child_limits_reused(&head.limits, &e) < 0)
			child_error(&e);
		else
			child_work(head.fn, arg, head.cancelled, head.deadline_us);
		free(arg);
	}
	_exit(0);
}

static int spare_fork(struct spare *sp, struct err *err)
{
	int res[2], job[2];
	pid_t pid, self = getpid();

	pid = fork_decoder(res, job, err);
	if (pid < 0)
		return -1;
	if (pid == 0)
		spare_main(res[1], job[1], self);
	close(res[1]);
	close(job[1]);
	memset(sp, 0, sizeof(*sp));
	sp->pid = pid;
	sp->job_fd = job[0];
	sp->res_fd = res[0];
	sp->limits = media_limits;
	return 0;
}

/* Hands a job to the spare. -1 when the spare is gone (killed meanwhile,
 * or done with its SPARE_JOBS_MAX): nothing was started. */
static int spare_send(struct spare *sp, media_work_fn fn, const void *arg, size_t size,
		      const struct media_ctl *ctl)
{
	struct job_head head;
	const char *p[2] = { (const char *)&head, arg };
	size_t n[2] = { sizeof(head), size }, k, done;

	memset(&head, 0, sizeof(head));
	head.fn = fn;
	head.size = size;
	head.cancelled = ctl && ctl->cancel && atomic_load(ctl->cancel);
	head.deadline_us = ctl ? ctl->deadline_us : 0;
	head.limits = media_limits;
	for (k = 0; k < 2; k++)
		for (done = 0; done < n[k];) {
			ssize_t w = send(sp->job_fd, p[k] + done, n[k] - done, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			done += (size_t)w;
		}
	sp->jobs++;
	return 0;
}

int media_isolate_copy(media_work_fn fn, const void *arg, size_t size, const char *cleanup,
		       const struct media_ctl *ctl, json_t **out, struct err *err)
{
	struct spare *sp = &thread_spare;
	int alive = 0, rc;

	if (size > LINE_MAX_BYTES)
		return err_set(err, ERR_INTERNAL, "media job too large: %zu bytes (at most %d)", size,
			       LINE_MAX_BYTES);
	/* limits changed since it started (tests): its hard limits may be
	 * too low to raise again */
	if (sp->pid > 0 && (sp->jobs >= SPARE_JOBS_MAX ||
			    memcmp(&sp->limits, &media_limits, sizeof(media_limits))))
		spare_discard(sp);
	if (sp->pid > 0 && spare_send(sp, fn, arg, size, ctl) < 0)
		spare_discard(sp); /* died while it waited: fork another */
	if (sp->pid <= 0) {
		if (spare_fork(sp, err) < 0)
			return -1;
		if (spare_send(sp, fn, arg, size, ctl) < 0) {
			spare_discard(sp);
			return err_set(err, ERR_INTERNAL, "cannot hand a job to the decoder");
		}
	}
	rc = watch(sp->pid, sp->res_fd, cleanup, ctl, &alive, out, err);
	if (!alive) {
		/* crashed, killed or stopped: reaped by watch, its pipe closed;
		 * its replacement is forked now, ready for the next job */
		close(sp->job_fd);
		sp->pid = 0;
		spare_fork(sp, NULL);
	}
	return rc;
}

void media_isolate_done(void)
{
	spare_discard(&thread_spare);
}
