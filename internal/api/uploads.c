/* uploads.c - POST /v1/uploads: a file streamed into DATA_DIR/uploads
 * through an httpd sink (never whole in memory), hashed with SHA-256 on
 * the way, stored under a UUIDv7 name and answered as the file:// URL a
 * job payload uses as its input (fetch resolves it inside DATA_DIR).
 *
 * The body goes to ".NAME.part" beside its final name (O_EXCL, 0640) and
 * is renamed into place only when it arrived whole and was synced; the
 * sink's release removes the temp file in every other case (over the
 * cap, client gone, disk error, server stopping).
 *
 * With UPLOAD_TARGET (an s3:// or gs:// prefix), POST
 * /v1/uploads?presign=1 carries no body: it answers a presigned PUT URL
 * for a new object under the prefix, so the file goes straight to the
 * bucket, past Cloud Run's 32 MiB request cap, and never through this
 * process; the object's s3:// or gs:// URL is the job's input. */
#include "api/priv.h"

#include "base/mem.h"
#include "base/uuid.h"
#include "base/clock.h"
#include "base/fd.h"
#include "crypto/crypto.h"
#include "fetch/fetch.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPLOAD_DIR_DEFAULT "/tmp/wakeq"
#define UPLOAD_MAX_DEFAULT ((uint64_t)2 << 30)
#define UPLOAD_EXT_MAX 10 /* characters of a kept extension */
#define UPLOAD_URL_TTL_DEFAULT 900
#define UPLOAD_TARGET_MAX 512

struct upload {
	int fd;                       /* -1 once closed */
	int kept;                     /* renamed into place: not removed */
	int write_errno;              /* errno of a failed write */
	struct crypto_sha256 *md;     /* of the bytes received so far */
	char name[UUID_STR_LEN + 1 + UPLOAD_EXT_MAX]; /* final file name */
	char tmp[PATH_MAX];           /* temp path, beside the final one */
	char final[PATH_MAX];
};

static uint64_t max_upload(const struct api *a)
{
	return a->cfg.max_upload ? a->cfg.max_upload : UPLOAD_MAX_DEFAULT;
}

/* The extension of ?name=clip.MP4 ("mp4"), if it is 1..UPLOAD_EXT_MAX
 * letters and digits; "" otherwise (nothing else of the name is used). */
static void safe_ext(const char *name, char out[UPLOAD_EXT_MAX + 1])
{
	const char *dot = name ? strrchr(name, '.') : NULL;
	size_t i, n;

	out[0] = '\0';
	if (!dot)
		return;
	n = strlen(dot + 1);
	if (n == 0 || n > UPLOAD_EXT_MAX)
		return;
	for (i = 0; i < n; i++) {
		char c = dot[1 + i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return;
	}
	for (i = 0; i < n; i++) {
		char c = dot[1 + i];

		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
}

static int mkdir_ok(const char *path)
{
	return mkdir(path, 0750) == 0 || errno == EEXIST;
}

/* Removes the temp file of a refused upload now, before the answer (a
 * client that reads the answer then the folder finds nothing left). */
static void upload_discard(struct upload *u)
{
	if (!u || u->kept || !u->tmp[0])
		return;
	fd_close(&u->fd);
	unlink(u->tmp);
	u->tmp[0] = '\0';
}

static void upload_free(struct upload *u)
{
	if (!u)
		return;
	upload_discard(u);
	fd_close(&u->fd); /* a kept upload's file */
	crypto_sha256_free(u->md);
	free(u);
}

/* Creates the temp file of a new upload. Returns it, or NULL with err
 * (ERR_UNAVAILABLE: DATA_DIR cannot be written). */
static struct upload *upload_open(struct api *a, const char *name_arg,
				  struct err *err)
{
	const char *root = a->cfg.data_dir && *a->cfg.data_dir ? a->cfg.data_dir
							       : UPLOAD_DIR_DEFAULT;
	struct upload *u = xcalloc(1, sizeof(*u));
	char dir[PATH_MAX], ext[UPLOAD_EXT_MAX + 1], id[UUID_STR_LEN];
	int n;

	u->fd = -1;
	n = snprintf(dir, sizeof(dir), "%s/uploads", root);
	if (n < 0 || (size_t)n >= sizeof(dir) - sizeof(u->name) - 8) {
		err_set(err, ERR_UNAVAILABLE, "DATA_DIR '%s' is too long", root);
		goto fail;
	}
	if (!mkdir_ok(root) || !mkdir_ok(dir)) {
		err_set(err, ERR_UNAVAILABLE, "cannot create '%s': %s", dir, strerror(errno));
		goto fail;
	}
	safe_ext(name_arg, ext);
	uuid7_new(id);
	snprintf(u->name, sizeof(u->name), "%s%s%s", id, ext[0] ? "." : "", ext);
	snprintf(u->final, sizeof(u->final), "%s/%s", dir, u->name);
	snprintf(u->tmp, sizeof(u->tmp), "%s/.%s.part", dir, u->name);
	u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (u->fd < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot write in '%s': %s", dir, strerror(errno));
		u->tmp[0] = '\0'; /* not ours: never unlinked */
		goto fail;
	}
	u->md = crypto_sha256_new();
	return u;
fail:
	upload_free(u);
	return NULL;
}

static int upload_write(void *ctx, const char *data, size_t len)
{
	struct upload *u = ctx;
	size_t off = 0;

	crypto_sha256_update(u->md, data, len);
	while (off < len) {
		ssize_t w = write(u->fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			u->write_errno = w < 0 ? errno : EIO;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

static void upload_release(void *ctx)
{
	upload_free(ctx);
}

int api_upload_sink(struct httpd_request *req, void *ctx, struct httpd_sink *sink)
{
	struct api *a = ctx;
	const char *ct;
	struct upload *u;
	struct err e;

	if (strcmp(httpd_path(req), "/v1/uploads") || strcmp(httpd_method(req), "POST"))
		return 0;
	/* a presign request has no body: the route answers it */
	if (httpd_query(req, "presign"))
		return 0;
	/* Refused requests are answered before any byte of the body is read
	 * and leave nothing on disk. */
	if (a->tokens && !httpd_bearer_ok(req, (const char *const *)a->tokens)) {
		api_reply_error(a, req, 401, "unauthorized",
			 httpd_header(req, "Authorization") ? "bad bearer token"
							    : "missing bearer token");
		return 0;
	}
	/* Any type is stored as sent, except a form envelope (curl -F): the
	 * file would be wrapped in MIME parts no decoder expects. */
	ct = httpd_header(req, "Content-Type");
	if (ct && !strncasecmp(ct, "multipart/", 10)) {
		api_reply_error(a, req, 415, "unsupported_media_type",
			 "send the file itself as the body (e.g. application/octet-stream), not '%.60s'",
			 ct);
		return 0;
	}
	u = upload_open(a, httpd_query(req, "name"), &e);
	if (!u) {
		log_error("cannot store upload", "error", e.msg);
		api_reply_error(a, req, 503, "unavailable", "uploads cannot be stored: %s", e.msg);
		return 0;
	}
	memset(sink, 0, sizeof(*sink));
	sink->write = upload_write;
	sink->release = upload_release;
	sink->ctx = u;
	sink->max = max_upload(a);
	return 1;
}

static void write_failed(struct api *a, struct httpd_request *req, int no,
			 const char *what)
{
	if (no == ENOSPC || no == EDQUOT) {
		api_reply_error(a, req, 507, "insufficient_storage", "cannot %s upload: %s", what,
			 strerror(no));
		return;
	}
	log_error("cannot store upload", "error", strerror(no));
	api_reply_error(a, req, 500, "internal", "cannot %s upload: %s", what, strerror(no));
}


/* ---- presigned uploads -------------------------------------------------- */

static int target_ok(const char *t, struct err *err)
{
	char probe[UPLOAD_TARGET_MAX + 64], *url = NULL;
	int rc;

	if (strlen(t) > UPLOAD_TARGET_MAX)
		return err_set(err, ERR_INVALID, "bad UPLOAD_TARGET: over %d bytes",
			       UPLOAD_TARGET_MAX);
	/* the URL of an object under it must be one fetch can reach */
	snprintf(probe, sizeof(probe), "%s%s00000000-0000-7000-8000-000000000000.mp4", t,
		 t[strlen(t) - 1] == '/' ? "" : "/");
	if (!strncmp(t, "s3://", 5))
		rc = fetch_s3_url(probe, &url, err);
	else if (!strncmp(t, "gs://", 5))
		rc = fetch_gs_url(probe, FETCH_GS_XML, &url, err);
	else
		return err_set(err, ERR_INVALID, "bad UPLOAD_TARGET '%.200s' (want "
			       "s3://bucket/prefix/ or gs://bucket/prefix/)", t);
	free(url);
	return rc < 0 ? err_wrap(err, "bad UPLOAD_TARGET") : 0;
}

int api_upload_check(const struct api_config *cfg, struct err *err)
{
	/* 0 = the default; a fraction of a second would be signed as 0 s */
	if (cfg->upload_url_ttl_s != 0 &&
	    !(cfg->upload_url_ttl_s >= 1 && cfg->upload_url_ttl_s <= FETCH_PRESIGN_MAX_S))
		return err_set(err, ERR_INVALID, "bad UPLOAD_URL_TTL %g (want 1..%d s)",
			       cfg->upload_url_ttl_s, FETCH_PRESIGN_MAX_S);
	if (cfg->upload_target && *cfg->upload_target)
		return target_ok(cfg->upload_target, err);
	return 0;
}

static void upload_presign(struct api *a, struct httpd_request *req)
{
	const char *t = a->cfg.upload_target, *ct = httpd_query(req, "content_type");
	double ttl = a->cfg.upload_url_ttl_s > 0 ? a->cfg.upload_url_ttl_s
						 : UPLOAD_URL_TTL_DEFAULT;
	struct fetch_presign_req r;
	struct fetch_presigned p;
	char ext[UPLOAD_EXT_MAX + 1], id[UUID_STR_LEN], when[CLOCK_RFC3339_LEN];
	char *object;
	json_t *headers;
	size_t len;
	struct err e;

	if (!t || !*t) {
		api_reply_error(a, req, 400, "not_configured", "presigned uploads need "
				"UPLOAD_TARGET (an s3:// or gs:// prefix) on the API");
		return;
	}
	if (httpd_body(req, &len) && len) {
		api_reply_error(a, req, 400, "unexpected_body", "a presign request has no "
				"body: PUT the file to the upload_url it answers");
		return;
	}
	if (ct && !fetch_content_type_ok(ct)) {
		api_reply_error(a, req, 400, "bad_content_type", "bad content_type '%.60s' "
				"(want type/subtype)", ct);
		return;
	}
	safe_ext(httpd_query(req, "name"), ext);
	uuid7_new(id);
	object = xasprintf("%s%s%s%s%s", t, t[strlen(t) - 1] == '/' ? "" : "/", id,
			   ext[0] ? "." : "", ext);
	memset(&r, 0, sizeof(r));
	memset(&p, 0, sizeof(p));
	r.url = object;
	r.method = "PUT";
	r.content_type = ct;
	r.expires_s = (int64_t)ttl;
	if (fetch_presign(&r, &p, &e) < 0) {
		log_error("cannot presign upload", "error", e.msg);
		api_reply_error(a, req, fetch_retryable(e.code) ? 503 : 500,
				fetch_retryable(e.code) ? "unavailable" : "internal",
				"cannot presign the upload: %s", e.msg);
		goto out;
	}
	headers = json_object();
	if (p.content_type)
		json_object_set_new(headers, "Content-Type", json_string(p.content_type));
	clock_rfc3339(p.expires_at * 1000000, when);
	log_info("upload presigned", "url", object, "peer", httpd_peer(req));
	api_count_status(a, 201);
	httpd_respond_json(req, 201, json_pack("{s:s,s:s,s:s,s:o,s:s,s:I}", "url", object,
					       "upload_url", p.url, "method", p.method,
					       "headers", headers, "expires_at", when,
					       "expires_in",
					       (json_int_t)(p.expires_at - time(NULL))));
	fetch_presigned_release(&p);
out:
	free(object);
}

void api_upload_post(struct api *a, struct httpd_request *req)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char hex[CRYPTO_SHA256_HEX_LEN], url[sizeof(((struct upload *)0)->name) + 16];
	char nbytes[24];
	struct upload *u;
	uint64_t bytes;
	void *ctx;

	switch (httpd_sink_result(req, &bytes, &ctx)) {
	case HTTPD_SINK_NONE:
		if (!strcmp(httpd_method(req), "POST") && httpd_query(req, "presign")) {
			upload_presign(a, req);
		} else if (strcmp(httpd_method(req), "POST")) {
			httpd_add_header(req, "Allow", "POST");
			api_reply_error(a, req, 405, "method_not_allowed",
				 "method %s not allowed here (allowed: POST)", httpd_method(req));
		} else {
			api_reply_error(a, req, 500, "internal", "upload not streamed");
		}
		return;
	case HTTPD_SINK_TOO_LARGE:
		upload_discard(ctx);
		api_reply_error(a, req, 413, "too_large", "upload over %llu bytes (MAX_UPLOAD)",
			 (unsigned long long)max_upload(a));
		return;
	case HTTPD_SINK_FAILED:
		u = ctx;
		upload_discard(u);
		write_failed(a, req, u->write_errno, "write");
		return;
	case HTTPD_SINK_OK:
		break;
	}
	u = ctx;
	if (bytes == 0) {
		upload_discard(u);
		api_reply_error(a, req, 400, "empty_body", "the upload is empty");
		return;
	}
	/* Synced before the rename: a name that exists has its whole content. */
	if (fsync(u->fd) < 0 || close(u->fd) < 0) {
		int no = errno;

		u->fd = -1;
		upload_discard(u);
		write_failed(a, req, no, "sync");
		return;
	}
	u->fd = -1;
	if (rename(u->tmp, u->final) < 0) {
		int no = errno;

		upload_discard(u);
		write_failed(a, req, no, "store");
		return;
	}
	u->kept = 1;
	crypto_sha256_final(u->md, md);
	crypto_hex(md, sizeof(md), hex);
	snprintf(url, sizeof(url), "file://uploads/%s", u->name);
	snprintf(nbytes, sizeof(nbytes), "%llu", (unsigned long long)bytes);
	log_info("upload stored", "url", url, "bytes", nbytes, "peer", httpd_peer(req));
	api_count_status(a, 201);
	httpd_respond_json(req, 201, json_pack("{s:s,s:I,s:s}", "url", url, "bytes",
					       (json_int_t)bytes, "sha256", hex));
}
