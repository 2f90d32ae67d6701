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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

static _Noreturn void child_main(int wfd, media_work_fn fn, void *arg,
				 const struct media_ctl *ctl, pid_t parent)
{
	struct media_ctl cc;
	struct sigaction sa;
	sigset_t none;
	struct err e;
	json_t *res = NULL;
	char *text;
	int rc;

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

	if (wfd != CHILD_FD) {
		dup2(wfd, CHILD_FD);
		close(wfd);
	}
	/* The worker's sockets and files are none of the child's business. */
	close_range(CHILD_FD + 1, ~0U, 0);

	set_limit(RLIMIT_CPU, media_limits.cpu_s, media_limits.cpu_s + 5);
	if (!UNDER_ASAN)
		set_limit(RLIMIT_AS, media_limits.as_bytes, media_limits.as_bytes);
	set_limit(RLIMIT_FSIZE, media_limits.fsize_bytes, media_limits.fsize_bytes);
	set_limit(RLIMIT_NOFILE, media_limits.nofile, media_limits.nofile);
	{
		struct rlimit rl = { 0, 0 };

		setrlimit(RLIMIT_CORE, &rl);
	}
	av_log_set_callback(quiet_log);

	memset(&cc, 0, sizeof(cc));
	cc.cancel = &child_stop;
	cc.deadline_us = ctl ? ctl->deadline_us : 0;
	cc.progress = child_progress;
	if (ctl && ctl->cancel && atomic_load(ctl->cancel))
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
		char line[ERR_MSG_MAX + 32], *p;
		int n;

		for (p = e.msg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		n = snprintf(line, sizeof(line), "E %d %s\n", (int)e.code, e.msg);
		if (n > 0)
			write_all(CHILD_FD, line, (size_t)n < sizeof(line) ?
				  (size_t)n : sizeof(line) - 1);
	}
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

int media_isolate(media_work_fn fn, void *arg, const char *cleanup,
		  const struct media_ctl *ctl, json_t **out, struct err *err)
{
	struct heard h = { NULL, 0, { ERR_OK, "" } };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fds[2], status = 0, stopped = 0, killed = 0, ret = -1;
	int64_t term_at = 0, touched_at = INT64_MIN / 2;
	pid_t pid, self = getpid();

	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_set(err, ERR_INTERNAL, "cannot create a pipe: %s",
			       strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return err_set(err, ERR_UNAVAILABLE, "cannot fork a decoder: %s",
			       strerror(errno));
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], fn, arg, ctl, self);
	}
	close(fds[1]);

	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
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
			r = read(fds[0], buf + len, cap - len - 1);
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
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	free(buf);

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
	json_decref(h.result);
	if (ret < 0 && cleanup)
		media_unlink(cleanup);
	return ret;
}
