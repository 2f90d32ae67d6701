/* fetch.h - job inputs and outputs by URL: file:// inside DATA_DIR,
 * http(s):// downloads, uploads by HTTP PUT to a presigned URL,
 * s3://bucket/key through libcurl's AWS SigV4, and gs://bucket/object
 * through Cloud Storage's JSON API with a metadata-server token.
 *
 * Outbound requests to loopback, private, link-local and metadata
 * addresses are refused unless job_settings.allow_private allows them; the
 * check applies to the address actually connected.
 *
 * Errors: ERR_UNAVAILABLE / ERR_TIMEOUT mean "retry later" (5xx, network,
 * timeouts); every other code is final (4xx, bad URL, refused address,
 * path outside DATA_DIR, too large). ERR_CANCELLED when *cancel was set.
 * All calls block; they poll *cancel (may be NULL) during transfers.
 */
#ifndef WAKEQ_FETCH_H
#define WAKEQ_FETCH_H

#include "base/buf.h"
#include "base/err.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

/* A job input made available as a local file. */
struct fetch_input {
	char path[PATH_MAX]; /* local file to read */
	int temp;            /* path is a download of ours: removed on release */
	int64_t bytes;       /* size of the local file */
	int fd;              /* file:// only: the input, open read-only
			      * (>= 3; 0 = none); owned by `in`, closed on
			      * release. Callers may read it (pread) instead
			      * of opening path. */
};

/* Resolves `url` to a readable local file.
 *
 * file:// names a file inside DATA_DIR ("file://a/b.mp4", or an absolute
 * path starting with DATA_DIR). It is opened with openat2() beneath
 * DATA_DIR: "..", absolute paths elsewhere and symlinks that lead out of
 * DATA_DIR (absolute symlinks always) are refused, and a folder swapped
 * for a link meanwhile cannot redirect it. `path` is then a symlink in a
 * private folder under job_settings.tmp_dir to the open descriptor
 * (/proc/PID/fd/FD, named like the file), so opening `path` later, here
 * or in a forked child, reaches exactly the checked file and never walks
 * DATA_DIR again. Needs Linux >= 5.6 (openat2) and /proc: without them
 * file:// fails (ERR_INTERNAL, "openat2 unavailable (kernel < 5.6)").
 *
 * http(s)://, s3:// and gs:// are streamed into a temp file under
 * job_settings.tmp_dir, capped at job_settings.max_input_bytes: a larger
 * input fails (ERR_TOOLARGE) and its partial download is removed.
 * Returns 0 with `in` filled, or -1 with err set and `in` untouched. */
int fetch_input_open(const char *url, struct fetch_input *in,
		     atomic_int *cancel, struct err *err);

/* Removes the temp file or link of `in` if it is ours and closes its
 * descriptor. Safe on a zeroed struct. */
void fetch_input_release(struct fetch_input *in);

/* A job output: the caller writes `path`, then commits it. */
struct fetch_output {
	char path[PATH_MAX]; /* local file the caller writes */
	char final[PATH_MAX];/* file://: where the file lands on commit (for
			      * messages); "" for uploads */
	char *url;           /* the output URL (owned) */
	int committed;
	/* file:// only, private to fetch (0 = none): */
	int dirfd;           /* the target's folder, opened beneath DATA_DIR */
	int fd;              /* the temp file in it, open read-write */
	char part[NAME_MAX + 1]; /* the temp file's name in dirfd */
	char name[NAME_MAX + 1]; /* the target's name in dirfd */
};

/* Prepares a local file for an output `url`.
 *
 * file:// targets lie inside DATA_DIR (same rules as inputs): missing
 * parent folders are created one by one with mkdirat() beneath DATA_DIR,
 * and an empty temp file is created beside the target (openat2, O_EXCL).
 * `path` is a symlink to that open file, as for inputs, so writing
 * `path` writes the temp file whatever happens to DATA_DIR meanwhile;
 * commit renames it into place within the same open folder.
 *
 * http(s):// (PUT to a presigned URL), s3:// and gs:// go to a temp file under
 * tmp_dir. Returns 0 or -1 with err set. */
int fetch_output_prepare(const char *url, struct fetch_output *out,
			 struct err *err);

/* Publishes the written file: rename into place (file://) or upload
 * (HTTP PUT / S3 PUT). Returns 0 or -1 with err set. */
int fetch_output_commit(struct fetch_output *out, atomic_int *cancel,
			struct err *err);

/* Removes whatever the output left behind unless committed (partial files
 * never remain) and frees `out`'s memory. Safe on a zeroed struct. */
void fetch_output_release(struct fetch_output *out);

/* Partial outputs. A file:// output is written to ".NAME.part-XXXXXX.EXT"
 * beside its target until it is committed. A worker killed meanwhile
 * (SIGKILL, out of memory, a lost host) leaves it behind. While a job
 * writes one, its worker refreshes its mtime every FETCH_PART_TOUCH_S (the
 * media child's parent does), so one untouched for FETCH_PART_STALE_S has
 * no writer left, whatever the job's length. */
#define FETCH_PART_TOUCH_S 60
#define FETCH_PART_STALE_S 600

/* Whether `name` (a file name, no folder) is a partial output's. */
int fetch_is_part_name(const char *name);

/* Removes partial outputs not modified for `older_than_s` seconds from
 * DATA_DIR and its folders: symlinks are not followed, other filesystems
 * not entered, 32 levels at most. Blocks for one walk of DATA_DIR; stops
 * early once *stop (may be NULL) is non-zero. Returns the count removed,
 * or -1 with err set when DATA_DIR cannot be opened. */
long fetch_sweep_parts(double older_than_s, const atomic_int *stop,
		       struct err *err);

/* ---- outbound address policy ---------------------------------------
 *
 * ALLOW_PRIVATE_NETWORKS (job_settings.allow_private) is a comma list;
 * spaces are ignored and an empty value (or "none") allows nothing:
 *
 *   loopback    127.0.0.0/8, ::1
 *   private     10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7
 *   link-local  169.254/16, fe80::/10
 *   metadata    169.254.169.254, fd00:ec2::254 (cloud metadata servers)
 *   all         every address
 *   CIDR        "10.1.0.0/16", "192.168.1.5", "fd12::/64" ...
 *
 * Refused unless allowed: the ranges above plus unspecified (0.0.0.0/8,
 * ::), multicast, reserved (240/4), 192.0.0/24, 198.18/15 and site-local
 * fec0::/10. IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
 * addresses are judged by the IPv4 address they carry. The metadata
 * addresses are refused even under "private"/"link-local": only
 * "metadata", "all" or a CIDR that covers them lets them through. The
 * host name metadata.google.internal is refused by name as well.
 */

#define FETCH_ALLOW_MAX 32

struct fetch_allow {
	int all;
	int n;
	struct {
		unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
		int bits;               /* prefix length over the 128 bits */
		int keyword;            /* from a keyword, not a CIDR */
	} nets[FETCH_ALLOW_MAX];
};

/* Parses an ALLOW_PRIVATE_NETWORKS value (NULL = ""). Returns 0 with
 * `out` filled, or -1 with err (ERR_INVALID) naming the bad item. */
int fetch_allow_parse(const char *spec, struct fetch_allow *out,
		      struct err *err);

/* Whether connecting to `sa` is allowed under `allow`: 1 allowed, 0
 * refused (also for families other than IPv4/IPv6). Pure, thread-safe. */
int fetch_addr_allowed(const struct fetch_allow *allow,
		       const struct sockaddr *sa, socklen_t len);

/* Checks job_settings (allow_private), the S3 endpoint and region
 * and GCS_ENDPOINT settings for start-up: 0, or -1 with err naming the variable. */
int fetch_check_settings(struct err *err);

/* Checks that `url` is an http:// or https:// URL with a host that is not
 * refused by name (see above). Returns 0, or -1 with err (ERR_INVALID). */
int fetch_url_check(const char *url, struct err *err);

/* ---- limits ---------------------------------------------------------- */

/* Transfer limits, defaults set here; the worker (or a test) may change
 * them before any transfer starts. */
struct fetch_limits {
	double connect_timeout_s; /* TCP + TLS connect (10) */
	double timeout_s;         /* a whole input or output transfer (3600) */
	double stall_timeout_s;   /* abort when no byte moves for this long
				   * (60; 0 = never); counts as a timeout */
	long max_redirects;       /* redirects followed (5) */
	int64_t max_response_bytes; /* http.request / webhook bodies kept
				     * (1 MiB; longer ones are truncated) */
};

extern struct fetch_limits fetch_limits;

/* ---- generic HTTP requests (http.request, webhooks) ------------------ */

struct fetch_request {
	const char *method;          /* NULL = "GET" */
	const char *url;             /* http(s):// or s3:// */
	const char *const *headers;  /* "Name: value" lines, NULL-terminated;
				      * may be NULL */
	const char *body;            /* request body or NULL */
	size_t body_len;
	double timeout_s;            /* total; 0 = fetch_limits.timeout_s */
	int no_follow;               /* do not follow redirects */
	atomic_int *cancel;          /* may be NULL */
	const char *allow_private;   /* the address policy of this request, as
				      * ALLOW_PRIVATE_NETWORKS; NULL =
				      * job_settings.allow_private. For URLs
				      * an operator gave (the CLI's API URL,
				      * a handler entry's URL), never for a
				      * job's. */
	int64_t max_response_bytes;  /* body bytes kept; 0 =
				      * fetch_limits.max_response_bytes */
};

struct fetch_response {
	long status;          /* last HTTP status (after redirects) */
	struct buf headers;   /* header lines of the last response, CRLFs
			       * kept, status line excluded */
	struct buf body;      /* up to fetch_limits.max_response_bytes */
	int truncated;        /* the body was longer than what is kept */
	double retry_after_s; /* from Retry-After (seconds or date), 0 = none */
};

#define FETCH_RESPONSE_INIT { 0, BUF_INIT, BUF_INIT, 0, 0 }

/* Sends one request and reads the answer into `resp` (which the caller
 * inits with FETCH_RESPONSE_INIT and releases). Returns 0 when an HTTP
 * answer arrived, whatever its status, or -1 with err: ERR_UNAVAILABLE /
 * ERR_TIMEOUT for network errors and timeouts (retry) and a libcurl that
 * cannot be loaded (fetch_curl_load), ERR_INVALID for a
 * bad URL, a refused address or too many redirects, ERR_CANCELLED. Blocks. */
int fetch_http(const struct fetch_request *req, struct fetch_response *resp,
	       struct err *err);

void fetch_response_release(struct fetch_response *resp);

/* Maps an HTTP status to the error convention above: 0 for 1xx-3xx,
 * otherwise -1 with err set: ERR_UNAVAILABLE for 5xx, 408 and 429,
 * ERR_NOTFOUND for 404/410, ERR_AUTH for 401/403, ERR_TOOLARGE for 413,
 * ERR_INVALID for other 4xx. `what` names the request in the message. */
int fetch_status_error(long status, const char *what, struct err *err);

/* Whether an error code means "retry later". */
int fetch_retryable(enum err_code code);

/* Loads libcurl (fetch/curl.c) if not done yet. Returns 0, or -1 with
 * ERR_UNAVAILABLE "cannot load 'libcurl.so.4': …" when it cannot be
 * loaded; that answer stays. Every user of libcurl (fetch, webhooks, the
 * waker) calls it before its first libcurl call, so that a missing
 * library is reported as such, not as a bad URL or a failed start. */
int fetch_curl_load(struct err *err);

/* `s` percent-encoded for a URL's query (all but unreserved characters).
 * Caller frees. Never fails (out of memory aborts). */
char *fetch_url_escape(const char *s);

/* ---- S3 ---------------------------------------------------------------
 *
 * s3://bucket/key URLs go to S3_ENDPOINT, AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (the first set), else https://s3.REGION.amazonaws.com,
 * with REGION from S3_REGION, AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's region (~/.aws/config), else us-east-1. S3_PATH_STYLE (default
 * on when an endpoint is set) picks ENDPOINT/bucket/key over
 * bucket.HOST/key. Requests are signed with AWS SigV4 by the first
 * credentials found in: S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY (and
 * S3_SESSION_TOKEN), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and
 * AWS_SESSION_TOKEN), the profile AWS_PROFILE (default "default") in
 * ~/.aws/credentials then ~/.aws/config, the container provider
 * (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI), and the EC2
 * instance metadata service (IMDSv2; AWS_EC2_METADATA_DISABLED=true turns
 * it off). docs/STORAGE.md has every variable.
 *
 * A failed S3 request's message carries S3's error code and message:
 * "s3 get 's3://b/k' failed: 404 NoSuchKey: The specified key does not
 * exist."
 */

/* The http(s) URL an s3://bucket/key URL stands for (see above). The key
 * is sent as given: percent-encoded as SigV4 wants (all but unreserved
 * characters and '/'), "." and ".." segments kept. Returns 0 with *url set
 * (caller frees), or -1 with err (ERR_INVALID). */
int fetch_s3_url(const char *s3url, char **url, struct err *err);

/* ---- Cloud Storage ----------------------------------------------------
 *
 * gs://bucket/object URLs go to Cloud Storage's JSON API under
 * GCS_ENDPOINT (https://storage.googleapis.com unless set: a fake or an
 * emulator in tests): downloads GET .../storage/v1/b/B/o/O?alt=media,
 * uploads POST .../upload/storage/v1/b/B/o?uploadType=media&name=O,
 * each with "Authorization: Bearer" an access token of the service
 * account from the metadata server (fetch_gcp_access_token; no keys).
 * The endpoint is a job destination like any other: its address goes
 * through ALLOW_PRIVATE_NETWORKS.
 *
 * A failed request's message carries Cloud Storage's reason and message:
 * "gs get 'gs://b/o' failed: 404 notFound: No such object: b/o".
 */

#define FETCH_GS_BUCKET_MAX 223

/* Splits a gs://bucket/object URL: the bucket into `bucket`, *object
 * pointing into `url` (borrowed). Checks Cloud Storage's naming rules.
 * Returns 0, or -1 with err (ERR_INVALID) saying what is wrong: no
 * bucket, a bad bucket name, no object name. */
int fetch_gs_split(const char *url, char bucket[FETCH_GS_BUCKET_MAX],
		   const char **object, struct err *err);

enum fetch_gs_api {
	FETCH_GS_DOWNLOAD, /* JSON API media download (alt=media) */
	FETCH_GS_UPLOAD,   /* JSON API simple upload (uploadType=media) */
	FETCH_GS_XML,      /* XML API object URL (signed URLs) */
};

/* The http(s) URL for `gsurl` on `api` (see above); the object name is
 * percent-encoded ('/' too, except in the XML path). Returns 0 with *url
 * set (caller frees), or -1 with err (ERR_INVALID). */
int fetch_gs_url(const char *gsurl, enum fetch_gs_api api, char **url,
		 struct err *err);

/* ---- presigned URLs ---------------------------------------------------
 *
 * A URL that lets whoever holds it PUT (or GET) one object until it
 * expires, with no other credential: s3:// by AWS SigV4 query signing
 * (X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders,
 * -Signature; keys from the S3 chain above, a session token as
 * X-Amz-Security-Token), gs:// by Cloud Storage V4 signing with an HMAC
 * key (GOOG4-HMAC-SHA256; GCS_HMAC_ACCESS_ID, GCS_HMAC_SECRET) on the XML
 * API. The payload is not signed (UNSIGNED-PAYLOAD): any size. */

#define FETCH_PRESIGN_MAX_S 604800 /* 7 days, both services' limit */

struct fetch_presign_req {
	const char *url;          /* s3://bucket/key or gs://bucket/object */
	const char *method;       /* "PUT" (NULL) or "GET" */
	const char *content_type; /* signed: the client must send exactly
				   * this Content-Type; NULL = none */
	int64_t expires_s;        /* 1..FETCH_PRESIGN_MAX_S */
	int64_t now;              /* unix seconds signed as the date; 0 =
				   * the clock (tests pin it) */
};

struct fetch_presigned {
	char *url;                /* the signed URL (owned) */
	const char *method;       /* "PUT" or "GET" (static) */
	char *content_type;       /* the header the client must send, or
				   * NULL (owned) */
	int64_t expires_at;       /* unix seconds; earlier than asked when
				   * temporary keys expire first */
};

/* Signs `r` into `out` (caller releases). May block on the AWS
 * credential providers when their cache is cold. Returns 0, or -1 with
 * err: ERR_INVALID for a bad URL (a key with a "." or ".." segment
 * included), content type, expiry, method or missing keys, or the
 * credential chain's error. Keys never appear in messages. */
int fetch_presign(const struct fetch_presign_req *r,
		  struct fetch_presigned *out, struct err *err);

void fetch_presigned_release(struct fetch_presigned *p);

/* 1 when `s` may be signed as a Content-Type: type/subtype (parameters
 * allowed), printable ASCII, at most 200 bytes; else 0. */
int fetch_content_type_ok(const char *s);

/* Where the container credentials provider's relative URI is resolved
 * ("http://169.254.170.2"); tests point it at loopback. */
extern const char *fetch_container_base;

/* ---- jobs ----------------------------------------------------------- */

/* Binds the http.request job type (see fetch/job.c for its payload). */
void fetch_bind_jobs(void);

/* The Google Cloud project this process runs in, for log lines' trace
 * field (log_trace_set_project_fn): on Google Cloud only (K_SERVICE or
 * CLOUD_RUN_JOB set, as Cloud Run does, or GCE_METADATA_HOST set), the
 * metadata server's project/project-id (GCE_METADATA_HOST, else
 * metadata.google.internal; "Metadata-Flavor: Google"). Cached for the
 * process; a failed ask is repeated at most once a minute, a changed
 * GCE_METADATA_HOST asks again, so the first call may block up to 1 s
 * and the rest never do. Thread-safe. Returns 0 with `out` filled, or -1
 * when not on Google Cloud or not known. */
int fetch_gcp_project(char *out, size_t cap);

/* ---- Google service account tokens -----------------------------------
 *
 * The service account's tokens from the metadata server (GCE_METADATA_HOST
 * "host[:port]", else metadata.google.internal; "Metadata-Flavor:
 * Google"), cached per audience or scope list and metadata host for the
 * process and renewed 5 minutes before they expire (half their lifetime
 * when that is shorter). One home for every caller: the waker, the Cloud
 * Tasks client, http handlers and http.request. Thread-safe. A cold cache
 * blocks up to 5 s on the metadata server (callers wanting the same token
 * wait for one ask); a warm one never blocks. */

/* The scope of access tokens for Google Cloud APIs. */
#define FETCH_GCP_SCOPE_CLOUD "https://www.googleapis.com/auth/cloud-platform"

/* An OIDC identity token (a JWT) whose `aud` is `audience`, as Cloud Run
 * checks it. Returns the token (caller frees), or NULL with err:
 * ERR_UNAVAILABLE (metadata server unreachable or 5xx), ERR_AUTH (it
 * refused), ERR_PROTOCOL (not a JWT), ERR_INVALID (no audience). When a
 * renewal fails while the cached token has more than half its renewal
 * margin left (2.5 min of an hour's token), that one is returned. */
char *fetch_gcp_id_token(const char *audience, struct err *err);

/* The audience Cloud Run expects in an ID token for `url`: its
 * scheme://host[:port] (heap copy; `url` itself when it has no "://"). */
char *fetch_gcp_audience(const char *url);

/* An OAuth 2 access token for `scopes` (space-separated; NULL =
 * FETCH_GCP_SCOPE_CLOUD) from {"access_token", "expires_in"}. Returns and
 * fails as fetch_gcp_id_token. */
char *fetch_gcp_access_token(const char *scopes, struct err *err);

/* The exp claim of a JWT (seconds since the epoch), or -1 when `jwt` is
 * not a JWT with one. The signature is not checked. */
int64_t fetch_jwt_exp(const char *jwt);

/* Tokens asked of metadata servers by this process so far (for tests
 * and metrics). */
uint64_t fetch_gcp_token_asks(void);

/* Drops every cached token (tests). */
void fetch_gcp_tokens_forget(void);

#endif
