/* Unit tests of the cluster routing's pure parts (internal/queue/
 * cluster.c): the key slot (CRC16 and hash tags, vectors from the Redis
 * Cluster specification), the MOVED/ASK redirections and the CLUSTER
 * SLOTS reply, well formed and not. Replies are made from RESP text by
 * hiredis's own reader, as they arrive from a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/priv.h"

static int slot_of(const char *key)
{
	return queue_key_slot(key, strlen(key));
}

static void test_key_slot(void **state)
{
	(void)state;
	/* the specification's CRC16 check value */
	assert_int_equal(queue_crc16("123456789", 9), 0x31C3);
	assert_int_equal(queue_crc16("", 0), 0);
	/* CLUSTER KEYSLOT answers these */
	assert_int_equal(slot_of("foo"), 12182);
	assert_int_equal(slot_of("user1000"), 3443);
	assert_int_equal(slot_of("{user1000}.following"), 3443);
	assert_int_equal(slot_of("{user1000}.followers"), 3443);
	/* hash tags: the first '{' to the next '}', when not empty */
	assert_int_equal(slot_of("foo{}{bar}"), queue_crc16("foo{}{bar}", 10) & 16383);
	assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
	assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
	assert_int_equal(slot_of("foo{bar"), slot_of("foo{bar") & 16383);
	assert_int_equal(slot_of("{"), queue_crc16("{", 1) & 16383);
	/* every key of a queue shares its tag */
	assert_int_equal(slot_of("wakeq:{default}:pending"), slot_of("default"));
	assert_int_equal(slot_of("wakeq:{default}:"), slot_of("wakeq:{default}:marker"));
}

static void test_redirect(void **state)
{
	struct queue_redirect r;
	struct err e;
	static const char *const bad[] = {
		"MOVED", "MOVED ", "MOVED x 127.0.0.1:1", "MOVED 16384 h:1",
		"MOVED 99999999999999999999 h:1", "MOVED 1 h", "MOVED 1 h:0",
		"MOVED 1 h:65536", "MOVED 1 h:12a", "MOVED 1 h:", "MOVED 1", "MOVED 1  ",
		"MOVED -1 h:1", "ASK 1 h h:1", "ASK 1:h:1", "MOVED 1 h:1234567",
	};
	size_t i;

	(void)state;
	assert_int_equal(queue_redirect_parse("MOVED 3999 127.0.0.1:6381", &r, &e), 1);
	assert_false(r.ask);
	assert_int_equal(r.slot, 3999);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 6381);
	assert_int_equal(queue_redirect_parse("ASK 16383 redis-1.internal:7000", &r, &e), 1);
	assert_true(r.ask);
	assert_int_equal(r.slot, 16383);
	assert_string_equal(r.host, "redis-1.internal");
	assert_int_equal(r.port, 7000);
	/* IPv6: the port after the last colon */
	assert_int_equal(queue_redirect_parse("MOVED 0 ::1:7001", &r, &e), 1);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 7001);
	/* Redis 7: no host means the node that answered */
	assert_int_equal(queue_redirect_parse("MOVED 12 :7002", &r, &e), 1);
	assert_string_equal(r.host, "");
	assert_int_equal(r.port, 7002);

	/* other errors are not redirections, and leave *out alone */
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(queue_redirect_parse("ERR unknown command", &r, &e), 0);
	assert_int_equal(queue_redirect_parse("MOVEDX 1 h:1", &r, &e), 0);
	assert_int_equal(queue_redirect_parse("TRYAGAIN Multiple keys", &r, &e), 0);
	assert_int_equal(r.port, 0x5a5a5a5a);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		if (queue_redirect_parse(bad[i], &r, &e) != -1)
			fail_msg("'%s' was taken for a redirection", bad[i]);
		assert_int_equal(e.code, ERR_PROTOCOL);
		assert_non_null(strstr(e.msg, "bad cluster redirection"));
	}
}

/* The reply of RESP text `resp` (caller frees). */
static redisReply *reply_of(const char *resp)
{
	redisReader *rd = redisReaderCreate();
	void *r = NULL;

	assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
	assert_non_null(r);
	redisReaderFree(rd);
	return r;
}

/* A CLUSTER SLOTS entry: [from, to, [host, port, id], replica] */
#define ENTRY(from, to, host, port) \
	"*4\r\n:" from "\r\n:" to "\r\n*3\r\n$" host "\r\n:" port "\r\n$2\r\nid\r\n" \
	"*3\r\n$9\r\n127.0.0.9\r\n:9\r\n$2\r\nid\r\n"

/* The slot map of the CLUSTER SLOTS reply `resp` asked of `seed`. */
static void parsed(const char *resp, const char *seed, struct queue_slotmap *m)
{
	redisReply *r = reply_of(resp);
	struct err e;

	assert_int_equal(queue_slots_parse(r, seed, m, &e), 0);
	freeReplyObject(r);
}

static void test_slots(void **state)
{
	struct queue_slotmap m;

	(void)state;
	parsed("*3\r\n" ENTRY("0", "5460", "9\r\n127.0.0.1", "7000")
	       ENTRY("5461", "10922", "0\r\n", "7001")
	       ENTRY("10923", "16383", "1\r\n?", "7002"), "seed.example", &m);
	assert_int_equal(m.nnodes, 3);
	assert_int_equal(m.owner[0], 1);
	assert_int_equal(m.owner[5460], 1);
	assert_int_equal(m.owner[5461], 2);
	assert_int_equal(m.owner[16383], 3);
	assert_string_equal(m.nodes[0].host, "127.0.0.1");
	assert_int_equal(m.nodes[0].port, 7000);
	/* no address known: the node that answered */
	assert_string_equal(m.nodes[1].host, "seed.example");
	assert_string_equal(m.nodes[2].host, "seed.example");
	assert_int_equal(m.nodes[2].port, 7002);
	queue_slotmap_release(&m);

	/* a node serving several ranges is one node; unserved slots are 0 */
	parsed("*2\r\n" ENTRY("0", "9", "9\r\n127.0.0.1", "7000")
	       ENTRY("20", "29", "9\r\n127.0.0.1", "7000"), "x", &m);
	assert_int_equal(m.nnodes, 1);
	assert_int_equal(m.owner[15], 0);
	assert_int_equal(m.owner[25], 1);
	queue_slotmap_release(&m);
}

static void test_slots_malformed(void **state)
{
	static const char *const bad[] = {
		"-ERR This instance has cluster support disabled\r\n",
		"$2\r\nno\r\n",
		"*0\r\n",
		"*1\r\n:1\r\n",
		"*1\r\n*2\r\n:0\r\n:1\r\n",
		"*1\r\n" ENTRY("10", "5", "1\r\nh", "7000"),
		"*1\r\n" ENTRY("0", "16384", "1\r\nh", "7000"),
		"*1\r\n" ENTRY("-1", "5", "1\r\nh", "7000"),
		"*1\r\n" ENTRY("0", "5", "1\r\nh", "0"),
		"*1\r\n" ENTRY("0", "5", "1\r\nh", "65536"),
		"*1\r\n" ENTRY("0", "5", "3\r\na b", "7000"),
		"*1\r\n*3\r\n:0\r\n:5\r\n:7\r\n",
		"*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:7000\r\n",
		"*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\nh\r\n:7000\r\n",
	};
	struct queue_slotmap m;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		redisReply *r = reply_of(bad[i]);

		e.msg[0] = '\0';
		if (queue_slots_parse(r, "x", &m, &e) != -1)
			fail_msg("bad reply %zu was taken", i);
		assert_int_equal(e.code, ERR_PROTOCOL);
		assert_true(strstr(e.msg, "CLUSTER SLOTS") != NULL);
		freeReplyObject(r);
	}
}

static void test_url(void **state)
{
	struct queue_opts o;
	struct err e;

	(void)state;
	assert_int_equal(queue_opts_init(&o, "redis+cluster://u:p@10.0.0.5:6379", &e), 0);
	assert_true(o.url.cluster);
	assert_false(o.url.tls);
	assert_string_equal(o.url.host, "10.0.0.5");
	assert_string_equal(o.url.password, "p");
	assert_int_equal(queue_opts_init(&o, "redis://h:1", &e), 0);
	assert_false(o.url.cluster);
	/* a cluster has database 0 only */
	assert_int_equal(queue_opts_init(&o, "redis+cluster://h:1/2", &e), -1);
	assert_non_null(strstr(e.msg, "no database but 0"));
	assert_int_equal(queue_opts_init(&o, "redis+cluster://h:1/0", &e), 0);
	if (queue_tls_supported()) {
		assert_int_equal(queue_opts_init(&o, "rediss+cluster://h:1", &e), 0);
		assert_true(o.url.cluster && o.url.tls);
	} else {
		assert_int_equal(queue_opts_init(&o, "rediss+cluster://h:1", &e), -1);
	}
	queue_opts_release(&o);
}

static void test_shards(void **state)
{
	char name[QUEUE_NAME_MAX + 1];
	struct err e;
	int n, k, seen[4] = { 0 };

	(void)state;
	assert_int_equal(queue_shard_spec("busy*4", name, &n, &e), 0);
	assert_string_equal(name, "busy");
	assert_int_equal(n, 4);
	assert_int_equal(queue_shard_spec("plain", name, &n, &e), 0);
	assert_int_equal(n, 1);
	/* one shard may be named alone (a worker pinned to it) */
	assert_int_equal(queue_shard_spec("busy#3", name, &n, &e), 0);
	assert_string_equal(name, "busy#3");
	assert_int_equal(n, 1);
	assert_int_equal(queue_shard_spec("busy*1", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("busy*17", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("busy*-2", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("busy*", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("*4", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("b#1*2", name, &n, &e), -1);
	assert_int_equal(queue_shard_spec("b u*2", name, &n, &e), -1);
	/* shard names */
	assert_int_equal(queue_name_check("busy#0", &e), 0);
	assert_int_equal(queue_name_check("busy#15", &e), 0);
	assert_int_equal(queue_name_check("busy#16", &e), -1);
	assert_int_equal(queue_name_check("busy#01", &e), -1);
	assert_int_equal(queue_name_check("busy#", &e), -1);
	assert_int_equal(queue_name_check("#1", &e), -1);
	assert_int_equal(queue_name_check("a#1#2", &e), -1);
	assert_int_equal(queue_name_check("a#x", &e), -1);
	/* a key always meets the same shard, and keys spread */
	assert_int_equal(queue_shard_of("k1", 4), queue_shard_of("k1", 4));
	assert_int_equal(queue_shard_of("k1", 1), 0);
	for (k = 0; k < 64; k++) {
		char key[16];

		snprintf(key, sizeof(key), "key-%d", k);
		seen[queue_shard_of(key, 4)]++;
	}
	for (k = 0; k < 4; k++)
		assert_true(seen[k] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_slot),
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_slots_malformed),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_shards),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
