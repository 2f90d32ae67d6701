/* trace.h - request trace ids for Cloud Logging: read from the
 * X-Cloud-Trace-Context or W3C traceparent header, carried with a job, and
 * written as the `logging.googleapis.com/trace` field so one job can be
 * followed from intake to result. */
#ifndef WAKEQ_LOG_TRACE_H
#define WAKEQ_LOG_TRACE_H

#include <stddef.h>

#define LOG_TRACE_ID_LEN 33 /* 32 lowercase hex digits and NUL */

/* The field name Cloud Logging joins on. */
#define LOG_TRACE_FIELD "logging.googleapis.com/trace"

/* Extracts the trace id from "TRACE/SPAN;o=1" (X-Cloud-Trace-Context, tried
 * first) or "00-TRACE-SPAN-FLAGS" (traceparent); either may be NULL.
 * Returns 0 with `out` set to 32 lowercase hex digits, or -1 when neither
 * holds a valid, non-zero id. Never reads past a NUL. */
int log_trace_parse(const char *cloud_ctx, const char *traceparent,
		    char out[LOG_TRACE_ID_LEN]);

/* Formats the value of the trace field: "projects/P/traces/ID" when the
 * project is known, else the bare id (which Cloud Logging does not join).
 * The project is GOOGLE_CLOUD_PROJECT, else PROJECT_ID, else what the
 * function set with log_trace_set_project_fn answers (the mains set
 * fetch_gcp_project: the metadata server's, on Google Cloud; it may block
 * once, up to 1 s). Thread-safe. Returns `buf`, or NULL when `id` is NULL
 * or empty. */
const char *log_trace_resource(const char *id, char *buf, size_t n);

/* Sets where log_trace_resource finds the project when the environment
 * names none: fn fills out (cap bytes) and returns 0, or -1 when unknown;
 * it must be thread-safe. Call once before threads start; NULL = none. */
void log_trace_set_project_fn(int (*fn)(char *out, size_t cap));

#endif
