/* fetchcp - copies one file through internal/fetch, for integration tests:
 *
 *   fetchcp get URL LOCAL    fetch_input_open(URL), copy to LOCAL
 *   fetchcp put LOCAL URL    fetch_output_prepare/commit(URL) from LOCAL
 *
 * Settings from the environment: DATA_DIR, TMP_DIR, MAX_INPUT_BYTES,
 * ALLOW_PRIVATE_NETWORKS (and S3_* / AWS_* for s3:// URLs). On failure it
 * prints "fetchcp: CODE: MESSAGE" and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/parse.h"
#include "fetch/fetch.h"
#include "job/job.h"

static int copy(const char *from, const char *to)
{
	char b[65536];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;
	int rc = 0;

	if (!in || !out)
		rc = -1;
	while (rc == 0 && (n = fread(b, 1, sizeof(b), in)) > 0)
		if (fwrite(b, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

int main(int argc, char **argv)
{
	struct err e = { 0 };
	int64_t cap;
	int rc = 1;

	if (argc != 4 || (strcmp(argv[1], "get") && strcmp(argv[1], "put"))) {
		fprintf(stderr, "usage: fetchcp get URL LOCAL | put LOCAL URL\n");
		return 2;
	}
	job_settings.data_dir = getenv("DATA_DIR") ? getenv("DATA_DIR") : ".";
	job_settings.tmp_dir = getenv("TMP_DIR") ? getenv("TMP_DIR") : "/tmp";
	job_settings.allow_private = getenv("ALLOW_PRIVATE_NETWORKS") ?
		getenv("ALLOW_PRIVATE_NETWORKS") : "";
	if (getenv("MAX_INPUT_BYTES") &&
	    parse_size(getenv("MAX_INPUT_BYTES"), INT64_MAX, &cap) == 0)
		job_settings.max_input_bytes = cap;
	if (!strcmp(argv[1], "get")) {
		struct fetch_input in = { .path = "" };

		if (fetch_input_open(argv[2], &in, NULL, &e) == 0) {
			rc = copy(in.path, argv[3]) == 0 ? 0 : 1;
			if (rc)
				snprintf(e.msg, sizeof(e.msg), "cannot copy to '%s'", argv[3]);
			fetch_input_release(&in);
		}
	} else {
		struct fetch_output out = { .path = "" };

		if (fetch_output_prepare(argv[3], &out, &e) == 0) {
			if (copy(argv[2], out.path) < 0)
				snprintf(e.msg, sizeof(e.msg), "cannot copy '%s'", argv[2]);
			else if (fetch_output_commit(&out, NULL, &e) == 0)
				rc = 0;
			fetch_output_release(&out);
		}
	}
	if (rc)
		fprintf(stderr, "fetchcp: %s: %s\n", err_code_name(e.code), e.msg);
	return rc;
}
