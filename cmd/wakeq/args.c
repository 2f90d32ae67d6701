/* args.c - a command line against the command table: options, help,
 * usage errors; and what every command shares (Redis, the wake). */
#include "cli.h"

#include "base/mem.h"
#include "base/parse.h"
#include "wake/wake.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ----------------------------------------------------------- */

static int nopts(const struct cli_cmd *cmd)
{
	int n = 0;

	while (cmd->opts[n])
		n++;
	return n;
}

static int find_opt(const struct cli_cmd *cmd, const char *name, size_t len)
{
	int k;

	for (k = 0; cmd->opts[k]; k++)
		if (strlen(cmd->opts[k]->name) == len && !memcmp(cmd->opts[k]->name, name, len))
			return k;
	return -1;
}

/* "--json" is not an option of enqueue: say whose option it is. */
static int unknown_opt(struct cli *c, const char *name, size_t len)
{
	const struct cli_cmd *k;
	char owners[256] = "";
	size_t used = 0;

	for (k = cli_cmds; k->name; k++) {
		if (k == c->cmd || find_opt(k, name, len) < 0)
			continue;
		used += (size_t)snprintf(owners + used, used < sizeof(owners) ? sizeof(owners) - used : 0,
					 "%s%s", used ? ", " : "", k->name);
		if (used >= sizeof(owners))
			used = sizeof(owners) - 1;
	}
	if (*owners)
		return cli_usage_error(c, "option '--%.*s' is not an option of '%s' (it is one of: %s)",
				       (int)len, name, c->cmd->name, owners);
	return cli_usage_error(c, "unknown option '--%.*s'", (int)len, name);
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli *c)
{
	int i, k, only_args = 0, rc;

	memset(c, 0, sizeof(*c));
	c->cmd = cmd;
	assert(nopts(cmd) <= CLI_OPTS_MAX);
	for (i = 0; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cli_help_cmd(stdout, cmd);
			c->cmd = NULL;
			return EXIT_OK;
		}
	}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		size_t len;

		if (only_args || a[0] != '-' || !a[1]) {
			if (c->nargs >= cmd->max_args || c->nargs >= CLI_ARGS_MAX) {
				rc = cmd->max_args ?
					cli_usage_error(c, "%s takes %s (got also '%s')", cmd->name,
							cmd->args, a) :
					cli_usage_error(c, "%s takes no argument (got '%s')", cmd->name, a);
				goto fail;
			}
			c->args[c->nargs++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_args = 1;
			continue;
		}
		if (a[1] != '-') {
			rc = cli_usage_error(c, "unknown option '%s' (options are spelt --name)", a);
			goto fail;
		}
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		k = find_opt(cmd, name, len);
		if (k < 0) {
			rc = unknown_opt(c, name, len);
			goto fail;
		}
		if (!cmd->opts[k]->arg) {
			if (eq) {
				rc = cli_usage_error(c, "option '--%s' takes no value", cmd->opts[k]->name);
				goto fail;
			}
			c->val[k] = "";
		} else if (eq) {
			c->val[k] = eq + 1;
		} else if (i + 1 < argc) {
			c->val[k] = argv[++i];
		} else {
			rc = cli_usage_error(c, "option '--%s' needs a value (%s)", cmd->opts[k]->name,
					     cmd->opts[k]->arg);
			goto fail;
		}
	}
	if (c->nargs < cmd->min_args) {
		rc = cli_usage_error(c, "%s needs %s", cmd->name, cmd->args);
		goto fail;
	}
	return 0;
fail:
	c->cmd = NULL;
	return rc;
}

const char *cli_get(const struct cli *c, const char *name)
{
	int k = find_opt(c->cmd, name, strlen(name));

	assert(k >= 0 && "an option the command does not declare");
	return c->val[k];
}

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wakeq: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see wakeq %s --help)\n", c->cmd ? c->cmd->name : "");
	return EXIT_USAGE;
}

int cli_exit_for(const struct err *e)
{
	fprintf(stderr, "wakeq: %s\n", e->msg);
	switch (e->code) {
	case ERR_NOTFOUND: return EXIT_NOTFOUND;
	case ERR_CONFLICT: return EXIT_CONFLICT;
	case ERR_INVALID: return EXIT_USAGE;
	default: return EXIT_FAIL;
	}
}

int cli_int(const struct cli *c, const char *name, int64_t min, int64_t max, int64_t *out)
{
	const char *v = cli_get(c, name);

	if (v && parse_int64(v, min, max, out) < 0)
		return cli_usage_error(c, "bad --%s '%s': expected an integer from %lld to %lld",
				       name, v, (long long)min, (long long)max);
	return 0;
}

int cli_seconds(const struct cli *c, const char *name, double min, double max, double *out)
{
	const char *v = cli_get(c, name);

	if (v && parse_seconds(v, min, max, out) < 0)
		return cli_usage_error(c, "bad --%s '%s': expected seconds from %g to %g", name, v,
				       min, max);
	return 0;
}

/* ---- help ---------------------------------------------------------------- */

static void synopsis(FILE *out, const struct cli_cmd *cmd)
{
	fprintf(out, "wakeq %s%s%s%s", cmd->name, *cmd->args ? " " : "", cmd->args,
		cmd->opts[0] ? " [options]" : "");
}

void cli_help_cmd(FILE *out, const struct cli_cmd *cmd)
{
	int k;

	fprintf(out, "usage: ");
	synopsis(out, cmd);
	fprintf(out, "\n\n%c%s.\n", cmd->summary[0] >= 'a' && cmd->summary[0] <= 'z' ?
		cmd->summary[0] - 'a' + 'A' : cmd->summary[0], cmd->summary + 1);
	if (cmd->details)
		fprintf(out, "%s\n", cmd->details);
	fprintf(out, "\nOptions:\n");
	for (k = 0; cmd->opts[k]; k++) {
		const struct cli_opt *o = cmd->opts[k];
		char left[48];

		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(out, "  %-22s %s\n", left, o->help);
	}
	fprintf(out, "  %-22s %s\n", "-h, --help", "this help");
}

void cli_help(FILE *out)
{
	const struct cli_cmd *k;

	fprintf(out,
		"usage: wakeq COMMAND [ARGS] [options]\n"
		"       wakeq COMMAND --help     the options of a command\n"
		"       wakeq --version\n"
		"\n"
		"The operator CLI of wakeq, over Redis (and the API for enqueue).\n"
		"\n"
		"Commands:\n");
	for (k = cli_cmds; k->name; k++) {
		char left[40];

		snprintf(left, sizeof(left), "%s%s%s", k->name, *k->args ? " " : "", k->args);
		fprintf(out, "  %-20s %s\n", left, k->summary);
	}
	fprintf(out,
		"\n"
		"Environment: REDIS_URL (redis://127.0.0.1:6379), QUEUES (default),\n"
		"WAKEQ_API_URL and WAKEQ_API_TOKEN or API_TOKEN (enqueue through the\n"
		"API), WAKE_URL and WAKE_TOKEN (wake a worker after a direct enqueue),\n"
		"DATABASE_URL (reconcile), RESULT_TTL (86400: seconds a cancelled\n"
		"job's record stays in Redis, as the worker's).\n"
		"Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 conflict;\n"
		"status --watch: 0 done, 5 failed, 6 cancelled.\n");
}

/* ---- Redis and the wake ------------------------------------------------- */

const struct queue_opts *cli_queue_opts(void)
{
	static struct queue_opts o; /* REDIS_URL, parsed on first use */
	static int parsed;
	struct err e;

	if (!parsed) {
		if (queue_opts_init(&o, getenv("REDIS_URL"), &e) < 0) {
			fprintf(stderr, "wakeq: bad REDIS_URL: %s\n", e.msg);
			exit(EXIT_USAGE);
		}
		o.connect_timeout_s = 5;
		parsed = 1;
	}
	return &o;
}

struct queue *cli_connect(void)
{
	struct queue *q;
	struct err e;

	q = queue_connect(cli_queue_opts(), &e);
	if (!q) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		exit(EXIT_FAIL);
	}
	return q;
}

void cli_print_json(json_t *doc, size_t flags)
{
	char *text = json_dumps(doc, flags);

	printf("%s\n", text ? text : "null");
	free(text);
	json_decref(doc);
}

void cli_copy_opt(const struct cli *c, const char *opt, json_t *b, const char *field)
{
	if (cli_get(c, opt))
		json_object_set_new(b, field, json_string(cli_get(c, opt)));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_queue_names(const struct cli *c, struct queue *q, char ***names, struct err *e)
{
	int n;

	if (cli_get(c, "queue")) {
		*names = xcalloc(1, sizeof(**names));
		(*names)[0] = xstrdup(cli_get(c, "queue"));
		return 1;
	}
	n = queue_discover(q, names, e);
	if (n > 0)
		qsort(*names, (size_t)n, sizeof(**names), by_name);
	return n;
}

const char *cli_queue(const struct cli *c)
{
	static char first[QUEUE_NAME_MAX + 1];
	const char *given = cli_get(c, "queue"), *env = getenv("QUEUES");

	if (given)
		return given;
	if (!env || !*env)
		return "default";
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(env, ","), env);
	return first;
}

/* How long the CLI holds a wake: enough for the worker to receive it (a
 * held wake counts once sent, wake.h), not the drain: the CLI is not a
 * caller that lives as long as the drain. */
#define CLI_WAKE_HOLD_S 1.0

void cli_wake_if_idle(struct queue *q, const char *queue, int live)
{
	const char *url = getenv("WAKE_URL");
	struct err e;
	int status;

	if (live < 0)
		live = queue_live_workers(q, queue, NULL);
	if (live > 0) {
		fprintf(stderr, "wakeq: a worker is live on '%s': no wake needed\n", queue);
		return;
	}
	if (live < 0) {
		fprintf(stderr, "wakeq: cannot tell whether a worker is live on '%s': no wake sent\n",
			queue);
		return;
	}
	if (!url || !*url) {
		fprintf(stderr,
			"wakeq: no live worker on '%s' and WAKE_URL is not set: the work waits for "
			"the next wake (cron, or the API's)\n", queue);
		return;
	}
	if (wake_once(url, getenv("WAKE_TOKEN"), CLI_WAKE_HOLD_S, &status, NULL, &e) < 0) {
		fprintf(stderr, "wakeq: no live worker on '%s', and %s: the work waits for the next "
			"wake\n", queue, e.msg);
		return;
	}
	if (status)
		fprintf(stderr, "wakeq: no live worker on '%s': woke '%s' (HTTP %d)\n", queue, url,
			status);
	else
		fprintf(stderr, "wakeq: no live worker on '%s': woke '%s' (held: it is draining)\n",
			queue, url);
}
