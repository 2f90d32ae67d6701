/* testserver.h - a real HTTP server on 127.0.0.1 (libmicrohttpd, a thread
 * per connection) for the fetch and webhook unit tests. Header-only, each
 * test program includes it once.
 *
 * Routes:
 *   GET /file/N          N bytes of a known pattern (Content-Length)
 *   GET /chunked/N       the same, chunked (no length up front)
 *   ANY /status/C        answers status C; 429 and 503 add Retry-After: 7
 *   GET /redirect/N      302 to /redirect/N-1; /redirect/0 answers 200
 *   GET /slow            answers after 2 s
 *   PUT /put/...         stores the body (201); GET /put/... returns it
 *   ANY /echo            "METHOD|content-type|x-test|BODY", two Set-Cookie
 *   POST /hook           records body + headers, answers ts.hook_status
 *   ANY /s3/BUCKET/KEY   a fake S3: checks AWS SigV4 (key ts.s3_key,
 *                        default "testkey"; secret ts.s3_secret; payload
 *                        hash; x-amz-security-token == ts.s3_token when
 *                        set) then PUT stores / GET returns the object
 *                        under its literal (still percent-encoded) key.
 *                        Errors are S3's XML documents: 403
 *                        SignatureDoesNotMatch / InvalidAccessKeyId /
 *                        InvalidToken, 400 ExpiredToken (token ==
 *                        ts.s3_expired_token), 404 NoSuchKey. A request
 *                        with X-Amz-Signature in its query is checked
 *                        as a presigned URL instead (query form,
 *                        UNSIGNED-PAYLOAD, X-Amz-Expires against
 *                        X-Amz-Date: 403 AccessDenied once expired).
 *   PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/
 *   [ROLE]               a fake EC2 instance metadata service, IMDSv2
 *                        only (a GET without the session token gets 401)
 *   GET /ecs/..., /v2/credentials/...
 *                        a fake container credentials provider
 *                        (Authorization must equal ts.container_auth)
 *   Both answer the credentials ts.creds_* in AWS's JSON shapes (or
 *   ts.creds_body verbatim).
 *
 * URLs reach the handlers as sent: percent escapes are not decoded.
 */
#ifndef WAKEQ_TESTSERVER_H
#define WAKEQ_TESTSERVER_H

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "job/job.h"

static struct {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	int hook_status;
	const char *s3_secret;
	int s3_verified;        /* requests whose SigV4 checked out */
	const char *s3_key;     /* access key id the fake S3 accepts */
	const char *s3_token;   /* session token it wants, NULL = none */
	const char *s3_expired_token; /* a token it calls expired */
	char s3_region[64];     /* region of the last signed request */
	char s3_last_key[512];  /* BUCKET/KEY of the last S3 request, raw */
	struct {
		char key[512];
		struct buf data;
	} s3objs[16];
	int s3nobj;
	struct buf put;         /* last PUT /put body */
	struct buf s3obj;       /* the last object PUT to the fake bucket */
	/* credential providers */
	const char *creds_key, *creds_secret, *creds_token, *creds_expiration;
	const char *creds_body; /* answered verbatim when set */
	int creds_gets;         /* credential documents served */
	const char *imds_token; /* the IMDSv2 session token handed out */
	const char *imds_role;  /* NULL = no instance role (404) */
	int imds_token_status;  /* answer to the token PUT (0 = 200) */
	int imds_token_puts;
	int imds_delay_ms;      /* the token PUT answers this late */
	const char *container_auth; /* Authorization wanted, NULL = none */
	char last_method[16];
	char last_url[512];
	char last_sig[256];
	char last_delivery[200];
	char last_ctype[128];
	char last_std_id[200];  /* Standard Webhooks headers of the last hook */
	char last_std_ts[32];
	char last_std_sig[256];
	struct buf last_body;
	int requests;
} ts;

struct ts_conn {
	struct buf body;
};

static char ts_pattern(size_t i)
{
	return (char)('a' + i % 26);
}

static ssize_t ts_chunk(void *cls, uint64_t pos, char *out, size_t max)
{
	size_t total = (size_t)(uintptr_t)cls, i, n;

	if (pos >= total)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = total - (size_t)pos < max ? total - (size_t)pos : max;
	if (n > 1000)
		n = 1000;
	for (i = 0; i < n; i++)
		out[i] = ts_pattern((size_t)pos + i);
	return (ssize_t)n;
}

static enum MHD_Result ts_send(struct MHD_Connection *c, unsigned status,
			       const void *data, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
								  MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (status == 429 || status == 503)
		MHD_add_response_header(r, "Retry-After", "7");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static const char *ts_hdr(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	return v ? v : "";
}

static void ts_hex(const unsigned char *md, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void ts_hmac(const void *key, size_t klen, const char *msg,
		    unsigned char out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg),
	     out, &n);
}

/* The signature SigV4 wants for canonical request `cr` signed at `stamp`
 * (X-Amz-Date) in DATE/REGION/s3/aws4_request with ts.s3_secret. */
static void ts_sigv4_sign(const struct buf *cr, const char *stamp, const char *date,
			  const char *region, char want[65])
{
	unsigned char md[32], k[32];
	unsigned int mdlen = 32;
	char hash[65], keybuf[300];
	struct buf sts = BUF_INIT;

	EVP_Digest(cr->data, cr->len, md, &mdlen, EVP_sha256(), NULL);
	ts_hex(md, 32, hash);
	buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", stamp, date,
		   region, hash);
	snprintf(keybuf, sizeof(keybuf), "AWS4%s", ts.s3_secret ? ts.s3_secret : "");
	ts_hmac(keybuf, strlen(keybuf), date, k);
	ts_hmac(k, 32, region, k);
	ts_hmac(k, 32, "s3", k);
	ts_hmac(k, 32, "aws4_request", k);
	ts_hmac(k, 32, sts.data, md);
	ts_hex(md, 32, want);
	buf_release(&sts);
}

/* An independent AWS SigV4 check (header form) of one request: 1 good,
 * 0 bad signature, -1 unknown key, -2 bad token, -3 expired token. */
static int ts_sigv4_ok(struct MHD_Connection *c, const char *method,
		       const char *url, const struct buf *body)
{
	const char *auth = ts_hdr(c, "Authorization"), *p;
	char cred[256], signed_h[512], sig[80], date[16], region[64];
	char hash[65], want[65], *tok, *save = NULL;
	unsigned char md[32];
	unsigned int mdlen = 32;
	struct buf cr = BUF_INIT;
	int ok = 0;

	if (strncmp(auth, "AWS4-HMAC-SHA256 ", 17))
		return 0;
	if (!(p = strstr(auth, "Credential=")) ||
	    sscanf(p, "Credential=%255[^,]", cred) != 1)
		return 0;
	if (!(p = strstr(auth, "SignedHeaders=")) ||
	    sscanf(p, "SignedHeaders=%511[^,]", signed_h) != 1)
		return 0;
	if (!(p = strstr(auth, "Signature=")) ||
	    sscanf(p, "Signature=%79s", sig) != 1)
		return 0;
	/* cred = KEY/DATE/REGION/s3/aws4_request */
	{
		const char *key = ts.s3_key ? ts.s3_key : "testkey";
		size_t kl = strlen(key);

		if (strncmp(cred, key, kl) || cred[kl] != '/')
			return -1;
		if (sscanf(cred + kl + 1, "%15[^/]/%63[^/]/", date, region) != 2 ||
		    !strstr(cred, "/s3/aws4_request"))
			return 0;
		snprintf(ts.s3_region, sizeof(ts.s3_region), "%s", region);
	}
	/* a session token must be sent and signed */
	if (ts.s3_token || *ts_hdr(c, "x-amz-security-token")) {
		char list[520];

		snprintf(list, sizeof(list), ";%s;", signed_h);
		if (!strstr(list, ";x-amz-security-token;"))
			return -2;
		if (ts.s3_expired_token &&
		    !strcmp(ts_hdr(c, "x-amz-security-token"), ts.s3_expired_token))
			return -3;
		if (!ts.s3_token ||
		    strcmp(ts_hdr(c, "x-amz-security-token"), ts.s3_token))
			return -2;
	}
	/* the payload hash must be the body's */
	EVP_Digest(body->data, body->len, md, &mdlen, EVP_sha256(), NULL);
	ts_hex(md, 32, hash);
	if (strcmp(ts_hdr(c, "x-amz-content-sha256"), hash))
		return 0;
	buf_printf(&cr, "%s\n%s\n\n", method, url);
	{
		char list[512];

		snprintf(list, sizeof(list), "%s", signed_h);
		for (tok = strtok_r(list, ";", &save); tok;
		     tok = strtok_r(NULL, ";", &save)) {
			const char *v = ts_hdr(c, tok);

			while (*v == ' ')
				v++;
			buf_printf(&cr, "%s:%s\n", tok, v);
		}
	}
	buf_printf(&cr, "\n%s\n%s", signed_h, hash);
	ts_sigv4_sign(&cr, ts_hdr(c, "x-amz-date"), date, region, want);
	ok = !strcmp(want, sig);
	buf_release(&cr);
	return ok;
}

/* Percent-encoding as SigV4 wants it (all but unreserved characters). */
static void ts_uri_encode(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
			buf_addc(b, (char)ch);
		else
			buf_printf(b, "%%%02X", ch);
	}
}

/* A query argument, percent escapes decoded (the server is told not to
 * decode anything itself), into a static slot of 4; NULL when absent. */
static const char *ts_arg(struct MHD_Connection *c, const char *name)
{
	static char slots[4][1024];
	static int next;
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	char *out;
	size_t n = 0;

	if (!v)
		return NULL;
	out = slots[next++ % 4];
	for (; *v && n + 1 < sizeof(slots[0]); v++) {
		unsigned int x;

		if (*v == '%' && isxdigit((unsigned char)v[1]) &&
		    isxdigit((unsigned char)v[2]) && sscanf(v + 1, "%2x", &x) == 1) {
			out[n++] = (char)x;
			v += 2;
		} else {
			out[n++] = *v;
		}
	}
	out[n] = '\0';
	return out;
}

/* An independent AWS SigV4 check of a presigned URL (query form): 1
 * good, 0 bad signature, -1 unknown key, -2 bad token, -4 expired. Each argument is
 * decoded, then re-encoded as the signer must have encoded it. */
static int ts_sigv4_query_ok(struct MHD_Connection *c, const char *method,
			     const char *url)
{
	static const char *const names[] = {
		"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
		"X-Amz-Security-Token", "X-Amz-SignedHeaders",
	};
	const char *v, *cred, *sig, *key = ts.s3_key ? ts.s3_key : "testkey";
	char date[16], region[64], want[65], list[512];
	char stamp[20], given[80], *tok, *save = NULL;
	struct buf cr = BUF_INIT;
	struct tm tm;
	size_t i, kl = strlen(key);
	int first = 1, ok;

	cred = ts_arg(c, "X-Amz-Credential");
	sig = ts_arg(c, "X-Amz-Signature");
	v = ts_arg(c, "X-Amz-Algorithm");
	if (!cred || !sig || !v || strcmp(v, "AWS4-HMAC-SHA256"))
		return 0;
	if (strncmp(cred, key, kl) || cred[kl] != '/')
		return -1;
	snprintf(given, sizeof(given), "%s", sig);
	if (sscanf(cred + kl + 1, "%15[^/]/%63[^/]/", date, region) != 2)
		return 0;
	snprintf(ts.s3_region, sizeof(ts.s3_region), "%s", region);
	v = ts_arg(c, "X-Amz-Date");
	memset(&tm, 0, sizeof(tm));
	snprintf(stamp, sizeof(stamp), "%s", v ? v : "");
	if (!v || !strptime(v, "%Y%m%dT%H%M%SZ", &tm) ||
	    !ts_arg(c, "X-Amz-Expires"))
		return 0;
	if (time(NULL) > timegm(&tm) + atol(ts_arg(c, "X-Amz-Expires")))
		return -4;
	v = ts_arg(c, "X-Amz-Security-Token");
	if ((ts.s3_token || v) && (!ts.s3_token || !v || strcmp(v, ts.s3_token)))
		return -2;
	buf_printf(&cr, "%s\n%s\n", method, url);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		v = ts_arg(c, names[i]);
		if (!v)
			continue;
		buf_printf(&cr, "%s%s=", first ? "" : "&", names[i]);
		ts_uri_encode(&cr, v);
		first = 0;
	}
	buf_addc(&cr, '\n');
	v = ts_arg(c, "X-Amz-SignedHeaders");
	snprintf(list, sizeof(list), "%s", v ? v : "");
	for (tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
		buf_printf(&cr, "%s:%s\n", tok, ts_hdr(c, tok));
	buf_printf(&cr, "\n%s\nUNSIGNED-PAYLOAD", v ? v : "");
	ts_sigv4_sign(&cr, stamp, date, region, want);
	ok = !strcmp(want, given);
	buf_release(&cr);
	return ok;
}

/* S3's error document. */
static enum MHD_Result ts_s3_error(struct MHD_Connection *c, unsigned status,
				   const char *code, const char *msg,
				   const char *key)
{
	char xml[1400];
	struct MHD_Response *r;
	enum MHD_Result ret;

	snprintf(xml, sizeof(xml),
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
		 "<Message>%s</Message><Key>%.500s</Key><RequestId>4442587FB7D0A2F9"
		 "</RequestId><HostId>eftixk72aD6Ap51TnqcoF8eFidJG9Z/2mkiDFu8yU9AS1"
		 "ed4OpIszj7UDNEHGran</HostId></Error>", code, msg, key);
	r = MHD_create_response_from_buffer(strlen(xml), xml, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/xml");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result ts_s3(struct MHD_Connection *c, const char *method,
			     const char *url, struct ts_conn *conn)
{
	const char *key = url + 4;
	enum MHD_Result r;
	int i, ok;

	pthread_mutex_lock(&ts.mu);
	snprintf(ts.s3_last_key, sizeof(ts.s3_last_key), "%s", key);
	if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "X-Amz-Signature"))
		ok = ts_sigv4_query_ok(c, method, url);
	else
		ok = ts_sigv4_ok(c, method, url, &conn->body);
	if (ok <= 0) {
		pthread_mutex_unlock(&ts.mu);
		if (ok == -1)
			return ts_s3_error(c, 403, "InvalidAccessKeyId", "The AWS Access "
					   "Key Id you provided does not exist in our "
					   "records.", key);
		if (ok == -2)
			return ts_s3_error(c, 403, "InvalidToken", "The provided token "
					   "is malformed or otherwise invalid.", key);
		if (ok == -3)
			return ts_s3_error(c, 400, "ExpiredToken", "The provided token "
					   "has expired.", key);
		if (ok == -4)
			return ts_s3_error(c, 403, "AccessDenied", "Request has expired",
					   key);
		return ts_s3_error(c, 403, "SignatureDoesNotMatch", "The request "
				   "signature we calculated does not match the signature "
				   "you provided. Check your key and signing method.", key);
	}
	ts.s3_verified++;
	if (!strcmp(key, "media/entities")) {
		pthread_mutex_unlock(&ts.mu);
		return ts_s3_error(c, 400, "InvalidArgument", "a &lt;b&gt; &amp; "
				   "&#34;c&#x27; \n\t d&bogus;", key);
	}
	for (i = 0; i < ts.s3nobj; i++)
		if (!strcmp(ts.s3objs[i].key, key))
			break;
	if (!strcmp(method, "PUT")) {
		if (i == ts.s3nobj && ts.s3nobj < 16) {
			snprintf(ts.s3objs[i].key, sizeof(ts.s3objs[i].key), "%s", key);
			buf_init(&ts.s3objs[i].data);
			ts.s3nobj++;
		}
		if (i < 16) {
			buf_reset(&ts.s3objs[i].data);
			buf_add(&ts.s3objs[i].data, conn->body.data, conn->body.len);
		}
		buf_reset(&ts.s3obj);
		buf_add(&ts.s3obj, conn->body.data, conn->body.len);
		r = ts_send(c, 200, "", 0);
	} else if (i < ts.s3nobj) {
		r = ts_send(c, 200, ts.s3objs[i].data.data, ts.s3objs[i].data.len);
	} else {
		pthread_mutex_unlock(&ts.mu);
		return ts_s3_error(c, 404, "NoSuchKey", "The specified key does not "
				   "exist.", key);
	}
	pthread_mutex_unlock(&ts.mu);
	return r;
}

/* A credential document: IMDS's shape (Code, Type...) or the container
 * provider's (RoleArn). */
static enum MHD_Result ts_creds(struct MHD_Connection *c, int imds)
{
	char json[3000];
	struct MHD_Response *r;
	enum MHD_Result ret;

	pthread_mutex_lock(&ts.mu);
	ts.creds_gets++;
	if (ts.creds_body)
		snprintf(json, sizeof(json), "%s", ts.creds_body);
	else if (imds)
		snprintf(json, sizeof(json), "{\n  \"Code\" : \"Success\",\n"
			 "  \"LastUpdated\" : \"2024-05-01T10:00:00Z\",\n"
			 "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"%s\",\n"
			 "  \"SecretAccessKey\" : \"%s\",\n  \"Token\" : \"%s\",\n"
			 "  \"Expiration\" : \"%s\"\n}", ts.creds_key, ts.creds_secret,
			 ts.creds_token, ts.creds_expiration);
	else
		snprintf(json, sizeof(json), "{\"RoleArn\":\"arn:aws:iam::123456789012"
			 ":role/wakeq\",\"AccessKeyId\":\"%s\",\"SecretAccessKey\":"
			 "\"%s\",\"Token\":\"%s\",\"Expiration\":\"%s\"}",
			 ts.creds_key, ts.creds_secret, ts.creds_token,
			 ts.creds_expiration);
	pthread_mutex_unlock(&ts.mu);
	r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", imds ? "text/plain" :
				"application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* The instance metadata service, IMDSv2. */
static enum MHD_Result ts_imds(struct MHD_Connection *c, const char *method,
			       const char *url)
{
	static const char prefix[] = "/latest/meta-data/iam/security-credentials/";
	const char *ttl, *role;
	char text[200];
	long n;

	if (!strcmp(url, "/latest/api/token")) {
		if (strcmp(method, "PUT"))
			return ts_send(c, 405, "", 0);
		ttl = ts_hdr(c, "X-aws-ec2-metadata-token-ttl-seconds");
		n = atol(ttl);
		if (n < 1 || n > 21600)
			return ts_send(c, 400, "", 0);
		pthread_mutex_lock(&ts.mu);
		ts.imds_token_puts++;
		pthread_mutex_unlock(&ts.mu);
		if (ts.imds_delay_ms)
			usleep((useconds_t)ts.imds_delay_ms * 1000);
		if (ts.imds_token_status)
			return ts_send(c, (unsigned)ts.imds_token_status, "", 0);
		return ts_send(c, 200, ts.imds_token, strlen(ts.imds_token));
	}
	if (strncmp(url, prefix, sizeof(prefix) - 1))
		return ts_send(c, 404, "", 0);
	if (strcmp(ts_hdr(c, "X-aws-ec2-metadata-token"), ts.imds_token))
		return ts_send(c, 401, "", 0);
	role = url + sizeof(prefix) - 1;
	if (!ts.imds_role)
		return ts_send(c, 404, "", 0);
	if (!*role) {
		snprintf(text, sizeof(text), "%s\n", ts.imds_role);
		return ts_send(c, 200, text, strlen(text));
	}
	if (strcmp(role, ts.imds_role))
		return ts_send(c, 404, "", 0);
	return ts_creds(c, 1);
}

/* URLs as sent: no decoding of percent escapes. */
static size_t ts_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static enum MHD_Result ts_handler(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct ts_conn *conn = *con_cls;
	char text[600];
	long n;

	(void)cls;
	(void)version;
	if (!conn) {
		conn = calloc(1, sizeof(*conn));
		buf_init(&conn->body);
		*con_cls = conn;
		return MHD_YES;
	}
	if (*upload_size) {
		buf_add(&conn->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&ts.mu);
	ts.requests++;
	snprintf(ts.last_method, sizeof(ts.last_method), "%s", method);
	snprintf(ts.last_url, sizeof(ts.last_url), "%s", url);
	pthread_mutex_unlock(&ts.mu);

	if (sscanf(url, "/file/%ld", &n) == 1 && n >= 0) {
		char *b = malloc((size_t)n + 1);
		enum MHD_Result r;
		long i;

		for (i = 0; i < n; i++)
			b[i] = ts_pattern((size_t)i);
		r = ts_send(c, 200, b, (size_t)n);
		free(b);
		return r;
	}
	if (sscanf(url, "/chunked/%ld", &n) == 1 && n >= 0) {
		struct MHD_Response *r = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 1000, ts_chunk, (void *)(uintptr_t)n, NULL);
		enum MHD_Result ret = MHD_queue_response(c, 200, r);

		MHD_destroy_response(r);
		return ret;
	}
	if (sscanf(url, "/status/%ld", &n) == 1) {
		snprintf(text, sizeof(text), "status %ld", n);
		return ts_send(c, (unsigned)n, text, strlen(text));
	}
	if (sscanf(url, "/redirect/%ld", &n) == 1) {
		struct MHD_Response *r;
		enum MHD_Result ret;

		if (n <= 0)
			return ts_send(c, 200, "arrived", 7);
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		snprintf(text, sizeof(text), "/redirect/%ld", n - 1);
		MHD_add_response_header(r, "Location", text);
		ret = MHD_queue_response(c, 302, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (!strcmp(url, "/slow")) {
		sleep(2);
		return ts_send(c, 200, "slow", 4);
	}
	if (!strncmp(url, "/put/", 5)) {
		enum MHD_Result r;

		pthread_mutex_lock(&ts.mu);
		if (!strcmp(method, "PUT")) {
			buf_reset(&ts.put);
			buf_add(&ts.put, conn->body.data, conn->body.len);
			snprintf(ts.last_ctype, sizeof(ts.last_ctype), "%s",
				 ts_hdr(c, "Content-Type"));
			pthread_mutex_unlock(&ts.mu);
			return ts_send(c, 201, "", 0);
		}
		r = ts_send(c, 200, ts.put.data, ts.put.len);
		pthread_mutex_unlock(&ts.mu);
		return r;
	}
	if (!strcmp(url, "/echo")) {
		struct MHD_Response *r;
		enum MHD_Result ret;
		struct buf b = BUF_INIT;

		buf_printf(&b, "%s|%s|%s|", method, ts_hdr(c, "Content-Type"),
			   ts_hdr(c, "X-Test"));
		buf_add(&b, conn->body.data, conn->body.len);
		r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
		MHD_add_response_header(r, "X-Echo", "1");
		MHD_add_response_header(r, "Set-Cookie", "a=1");
		MHD_add_response_header(r, "Set-Cookie", "b=2");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		buf_release(&b);
		return ret;
	}
	if (!strcmp(url, "/hook")) {
		/* the headers a test looks at afterwards, and where */
		const struct {
			const char *name;
			char *dst;
			size_t size;
		} kept[] = {
			{ "X-Wakeq-Signature", ts.last_sig, sizeof(ts.last_sig) },
			{ "X-Wakeq-Delivery", ts.last_delivery, sizeof(ts.last_delivery) },
			{ "Content-Type", ts.last_ctype, sizeof(ts.last_ctype) },
			{ "webhook-id", ts.last_std_id, sizeof(ts.last_std_id) },
			{ "webhook-timestamp", ts.last_std_ts, sizeof(ts.last_std_ts) },
			{ "webhook-signature", ts.last_std_sig, sizeof(ts.last_std_sig) },
		};
		unsigned status;
		size_t i;

		pthread_mutex_lock(&ts.mu);
		buf_reset(&ts.last_body);
		buf_add(&ts.last_body, conn->body.data, conn->body.len);
		for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
			snprintf(kept[i].dst, kept[i].size, "%s", ts_hdr(c, kept[i].name));
		status = ts.hook_status ? (unsigned)ts.hook_status : 200;
		pthread_mutex_unlock(&ts.mu);
		return ts_send(c, status, "hooked", 6);
	}
	if (!strncmp(url, "/s3/", 4))
		return ts_s3(c, method, url, conn);
	if (!strncmp(url, "/latest/", 8))
		return ts_imds(c, method, url);
	if (!strncmp(url, "/ecs/", 5) || !strncmp(url, "/v2/credentials/", 16)) {
		if (ts.container_auth &&
		    strcmp(ts_hdr(c, "Authorization"), ts.container_auth))
			return ts_send(c, 403, "{\"code\":\"AccessDenied\"}", 23);
		return ts_creds(c, 0);
	}
	return ts_send(c, 404, "no route", 8);
}

static void ts_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	struct ts_conn *conn = *con_cls;

	(void)cls;
	(void)c;
	(void)code;
	if (conn) {
		buf_release(&conn->body);
		free(conn);
		*con_cls = NULL;
	}
}

/* Starts the server on 127.0.0.1, a free port. Returns 0 or -1. */
static int ts_start(void)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&ts.mu, NULL);
	buf_init(&ts.put);
	buf_init(&ts.s3obj);
	buf_init(&ts.last_body);
	ts.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
				0, NULL, NULL, ts_handler, NULL,
				MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_NOTIFY_COMPLETED, ts_completed, NULL,
				MHD_OPTION_UNESCAPE_CALLBACK, ts_unescape, NULL,
				MHD_OPTION_END);
	if (!ts.d)
		return -1;
	info = MHD_get_daemon_info(ts.d, MHD_DAEMON_INFO_BIND_PORT);
	ts.port = info ? info->port : 0;
	return ts.port ? 0 : -1;
}

static void ts_stop(void)
{
	if (ts.d)
		MHD_stop_daemon(ts.d);
	ts.d = NULL;
	buf_release(&ts.put);
	buf_release(&ts.s3obj);
	buf_release(&ts.last_body);
	for (int i = 0; i < ts.s3nobj; i++)
		buf_release(&ts.s3objs[i].data);
	ts.s3nobj = 0;
}

/* "http://127.0.0.1:PORT" + path into a static buffer (one at a time). */
static const char *ts_url(const char *path)
{
	static char u[600];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", ts.port, path);
	return u;
}

/* Runs a job of `type` (http.request, webhook.deliver: the jobs that talk
 * to this server) with `payload` (JSON text) as the worker runs it: job
 * `id`, attempt 1 of `max_attempts`. Returns what job_execute returns,
 * with *out filled (the caller releases it). */
static inline int ts_run_job(const char *type, const char *id, const char *payload,
			     int max_attempts, struct job_outcome *out)
{
	struct job_run run = { 0 };
	json_error_t jerr;
	atomic_int cancel = 0;
	int rc;

	run.id = id;
	run.type = type;
	run.payload = json_loads(payload, 0, &jerr);
	if (!run.payload) {
		fprintf(stderr, "bad test payload: %s\n", jerr.text);
		abort();
	}
	run.attempt = 1;
	run.max_attempts = max_attempts;
	run.cancel = &cancel;
	memset(out, 0, sizeof(*out));
	rc = job_execute(&run, out);
	json_decref(run.payload);
	return rc;
}

#endif
