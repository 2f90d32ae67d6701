/* config.h - one table of settings per binary: environment variable, flag,
 * bounds, default and help line (redis's config.c, reduced).
 *
 * Each setting is read from its default, then the environment variable
 * NAME, then the flag --name (NAME lowercased, '_' → '-'), the last one
 * winning. A bad value stops start-up with one line naming the variable:
 *   bad IDLE_TIMEOUT 'abc': expected seconds from 0 to 86400
 *   bad LOG_LEVEL 'loud': expected one of debug, info, warn, error
 */
#ifndef WAKEQ_CONFIG_H
#define WAKEQ_CONFIG_H

#include "base/err.h"

#include <stddef.h>
#include <stdio.h>

enum config_type {
	CONFIG_STRING,  /* char *, heap copy; freed by config_release */
	CONFIG_INT,     /* int64_t in [min, max] */
	CONFIG_SECONDS, /* double seconds in [min, max], fractions allowed */
	CONFIG_BOOL,    /* int 0/1; a bare --flag means 1 */
	CONFIG_SIZE,    /* int64_t bytes, K/M/G suffixes, at most max */
	CONFIG_ENUM     /* int: the value of one of `choices`, named without
			 * regard to case; anything else (empty too) is bad */
};

/* One name a CONFIG_ENUM setting accepts and the int it stands for. A
 * value may have several names: --help and errors list the first only.
 * A list ends with CONFIG_CHOICES_END. */
struct config_choice {
	const char *name;
	int value;
};

#define CONFIG_CHOICES_END { NULL, 0 }

#define CONFIG_SECRET 1u /* never printed, not even as a default */
/* A CONFIG_STRING that is a bearer token: empty (none), or a token with no
 * whitespace or control character. A blank or spaced token could never
 * match an Authorization header, so it is refused rather than taken. */
#define CONFIG_TOKEN 2u
/* The same for a comma-separated list of tokens (blanks around the commas
 * are ignored; no item may be empty). */
#define CONFIG_TOKEN_LIST 4u

struct config_var {
	const char *name;   /* environment variable */
	enum config_type type;
	size_t offset;      /* of the field in the caller's struct */
	double min, max;    /* bounds for numbers */
	const char *def;    /* default as text; NULL leaves the field empty */
	const char *help;   /* one line */
	unsigned flags;
	const struct config_choice *choices; /* CONFIG_ENUM only, else NULL */
};

/* A number constant as a default's text: CONFIG_TEXT(QUEUE_RESULT_TTL_DEFAULT). */
#define CONFIG_TEXT(x) CONFIG_TEXT_(x)
#define CONFIG_TEXT_(x) #x

#define CONFIG_END { NULL, CONFIG_STRING, 0, 0, 0, NULL, NULL, 0, NULL }

/* Fills `cfg` from `vars` (ended by CONFIG_END), the environment and
 * argv[1..]. Flags stop at "--" or the first argument not starting with
 * "--"; its index is stored in *argi (argc when none).
 * Returns 0 when loaded, 1 when --help was asked (nothing else is checked),
 * -1 with `err` set on a bad value or unknown flag. On -1 the strings set
 * so far are still owned by `cfg`: call config_release. */
int config_load(const struct config_var *vars, void *cfg, int argc,
		char **argv, int *argi, struct err *err);

/* Frees the strings of `cfg`. */
void config_release(const struct config_var *vars, void *cfg);

/* Prints one line per setting: flag, variable, default, help; a
 * CONFIG_ENUM shows its choices where others show their kind of value
 * ("--log-format text|json"). */
void config_usage(FILE *out, const struct config_var *vars);

#endif
