/* check_http.c - payload checks of http.request and webhook.deliver. */
#include "jobs/checks.h"

int jobs_check_http_request(const json_t *payload, struct err *err)
{
	const char *url;

	return jobs_get_string(payload, "url", 1, &url, err);
}

int jobs_check_webhook_deliver(const json_t *payload, struct err *err)
{
	const char *url;

	return jobs_get_string(payload, "url", 1, &url, err);
}
