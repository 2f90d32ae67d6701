/* fuzz_gcs - the parsers of Cloud Storage input in internal/fetch/gcs.c.
 * The first byte picks the parser:
 *   'u' gs:// URLs (fetch_gs_split, fetch_gs_url for each API)
 *   'e' Cloud Storage JSON error documents (fetch_gcs_error_parse)
 * Anything else runs both. Each output is checked for the properties
 * callers rely on: a split names a valid bucket and a non-empty object
 * inside the input; built URLs carry no raw space, CR or LF; error texts
 * are bounded printable ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t cap)
{
	if (strnlen(s, cap) >= cap)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static void url(const char *s)
{
	static const enum fetch_gs_api apis[] = { FETCH_GS_DOWNLOAD, FETCH_GS_UPLOAD,
						  FETCH_GS_XML };
	char bucket[FETCH_GS_BUCKET_MAX], *u;
	const char *object = NULL;
	struct err e;
	size_t i;
	int ok = fetch_gs_split(s, bucket, &object, &e) == 0;

	if (ok) {
		if (strlen(bucket) < 3 || strlen(bucket) > 222 || !object || !*object ||
		    object < s || object > s + strlen(s) || strpbrk(object, "\r\n"))
			abort();
	}
	for (i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
		u = NULL;
		if (fetch_gs_url(s, apis[i], &u, &e) == 0) {
			if (!ok || !u || strpbrk(u, " \r\n"))
				abort();
			free(u);
		} else if (u || ok) {
			abort(); /* a valid URL always builds; a failure sets nothing */
		}
	}
}

static void error_doc(const char *s, size_t len)
{
	char reason[64], msg[256];

	if (fetch_gcs_error_parse(s, len, reason, msg)) {
		printable(reason, sizeof(reason));
		printable(msg, sizeof(msg));
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
	case 'u': url(s); break;
	case 'e': error_doc(s, n); break;
	default:
		url(s);
		error_doc(s, n);
	}
	free(s);
	return 0;
}
