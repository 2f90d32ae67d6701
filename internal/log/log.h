/* log.h - one line per event, JSON for Cloud Logging or text for people.
 *
 * JSON lines carry `severity`, `message`, `time` and then the caller's
 * fields, as Cloud Logging reads them:
 *   {"severity":"INFO","message":"job done","time":"…","job_id":"…"}
 * Text lines read "2026-11-22T17:37:24.123456Z INFO job done job_id=…".
 *
 * Fields are key/value string pairs ending with NULL. The level check
 * happens in the macros, before any argument is evaluated or formatted.
 * Each line is written with one write(2), so lines from threads never
 * interleave. Never fails, never blocks on anything but stderr.
 */
#ifndef WAKEQ_LOG_H
#define WAKEQ_LOG_H

#include "config/config.h"

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

extern enum log_level log_min_level;

/* Sets the format, the lowest level written, and the fd (2 by default). */
void log_init(enum log_format format, enum log_level level, int fd);

/* The names of the levels and formats, for the LOG_LEVEL and LOG_FORMAT
 * settings (CONFIG_ENUM): debug, info, warn (or warning), error; text,
 * json. */
extern const struct config_choice log_level_choices[];
extern const struct config_choice log_format_choices[];

/* Writes one line: `msg`, then pairs of (const char *key, const char *value)
 * ending with a NULL key. A NULL value skips its pair. */
void log_write(enum log_level level, const char *msg, ...);

/* A field set that applies to every line written by this thread until
 * cleared (e.g. job_id, trace), as pairs of borrowed strings. Pass NULL to
 * clear. The strings must outlive their use. */
void log_thread_fields(const char *const *pairs);

/* A warning that repeats while a condition lasts (Redis unreachable):
 * written the first time, then at most once per interval, the interval
 * doubling from LOG_LIMIT_MIN_US to LOG_LIMIT_MAX_US, each with the count
 * of lines held back since the one before. Zero-initialised; not
 * thread-safe: one per thread, or under the caller's lock. */
struct log_limit {
	int64_t next_us;      /* monotonic: no line before this */
	int64_t gap_us;       /* the interval after the next line */
	int64_t since_us;     /* monotonic: when the condition began, 0 = it
			       * does not hold */
	unsigned long held;   /* lines held back since the last written */
};

#define LOG_LIMIT_MIN_US 10000000
#define LOG_LIMIT_MAX_US 60000000

/* Notes one more occurrence. Returns 1 when its line is to be written
 * now, with *held (may be NULL) the number held back before it (0 the
 * first time); 0 when it is held back. */
int log_limit_due(struct log_limit *l, unsigned long *held);

/* The condition is over. Returns 1 when it held (then *secs, may be
 * NULL, is how long, and *held the lines held back since the last one
 * written), 0 when it did not; resets the limit either way. */
int log_limit_clear(struct log_limit *l, double *secs, unsigned long *held);

#define log_at(level, ...) \
	do { \
		if ((level) >= log_min_level) \
			log_write((level), __VA_ARGS__, (const char *)0); \
	} while (0)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)

#endif
