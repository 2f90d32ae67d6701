/* cron.c - parsing cron expressions and finding their next fire time in
 * a zone's local time (tz.c gives the offsets). */
#include "cron/priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ------------------------------------------------------------- */

struct field {
	const char *name;
	int lo, hi;
	const char *const *names;  /* names of lo, lo+1, ... or NULL */
};

static const char *const mon_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
	"nov", "dec", NULL
};
static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const struct field fields[6] = {
	{ "second", 0, 59, NULL },
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day of month", 1, 31, NULL },
	{ "month", 1, 12, mon_names },
	{ "day of week", 0, 7, dow_names },
};

/* A number or a name at *p; advances *p. Returns 0 or -1. */
static int value(const struct field *f, const char **p, int *out)
{
	const char *s = *p;
	int i;

	if (isdigit((unsigned char)*s)) {
		long v = 0;

		while (isdigit((unsigned char)*s) && v < 1000)
			v = v * 10 + (*s++ - '0');
		*out = (int)v;
		*p = s;
		return 0;
	}
	for (i = 0; f->names && f->names[i]; i++)
		if (!strncasecmp(s, f->names[i], 3) && !isalpha((unsigned char)s[3])) {
			*out = f->lo + i;
			*p = s + 3;
			return 0;
		}
	return -1;
}

/* One field's text (not terminated: n bytes) into a bit set. */
static int field_parse(const struct field *f, const char *s, size_t n,
		       uint64_t *bits, struct err *err)
{
	char buf[128];
	char *item, *save = NULL;
	uint64_t set = 0;

	if (n == 0 || n >= sizeof(buf) || s[0] == ',' || s[n - 1] == ',' ||
	    memmem(s, n, ",,", 2))
		goto bad;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		const char *p = item;
		int a, b, step = 1, v;

		if (*p == '*' || *p == '?') {
			a = f->lo;
			b = f->hi;
			p++;
		} else {
			if (value(f, &p, &a) < 0)
				goto bad;
			b = a;
			if (*p == '-') {
				p++;
				if (value(f, &p, &b) < 0)
					goto bad;
			} else if (*p == '/') {
				b = f->hi;
			}
		}
		if (*p == '/') {
			const char *q = ++p;

			step = 0;
			while (isdigit((unsigned char)*p) && step < 1000)
				step = step * 10 + (*p++ - '0');
			if (p == q || step < 1)
				goto bad;
		}
		if (*p || a < f->lo || b > f->hi || a > b)
			goto bad;
		for (v = a; v <= b; v += step)
			set |= (uint64_t)1 << v;
	}
	if (!set)
		goto bad;
	*bits = set;
	return 0;
bad:
	return err_set(err, ERR_INVALID, "bad cron %s '%.*s': expected *, N, A-B, */S, A-B/S "
		       "or a list of them within %d-%d", f->name, (int)(n > 64 ? 64 : n), s,
		       f->lo, f->hi);
}

static const struct {
	const char *name, *expr;
} macros[] = {
	{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

int cron_parse(const char *expr, struct cron *out, struct err *err)
{
	const char *start[6];
	size_t len[6], i;
	uint64_t bits[6];
	const char *p = expr;
	int n = 0, first;
	struct cron c;

	if (!expr)
		return err_set(err, ERR_INVALID, "bad cron expression: none given");
	for (i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
		if (!strcasecmp(expr, macros[i].name))
			return cron_parse(macros[i].expr, out, err);
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == 6)
			return err_set(err, ERR_INVALID,
				       "bad cron expression '%.64s': 5 or 6 fields", expr);
		start[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		len[n] = (size_t)(p - start[n]);
		n++;
	}
	if (n != 5 && n != 6)
		return err_set(err, ERR_INVALID, "bad cron expression '%.64s': 5 or 6 fields", expr);
	first = n == 5 ? 1 : 0;
	bits[0] = 1;
	for (i = 0; i < (size_t)n; i++)
		if (field_parse(&fields[first + i], start[i], len[i], &bits[first + i], err) < 0)
			return -1;
	memset(&c, 0, sizeof(c));
	c.sec = bits[0];
	c.min = bits[1];
	c.hour = (uint32_t)bits[2];
	c.dom = (uint32_t)bits[3];
	c.mon = (uint32_t)bits[4];
	c.dow = (uint32_t)(bits[5] | (bits[5] >> 7)) & 0x7f; /* 7 is Sunday */
	c.dom_star = *start[3 - first] == '*' || *start[3 - first] == '?';
	c.dow_star = *start[5 - first] == '*' || *start[5 - first] == '?';
	*out = c;
	return 0;
}

/* ---- the calendar (proleptic Gregorian, days since 1970-01-01) ------------ */

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int day_match(const struct cron *c, int64_t y, int m, int d)
{
	int64_t days = days_from_civil(y, m, d);
	int dow = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
	int dom_ok = (c->dom >> d) & 1, dow_ok = (c->dow >> dow) & 1;

	if (c->dom_star && c->dow_star)
		return 1;
	if (c->dom_star)
		return dow_ok;
	if (c->dow_star)
		return dom_ok;
	return dom_ok || dow_ok;
}

/* The first local time >= `from` (local seconds: wall clock read as if
 * UTC) that `c` matches, or -1 within eight years. Each step jumps to the
 * start of the next month, day, hour or minute that could match, or the
 * next second. */
static int64_t next_local(const struct cron *c, int64_t from)
{
	int64_t t = from, end = from + (int64_t)8 * 366 * 86400;
	long iter;

	for (iter = 0; iter < 2000000 && t < end; iter++) {
		int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400, y;
		int64_t rem = t - days * 86400;
		int mo, d, h = (int)(rem / 3600), mi = (int)(rem % 3600 / 60), s = (int)(rem % 60);

		civil_from_days(days, &y, &mo, &d);
		if (!((c->mon >> mo) & 1))
			t = days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) * 86400;
		else if (!day_match(c, y, mo, d))
			t = (days + 1) * 86400;
		else if (!((c->hour >> h) & 1))
			t = t - rem % 3600 + 3600;
		else if (!((c->min >> mi) & 1))
			t = t - s + 60;
		else if (!((c->sec >> s) & 1))
			t++;
		else
			return t;
	}
	return -1;
}

int64_t cron_next(const struct cron *c, const struct cron_tz *tz, int64_t after)
{
	int64_t t = after + 1;
	int32_t o = cron_tz_offset(tz, t), o1 = cron_tz_offset(tz, t - 7200),
		o2 = cron_tz_offset(tz, t + 7200);
	/* from the earliest wall clock of the two hours around t: an autumn
	 * change repeats an hour, whose local times come again later (their
	 * instants before t are skipped below) */
	int64_t local;

	if (o1 < o)
		o = o1;
	if (o2 < o)
		o = o2;
	local = t + o;
	int i;

	for (i = 0; i < 100000; i++) {
		int64_t l = next_local(c, local), u[2];
		int k, n;

		if (l < 0)
			return -1;
		n = cron_tz_utc(tz, l, u);
		/* a repeated hour: its first occurrence, and the second too
		 * when every hour fires (an hourly job keeps its pace) */
		for (k = 0; k < (c->hour == 0xffffff ? n : 1); k++)
			if (u[k] > after)
				return u[k];
		local = l + 1;
	}
	return -1;
}
