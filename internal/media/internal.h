/* internal.h - helpers shared by the media module's files. Internal. */
#ifndef WAKEQ_MEDIA_INTERNAL_H
#define WAKEQ_MEDIA_INTERNAL_H

#include "media/media.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

/* Largest picture a decoder may produce (pixels): 8K UHD plus margin. A
 * header claiming more is refused as absurd. */
#define MEDIA_MAX_PIXELS (8192LL * 8192LL)
/* Longest side accepted for any stream or requested output. */
#define MEDIA_MAX_SIDE 16384

/* Watches one media call: the interrupt callback and progress throttle. */
struct media_watch {
	const struct media_ctl *ctl;
	int64_t last_us;      /* last progress sent (mono us) */
	int stop;             /* 0, ERR_CANCELLED or ERR_TIMEOUT once seen */
};

void media_watch_init(struct media_watch *w, const struct media_ctl *ctl);

/* FFmpeg interrupt callback; opaque is a struct media_watch. Returns 1
 * (stop) once cancelled or past the deadline. */
int media_interrupt(void *opaque);

/* Sends progress when 200 ms have passed since the last one (or force). */
void media_report(struct media_watch *w, double percent, const char *stage,
		  int force);

/* Sets err from an AVERROR code: ERR_CANCELLED / ERR_TIMEOUT when the
 * watch stopped, ERR_INVALID for bad data, ERR_IO otherwise. The message
 * is the printf-formatted context, ": ", then FFmpeg's reason in lower
 * case. Returns -1. */
int media_averr(struct err *err, const struct media_watch *w, int averr,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Opens `path` for reading with the watch's interrupt callback, reads the
 * stream info and refuses empty, non-media and absurd inputs. `pb` may
 * be a custom AVIOContext (then path is only a name). Returns 0 with *fc
 * set (close with avformat_close_input), or -1 with err set. */
int media_open_input(const char *path, AVIOContext *pb,
		     struct media_watch *w, AVFormatContext **fc,
		     struct err *err);

/* Opens a decoder for stream `st` (threads: auto). Returns 0 or -1. */
int media_open_decoder(AVFormatContext *fc, AVStream *st,
		       struct media_watch *w, AVCodecContext **dec,
		       struct err *err);

/* What an audio encoder takes, asked the way the FFmpeg at hand wants it
 * (avcodec_get_supported_config from libavcodec 61.13, FFmpeg 7.1; the
 * AVCodec fields before, FFmpeg 5.1): its preferred sample format (the
 * first it lists; AV_SAMPLE_FMT_S16 when it lists none), and its sample
 * rates, terminated by 0, or NULL when it takes any. The list belongs to
 * FFmpeg (static). Neither blocks nor fails. */
enum AVSampleFormat media_enc_sample_fmt(const AVCodec *c);
const int *media_enc_sample_rates(const AVCodec *c);

/* The probe result of an open input; caller owns. */
json_t *media_probe_json(AVFormatContext *fc, int64_t size_bytes);

/* Basename of a path, for messages. */
const char *media_base(const char *path);

/* Removes a file if it exists, keeping errno. */
void media_unlink(const char *path);

#endif
