/* Unit tests of C plugins (internal/handler/plugin.c) with real shared
 * objects built by make (tests/plugins/testplug.c three ways, and the
 * example docs/examples/plugin/wordcount.c): the ABI version check (a
 * plugin of another ABI, one without the symbol), the types a plugin
 * runs, a failing init, registry entries bound and run through the job
 * module as the worker runs them (payload, result, progress, errors and
 * their retryability, invalid and oversized results, cancel), and
 * shutdown at handler_stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "handler/handler.h"
#include "job/job.h"
#include "log/log.h"

/* a deadline: the test plugin reports whether it saw one */
#define CALL_TIMEOUT_S 30
#include "testcall.h"
#include "../unit.h"

static char plugdir[PATH_MAX], example[PATH_MAX], logpath[] = "/tmp/wakeq-plugin-log-XXXXXX";
static int logfd = -1;

static void plug(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", plugdir, name);
}

static int setup(void **state)
{
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
	char abs[PATH_MAX];

	(void)state;
	if (!realpath(b, abs))
		return -1;
	snprintf(plugdir, sizeof(plugdir), "%s/tests/plugins", abs);
	snprintf(example, sizeof(example), "%s/examples/wordcount.so", abs);
	logfd = mkstemp(logpath);
	if (logfd < 0)
		return -1;
	log_init(LOG_TEXT, LOG_INFO, logfd);
	return 0;
}

/* Starts the log file afresh. */
static void log_reset(void)
{
	close(logfd);
	logfd = open(logpath, O_RDWR | O_TRUNC | O_APPEND);
	assert_true(logfd >= 0);
	log_init(LOG_TEXT, LOG_INFO, logfd);
}

static int teardown(void **state)
{
	(void)state;
	log_init(LOG_TEXT, LOG_INFO, 2);
	close(logfd);
	unlink(logpath);
	return 0;
}

/* ---- loading ------------------------------------------------------------- */

static void test_abi_checks(void **state)
{
	/* the plugin file, the type asked of it, the error code (ERR_OK: not
	 * checked) and the message before and after the plugin's path */
	static const struct {
		const char *file, *type;
		enum err_code code;
		const char *before, *after;
	} refused[] = {
		{ "badabi.so", "t.plug", ERR_INVALID, "plugin '",
		  "' was built for handler ABI 999, this worker speaks ABI 1 (rebuild it "
		  "against wakeq/handler.h)" },
		{ "noabi.so", "t.plug", ERR_INVALID, "plugin '",
		  "' is not a wakeq handler plugin: no symbol 'wakeq_handler_abi_version' "
		  "(build it with WAKEQ_HANDLER_PLUGIN of wakeq/handler.h)" },
		{ "nothere.so", "t.plug", ERR_NOTFOUND, "cannot load plugin '",
		  "': cannot open shared object file: No such file or directory" },
		{ "testplug.so", "t.other", ERR_OK, "plugin '",
		  "' does not run type 't.other' (it runs: t.plug, t.plug2, t.initfail)" },
		{ "testplug.so", "t.initfail", ERR_OK, "plugin '",
		  "' failed to start: cannot open the model file '/nonexistent'" },
	};
	char path[PATH_MAX + 64], want[2 * PATH_MAX + 256];
	struct handler_plugin *p;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		plug(path, sizeof(path), refused[i].file);
		assert_null(handler_plugin_open(path, refused[i].type, &e));
		if (refused[i].code != ERR_OK)
			assert_int_equal(e.code, refused[i].code);
		snprintf(want, sizeof(want), "%s%s%s", refused[i].before, path, refused[i].after);
		assert_string_equal(e.msg, want);
	}
	plug(path, sizeof(path), "testplug.so");
	p = handler_plugin_open(path, "t.plug", &e);
	if (!p)
		fail_msg("%s", e.msg);
	handler_plugin_close(p);
	handler_plugin_close(NULL);
}

static void test_locate(void **state)
{
	char out[PATH_MAX], self[PATH_MAX], cwd[PATH_MAX], want[2 * PATH_MAX];
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	/* a bare name: beside the executable (none there: still that path) */
	assert_int_equal(handler_plugin_locate("nothere.so", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/nothere.so", self);
	assert_string_equal(out, want);
	/* a bare name found in ../lib/wakeq from the executable */
	{
		char dir[PATH_MAX + 32], file[PATH_MAX + 64];
		int fd;

		snprintf(dir, sizeof(dir), "%s/../lib", self);
		mkdir(dir, 0755);
		snprintf(dir, sizeof(dir), "%s/../lib/wakeq", self);
		assert_true(mkdir(dir, 0755) == 0 || access(dir, F_OK) == 0);
		snprintf(file, sizeof(file), "%s/t-locate.so", dir);
		fd = open(file, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(handler_plugin_locate("t-locate.so", out, sizeof(out)), 0);
		assert_string_equal(out, file);
		unlink(file);
		rmdir(dir);
		snprintf(dir, sizeof(dir), "%s/../lib", self);
		rmdir(dir);
	}
	/* a relative path: made absolute against the working directory */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(handler_plugin_locate("./Makefile", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/Makefile", cwd);
	assert_string_equal(out, want);
	assert_int_equal(handler_plugin_locate("/a/b.so", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b.so");
	assert_int_equal(handler_plugin_locate("/a/b.so", out, 4), -1);
}

/* ---- the registry's plugin kind --------------------------------------------- */

static struct handler_registry reg;

static void bind_registry(const char *extra)
{
	char doc[8192];
	struct err e;

	snprintf(doc, sizeof(doc),
		 "{\"handlers\": {\n"
		 "  \"t.plug\": {\"kind\": \"plugin\", \"path\": \"%s/testplug.so\",\n"
		 "             \"result_max\": \"64K\"},\n"
		 "  \"t.plug2\": {\"kind\": \"plugin\", \"path\": \"%s/testplug.so\",\n"
		 "              \"concurrency\": 1}%s\n"
		 "}}", plugdir, plugdir, extra ? extra : "");
	handler_registry_init(&reg);
	if (handler_registry_parse(&reg, doc, strlen(doc), "test.json", &e) < 0)
		fail_msg("%s", e.msg);
	if (handler_registry_add_types(&reg, &e) < 0)
		fail_msg("%s", e.msg);
}

static void unbind_registry(void)
{
	handler_stop();
	job_unregister_all();
	handler_registry_release(&reg);
}

static void test_bind_refuses_bad_abi(void **state)
{
	char extra[PATH_MAX + 128], want[2 * PATH_MAX];
	struct handler_opts o = { 0 };
	struct err e;

	(void)state;
	snprintf(extra, sizeof(extra), ",\n  \"t.bad\": {\"kind\": \"plugin\", \"path\": "
		 "\"%s/badabi.so\"}", plugdir);
	bind_registry(extra);
	assert_int_equal(handler_bind(&reg, &o, &e), -1);
	snprintf(want, sizeof(want), "handler 't.bad' (test.json:6): plugin '%s/badabi.so' "
		 "was built for handler ABI 999, this worker speaks ABI 1 (rebuild it "
		 "against wakeq/handler.h)", plugdir);
	assert_string_equal(e.msg, want);
	unbind_registry();
}

static void test_run(void **state)
{
	struct handler_opts o = { 0 };
	struct call *c;
	struct err e;
	json_t *r;

	(void)state;
	log_reset();
	bind_registry(NULL);
	if (handler_bind(&reg, &o, &e) < 0)
		fail_msg("%s", e.msg);

	c = run("t.plug", "{\"mode\":\"echo\",\"text\":\"héllo\"}");
	assert_int_equal(c->rc, 0);
	r = c->out.result;
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "payload"),
							      "text")), "héllo");
	assert_json_int(r, "attempt", 2);
	assert_json_str(r, "type", "t.plug");
	assert_true(json_is_true(json_object_get(r, "deadline")));
	/* NaN progress dropped, then 50 "half" */
	assert_int_equal(c->seen.n, 1);
	assert_true(c->seen.pct[0] == 50);
	assert_string_equal(c->seen.stage[0], "half");
	done(c);

	c = run("t.plug2", "{\"mode\":\"null\"}");
	assert_int_equal(c->rc, 0);
	assert_string_equal(result_text(c), "null");
	done(c);

	c = run("t.plug", "{\"mode\":\"badjson\"}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 0);
	assert_string_equal(c->out.error, "handler 't.plug' returned invalid JSON: "
			    "unexpected token near end of file (line 1, column 5)");
	done(c);

	c = run("t.plug", "{\"mode\":\"big\"}");
	assert_int_equal(c->rc, -1);
	assert_string_equal(c->out.error, "handler 't.plug' returned a result larger than "
			    "65536 bytes (result_max)");
	done(c);

	c = run("t.plug", "{\"mode\":\"retry\"}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 1);
	assert_true(c->out.retry_after_s == 2);
	assert_string_equal(c->out.error, "model server busy");
	done(c);

	c = run("t.plug", "{\"mode\":\"hard\"}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 0);
	assert_string_equal(c->out.error, "bad input '" CALL_JOB_ID "'");
	done(c);

	c = run("t.plug", "{\"mode\":\"silent\"}");
	assert_int_equal(c->rc, -1);
	assert_string_equal(c->out.error, "failed");
	done(c);

	/* cancel: the flag reaches the plugin, which returns */
	{
		pthread_t th;
		struct call *s = call_start("t.plug", "{\"mode\":\"spin\"}", &th);

		usleep(200000);
		atomic_store(&s->cancel, 1);
		pthread_join(th, NULL);
		assert_int_equal(s->rc, -1);
		assert_true(s->secs < 1.5);
		assert_true(s->seen.n >= 5);
		assert_string_equal(s->seen.stage[0], "spinning");
		done(s);
	}

	/* handler_stop shuts the plugin down (its shutdown logs), and a job
	 * arriving after that is refused, retryably */
	handler_stop();
	c = run("t.plug", "{\"mode\":\"echo\"}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 1);
	assert_string_equal(c->out.error, "handler 't.plug': the worker is stopping");
	done(c);
	{
		char buf[8192];
		ssize_t n = pread(logfd, buf, sizeof(buf) - 1, 0);
		const char *at;
		int count = 0;

		assert_true(n > 0);
		buf[n] = '\0';
		for (at = buf; (at = strstr(at, "testplug: shutdown handler=t.plug")); at++)
			count++;
		/* once per entry: t.plug and t.plug2 */
		assert_int_equal(count, 2);
		assert_non_null(strstr(buf, "testplug: started handler=t.plug2"));
	}
	unbind_registry();
}

static void test_example_wordcount(void **state)
{
	char extra[PATH_MAX + 128];
	struct handler_opts o = { 0 };
	struct call *c;
	struct err e;

	(void)state;
	snprintf(extra, sizeof(extra), ",\n  \"text.wordcount\": {\"kind\": \"plugin\", "
		 "\"path\": \"%s\"}", example);
	bind_registry(extra);
	if (handler_bind(&reg, &o, &e) < 0)
		fail_msg("%s", e.msg);
	c = run("text.wordcount", "{\"text\":\"one two  three\\nfour\\u00e9\"}");
	assert_int_equal(c->rc, 0);
	assert_string_equal(result_text(c), "{\"words\":4,\"lines\":2,\"chars\":20,\"runs\":1}");
	assert_true(c->seen.n >= 3);
	assert_true(c->seen.pct[c->seen.n < 8 ? c->seen.n - 1 : 7] >= 70);
	done(c);
	c = run("text.wordcount", "{\"text\":\"x\",\"fail\":\"transient\"}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 1);
	assert_string_equal(c->out.error, "upstream is busy, try again later");
	done(c);
	c = run("text.wordcount", "{}");
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->out.retryable, 0);
	assert_string_equal(c->out.error, "payload field 'text' is required (a string)");
	done(c);
	c = run("text.wordcount", "{\"text\":\"a\"}");
	assert_string_equal(result_text(c), "{\"words\":1,\"lines\":1,\"chars\":1,\"runs\":4}");
	done(c);
	unbind_registry();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi_checks),
		cmocka_unit_test(test_locate),
		cmocka_unit_test(test_bind_refuses_bad_abi),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_example_wordcount),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
