/* cli.h - what the files of the wakeq CLI share: the command table, the
 * command line of one command, exit codes, Redis and the terminal.
 *
 * Every command declares its options in the table (main.c). The parser
 * takes only those: an option of another command is refused, naming the
 * commands it belongs to. `wakeq COMMAND --help`, the top-level help and
 * the shell completions are all printed from the same table.
 */
#ifndef WAKEQ_CLI_H
#define WAKEQ_CLI_H

#include "base/err.h"
#include "job/job.h"
#include "queue/queue.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: 0 ok, 1 operation failed (Redis down, ...), 2 usage,
 * 3 not found, 4 conflict; `status --watch` ends with the job's outcome:
 * 0 done, 5 failed, 6 cancelled. */
enum {
	EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOTFOUND, EXIT_CONFLICT,
	EXIT_JOB_FAILED, EXIT_JOB_CANCELLED
};

/* One option of a command. */
struct cli_opt {
	const char *name;     /* "queue" for --queue */
	const char *arg;      /* what its value is ("Q"); NULL for a flag */
	const char *help;     /* one line */
	const char *choices;  /* space-separated values offered by the shell
			       * completion; NULL = none */
};

/* choices: the job types a client may enqueue (job_type_names). */
#define CLI_CHOICES_TYPES "@types"

struct cli;

struct cli_cmd {
	const char *name;     /* "jobs", "dead retry" */
	const char *args;     /* positional arguments in the synopsis, "" */
	const char *arg_choices; /* values of the first one offered by the
				  * shell completion (as cli_opt.choices) */
	const char *summary;  /* one line, for the command list */
	const char *details;  /* more lines for COMMAND --help, or NULL */
	const struct cli_opt *const *opts; /* NULL-terminated */
	int min_args, max_args;
	int (*run)(struct cli *c);
};

#define CLI_OPTS_MAX 16
#define CLI_ARGS_MAX 16

/* A parsed command line of one command. */
struct cli {
	const struct cli_cmd *cmd;
	const char *val[CLI_OPTS_MAX]; /* by index in cmd->opts: the value,
					* "" for a flag given, NULL absent */
	const char *args[CLI_ARGS_MAX];
	int nargs;
};

/* The table (main.c), ended by an entry whose name is NULL. */
extern const struct cli_cmd cli_cmds[];

/* Parses argv[0..argc) (the words after the command's name) for `cmd`.
 * Returns 0 with c->cmd set: run it. Or, after printing the help (--help,
 * -h anywhere) or saying what is wrong, c->cmd NULL and the exit code
 * (EXIT_OK, EXIT_USAGE). */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli *c);

/* The value of --name, or NULL when it was not given. Asking for an
 * option the command does not declare is a programmer error. */
const char *cli_get(const struct cli *c, const char *name);

/* Prints the help of a command / of the CLI to `out`. */
void cli_help_cmd(FILE *out, const struct cli_cmd *cmd);
void cli_help(FILE *out);

/* Prints "wakeq: MESSAGE" and the way to the command's help on stderr;
 * returns EXIT_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints e's message on stderr and returns the exit code of its code. */
int cli_exit_for(const struct err *e);

/* Parses the value of --name as an integer or seconds within bounds;
 * absent leaves *out as it is. Returns 0, or EXIT_USAGE once said. */
int cli_int(const struct cli *c, const char *name, int64_t min, int64_t max,
	    int64_t *out);
int cli_seconds(const struct cli *c, const char *name, double min, double max,
		double *out);

/* Prints `doc` as json_dumps(doc, flags) makes it, and a newline, on
 * stdout; drops the reference (takes ownership). */
void cli_print_json(json_t *doc, size_t flags);

/* Sets `field` of object `b` to the string of --opt, when given. */
void cli_copy_opt(const struct cli *c, const char *opt, json_t *b, const char *field);

/* A job of `type` as POST /v1/jobs and a schedule's "job" take it, from
 * the options every job has: --payload (a JSON object), --priority,
 * --max-attempts, --timeout, --group, --unique-key. Returns it (caller
 * owns), or NULL once a usage error was said. */
json_t *cli_job_request(struct cli *c, const char *type);

/* ---- Redis ------------------------------------------------------------- */

/* REDIS_URL, parsed once; exits 2 on a bad one. */
const struct queue_opts *cli_queue_opts(void);

/* Connects to Redis or exits 1 saying why. Caller frees. */
struct queue *cli_connect(void);

/* --queue when given, else the first of QUEUES, else "default". */
const char *cli_queue(const struct cli *c);

/* The queues a command looks at: --queue when given, else every queue in
 * Redis (queue_discover), sorted by name. Returns their count with
 * *names set (the caller frees each and the array), or -1 with e set. */
int cli_queue_names(const struct cli *c, struct queue *q, char ***names, struct err *e);

/* Wakes a worker when none is live on `queue`, after new due work was put
 * there: with WAKE_URL (and WAKE_TOKEN) through wake_once, holding the
 * request a moment only. `live` is what the enqueue reported (-1: not
 * known, ask Redis). Says on stderr what it did. Never fails the
 * command: without a wake the work waits for the next one (cron, API). */
void cli_wake_if_idle(struct queue *q, const char *queue, int live);

/* ---- the API (enqueue.c) ---------------------------------------------------- */

/* WAKEQ_API_URL, with *len its length without trailing slashes; NULL when
 * it is not set (or empty): the commands that create jobs then go
 * straight into Redis. */
const char *cli_api_url(size_t *len);

/* POSTs `body` (JSON text) to WAKEQ_API_URL + `path` ("/v1/jobs") with
 * the bearer token WAKEQ_API_TOKEN, else the first of API_TOKEN. Returns
 * EXIT_OK with *answer the JSON of its 2xx answer (caller owns; NULL when
 * it was not JSON), or an exit code once what went wrong (the API's
 * status, code and message) was said on stderr. Blocks (30 s at most). */
int cli_api_post(const char *path, const char *body, json_t **answer);

/* ---- the terminal --------------------------------------------------------- */

/* Whether stdout is a terminal (tables, bars, redraws). */
int term_tty(void);

/* Columns of the terminal on stdout (COLUMNS, else the tty, else 80). */
int term_width(void);

/* A progress bar of `width` cells for 0..100 into out (width + 3 bytes):
 * "[=====>    ]". */
void term_bar(char *out, int width, double percent);

/* "3s", "4m", "2h", "5d": how long ago `us` (epoch µs) was; "-" for 0. */
void term_age(char *out, size_t len, int64_t us);

/* A table printed with columns as wide as their widest cell; the last
 * column is cut to the terminal's width on a terminal. */
struct term_table {
	int ncols;
	const char *const *heads;
	char **cells;       /* rows × ncols, owned */
	size_t nrows, cap;
};

void term_table_init(struct term_table *t, const char *const *heads, int ncols);
/* Adds a row of ncols cells (copied). */
void term_table_row(struct term_table *t, const char *const *cells);
void term_table_print(const struct term_table *t, FILE *out);
void term_table_release(struct term_table *t);

/* Installs SIGINT/SIGTERM handlers that only set a flag (no restart of
 * system calls), for the loops of --watch. */
void term_catch_signals(void);
int term_interrupted(void);

/* ---- the commands ---------------------------------------------------------- */

int cmd_enqueue(struct cli *c);
int cmd_status(struct cli *c);
int cmd_cancel(struct cli *c);
int cmd_batch(struct cli *c);
int cmd_batch_create(struct cli *c);
int cmd_flow(struct cli *c);
int cmd_jobs(struct cli *c);
int cmd_stats(struct cli *c);
int cmd_dead_list(struct cli *c);
int cmd_dead_retry(struct cli *c);
int cmd_dead_purge(struct cli *c);
int cmd_drain(struct cli *c);
int cmd_wake(struct cli *c);
int cmd_reconcile(struct cli *c);
int cmd_completion(struct cli *c);
int cmd_handlers(struct cli *c);
int cmd_pause(struct cli *c);
int cmd_resume(struct cli *c);
int cmd_settings(struct cli *c);
int cmd_schedules_list(struct cli *c);
int cmd_schedules_get(struct cli *c);
int cmd_schedules_add(struct cli *c);
int cmd_schedules_delete(struct cli *c);
int cmd_schedules_pause(struct cli *c);
int cmd_schedules_resume(struct cli *c);

/* handlers.c: loads HANDLERS_FILE and WAKEQ_HANDLER_* and registers their
 * types for the process. Returns 0, or -1 with err naming the entry. */
int cli_handlers_load(struct err *err);
void cli_handlers_release(void);

/* Prints jobs as a table (terminal) or a JSON array; `dead` picks the
 * columns of the dead-letter list. */
void cli_print_jobs(const struct cli *c, const struct job_info *jobs, size_t n,
		    int dead);

#endif
