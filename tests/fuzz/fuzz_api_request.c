/* fuzz_api_request - the POST /v1/jobs body parser (api_job_parse) and the
 * RFC 3339 parser, on arbitrary bytes. A parse either fails with a code
 * and a message, or yields a request whose fields respect their bounds. */
#include "api/api.h"
#include "queue/queue.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_job_req r;
	const char *code = NULL;
	struct err e;
	char *s;
	int64_t us;

	if (api_job_parse((const char *)data, size, &r, &code, &e) == 0) {
		assert(r.type && r.payload);
		assert(r.priority >= 0 && r.priority <= QUEUE_PRIORITY_MAX);
		assert(r.delay_ms >= 0);
		assert(!r.idempotency_key || api_idem_key_ok(r.idempotency_key));
		api_job_req_release(&r);
	} else {
		assert(code && e.msg[0]);
	}
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (api_time_parse(s, &us) == 0)
		assert(us >= -86400LL * 1000000);
	free(s);
	return 0;
}
