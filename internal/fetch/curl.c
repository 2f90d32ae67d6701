/* curl.c - libcurl, loaded on first use (base/dl.h).
 *
 * Only jobs that fetch or upload, webhooks and wakes need libcurl; linking
 * it made every start load it and what it pulls in (nghttp2, ssh2, rtmp,
 * krb5, ldap, sasl, …). The libcurl functions wakeq calls (fetch, wake)
 * are defined here as forwarders with libcurl's own names and types,
 * hidden (never exported: libcurl and the worker's media plugin keep
 * binding to libcurl's own), so the callers read as plain libcurl. A
 * forwarder loads the library on its first call; when that fails it
 * answers as libcurl does when out of memory (NULL, CURLE_FAILED_INIT,
 * …); callers first call fetch_curl_load, which says why and also
 * runs curl_global_init, once (it has no forwarder: this is its home).
 */
/* curl_easy_setopt and _getinfo are macros with gcc (type checks) */
#define CURL_DISABLE_TYPECHECK
/* curl_url_get's handle became const in later libcurl versions: the
 * forwarder takes the const one (callers of either declaration pass a
 * compatible argument), declared below. */
#define curl_url_get curl_url_get_as_declared
#pragma GCC visibility push(hidden)
#include <curl/curl.h>
#undef curl_url_get
CURLUcode curl_url_get(const CURLU *u, CURLUPart what, char **part, unsigned int flags);
#pragma GCC visibility pop

#include "base/dl.h"
#include "fetch/fetch.h"

#include <pthread.h>
#include <stdarg.h>

/* libcurl's soname since 7.16 (2006), Debian's libcurl4 / libcurl4t64 */
#define FETCH_LIBCURL "libcurl.so.4"

/* FN(ret, name, (params), (args), failed) for functions with a result
 * (`failed`: the answer when libcurl cannot be loaded); VFN for void
 * ones (nothing done then). The two variadic ones are written out below. */
#define CURL_FUNCS                                                             \
	FN(CURL *, curl_easy_init, (void), (), NULL)                           \
	FN(CURLcode, curl_easy_perform, (CURL *c), (c), CURLE_FAILED_INIT)     \
	VFN(curl_easy_cleanup, (CURL *c), (c))                                 \
	FN(const char *, curl_easy_strerror, (CURLcode e), (e),                \
		"libcurl not loaded")                                          \
	FN(char *, curl_easy_escape, (CURL *c, const char *s, int n),          \
		(c, s, n), NULL)                                               \
	VFN(curl_free, (void *p), (p))                                         \
	FN(struct curl_slist *, curl_slist_append, (struct curl_slist *l,      \
		const char *s), (l, s), NULL)                                  \
	VFN(curl_slist_free_all, (struct curl_slist *l), (l))                  \
	FN(CURLM *, curl_multi_init, (void), (), NULL)                         \
	FN(CURLMcode, curl_multi_add_handle, (CURLM *m, CURL *c), (m, c),      \
		CURLM_INTERNAL_ERROR)                                          \
	FN(CURLMcode, curl_multi_remove_handle, (CURLM *m, CURL *c), (m, c),   \
		CURLM_INTERNAL_ERROR)                                          \
	FN(CURLMcode, curl_multi_perform, (CURLM *m, int *n), (m, n),          \
		CURLM_INTERNAL_ERROR)                                          \
	FN(CURLMcode, curl_multi_cleanup, (CURLM *m), (m),                     \
		CURLM_INTERNAL_ERROR)                                          \
	FN(CURLMsg *, curl_multi_info_read, (CURLM *m, int *n), (m, n), NULL)  \
	FN(CURLMcode, curl_multi_poll, (CURLM *m, struct curl_waitfd *fds,     \
		unsigned int nfds, int ms, int *ret), (m, fds, nfds, ms, ret), \
		CURLM_INTERNAL_ERROR)                                          \
	FN(CURLMcode, curl_multi_wakeup, (CURLM *m), (m), CURLM_INTERNAL_ERROR) \
	FN(CURLU *, curl_url, (void), (), NULL)                                \
	VFN(curl_url_cleanup, (CURLU *u), (u))                                 \
	FN(CURLUcode, curl_url_get, (const CURLU *u, CURLUPart w, char **p,    \
		unsigned int f), (u, w, p, f), CURLUE_OUT_OF_MEMORY)           \
	FN(CURLUcode, curl_url_set, (CURLU *u, CURLUPart w, const char *p,     \
		unsigned int f), (u, w, p, f), CURLUE_OUT_OF_MEMORY)

/* the table: one pointer per function, named p_<name> */
#define FN(ret, name, params, args, failed) static ret (*p_##name) params;
#define VFN(name, params, args) static void (*p_##name) params;
CURL_FUNCS
#undef FN
#undef VFN
static CURLcode (*p_curl_global_init)(long flags);
static CURLcode (*p_curl_easy_setopt)(CURL *c, CURLoption o, ...);
static CURLcode (*p_curl_easy_getinfo)(CURL *c, CURLINFO i, ...);

#define SYM(name) { #name, (void (**)(void))&p_##name },
#define FN(ret, name, params, args, failed) SYM(name)
#define VFN(name, params, args) SYM(name)
static const struct dl_sym syms[] = {
	CURL_FUNCS SYM(curl_global_init) SYM(curl_easy_setopt) SYM(curl_easy_getinfo)
};
#undef FN
#undef VFN
#undef SYM

static struct dl_lib curl = DL_LIB_INIT(FETCH_LIBCURL, syms, sizeof(syms) / sizeof(syms[0]));

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	p_curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The one curl_global_init of the process, right after the load. */
int fetch_curl_load(struct err *err)
{
	if (dl_load(&curl, err) < 0)
		return -1;
	pthread_once(&global_once, global_init);
	return 0;
}

/* the forwarders, but for the variadic two */
#define FN(ret, name, params, args, failed)                                    \
	ret name params                                                        \
	{                                                                      \
		if (dl_load(&curl, NULL) < 0)                                  \
			return failed;                                         \
		return p_##name args;                                          \
	}
#define VFN(name, params, args)                                                \
	void name params                                                       \
	{                                                                      \
		if (dl_load(&curl, NULL) == 0)                                 \
			p_##name args;                                         \
	}
CURL_FUNCS
#undef FN
#undef VFN

/* One value follows the option; its type is given by the option's range
 * (curl.h: CURLOPTTYPE_*), the way libcurl itself reads it. */
CURLcode curl_easy_setopt(CURL *c, CURLoption o, ...)
{
	CURLcode rc;
	va_list ap;

	if (dl_load(&curl, NULL) < 0)
		return CURLE_FAILED_INIT;
	va_start(ap, o);
	if (o < CURLOPTTYPE_OBJECTPOINT)
		rc = p_curl_easy_setopt(c, o, va_arg(ap, long));
	else if (o < CURLOPTTYPE_FUNCTIONPOINT)
		rc = p_curl_easy_setopt(c, o, va_arg(ap, void *));
	else if (o < CURLOPTTYPE_OFF_T)
		rc = p_curl_easy_setopt(c, o, va_arg(ap, void (*)(void)));
	else if (o < CURLOPTTYPE_BLOB)
		rc = p_curl_easy_setopt(c, o, va_arg(ap, curl_off_t));
	else
		rc = p_curl_easy_setopt(c, o, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

/* Every CURLINFO takes one pointer. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO i, ...)
{
	va_list ap;
	void *p;

	va_start(ap, i);
	p = va_arg(ap, void *);
	va_end(ap);
	if (dl_load(&curl, NULL) < 0)
		return CURLE_FAILED_INIT;
	return p_curl_easy_getinfo(c, i, p);
}
