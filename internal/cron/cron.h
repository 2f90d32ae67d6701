/* cron.h - cron expressions and time zones: the fire times of schedules.
 *
 * An expression has 5 fields (minute hour day-of-month month day-of-week)
 * or 6 (a second first), each `*`, a value, a range A-B, a step (`*\/S`,
 * A-B/S, A/S) or a list of those; months and weekdays also by name (JAN,
 * MON), Sunday 0 or 7. Day of month and day of week, both restricted,
 * match either (as cron does). @yearly, @monthly, @weekly, @daily and
 * @hourly are accepted.
 *
 * A zone comes from the system tz database (TZif files under TZDIR, else
 * /usr/share/zoneinfo: the tzdata package); "UTC" needs no file. Fire
 * times are local wall-clock times of the zone, and DST is handled so:
 * a local time that does not exist (the hour skipped in spring) fires at
 * the instant the clocks jump, once; a local time that happens twice (the
 * hour repeated in autumn) fires at its first occurrence only. Beyond the
 * zone file's last transition (2037 in the usual "fat" files) its last
 * offset is used.
 *
 * Pure computation: no I/O but cron_tz_load's read of the zone file.
 */
#ifndef WAKEQ_CRON_CRON_H
#define WAKEQ_CRON_CRON_H

#include "base/err.h"

#include <stdint.h>

#define CRON_TZ_NAME_MAX 64

struct cron {
	uint64_t sec;         /* bit n: second n matches (bit 0 alone for 5
			       * fields) */
	uint64_t min;
	uint32_t hour;
	uint32_t dom;         /* bits 1..31 */
	uint32_t mon;         /* bits 1..12 */
	uint32_t dow;         /* bits 0..6, Sunday 0 */
	int dom_star, dow_star;
};

/* Parses `expr` into *out. Returns 0, or -1 with err (ERR_INVALID naming
 * the field) and *out untouched. */
int cron_parse(const char *expr, struct cron *out, struct err *err);

/* A time zone (opaque). */
struct cron_tz;

/* Loads the zone `name` ("Europe/Paris", "UTC"). Returns it (free with
 * cron_tz_free), or NULL with err (ERR_INVALID: a bad name, or no such
 * zone in the tz database). */
struct cron_tz *cron_tz_load(const char *name, struct err *err);
void cron_tz_free(struct cron_tz *tz);

/* Seconds east of UTC in force at the instant `t` (epoch seconds). */
int32_t cron_tz_offset(const struct cron_tz *tz, int64_t t);

/* The first fire time of `c` in `tz` strictly after `after` (epoch
 * seconds), or -1 when there is none in the next eight years (30 Feb). */
int64_t cron_next(const struct cron *c, const struct cron_tz *tz, int64_t after);

#endif
