/* dl.h - a shared library loaded on first use instead of at start.
 *
 * A library that only some runs need (libpq with DATABASE_URL, libcurl
 * for fetches, webhooks and wakes) is not linked: its one home module
 * (internal/store/pq.c, internal/fetch/curl.c) defines the library's
 * functions it calls as thin forwarders, hidden from other objects, that
 * jump through a table this loads. The process then starts without the
 * library and everything it pulls in (libcurl: krb5, ldap, sasl, ssh2,
 * …; ~20 shared objects), which is most of a cold start's loader time.
 *
 * The rule that comes with it: a load must not run in one thread while
 * another forks a child that goes on running code of ours (a media
 * decoder): dlopen holds the loader's lock, and the child would inherit
 * it held and hang at its first need of it. So a process that forks such
 * children loads first: the worker opens its store (libpq) at start, and
 * loads libcurl with the media plugin, before the first media child is
 * forked (internal/worker/media_plugin.c). A failed load is not retried,
 * so it runs no dlopen later either. Children that only exec (handlers)
 * are not concerned.
 */
#ifndef WAKEQ_BASE_DL_H
#define WAKEQ_BASE_DL_H

#include "base/err.h"

#include <stdatomic.h>
#include <stddef.h>

/* One function of the library: its name and where its address goes. */
struct dl_sym {
	const char *name;
	void (**fn)(void);
};

/* A library loaded at most once: a static object, initialised with
 * DL_LIB_INIT(SONAME, SYMS, N); the other fields are dl.c's. */
struct dl_lib {
	const char *soname;
	const struct dl_sym *syms;
	size_t nsyms;
	int tried;
	atomic_int ok;
	char why[ERR_MSG_MAX - 64];
};
#define DL_LIB_INIT(soname, syms, n) { (soname), (syms), (n), 0, 0, "" }

/* Loads `lib` (dlopen of its soname, RTLD_NOW | RTLD_LOCAL) and resolves
 * every symbol of its table, once per process; once loaded, a call is one
 * atomic load. Thread-safe; blocks while another thread loads. After it
 * returned 0 in a thread, the table is filled as seen from that thread.
 * Returns 0, or -1 with ERR_UNAVAILABLE ("cannot load 'libpq.so.5': …")
 * when the library or one of its symbols is missing; that answer stays
 * (no retry), and no forwarder may then call through the table. */
int dl_load(struct dl_lib *lib, struct err *err);

#endif
