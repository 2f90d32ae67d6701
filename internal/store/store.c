/* store.c - the connection pool, migrations and the statements on `jobs`.
 *
 * Every statement is static SQL text run with PQexecParams; values travel
 * only as parameters (text format, NULL for SQL NULL). Times cross the
 * boundary as bigint microseconds through the wakeq_us()/wakeq_ts() SQL
 * functions of the first migration, so no client-side time parsing exists.
 */
#include "store/store.h"
#include "store/priv.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The advisory lock that serialises store_migrate across processes:
 * "wakeq_mg" in ASCII, a constant no other code is likely to pick. */
#define MIGRATE_LOCK "8602506062474882407"

struct store_conn {
	PGconn *pg;           /* NULL until first used */
	int busy;             /* handed to a caller (under store.lock) */
	int64_t next_try_us;  /* monotonic; no connect attempt before this */
	char last_err[256];   /* why the last connect failed */
};

struct store {
	char *url;
	char *secret;         /* the URL's password, redacted from messages */
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int64_t timeout_us;   /* store_set_timeout; 0 = wait for the answer */
	_Atomic int64_t silent_until_us; /* monotonic: with a timeout, a
			       * statement or connect went unanswered; until
			       * then every call fails at once (silent()) */
	int nconns;
	struct store_conn conns[];
};

/* ---- messages ----------------------------------------------------------- */

/* Copies a libpq message into `out` on one line (libpq ends its messages
 * with a newline and may use several lines) with the password replaced by
 * "***" wherever it appears. */
static void clean_msg(const struct store *s, const char *in, char *out,
		      size_t cap)
{
	size_t n = 0, slen = s && s->secret ? strlen(s->secret) : 0;
	char c;

	if (!in)
		in = "";
	while (*in && n + 1 < cap) {
		if (slen && strncmp(in, s->secret, slen) == 0) {
			const char *r = "***";

			while (*r && n + 1 < cap)
				out[n++] = *r++;
			in += slen;
			continue;
		}
		c = (*in == '\n' || *in == '\t') ? ' ' : *in;
		in++;
		if (c == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* The password of a URL ("scheme://user:PASS@host/..."), or NULL. Done by
 * hand because it must also work on a URL that libpq refuses to parse. */
static char *url_password(const char *url)
{
	const char *p = strstr(url, "://"), *end, *at, *colon;

	if (!p)
		goto kv;
	p += 3;
	end = p + strcspn(p, "/?");
	at = NULL;
	for (colon = p; colon < end; colon++)
		if (*colon == '@')
			at = colon;
	if (!at)
		return NULL;
	colon = memchr(p, ':', (size_t)(at - p));
	if (!colon || colon + 1 == at)
		return NULL;
	return xstrndup(colon + 1, (size_t)(at - colon - 1));
kv:
	/* "key=value" form: password=VALUE up to a space. */
	p = strstr(url, "password=");
	if (!p)
		return NULL;
	p += strlen("password=");
	if (*p == '\'')
		p++;
	end = p + strcspn(p, " '");
	return end > p ? xstrndup(p, (size_t)(end - p)) : NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* Checks that every port in a comma-separated list is a number in
 * 1..65535 (libpq only finds out when connecting). */
static int ports_valid(const char *v)
{
	while (*v) {
		long port = 0;
		int digits = 0;

		while (*v >= '0' && *v <= '9' && digits < 6) {
			port = port * 10 + (*v++ - '0');
			digits++;
		}
		if (digits == 0 || port < 1 || port > 65535)
			return 0;
		if (*v == ',')
			v++;
		else if (*v)
			return 0;
	}
	return 1;
}

struct store *store_open(const char *url, int conns, struct err *err)
{
	struct store *s = NULL;
	PQconninfoOption *opts = NULL, *o;
	char *perr = NULL, *secret = NULL;
	char msg[ERR_MSG_MAX - 64];
	struct store tmp = { 0 };

	if (!url || !*url) {
		err_set(err, ERR_INVALID, "invalid database url: empty");
		goto out;
	}
	if (conns < 0 || conns > STORE_MAX_CONNS) {
		err_set(err, ERR_INVALID, "invalid pool size %d: expected 0 to %d",
			conns, STORE_MAX_CONNS);
		goto out;
	}
	/* libpq is loaded here, by the first store opened (pq.c) */
	if (store_pq_load(err) < 0)
		goto out;
	secret = url_password(url);
	tmp.secret = secret;
	if (strncmp(url, "postgres://", 11) != 0 &&
	    strncmp(url, "postgresql://", 13) != 0 && !strchr(url, '=')) {
		err_set(err, ERR_INVALID, "invalid database url: expected "
			"postgres://user@host:port/dbname or key=value pairs");
		goto out;
	}
	opts = PQconninfoParse(url, &perr);
	if (!opts) {
		clean_msg(&tmp, perr ? perr : "out of memory", msg, sizeof(msg));
		err_set(err, ERR_INVALID, "invalid database url: %s", msg);
		goto out;
	}
	for (o = opts; o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (strcmp(o->keyword, "port") == 0 && !ports_valid(o->val)) {
			clean_msg(&tmp, o->val, msg, 64);
			err_set(err, ERR_INVALID,
				"invalid database url: bad port '%s'", msg);
			goto out;
		}
	}
	if (conns == 0)
		conns = STORE_DEFAULT_CONNS;
	s = xcalloc(1, sizeof(*s) + (size_t)conns * sizeof(s->conns[0]));
	s->url = xstrdup(url);
	s->secret = secret;
	secret = NULL;
	s->nconns = conns;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->freed, NULL);
out:
	if (opts)
		PQconninfoFree(opts);
	if (perr)
		PQfreemem(perr);
	free(secret);
	return s;
}

void store_free(struct store *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].pg)
			PQfinish(s->conns[i].pg);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->freed);
	free(s->url);
	free(s->secret);
	free(s);
}

void store_set_timeout(struct store *s, double seconds)
{
	s->timeout_us = seconds > 0 ? (int64_t)(seconds * 1e6) : 0;
}

/* ---- the pool ----------------------------------------------------------- */

/* With a timeout, a server that let one call down is not asked again by
 * any connection for STORE_RETRY_MS: the callers fail at once instead of
 * each waiting out its own deadline on another pooled connection (the
 * requests the API gathered behind the first one then waited two
 * deadlines and more). Past that, the next call is the probe. */
static void silence(struct store *s)
{
	if (s->timeout_us)
		atomic_store(&s->silent_until_us,
			     clock_mono_us() + (int64_t)STORE_RETRY_MS * 1000);
}

static int silent(struct store *s, struct err *err)
{
	int64_t left;

	if (!s->timeout_us)
		return 0;
	left = atomic_load(&s->silent_until_us) - clock_mono_us();
	if (left <= 0)
		return 0;
	return err_set(err, ERR_UNAVAILABLE,
		       "postgres unavailable: it let a call down; next try in %lld ms",
		       (long long)(left + 999) / 1000);
}

/* Takes a free connection, preferring one already open so that the pool
 * only grows under real concurrency. Waits while all are busy. */
static struct store_conn *conn_get(struct store *s)
{
	struct store_conn *c = NULL;
	int i;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		for (i = 0; i < s->nconns; i++) {
			struct store_conn *x = &s->conns[i];

			if (x->busy)
				continue;
			if (x->pg && PQstatus(x->pg) == CONNECTION_OK) {
				c = x;
				break;
			}
			if (!c)
				c = x;
		}
		if (c)
			break;
		pthread_cond_wait(&s->freed, &s->lock);
	}
	c->busy = 1;
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void conn_put(struct store *s, struct store_conn *c)
{
	pthread_mutex_lock(&s->lock);
	c->busy = 0;
	pthread_cond_signal(&s->freed);
	pthread_mutex_unlock(&s->lock);
}

static void drop_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Makes sure `c` is connected: opens it the first time, resets it when
 * broken. After a failed attempt the next one waits STORE_RETRY_MS (an
 * outage then costs callers one quick ERR_UNAVAILABLE each, not a connect
 * timeout each); `force` skips that wait, for a connection that just
 * broke under a query. */
static int conn_ready(struct store *s, struct store_conn *c, int force,
		      struct err *err)
{
	/* Ours go first so that the URL's own settings override them. */
	static const char *const keys[] = {
		"connect_timeout", "application_name", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"options", "dbname", NULL
	};
	char timeout[16];
	/* keepalives find a dead peer on an idle connection in ~60 s;
	 * tcp_user_timeout (ms) one that stops acknowledging what we send */
	/* statement_timeout: no statement waits on a stalled or locked
	 * server for ever (the API's shutdown joins threads that may be in
	 * one); generous, since migrations wait on an advisory lock. */
	const char *vals[] = { timeout, "wakeq", "30", "10", "3", "30000",
			       "-c statement_timeout=30000", NULL, NULL };
	int64_t now;

	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	now = clock_mono_us();
	if (!force && c->next_try_us && now < c->next_try_us)
		return err_set(err, ERR_UNAVAILABLE,
			       "postgres unavailable: %s", c->last_err);
	if (c->pg) {
		PQreset(c->pg);
	} else {
		/* with a deadline, connecting takes no longer than a statement
		 * may (libpq's least is 2 s) */
		int secs = STORE_CONNECT_TIMEOUT_S;

		if (s->timeout_us)
			secs = (int)((s->timeout_us + 999999) / 1000000);
		if (secs > STORE_CONNECT_TIMEOUT_S)
			secs = STORE_CONNECT_TIMEOUT_S;
		snprintf(timeout, sizeof(timeout), "%d", secs);
		vals[7] = s->url;
		c->pg = PQconnectdbParams(keys, vals, 1);
		if (!c->pg)
			abort(); /* libpq's out of memory: as xmalloc does */
		/* libpq prints NOTICEs to stderr by default; internal/ never
		 * prints. The processor stays with the PGconn across PQreset. */
		PQsetNoticeProcessor(c->pg, drop_notice, NULL);
	}
	if (PQstatus(c->pg) == CONNECTION_OK) {
		c->next_try_us = 0;
		c->last_err[0] = '\0';
		return 0;
	}
	clean_msg(s, PQerrorMessage(c->pg), c->last_err, sizeof(c->last_err));
	c->next_try_us = clock_mono_us() + (int64_t)STORE_RETRY_MS * 1000;
	silence(s);
	return err_set(err, ERR_UNAVAILABLE, "cannot connect to postgres: %s",
		       c->last_err);
}

/* Turns a failed result into an error code and message. SQLSTATE classes:
 * 08 connection, 57P0x shutdown/restart, 53 resources, 40 serialisation
 * and deadlock are worth a retry; 22 (bad uuid, bad json) and 23 are the
 * caller's input. */
static int result_err(struct store *s, struct store_conn *c, PGresult *res,
		      struct err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			       : NULL;
	char msg[ERR_MSG_MAX - 32];
	enum err_code code = ERR_INTERNAL;

	clean_msg(s, prim ? prim : PQerrorMessage(c->pg), msg, sizeof(msg));
	if (PQstatus(c->pg) != CONNECTION_OK || !state)
		code = ERR_UNAVAILABLE;
	else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
		 strncmp(state, "53", 2) == 0 || strncmp(state, "40", 2) == 0)
		code = ERR_UNAVAILABLE;
	else if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
		code = ERR_INVALID;
	if (code == ERR_UNAVAILABLE)
		return err_set(err, code, "postgres unavailable: %s", msg);
	return err_set(err, code, "postgres refused: %s", msg);
}

/* Waits until the socket of `pg` is ready for `events` or the monotonic
 * `deadline` (us) passes. Returns 1 ready, 0 deadline passed, -1 error. */
static int wait_socket(PGconn *pg, short events, int64_t deadline)
{
	struct pollfd p;

	p.fd = PQsocket(pg);
	p.events = events;
	for (;;) {
		int64_t left = deadline - clock_mono_us();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, 1, (int)((left + 999) / 1000));
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Closes a connection left in an unknown state (a statement may still be
 * in flight on it): the next call reconnects, after STORE_RETRY_MS. */
static void conn_drop(struct store_conn *c, const char *why)
{
	PQfinish(c->pg);
	c->pg = NULL;
	snprintf(c->last_err, sizeof(c->last_err), "%s", why);
	c->next_try_us = clock_mono_us() + (int64_t)STORE_RETRY_MS * 1000;
}

/* PQexecParams with the store's deadline: the statement is sent and its
 * result awaited in non-blocking mode, so a server that stops answering
 * (a frozen process, a network that drops packets without a reset) costs
 * the caller s->timeout_us, not the whole outage. Past the deadline the
 * connection is dropped and NULL is returned with *late set. The
 * statement may still run when a frozen server wakes: the inserts of new
 * jobs carry a guard that makes such a late run write nothing (GUARD_SQL).
 * Otherwise returns the last result, or NULL when the connection broke
 * (PQerrorMessage says why). */
static PGresult *exec_deadline(struct store *s, struct store_conn *c,
			       const char *sql, int n, const char *const *vals,
			       int *late)
{
	int64_t deadline = clock_mono_us() + s->timeout_us;
	PGconn *pg = c->pg;
	PGresult *res = NULL, *r;
	char why[64];

	*late = 0;
	if (PQsetnonblocking(pg, 1) != 0 ||
	    !PQsendQueryParams(pg, sql, n, NULL, vals, NULL, NULL, 0))
		goto out;
	for (;;) {
		int f = PQflush(pg), w;

		if (f < 0)
			goto out;
		if (f == 0 && !PQisBusy(pg)) {
			r = PQgetResult(pg);
			if (!r)
				break; /* every result of the statement is in */
			PQclear(res);
			res = r;
			continue;
		}
		w = wait_socket(pg, f ? POLLIN | POLLOUT : POLLIN, deadline);
		if (w <= 0) {
			if (w == 0)
				snprintf(why, sizeof(why), "no answer within %.3g s",
					 (double)s->timeout_us / 1e6);
			else
				snprintf(why, sizeof(why), "poll: %s", strerror(errno));
			PQclear(res);
			conn_drop(c, why);
			silence(s);
			*late = 1;
			return NULL;
		}
		if (!PQconsumeInput(pg))
			goto out; /* broken: PQerrorMessage says why */
	}
out:
	PQsetnonblocking(pg, 0);
	return res;
}

/* Runs one statement on `c`. When the connection turns out to be broken
 * (Postgres restarted since the last use) and `retry` is set, resets it
 * and runs the statement once more: callers only pass `retry` for
 * statements that are harmless to run twice. Past the store's deadline
 * (store_set_timeout) it fails with ERR_UNAVAILABLE at once, no retry.
 * Returns the result (caller PQclear's) or NULL with err. */
static PGresult *run(struct store *s, struct store_conn *c, const char *sql,
		     int n, const char *const *vals, int retry, struct err *err)
{
	PGresult *res = NULL;
	int attempt;

	if (silent(s, err) < 0)
		return NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		ExecStatusType st;
		int late = 0;

		if (conn_ready(s, c, attempt > 0, err) < 0)
			return NULL;
		if (s->timeout_us)
			res = exec_deadline(s, c, sql, n, vals, &late);
		else
			res = PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0);
		if (late) {
			err_set(err, ERR_UNAVAILABLE, "postgres unavailable: %s",
				c->last_err);
			return NULL;
		}
		st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
			return res;
		if (PQstatus(c->pg) == CONNECTION_OK || !retry || attempt > 0)
			break;
		PQclear(res);
		res = NULL;
	}
	result_err(s, c, res, err);
	PQclear(res);
	return NULL;
}

/* One statement on a pooled connection. */
static PGresult *query(struct store *s, const char *sql, int n,
		       const char *const *vals, struct err *err)
{
	struct store_conn *c = conn_get(s);
	PGresult *res = run(s, c, sql, n, vals, 1, err);

	conn_put(s, c);
	return res;
}

int store_ping(struct store *s, struct err *err)
{
	PGresult *res = query(s, "SELECT 1", 0, NULL, err);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

/* ---- migrations --------------------------------------------------------- */

struct migration {
	int version;
	const char *name;
	const char *sql;   /* static text, run with PQexec (several statements) */
};

static const struct migration migrations[] = {
	{ 1, "jobs table",
	  "CREATE FUNCTION wakeq_us(t timestamptz) RETURNS bigint\n"
	  "  LANGUAGE sql IMMUTABLE PARALLEL SAFE\n"
	  "  AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;\n"
	  "CREATE FUNCTION wakeq_ts(us bigint) RETURNS timestamptz\n"
	  "  LANGUAGE sql IMMUTABLE PARALLEL SAFE\n"
	  "  AS $$ SELECT timestamptz 'epoch' + us * interval '1 microsecond' $$;\n"
	  "CREATE TABLE jobs (\n"
	  "  id uuid PRIMARY KEY,\n"
	  "  queue text NOT NULL,\n"
	  "  type text NOT NULL,\n"
	  "  payload jsonb NOT NULL DEFAULT '{}',\n"
	  "  status text NOT NULL CHECK (status IN ('queued', 'scheduled',\n"
	  "    'active', 'retrying', 'done', 'failed', 'cancelled')),\n"
	  "  priority integer NOT NULL DEFAULT 0,\n"
	  "  attempts integer NOT NULL DEFAULT 0,\n"
	  "  max_attempts integer NOT NULL DEFAULT 1,\n"
	  "  progress double precision NOT NULL DEFAULT 0,\n"
	  "  stage text,\n"
	  "  result jsonb,\n"
	  "  error text,\n"
	  "  idempotency_key text,\n"
	  "  callback_url text,\n"
	  "  timeout_s double precision NOT NULL DEFAULT 0,\n"
	  "  created_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  started_at timestamptz,\n"
	  "  finished_at timestamptz,\n"
	  "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  run_at timestamptz\n"
	  ");\n"
	  "CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)\n"
	  "  WHERE idempotency_key IS NOT NULL;\n"
	  /* reconcile walks the unfinished rows by id */
	  "CREATE INDEX jobs_unfinished ON jobs (id)\n"
	  "  WHERE status IN ('queued', 'scheduled', 'retrying', 'active');\n"
	  /* listing: one queue, one status, newest first */
	  "CREATE INDEX jobs_queue_status ON jobs (queue, status, id);\n" },
	{ 2, "job labels",
	  "ALTER TABLE jobs ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';\n" },
	{ 3, "job controls",
	  "ALTER TABLE jobs ADD COLUMN unique_key text;\n"
	  "ALTER TABLE jobs ADD COLUMN job_group text;\n" },
	{ 4, "job dependencies",
	  "ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;\n"
	  "ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN\n"
	  "  ('queued', 'scheduled', 'active', 'retrying', 'done', 'failed',\n"
	  "   'cancelled', 'waiting'));\n"
	  "ALTER TABLE jobs ADD COLUMN depends_on jsonb;\n"
	  "ALTER TABLE jobs ADD COLUMN dep_policy text;\n"
	  "ALTER TABLE jobs ADD COLUMN batch text;\n"
	  "DROP INDEX jobs_unfinished;\n"
	  "CREATE INDEX jobs_unfinished ON jobs (id)\n"
	  "  WHERE status IN ('queued', 'scheduled', 'retrying', 'active', 'waiting');\n" },
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

int store_schema_version(void)
{
	return migrations[NMIGRATIONS - 1].version;
}

/* Runs static SQL text (several statements allowed, no values). */
static int exec_static(struct store *s, struct store_conn *c, const char *sql,
		       struct err *err)
{
	PGresult *res = PQexec(c->pg, sql);
	int rc = 0;

	if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK &&
		     PQresultStatus(res) != PGRES_TUPLES_OK))
		rc = result_err(s, c, res, err);
	PQclear(res);
	return rc;
}

int store_migrate(struct store *s, struct err *err)
{
	static const char *const lock_vals[] = { MIGRATE_LOCK };
	struct store_conn *c = conn_get(s);
	PGresult *res = NULL;
	char *applied = xcalloc(NMIGRATIONS, 1);
	int locked = 0, in_tx = 0, count = 0, rc = -1, i;
	size_t m;

	res = run(s, c, "SELECT pg_advisory_lock($1::bigint)", 1, lock_vals, 1,
		  err);
	if (!res)
		goto out;
	PQclear(res);
	locked = 1;
	/* Under the lock from here: nobody else creates or fills the table. */
	res = run(s, c, "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
		  "  version integer PRIMARY KEY,\n"
		  "  name text NOT NULL,\n"
		  "  applied_at timestamptz NOT NULL DEFAULT now())",
		  0, NULL, 0, err);
	if (!res)
		goto out;
	PQclear(res);
	res = run(s, c, "SELECT version FROM schema_migrations", 0, NULL, 0, err);
	if (!res)
		goto out;
	for (i = 0; i < PQntuples(res); i++) {
		int v = atoi(PQgetvalue(res, i, 0));

		for (m = 0; m < NMIGRATIONS; m++)
			if (migrations[m].version == v)
				applied[m] = 1;
	}
	PQclear(res);
	res = NULL;
	for (m = 0; m < NMIGRATIONS; m++) {
		char ver[16];
		const char *vals[2] = { ver, migrations[m].name };

		if (applied[m])
			continue;
		snprintf(ver, sizeof(ver), "%d", migrations[m].version);
		if (exec_static(s, c, "BEGIN", err) < 0)
			goto out;
		in_tx = 1;
		if (exec_static(s, c, migrations[m].sql, err) < 0) {
			err_wrap(err, "migration %d (%s)", migrations[m].version,
				 migrations[m].name);
			goto out;
		}
		res = run(s, c, "INSERT INTO schema_migrations (version, name) "
			  "VALUES ($1::integer, $2)", 2, vals, 0, err);
		if (!res)
			goto out;
		PQclear(res);
		res = NULL;
		if (exec_static(s, c, "COMMIT", err) < 0)
			goto out;
		in_tx = 0;
		count++;
	}
	rc = count;
out:
	/* Best effort: on a broken connection the server has already rolled
	 * back and dropped the session's lock. */
	if (in_tx && PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	if (locked && PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexecParams(c->pg, "SELECT pg_advisory_unlock($1::bigint)",
				     1, NULL, lock_vals, NULL, NULL, 0));
	conn_put(s, c);
	free(applied);
	return rc;
}

/* ---- rows --------------------------------------------------------------- */

/* The columns a job is read with, in SELECT order after id, and where
 * each lands in struct job_info: the one list to extend for a new job
 * field (JOB_COLUMNS must list the same expressions). */
enum col_kind { C_STR, C_INT, C_I64, C_DBL, C_STATUS, C_DEPFAIL };

static const struct column {
	enum col_kind kind;
	size_t off;
} columns[] = {
	{ C_STR, offsetof(struct job_info, queue) },
	{ C_STR, offsetof(struct job_info, type) },
	{ C_STR, offsetof(struct job_info, payload) },
	{ C_STATUS, offsetof(struct job_info, status) },
	{ C_INT, offsetof(struct job_info, priority) },
	{ C_INT, offsetof(struct job_info, attempts) },
	{ C_INT, offsetof(struct job_info, max_attempts) },
	{ C_DBL, offsetof(struct job_info, progress) },
	{ C_STR, offsetof(struct job_info, stage) },
	{ C_STR, offsetof(struct job_info, result) },
	{ C_STR, offsetof(struct job_info, error) },
	{ C_STR, offsetof(struct job_info, idempotency_key) },
	{ C_STR, offsetof(struct job_info, callback_url) },
	{ C_DBL, offsetof(struct job_info, timeout_s) },
	{ C_I64, offsetof(struct job_info, created_at) },
	{ C_I64, offsetof(struct job_info, started_at) },
	{ C_I64, offsetof(struct job_info, finished_at) },
	{ C_I64, offsetof(struct job_info, updated_at) },
	{ C_I64, offsetof(struct job_info, run_at) },
	{ C_STR, offsetof(struct job_info, labels) },
	{ C_STR, offsetof(struct job_info, unique_key) },
	{ C_STR, offsetof(struct job_info, group) },
	{ C_STR, offsetof(struct job_info, depends_on) },
	{ C_DEPFAIL, offsetof(struct job_info, dep_policy) },
	{ C_STR, offsetof(struct job_info, batch) },
};

#define JOB_COLUMNS \
	"id::text, queue, type, payload::text, status, priority, attempts, " \
	"max_attempts, progress, stage, result::text, error, " \
	"idempotency_key, callback_url, timeout_s, wakeq_us(created_at), " \
	"wakeq_us(started_at), wakeq_us(finished_at), wakeq_us(updated_at), " \
	"wakeq_us(run_at), labels::text, unique_key, job_group, " \
	"depends_on::text, dep_policy, batch"

/* Fills `job` from a row selected with JOB_COLUMNS. */
static void row_to_job(const PGresult *res, int row, struct job_info *job)
{
	size_t i;

	/* JOB_COLUMNS and columns[] change together */
	assert(PQnfields(res) == (int)(sizeof(columns) / sizeof(columns[0])) + 1);
	memset(job, 0, sizeof(*job));
	snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(res, row, 0));
	for (i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
		char *p = (char *)job + columns[i].off;
		const char *v;

		if (PQgetisnull(res, row, (int)i + 1))
			continue;
		v = PQgetvalue(res, row, (int)i + 1);
		switch (columns[i].kind) {
		case C_STR:
			*(char **)p = xstrdup(v);
			break;
		case C_INT:
			*(int *)p = (int)strtol(v, NULL, 10);
			break;
		case C_I64:
			*(int64_t *)p = strtoll(v, NULL, 10);
			break;
		case C_DBL:
			*(double *)p = strtod(v, NULL);
			break;
		case C_STATUS:
			/* the CHECK constraint keeps status to known names */
			job_status_parse(v, (enum job_status *)p, NULL);
			break;
		case C_DEPFAIL:
			job_dep_policy_parse(v, (enum job_dep_policy *)p, NULL);
			break;
		}
	}
}

static void rows_to_list(const PGresult *res, struct store_job_list *out)
{
	int i, n = PQntuples(res);

	out->len = (size_t)n;
	out->items = n ? xcalloc((size_t)n, sizeof(out->items[0])) : NULL;
	for (i = 0; i < n; i++)
		row_to_job(res, i, &out->items[i]);
}

/* Runs a SELECT of JOB_COLUMNS into *out. Returns the row count or -1. */
static int select_rows(struct store *s, const char *sql, int n, const char *const *vals,
		       struct store_job_list *out, struct err *err)
{
	PGresult *res = query(s, sql, n, vals, err);

	if (!res)
		return -1;
	rows_to_list(res, out);
	PQclear(res);
	return (int)out->len;
}

/* Formats a time parameter: 0 becomes SQL NULL. */
static const char *time_param(int64_t us, char buf[24])
{
	if (us == 0)
		return NULL;
	snprintf(buf, 24, "%lld", (long long)us);
	return buf;
}

/* `n` as a text parameter in buf, or NULL (SQL NULL) when it is <= 0. */
static const char *count_param(int n, char buf[16])
{
	if (n <= 0)
		return NULL;
	snprintf(buf, 16, "%d", n);
	return buf;
}

/* Number of rows an UPDATE/DELETE touched. */
static int affected(PGresult *res)
{
	int n = atoi(PQcmdTuples(res));

	PQclear(res);
	return n;
}

static int check_id(const char *id, enum err_code code, struct err *err)
{
	if (id && uuid_valid(id))
		return 0;
	if (code == ERR_NOTFOUND)
		return err_set(err, code, "job '%s' not found", id ? id : "");
	return err_set(err, code, "invalid job id '%s': expected a UUID",
		       id ? id : "");
}

/* A JSON text check done before Postgres sees it, so a bad payload is
 * reported as the caller's error with a clear word. */
static int check_json(const char *what, const char *text, struct err *err)
{
	json_error_t jerr;
	json_t *v;

	if (!text)
		return 0;
	v = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!v)
		return err_set(err, ERR_INVALID, "invalid %s: %s", what,
			       jerr.text);
	json_decref(v);
	return 0;
}

/* The guard of the inserts of new jobs. A statement past its caller's
 * deadline was answered 503 ("not stored"), but it may still sit unread
 * in the socket of a frozen server and run when the server wakes: the
 * guard makes that late run insert nothing, so no row (which reconcile
 * would enqueue) exists for a job its client was told failed. The insert
 * runs only while Postgres' clock is before GUARD_SQL's parameter, a time
 * a little before the caller gives up: the margin (a quarter of the
 * timeout) covers the commit, the answer's way back and clock skew
 * between the two hosts. Without a timeout the parameter is NULL and the
 * guard always passes. The statement's first column says whether it did. */
#define GUARD_SQL(param) \
	"WITH guard AS (SELECT COALESCE(clock_timestamp() < wakeq_ts(" param \
	"::bigint), true) AS ok)"

static int64_t guard_us(const struct store *s)
{
	return s->timeout_us ? clock_now_us() + s->timeout_us - s->timeout_us / 4 : 0;
}

/* Fails with ERR_UNAVAILABLE when the guard of `res` did not pass. */
static int guard_late(const PGresult *res, struct err *err)
{
	if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "f") != 0)
		return 0;
	return err_set(err, ERR_UNAVAILABLE,
		       "postgres unavailable: answered past the deadline, nothing stored");
}

int store_insert(struct store *s, const struct job_spec *job,
		 char existing_id[UUID_STR_LEN], struct err *err)
{
	static const char *const ins =
		GUARD_SQL("$14") ",\n"
		"ins AS (INSERT INTO jobs (id, queue, type, payload, status, priority,\n"
		"  max_attempts, timeout_s, idempotency_key, callback_url,\n"
		"  created_at, updated_at, run_at, labels, unique_key, job_group,\n"
		"  depends_on, dep_policy, batch)\n"
		"SELECT $1::uuid, $2, $3, COALESCE($4::jsonb, '{}'::jsonb), $5,\n"
		"  $6::integer, $7::integer, $8::double precision, $9, $10,\n"
		"  COALESCE(wakeq_ts($11::bigint), now()), now(),\n"
		"  wakeq_ts($12::bigint), COALESCE($13::jsonb, '{}'::jsonb), $15, $16,\n"
		"  $17::jsonb, $18, $19\n"
		"FROM guard WHERE guard.ok\n"
		"ON CONFLICT DO NOTHING RETURNING 1)\n"
		"SELECT guard.ok, (SELECT count(*) FROM ins) FROM guard";
	char prio[16], maxa[16], tmo[32], rat[24], gd[24];
	const char *vals[19];
	PGresult *res = NULL;
	int rc = -1, tries;

	if (check_id(job->id, ERR_INVALID, err) < 0)
		goto out;
	if (!job->queue || !*job->queue || !job->type || !*job->type) {
		err_set(err, ERR_INVALID, "invalid job: queue and type are required");
		goto out;
	}
	if (check_json("payload", job->payload, err) < 0)
		goto out;
	snprintf(prio, sizeof(prio), "%d", job->priority);
	snprintf(maxa, sizeof(maxa), "%d", job->max_attempts);
	snprintf(tmo, sizeof(tmo), "%.17g", job->timeout_s);
	vals[0] = job->id;
	vals[1] = job->queue;
	vals[2] = job->type;
	vals[3] = job->payload;
	vals[4] = job_status_name(job_spec_status(job, clock_now_us()));
	vals[5] = prio;
	vals[6] = maxa;
	vals[7] = tmo;
	vals[8] = job->idempotency_key;
	vals[9] = job->callback_url;
	vals[10] = NULL; /* created now() */
	vals[11] = time_param(job->run_at_us, rat);
	vals[12] = job->labels;
	vals[13] = time_param(guard_us(s), gd);
	vals[14] = job->unique_key;
	vals[15] = job->group;
	vals[16] = job->depends_on;
	vals[17] = job->depends_on ? job_dep_policy_name(job->dep_policy) : NULL;
	vals[18] = job->batch;

	/* ON CONFLICT DO NOTHING covers both unique indexes. Whichever one
	 * fired, find the row that was there: our own id (a repeated insert)
	 * counts as inserted; the idempotency key's holder is returned. If
	 * that row went away in between, try again. */
	for (tries = 0; tries < 3; tries++) {
		const char *idv[1] = { job->id };
		const char *kv[2] = { job->queue, job->idempotency_key };

		res = query(s, ins, 19, vals, err);
		if (!res)
			goto out;
		if (guard_late(res, err) < 0)
			goto out;
		if (atoi(PQgetvalue(res, 0, 1)) == 1) {
			rc = 0;
			goto out;
		}
		PQclear(res);
		res = query(s, "SELECT 1 FROM jobs WHERE id = $1::uuid", 1, idv,
			    err);
		if (!res)
			goto out;
		if (PQntuples(res) == 1) {
			rc = 0;
			goto out;
		}
		PQclear(res);
		res = NULL;
		if (!job->idempotency_key)
			continue;
		res = query(s, "SELECT id::text FROM jobs\n"
			    "WHERE queue = $1 AND idempotency_key = $2", 2, kv,
			    err);
		if (!res)
			goto out;
		if (PQntuples(res) == 1) {
			if (existing_id)
				snprintf(existing_id, UUID_STR_LEN, "%s",
					 PQgetvalue(res, 0, 0));
			rc = 1;
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	err_set(err, ERR_UNAVAILABLE, "cannot insert job '%s': conflicting row "
		"keeps changing", job->id);
out:
	PQclear(res);
	return rc;
}

/* The rows of store_insert_many travel as one jsonb array, one object per
 * entry: one parameter whatever the batch size, and one plan. The payload
 * goes as a JSON string and is cast to jsonb by Postgres, so it is not
 * parsed here. */
static json_t *new_job_json(const struct job_spec *j, int64_t now_us)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "queue", json_string(j->queue));
	json_object_set_new(o, "type", json_string(j->type));
	json_object_set_new(o, "payload", j->payload ? json_string(j->payload) : json_null());
	json_object_set_new(o, "status", json_string(job_status_name(job_spec_status(j, now_us))));
	json_object_set_new(o, "priority", json_integer(j->priority));
	json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
	json_object_set_new(o, "timeout_s", json_real(j->timeout_s));
	json_object_set_new(o, "idempotency_key",
			    j->idempotency_key ? json_string(j->idempotency_key) : json_null());
	json_object_set_new(o, "callback_url",
			    j->callback_url ? json_string(j->callback_url) : json_null());
	json_object_set_new(o, "created_us", json_null());
	json_object_set_new(o, "run_us", j->run_at_us ? json_integer(j->run_at_us) : json_null());
	json_object_set_new(o, "labels", j->labels ? json_string(j->labels) : json_null());
	json_object_set_new(o, "unique_key",
			    j->unique_key ? json_string(j->unique_key) : json_null());
	json_object_set_new(o, "job_group", j->group ? json_string(j->group) : json_null());
	json_object_set_new(o, "depends_on", j->depends_on ? json_string(j->depends_on) : json_null());
	json_object_set_new(o, "dep_policy", j->depends_on ?
			    json_string(job_dep_policy_name(j->dep_policy)) : json_null());
	json_object_set_new(o, "batch", j->batch ? json_string(j->batch) : json_null());
	return o;
}

int store_insert_many(struct store *s, const struct job_spec *jobs,
		      size_t n, int *rc, char (*existing_ids)[UUID_STR_LEN],
		      struct err *errs, struct err *err)
{
	/* ON CONFLICT DO NOTHING also skips an entry whose key an earlier
	 * entry of the same statement took; RETURNING names the rows in. */
	static const char *const ins =
		GUARD_SQL("$2") ",\n"
		"ins AS (INSERT INTO jobs (id, queue, type, payload, status, priority,\n"
		"  max_attempts, timeout_s, idempotency_key, callback_url,\n"
		"  created_at, updated_at, run_at, labels, unique_key, job_group,\n"
		"  depends_on, dep_policy, batch)\n"
		"SELECT r.id, r.queue, r.type, COALESCE(r.payload::jsonb, '{}'::jsonb),\n"
		"  r.status, r.priority, r.max_attempts, r.timeout_s,\n"
		"  r.idempotency_key, r.callback_url,\n"
		"  COALESCE(wakeq_ts(r.created_us), now()), now(), wakeq_ts(r.run_us),\n"
		"  COALESCE(r.labels::jsonb, '{}'::jsonb), r.unique_key, r.job_group,\n"
		"  r.depends_on::jsonb, r.dep_policy, r.batch\n"
		"FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, queue text,\n"
		"  type text, payload text, status text, priority integer,\n"
		"  max_attempts integer, timeout_s double precision,\n"
		"  idempotency_key text, callback_url text, created_us bigint,\n"
		"  run_us bigint, labels text, unique_key text, job_group text,\n"
		"  depends_on text, dep_policy text, batch text)\n"
		"WHERE (SELECT ok FROM guard)\n"
		"ON CONFLICT DO NOTHING RETURNING id::text AS id)\n"
		"SELECT guard.ok, ins.id FROM guard LEFT JOIN ins ON true";
	json_t *arr = NULL;
	char *text = NULL, gd[24];
	const char *vals[2];
	PGresult *res = NULL;
	size_t i, next;
	int64_t now_us;
	int k, ret = -1;

	if (n == 0 || n > STORE_MAX_BATCH) {
		err_set(err, ERR_INVALID, "insert takes 1 to %d jobs, not %zu",
			STORE_MAX_BATCH, n);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct job_spec *j = &jobs[i];

		if (!uuid_valid(j->id) || !j->queue || !*j->queue ||
		    !j->type || !*j->type) {
			err_set(err, ERR_INVALID, "invalid job %zu of the batch: "
				"bad id, queue or type", i);
			goto out;
		}
	}
	arr = json_array();
	now_us = clock_now_us();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, new_job_json(&jobs[i], now_us));
	text = json_dumps(arr, JSON_COMPACT);
	if (!text) {
		err_set(err, ERR_INVALID, "invalid job in the batch: not encodable");
		goto out;
	}
	vals[0] = text;
	vals[1] = time_param(guard_us(s), gd);
	/* Safe to run twice on a broken connection: a row the first run
	 * put in is not returned by the second, and is then found under its
	 * own id by the conflict lookup below (rc 0). */
	res = query(s, ins, 2, vals, err);
	if (!res)
		goto out;
	if (guard_late(res, err) < 0)
		goto out;
	for (i = 0; i < n; i++)
		rc[i] = 2; /* not yet known */
	next = 0;
	for (k = 0; k < PQntuples(res); k++) {
		const char *id = PQgetvalue(res, k, 1);
		size_t m;

		if (PQgetisnull(res, k, 1))
			continue; /* nothing inserted: the guard's row alone */

		/* RETURNING comes back in input order in practice: look
		 * from just after the last match, wrapping round once. */
		for (m = 0; m < n; m++) {
			i = (next + m) % n;
			if (rc[i] == 2 && !strcasecmp(jobs[i].id, id)) {
				rc[i] = 0;
				next = i + 1;
				break;
			}
		}
	}
	PQclear(res);
	res = NULL;
	/* Conflicts: our own id already there, or the key's holder. */
	for (i = 0; i < n; i++) {
		struct err e;

		if (rc[i] != 2)
			continue;
		rc[i] = store_insert(s, &jobs[i], existing_ids ? existing_ids[i] : NULL, &e);
		if (rc[i] < 0 && errs)
			errs[i] = e;
	}
	ret = 0;
out:
	PQclear(res);
	free(text);
	json_decref(arr);
	return ret;
}

int store_delete_many(struct store *s, const char *const *ids, size_t n,
		      struct err *err)
{
	struct buf b = BUF_INIT;
	const char *vals[1];
	PGresult *res;
	size_t i, count = 0;

	/* a uuid[] literal: the ids are checked UUIDs, nothing to quote */
	buf_addc(&b, '{');
	for (i = 0; i < n; i++) {
		if (!ids[i] || !uuid_valid(ids[i]))
			continue;
		if (count++)
			buf_addc(&b, ',');
		buf_adds(&b, ids[i]);
	}
	buf_addc(&b, '}');
	if (count == 0) {
		buf_release(&b);
		return 0;
	}
	vals[0] = b.data;
	res = query(s, "DELETE FROM jobs WHERE id = ANY($1::uuid[])", 1, vals, err);
	buf_release(&b);
	return res ? affected(res) : -1;
}

int store_get(struct store *s, const char *id, struct job_info *out,
	      struct err *err)
{
	const char *vals[1] = { id };
	PGresult *res = NULL;
	int rc = -1;

	if (check_id(id, ERR_NOTFOUND, err) < 0)
		goto out;
	res = query(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1::uuid",
		    1, vals, err);
	if (!res)
		goto out;
	if (PQntuples(res) != 1) {
		err_set(err, ERR_NOTFOUND, "job '%s' not found", id);
		goto out;
	}
	row_to_job(res, 0, out);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int store_delete(struct store *s, const char *id, struct err *err)
{
	const char *vals[1] = { id };
	PGresult *res;

	if (!id || !uuid_valid(id))
		return 0;
	res = query(s, "DELETE FROM jobs WHERE id = $1::uuid", 1, vals, err);
	return res ? affected(res) : -1;
}

int store_mark_started(struct store *s, const char *id, int attempt,
		       int64_t started_at, struct err *err)
{
	char att[16], sat[24];
	const char *vals[3] = { id, count_param(attempt, att), time_param(started_at, sat) };
	PGresult *res;

	if (check_id(id, ERR_INVALID, err) < 0)
		return -1;
	res = query(s, "UPDATE jobs SET status = 'active',\n"
		    "  attempts = COALESCE($2::integer, attempts),\n"
		    "  started_at = COALESCE(wakeq_ts($3::bigint), now()),\n"
		    "  progress = 0, stage = NULL, updated_at = now()\n"
		    "WHERE id = $1::uuid\n"
		    "  AND status NOT IN ('done', 'failed', 'cancelled')",
		    3, vals, err);
	return res ? affected(res) : -1;
}

int store_progress(struct store *s, const char *id, double progress,
		   const char *stage, struct err *err)
{
	char pr[32];
	const char *vals[3] = { id, pr, stage };
	PGresult *res;

	if (check_id(id, ERR_INVALID, err) < 0)
		return -1;
	if (!(progress >= 0)) /* also NaN */
		progress = 0;
	if (progress > 100)
		progress = 100;
	snprintf(pr, sizeof(pr), "%.17g", progress);
	res = query(s, "UPDATE jobs SET progress = $2::double precision,\n"
		    "  stage = COALESCE($3, stage), updated_at = now()\n"
		    "WHERE id = $1::uuid AND status = 'active'", 3, vals, err);
	return res ? affected(res) : -1;
}

int store_finish(struct store *s, const char *id, enum job_status status,
		 const char *result, const char *error, int64_t finished_at,
		 int attempts, struct err *err)
{
	char fat[24], att[16];
	const char *vals[6] = { id, job_status_name(status), result, error,
				time_param(finished_at, fat), count_param(attempts, att) };
	PGresult *res;
	int n;

	if (check_id(id, ERR_INVALID, err) < 0)
		return -1;
	if (!job_status_final(status))
		return err_set(err, ERR_INVALID, "invalid final status '%s'",
			       job_status_name(status));
	if (check_json("result", result, err) < 0)
		return -1;
	res = query(s, "UPDATE jobs SET status = $2::text,\n"
		    "  result = $3::jsonb, error = $4,\n"
		    "  finished_at = COALESCE(wakeq_ts($5::bigint), now()),\n"
		    "  progress = CASE WHEN $2::text = 'done' THEN 100\n"
		    "    ELSE progress END,\n"
		    "  attempts = COALESCE($6::integer, attempts),\n"
		    "  updated_at = now()\n"
		    "WHERE id = $1::uuid", 6, vals, err);
	if (!res)
		return -1;
	n = affected(res);
	if (n == 0)
		return err_set(err, ERR_NOTFOUND, "job '%s' not found", id);
	return 0;
}

int store_set_status(struct store *s, const char *id, enum job_status status,
		     const char *error, int64_t run_at, struct err *err)
{
	char rat[24];
	const char *vals[4] = { id, job_status_name(status), error,
				time_param(run_at, rat) };
	PGresult *res;

	if (check_id(id, ERR_INVALID, err) < 0)
		return -1;
	if (status != JOB_QUEUED && status != JOB_SCHEDULED &&
	    status != JOB_RETRYING && status != JOB_CANCELLED)
		return err_set(err, ERR_INVALID, "invalid status change to '%s'",
			       job_status_name(status));
	res = query(s, "UPDATE jobs SET status = $2::text,\n"
		    "  error = CASE WHEN $2::text = 'queued' THEN NULL\n"
		    "    ELSE COALESCE($3, error) END,\n"
		    "  result = CASE WHEN $2::text = 'queued' THEN NULL\n"
		    "    ELSE result END,\n"
		    "  finished_at = CASE WHEN $2::text = 'queued' THEN NULL\n"
		    "    WHEN $2::text = 'cancelled' THEN now()\n"
		    "    ELSE finished_at END,\n"
		    "  progress = CASE WHEN $2::text = 'queued' THEN 0\n"
		    "    ELSE progress END,\n"
		    "  stage = CASE WHEN $2::text = 'queued' THEN NULL\n"
		    "    ELSE stage END,\n"
		    "  run_at = COALESCE(wakeq_ts($4::bigint), run_at),\n"
		    "  updated_at = now()\n"
		    "WHERE id = $1::uuid", 4, vals, err);
	if (!res)
		return -1;
	if (affected(res) == 0)
		return err_set(err, ERR_NOTFOUND, "job '%s' not found", id);
	return 0;
}

static int check_limit(int limit, struct err *err)
{
	if (limit < 1 || limit > STORE_MAX_LIST)
		return err_set(err, ERR_INVALID, "invalid limit %d: expected 1 "
			       "to %d", limit, STORE_MAX_LIST);
	return 0;
}

int store_list(struct store *s, const char *queue, enum job_status status,
	       int limit, const char *before, struct store_job_list *out,
	       struct err *err)
{
	char lim[16];
	const char *vals[4] = { queue, job_status_name(status), before, lim };

	if (check_limit(limit, err) < 0)
		return -1;
	if (!queue || (unsigned)status >= JOB_NSTATUS)
		return err_set(err, ERR_INVALID, "invalid list: queue and "
			       "status are required");
	if (before && check_id(before, ERR_INVALID, err) < 0)
		return -1;
	snprintf(lim, sizeof(lim), "%d", limit);
	return select_rows(s, "SELECT " JOB_COLUMNS " FROM jobs\n"
			   "WHERE queue = $1 AND status = $2\n"
			   "  AND ($3::uuid IS NULL OR id < $3::uuid)\n"
			   "ORDER BY id DESC LIMIT $4::integer", 4, vals, out, err);
}

int store_list_unfinished(struct store *s, const char *queue, double min_age_s,
			  const char *after, int limit,
			  struct store_job_list *out, struct err *err)
{
	char lim[16], age[32];
	const char *vals[4] = { queue, age, after, lim };

	if (check_limit(limit, err) < 0)
		return -1;
	if (after && check_id(after, ERR_INVALID, err) < 0)
		return -1;
	if (!(min_age_s >= 0))
		min_age_s = 0;
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(age, sizeof(age), "%.6f", min_age_s);
	return select_rows(s, "SELECT " JOB_COLUMNS " FROM jobs\n"
			   "WHERE status IN ('queued', 'scheduled', 'retrying', 'active', 'waiting')\n"
			   "  AND ($1::text IS NULL OR queue = $1)\n"
			   "  AND updated_at <= now() - $2::double precision\n"
			   "    * interval '1 second'\n"
			   "  AND ($3::uuid IS NULL OR id > $3::uuid)\n"
			   "ORDER BY id LIMIT $4::integer", 4, vals, out, err);
}

int store_apply_finals(struct store *s, const struct job_info *finals,
		       size_t n, struct err *err)
{
	json_t *arr = json_array();
	char *text = NULL;
	const char *vals[1];
	PGresult *res;
	size_t i;
	int rc = -1;

	for (i = 0; i < n; i++) {
		const struct job_info *f = &finals[i];
		json_t *o, *result = NULL, *err_json;

		if (check_id(f->id, ERR_INVALID, err) < 0)
			goto out;
		if (!job_status_final(f->status)) {
			err_set(err, ERR_INVALID, "invalid final status '%s' for "
				"job '%s'", job_status_name(f->status), f->id);
			goto out;
		}
		if (f->result) {
			json_error_t jerr;

			result = json_loads(f->result, JSON_DECODE_ANY, &jerr);
			if (!result) {
				err_set(err, ERR_INVALID, "invalid result of job "
					"'%s': %s", f->id, jerr.text);
				goto out;
			}
		}
		o = json_object();
		json_object_set_new(o, "id", json_string(f->id));
		json_object_set_new(o, "status",
				    json_string(job_status_name(f->status)));
		json_object_set_new(o, "result", result ? result : json_null());
		err_json = f->error ? json_string(f->error) : NULL;
		json_object_set_new(o, "error", err_json ? err_json : json_null());
		json_object_set_new(o, "attempts", f->attempts > 0 ?
				    json_integer(f->attempts) : json_null());
		json_object_set_new(o, "started_us", f->started_at ?
				    json_integer(f->started_at) : json_null());
		json_object_set_new(o, "finished_us", f->finished_at ?
				    json_integer(f->finished_at) : json_null());
		json_array_append_new(arr, o);
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	text = json_dumps(arr, JSON_COMPACT);
	vals[0] = text;
	res = query(s, "UPDATE jobs AS j SET status = r.status,\n"
		    "  result = r.result, error = r.error,\n"
		    "  attempts = COALESCE(r.attempts, j.attempts),\n"
		    "  started_at = COALESCE(wakeq_ts(r.started_us), j.started_at),\n"
		    "  finished_at = COALESCE(wakeq_ts(r.finished_us), now()),\n"
		    "  progress = CASE WHEN r.status = 'done' THEN 100\n"
		    "    ELSE j.progress END,\n"
		    "  updated_at = now()\n"
		    "FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, status text,\n"
		    "  result jsonb, error text, attempts integer,\n"
		    "  started_us bigint, finished_us bigint)\n"
		    "WHERE j.id = r.id AND (j.status <> r.status\n"
		    "  OR (r.finished_us IS NOT NULL\n"
		    "    AND j.finished_at IS DISTINCT FROM wakeq_ts(r.finished_us)))",
		    1, vals, err);
	if (!res)
		goto out;
	rc = affected(res);
out:
	free(text);
	json_decref(arr);
	return rc;
}
