/* http.c - transfers over HTTP(S), S3 and Cloud Storage with libcurl.
 *
 * One easy handle per transfer (no shared state between jobs besides
 * curl's global init). Every socket is opened through open_socket(), which
 * checks the address curl is about to connect against the
 * ALLOW_PRIVATE_NETWORKS policy: DNS answers, redirects and rebinding all
 * end up there. Proxies from the environment are ignored, since a proxy
 * would hide the real destination from that check.
 */
#include "fetch/fetch.h"

#include "base/fd.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "fetch/priv.h"
#include "job/job.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct fetch_limits fetch_limits = {
	.connect_timeout_s = 10,
	.timeout_s = 3600,
	.stall_timeout_s = 60,
	.max_redirects = 5,
	.max_response_bytes = 1 << 20,
};

/* Bytes of an error answer kept for the message (an S3 error document
 * with its request ids fits). */
#define ERROR_BODY_MAX 4096

struct xfer {
	CURL *curl;
	struct fetch_allow allow;
	char refused[INET6_ADDRSTRLEN]; /* last address refused, "" = none */
	atomic_int *cancel;
	/* body sink: a file, or memory */
	FILE *file;
	int64_t cap;          /* file: refuse beyond (0 = none); memory: keep */
	int64_t bytes;        /* body bytes seen (file) */
	int toolarge;
	int ferr;             /* errno of a failed file write */
	struct buf *mem;
	int *truncated;
	struct buf errbody;   /* start of a non-2xx answer to a download */
	struct buf *headers;
	struct curl_slist *h;  /* request headers, sent by xfer_perform */
	char errbuf[CURL_ERROR_SIZE];
};

static curl_socket_t open_socket(void *opaque, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	struct xfer *x = opaque;
	const void *ip;

	(void)purpose;
	if (!fetch_addr_allowed(&x->allow, &a->addr, a->addrlen)) {
		ip = a->family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr :
			(const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;
		if (!inet_ntop(a->family, ip, x->refused, sizeof(x->refused)))
			snprintf(x->refused, sizeof(x->refused), "?");
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
		    curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = opaque;

	(void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
	return x->cancel && atomic_load(x->cancel) ? 1 : 0;
}

/* Keeps only the header lines of the last answer: redirects and "100
 * Continue" each start a new block with a status line. */
static size_t on_header(char *data, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n;

	if (!x->headers)
		return len;
	if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
		buf_reset(x->headers);
		return len;
	}
	if (x->headers->len < 64 * 1024)
		buf_add(x->headers, data, len);
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n, keep;
	long status = 0;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (!x->mem && (status < 200 || status > 299)) {
		/* an error answer to a download or upload: keep its start
		 * for the message, never write it into the input file */
		keep = ERROR_BODY_MAX - x->errbody.len;
		buf_add(&x->errbody, data, len < keep ? len : keep);
		return len;
	}
	if (x->file) {
		if (x->cap > 0 && x->bytes + (int64_t)len > x->cap) {
			x->toolarge = 1;
			return 0;
		}
		if (fwrite(data, 1, len, x->file) != len) {
			x->ferr = errno ? errno : EIO;
			return 0;
		}
		x->bytes += (int64_t)len;
		return len;
	}
	if (x->mem) {
		keep = len;
		if ((int64_t)(x->mem->len + keep) > x->cap) {
			keep = x->cap > (int64_t)x->mem->len ?
				(size_t)(x->cap - (int64_t)x->mem->len) : 0;
			*x->truncated = 1;
		}
		buf_add(x->mem, data, keep);
	}
	return len;
}

static long ms(double s)
{
	return s <= 0 ? 0 : s > 1e9 ? 1000000000L * 1000 : (long)(s * 1000 + 0.5);
}

/* Sets up `x` for `url`; the caller sets the method and body. `trusted`
 * URLs are the operator's own (credential providers), allowed to reach
 * any address; all others go through ALLOW_PRIVATE_NETWORKS. */
static int xfer_init(struct xfer *x, const char *url, double timeout_s,
		     int follow, int trusted, atomic_int *cancel,
		     struct err *err)
{
	memset(x, 0, sizeof(*x));
	buf_init(&x->errbody);
	x->cancel = cancel;
	if (fetch_allow_parse(job_settings.allow_private, &x->allow, err) < 0)
		return -1;
	x->allow.all |= trusted;
	if (fetch_curl_load(err) < 0)
		return -1;
	x->curl = curl_easy_init();
	if (!x->curl)
		return err_set(err, ERR_INTERNAL, "cannot start a transfer");
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "wakeq/1");
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(x->curl, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->curl, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
	curl_easy_setopt(x->curl, CURLOPT_MAXREDIRS, fetch_limits.max_redirects);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 ms(fetch_limits.connect_timeout_s));
	curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS,
			 ms(timeout_s > 0 ? timeout_s : fetch_limits.timeout_s));
	if (fetch_limits.stall_timeout_s >= 1) {
		/* below 1 byte/s for that many seconds: a stalled peer */
		curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_TIME,
				 (long)fetch_limits.stall_timeout_s);
	}
	return 0;
}

/* Sends the request with the headers gathered in x->h. */
static CURLcode xfer_perform(struct xfer *x)
{
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->h);
	return curl_easy_perform(x->curl);
}

static void xfer_release(struct xfer *x)
{
	curl_easy_cleanup(x->curl);
	x->curl = NULL;
	curl_slist_free_all(x->h);
	x->h = NULL;
	buf_release(&x->errbody);
}

int fetch_retryable(enum err_code code)
{
	return code == ERR_UNAVAILABLE || code == ERR_TIMEOUT;
}

/* Turns a failed curl_easy_perform() into err. */
static int curl_error(struct xfer *x, CURLcode rc, const char *what,
		      struct err *err)
{
	const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);

	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return err_set(err, ERR_CANCELLED, "%s: cancelled", what);
	if (x->refused[0] && rc == CURLE_COULDNT_CONNECT)
		return err_set(err, ERR_INVALID,
			       "%s: refused address %s (private, loopback or metadata; "
			       "see ALLOW_PRIVATE_NETWORKS)", what, x->refused);
	if (x->toolarge || rc == CURLE_FILESIZE_EXCEEDED)
		return err_set(err, ERR_TOOLARGE, "%s: larger than %lld bytes "
			       "(MAX_INPUT_BYTES)", what, (long long)x->cap);
	if (x->ferr)
		return err_set(err, ERR_IO, "%s: cannot write temp file: %s", what,
			       strerror(x->ferr));
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(err, ERR_TIMEOUT, "%s: timed out (%s)", what, detail);
	case CURLE_TOO_MANY_REDIRECTS:
		return err_set(err, ERR_INVALID, "%s: more than %ld redirects", what,
			       fetch_limits.max_redirects);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_LOGIN_DENIED:
		return err_set(err, ERR_INVALID, "%s: %s", what, detail);
	case CURLE_READ_ERROR:
		return err_set(err, ERR_IO, "%s: cannot read the file to upload", what);
	default:
		return err_set(err, ERR_UNAVAILABLE, "%s: %s", what, detail);
	}
}

char *fetch_url_escape(const char *s)
{
	struct buf b = BUF_INIT;

	/* not libcurl's: needs no library loaded, so cannot fail */
	fetch_path_escape(&b, s ? s : "", 0);
	return buf_detach(&b, NULL);
}

int fetch_status_error(long status, const char *what, struct err *err)
{
	enum err_code code;

	if (status >= 100 && status < 400)
		return 0;
	if (status >= 500 || status == 408 || status == 429)
		code = ERR_UNAVAILABLE;
	else if (status == 404 || status == 410)
		code = ERR_NOTFOUND;
	else if (status == 401 || status == 403)
		code = ERR_AUTH;
	else if (status == 413)
		code = ERR_TOOLARGE;
	else
		code = ERR_INVALID;
	return err_set(err, code, "%s: http status %ld", what, status);
}

/* ---- object stores: S3 and Cloud Storage ------------------------------ */

enum store_kind { STORE_NONE, STORE_S3, STORE_GS };

/* What an s3:// or gs:// URL turns into. */
struct store {
	enum store_kind kind;
	const char *src;    /* the s3:// or gs:// URL (borrowed) */
	const char *op;     /* "get", "put", or the method (static) */
	char *url;          /* the http(s) URL of the request */
	char sigv4[96];     /* S3 */
	struct fetch_aws_creds creds; /* S3 */
	char *auth_header;  /* S3: the session token; GS: the bearer token */
};

static const char *store_name(const struct store *s)
{
	return s->kind == STORE_GS ? "gs" : "s3";
}

static void store_release(struct store *s)
{
	free(s->url);
	free(s->auth_header);
	fetch_aws_creds_release(&s->creds);
	memset(s, 0, sizeof(*s));
}

/* The URL first, so a bad one fails before any credential lookup (which
 * may wait on a provider or the metadata server). `op` names the
 * request in messages; for gs:// "put" is an upload, anything else a
 * media download. */
static int store_resolve(const char *src, const char *op, struct store *s,
			 struct err *err)
{
	char region[64], *token;

	memset(s, 0, sizeof(*s));
	s->src = src;
	s->op = op;
	if (fetch_has_scheme(src, "gs://")) {
		s->kind = STORE_GS;
		if (fetch_gs_url(src, strcmp(op, "put") ? FETCH_GS_DOWNLOAD :
				 FETCH_GS_UPLOAD, &s->url, err) < 0 ||
		    !(token = fetch_gcp_access_token(NULL, err)))
			goto fail;
		s->auth_header = xasprintf("Authorization: Bearer %s", token);
		free(token);
		return 0;
	}
	s->kind = STORE_S3;
	if (fetch_s3_url(src, &s->url, err) < 0 ||
	    fetch_aws_creds_get(&s->creds, err) < 0)
		goto fail;
	fetch_s3_region(region);
	snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", region);
	if (s->creds.token)
		s->auth_header = xasprintf("x-amz-security-token: %s",
					   s->creds.token);
	return 0;
fail:
	err_wrap(err, "%s %s '%.200s' failed", store_name(s), op, src);
	store_release(s);
	return -1;
}

/* The error for a non-2xx answer: its status and the service's own code
 * and message from the body (S3's XML, Cloud Storage's JSON). S3 keys
 * the provider handed out that S3 calls expired are dropped from the
 * cache and the error is retryable. */
static int store_status_error(struct xfer *x, const struct store *s,
			      long status, struct err *err)
{
	char code[64], msg[256];
	struct err st;
	enum err_code ec = ERR_INVALID;
	int found;

	if (fetch_status_error(status, "", &st) < 0)
		ec = st.code;
	found = s->kind == STORE_GS ?
		fetch_gcs_error_parse(x->errbody.data, x->errbody.len, code, msg) :
		fetch_s3_error_parse(x->errbody.data, x->errbody.len, code, msg);
	if (!found)
		return err_set(err, ec, "%s %s '%.200s' failed: http status %ld",
			       store_name(s), s->op, s->src, status);
	if (s->kind == STORE_S3 &&
	    (!strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired"))) {
		fetch_aws_creds_forget();
		ec = ERR_UNAVAILABLE;
	}
	return err_set(err, ec, "%s %s '%.200s' failed: %ld %s%s%s", store_name(s),
		       s->op, s->src, status, code, code[0] && msg[0] ? ": " : "", msg);
}

/* Applies the store's URL and credentials to `x` (headers to x->h). For
 * S3: SigV4, keys and the payload hash header (libcurl 7.88 hashes only
 * in-memory bodies and adds no x-amz-content-sha256 itself, so the body is
 * handed over in memory and its hash set here). For Cloud Storage: the
 * bearer token. */
static void store_apply(struct xfer *x, struct store *s, const void *body, size_t len)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char hex[CRYPTO_SHA256_HEX_LEN], line[96];

	curl_easy_setopt(x->curl, CURLOPT_URL, s->url);
	/* the key as given: no "." / ".." folding (see fetch_s3_url) */
	curl_easy_setopt(x->curl, CURLOPT_PATH_AS_IS, 1L);
	if (s->auth_header)
		x->h = curl_slist_append(x->h, s->auth_header);
	if (s->kind == STORE_GS)
		return;
	crypto_sha256(body, body ? len : 0, md);
	crypto_hex(md, sizeof(md), hex);
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
	x->h = curl_slist_append(x->h, line);
	curl_easy_setopt(x->curl, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(x->curl, CURLOPT_USERNAME, s->creds.key_id);
	curl_easy_setopt(x->curl, CURLOPT_PASSWORD, s->creds.secret);
}

/* ---- whole-file transfers ------------------------------------------- */

/* The outcome of a whole-file transfer: libcurl's `rc`, then the HTTP
 * status (with the object store's error document for s3:// and gs://).
 * Redirects are never followed here. Returns 0, or -1 with err. */
static int transfer_result(struct xfer *x, const struct store *s, CURLcode rc,
			   const char *what, struct err *err)
{
	long status = 0;

	if (rc != CURLE_OK)
		return curl_error(x, rc, what, err);
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status <= 299)
		return 0;
	if (s->url)
		return store_status_error(x, s, status, err);
	if (status >= 300 && status < 400)
		return err_set(err, ERR_INVALID, "%s: http status %ld (redirect not followed)",
			       what, status);
	if (fetch_status_error(status, what, err) < 0)
		return -1;
	return err_set(err, ERR_INVALID, "%s: http status %ld", what, status);
}

static void quote_url(const char *url, char out[256])
{
	/* presigned URLs carry credentials in the query: never show it */
	size_t n = strcspn(url, "?#");

	snprintf(out, 256, "'%.*s%s'", (int)(n > 200 ? 200 : n), url,
		 url[n] ? "?..." : "");
}

/* Where a whole-file transfer goes: a store URL (s3://, gs://) is
 * resolved into *s for `op` ("get" or "put"); any other URL must pass
 * fetch_url_check. `what` gets the prefix of the transfer's messages:
 * "<store> <op> 'url' failed" for a store, else `verb` and the quoted
 * URL. Returns 0, or -1 with *s left empty. */
static int transfer_target(const char *url, const char *op, const char *verb,
			   struct store *s, char what[300], struct err *err)
{
	char q[256];

	quote_url(url, q);
	if (!fetch_is_store(url)) {
		snprintf(what, 300, "%s %s", verb, q);
		return fetch_url_check(url, err);
	}
	if (store_resolve(url, op, s, err) < 0)
		return -1;
	snprintf(what, 300, "%s %s %s failed", store_name(s), op, q);
	return 0;
}

int fetch_download(const char *url, const char *path, long long *bytes,
		   atomic_int *cancel, struct err *err)
{
	struct xfer x;
	struct store s = { 0 };
	char what[300];
	CURLcode rc;
	int ret = -1;

	if (transfer_target(url, "get", "cannot download", &s, what, err) < 0)
		return -1;
	if (xfer_init(&x, url, 0, 1, 0, cancel, err) < 0)
		goto out;
	x.file = fopen(path, "wb");
	if (!x.file) {
		err_set(err, ERR_IO, "cannot open temp file '%s': %s", path,
			strerror(errno));
		goto out;
	}
	x.cap = job_settings.max_input_bytes > 0 ? job_settings.max_input_bytes : 0;
	if (x.cap)
		curl_easy_setopt(x.curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x.cap);
	if (s.url)
		store_apply(&x, &s, NULL, 0);
	rc = xfer_perform(&x);
	if (fclose(x.file) != 0 && rc == CURLE_OK) {
		x.file = NULL;
		err_set(err, ERR_IO, "cannot write temp file '%s': %s", path,
			strerror(errno));
		goto out;
	}
	x.file = NULL;
	if (transfer_result(&x, &s, rc, what, err) < 0)
		goto out;
	*bytes = x.bytes;
	ret = 0;
out:
	if (x.file)
		fclose(x.file);
	xfer_release(&x);
	store_release(&s);
	return ret;
}

static const char *content_type(const char *path)
{
	static const char *const types[][2] = {
		{ ".mp4", "video/mp4" }, { ".m4a", "audio/mp4" },
		{ ".webm", "video/webm" }, { ".mkv", "video/x-matroska" },
		{ ".mov", "video/quicktime" }, { ".mp3", "audio/mpeg" },
		{ ".ogg", "audio/ogg" }, { ".jpg", "image/jpeg" },
		{ ".jpeg", "image/jpeg" }, { ".png", "image/png" },
		{ ".webp", "image/webp" }, { ".json", "application/json" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcasecmp(dot, types[i][0]))
			return types[i][1];
	return "application/octet-stream";
}

int fetch_upload(const char *url, const char *path, atomic_int *cancel,
		 struct err *err)
{
	struct xfer x;
	struct store s = { 0 };
	struct stat st;
	char what[300], ct[96];
	void *map = MAP_FAILED;
	FILE *f = NULL;
	CURLcode rc;
	int ret = -1, fd = -1;

	memset(&x, 0, sizeof(x));
	if (transfer_target(url, "put", "cannot upload to", &s, what, err) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, ERR_IO, "cannot read output file '%s': %s", path,
			strerror(errno));
		goto out;
	}
	/* Redirects are not followed: a PUT body cannot be replayed safely
	 * and presigned URLs do not redirect. */
	if (xfer_init(&x, url, 0, 0, 0, cancel, err) < 0)
		goto out;
	x.mem = NULL;
	snprintf(ct, sizeof(ct), "Content-Type: %s", content_type(path));
	if (s.kind == STORE_S3) {
		/* in memory, so libcurl can hash it for SigV4 (see store_apply) */
		if (st.st_size > 0) {
			map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (map == MAP_FAILED) {
				err_set(err, ERR_IO, "cannot map output file '%s': %s", path,
					strerror(errno));
				goto out;
			}
		}
		store_apply(&x, &s, map == MAP_FAILED ? NULL : map, (size_t)st.st_size);
		x.h = curl_slist_append(x.h, ct);
		curl_easy_setopt(x.curl, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDS,
				 map == MAP_FAILED ? "" : (const char *)map);
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)st.st_size);
	} else {
		f = fdopen(fd, "rb");
		if (!f) {
			err_set(err, ERR_IO, "cannot read output file '%s': %s", path,
				strerror(errno));
			goto out;
		}
		fd = -1;
		curl_easy_setopt(x.curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x.curl, CURLOPT_READDATA, f);
		curl_easy_setopt(x.curl, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)st.st_size);
		if (s.kind == STORE_GS) {
			/* a media upload, streamed from the file: the JSON API
			 * takes the object's bytes as a POST body */
			store_apply(&x, &s, NULL, 0);
			x.h = curl_slist_append(x.h, ct);
			curl_easy_setopt(x.curl, CURLOPT_CUSTOMREQUEST, "POST");
		}
	}
	rc = xfer_perform(&x);
	ret = transfer_result(&x, &s, rc, what, err);
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	if (f)
		fclose(f);
	fd_close(&fd);
	xfer_release(&x);
	store_release(&s);
	return ret;
}

/* ---- generic requests ----------------------------------------------- */

static int request(const struct fetch_request *req, int trusted,
		   struct fetch_response *resp, struct err *err)
{
	struct xfer x;
	struct store s = { 0 };
	const char *const *line;
	const char *method = req->method ? req->method : "GET";
	char what[300], q[256];
	curl_off_t ra = -1;
	CURLcode rc;
	int ret = -1;

	quote_url(req->url ? req->url : "", q);
	snprintf(what, sizeof(what), "%s %s", method, q);
	memset(&x, 0, sizeof(x));
	if (!trusted && fetch_has_scheme(req->url, "s3://")) {
		if (store_resolve(req->url, method, &s, err) < 0)
			return -1;
	} else if (fetch_url_check(req->url, err) < 0) {
		return -1;
	}
	if (xfer_init(&x, req->url, req->timeout_s, !req->no_follow, trusted,
		      req->cancel, err) < 0)
		goto out;
	if (req->allow_private &&
	    fetch_allow_parse(req->allow_private, &x.allow, err) < 0)
		goto out;
	buf_reset(&resp->headers);
	buf_reset(&resp->body);
	resp->truncated = 0;
	resp->status = 0;
	resp->retry_after_s = 0;
	x.headers = &resp->headers;
	x.mem = &resp->body;
	x.truncated = &resp->truncated;
	x.cap = req->max_response_bytes > 0 ? req->max_response_bytes
					    : fetch_limits.max_response_bytes;
	for (line = req->headers; line && *line; line++)
		x.h = curl_slist_append(x.h, *line);
	if (s.url)
		store_apply(&x, &s, req->body, req->body ? req->body_len : 0);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(x.curl, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") || req->body)
		curl_easy_setopt(x.curl, CURLOPT_CUSTOMREQUEST, method);
	if (req->body) {
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		/* a POST redirected by 301/302/303 stays what curl makes of it;
		 * keep the method on 307/308 as the standard says */
	}
	rc = xfer_perform(&x);
	if (rc != CURLE_OK) {
		curl_error(&x, rc, what, err);
		goto out;
	}
	curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (curl_easy_getinfo(x.curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		resp->retry_after_s = (double)ra;
	ret = 0;
out:
	xfer_release(&x);
	store_release(&s);
	return ret;
}

int fetch_http(const struct fetch_request *req, struct fetch_response *resp,
	       struct err *err)
{
	return request(req, 0, resp, err);
}

int fetch_http_trusted(const struct fetch_request *req,
		       struct fetch_response *resp, struct err *err)
{
	return request(req, 1, resp, err);
}

void fetch_response_release(struct fetch_response *resp)
{
	if (!resp)
		return;
	buf_release(&resp->headers);
	buf_release(&resp->body);
}
