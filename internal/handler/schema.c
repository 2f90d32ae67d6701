/* schema.c - the subset of JSON Schema a handler's payload is checked
 * against at intake (handler.h lists the keywords).
 *
 * Two passes: handler_schema_compile checks the schema once when the
 * registry is loaded (so a typo'd keyword stops start-up instead of
 * silently checking nothing), and handler_schema_validate walks a payload
 * with it. Both recurse at most HANDLER_SCHEMA_DEPTH levels; a payload
 * deeper than its schema is not walked further.
 */
#include "handler/handler.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[] = {
	"object", "array", "string", "number", "integer", "boolean", "null", NULL
};

static const char *const ignored[] = {
	"title", "description", "default", "examples", "$schema", "$id", "$comment",
	"deprecated", "readOnly", "writeOnly", NULL
};

#define SUPPORTED "type, properties, required, additionalProperties, items, " \
	"enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, " \
	"minLength, maxLength, minItems, maxItems"

static int in_list(const char *s, const char *const *list)
{
	size_t i;

	for (i = 0; list[i]; i++)
		if (!strcmp(s, list[i]))
			return 1;
	return 0;
}

/* path + "." + name, or "[i]", into out (truncated: a message only). */
static void sub(char *out, size_t n, const char *path, const char *name)
{
	snprintf(out, n, "%s%s%s", path, *path && name[0] != '[' ? "." : "", name);
}

static int bad(struct err *err, const char *path, const char *kw, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(struct err *err, const char *path, const char *kw, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(err, ERR_INVALID, "%s%s%s: %s", path, *path ? "." : "", kw, msg);
}

static int count_ok(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int compile(const json_t *s, const char *path, int depth, struct err *err)
{
	const char *k;
	json_t *v;
	char p[256];
	size_t i;

	if (json_is_boolean(s))
		return 0;
	if (!json_is_object(s))
		return err_set(err, ERR_INVALID, "%s%sexpected a schema (an object or a boolean)",
			       path, *path ? ": " : "");
	if (depth > HANDLER_SCHEMA_DEPTH)
		return err_set(err, ERR_INVALID, "%s: nested deeper than %d levels", path,
			       HANDLER_SCHEMA_DEPTH);
	json_object_foreach((json_t *)s, k, v) {
		if (in_list(k, ignored) || !strcmp(k, "const")) {
			continue;
		} else if (!strcmp(k, "type")) {
			if (json_is_string(v)) {
				if (!in_list(json_string_value(v), type_names))
					return bad(err, path, k, "unknown type '%.32s' (known: "
						   "object, array, string, number, integer, "
						   "boolean, null)", json_string_value(v));
				continue;
			}
			if (!json_is_array(v) || json_array_size(v) == 0)
				return bad(err, path, k, "expected a type name or a non-empty "
					   "array of them");
			for (i = 0; i < json_array_size(v); i++) {
				const json_t *t = json_array_get(v, i);

				if (!json_is_string(t) || !in_list(json_string_value(t), type_names))
					return bad(err, path, k, "entry %zu: expected object, array, "
						   "string, number, integer, boolean or null", i);
			}
		} else if (!strcmp(k, "properties")) {
			const char *name;
			json_t *ps;

			if (!json_is_object(v))
				return bad(err, path, k, "expected an object of schemas");
			json_object_foreach(v, name, ps) {
				char pp[256];

				sub(pp, sizeof(pp), path, "properties");
				sub(p, sizeof(p), pp, name);
				if (compile(ps, p, depth + 1, err) < 0)
					return -1;
			}
		} else if (!strcmp(k, "required")) {
			if (!json_is_array(v))
				return bad(err, path, k, "expected an array of property names");
			for (i = 0; i < json_array_size(v); i++)
				if (!json_is_string(json_array_get(v, i)))
					return bad(err, path, k, "entry %zu: expected a property name",
						   i);
		} else if (!strcmp(k, "additionalProperties") || !strcmp(k, "items")) {
			if (!strcmp(k, "items") && json_is_array(v))
				return bad(err, path, k, "tuple form (an array) is not supported: "
					   "give one schema for every item");
			sub(p, sizeof(p), path, k);
			if (compile(v, p, depth + 1, err) < 0)
				return -1;
		} else if (!strcmp(k, "enum")) {
			if (!json_is_array(v) || json_array_size(v) == 0)
				return bad(err, path, k, "expected a non-empty array of values");
		} else if (!strcmp(k, "minimum") || !strcmp(k, "maximum") ||
			   !strcmp(k, "exclusiveMinimum") || !strcmp(k, "exclusiveMaximum")) {
			if (!json_is_number(v))
				return bad(err, path, k, "expected a number");
		} else if (!strcmp(k, "minLength") || !strcmp(k, "maxLength") ||
			   !strcmp(k, "minItems") || !strcmp(k, "maxItems")) {
			if (!count_ok(v))
				return bad(err, path, k, "expected a non-negative integer");
		} else {
			return bad(err, path, k, "keyword not supported (supported: " SUPPORTED
				   "; annotations such as title and description are ignored)");
		}
	}
	return 0;
}

int handler_schema_compile(const json_t *schema, struct err *err)
{
	return compile(schema, "", 0, err);
}

/* ---- validation ----------------------------------------------------------- */

static const char *kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static int is_type(const json_t *v, const char *t)
{
	if (!strcmp(t, "object")) return json_is_object(v);
	if (!strcmp(t, "array")) return json_is_array(v);
	if (!strcmp(t, "string")) return json_is_string(v);
	if (!strcmp(t, "number")) return json_is_number(v);
	if (!strcmp(t, "integer"))
		return json_is_integer(v) ||
		       (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
	if (!strcmp(t, "boolean")) return json_is_boolean(v);
	if (!strcmp(t, "null")) return json_is_null(v);
	return 0;
}

/* JSON equality with 1 == 1.0, as JSON Schema has it (jansson's
 * json_equal tells integers from reals). */
static int same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return json_equal((json_t *)a, (json_t *)b);
}

static int invalid(struct err *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "payload field 'a.b' MSG", or "payload MSG" at the root. */
static int invalid(struct err *err, const char *path, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!*path)
		return err_set(err, ERR_INVALID, "payload %s", msg);
	return err_set(err, ERR_INVALID, "payload field '%s' %s", path, msg);
}

/* `n` (a length or a count) against the schema's keywords `min` and
 * `max`: "must VERB at least|most K WHAT". Returns 0 or -1. */
static int count_bounds(const json_t *s, const char *min, const char *max, size_t n,
			const char *verb, const char *what, const char *path, struct err *err)
{
	const json_t *k;

	if ((k = json_object_get(s, min)) && n < (size_t)json_integer_value(k))
		return invalid(err, path, "must %s at least %lld %s", verb,
			       (long long)json_integer_value(k), what);
	if ((k = json_object_get(s, max)) && n > (size_t)json_integer_value(k))
		return invalid(err, path, "must %s at most %lld %s", verb,
			       (long long)json_integer_value(k), what);
	return 0;
}

/* The values of an enum, for a message: "a", "b", 3 (cut short). */
static void list_values(const json_t *arr, char *out, size_t n)
{
	size_t i, off = 0;

	out[0] = '\0';
	for (i = 0; i < json_array_size(arr) && off + 8 < n; i++) {
		char *t = json_dumps(json_array_get(arr, i), JSON_ENCODE_ANY | JSON_COMPACT);
		int w = snprintf(out + off, n - off, "%s%.40s", i ? ", " : "", t ? t : "?");

		free(t);
		if (w < 0)
			break;
		off += (size_t)w < n - off ? (size_t)w : n - off - 1;
	}
	if (i < json_array_size(arr) && off + 5 < n)
		snprintf(out + off, n - off, ", ...");
}

static size_t utf8_len(const char *s, size_t bytes)
{
	size_t i, n = 0;

	for (i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

static int validate(const json_t *s, const json_t *v, char *path, size_t cap,
		    int depth, struct err *err);

static int validate_object(const json_t *s, const json_t *v, char *path, size_t cap,
			   int depth, struct err *err)
{
	const json_t *req = json_object_get(s, "required");
	const json_t *props = json_object_get(s, "properties");
	const json_t *extra = json_object_get(s, "additionalProperties");
	size_t len = strlen(path), i;
	const char *k;
	json_t *x;

	for (i = 0; json_is_array(req) && i < json_array_size(req); i++) {
		const char *name = json_string_value(json_array_get(req, i));
		const json_t *m = json_object_get(v, name);

		if (!m) {
			snprintf(path + len, cap - len, "%s%s", len ? "." : "", name);
			return invalid(err, path, "is required");
		}
	}
	json_object_foreach((json_t *)v, k, x) {
		const json_t *ps = json_is_object(props) ? json_object_get(props, k) : NULL;

		if (!ps && !extra)
			continue;
		snprintf(path + len, cap - len, "%s%s", len ? "." : "", k);
		if (ps) {
			if (validate(ps, x, path, cap, depth + 1, err) < 0)
				return -1;
		} else if (json_is_false(extra)) {
			return invalid(err, path, "is not allowed");
		} else if (validate(extra, x, path, cap, depth + 1, err) < 0) {
			return -1;
		}
		path[len] = '\0';
	}
	return 0;
}

static int validate(const json_t *s, const json_t *v, char *path, size_t cap,
		    int depth, struct err *err)
{
	const json_t *k;
	size_t len = strlen(path), i;
	double d, lim;
	char vals[256];

	if (json_is_true(s) || depth > HANDLER_SCHEMA_DEPTH)
		return 0;
	if (json_is_false(s))
		return invalid(err, path, "is not allowed");
	if ((k = json_object_get(s, "type"))) {
		int ok = 0;

		if (json_is_string(k)) {
			ok = is_type(v, json_string_value(k));
			if (!ok)
				return invalid(err, path, "must be %s %s, not %s",
					       strchr("aeiou", json_string_value(k)[0]) ? "an" : "a",
					       json_string_value(k), kind(v));
		} else {
			for (i = 0; i < json_array_size(k) && !ok; i++)
				ok = is_type(v, json_string_value(json_array_get(k, i)));
			if (!ok) {
				list_values(k, vals, sizeof(vals));
				return invalid(err, path, "must be one of the types %s, not %s",
					       vals, kind(v));
			}
		}
	}
	if ((k = json_object_get(s, "enum"))) {
		int ok = 0;

		for (i = 0; i < json_array_size(k) && !ok; i++)
			ok = same(json_array_get(k, i), v);
		if (!ok) {
			list_values(k, vals, sizeof(vals));
			return invalid(err, path, "must be one of %s", vals);
		}
	}
	if ((k = json_object_get(s, "const")) && !same(k, v)) {
		char *t = json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT);
		int r = invalid(err, path, "must be %.64s", t ? t : "?");

		free(t);
		return r;
	}
	if (json_is_number(v)) {
		d = json_number_value(v);
		if ((k = json_object_get(s, "minimum")) && d < (lim = json_number_value(k)))
			return invalid(err, path, "must be at least %g", lim);
		if ((k = json_object_get(s, "maximum")) && d > (lim = json_number_value(k)))
			return invalid(err, path, "must be at most %g", lim);
		if ((k = json_object_get(s, "exclusiveMinimum")) &&
		    d <= (lim = json_number_value(k)))
			return invalid(err, path, "must be greater than %g", lim);
		if ((k = json_object_get(s, "exclusiveMaximum")) &&
		    d >= (lim = json_number_value(k)))
			return invalid(err, path, "must be less than %g", lim);
	}
	if (json_is_string(v)) {
		size_t n = utf8_len(json_string_value(v), json_string_length(v));

		if (count_bounds(s, "minLength", "maxLength", n, "be", "characters long", path,
				 err) < 0)
			return -1;
	}
	if (json_is_array(v)) {
		size_t n = json_array_size(v);

		if (count_bounds(s, "minItems", "maxItems", n, "have", "items", path, err) < 0)
			return -1;
		if ((k = json_object_get(s, "items"))) {
			for (i = 0; i < n; i++) {
				snprintf(path + len, cap - len, "[%zu]", i);
				if (validate(k, json_array_get(v, i), path, cap, depth + 1, err) < 0)
					return -1;
			}
			path[len] = '\0';
		}
	}
	if (json_is_object(v))
		return validate_object(s, v, path, cap, depth, err);
	return 0;
}

int handler_schema_validate(const json_t *schema, const json_t *value, struct err *err)
{
	char path[512] = "";

	return validate(schema, value, path, sizeof(path), 0, err);
}
