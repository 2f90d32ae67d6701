/* Unit tests of internal/cron: expressions, and fire times in zones of the
 * system tz database across DST changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/clock.h"
#include "cron/cron.h"
#include "../unit.h"

/* epoch seconds of an RFC 3339 time */
static int64_t at(const char *s)
{
	int64_t us;

	assert_int_equal(clock_parse_rfc3339(s, &us), 0);
	return us / 1000000;
}

/* The next fire time of `expr` in zone `zone` after `after`, as RFC 3339
 * UTC without the fraction ("" when none). */
static const char *next(const char *expr, const char *zone, const char *after)
{
	static char out[CLOCK_RFC3339_LEN];
	struct cron c;
	struct cron_tz *tz;
	struct err e;
	int64_t t;

	if (cron_parse(expr, &c, &e) < 0)
		fail_msg("%s", e.msg);
	tz = cron_tz_load(zone, &e);
	if (!tz)
		fail_msg("%s", e.msg);
	t = cron_next(&c, tz, at(after));
	cron_tz_free(tz);
	if (t < 0)
		return "";
	clock_rfc3339(t * 1000000, out);
	out[19] = 'Z';
	out[20] = '\0';
	return out;
}

static void test_parse(void **state)
{
	static const char *const good[] = {
		"* * * * *", "*/15 0-6,22,23 * * *", "0 9 * * MON-FRI", "0 0 1 jan,jul *",
		"*/10 * * * * *", "0 0 * * 7", "5/20 * * * *", "@daily", "@hourly", "0 0 ? * SUN",
	};
	static const char *const bad[] = {
		"", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
		"* * * 13 *", "* * * * 8", "5-1 * * * *", "*/0 * * * *", "a * * * *",
		"1,,2 * * * *", "@sometimes", "*/ * * * *", "MON * * * *",
	};
	struct cron c;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (cron_parse(good[i], &c, &e) < 0)
			fail_msg("'%s' refused: %s", good[i], e.msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cron_parse(bad[i], &c, &e) == 0)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(cron_parse("60 * * * *", &c, &e), -1);
	assert_non_null(strstr(e.msg, "minute"));
	assert_int_equal(cron_parse("0 0 * * 7", &c, &e), 0);
	assert_int_equal(c.dow, 1); /* 7 is Sunday */
}

static void test_next_utc(void **state)
{
	(void)state;
	assert_string_equal(next("*/15 * * * *", "UTC", "2026-01-02T10:07:00Z"), "2026-01-02T10:15:00Z");
	/* Friday 10:00 -> Monday 09:00 */
	assert_string_equal(next("0 9 * * MON-FRI", "UTC", "2026-01-02T10:00:00Z"), "2026-01-05T09:00:00Z");
	/* strictly after */
	assert_string_equal(next("0 9 * * *", "UTC", "2026-01-05T09:00:00Z"), "2026-01-06T09:00:00Z");
	assert_string_equal(next("*/10 * * * * *", "UTC", "2026-01-02T10:07:03Z"), "2026-01-02T10:07:10Z");
	/* day of month or day of week when both are set: the 13th or a Friday */
	assert_string_equal(next("0 0 13 * FRI", "UTC", "2026-02-01T00:00:00Z"), "2026-02-06T00:00:00Z");
	assert_string_equal(next("0 0 13 * FRI", "UTC", "2026-02-10T00:00:00Z"), "2026-02-13T00:00:00Z");
	assert_string_equal(next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z");
	assert_string_equal(next("0 0 30 2 *", "UTC", "2026-03-01T00:00:00Z"), "");
	assert_string_equal(next("0 0 1 1 *", "UTC", "2026-06-01T00:00:00Z"), "2027-01-01T00:00:00Z");
	assert_string_equal(next("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z"), "2027-12-31T23:59:00Z");
}

/* New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT ->
 * 01:00 EST. Paris: 2026-03-29 02:00 CET -> 03:00 CEST. */
static void test_next_dst(void **state)
{
	struct cron_tz *tz;
	struct err e;

	(void)state;
	tz = cron_tz_load("America/New_York", &e);
	if (!tz)
		fail_msg("the tz database is needed (tzdata): %s", e.msg);
	assert_int_equal(cron_tz_offset(tz, at("2026-01-15T12:00:00Z")), -5 * 3600);
	assert_int_equal(cron_tz_offset(tz, at("2026-07-15T12:00:00Z")), -4 * 3600);
	cron_tz_free(tz);
	/* a plain day: 09:00 local is 14:00Z in winter, 13:00Z in summer */
	assert_string_equal(next("0 9 * * *", "America/New_York", "2026-01-15T00:00:00Z"), "2026-01-15T14:00:00Z");
	assert_string_equal(next("0 9 * * *", "America/New_York", "2026-07-15T00:00:00Z"), "2026-07-15T13:00:00Z");
	/* 02:30 does not exist on 8 March: it fires when the clocks jump
	 * (03:00 EDT = 07:00Z), once; the next day at 02:30 EDT */
	assert_string_equal(next("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z"), "2026-03-08T07:00:00Z");
	assert_string_equal(next("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z"), "2026-03-09T06:30:00Z");
	/* hourly across the jump: 01:00 EST, then 03:00 EDT (02:00 is gone) */
	assert_string_equal(next("0 * * * *", "America/New_York", "2026-03-08T06:00:00Z"), "2026-03-08T07:00:00Z");
	assert_string_equal(next("0 * * * *", "America/New_York", "2026-03-08T07:00:00Z"), "2026-03-08T08:00:00Z");
	/* 01:30 happens twice on 1 November: the first (EDT, 05:30Z) only */
	assert_string_equal(next("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z"), "2026-11-01T05:30:00Z");
	assert_string_equal(next("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z"), "2026-11-02T06:30:00Z");
	/* an hourly job keeps its pace through the repeated hour */
	assert_string_equal(next("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z"), "2026-11-01T06:00:00Z");
	assert_string_equal(next("0 * * * *", "America/New_York", "2026-11-01T06:00:00Z"), "2026-11-01T07:00:00Z");
	/* Paris, spring: 02:00 fires at the jump (03:00 CEST = 01:00Z) */
	assert_string_equal(next("0 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"), "2026-03-29T01:00:00Z");
	assert_string_equal(next("0 2 * * *", "Europe/Paris", "2026-03-29T01:00:00Z"), "2026-03-30T00:00:00Z");
}

static void test_zones(void **state)
{
	struct cron_tz *tz;
	struct err e;

	(void)state;
	tz = cron_tz_load("UTC", &e);
	assert_non_null(tz);
	assert_int_equal(cron_tz_offset(tz, 0), 0);
	cron_tz_free(tz);
	assert_fails_null(cron_tz_load("Mars/Olympus_Mons", &e), &e, ERR_INVALID);
	assert_null(cron_tz_load("../../etc/passwd", &e));
	assert_null(cron_tz_load("/etc/passwd", &e));
	assert_null(cron_tz_load("", &e));
	tz = cron_tz_load("Asia/Kolkata", &e);
	assert_non_null(tz);
	assert_int_equal(cron_tz_offset(tz, at("2026-01-01T00:00:00Z")), 5 * 3600 + 1800);
	cron_tz_free(tz);
}

UNIT_MAIN(
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_next_dst),
		cmocka_unit_test(test_zones),
)
