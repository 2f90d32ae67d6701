/* handler.h - the user's own job types: the handler registry, and the
 * runners that execute them in the worker.
 *
 * A registry is read once at start-up from HANDLERS_FILE (a JSON document,
 * docs/HANDLERS.md) and from WAKEQ_HANDLER_<TYPE> environment variables
 * (one entry each), then handed to the job module (handler_registry_add_types):
 * from then on the API, the CLI and the worker check, list and run those
 * types as they do the built-in ones. The worker also calls handler_bind,
 * which binds a runner to every entry of a kind it can run:
 *
 *   exec        any program, once per job (exec.c): payload JSON on stdin,
 *               result JSON on stdout, progress lines on fd 3, stderr
 *               kept; own process group, rlimits, fresh working directory,
 *               clean environment
 *   exec with persistent: true
 *               one long-lived process per slot speaking newline-
 *               delimited JSON on stdin/stdout (persist.c)
 *   plugin      a shared object speaking the C ABI of wakeq_handler.h
 *               (installed as wakeq/handler.h), loaded at start-up and
 *               run in the worker's slot threads (plugin.c)
 *   http        the job POSTed to a URL, the 2xx JSON answer its result
 *               (http.c), with an OIDC identity token or a static bearer
 *
 *   struct handler_registry reg;
 *   handler_registry_init(&reg);
 *   if (handler_registry_load(&reg, getenv("HANDLERS_FILE"), environ, &err) < 0 ||
 *       handler_registry_add_types(&reg, &err) < 0)
 *           die(err.msg);            (one line: file, line, problem)
 *   handler_bind(&reg, &opts, &err); (worker only)
 *   ...
 *   handler_stop();                  (worker exit: persistent processes,
 *                                     process groups still alive)
 *   handler_registry_release(&reg);  (after job_unregister_all)
 *
 * Loading never blocks beyond reading the file; nothing here prints.
 */
#ifndef WAKEQ_HANDLER_H
#define WAKEQ_HANDLER_H

#include "base/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum handler_kind { HANDLER_EXEC, HANDLER_HTTP, HANDLER_PLUGIN };

#define HANDLER_TYPE_MAX 64               /* bytes of a type name */
#define HANDLER_MAX 256                   /* entries in one registry */
#define HANDLER_FILE_MAX (1 << 20)        /* bytes of HANDLERS_FILE */
#define HANDLER_RESULT_MAX_DEFAULT (1 << 20)
#define HANDLER_RESULT_MAX_MAX ((int64_t)64 << 20)
#define HANDLER_KILL_GRACE_DEFAULT 2.0    /* s from SIGTERM to SIGKILL */
#define HANDLER_OPEN_FILES_DEFAULT 1024
#define HANDLER_ENV_PREFIX "WAKEQ_HANDLER_"

/* Resource limits of a handler's processes (setrlimit in the child). */
struct handler_limits {
	double cpu_s;        /* RLIMIT_CPU; 0 = the job's timeout + 1 s
			      * (one-shot), none (persistent) */
	int64_t memory;      /* RLIMIT_AS bytes; 0 = unlimited */
	int64_t open_files;  /* RLIMIT_NOFILE */
	int64_t processes;   /* RLIMIT_NPROC: processes of the user it runs
			      * as (not enforced for root: see `user`);
			      * 0 = unlimited */
};

struct handler_rt; /* the worker's state of one entry (exec.c) */

/* One registry entry. Every string and array is owned by the registry. */
struct handler {
	char *type;             /* "tts.render": 1..64 of [A-Za-z0-9_.-] */
	enum handler_kind kind;
	char *origin;           /* where it was declared, for messages:
				 * "handlers.json:12", "WAKEQ_HANDLER_TTS" */
	char *description;      /* free text, NULL = none */
	/* every kind */
	double timeout_s;       /* default timeout of its jobs; 0 = JOB_TIMEOUT */
	int max_attempts;       /* default attempts; 0 = MAX_ATTEMPTS */
	int concurrency;        /* jobs of this type at once in one worker;
				 * 0 = as many as slots */
	int64_t result_max;     /* bytes of result JSON at most */
	json_t *schema;         /* payload schema (the subset of schema.c);
				 * NULL = any object */
	/* exec */
	char **argv;            /* NULL-terminated; with shell, the one
				 * command line in argv[0] */
	int shell;              /* run argv[0] with /bin/sh -c */
	int persistent;
	int *retry_codes;       /* exit codes that mean "try again" */
	size_t nretry_codes;
	char **env;             /* NULL-terminated "NAME" (passed through from
				 * the worker) or "NAME=value" */
	char *user;             /* run as this user (worker as root); NULL =
				 * the worker's own */
	double kill_grace_s;
	struct handler_limits limits;
	/* http (http.c) */
	char *url;              /* where each job is POSTed */
	char *oidc_audience;    /* send an OIDC identity token for it; NULL =
				 * none */
	char *bearer_env;       /* or a static bearer from this variable of
				 * the worker's environment; NULL = none */
	int allow_private;      /* url may be loopback, private, link-local */
	/* plugin */
	char *path;             /* the shared object (handler_plugin_locate) */
	/* set by handler_bind */
	struct handler_rt *rt;
};

struct handler_registry {
	struct handler *items;
	size_t n;
};

void handler_registry_init(struct handler_registry *reg);

/* Frees every entry and zeroes *reg. The job module must not hold the
 * entries any more (job_unregister_all first, or never registered).
 * Accepts NULL. */
void handler_registry_release(struct handler_registry *reg);

/* Parses a registry document `text` (`len` bytes, need not be
 * NUL-terminated): {"handlers": {"TYPE": {ENTRY}, ...}} as
 * docs/HANDLERS.md describes, adding its entries to `reg`. `origin` names
 * the document in messages (the file's path). Returns 0, or -1 with err
 * (ERR_INVALID) holding one line: "ORIGIN:LINE: handler 'TYPE': PROBLEM";
 * on -1 nothing was added. Never blocks. */
int handler_registry_parse(struct handler_registry *reg, const char *text,
			   size_t len, const char *origin, struct err *err);

/* Reads the file at `path` and parses it (handler_registry_parse).
 * Returns 0, or -1 with err (ERR_INVALID for a bad document, ERR_IO when
 * it cannot be read: "cannot read HANDLERS_FILE 'x': ..."). */
int handler_registry_load_file(struct handler_registry *reg, const char *path,
			       struct err *err);

/* Adds an entry for each WAKEQ_HANDLER_<NAME>=<JSON object> in `envp`
 * (NULL-terminated, as environ). The type is the object's "type" member,
 * else NAME lowercased with "__" read as ".": WAKEQ_HANDLER_TTS__RENDER is
 * "tts.render". An entry replaces a file entry of the same type (the
 * environment overrides the mounted file); two variables naming one type
 * are an error. Returns 0, or -1 with err naming the variable. */
int handler_registry_load_env(struct handler_registry *reg,
			      char *const *envp, struct err *err);

/* Both: the file when `path` is non-empty, then the environment. */
int handler_registry_load(struct handler_registry *reg, const char *path,
			  char *const *envp, struct err *err);

/* The entry for `type`, or NULL. */
const struct handler *handler_find(const struct handler_registry *reg,
				   const char *type);

/* Registers every entry with the job module (job_register): its payload
 * schema becomes the type's check, its timeout and max_attempts the
 * defaults of its jobs. The registry must outlive the registration.
 * Returns 0, or -1 with err naming the entry (a built-in name). */
int handler_registry_add_types(const struct handler_registry *reg,
			       struct err *err);

/* "exec", "http", "plugin". */
const char *handler_kind_name(enum handler_kind k);

/* The entry's settings as a JSON object (for `wakeq handlers --json`);
 * caller owns the reference. */
json_t *handler_to_json(const struct handler *h);

/* One line of settings for listings, into buf (truncated to n):
 * "exec python3 tts.py  timeout 120s  attempts 5  concurrency 2 ...". */
void handler_summary(const struct handler *h, char *buf, size_t n);

/* ---- payload schemas (schema.c) ------------------------------------------
 * A small subset of JSON Schema: type (one name or a list), properties,
 * required, additionalProperties (bool or schema), items, enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
 * minLength, maxLength (characters), minItems, maxItems; the annotations
 * title, description, default, examples, $schema, $id, $comment are
 * ignored. Any other keyword is refused when the registry is loaded, so
 * no rule is silently skipped. */

#define HANDLER_SCHEMA_DEPTH 32

/* Checks that `schema` uses the subset correctly. Returns 0, or -1 with
 * err naming the keyword and its path ("properties.voice.enum: expected
 * a non-empty array"). */
int handler_schema_compile(const json_t *schema, struct err *err);

/* Checks `value` against a schema that passed handler_schema_compile.
 * Returns 0, or -1 with err naming the field ("payload field 'voice' must
 * be one of ..."). */
int handler_schema_validate(const json_t *schema, const json_t *value,
			    struct err *err);

/* ---- running (the worker) ------------------------------------------------ */

struct handler_opts {
	const char *tmp_root;  /* working directories go under it ("" = /tmp) */
	double idle_s;         /* a persistent process idle this long is
				* stopped (the worker's IDLE_TIMEOUT) */
};

/* Prepares every entry to run in this process and binds its runner
 * (job_bind): resolves exec commands in PATH, users, the environment
 * passed through, http entries' bearer_env; plugins are loaded
 * (handler_plugin_open). Call once, after handler_registry_add_types and
 * before any job runs; `reg` and `o` stay borrowed until handler_stop.
 * Returns 0, or -1 with err naming the entry
 * ("handler 'x' (handlers.json:3): command 'python4' not found in PATH"). */
int handler_bind(struct handler_registry *reg, const struct handler_opts *o,
		 struct err *err);

/* Stops persistent processes (EOF on stdin, SIGTERM, then SIGKILL after
 * their grace), kills every process group of a job still running, and
 * shuts down plugins none of whose jobs is running. Blocks for at most the
 * longest kill grace. Call at worker exit. */
void handler_stop(void);

/* ---- C plugins (plugin.c) ------------------------------------------------
 * The loader of the ABI in handler/wakeq_handler.h, shared by the
 * registry's `plugin` entries and the worker's media plugin: one place
 * checks a plugin's ABI version and translates jobs and results. */

struct handler_plugin;
struct job_run;
struct job_outcome;

/* The file a plugin `name` names, into out (n bytes): a name with a slash
 * as given (a relative one made absolute against the working directory);
 * a bare file name beside this executable, else in ../lib/wakeq from it
 * (where `make install` puts plugins), else the first of those. Returns 0,
 * or -1 when out is too small. */
int handler_plugin_locate(const char *name, char *out, size_t n);

/* Loads the plugin at `path` (dlopen; a file already loaded is shared),
 * checks its ABI version, its entry points and that it runs `type`, then
 * calls its init for `type`. Returns the loaded plugin (caller owns:
 * handler_plugin_close), or NULL with err: ERR_NOTFOUND when the file
 * cannot be loaded ("cannot load plugin '...': ..."), ERR_INVALID
 * otherwise, one line each ("plugin '/x/p.so' was built for handler ABI
 * 2, this worker speaks ABI 1 (rebuild it against wakeq/handler.h)"). Call
 * from one thread at a time; blocks for as long as the plugin's init. */
struct handler_plugin *handler_plugin_open(const char *path, const char *type,
					   struct err *err);

/* Runs one job through the plugin: its payload as JSON text, progress and
 * cancel passed through, the result text parsed back (at most
 * `result_max` bytes, JSON) into out. Returns 0 or -1 as a job_run_fn
 * does; the plugin's error text is the job's error as written.
 * Thread-safe as far as the plugin is; blocks for the run. */
int handler_plugin_run(struct handler_plugin *p, const struct job_run *run,
		       int64_t result_max, struct job_outcome *out);

/* Calls the plugin's shutdown and frees `p` (the object stays loaded: a
 * plugin's code may still be referenced). No run may be in progress.
 * Accepts NULL. */
void handler_plugin_close(struct handler_plugin *p);

#endif
