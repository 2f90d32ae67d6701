/* dl.c - libraries loaded on first use (dl.h).
 *
 * No load while another thread forks a child that keeps running: see
 * dl.h; the worker loads libpq at start and libcurl with its media plugin. */
#include "base/dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* One load at a time in a process: loads are rare and short, and dlerror
 * is per thread but the answer is kept on the library. */
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

static void load(struct dl_lib *lib)
{
	const char *why;
	void *h;
	size_t i;

	h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		why = dlerror();
		snprintf(lib->why, sizeof(lib->why), "%s", why ? why : "not found");
		return;
	}
	for (i = 0; i < lib->nsyms; i++) {
		void *p = dlsym(h, lib->syms[i].name);

		if (!p) {
			snprintf(lib->why, sizeof(lib->why), "no symbol '%s'",
				 lib->syms[i].name);
			return; /* the handle stays open: harmless, and rare */
		}
		/* POSIX: a function's address survives the trip through void * */
		memcpy(lib->syms[i].fn, &p, sizeof(p));
	}
	atomic_store_explicit(&lib->ok, 1, memory_order_release);
}

int dl_load(struct dl_lib *lib, struct err *err)
{
	int ok;

	if (atomic_load_explicit(&lib->ok, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&load_mu);
	if (!lib->tried) {
		lib->tried = 1;
		load(lib);
	}
	ok = atomic_load_explicit(&lib->ok, memory_order_relaxed);
	pthread_mutex_unlock(&load_mu);
	if (!ok)
		return err_set(err, ERR_UNAVAILABLE, "cannot load '%s': %s", lib->soname,
			       lib->why);
	return 0;
}
