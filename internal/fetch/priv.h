/* priv.h - internals shared by the files of the fetch module. */
#ifndef WAKEQ_FETCH_PRIV_H
#define WAKEQ_FETCH_PRIV_H

#include "base/err.h"

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>

/* path.c: file:// URLs inside DATA_DIR and temp files. */

/* Whether `url` starts with `scheme` ("file://"), ignoring case. */
int fetch_has_scheme(const char *url, const char *scheme);

/* Resolves a file:// input to a real path (no symlinks left) inside
 * DATA_DIR; fills `out` and `*bytes`. */
int fetch_file_input(const char *url, char out[PATH_MAX], long long *bytes,
		     struct err *err);

/* Resolves a file:// output: creates the parent folders inside DATA_DIR,
 * fills `final` (the target) and creates `tmp` (an empty temp file beside
 * it, same extension). */
int fetch_file_output(const char *url, char final[PATH_MAX],
		      char tmp[PATH_MAX], struct err *err);

/* Creates an empty temp file under job_settings.tmp_dir whose name keeps
 * the extension of `url`'s last path segment. */
int fetch_tmpfile(const char *url, char out[PATH_MAX], struct err *err);

/* http.c: transfers of whole files. */
int fetch_download(const char *url, const char *path, long long *bytes,
		   atomic_int *cancel, struct err *err);
int fetch_upload(const char *url, const char *path, atomic_int *cancel,
		 struct err *err);

#endif
