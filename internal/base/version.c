#include "base/version.h"

#include "version_gen.h" /* WAKEQ_VERSION, made by the Makefile */

#include <string.h>

const char *version_string(void)
{
	return WAKEQ_VERSION;
}

int version_asked(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--version"))
			return 1;
	return 0;
}
