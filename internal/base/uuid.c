#include "base/uuid.h"

#include "base/clock.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned seq; /* 12 bits */

/* Random bytes from a per-thread pool refilled 4 KiB at a time: one
 * getrandom(2) per 256 ids instead of one each (batched enqueues make
 * thousands a second). A forked child must not reuse its parent's bytes:
 * an atfork handler empties the pool of the thread that forks (the only
 * thread the child has). */
static _Thread_local unsigned char pool[4096];
static _Thread_local size_t left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_pool(void)
{
	left = 0;
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, forget_pool);
}

static void fill_random(unsigned char *p, size_t n)
{
	pthread_once(&atfork_once, register_atfork);
	if (left < n) {
		unsigned char *q = pool;
		size_t want = sizeof(pool);

		while (want > 0) {
			ssize_t r = getrandom(q, want, 0);

			if (r <= 0)
				abort(); /* the kernel always has entropy after boot */
			q += r;
			want -= (size_t)r;
		}
		left = sizeof(pool);
	}
	memcpy(p, pool + sizeof(pool) - left, n);
	memset(pool + sizeof(pool) - left, 0, n);
	left -= n;
}

void uuid7_new(char out[UUID_STR_LEN])
{
	unsigned char b[16];
	uint64_t ms = (uint64_t)(clock_now_us() / 1000);
	unsigned s;

	fill_random(b, sizeof(b));
	pthread_mutex_lock(&lock);
	if (ms <= last_ms) {
		/* Same (or earlier: clock step) millisecond: count up; when the
		 * sequence runs out borrow the next millisecond. */
		ms = last_ms;
		if (++seq > 0xfff) {
			seq = 0;
			ms = ++last_ms;
		}
	} else {
		last_ms = ms;
		seq = b[6] & 0x3f; /* random start, room to count up */
	}
	s = seq;
	pthread_mutex_unlock(&lock);

	b[0] = (unsigned char)(ms >> 40);
	b[1] = (unsigned char)(ms >> 32);
	b[2] = (unsigned char)(ms >> 24);
	b[3] = (unsigned char)(ms >> 16);
	b[4] = (unsigned char)(ms >> 8);
	b[5] = (unsigned char)ms;
	b[6] = (unsigned char)(0x70 | (s >> 8));
	b[7] = (unsigned char)s;
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	snprintf(out, UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

int uuid_valid(const char *s)
{
	size_t i;

	if (!s || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}
