/* Unit tests of internal/handler's registry: the HANDLERS_FILE format,
 * WAKEQ_HANDLER_* entries, malformed documents (one line naming the file,
 * line and problem), the payload schema subset, and registration with the
 * job module (intake refuses unknown types and bad payloads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handler/handler.h"
#include "job/job.h"
#include "../unit.h"

static const char good[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"handlers\": {\n"
	"    \"tts.render\": {\n"
	"      \"command\": [\"/usr/bin/python3\", \"tts.py\", \"--fast\"],\n"
	"      \"timeout_s\": 120,\n"
	"      \"max_attempts\": 5,\n"
	"      \"concurrency\": 2,\n"
	"      \"result_max\": \"64K\",\n"
	"      \"retry_exit_codes\": [75, 111],\n"
	"      \"env\": [\"HOME\", \"LANG=C.UTF-8\"],\n"
	"      \"limits\": {\"memory\": \"512M\", \"open_files\": 64, \"processes\": 32},\n"
	"      \"kill_grace_s\": 1.5,\n"
	"      \"schema\": {\"type\": \"object\", \"required\": [\"text\"],\n"
	"                 \"properties\": {\"text\": {\"type\": \"string\", \"maxLength\": 5}}}\n"
	"    },\n"
	"    \"sh-echo\": {\"command\": \"cat\", \"shell\": true, \"persistent\": true},\n"
	"    \"push\": {\"kind\": \"http\", \"url\": \"https://svc.example/run\"},\n"
	"    \"native\": {\"kind\": \"plugin\", \"path\": \"/usr/lib/wakeq/x.so\"}\n"
	"  }\n"
	"}\n";

static int parse(const char *text, struct handler_registry *reg, struct err *e)
{
	handler_registry_init(reg);
	return handler_registry_parse(reg, text, strlen(text), "h.json", e);
}

static void test_good(void **state)
{
	struct handler_registry reg;
	const struct handler *h;
	struct err e;

	(void)state;
	assert_int_equal(parse(good, &reg, &e), 0);
	assert_int_equal(reg.n, 4);
	h = handler_find(&reg, "tts.render");
	assert_non_null(h);
	assert_int_equal(h->kind, HANDLER_EXEC);
	assert_string_equal(h->origin, "h.json:4");
	assert_string_equal(h->argv[0], "/usr/bin/python3");
	assert_string_equal(h->argv[2], "--fast");
	assert_null(h->argv[3]);
	assert_true(h->timeout_s == 120);
	assert_int_equal(h->max_attempts, 5);
	assert_int_equal(h->concurrency, 2);
	assert_int_equal(h->result_max, 64 * 1024);
	assert_int_equal(h->nretry_codes, 2);
	assert_int_equal(h->retry_codes[1], 111);
	assert_string_equal(h->env[1], "LANG=C.UTF-8");
	assert_int_equal(h->limits.memory, 512 << 20);
	assert_int_equal(h->limits.open_files, 64);
	assert_int_equal(h->limits.processes, 32);
	assert_true(h->kill_grace_s == 1.5);
	assert_non_null(h->schema);
	h = handler_find(&reg, "sh-echo");
	assert_true(h->shell && h->persistent);
	assert_string_equal(h->argv[0], "cat");
	/* defaults */
	assert_int_equal(h->result_max, HANDLER_RESULT_MAX_DEFAULT);
	assert_true(h->kill_grace_s == HANDLER_KILL_GRACE_DEFAULT);
	assert_int_equal(h->limits.open_files, HANDLER_OPEN_FILES_DEFAULT);
	assert_int_equal(h->max_attempts, 0);
	assert_int_equal(handler_find(&reg, "push")->kind, HANDLER_HTTP);
	assert_string_equal(handler_find(&reg, "native")->path, "/usr/lib/wakeq/x.so");
	assert_null(handler_find(&reg, "nope"));
	{
		json_t *j = handler_to_json(handler_find(&reg, "tts.render"));
		char line[512];

		assert_json_str(j, "kind", "exec");
		/* only names of the environment: values may be secrets */
		assert_string_equal(json_string_value(json_array_get(json_object_get(j, "env"), 1)),
				    "LANG");
		json_decref(j);
		handler_summary(handler_find(&reg, "tts.render"), line, sizeof(line));
		assert_non_null(strstr(line, "timeout 120s"));
		assert_non_null(strstr(line, "retry_exit_codes 75,111"));
	}
	handler_registry_release(&reg);
	handler_registry_release(NULL);
}

/* A document that must be refused with exactly this message. */
static void refused(const char *text, const char *want)
{
	struct handler_registry reg;
	struct err e;

	assert_int_equal(parse(text, &reg, &e), -1);
	if (strcmp(e.msg, want))
		fail_msg("for %s\n got: %s\nwant: %s", text, e.msg, want);
	assert_int_equal(reg.n, 0);
	handler_registry_release(&reg);
}

static void refused_with(const char *text, const char *part)
{
	struct handler_registry reg;
	struct err e;

	assert_int_equal(parse(text, &reg, &e), -1);
	if (!strstr(e.msg, part))
		fail_msg("for %s\n got: %s\nwant a part: %s", text, e.msg, part);
	assert_null(strchr(e.msg, '\n'));
	handler_registry_release(&reg);
}

static void test_malformed(void **state)
{
	(void)state;
	refused("{\"handlers\": {\"x\": {\"command\": [\"a\"],}}}",
		"h.json:1:38: invalid JSON: string or '}' expected near '}'");
	refused("", "h.json:1: invalid JSON: '[' or '{' expected near end of file");
	refused("[1]", "h.json: expected a JSON object {\"handlers\": {\"TYPE\": {...}}}");
	refused("{\"handler\": {}}",
		"h.json:1: unknown top-level field 'handler' (known: handlers, version)");
	refused("{\"version\": 2, \"handlers\": {}}",
		"h.json: unsupported \"version\": this wakeq reads version 1");
	refused("{\"handlers\": []}",
		"h.json: expected \"handlers\": an object of TYPE: {settings}");
	/* the line of the offending field */
	refused("{\"handlers\": {\n"
		"  \"a\": {\"command\": [\"x\"]},\n"
		"  \"b\": {\n"
		"    \"command\": [\"x\"],\n"
		"    \"timeout_s\": \"10\"\n"
		"  }\n"
		"}}",
		"h.json:5: handler 'b': field 'timeout_s': expected a number from 0.001 to 604800");
	refused("{\"handlers\": {\n"
		"  \"b\": {\n"
		"    \"comand\": [\"x\"]\n"
		"  }}}",
		"h.json:3: handler 'b': field 'comand': unknown field (known: kind, command, "
		"shell, persistent, timeout_s, max_attempts, concurrency, result_max, "
		"retry_exit_codes, env, user, kill_grace_s, limits, schema, description, url, "
		"oidc_audience, bearer_env, allow_private, path)");
	/* http entries: one kind of auth, a variable's name, a boolean */
	refused("{\"handlers\": {\"h\": {\"kind\": \"http\", \"url\": \"https://x.example/run\",\n"
		"  \"oidc_audience\": \"https://x.example\", \"bearer_env\": \"TOK\"}}}",
		"h.json:2: handler 'h': field 'bearer_env': an http handler sends an OIDC token "
		"(oidc_audience) or a static bearer (bearer_env), not both");
	refused("{\"handlers\": {\"h\": {\"kind\": \"http\", \"url\": \"https://x.example/run\",\n"
		"  \"bearer_env\": \"MY-TOKEN\"}}}",
		"h.json:2: handler 'h': field 'bearer_env': expected the name of an environment "
		"variable ([A-Za-z_][A-Za-z0-9_]*) holding the token");
	refused("{\"handlers\": {\"h\": {\"kind\": \"http\", \"url\": \"https://x.example/run\",\n"
		"  \"allow_private\": \"yes\"}}}",
		"h.json:2: handler 'h': field 'allow_private': expected true or false");
	refused("{\"handlers\": {\"h\": {\"url\": \"https://x.example/run\",\n"
		"  \"command\": [\"x\"], \"bearer_env\": \"T\"}}}",
		"h.json:1: handler 'h': field 'url': does not apply to exec handlers");
	/* missing field: the entry's line */
	refused("{\"handlers\": {\n\n  \"b\": {\"timeout_s\": 1}}}",
		"h.json:3: handler 'b': field 'command': is required for exec handlers");
	refused("{\"handlers\": {\"b\": {\"command\": \"cat\"}}}",
		"h.json:1: handler 'b': field 'command': a string runs only with \"shell\": "
		"true; give an array of arguments (argv)");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"shell\": true}}}",
		     "with \"shell\": true, give one string");
	refused_with("{\"handlers\": {\"b\": {\"command\": []}}}", "array of 1 to 256 strings");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\", 1]}}}", "argument 1");
	refused_with("{\"handlers\": {\".b\": {\"command\": [\"a\"]}}}", "bad type name");
	refused_with("{\"handlers\": {\"a..b\": {\"command\": [\"a\"]}}}", "bad type name");
	refused_with("{\"handlers\": {\"a b\": {\"command\": [\"a\"]}}}", "bad type name");
	refused_with("{\"handlers\": {\"b\": 1}}", "handler 'b': expected an object");
	refused_with("{\"handlers\": {\"b\": {\"kind\": \"grpc\"}}}",
		     "field 'kind': expected \"exec\", \"http\" or \"plugin\"");
	refused_with("{\"handlers\": {\"b\": {\"kind\": \"http\", \"command\": [\"a\"]}}}",
		     "field 'command': does not apply to http handlers");
	refused_with("{\"handlers\": {\"b\": {\"kind\": \"http\"}}}", "'url': is required");
	refused_with("{\"handlers\": {\"b\": {\"kind\": \"http\", \"url\": \"ftp://x\"}}}",
		     "expected an http:// or https:// URL");
	refused_with("{\"handlers\": {\"b\": {\"kind\": \"plugin\"}}}", "'path': is required");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"max_attempts\": 0}}}",
		     "'max_attempts': expected an integer from 1 to 100");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"concurrency\": 1.5}}}",
		     "'concurrency': expected an integer");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"result_max\": \"1T\"}}}",
		     "'result_max': expected a size");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"retry_exit_codes\": [0]}}}",
		     "'retry_exit_codes': expected an integer from 1 to 255");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"env\": [\"A B\"]}}}",
		     "field 'env': entry 0");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"env\": [\"WAKEQ_JOB_ID=1\"]}}}",
		     "'WAKEQ_JOB_ID' is set by the worker");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"limits\": {\"stack\": 1}}}}",
		     "unknown limit 'stack'");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"limits\": {\"memory\": 5}}}}",
		     "field 'limits.memory': expected a size from 16777216");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"shell\": 1}}}",
		     "'shell': expected true or false");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"type\": \"c\"}}}",
		     "must match the type it is declared as");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"]}, \"b\": {}}}",
		     "h.json:1:42: invalid JSON: duplicate object key");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], "
		     "\"schema\": {\"pattern\": \"^a\"}}}}",
		     "field 'schema': pattern: keyword not supported");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], "
		     "\"schema\": {\"properties\": {\"x\": {\"type\": \"text\"}}}}}}",
		     "field 'schema': properties.x.type: unknown type 'text'");
	refused_with("{\"handlers\": {\"b\": {\"command\": [\"a\"], \"schema\": []}}}",
		     "expected a JSON Schema object");
}

static void test_file(void **state)
{
	struct handler_registry reg;
	char path[] = "/tmp/wakeq-handlers-XXXXXX";
	struct err e;
	int fd;

	(void)state;
	handler_registry_init(&reg);
	assert_int_equal(handler_registry_load_file(&reg, "/nonexistent/h.json", &e), -1);
	assert_string_equal(e.msg, "cannot read HANDLERS_FILE '/nonexistent/h.json': "
			    "No such file or directory");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	assert_int_equal(handler_registry_load_file(&reg, path, &e), 0);
	assert_int_equal(reg.n, 4);
	/* a second file with a type already declared */
	assert_int_equal(handler_registry_load_file(&reg, path, &e), -1);
	assert_non_null(strstr(e.msg, "declared twice"));
	assert_int_equal(reg.n, 4); /* nothing added */
	unlink(path);
	handler_registry_release(&reg);
}

static void test_env(void **state)
{
	struct handler_registry reg;
	struct err e;
	char *env1[] = {
		(char *)"PATH=/bin",
		(char *)"WAKEQ_HANDLER_TTS__RENDER={\"command\":[\"/bin/true\"],\"timeout_s\":9}",
		(char *)"WAKEQ_HANDLER_X={\"type\":\"img-gen.v2\",\"command\":\"true\",\"shell\":true}",
		(char *)"WAKEQ_HANDLERS_FILE=ignored-no-json",
		NULL
	};
	char *env_bad[] = { (char *)"WAKEQ_HANDLER_A={\"command\":[\"a\"],\"max_attempts\":\"x\"}", NULL };
	char *env_nojson[] = { (char *)"WAKEQ_HANDLER_A=python3 a.py", NULL };
	char *env_twice[] = { (char *)"WAKEQ_HANDLER_A__B={\"command\":[\"a\"]}",
			      (char *)"WAKEQ_HANDLER_Z={\"type\":\"a.b\",\"command\":[\"a\"]}", NULL };

	(void)state;
	/* WAKEQ_HANDLERS_FILE is not an entry: the prefix is WAKEQ_HANDLER_ */
	assert_int_equal(parse(good, &reg, &e), 0);
	assert_int_equal(handler_registry_load_env(&reg, env1, &e), 0);
	assert_int_equal(reg.n, 5);
	/* the environment replaced the file's tts.render */
	assert_string_equal(handler_find(&reg, "tts.render")->argv[0], "/bin/true");
	assert_true(handler_find(&reg, "tts.render")->timeout_s == 9);
	assert_null(handler_find(&reg, "tts.render")->schema);
	assert_string_equal(handler_find(&reg, "tts.render")->origin,
			    "WAKEQ_HANDLER_TTS__RENDER");
	assert_non_null(handler_find(&reg, "img-gen.v2"));
	handler_registry_release(&reg);

	handler_registry_init(&reg);
	assert_int_equal(handler_registry_load_env(&reg, env_bad, &e), -1);
	assert_string_equal(e.msg, "WAKEQ_HANDLER_A: handler 'a': field 'max_attempts': "
			    "expected an integer from 1 to 100");
	assert_int_equal(handler_registry_load_env(&reg, env_nojson, &e), -1);
	assert_non_null(strstr(e.msg, "WAKEQ_HANDLER_A: expected a JSON object"));
	assert_int_equal(handler_registry_load_env(&reg, env_twice, &e), -1);
	assert_string_equal(e.msg, "WAKEQ_HANDLER_Z: handler 'a.b' is also declared by "
			    "WAKEQ_HANDLER_A__B");
	handler_registry_release(&reg);
}

static int validate(const char *schema, const char *value, struct err *e)
{
	json_t *s = json_loads(schema, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
	int rc;

	assert_non_null(s);
	assert_non_null(v);
	assert_int_equal(handler_schema_compile(s, e), 0);
	rc = handler_schema_validate(s, v, e);
	json_decref(s);
	json_decref(v);
	return rc;
}

static void invalid(const char *schema, const char *value, const char *want)
{
	struct err e;

	assert_int_equal(validate(schema, value, &e), -1);
	if (strcmp(e.msg, want))
		fail_msg("%s on %s\n got: %s\nwant: %s", value, schema, e.msg, want);
}

static void test_schema(void **state)
{
	static const struct {
		const char *value, *want;
	} bad[] = {
		{ "{}",
		  "payload field 'text' is required" },
		{ "[]",
		  "payload must be an object, not an array" },
		{ "{\"text\":5}",
		  "payload field 'text' must be a string, not an integer" },
		{ "{\"text\":\"\"}",
		  "payload field 'text' must be at least 1 characters long" },
		{ "{\"text\":\"abcd\"}",
		  "payload field 'text' must be at most 3 characters long" },
		{ "{\"text\":\"a\",\"voice\":\"x\"}",
		  "payload field 'voice' must be one of \"alloy\", \"echo\", 1" },
		{ "{\"text\":\"a\",\"speed\":3}",
		  "payload field 'speed' must be at most 2" },
		{ "{\"text\":\"a\",\"speed\":0.1}",
		  "payload field 'speed' must be at least 0.5" },
		{ "{\"text\":\"a\",\"n\":0}",
		  "payload field 'n' must be greater than 0" },
		{ "{\"text\":\"a\",\"n\":10}",
		  "payload field 'n' must be less than 10" },
		{ "{\"text\":\"a\",\"n\":1.5}",
		  "payload field 'n' must be an integer, not a number" },
		{ "{\"text\":\"a\",\"tags\":[\"x\",2]}",
		  "payload field 'tags[1]' must be a string, not an integer" },
		{ "{\"text\":\"a\",\"tags\":[\"x\",\"y\",\"z\"]}",
		  "payload field 'tags' must have at most 2 items" },
		{ "{\"text\":\"a\",\"opt\":1}",
		  "payload field 'opt' must be one of the types \"string\", \"null\", not an integer" },
		{ "{\"text\":\"a\",\"mode\":\"slow\"}",
		  "payload field 'mode' must be \"fast\"" },
		{ "{\"text\":\"a\",\"sub\":{}}",
		  "payload field 'sub.a' is required" },
		{ "{\"text\":\"a\",\"extra\":1}",
		  "payload field 'extra' is not allowed" },
	};
	size_t i;
	static const char s[] =
		"{\"type\":\"object\",\"required\":[\"text\"],\"additionalProperties\":false,"
		"\"title\":\"ignored\",\"properties\":{"
		"\"text\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":3},"
		"\"voice\":{\"enum\":[\"alloy\",\"echo\",1]},"
		"\"speed\":{\"type\":\"number\",\"minimum\":0.5,\"maximum\":2},"
		"\"n\":{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":10},"
		"\"tags\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"string\"}},"
		"\"opt\":{\"type\":[\"string\",\"null\"]},"
		"\"mode\":{\"const\":\"fast\"},"
		"\"sub\":{\"type\":\"object\",\"required\":[\"a\"]}}}";
	struct err e;

	(void)state;
	assert_int_equal(validate(s, "{\"text\":\"hé!\"}", &e), 0); /* 3 characters */
	assert_int_equal(validate(s, "{\"text\":\"a\",\"voice\":1.0,\"speed\":2,\"n\":9.0,"
				  "\"tags\":[\"x\"],\"opt\":null,\"mode\":\"fast\","
				  "\"sub\":{\"a\":1}}", &e), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		invalid(s, bad[i].value, bad[i].want);
	invalid("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":\"x\"}",
		"payload field 'a' must be an integer, not a string");
	invalid("{\"properties\":{\"a\":false}}", "{\"a\":1}", "payload field 'a' is not allowed");
	assert_int_equal(validate("{\"properties\":{\"a\":true}}", "{\"a\":[1]}", &e), 0);
	{
		json_t *bad = json_loads("{\"items\":[{}]}", 0, NULL);

		assert_int_equal(handler_schema_compile(bad, &e), -1);
		assert_non_null(strstr(e.msg, "tuple form"));
		json_decref(bad);
		bad = json_loads("{\"minLength\":-1}", 0, NULL);
		assert_int_equal(handler_schema_compile(bad, &e), -1);
		assert_string_equal(e.msg, "minLength: expected a non-negative integer");
		json_decref(bad);
		bad = json_loads("{\"enum\":[]}", 0, NULL);
		assert_int_equal(handler_schema_compile(bad, &e), -1);
		json_decref(bad);
	}
}

static void test_job_types(void **state)
{
	struct handler_registry reg;
	struct job_spec spec;
	const char *code = NULL;
	struct err e;
	static const char body_ok[] = "{\"type\":\"tts.render\",\"payload\":{\"text\":\"hi\"}}";
	static const char body_bad[] = "{\"type\":\"tts.render\",\"payload\":{\"text\":\"too long\"}}";
	static const char body_unknown[] = "{\"type\":\"tts.rendr\"}";

	(void)state;
	/* before registration the type is unknown, with the known ones named */
	assert_int_equal(job_spec_parse(body_ok, strlen(body_ok), &spec, &code, &e), -1);
	assert_string_equal(code, "unknown_type");
	assert_int_equal(parse(good, &reg, &e), 0);
	assert_int_equal(handler_registry_add_types(&reg, &e), 0);
	assert_int_equal(job_spec_parse(body_ok, strlen(body_ok), &spec, &code, &e), 0);
	job_spec_resolve(&spec, NULL, 1000);
	assert_int_equal(spec.max_attempts, 5);       /* the type's default */
	assert_true(spec.timeout_s == 120);
	job_spec_release(&spec);
	{
		/* the job's own values win, the deployment's come after the type's */
		static const char own[] = "{\"type\":\"tts.render\",\"payload\":{\"text\":\"a\"},"
					  "\"max_attempts\":2,\"timeout_s\":3}";
		struct job_defaults d = { NULL, 7, 0 };

		assert_int_equal(job_spec_parse(own, strlen(own), &spec, &code, &e), 0);
		job_spec_resolve(&spec, &d, 1000);
		assert_int_equal(spec.max_attempts, 2);
		assert_true(spec.timeout_s == 3);
		job_spec_release(&spec);
		assert_int_equal(job_spec_parse("{\"type\":\"sh-echo\"}", 18, &spec, &code, &e), 0);
		job_spec_resolve(&spec, &d, 1000);
		assert_int_equal(spec.max_attempts, 7);
		job_spec_release(&spec);
	}
	assert_int_equal(job_spec_parse(body_bad, strlen(body_bad), &spec, &code, &e), -1);
	assert_string_equal(code, "invalid_payload");
	assert_string_equal(e.msg, "payload field 'text' must be at most 5 characters "
			    "long");
	assert_int_equal(job_spec_parse(body_unknown, strlen(body_unknown), &spec, &code, &e),
			 -1);
	assert_string_equal(code, "unknown_type");
	assert_non_null(strstr(e.msg, "unknown job type 'tts.rendr' (known: noop, sleep, fail, "
			       "media.probe, media.thumbnail, media.transcode, http.request, "
			       "tts.render, sh-echo, push, native)"));
	assert_int_equal(job_check("sh-echo", "{\"anything\":[1]}", &e), 0);
	assert_int_equal(job_check("sh-echo", "[1]", &e), -1);
	/* a built-in name cannot be taken, nor one registered twice */
	{
		struct handler_registry r2;

		assert_int_equal(parse("{\"handlers\":{\"noop\":{\"command\":[\"a\"]}}}", &r2, &e),
				 0);
		assert_int_equal(handler_registry_add_types(&r2, &e), -1);
		assert_string_equal(e.msg, "h.json:1: job type 'noop' is already defined (built in)");
		handler_registry_release(&r2);
		assert_int_equal(handler_registry_add_types(&reg, &e), -1);
		assert_non_null(strstr(e.msg, "job type 'tts.render' is already defined"));
	}
	/* a registered type without a runner fails its job, not the worker */
	{
		struct job_outcome out;
		struct job_run run;

		memset(&run, 0, sizeof(run));
		memset(&out, 0, sizeof(out));
		run.id = "x";
		run.type = "push";
		run.payload = json_object();
		assert_int_equal(job_execute(&run, &out), -1);
		assert_false(out.retryable);
		assert_non_null(strstr(out.error, "no handler for job type 'push'"));
		json_decref(run.payload);
	}
	job_unregister_all();
	assert_null(job_find("tts.render"));
	assert_non_null(job_find("noop"));
	assert_null(strstr(job_type_names(), "tts.render"));
	handler_registry_release(&reg);
}

UNIT_MAIN(
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_job_types),
)
