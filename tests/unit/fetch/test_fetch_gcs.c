/* Unit tests of internal/fetch's Cloud Storage side: gs:// URLs (what
 * is malformed and what the message says), the JSON and XML API URLs
 * they turn into, Cloud Storage's error documents, and V4 HMAC signed
 * URLs (GOOG4-HMAC-SHA256) against a signature computed independently.
 * Transfers against the fake Cloud Storage are in
 * tests/integration/43_fetch_gcs.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/fetch.h"
#include "fetch/priv.h"
#include "job/job.h"

static int reset(void **state)
{
	(void)state;
	unsetenv("GCS_ENDPOINT");
	unsetenv("GCS_HMAC_ACCESS_ID");
	unsetenv("GCS_HMAC_SECRET");
	return 0;
}

/* Each malformed URL fails with ERR_INVALID and a message naming it
 * and what is wrong. */
static void test_bad_urls(void **state)
{
	static const struct { const char *url, *says; } bad[] = {
		{ "gs://", "no bucket" },
		{ "gs:///x", "no bucket" },
		{ "gs://bucket", "no object name" },
		{ "gs://bucket/", "no object name" },
		{ "gs://b/", "no object name" },
		{ "gs://b/x", "bad bucket name 'b'" },
		{ "gs://Upper/x", "bad bucket name 'Upper'" },
		{ "gs://-bucket/x", "bad bucket name" },
		{ "gs://bucket-/x", "bad bucket name" },
		{ "gs://buck et/x", "bad bucket name" },
		{ "gs://bucket/.", "not allowed" },
		{ "gs://bucket/..", "not allowed" },
		{ "gs://bucket/a\nb", "not allowed" },
		{ "s3://bucket/x", "not a gs:// url" },
	};
	char bucket[FETCH_GS_BUCKET_MAX], *url = NULL, big[1100];
	const char *object;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(fetch_gs_split(bad[i].url, bucket, &object, &e), -1);
		assert_int_equal(e.code, ERR_INVALID);
		if (!strstr(e.msg, bad[i].says))
			fail_msg("'%s': got '%s', want '%s'", bad[i].url, e.msg, bad[i].says);
		if (strncmp(bad[i].url, "s3", 2) && !strchr(bad[i].url, '\n'))
			assert_non_null(strstr(e.msg, bad[i].url));
		assert_int_equal(fetch_gs_url(bad[i].url, FETCH_GS_DOWNLOAD, &url, &e), -1);
		assert_null(url);
	}
	/* object names up to 1024 bytes */
	memcpy(big, "gs://bucket/", 12);
	memset(big + 12, 'a', 1025);
	big[12 + 1025] = '\0';
	assert_int_equal(fetch_gs_split(big, bucket, &object, &e), -1);
	assert_non_null(strstr(e.msg, "over 1024 bytes"));
	big[12 + 1024] = '\0';
	assert_int_equal(fetch_gs_split(big, bucket, &object, &e), 0);
	/* bucket names: dots allow up to 222, each part up to 63 */
	assert_int_equal(fetch_gs_split("gs://my_bucket.example.com/x", bucket, &object, &e), 0);
	assert_string_equal(bucket, "my_bucket.example.com");
	assert_string_equal(object, "x");
	/* the input path refuses them too, before any network */
	{
		struct fetch_input in;

		memset(&in, 0, sizeof(in));
		assert_int_equal(fetch_input_open("gs://bucket/", &in, NULL, &e), -1);
		assert_int_equal(e.code, ERR_INVALID);
		assert_string_equal(e.msg, "gs get 'gs://bucket/' failed: bad gs url "
				    "'gs://bucket/': no object name (want gs://bucket/object)");
	}
}

static void test_api_urls(void **state)
{
	char *u;
	struct err e;

	(void)state;
	assert_int_equal(fetch_gs_url("gs://media/in/clip 1+2.mp4", FETCH_GS_DOWNLOAD, &u, &e), 0);
	assert_string_equal(u, "https://storage.googleapis.com/storage/v1/b/media/o/"
			    "in%2Fclip%201%2B2.mp4?alt=media");
	free(u);
	setenv("GCS_ENDPOINT", "http://127.0.0.1:4443/", 1);
	assert_int_equal(fetch_gs_url("gs://media/out/a.webm", FETCH_GS_UPLOAD, &u, &e), 0);
	assert_string_equal(u, "http://127.0.0.1:4443/upload/storage/v1/b/media/o"
			    "?uploadType=media&name=out%2Fa.webm");
	free(u);
	assert_int_equal(fetch_gs_url("gs://media/d/./x y", FETCH_GS_XML, &u, &e), 0);
	assert_string_equal(u, "http://127.0.0.1:4443/media/d/./x%20y");
	free(u);
	setenv("GCS_ENDPOINT", "storage.example:80", 1);
	assert_int_equal(fetch_gs_url("gs://media/x", FETCH_GS_DOWNLOAD, &u, &e), -1);
	assert_non_null(strstr(e.msg, "GCS_ENDPOINT must start with http"));
	assert_int_equal(fetch_check_settings(&e), -1);
	assert_non_null(strstr(e.msg, "GCS_ENDPOINT"));
}

static void test_parse_error(void **state)
{
	static const char doc[] = "{\"error\":{\"code\":404,\"message\":\"No such object: "
		"media/x\",\"errors\":[{\"message\":\"No such object: media/x\",\"domain\":"
		"\"global\",\"reason\":\"notFound\"}]}}";
	static const char v2[] = "{\"error\":{\"code\":403,\"message\":\"denied\\n\\u00e9\","
		"\"status\":\"PERMISSION_DENIED\"}}";
	char reason[64], msg[256], big[2000];

	(void)state;
	assert_int_equal(fetch_gcs_error_parse(doc, strlen(doc), reason, msg), 1);
	assert_string_equal(reason, "notFound");
	assert_string_equal(msg, "No such object: media/x");
	/* no errors[]: the status; control and non-ASCII bytes do not pass */
	assert_int_equal(fetch_gcs_error_parse(v2, strlen(v2), reason, msg), 1);
	assert_string_equal(reason, "PERMISSION_DENIED");
	assert_string_equal(msg, "denied ??");
	/* not JSON, not an error, empty */
	assert_int_equal(fetch_gcs_error_parse("<html>502</html>", 16, reason, msg), 0);
	assert_int_equal(fetch_gcs_error_parse("{\"error\":\"x\"}", 13, reason, msg), 0);
	assert_int_equal(fetch_gcs_error_parse("", 0, reason, msg), 0);
	assert_int_equal(fetch_gcs_error_parse(NULL, 0, reason, msg), 0);
	/* a cut body (the kept start of a long answer) */
	assert_int_equal(fetch_gcs_error_parse(doc, 40, reason, msg), 0);
	/* long messages are cut to the buffer */
	memset(big, 'a', sizeof(big));
	memcpy(big, "{\"error\":{\"message\":\"", 21);
	memcpy(big + sizeof(big) - 4, "\"}}", 3);
	big[sizeof(big) - 1] = ' ';
	assert_int_equal(fetch_gcs_error_parse(big, sizeof(big), reason, msg), 1);
	assert_int_equal(strlen(msg), 255);
	assert_string_equal(reason, "");
}

/* The URL, signature included, as an independent implementation of
 * Cloud Storage's V4 signing (Python's hmac/hashlib) computed it for the
 * same key, object, content type and time. */
static void test_presign_gcs(void **state)
{
	struct fetch_presign_req r = { 0 };
	struct fetch_presigned p = { 0 };
	struct err e;

	(void)state;
	r.url = "gs://example-bucket/dir/cat photo.jpeg";
	r.content_type = "image/jpeg";
	r.expires_s = 900;
	r.now = 1700000000; /* 2023-11-14T22:13:20Z */
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "GCS_HMAC_ACCESS_ID and GCS_HMAC_SECRET"));
	setenv("GCS_HMAC_ACCESS_ID", "GOOG1EXAMPLEID", 1);
	setenv("GCS_HMAC_SECRET", "exampleSecret+/xyz", 1);
	assert_int_equal(fetch_presign(&r, &p, &e), 0);
	assert_string_equal(p.url, "https://storage.googleapis.com/example-bucket/dir/"
		"cat%20photo.jpeg?X-Goog-Algorithm=GOOG4-HMAC-SHA256"
		"&X-Goog-Credential=GOOG1EXAMPLEID%2F20231114%2Fauto%2Fstorage%2Fgoog4_request"
		"&X-Goog-Date=20231114T221320Z&X-Goog-Expires=900"
		"&X-Goog-SignedHeaders=content-type%3Bhost"
		"&X-Goog-Signature=1287418d42de5c23afd7708949861e6821a8b7acd56644c89e55a33cf4ec5fc8");
	assert_string_equal(p.method, "PUT");
	assert_string_equal(p.content_type, "image/jpeg");
	assert_int_equal(p.expires_at, 1700000000 + 900);
	assert_null(strstr(p.url, "exampleSecret"));
	fetch_presigned_release(&p);
	r.url = "gs://b/";
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "no object name"));
	assert_null(p.url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_bad_urls, reset),
		cmocka_unit_test_setup(test_api_urls, reset),
		cmocka_unit_test_setup(test_parse_error, reset),
		cmocka_unit_test_setup(test_presign_gcs, reset),
	};

	job_settings.allow_private = "loopback";
	return cmocka_run_group_tests(tests, NULL, NULL);
}
