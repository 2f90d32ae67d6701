/* priv.h - internals shared by the files of the fetch module. */
#ifndef WAKEQ_FETCH_PRIV_H
#define WAKEQ_FETCH_PRIV_H

#include "base/err.h"
#include "fetch/fetch.h"

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* path.c: file:// URLs inside DATA_DIR and temp files. */

/* Whether `url` starts with `scheme` ("file://"), ignoring case. */
int fetch_has_scheme(const char *url, const char *scheme);

/* Whether url names an object of a store (s3:// or gs://). */
int fetch_is_store(const char *url);

/* Opens a file:// input beneath DATA_DIR (see fetch_input_open) and
 * fills `in`: fd, path (the link to fd), bytes. On failure `in` is
 * untouched. */
int fetch_file_input(const char *url, struct fetch_input *in,
		     struct err *err);

/* Prepares a file:// output beneath DATA_DIR (see fetch_output_prepare):
 * fills path, final, dirfd, fd, part and name of `out`. On failure `out`
 * is untouched and nothing is left behind but created parent folders. */
int fetch_file_output(const char *url, struct fetch_output *out,
		      struct err *err);

/* Renames the temp file of a file:// output into place. */
int fetch_file_commit(struct fetch_output *out, struct err *err);

/* Removes the link (and, unless committed, the temp file) of a file://
 * input or output and closes its descriptors. */
void fetch_file_input_release(struct fetch_input *in);
void fetch_file_output_release(struct fetch_output *out);

/* Creates an empty temp file under job_settings.tmp_dir whose name keeps
 * the extension of `url`'s last path segment. */
int fetch_tmpfile(const char *url, char out[PATH_MAX], struct err *err);

/* http.c: transfers of whole files. */
int fetch_download(const char *url, const char *path, long long *bytes,
		   atomic_int *cancel, struct err *err);
int fetch_upload(const char *url, const char *path, atomic_int *cancel,
		 struct err *err);

/* One request like fetch_http() to an operator-configured URL (the
 * credential providers): the address is not checked against
 * ALLOW_PRIVATE_NETWORKS, and s3:// is not special. */
int fetch_http_trusted(const struct fetch_request *req,
		       struct fetch_response *resp, struct err *err);

/* aws.c: credentials. */

/* The environment variable `name`, or NULL when unset or empty. */
const char *fetch_env(const char *name);

/* Whether `name` is "true" (any case) or "1". */
int fetch_env_true(const char *name);

struct fetch_aws_creds {
	char *key_id, *secret; /* owned */
	char *token;           /* owned; NULL = none */
	int64_t expires;       /* unix seconds; 0 = does not expire */
	const char *source;    /* static text naming the provider */
};

void fetch_aws_creds_release(struct fetch_aws_creds *c);

/* The keys for S3 requests, from the first provider of the chain (aws.c,
 * docs/STORAGE.md) that has them. May block on the container provider or
 * IMDS (seconds at most) when the cache is cold. Returns 0 with `c` filled
 * (caller releases), or -1 with err: ERR_INVALID when no provider has
 * keys or a setting is bad, ERR_UNAVAILABLE / ERR_TIMEOUT / ERR_AUTH /
 * ERR_PROTOCOL when a provider failed. */
int fetch_aws_creds_get(struct fetch_aws_creds *c, struct err *err);

/* Drops cached temporary keys (S3 said they expired). Thread-safe. */
void fetch_aws_creds_forget(void);

/* The value of `key` in the current profile's section of the config file
 * (AWS_CONFIG_FILE or ~/.aws/config) into `out`. Returns 1 found, 0 not. */
int fetch_aws_config_get(const char *key, char *out, size_t cap);

/* s3.c: endpoint, region, URL, error answers. */

/* The region S3 requests are signed for (us-east-1 when unset or bad). */
void fetch_s3_region(char out[64]);

/* Checks the S3 endpoint and region settings (start-up). */
int fetch_s3_check_settings(struct err *err);

/* Parsers of outside input (aws.c, s3.c), exposed for tests and
 * fuzzing. */

/* The value of `key` (case-insensitive) in `section` of an AWS shared
 * config text (INI; "[profile  x]" matches "profile x"; later lines win;
 * inline comments after whitespace dropped) into `out` (truncated to
 * cap - 1). With key NULL, whether the section exists. Returns 1 found,
 * 0 not. */
int fetch_aws_ini_get(const char *text, size_t len, const char *section,
		      const char *key, char *out, size_t cap);

/* The credential JSON of the container provider and IMDS:
 * {AccessKeyId, SecretAccessKey, Token?, Expiration?, Code?}. Returns 0
 * with `c` filled (source unset), or -1 with err (ERR_PROTOCOL). */
int fetch_aws_creds_parse(const char *json, size_t len,
			  struct fetch_aws_creds *c, struct err *err);

/* An RFC 3339 time ("2024-05-01T12:00:00Z", fractions and offsets
 * allowed) into unix seconds. Returns 0 or -1. */
int fetch_aws_time_parse(const char *s, int64_t *t);

/* <Code> and <Message> of an S3 error body (not NUL-terminated), as
 * printable ASCII with entities decoded. Returns 1 with code set (msg
 * may be ""), or 0 when there is no code. */
int fetch_s3_error_parse(const char *body, size_t len, char code[64],
			 char msg[256]);

/* gcs.c */

/* Appends `s` percent-encoded as SigV4 and Cloud Storage want it: all
 * but unreserved characters (and '/' when keep_slash), uppercase hex. */
void fetch_path_escape(struct buf *b, const char *s, int keep_slash);

/* Checks GCS_ENDPOINT (start-up). */
int fetch_gcs_check_settings(struct err *err);

/* The reason (error.errors[0].reason, else error.status) and message of
 * a Cloud Storage JSON error body (not NUL-terminated), as printable
 * ASCII. Returns 1 when either was found, else 0. */
int fetch_gcs_error_parse(const char *body, size_t len, char reason[64],
			  char msg[256]);

#endif
