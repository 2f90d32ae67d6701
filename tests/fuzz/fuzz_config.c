/* Fuzzes the configuration parsers (environment values and flags are
 * outside input): the input is split at NUL bytes into argv words.
 * Seeds in tests/fuzz/corpus/config. */
#include "config/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
	char *s;
	int64_t i, z;
	double d;
	int b, m;
};

static const struct config_choice modes[] = {
	{ "low", 1 }, { "high", 9 }, { "hi", 9 }, { "off", -2 }, CONFIG_CHOICES_END
};

static const struct config_var vars[] = {
	{ "NAME", CONFIG_STRING, offsetof(struct cfg, s), 0, 0, "x", "a string", 0, NULL },
	{ "COUNT", CONFIG_INT, offsetof(struct cfg, i), -5, 1000, "1", "an int", 0, NULL },
	{ "WAIT", CONFIG_SECONDS, offsetof(struct cfg, d), 0.001, 86400, "1", "seconds", 0, NULL },
	{ "ON", CONFIG_BOOL, offsetof(struct cfg, b), 0, 0, "true", "a bool", 0, NULL },
	{ "SIZE", CONFIG_SIZE, offsetof(struct cfg, z), 1, 1e12, "1M", "a size", 0, NULL },
	{ "MODE", CONFIG_ENUM, offsetof(struct cfg, m), 0, 0, "low", "a choice", 0, modes },
	CONFIG_END
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[34];
	struct cfg c;
	struct err e;
	size_t i, start = 0;
	int argc = 1, argi;

	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = (char *)"fuzz";
	for (i = 0; i <= size && argc < 33; i++)
		if (buf[i] == '\0') {
			argv[argc++] = buf + start;
			start = i + 1;
		}
	argv[argc] = NULL;
	memset(&c, 0, sizeof(c));
	if (config_load(vars, &c, argc, argv, &argi, &e) == 0) {
		if (c.i < -5 || c.i > 1000 || !(c.d >= 0.001 && c.d <= 86400) || c.z < 1 ||
		    (c.b != 0 && c.b != 1) || !c.s || (c.m != 1 && c.m != 9 && c.m != -2))
			abort(); /* out of bounds got through */
	}
	config_release(vars, &c);
	free(buf);
	return 0;
}
