/* parse.h - strict parsers for numbers, durations and booleans from
 * outside input (environment, flags, query strings). Whole-string matches
 * only: "10x", "", " 1" and out-of-range values are refused. */
#ifndef WAKEQ_BASE_PARSE_H
#define WAKEQ_BASE_PARSE_H

#include <stdint.h>

/* A signed decimal integer in [min, max]. Returns 0, or -1 leaving *out
 * untouched. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* A duration in seconds with an optional fraction ("30", "0.5", "1e-3"),
 * in [min, max] seconds, finite. Returns 0, or -1 leaving *out untouched. */
int parse_seconds(const char *s, double min, double max, double *out);

/* 1/true/yes/on or 0/false/no/off, any case. Returns 0 or -1. */
int parse_bool(const char *s, int *out);

/* A byte size: digits with an optional K, M or G suffix (powers of 1024).
 * Returns 0 or -1. */
int parse_size(const char *s, int64_t max, int64_t *out);

#endif
