/* Unit tests of the Cloud Run model's billing meter
 * (tests/tools/runmodel_meter.h): what an instance is billed under
 * request-based and instance-based billing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../tools/runmodel_meter.h"
#include "../unit.h"

#define MS 1000 /* µs */
#define S 1000000

static void test_round(void **state)
{
	(void)state;
	assert_int_equal(meter_round(0), 0);
	assert_int_equal(meter_round(-5), 0);
	assert_int_equal(meter_round(1), 100 * MS);
	assert_int_equal(meter_round(100 * MS), 100 * MS);
	assert_int_equal(meter_round(100 * MS + 1), 200 * MS);
	assert_int_equal(meter_round(2 * S - 1), 2 * S);
}

/* Start-up and every request span are billed, each rounded up; the time
 * between requests is not. */
static void test_request_based(void **state)
{
	struct meter m;
	int64_t t = 50 * S;

	(void)state;
	meter_start(&m, t);
	/* Start-up 30 ms: billed as 100 ms, even before it ends. */
	assert_int_equal(meter_request_us(&m, t + 10 * MS), 100 * MS);
	meter_ready(&m, t + 30 * MS);
	assert_int_equal(meter_request_us(&m, t + 5 * S), 100 * MS);
	/* A 20 ms request: one 100 ms step. */
	meter_open(&m, t + 1 * S);
	assert_int_equal(meter_request_us(&m, t + 1 * S + 10 * MS), 200 * MS);
	meter_close(&m, t + 1 * S + 20 * MS);
	assert_int_equal(meter_request_us(&m, t + 9 * S), 200 * MS);
	/* Two overlapping requests are one span: 1.25 s -> 1.3 s. */
	meter_open(&m, t + 2 * S);
	meter_open(&m, t + 2 * S + 500 * MS);
	meter_close(&m, t + 3 * S);
	assert_int_equal(m.open, 1);
	meter_close(&m, t + 3 * S + 250 * MS);
	assert_int_equal(m.nspans, 2);
	assert_int_equal(m.requests, 3);
	assert_int_equal(meter_request_us(&m, t + 10 * S), 200 * MS + 1300 * MS);
	/* Instance-based: the whole life so far. */
	assert_int_equal(meter_instance_us(&m, t + 10 * S), 10 * S);
	assert_int_equal(meter_instance_us(&m, t + 10 * S + 1), 10 * S + 100 * MS);
}

/* The platform's shutdown (SIGTERM to exit) is billed; the life ends at
 * the exit for both modes. */
static void test_shutdown(void **state)
{
	struct meter m;
	int64_t t = 0;

	(void)state;
	meter_start(&m, t);
	meter_ready(&m, t + 100 * MS);
	meter_term(&m, t + 20 * S);
	meter_term(&m, t + 21 * S); /* the first SIGTERM counts */
	assert_int_equal(meter_request_us(&m, t + 20 * S + 50 * MS), 200 * MS);
	meter_end(&m, t + 20 * S + 150 * MS);
	assert_int_equal(meter_request_us(&m, t + 99 * S), 300 * MS);
	assert_int_equal(meter_instance_us(&m, t + 99 * S), 20 * S + 200 * MS);
	meter_end(&m, t + 30 * S); /* once */
	assert_int_equal(meter_instance_us(&m, t + 99 * S), 20 * S + 200 * MS);
}

/* An instance killed with requests open: their span ends with it. */
static void test_crash(void **state)
{
	struct meter m;

	(void)state;
	meter_start(&m, 0);
	meter_ready(&m, 100 * MS);
	meter_open(&m, S);
	meter_open(&m, S);
	assert_int_equal(meter_request_us(&m, S + 1), 200 * MS);
	meter_end(&m, S + 450 * MS);
	assert_int_equal(m.open, 0);
	assert_int_equal(meter_request_us(&m, 60 * S), 100 * MS + 500 * MS);
	/* A late close of a request that died with it changes nothing. */
	meter_close(&m, 2 * S);
	assert_int_equal(meter_request_us(&m, 60 * S), 600 * MS);
	assert_int_equal(meter_instance_us(&m, 60 * S), 1500 * MS);
}

/* An instance that never became ready bills its start-up until exit. */
static void test_failed_start(void **state)
{
	struct meter m;

	(void)state;
	meter_start(&m, 0);
	meter_end(&m, 250 * MS);
	assert_int_equal(meter_request_us(&m, 10 * S), 300 * MS);
	assert_int_equal(meter_instance_us(&m, 10 * S), 300 * MS);
}

UNIT_MAIN(
		cmocka_unit_test(test_round),
		cmocka_unit_test(test_request_based),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_failed_start),
)
