/* aws.c - AWS credentials for S3 requests: the shared config files, the
 * S3_* and AWS_* variables, the container credentials provider and the
 * EC2 instance metadata service (IMDSv2).
 *
 * The chain (docs/STORAGE.md has the table): S3_ACCESS_KEY_ID /
 * S3_SECRET_ACCESS_KEY, then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 * then the profile (credentials file, then config file), then the
 * container provider, then IMDS. The first that has keys wins; a provider
 * that is configured but fails is an error, not a reason to go on.
 *
 * Static keys (variables, profile files) are read on every request, so a
 * rotated file takes effect at once. Temporary keys from the container
 * provider or IMDS are cached in this process until REFRESH_MARGIN_S
 * before their Expiration; one mutex serialises refreshes, so concurrent
 * jobs make one request between them. When a refresh fails while the
 * cached keys have not yet expired, those are used.
 *
 * Requests to the providers are made with fetch_http_trusted(): their
 * URLs come from the operator, and their addresses (link-local, loopback)
 * are the ones ALLOW_PRIVATE_NETWORKS keeps jobs away from.
 *
 * The parsers (INI, credential JSON, times) read outside input: each is
 * bounded, tolerant of junk, and fuzzed (tests/fuzz/fuzz_s3.c). Keys and
 * tokens never go into messages.
 */
#include "fetch/priv.h"

#include "base/clock.h"
#include "base/mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* Temporary keys are refreshed this long before they expire. */
#define REFRESH_MARGIN_S 300
/* Shared config files larger than this are read only this far. */
#define PROFILE_FILE_MAX (1 << 20)
#define CONTAINER_TIMEOUT_S 2.0

const char *fetch_container_base = "http://169.254.170.2";

const char *fetch_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int fetch_env_true(const char *name)
{
	const char *v = fetch_env(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

/* ---- AWS shared config files (INI) ------------------------------------ */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static size_t trim_end(const char *p, size_t n)
{
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	return n;
}

/* Whether the header "[...]" between `p` and `end` names `section`.
 * "profile   x" matches "profile x". */
static int section_is(const char *p, const char *end, const char *section)
{
	size_t n, want = strlen(section);

	p = skip_ws(p, end);
	n = trim_end(p, (size_t)(end - p));
	if (n > 7 && !strncmp(p, "profile", 7) && (p[7] == ' ' || p[7] == '\t') &&
	    !strncmp(section, "profile ", 8)) {
		const char *q = skip_ws(p + 7, p + n);

		return (size_t)(p + n - q) == want - 8 &&
		       !memcmp(q, section + 8, want - 8);
	}
	return n == want && !memcmp(p, section, n);
}

int fetch_aws_ini_get(const char *text, size_t len, const char *section,
		      const char *key, char *out, size_t cap)
{
	const char *p = text, *end = text + len, *eol, *q, *eq, *close;
	size_t klen = key ? strlen(key) : 0, n;
	int in = 0, found = 0;

	for (; p < end; p = eol + (eol < end)) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if (p < eol && (*p == ' ' || *p == '\t'))
			continue; /* a sub-property of the key above */
		q = skip_ws(p, eol);
		if (q == eol || *q == '#' || *q == ';')
			continue;
		if (*q == '[') {
			close = memchr(q, ']', (size_t)(eol - q));
			in = close && section_is(q + 1, close, section);
			if (in && !key)
				return 1;
			continue;
		}
		if (!in || !key)
			continue;
		eq = memchr(q, '=', (size_t)(eol - q));
		if (!eq)
			continue;
		n = trim_end(q, (size_t)(eq - q));
		if (n != klen || strncasecmp(q, key, klen))
			continue;
		q = skip_ws(eq + 1, eol);
		n = trim_end(q, (size_t)(eol - q));
		/* an inline comment starts with whitespace then # or ; */
		for (size_t i = 1; i < n; i++)
			if ((q[i] == '#' || q[i] == ';') &&
			    (q[i - 1] == ' ' || q[i - 1] == '\t')) {
				n = trim_end(q, i);
				break;
			}
		if (cap) {
			if (n >= cap)
				n = cap - 1;
			memcpy(out, q, n);
			out[n] = 0;
		}
		found = 1; /* a later line of a repeated section wins */
	}
	return found;
}

/* Reads at most PROFILE_FILE_MAX bytes of `path` (NUL-terminated);
 * NULL when unreadable. */
static char *read_small(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	size_t cap;
	char *b;

	if (!f)
		return NULL;
	cap = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
	      st.st_size < PROFILE_FILE_MAX ? (size_t)st.st_size : PROFILE_FILE_MAX;
	b = xmalloc(cap + 1);
	*len = fread(b, 1, cap, f);
	b[*len] = 0;
	fclose(f);
	return b;
}

/* The shared files: AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, or
 * ~/.aws/credentials and ~/.aws/config. */
static void profile_paths(char cred[PATH_MAX], char conf[PATH_MAX])
{
	const char *home = fetch_env("HOME");

	if (fetch_env("AWS_SHARED_CREDENTIALS_FILE"))
		snprintf(cred, PATH_MAX, "%s", fetch_env("AWS_SHARED_CREDENTIALS_FILE"));
	else
		snprintf(cred, PATH_MAX, "%s/.aws/credentials", home ? home : "");
	if (fetch_env("AWS_CONFIG_FILE"))
		snprintf(conf, PATH_MAX, "%s", fetch_env("AWS_CONFIG_FILE"));
	else
		snprintf(conf, PATH_MAX, "%s/.aws/config", home ? home : "");
	if (!home && !fetch_env("AWS_SHARED_CREDENTIALS_FILE"))
		cred[0] = 0;
	if (!home && !fetch_env("AWS_CONFIG_FILE"))
		conf[0] = 0;
}

static const char *profile_name(void)
{
	return fetch_env("AWS_PROFILE") ? fetch_env("AWS_PROFILE") :
	       fetch_env("AWS_DEFAULT_PROFILE") ? fetch_env("AWS_DEFAULT_PROFILE") : "default";
}

/* The config file names its sections "profile NAME", except "default". */
static void config_section(const char *profile, char out[300])
{
	if (!strcmp(profile, "default"))
		snprintf(out, 300, "default");
	else
		snprintf(out, 300, "profile %.280s", profile);
}


int fetch_aws_config_get(const char *key, char *out, size_t cap)
{
	char cred[PATH_MAX], conf[PATH_MAX], section[300];
	size_t len;
	char *text;
	int found = 0;

	profile_paths(cred, conf);
	config_section(profile_name(), section);
	if (conf[0] && (text = read_small(conf, &len))) {
		found = fetch_aws_ini_get(text, len, section, key, out, cap);
		free(text);
	}
	return found;
}

/* ---- credentials ------------------------------------------------------ */

void fetch_aws_creds_release(struct fetch_aws_creds *c)
{
	if (!c)
		return;
	free(c->key_id);
	free(c->secret);
	free(c->token);
	memset(c, 0, sizeof(*c));
}

/* Fills *c with copies (a NULL or empty token: none). */
static void creds_set(struct fetch_aws_creds *c, const char *id, const char *secret,
		      const char *token, int64_t expires, const char *source)
{
	c->key_id = xstrdup(id);
	c->secret = xstrdup(secret);
	c->token = token && *token ? xstrdup(token) : NULL;
	c->expires = expires;
	c->source = source;
}

static void creds_copy(struct fetch_aws_creds *to,
		       const struct fetch_aws_creds *from)
{
	creds_set(to, from->key_id, from->secret, from->token, from->expires, from->source);
}

/* Keys and tokens go into headers: printable ASCII, no spaces. */
static int token_ok(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return n > 0 && n <= max;
}

/* A key pair and its optional session token (NULL or empty: none). */
static int keys_ok(const char *id, const char *secret, const char *token)
{
	return token_ok(id, 128) && token_ok(secret, 256) &&
	       (!token || !*token || token_ok(token, 8192));
}

int fetch_aws_time_parse(const char *s, int64_t *t)
{
	int64_t us;

	if (clock_parse_rfc3339(s, &us) < 0)
		return -1;
	*t = us / 1000000;
	return 0;
}

int fetch_aws_creds_parse(const char *text, size_t len,
			  struct fetch_aws_creds *c, struct err *err)
{
	const char *id, *secret, *token, *exp, *code;
	json_error_t jerr;
	json_t *j, *tok;
	int64_t t = 0;
	int rc = -1;

	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		err_set(err, ERR_PROTOCOL, "credentials are not a json object");
		goto out;
	}
	code = json_string_value(json_object_get(j, "Code"));
	if (json_object_get(j, "Code") && (!code || strcmp(code, "Success"))) {
		err_set(err, ERR_PROTOCOL, "credentials answer has Code '%.40s'",
			code ? code : "?");
		goto out;
	}
	id = json_string_value(json_object_get(j, "AccessKeyId"));
	secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	token = json_string_value(json_object_get(j, "Token"));
	exp = json_string_value(json_object_get(j, "Expiration"));
	if (!id || !secret || !token_ok(id, 128) || !token_ok(secret, 256)) {
		err_set(err, ERR_PROTOCOL, "credentials lack a valid AccessKeyId "
			"and SecretAccessKey");
		goto out;
	}
	tok = json_object_get(j, "Token");
	if (tok && !json_is_null(tok) &&
	    (!token || (*token && !token_ok(token, 8192)))) {
		err_set(err, ERR_PROTOCOL, "credentials have a bad Token");
		goto out;
	}
	if (json_object_get(j, "Expiration") &&
	    (!exp || fetch_aws_time_parse(exp, &t) < 0)) {
		err_set(err, ERR_PROTOCOL, "credentials have a bad Expiration '%.40s'",
			exp ? exp : "?");
		goto out;
	}
	memset(c, 0, sizeof(*c));
	creds_set(c, id, secret, token, t, NULL);
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* A key pair from two settings. 1 found, 0 neither set, -1 half set. */
static int from_env(const char *id_var, const char *secret_var,
		    const char *token_var, struct fetch_aws_creds *c,
		    struct err *err)
{
	const char *id = fetch_env(id_var), *secret = fetch_env(secret_var),
		   *token = fetch_env(token_var);

	if (!id && !secret)
		return 0;
	if (!id || !secret)
		return err_set(err, ERR_INVALID, "%s is set but %s is not",
			       id ? id_var : secret_var, id ? secret_var : id_var);
	if (!keys_ok(id, secret, token))
		return err_set(err, ERR_INVALID, "bad characters in %s, %s or %s",
			       id_var, secret_var, token_var);
	creds_set(c, id, secret, token, 0, id_var);
	return 1;
}

/* Keys of the profile in `text` (one shared file). 1 found, 0 none. */
static int keys_in(const char *text, size_t len, const char *section,
		   struct fetch_aws_creds *c, const char *source,
		   struct err *err)
{
	char id[160], secret[300], *token = xmalloc(8200);
	int ret = 0;

	if (!fetch_aws_ini_get(text, len, section, "aws_access_key_id", id,
			       sizeof(id)) ||
	    !fetch_aws_ini_get(text, len, section, "aws_secret_access_key",
			       secret, sizeof(secret)))
		goto out;
	if (!fetch_aws_ini_get(text, len, section, "aws_session_token", token, 8200))
		token[0] = 0;
	if (!keys_ok(id, secret, token)) {
		ret = err_set(err, ERR_INVALID, "bad aws_access_key_id, "
			      "aws_secret_access_key or aws_session_token in %s",
			      source);
		goto out;
	}
	creds_set(c, id, secret, token, 0, source);
	ret = 1;
out:
	free(token);
	return ret;
}

/* The profile: the credentials file ([NAME]) first, then the config
 * file ([profile NAME]). A profile named by AWS_PROFILE must exist. */
static int from_profile(struct fetch_aws_creds *c, struct err *err)
{
	char cred[PATH_MAX], conf[PATH_MAX], section[300];
	const char *name = profile_name();
	char *text;
	size_t len;
	int r = 0, seen = 0;

	profile_paths(cred, conf);
	if (cred[0] && (text = read_small(cred, &len))) {
		seen = fetch_aws_ini_get(text, len, name, NULL, NULL, 0);
		r = keys_in(text, len, name, c, "AWS_SHARED_CREDENTIALS_FILE", err);
		free(text);
		if (r)
			return r;
	}
	config_section(name, section);
	if (conf[0] && (text = read_small(conf, &len))) {
		seen |= fetch_aws_ini_get(text, len, section, NULL, NULL, 0);
		r = keys_in(text, len, section, c, "AWS_CONFIG_FILE", err);
		free(text);
		if (r)
			return r;
	}
	if (!seen && (fetch_env("AWS_PROFILE") || fetch_env("AWS_DEFAULT_PROFILE")))
		return err_set(err, ERR_INVALID, "aws profile '%.100s' not found in "
			       "'%.150s' or '%.150s'", name, cred, conf);
	return 0;
}

/* Whether an http:// container-provider URL may be used: loopback or
 * the addresses ECS and EKS serve credentials on. */
static int container_host_ok(const char *url)
{
	static const char *const ok[] = { "169.254.170.2", "169.254.170.23",
		"[fd00:ec2::23]", "localhost", "[::1]" };
	CURLU *u = curl_url();
	char *host = NULL, *scheme = NULL;
	int good = 0;
	size_t i;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (!strcasecmp(scheme, "https"))
			good = 1;
		else if (!strcasecmp(scheme, "http")) {
			good = !strncmp(host, "127.", 4);
			for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
				good |= !strcasecmp(host, ok[i]);
		}
	}
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return good;
}

/* The container provider's URL into `url`; 0 when not configured. */
static int container_url(char *url, size_t cap, struct err *err)
{
	const char *rel = fetch_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = fetch_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	if (rel) {
		if (rel[0] != '/' || strpbrk(rel, " \r\n#"))
			return err_set(err, ERR_INVALID, "bad "
				       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
		snprintf(url, cap, "%s%s", fetch_container_base, rel);
		return 1;
	}
	if (!full)
		return 0;
	if (strlen(full) >= cap || !container_host_ok(full))
		return err_set(err, ERR_INVALID, "AWS_CONTAINER_CREDENTIALS_FULL_URI "
			       "must be https:// or http:// to a loopback or "
			       "container credentials address");
	snprintf(url, cap, "%s", full);
	return 1;
}

/* The container provider's Authorization value into `out`, "" = none. */
static int container_auth(char *out, size_t cap, struct err *err)
{
	const char *file = fetch_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = fetch_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	size_t n = 0;
	char *text;

	out[0] = 0;
	if (file) {
		text = read_small(file, &n);
		if (!text)
			return err_set(err, ERR_INVALID, "cannot read "
				       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '%.200s': %s",
				       file, strerror(errno));
		n = trim_end(text, n);
		text[n] = 0;
		snprintf(out, cap, "%s", text);
		free(text);
	} else if (tok) {
		snprintf(out, cap, "%s", tok);
	}
	if (strpbrk(out, "\r\n") || strlen(out) >= cap - 1)
		return err_set(err, ERR_INVALID, "bad container authorization token");
	return 0;
}

/* Status of a provider answer to err (never a body: it may hold keys). */
static int provider_status(long status, const char *what, struct err *err)
{
	return err_set(err, status >= 500 || status == 429 ? ERR_UNAVAILABLE :
		       ERR_AUTH, "%s answered http status %ld", what, status);
}

/* Keys from a provider's answer `resp` into *c, with `what` as their
 * source. Returns 0, or -1 with err. */
static int provider_creds(const struct fetch_response *resp, const char *what,
			  struct fetch_aws_creds *c, struct err *err)
{
	if (resp->status != 200)
		return provider_status(resp->status, what, err);
	if (fetch_aws_creds_parse(resp->body.data, resp->body.len, c, err) < 0)
		return err_wrap(err, "%s", what);
	c->source = what;
	return 0;
}

static int from_container(const char *url, struct fetch_aws_creds *c,
			  struct err *err)
{
	struct fetch_request req = { 0 };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	char auth[4200], line[4300];
	const char *headers[3] = { "Accept: application/json", NULL, NULL };
	int ret = -1;

	if (container_auth(auth, sizeof(auth), err) < 0)
		return -1;
	if (auth[0]) {
		snprintf(line, sizeof(line), "Authorization: %s", auth);
		headers[1] = line;
	}
	req.url = url;
	req.headers = headers;
	req.timeout_s = CONTAINER_TIMEOUT_S;
	req.no_follow = 1;
	if (fetch_http_trusted(&req, &resp, err) < 0)
		err_wrap(err, "container credentials provider");
	else
		ret = provider_creds(&resp, "container credentials provider", c, err);
	fetch_response_release(&resp);
	return ret;
}

/* The IMDS endpoint (no trailing '/') into `out`. */
static void imds_endpoint(char *out, size_t cap)
{
	const char *ep = fetch_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = fetch_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	size_t n;

	if (!ep)
		ep = mode && !strcasecmp(mode, "IPv6") ? "http://[fd00:ec2::254]" :
		     "http://169.254.169.254";
	snprintf(out, cap, "%s", ep);
	n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = 0;
}

static double imds_timeout(void)
{
	const char *v = fetch_env("AWS_METADATA_SERVICE_TIMEOUT");
	double t = v ? strtod(v, NULL) : 1;

	return t > 0 && t <= 60 ? t : 1;
}

static int imds_attempts(void)
{
	const char *v = fetch_env("AWS_METADATA_SERVICE_NUM_ATTEMPTS");
	long n = v ? strtol(v, NULL, 10) : 1;

	return n >= 1 && n <= 10 ? (int)n : 1;
}

/* One IMDS request; retried on network errors and 5xx. */
static int imds_call(const char *method, const char *url,
		     const char *const *headers, struct fetch_response *resp,
		     struct err *err)
{
	struct fetch_request req = { 0 };
	int i, n = imds_attempts(), rc = -1;

	req.method = method;
	req.url = url;
	req.headers = headers;
	req.timeout_s = imds_timeout();
	req.no_follow = 1;
	for (i = 0; i < n; i++) {
		rc = fetch_http_trusted(&req, resp, err);
		if (rc == 0 && resp->status < 500)
			break;
	}
	return rc;
}

/* IMDSv2: PUT a session token, GET the role name, GET its keys. 1 got
 * keys, 0 no IMDS or no role here (the chain ends), -1 failed. */
static int from_imds(const char *ep, struct fetch_aws_creds *c,
		     char *why, size_t whycap, struct err *err)
{
	static const char *const ttl[] = {
		"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	const char *headers[2] = { NULL, NULL };
	char url[600], *tokline = NULL, role[130];
	struct err le = { 0 };
	size_t n, i;
	int ret = -1;

	snprintf(url, sizeof(url), "%s/latest/api/token", ep);
	if (imds_call("PUT", url, ttl, &resp, &le) < 0) {
		if (le.code == ERR_TIMEOUT) {
			/* maybe a slow IMDS, maybe none that answers: retry
			 * later rather than fail the job for good */
			err_set(err, ERR_TIMEOUT, "instance metadata service: %s",
				le.msg);
			goto out;
		}
		/* nothing there: not on EC2 */
		snprintf(why, whycap, "instance metadata unreachable at %.200s", ep);
		ret = 0;
		goto out;
	}
	if (resp.status != 200) {
		if (resp.status >= 500) {
			provider_status(resp.status, "instance metadata service", err);
			goto out;
		}
		snprintf(why, whycap, "instance metadata at %.200s refused a "
			 "token (http status %ld)", ep, resp.status);
		ret = 0;
		goto out;
	}
	n = trim_end(resp.body.data, resp.body.len);
	resp.body.data[n] = 0;
	if (!token_ok(resp.body.data, 4096)) {
		err_set(err, ERR_PROTOCOL, "instance metadata service: bad token");
		goto out;
	}
	tokline = xasprintf("X-aws-ec2-metadata-token: %s", resp.body.data);
	headers[0] = tokline;
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/",
		 ep);
	if (imds_call("GET", url, headers, &resp, err) < 0) {
		err_wrap(err, "instance metadata service");
		goto out;
	}
	if (resp.status == 404) {
		snprintf(why, whycap, "no instance role at %.200s", ep);
		ret = 0;
		goto out;
	}
	if (resp.status != 200) {
		provider_status(resp.status, "instance metadata service", err);
		goto out;
	}
	/* the first line names the role */
	for (n = 0; n < resp.body.len && n < sizeof(role) - 1 &&
	     resp.body.data[n] != '\n' && resp.body.data[n] != '\r'; n++)
		role[n] = resp.body.data[n];
	role[n] = 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)role[i]) && !strchr("+=,.@_-", role[i]))
			break;
	if (!n || i < n) {
		err_set(err, ERR_PROTOCOL, "instance metadata service: bad role name");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s",
		 ep, role);
	if (imds_call("GET", url, headers, &resp, err) < 0)
		err_wrap(err, "instance metadata service");
	else if (provider_creds(&resp, "instance metadata service", c, err) == 0)
		ret = 1;
out:
	free(tokline);
	fetch_response_release(&resp);
	return ret;
}

/* Temporary keys of the container provider or IMDS, with the provider
 * (its URL) they came from. */
static struct {
	pthread_mutex_t mu;
	char key[700];
	struct fetch_aws_creds c;
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

void fetch_aws_creds_forget(void)
{
	pthread_mutex_lock(&cache.mu);
	fetch_aws_creds_release(&cache.c);
	cache.key[0] = 0;
	pthread_mutex_unlock(&cache.mu);
}

/* Temporary keys from the provider `key` names: cached while fresh, else
 * fetched from `where` (the container provider's URL, or the IMDS
 * endpoint when `imds`). 1 got, 0 none (IMDS absent; `why` says so), -1
 * error. */
static int cached(const char *key, int imds, const char *where,
		  struct fetch_aws_creds *c, char *why, size_t whycap,
		  struct err *err)
{
	struct fetch_aws_creds fresh = { 0 };
	int64_t now = (int64_t)time(NULL);
	int r;

	pthread_mutex_lock(&cache.mu);
	if (cache.c.key_id && !strcmp(cache.key, key) &&
	    now < cache.c.expires - REFRESH_MARGIN_S) {
		creds_copy(c, &cache.c);
		r = 1;
		goto out;
	}
	if (imds)
		r = from_imds(where, &fresh, why, whycap, err);
	else
		r = from_container(where, &fresh, err) < 0 ? -1 : 1;
	if (r < 0 && cache.c.key_id && !strcmp(cache.key, key) &&
	    now < cache.c.expires) {
		/* the provider hiccupped; the old keys still work */
		creds_copy(c, &cache.c);
		r = 1;
		goto out;
	}
	if (r <= 0)
		goto out;
	if (fresh.expires > now + REFRESH_MARGIN_S) {
		fetch_aws_creds_release(&cache.c);
		creds_copy(&cache.c, &fresh);
		snprintf(cache.key, sizeof(cache.key), "%s", key);
	}
	*c = fresh;
	memset(&fresh, 0, sizeof(fresh));
out:
	pthread_mutex_unlock(&cache.mu);
	fetch_aws_creds_release(&fresh);
	return r;
}

int fetch_aws_creds_get(struct fetch_aws_creds *c, struct err *err)
{
	char url[600], key[700], why[300] = "", cred[PATH_MAX], conf[PATH_MAX];
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = from_env("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY",
			  "S3_SESSION_TOKEN", c, err)))
		return r < 0 ? -1 : 0;
	if ((r = from_env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
			  "AWS_SESSION_TOKEN", c, err)))
		return r < 0 ? -1 : 0;
	if ((r = from_profile(c, err)))
		return r < 0 ? -1 : 0;
	if ((r = container_url(url, sizeof(url), err)) < 0)
		return -1;
	if (r) {
		snprintf(key, sizeof(key), "container %s", url);
		return cached(key, 0, url, c, why, sizeof(why), err) < 0 ? -1 : 0;
	}
	if (fetch_env_true("AWS_EC2_METADATA_DISABLED")) {
		snprintf(why, sizeof(why), "instance metadata disabled "
			 "(AWS_EC2_METADATA_DISABLED)");
	} else {
		imds_endpoint(url, sizeof(url));
		snprintf(key, sizeof(key), "imds %s", url);
		r = cached(key, 1, url, c, why, sizeof(why), err);
		if (r)
			return r < 0 ? -1 : 0;
	}
	profile_paths(cred, conf);
	return err_set(err, ERR_INVALID, "no s3 credentials: none in "
		       "S3_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID, profile '%.64s' "
		       "('%.120s'), no AWS_CONTAINER_CREDENTIALS_*_URI, %s",
		       profile_name(), cred, why);
}
