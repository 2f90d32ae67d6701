/* Unit tests of the flow and batch parser (job_flow_parse,
 * job_batch_parse): the members in enqueue order, each linked to its own
 * children, the batch's callback to every job; the answers; refusals that
 * name the member, with nothing left allocated (valgrind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "job/job.h"
#include "../unit.h"

static const struct job_defaults defaults = { "dq", 0, 0 };

typedef int (*parse_fn)(json_t *, const struct job_defaults *, size_t, int64_t,
			struct job_linked *, const char **, struct err *);

/* The request of the last parse: the members' queue is borrowed from it. */
static json_t *body;

static int parse(parse_fn fn, const char *text, size_t max, struct job_linked *l,
		 const char **code, struct err *e)
{
	json_decref(body);
	body = json_loads(text, 0, NULL);
	assert_non_null(body);
	*code = "";
	memset(e, 0, sizeof(*e));
	return fn(body, &defaults, max, 1000000, l, code, e);
}

static int teardown(void **state)
{
	(void)state;
	json_decref(body);
	body = NULL;
	return 0;
}

/* The ids of members a and b as a depends_on text. */
static void deps_of(const struct job_linked *l, size_t a, size_t b, char *out, size_t len)
{
	snprintf(out, len, "[\"%s\",\"%s\"]", l->specs[a].id, l->specs[b].id);
}

static void test_flow(void **state)
{
	struct job_linked l;
	const char *code;
	struct err e;
	char want[128];
	enum job_status st[4] = { JOB_QUEUED, JOB_QUEUED, JOB_WAITING, JOB_WAITING };
	json_t *doc;

	(void)state;
	assert_int_equal(parse(job_flow_parse,
			       "{\"parent\":{\"type\":\"noop\"},\"on_dependency_failure\":\"cancel\","
			       "\"children\":[{\"type\":\"sleep\",\"payload\":{\"ms\":1}},"
			       "{\"type\":\"noop\",\"children\":[{\"type\":\"fail\"}]}]}",
			       1000, &l, &code, &e), 0);
	/* depth first, every job after its own children: sleep, fail, its
	 * noop parent, the root */
	assert_int_equal(l.n, 3);
	assert_string_equal(l.queue, "dq");
	assert_string_equal(l.specs[0].type, "sleep");
	assert_string_equal(l.specs[1].type, "fail");
	assert_string_equal(l.specs[2].type, "noop");
	assert_null(l.specs[0].depends_on);
	snprintf(want, sizeof(want), "[\"%s\"]", l.specs[1].id);
	assert_string_equal(l.specs[2].depends_on, want);
	deps_of(&l, 0, 2, want, sizeof(want));
	assert_string_equal(l.specs[3].depends_on, want);
	assert_int_equal(l.specs[3].dep_policy, JOB_DEP_CANCEL);
	assert_string_equal(l.specs[3].queue, "dq");
	assert_int_equal(l.specs[3].max_attempts, JOB_MAX_ATTEMPTS_DEFAULT);
	/* the answer: the tree as given, with the statuses */
	doc = job_flow_doc(&l, st);
	assert_string_equal(json_string_value(json_object_get(doc, "id")), l.specs[3].id);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "waiting");
	assert_string_equal(json_string_value(json_object_get(doc, "queue")), "dq");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(json_array_get(json_object_get(doc, "children"), 1), "children"),
		0), "id")), l.specs[1].id);
	json_decref(doc);
	job_linked_release(&l);
	job_linked_release(NULL);
}

static void test_batch(void **state)
{
	struct job_linked l;
	const char *code;
	struct err e;
	char want[128];
	json_t *doc;

	(void)state;
	assert_int_equal(parse(job_batch_parse,
			       "{\"queue\":\"q1\",\"jobs\":[{\"type\":\"noop\"},{\"type\":\"noop\"}],"
			       "\"callback_url\":\"https://x.example/cb\"}", 1000, &l, &code, &e), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.queue, "q1");
	assert_string_equal(l.specs[1].queue, "q1");
	assert_string_equal(l.specs[2].type, "noop"); /* the callback, a noop */
	assert_string_equal(l.specs[2].callback_url, "https://x.example/cb");
	assert_null(l.specs[0].callback_url);
	deps_of(&l, 0, 1, want, sizeof(want));
	assert_string_equal(l.specs[2].depends_on, want);
	assert_int_equal(l.specs[2].dep_policy, JOB_DEP_IGNORE);
	assert_string_equal(l.specs[0].batch, l.specs[2].id);
	assert_string_equal(l.specs[2].batch, l.specs[2].id);
	doc = job_batch_doc(&l);
	assert_string_equal(json_string_value(json_object_get(doc, "id")), l.specs[2].id);
	assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 2);
	json_decref(doc);
	job_linked_release(&l);
}

static void test_refused(void **state)
{
	static const struct {
		int flow;
		const char *body, *code, *msg;
	} bad[] = {
		{ 1, "{\"parent\":{\"type\":\"noop\"}}", "invalid_field",
		  "field 'children': expected an array of 1 or more jobs" },
		{ 1, "{\"children\":[{\"type\":\"noop\"}]}", "invalid_field",
		  "field 'parent' is required" },
		{ 1, "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"}],\"x\":1}",
		  "unknown_field", "unknown field 'x'" },
		{ 1, "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"},"
		  "{\"type\":\"noop\",\"children\":[{\"type\":\"noop\",\"unique_key\":\"u\"}]}]}",
		  "invalid_field", "children[1].children[0]: field 'unique_key' is not allowed "
		  "here (the flow or batch links its jobs)" },
		{ 1, "{\"queue\":\"q1\",\"parent\":{\"type\":\"noop\"},"
		  "\"children\":[{\"type\":\"noop\",\"queue\":\"q2\"}]}", "invalid_field",
		  "children[0]: field 'queue': 'q2' is not the flow's queue 'q1' (linked jobs share "
		  "one queue)" },
		{ 1, "{\"queue\":7,\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"}]}",
		  "invalid_field", "field 'queue': expected a queue name" },
		{ 1, "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"},"
		  "{\"type\":\"noop\"},{\"type\":\"noop\"}]}", "invalid_field",
		  "a flow holds at most 3 jobs" },
		{ 1, "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\","
		  "\"payload\":[]}]}", "invalid_field", "children[0]: field 'payload': expected an object" },
		{ 0, "{\"jobs\":[{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":\"noop\"}]}",
		  "invalid_field", "field 'jobs': expected an array of 1 to 2 jobs" },
		{ 0, "{\"jobs\":[{\"type\":\"noop\"},5]}", "invalid_field",
		  "jobs[1]: expected a job object" },
		{ 0, "{\"jobs\":[{\"type\":\"noop\"}],\"callback\":{\"type\":\"noop\","
		  "\"callback_url\":\"https://a.example/\"},\"callback_url\":\"https://b.example/\"}",
		  "invalid_field", "fields 'callback_url' and 'callback.callback_url' exclude each other" },
		{ 0, "{\"jobs\":[{\"type\":\"noop\"}],\"callback\":{\"type\":\"nope\"}}", "unknown_type",
		  "callback: field 'type': unknown job type 'nope'" },
	};
	struct job_linked l;
	const char *code;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].flow ? job_flow_parse : job_batch_parse, bad[i].body, 3,
				       &l, &code, &e), -1);
		assert_string_equal(code, bad[i].code);
		assert_int_equal(e.code, ERR_INVALID);
		if (strncmp(e.msg, bad[i].msg, strlen(bad[i].msg)))
			fail_msg("%zu: %s", i, e.msg);
	}
}

UNIT_MAIN(
		cmocka_unit_test_teardown(test_flow, teardown),
		cmocka_unit_test_teardown(test_batch, teardown),
		cmocka_unit_test_teardown(test_refused, teardown),
)
