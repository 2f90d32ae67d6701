/* fuzz_job_linked - the POST /v1/flows and /v1/batches body parser
 * (job_flow_parse, job_batch_parse: also wakeq flow and batch create's
 * file) on arbitrary bytes read as JSON. A parse either fails with a code
 * and a message, or yields members in enqueue order, on one queue, the
 * last linked to others, every one after those it depends on. */
#include "job/job.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether member i's dependencies all come before it. */
static int linked_before(const struct job_linked *l, size_t i)
{
	json_t *deps = json_loads(l->specs[i].depends_on, 0, NULL), *v;
	size_t k, j;
	int ok = json_is_array(deps) && json_array_size(deps) > 0;

	json_array_foreach(deps, k, v) {
		for (j = 0; j < i && strcmp(l->specs[j].id, json_string_value(v)); j++)
			;
		ok = ok && j < i;
	}
	json_decref(deps);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct job_defaults d = { "q", 0, 0 };
	json_t *body = json_loadb((const char *)data, size, 0, NULL);
	struct job_linked l;
	const char *code;
	struct err e;
	size_t i;
	int flow;

	if (!body)
		return 0;
	for (flow = 0; flow < 2; flow++) {
		code = NULL;
		e.msg[0] = '\0';
		if ((flow ? job_flow_parse : job_batch_parse)(body, &d, 16, 1, &l, &code, &e) < 0) {
			assert(code && e.msg[0]);
			continue;
		}
		assert(l.n >= 1 && l.n < 16 && l.queue);
		for (i = 0; i <= l.n; i++) {
			assert(l.specs[i].id[0] && !strcmp(l.specs[i].queue, l.queue));
			assert(!l.specs[i].unique_key && !l.specs[i].idempotency_key);
			assert(!l.specs[i].depends_on || linked_before(&l, i));
		}
		assert(l.specs[l.n].depends_on);
		json_decref(flow ? job_flow_doc(&l, (enum job_status[16]){ 0 })
			    : job_batch_doc(&l));
		job_linked_release(&l);
	}
	json_decref(body);
	return 0;
}
