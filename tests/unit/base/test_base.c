/* Unit tests of internal/base: parsers, buffers, UUIDv7, time format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/dl.h"
#include "base/err.h"
#include "base/fd.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/thread.h"
#include "base/uuid.h"
#include "../unit.h"

static void test_parse_int(void **state)
{
	int64_t v = 7;

	(void)state;
	assert_int_equal(parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_int64("-3", -5, 5, &v), 0);
	assert_int_equal(v, -3);
	v = 7;
	assert_int_equal(parse_int64("", 0, 100, &v), -1);
	assert_int_equal(parse_int64("10x", 0, 100, &v), -1);
	assert_int_equal(parse_int64(" 1", 0, 100, &v), -1);
	assert_int_equal(parse_int64("101", 0, 100, &v), -1);
	assert_int_equal(parse_int64("99999999999999999999", 0, INT64_MAX, &v), -1);
	assert_int_equal(parse_int64(NULL, 0, 100, &v), -1);
	assert_int_equal(v, 7); /* untouched on failure */
}

static void test_parse_seconds(void **state)
{
	double d = -1;

	(void)state;
	assert_int_equal(parse_seconds("0.5", 0, 10, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(parse_seconds("30", 0, 60, &d), 0);
	assert_true(d == 30);
	assert_int_equal(parse_seconds("nan", 0, 60, &d), -1);
	assert_int_equal(parse_seconds("inf", 0, 1e300, &d), -1);
	assert_int_equal(parse_seconds("-1", -5, 60, &d), -1);
	assert_int_equal(parse_seconds("61", 0, 60, &d), -1);
	assert_int_equal(parse_seconds("1s", 0, 60, &d), -1);
	assert_true(d == 30);
}

static void test_parse_bool_size(void **state)
{
	int b = -1;
	int64_t n = 0;

	(void)state;
	assert_int_equal(parse_bool("TRUE", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(parse_bool("off", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(parse_bool("2", &b), -1);
	assert_int_equal(parse_size("1M", INT64_MAX, &n), 0);
	assert_int_equal(n, 1 << 20);
	assert_int_equal(parse_size("4KiB", INT64_MAX, &n), 0);
	assert_int_equal(n, 4096);
	assert_int_equal(parse_size("12", INT64_MAX, &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(parse_size("1T", INT64_MAX, &n), -1);
	assert_int_equal(parse_size("2G", 1 << 30, &n), -1);
	assert_int_equal(parse_size("-1", INT64_MAX, &n), -1);
}

static void test_buf(void **state)
{
	struct buf b = BUF_INIT;
	char *s;
	size_t len;
	int i;

	(void)state;
	assert_string_equal(b.data, "");
	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data, "0,1,2,", 6);
	buf_reset(&b);
	buf_adds(&b, "abc");
	buf_addc(&b, 'd');
	s = buf_detach(&b, &len);
	assert_string_equal(s, "abcd");
	assert_int_equal(len, 4);
	assert_string_equal(b.data, "");
	free(s);
	buf_release(&b);
}

static void test_uuid7(void **state)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN];
	int i;

	(void)state;
	uuid7_new(a);
	assert_true(uuid_valid(a));
	assert_int_equal(a[14], '7'); /* version */
	assert_true(strchr("89ab", a[19]) != NULL); /* variant */
	for (i = 0; i < 10000; i++) {
		uuid7_new(b);
		assert_true(strcmp(a, b) < 0); /* strictly increasing */
		memcpy(a, b, sizeof(a));
	}
	assert_false(uuid_valid("not-a-uuid"));
	assert_false(uuid_valid("0193a0e4-7c2b-7d0e-8a3b-0123456789zz"));
}

/* A forked child must not hand out the random bits its parent will. */
static void test_uuid7_fork(void **state)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN] = "";
	int fds[2], st;
	pid_t pid;

	(void)state;
	uuid7_new(a); /* fill the pool */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uuid7_new(b);
		_exit(write(fds[1], b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	uuid7_new(a);
	assert_int_equal(read(fds[0], b, sizeof(b)), sizeof(b));
	waitpid(pid, &st, 0);
	assert_true(strcmp(a + 24, b + 24) != 0);
	close(fds[0]);
	close(fds[1]);
}

static void test_rfc3339(void **state)
{
	char out[CLOCK_RFC3339_LEN];

	(void)state;
	assert_string_equal(clock_rfc3339(0, out), "1970-01-01T00:00:00.000000Z");
	assert_string_equal(clock_rfc3339(1795369044123456LL, out),
			    "2026-11-22T17:37:24.123456Z");
}

static void test_err(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(err_set(&e, ERR_INVALID, "bad '%s'", "x"), -1);
	assert_string_equal(e.msg, "bad 'x'");
	err_wrap(&e, "loading");
	assert_string_equal(e.msg, "loading: bad 'x'");
	assert_int_equal(e.code, ERR_INVALID);
	assert_string_equal(err_code_name(ERR_UNAVAILABLE), "unavailable");
	assert_int_equal(err_set(NULL, ERR_IO, "x"), -1);
}

/* Timed waits run on CLOCK_MONOTONIC from end to end: a condvar on the
 * default (wall) clock with a monotonic deadline would return at once,
 * the deadline being decades in the past. */
/* dl_load: a library's functions into a table, once; a missing library
 * or symbol is an error that stays. */
static size_t (*p_strlen)(const char *);
static const struct dl_sym libc_syms[] = { { "strlen", (void (**)(void))&p_strlen } };
static void (*p_nothing)(void);
static const struct dl_sym bad_syms[] = { { "wakeq_no_such_symbol", &p_nothing } };

static void test_dl_load(void **state)
{
	static struct dl_lib libc = DL_LIB_INIT("libc.so.6", libc_syms, 1);
	static struct dl_lib none = DL_LIB_INIT("libwakeq-none.so.9", libc_syms, 1);
	static struct dl_lib bad = DL_LIB_INIT("libc.so.6", bad_syms, 1);
	struct err e;

	(void)state;
	assert_int_equal(dl_load(&libc, &e), 0);
	assert_non_null(p_strlen);
	assert_int_equal(p_strlen("wakeq"), 5);
	assert_int_equal(dl_load(&libc, NULL), 0);
	assert_int_equal(dl_load(&none, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "cannot load 'libwakeq-none.so.9'"));
	assert_int_equal(dl_load(&none, NULL), -1);
	assert_int_equal(dl_load(&bad, &e), -1);
	assert_non_null(strstr(e.msg, "no symbol 'wakeq_no_such_symbol'"));
	assert_null(p_nothing);
}

static void test_cond_wait(void **state)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	int64_t t0, el;

	(void)state;
	clock_cond_init(&cv);
	pthread_mutex_lock(&mu);
	t0 = clock_mono_us();
	while (clock_cond_wait_us(&cv, &mu, 30000) != ETIMEDOUT)
		;
	el = clock_mono_us() - t0;
	assert_true(el >= 30000);
	assert_true(el < 1000000);
	t0 = clock_mono_us();
	assert_int_equal(clock_cond_wait_us(&cv, &mu, 0), ETIMEDOUT);
	assert_int_equal(clock_cond_wait_us(&cv, &mu, -5), ETIMEDOUT);
	assert_true(clock_mono_us() - t0 < 1000000);
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

/* Waiters of thread_stop's test: each waits for quit, then counts its end. */
struct stop_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int quit;
	int ended;
};

static void *stop_waiter(void *arg)
{
	struct stop_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->quit)
		pthread_cond_wait(&p->cv, &p->mu);
	p->ended++;
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void test_thread_stop(void **state)
{
	struct stop_pool p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	pthread_t t[3];
	size_t i;

	(void)state;
	/* no threads: the flag is set all the same */
	thread_stop(&p.mu, &p.cv, &p.quit, NULL, 0);
	assert_int_equal(p.quit, 1);
	p.quit = 0;
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stop_waiter, &p), 0);
	usleep(20000); /* most of them asleep on cv: all must be woken */
	thread_stop(&p.mu, &p.cv, &p.quit, t, 3);
	/* joined: every waiter has ended, none is left to count later */
	assert_int_equal(p.ended, 3);
	assert_int_equal(p.quit, 1);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
}

/* mem_free_strings frees the members it is given (make valgrind: no
 * leak), NULL ones too, and touches nothing else. */
static void test_free_strings(void **state)
{
	struct three { char *a; int keep; char *b, *c; } *t = xcalloc(1, sizeof(*t));
	static const size_t off[] = {
		offsetof(struct three, a), offsetof(struct three, b), offsetof(struct three, c),
	};

	(void)state;
	t->a = xstrdup("a");
	t->keep = 7;
	t->c = xstrdup("c");
	mem_free_strings(t, off, sizeof(off) / sizeof(off[0]));
	assert_int_equal(t->keep, 7);
	mem_free_strings(t, off, 0);
	free(t);
}

/* fd_close closes an open descriptor and marks it closed; on a closed
 * one (-1) it does nothing, so a second call closes nothing else. */
static void test_fd_close(void **state)
{
	int p[2], was;

	(void)state;
	assert_int_equal(pipe(p), 0);
	was = p[0];
	fd_close(&p[0]);
	assert_int_equal(p[0], -1);
	errno = 0;
	assert_int_equal(fcntl(was, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	fd_close(&p[0]);
	assert_int_equal(p[0], -1);
	assert_true(fcntl(p[1], F_GETFD) >= 0); /* the other end untouched */
	fd_close(&p[1]);
	assert_int_equal(p[1], -1);
}

UNIT_MAIN(
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_dl_load),
		cmocka_unit_test(test_parse_seconds),
		cmocka_unit_test(test_parse_bool_size),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_uuid7),
		cmocka_unit_test(test_uuid7_fork),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_err),
		cmocka_unit_test(test_cond_wait),
		cmocka_unit_test(test_thread_stop),
		cmocka_unit_test(test_free_strings),
		cmocka_unit_test(test_fd_close),
)
