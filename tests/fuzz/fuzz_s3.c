/* fuzz_s3 - the parsers of what object stores and their credential
 * providers hand us, in internal/fetch/aws.c, s3.c and gcs.c. The first
 * byte picks the parser:
 *   'i' shared config / credentials files (fetch_aws_ini_get)
 *   'j' credential JSON of the container provider and IMDS
 *   't' Expiration times (fetch_aws_time_parse)
 *   'x' S3 error documents (fetch_s3_error_parse)
 *   'g' gs:// URLs (fetch_gs_split, fetch_gs_url for each API)
 *   'e' Cloud Storage JSON error documents (fetch_gcs_error_parse)
 * Anything else runs every parser. Each output is checked for the
 * properties callers rely on (bounded, NUL-terminated, printable). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t cap, int allow_space)
{
	size_t n = strnlen(s, cap);

	if (n >= cap)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 + !allow_space || (unsigned char)*s >= 0x7f)
			abort();
}

static void ini(const char *s, size_t len)
{
	static const char *const sections[] = { "default", "profile x",
						"profile  x", "x" };
	static const char *const keys[] = { "region", "aws_access_key_id",
					     "aws_session_token", NULL };
	char out[16];
	size_t i, j;

	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		for (j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
			memset(out, 'Z', sizeof(out));
			if (fetch_aws_ini_get(s, len, sections[i], keys[j],
					      keys[j] ? out : NULL,
					      keys[j] ? sizeof(out) : 0) &&
			    keys[j] && !memchr(out, 0, sizeof(out)))
				abort();
		}
}

static void creds(const char *s, size_t len)
{
	struct fetch_aws_creds c;

	memset(&c, 0, sizeof(c));
	if (fetch_aws_creds_parse(s, len, &c, NULL) == 0) {
		if (!c.key_id || !c.secret || !*c.key_id || !*c.secret)
			abort();
		printable(c.key_id, 129, 0);
		printable(c.secret, 257, 0);
		if (c.token)
			printable(c.token, 8193, 0);
		fetch_aws_creds_release(&c);
	} else if (c.key_id || c.secret || c.token) {
		abort(); /* a failure leaves nothing behind */
	}
}

static void when(const char *s)
{
	int64_t t;

	if (fetch_aws_time_parse(s, &t) == 0 &&
	    (t < -62167219200LL || t > 253402300799LL + 86400))
		abort(); /* years 0000..9999 only */
}

static void s3error(const char *s, size_t len)
{
	char code[64], msg[256];

	if (fetch_s3_error_parse(s, len, code, msg)) {
		if (!code[0])
			abort();
		printable(code, sizeof(code), 1);
		printable(msg, sizeof(msg), 1);
	}
}

/* A split names a valid bucket and a non-empty object inside the input;
 * a URL that splits always builds, without raw space, CR or LF. */
static void gsurl(const char *s)
{
	static const enum fetch_gs_api apis[] = { FETCH_GS_DOWNLOAD, FETCH_GS_UPLOAD,
						  FETCH_GS_XML };
	char bucket[FETCH_GS_BUCKET_MAX], *u;
	const char *object = NULL;
	struct err e;
	size_t i;
	int ok = fetch_gs_split(s, bucket, &object, &e) == 0;

	if (ok && (strlen(bucket) < 3 || strlen(bucket) > 222 || !object || !*object ||
		   object < s || object > s + strlen(s) || strpbrk(object, "\r\n")))
		abort();
	for (i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
		u = NULL;
		if (fetch_gs_url(s, apis[i], &u, &e) == 0) {
			if (!ok || !u || strpbrk(u, " \r\n"))
				abort();
			free(u);
		} else if (u || ok) {
			abort();
		}
	}
}

static void gcserror(const char *s, size_t len)
{
	char reason[64], msg[256];

	if (fetch_gcs_error_parse(s, len, reason, msg)) {
		printable(reason, sizeof(reason), 1);
		printable(msg, sizeof(msg), 1);
		if (!reason[0] && !msg[0])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t n;

	if (size < 1 || size > 65536)
		return 0;
	n = size - 1;
	s = malloc(n + 1);
	memcpy(s, data + 1, n);
	s[n] = 0;
	switch (data[0]) {
	case 'i': ini(s, n); break;
	case 'j': creds(s, n); break;
	case 't': when(s); break;
	case 'x': s3error(s, n); break;
	case 'g': gsurl(s); break;
	case 'e': gcserror(s, n); break;
	default:
		ini(s, n);
		creds(s, n);
		when(s);
		s3error(s, n);
		gsurl(s);
		gcserror(s, n);
	}
	free(s);
	return 0;
}
