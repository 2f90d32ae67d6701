/* fuzz_handlers - the handler registry parser (HANDLERS_FILE and a
 * WAKEQ_HANDLER_* value) and the payload schema subset, on arbitrary
 * bytes. A document either fails with one line, or yields entries whose
 * fields respect their bounds; every schema it accepted then checks an
 * arbitrary payload (the input's tail after a NUL) without crashing, as
 * the API's intake would through the job module. */
#include "handler/handler.h"
#include "job/job.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_registry(const struct handler_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->n; i++) {
		const struct handler *h = &reg->items[i];
		char line[512];

		assert(h->type && *h->type && strlen(h->type) <= HANDLER_TYPE_MAX);
		assert(h->origin);
		assert(h->result_max >= 16 && h->result_max <= HANDLER_RESULT_MAX_MAX);
		assert(h->max_attempts >= 0 && h->max_attempts <= JOB_MAX_ATTEMPTS_MAX);
		assert(h->kind != HANDLER_EXEC || (h->argv && h->argv[0]));
		assert(h->kind != HANDLER_HTTP || h->url);
		assert(h->kind != HANDLER_PLUGIN || h->path);
		assert(!h->shell || !h->argv[1]);
		handler_summary(h, line, sizeof(line));
		json_decref(handler_to_json(h));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nul = memchr(data, '\0', size);
	size_t doclen = nul ? (size_t)(nul - text) : size;
	struct handler_registry reg;
	struct err e;
	char *payload = NULL;
	size_t i;

	if (nul) {
		payload = malloc(size - doclen);
		memcpy(payload, nul + 1, size - doclen - 1);
		payload[size - doclen - 1] = '\0';
	}
	handler_registry_init(&reg);
	if (doclen > 0 && text[0] == 'E') {
		/* a WAKEQ_HANDLER_ variable: NAME=VALUE from the rest */
		char *var = malloc(doclen + 32), *env[2] = { var, NULL };

		memcpy(var, "WAKEQ_HANDLER_", 14);
		memcpy(var + 14, text + 1, doclen - 1);
		var[14 + doclen - 1] = '\0';
		if (!strchr(var, '='))
			strcat(var, "={}");
		if (handler_registry_load_env(&reg, env, &e) < 0)
			assert(e.msg[0] && !strchr(e.msg, '\n'));
		free(var);
	} else if (handler_registry_parse(&reg, text, doclen, "fuzz.json", &e) < 0) {
		assert(e.msg[0] && !strchr(e.msg, '\n'));
		assert(reg.n == 0);
	}
	check_registry(&reg);
	if (payload && handler_registry_add_types(&reg, &e) == 0) {
		json_t *v = json_loads(payload, JSON_DECODE_ANY, NULL);

		for (i = 0; i < reg.n; i++) {
			if (reg.items[i].schema && v &&
			    handler_schema_validate(reg.items[i].schema, v, &e) < 0)
				assert(e.msg[0]);
			job_check(reg.items[i].type, payload, NULL);
		}
		json_decref(v);
	}
	job_unregister_all();
	handler_registry_release(&reg);
	free(payload);
	return 0;
}
