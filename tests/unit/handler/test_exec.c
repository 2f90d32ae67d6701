/* Unit tests of exec handlers (internal/handler/exec.c, persist.c) run
 * through the job module as the worker runs them, with real /bin/sh
 * programs: the stdin/stdout/fd 3 protocol, exit codes, signals, invalid
 * and oversized results, cancel with a handler that ignores SIGTERM, a
 * grandchild that outlives its parent, the clean environment and working
 * directory, the concurrency gate, CPU limits, and persistent processes
 * (reuse, errors, deaths, protocol breaks, cancel, idle stop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "handler/handler.h"
#include "job/job.h"
#include "testcall.h"
#include "../unit.h"

static struct handler_registry reg;
static struct handler_opts opts;
static char root[] = "/tmp/wakeq-exec-test-XXXXXX";

/* Each entry: {"command": SCRIPT, "shell": true} plus EXTRA (JSON). */
static void entry(json_t *hs, const char *type, const char *script, const char *extra)
{
	json_t *e = extra ? json_loads(extra, 0, NULL) : json_object();

	assert_non_null(e);
	json_object_set_new(e, "command", json_string(script));
	json_object_set_new(e, "shell", json_true());
	json_object_set_new(hs, type, e);
}

static int setup(void **state)
{
	json_t *doc = json_object(), *hs = json_object();
	char *text;
	struct err e;

	(void)state;
	assert_non_null(mkdtemp(root));
	json_object_set_new(doc, "handlers", hs);
	entry(hs, "t.echo", "read -r p; printf '{\"got\":%s}' \"$p\"", NULL);
	entry(hs, "t.env",
	      "printf '{\"id\":\"%s\",\"type\":\"%s\",\"attempt\":%s,\"home\":\"%s\","
	      "\"pwd\":\"%s\",\"tmp\":\"%s\",\"fd\":\"%s\",\"lang\":\"%s\",\"secret\":\"%s\","
	      "\"trace\":\"%s\",\"deadline\":\"%s\",\"n\":%s}' \"$WAKEQ_JOB_ID\" "
	      "\"$WAKEQ_JOB_TYPE\" \"$WAKEQ_ATTEMPT\" \"${HOME:-}\" \"$PWD\" \"$TMPDIR\" "
	      "\"$WAKEQ_PROGRESS_FD\" \"${LANG:-}\" \"${T_SECRET:-}\" \"${WAKEQ_TRACE_ID:-}\" "
	      "\"${WAKEQ_DEADLINE:-}\" \"$(env | wc -l)\"",
	      "{\"env\": [\"LANG=C.UTF-8\", \"T_SECRET\", \"T_UNSET\"]}");
	entry(hs, "t.progress",
	      "echo '{\"progress\":40,\"stage\":\"encoding\"}' >&3; echo '{\"stage\":\"mux\"}' >&3;"
	      " echo 'not json' >&3; echo '{\"progress\":\"x\"}' >&3; echo '{\"done\":1}'", NULL);
	entry(hs, "t.exit", "read p; p=$(echo \"$p\" | tr -dc 0-9); echo \"oops $p\" >&2; "
	      "echo line2 >&2; exit $p",
	      "{\"retry_exit_codes\": [75]}");
	entry(hs, "t.signal", "kill -9 $$", NULL);
	entry(hs, "t.badjson", "echo '{\"a\":'", NULL);
	entry(hs, "t.empty", "true", NULL);
	entry(hs, "t.big", "head -c 100000 /dev/zero | tr '\\0' a; sleep 30",
	      "{\"result_max\": 100}");
	entry(hs, "t.stubborn",
	      "trap '' TERM; echo $$ > \"$T_DIR/stubborn.pid\"; sleep 30 & echo $! > "
	      "\"$T_DIR/stubborn.child\"; while :; do sleep 1; done",
	      "{\"kill_grace_s\": 0.3, \"env\": [\"T_DIR\"]}");
	entry(hs, "t.orphan",
	      "(sleep 30 & echo $! > \"$T_DIR/orphan.pid\"); echo '{\"ok\":true}'",
	      "{\"env\": [\"T_DIR\"]}");
	entry(hs, "t.gate", "sleep 0.3; echo 1", "{\"concurrency\": 1}");
	entry(hs, "t.cpu", "while :; do :; done", "{\"limits\": {\"cpu_s\": 1}}");
	entry(hs, "t.files", "ls /proc/self/fd | wc -l", NULL);
	entry(hs, "p.echo",
	      "echo started >&2; while read -r line; do case \"$line\" in "
	      "*die*) exit 3;; *junk*) echo hello;; *err*) echo '{\"error\":\"nope\","
	      "\"retryable\":true,\"retry_after_s\":7}';; *busy*) echo '{\"error\":\"busy\","
	      "\"retryable\":true,\"retry_after_s\":3,\"rate_limit_group\":true}';; "
	      "*slow*) sleep 30;; "
	      "*) echo '{\"progress\":50}'; echo \"{\\\"result\\\":{\\\"pid\\\":$$,"
	      "\\\"req\\\":$line}}\";; esac; done",
	      "{\"persistent\": true, \"kill_grace_s\": 0.3}");
	text = json_dumps(doc, 0);
	json_decref(doc);
	handler_registry_init(&reg);
	if (handler_registry_parse(&reg, text, strlen(text), "test", &e) < 0)
		fail_msg("%s", e.msg);
	free(text);
	assert_int_equal(handler_registry_add_types(&reg, &e), 0);
	opts.tmp_root = root;
	opts.idle_s = 0.5;
	setenv("T_SECRET", "s3", 1);
	setenv("T_DIR", root, 1);
	if (handler_bind(&reg, &opts, &e) < 0)
		fail_msg("%s", e.msg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	handler_stop();
	job_unregister_all();
	handler_registry_release(&reg);
	return unit_rmtree(root);
}

/* Entries under the temp root: working directories must be gone. */
static int workdirs(void)
{
	DIR *d = opendir(root);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "wakeq-", 6))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Whether a process that is not a zombie has process group `pgid`. */
static int group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int alive = 0;

	while (d && (e = readdir(d))) {
		char path[300], buf[512], state;
		int pgrp;
		FILE *f;
		char *rp;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 1, " %c %*d %d", &state, &pgrp) == 2 && pgrp == pgid &&
		    state != 'Z')
			alive = 1;
		fclose(f);
	}
	if (d)
		closedir(d);
	return alive;
}

/* Whether the group is gone within 2 s (a stopped process is reaped by
 * the handler's own thread, a moment after the job's answer). */
static int group_gone(pid_t pgid)
{
	int i;

	for (i = 0; i < 200 && group_alive(pgid); i++)
		clock_sleep_us(10000);
	return !group_alive(pgid);
}

static pid_t read_pid(const char *name)
{
	char path[512];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

static void test_protocol(void **state)
{
	struct call *c;
	json_t *r;

	(void)state;
	c = run("t.echo", "{\"text\":\"hé \\\"x\\\"\"}");
	if (c->rc)
		fail_msg("%s", c->out.error);
	assert_string_equal(result_text(c), "{\"got\":{\"text\":\"hé \\\"x\\\"\"}}");
	done(c);

	c = run("t.env", NULL);
	assert_int_equal(c->rc, 0);
	r = c->out.result;
	assert_json_str(r, "id", "0190c6c8-0000-7000-8000-000000000001");
	assert_json_str(r, "type", "t.env");
	assert_json_int(r, "attempt", 2);
	assert_json_str(r, "home", ""); /* clean */
	assert_non_null(strstr(json_string_value(json_object_get(r, "pwd")), root));
	assert_json_str(r, "pwd", json_string_value(json_object_get(r, "tmp")));
	assert_json_str(r, "fd", "3");
	assert_json_str(r, "lang", "C.UTF-8");
	assert_json_str(r, "secret", "s3");
	assert_json_str(r, "trace", "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_json_str(r, "deadline", "");
	/* PATH, TMPDIR, LANG, T_SECRET, 7 WAKEQ_*, and what sh adds (PWD...) */
	assert_true(json_integer_value(json_object_get(r, "n")) <= 14);
	assert_int_equal(workdirs(), 0);
	done(c);

	c = run("t.progress", NULL);
	assert_int_equal(c->rc, 0);
	assert_string_equal(result_text(c), "{\"done\":1}");
	assert_int_equal(c->seen.n, 2); /* junk lines are skipped */
	assert_true(c->seen.pct[0] == 40);
	assert_string_equal(c->seen.stage[0], "encoding");
	assert_true(c->seen.pct[1] == 40); /* a stage alone keeps the percent */
	assert_string_equal(c->seen.stage[1], "mux");
	done(c);

	c = run("t.empty", NULL);
	assert_int_equal(c->rc, 0);
	assert_null(c->out.result);
	done(c);

	c = run("t.files", NULL);
	/* stdin, stdout, stderr, fd 3 and ls's own directory: nothing leaked */
	assert_int_equal(c->rc, 0);
	assert_true(json_integer_value(c->out.result) <= 5);
	done(c);
}

static void test_failures(void **state)
{
	struct call *c;

	(void)state;
	c = run("t.exit", "{\"code\":75}");
	assert_int_equal(c->rc, -1);
	assert_true(c->out.retryable);
	assert_string_equal(c->out.error, "handler 't.exit' exited with status 75: oops 75 | line2");
	done(c);
	c = run("t.exit", "{\"code\":3}");
	assert_int_equal(c->rc, -1);
	assert_false(c->out.retryable);
	assert_string_equal(c->out.error, "handler 't.exit' exited with status 3: oops 3 | line2");
	done(c);
	c = run("t.signal", NULL);
	assert_int_equal(c->rc, -1);
	assert_true(c->out.retryable);
	assert_non_null(strstr(c->out.error, "handler 't.signal' was killed by signal 9"));
	done(c);
	c = run("t.badjson", NULL);
	assert_int_equal(c->rc, -1);
	assert_false(c->out.retryable);
	assert_non_null(strstr(c->out.error, "handler 't.badjson' wrote invalid JSON on stdout"));
	done(c);
	c = run("t.big", NULL);
	assert_int_equal(c->rc, -1);
	assert_false(c->out.retryable);
	assert_string_equal(c->out.error, "handler 't.big' wrote a result larger than 100 "
			    "bytes (result_max)");
	assert_true(c->secs < 5); /* stopped at once, not after its sleep */
	done(c);
	c = run("t.cpu", NULL);
	assert_int_equal(c->rc, -1);
	assert_true(c->out.retryable);
	assert_non_null(strstr(c->out.error, "killed by signal"));
	assert_true(c->secs < 10);
	done(c);
	assert_int_equal(workdirs(), 0);
}

static void test_cancel_and_orphans(void **state)
{
	struct call *c;
	pthread_t th;
	pid_t leader, child;

	(void)state;
	/* a handler that ignores SIGTERM: SIGKILL after the grace */
	c = call_start("t.stubborn", NULL, &th);
	clock_sleep_us(400000);
	leader = read_pid("stubborn.pid");
	child = read_pid("stubborn.child");
	assert_true(leader > 0 && child > 0);
	assert_true(group_alive(leader));
	atomic_store(&c->cancel, 1);
	pthread_join(th, NULL);
	assert_int_equal(c->rc, -1);
	assert_string_equal(c->out.error, "cancelled");
	assert_true(c->secs < 3);
	assert_false(group_alive(leader));
	assert_true(kill(child, 0) < 0 || group_alive(leader) == 0);
	done(c);

	/* a grandchild that outlives its parent and holds stdout open */
	c = run("t.orphan", NULL);
	assert_int_equal(c->rc, 0);
	assert_string_equal(result_text(c), "{\"ok\":true}");
	assert_true(c->secs < 3);
	{
		pid_t g = read_pid("orphan.pid");
		char path[64], buf[512];
		FILE *f;

		assert_true(g > 0);
		/* killed: gone, or a zombie waiting for init (SIGKILL takes a
		 * moment to finish what it started) */
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)g);
		for (int i = 0; i < 100; i++) {
			buf[0] = '\0';
			f = fopen(path, "r");
			if (!f)
				break;
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = '\0';
			fclose(f);
			if (strstr(buf, ") Z"))
				break;
			clock_sleep_us(10000);
		}
		if (f && !strstr(buf, ") Z"))
			fail_msg("grandchild alive: %s", buf);
	}
	done(c);
	assert_int_equal(workdirs(), 0);
}

static void test_gate(void **state)
{
	pthread_t ta, tb;
	int64_t t0 = clock_mono_us();
	struct call *a = call_start("t.gate", NULL, &ta), *b = call_start("t.gate", NULL, &tb);

	(void)state;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a->rc, 0);
	assert_int_equal(b->rc, 0);
	/* concurrency 1: one after the other */
	assert_true(clock_mono_us() - t0 >= 600000);
	done(a);
	done(b);
}

static void test_persistent(void **state)
{
	struct call *c;
	json_int_t pid1, pid2;
	pthread_t th;

	(void)state;
	c = run("p.echo", "{\"n\":1}");
	assert_int_equal(c->rc, 0);
	pid1 = json_integer_value(json_object_get(c->out.result, "pid"));
	assert_true(pid1 > 0);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(json_object_get(c->out.result, "req"), "payload"), "n")), 1);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(c->out.result, "req"), "type")), "p.echo");
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(c->out.result, "req"), "attempt")), 2);
	assert_int_equal(c->seen.n, 1);
	assert_true(c->seen.pct[0] == 50);
	done(c);
	c = run("p.echo", "{\"n\":2}");
	assert_int_equal(c->rc, 0);
	/* the same process */
	assert_json_int(c->out.result, "pid", pid1);
	done(c);
	c = run("p.echo", "{\"err\":1}");
	assert_int_equal(c->rc, -1);
	assert_true(c->out.retryable);
	assert_true(c->out.retry_after_s == 7);
	assert_int_equal(c->out.rate_limit_group, 0);
	assert_string_equal(c->out.error, "nope");
	done(c);
	/* an error that says the service is rate limited: a push-back */
	c = run("p.echo", "{\"busy\":1}");
	assert_int_equal(c->rc, -1);
	assert_true(c->out.retry_after_s == 3);
	assert_int_equal(c->out.rate_limit_group, 1);
	done(c);
	/* an error answer keeps the process */
	c = run("p.echo", "{}");
	assert_json_int(c->out.result, "pid", pid1);
	done(c);
	c = run("p.echo", "{\"junk\":1}");
	assert_int_equal(c->rc, -1);
	assert_false(c->out.retryable);
	assert_non_null(strstr(c->out.error, "answered a line that is not a JSON object"));
	done(c);
	assert_true(group_gone((pid_t)pid1)); /* stopped for breaking the protocol */
	c = run("p.echo", "{}");
	pid2 = json_integer_value(json_object_get(c->out.result, "pid"));
	assert_true(pid2 > 0 && pid2 != pid1);
	done(c);
	c = run("p.echo", "{\"die\":1}");
	assert_int_equal(c->rc, -1);
	assert_false(c->out.retryable);
	/* the stderr tail is this job's: "started" was written before it */
	assert_string_equal(c->out.error, "handler 'p.echo' exited with status 3 before answering");
	done(c);
	/* restarted */
	c = run("p.echo", "{}");
	assert_int_equal(c->rc, 0);
	pid1 = json_integer_value(json_object_get(c->out.result, "pid"));
	assert_true(pid1 != pid2);
	done(c);
	/* cancel mid-job stops the process */
	c = call_start("p.echo", "{\"slow\":1}", &th);
	clock_sleep_us(300000);
	atomic_store(&c->cancel, 1);
	pthread_join(th, NULL);
	assert_int_equal(c->rc, -1);
	assert_string_equal(c->out.error, "cancelled");
	assert_true(c->secs < 3);
	assert_true(group_gone((pid_t)pid1));
	done(c);
	/* idle for longer than idle_s: stopped by the reaper */
	c = run("p.echo", "{}");
	pid2 = json_integer_value(json_object_get(c->out.result, "pid"));
	assert_true(group_alive((pid_t)pid2));
	done(c);
	clock_sleep_us(1500000);
	assert_false(group_alive((pid_t)pid2));
	assert_int_equal(workdirs(), 0);
	/* and handler_stop stops one that is still idle */
	c = run("p.echo", "{}");
	pid1 = json_integer_value(json_object_get(c->out.result, "pid"));
	done(c);
	handler_stop();
	assert_false(group_alive((pid_t)pid1));
	assert_int_equal(workdirs(), 0);
}

static void test_bind_errors(void **state)
{
	struct handler_registry r;
	struct err e;
	static const char *const docs[][2] = {
		{ "{\"handlers\":{\"b1\":{\"command\":[\"/nonexistent/prog\"]}}}",
		  "handler 'b1' (x:1): command '/nonexistent/prog' is not an executable file" },
		{ "{\"handlers\":{\"b2\":{\"command\":[\"no-such-command-here\"]}}}",
		  "handler 'b2' (x:1): command 'no-such-command-here' not found in PATH" },
		{ "{\"handlers\":{\"b3\":{\"command\":[\"true\"],\"user\":\"no-such-user\"}}}",
		  "handler 'b3' (x:1): no user 'no-such-user'" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		handler_registry_init(&r);
		assert_int_equal(handler_registry_parse(&r, docs[i][0], strlen(docs[i][0]), "x", &e),
				 0);
		assert_int_equal(handler_bind(&r, &opts, &e), -1);
		assert_string_equal(e.msg, docs[i][1]);
		handler_registry_release(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_cancel_and_orphans),
		cmocka_unit_test(test_gate),
		cmocka_unit_test(test_persistent),
		cmocka_unit_test(test_bind_errors),
	};

	signal(SIGPIPE, SIG_IGN); /* as the worker */
	return cmocka_run_group_tests(tests, setup, teardown);
}
