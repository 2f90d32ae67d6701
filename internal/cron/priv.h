/* priv.h - what the files of the cron module share (not public). */
#ifndef WAKEQ_CRON_PRIV_H
#define WAKEQ_CRON_PRIV_H

#include "cron/cron.h"

/* The instants (epoch seconds) of the local time `local` (wall clock read
 * as if UTC) in `tz`, into u[]: one, or two (earlier first) when the
 * clocks repeat it; when it does not exist, the instant they jumped.
 * Returns how many (1 or 2). */
int cron_tz_utc(const struct cron_tz *tz, int64_t local, int64_t u[2]);

#endif
