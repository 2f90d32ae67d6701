/* fuzz_job_spec - the POST /v1/jobs body parser (job_spec_parse, with
 * depends_on: job_deps_parse), the packed spec's reader (job_spec_unpack)
 * and the RFC 3339 parser, on arbitrary bytes. A parse either fails with a code
 * and a message, or yields a request whose fields respect their bounds. */
#include "base/clock.h"
#include "job/job.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The packed spec (field s) of a parsed spec reads back as it was made. */
static void spec_round_trip(const struct job_spec *r)
{
	const char *names[JOB_HASH_SPEC_MAX], *values[JOB_HASH_SPEC_MAX];
	struct job_hash_buf buf;
	char *type;
	size_t n = job_spec_hash(r, names, values, &buf), i;
	unsigned flags;
	int m;
	double t;

	for (i = 0; i < n && strcmp(names[i], "s"); i++)
		;
	assert(i < n);
	assert(job_spec_unpack(values[i], strlen(values[i]), &flags, &type, &m, &t) == 0);
	assert(!strcmp(type, r->type) && m == r->max_attempts && t == r->timeout_s);
	assert(!(flags & JOB_SPEC_HAS_CALLBACK) == !r->callback_url);
	free(type);
}

/* A take reply's packed spec, any bytes: refused, or fields in bounds. */
static void spec_unpack_any(const uint8_t *data, size_t size)
{
	unsigned flags;
	char *type;
	int m;
	double t;

	if (job_spec_unpack((const char *)data, size, &flags, &type, &m, &t) == 0) {
		assert(flags < 32 && type[0] && !strchr(type, '\t') && m >= 0 && t >= 0);
		free(type);
	}
}

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
		spec_round_trip(&r);
		job_spec_release(&r);
	} else {
		assert(code && e.msg[0]);
	}
	spec_unpack_any(data, size);
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (clock_parse_rfc3339(s, &us) == 0)
		assert(us >= 0);
	free(s);
	return 0;
}
