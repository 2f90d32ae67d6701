/* Unit tests of internal/media on clips made by media_synth_file: probe,
 * thumbnail (size and decoded colour at a known time), transcode (codecs,
 * duration and size re-probed, trim, copy, faststart), cancel and timeout
 * (no partial output), isolation (crash, hang, cpu limit), bad inputs,
 * and the job handlers through fetch's file:// URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "job/job.h"
#include "media/media.h"
#include "../unit.h"

static char dir[PATH_MAX];
static char clip[300];      /* 3 s 320x240 25 fps, H.264 + AAC, MP4 */
static char clip_fs[300];   /* the same, faststart, 6 s */

static const char *path(const char *name)
{
	static char p[8][400];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static int exists(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0;
}

static void write_bytes(const char *p, const void *data, size_t n)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static uint8_t *read_file(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	uint8_t *b;
	long sz;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)sz + 1);
	assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	*n = (size_t)sz;
	return b;
}

static int near_colour(uint32_t a, uint32_t b, int tol)
{
	int s;

	for (s = 0; s < 24; s += 8)
		if (abs((int)((a >> s) & 255) - (int)((b >> s) & 255)) > tol)
			return 0;
	return 1;
}

static int setup(void **state)
{
	struct media_synth_opts o = {
		.duration_s = 3, .width = 320, .height = 240, .fps = 25, .audio = 1,
	};
	struct err e;

	(void)state;
	if (unit_tmpdir(dir, "media") < 0)
		return -1;
	snprintf(clip, sizeof(clip), "%s/clip.mp4", dir);
	snprintf(clip_fs, sizeof(clip_fs), "%s/clip_fs.mp4", dir);
	if (media_synth_file(clip, &o, &e) < 0) {
		fprintf(stderr, "synth: %s\n", e.msg);
		return -1;
	}
	o.duration_s = 6;
	o.faststart = 1;
	if (media_synth_file(clip_fs, &o, &e) < 0)
		return -1;
	job_settings.data_dir = dir;
	job_settings.tmp_dir = dir;
	media_bind_jobs();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unit_rmtree(dir);
}

static const json_t *stream_of(const json_t *probe, const char *type)
{
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(probe, "streams"), i, s)
		if (!strcmp(json_string_value(json_object_get(s, "type")), type))
			return s;
	return NULL;
}

static double num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* ---- probe ----------------------------------------------------------- */

static void test_probe_synth(void **state)
{
	json_t *p = NULL;
	const json_t *v, *a;
	struct err e;

	(void)state;
	assert_int_equal(media_probe_file(clip, NULL, &p, &e), 0);
	assert_true(strstr(str(p, "format"), "mp4") != NULL);
	assert_true(fabs(num(p, "duration_s") - 3) < 0.1);
	assert_true(num(p, "size_bytes") > 1000);
	v = stream_of(p, "video");
	a = stream_of(p, "audio");
	assert_non_null(v);
	assert_non_null(a);
	assert_string_equal(str(v, "codec"), "h264");
	assert_int_equal((int)num(v, "width"), 320);
	assert_int_equal((int)num(v, "height"), 240);
	assert_true(fabs(num(v, "fps") - 25) < 0.01);
	assert_string_equal(str(v, "pix_fmt"), "yuv420p");
	assert_true(json_is_null(json_object_get(v, "sample_rate")));
	assert_string_equal(str(a, "codec"), "aac");
	assert_int_equal((int)num(a, "sample_rate"), 48000);
	assert_int_equal((int)num(a, "channels"), 2);
	assert_true(json_is_object(json_object_get(p, "tags")));
	json_decref(p);
}

static void test_probe_buffer(void **state)
{
	size_t n;
	uint8_t *b = read_file(clip, &n);
	json_t *p = NULL;
	struct err e;

	(void)state;
	assert_int_equal(media_probe_buffer(b, n, &p, &e), 0);
	assert_int_equal((int)num(p, "size_bytes"), (int)n);
	assert_non_null(stream_of(p, "video"));
	json_decref(p);
	assert_fails(media_probe_buffer(b, 100, &p, &e), &e, ERR_INVALID);
	assert_int_equal(media_probe_buffer((const uint8_t *)"hello", 5, &p, &e), -1);
	free(b);
}

/* ---- thumbnail ------------------------------------------------------- */

/* The thumbnail of the clip that `o` asks for, written to `name` in the
 * scratch folder: the job's result (release it), the file in *out. */
static json_t *thumb(const struct media_thumb_opts *o, const char *name, const char **out)
{
	json_t *r = NULL;
	struct err e;

	*out = path(name);
	if (media_thumbnail_file(clip, *out, o, NULL, &r, &e) < 0)
		fail_msg("%s: %s", name, e.msg);
	return r;
}

/* The colour of the pixel at x,y of image `file`, its size in *w, *h. */
static uint32_t pixel(const char *file, int x, int y, int *w, int *h)
{
	struct err e;
	uint32_t rgb;

	if (media_image_pixel(file, x, y, &rgb, w, h, &e) < 0)
		fail_msg("%s: %s", file, e.msg);
	return rgb;
}

static void test_thumbnail_colour(void **state)
{
	struct media_thumb_opts o = { .at_s = 2.5, .width = 160, .format = MEDIA_JPEG };
	const char *out;
	json_t *r;
	uint32_t rgb;
	int w, h;

	(void)state;
	r = thumb(&o, "t.jpg", &out);
	assert_int_equal((int)num(r, "width"), 160);
	assert_int_equal((int)num(r, "height"), 120); /* aspect kept */
	assert_true(num(r, "bytes") > 100);
	json_decref(r);
	/* Below the frame-number bar the frame is the colour of second 2. */
	rgb = pixel(out, 80, 90, &w, &h);
	assert_int_equal(w, 160);
	assert_int_equal(h, 120);
	assert_true(near_colour(rgb, media_synth_colour(2), 24));
	assert_false(near_colour(rgb, media_synth_colour(1), 24));

	/* At 0.2 s: second 0; PNG keeps colours nearly exact. */
	o.at_s = 0.2;
	o.width = 0;
	o.height = 60;
	o.format = MEDIA_PNG;
	r = thumb(&o, "t.png", &out);
	assert_int_equal((int)num(r, "width"), 80);
	json_decref(r);
	rgb = pixel(out, 40, 50, &w, &h);
	assert_int_equal(h, 60);
	assert_true(near_colour(rgb, media_synth_colour(0), 8));
}

static void test_thumbnail_webp_and_end(void **state)
{
	struct media_thumb_opts o = { .at_s = 99, .format = MEDIA_WEBP };
	const char *out;
	json_t *r;
	int w, h;

	(void)state;
	/* Past the end: the last frame (second 2). */
	r = thumb(&o, "t.webp", &out);
	assert_int_equal((int)num(r, "width"), 320);
	json_decref(r);
	assert_true(near_colour(pixel(out, 160, 200, &w, &h), media_synth_colour(2), 24));
}

/* ---- transcode ------------------------------------------------------- */

static json_t *transcode(const char *in, const char *out,
			 const struct media_transcode_opts *o, struct err *e)
{
	json_t *r = NULL;

	if (media_transcode_file(in, out, o, NULL, &r, e) < 0) {
		fprintf(stderr, "transcode: %s\n", e->msg);
		return NULL;
	}
	return r;
}

static void test_transcode_mp4(void **state)
{
	struct media_transcode_opts o;
	const char *out = path("o.mp4");
	json_t *r, *p = NULL;
	struct err e;
	uint8_t *b;
	size_t n, i, moov = 0, mdat = 0;

	(void)state;
	media_transcode_opts_init(&o);
	snprintf(o.video.preset, sizeof(o.video.preset), "veryfast");
	o.video.width = 160;
	r = transcode(clip, out, &o, &e);
	assert_non_null(r);
	assert_string_equal(str(json_object_get(r, "video"), "codec"), "h264");
	assert_int_equal((int)num(json_object_get(r, "video"), "height"), 120);
	assert_string_equal(str(json_object_get(r, "audio"), "codec"), "aac");
	assert_true(fabs(num(r, "duration_s") - 3) < 0.1);
	json_decref(r);
	/* Re-probed on our own, and faststart: moov before mdat. */
	assert_int_equal(media_probe_file(out, NULL, &p, &e), 0);
	assert_int_equal((int)num(stream_of(p, "video"), "width"), 160);
	json_decref(p);
	b = read_file(out, &n);
	for (i = 4; i + 4 <= n && (!moov || !mdat); i++) {
		if (!moov && !memcmp(b + i, "moov", 4))
			moov = i;
		if (!mdat && !memcmp(b + i, "mdat", 4))
			mdat = i;
	}
	free(b);
	assert_true(moov > 0 && mdat > 0 && moov < mdat);
}

static void test_transcode_webm_trim(void **state)
{
	struct media_transcode_opts o;
	struct media_thumb_opts th = { .at_s = 0.5, .format = MEDIA_PNG };
	const char *out = path("o.webm");
	json_t *r;
	struct err e;
	uint32_t rgb;
	int w, h;

	(void)state;
	media_transcode_opts_init(&o);
	snprintf(o.container, sizeof(o.container), "webm");
	snprintf(o.video.preset, sizeof(o.video.preset), "ultrafast");
	o.video.height = 120;
	o.start_s = 1;
	o.duration_s = 1;
	r = transcode(clip, out, &o, &e);
	assert_non_null(r);
	assert_string_equal(str(json_object_get(r, "video"), "codec"), "vp9");
	assert_string_equal(str(json_object_get(r, "audio"), "codec"), "opus");
	assert_int_equal((int)num(json_object_get(r, "video"), "width"), 160);
	assert_true(fabs(num(r, "duration_s") - 1) < 0.1);
	json_decref(r);
	/* Half a second into the trimmed clip is second 1 of the source. */
	assert_int_equal(media_thumbnail_file(out, path("w.png"), &th, NULL, &r, &e), 0);
	json_decref(r);
	assert_int_equal(media_image_pixel(path("w.png"), 80, 100, &rgb, &w, &h, &e), 0);
	assert_true(near_colour(rgb, media_synth_colour(1), 24));
}

static void test_transcode_audio_only(void **state)
{
	static const char *const boxes[][2] = {
		{ "m4a", "aac" }, { "mp3", "mp3" }, { "ogg", "opus" },
	};
	struct media_transcode_opts o;
	json_t *r;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		char name[32];

		media_transcode_opts_init(&o);
		snprintf(o.container, sizeof(o.container), "%s", boxes[i][0]);
		o.audio.channels = 1;
		snprintf(name, sizeof(name), "a.%s", boxes[i][0]);
		r = transcode(clip, path(name), &o, &e);
		assert_non_null(r);
		assert_true(json_is_null(json_object_get(r, "video")));
		assert_string_equal(str(json_object_get(r, "audio"), "codec"), boxes[i][1]);
		assert_int_equal((int)num(json_object_get(r, "audio"), "channels"), 1);
		assert_true(fabs(num(r, "duration_s") - 3) < 0.2);
		json_decref(r);
	}
}

static void test_transcode_copy_fps(void **state)
{
	struct media_transcode_opts o;
	json_t *r;
	struct err e;

	(void)state;
	media_transcode_opts_init(&o);
	snprintf(o.container, sizeof(o.container), "mkv");
	snprintf(o.video.codec, sizeof(o.video.codec), "copy");
	snprintf(o.audio.codec, sizeof(o.audio.codec), "copy");
	r = transcode(clip, path("c.mkv"), &o, &e);
	assert_non_null(r);
	assert_int_equal((int)num(json_object_get(r, "video"), "width"), 320);
	assert_true(fabs(num(r, "duration_s") - 3) < 0.1);
	json_decref(r);

	media_transcode_opts_init(&o);
	snprintf(o.video.preset, sizeof(o.video.preset), "ultrafast");
	snprintf(o.audio.codec, sizeof(o.audio.codec), "none");
	o.video.fps = 10;
	o.video.crf = 30;
	r = transcode(clip, path("f.mp4"), &o, &e);
	assert_non_null(r);
	assert_true(fabs(num(json_object_get(r, "video"), "fps") - 10) < 0.01);
	assert_true(json_is_null(json_object_get(r, "audio")));
	json_decref(r);

	/* A container that cannot hold the codec. */
	media_transcode_opts_init(&o);
	snprintf(o.container, sizeof(o.container), "webm");
	snprintf(o.video.codec, sizeof(o.video.codec), "h264");
	assert_fails(media_transcode_file(clip, path("bad.webm"), &o, NULL, &r, &e),
	             &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "cannot hold"));
	assert_false(exists(path("bad.webm")));
}

/* ---- cancel and timeout ------------------------------------------------ */

static atomic_int cancel_flag;
static int progress_calls;

static void cancel_on_progress(void *opaque, double pct, const char *stage)
{
	(void)opaque;
	(void)stage;
	progress_calls++;
	if (pct > 0)
		atomic_store(&cancel_flag, 1);
}

static int work_transcode(void *arg, const struct media_ctl *ctl,
			  json_t **out, struct err *err)
{
	struct media_transcode_opts o;

	media_transcode_opts_init(&o);
	snprintf(o.video.preset, sizeof(o.video.preset), "veryslow");
	return media_transcode_file(clip_fs, arg, &o, ctl, out, err);
}

static void test_cancel_removes_output(void **state)
{
	struct media_ctl ctl = { &cancel_flag, 0, cancel_on_progress, NULL };
	const char *out = path("cancel.mp4");
	json_t *r = NULL;
	struct err e;
	int64_t t0;

	(void)state;
	/* In process. */
	atomic_store(&cancel_flag, 0);
	progress_calls = 0;
	assert_fails(work_transcode((void *)out, &ctl, &r, &e), &e, ERR_CANCELLED);
	assert_true(progress_calls > 0);
	assert_false(exists(out));
	/* In a child: the cancel set here reaches it as SIGTERM. */
	atomic_store(&cancel_flag, 0);
	progress_calls = 0;
	t0 = clock_mono_us();
	assert_fails(media_isolate(work_transcode, (void *)out, out, &ctl, &r, &e),
	             &e, ERR_CANCELLED);
	assert_true(progress_calls > 0);
	assert_true(clock_mono_us() - t0 < 5000000);
	assert_false(exists(out));
}

static void test_timeout(void **state)
{
	struct media_ctl ctl = { NULL, 0, NULL, NULL };
	const char *out = path("timeout.mp4");
	json_t *r = NULL;
	struct err e;

	(void)state;
	ctl.deadline_us = clock_mono_us() + 150000;
	assert_fails(media_isolate(work_transcode, (void *)out, out, &ctl, &r, &e),
	             &e, ERR_TIMEOUT);
	assert_string_equal(e.msg, "timed out");
	assert_false(exists(out));
}

/* ---- isolation --------------------------------------------------------- */

static int work_crash(void *arg, const struct media_ctl *ctl, json_t **out,
		      struct err *err)
{
	(void)arg; (void)ctl; (void)out; (void)err;
	raise(SIGSEGV);
	return -1;
}

static volatile unsigned long spin_sink;

static int work_hang(void *arg, const struct media_ctl *ctl, json_t **out,
		     struct err *err)
{
	(void)arg; (void)ctl; (void)out; (void)err;
	while (!spin_sink)
		pause();
	return -1;
}

static int work_spin(void *arg, const struct media_ctl *ctl, json_t **out,
		     struct err *err)
{
	(void)arg; (void)ctl; (void)out; (void)err;
	while (spin_sink || !spin_sink)
		spin_sink++;
	return -1;
}

static int work_probe(void *arg, const struct media_ctl *ctl, json_t **out,
		      struct err *err)
{
	return media_probe_file(arg, ctl, out, err);
}

static void test_isolate(void **state)
{
	struct media_ctl ctl = { NULL, 0, NULL, NULL };
	struct media_limits saved = media_limits;
	json_t *r = NULL;
	struct err e;
	int64_t t0;

	(void)state;
	assert_int_equal(media_isolate(work_probe, clip, NULL, NULL, &r, &e), 0);
	assert_non_null(stream_of(r, "audio"));
	json_decref(r);

	write_bytes(path("crash.out"), "x", 1);
	assert_int_equal(media_isolate(work_crash, NULL, path("crash.out"), NULL, &r, &e), -1);
	assert_string_equal(e.msg, "decoder crashed: signal 11");
	assert_int_equal(e.code, ERR_INTERNAL);
	assert_false(exists(path("crash.out"))); /* cleanup file removed */

	/* A hang that ignores SIGTERM is killed after the grace. */
	media_limits.kill_grace_s = 0.2;
	ctl.deadline_us = clock_mono_us() + 100000;
	t0 = clock_mono_us();
	assert_fails(media_isolate(work_hang, NULL, NULL, &ctl, &r, &e), &e, ERR_TIMEOUT);
	assert_true(clock_mono_us() - t0 < 2000000);

	/* A busy loop meets the CPU limit. */
	media_limits.cpu_s = 1;
	assert_fails(media_isolate(work_spin, NULL, NULL, NULL, &r, &e), &e, ERR_TOOLARGE);
	assert_non_null(strstr(e.msg, "cpu limit"));
	media_limits = saved;
}

/* media_isolate_copy: one child per thread serves job after job; a crash
 * is the job's alone and the child is replaced at once; the limits hold in
 * a reused child. */
static int work_pid(void *arg, const struct media_ctl *ctl, json_t **out,
		    struct err *err)
{
	(void)arg; (void)ctl; (void)err;
	*out = json_pack("{s:i}", "pid", (int)getpid());
	return 0;
}

static int work_alloc(void *arg, const struct media_ctl *ctl, json_t **out,
		      struct err *err)
{
	size_t n = *(const size_t *)arg;
	char *p = malloc(n);

	(void)ctl;
	if (!p)
		return err_set(err, ERR_TOOLARGE, "out of memory");
	memset(p, 1, n);
	*out = json_pack("{s:i}", "sum", p[n - 1]);
	free(p);
	return 0;
}

/* The pids of this thread's children (needs CONFIG_PROC_CHILDREN). */
static void children(char *out, size_t n)
{
	char f[64];
	FILE *fp;

	snprintf(f, sizeof(f), "/proc/self/task/%d/children", (int)gettid());
	fp = fopen(f, "r");
	assert_non_null(fp);
	out[0] = ' ';
	if (!fgets(out + 1, (int)n - 2, fp))
		out[1] = '\0';
	fclose(fp);
	strcat(out, " ");
}

static int copy_pid(void)
{
	json_t *r = NULL;
	struct err e;
	int pid;

	assert_int_equal(media_isolate_copy(work_pid, "", 1, NULL, NULL, &r, &e), 0);
	pid = (int)json_integer_value(json_object_get(r, "pid"));
	json_decref(r);
	return pid;
}

static void test_isolate_spare(void **state)
{
	struct media_limits saved = media_limits;
	char kids[4096], me[32];
	json_t *r = NULL;
	struct err e;
	size_t big = (size_t)256 << 20;
	int first, pid;

	(void)state;
	first = copy_pid();
	children(kids, sizeof(kids));
	snprintf(me, sizeof(me), " %d ", first);
	assert_non_null(strstr(kids, me)); /* still there, waiting */
	assert_int_equal(copy_pid(), first); /* and reused */

	/* a crash is the job's alone; its replacement waits already */
	assert_int_equal(media_isolate_copy(work_crash, "", 1, NULL, NULL, &r, &e), -1);
	assert_string_equal(e.msg, "decoder crashed: signal 11");
	children(kids, sizeof(kids));
	assert_null(strstr(kids, me));
	pid = copy_pid();
	assert_int_not_equal(pid, first);
	snprintf(me, sizeof(me), " %d ", pid);
	assert_non_null(strstr(kids, me));

	/* the CPU limit holds for each job of a reused child */
	media_limits.cpu_s = 1;
	pid = copy_pid();
	assert_int_equal(copy_pid(), pid);
	assert_int_equal(media_isolate_copy(work_spin, "", 1, NULL, NULL, &r, &e), -1);
	assert_int_equal(e.code, ERR_TOOLARGE);
	assert_non_null(strstr(e.msg, "cpu limit"));
	media_limits = saved;
#ifndef __SANITIZE_ADDRESS__
	/* and the memory limit */
	media_limits.as_bytes = (int64_t)128 << 20;
	pid = copy_pid();
	assert_int_equal(media_isolate_copy(work_alloc, &big, sizeof(big), NULL, NULL, &r, &e), -1);
	assert_string_equal(e.msg, "out of memory");
	assert_int_equal(copy_pid(), pid); /* a failed job is not a dead child */
	media_limits = saved;
#endif
	big = 1 << 20;
	assert_int_equal(media_isolate_copy(work_alloc, &big, sizeof(big), NULL, NULL, &r, &e), 0);
	json_decref(r);
}

/* A reused child of an unprivileged worker (the image runs as uid 10001)
 * gives each job its own CPU allowance: two jobs of 0.6 s each under a 1 s
 * limit both succeed in one child, though together they used more. */
static int work_burn(void *arg, const struct media_ctl *ctl, json_t **out,
		     struct err *err)
{
	struct timespec t;
	int64_t start, now;

	(void)arg; (void)ctl; (void)err;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	start = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
	do {
		spin_sink++;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
		now = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
	} while (now - start < 600000000);
	*out = json_pack("{s:i}", "pid", (int)getpid());
	return 0;
}

/* in a thread of its own: a fresh spare, not the copy fork() made of the
 * test thread's */
static void *burn_twice(void *arg)
{
	json_t *r = NULL;
	struct err e;
	int pid[2], i;

	(void)arg;
	media_limits.cpu_s = 1;
	for (i = 0; i < 2; i++) {
		if (media_isolate_copy(work_burn, "", 1, NULL, NULL, &r, &e) < 0) {
			fprintf(stderr, "job %d: %s\n", i, e.msg);
			return (void *)1;
		}
		pid[i] = (int)json_integer_value(json_object_get(r, "pid"));
		json_decref(r);
	}
	media_isolate_done();
	return (void *)(intptr_t)(pid[0] == pid[1] ? 0 : 2);
}

static void test_isolate_spare_unprivileged(void **state)
{
	pthread_t th;
	void *res;
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (getuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
				      setresuid(65534, 65534, 65534) < 0))
			_exit(3);
		if (pthread_create(&th, NULL, burn_twice, NULL) != 0 ||
		    pthread_join(th, &res) != 0)
			_exit(4);
		_exit((int)(intptr_t)res);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		skip(); /* cannot drop privileges here */
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- bad inputs -------------------------------------------------------- */

static void expect_invalid(const char *in, const char *needle)
{
	struct media_thumb_opts th = { .at_s = 1, .format = MEDIA_JPEG };
	struct media_transcode_opts o;
	json_t *r = NULL;
	struct err e;

	err_clear(&e);
	assert_int_equal(media_probe_file(in, NULL, &r, &e) < 0 ||
			 media_thumbnail_file(in, path("bad.jpg"), &th, NULL, &r, &e) < 0 ||
			 (media_transcode_opts_init(&o),
			  media_transcode_file(in, path("bad.mp4"), &o, NULL, &r, &e) < 0), 1);
	if (e.code != ERR_INVALID || (needle && !strstr(e.msg, needle)))
		fail_msg("input %s: got '%s' (%s)", in, e.msg, err_code_name(e.code));
	assert_false(exists(path("bad.jpg")));
	assert_false(exists(path("bad.mp4")));
	/* Through a child too: the same readable error. */
	assert_int_equal(media_isolate(work_probe, (void *)in, NULL, NULL, &r, &e) < 0 ||
			 (json_decref(r), 1), 1);
}

static void test_bad_inputs(void **state)
{
	size_t n, i;
	uint8_t *b = read_file(clip, &n);
	uint8_t *fs;
	size_t nfs;
	char y4m[128];
	int len;

	(void)state;
	write_bytes(path("empty.mp4"), "", 0);
	expect_invalid(path("empty.mp4"), "empty");
	write_bytes(path("text.mp4"), "hello, this is not a video\n", 27);
	expect_invalid(path("text.mp4"), "not a media file");
	/* The index (moov) of a plain MP4 is at the end: cut off. */
	write_bytes(path("trunc.mp4"), b, n / 2);
	expect_invalid(path("trunc.mp4"), "not a media file");
	/* Absurd header: a 100000x100000 picture. */
	len = snprintf(y4m, sizeof(y4m), "YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n");
	write_bytes(path("huge.y4m"), y4m, (size_t)len);
	expect_invalid(path("huge.y4m"), "not a media file");
	len = snprintf(y4m, sizeof(y4m), "YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n");
	write_bytes(path("big.y4m"), y4m, (size_t)len);
	expect_invalid(path("big.y4m"), "absurd picture size 16000x16000");
	/* Corrupt: the header bytes overwritten. */
	for (i = 0; i < 64 && i < n; i++)
		b[i] = (uint8_t)(i * 37);
	write_bytes(path("corrupt.mp4"), b, n);
	expect_invalid(path("corrupt.mp4"), NULL);
	free(b);

	/* Faststart and cut: headers fine, the data ends early. */
	fs = read_file(clip_fs, &nfs);
	write_bytes(path("trunc_fs.mp4"), fs, nfs / 3);
	{
		struct media_transcode_opts o;
		json_t *r = NULL;
		struct err e;

		media_transcode_opts_init(&o);
		snprintf(o.video.preset, sizeof(o.video.preset), "ultrafast");
		assert_fails(media_transcode_file(path("trunc_fs.mp4"), path("t.mp4"), &o, NULL, &r, &e),
		             &e, ERR_INVALID);
		assert_non_null(strstr(e.msg, "is truncated"));
		assert_false(exists(path("t.mp4")));
	}
	/* Corrupt data in the middle of the stream. */
	for (i = nfs / 4; i < nfs - 100; i += 7)
		fs[i] ^= 0x5a;
	write_bytes(path("garbled.mp4"), fs, nfs);
	{
		struct media_transcode_opts o;
		json_t *r = NULL;
		struct err e;

		media_transcode_opts_init(&o);
		snprintf(o.video.preset, sizeof(o.video.preset), "ultrafast");
		assert_int_equal(media_isolate(work_probe, (void *)path("garbled.mp4"),
					       NULL, NULL, &r, &e), 0);
		json_decref(r);
		assert_fails(media_transcode_file(path("garbled.mp4"), path("g.mp4"), &o, NULL, &r, &e),
		             &e, ERR_INVALID);
		assert_false(exists(path("g.mp4")));
	}
	free(fs);
}

/* ---- payload checks -------------------------------------------------------- */

static void check_payload(const char *type, const char *payload,
			  const char *want)
{
	struct err e;
	int rc;

	err_clear(&e);
	rc = job_check(type, payload, &e);
	if (!want && rc != 0)
		fail_msg("%s %s: unexpected error '%s'", type, payload, e.msg);
	if (want && (rc == 0 || !strstr(e.msg, want)))
		fail_msg("%s %s: want '%s', got '%s'", type, payload, want,
			 rc == 0 ? "ok" : e.msg);
}

static void test_checks(void **state)
{
	(void)state;
	check_payload("media.probe", "{\"input\":\"file://a.mp4\"}", NULL);
	check_payload("media.probe", "{}", "'input' is required");
	check_payload("media.probe", "{\"input\":\"ftp://x\"}", "'input' must be a file://");
	check_payload("media.probe", "{\"input\":\"\"}", "'input' is empty");
	check_payload("media.probe", "{\"input\":\"file://a\",\"x\":1}", "unknown payload field 'x'");
	check_payload("media.probe", "[]", "JSON object");
	check_payload("media.thumbnail",
		      "{\"input\":\"file://a.mp4\",\"output\":\"s3://b/k.jpg\","
		      "\"at_s\":3.5,\"width\":320,\"format\":\"webp\"}", NULL);
	check_payload("media.thumbnail", "{\"input\":\"file://a\"}", "'output' is required");
	check_payload("media.thumbnail", "{\"input\":\"file://a\",\"output\":\"file://b\",\"at_s\":-1}",
		      "'at_s' must be from 0");
	check_payload("media.thumbnail", "{\"input\":\"file://a\",\"output\":\"file://b\",\"width\":1.5}",
		      "'width' must be a whole number");
	check_payload("media.thumbnail", "{\"input\":\"file://a\",\"output\":\"file://b\",\"format\":\"gif\"}",
		      "'format' must be one of: jpeg, png, webp");
	check_payload("media.thumbnail", "{\"input\":\"file://a\",\"output\":\"file://b\",\"at\":1}",
		      "unknown payload field 'at'");
	check_payload("media.transcode",
		      "{\"input\":\"https://h/a.mov\",\"output\":\"file://o.webm\",\"container\":\"webm\","
		      "\"video\":{\"codec\":\"vp9\",\"width\":640,\"crf\":40,\"preset\":\"fast\",\"fps\":30},"
		      "\"audio\":{\"codec\":\"opus\",\"bitrate\":96000,\"sample_rate\":48000,\"channels\":2},"
		      "\"start_s\":1,\"duration_s\":5}", NULL);
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b.mp3\",\"container\":\"mp3\"}", NULL);
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\",\"container\":\"avi\"}",
		      "'container' must be one of: mp4, webm");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\",\"video\":{\"codec\":\"h265\"}}",
		      "'video.codec' must be one of");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\",\"container\":\"webm\","
		      "\"video\":{\"codec\":\"h264\"}}", "container 'webm' cannot hold video codec 'h264'");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\",\"container\":\"m4a\","
		      "\"video\":{\"codec\":\"h264\"}}", "audio only");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"crf\":60}}", "'video.crf' must be from 0 to 51");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"width\":641}}", "'video.width' must be even");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"crf\":20,\"bitrate\":1000000}}", "exclude each other");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"preset\":\"ludicrous\"}}", "'video.preset' must be one of");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"codec\":\"copy\",\"width\":320}}", "encodes nothing");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"audio\":{\"channels\":9}}", "'audio.channels' must be from 1 to 8");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"audio\":{\"sample_rate\":\"x\"}}", "'audio.sample_rate' must be a number");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":{\"codec\":\"none\"},\"audio\":{\"codec\":\"none\"}}", "nothing to write");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"duration_s\":0}", "'duration_s' must be from");
	check_payload("media.transcode", "{\"input\":\"file://a\",\"output\":\"file://b\","
		      "\"video\":5}", "'video' must be an object");
}

/* ---- job handlers ---------------------------------------------------------- */

struct seen {
	int calls;
	double last;
	char stages[128];
};

static void on_progress(void *opaque, double pct, const char *stage)
{
	struct seen *s = opaque;

	s->calls++;
	s->last = pct;
	if (stage && !strstr(s->stages, stage) &&
	    strlen(s->stages) + strlen(stage) + 2 < sizeof(s->stages)) {
		strcat(s->stages, stage);
		strcat(s->stages, " ");
	}
}

static int run_job(const char *type, const char *payload,
		   struct job_outcome *out, struct seen *seen)
{
	atomic_int cancel = 0;
	struct job_run run;
	int rc;

	memset(&run, 0, sizeof(run));
	memset(out, 0, sizeof(*out));
	run.id = "1";
	run.queue = "default";
	run.type = type;
	run.payload = json_loads(payload, 0, NULL);
	run.attempt = 1;
	run.max_attempts = 3;
	run.timeout_s = 60;
	run.cancel = &cancel;
	run.progress = on_progress;
	run.opaque = seen;
	assert_non_null(run.payload);
	rc = job_execute(&run, out);
	json_decref(run.payload);
	return rc;
}

static void test_jobs(void **state)
{
	struct job_outcome out;
	struct seen seen;
	uint32_t rgb;
	struct err e;
	int w, h;

	(void)state;
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(run_job("media.probe", "{\"input\":\"file://clip.mp4\"}", &out, &seen), 0);
	assert_true(fabs(num(out.result, "duration_s") - 3) < 0.1);
	job_outcome_release(&out);

	memset(&seen, 0, sizeof(seen));
	if (run_job("media.thumbnail", "{\"input\":\"file://clip.mp4\",\"output\":"
		    "\"file://thumbs/a.jpg\",\"at_s\":1.5,\"height\":60}", &out, &seen) < 0)
		fail_msg("thumbnail job: %s", out.error);
	assert_string_equal(str(out.result, "output"), "file://thumbs/a.jpg");
	assert_int_equal((int)num(out.result, "width"), 80);
	job_outcome_release(&out);
	assert_int_equal(media_image_pixel(path("thumbs/a.jpg"), 40, 50, &rgb, &w, &h, &e), 0);
	assert_true(near_colour(rgb, media_synth_colour(1), 24));
	assert_true(seen.last == 100);

	memset(&seen, 0, sizeof(seen));
	if (run_job("media.transcode", "{\"input\":\"file://clip_fs.mp4\",\"output\":"
		    "\"file://out/t.mp4\",\"video\":{\"width\":160,\"preset\":\"ultrafast\"},"
		    "\"duration_s\":4}", &out, &seen) < 0)
		fail_msg("transcode job: %s", out.error);
	assert_true(fabs(num(out.result, "duration_s") - 4) < 0.1);
	job_outcome_release(&out);
	assert_true(exists(path("out/t.mp4")));
	assert_non_null(strstr(seen.stages, "download"));
	assert_non_null(strstr(seen.stages, "encode"));
	assert_non_null(strstr(seen.stages, "upload"));
	assert_true(seen.calls < 100);

	/* Failures: non-retryable, readable. */
	assert_int_equal(run_job("media.probe", "{\"input\":\"file://text.mp4\"}", &out, &seen), -1);
	assert_int_equal(out.retryable, 0);
	assert_non_null(strstr(out.error, "not a media file"));
	assert_int_equal(run_job("media.probe", "{\"input\":\"file://../etc/passwd\"}", &out, &seen), -1);
	assert_int_equal(out.retryable, 0);

	setenv("WAKEQ_MEDIA_FAULT", "crash", 1);
	assert_int_equal(run_job("media.thumbnail", "{\"input\":\"file://clip.mp4\",\"output\":"
				 "\"file://thumbs/c.jpg\"}", &out, &seen), -1);
	unsetenv("WAKEQ_MEDIA_FAULT");
	assert_string_equal(out.error, "decoder crashed: signal 11");
	assert_int_equal(out.retryable, 0);
	assert_false(exists(path("thumbs/c.jpg")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_synth),
		cmocka_unit_test(test_probe_buffer),
		cmocka_unit_test(test_thumbnail_colour),
		cmocka_unit_test(test_thumbnail_webp_and_end),
		cmocka_unit_test(test_transcode_mp4),
		cmocka_unit_test(test_transcode_webm_trim),
		cmocka_unit_test(test_transcode_audio_only),
		cmocka_unit_test(test_transcode_copy_fps),
		cmocka_unit_test(test_cancel_removes_output),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_isolate),
		cmocka_unit_test(test_isolate_spare),
		cmocka_unit_test(test_isolate_spare_unprivileged),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_jobs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
