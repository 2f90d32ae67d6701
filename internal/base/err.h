/* err.h - the small error struct every module fills on failure.
 *
 * A function that can fail takes a `struct err *` (which may be NULL when
 * the caller does not care), returns 0 / -1 (or a count, or NULL) and, on
 * failure, sets a code and a one-line message: lowercase, error first,
 * subject quoted ("cannot open 'x': no such file").
 */
#ifndef WAKEQ_BASE_ERR_H
#define WAKEQ_BASE_ERR_H

#include <stddef.h>

enum err_code {
	ERR_OK = 0,
	ERR_INVALID,     /* bad input from outside: never retry */
	ERR_NOTFOUND,
	ERR_CONFLICT,    /* state forbids it (cancel a finished job) */
	ERR_UNAVAILABLE, /* a server is down or unreachable: retry later */
	ERR_STALE,       /* fencing: the lease token is no longer ours */
	ERR_TIMEOUT,
	ERR_CANCELLED,
	ERR_TOOLARGE,
	ERR_AUTH,
	ERR_IO,
	ERR_PROTOCOL,    /* a peer answered something we cannot read */
	ERR_INTERNAL,
	ERR_UNKNOWN      /* sent, but no answer came: it may or may not have
	                  * taken effect (a timeout after a command left) */
};

#include <stdarg.h>

#define ERR_MSG_MAX 512

struct err {
	enum err_code code;
	char msg[ERR_MSG_MAX];
};

/* Sets `e` (when not NULL) to `code` and a printf-formatted message, always
 * returns -1 so that `return err_set(e, ...);` reads naturally. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* err_set for a function that takes its own printf arguments. */
int err_vset(struct err *e, enum err_code code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Prefixes the message already in `e` with a printf-formatted context and
 * ": ", keeping the code. Returns -1. */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears `e` (when not NULL). */
void err_clear(struct err *e);

/* A stable lowercase name for `code` ("invalid", "unavailable", ...). */
const char *err_code_name(enum err_code code);

#endif
