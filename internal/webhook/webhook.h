/* webhook.h - signed job-completion callbacks.
 *
 * When a job that has a callback_url finishes or dies, the worker enqueues
 * a job of type webhook.deliver whose payload is {url, body}
 * (webhook_build_payload). That job POSTs the body as JSON with
 *
 *   X-Wakeq-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body))
 *   X-Wakeq-Delivery: the delivery job's id (the same on every retry, for
 *   receivers that deduplicate)
 *
 * and the same facts as Standard Webhooks (standardwebhooks.com) say them:
 *
 *   webhook-id: the delivery job's id
 *   webhook-timestamp: UNIX
 *   webhook-signature: v1,BASE64(HMAC-SHA256(key, id + "." + UNIX + "." +
 *                      body))
 *
 * secret = WEBHOOK_SECRET, used as written in X-Wakeq-Signature. The
 * Standard Webhooks key is the base64-decoded rest of a secret that
 * starts with "whsec_", and the secret as written otherwise. During a
 * rotation (WEBHOOK_SECRET_PREVIOUS set too) both signature headers carry
 * one entry per secret, the current one first. Without a secret neither
 * signature header is sent.
 *
 * 2xx is delivered; 5xx, 408, 429 (honouring Retry-After) and network
 * errors retry with the queue's backoff; any other answer fails the
 * delivery for good (dead-letter). Redirects are not followed. The address
 * policy of internal/fetch applies. docs/WEBHOOKS.md shows a receiver.
 */
#ifndef WAKEQ_WEBHOOK_H
#define WAKEQ_WEBHOOK_H

#include "base/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_HEADER "X-Wakeq-Signature"
/* "t=" + up to 20 digits, then per secret ",v1=" + 64 hex digits; NUL */
#define WEBHOOK_SIG_MAX 160
/* Default age a receiver accepts, seconds. */
#define WEBHOOK_TOLERANCE_S 300

/* The Standard Webhooks headers. */
#define WEBHOOK_STD_ID "webhook-id"
#define WEBHOOK_STD_TIMESTAMP "webhook-timestamp"
#define WEBHOOK_STD_SIGNATURE "webhook-signature"
/* Secrets in the Standard Webhooks form start with this; the rest is the
 * key in base64. */
#define WEBHOOK_STD_PREFIX "whsec_"
/* per secret "v1," + 44 base64 characters, space-separated; NUL */
#define WEBHOOK_STD_SIG_MAX 100

/* Writes the value of the X-Wakeq-Signature header for `body` (`len`
 * bytes) signed at `unix_time` with `secret` and, when `previous` is
 * neither NULL nor empty, with `previous` too, into `out`
 * ("t=1700000000,v1=5f3c...[,v1=...]"). The secrets are HMAC keys as
 * written. Returns 0, or -1 when secret is NULL or empty. Does not
 * block. */
int webhook_sign(const char *secret, const char *previous, int64_t unix_time,
		 const char *body, size_t len, char out[WEBHOOK_SIG_MAX]);

/* Writes the value of the webhook-signature header (Standard Webhooks)
 * for message `id` with `body` (`len` bytes) signed at `unix_time` with
 * `secret` and, when `previous` is neither NULL nor empty, `previous`
 * too, into `out` ("v1,K5oZ...= v1,..."). Each secret's key is the
 * base64-decoded rest of a "whsec_" secret, or the secret as written.
 * Returns 0, or -1 with err ERR_INVALID when secret is NULL or empty, or
 * a "whsec_" secret holds no valid base64 key (the message names the
 * setting, never the secret). Does not block. */
int webhook_sign_standard(const char *secret, const char *previous,
			  const char *id, int64_t unix_time, const char *body,
			  size_t len, char out[WEBHOOK_STD_SIG_MAX],
			  struct err *err);

/* Checks job_settings.webhook_secret and webhook_secret_previous for
 * start-up: a "whsec_" secret must hold a non-empty base64 key, and a
 * previous secret needs a current one. Returns 0, or -1 with err naming
 * the variable (WEBHOOK_SECRET, WEBHOOK_SECRET_PREVIOUS). */
int webhook_check_settings(struct err *err);

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
 * and webhook_secret_previous at delivery time). */
void webhook_bind_jobs(void);

#endif
