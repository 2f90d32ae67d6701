/* priv.h - shared between the store's own files, not part of its API. */
#ifndef WAKEQ_STORE_PRIV_H
#define WAKEQ_STORE_PRIV_H

#include "base/err.h"

/* libpq's soname: the library pq.c loads (libpq5 in Debian since 2005). */
#define STORE_LIBPQ "libpq.so.5"

/* Loads libpq (pq.c) once per process: 0, or -1 with ERR_UNAVAILABLE.
 * Before it returned 0 no libpq function may be called. */
int store_pq_load(struct err *err);

#endif
