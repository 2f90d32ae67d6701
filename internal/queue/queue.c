/* queue.c - the Redis side of wakeq: connection, scripts, replies.
 *
 * Each operation builds an argument vector and runs one script with
 * EVALSHA; the SHA1 of every script is computed at build time (lua2c.sh),
 * so there is no load round trip and no hashing at run time: NOSCRIPT is answered with EVAL, which also caches the
 * script for the next EVALSHA on any connection.
 */
#include "queue/queue.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

#include <hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "queue/scripts.h"

#ifdef WAKEQ_HIREDIS_SSL
#include <hiredis_ssl.h>
#endif

struct queue_limits queue_limits = { QUEUE_RESULT_TTL_DEFAULT, 10000, 10000 };

/* ---- scripts ------------------------------------------------------------ */

enum script {
	S_ENQUEUE, S_TAKE, S_RENEW, S_REGISTER, S_RETIRE, S_PROGRESS,
	S_CANCEL, S_RETRY_DEAD, S_PURGE_DEAD, S_COUNTS, S_NSCRIPTS
};

static const char *const script_text[S_NSCRIPTS] = {
	[S_ENQUEUE] = queue_lua_enqueue,
	[S_TAKE] = queue_lua_take,
	[S_RENEW] = queue_lua_renew,
	[S_REGISTER] = queue_lua_register,
	[S_RETIRE] = queue_lua_retire,
	[S_PROGRESS] = queue_lua_progress,
	[S_CANCEL] = queue_lua_cancel,
	[S_RETRY_DEAD] = queue_lua_retry_dead,
	[S_PURGE_DEAD] = queue_lua_purge_dead,
	[S_COUNTS] = queue_lua_counts,
};

static const char *const script_sha[S_NSCRIPTS] = {
	[S_ENQUEUE] = queue_sha_enqueue,
	[S_TAKE] = queue_sha_take,
	[S_RENEW] = queue_sha_renew,
	[S_REGISTER] = queue_sha_register,
	[S_RETIRE] = queue_sha_retire,
	[S_PROGRESS] = queue_sha_progress,
	[S_CANCEL] = queue_sha_cancel,
	[S_RETRY_DEAD] = queue_sha_retry_dead,
	[S_PURGE_DEAD] = queue_sha_purge_dead,
	[S_COUNTS] = queue_sha_counts,
};

/* ---- argument vectors --------------------------------------------------- */

/* Arguments are borrowed strings or numbers formatted into `nums`; numbers
 * are referenced by index until args_finish() resolves them, since `nums`
 * may move while it grows. */
struct args {
	const char **v;
	size_t *len;
	long *num;      /* index into nums, or -1 for a borrowed string */
	size_t n, cap;
	char (*nums)[24];
	size_t nnums, numcap;
};

static void args_init(struct args *a)
{
	memset(a, 0, sizeof(*a));
}

static void args_release(struct args *a)
{
	free(a->v);
	free(a->len);
	free(a->num);
	free(a->nums);
}

static void args_grow(struct args *a)
{
	if (a->n < a->cap)
		return;
	a->cap = a->cap ? a->cap * 2 : 32;
	a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	a->len = xrealloc(a->len, a->cap * sizeof(*a->len));
	a->num = xrealloc(a->num, a->cap * sizeof(*a->num));
}

static void args_addn(struct args *a, const char *s, size_t len)
{
	args_grow(a);
	a->v[a->n] = s;
	a->len[a->n] = len;
	a->num[a->n] = -1;
	a->n++;
}

static void args_add(struct args *a, const char *s)
{
	if (!s)
		s = "";
	args_addn(a, s, strlen(s));
}

static void args_addi(struct args *a, int64_t v)
{
	if (a->nnums == a->numcap) {
		a->numcap = a->numcap ? a->numcap * 2 : 32;
		a->nums = xrealloc(a->nums, a->numcap * sizeof(*a->nums));
	}
	args_grow(a);
	a->len[a->n] = (size_t)snprintf(a->nums[a->nnums], 24, "%lld", (long long)v);
	a->num[a->n] = (long)a->nnums++;
	a->n++;
}

static void args_addd(struct args *a, double v)
{
	args_addi(a, 0);
	a->len[a->n - 1] = (size_t)snprintf(a->nums[a->nnums - 1], 24, "%.17g", v);
}

static void args_finish(struct args *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->num[i] >= 0)
			a->v[i] = a->nums[a->num[i]];
}

/* ---- connection --------------------------------------------------------- */

struct queue {
	redisContext *c;
	struct queue_url url;
	struct timeval connect_timeout;
	struct timeval command_timeout;
	int64_t retry_at_us;     /* monotonic: no reconnect before this */
	int64_t backoff_us;      /* next reconnect delay */
	int waiting;             /* a BLPOP is outstanding */
	int64_t skew_ms;         /* server clock - our clock, at connect */
#ifdef WAKEQ_HIREDIS_SSL
	redisSSLContext *ssl;    /* rediss://: made on first connect */
#endif
};

static struct timeval tv_of(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

int queue_tls_supported(void)
{
#ifdef WAKEQ_HIREDIS_SSL
	return 1;
#else
	return 0;
#endif
}

#define BACKOFF_MIN_US 50000
#define BACKOFF_MAX_US 2000000

static void drop(struct queue *q)
{
	if (q->c)
		redisFree(q->c);
	q->c = NULL;
	q->waiting = 0;
}

static int fail_io(struct queue *q, struct err *err, const char *what)
{
	const char *why = q->c && q->c->errstr[0] ? q->c->errstr : "connection lost";
	int64_t now = clock_mono_us();

	err_set(err, ERR_UNAVAILABLE, "redis %s failed: %s", what, why);
	drop(q);
	if (q->retry_at_us < now)
		q->retry_at_us = now; /* retry at once the first time */
	return -1;
}

#ifdef WAKEQ_HIREDIS_SSL
static void init_openssl(void)
{
	redisInitOpenSSL();
}
#endif

/* (Re)connects when needed, honouring the backoff. AUTH and SELECT as the
 * URL says. Returns 0 or -1. */
static int ensure(struct queue *q, struct err *err)
{
	redisReply *r = NULL;
	int64_t now;

	if (q->c)
		return 0;
	now = clock_mono_us();
	if (now < q->retry_at_us)
		return err_set(err, ERR_UNAVAILABLE, "redis at '%s' unavailable; retrying in %lld ms",
			       q->url.host, (long long)(q->retry_at_us - now) / 1000);
	if (q->url.unix_socket)
		q->c = redisConnectUnixWithTimeout(q->url.host, q->connect_timeout);
	else
		q->c = redisConnectWithTimeout(q->url.host, q->url.port, q->connect_timeout);
	if (!q->c || q->c->err)
		goto fail;
#ifdef WAKEQ_HIREDIS_SSL
	if (q->url.tls) {
		static pthread_once_t ssl_once = PTHREAD_ONCE_INIT;
		redisSSLContextError serr = REDIS_SSL_CTX_NONE;
		const char *ca = getenv("REDIS_TLS_CA_FILE");

		pthread_once(&ssl_once, init_openssl);
		if (!q->ssl)
			q->ssl = redisCreateSSLContext(ca && *ca ? ca : NULL,
						       ca && *ca ? NULL : "/etc/ssl/certs",
						       NULL, NULL, q->url.host, &serr);
		if (!q->ssl) {
			err_set(err, ERR_INVALID, "cannot set up TLS for redis: %s",
				redisSSLContextGetError(serr));
			drop(q);
			q->retry_at_us = now + BACKOFF_MAX_US;
			return -1;
		}
		if (redisInitiateSSLWithContext(q->c, q->ssl) != REDIS_OK)
			goto fail;
	}
#endif
	if (redisSetTimeout(q->c, q->command_timeout) != REDIS_OK)
		goto fail;
	if (q->url.password[0]) {
		if (q->url.user[0])
			r = redisCommand(q->c, "AUTH %s %s", q->url.user, q->url.password);
		else
			r = redisCommand(q->c, "AUTH %s", q->url.password);
		if (!r)
			goto fail;
		if (r->type == REDIS_REPLY_ERROR) {
			err_set(err, ERR_AUTH, "redis refused the password: %s", r->str);
			freeReplyObject(r);
			drop(q);
			q->retry_at_us = now + BACKOFF_MAX_US;
			return -1;
		}
		freeReplyObject(r);
	}
	if (q->url.db) {
		r = redisCommand(q->c, "SELECT %d", q->url.db);
		if (!r)
			goto fail;
		if (r->type == REDIS_REPLY_ERROR) {
			err_set(err, ERR_INVALID, "redis refused db %d: %s", q->url.db, r->str);
			freeReplyObject(r);
			drop(q);
			return -1;
		}
		freeReplyObject(r);
	}
	r = redisCommand(q->c, "TIME");
	if (!r)
		goto fail;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
		q->skew_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
			     strtoll(r->element[1]->str, NULL, 10) / 1000 -
			     clock_now_us() / 1000;
	freeReplyObject(r);
	q->backoff_us = BACKOFF_MIN_US;
	return 0;
fail:
	err_set(err, ERR_UNAVAILABLE, "cannot connect to redis at '%s:%d': %s",
		q->url.host, q->url.port,
		q->c && q->c->errstr[0] ? q->c->errstr : "out of memory");
	drop(q);
	q->retry_at_us = now + q->backoff_us;
	q->backoff_us = q->backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : q->backoff_us * 2;
	return -1;
}

struct queue *queue_connect(const struct queue_opts *opts, struct err *err)
{
	struct queue *q;
	struct queue_url url;
	const char *u = opts && opts->url && *opts->url ? opts->url : "redis://127.0.0.1:6379";

	if (queue_url_parse(u, &url, err) < 0)
		return NULL;
	if (url.tls && !queue_tls_supported()) {
		err_set(err, ERR_INVALID,
			"rediss:// needs TLS, and this build's hiredis has none (hiredis >= 1.0 with hiredis_ssl)");
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->url = url;
	q->connect_timeout = tv_of(opts && opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 5);
	q->command_timeout = tv_of(opts && opts->command_timeout_s > 0 ? opts->command_timeout_s : 10);
	q->backoff_us = BACKOFF_MIN_US;
	if (ensure(q, err) < 0 || queue_ping(q, err) < 0) {
		queue_free(q);
		return NULL;
	}
	return q;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	drop(q);
#ifdef WAKEQ_HIREDIS_SSL
	if (q->ssl)
		redisFreeSSLContext(q->ssl);
#endif
	memset(&q->url, 0, sizeof(q->url)); /* the password */
	free(q);
}

/* Runs argv as one command. Returns the reply (caller frees) or NULL with
 * err set; error replies are turned into err too. */
static redisReply *command(struct queue *q, struct args *a, struct err *err)
{
	redisReply *r;

	if (q->waiting) {
		err_set(err, ERR_INTERNAL, "queue connection busy with a wait");
		return NULL;
	}
	if (ensure(q, err) < 0)
		return NULL;
	args_finish(a);
	r = redisCommandArgv(q->c, (int)a->n, a->v, a->len);
	if (!r) {
		fail_io(q, err, a->n ? a->v[0] : "command");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		err_set(err, ERR_PROTOCOL, "redis error: %s", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Runs script `s` on queue `name` with ARGV from `a` (already holding the
 * ARGV part after two leading slots reserved by script_args). */
static void script_args(struct args *a, char *prefix, size_t cap, const char *name)
{
	args_init(a);
	args_add(a, "EVALSHA");
	args_add(a, NULL); /* sha or script, set in run_script */
	args_add(a, "1");
	snprintf(prefix, cap, "wakeq:{%s}:", name);
	args_add(a, prefix);
}

static redisReply *run_script(struct queue *q, enum script s, struct args *a,
			      struct err *err)
{
	redisReply *r;
	struct err e;

	a->v[0] = "EVALSHA";
	a->len[0] = 7;
	a->v[1] = script_sha[s];
	a->len[1] = 40;
	r = command(q, a, &e);
	if (!r && e.code == ERR_PROTOCOL && strstr(e.msg, "NOSCRIPT")) {
		a->v[0] = "EVAL";
		a->len[0] = 4;
		a->v[1] = script_text[s];
		a->len[1] = strlen(script_text[s]);
		r = command(q, a, &e);
	}
	if (!r && err)
		*err = e;
	return r;
}

#define PREFIX_MAX (QUEUE_NAME_MAX + 16)

int queue_name_check(const char *name, struct err *err)
{
	size_t i, n = name ? strlen(name) : 0;

	if (n == 0 || n > QUEUE_NAME_MAX)
		return err_set(err, ERR_INVALID, "bad queue name '%.80s': 1 to %d characters",
			       name ? name : "", QUEUE_NAME_MAX);
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return err_set(err, ERR_INVALID,
				       "bad queue name '%.80s': use letters, digits, '_', '-', '.'", name);
	}
	return 0;
}

int queue_ping(struct queue *q, struct err *err)
{
	struct args a;
	redisReply *r;

	args_init(&a);
	args_add(&a, "PING");
	r = command(q, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

/* ---- reply helpers ------------------------------------------------------ */

static int64_t rint_of(const redisReply *r)
{
	if (!r)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
		return strtoll(r->str, NULL, 10);
	return 0;
}

static char *rstr_dup(const redisReply *r)
{
	if (!r || r->type == REDIS_REPLY_NIL)
		return NULL;
	if (r->type == REDIS_REPLY_INTEGER)
		return xasprintf("%lld", r->integer);
	return xstrndup(r->str, r->len);
}

static int bad_reply(struct err *err, const char *what)
{
	return err_set(err, ERR_PROTOCOL, "unexpected redis reply to %s", what);
}

/* ---- enqueue ------------------------------------------------------------ */

int queue_enqueue(struct queue *q, const char *queue,
		  const struct queue_spec *specs, size_t n,
		  struct queue_enqueued *out, int *live_worker,
		  struct err *err)
{
	char prefix[PREFIX_MAX];
	char (*ids)[UUID_STR_LEN] = NULL;
	struct args a;
	redisReply *r = NULL;
	size_t i;
	int rc = -1;

	if (queue_name_check(queue, err) < 0)
		return -1;
	if (n == 0 || n > QUEUE_MAX_BATCH)
		return err_set(err, ERR_INVALID, "enqueue takes 1 to %d jobs, not %zu",
			       QUEUE_MAX_BATCH, n);
	for (i = 0; i < n; i++) {
		const struct queue_spec *s = &specs[i];

		if (!s->type || !*s->type)
			return err_set(err, ERR_INVALID, "job type is required");
		if (s->priority < 0 || s->priority > QUEUE_PRIORITY_MAX)
			return err_set(err, ERR_INVALID, "priority %d out of range 0..%d",
				       s->priority, QUEUE_PRIORITY_MAX);
		if (s->max_attempts < 0 || s->delay_ms < 0 || s->run_at_ms < 0 || s->timeout_s < 0)
			return err_set(err, ERR_INVALID, "negative max_attempts, delay, run_at or timeout");
		if (s->id && !uuid_valid(s->id))
			return err_set(err, ERR_INVALID, "bad job id '%.40s'", s->id);
	}
	ids = xmalloc(n * sizeof(*ids));
	script_args(&a, prefix, sizeof(prefix), queue);
	args_addi(&a, (int64_t)n);
	for (i = 0; i < n; i++) {
		const struct queue_spec *s = &specs[i];

		if (s->id)
			memcpy(ids[i], s->id, UUID_STR_LEN);
		else
			uuid7_new(ids[i]);
		args_add(&a, ids[i]);
		args_add(&a, s->type);
		args_add(&a, s->payload ? s->payload : "{}");
		args_addi(&a, s->priority);
		args_addi(&a, s->run_at_ms);
		args_addi(&a, s->delay_ms);
		args_addi(&a, s->max_attempts ? s->max_attempts : 3);
		args_addd(&a, s->timeout_s);
		args_add(&a, s->idempotency_key);
		args_addi(&a, s->idempotency_ttl_s > 0 ? s->idempotency_ttl_s : 86400);
		args_add(&a, s->callback_url);
		args_add(&a, s->trace);
	}
	r = run_script(q, S_ENQUEUE, &a, err);
	if (!r)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 + 2 * n) {
		bad_reply(err, "enqueue");
		goto out;
	}
	if (live_worker)
		*live_worker = rint_of(r->element[0]) != 0;
	for (i = 0; i < n; i++) {
		const redisReply *id = r->element[1 + 2 * i];

		if (id->type != REDIS_REPLY_STRING || id->len >= UUID_STR_LEN) {
			bad_reply(err, "enqueue");
			goto out;
		}
		memcpy(out[i].id, id->str, id->len);
		out[i].id[id->len] = '\0';
		out[i].created = rint_of(r->element[2 + 2 * i]) != 0;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	args_release(&a);
	free(ids);
	return rc;
}

/* ---- take and settle ---------------------------------------------------- */

void queue_job_release(struct queue_job *job)
{
	if (!job)
		return;
	free(job->type);
	free(job->payload);
	free(job->callback_url);
	free(job->trace);
	memset(job, 0, sizeof(*job));
}

static const char outcome_letter[] = {
	[QUEUE_DONE] = 'd', [QUEUE_RETRY] = 'r', [QUEUE_FAIL] = 'f',
	[QUEUE_CANCELLED] = 'c', [QUEUE_REQUEUE] = 'q',
};

#define TAKE_FIELDS 11

int queue_take(struct queue *q, const char *queue, struct queue_take *t,
	       struct err *err)
{
	char prefix[PREFIX_MAX];
	char (*tokens)[24] = NULL;
	char letters[QUEUE_MAX_BATCH][2];
	struct args a;
	redisReply *r = NULL, *flags;
	size_t i, n;
	int rc = -1;

	t->njobs = 0;
	t->nstale = 0;
	t->next_due_ms = 0;
	if (queue_name_check(queue, err) < 0)
		return -1;
	if (t->max > QUEUE_MAX_BATCH || t->nsettle > QUEUE_MAX_BATCH)
		return err_set(err, ERR_INVALID, "take and settle at most %d jobs a call",
			       QUEUE_MAX_BATCH);
	tokens = xmalloc((t->nsettle ? t->nsettle : 1) * sizeof(*tokens));
	script_args(&a, prefix, sizeof(prefix), queue);
	args_add(&a, t->worker);
	args_addi(&a, t->lease_ms);
	args_addi(&a, (int64_t)t->max);
	args_addi(&a, (int64_t)t->nsettle);
	args_addi(&a, queue_limits.result_ttl_s);
	args_addi(&a, queue_limits.done_max);
	args_addi(&a, queue_limits.dead_max);
	for (i = 0; i < t->nsettle; i++) {
		const struct queue_settle *s = &t->settle[i];

		args_add(&a, s->id);
		snprintf(tokens[i], sizeof(tokens[i]), "%lld", (long long)s->token);
		args_add(&a, tokens[i]);
		letters[i][0] = outcome_letter[s->outcome];
		letters[i][1] = '\0';
		args_add(&a, letters[i]);
		args_add(&a, s->outcome == QUEUE_DONE ? (s->result ? s->result : "null") : "");
		args_add(&a, s->error);
		args_addi(&a, s->delay_ms);
	}
	r = run_script(q, S_TAKE, &a, err);
	if (!r)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
	    r->element[2]->type != REDIS_REPLY_STRING) {
		bad_reply(err, "take");
		goto out;
	}
	n = (size_t)rint_of(r->element[3]);
	flags = r->element[2];
	if (n > t->max || r->elements != 4 + n * TAKE_FIELDS || flags->len != t->nsettle) {
		bad_reply(err, "take");
		goto out;
	}
	t->server_now_ms = rint_of(r->element[0]);
	t->next_due_ms = rint_of(r->element[1]);
	for (i = 0; i < t->nsettle; i++) {
		t->settle[i].stale = flags->str[i] == 's';
		t->settle[i].final = flags->str[i] == 'f';
		t->nstale += flags->str[i] == 's';
	}
	for (i = 0; i < n; i++) {
		redisReply **e = r->element + 4 + i * TAKE_FIELDS;
		struct queue_job *j = &t->jobs[i];

		memset(j, 0, sizeof(*j));
		if (e[0]->type != REDIS_REPLY_STRING || e[0]->len >= UUID_STR_LEN) {
			bad_reply(err, "take");
			while (i-- > 0)
				queue_job_release(&t->jobs[i]);
			goto out;
		}
		memcpy(j->id, e[0]->str, e[0]->len);
		j->token = rint_of(e[1]);
		j->attempts = (int)rint_of(e[2]);
		j->type = rstr_dup(e[3]);
		j->payload = rstr_dup(e[4]);
		j->max_attempts = (int)rint_of(e[5]);
		j->timeout_s = e[6]->type == REDIS_REPLY_STRING ? strtod(e[6]->str, NULL) : 0;
		j->callback_url = e[7]->len ? rstr_dup(e[7]) : NULL;
		j->trace = e[8]->len ? rstr_dup(e[8]) : NULL;
		j->created_us = rint_of(e[9]);
		j->priority = (int)rint_of(e[10]);
		if (!j->type)
			j->type = xstrdup("");
		if (!j->payload)
			j->payload = xstrdup("{}");
	}
	t->njobs = n;
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	args_release(&a);
	free(tokens);
	return rc;
}

int64_t queue_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms)
{
	double d = (double)base_ms;
	uint32_t rnd;
	int i;

	for (i = 1; i < attempts && d < (double)cap_ms; i++)
		d *= 2;
	if (d > (double)cap_ms)
		d = (double)cap_ms;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)clock_mono_us();
	return (int64_t)(d * (0.5 + 0.5 * ((double)rnd / 4294967296.0)));
}

int queue_progress(struct queue *q, const char *queue, const char *id,
		   int64_t token, double percent, const char *stage,
		   struct err *err)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	int rc = -1;

	if (queue_name_check(queue, err) < 0)
		return -1;
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	script_args(&a, prefix, sizeof(prefix), queue);
	args_add(&a, id);
	args_addi(&a, token);
	args_addi(&a, 0);
	a.len[a.n - 1] = (size_t)snprintf(a.nums[a.nnums - 1], 24, "%.1f", percent);
	args_add(&a, stage);
	if ((r = run_script(q, S_PROGRESS, &a, err))) {
		if (rint_of(r) == 1)
			rc = 0;
		else
			err_set(err, ERR_STALE, "lease of job '%s' is no longer ours", id);
		freeReplyObject(r);
	}
	args_release(&a);
	return rc;
}

/* ---- leases and workers ------------------------------------------------- */

int queue_renew(struct queue *q, const char *queue, const char *worker,
		int64_t lease_ms, int64_t ttl_ms, struct queue_lease *leases,
		size_t n, struct err *err)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	size_t i;
	int rc = -1;

	if (queue_name_check(queue, err) < 0)
		return -1;
	script_args(&a, prefix, sizeof(prefix), queue);
	args_add(&a, worker);
	args_addi(&a, lease_ms);
	args_addi(&a, ttl_ms);
	args_addi(&a, (int64_t)n);
	for (i = 0; i < n; i++) {
		args_add(&a, leases[i].id);
		args_addi(&a, leases[i].token);
	}
	if ((r = run_script(q, S_RENEW, &a, err))) {
		if (r->type != REDIS_REPLY_STRING || r->len != n) {
			bad_reply(err, "renew");
		} else {
			for (i = 0; i < n; i++) {
				leases[i].lost = r->str[i] == 'l';
				leases[i].cancel = r->str[i] == 'c';
			}
			rc = 0;
		}
		freeReplyObject(r);
	}
	args_release(&a);
	return rc;
}

int queue_register(struct queue *q, const char *queue, const char *worker,
		   int64_t ttl_ms, struct err *err)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	int rc;

	if (queue_name_check(queue, err) < 0)
		return -1;
	script_args(&a, prefix, sizeof(prefix), queue);
	args_add(&a, worker);
	args_addi(&a, ttl_ms);
	r = run_script(q, S_REGISTER, &a, err);
	rc = r ? 0 : -1;
	if (rc == 0)
		freeReplyObject(r);
	args_release(&a);
	return rc;
}

int queue_touch(struct queue *q, const char *queue, const char *worker,
		int64_t ttl_ms, struct err *err)
{
	char key[PREFIX_MAX + 16];
	struct args a;
	redisReply *r;

	if (queue_name_check(queue, err) < 0)
		return -1;
	if (ensure(q, err) < 0)
		return -1;
	snprintf(key, sizeof(key), "wakeq:{%s}:workers", queue);
	args_init(&a);
	args_add(&a, "ZADD");
	args_add(&a, key);
	args_add(&a, "XX");
	args_addi(&a, clock_now_us() / 1000 + q->skew_ms + ttl_ms);
	args_add(&a, worker);
	r = command(q, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

int queue_retire(struct queue *q, const char *queue, const char *worker,
		 int force, int *retired, struct err *err)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	int rc;

	if (queue_name_check(queue, err) < 0)
		return -1;
	script_args(&a, prefix, sizeof(prefix), queue);
	args_add(&a, worker);
	args_add(&a, force ? "1" : "0");
	r = run_script(q, S_RETIRE, &a, err);
	rc = r ? 0 : -1;
	if (rc == 0) {
		*retired = rint_of(r) == 1;
		freeReplyObject(r);
	}
	args_release(&a);
	return rc;
}

int queue_live_workers(struct queue *q, const char *queue, struct err *err)
{
	struct queue_counts c;

	if (queue_counts(q, queue, &c, err) < 0)
		return -1;
	return (int)c.workers;
}

/* ---- waiting ------------------------------------------------------------ */

int queue_wait_begin(struct queue *q, const char *const *queues, size_t n,
		     int64_t timeout_ms, struct err *err)
{
	char (*keys)[PREFIX_MAX + 8];
	char secs[32];
	struct args a;
	size_t i;
	int rc = -1;

	if (q->waiting)
		return err_set(err, ERR_INTERNAL, "a wait is already in progress");
	if (ensure(q, err) < 0)
		return -1;
	keys = xmalloc((n ? n : 1) * sizeof(*keys));
	args_init(&a);
	args_add(&a, "BLPOP");
	for (i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "wakeq:{%s}:marker", queues[i]);
		args_add(&a, keys[i]);
	}
	if (timeout_ms < 1)
		timeout_ms = 1;
	snprintf(secs, sizeof(secs), "%.3f", (double)timeout_ms / 1000.0);
	args_add(&a, secs);
	args_finish(&a);
	if (redisAppendCommandArgv(q->c, (int)a.n, a.v, a.len) != REDIS_OK) {
		fail_io(q, err, "BLPOP");
		goto out;
	}
	/* Flush the request; the socket stays blocking but small writes never
	 * wait in practice, and redisBufferWrite loops until done. */
	{
		int done = 0;

		while (!done)
			if (redisBufferWrite(q->c, &done) != REDIS_OK) {
				fail_io(q, err, "BLPOP");
				goto out;
			}
	}
	q->waiting = 1;
	rc = 0;
out:
	args_release(&a);
	free(keys);
	return rc;
}

int queue_fd(const struct queue *q)
{
	return q->c ? q->c->fd : -1;
}

int queue_wait_poll(struct queue *q, struct err *err)
{
	void *reply = NULL;
	redisReply *r;
	int got;

	if (!q->waiting || !q->c)
		return err_set(err, ERR_INTERNAL, "no wait in progress");
	/* Something is buffered already, or the socket is readable: one read
	 * (it does not block, the caller polled). */
	if (redisGetReplyFromReader(q->c, &reply) != REDIS_OK)
		return fail_io(q, err, "BLPOP");
	if (!reply) {
		if (redisBufferRead(q->c) != REDIS_OK)
			return fail_io(q, err, "BLPOP");
		if (redisGetReplyFromReader(q->c, &reply) != REDIS_OK)
			return fail_io(q, err, "BLPOP");
		if (!reply)
			return 2;
	}
	q->waiting = 0;
	r = reply;
	if (r->type == REDIS_REPLY_ERROR) {
		err_set(err, ERR_PROTOCOL, "redis error: %s", r->str);
		freeReplyObject(r);
		return -1;
	}
	got = r->type == REDIS_REPLY_ARRAY;
	freeReplyObject(r);
	return got;
}

void queue_wait_cancel(struct queue *q)
{
	if (q->waiting)
		drop(q);
}

/* ---- inspection and operations ------------------------------------------ */

static const char *const state_names[QUEUE_NSTATES] = {
	"queued", "scheduled", "active", "retrying", "done", "failed", "cancelled",
};

const char *queue_state_name(enum queue_state s)
{
	return (unsigned)s < QUEUE_NSTATES ? state_names[s] : "unknown";
}

int queue_state_parse(const char *name, enum queue_state *out)
{
	int i;

	for (i = 0; i < QUEUE_NSTATES; i++)
		if (name && !strcmp(name, state_names[i])) {
			*out = (enum queue_state)i;
			return 0;
		}
	return -1;
}

int queue_counts(struct queue *q, const char *queue, struct queue_counts *out,
		 struct err *err)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	int rc;

	if (queue_name_check(queue, err) < 0)
		return -1;
	script_args(&a, prefix, sizeof(prefix), queue);
	r = run_script(q, S_COUNTS, &a, err);
	rc = r ? 0 : -1;
	args_release(&a);
	if (rc < 0)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 10) {
		freeReplyObject(r);
		return bad_reply(err, "counts");
	}
	memset(out, 0, sizeof(*out));
	out->n[QUEUE_QUEUED] = rint_of(r->element[0]);
	out->n[QUEUE_RETRYING] = rint_of(r->element[5]);
	out->n[QUEUE_SCHEDULED] = rint_of(r->element[1]) - out->n[QUEUE_RETRYING];
	if (out->n[QUEUE_SCHEDULED] < 0)
		out->n[QUEUE_SCHEDULED] = 0;
	out->n[QUEUE_ACTIVE] = rint_of(r->element[2]);
	out->n[QUEUE_DONE_STATE] = rint_of(r->element[3]);
	out->n[QUEUE_FAILED] = rint_of(r->element[4]);
	out->n[QUEUE_CANCELLED_STATE] = rint_of(r->element[6]);
	out->workers = rint_of(r->element[7]);
	out->stale = rint_of(r->element[8]);
	out->next_due_ms = rint_of(r->element[9]);
	freeReplyObject(r);
	return 0;
}

/* Adds a JSON value stored as text; a text that is not JSON is kept as a
 * string so nothing is lost. */
static void set_json_text(json_t *o, const char *key, const char *text)
{
	json_t *v = NULL;

	if (text && *text)
		v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v && text && *text)
		v = json_string(text);
	json_object_set_new(o, key, v ? v : json_null());
}

static void set_time(json_t *o, const char *key, const char *us_text)
{
	char buf[CLOCK_RFC3339_LEN];
	long long us = us_text && *us_text ? strtoll(us_text, NULL, 10) : 0;

	json_object_set_new(o, key, us > 0 ? json_string(clock_rfc3339(us, buf)) : json_null());
}

char *queue_job_json(struct queue *q, const char *queue, const char *id,
		     struct err *err)
{
	char key[PREFIX_MAX + UUID_STR_LEN + 8];
	const char *f[32] = { 0 };
	static const char *const names[] = {
		"type", "payload", "status", "priority", "attempts", "max_attempts",
		"progress", "stage", "result", "error", "created", "started",
		"finished", "run_at", "cancel", "timeout",
	};
	enum { F_TYPE, F_PAYLOAD, F_STATUS, F_PRIORITY, F_ATTEMPTS, F_MAX, F_PROGRESS,
	       F_STAGE, F_RESULT, F_ERROR, F_CREATED, F_STARTED, F_FINISHED, F_RUNAT,
	       F_CANCEL, F_TIMEOUT, F_N };
	struct args a;
	redisReply *r;
	json_t *o;
	char *text;
	size_t i, k;

	if (queue_name_check(queue, err) < 0)
		return NULL;
	snprintf(key, sizeof(key), "wakeq:{%s}:job:%s", queue, id);
	args_init(&a);
	args_add(&a, "HGETALL");
	args_add(&a, key);
	r = command(q, &a, err);
	args_release(&a);
	if (!r)
		return NULL;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		bad_reply(err, "HGETALL");
		return NULL;
	}
	if (r->elements == 0) {
		freeReplyObject(r);
		err_set(err, ERR_NOTFOUND, "no job '%s' in queue '%s'", id, queue);
		return NULL;
	}
	for (i = 0; i + 1 < r->elements; i += 2)
		for (k = 0; k < F_N; k++)
			if (!strcmp(r->element[i]->str, names[k]))
				f[k] = r->element[i + 1]->str;
	o = json_object();
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "type", json_string(f[F_TYPE] ? f[F_TYPE] : ""));
	json_object_set_new(o, "status", json_string(f[F_STATUS] ? f[F_STATUS] : "unknown"));
	json_object_set_new(o, "priority", json_integer(f[F_PRIORITY] ? atoll(f[F_PRIORITY]) : 0));
	json_object_set_new(o, "attempts", json_integer(f[F_ATTEMPTS] ? atoll(f[F_ATTEMPTS]) : 0));
	json_object_set_new(o, "max_attempts", json_integer(f[F_MAX] ? atoll(f[F_MAX]) : 0));
	json_object_set_new(o, "progress", json_real(f[F_PROGRESS] ? atof(f[F_PROGRESS]) : 0));
	json_object_set_new(o, "stage", f[F_STAGE] ? json_string(f[F_STAGE]) : json_null());
	set_json_text(o, "payload", f[F_PAYLOAD]);
	set_json_text(o, "result", f[F_RESULT]);
	json_object_set_new(o, "error", f[F_ERROR] && *f[F_ERROR] ? json_string(f[F_ERROR]) : json_null());
	set_time(o, "created_at", f[F_CREATED]);
	set_time(o, "started_at", f[F_STARTED]);
	set_time(o, "finished_at", f[F_FINISHED]);
	set_time(o, "run_at", f[F_RUNAT]);
	if (f[F_CANCEL])
		json_object_set_new(o, "cancel_requested", json_true());
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	freeReplyObject(r);
	return text;
}

int queue_list(struct queue *q, const char *queue, enum queue_state state,
	       size_t offset, size_t limit, char ***ids, struct err *err)
{
	char key[PREFIX_MAX + 16];
	static const char *const set_of[QUEUE_NSTATES] = {
		"pending", "delayed", "active", "delayed", "done", "dead", NULL,
	};
	char start[24], stop[24];
	struct args a;
	redisReply *r;
	char **out;
	size_t i, n = 0;
	int rev = state == QUEUE_DONE_STATE || state == QUEUE_FAILED;

	*ids = NULL;
	if (queue_name_check(queue, err) < 0)
		return -1;
	if ((unsigned)state >= QUEUE_NSTATES || !set_of[state] || limit == 0)
		return 0;
	snprintf(key, sizeof(key), "wakeq:{%s}:%s", queue, set_of[state]);
	snprintf(start, sizeof(start), "%zu", offset);
	snprintf(stop, sizeof(stop), "%zu", offset + limit - 1);
	args_init(&a);
	args_add(&a, rev ? "ZREVRANGE" : "ZRANGE");
	args_add(&a, key);
	args_add(&a, start);
	args_add(&a, stop);
	r = command(q, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return bad_reply(err, "ZRANGE");
	}
	out = xcalloc(r->elements + 1, sizeof(*out));
	for (i = 0; i < r->elements; i++)
		out[n++] = rstr_dup(r->element[i]);
	freeReplyObject(r);
	*ids = out;
	return (int)n;
}

static int status_script(struct queue *q, enum script s, const char *queue,
			 const char *id, struct err *err, int64_t *res)
{
	char prefix[PREFIX_MAX];
	struct args a;
	redisReply *r;
	int rc;

	if (queue_name_check(queue, err) < 0)
		return -1;
	script_args(&a, prefix, sizeof(prefix), queue);
	if (id)
		args_add(&a, id);
	args_addi(&a, queue_limits.result_ttl_s);
	r = run_script(q, s, &a, err);
	rc = r ? 0 : -1;
	args_release(&a);
	if (rc < 0)
		return -1;
	*res = rint_of(r);
	freeReplyObject(r);
	return 0;
}

/* Runs a per-job script that answers -1 for no such job (turned into
 * ERR_NOTFOUND here) and -2 for a job in the wrong state (left to the
 * caller, which knows what state was wanted). Returns the answer or -1. */
static int job_script(struct queue *q, enum script s, const char *queue,
		      const char *id, struct err *err)
{
	int64_t res;

	if (status_script(q, s, queue, id, err, &res) < 0)
		return -1;
	if (res == -1)
		return err_set(err, ERR_NOTFOUND, "no job '%s' in queue '%s'", id, queue);
	return (int)res;
}

int queue_cancel(struct queue *q, const char *queue, const char *id,
		 struct err *err)
{
	int r = job_script(q, S_CANCEL, queue, id, err);

	if (r == -2)
		return err_set(err, ERR_CONFLICT, "job '%s' has already finished", id);
	return r;
}

int queue_retry_dead(struct queue *q, const char *queue, const char *id,
		     struct err *err)
{
	int r = job_script(q, S_RETRY_DEAD, queue, id, err);

	if (r == -2)
		return err_set(err, ERR_CONFLICT, "job '%s' is not in the dead letters", id);
	return r < 0 ? -1 : 0;
}

int64_t queue_purge_dead(struct queue *q, const char *queue, struct err *err)
{
	int64_t total = 0, n;

	do {
		if (status_script(q, S_PURGE_DEAD, queue, NULL, err, &n) < 0)
			return -1;
		total += n;
	} while (n > 0);
	return total;
}

int queue_discover(struct queue *q, char ***names, struct err *err)
{
	struct args a;
	char cursor[32] = "0";
	char **out = NULL;
	size_t n = 0, cap = 0, i;

	*names = NULL;
	do {
		redisReply *r;

		args_init(&a);
		args_add(&a, "SCAN");
		args_add(&a, cursor);
		args_add(&a, "MATCH");
		args_add(&a, "wakeq:{*}:seq");
		args_add(&a, "COUNT");
		args_add(&a, "1000");
		r = command(q, &a, err);
		args_release(&a);
		if (!r)
			goto fail;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			freeReplyObject(r);
			bad_reply(err, "SCAN");
			goto fail;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i < r->element[1]->elements; i++) {
			const char *k = r->element[1]->element[i]->str;
			const char *open = strchr(k, '{'), *close = strrchr(k, '}');

			if (!open || !close || close <= open)
				continue;
			if (n + 1 >= cap) {
				cap = cap ? cap * 2 : 8;
				out = xrealloc(out, cap * sizeof(*out));
			}
			out[n++] = xstrndup(open + 1, (size_t)(close - open - 1));
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0"));
	*names = out;
	return (int)n;
fail:
	for (i = 0; i < n; i++)
		free(out[i]);
	free(out);
	return -1;
}
