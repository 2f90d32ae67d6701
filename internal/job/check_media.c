/* check_media.c - payload checks of the media.* types (no FFmpeg here: the
 * API links this file). Every field of issue 4 is checked, with messages
 * that name the field ("payload field 'video.crf' must be from 0 to 51").
 * Unknown fields are refused, so a typo ("at" for "at_s") is an error,
 * not a silent default. */
#include "job/checks.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define URL_MAX 4096

/* A member `name` of object `o`, reported as `prefix.name`. NULL when
 * absent or null. */
static const json_t *get(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	return json_is_null(v) ? NULL : v;
}

static int only(const json_t *o, const char *prefix,
		const char *const *known, struct err *err)
{
	const char *key;
	const json_t *v;

	json_object_foreach((json_t *)o, key, v) {
		const char *const *k;

		for (k = known; *k; k++)
			if (!strcmp(*k, key))
				break;
		if (!*k)
			return err_set(err, ERR_INVALID, "unknown payload field '%s%s%s'",
				       prefix, *prefix ? "." : "", key);
	}
	return 0;
}

static int num(const json_t *o, const char *prefix, const char *name,
	       double min, double max, int integer, double *out,
	       struct err *err)
{
	const json_t *v = get(o, name);
	const char *dot = *prefix ? "." : "";
	double d;

	if (!v)
		return 0;
	if (!json_is_number(v))
		return err_set(err, ERR_INVALID,
			       "payload field '%s%s%s' must be a number", prefix,
			       dot, name);
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		return err_set(err, ERR_INVALID,
			       "payload field '%s%s%s' must be from %g to %g",
			       prefix, dot, name, min, max);
	if (integer && d != floor(d))
		return err_set(err, ERR_INVALID,
			       "payload field '%s%s%s' must be a whole number",
			       prefix, dot, name);
	*out = d;
	return 1;
}

/* A string member that must be one of `choices` (NULL-terminated). */
static int choice(const json_t *o, const char *prefix, const char *name,
		  const char *const *choices, const char **out,
		  struct err *err)
{
	const json_t *v = get(o, name);
	const char *dot = *prefix ? "." : "";
	const char *const *c;
	char list[256];
	size_t off = 0;

	if (!v)
		return 0;
	if (json_is_string(v)) {
		for (c = choices; *c; c++) {
			if (!strcmp(*c, json_string_value(v))) {
				*out = *c;
				return 1;
			}
		}
	}
	list[0] = 0;
	for (c = choices; *c && off < sizeof(list); c++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
					c == choices ? "" : ", ", *c);
	return err_set(err, ERR_INVALID, "payload field '%s%s%s' must be one of: %s",
		       prefix, dot, name, list);
}

/* Whether `path` is `root` or lies under it (component-wise). */
static int under(const char *path, const char *root, size_t n)
{
	if (n == 0) /* root is "/" */
		return path[0] == '/';
	return !strncmp(path, root, n) && (path[n] == 0 || path[n] == '/');
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A file:// URL must name a file inside DATA_DIR (job_settings.data_dir,
 * when set): checked here by its text alone, so the API refuses at the
 * door what the worker would refuse when it opens the file. The rules
 * are those of the worker's (internal/fetch/path.c, which also resolves
 * symlinks): percent escapes decoded first, no query or fragment, no ".."
 * component, an absolute path under DATA_DIR as configured or as
 * resolved on this host, and some file named. */
static int file_inside(const char *name, const char *u, struct err *err)
{
	const char *d = job_settings.data_dir, *p, *rest;
	char dec[PATH_MAX], root[PATH_MAX];
	size_t n = 0, len;
	int named = 0;

	if (!d || !*d)
		return 0;
	if (strpbrk(u, "?#"))
		return err_set(err, ERR_INVALID, "payload field '%s': file:// url must "
			       "not have a query or fragment", name);
	for (p = u + 7; *p; p++) {
		int c = (unsigned char)*p, hi, lo;

		if (c == '%') {
			if ((hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0)
				c = 0;
			else
				c = hi * 16 + lo;
			p += 2;
		}
		if (c == 0 || n + 1 >= sizeof(dec))
			return err_set(err, ERR_INVALID, "payload field '%s': bad file:// url",
				       name);
		dec[n++] = (char)c;
	}
	dec[n] = 0;
	rest = dec;
	if (dec[0] == '/') {
		len = strlen(d);
		while (len > 0 && d[len - 1] == '/')
			len--;
		if (d[0] == '/' && under(dec, d, len)) {
			rest = dec + len;
		} else if (realpath(d, root)) {
			len = strcmp(root, "/") ? strlen(root) : 0;
			if (!under(dec, root, len))
				goto outside;
			rest = dec + len;
		} else {
			goto outside;
		}
	}
	for (p = rest; *p; p += len) {
		p += strspn(p, "/");
		len = strcspn(p, "/");
		if (len == 2 && !strncmp(p, "..", 2))
			return err_set(err, ERR_INVALID, "payload field '%s': path of '%s' "
				       "escapes DATA_DIR ('..')", name, u);
		if (len && !(len == 1 && *p == '.'))
			named = 1;
	}
	if (!named)
		return err_set(err, ERR_INVALID, "payload field '%s': '%s' names no file",
			       name, u);
	return 0;
outside:
	return err_set(err, ERR_INVALID, "payload field '%s': path of '%s' is outside "
		       "DATA_DIR", name, u);
}

static int url(const json_t *p, const char *name, struct err *err)
{
	static const char *const schemes[] = {
		"file://", "http://", "https://", "s3://", "gs://", NULL
	};
	const char *const *s;
	const char *u = NULL;

	if (job_get_string(p, name, 1, &u, err) < 0)
		return -1;
	if (!*u)
		return err_set(err, ERR_INVALID, "payload field '%s' is empty", name);
	if (strlen(u) > URL_MAX)
		return err_set(err, ERR_INVALID,
			       "payload field '%s' is longer than %d bytes", name,
			       URL_MAX);
	for (s = schemes; *s; s++)
		if (!strncmp(u, *s, strlen(*s)) && u[strlen(*s)])
			return s == schemes ? file_inside(name, u, err) : 0;
	return err_set(err, ERR_INVALID,
		       "payload field '%s' must be a file://, http://, https://, "
		       "s3:// or gs:// URL", name);
}

static int object_payload(const json_t *p, struct err *err)
{
	if (!json_is_object(p))
		return err_set(err, ERR_INVALID, "payload must be a JSON object");
	return 0;
}

int job_check_media_probe(const json_t *payload, struct err *err)
{
	static const char *const known[] = { "input", NULL };

	if (object_payload(payload, err) < 0 || only(payload, "", known, err) < 0)
		return -1;
	return url(payload, "input", err);
}

int job_check_media_thumbnail(const json_t *payload, struct err *err)
{
	static const char *const known[] = {
		"input", "output", "at_s", "width", "height", "format", NULL
	};
	static const char *const formats[] = { "jpeg", "png", "webp", NULL };
	const char *f;
	double d;

	if (object_payload(payload, err) < 0 || only(payload, "", known, err) < 0 ||
	    url(payload, "input", err) < 0 || url(payload, "output", err) < 0 ||
	    num(payload, "", "at_s", 0, 1e6, 0, &d, err) < 0 ||
	    num(payload, "", "width", 1, 16384, 1, &d, err) < 0 ||
	    num(payload, "", "height", 1, 16384, 1, &d, err) < 0 ||
	    choice(payload, "", "format", formats, &f, err) < 0)
		return -1;
	return 0;
}

/* The one container table: what each holds and writes by default. */
static const struct job_container containers[] = {
	{ "mp4", "mp4", "h264 vp9", "aac mp3 opus", "h264", "aac", 1 },
	{ "mov", "mov", "h264", "aac mp3", "h264", "aac", 1 },
	{ "mkv", "matroska", "h264 vp9", "aac opus mp3", "h264", "aac", 0 },
	{ "webm", "webm", "vp9", "opus", "vp9", "opus", 0 },
	{ "m4a", "ipod", "", "aac", "none", "aac", 1 },
	{ "mp3", "mp3", "", "mp3", "none", "mp3", 0 },
	{ "ogg", "ogg", "", "opus", "none", "opus", 0 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, 0 },
};

const struct job_container *job_container_find(const char *name)
{
	const struct job_container *c;

	for (c = containers; name && c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return 1;
		p += n;
	}
	return 0;
}

/* The settings object `v` of stream `kind` with `codec` against the
 * codecs `list` of container `container`: "copy" and "none" take no
 * settings, any other codec must be one the container holds. */
static int codec_fits(const json_t *v, const char *kind, const char *codec,
		      const char *list, const char *container, struct err *err)
{
	int encodes = strcmp(codec, "copy") && strcmp(codec, "none");

	if (!encodes && json_object_size(v) > (get(v, "codec") ? 1u : 0u))
		return err_set(err, ERR_INVALID, "payload field '%s' has settings "
			       "but codec '%s' encodes nothing", kind, codec);
	if (encodes && !*list && !strcmp(kind, "video"))
		return err_set(err, ERR_INVALID, "container '%s' is audio only (video codec '%s')",
			       container, codec);
	if (encodes && !in_list(list, codec))
		return err_set(err, ERR_INVALID, "container '%s' cannot hold %s codec '%s'",
			       container, kind, codec);
	return 0;
}

/* The opening of a stream's section ('video', 'audio'): an object of
 * `known` keys whose codec, if given, is one of `codecs` (into *codec).
 * Returns 0 or -1. */
static int stream_section(const json_t *o, const char *name,
			  const char *const *known, const char *const *codecs,
			  const char **codec, struct err *err)
{
	if (!json_is_object(o))
		return err_set(err, ERR_INVALID, "payload field '%s' must be an object",
			       name);
	if (only(o, name, known, err) < 0 ||
	    choice(o, name, "codec", codecs, codec, err) < 0)
		return -1;
	return 0;
}

static int check_video(const json_t *v, const struct job_container *b,
		       const char **codec, struct err *err)
{
	static const char *const known[] = {
		"codec", "width", "height", "crf", "bitrate", "preset", "fps", NULL
	};
	static const char *const codecs[] = { "h264", "vp9", "copy", "none", NULL };
	static const char *const presets[] = {
		"ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
		"slow", "slower", "veryslow", NULL
	};
	const char *preset;
	double w = 0, h = 0, crf, br, fps;
	int has_crf, has_br;

	if (stream_section(v, "video", known, codecs, codec, err) < 0 ||
	    num(v, "video", "width", 2, 16384, 1, &w, err) < 0 ||
	    num(v, "video", "height", 2, 16384, 1, &h, err) < 0 ||
	    (has_crf = num(v, "video", "crf", 0,
			   !strcmp(*codec, "vp9") ? 63 : 51, 1, &crf, err)) < 0 ||
	    (has_br = num(v, "video", "bitrate", 10e3, 200e6, 1, &br, err)) < 0 ||
	    choice(v, "video", "preset", presets, &preset, err) < 0 ||
	    num(v, "video", "fps", 1, 240, 0, &fps, err) < 0)
		return -1;
	if ((int64_t)w % 2 || (int64_t)h % 2)
		return err_set(err, ERR_INVALID, "payload field 'video.%s' must be even",
			       (int64_t)w % 2 ? "width" : "height");
	if (has_crf && has_br)
		return err_set(err, ERR_INVALID, "payload fields 'video.crf' and "
			       "'video.bitrate' exclude each other");
	if (codec_fits(v, "video", *codec, b->video, b->name, err) < 0)
		return -1;
	if (!*b->video && !strcmp(*codec, "copy"))
		return err_set(err, ERR_INVALID,
			       "container '%s' is audio only (video codec 'copy')",
			       b->name);
	return 0;
}

static int check_audio(const json_t *a, const struct job_container *b,
		       const char **codec, struct err *err)
{
	static const char *const known[] = {
		"codec", "bitrate", "sample_rate", "channels", NULL
	};
	static const char *const codecs[] = { "aac", "opus", "mp3", "copy", "none", NULL };
	double d;

	if (stream_section(a, "audio", known, codecs, codec, err) < 0 ||
	    num(a, "audio", "bitrate", 6e3, 1e6, 1, &d, err) < 0 ||
	    num(a, "audio", "sample_rate", 8000, 192000, 1, &d, err) < 0 ||
	    num(a, "audio", "channels", 1, 8, 1, &d, err) < 0)
		return -1;
	return codec_fits(a, "audio", *codec, b->audio, b->name, err);
}

int job_check_media_transcode(const json_t *payload, struct err *err)
{
	static const char *const known[] = {
		"input", "output", "container", "video", "audio", "start_s",
		"duration_s", NULL
	};
	static const char *const names[] = {
		"mp4", "webm", "mkv", "mov", "m4a", "mp3", "ogg", NULL
	};
	const char *container = "mp4", *vc = NULL, *ac = NULL;
	const struct job_container *b;
	const json_t *v, *a;
	double d;

	if (object_payload(payload, err) < 0 || only(payload, "", known, err) < 0 ||
	    url(payload, "input", err) < 0 || url(payload, "output", err) < 0 ||
	    choice(payload, "", "container", names, &container, err) < 0 ||
	    num(payload, "", "start_s", 0, 1e6, 0, &d, err) < 0 ||
	    num(payload, "", "duration_s", 0.001, 1e6, 0, &d, err) < 0)
		return -1;
	b = job_container_find(container);
	vc = b->vdef;
	ac = b->adef;
	if ((v = get(payload, "video")) && check_video(v, b, &vc, err) < 0)
		return -1;
	if ((a = get(payload, "audio")) && check_audio(a, b, &ac, err) < 0)
		return -1;
	if (!strcmp(vc, "none") && !strcmp(ac, "none"))
		return err_set(err, ERR_INVALID,
			       "payload asks for no video and no audio: nothing to write");
	return 0;
}
