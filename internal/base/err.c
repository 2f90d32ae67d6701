#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_vset(struct err *e, enum err_code code, const char *fmt, va_list ap)
{
	if (!e)
		return -1;
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return -1;
}

int err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return -1;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old);
	return -1;
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = ERR_OK;
	e->msg[0] = '\0';
}

const char *err_code_name(enum err_code code)
{
	static const char *const names[] = {
		[ERR_OK] = "ok",
		[ERR_INVALID] = "invalid",
		[ERR_NOTFOUND] = "not_found",
		[ERR_CONFLICT] = "conflict",
		[ERR_UNAVAILABLE] = "unavailable",
		[ERR_STALE] = "stale",
		[ERR_TIMEOUT] = "timeout",
		[ERR_CANCELLED] = "cancelled",
		[ERR_TOOLARGE] = "too_large",
		[ERR_AUTH] = "unauthorized",
		[ERR_IO] = "io",
		[ERR_PROTOCOL] = "protocol",
		[ERR_INTERNAL] = "internal",
		[ERR_UNKNOWN] = "unknown",
	};

	if ((size_t)code >= sizeof(names) / sizeof(names[0]) || !names[code])
		return "unknown";
	return names[code];
}
