#include "config/config.h"

#include "base/mem.h"
#include "base/parse.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void flag_name(const char *name, char *out, size_t n)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < n; i++)
		out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
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

static int set_value(const struct config_var *v, void *cfg, const char *text,
		     struct err *err)
{
	char *field = (char *)cfg + v->offset;
	int64_t i;
	double d;
	int b;

	switch (v->type) {
	case CONFIG_STRING:
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

void config_usage(FILE *out, const struct config_var *vars)
{
	char flag[64], left[96];

	for (; vars->name; vars++) {
		flag_name(vars->name, flag, sizeof(flag));
		snprintf(left, sizeof(left), "--%s %s", flag, type_word(vars));
		fprintf(out, "  %-30s %-18s %s", left, vars->name, vars->help);
		if (vars->def && !(vars->flags & CONFIG_SECRET) && *vars->def)
			fprintf(out, " (default %s)", vars->def);
		fputc('\n', out);
	}
}
