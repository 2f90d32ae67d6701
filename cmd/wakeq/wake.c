/* wakeq wake URL: one POST to a worker's /wake. */
#include "base/parse.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wakeq_cmd_wake(int argc, char **argv);

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	fwrite(p, size, n, (FILE *)ud);
	return size * n;
}

int wakeq_cmd_wake(int argc, char **argv)
{
	const char *url = NULL, *token = getenv("WAKE_TOKEN");
	double timeout = 3600;
	struct curl_slist *hdr = NULL;
	char auth[1024];
	long status = 0;
	CURLcode cr;
	CURL *c;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--token") && i + 1 < argc) {
			token = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (parse_seconds(argv[++i], 0.001, 86400, &timeout) < 0) {
				fprintf(stderr, "wakeq: bad --timeout '%s'\n", argv[i]);
				return 2;
			}
		} else if (argv[i][0] != '-' && !url) {
			url = argv[i];
		} else {
			fprintf(stderr, "wakeq: usage: wakeq wake URL [--token T] [--timeout S]\n");
			return 2;
		}
	}
	if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
		fprintf(stderr, "wakeq: wake needs an http(s) URL\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c = curl_easy_init();
	if (!c)
		return 1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, stdout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (token && *token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	}
	cr = curl_easy_perform(c);
	if (cr == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	if (cr != CURLE_OK) {
		fprintf(stderr, "wakeq: cannot wake '%s': %s\n", url, curl_easy_strerror(cr));
		return 1;
	}
	printf("\n");
	if (status < 200 || status > 299) {
		fprintf(stderr, "wakeq: '%s' answered HTTP %ld\n", url, status);
		return 1;
	}
	return 0;
}
