/* path.c - file:// URLs confined to DATA_DIR, and temp files.
 *
 * A file:// URL names a path relative to DATA_DIR ("file://uploads/a.mp4")
 * or an absolute path that lies inside it ("file:///data/uploads/a.mp4").
 * Percent escapes are decoded first, any ".." component is refused
 * outright and an absolute path must start with DATA_DIR (as configured or
 * as resolved); what remains is a path relative to DATA_DIR.
 *
 * The kernel does the confinement: every open is openat2() relative to a
 * descriptor of DATA_DIR with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so
 * no symlink, wherever it sits and whenever it was swapped in, resolves
 * out of DATA_DIR. Absolute symlinks are refused even when they point
 * inside; a relative one may point elsewhere inside. There is no fallback
 * to checking a path and opening it afterwards (that is the race this
 * replaces): without openat2 (Linux < 5.6, or a seccomp profile hiding it)
 * file:// URLs fail with a message that says so.
 *
 * Using the file later must not walk DATA_DIR again, or a folder swapped
 * for a link after the open would win. So the file stays open, and the
 * path handed out is a symlink of ours, in a private (0700) folder under
 * tmp_dir, to /proc/PID/fd/FD of this process. Whoever opens that path,
 * this process or a child forked later (the media child closes the
 * descriptors it inherits, but the worker keeps its own open until
 * release), reaches exactly the file that was opened here. The link
 * carries the file's own name, so extensions and messages read as before.
 *
 * Outputs: parent folders are made one at a time with mkdirat() in a
 * descriptor of the folder above, each then opened beneath DATA_DIR; the
 * temp file is created (O_EXCL) in the last one and renamed into place
 * within that same descriptor on commit.
 */
#include "fetch/fetch.h"
#include "fetch/priv.h"

#include "base/fd.h"
#include "base/mem.h"
#include "job/job.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 64
/* openat2 answers EAGAIN when a rename elsewhere raced its lookup */
#define OPEN_TRIES 64
#define SWEEP_DEPTH 32

int fetch_has_scheme(const char *url, const char *scheme)
{
	return url && !strncasecmp(url, scheme, strlen(scheme));
}

int fetch_is_store(const char *url)
{
	return fetch_has_scheme(url, "s3://") || fetch_has_scheme(url, "gs://");
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

/* Opens DATA_DIR (O_PATH) and puts its resolved path into `root`.
 * Returns the descriptor or -1. DATA_DIR itself is the operator's and may
 * be a symlink; only what lies beneath it is confined. */
static int root_open(char root[PATH_MAX], struct err *err)
{
	const char *d = job_settings.data_dir;
	int fd;

	if (!d || !*d)
		return err_set(err, ERR_INVALID, "file:// urls need DATA_DIR");
	fd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !realpath(d, root)) {
		err_set(err, ERR_IO, "cannot use DATA_DIR '%s': %s", d,
			strerror(errno));
		fd_close(&fd);
		return -1;
	}
	return fd;
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

/* ---- opening beneath DATA_DIR ---------------------------------------- */

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
	/* EAGAIN: renames kept racing the lookup; later may work */
	return e == ENOENT || e == ENOTDIR ? ERR_NOTFOUND :
	       e == EACCES || e == EPERM ? ERR_AUTH :
	       e == EAGAIN ? ERR_UNAVAILABLE : ERR_IO;
}

/* The message for a failed open of `url`; `what` is "open input" ... */
static int open_error(int e, const char *what, const char *url,
		      struct err *err)
{
	static const struct { int e; enum err_code code; const char *why; } known[] = {
		{ ENOSYS, ERR_INTERNAL, "openat2 unavailable (kernel < 5.6)" },
		{ EOPNOTSUPP, ERR_INTERNAL, "openat2 blocked (by a seccomp profile?)" },
		{ EXDEV, ERR_INVALID, "path resolves outside DATA_DIR" },
		{ ELOOP, ERR_INVALID, "too many symlinks" },
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (e == known[i].e)
			return err_set(err, known[i].code, "cannot %s '%s': %s", what, url,
				       known[i].why);
	return err_set(err, errno_code(e), "cannot %s '%s': %s", what, url,
		       strerr_short(e));
}

/* Whether openat2 fails with EPERM whatever it opens: container seccomp
 * profiles older than openat2 answer that for syscalls they do not
 * know. */
static int blocked(void)
{
	struct open_how how;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
	if (fd >= 0)
		close(fd);
	return fd < 0 && errno == EPERM;
}

/* openat2(dirfd, path) with every step of the lookup kept beneath dirfd.
 * Returns a descriptor (close-on-exec) or -1 with errno set; ENOSYS when
 * the kernel has no openat2, EOPNOTSUPP when something blocks it. */
static int beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how;
	int fd, tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.mode = flags & O_CREAT ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	do
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR) &&
	       ++tries < OPEN_TRIES);
	if (fd < 0 && errno == EPERM && blocked())
		errno = EOPNOTSUPP;
	return fd;
}

/* Moves `fd` to 3 or above, so 0 can mean "none" in the structs (a
 * zeroed struct must release nothing). Returns the new fd or -1. */
static int high_fd(int fd)
{
	int h;

	if (fd < 0 || fd > 2)
		return fd;
	h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return h;
}

static const char *tmp_dir(void)
{
	return job_settings.tmp_dir && *job_settings.tmp_dir ?
		job_settings.tmp_dir : "/tmp";
}

/* Removes a link made by fd_link() and its private folder. */
static void fd_unlink(const char *link)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(link, '/');
	int e = errno;

	if (!slash || (size_t)(slash - link) >= sizeof(dir))
		return;
	unlink(link);
	memcpy(dir, link, (size_t)(slash - link));
	dir[slash - link] = 0;
	rmdir(dir);
	errno = e;
}

/* Makes `link` = TMP/wakeq-XXXXXX/NAME, a symlink to /proc/PID/fd/FD,
 * and checks that it reaches `fd` (it does not without /proc). */
static int fd_link(int fd, const char *name, const char *url,
		   char link[PATH_MAX], struct err *err)
{
	char dir[PATH_MAX], target[64];
	struct stat a, b;
	int n;

	n = snprintf(dir, sizeof(dir), "%s/wakeq-XXXXXX", tmp_dir());
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_set(err, ERR_INVALID, "tmp_dir too long");
	if (!mkdtemp(dir))
		return err_set(err, ERR_IO, "cannot create a temp folder for '%s': %s",
			       url, strerror(errno));
	n = snprintf(link, PATH_MAX, "%s/%s", dir, name);
	if (n < 0 || n >= PATH_MAX) {
		rmdir(dir);
		return err_set(err, ERR_INVALID, "path of '%s' too long", url);
	}
	snprintf(target, sizeof(target), "/proc/%ld/fd/%d", (long)getpid(), fd);
	if (symlink(target, link) < 0) {
		err_set(err, ERR_IO, "cannot link '%s' into tmp_dir: %s", url,
			strerror(errno));
		rmdir(dir);
		return -1;
	}
	if (stat(link, &a) < 0 || fstat(fd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		fd_unlink(link);
		return err_set(err, ERR_INTERNAL, "cannot hand over '%s': /proc "
			       "is not mounted", url);
	}
	return 0;
}

/* The last component of the path `fd` was opened as, into `name`; `def`
 * when the kernel cannot tell. */
static void fd_name(int fd, const char *def, char name[NAME_MAX + 1])
{
	char proc[64], real[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, real, sizeof(real) - 1);
	if (n <= 0 || real[0] != '/') {
		snprintf(name, NAME_MAX + 1, "%s", def);
		return;
	}
	real[n] = 0;
	base = strrchr(real, '/') + 1;
	snprintf(name, NAME_MAX + 1, "%s", *base ? base : def);
}

/* The path `fd` was opened as, into `out` (PATH_MAX), or "". */
static void fd_path(int fd, char *out)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, out, PATH_MAX - 1);
	out[n > 0 ? n : 0] = 0;
}

int fetch_file_input(const char *url, struct fetch_input *in,
		     struct err *err)
{
	char root[PATH_MAX], rel[PATH_MAX], link[PATH_MAX], name[NAME_MAX + 1];
	struct stat st;
	int rootfd, fd = -1, ret = -1;

	if ((rootfd = root_open(root, err)) < 0)
		return -1;
	if (relative(url, root, rel, err) < 0)
		goto out;
	/* O_NONBLOCK: a FIFO planted in DATA_DIR must not hang the open */
	fd = high_fd(beneath(rootfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0));
	if (fd < 0) {
		open_error(errno, "open input", url, err);
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(err, ERR_INVALID, "input '%s' is not a regular file", url);
		goto out;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	fd_name(fd, "input", name);
	if (fd_link(fd, name, url, link, err) < 0)
		goto out;
	memcpy(in->path, link, strlen(link) + 1);
	in->fd = fd;
	in->temp = 0;
	in->bytes = (int64_t)st.st_size;
	fd = -1;
	ret = 0;
out:
	fd_close(&fd);
	close(rootfd);
	return ret;
}

void fetch_file_input_release(struct fetch_input *in)
{
	if (in->fd <= 0)
		return;
	if (in->path[0])
		fd_unlink(in->path);
	close(in->fd);
	in->fd = 0;
}

/* A fresh temp name beside the target: ".NAME.part-XXXXXX.EXT". */
static void part_name(const char *name, const char *ext,
		      char part[NAME_MAX + 1])
{
	static const char abc[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char r[6];
	char suffix[7];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)rand();
	for (i = 0; i < sizeof(r); i++)
		suffix[i] = abc[r[i] % (sizeof(abc) - 1)];
	suffix[6] = 0;
	snprintf(part, NAME_MAX + 1, ".%.64s.part-%s%s", name, suffix, ext);
}

int fetch_file_output(const char *url, struct fetch_output *out,
		      struct err *err)
{
	char root[PATH_MAX], rel[PATH_MAX], link[PATH_MAX], dirpath[PATH_MAX];
	char part[NAME_MAX + 1], ext[16], *p, *slash;
	const char *name;
	struct stat st;
	int rootfd, dir = -1, next, fd = -1, tries, ret = -1;

	if ((rootfd = root_open(root, err)) < 0)
		return -1;
	if (relative(url, root, rel, err) < 0)
		goto out;
	/* Walk the parent folders, creating missing ones: each mkdirat()
	 * happens in a folder already opened beneath DATA_DIR, and each
	 * step is opened beneath DATA_DIR again, so a link met on the way
	 * (or swapped in) leads nowhere outside. */
	dir = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (dir < 0) {
		err_set(err, ERR_IO, "cannot create output '%s': %s", url,
			strerror(errno));
		goto out;
	}
	for (p = rel; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = 0;
		if (mkdirat(dir, p, 0755) < 0 && errno != EEXIST) {
			open_error(errno, "create folder for output", url, err);
			goto out;
		}
		next = high_fd(beneath(rootfd, rel, O_PATH | O_DIRECTORY, 0));
		*slash = '/';
		if (next < 0) {
			if (errno == ENOTDIR)
				err_set(err, ERR_INVALID, "cannot write output '%s': a "
					"parent is not a folder", url);
			else
				open_error(errno, "create folder for output", url, err);
			goto out;
		}
		close(dir);
		dir = next;
	}
	name = p;
	if (strlen(name) > NAME_MAX) {
		err_set(err, ERR_INVALID, "path of '%s' too long", url);
		goto out;
	}
	/* A link as the target is replaced by the rename, never followed. */
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		err_set(err, ERR_INVALID, "output '%s' is a folder", url);
		goto out;
	}
	extension(name, ext);
	for (tries = 0; tries < 100; tries++) {
		part_name(name, ext, part);
		fd = beneath(dir, part, O_RDWR | O_CREAT | O_EXCL | O_NOCTTY, 0644);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	fd = high_fd(fd);
	if (fd < 0) {
		open_error(errno, "create output", url, err);
		goto out;
	}
	if (fchmod(fd, 0644) < 0) {
		/* harmless: the file stays private */
	}
	if (fd_link(fd, name, url, link, err) < 0) {
		unlinkat(dir, part, 0);
		goto out;
	}
	fd_path(dir, dirpath);
	snprintf(out->final, sizeof(out->final), "%s/%s", dirpath, name);
	memcpy(out->path, link, strlen(link) + 1);
	memcpy(out->part, part, strlen(part) + 1);
	memcpy(out->name, name, strlen(name) + 1);
	out->dirfd = dir;
	out->fd = fd;
	dir = fd = -1;
	ret = 0;
out:
	fd_close(&fd);
	fd_close(&dir);
	close(rootfd);
	return ret;
}

int fetch_file_commit(struct fetch_output *out, struct err *err)
{
	if (renameat(out->dirfd, out->part, out->dirfd, out->name) < 0)
		return err_set(err, ERR_IO, "cannot publish output '%s': %s",
			       out->url, strerror(errno));
	return 0;
}

void fetch_file_output_release(struct fetch_output *out)
{
	if (out->dirfd > 0 && !out->committed && out->part[0])
		unlinkat(out->dirfd, out->part, 0);
	if (out->fd > 0 && out->path[0])
		fd_unlink(out->path);
	if (out->fd > 0)
		close(out->fd);
	if (out->dirfd > 0)
		close(out->dirfd);
	out->fd = out->dirfd = 0;
	out->part[0] = out->name[0] = 0;
}

/* ".NAME.part-XXXXXX" then "" or "." and 1 to 8 letters or digits: what
 * fetch_file_output makes (part_name fills the X with letters and
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
	int pfd, fd;

	if ((pfd = root_open(root, err)) < 0)
		return -1;
	close(pfd);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, ERR_IO, "cannot open DATA_DIR '%s': %s", root, strerror(errno));
		fd_close(&fd);
		return -1;
	}
	return sweep_dir(fd, 0, st.st_dev, time(NULL) - (time_t)older_than_s, stop);
}
