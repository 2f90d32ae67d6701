/* Unit tests of how the queue module reaches Redis: REDIS_URL parsed and
 * checked once (queue_opts_init) and the one handshake (AUTH with a user,
 * SELECT, TLS) that both the queue connection and the event subscriber
 * run. Against the redis-server of tests/run.sh (UNIT_REDIS_URL); the TLS
 * round trip runs when UNIT_TLS_REDIS_URL names a rediss:// server
 * (tests/integration/14_hiredis1.sh does, with a password). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "queue/priv.h"
#include "../unit.h"

static void test_opts_init(void **state)
{
	struct queue_opts o, keep;
	struct err e;

	(void)state;
	assert_int_equal(queue_opts_init(&o, NULL, &e), 0);
	assert_string_equal(o.url.host, "127.0.0.1");
	assert_int_equal(o.url.port, 6379);
	assert_true(o.connect_timeout_s == 0 && o.command_timeout_s == 0);
	assert_int_equal(queue_opts_init(&o, "", &e), 0);
	assert_string_equal(o.url.host, "127.0.0.1");
	assert_int_equal(queue_opts_init(&o, "redis://u:p%40w@h:7000/3", &e), 0);
	assert_string_equal(o.url.user, "u");
	assert_string_equal(o.url.password, "p@w");
	assert_int_equal(o.url.db, 3);
	assert_int_equal(queue_opts_init(&o, "unix:///run/r.sock?db=2", &e), 0);
	assert_true(o.url.unix_socket);

	/* a bad URL leaves *o as it was */
	memset(&o, 0x5a, sizeof(o));
	keep = o;
	assert_fails(queue_opts_init(&o, "http://x", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "bad redis url"));
	assert_memory_equal(&o, &keep, sizeof(o));

	/* rediss:// is refused here, at start-up, by a build without TLS */
	if (queue_tls_supported()) {
		assert_int_equal(queue_opts_init(&o, "rediss://h:6380", &e), 0);
		assert_true(o.url.tls);
	} else {
		assert_fails(queue_opts_init(&o, "rediss://h:6380", &e), &e, ERR_INVALID);
		assert_non_null(strstr(e.msg, "rediss://"));
		assert_non_null(strstr(e.msg, "TLS"));
		assert_memory_equal(&o, &keep, sizeof(o));
	}

	assert_int_equal(queue_opts_init(&o, "redis://:secret@h", &e), 0);
	queue_opts_release(&o);
	assert_string_equal(o.url.password, "");
	queue_opts_release(NULL);
}

/* One raw command on an admin connection made by the module's handshake. */
static void admin(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "%s: %s\n", fmt, r->str);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

static long long admin_int(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *r = redisCommand(c, fmt, arg);
	long long v;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* Enqueues a job on `queue` with a connection from `o`, subscribes to the
 * queue's events with a subscriber from `o`, cancels the job and expects
 * the subscriber to see it. Returns the job id in `id`. */
static void roundtrip(const struct queue_opts *o, const char *queue, char id[UUID_STR_LEN])
{
	struct job_spec spec = { 0 };
	struct queue_enqueued out;
	struct queue_event ev;
	struct queue_sub *sub;
	struct queue *q;
	struct err e;
	int64_t until;
	int got = 0;

	q = queue_connect(o, &e);
	if (!q)
		fprintf(stderr, "queue_connect: %s\n", e.msg);
	assert_non_null(q);
	sub = queue_sub_connect(o, &e);
	if (!sub)
		fprintf(stderr, "queue_sub_connect: %s\n", e.msg);
	assert_non_null(sub);
	assert_int_equal(queue_sub_subscribe(sub, queue, &e), 0);
	spec.type = "noop";
	assert_int_equal(queue_enqueue(q, queue, &spec, 1, &out, NULL, &e), 0);
	memcpy(id, out.id, UUID_STR_LEN);
	/* the SUBSCRIBE confirmation first: then nothing published is missed */
	until = clock_mono_us() + 2000000;
	while (clock_mono_us() < until) {
		struct pollfd p = { .fd = queue_sub_fd(sub), .events = POLLIN };

		if (poll(&p, 1, 100) > 0)
			break;
	}
	assert_int_equal(queue_sub_read(sub, &ev, &e), 0);
	assert_int_equal(queue_cancel(q, queue, out.id, &e), 0);
	until = clock_mono_us() + 3000000;
	while (!got && clock_mono_us() < until) {
		struct pollfd p = { .fd = queue_sub_fd(sub), .events = POLLIN };
		int rc;

		if (poll(&p, 1, 100) <= 0)
			continue;
		while ((rc = queue_sub_read(sub, &ev, &e)) == 1)
			if (!strcmp(ev.id, out.id))
				got = 1;
		assert_int_not_equal(rc, -1);
	}
	assert_true(got);
	assert_string_equal(ev.queue, queue);
	assert_string_equal(ev.status, "cancelled");
	queue_sub_free(sub);
	queue_free(q);
}

/* A user, a password and a db, from the URL alone, on both kinds of
 * connection; a wrong password is refused on both. */
static void test_auth_select(void **state)
{
	const char *base = getenv("UNIT_REDIS_URL");
	struct queue_opts admin_o, o;
	redisContext *c;
	struct queue_tls *tls = NULL;
	char user[64], url[512], queue[64], key[160], id[UUID_STR_LEN];
	struct err e;

	(void)state;
	assert_non_null(base);
	assert_int_equal(queue_opts_init(&admin_o, base, &e), 0);
	c = queue_conn_open(&admin_o, &tls, &e);
	assert_non_null(c);
	snprintf(user, sizeof(user), "wq-test-%d", (int)getpid());
	snprintf(queue, sizeof(queue), "conn-%d", (int)getpid());
	admin(c, "ACL SETUSER %s reset on >p@ss:w/rd ~* &* +@all", user);

	snprintf(url, sizeof(url), "redis://%s:p%%40ss%%3Aw%%2Frd@%s:%d/7", user,
		 admin_o.url.host, admin_o.url.port);
	assert_int_equal(queue_opts_init(&o, url, &e), 0);
	roundtrip(&o, queue, id);
	/* the job went to db 7, not to db 0 */
	snprintf(key, sizeof(key), "wakeq:{%s}:job:%s", queue, id);
	assert_int_equal(admin_int(c, "EXISTS %s", key), 0);
	admin(c, "SELECT 7");
	assert_int_equal(admin_int(c, "EXISTS %s", key), 1);
	admin(c, "FLUSHDB");
	admin(c, "SELECT 0");
	queue_opts_release(&o);

	snprintf(url, sizeof(url), "redis://%s:wrong@%s:%d", user, admin_o.url.host,
		 admin_o.url.port);
	assert_int_equal(queue_opts_init(&o, url, &e), 0);
	assert_fails_null(queue_connect(&o, &e), &e, ERR_AUTH);
	assert_fails_null(queue_sub_connect(&o, &e), &e, ERR_AUTH);
	assert_null(strstr(e.msg, "wrong")); /* the password is never echoed */

	admin(c, "ACL DELUSER %s", user);
	redisFree(c);
	queue_conn_tls_free(tls);
	queue_opts_release(&o);
	queue_opts_release(&admin_o);
}

/* The subscriber speaks TLS like the queue connection does (it once sent
 * AUTH in clear text to a rediss:// server). */
static void test_tls_roundtrip(void **state)
{
	const char *url = getenv("UNIT_TLS_REDIS_URL");
	struct queue_opts o;
	char queue[64], id[UUID_STR_LEN];
	struct err e;

	(void)state;
	if (!url || !*url) {
		fprintf(stderr, "UNIT_TLS_REDIS_URL is not set: TLS round trip not run\n");
		skip();
	}
	assert_int_equal(queue_opts_init(&o, url, &e), 0);
	assert_true(o.url.tls);
	snprintf(queue, sizeof(queue), "tls-%d", (int)getpid());
	roundtrip(&o, queue, id);
	queue_opts_release(&o);
}

/* queue_conn_command on a real server: a command that left whole and
 * got no answer within the command timeout is in doubt, and it does run
 * once the server serves again (CLIENT PAUSE: it has read the command
 * and runs it later, as a frozen Redis does when it thaws); a connection
 * the server closed is not in doubt; ASKING's own answer is read past. */
static void test_command_in_doubt(void **state)
{
	const char *base = getenv("UNIT_REDIS_URL");
	struct queue_opts admin_o, o;
	struct queue_tls *tls = NULL;
	redisContext *a, *c;
	redisReply *r;
	char key[64], id[32];
	const char *set[] = { "SET", key, "v" }, *get[] = { "GET", key },
		   *cid[] = { "CLIENT", "ID" };
	int64_t t0;
	int doubt = -1;
	struct err e;

	(void)state;
	assert_non_null(base);
	assert_int_equal(queue_opts_init(&admin_o, base, &e), 0);
	o = admin_o;
	o.command_timeout_s = 0.2;
	assert_non_null(a = queue_conn_open(&admin_o, &tls, &e));
	assert_non_null(c = queue_conn_open(&o, &tls, &e));
	snprintf(key, sizeof(key), "doubt-%d", (int)getpid());

	assert_non_null(r = queue_conn_command(c, 0, 3, set, NULL, &doubt));
	assert_int_equal(doubt, 0);
	freeReplyObject(r);
	/* ASKING is refused here (no cluster): the answer is GET's */
	doubt = -1;
	assert_non_null(r = queue_conn_command(c, 1, 2, get, NULL, &doubt));
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "v");
	assert_int_equal(doubt, 0);
	freeReplyObject(r);

	admin(a, "DEL %s", key);
	admin(a, "CLIENT PAUSE 600 ALL");
	t0 = clock_mono_us();
	assert_null(queue_conn_command(c, 0, 3, set, NULL, &doubt));
	assert_int_equal(doubt, 1);
	assert_true(clock_mono_us() - t0 < 550000);
	/* c stays open: a paused server drops what a closed client sent */
	assert_int_equal(admin_int(a, "EXISTS %s", key), 1); /* waits for the pause */
	redisFree(c);

	/* closed by the server: not in doubt */
	assert_non_null(c = queue_conn_open(&o, &tls, &e));
	assert_non_null(r = queue_conn_command(c, 0, 2, cid, NULL, NULL));
	snprintf(id, sizeof(id), "%lld", r->integer);
	freeReplyObject(r);
	admin(a, "CLIENT KILL ID %s", id);
	doubt = -1;
	assert_null(queue_conn_command(c, 0, 3, set, NULL, &doubt));
	assert_int_equal(doubt, 0);
	redisFree(c);

	admin(a, "DEL %s", key);
	redisFree(a);
	queue_conn_tls_free(tls);
	queue_opts_release(&o);
	queue_opts_release(&admin_o);
}

UNIT_MAIN(
		cmocka_unit_test(test_opts_init),
		cmocka_unit_test(test_auth_select),
		cmocka_unit_test(test_tls_roundtrip),
		cmocka_unit_test(test_command_in_doubt),
)
