/* term.c - the terminal side of the CLI: is stdout a terminal, how wide,
 * progress bars, ages, tables, and the interrupt flag of --watch loops. */
#include "cli.h"

#include "base/clock.h"
#include "base/mem.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int term_tty(void)
{
	static int tty = -1;

	if (tty < 0)
		tty = isatty(STDOUT_FILENO);
	return tty;
}

int term_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (cols && atoi(cols) > 0)
		return atoi(cols);
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

void term_bar(char *out, int width, double percent)
{
	int i, full;

	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	full = (int)(percent * width / 100 + 0.5);
	out[0] = '[';
	for (i = 0; i < width; i++)
		out[i + 1] = i < full ? '=' : (i == full ? '>' : ' ');
	if (full >= width)
		out[width] = '=';
	out[width + 1] = ']';
	out[width + 2] = '\0';
}

void term_age(char *out, size_t len, int64_t us)
{
	int64_t s;

	if (!us) {
		snprintf(out, len, "-");
		return;
	}
	s = (clock_now_us() - us) / 1000000;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, len, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, len, "%lldm", (long long)(s / 60));
	else if (s < 172800)
		snprintf(out, len, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, len, "%lldd", (long long)(s / 86400));
}

/* ---- tables ---------------------------------------------------------------- */

void term_table_init(struct term_table *t, const char *const *heads, int ncols)
{
	memset(t, 0, sizeof(*t));
	t->heads = heads;
	t->ncols = ncols;
}

void term_table_row(struct term_table *t, const char *const *cells)
{
	int i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, t->cap * (size_t)t->ncols * sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++) {
		char *s = xstrdup(cells[i] ? cells[i] : ""), *p;

		/* one line per row: newlines and tabs of errors become spaces */
		for (p = s; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = s;
	}
	t->nrows++;
}

void term_table_print(const struct term_table *t, FILE *out)
{
	int *w = xcalloc((size_t)t->ncols, sizeof(*w)), i, used = 0, room;
	int tty = term_tty();
	size_t r;

	for (i = 0; i < t->ncols; i++)
		w[i] = (int)strlen(t->heads[i]);
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			int n = (int)strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);

			if (n > w[i])
				w[i] = n;
		}
	for (i = 0; i < t->ncols - 1; i++)
		used += w[i] + 2;
	/* on a terminal the last column takes what is left of the line */
	room = tty ? term_width() - used - 1 : w[t->ncols - 1];
	if (room < 8)
		room = 8;
	if (tty)
		fputs("\033[1m", out);
	for (i = 0; i < t->ncols; i++)
		fprintf(out, i < t->ncols - 1 ? "%-*s  " : "%.*s", i < t->ncols - 1 ? w[i] : room,
			t->heads[i]);
	if (tty)
		fputs("\033[0m", out);
	fputc('\n', out);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols - 1; i++)
			fprintf(out, "%-*s  ", w[i], t->cells[r * (size_t)t->ncols + (size_t)i]);
		{
			const char *last = t->cells[r * (size_t)t->ncols + (size_t)i];
			int n = (int)strlen(last);

			if (n > room)
				fprintf(out, "%.*s...", room - 3, last);
			else
				fputs(last, out);
		}
		fputc('\n', out);
	}
	free(w);
}

void term_table_release(struct term_table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- interrupts ------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void term_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int term_interrupted(void)
{
	return interrupted;
}
