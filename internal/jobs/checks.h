/* checks.h - payload checks of the job types, one file per family.
 * Internal to the jobs module. */
#ifndef WAKEQ_JOBS_CHECKS_H
#define WAKEQ_JOBS_CHECKS_H

#include "jobs/jobs.h"

int jobs_check_noop(const json_t *payload, struct err *err);
int jobs_check_sleep(const json_t *payload, struct err *err);
int jobs_check_fail(const json_t *payload, struct err *err);

/* check_media.c */
int jobs_check_media_probe(const json_t *payload, struct err *err);
int jobs_check_media_thumbnail(const json_t *payload, struct err *err);
int jobs_check_media_transcode(const json_t *payload, struct err *err);

/* check_http.c */
int jobs_check_http_request(const json_t *payload, struct err *err);
int jobs_check_webhook_deliver(const json_t *payload, struct err *err);

#endif
