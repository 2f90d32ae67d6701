/* fetch.c - job inputs and outputs: dispatch by URL scheme. */
#include "fetch/fetch.h"

#include "base/mem.h"
#include "fetch/priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int remote(const char *url)
{
	return fetch_has_scheme(url, "http://") ||
	       fetch_has_scheme(url, "https://") || fetch_has_scheme(url, "s3://") ||
	       fetch_has_scheme(url, "gs://");
}

static int unsupported(const char *url, struct err *err)
{
	return err_set(err, ERR_INVALID,
		       "unsupported url '%.200s' (want file://, http(s)://, s3:// or gs://)",
		       url ? url : "");
}

int fetch_input_open(const char *url, struct fetch_input *in,
		     atomic_int *cancel, struct err *err)
{
	char path[PATH_MAX];
	long long bytes = 0;

	if (fetch_has_scheme(url, "file://"))
		return fetch_file_input(url, in, err);
	if (!remote(url))
		return unsupported(url, err);
	if (fetch_tmpfile(url, path, err) < 0)
		return -1;
	if (fetch_download(url, path, &bytes, cancel, err) < 0) {
		unlink(path);
		return -1;
	}
	memcpy(in->path, path, strlen(path) + 1);
	in->temp = 1;
	in->bytes = bytes;
	in->fd = 0;
	return 0;
}

void fetch_input_release(struct fetch_input *in)
{
	if (!in)
		return;
	fetch_file_input_release(in);
	if (in->temp && in->path[0])
		unlink(in->path);
	in->temp = 0;
	in->path[0] = 0;
}

int fetch_output_prepare(const char *url, struct fetch_output *out,
			 struct err *err)
{
	char path[PATH_MAX];

	if (fetch_has_scheme(url, "file://")) {
		if (fetch_file_output(url, out, err) < 0)
			return -1;
	} else if (remote(url)) {
		if (fetch_tmpfile(url, path, err) < 0)
			return -1;
		memcpy(out->path, path, strlen(path) + 1);
		out->final[0] = 0;
		out->dirfd = out->fd = 0;
		out->part[0] = out->name[0] = 0;
	} else {
		return unsupported(url, err);
	}
	out->url = xstrdup(url);
	out->committed = 0;
	return 0;
}

int fetch_output_commit(struct fetch_output *out, atomic_int *cancel,
			struct err *err)
{
	if (!out->url || !out->path[0])
		return err_set(err, ERR_INTERNAL, "output not prepared");
	if (out->committed)
		return 0;
	if (out->dirfd > 0) {
		if (fetch_file_commit(out, err) < 0)
			return -1;
	} else {
		if (fetch_upload(out->url, out->path, cancel, err) < 0)
			return -1;
		unlink(out->path); /* uploaded: the local copy is ours */
	}
	out->committed = 1;
	return 0;
}

void fetch_output_release(struct fetch_output *out)
{
	if (!out)
		return;
	if (out->dirfd > 0 || out->fd > 0)
		fetch_file_output_release(out);
	else if (!out->committed && out->path[0])
		unlink(out->path);
	out->path[0] = 0;
	out->final[0] = 0;
	free(out->url);
	out->url = NULL;
}
