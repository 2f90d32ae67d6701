/* path.c - file:// URLs confined to DATA_DIR, and temp files.
 *
 * A file:// URL names a path relative to DATA_DIR ("file://uploads/a.mp4")
 * or an absolute path that lies inside it ("file:///data/uploads/a.mp4").
 * Percent escapes are decoded first, then any ".." component is refused
 * outright, an absolute path must start with DATA_DIR (as configured or as
 * resolved), and the result is resolved with realpath() and must still lie
 * under the resolved DATA_DIR: a symlink inside DATA_DIR may point
 * elsewhere inside it, never out. The path handed back has no symlinks
 * left, so whoever opens it later opens what was checked (short of a
 * concurrent writer inside DATA_DIR swapping folders for links).
 *
 * Output parents are created one component at a time, each checked after
 * creation, so mkdir never follows a link out of DATA_DIR.
 */
#include "fetch/fetch.h"
#include "fetch/priv.h"

#include "base/mem.h"
#include "job/job.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 64
#define SWEEP_DEPTH 32

int fetch_has_scheme(const char *url, const char *scheme)
{
	return url && !strncasecmp(url, scheme, strlen(scheme));
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes %XX escapes of `s` into `out`; refuses NUL bytes and bad
 * escapes. */
static int decode(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	int hi, lo;

	for (; *s; s++) {
		int c = (unsigned char)*s;

		if (c == '%') {
			if ((hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0)
				return -1;
			c = hi * 16 + lo;
			s += 2;
		}
		if (c == 0 || n + 1 >= cap)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = 0;
	return 0;
}

/* Whether `path` is `root` or lies under it (component-wise). */
static int under(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return !strncmp(path, root, n) && (path[n] == 0 || path[n] == '/');
}

/* The resolved DATA_DIR into `root`. */
static int data_root(char root[PATH_MAX], struct err *err)
{
	const char *d = job_settings.data_dir;

	if (!d || !*d)
		return err_set(err, ERR_INVALID, "file:// urls need DATA_DIR");
	if (!realpath(d, root))
		return err_set(err, ERR_IO, "cannot use DATA_DIR '%s': %s", d,
			       strerror(errno));
	return 0;
}

/* Strips the scheme of a file:// URL and turns it into a path relative to
 * DATA_DIR (`rel`, components joined by '/', no "." or ".." and no
 * leading '/'). */
static int relative(const char *url, const char *root, char rel[PATH_MAX],
		    struct err *err)
{
	char dec[PATH_MAX], conf[PATH_MAX];
	char *p, *save = NULL, *tok;
	const char *rest;
	size_t n = 0, len;
	int parts = 0;

	if (!fetch_has_scheme(url, "file://"))
		return err_set(err, ERR_INVALID, "not a file:// url '%s'", url);
	if (strpbrk(url, "?#"))
		return err_set(err, ERR_INVALID,
			       "file:// url '%s' must not have a query or fragment", url);
	if (decode(url + 7, dec, sizeof(dec)) < 0 || !dec[0])
		return err_set(err, ERR_INVALID, "bad file:// url '%s'", url);
	rest = dec;
	if (dec[0] == '/') {
		/* Absolute: must start with DATA_DIR, as configured or as
		 * resolved; the remainder is then relative. */
		len = strlen(job_settings.data_dir);
		if (len >= sizeof(conf))
			return err_set(err, ERR_INVALID, "DATA_DIR too long");
		memcpy(conf, job_settings.data_dir, len + 1);
		while (len > 1 && conf[len - 1] == '/')
			conf[--len] = 0;
		if (conf[0] == '/' && under(dec, conf))
			rest = dec + (len == 1 ? 0 : len);
		else if (under(dec, root))
			rest = dec + (strlen(root) == 1 ? 0 : strlen(root));
		else
			return err_set(err, ERR_INVALID,
				       "path of '%s' is outside DATA_DIR", url);
	}
	p = dec + (rest - dec);
	rel[0] = 0;
	for (tok = strtok_r(p, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, ".."))
			return err_set(err, ERR_INVALID,
				       "path of '%s' escapes DATA_DIR ('..')", url);
		len = strlen(tok);
		if (++parts > MAX_PARTS || n + len + 2 >= PATH_MAX)
			return err_set(err, ERR_INVALID, "path of '%s' too long", url);
		if (n)
			rel[n++] = '/';
		memcpy(rel + n, tok, len + 1);
		n += len;
	}
	if (!n)
		return err_set(err, ERR_INVALID, "file:// url '%s' names no file", url);
	return 0;
}

static const char *strerr_short(int e)
{
	switch (e) {
	case ENOENT: return "no such file";
	case EACCES: case EPERM: return "permission denied";
	case ENOTDIR: return "not a folder";
	case ELOOP: return "too many symlinks";
	default: return strerror(e);
	}
}

static enum err_code errno_code(int e)
{
	return e == ENOENT || e == ENOTDIR ? ERR_NOTFOUND :
	       e == EACCES || e == EPERM ? ERR_AUTH : ERR_IO;
}

int fetch_file_input(const char *url, char out[PATH_MAX], long long *bytes,
		     struct err *err)
{
	char root[PATH_MAX], rel[PATH_MAX], full[PATH_MAX * 2], real[PATH_MAX];
	struct stat st;
	int fd;

	if (data_root(root, err) < 0 || relative(url, root, rel, err) < 0)
		return -1;
	snprintf(full, sizeof(full), "%s/%s", root, rel);
	if (!realpath(full, real))
		return err_set(err, errno_code(errno), "cannot open input '%s': %s",
			       url, strerr_short(errno));
	if (!under(real, root))
		return err_set(err, ERR_INVALID,
			       "input '%s' resolves outside DATA_DIR", url);
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return err_set(err, errno_code(errno), "cannot open input '%s': %s",
			       url, strerr_short(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, ERR_INVALID, "input '%s' is not a regular file",
			       url);
	}
	close(fd);
	memcpy(out, real, strlen(real) + 1);
	*bytes = (long long)st.st_size;
	return 0;
}

/* The extension of the last segment of `url`'s path (".mp4"), or "". */
static void extension(const char *url, char ext[16])
{
	const char *end = url + strcspn(url, "?#"), *slash, *dot, *p;

	ext[0] = 0;
	for (slash = end; slash > url && slash[-1] != '/'; slash--)
		;
	for (dot = end; dot > slash && dot[-1] != '.'; dot--)
		;
	if (dot == slash || end - dot < 1 || end - dot > 8)
		return;
	for (p = dot; p < end; p++)
		if (!isalnum((unsigned char)*p))
			return;
	ext[0] = '.';
	memcpy(ext + 1, dot, (size_t)(end - dot));
	ext[end - dot + 1] = 0;
}

/* Creates `tmpl` (ending in XXXXXX + ext) readable by others too. */
static int make_temp(char *tmpl, int extlen, const char *url, struct err *err)
{
	int fd = mkostemps(tmpl, extlen, O_CLOEXEC);

	if (fd < 0)
		return err_set(err, ERR_IO, "cannot create a temp file for '%s': %s",
			       url, strerror(errno));
	if (fchmod(fd, 0644) < 0) {
		/* harmless: the file stays private */
	}
	close(fd);
	return 0;
}

int fetch_file_output(const char *url, char final[PATH_MAX],
		      char tmp[PATH_MAX], struct err *err)
{
	char root[PATH_MAX], rel[PATH_MAX], cur[PATH_MAX], next[PATH_MAX * 2];
	char ext[16], t[PATH_MAX * 2];
	char *p, *slash;
	struct stat st;
	int n;

	if (data_root(root, err) < 0 || relative(url, root, rel, err) < 0)
		return -1;
	memcpy(cur, root, strlen(root) + 1);
	/* Walk the parent folders, creating missing ones; every step is
	 * resolved and must stay inside DATA_DIR. */
	for (p = rel; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = 0;
		snprintf(next, sizeof(next), "%s/%s", cur, p);
		if (mkdir(next, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno_code(errno),
				       "cannot create folder for output '%s': %s", url,
				       strerr_short(errno));
		if (!realpath(next, cur))
			return err_set(err, errno_code(errno),
				       "cannot create folder for output '%s': %s", url,
				       strerr_short(errno));
		if (!under(cur, root))
			return err_set(err, ERR_INVALID,
				       "output '%s' resolves outside DATA_DIR", url);
		if (stat(cur, &st) < 0 || !S_ISDIR(st.st_mode))
			return err_set(err, ERR_INVALID,
				       "cannot write output '%s': a parent is not a folder", url);
	}
	snprintf(next, sizeof(next), "%s/%s", cur, p);
	if (strlen(next) >= PATH_MAX)
		return err_set(err, ERR_INVALID, "path of '%s' too long", url);
	/* A link as the target is replaced by rename(), never followed. */
	if (lstat(next, &st) == 0 && S_ISDIR(st.st_mode))
		return err_set(err, ERR_INVALID, "output '%s' is a folder", url);
	extension(p, ext);
	n = snprintf(t, sizeof(t), "%s/.%.64s.part-XXXXXX%s", cur, p, ext);
	if (n < 0 || n >= PATH_MAX)
		return err_set(err, ERR_INVALID, "path of '%s' too long", url);
	if (make_temp(t, (int)strlen(ext), url, err) < 0)
		return -1;
	memcpy(final, next, strlen(next) + 1);
	memcpy(tmp, t, strlen(t) + 1);
	return 0;
}

int fetch_tmpfile(const char *url, char out[PATH_MAX], struct err *err)
{
	const char *dir = job_settings.tmp_dir && *job_settings.tmp_dir ?
		job_settings.tmp_dir : "/tmp";
	char ext[16], t[PATH_MAX * 2];
	int n;

	extension(url, ext);
	n = snprintf(t, sizeof(t), "%s/wakeq-XXXXXX%s", dir, ext);
	if (n < 0 || n >= PATH_MAX)
		return err_set(err, ERR_INVALID, "tmp_dir too long");
	if (make_temp(t, (int)strlen(ext), url, err) < 0)
		return -1;
	memcpy(out, t, strlen(t) + 1);
	return 0;
}

/* ".NAME.part-XXXXXX" then "" or "." and 1 to 8 letters or digits: what
 * fetch_file_output makes (mkostemps fills the X with letters and
 * digits). The API's uploads (".NAME.part", no suffix) are not ours. */
int fetch_is_part_name(const char *name)
{
	const char *p;

	if (name[0] != '.' || !name[1])
		return 0;
	for (p = strstr(name + 2, ".part-"); p; p = strstr(p + 1, ".part-")) {
		const char *x = p + 6, *e;
		int i;

		for (i = 0; i < 6 && isalnum((unsigned char)x[i]); i++)
			;
		if (i < 6)
			continue;
		e = x + 6;
		if (!*e)
			return 1;
		if (*e != '.' || strlen(e + 1) < 1 || strlen(e + 1) > 8)
			continue;
		for (i = 1; e[i] && isalnum((unsigned char)e[i]); i++)
			;
		if (!e[i])
			return 1;
	}
	return 0;
}

/* One folder of the sweep; takes `dfd`. */
static long sweep_dir(int dfd, int depth, dev_t dev, time_t cutoff,
		      const atomic_int *stop)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	long n = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while (!(stop && atomic_load(stop)) && (de = readdir(d))) {
		struct stat st;
		int sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth >= SWEEP_DEPTH || st.st_dev != dev)
				continue;
			sub = openat(dirfd(d), de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				n += sweep_dir(sub, depth + 1, dev, cutoff, stop);
		} else if (S_ISREG(st.st_mode) && st.st_mtime < cutoff &&
			   fetch_is_part_name(de->d_name) &&
			   unlinkat(dirfd(d), de->d_name, 0) == 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

long fetch_sweep_parts(double older_than_s, const atomic_int *stop,
		       struct err *err)
{
	char root[PATH_MAX];
	struct stat st;
	int fd;

	if (data_root(root, err) < 0)
		return -1;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, ERR_IO, "cannot open DATA_DIR '%s': %s", root, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return sweep_dir(fd, 0, st.st_dev, time(NULL) - (time_t)older_than_s, stop);
}
