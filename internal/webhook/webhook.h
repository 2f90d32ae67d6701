/* webhook.h - signed job-completion callbacks.
 *
 * When a job that has a callback_url finishes or dies, the worker enqueues
 * a job of type webhook.deliver whose payload is {url, body}
 * (webhook_build_payload). That job POSTs the body as JSON with
 *
 *   X-Wakeq-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body))
 *
 * (secret = WEBHOOK_SECRET; no header when it is empty), and
 * X-Wakeq-Delivery: the delivery job's id (the same on every retry, for
 * receivers that deduplicate). 2xx is delivered; 5xx, 408, 429 (honouring
 * Retry-After) and network errors retry with the queue's backoff; any
 * other answer fails the delivery for good (dead-letter). Redirects are
 * not followed. The address policy of internal/fetch applies.
 * docs/WEBHOOKS.md shows a receiver.
 */
#ifndef WAKEQ_WEBHOOK_H
#define WAKEQ_WEBHOOK_H

#include "base/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_HEADER "X-Wakeq-Signature"
/* "t=" + up to 20 digits + ",v1=" + 64 hex digits + NUL */
#define WEBHOOK_SIG_MAX 96
/* Default age a receiver accepts, seconds. */
#define WEBHOOK_TOLERANCE_S 300

/* Writes the value of the X-Wakeq-Signature header for `body` (`len`
 * bytes) signed at `unix_time` with `secret` into `out`
 * ("t=1700000000,v1=5f3c..."). Returns 0, or -1 when secret is NULL or
 * empty. Does not block. */
int webhook_sign(const char *secret, int64_t unix_time, const char *body,
		 size_t len, char out[WEBHOOK_SIG_MAX]);

/* Checks a received header value against `body`: some v1= entry must
 * match (compared in constant time) and |now - t| must be within
 * `tolerance_s`. Returns 0, or -1 with err: ERR_INVALID (malformed
 * header), ERR_AUTH (no match, or too old / in the future). */
int webhook_verify(const char *secret, const char *header, const char *body,
		   size_t len, int64_t now, int64_t tolerance_s,
		   struct err *err);

/* Builds the callback document {id, type, status, result | error,
 * attempts, finished_at}: `result` (borrowed, may be NULL = null) is used
 * when status is "done", `error` otherwise; finished_at is RFC 3339 UTC
 * from epoch microseconds. Returns a new reference. */
json_t *webhook_build_body(const char *id, const char *type,
			   const char *status, const json_t *result,
			   const char *error, int attempts,
			   int64_t finished_at_us);

/* The payload text of a webhook.deliver job: {"url": URL, "body": BODY}.
 * `body` is borrowed. Returns a heap string the caller frees. */
char *webhook_build_payload(const char *url, const json_t *body);

/* Binds the webhook.deliver job type (reads job_settings.webhook_secret
 * at delivery time). */
void webhook_bind_jobs(void);

#endif
