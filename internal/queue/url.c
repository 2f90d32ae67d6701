/* url.c - Redis URLs: redis://[[user]:password@]host[:port][/db],
 * rediss://… (TLS), unix:///path/to/socket[?db=N&password=P&user=U],
 * redis+cluster:// and rediss+cluster:// (a Redis Cluster reached
 * through one of its nodes: docs/QUEUE.md "Redis Cluster").
 * Outside input: strict,
 * bounded, fuzzed (tests/fuzz/fuzz_redis_url.c). */
#include "queue/queue.h"

#include "base/parse.h"

#include <string.h>

/* Percent-decodes s[0..n) into out (cap bytes with NUL). NUL bytes and
 * truncated escapes are refused. Returns 0 or -1. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			const char *h, *l;

			if (n - i < 3 || !s[i + 1] || !s[i + 2])
				return -1;
			h = strchr(hex, s[i + 1]);
			l = strchr(hex, s[i + 2]);
			if (!h || !l)
				return -1;
			c = (char)(((h - hex) % 16) * 16 + (l - hex) % 16);
			if (!c)
				return -1;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int parse_db(const char *s, size_t n, int *out)
{
	char num[16];
	int64_t v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (num[0] == '-' || parse_int64(num, 0, 1000000, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

int queue_url_parse(const char *url, struct queue_url *out, struct err *err)
{
	struct queue_url u;
	const char *p, *end, *at = NULL, *host, *hend, *portp = NULL, *q;

	memset(&u, 0, sizeof(u));
	u.port = 6379;
	if (!url || !*url)
		return err_set(err, ERR_INVALID, "bad redis url: empty");
	if (!strncmp(url, "redis://", 8)) {
		p = url + 8;
	} else if (!strncmp(url, "rediss://", 9)) {
		p = url + 9;
		u.tls = 1;
	} else if (!strncmp(url, "redis+cluster://", 16)) {
		p = url + 16;
		u.cluster = 1;
	} else if (!strncmp(url, "rediss+cluster://", 17)) {
		p = url + 17;
		u.tls = 1;
		u.cluster = 1;
	} else if (!strncmp(url, "unix://", 7)) {
		p = url + 7;
		u.unix_socket = 1;
	} else {
		return err_set(err, ERR_INVALID,
			       "bad redis url '%.100s': expected redis://, rediss://, redis+cluster://, rediss+cluster:// or unix://",
			       url);
	}

	if (u.unix_socket) {
		q = strchr(p, '?');
		end = q ? q : p + strlen(p);
		if (*p != '/' || end - p < 2 || (size_t)(end - p) >= sizeof(u.host))
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': expected unix:///path/to/socket", url);
		memcpy(u.host, p, (size_t)(end - p));
		/* ?db=N&password=P&user=U, in any order */
		while (q && *q) {
			const char *k = q + 1, *amp = strchr(k, '&');
			size_t n = amp ? (size_t)(amp - k) : strlen(k);
			int bad;

			if (n > 3 && !strncmp(k, "db=", 3))
				bad = parse_db(k + 3, n - 3, &u.db);
			else if (n > 9 && !strncmp(k, "password=", 9))
				bad = pct_decode(k + 9, n - 9, u.password, sizeof(u.password));
			else if (n > 5 && !strncmp(k, "user=", 5))
				bad = pct_decode(k + 5, n - 5, u.user, sizeof(u.user));
			else
				bad = -1;
			if (bad < 0)
				return err_set(err, ERR_INVALID,
					       "bad redis url '%.100s': after the socket path expected ?db=N, &password=P, &user=U",
					       url);
			q = amp;
		}
		*out = u;
		return 0;
	}

	end = p + strcspn(p, "/?#");
	for (q = p; q < end; q++)
		if (*q == '@')
			at = q;
	host = p;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon) {
			if (pct_decode(p, (size_t)(colon - p), u.user, sizeof(u.user)) < 0 ||
			    pct_decode(colon + 1, (size_t)(at - colon - 1), u.password,
				       sizeof(u.password)) < 0)
				return err_set(err, ERR_INVALID, "bad redis url: bad user or password");
		} else if (pct_decode(p, (size_t)(at - p), u.password, sizeof(u.password)) < 0) {
			return err_set(err, ERR_INVALID, "bad redis url: bad password");
		}
		host = at + 1;
	}
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (!rb || rb == host + 1 || (size_t)(rb - host - 1) >= sizeof(u.host))
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': bad IPv6 address", url);
		memcpy(u.host, host + 1, (size_t)(rb - host - 1));
		hend = rb + 1;
		if (hend < end && *hend != ':')
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': junk after IPv6 address", url);
		if (hend < end)
			portp = hend + 1;
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));

		hend = colon ? colon : end;
		if ((size_t)(hend - host) >= sizeof(u.host))
			return err_set(err, ERR_INVALID, "bad redis url: host name too long");
		memcpy(u.host, host, (size_t)(hend - host));
		if (colon)
			portp = colon + 1;
	}
	if (strpbrk(u.host, " \t\r\n@[]"))
		return err_set(err, ERR_INVALID, "bad redis url '%.100s': bad host", url);
	if (!u.host[0])
		strcpy(u.host, "127.0.0.1");
	if (portp) {
		char num[8];
		int64_t v;
		size_t n = (size_t)(end - portp);

		if (n == 0 || n >= sizeof(num))
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': bad port", url);
		memcpy(num, portp, n);
		num[n] = '\0';
		if (num[0] == '-' || parse_int64(num, 1, 65535, &v) < 0)
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': bad port", url);
		u.port = (int)v;
	}
	if (*end == '/' && end[1]) {
		const char *dbend = end + 1 + strcspn(end + 1, "?#");

		if (parse_db(end + 1, (size_t)(dbend - end - 1), &u.db) < 0 || *dbend)
			return err_set(err, ERR_INVALID, "bad redis url '%.100s': expected /DB with a number", url);
	} else if (*end && !(*end == '/' && !end[1])) {
		return err_set(err, ERR_INVALID, "bad redis url '%.100s': unexpected '%c'", url, *end);
	}
	/* a cluster has database 0 only (SELECT is refused there) */
	if (u.cluster && u.db)
		return err_set(err, ERR_INVALID,
			       "bad redis url '%.100s': a cluster has no database but 0", url);
	*out = u;
	return 0;
}
