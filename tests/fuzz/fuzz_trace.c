/* Fuzzes the trace header parser (X-Cloud-Trace-Context, traceparent). */
#include "log/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a = malloc(size + 1), *b, out[LOG_TRACE_ID_LEN];
	size_t half = size / 2;

	memcpy(a, data, size);
	a[size] = '\0';
	a[half] = '\0';
	b = a + half + (half < size ? 1 : 0);
	if (log_trace_parse(a, b, out) == 0 && strlen(out) != 32)
		abort();
	if (log_trace_parse(NULL, a, out) == 0 && strlen(out) != 32)
		abort();
	free(a);
	return 0;
}
