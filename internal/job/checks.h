/* checks.h - payload checks of the job types, one file per family.
 * Internal to the job module. */
#ifndef WAKEQ_JOB_CHECKS_H
#define WAKEQ_JOB_CHECKS_H

#include "job/job.h"

int job_check_noop(const json_t *payload, struct err *err);
int job_check_sleep(const json_t *payload, struct err *err);
int job_check_fail(const json_t *payload, struct err *err);

/* check_media.c */
int job_check_media_probe(const json_t *payload, struct err *err);
int job_check_media_thumbnail(const json_t *payload, struct err *err);
int job_check_media_transcode(const json_t *payload, struct err *err);

/* check_http.c */
int job_check_http_request(const json_t *payload, struct err *err);
int job_check_webhook_deliver(const json_t *payload, struct err *err);

#endif
