/* reply.c - how every answer of the API is sent and counted: the JSON
 * error document {"error":{code,message}} (Retry-After on 503,
 * WWW-Authenticate on 401), JSON bodies, the mapping of a Redis or
 * Postgres failure to 503/500 (504 when its outcome is unknown), and the request counters by status class
 * that /metrics shows. */
#include "api/priv.h"

#include "log/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void api_count_status(struct api *a, unsigned status)
{
	int k = status >= 500 ? 3 : status >= 400 ? 2 : status >= 300 ? 1 : 0;

	atomic_fetch_add(&a->m_requests[k], 1);
	if (status == 401)
		atomic_fetch_add(&a->m_requests[4], 1);
	if (status == 503)
		atomic_fetch_add(&a->m_requests[5], 1);
}

int api_reply_error(struct api *a, struct httpd_request *req, unsigned status,
		    const char *code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_count_status(a, status);
	if (status == 503)
		httpd_add_header(req, "Retry-After", "1");
	if (status == 401)
		httpd_add_header(req, "WWW-Authenticate", "Bearer");
	return httpd_error(req, status, code, "%s", msg);
}

int api_reply_backend(struct api *a, struct httpd_request *req,
		      const struct err *e, const char *what)
{
	if (e->code == ERR_UNKNOWN)
		return api_reply_error(a, req, 504, "unconfirmed",
				       "%s did not answer in time, so it may or may not have done it: %s",
				       what, e->msg);
	size_t n = strlen(what);

	/* the pool's own message already names the backend */
	if ((e->code == ERR_UNAVAILABLE || e->code == ERR_TIMEOUT) &&
	    !strncmp(e->msg, what, n) && e->msg[n] == ' ')
		return api_reply_error(a, req, 503, "unavailable", "%s", e->msg);
	if (e->code == ERR_UNAVAILABLE || e->code == ERR_TIMEOUT)
		return api_reply_error(a, req, 503, "unavailable", "%s is unavailable: %s", what,
				       e->msg);
	log_error("backend error", "backend", what, "error", e->msg);
	return api_reply_error(a, req, 500, "internal", "%s error: %s", what, e->msg);
}

int api_require_json(struct api *a, struct httpd_request *req)
{
	const char *ct = httpd_header(req, "Content-Type");

	if (ct && !strncasecmp(ct, "application/json", 16) &&
	    (!ct[16] || ct[16] == ';' || ct[16] == ' '))
		return 0;
	api_reply_error(a, req, 415, "unsupported_media_type",
			"content type must be application/json");
	return -1;
}

int api_reply_json(struct api *a, struct httpd_request *req, unsigned status,
		   json_t *body)
{
	api_count_status(a, status);
	return httpd_respond_json(req, status, body);
}
