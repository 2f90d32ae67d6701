/* Fuzzes what a Redis Cluster node answers the routing (outside input:
 * a node, or what sits between us and it): the input is RESP as read
 * from the socket; every reply is read as a CLUSTER SLOTS answer, and
 * error replies as MOVED/ASK redirections. The input as text is also a
 * redirection. */
#include "queue/priv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void redirect(const char *msg)
{
	struct queue_redirect r;
	struct err e;
	int rc;

	e.msg[0] = '\0';
	rc = queue_redirect_parse(msg, &r, &e);
	if (rc == 1) {
		if (r.slot < 0 || r.slot >= QUEUE_SLOTS || r.port < 1 || r.port > 65535 ||
		    strlen(r.host) >= sizeof(r.host))
			abort();
	} else if (rc == -1 && !e.msg[0]) {
		abort(); /* every refusal says why */
	} else if (rc != 0 && rc != -1) {
		abort();
	}
}

/* Whether a RESP header in `data` declares more than 1 << 16 elements or
 * bytes: hiredis 0.14's reader allocates what a header declares (1.x caps
 * it with maxelements), so such an input tests the allocator, not us. */
static int huge_header(const uint8_t *data, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++) {
		if ((data[i] == '*' || data[i] == '$' || data[i] == '%' || data[i] == '~') &&
		    (i == 0 || data[i - 1] == '\n')) {
			size_t j = i + 1;
			long v = 0;

			while (j < size && data[j] >= '0' && data[j] <= '9' && v <= 65536)
				v = v * 10 + (data[j++] - '0');
			if (v > 65536)
				return 1;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd = redisReaderCreate();
	char *s = malloc(size + 1);
	void *reply;
	int n = 0;

	memcpy(s, data, size);
	s[size] = '\0';
	redirect(s);
	free(s);
	if (huge_header(data, size) || redisReaderFeed(rd, (const char *)data, size) != REDIS_OK)
		goto out;
	while (n++ < 16 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
		redisReply *r = reply;
		struct queue_slotmap m;
		struct err e;
		size_t i;

		if (r->type == REDIS_REPLY_ERROR)
			redirect(r->str);
		e.msg[0] = '\0';
		if (queue_slots_parse(r, "asked", &m, &e) == 0) {
			for (i = 0; i < QUEUE_SLOTS; i++)
				if (m.owner[i] > m.nnodes)
					abort();
			for (i = 0; i < m.nnodes; i++)
				if (m.nodes[i].port < 1 || m.nodes[i].port > 65535 ||
				    strlen(m.nodes[i].host) >= sizeof(m.nodes[i].host))
					abort();
			queue_slotmap_release(&m);
		} else if (!e.msg[0]) {
			abort();
		}
		freeReplyObject(r);
	}
out:
	redisReaderFree(rd);
	return 0;
}
