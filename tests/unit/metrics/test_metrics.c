/* Unit tests of internal/metrics: the text exposition of one histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/buf.h"
#include "metrics/metrics.h"
#include "../unit.h"

static void test_hist_one(void **state)
{
	static struct metrics_hist h;
	struct buf b = BUF_INIT;

	(void)state;
	metrics_hist_observe(&h, 0.003);
	metrics_hist_observe(&h, 700);
	metrics_hist_one(&b, "x_seconds", "Time.", &h);
	/* the family's header, once, then the buckets without labels */
	assert_non_null(strstr(b.data, "# HELP x_seconds Time.\n# TYPE x_seconds histogram\n"
				       "x_seconds_bucket{le=\"0.001\"} 0\n"
				       "x_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"+Inf\"} 2\n"
				       "x_seconds_sum 700.003000\n"
				       "x_seconds_count 2\n"));
	assert_ptr_equal(strstr(b.data, "# HELP"), b.data);
	assert_null(strstr(b.data + 1, "# HELP"));
	buf_release(&b);
}

UNIT_MAIN(
	cmocka_unit_test(test_hist_one),
)
