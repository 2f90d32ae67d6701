/* Unit tests of drain_decide (internal/worker/drain.c): when a drain
 * ends, and why, from one snapshot of what the drain thread saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "worker/worker_int.h"
#include "../unit.h"

#define S 1000000 /* µs */

/* A drain 10 s into a 60 s WAKE_MAX with IDLE_TIMEOUT 2 s, working. */
static struct drain_facts base(void)
{
	struct drain_facts f;

	memset(&f, 0, sizeof(f));
	f.now_us = 100 * S;
	f.wake_max_at = 150 * S;
	f.idle_since = 100 * S;
	f.idle_us = 2 * S;
	f.due_in_us = INT64_MAX;
	return f;
}

/* Jobs in hand, running or finished and not settled yet, keep the drain
 * whatever else `f` says. */
static void assert_work_keeps(struct drain_facts f)
{
	f.busy = 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.busy = 0;
	f.unsettled = 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
}

/* The verdict on `f` had the drain been idle for `us` until now. */
static enum drain_verdict idle_for(struct drain_facts f, int64_t us)
{
	f.idle_since = f.now_us - us;
	return drain_decide(&f);
}

/* The verdict on `f` with the next delayed job due in `us`. */
static enum drain_verdict due_in(struct drain_facts f, int64_t us)
{
	f.due_in_us = us;
	return drain_decide(&f);
}

static void test_working(void **state)
{
	struct drain_facts f = base();

	(void)state;
	f.busy = 3;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.busy = 0;
	f.unsettled = 2;
	f.idle_since = 0; /* long idle, but finished tasks wait to be settled */
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
}

/* Every queue paused: the drain ends once nothing is held, without
 * waiting out IDLE_TIMEOUT (a paused queue must keep no worker awake). */
static void test_paused(void **state)
{
	struct drain_facts f = base();

	(void)state;
	f.paused = 1;
	assert_int_equal(drain_decide(&f), DRAIN_END_IDLE);
	assert_work_keeps(f);
	f.paused = 0;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
}

static void test_idle(void **state)
{
	struct drain_facts f = base();

	(void)state;
	assert_int_equal(idle_for(f, 2 * S - 1), DRAIN_CONTINUE);
	assert_int_equal(idle_for(f, 2 * S), DRAIN_END_IDLE);
	assert_string_equal(drain_verdict_name(DRAIN_END_IDLE), "idle");
	f.idle_since = f.now_us - 2 * S;
	/* A delayed job due inside the idle window: wait for it here. */
	assert_int_equal(due_in(f, 2 * S - 1), DRAIN_HOLD);
	assert_int_equal(due_in(f, 2 * S), DRAIN_END_IDLE);
	/* Jobs held keep the drain: never idle with work in hand. */
	assert_work_keeps(f);
}

/* A wake whose first take found nothing due ends at once (an idle cron
 * tick bills almost nothing); after real work the drain lingers. */
static void test_empty_wake(void **state)
{
	struct drain_facts f = base();

	(void)state;
	f.empty = 1;
	f.empty_linger_us = 0;
	assert_int_equal(drain_decide(&f), DRAIN_END_IDLE);
	/* ...unless a delayed job comes due within IDLE_TIMEOUT: held. */
	assert_int_equal(due_in(f, 2 * S - 1), DRAIN_HOLD);
	assert_int_equal(due_in(f, 2 * S), DRAIN_END_IDLE);
	/* Jobs held (taken by a /wake joining it) keep it, as ever. */
	assert_work_keeps(f);
	/* EMPTY_WAKE_LINGER replaces IDLE_TIMEOUT as the window. */
	f.empty_linger_us = S / 2;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	assert_int_equal(idle_for(f, S / 2 - 1), DRAIN_CONTINUE);
	assert_int_equal(idle_for(f, S / 2), DRAIN_END_IDLE);
	/* After work the drain waits the whole IDLE_TIMEOUT. */
	f.empty = 0;
	f.idle_since = f.now_us - S / 2;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.empty_linger_us = 0;
	f.idle_since = f.now_us;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	assert_int_equal(idle_for(f, 2 * S - 1), DRAIN_CONTINUE);
	assert_int_equal(idle_for(f, 2 * S), DRAIN_END_IDLE);
	/* SIGTERM and WAKE_MAX rules come first, empty or not. */
	f.empty = 1;
	f.idle_since = f.now_us;
	f.stopping = 1;
	f.busy = 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.busy = 0;
	assert_int_equal(drain_decide(&f), DRAIN_END_SHUTDOWN);
	f.stopping = 0;
	f.now_us = f.wake_max_at;
	assert_int_equal(drain_decide(&f), DRAIN_END_WAKE_MAX);
}

static void test_shutdown(void **state)
{
	struct drain_facts f = base();

	(void)state;
	f.stopping = 1;
	f.busy = 4;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	/* Every running job re-queued early by the shutdown: done. */
	f.nearly = 4;
	assert_int_equal(drain_decide(&f), DRAIN_END_SHUTDOWN);
	assert_string_equal(drain_verdict_name(DRAIN_END_SHUTDOWN), "shutdown");
	f.nearly = 3;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	/* Nothing running, but finished tasks not settled yet: the jobs
	 * would stay `active` in Redis until their leases ran out. */
	f.busy = f.nearly = 0;
	f.unsettled = 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.unsettled = 0;
	assert_int_equal(drain_decide(&f), DRAIN_END_SHUTDOWN);
	/* SIGTERM never ends idle, even after IDLE_TIMEOUT. */
	f.busy = 1;
	f.idle_since = 0;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
}

static void test_abandon(void **state)
{
	struct drain_facts f = base();

	(void)state;
	/* Past the grace nothing is waited for any more. */
	f.stopping = f.abandon = 1;
	f.busy = 4;
	f.unsettled = 9;
	assert_int_equal(drain_decide(&f), DRAIN_END_SHUTDOWN);
}

static void test_wake_max(void **state)
{
	struct drain_facts f = base();

	(void)state;
	f.now_us = f.idle_since = f.wake_max_at - 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	/* Ends at WAKE_MAX even inside IDLE_TIMEOUT. */
	f.now_us = f.wake_max_at;
	assert_int_equal(drain_decide(&f), DRAIN_END_WAKE_MAX);
	assert_string_equal(drain_verdict_name(DRAIN_END_WAKE_MAX), "wake_max");
	/* Past the deadline the running jobs finish and are settled first. */
	assert_work_keeps(f);
	f.unsettled = 1;
	/* ...for at most a minute (Redis gone): then the leases expire. */
	f.now_us = f.wake_max_at + DRAIN_WAKE_MAX_OVERRUN_US;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.now_us++;
	assert_int_equal(drain_decide(&f), DRAIN_END_WAKE_MAX);
	f.unsettled = 0;
	f.busy = 2;
	assert_int_equal(drain_decide(&f), DRAIN_END_WAKE_MAX);
	/* A SIGTERM past WAKE_MAX ends as a shutdown, within its grace. */
	f.stopping = 1;
	assert_int_equal(drain_decide(&f), DRAIN_CONTINUE);
	f.busy = 0;
	assert_int_equal(drain_decide(&f), DRAIN_END_SHUTDOWN);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(drain_verdict_name(DRAIN_CONTINUE), "running");
	assert_string_equal(drain_verdict_name(DRAIN_HOLD), "running");
}

UNIT_MAIN(
		cmocka_unit_test(test_working),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_paused),
		cmocka_unit_test(test_empty_wake),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_wake_max),
		cmocka_unit_test(test_names),
)
