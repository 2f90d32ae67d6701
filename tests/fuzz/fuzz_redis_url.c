/* Fuzzes the Redis URL parser (REDIS_URL is outside input). */
#include "queue/queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_url u;
	struct err e;
	char *s = malloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	if (queue_url_parse(s, &u, &e) == 0) {
		/* Whatever parses is bounded and terminated. */
		if (strlen(u.host) >= sizeof(u.host) || u.port < 1 || u.port > 65535 || u.db < 0)
			abort();
	} else if (!e.msg[0]) {
		abort(); /* every refusal says why */
	}
	free(s);
	return 0;
}
