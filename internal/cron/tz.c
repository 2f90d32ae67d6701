/* tz.c - time zones from the system tz database: a TZif file (RFC 8536,
 * version 1 or its 64-bit version 2+ data) read into its transitions and
 * the offset after each. The POSIX rule at the end of a file is not read:
 * past the last transition, the last offset holds (docs/QUEUE.md). */
#include "cron/priv.h"

#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A transition: from instant `at` on, local time is UTC + `off` s. */
struct tz_change {
	int64_t at;
	int32_t off;
};

struct cron_tz {
	char name[CRON_TZ_NAME_MAX + 1];
	size_t n;              /* transitions */
	struct tz_change *ch;  /* n of them, `at` ascending */
	int32_t off0;          /* before the first */
};

#define TZ_FILE_MAX (1 << 20)

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= CRON_TZ_NAME_MAX && s[0] != '/' && s[0] != '.' &&
	       !strstr(s, "..") &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789/_+-") == n;
}

static int64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (n == 4)
		return (int32_t)(uint32_t)v;
	return (int64_t)v;
}

/* Reads the data block at p (len bytes left) with `tsize`-byte times.
 * Returns the bytes it took, or -1. */
static long parse_block(struct cron_tz *tz, const unsigned char *p, size_t len, int tsize)
{
	int64_t isutc, isstd, leap, timecnt, typecnt, charcnt;
	size_t need, i;
	const unsigned char *times, *idx, *types;

	if (len < 44 || memcmp(p, "TZif", 4))
		return -1;
	isutc = be(p + 20, 4);
	isstd = be(p + 24, 4);
	leap = be(p + 28, 4);
	timecnt = be(p + 32, 4);
	typecnt = be(p + 36, 4);
	charcnt = be(p + 40, 4);
	if (isutc < 0 || isstd < 0 || leap < 0 || timecnt < 0 || typecnt < 1 ||
	    typecnt > 256 || charcnt < 0 || timecnt > 100000)
		return -1;
	need = 44 + (size_t)timecnt * (size_t)(tsize + 1) + (size_t)typecnt * 6 +
	       (size_t)charcnt + (size_t)leap * (size_t)(tsize + 4) + (size_t)isstd +
	       (size_t)isutc;
	if (need > len)
		return -1;
	times = p + 44;
	idx = times + timecnt * tsize;
	types = idx + timecnt;
	free(tz->ch);
	tz->n = (size_t)timecnt;
	tz->ch = xcalloc(tz->n + 1, sizeof(*tz->ch));
	for (i = 0; i < tz->n; i++) {
		if (idx[i] >= typecnt)
			return -1;
		tz->ch[i].at = be(times + i * (size_t)tsize, tsize);
		tz->ch[i].off = (int32_t)be(types + idx[i] * 6, 4);
	}
	/* before the first transition: the first standard-time type */
	tz->off0 = (int32_t)be(types, 4);
	for (i = 0; i < (size_t)typecnt; i++)
		if (!types[i * 6 + 4]) {
			tz->off0 = (int32_t)be(types + i * 6, 4);
			break;
		}
	return (long)need;
}

struct cron_tz *cron_tz_load(const char *name, struct err *err)
{
	const char *dir = getenv("TZDIR");
	struct cron_tz *tz;
	unsigned char *buf;
	char path[512];
	size_t len = 0;
	long used;
	FILE *f;

	if (!name || !name_ok(name)) {
		err_set(err, ERR_INVALID, "bad time zone '%.64s': an IANA name such as Europe/Paris",
			name ? name : "");
		return NULL;
	}
	tz = xcalloc(1, sizeof(*tz));
	snprintf(tz->name, sizeof(tz->name), "%s", name);
	if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC"))
		return tz;
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
	f = fopen(path, "rb");
	if (!f) {
		err_set(err, ERR_INVALID, "unknown time zone '%s': %s in the tz database ('%s')",
			name, errno == ENOENT ? "not" : strerror(errno), path);
		goto fail;
	}
	buf = xmalloc(TZ_FILE_MAX);
	len = fread(buf, 1, TZ_FILE_MAX, f);
	fclose(f);
	used = parse_block(tz, buf, len, 4);
	if (used > 0 && buf[4] >= '2')
		used = parse_block(tz, buf + used, len - (size_t)used, 8);
	free(buf);
	if (used < 0) {
		err_set(err, ERR_INVALID, "unknown time zone '%s': '%s' is not a TZif file", name, path);
		goto fail;
	}
	return tz;
fail:
	cron_tz_free(tz);
	return NULL;
}

void cron_tz_free(struct cron_tz *tz)
{
	if (tz)
		free(tz->ch);
	free(tz);
}

/* Index of the last transition at or before t, or -1. */
static long last_at(const struct cron_tz *tz, int64_t t)
{
	long lo = 0, hi = (long)tz->n - 1, r = -1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;

		if (tz->ch[mid].at <= t) {
			r = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return r;
}

int32_t cron_tz_offset(const struct cron_tz *tz, int64_t t)
{
	long i = last_at(tz, t);

	return i < 0 ? tz->off0 : tz->ch[i].off;
}

int cron_tz_utc(const struct cron_tz *tz, int64_t local, int64_t u[2])
{
	/* Real zones change offset at most once within two days, and no
	 * offset reaches a day: the offsets a day either side are the only
	 * candidates. */
	int32_t a = cron_tz_offset(tz, local - 86400), b = cron_tz_offset(tz, local + 86400);
	int64_t ua = local - a, ub = local - b;
	int oka = cron_tz_offset(tz, ua) == a, okb = cron_tz_offset(tz, ub) == b;
	long i;

	if (oka && okb && ua != ub) {
		u[0] = ua < ub ? ua : ub;
		u[1] = ua < ub ? ub : ua;
		return 2;
	}
	if (oka || okb) {
		u[0] = oka ? ua : ub;
		return 1;
	}
	/* skipped: the instant the clocks jumped, between the two */
	i = last_at(tz, ua > ub ? ua : ub);
	u[0] = i >= 0 ? tz->ch[i].at : ua;
	return 1;
}
