/* fuzz_job_spec - the POST /v1/jobs body parser (job_spec_parse, with
 * depends_on: job_deps_parse) and the RFC 3339 parser, on arbitrary bytes. A parse either fails with a code
 * and a message, or yields a request whose fields respect their bounds. */
#include "base/clock.h"
#include "job/job.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job_spec r;
	const char *code = NULL;
	struct err e;
	char *s;
	int64_t us;

	if (job_spec_parse((const char *)data, size, &r, &code, &e) == 0) {
		assert(r.type && r.payload && job_find(r.type) && !job_find(r.type)->internal);
		assert(!r.callback_url || job_url_ok(r.callback_url));
		assert(r.priority >= 0 && r.priority <= JOB_PRIORITY_MAX);
		assert(r.delay_ms >= 0);
		assert(!r.idempotency_key || job_idem_key_ok(r.idempotency_key));
		if (r.depends_on) {
			/* the text the queue stores: a JSON array of ids,
			 * lowercase, that parses again to itself */
			json_t *d = json_loads(r.depends_on, 0, NULL);
			char *again = NULL;

			assert(json_is_array(d) && json_array_size(d) >= 1 &&
			       json_array_size(d) <= JOB_DEPS_MAX);
			assert(job_deps_parse(d, &again, NULL) == 0 && !strcmp(again, r.depends_on));
			assert(!strpbrk(r.depends_on, "ABCDEF"));
			free(again);
			json_decref(d);
		}
		assert(job_dep_policy_name(r.dep_policy));
		job_spec_release(&r);
	} else {
		assert(code && e.msg[0]);
	}
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (clock_parse_rfc3339(s, &us) == 0)
		assert(us >= 0);
	free(s);
	return 0;
}
