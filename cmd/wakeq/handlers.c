/* handlers.c - `wakeq handlers`: the job types a client may enqueue, with
 * the settings of the user's own (internal/handler). */
#include "cli.h"

#include "handler/handler.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct handler_registry registry;

int cli_handlers_load(struct err *err)
{
	handler_registry_init(&registry);
	if (handler_registry_load(&registry, getenv("HANDLERS_FILE"), environ, err) < 0 ||
	    handler_registry_add_types(&registry, err) < 0)
		return -1;
	return 0;
}

void cli_handlers_release(void)
{
	handler_registry_release(&registry);
}

/* --json: every type as an object (handler_to_json for the user's own). */
static void print_json(void)
{
	const struct job_type *t;
	json_t *all = json_array();
	size_t i;

	for (i = 0; (t = job_type_at(i)); i++) {
		const struct handler *h = handler_find(&registry, t->name);

		if (t->internal)
			continue;
		json_array_append_new(all, h ? handler_to_json(h) :
				      json_pack("{s:s,s:s}", "type", t->name, "kind", "built-in"));
	}
	cli_print_json(all, JSON_INDENT(2));
}

int cmd_handlers(struct cli *c)
{
	const struct job_type *t;
	char line[512];
	size_t i;

	if (cli_get(c, "json")) {
		print_json();
		return EXIT_OK;
	}
	printf("%-24s %s\n", "TYPE", "SETTINGS");
	for (i = 0; (t = job_type_at(i)); i++) {
		const struct handler *h = handler_find(&registry, t->name);

		if (t->internal)
			continue;
		if (h)
			handler_summary(h, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "built in");
		printf("%-24s %s\n", t->name, line);
		if (h)
			printf("%-24s   from %s\n", "", h->origin);
	}
	return EXIT_OK;
}
