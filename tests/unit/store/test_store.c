/* Unit tests of internal/store that need no database: URL checks, and the
 * behaviour against a loopback
 * port where nothing listens (what a stopped Postgres looks like). The
 * tests against a real Postgres are test_store_db.c, run by
 * tests/integration/30_store.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "store/store.h"
#include "../unit.h"

static void expect_bad_url(const char *url, const char *fragment)
{
	struct err e;
	struct store *s;

	err_clear(&e);
	s = store_open(url, 0, &e);
	if (s) {
		store_free(s);
		fail_msg("url '%s' was accepted", url ? url : "(null)");
	}
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "invalid database url"));
	if (fragment && !strstr(e.msg, fragment))
		fail_msg("message '%s' lacks '%s'", e.msg, fragment);
	/* the password never shows */
	assert_null(strstr(e.msg, "s3cret"));
}

static void test_open_bad_urls(void **state)
{
	struct err e;

	(void)state;
	expect_bad_url("", "empty");
	expect_bad_url(NULL, "empty");
	expect_bad_url("not a url", "expected postgres://");
	expect_bad_url("mysql://u:s3cret@h/db", "expected postgres://");
	expect_bad_url("postgres://u:s3cret@h/db?nosuchparam=1", "nosuchparam");
	expect_bad_url("postgres://u:s3cret@h:99999/db", "bad port");
	expect_bad_url("postgres://u:s3cret@h:abc/db", "bad port");
	expect_bad_url("postgresql://u:s3cret@[::1/db", NULL);
	expect_bad_url("host=h password=s3cret bogus", NULL);
	assert_fails_null(store_open("postgres://h/db", STORE_MAX_CONNS + 1, &e),
	                  &e, ERR_INVALID);
}

/* A loopback port where nothing listens: bind without listen. */
static int dead_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void test_unreachable(void **state)
{
	char url[128], existing[UUID_STR_LEN] = "";
	struct job_spec nj = { 0 };
	struct job_info job;
	struct err e;
	struct store *s;
	int64_t t0;
	int fd, port = dead_port(&fd);

	(void)state;
	snprintf(url, sizeof(url),
		 "postgresql://wakeq:s3cret@127.0.0.1:%d/postgres", port);
	s = store_open(url, 2, &e);
	assert_non_null(s); /* opening does not connect */
	t0 = clock_mono_us();
	assert_fails(store_ping(s, &e), &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "postgres"));
	assert_null(strstr(e.msg, "s3cret"));
	/* inside the retry pause: fails at once, without a new connect */
	assert_fails(store_ping(s, &e), &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "unavailable"));
	assert_fails(store_migrate(s, &e), &e, ERR_UNAVAILABLE);
	snprintf(nj.id, sizeof(nj.id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	nj.queue = "q";
	nj.type = "noop";
	assert_fails(store_insert(s, &nj, existing, &e), &e, ERR_UNAVAILABLE);
	assert_string_equal(existing, "");
	memset(&job, 0x5a, sizeof(job));
	assert_fails(store_get(s, nj.id, &job, &e), &e, ERR_UNAVAILABLE);
	assert_int_equal((unsigned char)job.id[0], 0x5a); /* untouched */
	assert_true(clock_mono_us() - t0 < 2000000);
	/* input errors are found before any connection is needed */
	assert_fails(store_get(s, "nope", &job, &e), &e, ERR_NOTFOUND);
	nj.payload = "{bad";
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "payload"));
	assert_fails(store_finish(s, nj.id, JOB_ACTIVE, NULL, NULL, 0, 0, &e), &e, ERR_INVALID);
	store_free(s);
	store_free(NULL);
	store_job_list_release(NULL);
	close(fd);
}

UNIT_MAIN(
		cmocka_unit_test(test_open_bad_urls),
		cmocka_unit_test(test_unreachable),
)
