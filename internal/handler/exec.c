/* exec.c - exec handlers: any program run once per job.
 *
 * Protocol (docs/HANDLERS.md): the payload JSON on stdin (then EOF), the
 * result JSON on stdout (at most result_max bytes; empty = null), progress
 * as JSON lines on fd 3, stderr kept (its tail goes into the job's error,
 * every line into the worker's log at debug). Exit 0 = done; an exit code
 * in retry_exit_codes, or death by a signal, = retryable; any other exit
 * = failed.
 *
 * Isolation: each run gets its own process group (pgid = pid), a fresh
 * working directory under the temp root (removed afterwards), a clean
 * environment, rlimits, core dumps off, and PR_SET_PDEATHSIG so the
 * leader dies with a SIGKILLed worker. Cancel, timeout and shutdown come
 * as the run's cancel flag: SIGTERM to the group, SIGKILL after the
 * entry's kill_grace_s. When the leader exits, whatever is left of its
 * group is killed before the leader is reaped, so the group id cannot be
 * reused meanwhile and no descendant outlives the job (unless it left
 * the group with setsid: a cgroup is the tool for that).
 *
 * One slot thread runs one job: the pipes are multiplexed with poll(),
 * with no thread of their own. After fork() the child only makes system
 * calls (no malloc, no locks): everything it needs is prepared before.
 */
#include "handler/priv.h"

#include "base/clock.h"
#include "base/fd.h"
#include "base/mem.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct handler_rt *handler_rts;
static pthread_mutex_t rts_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- process groups alive, for handler_stop ------------------------------- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t *live;
static size_t nlive, live_cap;

static void live_add(pid_t pgid)
{
	pthread_mutex_lock(&live_mu);
	if (nlive == live_cap) {
		live_cap = live_cap ? live_cap * 2 : 16;
		live = xrealloc(live, live_cap * sizeof(*live));
	}
	live[nlive++] = pgid;
	pthread_mutex_unlock(&live_mu);
}

static void live_del(pid_t pgid)
{
	size_t i;

	pthread_mutex_lock(&live_mu);
	for (i = 0; i < nlive; i++)
		if (live[i] == pgid) {
			live[i] = live[--nlive];
			break;
		}
	pthread_mutex_unlock(&live_mu);
}

/* ---- spawning --------------------------------------------------------------- */

enum { STEP_SETUP = 1, STEP_USER, STEP_CHDIR, STEP_EXEC };

struct report {
	int step;
	int err;
};

/* Everything the child needs, built before fork(). */
struct plan {
	const char *exe;
	char *const *argv;
	char *const *envp;
	const char *workdir;
	int fd[4];              /* child ends of stdin, stdout, stderr, fd 3 */
	int status;             /* write end of the exec report pipe */
	pid_t parent;
	struct rlimit cpu, as, nofile, nproc;
	int set_cpu, set_as, set_nproc;
	int set_user;
	uid_t uid;
	gid_t gid;
};

static void report(int fd, int step)
{
	struct report r = { step, errno };
	ssize_t n = write(fd, &r, sizeof(r));

	(void)n;
	_exit(127);
}

__attribute__((noreturn)) static void child(const struct plan *pl)
{
	static const struct rlimit nocore = { 0, 0 };
	struct sigaction dfl;
	sigset_t none;
	int fd[5], i, top;

	setpgid(0, 0);
	/* The leader dies with the worker; check the parent did not die
	 * before the request was made. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != pl->parent)
		_exit(127);
	/* The worker blocks SIGTERM in every thread and ignores SIGPIPE;
	 * a handler starts with neither. Dispositions first: until they
	 * are the defaults, no signal may reach this child, which shares
	 * the worker's memory (spawn: every signal is blocked here). */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			sigaction(i, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Move the pipe ends out of the way of 0..3, then into place. */
	for (i = 0; i < 4; i++)
		fd[i] = pl->fd[i] >= 0 ? fcntl(pl->fd[i], F_DUPFD_CLOEXEC, 10) : -1;
	fd[4] = pl->status;
	for (i = 0; i < 4; i++)
		if (fd[i] >= 0 && dup2(fd[i], i) < 0)
			report(fd[4], STEP_SETUP);
	top = pl->fd[3] >= 0 ? 4 : 3;
	/* Every other descriptor closes at exec (the report pipe too). */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)top, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
#endif
	{
		for (i = top; i < 4096; i++)
			if (i != fd[4])
				close(i);
	}
	setrlimit(RLIMIT_CORE, &nocore);
	if (setrlimit(RLIMIT_NOFILE, &pl->nofile) < 0) {
		/* Where the hard limit may not move (valgrind), the soft one
		 * still caps the handler. */
		struct rlimit cur;

		if (getrlimit(RLIMIT_NOFILE, &cur) < 0)
			report(fd[4], STEP_SETUP);
		if (cur.rlim_cur > pl->nofile.rlim_cur)
			cur.rlim_cur = pl->nofile.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &cur) < 0)
			report(fd[4], STEP_SETUP);
	}
	if ((pl->set_cpu && setrlimit(RLIMIT_CPU, &pl->cpu) < 0) ||
	    (pl->set_as && setrlimit(RLIMIT_AS, &pl->as) < 0) ||
	    (pl->set_nproc && setrlimit(RLIMIT_NPROC, &pl->nproc) < 0))
		report(fd[4], STEP_SETUP);
	/* Raw system calls: glibc's wrappers would try to reach the parent's
	 * other threads, which do not exist in this child. */
	if (pl->set_user &&
	    (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setgid, pl->gid) < 0 ||
	     syscall(SYS_setuid, pl->uid) < 0))
		report(fd[4], STEP_USER);
	if (chdir(pl->workdir) < 0)
		report(fd[4], STEP_CHDIR);
	execve(pl->exe, pl->argv, pl->envp);
	report(fd[4], STEP_EXEC);
	_exit(127);
}

/* The child of proc_spawn. Like posix_spawn, it shares the worker's
 * memory until it execs (clone with CLONE_VM | CLONE_VFORK: this thread
 * waits meanwhile), on a stack in this thread's frame: a fork would copy
 * the page tables of the whole worker for each job only for exec to
 * throw them away, ~0.2 ms a job (perf: dup_mmap, exit_mmap). child()
 * makes system calls only, so sharing is safe; every signal stays
 * blocked until it has reset their dispositions. Under AddressSanitizer,
 * whose bookkeeping a shared-memory child would disturb, it forks. */
#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_FORK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_FORK 1
#endif
#endif

#ifndef SPAWN_FORK
static int child_entry(void *arg)
{
	child(arg);
}
#endif

static pid_t spawn_child(struct plan *pl)
{
#ifdef SPAWN_FORK
	pid_t pid = fork();

	if (pid == 0)
		child(pl);
	return pid;
#else
	/* child() needs well under 1 KiB; the rest is margin */
	_Alignas(16) char stack[32768];
	sigset_t all, old;
	pid_t pid;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(child_entry, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, pl);
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
#endif
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A read of what non-blocking *fd has now: > 0 bytes, or 0 when there
 * is nothing more for now or it ended (*fd then closed and -1). */
static ssize_t read_ready(int *fd, char *b, size_t cap)
{
	ssize_t n = read(*fd, b, cap);

	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return n > 0 ? n : 0;
	fd_close(fd);
	return 0;
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void proc_init(struct proc *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->pidfd = p->fd_in = p->fd_out = p->fd_err = p->fd_prog = -1;
	buf_init(&p->out);
	buf_init(&p->errline);
}

/* The run's environment: the entry's, then what the worker sets. */
static char **make_env(const struct handler_rt *rt, const struct job_run *run,
		       const char *workdir)
{
	size_t n = 0, i;
	char **env;

	for (i = 0; rt->env[i]; i++)
		n++;
	env = xcalloc(n + 16, sizeof(*env));
	for (i = 0; i < n; i++)
		env[i] = xstrdup(rt->env[i]);
	if (!rt->env_has_path)
		env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[n++] = xasprintf("TMPDIR=%s", workdir);
	env[n++] = xasprintf("WAKEQ_JOB_TYPE=%s", rt->h->type);
	if (!run) {
		env[n++] = xstrdup("WAKEQ_PERSISTENT=1");
		return env;
	}
	env[n++] = xasprintf("WAKEQ_JOB_ID=%s", run->id);
	env[n++] = xasprintf("WAKEQ_QUEUE=%s", run->queue ? run->queue : "");
	env[n++] = xasprintf("WAKEQ_ATTEMPT=%d", run->attempt);
	env[n++] = xasprintf("WAKEQ_MAX_ATTEMPTS=%d", run->max_attempts);
	env[n++] = xstrdup("WAKEQ_PROGRESS_FD=3");
	if (run->timeout_s > 0)
		env[n++] = xasprintf("WAKEQ_DEADLINE=%.3f",
				     (double)clock_now_us() / 1e6 + run->timeout_s);
	if (run->trace && *run->trace)
		env[n++] = xasprintf("WAKEQ_TRACE_ID=%s", run->trace);
	return env;
}

int proc_spawn(struct handler_rt *rt, const struct job_run *run, struct proc *p,
	       struct err *err)
{
	const struct handler *h = rt->h;
	const char *root = rt->o && rt->o->tmp_root && *rt->o->tmp_root ? rt->o->tmp_root
									 : "/tmp";
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int pprog[2] = { -1, -1 }, pst[2] = { -1, -1 };
	struct plan pl;
	struct report rep;
	char **env = NULL;
	ssize_t got;
	size_t i;
	pid_t pid;
	int rc = -1;

	proc_init(p);
	p->h = h;
	if ((size_t)snprintf(p->workdir, sizeof(p->workdir), "%s/wakeq-%s-XXXXXX", root,
			     h->type) >= sizeof(p->workdir) || !mkdtemp(p->workdir)) {
		err_set(err, ERR_UNAVAILABLE, "cannot make a working directory under '%s': %s",
			root, strerror(errno));
		p->workdir[0] = '\0';
		goto out;
	}
	if (rt->set_user && chown(p->workdir, rt->uid, rt->gid) < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot give '%s' to user '%s': %s", p->workdir,
			h->user, strerror(errno));
		goto out;
	}
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0 || (run && pipe2(pprog, O_CLOEXEC) < 0) ||
	    pipe2(pst, O_CLOEXEC) < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot make pipes: %s", strerror(errno));
		goto out;
	}
	env = make_env(rt, run, p->workdir);
	memset(&pl, 0, sizeof(pl));
	pl.exe = rt->exe;
	pl.argv = rt->argv;
	pl.envp = env;
	pl.workdir = p->workdir;
	pl.fd[0] = pin[0];
	pl.fd[1] = pout[1];
	pl.fd[2] = perr[1];
	pl.fd[3] = pprog[1];
	pl.status = pst[1];
	pl.parent = getpid();
	pl.nofile.rlim_cur = pl.nofile.rlim_max = (rlim_t)h->limits.open_files;
	{
		struct rlimit cur;

		/* an unprivileged worker cannot raise its own hard limit */
		if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
		    pl.nofile.rlim_max > cur.rlim_max && geteuid() != 0)
			pl.nofile.rlim_cur = pl.nofile.rlim_max = cur.rlim_max;
	}
	if (h->limits.cpu_s > 0 || (run && run->timeout_s > 0)) {
		double s = h->limits.cpu_s > 0 ? h->limits.cpu_s : ceil(run->timeout_s) + 1;

		/* SIGXCPU at the soft limit, SIGKILL a second later */
		pl.cpu.rlim_cur = (rlim_t)s;
		pl.cpu.rlim_max = (rlim_t)s + 1;
		pl.set_cpu = 1;
	}
	if (h->limits.memory > 0) {
		pl.as.rlim_cur = pl.as.rlim_max = (rlim_t)h->limits.memory;
		pl.set_as = 1;
	}
	if (h->limits.processes > 0) {
		pl.nproc.rlim_cur = pl.nproc.rlim_max = (rlim_t)h->limits.processes;
		pl.set_nproc = 1;
	}
	pl.set_user = rt->set_user;
	pl.uid = rt->uid;
	pl.gid = rt->gid;

	pid = spawn_child(&pl);
	if (pid < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot fork: %s", strerror(errno));
		goto out;
	}
	/* both sides set the group, so it exists whichever runs first */
	setpgid(pid, pid);
	p->pid = pid;
	fd_close(&pin[0]);
	fd_close(&pout[1]);
	fd_close(&perr[1]);
	fd_close(&pprog[1]);
	fd_close(&pst[1]);
	do
		got = read(pst[0], &rep, sizeof(rep));
	while (got < 0 && errno == EINTR);
	if (got == (ssize_t)sizeof(rep)) {
		static const char *const what[] = { "", "cannot set up", "cannot switch to user",
						    "cannot enter the working directory of",
						    "cannot run" };

		waitpid(pid, NULL, 0);
		p->pid = -1;
		err_set(err, ERR_INVALID, "%s '%s': %s",
			rep.step >= 1 && rep.step <= STEP_EXEC ? what[rep.step] : "cannot run",
			rt->exe, strerror(rep.err));
		goto out;
	}
	live_add(pid);
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	p->fd_in = pin[1];
	p->fd_out = pout[0];
	p->fd_err = perr[0];
	p->fd_prog = pprog[0];
	pin[1] = pout[0] = perr[0] = pprog[0] = -1;
	nonblock(p->fd_in);
	nonblock(p->fd_out);
	nonblock(p->fd_err);
	if (p->fd_prog >= 0)
		nonblock(p->fd_prog);
	rc = 0;
out:
	for (i = 0; i < 2; i++) {
		fd_close(&pin[i]);
		fd_close(&pout[i]);
		fd_close(&perr[i]);
		fd_close(&pprog[i]);
		fd_close(&pst[i]);
	}
	for (i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
	if (rc < 0) {
		rm_tree(p->workdir);
		p->workdir[0] = '\0';
		buf_release(&p->out);
		buf_release(&p->errline);
	}
	return rc;
}

int proc_check_exit(struct proc *p)
{
	siginfo_t si;

	if (p->exited)
		return 1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
	    si.si_pid == 0)
		return 0;
	/* The leader is a zombie: its pid, and so the group id, stay ours
	 * until it is reaped. Kill the rest of the group first. */
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
		;
	p->exited = 1;
	live_del(p->pid);
	return 1;
}

void proc_signal(struct proc *p, int sig)
{
	if (p->pid > 0 && !p->exited)
		kill(-p->pid, sig);
}

void proc_destroy(struct proc *p)
{
	if (p->pid > 0 && !p->exited) {
		kill(-p->pid, SIGKILL);
		while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
			;
		p->exited = 1;
		live_del(p->pid);
	}
	fd_close(&p->fd_in);
	fd_close(&p->fd_out);
	fd_close(&p->fd_err);
	fd_close(&p->fd_prog);
	fd_close(&p->pidfd);
	rm_tree(p->workdir);
	p->workdir[0] = '\0';
	buf_release(&p->out);
	buf_release(&p->errline);
}

/* Waits up to `s` seconds for the leader to exit. */
static int wait_exit(struct proc *p, double s)
{
	int64_t end = clock_mono_us() + (int64_t)(s * 1e6);

	for (;;) {
		if (proc_check_exit(p))
			return 1;
		if (clock_mono_us() >= end)
			return 0;
		if (p->pidfd >= 0) {
			struct pollfd pf = { p->pidfd, POLLIN, 0 };
			int64_t left = (end - clock_mono_us()) / 1000 + 1;

			poll(&pf, 1, (int)(left < 100 ? left : 100));
		} else {
			clock_sleep_us(10000);
		}
	}
}

void proc_stop(struct proc *p, double grace)
{
	fd_close(&p->fd_in);
	if (!wait_exit(p, grace)) {
		proc_signal(p, SIGTERM);
		wait_exit(p, grace);
	}
	proc_destroy(p);
}

/* ---- reading ---------------------------------------------------------------- */

static void errtail_add(struct proc *p, const char *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		p->errtail[p->errpos] = d[i];
		p->errpos = (p->errpos + 1) % ERRTAIL_MAX;
		if (p->errlen < ERRTAIL_MAX)
			p->errlen++;
	}
}

static void log_err_lines(struct proc *p, const struct handler *h, const char *d, size_t n)
{
	size_t i;

	if (log_min_level > LOG_DEBUG)
		return;
	for (i = 0; i < n; i++) {
		if (d[i] == '\n') {
			log_debug("handler stderr", "handler", h->type, "line", p->errline.data);
			buf_reset(&p->errline);
		} else if (p->errline.len < 1024) {
			buf_addc(&p->errline, d[i]);
		}
	}
}

int proc_read_stderr(struct proc *p)
{
	char b[4096];
	ssize_t n;

	while (p->fd_err >= 0) {
		n = read(p->fd_err, b, sizeof(b));
		if (n > 0) {
			errtail_add(p, b, (size_t)n);
			log_err_lines(p, p->h, b, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (p->errline.len)
			log_debug("handler stderr", "handler", p->h->type, "line",
				  p->errline.data);
		fd_close(&p->fd_err);
		return -1;
	}
	return -1;
}

void proc_errtail(const struct proc *p, char *out, size_t n)
{
	char line[3 * ERRTAIL_MAX + 1];
	size_t i, start = (p->errpos + ERRTAIL_MAX - p->errlen) % ERRTAIL_MAX, o = 0;
	int sep = 0;

	/* join the lines, then keep the end: the last lines say the most */
	for (i = 0; i < p->errlen; i++) {
		char c = p->errtail[(start + i) % ERRTAIL_MAX];

		if (c == '\n' || c == '\r') {
			sep = 1;
			continue;
		}
		if (sep && o) {
			memcpy(line + o, " | ", 3);
			o += 3;
		}
		sep = 0;
		line[o++] = (unsigned char)c < 0x20 ? ' ' : c;
	}
	line[o] = '\0';
	while (o && strchr(" \t", line[o - 1]))
		line[--o] = '\0';
	if (n < 8) {
		if (n)
			out[0] = '\0';
		return;
	}
	if (o < n) {
		memcpy(out, line, o + 1);
		return;
	}
	snprintf(out, n, "... %s", line + o - (n - 5));
}

int proc_fail_status(const struct handler *h, const struct proc *p, int status,
		     const char *when, struct job_outcome *out)
{
	char tail[640], sep[4] = "";
	size_t i;

	proc_errtail(p, tail, sizeof(tail));
	if (tail[0])
		snprintf(sep, sizeof(sep), ": ");
	if (WIFSIGNALED(status))
		return job_fail(out, 1, "handler '%s' was killed by signal %d (%s)%s%s%s",
				h->type, WTERMSIG(status), strsignal(WTERMSIG(status)), when,
				sep, tail);
	for (i = 0; i < h->nretry_codes; i++)
		if (WEXITSTATUS(status) == h->retry_codes[i])
			return job_fail(out, 1, "handler '%s' exited with status %d%s%s%s",
					h->type, WEXITSTATUS(status), when, sep, tail);
	return job_fail(out, 0, "handler '%s' exited with status %d%s%s%s", h->type,
			WEXITSTATUS(status), when, sep, tail);
}

int progress_line(const struct job_run *run, const char *line, size_t len, double *last)
{
	json_t *o = json_loadb(line, len, 0, NULL), *pv, *sv;
	int is = 0;

	if (json_is_object(o)) {
		pv = json_object_get(o, "progress");
		sv = json_object_get(o, "stage");
		if (json_is_number(pv) || json_is_string(sv)) {
			if (json_is_number(pv) && isfinite(json_number_value(pv)))
				*last = json_number_value(pv);
			job_progress(run, *last, json_is_string(sv) ? json_string_value(sv) : NULL);
			is = 1;
		}
	}
	json_decref(o);
	return is;
}

/* ---- the concurrency gate ---------------------------------------------------- */

int gate_enter(struct handler_rt *rt, const struct job_run *run)
{
	int limit = rt->h->concurrency;

	pthread_mutex_lock(&rt->mu);
	while (limit > 0 && rt->running >= limit) {
		struct timespec ts;

		if (job_cancelled(run)) {
			pthread_mutex_unlock(&rt->mu);
			return -1;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&rt->cv, &rt->mu, &ts);
	}
	rt->running++;
	pthread_mutex_unlock(&rt->mu);
	return 0;
}

void gate_leave(struct handler_rt *rt)
{
	pthread_mutex_lock(&rt->mu);
	rt->running--;
	pthread_cond_signal(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
}

/* ---- one-shot runs ------------------------------------------------------------ */

#define TICK_MS 100             /* cancel flag checks */
#define DRAIN_AFTER_EXIT_US 500000 /* pipes a stray descendant holds open */

struct oneshot {
	struct proc p;
	const char *in;          /* the payload line */
	size_t inlen, inoff;
	struct buf prog;         /* partial progress line */
	int prog_skip;           /* the current progress line is too long */
	double pct;
	int oversized;
};

static void read_progress(struct oneshot *o, const struct job_run *run)
{
	char b[4096];
	ssize_t n;
	size_t i;

	while ((n = read_ready(&o->p.fd_prog, b, sizeof(b))) > 0) {
		for (i = 0; i < (size_t)n; i++) {
			if (b[i] == '\n') {
				if (!o->prog_skip && o->prog.len)
					progress_line(run, o->prog.data, o->prog.len, &o->pct);
				buf_reset(&o->prog);
				o->prog_skip = 0;
			} else if (o->prog.len < PROGRESS_LINE_MAX) {
				buf_addc(&o->prog, b[i]);
			} else {
				o->prog_skip = 1;
			}
		}
	}
}

static void read_stdout(struct oneshot *o, const struct handler *h)
{
	char b[16384];
	ssize_t n;

	while ((n = read_ready(&o->p.fd_out, b, sizeof(b))) > 0) {
		if (o->p.out.len + (size_t)n > (size_t)h->result_max) {
			/* no use reading on: stop it now */
			o->oversized = 1;
			fd_close(&o->p.fd_out);
			proc_signal(&o->p, SIGKILL);
			return;
		}
		buf_add(&o->p.out, b, (size_t)n);
	}
}

static void write_stdin(struct oneshot *o)
{
	while (o->p.fd_in >= 0 && o->inoff < o->inlen) {
		ssize_t n = write(o->p.fd_in, o->in + o->inoff, o->inlen - o->inoff);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			fd_close(&o->p.fd_in); /* it will not read: EPIPE */
			return;
		}
		o->inoff += (size_t)n;
	}
	fd_close(&o->p.fd_in); /* EOF: the payload is all there is */
}

/* The result on stdout: JSON, or nothing (null). */
static int take_result(const struct handler *h, struct proc *p, struct job_outcome *out)
{
	const char *s = p->out.data;
	size_t n = p->out.len;
	json_error_t je;

	while (n && strchr(" \t\r\n", s[n - 1]))
		n--;
	while (n && strchr(" \t\r\n", *s)) {
		s++;
		n--;
	}
	if (n == 0)
		return 0;
	out->result = json_loadb(s, n, JSON_DECODE_ANY, &je);
	if (!out->result)
		return job_fail(out, 0, "handler '%s' wrote invalid JSON on stdout: %s "
				"(line %d, column %d)", h->type, je.text, je.line, je.column);
	return 0;
}

static int run_oneshot(struct handler_rt *rt, const struct job_run *run,
		       struct job_outcome *out)
{
	const struct handler *h = rt->h;
	struct oneshot o;
	char *payload;
	struct err e;
	int64_t kill_at = 0, drain_until = 0;
	int termed = 0, killed = 0, cancelled = 0, rc;

	memset(&o, 0, sizeof(o));
	buf_init(&o.prog);
	payload = json_dumps(run->payload, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!payload)
		abort();
	o.inlen = strlen(payload) + 1;
	payload = xrealloc(payload, o.inlen + 1);
	payload[o.inlen - 1] = '\n';
	payload[o.inlen] = '\0';
	o.in = payload;
	if (proc_spawn(rt, run, &o.p, &e) < 0) {
		free(payload);
		buf_release(&o.prog);
		return job_fail(out, e.code == ERR_UNAVAILABLE, "handler '%s': %s", h->type,
				e.msg);
	}
	write_stdin(&o);
	for (;;) {
		struct pollfd pf[5];
		nfds_t n = 0;
		int64_t now = clock_mono_us();
		int timeout = TICK_MS;

		if (!o.p.exited && proc_check_exit(&o.p))
			drain_until = now + DRAIN_AFTER_EXIT_US;
		if (o.p.exited && ((o.p.fd_out < 0 && o.p.fd_err < 0 && o.p.fd_prog < 0) ||
				   now >= drain_until))
			break;
		if (!o.p.exited && !termed && job_cancelled(run)) {
			proc_signal(&o.p, SIGTERM);
			termed = cancelled = 1;
			kill_at = now + (int64_t)(h->kill_grace_s * 1e6);
		}
		if (termed && !killed && now >= kill_at) {
			proc_signal(&o.p, SIGKILL);
			killed = 1;
		}
		if (o.p.fd_in >= 0)
			pf[n++] = (struct pollfd){ o.p.fd_in, POLLOUT, 0 };
		if (o.p.fd_out >= 0)
			pf[n++] = (struct pollfd){ o.p.fd_out, POLLIN, 0 };
		if (o.p.fd_err >= 0)
			pf[n++] = (struct pollfd){ o.p.fd_err, POLLIN, 0 };
		if (o.p.fd_prog >= 0)
			pf[n++] = (struct pollfd){ o.p.fd_prog, POLLIN, 0 };
		if (!o.p.exited && o.p.pidfd >= 0)
			pf[n++] = (struct pollfd){ o.p.pidfd, POLLIN, 0 };
		else if (!o.p.exited && o.p.fd_out < 0 && o.p.fd_err < 0 && o.p.fd_prog < 0)
			timeout = 5; /* no pidfd: the pipes closed, the exit is near */
		if (termed && !killed && (kill_at - now) / 1000 + 1 < timeout)
			timeout = (int)((kill_at - now) / 1000 + 1);
		if (o.p.exited && (drain_until - now) / 1000 + 1 < timeout)
			timeout = (int)((drain_until - now) / 1000 + 1);
		if (poll(pf, n, timeout) < 0 && errno != EINTR)
			break;
		if (o.p.fd_in >= 0)
			write_stdin(&o);
		if (o.p.fd_out >= 0)
			read_stdout(&o, h);
		if (o.p.fd_err >= 0)
			proc_read_stderr(&o.p);
		if (o.p.fd_prog >= 0)
			read_progress(&o, run);
	}
	if (!o.p.exited) {
		/* poll failed: do not leave it behind */
		proc_signal(&o.p, SIGKILL);
		wait_exit(&o.p, 5);
	}
	if (!o.p.exited)
		rc = job_fail(out, 1, "handler '%s': lost track of its process", h->type);
	else if (cancelled)
		rc = job_fail(out, 0, "cancelled");
	else if (o.oversized)
		rc = job_fail(out, 0, "handler '%s' wrote a result larger than %lld bytes "
			      "(result_max)", h->type, (long long)h->result_max);
	else if (WIFEXITED(o.p.status) && WEXITSTATUS(o.p.status) == 0)
		rc = take_result(h, &o.p, out);
	else
		rc = proc_fail_status(h, &o.p, o.p.status, "", out);
	proc_destroy(&o.p);
	buf_release(&o.prog);
	free(payload);
	return rc;
}

/* ---- binding --------------------------------------------------------------------- */

static int run_handler(const struct job_run *run, struct job_outcome *out)
{
	const struct job_type *t = job_find(run->type);
	const struct handler *h = t ? t->data : NULL;
	struct handler_rt *rt = h ? h->rt : NULL;
	int rc;

	if (!rt)
		return job_fail(out, 0, "no handler for job type '%s' in this worker", run->type);
	if (gate_enter(rt, run) < 0)
		return job_fail(out, 0, "cancelled");
	rc = h->persistent ? persist_run(rt, run, out) : run_oneshot(rt, run, out);
	gate_leave(rt);
	return rc;
}

static int run_not_built(const struct job_run *run, struct job_outcome *out)
{
	const struct job_type *t = job_find(run->type);
	const struct handler *h = t ? t->data : NULL;

	return job_fail(out, 0, "handler '%s': %s handlers are not built yet in this worker",
			run->type, h ? handler_kind_name(h->kind) : "this kind of");
}

/* argv[0] as execve wants it: a path, searched in `path` when it has no
 * slash. Returns 0 or -1. */
static int resolve(const char *cmd, const char *path, char *out, size_t n)
{
	const char *p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";

	if (strchr(cmd, '/')) {
		/* absolute: the handler starts in its own working directory */
		char abs[PATH_MAX];

		if (cmd[0] != '/' && realpath(cmd, abs))
			cmd = abs;
		snprintf(out, n, "%s", cmd);
		return access(out, X_OK);
	}
	while (*p) {
		size_t len = strcspn(p, ":");

		if ((size_t)snprintf(out, n, "%.*s/%s", (int)(len ? len : 1), len ? p : ".",
				     cmd) < n && access(out, X_OK) == 0)
			return 0;
		p += len;
		if (*p == ':')
			p++;
	}
	return -1;
}

static int bind_one(struct handler *h, const struct handler_opts *o, struct err *err)
{
	struct handler_rt *rt = xcalloc(1, sizeof(*rt));
	const char *path = getenv("PATH");
	size_t i, n = 0;

	rt->h = h;
	rt->o = o;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_cond_init(&rt->cv, NULL);
	/* the environment passed through is read once, here */
	for (i = 0; h->env && h->env[i]; i++)
		n++;
	rt->env = xcalloc(n + 1, sizeof(*rt->env));
	for (i = 0, n = 0; h->env && h->env[i]; i++) {
		const char *eq = strchr(h->env[i], '=');
		size_t nl = eq ? (size_t)(eq - h->env[i]) : strlen(h->env[i]);

		if (nl == 4 && !strncmp(h->env[i], "PATH", 4)) {
			rt->env_has_path = 1;
			path = eq ? eq + 1 : getenv("PATH");
		}
		if (eq)
			rt->env[n++] = xstrdup(h->env[i]);
		else if (getenv(h->env[i]))
			rt->env[n++] = xasprintf("%s=%s", h->env[i], getenv(h->env[i]));
	}
	if (h->shell) {
		snprintf(rt->exe, sizeof(rt->exe), "/bin/sh");
		rt->argv = xcalloc(4, sizeof(*rt->argv));
		rt->argv[0] = xstrdup("sh");
		rt->argv[1] = xstrdup("-c");
		rt->argv[2] = xstrdup(h->argv[0]);
	} else {
		if (resolve(h->argv[0], path, rt->exe, sizeof(rt->exe)) < 0)
			goto bad_cmd;
		for (n = 0; h->argv[n]; n++)
			;
		rt->argv = xcalloc(n + 1, sizeof(*rt->argv));
		for (i = 0; i < n; i++)
			rt->argv[i] = xstrdup(h->argv[i]);
	}
	if (h->user) {
		struct passwd pw, *res = NULL;
		char pwbuf[4096];

		if (getpwnam_r(h->user, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || !res) {
			err_set(err, ERR_INVALID, "handler '%s' (%s): no user '%s'", h->type,
				h->origin, h->user);
			goto fail;
		}
		if (geteuid() != 0 && pw.pw_uid != geteuid()) {
			err_set(err, ERR_INVALID, "handler '%s' (%s): 'user' needs the worker to "
				"run as root", h->type, h->origin);
			goto fail;
		}
		rt->set_user = geteuid() == 0;
		rt->uid = pw.pw_uid;
		rt->gid = pw.pw_gid;
	}
	if (h->limits.processes > 0 && geteuid() == 0 && (!h->user || rt->uid == 0))
		log_warn("limits.processes is not enforced for handlers run as root; "
			 "set 'user'", "handler", h->type);
	h->rt = rt;
	pthread_mutex_lock(&rts_mu);
	rt->next = handler_rts;
	handler_rts = rt;
	pthread_mutex_unlock(&rts_mu);
	return 0;
bad_cmd:
	err_set(err, ERR_INVALID, "handler '%s' (%s): command '%s' %s", h->type, h->origin,
		h->argv[0], strchr(h->argv[0], '/') ? "is not an executable file"
						    : "not found in PATH");
fail:
	for (i = 0; rt->env[i]; i++)
		free(rt->env[i]);
	free(rt->env);
	for (i = 0; rt->argv && rt->argv[i]; i++)
		free(rt->argv[i]);
	free(rt->argv);
	free(rt);
	return -1;
}

int handler_bind(struct handler_registry *reg, const struct handler_opts *o,
		 struct err *err)
{
	const char *root = o && o->tmp_root && *o->tmp_root ? o->tmp_root : "/tmp";
	size_t i;
	int persistent = 0;

	if (reg->n && access(root, W_OK | X_OK) < 0)
		return err_set(err, ERR_INVALID, "cannot make handler working directories "
			       "under '%s': %s", root, strerror(errno));
	for (i = 0; i < reg->n; i++) {
		struct handler *h = &reg->items[i];

		if (h->kind == HANDLER_PLUGIN) {
			if (plugin_bind(h, o, err) < 0)
				return -1;
			continue;
		}
		if (h->kind == HANDLER_HTTP) {
			if (http_bind(h, o, err) < 0)
				return -1;
			continue;
		}
		if (h->kind != HANDLER_EXEC) {
			job_bind(h->type, run_not_built);
			continue;
		}
		if (bind_one(h, o, err) < 0)
			return -1;
		persistent |= h->persistent;
		job_bind(h->type, run_handler);
	}
	if (persistent)
		persist_start_reaper();
	return 0;
}

void handler_stop(void)
{
	size_t i;

	persist_stop_all();
	plugin_stop_all();
	/* jobs still running past the worker's shutdown grace */
	pthread_mutex_lock(&live_mu);
	for (i = 0; i < nlive; i++)
		kill(-live[i], SIGKILL);
	pthread_mutex_unlock(&live_mu);
}

/* The document a job is handed to an http or persistent handler as:
 * {id, type, queue, attempt, max_attempts, deadline, trace, payload}, and
 * for a job with depends_on `dependencies`: {id: result} (a flow's parent
 * reads its children's results) and, when some of them were left out
 * (null) to keep them within 16 MiB, `dependencies_truncated`: true.
 * Caller frees. */
char *handler_request_json(const struct job_run *run)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "id", json_string(run->id));
	json_object_set_new(o, "type", json_string(run->type));
	json_object_set_new(o, "queue", run->queue ? json_string(run->queue) : json_null());
	json_object_set_new(o, "attempt", json_integer(run->attempt));
	json_object_set_new(o, "max_attempts", json_integer(run->max_attempts));
	json_object_set_new(o, "deadline", run->timeout_s > 0
			    ? json_real(floor((double)clock_now_us() / 1e3 +
					      run->timeout_s * 1e3) / 1e3)
			    : json_null());
	json_object_set_new(o, "trace", run->trace && *run->trace ? json_string(run->trace)
								  : json_null());
	json_object_set_new(o, "payload", json_incref(run->payload));
	if (run->dependencies)
		json_object_set_new(o, "dependencies", json_incref(run->dependencies));
	if (run->dependencies_cut)
		json_object_set_new(o, "dependencies_truncated", json_true());
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		abort();
	return s;
}
