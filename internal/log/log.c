#include "log/log.h"

#include "base/buf.h"
#include "base/clock.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

enum log_level log_min_level = LOG_INFO;
static enum log_format log_format = LOG_TEXT;
static int log_fd = 2;
static _Thread_local const char *const *thread_fields;

static const char *const level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR" };

void log_init(enum log_format format, enum log_level level, int fd)
{
	log_format = format;
	log_min_level = level;
	log_fd = fd;
}

const struct config_choice log_level_choices[] = {
	{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "warn", LOG_WARN },
	{ "warning", LOG_WARN }, { "error", LOG_ERROR }, CONFIG_CHOICES_END
};

const struct config_choice log_format_choices[] = {
	{ "text", LOG_TEXT }, { "json", LOG_JSON }, CONFIG_CHOICES_END
};

void log_thread_fields(const char *const *pairs)
{
	thread_fields = pairs;
}

/* JSON string escaping (RFC 8259): quotes, backslash and control bytes.
 * Bytes >= 0x80 pass through; callers log UTF-8. */
static void add_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	buf_addc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': buf_adds(b, "\\\""); break;
		case '\\': buf_adds(b, "\\\\"); break;
		case '\n': buf_adds(b, "\\n"); break;
		case '\r': buf_adds(b, "\\r"); break;
		case '\t': buf_adds(b, "\\t"); break;
		default:
			if (c < 0x20) {
				char u[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				buf_adds(b, u);
			} else {
				buf_addc(b, (char)c);
			}
		}
	}
	buf_addc(b, '"');
}

/* Text values are quoted when they hold spaces, quotes or controls. */
static void add_text_value(struct buf *b, const char *s)
{
	if (!*s || strpbrk(s, " \"=\n\t\r"))
		add_json_string(b, s);
	else
		buf_adds(b, s);
}

static void add_field(struct buf *b, const char *k, const char *v)
{
	if (log_format == LOG_JSON) {
		buf_addc(b, ',');
		add_json_string(b, k);
		buf_addc(b, ':');
		add_json_string(b, v);
	} else {
		buf_addc(b, ' ');
		buf_adds(b, k);
		buf_addc(b, '=');
		add_text_value(b, v);
	}
}

void log_write(enum log_level level, const char *msg, ...)
{
	char stamp[CLOCK_RFC3339_LEN];
	struct buf b = BUF_INIT;
	const char *k, *v;
	va_list ap;
	size_t off;

	if (level < log_min_level)
		return;
	clock_rfc3339(clock_now_us(), stamp);
	buf_grow(&b, 256);
	if (log_format == LOG_JSON) {
		buf_adds(&b, "{\"severity\":\"");
		buf_adds(&b, level_names[level]);
		buf_adds(&b, "\",\"message\":");
		add_json_string(&b, msg);
		buf_adds(&b, ",\"time\":\"");
		buf_adds(&b, stamp);
		buf_addc(&b, '"');
	} else {
		buf_printf(&b, "%s %s %s", stamp, level_names[level], msg);
	}
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (v)
			add_field(&b, k, v);
	}
	va_end(ap);
	if (thread_fields) {
		const char *const *p;

		for (p = thread_fields; p[0]; p += 2)
			if (p[1])
				add_field(&b, p[0], p[1]);
	}
	if (log_format == LOG_JSON)
		buf_addc(&b, '}');
	buf_addc(&b, '\n');
	for (off = 0; off < b.len;) {
		ssize_t n = write(log_fd, b.data + off, b.len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_release(&b);
}

int log_limit_due(struct log_limit *l, unsigned long *held)
{
	int64_t now = clock_mono_us();

	if (!l->since_us) {
		l->since_us = now;
		l->gap_us = LOG_LIMIT_MIN_US;
		l->next_us = now + l->gap_us;
		l->held = 0;
		if (held)
			*held = 0;
		return 1;
	}
	if (now < l->next_us) {
		l->held++;
		return 0;
	}
	if (held)
		*held = l->held;
	l->held = 0;
	l->gap_us = l->gap_us * 2 > LOG_LIMIT_MAX_US ? LOG_LIMIT_MAX_US : l->gap_us * 2;
	l->next_us = now + l->gap_us;
	return 1;
}

int log_limit_clear(struct log_limit *l, double *secs, unsigned long *held)
{
	int was = l->since_us != 0;

	if (secs)
		*secs = was ? (double)(clock_mono_us() - l->since_us) / 1e6 : 0;
	if (held)
		*held = l->held;
	l->since_us = 0;
	l->held = 0;
	return was;
}
