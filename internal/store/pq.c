/* pq.c - libpq, loaded when a store is opened (base/dl.h).
 *
 * The worker, the API and the CLI need Postgres only with DATABASE_URL;
 * linking libpq made every start load it and what it pulls in (krb5,
 * ldap, sasl, gnutls: ~20 shared objects, most of a cold start). The libpq
 * functions store.c calls are defined here as forwarders with libpq's own
 * names and types, hidden (never exported, so the worker's media plugin
 * and libpq itself keep binding to libpq's): store.c reads as plain libpq.
 * store_open loads the library first (store_pq_load); every other
 * forwarder takes a connection, result or option list that exists only
 * after that load succeeded.
 */
#pragma GCC visibility push(hidden)
#include <libpq-fe.h>
#pragma GCC visibility pop

#include "store/priv.h"

#include "base/dl.h"

#include <stdlib.h>

/* FN(ret, name, (params), (args)) for functions with a result; VFN for
 * void ones. */
#define PQ_FUNCS                                                               \
	VFN(PQclear, (PGresult *r), (r))                                       \
	FN(ConnStatusType, PQstatus, (const PGconn *c), (c))                   \
	FN(int, PQntuples, (const PGresult *r), (r))                           \
	FN(int, PQnfields, (const PGresult *r), (r))                           \
	FN(char *, PQgetvalue, (const PGresult *r, int t, int f), (r, t, f))   \
	FN(int, PQgetisnull, (const PGresult *r, int t, int f), (r, t, f))     \
	FN(ExecStatusType, PQresultStatus, (const PGresult *r), (r))           \
	FN(char *, PQresultErrorField, (const PGresult *r, int f), (r, f))     \
	FN(char *, PQcmdTuples, (PGresult *r), (r))                            \
	FN(int, PQsetnonblocking, (PGconn *c, int a), (c, a))                  \
	VFN(PQfinish, (PGconn *c), (c))                                        \
	VFN(PQreset, (PGconn *c), (c))                                         \
	FN(PGresult *, PQexec, (PGconn *c, const char *q), (c, q))             \
	FN(PGresult *, PQexecParams, (PGconn *c, const char *q, int n,         \
		const Oid *ty, const char *const *v, const int *len,           \
		const int *fmt, int rfmt), (c, q, n, ty, v, len, fmt, rfmt))   \
	FN(int, PQsendQueryParams, (PGconn *c, const char *q, int n,           \
		const Oid *ty, const char *const *v, const int *len,           \
		const int *fmt, int rfmt), (c, q, n, ty, v, len, fmt, rfmt))   \
	FN(char *, PQerrorMessage, (const PGconn *c), (c))                     \
	FN(int, PQsocket, (const PGconn *c), (c))                              \
	FN(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *c,                \
		PQnoticeProcessor p, void *a), (c, p, a))                      \
	FN(int, PQisBusy, (PGconn *c), (c))                                    \
	FN(PGresult *, PQgetResult, (PGconn *c), (c))                          \
	VFN(PQfreemem, (void *p), (p))                                         \
	FN(int, PQflush, (PGconn *c), (c))                                     \
	FN(int, PQconsumeInput, (PGconn *c), (c))                              \
	FN(PQconninfoOption *, PQconninfoParse, (const char *s, char **e),     \
		(s, e))                                                        \
	VFN(PQconninfoFree, (PQconninfoOption *o), (o))                        \
	FN(PGconn *, PQconnectdbParams, (const char *const *k,                 \
		const char *const *v, int x), (k, v, x))

/* the table: one pointer per function, named p_<name> */
#define FN(ret, name, params, args) static ret (*p_##name) params;
#define VFN(name, params, args) static void (*p_##name) params;
PQ_FUNCS
#undef FN
#undef VFN

#define FN(ret, name, params, args) { #name, (void (**)(void))&p_##name },
#define VFN(name, params, args) FN(void, name, params, args)
static const struct dl_sym syms[] = { PQ_FUNCS };
#undef FN
#undef VFN

static struct dl_lib pq = DL_LIB_INIT(STORE_LIBPQ, syms, sizeof(syms) / sizeof(syms[0]));

int store_pq_load(struct err *err)
{
	return dl_load(&pq, err);
}

/* the forwarders */
#define FN(ret, name, params, args) ret name params { return p_##name args; }
#define VFN(name, params, args) void name params { p_##name args; }
PQ_FUNCS
#undef FN
#undef VFN
