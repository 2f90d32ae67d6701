/* net.c - which addresses outbound requests may connect to.
 *
 * Every address is handled as 16 bytes, IPv4 as ::ffff:a.b.c.d, so one
 * prefix table covers both families. The check runs on the sockaddr that
 * is about to be connected (http.c's open-socket callback), after DNS, so
 * a name that resolves to a private address, or re-resolves to one
 * (rebinding), is refused all the same.
 */
#include "fetch/fetch.h"

#include "base/mem.h"
#include "fetch/priv.h"
#include "job/job.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct net {
	const char *cidr;
	unsigned char addr[16];
	int bits;
};

/* Parses "ADDR" or "ADDR/BITS" into the 128-bit form. */
static int parse_cidr(const char *s, unsigned char addr[16], int *bits)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	struct in_addr a4;
	int max, b = -1;
	char *end;
	long v;

	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = 0;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &a4, 4);
		max = 32;
	} else if (inet_pton(AF_INET6, host, addr) == 1) {
		max = 128;
	} else {
		return -1;
	}
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		v = strtol(slash + 1, &end, 10);
		if (*end || v < 0 || v > max || end - slash > 4)
			return -1;
		b = (int)v;
	} else {
		b = max;
	}
	*bits = max == 32 ? b + 96 : b;
	return 0;
}

static int in_prefix(const unsigned char a[16], const unsigned char p[16],
		     int bits)
{
	int full = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, p, (size_t)full))
		return 0;
	if (!rest)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (p[full] & mask);
}

/* Tables are parsed once; their strings are constants checked by the unit
 * tests, so a failure here is a programmer error. */
static int table_in(const char *const *cidrs, const unsigned char a[16])
{
	unsigned char p[16];
	int bits;

	for (; *cidrs; cidrs++)
		if (parse_cidr(*cidrs, p, &bits) == 0 && in_prefix(a, p, bits))
			return 1;
	return 0;
}

static const char *const restricted[] = {
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
	"169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	"100::/64", NULL
};
static const char *const metadata[] = {
	"169.254.169.254/32", "fd00:ec2::254/128", NULL
};

static const struct {
	const char *name;
	const char *const cidrs[6];
} keywords[] = {
	{ "loopback", { "127.0.0.0/8", "::1/128" } },
	{ "private", { "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		       "100.64.0.0/10", "fc00::/7" } },
	{ "link-local", { "169.254.0.0/16", "fe80::/10" } },
	{ "metadata", { "169.254.169.254/32", "fd00:ec2::254/128" } },
};

static int add_net(struct fetch_allow *a, const char *cidr, int keyword,
		   const char *item, struct err *err)
{
	if (a->n >= FETCH_ALLOW_MAX)
		return err_set(err, ERR_INVALID,
			       "too many entries in ALLOW_PRIVATE_NETWORKS (max %d)",
			       FETCH_ALLOW_MAX);
	if (parse_cidr(cidr, a->nets[a->n].addr, &a->nets[a->n].bits) < 0)
		return err_set(err, ERR_INVALID,
			       "bad ALLOW_PRIVATE_NETWORKS entry '%.64s' (want loopback, "
			       "private, link-local, metadata, all, none or a CIDR)", item);
	a->nets[a->n].keyword = keyword;
	a->n++;
	return 0;
}

int fetch_allow_parse(const char *spec, struct fetch_allow *out,
		      struct err *err)
{
	struct fetch_allow a;
	char item[80];
	const char *p = spec ? spec : "", *end;
	size_t i, j, n;
	int metadata_kw;

	memset(&a, 0, sizeof(a));
	while (*p) {
		end = p + strcspn(p, ",");
		/* trim spaces around the item */
		while (p < end && isspace((unsigned char)*p))
			p++;
		n = (size_t)(end - p);
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n >= sizeof(item))
			return err_set(err, ERR_INVALID,
				       "bad ALLOW_PRIVATE_NETWORKS entry '%.64s...'", p);
		memcpy(item, p, n);
		item[n] = 0;
		p = *end ? end + 1 : end;
		if (!n || !strcasecmp(item, "none"))
			continue;
		if (!strcasecmp(item, "all")) {
			a.all = 1;
			continue;
		}
		for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
			if (!strcasecmp(item, keywords[i].name))
				break;
		if (i < sizeof(keywords) / sizeof(keywords[0])) {
			metadata_kw = !strcmp(keywords[i].name, "metadata");
			for (j = 0; keywords[i].cidrs[j]; j++)
				if (add_net(&a, keywords[i].cidrs[j], !metadata_kw,
					    item, err) < 0)
					return -1;
			continue;
		}
		if (add_net(&a, item, 0, item, err) < 0)
			return -1;
	}
	*out = a;
	return 0;
}

/* The address a translation form carries: IPv4-mapped, NAT64, 6to4 and
 * the deprecated IPv4-compatible form all reach an IPv4 host. */
static void effective(const unsigned char in[16], unsigned char out[16])
{
	static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	static const unsigned char zero[12];

	memcpy(out, in, 16);
	if (!memcmp(in, nat64, 12) ||
	    (!memcmp(in, zero, 12) && (in[12] | in[13]) != 0)) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, in + 12, 4);
	} else if (in[0] == 0x20 && in[1] == 0x02) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, in + 2, 4);
	}
}

int fetch_addr_allowed(const struct fetch_allow *allow,
		       const struct sockaddr *sa, socklen_t len)
{
	unsigned char raw[16], a[16];
	int i, meta;

	memset(raw, 0, sizeof(raw));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		raw[10] = raw[11] = 0xff;
		memcpy(raw + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 &&
		   len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		memcpy(raw, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else {
		return 0;
	}
	effective(raw, a);
	if (allow && allow->all)
		return 1;
	if (!table_in(restricted, a) && !table_in(restricted, raw))
		return 1;
	if (!allow)
		return 0;
	meta = table_in(metadata, a) || table_in(metadata, raw);
	for (i = 0; i < allow->n; i++) {
		if (meta && allow->nets[i].keyword)
			continue;
		if (in_prefix(a, allow->nets[i].addr, allow->nets[i].bits))
			return 1;
	}
	return 0;
}

int fetch_check_settings(struct err *err)
{
	struct fetch_allow a;

	if (fetch_allow_parse(job_settings.allow_private, &a, err) < 0)
		return -1;
	if (fetch_s3_check_settings(err) < 0)
		return -1;
	return fetch_gcs_check_settings(err);
}

static int host_refused(const char *host, const struct fetch_allow *a)
{
	size_t n = strlen(host);

	while (n && host[n - 1] == '.')
		n--;
	if (a->all)
		return 0;
	/* Only this one needs a name check: its address is caught anyway,
	 * but a clear message beats "address refused". */
	return n == strlen("metadata.google.internal") &&
	       !strncasecmp(host, "metadata.google.internal", n);
}

int fetch_url_check(const char *url, struct err *err)
{
	struct fetch_allow a;
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if (!url || (!!strncasecmp(url, "http://", 7) &&
		     !!strncasecmp(url, "https://", 8))) {
		err_set(err, ERR_INVALID, "url '%.200s' must be http:// or https://",
			url ? url : "");
		goto out;
	}
	if (strlen(url) > 8192) {
		err_set(err, ERR_INVALID, "url too long");
		goto out;
	}
	if (fetch_curl_load(err) < 0)
		goto out;
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		err_set(err, ERR_INVALID, "bad url '%.200s'", url);
		goto out;
	}
	if (fetch_allow_parse(job_settings.allow_private, &a, err) < 0)
		goto out;
	rc = host_refused(host, &a)
		     ? err_set(err, ERR_INVALID, "refused host '%s' (metadata server)", host)
		     : 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}
