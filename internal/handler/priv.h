/* priv.h - what exec.c and persist.c share; internal to internal/handler. */
#ifndef WAKEQ_HANDLER_PRIV_H
#define WAKEQ_HANDLER_PRIV_H

#include "handler/handler.h"

#include "base/buf.h"
#include "job/job.h"

#include <limits.h>
#include <pthread.h>
#include <sys/types.h>

#define ERRTAIL_MAX 2048   /* bytes of stderr kept for the job's error */
#define PROGRESS_LINE_MAX 4096

/* The worker's state of one registry entry, made by handler_bind. */
struct handler_rt {
	const struct handler *h;
	const struct handler_opts *o;
	char exe[PATH_MAX];      /* what execve runs: resolved argv[0], /bin/sh */
	char **argv;             /* its argv (shell: sh -c CMD) */
	char **env;              /* "NAME=value" fixed at bind, NULL-terminated */
	int env_has_path;
	int set_user;            /* setuid to uid/gid in the child */
	uid_t uid;
	gid_t gid;
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* a concurrency place came free */
	int running;             /* jobs of this type running now */
	struct proc *idle;       /* persistent: processes waiting for a job */
	char *bearer;            /* http: the static bearer (bearer_env) */
	struct handler_rt *next; /* every bound entry, for handler_stop */
};

/* A running handler process (its own process group, pgid = pid). */
struct proc {
	struct proc *next;
	const struct handler *h;
	pid_t pid;
	int pidfd;               /* -1 when the kernel has no pidfd_open */
	int fd_in, fd_out, fd_err, fd_prog; /* parent ends; -1 when closed */
	int exited;              /* reaped: status is valid */
	int status;
	char workdir[PATH_MAX];
	int64_t idle_since;      /* persistent: monotonic µs */
	struct buf out;          /* stdout: the result, or a partial line */
	char errtail[ERRTAIL_MAX]; /* ring of the last stderr bytes */
	size_t errlen;           /* bytes in errtail (<= ERRTAIL_MAX) */
	size_t errpos;           /* next write position */
	struct buf errline;      /* partial stderr line, for debug logs */
};

/* Starts the entry's program: a fresh working directory, pipes, its own
 * process group, rlimits, the clean environment (per-job variables from
 * `run`, or NULL for a persistent process). Returns 0 with *p filled, or
 * -1 with err (*p closed): ERR_UNAVAILABLE when fork/pipes failed (worth
 * a retry), ERR_INVALID when the program cannot be executed. */
int proc_spawn(struct handler_rt *rt, const struct job_run *run, struct proc *p,
	       struct err *err);

/* Whether the leader has exited (not reaped: the group id stays ours).
 * When it has, kills what is left of its group and reaps it, so nothing
 * of a finished handler outlives it; sets p->exited/status. */
int proc_check_exit(struct proc *p);

/* Sends `sig` to the process group (nothing once it is reaped). */
void proc_signal(struct proc *p, int sig);

/* Kills the group with SIGKILL, reaps, closes the pipes and removes the
 * working directory. *p may be freed afterwards. */
void proc_destroy(struct proc *p);

/* Stops a process politely: closes stdin, waits up to `grace` for it to
 * exit, then SIGTERM to its group, waits `grace` again, then
 * proc_destroy. Blocks for at most twice the grace. */
void proc_stop(struct proc *p, double grace);

/* Reads what stderr has without blocking: keeps the tail, logs whole
 * lines at debug. Returns 0, or -1 at end of file (fd_err closed). */
int proc_read_stderr(struct proc *p);

/* The stderr tail as one readable line (" | " between lines), "" when
 * empty. */
void proc_errtail(const struct proc *p, char *out, size_t n);

/* Sets out's error for a process that ended with `status` (a wait
 * status): retryable for a configured exit code or a signal. Returns -1. */
int proc_fail_status(const struct handler *h, const struct proc *p, int status,
		     const char *when, struct job_outcome *out);

/* Gate of the entry's concurrency: waits for a place, polling the run's
 * cancel flag. Returns 0 (call gate_leave later), or -1 when cancelled. */
int gate_enter(struct handler_rt *rt, const struct job_run *run);
void gate_leave(struct handler_rt *rt);

/* Reports a progress line ({"progress":N,"stage":"s"}) from the handler.
 * Returns 1 when the line was progress, 0 otherwise. *last keeps the
 * last percent (a line with a stage only keeps it). */
int progress_line(const struct job_run *run, const char *line, size_t len, double *last);

/* http.c: binds an http entry (reads bearer_env). Returns 0, or -1 with
 * err naming the entry. */
int http_bind(struct handler *h, const struct handler_opts *o, struct err *err);

/* persist.c */
int persist_run(struct handler_rt *rt, const struct job_run *run,
		struct job_outcome *out);
void persist_start_reaper(void);
void persist_stop_all(void);

/* plugin.c: binds a `plugin` entry (loads it; job_bind), and shuts
 * down every plugin none of whose jobs is running (handler_stop). */
int plugin_bind(struct handler *h, const struct handler_opts *o, struct err *err);
void plugin_stop_all(void);

/* exec.c: every bound entry (handler_bind), read by persist.c's reaper. */
extern struct handler_rt *handler_rts;

/* exec.c: the JSON request of a job for http and persistent handlers
 * ({id, type, queue, attempt, max_attempts, deadline, trace, payload}),
 * compact, caller frees. */
char *handler_request_json(const struct job_run *run);

#endif
