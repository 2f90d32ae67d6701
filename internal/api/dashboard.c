/* dashboard.c - GET /dashboard: a page for operators (docs/API.md
 * "Dashboard"), its script and its style sheet, written as plain files in
 * internal/api/dashboard/, built into the binary (internal/api/embed.sh)
 * and served at DASHBOARD_PATH.
 *
 * The files hold no data and need no token; everything the page shows it
 * reads from /v1/ with the API's bearer token, which it asks for once and
 * keeps in the tab's sessionStorage. No cookie is ever set, so a request
 * forged by another site carries no credential: the token is also the
 * guard against CSRF. The answers carry a Content-Security-Policy that
 * lets the page run its own script, style and fetches only (no inline
 * script, no other origin, no framing), X-Frame-Options DENY for older
 * browsers, nosniff, no referrer, and no-cache (a new binary's page is
 * seen at once).
 *
 * The route table (routes.c) lists the files under API_DASHBOARD_ROUTE;
 * api_dashboard_route maps DASHBOARD_PATH onto it. The page names its
 * script and style sheet by absolute path: "@BASE@" in index.html is
 * replaced by DASHBOARD_PATH when it is served.
 */
#include "api/priv.h"

#include "api/dashboard.h"

#include "base/buf.h"

#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 100

static const char csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; "
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
	"form-action 'none'; frame-ancestors 'none'";

/* The characters of a segment of DASHBOARD_PATH (unreserved in RFC 3986). */
static const char seg_chars[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";

int api_dashboard_init(struct api *a, struct err *err)
{
	const char *p = a->cfg.dashboard_path, *s;

	if (!p)
		p = a->cfg.dashboard_path = API_DASHBOARD_ROUTE;
	if (!*p)
		return 0; /* no dashboard */
	if (p[0] != '/' || strlen(p) > PATH_MAX_LEN)
		return err_set(err, ERR_INVALID,
			       "bad DASHBOARD_PATH '%.120s': expected an absolute path of at most %d characters (or empty for none)",
			       p, PATH_MAX_LEN);
	for (s = p; *s; ) {
		size_t n;

		s++; /* the slash */
		n = strspn(s, seg_chars);
		if (n == 0 || (s[n] && s[n] != '/') || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return err_set(err, ERR_INVALID,
				       "bad DASHBOARD_PATH '%s': expected segments of [A-Za-z0-9._~-] (no empty, '.' or '..' segment, no trailing slash)",
				       p);
		s += n;
	}
	if (!strcmp(p, "/v1") || !strncmp(p, "/v1/", 4) || api_route_taken(p))
		return err_set(err, ERR_INVALID,
			       "bad DASHBOARD_PATH '%s': it would hide a route of the API", p);
	return 0;
}

const char *api_dashboard_route(struct api *a, const char *path, char *buf,
				size_t size)
{
	const char *base = a->cfg.dashboard_path;
	size_t bn = strlen(base), rn = strlen(API_DASHBOARD_ROUTE);

	if (bn && !strncmp(path, base, bn) && (path[bn] == '\0' || path[bn] == '/')) {
		if (rn + strlen(path + bn) >= size)
			return NULL;
		snprintf(buf, size, "%s%s", API_DASHBOARD_ROUTE, path + bn);
		return buf;
	}
	if (!strncmp(path, API_DASHBOARD_ROUTE, rn) && (path[rn] == '\0' || path[rn] == '/'))
		return NULL;
	return path;
}

static void respond(struct api *a, struct httpd_request *req, const char *type,
		    const char *body, size_t len)
{
	httpd_add_header(req, "Content-Security-Policy", csp);
	httpd_add_header(req, "X-Frame-Options", "DENY");
	httpd_add_header(req, "X-Content-Type-Options", "nosniff");
	httpd_add_header(req, "Referrer-Policy", "no-referrer");
	httpd_add_header(req, "Cache-Control", "no-cache");
	api_count_status(a, 200);
	httpd_respond(req, 200, type, body, len);
}

void api_dashboard_page(struct api *a, struct httpd_request *req, const char *arg)
{
	static const char mark[] = "@BASE@";
	const char *s = api_dash_index_html, *m;
	struct buf b = BUF_INIT;

	(void)arg;
	while ((m = strstr(s, mark))) {
		buf_add(&b, s, (size_t)(m - s));
		buf_add(&b, a->cfg.dashboard_path, strlen(a->cfg.dashboard_path));
		s = m + sizeof(mark) - 1;
	}
	buf_add(&b, s, strlen(s));
	respond(a, req, "text/html; charset=utf-8", b.data, b.len);
	buf_release(&b);
}

void api_dashboard_js(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	respond(a, req, "text/javascript; charset=utf-8", api_dash_app_js,
		sizeof(api_dash_app_js) - 1);
}

void api_dashboard_css(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	respond(a, req, "text/css; charset=utf-8", api_dash_style_css,
		sizeof(api_dash_style_css) - 1);
}
