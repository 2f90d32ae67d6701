/* ops.c - operations on the system rather than on jobs: drain, wake,
 * reconcile. */
#include "cli.h"

#include "reconcile/reconcile.h"
#include "store/store.h"
#include "wake/wake.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* wakeq drain: the worker binary does the work (it links the handlers);
 * run it beside this one, or from PATH, in once mode. */
int cmd_drain(struct cli *c)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (cli_get(c, "queue"))
		setenv("QUEUES", cli_get(c, "queue"), 1);
	setenv("ONCE", "true", 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/wakeq-worker", self);
			execl(path, "wakeq-worker", (char *)NULL);
		}
	}
	execlp("wakeq-worker", "wakeq-worker", (char *)NULL);
	fprintf(stderr, "wakeq: cannot run wakeq-worker: not beside wakeq nor in PATH\n");
	return EXIT_FAIL;
}

/* wakeq wake: the worker holds /wake open until its drain ends and then
 * answers the drain summary; a wake still held after --timeout was sent
 * and is being served, so it counts as woken too (wake_once). */
int cmd_wake(struct cli *c)
{
	const char *url = c->args[0];
	const char *token = cli_get(c, "token") ? cli_get(c, "token") : getenv("WAKE_TOKEN");
	double timeout = 3600;
	char *body = NULL;
	struct err e;
	int status, rc;

	if ((rc = cli_seconds(c, "timeout", 0.001, 86400, &timeout)) != 0)
		return rc;
	if (wake_once(url, token, timeout, &status, &body, &e) < 0)
		return cli_exit_for(&e);
	if (body && *body)
		printf("%s\n", body); /* the drain summary, or the 202 of ?wait=0 */
	else if (!status)
		printf("woken: '%s' still draining after %g s\n", url, timeout);
	else
		printf("woken: '%s' answered HTTP %d\n", url, status);
	free(body);
	return EXIT_OK;
}

int cmd_reconcile(struct cli *c)
{
	const char *url = getenv("DATABASE_URL");
	struct reconcile_stats st;
	struct store *s;
	struct queue *q;
	struct err e;
	double min_age = 10;
	int rc;

	if ((rc = cli_seconds(c, "min-age", 0.001, 31536000, &min_age)) != 0)
		return rc;
	if (!url || !*url)
		return cli_usage_error(c, "reconcile needs DATABASE_URL");
	s = store_open(url, 1, &e);
	if (!s)
		return cli_exit_for(&e);
	q = cli_connect();
	memset(&st, 0, sizeof(st));
	if (reconcile_run(q, s, min_age, &st, &e) < 0)
		rc = cli_exit_for(&e);
	else
		printf("scanned %lld, requeued %lld, finals copied %lld, errors %lld\n",
		       (long long)st.scanned, (long long)st.requeued, (long long)st.finals,
		       (long long)st.errors);
	queue_free(q);
	store_free(s);
	return rc ? rc : st.errors ? EXIT_FAIL : EXIT_OK;
}
