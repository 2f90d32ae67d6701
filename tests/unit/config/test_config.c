/* Unit tests of internal/config: defaults, environment, flags, bounds,
 * choices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "config/config.h"
#include "../unit.h"

struct cfg {
	char *name;
	int64_t count;
	double wait;
	int on;
	int64_t size;
	int mode;
};

enum { MODE_FAST = 3, MODE_SAFE = 7, MODE_OFF = 0 };

static const struct config_choice modes[] = {
	{ "fast", MODE_FAST }, { "safe", MODE_SAFE }, { "quick", MODE_FAST },
	{ "off", MODE_OFF }, CONFIG_CHOICES_END
};

#define F(f) offsetof(struct cfg, f)
static const struct config_var vars[] = {
	{ "T_NAME", CONFIG_STRING, F(name), 0, 0, "def", "a name", 0, NULL },
	{ "T_COUNT", CONFIG_INT, F(count), 1, 100, "5", "a count", 0, NULL },
	{ "T_WAIT", CONFIG_SECONDS, F(wait), 0.001, 60, "1.5", "seconds", 0, NULL },
	{ "T_ON", CONFIG_BOOL, F(on), 0, 0, "false", "a switch", 0, NULL },
	{ "T_SIZE", CONFIG_SIZE, F(size), 1, 1073741824.0, "1M", "bytes", 0, NULL },
	{ "T_SECRET", CONFIG_STRING, F(name), 0, 0, NULL, "secret", CONFIG_SECRET, NULL },
	{ "T_MODE", CONFIG_ENUM, F(mode), 0, 0, "safe", "a mode", 0, modes },
	CONFIG_END
};

static void clear_env(void)
{
	unsetenv("T_NAME");
	unsetenv("T_COUNT");
	unsetenv("T_WAIT");
	unsetenv("T_ON");
	unsetenv("T_SIZE");
	unsetenv("T_MODE");
}

static void test_defaults_env_flags(void **state)
{
	struct cfg c;
	struct err e;
	char *argv[] = { (char *)"prog", (char *)"--t-count", (char *)"7", (char *)"--t-on",
			 (char *)"--t-wait=0.25", (char *)"rest", NULL };
	int argi;

	(void)state;
	clear_env();
	memset(&c, 0, sizeof(c));
	setenv("T_NAME", "from-env", 1);
	setenv("T_COUNT", "9", 1);
	setenv("T_SIZE", "2K", 1);
	assert_int_equal(config_load(vars, &c, 6, argv, &argi, &e), 0);
	assert_string_equal(c.name, "from-env");
	assert_int_equal(c.count, 7); /* the flag wins over the environment */
	assert_true(c.wait == 0.25);
	assert_int_equal(c.on, 1);
	assert_int_equal(c.size, 2048);
	assert_int_equal(argi, 5);
	assert_string_equal(argv[argi], "rest");
	config_release(vars, &c);
	assert_null(c.name);
	clear_env();
}

static void test_bad_values_name_the_variable(void **state)
{
	struct cfg c;
	struct err e;
	char *argv[] = { (char *)"prog", NULL };
	char *argv2[] = { (char *)"prog", (char *)"--nope", (char *)"1", NULL };
	char *argv3[] = { (char *)"prog", (char *)"--t-count", NULL };

	(void)state;
	clear_env();
	memset(&c, 0, sizeof(c));
	setenv("T_COUNT", "101", 1);
	assert_int_equal(config_load(vars, &c, 1, argv, NULL, &e), -1);
	assert_string_equal(e.msg, "bad T_COUNT '101': expected an integer from 1 to 100");
	config_release(vars, &c);
	clear_env();
	setenv("T_WAIT", "soon", 1);
	assert_int_equal(config_load(vars, &c, 1, argv, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "bad T_WAIT 'soon'"));
	config_release(vars, &c);
	clear_env();
	setenv("T_ON", "maybe", 1);
	assert_int_equal(config_load(vars, &c, 1, argv, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "bad T_ON 'maybe'"));
	config_release(vars, &c);
	clear_env();
	assert_int_equal(config_load(vars, &c, 3, argv2, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "unknown flag '--nope'"));
	config_release(vars, &c);
	assert_int_equal(config_load(vars, &c, 2, argv3, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "needs a value"));
	config_release(vars, &c);
}

static void test_help(void **state)
{
	struct cfg c;
	char *argv[] = { (char *)"prog", (char *)"--t-count", (char *)"x", (char *)"--help", NULL };

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(config_load(vars, &c, 4, argv, NULL, NULL), 1);
	config_release(vars, &c);
}

/* Loads with T_MODE=`env` (NULL: unset) and --t-mode `flag` (NULL: none). */
static int load_mode(const char *env, const char *flag, struct cfg *c, struct err *e)
{
	char *argv[] = { (char *)"prog", (char *)"--t-mode", (char *)flag, NULL };
	int r;

	clear_env();
	if (env)
		setenv("T_MODE", env, 1);
	memset(c, 0, sizeof(*c));
	c->mode = -1;
	r = config_load(vars, c, flag ? 3 : 1, argv, NULL, e);
	config_release(vars, c);
	clear_env();
	return r;
}

static void test_enum_good(void **state)
{
	struct cfg c;
	struct err e;

	(void)state;
	assert_int_equal(load_mode(NULL, NULL, &c, &e), 0);
	assert_int_equal(c.mode, MODE_SAFE); /* the default, by name */
	assert_int_equal(load_mode("fast", NULL, &c, &e), 0);
	assert_int_equal(c.mode, MODE_FAST);
	assert_int_equal(load_mode("off", NULL, &c, &e), 0);
	assert_int_equal(c.mode, MODE_OFF);
	assert_int_equal(load_mode("quick", NULL, &c, &e), 0); /* an alias */
	assert_int_equal(c.mode, MODE_FAST);
	assert_int_equal(load_mode("fast", "off", &c, &e), 0); /* the flag wins */
	assert_int_equal(c.mode, MODE_OFF);
}

static void test_enum_bad(void **state)
{
	struct cfg c;
	struct err e;

	(void)state;
	assert_int_equal(load_mode("slow", NULL, &c, &e), -1);
	/* one line naming the variable and every value once (no aliases) */
	assert_string_equal(e.msg, "bad T_MODE 'slow': expected one of fast, safe, off");
	assert_int_equal(load_mode(NULL, "fastest", &c, &e), -1);
	assert_string_equal(e.msg, "bad T_MODE 'fastest': expected one of fast, safe, off");
	assert_int_equal(load_mode("fas", NULL, &c, &e), -1); /* no prefixes */
	assert_int_equal(load_mode("fast ", NULL, &c, &e), -1);
	assert_int_equal(load_mode("1", NULL, &c, &e), -1); /* names, not numbers */
}

static void test_enum_empty(void **state)
{
	struct cfg c;
	struct err e;

	(void)state;
	assert_int_equal(load_mode("", NULL, &c, &e), -1);
	assert_string_equal(e.msg, "bad T_MODE '': expected one of fast, safe, off");
	assert_int_equal(load_mode(NULL, "", &c, &e), -1);
	assert_string_equal(e.msg, "bad T_MODE '': expected one of fast, safe, off");
}

static void test_enum_case(void **state)
{
	struct cfg c;
	struct err e;

	(void)state;
	assert_int_equal(load_mode("FAST", NULL, &c, &e), 0);
	assert_int_equal(c.mode, MODE_FAST);
	assert_int_equal(load_mode(NULL, "Off", &c, &e), 0);
	assert_int_equal(c.mode, MODE_OFF);
	assert_int_equal(load_mode("sAfE", NULL, &c, &e), 0);
	assert_int_equal(c.mode, MODE_SAFE);
}

struct tcfg {
	char *one, *list;
};

static const struct config_var token_vars[] = {
	{ "T_TOKEN", CONFIG_STRING, offsetof(struct tcfg, one), 0, 0, "", "a token",
	  CONFIG_SECRET | CONFIG_TOKEN, NULL },
	{ "T_TOKENS", CONFIG_STRING, offsetof(struct tcfg, list), 0, 0, "", "tokens",
	  CONFIG_SECRET | CONFIG_TOKEN_LIST, NULL },
	CONFIG_END
};

/* Loads token_vars with T_TOKEN=one and T_TOKENS=list (NULL: unset). */
static int load_tokens(const char *one, const char *list, struct err *e)
{
	struct tcfg c;
	char *argv[] = { (char *)"prog", NULL };
	int r;

	unsetenv("T_TOKEN");
	unsetenv("T_TOKENS");
	if (one)
		setenv("T_TOKEN", one, 1);
	if (list)
		setenv("T_TOKENS", list, 1);
	memset(&c, 0, sizeof(c));
	r = config_load(token_vars, &c, 1, argv, NULL, e);
	config_release(token_vars, &c);
	unsetenv("T_TOKEN");
	unsetenv("T_TOKENS");
	return r;
}

static void test_tokens(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(load_tokens(NULL, NULL, &e), 0);
	assert_int_equal(load_tokens("", "", &e), 0);
	assert_int_equal(load_tokens("s3cret", "a,b", &e), 0);
	assert_int_equal(load_tokens("s3cret", " a , b ", &e), 0);
	/* blank or spaced: could never match a header, so refused */
	assert_int_equal(load_tokens(" ", NULL, &e), -1);
	assert_string_equal(e.msg, "bad T_TOKEN: the token is blank or holds whitespace "
				   "(it could never match a bearer header); leave it empty for none");
	assert_null(strstr(e.msg, "'")); /* a secret is not printed */
	assert_int_equal(load_tokens("\t", NULL, &e), -1);
	assert_int_equal(load_tokens(" s3cret", NULL, &e), -1);
	assert_int_equal(load_tokens("s3cret\n", NULL, &e), -1);
	assert_int_equal(load_tokens("s3 cret", NULL, &e), -1);
	assert_int_equal(load_tokens(NULL, " ", &e), -1);
	assert_non_null(strstr(e.msg, "bad T_TOKENS: a token in the list is blank"));
	assert_int_equal(load_tokens(NULL, "a,,b", &e), -1);
	assert_int_equal(load_tokens(NULL, "a, ", &e), -1);
	assert_int_equal(load_tokens(NULL, "a,b c", &e), -1);
}

static void test_usage_lists_choices(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	config_usage(f, vars);
	fclose(f);
	assert_non_null(strstr(text, "--t-mode fast|safe|off"));
	assert_non_null(strstr(text, "T_MODE"));
	assert_non_null(strstr(text, "a mode (default safe)"));
	assert_null(strstr(text, "quick"));
	assert_non_null(strstr(text, "--t-count N"));
	free(text);
}

/* The API refuses at start-up an UPLOAD_URL_TTL it could not sign: a
 * fraction of a second (it would truncate to 0 and every presign fail),
 * or past the services' week. */
static void test_upload_url_ttl(void **state)
{
	static const double bad[] = { 0.5, 0.999, -1, 604801 };
	struct api_config c;
	struct api *a;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.no_auth = 1;
		c.upload_url_ttl_s = bad[i];
		a = api_start(&c, &e);
		assert_null(a);
		assert_int_equal(e.code, ERR_INVALID);
		assert_non_null(strstr(e.msg, "bad UPLOAD_URL_TTL"));
	}
}

UNIT_MAIN(
		cmocka_unit_test(test_defaults_env_flags),
		cmocka_unit_test(test_bad_values_name_the_variable),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_enum_good),
		cmocka_unit_test(test_enum_bad),
		cmocka_unit_test(test_enum_empty),
		cmocka_unit_test(test_enum_case),
		cmocka_unit_test(test_usage_lists_choices),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_upload_url_ttl),
)
