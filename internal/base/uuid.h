/* uuid.h - UUIDv7 job ids (RFC 9562): 48-bit millisecond time, then a
 * 12-bit sequence that keeps ids made in one process strictly increasing
 * within a millisecond, then random bits. Ids sort by creation time, which
 * keeps FIFO ties in Redis and Postgres index pages in order. */
#ifndef WAKEQ_BASE_UUID_H
#define WAKEQ_BASE_UUID_H

#define UUID_STR_LEN 37 /* 36 characters and NUL */

/* Writes a new lowercase UUIDv7 into `out`. Thread-safe, never fails. */
void uuid7_new(char out[UUID_STR_LEN]);

/* Whether `s` is a canonical lowercase or uppercase UUID string. */
int uuid_valid(const char *s);

#endif
