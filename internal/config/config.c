#include "config/config.h"

#include "base/mem.h"
#include "base/parse.h"

#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void flag_name(const char *name, char *out, size_t n)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < n; i++)
		out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
}

/* The first name of each value of a CONFIG_ENUM, joined by `sep` into
 * `out` (cut short if it does not fit). Later names of a value already
 * listed are aliases ("warning" for "warn") and left out. */
static void choice_list(const struct config_var *v, const char *sep, char *out,
			size_t n)
{
	const struct config_choice *c, *d;
	size_t len = 0;

	out[0] = '\0';
	for (c = v->choices; c->name && len < n; c++) {
		for (d = v->choices; d != c && d->value != c->value; d++)
			;
		if (d == c)
			len += (size_t)snprintf(out + len, n - len, "%s%s",
						len ? sep : "", c->name);
	}
}

static const char *type_word(const struct config_var *v)
{
	switch (v->type) {
	case CONFIG_INT: return "N";
	case CONFIG_SECONDS: return "SECONDS";
	case CONFIG_BOOL: return "BOOL";
	case CONFIG_SIZE: return "BYTES";
	default: return "VALUE";
	}
}

/* Whether [p, end) is a token a bearer header can carry: not empty, no
 * whitespace or control character. */
static int token_ok(const char *p, const char *end)
{
	if (p == end)
		return 0;
	for (; p < end; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

/* CONFIG_TOKEN(_LIST): "" is none; otherwise every token must be good. */
static int tokens_ok(const char *text, int list)
{
	const char *p = text, *end;

	if (!*text)
		return 1;
	if (!list)
		return token_ok(text, text + strlen(text));
	for (;;) {
		end = p + strcspn(p, ",");
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (!token_ok(p, end))
			return 0;
		p = end + strspn(end, " \t");
		if (!*p)
			return 1;
		p++; /* the comma */
	}
}

static int set_value(const struct config_var *v, void *cfg, const char *text,
		     struct err *err)
{
	char *field = (char *)cfg + v->offset;
	const struct config_choice *c;
	char names[256];
	int64_t i;
	double d;
	int b;

	switch (v->type) {
	case CONFIG_STRING:
		if ((v->flags & (CONFIG_TOKEN | CONFIG_TOKEN_LIST)) &&
		    !tokens_ok(text, (v->flags & CONFIG_TOKEN_LIST) != 0))
			return err_set(err, ERR_INVALID,
				       "bad %s: %s blank or holds whitespace "
				       "(it could never match a bearer header); "
				       "leave it empty for none", v->name,
				       v->flags & CONFIG_TOKEN_LIST ? "a token in the list is"
								    : "the token is");
		free(*(char **)field);
		*(char **)field = xstrdup(text);
		return 0;
	case CONFIG_INT:
		if (parse_int64(text, (int64_t)v->min, (int64_t)v->max, &i) < 0)
			goto bad;
		*(int64_t *)field = i;
		return 0;
	case CONFIG_SECONDS:
		if (parse_seconds(text, v->min, v->max, &d) < 0)
			goto bad;
		*(double *)field = d;
		return 0;
	case CONFIG_BOOL:
		if (parse_bool(text, &b) < 0)
			goto bad;
		*(int *)field = b;
		return 0;
	case CONFIG_SIZE:
		if (parse_size(text, (int64_t)v->max, &i) < 0 || i < (int64_t)v->min)
			goto bad;
		*(int64_t *)field = i;
		return 0;
	case CONFIG_ENUM:
		assert(v->choices);
		for (c = v->choices; c->name; c++) {
			if (!strcasecmp(c->name, text)) {
				*(int *)field = c->value;
				return 0;
			}
		}
		goto bad;
	}
bad:
	if (v->flags & CONFIG_SECRET)
		text = "…";
	switch (v->type) {
	case CONFIG_INT:
		return err_set(err, ERR_INVALID, "bad %s '%s': expected an integer from %.0f to %.0f",
			       v->name, text, v->min, v->max);
	case CONFIG_SECONDS:
		return err_set(err, ERR_INVALID, "bad %s '%s': expected seconds from %g to %g",
			       v->name, text, v->min, v->max);
	case CONFIG_BOOL:
		return err_set(err, ERR_INVALID, "bad %s '%s': expected true or false",
			       v->name, text);
	case CONFIG_ENUM:
		choice_list(v, ", ", names, sizeof(names));
		return err_set(err, ERR_INVALID, "bad %s '%s': expected one of %s",
			       v->name, text, names);
	default:
		return err_set(err, ERR_INVALID, "bad %s '%s': expected a size in bytes (K, M, G suffixes) up to %.0f",
			       v->name, text, v->max);
	}
}

static const struct config_var *find_flag(const struct config_var *vars,
					  const char *flag, size_t len)
{
	char name[64];

	for (; vars->name; vars++) {
		flag_name(vars->name, name, sizeof(name));
		if (strlen(name) == len && !memcmp(name, flag, len))
			return vars;
	}
	return NULL;
}

int config_load(const struct config_var *vars, void *cfg, int argc,
		char **argv, int *argi, struct err *err)
{
	const struct config_var *v;
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	for (v = vars; v->name; v++)
		if (v->def && set_value(v, cfg, v->def, err) < 0)
			return err_wrap(err, "default");
	for (v = vars; v->name; v++) {
		const char *env = getenv(v->name);

		if (env && set_value(v, cfg, env, err) < 0)
			return -1;
	}
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val, *eq;
		size_t len;

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2))
			break;
		arg += 2;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		v = find_flag(vars, arg, len);
		if (!v)
			return err_set(err, ERR_INVALID, "unknown flag '--%.*s' (see --help)",
				       (int)len, arg);
		if (eq)
			val = eq + 1;
		else if (v->type == CONFIG_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return err_set(err, ERR_INVALID, "flag '--%.*s' needs a value",
				       (int)len, arg);
		if (set_value(v, cfg, val, err) < 0)
			return -1;
	}
	if (argi)
		*argi = i;
	return 0;
}

void config_release(const struct config_var *vars, void *cfg)
{
	for (; vars->name; vars++) {
		if (vars->type == CONFIG_STRING) {
			char **field = (char **)((char *)cfg + vars->offset);

			free(*field);
			*field = NULL;
		}
	}
}

/* "--flag KIND" of one setting, KIND its choices for a CONFIG_ENUM. */
static void usage_left(const struct config_var *v, char *out, size_t n)
{
	char flag[64], names[64];

	flag_name(v->name, flag, sizeof(flag));
	if (v->type == CONFIG_ENUM)
		choice_list(v, "|", names, sizeof(names));
	snprintf(out, n, "--%s %s", flag, v->type == CONFIG_ENUM ? names : type_word(v));
}

void config_usage(FILE *out, const struct config_var *vars)
{
	const struct config_var *v;
	char left[96];
	int width = 30;

	for (v = vars; v->name; v++) {
		usage_left(v, left, sizeof(left));
		if ((int)strlen(left) > width)
			width = (int)strlen(left);
	}
	for (v = vars; v->name; v++) {
		usage_left(v, left, sizeof(left));
		fprintf(out, "  %-*s %-18s %s", width, left, v->name, v->help);
		if (v->def && !(v->flags & CONFIG_SECRET) && *v->def)
			fprintf(out, " (default %s)", v->def);
		fputc('\n', out);
	}
}
