/* toolargs.h - the "--name VALUE" options of the test tools, read from a
 * table of names and where each value goes. Header-only, each tool
 * includes it once. */
#ifndef WAKEQ_TOOLARGS_H
#define WAKEQ_TOOLARGS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum tool_arg_kind {
	TOOL_INT,    /* int, atoi */
	TOOL_LONG,   /* long, atol */
	TOOL_INT64,  /* int64_t, atoll */
	TOOL_DOUBLE, /* double, atof */
	TOOL_STRING  /* const char *, the argument itself */
};

struct tool_arg {
	const char *name; /* "--port" */
	enum tool_arg_kind kind;
	void *out;
};

/* Reads argv[first..argc) as "--name VALUE" pairs into the outputs of
 * `args` (ended by a NULL name). Returns 0, or -1 at an option that is
 * not in the table or has no value (the caller prints its usage). */
static int tool_args(int argc, char **argv, int first, const struct tool_arg *args)
{
	const struct tool_arg *a;
	int i;

	for (i = first; i < argc; i += 2) {
		for (a = args; a->name && strcmp(a->name, argv[i]); a++)
			;
		if (!a->name || i + 1 >= argc)
			return -1;
		switch (a->kind) {
		case TOOL_INT: *(int *)a->out = atoi(argv[i + 1]); break;
		case TOOL_LONG: *(long *)a->out = atol(argv[i + 1]); break;
		case TOOL_INT64: *(int64_t *)a->out = atoll(argv[i + 1]); break;
		case TOOL_DOUBLE: *(double *)a->out = atof(argv[i + 1]); break;
		case TOOL_STRING: *(const char **)a->out = argv[i + 1]; break;
		}
	}
	return 0;
}

#endif
