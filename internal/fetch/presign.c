/* presign.c - presigned URLs for direct-to-bucket transfers: AWS SigV4
 * query-string signing for s3:// and Cloud Storage V4 signed URLs with
 * an HMAC key (GOOG4-HMAC-SHA256) for gs://. Both are one algorithm with
 * different names (the "family" below): a canonical request of method,
 * path, the sorted signing parameters, the signed headers and
 * UNSIGNED-PAYLOAD; a string to sign over its hash; a key derived by
 * HMAC-SHA256 from the secret through date, region, service and the
 * terminator. The signature never needs the body, so a client can PUT
 * any size straight to the bucket.
 *
 * Keys: s3:// uses aws.c's chain (temporary keys add the session token
 * as X-Amz-Security-Token, and the URL then lives no longer than the
 * keys); gs:// uses GCS_HMAC_ACCESS_ID / GCS_HMAC_SECRET, an HMAC key of
 * a service account. Keys never go into messages. */
#include "fetch/priv.h"

#include "base/mem.h"
#include "crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct family {
	const char *algorithm;  /* "AWS4-HMAC-SHA256" */
	const char *param;      /* query parameter prefix, "X-Amz-" */
	const char *key_prefix; /* before the secret in the first HMAC */
	const char *service;
	const char *terminator;
};

static const struct family aws = { "AWS4-HMAC-SHA256", "X-Amz-", "AWS4", "s3",
				   "aws4_request" };
static const struct family goog = { "GOOG4-HMAC-SHA256", "X-Goog-", "GOOG4",
				    "storage", "goog4_request" };

static void hmac(const void *key, size_t klen, const char *msg,
		 unsigned char out[CRYPTO_SHA256_LEN])
{
	crypto_hmac_sha256(key, klen, msg, strlen(msg), out);
}

/* Signs `method` on `url` (http(s), path already percent-encoded as the
 * server sees it). Appends the query to a new URL in *signed_url. */
static void sign(const struct family *f, const char *method, const char *url,
		 const char *content_type, const char *key_id,
		 const char *secret, const char *token, const char *region,
		 int64_t now, int64_t expires_s, char **signed_url)
{
	const char *hp = strstr(url, "://") + 3, *path = strchr(hp, '/');
	unsigned char k[CRYPTO_SHA256_LEN], md[CRYPTO_SHA256_LEN];
	char date[16], stamp[20], hex[CRYPTO_SHA256_HEX_LEN], *kbuf, *scope;
	struct buf host = BUF_INIT, q = BUF_INIT, cr = BUF_INIT, sts = BUF_INIT;
	struct buf out = BUF_INIT;
	time_t t = (time_t)now;
	struct tm tm;
	size_t i;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* the Host header as clients send it: lowercase, port kept */
	for (i = 0; hp + i < (path ? path : hp + strlen(hp)); i++)
		buf_addc(&host, (char)(hp[i] >= 'A' && hp[i] <= 'Z' ? hp[i] + 32 : hp[i]));
	scope = xasprintf("%s/%s/%s/%s", date, region, f->service, f->terminator);
	/* the parameters in byte order of their names */
	buf_printf(&q, "%sAlgorithm=%s&%sCredential=", f->param, f->algorithm, f->param);
	fetch_path_escape(&q, key_id, 0);
	buf_adds(&q, "%2F");
	fetch_path_escape(&q, scope, 0);
	buf_printf(&q, "&%sDate=%s&%sExpires=%lld", f->param, stamp, f->param,
		   (long long)expires_s);
	if (token) {
		buf_printf(&q, "&%sSecurity-Token=", f->param);
		fetch_path_escape(&q, token, 0);
	}
	buf_printf(&q, "&%sSignedHeaders=%s", f->param,
		   content_type ? "content-type%3Bhost" : "host");
	buf_printf(&cr, "%s\n%s\n%s\n", method, path ? path : "/", q.data);
	if (content_type)
		buf_printf(&cr, "content-type:%s\n", content_type);
	buf_printf(&cr, "host:%s\n\n%s\nUNSIGNED-PAYLOAD",
		   host.data ? host.data : "", content_type ? "content-type;host" : "host");
	crypto_sha256(cr.data, cr.len, md);
	crypto_hex(md, sizeof(md), hex);
	buf_printf(&sts, "%s\n%s\n%s\n%s", f->algorithm, stamp, scope, hex);
	kbuf = xasprintf("%s%s", f->key_prefix, secret);
	hmac(kbuf, strlen(kbuf), date, k);
	hmac(k, sizeof(k), region, k);
	hmac(k, sizeof(k), f->service, k);
	hmac(k, sizeof(k), f->terminator, k);
	hmac(k, sizeof(k), sts.data, md);
	crypto_hex(md, sizeof(md), hex);
	buf_printf(&out, "%s?%s&%sSignature=%s", url, q.data, f->param, hex);
	*signed_url = buf_detach(&out, NULL);
	/* the derived key and the secret's copy do not outlive the call */
	memset(k, 0, sizeof(k));
	memset(kbuf, 0, strlen(kbuf));
	free(kbuf);
	free(scope);
	buf_release(&host);
	buf_release(&q);
	buf_release(&cr);
	buf_release(&sts);
}

int fetch_content_type_ok(const char *s)
{
	const char *slash = strchr(s, '/');

	if (!slash || slash == s || !slash[1] || strlen(s) > 200)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* 1 when the key of "s3://bucket/key" or "gs://bucket/key" has a "." or
 * ".." segment: clients fold those out of the path before they send it
 * (RFC 3986 5.2.4), so the request no longer matches the signature. */
static int dot_segment(const char *url)
{
	const char *p = strchr(url + 5, '/'), *end;
	size_t n;

	while (p) {
		p++;
		end = strchr(p, '/');
		n = end ? (size_t)(end - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p = end;
	}
	return 0;
}

int fetch_presign(const struct fetch_presign_req *r,
		  struct fetch_presigned *out, struct err *err)
{
	const char *method = r->method ? r->method : "PUT";
	const char *ct = r->content_type && *r->content_type ? r->content_type : NULL;
	int64_t now = r->now > 0 ? r->now : (int64_t)time(NULL);
	struct fetch_aws_creds c = { 0 };
	char region[64], *url = NULL;
	int rc = -1;

	if (r->expires_s < 1 || r->expires_s > FETCH_PRESIGN_MAX_S)
		return err_set(err, ERR_INVALID, "bad expiry %lld s (want 1..%d)",
			       (long long)r->expires_s, FETCH_PRESIGN_MAX_S);
	if (strcmp(method, "PUT") && strcmp(method, "GET"))
		return err_set(err, ERR_INVALID, "cannot presign method '%.16s' "
			       "(want PUT or GET)", method);
	if (ct && !fetch_content_type_ok(ct))
		return err_set(err, ERR_INVALID, "bad content type '%.60s' (want type/subtype)", ct);
	if (fetch_is_store(r->url) && dot_segment(r->url))
		return err_set(err, ERR_INVALID, "bad object key '%.200s': a '.' or '..' "
			       "segment (clients fold it, and the signature no longer "
			       "matches)", r->url);
	if (fetch_has_scheme(r->url, "s3://")) {
		if (fetch_s3_url(r->url, &url, err) < 0 ||
		    fetch_aws_creds_get(&c, err) < 0) {
			err_wrap(err, "cannot presign '%.200s'", r->url);
			goto out;
		}
		fetch_s3_region(region);
		sign(&aws, method, url, ct, c.key_id, c.secret, c.token, region, now,
		     r->expires_s, &out->url);
		/* temporary keys: the URL is worth nothing after they expire */
		out->expires_at = now + r->expires_s;
		if (c.expires && c.expires < out->expires_at)
			out->expires_at = c.expires;
	} else if (fetch_has_scheme(r->url, "gs://")) {
		const char *id = fetch_env("GCS_HMAC_ACCESS_ID");
		const char *secret = fetch_env("GCS_HMAC_SECRET");

		if (fetch_gs_url(r->url, FETCH_GS_XML, &url, err) < 0) {
			err_wrap(err, "cannot presign '%.200s'", r->url);
			goto out;
		}
		if (!id || !secret) {
			err_set(err, ERR_INVALID, "cannot presign '%.200s': set "
				"GCS_HMAC_ACCESS_ID and GCS_HMAC_SECRET (an HMAC key "
				"of a service account)", r->url);
			goto out;
		}
		sign(&goog, method, url, ct, id, secret, NULL, "auto", now,
		     r->expires_s, &out->url);
		out->expires_at = now + r->expires_s;
	} else {
		err_set(err, ERR_INVALID, "cannot presign '%.200s' (want s3:// or gs://)",
			r->url ? r->url : "");
		goto out;
	}
	out->method = strcmp(method, "PUT") ? "GET" : "PUT";
	out->content_type = ct ? xstrdup(ct) : NULL;
	rc = 0;
out:
	free(url);
	fetch_aws_creds_release(&c);
	return rc;
}

void fetch_presigned_release(struct fetch_presigned *p)
{
	if (!p)
		return;
	free(p->url);
	free(p->content_type);
	p->url = p->content_type = NULL;
}
