/* completion.c - `wakeq completion bash|zsh`: shell completion scripts
 * printed from the command table, so they know every command and option
 * the binary that prints them knows. */
#include "cli.h"

#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

/* The choices text with "@types" replaced by the job types (caller frees),
 * space-separated; NULL for none. */
static char *choices(const char *c)
{
	char *s, *p;

	if (!c)
		return NULL;
	if (strcmp(c, CLI_CHOICES_TYPES))
		return xstrdup(c);
	s = xstrdup(job_type_names());
	for (p = s; *p; p++)
		if (*p == ',')
			*p = ' ';
	/* "a, b" lists have a space after each comma: squeeze it */
	for (p = s; (p = strstr(p, "  ")); )
		memmove(p, p + 1, strlen(p));
	return s;
}

/* Whether `k` is the first command of the table with its first word (for
 * "dead": "dead list", not "dead retry"): each word is offered once, and a
 * group's own completion is written at its first command. */
static int first_of_word(const struct cli_cmd *k)
{
	size_t n = strcspn(k->name, " ");
	const struct cli_cmd *j;

	for (j = cli_cmds; j < k; j++)
		if (strcspn(j->name, " ") == n && !strncmp(j->name, k->name, n))
			return 0;
	return 1;
}

/* Whether `k` is the first command of a group ("dead list"; "batch
 * create", though "batch" is a command of its own before it). A group's
 * commands follow each other in the table. */
static int group_start(const struct cli_cmd *k)
{
	size_t n = strcspn(k->name, " ");
	const struct cli_cmd *j;

	if (!k->name[n])
		return 0;
	for (j = cli_cmds; j < k; j++)
		if (!strncmp(j->name, k->name, n + 1))
			return 0;
	return 1;
}

/* The second words of k's group, separated by `sep`. */
static void group_words(FILE *out, const struct cli_cmd *k, const char *sep)
{
	size_t n = strcspn(k->name, " ");
	const struct cli_cmd *j;

	for (j = k; j->name && !strncmp(j->name, k->name, n + 1); j++)
		fprintf(out, "%s%s", j == k ? "" : sep, j->name + n + 1);
}

/* Words of the command table: the first word of each command, once. */
static void first_words(FILE *out)
{
	const struct cli_cmd *k;

	for (k = cli_cmds; k->name; k++)
		if (first_of_word(k))
			fprintf(out, "%.*s ", (int)strcspn(k->name, " "), k->name);
}

/* ---- bash ------------------------------------------------------------------- */

static void bash(FILE *out)
{
	const struct cli_cmd *k;
	int i;

	fprintf(out,
		"# bash completion for wakeq: source <(wakeq completion bash)\n"
		"_wakeq() {\n"
		"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
		"\tlocal cmd=${COMP_WORDS[1]} first=2 opts='' values='' args=''\n"
		"\tCOMPREPLY=()\n"
		"\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"");
	first_words(out);
	fprintf(out, "help --help --version\" -- \"$cur\"))\n"
		"\t\treturn\n"
		"\tfi\n"
		"\tcase $cmd in\n");
	/* groups: the second word is a command of its own */
	for (k = cli_cmds; k->name; k++) {
		size_t n = strcspn(k->name, " ");

		if (!group_start(k))
			continue;
		fprintf(out, "\t%.*s)\n\t\tif [ \"$COMP_CWORD\" -eq 2 ] && [[ $cur != -* ]]; then\n"
			"\t\t\tCOMPREPLY=($(compgen -W \"", (int)n, k->name);
		group_words(out, k, " ");
		fprintf(out, "\" -- \"$cur\"))\n\t\t\treturn\n\t\tfi\n"
			"\t\tcase ${COMP_WORDS[2]} in ");
		/* else the first word is the command ("batch ID") */
		group_words(out, k, "|");
		fprintf(out, ") cmd=\"$cmd ${COMP_WORDS[2]}\" first=3 ;; esac ;;\n");
	}
	fprintf(out, "\tesac\n\tcase $cmd in\n");
	for (k = cli_cmds; k->name; k++) {
		char *a = choices(k->arg_choices);

		fprintf(out, "\t\"%s\")\n\t\topts=\"", k->name);
		for (i = 0; k->opts[i]; i++)
			fprintf(out, "--%s ", k->opts[i]->name);
		fprintf(out, "--help\"\n\t\tcase $prev in\n");
		for (i = 0; k->opts[i]; i++) {
			const struct cli_opt *o = k->opts[i];
			char *v = choices(o->choices);

			if (!o->arg)
				continue;
			if (v)
				fprintf(out, "\t\t--%s) values=\"%s\" ;;\n", o->name, v);
			else
				fprintf(out, "\t\t--%s) return ;;\n", o->name);
			free(v);
		}
		fprintf(out, "\t\tesac\n");
		if (a)
			fprintf(out, "\t\targs=\"%s\"\n", a);
		fprintf(out, "\t\t;;\n");
		free(a);
	}
	fprintf(out,
		"\thelp) args=\"");
	first_words(out);
	fprintf(out, "\" ;;\n"
		"\t*) return ;;\n"
		"\tesac\n"
		"\tif [ -n \"$values\" ]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"$values\" -- \"$cur\"))\n"
		"\telif [[ $cur == -* ]]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
		"\telif [ \"$COMP_CWORD\" -eq \"$first\" ] && [ -n \"$args\" ]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"$args\" -- \"$cur\"))\n"
		"\tfi\n"
		"}\n"
		"complete -F _wakeq wakeq\n");
}

/* ---- zsh --------------------------------------------------------------------- */

/* Text for inside '…' and an _arguments description: quotes, brackets and
 * colons escaped. */
static void zq(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", out);
		else if (*s == '[' || *s == ']' || *s == ':')
			fprintf(out, "\\%c", *s);
		else
			fputc(*s, out);
	}
}

static void zsh_describe(FILE *out, const char *var, const char *group)
{
	const struct cli_cmd *k;
	size_t g = group ? strlen(group) : 0;

	fprintf(out, "\tlocal -a %s\n\t%s=(\n", var, var);
	for (k = cli_cmds; k->name; k++) {
		size_t n = strcspn(k->name, " ");

		if (group) {
			if (strncmp(k->name, group, g) || k->name[g] != ' ')
				continue;
			fprintf(out, "\t\t'%s:", k->name + g + 1);
			zq(out, k->summary);
			fprintf(out, "'\n");
			continue;
		}
		if (!first_of_word(k))
			continue;
		fprintf(out, "\t\t'%.*s:", (int)n, k->name);
		if (k->name[n])
			fprintf(out, "%.*s commands", (int)n, k->name);
		else
			zq(out, k->summary);
		fprintf(out, "'\n");
	}
	fprintf(out, "\t)\n");
}

static void zsh(FILE *out)
{
	const struct cli_cmd *k;
	int i;

	fprintf(out,
		"#compdef wakeq\n"
		"# zsh completion for wakeq: wakeq completion zsh > \"${fpath[1]}/_wakeq\",\n"
		"# or source <(wakeq completion zsh) after compinit\n"
		"_wakeq() {\n");
	zsh_describe(out, "cmds", NULL);
	fprintf(out,
		"\tif (( CURRENT == 2 )); then\n"
		"\t\t_describe -t commands 'wakeq command' cmds\n"
		"\t\treturn\n"
		"\tfi\n"
		"\tlocal cmd=$words[2]\n"
		"\tcase $cmd in\n");
	for (k = cli_cmds; k->name; k++) {
		size_t n = strcspn(k->name, " ");
		char var[32];

		if (!group_start(k))
			continue;
		fprintf(out, "\t(%.*s)\n", (int)n, k->name);
		snprintf(var, sizeof(var), "%.*s_cmds", (int)n, k->name);
		{
			char group[32];

			snprintf(group, sizeof(group), "%.*s", (int)n, k->name);
			zsh_describe(out, var, group);
		}
		fprintf(out,
			"\t\tif (( CURRENT == 3 )) && [[ $words[3] != -* ]]; then\n"
			"\t\t\t_describe -t commands 'wakeq %.*s command' %s\n"
			"\t\t\treturn\n"
			"\t\tfi\n"
			"\t\tcase $words[3] in\n\t\t(", (int)n, k->name, var);
		/* else the first word is the command ("batch ID") */
		group_words(out, k, "|");
		fprintf(out, ")\n"
			"\t\t\tcmd=\"$cmd $words[3]\"\n"
			"\t\t\tshift words\n"
			"\t\t\t(( CURRENT-- )) ;;\n"
			"\t\tesac ;;\n");
	}
	fprintf(out,
		"\tesac\n"
		"\tshift words\n"
		"\t(( CURRENT-- ))\n"
		"\tcase $cmd in\n");
	for (k = cli_cmds; k->name; k++) {
		char *a = choices(k->arg_choices);

		fprintf(out, "\t('%s')\n\t\t_arguments -s \\\n", k->name);
		for (i = 0; k->opts[i]; i++) {
			const struct cli_opt *o = k->opts[i];
			char *v = choices(o->choices);

			fprintf(out, "\t\t\t'--%s%s[", o->name, o->arg ? "=" : "");
			zq(out, o->help);
			fprintf(out, "]");
			if (o->arg) {
				fprintf(out, ":");
				zq(out, o->arg);
				fprintf(out, ":%s%s%s", v ? "(" : "", v ? v : "", v ? ")" : "");
			}
			fprintf(out, "' \\\n");
			free(v);
		}
		fprintf(out, "\t\t\t'(- *)'{-h,--help}'[this help]'");
		for (i = 1; i <= k->max_args; i++) {
			const char *name = k->args;

			fprintf(out, " \\\n\t\t\t'%d:%s", i, i > k->min_args ? ":" : "");
			/* "[ID]" -> "ID", "bash|zsh" as given */
			for (; *name; name++)
				if (*name != '[' && *name != ']' && *name != ':')
					fputc(*name, out);
			fprintf(out, ":%s%s%s'", a ? "(" : "", a ? a : "", a ? ")" : "");
		}
		fprintf(out, " ;;\n");
		free(a);
	}
	fprintf(out, "\t(help)\n\t\t_arguments '1:command:(");
	first_words(out);
	fprintf(out, ")' ;;\n"
		"\tesac\n"
		"}\n"
		"if [ \"$funcstack[1]\" = \"_wakeq\" ]; then\n"
		"\t_wakeq \"$@\"\n"
		"else\n"
		"\tcompdef _wakeq wakeq\n"
		"fi\n");
}

int cmd_completion(struct cli *c)
{
	const char *shell = c->args[0];

	if (!strcmp(shell, "bash"))
		bash(stdout);
	else if (!strcmp(shell, "zsh"))
		zsh(stdout);
	else
		return cli_usage_error(c, "unknown shell '%s': expected bash or zsh", shell);
	return EXIT_OK;
}
