/* queue.c - the Redis side of wakeq: connection, scripts, replies.
 *
 * Each operation builds an argument vector and runs one script with
 * EVALSHA; the SHA1 of every script is computed at build time (lua2c.sh),
 * so there is no load round trip and no hashing at run time: NOSCRIPT is answered with EVAL, which also caches the
 * script for the next EVALSHA on any connection.
 */
#include "queue/priv.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/parse.h"

#include <hiredis.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "queue/scripts.h"

struct queue_limits queue_limits = { QUEUE_RESULT_TTL_DEFAULT, 10000, 10000 };

/* ---- scripts ------------------------------------------------------------ */

enum script {
	S_ENQUEUE, S_TAKE, S_RENEW, S_REGISTER, S_RETIRE, S_PROGRESS,
	S_CANCEL, S_RETRY_DEAD, S_PURGE_DEAD, S_COUNTS, S_PAUSE, S_SETTINGS,
	S_SCHED_PUT, S_SCHED_TIMES, S_SCHED_DEL, S_METRICS, S_JOBS_GET, S_NSCRIPTS
};

/* Each script's text and SHA-1 (what EVALSHA names it by), both made by
 * lua2c.sh from its .lua file. */
#define SCRIPT(name) { queue_lua_##name, queue_sha_##name }
static const struct {
	const char *text, *sha;
} scripts[S_NSCRIPTS] = {
	[S_ENQUEUE] = SCRIPT(enqueue),
	[S_TAKE] = SCRIPT(take),
	[S_RENEW] = SCRIPT(renew),
	[S_REGISTER] = SCRIPT(register),
	[S_RETIRE] = SCRIPT(retire),
	[S_PROGRESS] = SCRIPT(progress),
	[S_CANCEL] = SCRIPT(cancel),
	[S_RETRY_DEAD] = SCRIPT(retry_dead),
	[S_PURGE_DEAD] = SCRIPT(purge_dead),
	[S_COUNTS] = SCRIPT(counts),
	[S_PAUSE] = SCRIPT(pause),
	[S_SETTINGS] = SCRIPT(settings),
	[S_SCHED_PUT] = SCRIPT(sched_put),
	[S_SCHED_TIMES] = SCRIPT(sched_times),
	[S_SCHED_DEL] = SCRIPT(sched_del),
	[S_METRICS] = SCRIPT(metrics),
	[S_JOBS_GET] = SCRIPT(jobs_get),
};
#undef SCRIPT

/* ---- argument vectors --------------------------------------------------- */

/* Arguments are borrowed strings or numbers formatted into `nums`; numbers
 * are referenced by index until args_finish() resolves them, since `nums`
 * may move while it grows. */
#define PREFIX_MAX (QUEUE_NAME_MAX + 16)

struct args {
	const char **v;
	size_t *len;
	long *num;      /* index into nums, or -1 for a borrowed string */
	size_t n, cap;
	char (*nums)[24];
	size_t nnums, numcap;
	char prefix[PREFIX_MAX]; /* a script's KEYS[1], from script_args */
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
	struct queue_opts opts;  /* a copy: the password is wiped on free */
	struct queue_tls *tls;   /* rediss://: made on first connect */
	int64_t retry_at_us;     /* monotonic: no reconnect before this */
	int64_t backoff_us;      /* next reconnect delay */
	int waiting;             /* a BLPOP is outstanding */
	int64_t skew_ms;         /* server clock - our clock, at connect */
	int in_doubt;            /* the last command left whole and its answer
				  * timed out: it may run (queue_conn_command) */
	struct queue_cluster *cl; /* redis+cluster://: its connections
				   * (cluster.c); c is then unused */
	int64_t used_us;         /* monotonic: c's last answer (queue_check) */
};

/* ---- script reply layouts ------------------------------------------------
 * The replies of the scripts are flat arrays read by position. Each layout
 * is written down once here and once, with the same names, at the top of
 * its .lua file. Rule: both files change in the same commit, and the reply
 * length is checked before any field is read. A process runs only the
 * scripts built into it (EVALSHA by their own SHA-1), so a layout may be
 * reordered; the stored records are the format that must stay readable
 * across versions (docs/QUEUE.md "Arguments and replies").
 */

/* enqueue: { live, states (a letter a job), then a string for each job
 * lettered e (the existing job's id) or m (the missing dependency) } */
enum { ENQ_REPLY_LIVE, ENQ_REPLY_STATES, ENQ_REPLY_HEAD };

/* take: { now_ms, next_due_ms, flags, n, paused, refill, finals, then per
 * job: TAKE_JOB_* } */
enum {
	TAKE_NOW, TAKE_NEXT_DUE, TAKE_FLAGS, TAKE_COUNT, TAKE_PAUSED, TAKE_REFILL,
	TAKE_FINALS, TAKE_HEAD
};
enum {
	TAKE_JOB_ID, TAKE_JOB_TOKEN, TAKE_JOB_ATTEMPTS, TAKE_JOB_SPEC,
	TAKE_JOB_PAYLOAD, TAKE_JOB_FIXED /* then the optional fields the
	* spec's flags name: callback, trace, deps and deps_cut */
};

/* metrics: { now_ms, due, oldest_due_ms, then field, value pairs } */
enum { MET_NOW, MET_DUE, MET_OLDEST_DUE, MET_HEAD };

/* counts: one integer each */
enum {
	COUNT_PENDING, COUNT_DELAYED, COUNT_ACTIVE, COUNT_DONE, COUNT_DEAD,
	COUNT_RETRYING, COUNT_CANCELLED, COUNT_WORKERS, COUNT_STALE,
	COUNT_NEXT_DUE, COUNT_PAUSED, COUNT_DONE_TOTAL, COUNT_FAILED_TOTAL,
	COUNT_DUE, COUNT_HELD, COUNT_WAKE_AT, COUNT_WAITING, COUNT_LEASE, COUNT_FIELDS
};

/* pause: { due, live workers, next due } */
enum { PAUSE_DUE, PAUSE_LIVE, PAUSE_NEXT_DUE, PAUSE_FIELDS };

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

/* Schedules the next connect attempt after an unreachable server. */
static void back_off(struct queue *q, int64_t now)
{
	q->retry_at_us = now + q->backoff_us;
	q->backoff_us = q->backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : q->backoff_us * 2;
}

/* A connect that failed with *e: an unreachable server backs off, a
 * refusal waits the longest. Returns -1 with err = *e. */
static int connect_failed(struct queue *q, int64_t now, const struct err *e,
			  struct err *err)
{
	if (e->code == ERR_UNAVAILABLE)
		back_off(q, now);
	else
		q->retry_at_us = now + BACKOFF_MAX_US;
	if (err)
		*err = *e;
	return -1;
}

/* ensure() on a cluster: the slot map (re)read, then a node connected
 * (cluster.c measures each node's clock skew when it connects). */
static int ensure_cluster(struct queue *q, int64_t now, struct err *err)
{
	struct err e;

	if (queue_cluster_ready(q->cl, &e) < 0 ||
	    queue_cluster_skew(q->cl, -1, &q->skew_ms, &e) < 0)
		return connect_failed(q, now, &e, err);
	q->backoff_us = BACKOFF_MIN_US;
	q->used_us = clock_mono_us();
	return 0;
}

/* (Re)connects when needed, honouring the backoff: the handshake of
 * conn.c, then TIME for the clock skew. An unreachable server backs off
 * from 50 ms to 2 s; a refusal (password, db, TLS set-up) waits 2 s.
 * Returns 0 or -1. */
static int ensure(struct queue *q, struct err *err)
{
	struct err e;
	int64_t now;

	if (q->c || (q->cl && queue_cluster_connected(q->cl)))
		return 0;
	q->in_doubt = 0; /* a new connection: no command on it yet */
	now = clock_mono_us();
	if (now < q->retry_at_us)
		return err_set(err, ERR_UNAVAILABLE, "redis at '%s' unavailable; retrying in %lld ms",
			       q->opts.url.host, (long long)(q->retry_at_us - now) / 1000);
	if (q->cl)
		return ensure_cluster(q, now, err);
	q->c = queue_conn_open(&q->opts, &q->tls, &e);
	if (!q->c)
		return connect_failed(q, now, &e, err);
	if (queue_conn_skew(q->c, &q->skew_ms) < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot connect to redis at '%s': %s",
			q->opts.url.host, q->c->errstr[0] ? q->c->errstr : "connection lost");
		drop(q);
		back_off(q, now);
		return -1;
	}
	q->backoff_us = BACKOFF_MIN_US;
	return 0;
}

int queue_connected(const struct queue *q)
{
	return q->cl ? queue_cluster_connected(q->cl) : q->c != NULL;
}

int queue_check(struct queue *q, int64_t max_idle_ms)
{
	struct pollfd p;

	if (!q->c || q->waiting)
		return q->c != NULL;
	/* a flow idle that long may be gone from a NAT without a FIN or RST:
	 * a new connection costs less than a take that waits out the
	 * command timeout */
	if (max_idle_ms > 0 && clock_mono_us() - q->used_us > max_idle_ms * 1000) {
		drop(q);
		return 0;
	}
	/* an idle connection has nothing to read: anything (EOF, a TLS
	 * alert, an error) means it is over */
	p.fd = q->c->fd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) != 0)
		drop(q);
	return q->c != NULL;
}

int queue_unanswered(const struct queue *q)
{
	return q->in_doubt;
}

int queue_reconnect(struct queue *q, struct err *err)
{
	if (q->waiting)
		return err_set(err, ERR_INTERNAL, "queue connection busy with a wait");
	return ensure(q, err);
}

struct queue *queue_connect(const struct queue_opts *opts, struct err *err)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->opts = *opts;
	q->backoff_us = BACKOFF_MIN_US;
	if (opts->url.cluster)
		q->cl = queue_cluster_new(opts);
	/* ensure's TIME is the check that the server answers: no PING */
	if (ensure(q, err) < 0) {
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
	queue_cluster_free(q->cl);
	queue_conn_tls_free(q->tls);
	queue_opts_release(&q->opts); /* the password */
	free(q);
}

/* Turns an error reply into err. The replies of a server that cannot
 * serve now but will (LOADING its data set after a restart, BUSY with a
 * script past its time limit, MASTERDOWN, TRYAGAIN and CLUSTERDOWN while
 * a cluster moves, READONLY on a node that a failover made a replica,
 * DEADLINE of an enqueue that reached it too late, having changed nothing)
 * are ERR_UNAVAILABLE, as a lost connection is, so that callers retry (the
 * API answers 503) instead of taking them for a protocol error (a 500).
 * Any other error reply is ERR_PROTOCOL. Returns -1. */
static int reply_error(struct err *err, const char *msg)
{
	static const char *const later[] = {
		"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY",
		"DEADLINE" /* enqueue.lua: it reached the server too late */
	};
	size_t i, n;

	for (i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		n = strlen(later[i]);
		if (!strncmp(msg, later[i], n) && (msg[n] == ' ' || !msg[n]))
			return err_set(err, ERR_UNAVAILABLE, "redis error: %s", msg);
	}
	return err_set(err, ERR_PROTOCOL, "redis error: %s", msg);
}

/* A command on a cluster goes to the node serving its key: a script's
 * KEYS[1] (argv[3]), else argv[1]; a command without a key (PING) to any
 * node. */
static redisReply *cluster_command(struct queue *q, struct args *a, struct err *err)
{
	int slot = -1, script = 0;

	if (a->n > 3 && (!strcmp(a->v[0], "EVALSHA") || !strcmp(a->v[0], "EVAL"))) {
		script = 1;
		slot = queue_key_slot(a->v[3], a->len[3]);
	} else if (a->n > 1) {
		slot = queue_key_slot(a->v[1], a->len[1]);
	}
	return queue_cluster_command(q->cl, slot, script, (int)a->n, a->v, a->len,
				     &q->in_doubt, err);
}

/* Runs argv as one command. Returns the reply (caller frees) or NULL with
 * err set; error replies are turned into err too (reply_error). */
static redisReply *command(struct queue *q, struct args *a, struct err *err)
{
	redisReply *r = NULL;

	if (q->waiting) {
		err_set(err, ERR_INTERNAL, "queue connection busy with a wait");
		return NULL;
	}
	q->in_doubt = 0;
	if (ensure(q, err) < 0)
		return NULL;
	args_finish(a);
	if (q->cl) {
		/* cluster.c reports its own failures, and whether the
		 * command is in doubt as queue_conn_command says */
		if (!(r = cluster_command(q, a, err)))
			return NULL;
		goto answered;
	}
	/* an answer that did not come in time leaves the command in doubt
	 * (see queue_conn_command) */
	if (!(r = queue_conn_command(q->c, 0, (int)a->n, a->v, a->len, &q->in_doubt)))
		goto io;
	q->used_us = clock_mono_us();
answered:
	if (r->type == REDIS_REPLY_ERROR) {
		reply_error(err, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
io:
	fail_io(q, err, a->n ? a->v[0] : "command");
	return NULL;
}

/* Starts the arguments of a script call on `queue`: EVALSHA, its sha (set
 * by run_script), one key (the queue's prefix). Returns 0, or -1 with err
 * for a bad queue name. */
static int script_args(struct args *a, const char *queue, struct err *err)
{
	if (queue_name_check(queue, err) < 0)
		return -1;
	args_init(a);
	args_add(a, "EVALSHA");
	args_add(a, NULL); /* sha or script, set in run_script */
	args_add(a, "1");
	snprintf(a->prefix, sizeof(a->prefix), "wakeq:{%s}:", queue);
	args_add(a, a->prefix);
	return 0;
}

/* Runs script `s` with the arguments `a` (from script_args, then the
 * script's ARGV). */
static redisReply *run_script(struct queue *q, enum script s, struct args *a,
			      struct err *err)
{
	redisReply *r;
	struct err e;

	a->v[0] = "EVALSHA";
	a->len[0] = 7;
	a->v[1] = scripts[s].sha;
	a->len[1] = 40;
	r = command(q, a, &e);
	if (!r && e.code == ERR_PROTOCOL && strstr(e.msg, "NOSCRIPT")) {
		a->v[0] = "EVAL";
		a->len[0] = 4;
		a->v[1] = scripts[s].text;
		a->len[1] = strlen(scripts[s].text);
		r = command(q, a, &e);
	}
	if (!r && err)
		*err = e;
	return r;
}

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

/* Runs the script `s` with the arguments in `a` (released here) for its
 * integer answer, stored in *out (may be NULL). Returns 0 or -1. */
static int script_int(struct queue *q, enum script s, struct args *a,
		      int64_t *out, struct err *err)
{
	redisReply *r = run_script(q, s, a, err);

	args_release(a);
	if (!r)
		return -1;
	if (out)
		*out = rint_of(r);
	freeReplyObject(r);
	return 0;
}

/* Starts the arguments of a plain command on the key `suffix` of `queue`
 * ("CMD wakeq:{queue}:suffix"); `key` holds the key for as long as `a`
 * is used. Returns 0, or -1 with err for a bad queue name (`a` then
 * untouched). */
static int key_args(struct args *a, char *key, size_t cap, const char *queue,
		    const char *cmd, const char *suffix, struct err *err)
{
	if (queue_name_check(queue, err) < 0)
		return -1;
	snprintf(key, cap, "wakeq:{%s}:%s", queue, suffix);
	args_init(a);
	args_add(a, cmd);
	args_add(a, key);
	return 0;
}

static int bad_reply(struct err *err, const char *what);

/* The server's clock now (ms) from the skew measured at connect: on a
 * cluster, that of the node serving `key`'s slot, the one a command on
 * `key` runs on (a redirection, rare, runs it on another node, whose
 * clock under NTP is the same within milliseconds). Returns 0, or -1 with
 * err (ERR_UNAVAILABLE: no node reached; nothing was sent). */
static int server_now_ms(struct queue *q, const char *key, int64_t *now_ms,
			 struct err *err)
{
	int64_t skew;

	q->in_doubt = 0; /* as command() does: nothing sent yet */
	if (ensure(q, err) < 0)
		return -1;
	skew = q->skew_ms;
	if (q->cl && queue_cluster_skew(q->cl, queue_key_slot(key, strlen(key)), &skew, err) < 0)
		return -1;
	*now_ms = clock_now_us() / 1000 + skew;
	return 0;
}

/* Runs a plain command built in `a` (released here) that answers an
 * array. Returns the reply (caller frees) or NULL with err. */
static redisReply *command_array(struct queue *q, struct args *a,
				 const char *what, struct err *err)
{
	redisReply *r = command(q, a, err);

	args_release(a);
	if (r && r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		bad_reply(err, what);
		return NULL;
	}
	return r;
}

/* Runs a plain command built in `a` (released here) whose answer does
 * not matter beyond success. Returns 0 or -1. */
static int command_ok(struct queue *q, struct args *a, struct err *err)
{
	redisReply *r = command(q, a, err);

	args_release(a);
	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

int queue_name_check(const char *name, struct err *err)
{
	size_t i, n = name ? strlen(name) : 0;
	const char *hash = name ? strchr(name, '#') : NULL;

	/* a shard: NAME#K, K the shard's number without leading zeros */
	if (hash && n <= QUEUE_NAME_MAX) {
		const char *k = hash + 1;

		if (hash == name || !*k || strspn(k, "0123456789") != strlen(k) ||
		    (k[0] == '0' && k[1]) || strlen(k) > 2 || atoi(k) >= QUEUE_SHARDS_MAX)
			return err_set(err, ERR_INVALID,
				       "bad queue name '%.80s': a shard is NAME#K, K from 0 to %d",
				       name, QUEUE_SHARDS_MAX - 1);
		n = (size_t)(hash - name);
	}

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

int queue_shard_spec(const char *entry, char name[QUEUE_NAME_MAX + 1], int *n,
		     struct err *err)
{
	const char *star = strchr(entry, '*');
	char base[QUEUE_NAME_MAX + 1];
	size_t len = star ? (size_t)(star - entry) : strlen(entry);
	int64_t v = 1;

	if (len > QUEUE_NAME_MAX - (star ? 3 : 0))
		return err_set(err, ERR_INVALID, "bad queue name '%.80s': 1 to %d characters",
			       entry, star ? QUEUE_NAME_MAX - 3 : QUEUE_NAME_MAX);
	memcpy(base, entry, len);
	base[len] = '\0';
	if (star && strchr(base, '#'))
		return err_set(err, ERR_INVALID,
			       "bad queue '%.80s': name a sharded queue as NAME*N, not its shards", entry);
	if (queue_name_check(base, err) < 0)
		return -1;
	if (star && (star[1] == '-' || parse_int64(star + 1, 2, QUEUE_SHARDS_MAX, &v) < 0))
		return err_set(err, ERR_INVALID, "bad queue '%.80s': NAME*N with N from 2 to %d shards",
			       entry, QUEUE_SHARDS_MAX);
	memcpy(name, base, len + 1);
	*n = (int)v;
	return 0;
}

char *queue_shard_name(const char *name, int k, int n)
{
	return n > 1 ? xasprintf("%s#%d", name, k) : xstrdup(name);
}

int queue_shard_of(const char *key, int n)
{
	return n > 1 ? queue_crc16(key, strlen(key)) % n : 0;
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

/* How long after it was sent an enqueue may still run: half the command
 * timeout (ms). */
static int64_t deadline_ms(const struct queue *q)
{
	double t = q->opts.command_timeout_s > 0 ? q->opts.command_timeout_s : 10;

	return (int64_t)(t * 500);
}

/* What queue_enqueue makes for each job it sends: its id and the strings
 * of its hash fields. */
struct enq_job {
	char id[UUID_STR_LEN];
	struct job_hash_buf buf;
};

/* The enqueue script's answer (ENQ_REPLY_*) for the n jobs sent into
 * out[] and *live_worker (when not NULL); -1 when it is not one. */
static int enqueue_reply(const redisReply *r, const struct enq_job *jobs, size_t n,
			 struct queue_enqueued *out, int *live_worker)
{
	static const struct {
		char letter;
		enum job_status status;
	} created[] = {
		{ 'q', JOB_QUEUED }, { 'w', JOB_WAITING }, { 's', JOB_SCHEDULED },
		{ 'f', JOB_FAILED }, { 'c', JOB_CANCELLED },
	};
	const redisReply *st;
	size_t i, k, x = ENQ_REPLY_HEAD;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < ENQ_REPLY_HEAD ||
	    (st = r->element[ENQ_REPLY_STATES])->type != REDIS_REPLY_STRING || st->len != n)
		return -1;
	if (live_worker)
		*live_worker = rint_of(r->element[ENQ_REPLY_LIVE]) != 0;
	for (i = 0; i < n; i++) {
		char c = st->str[i], *dst;
		const redisReply *e;

		memcpy(out[i].id, jobs[i].id, UUID_STR_LEN);
		out[i].missing[0] = '\0';
		out[i].status = JOB_QUEUED;
		out[i].created = c != 'e' && c != 'm';
		if (out[i].created) {
			for (k = 0; k < sizeof(created) / sizeof(created[0]) &&
			     created[k].letter != c; k++)
				;
			if (k == sizeof(created) / sizeof(created[0]))
				return -1;
			out[i].status = created[k].status;
			continue;
		}
		if (x >= r->elements || (e = r->element[x++])->type != REDIS_REPLY_STRING ||
		    e->len == 0 || e->len >= UUID_STR_LEN)
			return -1;
		dst = c == 'e' ? out[i].id : out[i].missing;
		memcpy(dst, e->str, e->len);
		dst[e->len] = '\0';
	}
	return x == r->elements ? 0 : -1;
}

int queue_enqueue(struct queue *q, const char *queue,
		  const struct job_spec *specs, size_t n,
		  struct queue_enqueued *out, int *live_worker,
		  struct err *err)
{
	struct enq_job *jobs = NULL;
	struct args a;
	redisReply *r = NULL;
	int64_t now_ms;
	size_t i, k;
	int rc = -1;

	if (queue_name_check(queue, err) < 0)
		return -1;
	if (n == 0 || n > QUEUE_MAX_BATCH)
		return err_set(err, ERR_INVALID, "enqueue takes 1 to %d jobs, not %zu",
			       QUEUE_MAX_BATCH, n);
	for (i = 0; i < n; i++) {
		const struct job_spec *s = &specs[i];

		if (!s->type || !*s->type)
			return err_set(err, ERR_INVALID, "job type is required");
		if (s->priority < 0 || s->priority > JOB_PRIORITY_MAX)
			return err_set(err, ERR_INVALID, "priority %d out of range 0..%d",
				       s->priority, JOB_PRIORITY_MAX);
		if (s->max_attempts < 0 || s->delay_ms < 0 || s->run_at_us < 0 || s->timeout_s < 0)
			return err_set(err, ERR_INVALID, "negative max_attempts, delay, run_at or timeout");
		if (s->id[0] && !uuid_valid(s->id))
			return err_set(err, ERR_INVALID, "bad job id '%.40s'", s->id);
		if (s->unique_key && *s->unique_key && !job_idem_key_ok(s->unique_key))
			return err_set(err, ERR_INVALID, "bad unique key '%.40s'", s->unique_key);
		if (s->group && *s->group && !job_group_ok(s->group))
			return err_set(err, ERR_INVALID, "bad group '%.40s'", s->group);
	}
	if (script_args(&a, queue, err) < 0)
		return -1;
	jobs = xmalloc(n * sizeof(*jobs));
	args_addi(&a, (int64_t)n);
	for (i = 0; i < n; i++) {
		struct job_spec s = specs[i];
		const char *names[JOB_HASH_SPEC_MAX], *values[JOB_HASH_SPEC_MAX];
		size_t nf;

		if (s.id[0])
			memcpy(jobs[i].id, s.id, UUID_STR_LEN);
		else
			uuid7_new(jobs[i].id);
		if (!s.max_attempts)
			s.max_attempts = JOB_MAX_ATTEMPTS_DEFAULT;
		nf = job_spec_hash(&s, names, values, &jobs[i].buf);
		/* ENQ_* in enqueue.lua: the fields the script reads, then the
		 * hash fields it stores as given (unique_key and group are
		 * both) */
		args_add(&a, jobs[i].id);
		args_addi(&a, s.priority);
		/* a delay runs on the Redis clock; run_at is absolute */
		args_addi(&a, s.delay_ms > 0 ? 0 : s.run_at_us / 1000);
		args_addi(&a, s.delay_ms);
		args_addi(&a, (int64_t)nf);
		if ((s.idempotency_key && *s.idempotency_key) ||
		    (job_spec_flags(&s) & (JOB_SPEC_HAS_UNIQUE | JOB_SPEC_HAS_GROUP |
					   JOB_SPEC_HAS_DEPS))) {
			args_add(&a, "1"); /* ENQ_OPTS: they follow */
			args_add(&a, s.idempotency_key);
			args_addi(&a, s.idempotency_ttl_s > 0 ? s.idempotency_ttl_s
				  : JOB_IDEM_TTL_DEFAULT_S);
			args_add(&a, s.unique_key);
			args_add(&a, s.group);
			args_add(&a, s.depends_on);
			args_add(&a, s.depends_on ? job_dep_policy_name(s.dep_policy) : "");
		} else {
			args_add(&a, "");
		}
		for (k = 0; k < nf; k++) {
			args_add(&a, names[k]);
			args_add(&a, values[k]);
		}
	}
	/* ENQ_DEADLINE, last: on the server's clock, half the command
	 * timeout from now. Past it the script refuses to run, so that a
	 * script a frozen server finds in its input when it thaws, after we
	 * gave up on it at the full timeout, changes nothing. The half left
	 * covers the answer's way back and the error of the skew measured
	 * at connect (a round trip). */
	if (server_now_ms(q, a.prefix, &now_ms, err) < 0)
		goto out;
	args_addi(&a, now_ms + deadline_ms(q));
	r = run_script(q, S_ENQUEUE, &a, err);
	if (!r) {
		/* sent whole, no answer: it ran before its deadline (and the
		 * answer was lost), or it never will */
		if (q->in_doubt && err)
			err_set(err, ERR_UNKNOWN,
				"enqueue unanswered by redis at '%s': the jobs are queued or, after %lld ms, never will be",
				q->opts.url.host, (long long)deadline_ms(q));
		goto out;
	}
	if (enqueue_reply(r, jobs, n, out, live_worker) < 0) {
		bad_reply(err, "enqueue");
		goto out;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	args_release(&a);
	free(jobs);
	return rc;
}

int queue_enqueued_due(const struct queue_enqueued *out, const struct job_spec *specs,
		       size_t n, int64_t *due_us, size_t *nnow, struct err *err)
{
	size_t i;

	*due_us = 0;
	*nnow = 0;
	for (i = 0; i < n; i++) {
		if (!out[i].created || out[i].missing[0])
			return err_set(err, ERR_INTERNAL, "job '%s' was not created", out[i].id);
		if (out[i].status == JOB_SCHEDULED) {
			if (!*due_us || specs[i].run_at_us < *due_us)
				*due_us = specs[i].run_at_us;
		} else if (out[i].status != JOB_WAITING) {
			(*nnow)++;
		}
	}
	return 0;
}

/* ---- take and settle ---------------------------------------------------- */

void queue_job_release(struct queue_job *job)
{
	/* the strings take copies out of its reply */
	static const size_t owned[] = {
		offsetof(struct queue_job, type), offsetof(struct queue_job, payload),
		offsetof(struct queue_job, callback_url), offsetof(struct queue_job, trace),
		offsetof(struct queue_job, dependencies),
	};

	if (!job)
		return;
	mem_free_strings(job, owned, sizeof(owned) / sizeof(owned[0]));
	memset(job, 0, sizeof(*job));
}

/* A settle's outcome as take.lua reads it. */
static const char *const outcome_arg[] = {
	[QUEUE_DONE] = "d", [QUEUE_RETRY] = "r", [QUEUE_FAIL] = "f",
	[QUEUE_CANCELLED] = "c", [QUEUE_REQUEUE] = "q", [QUEUE_PUSHBACK] = "b",
};

/* One job of a take reply, at e with avail elements left, into j: returns
 * the elements it used (TAKE_JOB_FIXED and the optional fields its spec's
 * flags name), or 0 when they are not a job (j left empty). */
static size_t take_job(redisReply **e, size_t avail, struct queue_job *j)
{
	unsigned has;
	size_t k = TAKE_JOB_FIXED;

	memset(j, 0, sizeof(*j));
	if (avail < TAKE_JOB_FIXED || e[TAKE_JOB_ID]->type != REDIS_REPLY_STRING ||
	    e[TAKE_JOB_ID]->len >= UUID_STR_LEN || e[TAKE_JOB_SPEC]->type != REDIS_REPLY_STRING ||
	    job_spec_unpack(e[TAKE_JOB_SPEC]->str, e[TAKE_JOB_SPEC]->len, &has, &j->type,
			    &j->max_attempts, &j->timeout_s) < 0)
		return 0;
	if (k + !!(has & JOB_SPEC_HAS_CALLBACK) + !!(has & JOB_SPEC_HAS_TRACE) +
	    2 * !!(has & JOB_SPEC_HAS_DEPS) > avail) {
		queue_job_release(j);
		return 0;
	}
	memcpy(j->id, e[TAKE_JOB_ID]->str, e[TAKE_JOB_ID]->len);
	j->token = rint_of(e[TAKE_JOB_TOKEN]);
	j->attempts = (int)rint_of(e[TAKE_JOB_ATTEMPTS]);
	j->payload = rstr_dup(e[TAKE_JOB_PAYLOAD]);
	if (!j->payload)
		j->payload = xstrdup("{}");
	if (has & JOB_SPEC_HAS_CALLBACK) {
		j->callback_url = e[k]->len ? rstr_dup(e[k]) : NULL;
		k++;
	}
	if (has & JOB_SPEC_HAS_TRACE) {
		j->trace = e[k]->len ? rstr_dup(e[k]) : NULL;
		k++;
	}
	if (has & JOB_SPEC_HAS_DEPS) {
		j->dependencies = e[k]->type == REDIS_REPLY_STRING && e[k]->len ?
				  rstr_dup(e[k]) : NULL;
		j->dependencies_cut = rint_of(e[k + 1]) == 1;
		k += 2;
	}
	return k;
}

int queue_take(struct queue *q, const char *queue, struct queue_take *t,
	       struct err *err)
{
	int64_t nwakes;
	struct args a;
	redisReply *r = NULL, *flags;
	size_t i, k, n;
	int rc = -1;

	t->njobs = 0;
	t->nstale = 0;
	t->next_due_ms = 0;
	t->paused = 0;
	t->refill = 0;
	t->finals = 0;
	if (queue_name_check(queue, err) < 0)
		return -1;
	if (t->max > QUEUE_MAX_BATCH || t->nsettle > QUEUE_MAX_BATCH)
		return err_set(err, ERR_INVALID, "take and settle at most %d jobs a call",
			       QUEUE_MAX_BATCH);
	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, t->worker);
	args_addi(&a, t->lease_ms);
	args_addi(&a, (int64_t)t->max);
	args_addi(&a, (int64_t)t->nsettle);
	args_addi(&a, queue_limits.result_ttl_s);
	args_addi(&a, queue_limits.done_max);
	args_addi(&a, queue_limits.dead_max);
	args_addi(&a, t->register_ttl_ms > 0 ? t->register_ttl_ms : 0);
	args_add(&a, t->record ? "1" : "0");
	for (i = 0, nwakes = 0; t->wakes && i < QUEUE_NTRIGGERS; i++)
		nwakes += t->wakes[i] > 0;
	args_addi(&a, nwakes);
	for (i = 0; t->wakes && i < QUEUE_NTRIGGERS; i++)
		if (t->wakes[i] > 0) {
			args_add(&a, queue_trigger_name((enum queue_trigger)i));
			args_addi(&a, t->wakes[i]);
		}
	/* the settles, last (take.lua's layout): a done one carries its
	 * result, any other its error and delay */
	for (i = 0; i < t->nsettle; i++) {
		const struct queue_settle *s = &t->settle[i];

		args_add(&a, s->id);
		args_addi(&a, s->token);
		args_add(&a, outcome_arg[s->outcome]);
		args_addi(&a, s->run_us);
		if (s->outcome == QUEUE_DONE) {
			args_add(&a, s->result ? s->result : "null");
		} else {
			args_add(&a, s->error);
			args_addi(&a, s->delay_ms);
		}
	}
	r = run_script(q, S_TAKE, &a, err);
	if (!r)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < TAKE_HEAD ||
	    r->element[TAKE_FLAGS]->type != REDIS_REPLY_STRING) {
		bad_reply(err, "take");
		goto out;
	}
	n = (size_t)rint_of(r->element[TAKE_COUNT]);
	flags = r->element[TAKE_FLAGS];
	if (n > t->max || r->elements < TAKE_HEAD + n * TAKE_JOB_FIXED ||
	    flags->len != t->nsettle) {
		bad_reply(err, "take");
		goto out;
	}
	t->server_now_ms = rint_of(r->element[TAKE_NOW]);
	t->next_due_ms = rint_of(r->element[TAKE_NEXT_DUE]);
	t->paused = rint_of(r->element[TAKE_PAUSED]) != 0;
	t->refill = rint_of(r->element[TAKE_REFILL]) != 0;
	t->finals = rint_of(r->element[TAKE_FINALS]);
	for (i = 0; i < t->nsettle; i++) {
		t->settle[i].stale = flags->str[i] == 's';
		t->settle[i].final = flags->str[i] == 'f';
		t->nstale += flags->str[i] == 's';
	}
	for (i = 0, k = TAKE_HEAD; i < n; i++) {
		size_t used = take_job(r->element + k, r->elements - k, &t->jobs[i]);

		if (!used) {
			bad_reply(err, "take");
			while (i-- > 0)
				queue_job_release(&t->jobs[i]);
			goto out;
		}
		k += used;
	}
	if (k != r->elements) {
		bad_reply(err, "take");
		for (i = 0; i < n; i++)
			queue_job_release(&t->jobs[i]);
		goto out;
	}
	t->njobs = n;
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	args_release(&a);
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
	struct args a;
	redisReply *r;
	int rc = -1;

	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	if (script_args(&a, queue, err) < 0)
		return -1;
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
	struct args a;
	redisReply *r;
	size_t i;
	int rc = -1;

	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, worker);
	args_addi(&a, lease_ms);
	args_addi(&a, ttl_ms);
	args_addi(&a, (int64_t)n);
	for (i = 0; i < n; i++) {
		args_add(&a, leases[i].id);
		args_addi(&a, leases[i].token);
		args_add(&a, leases[i].running ? "1" : "0");
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
	struct args a;

	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, worker);
	args_addi(&a, ttl_ms);
	return script_int(q, S_REGISTER, &a, NULL, err);
}

int queue_touch(struct queue *q, const char *queue, const char *worker,
		int64_t ttl_ms, struct err *err)
{
	char key[PREFIX_MAX + 16];
	int64_t now_ms;
	struct args a;

	if (key_args(&a, key, sizeof(key), queue, "ZADD", "workers", err) < 0)
		return -1;
	if (server_now_ms(q, key, &now_ms, err) < 0) {
		args_release(&a);
		return -1;
	}
	args_add(&a, "XX");
	args_addi(&a, now_ms + ttl_ms);
	args_add(&a, worker);
	return command_ok(q, &a, err);
}

int queue_retire(struct queue *q, const char *queue, const char *worker,
		 int force, int *retired, struct err *err)
{
	struct args a;
	int64_t res;

	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, worker);
	args_add(&a, force ? "1" : "0");
	if (script_int(q, S_RETIRE, &a, &res, err) < 0)
		return -1;
	*retired = res == 1;
	return 0;
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
	const char **kp;
	char secs[32];
	struct args a;
	size_t i;
	int rc = -1;

	if (q->waiting)
		return err_set(err, ERR_INTERNAL, "a wait is already in progress");
	keys = xmalloc((n ? n : 1) * sizeof(*keys));
	kp = xmalloc((n ? n : 1) * sizeof(*kp));
	for (i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "wakeq:{%s}:marker", queues[i]);
		kp[i] = keys[i];
	}
	args_init(&a);
	if (q->cl) {
		/* no BLPOP over several queues: they live in other slots */
		if (queue_cluster_wait_begin(q->cl, kp, n, timeout_ms, err) < 0)
			goto out;
		q->waiting = 1;
		rc = 0;
		goto out;
	}
	if (ensure(q, err) < 0)
		goto out;
	args_add(&a, "BLPOP");
	for (i = 0; i < n; i++)
		args_add(&a, keys[i]);
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
	free(kp);
	free(keys);
	return rc;
}

int queue_fd(const struct queue *q)
{
	if (q->cl)
		return queue_cluster_wait_fd(q->cl);
	return q->c ? q->c->fd : -1;
}

int queue_wait_poll(struct queue *q, struct err *err)
{
	void *reply = NULL;
	redisReply *r;
	int got;

	if (q->cl && q->waiting) {
		got = queue_cluster_wait_poll(q->cl, err);
		if (got != 2)
			q->waiting = 0;
		return got;
	}
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
	q->used_us = clock_mono_us();
	r = reply;
	if (r->type == REDIS_REPLY_ERROR) {
		reply_error(err, r->str);
		freeReplyObject(r);
		return -1;
	}
	got = r->type == REDIS_REPLY_ARRAY;
	freeReplyObject(r);
	return got;
}

void queue_wait_cancel(struct queue *q)
{
	if (q->cl) {
		/* also the BLPOPs left outstanding by a wait that ended */
		queue_cluster_wait_cancel(q->cl);
		q->waiting = 0;
	} else if (q->waiting) {
		drop(q);
	}
}

/* ---- inspection and operations ------------------------------------------ */

int queue_counts(struct queue *q, const char *queue, struct queue_counts *out,
		 struct err *err)
{
	struct args a;
	redisReply *r;
	int rc;

	if (script_args(&a, queue, err) < 0)
		return -1;
	r = run_script(q, S_COUNTS, &a, err);
	rc = r ? 0 : -1;
	args_release(&a);
	if (rc < 0)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != COUNT_FIELDS) {
		freeReplyObject(r);
		return bad_reply(err, "counts");
	}
	memset(out, 0, sizeof(*out));
	out->n[JOB_QUEUED] = rint_of(r->element[COUNT_PENDING]);
	out->n[JOB_RETRYING] = rint_of(r->element[COUNT_RETRYING]);
	/* the delayed set holds scheduled and retrying jobs */
	out->n[JOB_SCHEDULED] = rint_of(r->element[COUNT_DELAYED]) - out->n[JOB_RETRYING];
	if (out->n[JOB_SCHEDULED] < 0)
		out->n[JOB_SCHEDULED] = 0;
	out->n[JOB_ACTIVE] = rint_of(r->element[COUNT_ACTIVE]);
	out->n[JOB_DONE] = rint_of(r->element[COUNT_DONE]);
	out->n[JOB_FAILED] = rint_of(r->element[COUNT_DEAD]);
	out->n[JOB_CANCELLED] = rint_of(r->element[COUNT_CANCELLED]);
	out->workers = rint_of(r->element[COUNT_WORKERS]);
	out->stale = rint_of(r->element[COUNT_STALE]);
	out->next_due_ms = rint_of(r->element[COUNT_NEXT_DUE]);
	out->paused = rint_of(r->element[COUNT_PAUSED]) != 0;
	out->done_total = rint_of(r->element[COUNT_DONE_TOTAL]);
	out->failed_total = rint_of(r->element[COUNT_FAILED_TOTAL]);
	out->due = rint_of(r->element[COUNT_DUE]);
	out->held = rint_of(r->element[COUNT_HELD]);
	out->wake_at_ms = rint_of(r->element[COUNT_WAKE_AT]);
	out->n[JOB_WAITING] = rint_of(r->element[COUNT_WAITING]);
	out->lease_ms = rint_of(r->element[COUNT_LEASE]);
	freeReplyObject(r);
	return 0;
}

/* ---- settings ------------------------------------------------------------- */

int queue_settings_get(struct queue *q, const char *queue,
		       struct queue_settings *out, struct err *err)
{
	char key[PREFIX_MAX + 16];
	struct args a;
	redisReply *r;
	size_t i;

	if (key_args(&a, key, sizeof(key), queue, "HMGET", "config", err) < 0)
		return -1;
	args_add(&a, "paused");
	for (i = 0; i < QUEUE_NSETTINGS; i++)
		args_add(&a, queue_settings_table[i].field);
	r = command_array(q, &a, "HMGET", err);
	if (!r)
		return -1;
	if (r->elements != QUEUE_NSETTINGS + 1) {
		freeReplyObject(r);
		return bad_reply(err, "HMGET");
	}
	memset(out, 0, sizeof(*out));
	out->paused = rint_of(r->element[0]) == 1;
	for (i = 0; i < QUEUE_NSETTINGS; i++)
		out->v[i] = rint_of(r->element[i + 1]);
	freeReplyObject(r);
	return 0;
}

int queue_settings_set(struct queue *q, const char *queue,
		       const struct queue_settings *in, struct err *err)
{
	struct args a;
	size_t i;

	if (queue_name_check(queue, err) < 0)
		return -1;
	for (i = 0; i < QUEUE_NSETTINGS; i++) {
		const struct queue_setting *t = &queue_settings_table[i];

		if (in->v[i] < 0 || in->v[i] > t->max)
			return err_set(err, ERR_INVALID, "bad setting '%s': %lld is out of range",
				       t->name, (long long)in->v[i]);
	}
	if (!in->v[QUEUE_SET_RATE_MAX] != !in->v[QUEUE_SET_RATE_PERIOD])
		return err_set(err, ERR_INVALID,
			       "settings 'rate_max' and 'rate_period_s' go together");
	if (!in->v[QUEUE_SET_GROUP_RATE_MAX] != !in->v[QUEUE_SET_GROUP_RATE_PERIOD])
		return err_set(err, ERR_INVALID,
			       "settings 'group_rate_max' and 'group_rate_period_s' go together");
	if (script_args(&a, queue, err) < 0)
		return -1;
	args_addi(&a, QUEUE_NSETTINGS);
	for (i = 0; i < QUEUE_NSETTINGS; i++) {
		args_add(&a, queue_settings_table[i].field);
		if (in->v[i] > 0)
			args_addi(&a, in->v[i]);
		else
			args_add(&a, "");
	}
	return script_int(q, S_SETTINGS, &a, NULL, err);
}

int queue_pause(struct queue *q, const char *queue, int paused,
		struct queue_resumed *out, struct err *err)
{
	struct args a;
	redisReply *r;
	int rc = -1;

	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, paused ? "1" : "0");
	r = run_script(q, S_PAUSE, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != PAUSE_FIELDS) {
		bad_reply(err, "pause");
	} else {
		if (out) {
			out->due = rint_of(r->element[PAUSE_DUE]);
			out->live = rint_of(r->element[PAUSE_LIVE]);
			out->next_due_ms = rint_of(r->element[PAUSE_NEXT_DUE]);
		}
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

/* ---- metrics that outlive the worker -------------------------------------- */

const int64_t queue_hist_bounds_ms[QUEUE_HIST_BUCKETS] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000, 300000, 900000, 1800000, 3600000,
};

static const char *const trigger_names[QUEUE_NTRIGGERS] = {
	[QUEUE_TRIGGER_CRON] = "cron", [QUEUE_TRIGGER_API] = "api",
	[QUEUE_TRIGGER_FANOUT] = "fanout", [QUEUE_TRIGGER_CLI] = "cli",
};

const char *queue_trigger_name(enum queue_trigger t)
{
	return (unsigned)t < QUEUE_NTRIGGERS ? trigger_names[t] : "cron";
}

enum queue_trigger queue_trigger_parse(const char *s)
{
	int t;

	for (t = 0; s && t < QUEUE_NTRIGGERS; t++)
		if (!strcmp(s, trigger_names[t]))
			return (enum queue_trigger)t;
	return QUEUE_TRIGGER_CRON;
}

int queue_count_wake(struct queue *q, const char *queue, enum queue_trigger t,
		     int64_t n, struct err *err)
{
	char key[PREFIX_MAX + 16], field[32];
	struct args a;

	if (key_args(&a, key, sizeof(key), queue, "HINCRBY", "metrics", err) < 0)
		return -1;
	/* the field layout of _lib.lua's metrics: k:TRIGGER: */
	snprintf(field, sizeof(field), "k:%s:", queue_trigger_name(t));
	args_add(&a, field);
	args_addi(&a, n);
	return command_ok(q, &a, err);
}

void queue_stats_release(struct queue_stats *s)
{
	size_t i;

	for (i = 0; i < s->noutcomes; i++) {
		free(s->outcomes[i].type);
		free(s->outcomes[i].name);
	}
	for (i = 0; i < s->nwakes; i++) {
		free(s->wakes[i].type);
		free(s->wakes[i].name);
	}
	for (i = 0; i < s->nhists; i++)
		free(s->hists[i].type);
	free(s->outcomes);
	free(s->wakes);
	free(s->hists);
	memset(s, 0, sizeof(*s));
}

static void counter_add(struct queue_counter **v, size_t *n, const char *type,
			size_t tlen, const char *name, size_t nlen, int64_t val)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].type = xstrndup(type, tlen);
	(*v)[*n].name = xstrndup(name, nlen);
	(*v)[*n].n = val;
	(*n)++;
}

static struct queue_type_hist *hist_of(struct queue_stats *s, const char *type,
				       size_t tlen)
{
	size_t i;

	for (i = 0; i < s->nhists; i++)
		if (strlen(s->hists[i].type) == tlen && !memcmp(s->hists[i].type, type, tlen))
			return &s->hists[i];
	s->hists = xrealloc(s->hists, (s->nhists + 1) * sizeof(*s->hists));
	memset(&s->hists[s->nhists], 0, sizeof(s->hists[s->nhists]));
	s->hists[s->nhists].type = xstrndup(type, tlen);
	return &s->hists[s->nhists++];
}

/* One field of the hash `metrics` (KIND:KEY:TYPE, see _lib.lua) into *s;
 * fields of another shape are skipped. */
static void stats_field(struct queue_stats *s, const char *f, size_t flen, int64_t v)
{
	const char *c1 = memchr(f, ':', flen), *c2, *key, *type;
	size_t klen, tlen;

	if (!c1 || c1 - f != 1)
		return;
	key = c1 + 1;
	c2 = memchr(key, ':', flen - 2);
	if (!c2)
		return;
	klen = (size_t)(c2 - key);
	type = c2 + 1;
	tlen = flen - (size_t)(type - f);
	if (f[0] == 'n' && klen) {
		counter_add(&s->outcomes, &s->noutcomes, type, tlen, key, klen, v);
	} else if (f[0] == 'k' && klen) {
		counter_add(&s->wakes, &s->nwakes, "", 0, key, klen, v);
	} else if (f[0] == 'w' || f[0] == 'r') {
		struct queue_type_hist *th = hist_of(s, type, tlen);
		struct queue_hist *h = f[0] == 'w' ? &th->wait : &th->run;
		char num[8];
		long b;

		if (klen == 1 && key[0] == 's') {
			h->sum_us += v;
			return;
		}
		if (klen == 0 || klen >= sizeof(num))
			return;
		memcpy(num, key, klen);
		num[klen] = '\0';
		b = strtol(num, NULL, 10);
		if (b >= 0 && b <= QUEUE_HIST_BUCKETS)
			h->count[b] += v;
	}
}

static int counter_cmp(const void *x, const void *y)
{
	const struct queue_counter *a = x, *b = y;
	int c = strcmp(a->type, b->type);

	return c ? c : strcmp(a->name, b->name);
}

static int hist_cmp(const void *x, const void *y)
{
	return strcmp(((const struct queue_type_hist *)x)->type,
		      ((const struct queue_type_hist *)y)->type);
}

int queue_stats_read(struct queue *q, const char *queue, struct queue_stats *out,
		     struct err *err)
{
	struct args a;
	redisReply *r;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (script_args(&a, queue, err) < 0)
		return -1;
	r = run_script(q, S_METRICS, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < MET_HEAD ||
	    (r->elements - MET_HEAD) % 2) {
		freeReplyObject(r);
		return bad_reply(err, "metrics");
	}
	out->now_ms = rint_of(r->element[MET_NOW]);
	out->due = rint_of(r->element[MET_DUE]);
	out->oldest_due_ms = rint_of(r->element[MET_OLDEST_DUE]);
	for (i = MET_HEAD; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i];

		if (f->type == REDIS_REPLY_STRING)
			stats_field(out, f->str, f->len, rint_of(r->element[i + 1]));
	}
	freeReplyObject(r);
	if (out->noutcomes)
		qsort(out->outcomes, out->noutcomes, sizeof(*out->outcomes), counter_cmp);
	if (out->nwakes)
		qsort(out->wakes, out->nwakes, sizeof(*out->wakes), counter_cmp);
	if (out->nhists)
		qsort(out->hists, out->nhists, sizeof(*out->hists), hist_cmp);
	return 0;
}

/* A job's hash as HGETALL answers it (field, value pairs) into *out.
 * Returns 0, or -1 with err (ERR_NOTFOUND for an empty one). */
static int job_of_hash(const redisReply *r, const char *queue, const char *id,
		       struct job_info *out, struct err *err)
{
	const char **f, **v;
	size_t i, n;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return bad_reply(err, "HGETALL");
	if (r->elements == 0)
		return err_set(err, ERR_NOTFOUND, "no job '%s' in queue '%s'", id, queue);
	n = r->elements / 2;
	f = xmalloc(n * sizeof(*f));
	v = xmalloc(n * sizeof(*v));
	for (i = 0; i < n; i++) {
		const redisReply *k = r->element[2 * i], *x = r->element[2 * i + 1];

		f[i] = k->type == REDIS_REPLY_STRING ? k->str : NULL;
		v[i] = x->type == REDIS_REPLY_STRING ? x->str : NULL;
	}
	job_info_from_hash(out, id, queue, f, v, n);
	free(f);
	free(v);
	return 0;
}

int queue_job_get(struct queue *q, const char *queue, const char *id,
		  struct job_info *out, struct err *err)
{
	char key[PREFIX_MAX + UUID_STR_LEN + 8];
	struct args a;
	redisReply *r;
	int rc;

	if (queue_name_check(queue, err) < 0)
		return -1;
	snprintf(key, sizeof(key), "wakeq:{%s}:job:%s", queue, id);
	args_init(&a);
	args_add(&a, "HGETALL");
	args_add(&a, key);
	r = command(q, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	rc = job_of_hash(r, queue, id, out, err);
	freeReplyObject(r);
	return rc;
}

int queue_jobs_get(struct queue *q, const char *queue, const char *const *ids, size_t n,
		   struct job_info *out, int *found, struct err *err)
{
	struct args a;
	redisReply *r;
	size_t i;

	if (n == 0)
		return 0;
	if (script_args(&a, queue, err) < 0)
		return -1;
	for (i = 0; i < n; i++)
		args_add(&a, ids[i]);
	r = run_script(q, S_JOBS_GET, &a, err);
	args_release(&a);
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		freeReplyObject(r);
		return bad_reply(err, "jobs_get");
	}
	for (i = 0; i < n; i++) {
		struct err e;

		found[i] = job_of_hash(r->element[i], queue, ids[i], &out[i], &e) == 0;
		if (!found[i] && e.code != ERR_NOTFOUND) {
			while (i-- > 0)
				if (found[i])
					job_info_release(&out[i]);
			freeReplyObject(r);
			if (err)
				*err = e;
			return -1;
		}
	}
	freeReplyObject(r);
	return 0;
}

int queue_list(struct queue *q, const char *queue, enum job_status state,
	       size_t offset, size_t limit, char ***ids, struct err *err)
{
	char key[PREFIX_MAX + 16];
	static const char *const set_of[JOB_NSTATUS] = {
		"pending", "delayed", "active", "delayed", "done", "dead", NULL,
		"waiting",
	};
	char start[24], stop[24];
	struct args a;
	redisReply *r;
	char **out;
	size_t i, n = 0;
	int rev = state == JOB_DONE || state == JOB_FAILED;

	*ids = NULL;
	if (queue_name_check(queue, err) < 0)
		return -1;
	if ((unsigned)state >= JOB_NSTATUS || !set_of[state] || limit == 0)
		return 0;
	snprintf(key, sizeof(key), "wakeq:{%s}:%s", queue, set_of[state]);
	snprintf(start, sizeof(start), "%zu", offset);
	snprintf(stop, sizeof(stop), "%zu", offset + limit - 1);
	args_init(&a);
	args_add(&a, rev ? "ZREVRANGE" : "ZRANGE");
	args_add(&a, key);
	args_add(&a, start);
	args_add(&a, stop);
	r = command_array(q, &a, "ZRANGE", err);
	if (!r)
		return -1;
	out = xcalloc(r->elements + 1, sizeof(*out));
	for (i = 0; i < r->elements; i++)
		out[n++] = rstr_dup(r->element[i]);
	freeReplyObject(r);
	*ids = out;
	return (int)n;
}

/* Runs a status script: ARGV [id,] then the process's RESULT_TTL and dead
 * cap (queue_limits), which cancel's burials of dependents use. */
static int status_script(struct queue *q, enum script s, const char *queue,
			 const char *id, struct err *err, int64_t *res)
{
	struct args a;

	if (script_args(&a, queue, err) < 0)
		return -1;
	if (id)
		args_add(&a, id);
	args_addi(&a, queue_limits.result_ttl_s);
	args_addi(&a, queue_limits.dead_max);
	return script_int(q, s, &a, res, err);
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

/* ---- the finals log ------------------------------------------------------- */

int queue_finals_enable(struct queue *q, const char *queue, struct err *err)
{
	char key[PREFIX_MAX + 16];
	struct args a;

	if (key_args(&a, key, sizeof(key), queue, "SET", "record", err) < 0)
		return -1;
	args_add(&a, "1");
	return command_ok(q, &a, err);
}

/* One stream entry [id, [field, value, ...]] into *out; 0, or -1 when the
 * entry is not readable. */
static int final_of(const redisReply *e, const char *queue, struct job_info *out,
		    char id[QUEUE_FINAL_ID_MAX])
{
	const char *f[16], *v[16];
	const char *job_id = NULL;
	const redisReply *kv;
	size_t i, n = 0;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= QUEUE_FINAL_ID_MAX ||
	    e->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	memcpy(id, e->element[0]->str, e->element[0]->len + 1);
	kv = e->element[1];
	for (i = 0; i + 1 < kv->elements && n < 16; i += 2) {
		if (kv->element[i]->type != REDIS_REPLY_STRING ||
		    kv->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(kv->element[i]->str, "id")) {
			job_id = kv->element[i + 1]->str;
			continue;
		}
		f[n] = kv->element[i]->str;
		v[n++] = kv->element[i + 1]->str;
	}
	if (!job_id || !uuid_valid(job_id))
		return -1;
	job_info_from_hash(out, job_id, queue, f, v, n);
	return 0;
}

int queue_finals_read(struct queue *q, const char *queue, struct job_info *out,
		      char (*ids)[QUEUE_FINAL_ID_MAX], size_t max,
		      struct err *err)
{
	char key[PREFIX_MAX + 16], count[24];
	struct args a;
	redisReply *r;
	size_t i, n = 0;

	if (key_args(&a, key, sizeof(key), queue, "XRANGE", "finals", err) < 0)
		return -1;
	snprintf(count, sizeof(count), "%zu", max);
	args_add(&a, "-");
	args_add(&a, "+");
	args_add(&a, "COUNT");
	args_add(&a, count);
	r = command_array(q, &a, "XRANGE", err);
	if (!r)
		return -1;
	for (i = 0; i < r->elements && n < max; i++) {
		/* an entry that cannot be read is acknowledged as it is: it
		 * would block the log for ever otherwise */
		if (final_of(r->element[i], queue, &out[n], ids[n]) < 0) {
			memset(&out[n], 0, sizeof(out[n]));
			if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements &&
			    r->element[i]->element[0]->type == REDIS_REPLY_STRING &&
			    r->element[i]->element[0]->len < QUEUE_FINAL_ID_MAX)
				memcpy(ids[n], r->element[i]->element[0]->str,
				       r->element[i]->element[0]->len + 1);
			else
				continue;
		}
		n++;
	}
	freeReplyObject(r);
	return (int)n;
}

int queue_finals_ack(struct queue *q, const char *queue,
		     char (*ids)[QUEUE_FINAL_ID_MAX], size_t n, struct err *err)
{
	char key[PREFIX_MAX + 16];
	struct args a;
	size_t i;

	if (n == 0)
		return 0;
	if (key_args(&a, key, sizeof(key), queue, "XDEL", "finals", err) < 0)
		return -1;
	for (i = 0; i < n; i++)
		args_add(&a, ids[i]);
	return command_ok(q, &a, err);
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
	if (r == -3)
		return err_set(err, ERR_CONFLICT,
			       "job '%s' cannot run again: its unique key is held by a live job", id);
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

/* SCAN of one node (node < 0: the queue's own connection) for the queues
 * that have a key `wakeq:{NAME}:seq` or `wakeq:{NAME}:config`, their
 * names appended to *out (each once). One pass: the pattern lets through
 * both (and the rare key of the same first letters, dropped here). Returns
 * 0 or -1. */
static int discover_at(struct queue *q, int node, char ***out, size_t *n, size_t *cap,
		       struct err *err)
{
	char cursor[32] = "0";
	struct args a;
	size_t i;

	do {
		redisReply *r;

		args_init(&a);
		args_add(&a, "SCAN");
		args_add(&a, cursor);
		args_add(&a, "MATCH");
		args_add(&a, "wakeq:{*}:[sc][eo][qn]*");
		args_add(&a, "COUNT");
		args_add(&a, "1000");
		if (node < 0) {
			r = command(q, &a, err);
		} else {
			args_finish(&a);
			r = queue_cluster_command_at(q->cl, node, (int)a.n, a.v, a.len, err);
			if (r && r->type == REDIS_REPLY_ERROR) {
				reply_error(err, r->str);
				freeReplyObject(r);
				r = NULL;
			}
		}
		args_release(&a);
		if (!r)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			freeReplyObject(r);
			return bad_reply(err, "SCAN");
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i < r->element[1]->elements; i++) {
			const char *k = r->element[1]->element[i]->str;
			const char *open = strchr(k, '{'), *close = strrchr(k, '}');
			size_t j, len;

			if (!open || !close || close <= open ||
			    (strcmp(close, "}:seq") && strcmp(close, "}:config")))
				continue;
			len = (size_t)(close - open - 1);
			for (j = 0; j < *n; j++)
				if (strlen((*out)[j]) == len && !memcmp((*out)[j], open + 1, len))
					break;
			if (j < *n)
				continue;
			if (*n + 1 >= *cap) {
				*cap = *cap ? *cap * 2 : 8;
				*out = xrealloc(*out, *cap * sizeof(**out));
			}
			(*out)[(*n)++] = xstrndup(open + 1, (size_t)(close - open - 1));
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0"));
	return 0;
}

int queue_discover(struct queue *q, char ***names, struct err *err)
{
	char **out = NULL;
	size_t n = 0, cap = 0, i;
	int rc;

	*names = NULL;
	if (q->cl) {
		/* every master holds its own slots' keys */
		int masters[256];
		size_t nm;

		if (ensure(q, err) < 0)
			return -1;
		nm = queue_cluster_masters(q->cl, masters, 256, err);
		rc = nm ? 0 : -1;
		for (i = 0; i < nm && rc == 0; i++)
			rc = discover_at(q, masters[i], &out, &n, &cap, err);
	} else {
		rc = discover_at(q, -1, &out, &n, &cap, err);
	}
	if (rc < 0)
		goto fail;
	*names = out;
	return (int)n;
fail:
	for (i = 0; i < n; i++)
		free(out[i]);
	free(out);
	return -1;
}

/* ---- cron schedules -------------------------------------------------------- */

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int queue_schedule_names(struct queue *q, const char *queue, char ***names,
			 struct err *err)
{
	char key[PREFIX_MAX + 16];
	struct args a;
	redisReply *r;
	char **out;
	size_t i;

	*names = NULL;
	if (key_args(&a, key, sizeof(key), queue, "SMEMBERS", "schedset", err) < 0)
		return -1;
	r = command_array(q, &a, "SMEMBERS", err);
	if (!r)
		return -1;
	out = xcalloc(r->elements + 1, sizeof(*out));
	for (i = 0; i < r->elements; i++)
		out[i] = rstr_dup(r->element[i]);
	qsort(out, r->elements, sizeof(*out), by_str);
	*names = out;
	i = r->elements;
	freeReplyObject(r);
	return (int)i;
}

int queue_schedule_put(struct queue *q, const char *queue, struct queue_schedule *s,
		       int *created, struct err *err)
{
	const char *names[JOB_HASH_SPEC_MAX], *values[JOB_HASH_SPEC_MAX];
	char hf[JOB_HASH_SPEC_MAX][32];
	struct job_hash_buf buf;
	int64_t times[QUEUE_SCHED_AHEAD];
	struct args a;
	size_t nf, k;
	int64_t res;
	int n = 0;

	if (queue_name_check(queue, err) < 0 || queue_name_check(s->name, err) < 0)
		return -1;
	if (!s->job.type)
		return err_set(err, ERR_INVALID, "schedule '%s' has no job", s->name);
	if (!s->paused) {
		n = queue_schedule_times(s, clock_now_us() / 1000, times, QUEUE_SCHED_AHEAD, err);
		if (n < 0)
			return -1;
	}
	nf = job_spec_hash(&s->job, names, values, &buf);
	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, s->name);
	args_add(&a, s->paused ? "1" : "0");
	args_addi(&a, (int64_t)(6 + nf));
	args_add(&a, "cron");
	args_add(&a, s->cron);
	args_add(&a, "tz");
	args_add(&a, s->tz[0] ? s->tz : "UTC");
	args_add(&a, "overlap");
	args_add(&a, s->overlap_allow ? "allow" : "skip");
	args_add(&a, "catchup");
	args_add(&a, queue_catchup_name(s->catchup));
	args_add(&a, "catchup_max");
	args_addi(&a, s->catchup_max > 0 ? s->catchup_max : 1);
	args_add(&a, "prio");
	args_addi(&a, s->job.priority);
	for (k = 0; k < nf; k++) {
		snprintf(hf[k], sizeof(hf[k]), "h:%s", names[k]);
		args_add(&a, hf[k]);
		args_add(&a, values[k]);
	}
	for (k = 0; k < (size_t)n; k++)
		args_addi(&a, times[k]);
	if (script_int(q, S_SCHED_PUT, &a, &res, err) < 0)
		return -1;
	if (created)
		*created = res == 1;
	s->next_ms = n > 0 ? times[0] : 0;
	return 0;
}

/* ZRANGE of schedule `name`'s fire times, 0 to `stop`, with their
 * scores (a reply to free), or NULL with err. */
static redisReply *fire_times(struct queue *q, const char *queue, const char *name,
			      const char *stop, struct err *err)
{
	char key[PREFIX_MAX + QUEUE_NAME_MAX + 16];
	struct args a;

	snprintf(key, sizeof(key), "wakeq:{%s}:stimes:%s", queue, name);
	args_init(&a);
	args_add(&a, "ZRANGE");
	args_add(&a, key);
	args_add(&a, "0");
	args_add(&a, stop);
	args_add(&a, "WITHSCORES");
	return command_array(q, &a, "ZRANGE", err);
}

int queue_schedule_get(struct queue *q, const char *queue, const char *name,
		       struct queue_schedule *out, struct err *err)
{
	char key[PREFIX_MAX + QUEUE_NAME_MAX + 16];
	const char *f[JOB_HASH_SPEC_MAX + 4], *v[JOB_HASH_SPEC_MAX + 4];
	struct queue_schedule s;
	struct args a;
	redisReply *r;
	size_t i, nf = 0;

	if (queue_name_check(queue, err) < 0)
		return -1;
	if (queue_name_check(name, NULL) < 0)
		return err_set(err, ERR_NOTFOUND, "no schedule '%.64s' in queue '%s'", name, queue);
	snprintf(key, sizeof(key), "wakeq:{%s}:sched:%s", queue, name);
	args_init(&a);
	args_add(&a, "HGETALL");
	args_add(&a, key);
	r = command_array(q, &a, "HGETALL", err);
	if (!r)
		return -1;
	if (r->elements == 0) {
		freeReplyObject(r);
		return err_set(err, ERR_NOTFOUND, "no schedule '%s' in queue '%s'", name, queue);
	}
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.catchup_max = 1;
	for (i = 0; i + 1 < r->elements; i += 2) {
		const char *k = r->element[i]->str, *x = r->element[i + 1]->str;

		if (r->element[i]->type != REDIS_REPLY_STRING ||
		    r->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		if (!strncmp(k, "h:", 2) && nf < JOB_HASH_SPEC_MAX) {
			f[nf] = k + 2;
			v[nf++] = x;
		} else if (!strcmp(k, "prio")) {
			f[nf] = "priority";
			v[nf++] = x;
		} else if (!strcmp(k, "cron")) {
			snprintf(s.cron, sizeof(s.cron), "%s", x);
		} else if (!strcmp(k, "tz")) {
			snprintf(s.tz, sizeof(s.tz), "%s", x);
		} else if (!strcmp(k, "overlap")) {
			s.overlap_allow = !strcmp(x, "allow");
		} else if (!strcmp(k, "catchup")) {
			queue_catchup_parse(x, &s.catchup);
		} else if (!strcmp(k, "catchup_max")) {
			s.catchup_max = atoi(x);
		} else if (!strcmp(k, "paused")) {
			s.paused = 1;
		} else if (!strcmp(k, "created")) {
			s.created_us = strtoll(x, NULL, 10);
		} else if (!strcmp(k, "last_fire")) {
			s.last_fire_ms = strtoll(x, NULL, 10);
		} else if (!strcmp(k, "last_job")) {
			snprintf(s.last_job, sizeof(s.last_job), "%s", x);
		} else if (!strcmp(k, "fired")) {
			s.fired = strtoll(x, NULL, 10);
		} else if (!strcmp(k, "skipped")) {
			s.skipped = strtoll(x, NULL, 10);
		}
	}
	job_info_from_hash(&s.tmpl, "", queue, f, v, nf);
	freeReplyObject(r);
	r = fire_times(q, queue, name, "0", err);
	if (!r) {
		queue_schedule_release(&s);
		return -1;
	}
	if (r->elements == 2)
		s.next_ms = rint_of(r->element[1]);
	freeReplyObject(r);
	*out = s;
	return 0;
}

int queue_schedule_delete(struct queue *q, const char *queue, const char *name,
			  struct err *err)
{
	struct args a;
	int64_t res;

	if (queue_name_check(name, NULL) < 0)
		return err_set(err, ERR_NOTFOUND, "no schedule '%.64s' in queue '%s'", name, queue);
	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, name);
	if (script_int(q, S_SCHED_DEL, &a, &res, err) < 0)
		return -1;
	if (res != 1)
		return err_set(err, ERR_NOTFOUND, "no schedule '%s' in queue '%s'", name, queue);
	return 0;
}

/* Runs sched_times for `name` in `mode` with n fire times. Returns 0, or
 * -1 (ERR_NOTFOUND when the schedule is gone). */
static int sched_times(struct queue *q, const char *queue, const char *name,
		       const char *mode, const int64_t *times, int n, struct err *err)
{
	struct args a;
	int64_t res;
	int k;

	if (script_args(&a, queue, err) < 0)
		return -1;
	args_add(&a, name);
	args_add(&a, mode);
	for (k = 0; k < n; k++)
		args_addi(&a, times[k]);
	if (script_int(q, S_SCHED_TIMES, &a, &res, err) < 0)
		return -1;
	if (res < 0)
		return err_set(err, ERR_NOTFOUND, "no schedule '%s' in queue '%s'", name, queue);
	return 0;
}

int queue_schedule_pause(struct queue *q, const char *queue, const char *name,
			 int paused, int64_t *next_ms, struct err *err)
{
	struct queue_schedule s;
	int64_t times[QUEUE_SCHED_AHEAD];
	int n, rc;

	if (queue_schedule_get(q, queue, name, &s, err) < 0)
		return -1;
	if (paused) {
		queue_schedule_release(&s);
		return sched_times(q, queue, name, "pause", NULL, 0, err);
	}
	n = queue_schedule_times(&s, clock_now_us() / 1000, times, QUEUE_SCHED_AHEAD, err);
	queue_schedule_release(&s);
	if (n < 0)
		return -1;
	rc = sched_times(q, queue, name, "resume", times, n, err);
	if (rc == 0 && next_ms)
		*next_ms = n > 0 ? times[0] : 0;
	return rc;
}

int queue_schedule_refill(struct queue *q, const char *queue, struct err *err)
{
	char **names = NULL;
	int n, i, rc = 0;

	n = queue_schedule_names(q, queue, &names, err);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		int64_t times[QUEUE_SCHED_AHEAD], after = clock_now_us() / 1000;
		struct queue_schedule s;
		redisReply *r;
		int k;

		if (rc < 0 || queue_schedule_get(q, queue, names[i], &s, err) < 0) {
			rc = rc < 0 ? rc : (err && err->code == ERR_NOTFOUND ? 0 : -1);
			free(names[i]);
			continue;
		}
		/* after the last time known: none is computed twice, none
		 * between skipped */
		r = fire_times(q, queue, names[i], "-1", err);
		if (!r) {
			rc = -1;
		} else if (!s.paused && r->elements / 2 < QUEUE_SCHED_AHEAD / 4) {
			if (r->elements >= 2 && rint_of(r->element[r->elements - 1]) > after)
				after = rint_of(r->element[r->elements - 1]);
			k = queue_schedule_times(&s, after, times,
						 QUEUE_SCHED_AHEAD - r->elements / 2, err);
			if (k < 0 || sched_times(q, queue, names[i], "add", times, k, err) < 0)
				rc = err && err->code == ERR_NOTFOUND ? rc : -1;
		}
		if (r)
			freeReplyObject(r);
		queue_schedule_release(&s);
		free(names[i]);
	}
	free(names);
	return rc;
}
