/* jobload - submits http.request jobs to a real wakeq-api at a steady rate
 * for the chaos tests, and writes down every answer.
 *
 *   jobload --api URL --token T --hit URL --out FILE [--rate R] [--count N]
 *           [--seconds S] [--ms MS] [--prefix P] [--lanes L]
 *           [--max-attempts M] [--timeout S] [--queue Q]
 *
 * Job i (from 1) is {"type":"http.request","payload":{"url":
 * "HIT?k=P-i&ms=MS"},"idempotency_key":"P-i", ...}: it calls the counting
 * endpoint (tests/tools/hitcount.c) with its own key. Jobs go out at R a
 * second (default 50) over L keep-alive connections (default 2, each
 * request waiting for its answer), until N jobs (default unbounded), S
 * seconds (default unbounded) or SIGTERM/SIGINT, whichever comes first.
 * Each answer is one line of FILE:
 *   KEY STATUS ID RETRY_AFTER ERROR_CODE JSON_OK SENT_US LATENCY_MS
 * STATUS is 0 when no HTTP answer came (connection refused, timeout); ID,
 * RETRY_AFTER and ERROR_CODE are "-" when absent; JSON_OK is 1 when the
 * body was a JSON object (with "error":{"code"} for an error status).
 * A refused job is never sent again: a test can then check that nothing
 * of it remains. Ends with one line on stdout:
 *   {"sent":N,"accepted":A,"unavailable":U,"other":O} */
#include "base/clock.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *api, *token, *hit, *prefix = "j", *queue;
static double rate = 50, seconds, req_timeout = 30;
static long count = -1, ms, max_attempts;
static int lanes = 2;
static FILE *out;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_long next_i;
static atomic_int stop;
static atomic_long n_sent, n_acc, n_unav, n_other;
static int64_t t0_us;

struct answer {
	char body[8192];
	size_t len;
	char retry_after[32];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct answer *a = ctx;
	size_t len = sz * n, room = sizeof(a->body) - 1 - a->len;

	memcpy(a->body + a->len, p, len < room ? len : room);
	a->len += len < room ? len : room;
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
	struct answer *a = ctx;
	size_t len = sz * n, i = 12, j = 0;

	if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (i < len && p[i] != '\r' && p[i] != '\n' && p[i] != ' ' &&
		       j + 1 < sizeof(a->retry_after))
			a->retry_after[j++] = p[i++];
		a->retry_after[j] = 0;
	}
	return len;
}

static void sleep_until_us(int64_t t)
{
	int64_t now;

	while (!atomic_load(&stop) && (now = clock_mono_us()) < t) {
		int64_t d = t - now > 100000 ? 100000 : t - now;
		struct timespec ts = { d / 1000000, (d % 1000000) * 1000 };

		nanosleep(&ts, NULL);
	}
}

static void *lane(void *arg)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], auth[512], key[160], body[1024], qf[160];
	long i;

	(void)arg;
	snprintf(url, sizeof(url), "%s/v1/jobs", api);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(req_timeout * 1000));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	qf[0] = 0;
	if (queue)
		snprintf(qf, sizeof(qf), ",\"queue\":\"%s\"", queue);
	while (!atomic_load(&stop)) {
		struct answer a = { .len = 0 };
		json_t *doc = NULL, *v;
		const char *id = "-", *ecode = "-";
		int64_t sent, lat;
		long status = 0;
		int json_ok = 0;

		i = atomic_fetch_add(&next_i, 1) + 1;
		if (count >= 0 && i > count)
			break;
		sleep_until_us(t0_us + (int64_t)((double)(i - 1) * 1e6 / rate));
		if (atomic_load(&stop))
			break;
		if (seconds > 0 && clock_mono_us() - t0_us > (int64_t)(seconds * 1e6))
			break;
		snprintf(key, sizeof(key), "%s-%ld", prefix, i);
		snprintf(body, sizeof(body),
			 "{\"type\":\"http.request\",\"payload\":{\"url\":"
			 "\"%s?k=%s&ms=%ld\"},\"idempotency_key\":\"%s\"%s",
			 hit, key, ms, key, qf);
		if (max_attempts > 0)
			snprintf(body + strlen(body), sizeof(body) - strlen(body),
				 ",\"max_attempts\":%ld", max_attempts);
		strncat(body, "}", sizeof(body) - strlen(body) - 1);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
		sent = clock_now_us();
		lat = clock_mono_us();
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		lat = (clock_mono_us() - lat) / 1000;
		a.body[a.len] = 0;
		doc = json_loads(a.body, 0, NULL);
		if (json_is_object(doc)) {
			v = json_object_get(doc, "id");
			if (json_is_string(v))
				id = json_string_value(v);
			v = json_object_get(json_object_get(doc, "error"), "code");
			if (json_is_string(v))
				ecode = json_string_value(v);
			json_ok = status < 400 || strcmp(ecode, "-");
		}
		atomic_fetch_add(&n_sent, 1);
		if (status == 200 || status == 202)
			atomic_fetch_add(&n_acc, 1);
		else if (status == 503)
			atomic_fetch_add(&n_unav, 1);
		else
			atomic_fetch_add(&n_other, 1);
		pthread_mutex_lock(&out_mu);
		fprintf(out, "%s %ld %s %s %s %d %lld %lld\n", key, status, id,
			a.retry_after[0] ? a.retry_after : "-", ecode, json_ok,
			(long long)sent, (long long)lat);
		fflush(out);
		pthread_mutex_unlock(&out_mu);
		json_decref(doc);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

int main(int argc, char **argv)
{
	const char *out_path = NULL;
	pthread_t th[64];
	struct sigaction sa;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--api")) api = v;
		else if (!strcmp(k, "--token")) token = v;
		else if (!strcmp(k, "--hit")) hit = v;
		else if (!strcmp(k, "--out")) out_path = v;
		else if (!strcmp(k, "--rate")) rate = atof(v);
		else if (!strcmp(k, "--count")) count = atol(v);
		else if (!strcmp(k, "--seconds")) seconds = atof(v);
		else if (!strcmp(k, "--ms")) ms = atol(v);
		else if (!strcmp(k, "--prefix")) prefix = v;
		else if (!strcmp(k, "--lanes")) lanes = atoi(v);
		else if (!strcmp(k, "--max-attempts")) max_attempts = atol(v);
		else if (!strcmp(k, "--timeout")) req_timeout = atof(v);
		else if (!strcmp(k, "--queue")) queue = v;
		else {
			fprintf(stderr, "jobload: unknown option '%s'\n", k);
			return 2;
		}
	}
	if (!api || !token || !hit || !out_path || rate <= 0 || lanes < 1 ||
	    lanes > 64) {
		fprintf(stderr, "usage: jobload --api URL --token T --hit URL --out FILE "
			"[--rate R] [--count N] [--seconds S] [--ms MS] [--prefix P] "
			"[--lanes L] [--max-attempts M] [--timeout S] [--queue Q]\n");
		return 2;
	}
	out = fopen(out_path, "a");
	if (!out) {
		perror(out_path);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	t0_us = clock_mono_us();
	for (i = 0; i < lanes; i++)
		pthread_create(&th[i], NULL, lane, NULL);
	for (i = 0; i < lanes; i++)
		pthread_join(th[i], NULL);
	fclose(out);
	printf("{\"sent\":%ld,\"accepted\":%ld,\"unavailable\":%ld,\"other\":%ld}\n",
	       atomic_load(&n_sent), atomic_load(&n_acc), atomic_load(&n_unav),
	       atomic_load(&n_other));
	curl_global_cleanup();
	return 0;
}
