/* fuzz_url - the parsers of outside URLs and policies in internal/fetch and
 * internal/webhook. The first byte picks the parser:
 *   'a' ALLOW_PRIVATE_NETWORKS (fetch_allow_parse + address checks)
 *   'f' file:// inputs: a success must name a file inside DATA_DIR
 *   's' s3:// URLs (fetch_s3_url)
 *   'u' outbound http(s) URLs (fetch_url_check)
 *   'w' X-Wakeq-Signature headers (webhook_verify)
 * Anything else runs every parser. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "job/job.h"
#include "webhook/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[PATH_MAX];

static char made[PATH_MAX];

static void cleanup(void)
{
	char p[PATH_MAX + 16];

	snprintf(p, sizeof(p), "%s/a.mp4", made);
	unlink(p);
	snprintf(p, sizeof(p), "%s/sub", made);
	rmdir(p);
	rmdir(made);
}

static void init(void)
{
	char dir[] = "/tmp/wakeq-fuzz-url.XXXXXX", file[PATH_MAX];
	FILE *f;

	if (root[0])
		return;
	if (!mkdtemp(dir))
		abort();
	snprintf(file, sizeof(file), "%s/a.mp4", dir);
	f = fopen(file, "w");
	if (f)
		fclose(f);
	snprintf(file, sizeof(file), "%s/sub", dir);
	mkdir(file, 0755);
	if (!realpath(dir, root))
		abort();
	snprintf(made, sizeof(made), "%s", dir);
	atexit(cleanup);
	job_settings.data_dir = strdup(dir);
	job_settings.tmp_dir = job_settings.data_dir;
	setenv("S3_ENDPOINT", "http://127.0.0.1:9000", 1);
}

static void allow(const char *s)
{
	static const char *const ips[] = { "127.0.0.1", "10.1.2.3", "8.8.8.8",
		"169.254.169.254", "::1", "fd00:ec2::254", "2001:db8::1",
		"::ffff:192.168.0.1" };
	struct fetch_allow a;
	struct sockaddr_in s4 = { 0 };
	struct sockaddr_in6 s6 = { 0 };
	size_t i;

	if (fetch_allow_parse(s, &a, NULL) < 0)
		return;
	if (a.n < 0 || a.n > FETCH_ALLOW_MAX)
		abort();
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		if (inet_pton(AF_INET, ips[i], &s4.sin_addr) == 1) {
			s4.sin_family = AF_INET;
			fetch_addr_allowed(&a, (struct sockaddr *)&s4, sizeof(s4));
		} else if (inet_pton(AF_INET6, ips[i], &s6.sin6_addr) == 1) {
			s6.sin6_family = AF_INET6;
			fetch_addr_allowed(&a, (struct sockaddr *)&s6, sizeof(s6));
		}
	}
}

static void file_url(const char *s)
{
	struct fetch_input in = { .path = "" };
	char url[PATH_MAX + 8], proc[64], real[PATH_MAX];
	size_t n = strlen(root);
	ssize_t len;

	snprintf(url, sizeof(url), "file://%s", s);
	if (fetch_input_open(url, &in, NULL, NULL) == 0) {
		/* the one property that matters: what was opened lies inside
		 * DATA_DIR */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in.fd);
		len = readlink(proc, real, sizeof(real) - 1);
		if (len <= 0)
			abort();
		real[len] = 0;
		if (strncmp(real, root, n) || (real[n] && real[n] != '/'))
			abort();
		fetch_input_release(&in);
	}
}

static void s3(const char *s)
{
	char url[4200], *u = NULL;

	snprintf(url, sizeof(url), "s3://%s", s);
	if (fetch_s3_url(url, &u, NULL) == 0) {
		if (strncmp(u, "http://127.0.0.1:9000/", 22))
			abort();
		free(u);
	}
}

static void verify(const char *s)
{
	webhook_verify("secret", s, "{}", 2, 1700000000, 300, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1 || size > 4096)
		return 0;
	init();
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = 0;
	switch (data[0]) {
	case 'a': allow(s); break;
	case 'f': file_url(s); break;
	case 's': s3(s); break;
	case 'u': fetch_url_check(s, NULL); break;
	case 'w': verify(s); break;
	default:
		allow(s);
		file_url(s);
		s3(s);
		fetch_url_check(s, NULL);
		verify(s);
	}
	free(s);
	return 0;
}
