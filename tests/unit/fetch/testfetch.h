/* testfetch.h - the scratch folder and settings of the fetch unit tests
 * that download from the fakes of testserver.h. Header-only, each test
 * program includes it once. */
#ifndef WAKEQ_TESTFETCH_H
#define WAKEQ_TESTFETCH_H

#include "../unit.h"
#include "fetch/fetch.h"
#include "job/job.h"

static char tmp[PATH_MAX]; /* DATA_DIR and TMPDIR of this run */

/* Makes tmp (/tmp/wakeq-NAME.XXXXXX) and points the job settings at it:
 * loopback addresses allowed (the fakes), inputs up to 1 MiB, a 2 s
 * connect and 10 s total timeout. 0, or -1. */
static int testfetch_setup(const char *name)
{
	if (unit_tmpdir(tmp, name) < 0)
		return -1;
	job_settings.tmp_dir = tmp;
	job_settings.data_dir = tmp;
	job_settings.allow_private = "loopback";
	job_settings.max_input_bytes = 1 << 20;
	fetch_limits.connect_timeout_s = 2;
	fetch_limits.timeout_s = 10;
	return 0;
}

#endif
