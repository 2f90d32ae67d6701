/* request.c - the POST /v1/jobs body: strict parsing, field by field, so
 * that a bad request is refused at the door with a message naming the
 * field, and nothing reaches Redis or Postgres. Fuzzed by
 * tests/fuzz/fuzz_api_request.c. */
#include "api/api.h"

#include "job/job.h"
#include "queue/queue.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_DELAY_S (366.0 * 86400)
#define MAX_TIMEOUT_S (7.0 * 86400)
#define IDEM_MAX 200
#define URL_MAX 2048

static const char *const known_fields[] = {
	"type", "payload", "queue", "priority", "delay_s", "run_at",
	"max_attempts", "timeout_s", "idempotency_key", "callback_url", NULL
};

int api_idem_key_ok(const char *key)
{
	size_t i, n = strlen(key);

	if (n == 0 || n > IDEM_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
			return 0;
	return 1;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int api_time_parse(const char *s, int64_t *us)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 1000000, t;
	const char *p = s;

	memset(&tm, 0, sizeof(tm));
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		int n = 0;

		p++;
		while (*p >= '0' && *p <= '9') {
			if (n < 6) {
				frac = frac * 10 + (*p - '0');
				scale /= 10;
			}
			n++;
			p++;
		}
		if (n == 0)
			return -1;
		frac *= scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*p || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	if (t < 0)
		return -1;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*us = t * 1000000 + frac;
	return 0;
}

static int bad(struct err *err, const char **code, const char *c, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

static int bad(struct err *err, const char **code, const char *c, const char *fmt,
	       ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*code = c;
	return err_set(err, ERR_INVALID, "%s", msg);
}

/* An integer member in [min, max] (a real with no fraction is accepted). */
static int get_int(json_t *v, const char *name, int min, int max, int *out,
		   const char **code, struct err *err)
{
	double d;

	if (!json_is_number(v))
		goto bad;
	d = json_number_value(v);
	if (!isfinite(d) || d != floor(d) || d < min || d > max)
		goto bad;
	*out = (int)d;
	return 0;
bad:
	*code = "invalid_field";
	return err_set(err, ERR_INVALID, "field '%s': expected an integer from %d to %d",
		       name, min, max);
}

static int get_secs(json_t *v, const char *name, double min, double max, double *out,
		    const char **code, struct err *err)
{
	double d;

	if (!json_is_number(v))
		goto bad;
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		goto bad;
	*out = d;
	return 0;
bad:
	*code = "invalid_field";
	return err_set(err, ERR_INVALID, "field '%s': expected seconds from %g to %g",
		       name, min, max);
}

int api_job_parse(const char *body, size_t len, struct api_job_req *out,
		  const char **code, struct err *err)
{
	struct api_job_req r;
	json_error_t je;
	const char *key;
	json_t *v;
	size_t i;

	memset(&r, 0, sizeof(r));
	if (len == 0)
		return bad(err, code, "invalid_json", "empty body: expected a JSON object%s", "");
	r.root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!r.root) {
		*code = "invalid_json";
		err_set(err, ERR_INVALID, "body is not valid JSON: %s (line %d, column %d)",
			je.text, je.line, je.column);
		goto fail;
	}
	if (!json_is_object(r.root)) {
		bad(err, code, "invalid_json", "body: expected a JSON object%s", "");
		goto fail;
	}
	json_object_foreach(r.root, key, v) {
		for (i = 0; known_fields[i]; i++)
			if (!strcmp(key, known_fields[i]))
				break;
		if (!known_fields[i]) {
			bad(err, code, "unknown_field", "unknown field '%.64s'", key);
			goto fail;
		}
	}

	v = json_object_get(r.root, "type");
	if (!v) {
		bad(err, code, "invalid_field", "field '%s' is required", "type");
		goto fail;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		bad(err, code, "invalid_field", "field '%s': expected a non-empty string", "type");
		goto fail;
	}
	r.type = json_string_value(v);
	if (!job_find(r.type) || strlen(r.type) != json_string_length(v)) {
		*code = "unknown_type";
		err_set(err, ERR_INVALID, "field 'type': unknown job type '%.64s' (known: %s)",
			r.type, job_type_names());
		goto fail;
	}

	v = json_object_get(r.root, "payload");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		bad(err, code, "invalid_field", "field '%s': expected an object", "payload");
		goto fail;
	}
	r.payload = v && json_is_object(v) ? json_dumps(v, JSON_COMPACT) : strdup("{}");
	if (!r.payload)
		abort();
	{
		struct err e;

		if (job_check(r.type, r.payload, &e) < 0) {
			*code = "invalid_payload";
			err_set(err, ERR_INVALID, "payload: %s", e.msg);
			goto fail;
		}
	}

	v = json_object_get(r.root, "queue");
	if (v) {
		struct err e;

		if (!json_is_string(v) || queue_name_check(json_string_value(v), &e) < 0 ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			bad(err, code, "invalid_field",
			    "field '%s': expected a queue name (1 to 64 of [A-Za-z0-9_.-])", "queue");
			goto fail;
		}
		r.queue = json_string_value(v);
	}
	if ((v = json_object_get(r.root, "priority")) &&
	    get_int(v, "priority", 0, QUEUE_PRIORITY_MAX, &r.priority, code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "max_attempts")) &&
	    get_int(v, "max_attempts", 1, JOB_MAX_ATTEMPTS_MAX, &r.max_attempts, code, err) < 0)
		goto fail;
	if ((v = json_object_get(r.root, "timeout_s"))) {
		if (get_secs(v, "timeout_s", 0.001, MAX_TIMEOUT_S, &r.timeout_s, code, err) < 0)
			goto fail;
	}
	if ((v = json_object_get(r.root, "delay_s"))) {
		double d;

		if (get_secs(v, "delay_s", 0, MAX_DELAY_S, &d, code, err) < 0)
			goto fail;
		r.delay_ms = (int64_t)llround(d * 1000);
	}
	if ((v = json_object_get(r.root, "run_at"))) {
		if (json_object_get(r.root, "delay_s")) {
			bad(err, code, "invalid_field", "fields 'delay_s' and '%s' exclude each other",
			    "run_at");
			goto fail;
		}
		if (!json_is_string(v) || api_time_parse(json_string_value(v), &r.run_at_us) < 0) {
			bad(err, code, "invalid_field",
			    "field '%s': expected an RFC 3339 time such as 2030-01-02T03:04:05Z",
			    "run_at");
			goto fail;
		}
	}
	if ((v = json_object_get(r.root, "idempotency_key"))) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    !api_idem_key_ok(json_string_value(v))) {
			bad(err, code, "invalid_field",
			    "field '%s': expected 1 to 200 printable ASCII characters", "idempotency_key");
			goto fail;
		}
		r.idempotency_key = json_string_value(v);
	}
	if ((v = json_object_get(r.root, "callback_url"))) {
		const char *u = json_is_string(v) ? json_string_value(v) : NULL;

		if (!u || strlen(u) != json_string_length(v) || strlen(u) > URL_MAX ||
		    (strncasecmp(u, "http://", 7) && strncasecmp(u, "https://", 8)) ||
		    strlen(u) < 9 || strpbrk(u, " \t\r\n")) {
			bad(err, code, "invalid_field", "field '%s': expected an http:// or https:// URL",
			    "callback_url");
			goto fail;
		}
		r.callback_url = u;
	}
	*out = r;
	return 0;
fail:
	api_job_req_release(&r);
	return -1;
}

void api_job_req_release(struct api_job_req *r)
{
	if (!r)
		return;
	json_decref(r->root);
	free(r->payload);
	memset(r, 0, sizeof(*r));
}
