/* registry.c - the handler registry: HANDLERS_FILE and WAKEQ_HANDLER_*
 * entries parsed and checked once at start-up, then registered as job
 * types. Every problem is reported as one line naming where it is
 * (file and line of the offending key, or the variable) and what is
 * wrong, so a bad deployment stops at start-up, not at the first job.
 */
#include "handler/handler.h"

#include "base/mem.h"
#include "base/parse.h"
#include "job/job.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void handler_registry_init(struct handler_registry *reg)
{
	memset(reg, 0, sizeof(*reg));
}

static void strv_free(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void handler_release(struct handler *h)
{
	static const size_t owned[] = {
		offsetof(struct handler, type), offsetof(struct handler, origin),
		offsetof(struct handler, description), offsetof(struct handler, user),
		offsetof(struct handler, url), offsetof(struct handler, oidc_audience),
		offsetof(struct handler, bearer_env), offsetof(struct handler, path),
	};

	mem_free_strings(h, owned, sizeof(owned) / sizeof(owned[0]));
	json_decref(h->schema);
	strv_free(h->argv);
	strv_free(h->env);
	free(h->retry_codes);
	/* h->rt belongs to exec.c and lives until handler_stop */
	memset(h, 0, sizeof(*h));
}

void handler_registry_release(struct handler_registry *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = 0; i < reg->n; i++)
		handler_release(&reg->items[i]);
	free(reg->items);
	memset(reg, 0, sizeof(*reg));
}

const struct handler *handler_find(const struct handler_registry *reg,
				   const char *type)
{
	size_t i;

	for (i = 0; type && i < reg->n; i++)
		if (!strcmp(reg->items[i].type, type))
			return &reg->items[i];
	return NULL;
}

const char *handler_kind_name(enum handler_kind k)
{
	switch (k) {
	case HANDLER_EXEC: return "exec";
	case HANDLER_HTTP: return "http";
	case HANDLER_PLUGIN: return "plugin";
	}
	return "unknown";
}

/* ---- where a key is: the line of a key path in the document text ----------
 * jansson keeps no positions, so on an error the text is scanned once
 * more for the key at `path` (object keys from the root). Keys with
 * escapes are compared as written; no match gives 0 (no line). */

static size_t skip_string(const char *s, size_t len, size_t i)
{
	/* s[i] is the opening quote; returns the index past the closing one */
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return len;
}

#define SCAN_DEPTH 8

static int key_line(const char *s, size_t len, const char *const *path, size_t npath)
{
	/* key[d]: the last key seen at depth d+1 matched path[d] */
	int match[SCAN_DEPTH + 1] = { 1 };
	int inobj[SCAN_DEPTH + 2] = { 0 };
	size_t depth = 0, i = 0, line = 1, j, k;

	if (npath == 0 || npath > SCAN_DEPTH)
		return 0;
	while (i < len) {
		char c = s[i];

		if (c == '\n') {
			line++;
			i++;
		} else if (c == '{' || c == '[') {
			depth++;
			if (depth <= SCAN_DEPTH) {
				inobj[depth] = c == '{';
				if (c == '[')
					match[depth] = 0; /* no key leads inside */
			}
			i++;
		} else if (c == '}' || c == ']') {
			if (depth > 0)
				depth--;
			i++;
		} else if (c == '"') {
			size_t start = i + 1, end;

			i = skip_string(s, len, i);
			end = i > start ? i - 1 : start;
			for (j = i; j < len && strchr(" \t\r\n", s[j]); j++)
				;
			if (j >= len || s[j] != ':' || depth == 0 || depth > npath ||
			    !inobj[depth])
				continue;
			/* a key at `depth`: does the path up to it match? */
			k = depth - 1;
			match[depth] = match[k] && strlen(path[k]) == end - start &&
				       !memcmp(path[k], s + start, end - start);
			if (match[depth] && depth == npath)
				return (int)line;
		} else {
			i++;
		}
	}
	return 0;
}

/* ---- one entry ------------------------------------------------------------ */

struct ctx {
	const char *text;        /* the document, for key_line; NULL for env */
	size_t len;
	const char *origin;      /* file path, or the variable's name */
	const char *type;        /* the entry being read */
	struct err *err;
};

static int fail(struct ctx *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One line: "FILE:LINE: handler 'T': field 'F': MSG" (file), or
 * "VAR: handler 'T': field 'F': MSG" (environment). */
static int fail(struct ctx *c, const char *field, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX], where[ERR_MSG_MAX / 2];
	va_list ap;
	int line = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->text && c->type) {
		char key[64];
		const char *path[3] = { "handlers", c->type, key };

		/* "limits.memory" is found at its key, "limits" */
		snprintf(key, sizeof(key), "%.*s", field ? (int)strcspn(field, ".") : 0,
			 field ? field : "");
		line = field ? key_line(c->text, c->len, path, 3) : 0;
		if (!line)
			line = key_line(c->text, c->len, path, 2);
	}
	if (line)
		snprintf(where, sizeof(where), "%s:%d", c->origin, line);
	else
		snprintf(where, sizeof(where), "%s", c->origin);
	if (c->type && field)
		return err_set(c->err, ERR_INVALID, "%s: handler '%.64s': field '%s': %s",
			       where, c->type, field, msg);
	if (c->type)
		return err_set(c->err, ERR_INVALID, "%s: handler '%.64s': %s", where,
			       c->type, msg);
	return err_set(c->err, ERR_INVALID, "%s: %s", where, msg);
}

static int type_name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > HANDLER_TYPE_MAX || !isalnum((unsigned char)s[0]) ||
	    s[n - 1] == '.' || strstr(s, ".."))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return 0;
	return 1;
}

static int env_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || (!isalpha((unsigned char)s[0]) && s[0] != '_'))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

/* Set by the worker for every run: an entry may not set them. */
static int env_reserved(const char *s, size_t n)
{
	return (n >= 6 && !strncmp(s, "WAKEQ_", 6)) || (n == 6 && !strncmp(s, "TMPDIR", 6));
}

/* A string without NUL bytes inside, or NULL. */
static const char *str_of(const json_t *v)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static int get_num(struct ctx *c, const json_t *v, const char *f, double min,
		   double max, double *out)
{
	double d;

	if (!json_is_number(v))
		return fail(c, f, "expected a number from %g to %g", min, max);
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		return fail(c, f, "expected a number from %g to %g", min, max);
	*out = d;
	return 0;
}

/* A JSON number that is a whole number in [min, max]. Returns 0 or -1. */
static int whole(const json_t *v, int64_t min, int64_t max, int64_t *out)
{
	double d;

	if (!json_is_number(v))
		return -1;
	d = json_number_value(v);
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
		return -1;
	*out = (int64_t)d;
	return 0;
}

static int get_int(struct ctx *c, const json_t *v, const char *f, int64_t min,
		   int64_t max, int64_t *out)
{
	if (whole(v, min, max, out) == 0)
		return 0;
	return fail(c, f, "expected an integer from %lld to %lld", (long long)min,
		    (long long)max);
}

/* Bytes as a number or a string with K, M or G ("512K"). */
static int get_size(struct ctx *c, const json_t *v, const char *f, int64_t min,
		    int64_t max, int64_t *out)
{
	int64_t n;

	if (json_is_string(v)) {
		if (!str_of(v) || parse_size(str_of(v), max, &n) < 0 || n < min)
			goto bad;
		*out = n;
		return 0;
	}
	if (whole(v, min, max, out) == 0)
		return 0;
bad:
	return fail(c, f, "expected a size from %lld to %lld bytes (a number, or a "
		    "string with K, M or G)", (long long)min, (long long)max);
}

static int get_bool(struct ctx *c, const json_t *v, const char *f, int *out)
{
	if (!json_is_boolean(v))
		return fail(c, f, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

static int get_str(struct ctx *c, const json_t *v, const char *f, size_t max, char **out)
{
	const char *s = str_of(v);

	if (!s || !*s || strlen(s) > max)
		return fail(c, f, "expected a non-empty string of at most %zu bytes", max);
	free(*out);
	*out = xstrdup(s);
	return 0;
}

static int get_command(struct ctx *c, const json_t *v, struct handler *h)
{
	size_t i, n;

	if (json_is_string(v)) {
		if (!h->shell)
			return fail(c, "command", "a string runs only with \"shell\": true; "
				    "give an array of arguments (argv)");
		if (!str_of(v) || !*str_of(v))
			return fail(c, "command", "expected a non-empty shell command");
		h->argv = xcalloc(2, sizeof(*h->argv));
		h->argv[0] = xstrdup(str_of(v));
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 256)
		return fail(c, "command", "expected an array of 1 to 256 strings (argv)");
	if (h->shell)
		return fail(c, "command", "with \"shell\": true, give one string");
	n = json_array_size(v);
	h->argv = xcalloc(n + 1, sizeof(*h->argv));
	for (i = 0; i < n; i++) {
		const char *s = str_of(json_array_get(v, i));

		if (!s || (i == 0 && !*s))
			return fail(c, "command", "argument %zu: expected a string", i);
		h->argv[i] = xstrdup(s);
	}
	return 0;
}

static int get_env(struct ctx *c, const json_t *v, struct handler *h)
{
	size_t i, n;

	if (!json_is_array(v) || json_array_size(v) > 256)
		return fail(c, "env", "expected an array of \"NAME\" (passed through) "
			    "or \"NAME=value\" strings");
	n = json_array_size(v);
	h->env = xcalloc(n + 1, sizeof(*h->env));
	for (i = 0; i < n; i++) {
		const char *s = str_of(json_array_get(v, i));
		size_t name = s ? strcspn(s, "=") : 0;

		if (!s || !env_name_ok(s, name))
			return fail(c, "env", "entry %zu: expected \"NAME\" or \"NAME=value\" "
				    "with NAME of [A-Za-z0-9_]", i);
		if (env_reserved(s, name))
			return fail(c, "env", "'%.*s' is set by the worker (WAKEQ_*, TMPDIR)",
				    (int)name, s);
		h->env[i] = xstrdup(s);
	}
	return 0;
}

static int get_codes(struct ctx *c, const json_t *v, struct handler *h)
{
	size_t i, n;

	if (!json_is_array(v) || json_array_size(v) > 255)
		return fail(c, "retry_exit_codes", "expected an array of exit codes 1 to 255");
	n = json_array_size(v);
	h->retry_codes = xcalloc(n ? n : 1, sizeof(*h->retry_codes));
	for (i = 0; i < n; i++) {
		int64_t code;

		if (get_int(c, json_array_get(v, i), "retry_exit_codes", 1, 255, &code) < 0)
			return -1;
		h->retry_codes[i] = (int)code;
	}
	h->nretry_codes = n;
	return 0;
}

static int get_limits(struct ctx *c, const json_t *v, struct handler *h)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return fail(c, "limits", "expected an object with cpu_s, memory, "
			    "open_files, processes");
	json_object_foreach((json_t *)v, k, x) {
		if (!strcmp(k, "cpu_s")) {
			if (get_num(c, x, "limits.cpu_s", 1, JOB_TIMEOUT_MAX_S,
				    &h->limits.cpu_s) < 0)
				return -1;
		} else if (!strcmp(k, "memory")) {
			if (get_size(c, x, "limits.memory", (int64_t)16 << 20, (int64_t)1 << 50,
				     &h->limits.memory) < 0)
				return -1;
		} else if (!strcmp(k, "open_files")) {
			if (get_int(c, x, "limits.open_files", 16, 1 << 20,
				    &h->limits.open_files) < 0)
				return -1;
		} else if (!strcmp(k, "processes")) {
			if (get_int(c, x, "limits.processes", 1, 1 << 22,
				    &h->limits.processes) < 0)
				return -1;
		} else {
			return fail(c, "limits", "unknown limit '%.64s' (known: cpu_s, memory, "
				    "open_files, processes)", k);
		}
	}
	return 0;
}

static int url_ok(const char *u)
{
	return u && (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8)) &&
	       strlen(u) > 8 && strlen(u) <= 2048 && !strpbrk(u, " \t\r\n");
}

/* Which kinds each field applies to: bit per kind, 7 = all. */
#define K_EXEC (1 << HANDLER_EXEC)
#define K_HTTP (1 << HANDLER_HTTP)
#define K_PLUGIN (1 << HANDLER_PLUGIN)
#define K_ALL (K_EXEC | K_HTTP | K_PLUGIN)

static const struct {
	const char *name;
	int kinds;
} fields[] = {
	{ "kind", K_ALL }, { "type", K_ALL }, { "description", K_ALL },
	{ "timeout_s", K_ALL }, { "max_attempts", K_ALL }, { "concurrency", K_ALL },
	{ "result_max", K_ALL }, { "schema", K_ALL },
	{ "command", K_EXEC }, { "shell", K_EXEC }, { "persistent", K_EXEC },
	{ "retry_exit_codes", K_EXEC }, { "env", K_EXEC }, { "user", K_EXEC },
	{ "kill_grace_s", K_EXEC }, { "limits", K_EXEC },
	{ "url", K_HTTP }, { "oidc_audience", K_HTTP }, { "bearer_env", K_HTTP },
	{ "allow_private", K_HTTP },
	{ "path", K_PLUGIN },
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int parse_kind(struct ctx *c, const json_t *obj, enum handler_kind *out)
{
	const json_t *v = json_object_get(obj, "kind");
	const char *s;

	*out = HANDLER_EXEC;
	if (!v)
		return 0;
	s = str_of(v);
	if (s && !strcmp(s, "exec"))
		*out = HANDLER_EXEC;
	else if (s && !strcmp(s, "http"))
		*out = HANDLER_HTTP;
	else if (s && !strcmp(s, "plugin"))
		*out = HANDLER_PLUGIN;
	else
		return fail(c, "kind", "expected \"exec\", \"http\" or \"plugin\"");
	return 0;
}

/* Reads the entry object `obj` of type c->type into *h (zeroed first;
 * released by the caller on failure). */
static int parse_entry(struct ctx *c, const json_t *obj, struct handler *h)
{
	const char *k;
	json_t *v;
	int64_t n;
	size_t i;

	memset(h, 0, sizeof(*h));
	if (!type_name_ok(c->type))
		return fail(c, NULL, "bad type name: expected 1 to %d of [A-Za-z0-9_.-], "
			    "starting with a letter or digit, dots between words",
			    HANDLER_TYPE_MAX);
	if (!json_is_object(obj))
		return fail(c, NULL, "expected an object of settings");
	h->type = xstrdup(c->type);
	if (parse_kind(c, obj, &h->kind) < 0)
		return -1;
	h->result_max = HANDLER_RESULT_MAX_DEFAULT;
	h->kill_grace_s = HANDLER_KILL_GRACE_DEFAULT;
	h->limits.open_files = HANDLER_OPEN_FILES_DEFAULT;
	/* shell first: it decides how "command" reads */
	if ((v = json_object_get(obj, "shell")) && get_bool(c, v, "shell", &h->shell) < 0)
		return -1;
	json_object_foreach((json_t *)obj, k, v) {
		for (i = 0; i < NFIELDS; i++)
			if (!strcmp(k, fields[i].name))
				break;
		if (i == NFIELDS)
			return fail(c, k, "unknown field (known: kind, command, shell, "
				    "persistent, timeout_s, max_attempts, concurrency, "
				    "result_max, retry_exit_codes, env, user, kill_grace_s, "
				    "limits, schema, description, url, oidc_audience, bearer_env, "
				    "allow_private, path)");
		if (!(fields[i].kinds & (1 << h->kind)))
			return fail(c, k, "does not apply to %s handlers",
				    handler_kind_name(h->kind));
		if (!strcmp(k, "kind") || !strcmp(k, "shell")) {
			continue;
		} else if (!strcmp(k, "type")) {
			if (!str_of(v) || strcmp(str_of(v), c->type))
				return fail(c, k, "must match the type it is declared as");
		} else if (!strcmp(k, "description")) {
			if (get_str(c, v, k, 1024, &h->description) < 0)
				return -1;
		} else if (!strcmp(k, "timeout_s")) {
			if (get_num(c, v, k, 0.001, JOB_TIMEOUT_MAX_S, &h->timeout_s) < 0)
				return -1;
		} else if (!strcmp(k, "max_attempts")) {
			if (get_int(c, v, k, 1, JOB_MAX_ATTEMPTS_MAX, &n) < 0)
				return -1;
			h->max_attempts = (int)n;
		} else if (!strcmp(k, "concurrency")) {
			if (get_int(c, v, k, 1, 1024, &n) < 0)
				return -1;
			h->concurrency = (int)n;
		} else if (!strcmp(k, "result_max")) {
			if (get_size(c, v, k, 16, HANDLER_RESULT_MAX_MAX, &h->result_max) < 0)
				return -1;
		} else if (!strcmp(k, "schema")) {
			struct err se;

			if (!json_is_object(v))
				return fail(c, k, "expected a JSON Schema object");
			if (handler_schema_compile(v, &se) < 0)
				return fail(c, k, "%s", se.msg);
			h->schema = json_incref(v);
		} else if (!strcmp(k, "command")) {
			if (get_command(c, v, h) < 0)
				return -1;
		} else if (!strcmp(k, "persistent")) {
			if (get_bool(c, v, k, &h->persistent) < 0)
				return -1;
		} else if (!strcmp(k, "retry_exit_codes")) {
			if (get_codes(c, v, h) < 0)
				return -1;
		} else if (!strcmp(k, "env")) {
			if (get_env(c, v, h) < 0)
				return -1;
		} else if (!strcmp(k, "user")) {
			if (get_str(c, v, k, 64, &h->user) < 0)
				return -1;
		} else if (!strcmp(k, "kill_grace_s")) {
			if (get_num(c, v, k, 0, 10, &h->kill_grace_s) < 0)
				return -1;
		} else if (!strcmp(k, "limits")) {
			if (get_limits(c, v, h) < 0)
				return -1;
		} else if (!strcmp(k, "url")) {
			if (!url_ok(str_of(v)))
				return fail(c, k, "expected an http:// or https:// URL");
			h->url = xstrdup(str_of(v));
		} else if (!strcmp(k, "oidc_audience")) {
			if (get_str(c, v, k, 2048, &h->oidc_audience) < 0)
				return -1;
			if (strpbrk(h->oidc_audience, "\r\n"))
				return fail(c, k, "expected one line");
		} else if (!strcmp(k, "bearer_env")) {
			if (get_str(c, v, k, 128, &h->bearer_env) < 0)
				return -1;
			if (!env_name_ok(h->bearer_env, strlen(h->bearer_env)))
				return fail(c, k, "expected the name of an environment variable "
					    "([A-Za-z_][A-Za-z0-9_]*) holding the token");
		} else if (!strcmp(k, "allow_private")) {
			if (get_bool(c, v, k, &h->allow_private) < 0)
				return -1;
		} else if (!strcmp(k, "path")) {
			if (get_str(c, v, k, 4096, &h->path) < 0)
				return -1;
		}
	}
	if (h->kind == HANDLER_EXEC && !h->argv)
		return fail(c, "command", "is required for exec handlers");
	if (h->kind == HANDLER_HTTP && !h->url)
		return fail(c, "url", "is required for http handlers");
	if (h->oidc_audience && h->bearer_env)
		return fail(c, "bearer_env", "an http handler sends an OIDC token "
			    "(oidc_audience) or a static bearer (bearer_env), not both");
	if (h->kind == HANDLER_PLUGIN && !h->path)
		return fail(c, "path", "is required for plugin handlers");
	return 0;
}

/* ---- documents ----------------------------------------------------------- */

static void add(struct handler_registry *reg, struct handler *h)
{
	reg->items = xrealloc(reg->items, (reg->n + 1) * sizeof(*reg->items));
	reg->items[reg->n++] = *h;
}

/* Names and keys from outside may hold control characters: the message
 * stays one printable line. Returns -1. */
static int one_line(struct err *err)
{
	unsigned char *p;

	if (err)
		for (p = (unsigned char *)err->msg; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				*p = '?';
	return -1;
}

int handler_registry_parse(struct handler_registry *reg, const char *text,
			   size_t len, const char *origin, struct err *err)
{
	struct ctx c = { text, len, origin, NULL, err };
	struct handler_registry add_reg;
	json_error_t je;
	json_t *root, *hs, *v;
	const char *k;
	size_t i;
	int rc = -1;

	handler_registry_init(&add_reg);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (je.line > 0 && je.column > 0)
			err_set(err, ERR_INVALID, "%s:%d:%d: invalid JSON: %s", origin, je.line,
				je.column, je.text);
		else if (je.line > 0)
			err_set(err, ERR_INVALID, "%s:%d: invalid JSON: %s", origin, je.line,
				je.text);
		else
			err_set(err, ERR_INVALID, "%s: invalid JSON: %s", origin, je.text);
		return one_line(err);
	}
	if (!json_is_object(root)) {
		fail(&c, NULL, "expected a JSON object {\"handlers\": {\"TYPE\": {...}}}");
		goto out;
	}
	json_object_foreach(root, k, v) {
		if (strcmp(k, "handlers") && strcmp(k, "version")) {
			const char *path[1] = { k };
			int line = key_line(text, len, path, 1);

			if (line)
				err_set(err, ERR_INVALID, "%s:%d: unknown top-level field '%.64s' "
					"(known: handlers, version)", origin, line, k);
			else
				err_set(err, ERR_INVALID, "%s: unknown top-level field '%.64s' "
					"(known: handlers, version)", origin, k);
			goto out;
		}
	}
	if ((v = json_object_get(root, "version")) &&
	    (!json_is_integer(v) || json_integer_value(v) != 1)) {
		fail(&c, NULL, "unsupported \"version\": this wakeq reads version 1");
		goto out;
	}
	hs = json_object_get(root, "handlers");
	if (!json_is_object(hs)) {
		fail(&c, NULL, "expected \"handlers\": an object of TYPE: {settings}");
		goto out;
	}
	if (reg->n + json_object_size(hs) > HANDLER_MAX) {
		fail(&c, NULL, "more than %d handlers", HANDLER_MAX);
		goto out;
	}
	json_object_foreach(hs, k, v) {
		struct handler h;

		c.type = k;
		if (strlen(k) > HANDLER_TYPE_MAX * 4)
			c.type = "(too long)";
		if (parse_entry(&c, v, &h) < 0) {
			handler_release(&h);
			goto out;
		}
		if (handler_find(reg, h.type)) {
			fail(&c, NULL, "declared twice");
			handler_release(&h);
			goto out;
		}
		{
			const char *path[2] = { "handlers", k };
			int line = key_line(text, len, path, 2);
			char where[512];

			if (line)
				snprintf(where, sizeof(where), "%s:%d", origin, line);
			else
				snprintf(where, sizeof(where), "%s", origin);
			h.origin = xstrdup(where);
		}
		add(&add_reg, &h);
	}
	for (i = 0; i < add_reg.n; i++)
		add(reg, &add_reg.items[i]);
	add_reg.n = 0;
	rc = 0;
out:
	handler_registry_release(&add_reg);
	json_decref(root);
	return rc < 0 ? one_line(err) : 0;
}

int handler_registry_load_file(struct handler_registry *reg, const char *path,
			       struct err *err)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t n;
	int rc;

	if (!f)
		return err_set(err, ERR_IO, "cannot read HANDLERS_FILE '%s': %s", path,
			       strerror(errno));
	text = xmalloc(HANDLER_FILE_MAX + 1);
	n = fread(text, 1, HANDLER_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = err_set(err, ERR_IO, "cannot read HANDLERS_FILE '%s': %s", path,
			     strerror(errno));
	} else if (n > HANDLER_FILE_MAX) {
		rc = err_set(err, ERR_INVALID, "%s: larger than %d bytes", path,
			     HANDLER_FILE_MAX);
	} else {
		rc = handler_registry_parse(reg, text, n, path, err);
	}
	fclose(f);
	free(text);
	return rc;
}

/* WAKEQ_HANDLER_TTS__RENDER -> "tts.render"; NULL when the suffix is not
 * a type name. */
static char *env_type(const char *suffix, size_t n)
{
	char *t = xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (suffix[i] == '_' && i + 1 < n && suffix[i + 1] == '_') {
			t[o++] = '.';
			i++;
		} else {
			t[o++] = (char)tolower((unsigned char)suffix[i]);
		}
	}
	t[o] = '\0';
	return t;
}

int handler_registry_load_env(struct handler_registry *reg, char *const *envp,
			      struct err *err)
{
	size_t plen = strlen(HANDLER_ENV_PREFIX), first = reg->n, i;
	char *const *e;

	for (e = envp; e && *e; e++) {
		const char *eq = strchr(*e, '='), *value;
		char var[128], *type = NULL;
		struct ctx c;
		struct handler h;
		json_error_t je;
		json_t *obj;
		size_t vlen;
		int rc;

		if (strncmp(*e, HANDLER_ENV_PREFIX, plen) || !eq)
			continue;
		vlen = (size_t)(eq - *e);
		snprintf(var, sizeof(var), "%.*s", (int)(vlen < 100 ? vlen : 100), *e);
		value = eq + 1;
		memset(&c, 0, sizeof(c));
		c.origin = var;
		c.err = err;
		obj = json_loads(value, JSON_REJECT_DUPLICATES, &je);
		if (!obj || !json_is_object(obj)) {
			json_decref(obj);
			err_set(err, ERR_INVALID, "%s: expected a JSON object of handler "
				"settings%s%s", var, obj ? "" : ": ", obj ? "" : je.text);
			return one_line(err);
		}
		if (json_object_get(obj, "type")) {
			const char *t = str_of(json_object_get(obj, "type"));

			type = xstrdup(t ? t : "");
		} else {
			type = env_type(*e + plen, vlen - plen);
		}
		c.type = type;
		memset(&h, 0, sizeof(h));
		rc = parse_entry(&c, obj, &h);
		json_decref(obj);
		if (rc == 0) {
			h.origin = xstrdup(var);
			for (i = 0; i < reg->n; i++) {
				if (strcmp(reg->items[i].type, h.type))
					continue;
				if (i >= first) {
					rc = err_set(err, ERR_INVALID, "%s: handler '%s' is also "
						     "declared by %s", var, h.type,
						     reg->items[i].origin);
					break;
				}
				/* the environment overrides the file's entry */
				handler_release(&reg->items[i]);
				reg->items[i] = h;
				memset(&h, 0, sizeof(h));
				break;
			}
			if (rc == 0 && i == reg->n) {
				if (reg->n >= HANDLER_MAX) {
					rc = err_set(err, ERR_INVALID, "%s: more than %d handlers",
						     var, HANDLER_MAX);
				} else {
					add(reg, &h);
					memset(&h, 0, sizeof(h));
				}
			}
		}
		handler_release(&h);
		free(type);
		if (rc < 0)
			return one_line(err);
	}
	return 0;
}

int handler_registry_load(struct handler_registry *reg, const char *path,
			  char *const *envp, struct err *err)
{
	if (path && *path && handler_registry_load_file(reg, path, err) < 0)
		return -1;
	return handler_registry_load_env(reg, envp, err);
}

/* ---- the job module's view ------------------------------------------------ */

static int check_payload(const json_t *payload, const void *data, struct err *err)
{
	const struct handler *h = data;

	if (!json_is_object(payload))
		return err_set(err, ERR_INVALID, "payload must be a JSON object");
	if (!h->schema)
		return 0;
	return handler_schema_validate(h->schema, payload, err);
}

int handler_registry_add_types(const struct handler_registry *reg, struct err *err)
{
	size_t i;

	for (i = 0; i < reg->n; i++) {
		const struct handler *h = &reg->items[i];
		struct job_type t;

		memset(&t, 0, sizeof(t));
		t.name = h->type;
		t.check_data = check_payload;
		t.data = h;
		t.max_attempts = h->max_attempts;
		t.timeout_s = h->timeout_s;
		if (job_register(&t, err) < 0)
			return err_wrap(err, "%s", h->origin);
	}
	return 0;
}

/* ---- listings ------------------------------------------------------------ */

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *handler_to_json(const struct handler *h)
{
	json_t *o = json_object(), *codes, *lim;
	size_t i;

	json_object_set_new(o, "type", json_string(h->type));
	json_object_set_new(o, "kind", json_string(handler_kind_name(h->kind)));
	json_object_set_new(o, "origin", json_string(h->origin ? h->origin : ""));
	if (h->description)
		json_object_set_new(o, "description", json_string(h->description));
	json_object_set_new(o, "timeout_s", h->timeout_s > 0 ? json_real(h->timeout_s)
							      : json_null());
	json_object_set_new(o, "max_attempts", h->max_attempts ? json_integer(h->max_attempts)
								: json_null());
	json_object_set_new(o, "concurrency", h->concurrency ? json_integer(h->concurrency)
							      : json_null());
	json_object_set_new(o, "result_max", json_integer(h->result_max));
	json_object_set_new(o, "schema", h->schema ? json_incref(h->schema) : json_null());
	if (h->kind == HANDLER_EXEC) {
		if (h->shell)
			json_object_set_new(o, "command", json_string(h->argv[0]));
		else
			json_object_set_new(o, "command", strv_json(h->argv));
		json_object_set_new(o, "shell", json_boolean(h->shell));
		json_object_set_new(o, "persistent", json_boolean(h->persistent));
		codes = json_array();
		for (i = 0; i < h->nretry_codes; i++)
			json_array_append_new(codes, json_integer(h->retry_codes[i]));
		json_object_set_new(o, "retry_exit_codes", codes);
		/* names only: values given in the file may be secrets */
		{
			json_t *names = json_array();

			for (i = 0; h->env && h->env[i]; i++)
				json_array_append_new(names, json_stringn(h->env[i],
									  strcspn(h->env[i], "=")));
			json_object_set_new(o, "env", names);
		}
		json_object_set_new(o, "user", h->user ? json_string(h->user) : json_null());
		json_object_set_new(o, "kill_grace_s", json_real(h->kill_grace_s));
		lim = json_object();
		json_object_set_new(lim, "cpu_s", h->limits.cpu_s > 0 ? json_real(h->limits.cpu_s)
								      : json_null());
		json_object_set_new(lim, "memory", h->limits.memory ? json_integer(h->limits.memory)
								    : json_null());
		json_object_set_new(lim, "open_files", json_integer(h->limits.open_files));
		json_object_set_new(lim, "processes",
				    h->limits.processes ? json_integer(h->limits.processes)
							: json_null());
		json_object_set_new(o, "limits", lim);
	} else if (h->kind == HANDLER_HTTP) {
		json_object_set_new(o, "url", json_string(h->url));
		if (h->oidc_audience)
			json_object_set_new(o, "oidc_audience", json_string(h->oidc_audience));
		/* the variable's name only, never its value */
		if (h->bearer_env)
			json_object_set_new(o, "bearer_env", json_string(h->bearer_env));
		json_object_set_new(o, "allow_private", json_boolean(h->allow_private));
	} else {
		json_object_set_new(o, "path", json_string(h->path));
	}
	return o;
}

static void cat(char *buf, size_t n, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void cat(char *buf, size_t n, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (*off >= n)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + *off, n - *off, fmt, ap);
	va_end(ap);
	if (w > 0)
		*off += (size_t)w < n - *off ? (size_t)w : n - *off;
}

void handler_summary(const struct handler *h, char *buf, size_t n)
{
	size_t off = 0, i;

	if (n == 0)
		return;
	buf[0] = '\0';
	cat(buf, n, &off, "%s", handler_kind_name(h->kind));
	if (h->kind == HANDLER_EXEC) {
		if (h->persistent)
			cat(buf, n, &off, " persistent");
		if (h->shell)
			cat(buf, n, &off, " sh -c '%.60s'", h->argv[0]);
		else
			for (i = 0; h->argv[i] && i < 4; i++)
				cat(buf, n, &off, " %.160s", h->argv[i]);
		if (!h->shell && h->argv[0] && h->argv[1] && h->argv[2] && h->argv[3] &&
		    h->argv[4])
			cat(buf, n, &off, " ...");
	} else if (h->kind == HANDLER_HTTP) {
		cat(buf, n, &off, " %.80s", h->url);
		if (h->oidc_audience)
			cat(buf, n, &off, "  oidc %.80s", h->oidc_audience);
		else if (h->bearer_env)
			cat(buf, n, &off, "  bearer $%.64s", h->bearer_env);
		if (h->allow_private)
			cat(buf, n, &off, "  allow_private");
	} else {
		cat(buf, n, &off, " %.80s", h->path);
	}
	if (h->timeout_s > 0)
		cat(buf, n, &off, "  timeout %gs", h->timeout_s);
	if (h->max_attempts)
		cat(buf, n, &off, "  attempts %d", h->max_attempts);
	if (h->concurrency)
		cat(buf, n, &off, "  concurrency %d", h->concurrency);
	cat(buf, n, &off, "  result_max %lld", (long long)h->result_max);
	if (h->nretry_codes) {
		cat(buf, n, &off, "  retry_exit_codes ");
		for (i = 0; i < h->nretry_codes; i++)
			cat(buf, n, &off, "%s%d", i ? "," : "", h->retry_codes[i]);
	}
	if (h->schema)
		cat(buf, n, &off, "  schema");
	if (h->user)
		cat(buf, n, &off, "  user %.32s", h->user);
}
