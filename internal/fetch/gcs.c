/* gcs.c - where gs:// requests go: Cloud Storage's JSON API (downloads
 * with alt=media, uploads with uploadType=media) and its XML API (the
 * signed URLs of presign.c), both under GCS_ENDPOINT
 * (https://storage.googleapis.com unless set; tests point it at a fake on
 * loopback), and what Cloud Storage's error answers say.
 *
 * Requests carry "Authorization: Bearer" an access token of the service
 * account from the metadata server (gcp.c's cache): no long-lived keys.
 *
 * The URL and error parsers read outside input: bounded, tolerant of
 * junk, fuzzed (tests/fuzz/fuzz_s3.c).
 */
#include "fetch/priv.h"

#include "base/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"

void fetch_path_escape(struct buf *b, const char *s, int keep_slash)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c) ||
		    (keep_slash && c == '/'))
			buf_addc(b, (char)c);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* Cloud Storage bucket names: 3..63 characters of lowercase letters,
 * digits, '-', '_' and '.', starting and ending with a letter or digit
 * (up to 222 with dots, each dot-separated part at most 63). */
static int gs_bucket_ok(const char *b, size_t n)
{
	size_t i, part = 0;

	if (n < 3 || n > 222)
		return 0;
	for (i = 0; i < n; i++) {
		char c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
		part = c == '.' ? 0 : part + 1;
		if (part > 63)
			return 0;
	}
	if (!memchr(b, '.', n) && n > 63)
		return 0;
	return !strchr("-_.", b[0]) && !strchr("-_.", b[n - 1]);
}

int fetch_gs_split(const char *url, char bucket[FETCH_GS_BUCKET_MAX],
		   const char **object, struct err *err)
{
	const char *p, *slash;
	size_t n;

	if (!url || !fetch_has_scheme(url, "gs://"))
		return err_set(err, ERR_INVALID, "not a gs:// url '%.200s'",
			       url ? url : "");
	p = url + 5;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0)
		return err_set(err, ERR_INVALID, "bad gs url '%.200s': no bucket "
			       "(want gs://bucket/object)", url);
	if (!slash || !slash[1])
		return err_set(err, ERR_INVALID, "bad gs url '%.200s': no object "
			       "name (want gs://bucket/object)", url);
	if (!gs_bucket_ok(p, n))
		return err_set(err, ERR_INVALID, "bad gs url '%.200s': bad bucket "
			       "name '%.*s' (want 3-63 of a-z, 0-9, '-', '_', '.')",
			       url, (int)(n > 80 ? 80 : n), p);
	slash++;
	if (strlen(slash) > 1024)
		return err_set(err, ERR_INVALID, "bad gs url '%.200s': object name "
			       "over 1024 bytes", url);
	if (strpbrk(slash, "\r\n") || !strcmp(slash, ".") || !strcmp(slash, ".."))
		return err_set(err, ERR_INVALID, "bad gs url '%.200s': object name "
			       "not allowed by Cloud Storage", url);
	memcpy(bucket, p, n);
	bucket[n] = '\0';
	*object = slash;
	return 0;
}

/* GCS_ENDPOINT without trailing '/', or NULL with err. */
static const char *gs_endpoint(struct buf *out, struct err *err)
{
	const char *e = fetch_env("GCS_ENDPOINT");

	if (!e)
		e = GCS_DEFAULT_ENDPOINT;
	if (strncasecmp(e, "http://", 7) && strncasecmp(e, "https://", 8)) {
		err_set(err, ERR_INVALID, "GCS_ENDPOINT must start with http:// or https://");
		return NULL;
	}
	buf_adds(out, e);
	while (out->len && out->data[out->len - 1] == '/')
		out->data[--out->len] = '\0';
	return out->data;
}

int fetch_gs_url(const char *gsurl, enum fetch_gs_api api, char **url,
		 struct err *err)
{
	char bucket[FETCH_GS_BUCKET_MAX];
	const char *object;
	struct buf u = BUF_INIT;

	if (fetch_gs_split(gsurl, bucket, &object, err) < 0)
		return -1;
	if (!gs_endpoint(&u, err)) {
		buf_release(&u);
		return -1;
	}
	switch (api) {
	case FETCH_GS_DOWNLOAD:
		buf_printf(&u, "/storage/v1/b/%s/o/", bucket);
		fetch_path_escape(&u, object, 0);
		buf_adds(&u, "?alt=media");
		break;
	case FETCH_GS_UPLOAD:
		buf_printf(&u, "/upload/storage/v1/b/%s/o?uploadType=media&name=", bucket);
		fetch_path_escape(&u, object, 0);
		break;
	case FETCH_GS_XML:
		buf_printf(&u, "/%s/", bucket);
		fetch_path_escape(&u, object, 1);
		break;
	}
	*url = buf_detach(&u, NULL);
	return 0;
}

int fetch_gcs_check_settings(struct err *err)
{
	struct buf u = BUF_INIT;
	int rc = gs_endpoint(&u, err) ? 0 : -1;

	buf_release(&u);
	return rc;
}

/* Printable ASCII of `s` into out (cap bytes, NUL-terminated): control
 * and non-ASCII bytes become '?', runs of spaces fold. */
static void printable_copy(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	int space = 0;

	for (; s && *s && n + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (space || n == 0)
				continue;
			c = ' ';
			space = 1;
		} else {
			space = 0;
			if (c >= 0x80)
				c = '?';
		}
		out[n++] = (char)c;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

int fetch_gcs_error_parse(const char *body, size_t len, char reason[64],
			  char msg[256])
{
	json_t *root, *e, *errors;
	const char *r = NULL, *m;
	int rc = 0;

	reason[0] = msg[0] = '\0';
	if (!body || !len)
		return 0;
	root = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, NULL);
	e = json_object_get(root, "error");
	if (!json_is_object(e))
		goto out;
	errors = json_object_get(e, "errors");
	r = json_string_value(json_object_get(json_array_get(errors, 0), "reason"));
	if (!r)
		r = json_string_value(json_object_get(e, "status"));
	m = json_string_value(json_object_get(e, "message"));
	printable_copy(r, reason, 64);
	printable_copy(m, msg, 256);
	rc = reason[0] || msg[0];
out:
	json_decref(root);
	return rc;
}
