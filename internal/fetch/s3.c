/* s3.c - where s3:// requests go: endpoint, region and URL from the S3_*
 * settings and the AWS-standard ones, and what S3's error answers say.
 *
 * Precedence (docs/STORAGE.md has the table):
 *   endpoint  S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL (the last
 *             two unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else
 *             https://s3.REGION.amazonaws.com
 *   region    S3_REGION, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 *             region in the config file, else us-east-1
 * Credentials are aws.c's.
 *
 * The error parser reads outside input: bounded, tolerant of junk, fuzzed
 * (tests/fuzz/fuzz_s3.c).
 */
#include "fetch/priv.h"

#include "base/mem.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- region, endpoint, URL ------------------------------------------- */

static int region_ok(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > 40)
		return 0;
	for (; *r; r++)
		if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) &&
		    *r != '-')
			return 0;
	return 1;
}

/* The region and the setting it came from. */
static void region_of(char out[64], const char **from)
{
	static const char *const vars[] = { "S3_REGION", "AWS_REGION",
					    "AWS_DEFAULT_REGION" };
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (fetch_env(vars[i])) {
			snprintf(out, 64, "%s", fetch_env(vars[i]));
			*from = vars[i];
			return;
		}
	if (fetch_aws_config_get("region", out, 64) && out[0]) {
		*from = "region in AWS_CONFIG_FILE";
		return;
	}
	snprintf(out, 64, "us-east-1");
	*from = NULL;
}

static int region_get(char out[64], struct err *err)
{
	const char *from;

	region_of(out, &from);
	if (!region_ok(out))
		return err_set(err, ERR_INVALID, "bad s3 region '%.64s' in %s "
			       "(want lowercase letters, digits and '-')", out,
			       from ? from : "?");
	return 0;
}

void fetch_s3_region(char out[64])
{
	if (region_get(out, NULL) < 0)
		snprintf(out, 64, "us-east-1");
}

/* The endpoint and the setting it came from, or NULL for AWS itself. */
static const char *endpoint_of(const char **from)
{
	*from = "S3_ENDPOINT";
	if (fetch_env("S3_ENDPOINT"))
		return fetch_env("S3_ENDPOINT");
	if (fetch_env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
		return NULL;
	*from = "AWS_ENDPOINT_URL_S3";
	if (fetch_env("AWS_ENDPOINT_URL_S3"))
		return fetch_env("AWS_ENDPOINT_URL_S3");
	*from = "AWS_ENDPOINT_URL";
	return fetch_env("AWS_ENDPOINT_URL");
}

static int bucket_ok(const char *b, size_t n)
{
	size_t i;

	if (n < 3 || n > 63)
		return 0;
	for (i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') ||
		      b[i] == '-' || b[i] == '.'))
			return 0;
	return b[0] != '.' && b[0] != '-';
}

int fetch_s3_url(const char *s3url, char **https_url, struct err *err)
{
	const char *p, *slash, *endpoint, *from, *sep, *ps;
	struct buf u = BUF_INIT;
	char region[64];
	int path_style = -1, hostlen;
	size_t blen;

	if (!fetch_has_scheme(s3url, "s3://"))
		return err_set(err, ERR_INVALID, "not an s3:// url '%.200s'", s3url);
	p = s3url + 5;
	slash = strchr(p, '/');
	if (!slash || !slash[1] || !bucket_ok(p, (size_t)(slash - p)))
		return err_set(err, ERR_INVALID,
			       "bad s3 url '%.200s' (want s3://bucket/key)", s3url);
	blen = (size_t)(slash - p);
	endpoint = endpoint_of(&from);
	if (region_get(region, err) < 0)
		return -1;
	if ((ps = fetch_env("S3_PATH_STYLE")))
		path_style = !strchr("0nNfF", ps[0]);
	if (path_style < 0)
		path_style = endpoint != NULL;
	if (!endpoint) {
		buf_printf(&u, "https://s3.%s.amazonaws.com", region);
	} else {
		if (strncasecmp(endpoint, "http://", 7) &&
		    strncasecmp(endpoint, "https://", 8))
			return err_set(err, ERR_INVALID,
				       "%s must start with http:// or https://", from);
		buf_adds(&u, endpoint);
		while (u.len && u.data[u.len - 1] == '/')
			u.data[--u.len] = 0;
	}
	if (path_style) {
		buf_printf(&u, "/%.*s/", (int)blen, p);
	} else {
		/* virtual-hosted: the bucket goes in front of the host */
		char *rest = xstrdup(u.data);

		sep = strstr(rest, "://") + 3;
		hostlen = (int)(sep - rest);
		buf_reset(&u);
		buf_printf(&u, "%.*s%.*s.%s/", hostlen, rest, (int)blen, p, sep);
		free(rest);
	}
	/* The key as given, percent-encoded the way SigV4 wants it for S3:
	 * everything but unreserved characters and '/', uppercase hex.
	 * "." and ".." segments stay: they are part of the key, and the
	 * request is sent with CURLOPT_PATH_AS_IS so nothing folds them. */
	fetch_path_escape(&u, slash + 1, 1);
	*https_url = buf_detach(&u, NULL);
	return 0;
}

int fetch_s3_check_settings(struct err *err)
{
	const char *from, *endpoint = endpoint_of(&from);
	char region[64];

	if (endpoint && strncasecmp(endpoint, "http://", 7) &&
	    strncasecmp(endpoint, "https://", 8))
		return err_set(err, ERR_INVALID,
			       "%s must start with http:// or https://", from);
	return region_get(region, err);
}

/* ---- S3 error answers ------------------------------------------------- */

/* Decodes the XML text between `p` and `end` into `out` (printable ASCII,
 * whitespace runs folded, truncated to cap - 1). */
static void xml_text(const char *p, const char *end, char *out, size_t cap)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	size_t n = 0, i;
	int c, space = 0;

	while (p < end && n + 1 < cap) {
		c = (unsigned char)*p++;
		if (c == '&') {
			for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
				if ((size_t)(end - p) >= strlen(ents[i].name) &&
				    !memcmp(p, ents[i].name, strlen(ents[i].name)))
					break;
			if (i < sizeof(ents) / sizeof(ents[0])) {
				c = ents[i].c;
				p += strlen(ents[i].name);
			} else if (p < end && *p == '#') {
				const char *semi = memchr(p, ';', (size_t)(end - p));
				long v = -1;

				if (semi && semi - p > 1 && semi - p < 10) {
					char num[12], *e;

					memcpy(num, p + 1, (size_t)(semi - p - 1));
					num[semi - p - 1] = 0;
					v = num[0] == 'x' || num[0] == 'X' ?
						strtol(num + 1, &e, 16) : strtol(num, &e, 10);
					if (*e || e == num)
						v = -1;
					else
						p = semi + 1;
				}
				c = v >= 0x20 && v < 0x7f ? (int)v : v >= 0 ? '?' : '&';
			}
		}
		if (c < 0x20 || c == 0x7f || c >= 0x80)
			c = c >= 0x80 ? '?' : ' ';
		if (c == ' ') {
			if (space || n == 0)
				continue;
			space = 1;
		} else {
			space = 0;
		}
		out[n++] = (char)c;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = 0;
}

/* The text of the first <tag>...</tag> in body, or 0. */
static int xml_find(const char *body, size_t len, const char *tag, char *out,
		    size_t cap)
{
	char open[32], close[32];
	const char *p, *end = body + len, *q;
	size_t ol, cl;

	out[0] = 0;
	ol = (size_t)snprintf(open, sizeof(open), "<%s>", tag);
	cl = (size_t)snprintf(close, sizeof(close), "</%s>", tag);
	p = memmem(body, len, open, ol);
	if (!p)
		return 0;
	p += ol;
	q = memmem(p, (size_t)(end - p), close, cl);
	if (!q)
		return 0;
	/* CDATA around the text: keep what is inside */
	if (q - p >= 12 && !memcmp(p, "<![CDATA[", 9) && !memcmp(q - 3, "]]>", 3)) {
		p += 9;
		q -= 3;
	}
	xml_text(p, q, out, cap);
	return out[0] != 0;
}

int fetch_s3_error_parse(const char *body, size_t len, char code[64],
			 char msg[256])
{
	msg[0] = 0;
	if (!body || !len || !xml_find(body, len, "Code", code, 64))
		return 0;
	xml_find(body, len, "Message", msg, 256);
	return 1;
}
