/* priv.h - internals shared by the files of the fetch module. */
#ifndef WAKEQ_FETCH_PRIV_H
#define WAKEQ_FETCH_PRIV_H

#include "base/err.h"
#include "fetch/fetch.h"

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>

/* path.c: file:// URLs inside DATA_DIR and temp files. */

/* Whether `url` starts with `scheme` ("file://"), ignoring case. */
int fetch_has_scheme(const char *url, const char *scheme);

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

/* sha.c: SHA-256 of `len` bytes into `out`. */
void fetch_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
