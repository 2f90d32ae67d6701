/* media.h - media jobs with the FFmpeg libraries: probe, thumbnail,
 * transcode, and the synthetic test clip.
 *
 * Two layers:
 * - path-level functions (media_probe_file, media_thumbnail_file,
 *   media_transcode_file, media_synth_file) work on local files in the
 *   calling process. They block for as long as the work takes and stop
 *   promptly (FFmpeg's interrupt callback) once *ctl->cancel is set or
 *   ctl->deadline_us has passed. A failed or cancelled write removes its
 *   partial output.
 * - media_isolate runs any such function in a forked child under resource
 *   limits (CPU seconds, address space, file size, open files), relaying
 *   progress and the JSON result over a pipe; a crash or hang of the child
 *   fails the call, never the caller. The job handlers (media_bind_jobs)
 *   always decode untrusted input this way.
 *
 * Errors: ERR_INVALID for input that is not usable media (empty, corrupt,
 * truncated, not media, absurd sizes) and for impossible requests; these
 * never get better on retry. ERR_CANCELLED, ERR_TIMEOUT, ERR_IO (cannot
 * write), ERR_TOOLARGE (a resource limit hit), ERR_INTERNAL (a crash).
 * Messages name the file: "cannot open input 'a.mp4': invalid data found
 * when processing input".
 *
 * No FFmpeg type appears here; only this module includes FFmpeg headers.
 */
#ifndef WAKEQ_MEDIA_H
#define WAKEQ_MEDIA_H

#include "base/err.h"
#include "job/job.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

/* How a long media call is watched. Every member may be zero/NULL. The
 * progress callback is called from the calling thread (or, under
 * media_isolate, from the thread that called media_isolate), at most
 * about five times a second, with a percentage 0-100 and a stage name
 * ("decode", "encode"). */
struct media_ctl {
	atomic_int *cancel;  /* non-zero: stop now */
	int64_t deadline_us; /* clock_mono_us() value; 0 = none */
	void (*progress)(void *opaque, double percent, const char *stage);
	void *opaque;
};

/* ---- probe ----------------------------------------------------------- */

/* Probes `path`: container, duration, size, bit rate, streams and tags.
 * Returns 0 with *out set to a new object (caller owns)
 *   {format, duration_s, size_bytes, bit_rate, streams: [{index, type,
 *    codec, profile, width, height, fps, pix_fmt, sample_rate, channels,
 *    duration_s}], tags}
 * (members that do not apply to a stream are null), or -1 with err set
 * and *out untouched. */
int media_probe_file(const char *path, const struct media_ctl *ctl,
		     json_t **out, struct err *err);

/* Probes a file held in memory (the fuzz target's entry). Same result as
 * media_probe_file, with size_bytes = len. Never reads outside data. */
int media_probe_buffer(const uint8_t *data, size_t len, json_t **out,
		       struct err *err);

/* ---- thumbnail ------------------------------------------------------- */

enum media_image { MEDIA_JPEG, MEDIA_PNG, MEDIA_WEBP };

struct media_thumb_opts {
	double at_s;              /* time offset in seconds (>= 0) */
	int width, height;        /* 0 = derive from the other side, keeping
				   * the aspect ratio; both 0 = source size */
	enum media_image format;
};

/* Writes one frame of `in` at opts->at_s (seeking to the keyframe before
 * it and decoding forward; past the end, the last frame) to `out` as an
 * image. Returns 0 with *result = {output, width, height, bytes} (caller
 * owns; "output" is `out`), or -1 with err set and no file at `out`. */
int media_thumbnail_file(const char *in, const char *out,
			 const struct media_thumb_opts *opts,
			 const struct media_ctl *ctl, json_t **result,
			 struct err *err);

/* ---- transcode ------------------------------------------------------- */

#define MEDIA_NAME_MAX 16

/* Codec names as in the payload: video "h264", "vp9", "copy", "none";
 * audio "aac", "opus", "mp3", "copy", "none"; "" = the container's
 * default. Numbers: 0 = unset (keep the source's, or the encoder's
 * default). */
struct media_transcode_opts {
	char container[MEDIA_NAME_MAX]; /* mp4 webm mkv mov m4a mp3 ogg */
	struct {
		char codec[MEDIA_NAME_MAX];
		int width, height;      /* one side 0: keep the aspect ratio */
		int crf;                /* -1 = encoder default */
		int64_t bitrate;        /* bits per second */
		char preset[MEDIA_NAME_MAX]; /* x264 preset name */
		double fps;
	} video;
	struct {
		char codec[MEDIA_NAME_MAX];
		int64_t bitrate;
		int sample_rate;
		int channels;
	} audio;
	double start_s;                 /* trim start, 0 = from the start */
	double duration_s;              /* trim length, 0 = to the end */
};

/* Sets the defaults: container "mp4", codecs "" (container default),
 * crf -1, everything else 0. */
void media_transcode_opts_init(struct media_transcode_opts *o);

/* Transcodes `in` to `out`. MP4/MOV/M4A outputs are faststart. Progress
 * is the output's timestamp over the expected duration (stage "encode").
 * Returns 0 with *result = {output, duration_s, bytes, video: {codec,
 * width, height, fps} | null, audio: {codec, sample_rate, channels} |
 * null} from a probe of the written file (caller owns), or -1 with err
 * set and no file left at `out`. */
int media_transcode_file(const char *in, const char *out,
			 const struct media_transcode_opts *opts,
			 const struct media_ctl *ctl, json_t **result,
			 struct err *err);

/* ---- synthetic test media -------------------------------------------- */

/* A clip whose content is known: frame n of second s is a flat colour
 * media_synth_colour(s) with a white bar whose x position encodes the
 * frame number within the second; audio is a sine tone. */
struct media_synth_opts {
	double duration_s;  /* > 0 */
	int width, height;  /* even, >= 16 */
	int fps;            /* >= 1 */
	int audio;          /* add a stereo 48 kHz sine track (AAC in MP4/MOV/
			     * MKV, Opus in WebM) */
	double tone_hz;     /* 0 = 440 */
	int gop;            /* keyframe interval in frames, 0 = 2 s */
	int faststart;      /* MP4/MOV: index at the front */
	const char *preset; /* x264 preset, NULL = "veryfast" */
};

/* The flat RGB colour (0xRRGGBB) of second `s` of a synthetic clip. The
 * colours are far apart so that a decoded pixel identifies the second. */
uint32_t media_synth_colour(int s);

/* Writes a synthetic clip to `path`; the container follows the extension
 * (.mp4, .mov, .mkv, .webm). Video is H.264 (VP9 in WebM), yuv420p.
 * Returns 0 or -1 with err set (and no file left). */
int media_synth_file(const char *path, const struct media_synth_opts *opts,
		     struct err *err);

/* Reads the RGB colour at (x, y) of an image file (JPEG, PNG, WebP) and
 * its size; for tests. Returns 0 or -1 with err set. */
int media_image_pixel(const char *path, int x, int y, uint32_t *rgb,
		      int *width, int *height, struct err *err);

/* ---- isolation -------------------------------------------------------- */

/* Resource limits of an isolated child; 0 = no limit of that kind. */
struct media_limits {
	int64_t cpu_s;        /* RLIMIT_CPU, all threads together */
	int64_t as_bytes;     /* RLIMIT_AS (skipped under AddressSanitizer) */
	int64_t fsize_bytes;  /* RLIMIT_FSIZE: largest file written */
	int64_t nofile;       /* RLIMIT_NOFILE */
	double kill_grace_s;  /* cancel/timeout: SIGTERM, then SIGKILL */
};

/* The limits media_isolate applies; set once at start-up (defaults: 3600 s
 * CPU, 4 GiB address space, 16 GiB files, 64 files, 2 s grace). */
extern struct media_limits media_limits;

/* The work run in the child: fills *out (new reference) and returns 0, or
 * returns -1 with err set. */
typedef int (*media_work_fn)(void *arg, const struct media_ctl *ctl,
			     json_t **out, struct err *err);

/* Runs fn(arg, ...) in a forked child under media_limits. The child sees
 * a ctl whose cancel flag is raised by SIGTERM from this side and whose
 * progress is sent back here and passed to ctl->progress. When
 * *ctl->cancel is set or ctl->deadline_us passes, the child is asked to
 * stop (SIGTERM) and killed after kill_grace_s. `cleanup`, when not
 * NULL, is a file removed here after any failure (the child may have died
 * before removing its partial output); while the child runs, its mtime is
 * refreshed every FETCH_PART_TOUCH_S (a partial output in use is never
 * stale, fetch.h). The child is killed if the calling thread dies (the
 * worker SIGKILLed).
 *
 * Returns 0 with *out set (caller owns), or -1 with err: the child's own
 * error; ERR_INTERNAL "decoder crashed: signal 11"; ERR_TOOLARGE "decoder
 * exceeded its cpu limit (N s)"; ERR_CANCELLED; ERR_TIMEOUT. Blocks.
 *
 * Safe in a multi-threaded process: the child only runs fn and FFmpeg,
 * logs nothing and leaves by _exit. FFmpeg's log output is silenced in
 * the child. */
int media_isolate(media_work_fn fn, void *arg, const char *cleanup,
		  const struct media_ctl *ctl, json_t **out, struct err *err);

/* media_isolate for an argument of `size` bytes that holds no pointer (a
 * flat struct: paths as arrays), which is copied to the child: each
 * calling thread keeps one child and hands it job after job (at most 64),
 * so a job pays neither the fork of this whole process (~4-8 ms with
 * FFmpeg loaded) nor a fresh process's first touch of FFmpeg (lazy
 * binding, page faults of its buffers): a warm child decodes like the
 * worker itself would. A child that crashed, was killed, or was asked to
 * stop (cancel, deadline) is not reused: it is reaped and a replacement
 * forked at once, so the job after a crash starts in a clean process;
 * its errors are media_isolate's. Limits: media_limits as of each call
 * (a child whose limits changed is replaced); RLIMIT_CPU counts the
 * child's CPU time so far plus cpu_s as a soft limit (SIGXCPU), without
 * the hard 5 s backstop; the deadline kill stays. The first call of a
 * thread forks its child itself; the child dies with the thread. `arg` is
 * borrowed for the call. Blocks. */
int media_isolate_copy(media_work_fn fn, const void *arg, size_t size, const char *cleanup,
		       const struct media_ctl *ctl, json_t **out, struct err *err);

/* Ends the calling thread's child of media_isolate_copy, if any, and reaps
 * it, so that its CPU time and peak memory count in this process's
 * RUSAGE_CHILDREN (a child left to die with its thread is never waited
 * for). Blocks until it is gone. */
void media_isolate_done(void);

/* ---- job handlers ----------------------------------------------------- */

/* Binds media.probe, media.thumbnail and media.transcode in the jobs
 * registry (job/job.h). Inputs and outputs go through fetch (file://,
 * http(s)://, s3://); the media work runs under media_isolate. Call once
 * at start-up, before jobs run. */
void media_bind_jobs(void);

/* The run functions of media.probe, media.thumbnail and media.transcode
 * (job_run_fn). The worker does not link FFmpeg: it loads the
 * wakeq-media.so plugin on the first media job (worker/media_plugin.c),
 * which runs these through the handler plugin ABI (plugin.c). */
int media_job_probe(const struct job_run *run, struct job_outcome *out);
int media_job_thumbnail(const struct job_run *run, struct job_outcome *out);
int media_job_transcode(const struct job_run *run, struct job_outcome *out);

/* Fills `o` from a media.transcode payload already accepted by
 * job_check. Returns 0 or -1 with err (ERR_INVALID) naming the field. */
int media_transcode_opts_from_json(const json_t *payload,
				   struct media_transcode_opts *o,
				   struct err *err);

/* Fills `o` from a media.thumbnail payload. Returns 0 or -1 with err. */
int media_thumb_opts_from_json(const json_t *payload,
			       struct media_thumb_opts *o, struct err *err);

#endif
