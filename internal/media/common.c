/* common.c - interrupt callback, progress throttle, error translation and
 * input opening shared by probe, thumbnail and transcode. */
#include "media/internal.h"

#include "base/clock.h"

#include <libavcodec/version.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Progress is sent at most this often (the issue asks for "a few times a
 * second"). */
#define REPORT_EVERY_US 200000

/* FFmpeg prints to stderr by default; internal/ never prints. Set
 * WAKEQ_MEDIA_DEBUG=1 to see FFmpeg's messages while debugging. */
static void quiet_once(void)
{
	const char *d = getenv("WAKEQ_MEDIA_DEBUG");

	av_log_set_level(d && *d && strcmp(d, "0") ? AV_LOG_VERBOSE : AV_LOG_QUIET);
}

/* FFmpeg 7.1 deprecates AVCodec.sample_fmts and .supported_samplerates
 * (removed in 8) for avcodec_get_supported_config(); 5.1 has only the
 * fields. With a NULL context the call answers for the codec alone. */
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(61, 13, 100)
static const void *enc_config(const AVCodec *c, enum AVCodecConfig what)
{
	const void *list = NULL;
	int n = 0;

	if (avcodec_get_supported_config(NULL, c, what, 0, &list, &n) < 0 || n <= 0)
		return NULL;
	return list;
}

enum AVSampleFormat media_enc_sample_fmt(const AVCodec *c)
{
	const enum AVSampleFormat *f = enc_config(c, AV_CODEC_CONFIG_SAMPLE_FORMAT);

	return f ? f[0] : AV_SAMPLE_FMT_S16;
}

const int *media_enc_sample_rates(const AVCodec *c)
{
	return enc_config(c, AV_CODEC_CONFIG_SAMPLE_RATE);
}
#else
enum AVSampleFormat media_enc_sample_fmt(const AVCodec *c)
{
	return c->sample_fmts ? c->sample_fmts[0] : AV_SAMPLE_FMT_S16;
}

const int *media_enc_sample_rates(const AVCodec *c)
{
	return c->supported_samplerates;
}
#endif

void media_watch_init(struct media_watch *w, const struct media_ctl *ctl)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, quiet_once);
	memset(w, 0, sizeof(*w));
	w->ctl = ctl;
}

int media_interrupt(void *opaque)
{
	struct media_watch *w = opaque;
	const struct media_ctl *c = w->ctl;

	if (w->stop)
		return 1;
	if (!c)
		return 0;
	if (c->cancel && atomic_load_explicit(c->cancel, memory_order_relaxed))
		w->stop = ERR_CANCELLED;
	else if (c->deadline_us && clock_mono_us() >= c->deadline_us)
		w->stop = ERR_TIMEOUT;
	return w->stop != 0;
}

void media_report(struct media_watch *w, double percent, const char *stage,
		  int force)
{
	int64_t now;

	if (!w->ctl || !w->ctl->progress)
		return;
	now = clock_mono_us();
	if (!force && now - w->last_us < REPORT_EVERY_US)
		return;
	w->last_us = now;
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	w->ctl->progress(w->ctl->opaque, percent, stage);
}

int media_averr(struct err *err, const struct media_watch *w, int averr,
		const char *fmt, ...)
{
	char ctx[ERR_MSG_MAX / 2], why[AV_ERROR_MAX_STRING_SIZE];
	enum err_code code;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (w && w->stop)
		return err_set(err, (enum err_code)w->stop, "%s",
			       w->stop == ERR_CANCELLED ? "cancelled" :
			       "timed out");
	if (averr == AVERROR_EXIT)
		return err_set(err, ERR_CANCELLED, "cancelled");
	switch (averr) {
	case AVERROR(ENOMEM):
		code = ERR_TOOLARGE;
		snprintf(why, sizeof(why), "out of memory (memory limit)");
		break;
	case AVERROR(EFBIG):
		code = ERR_TOOLARGE;
		snprintf(why, sizeof(why), "output larger than the file size limit");
		break;
	case AVERROR(ENOENT):
		code = ERR_NOTFOUND;
		snprintf(why, sizeof(why), "no such file");
		break;
	case AVERROR(EACCES):
	case AVERROR(ENOSPC):
	case AVERROR(EROFS):
	case AVERROR(EISDIR):
	case AVERROR(EIO):
		code = ERR_IO;
		av_strerror(averr, why, sizeof(why));
		break;
	default:
		/* Everything else comes from the data: invalid data, no
		 * decoder, bad parameters, EOF in the middle of a header. */
		code = ERR_INVALID;
		av_strerror(averr, why, sizeof(why));
		break;
	}
	why[0] = (char)tolower((unsigned char)why[0]);
	return err_set(err, code, "%s: %s", ctx, why);
}

const char *media_base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

void media_unlink(const char *path)
{
	int e = errno;

	if (path && *path)
		unlink(path);
	errno = e;
}

/* Refuses streams whose header claims sizes no real file has. */
static int check_streams(AVFormatContext *fc, const char *name,
			 struct err *err)
{
	unsigned i;
	int usable = 0;

	for (i = 0; i < fc->nb_streams; i++) {
		AVCodecParameters *p = fc->streams[i]->codecpar;

		if (p->codec_type == AVMEDIA_TYPE_VIDEO) {
			if (p->width < 0 || p->height < 0 ||
			    p->width > MEDIA_MAX_SIDE || p->height > MEDIA_MAX_SIDE ||
			    (int64_t)p->width * p->height > MEDIA_MAX_PIXELS)
				return err_set(err, ERR_INVALID,
					       "input '%s' has an absurd picture size "
					       "%dx%d (limits: %d a side, %lld pixels)",
					       name, p->width, p->height, MEDIA_MAX_SIDE,
					       MEDIA_MAX_PIXELS);
			if (!(fc->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC))
				usable = 1;
		} else if (p->codec_type == AVMEDIA_TYPE_AUDIO) {
			if (p->sample_rate < 0 || p->sample_rate > 768000 ||
			    p->ch_layout.nb_channels > 64)
				return err_set(err, ERR_INVALID,
					       "input '%s' has an absurd audio format "
					       "(%d Hz, %d channels)", name,
					       p->sample_rate, p->ch_layout.nb_channels);
			usable = 1;
		}
	}
	if (!usable)
		return err_set(err, ERR_INVALID,
			       "input '%s' has no audio or video stream", name);
	return 0;
}

/* A file whose index (MP4/MOV: every sample's offset and size) points
 * past its end was cut short: a partial upload or download. */
static int check_size(AVFormatContext *fc, const char *name, struct err *err)
{
	int64_t size = fc->pb ? avio_size(fc->pb) : -1, end = 0;
	unsigned i;

	if (size <= 0)
		return 0;
	for (i = 0; i < fc->nb_streams; i++) {
		int n = avformat_index_get_entries_count(fc->streams[i]);
		const AVIndexEntry *e;

		if (n <= 0)
			continue;
		e = avformat_index_get_entry(fc->streams[i], n - 1);
		if (e && e->pos + e->size > end)
			end = e->pos + e->size;
	}
	if (end > size)
		return err_set(err, ERR_INVALID,
			       "input '%s' is truncated: %lld of %lld bytes", name,
			       (long long)size, (long long)end);
	return 0;
}

/* Demuxers an untrusted input may use. Playlist and concat demuxers (hls,
 * concat, …) are left out on purpose: they open further files or URLs
 * named inside the input. */
#define FORMAT_WHITELIST "mov,mp4,matroska,webm,avi,mp3,ogg,wav,flac,aac," \
	"mpegts,mpeg,flv,asf,gif,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe," \
	"yuv4mpegpipe,h264,hevc,m4v,mjpeg,amr,aiff,caf,w64,ac3,eac3,dts," \
	"mxf,ivf,matroska,opus,s16le"

int media_open_input(const char *path, AVIOContext *pb,
		     struct media_watch *w, AVFormatContext **out,
		     struct err *err)
{
	const char *name = media_base(path);
	AVFormatContext *fc = NULL;
	AVDictionary *opts = NULL;
	int rc;

	if (!pb) {
		struct stat sb;

		if (stat(path, &sb) < 0)
			return err_set(err, errno == ENOENT ? ERR_NOTFOUND : ERR_IO,
				       "cannot open input '%s': %s", name,
				       errno == ENOENT ? "no such file" :
				       errno == EACCES ? "permission denied" :
				       "cannot read it");
		if (!S_ISREG(sb.st_mode))
			return err_set(err, ERR_INVALID,
				       "cannot open input '%s': not a regular file",
				       name);
		if (sb.st_size == 0)
			return err_set(err, ERR_INVALID,
				       "cannot open input '%s': the file is empty",
				       name);
	}
	fc = avformat_alloc_context();
	if (!fc)
		return err_set(err, ERR_TOOLARGE, "out of memory");
	fc->interrupt_callback.callback = media_interrupt;
	fc->interrupt_callback.opaque = w;
	if (pb) {
		fc->pb = pb;
		fc->flags |= AVFMT_FLAG_CUSTOM_IO;
	}
	av_dict_set(&opts, "format_whitelist", FORMAT_WHITELIST, 0);
	av_dict_set(&opts, "protocol_whitelist", "file", 0);
	rc = avformat_open_input(&fc, path, NULL, &opts);
	av_dict_free(&opts);
	if (rc < 0) {
		/* fc was freed by avformat_open_input. Demuxers answer odd
		 * codes for bad headers (EINVAL, EBUSY, ENOSYS …): only real
		 * I/O errors keep theirs. */
		if (w->stop || rc == AVERROR_EXIT || rc == AVERROR(ENOMEM) ||
		    rc == AVERROR(EACCES) || rc == AVERROR(EIO) ||
		    rc == AVERROR(ENOENT))
			return media_averr(err, w, rc, "cannot open input '%s'", name);
		return err_set(err, ERR_INVALID,
			       "cannot open input '%s': not a media file "
			       "(or an unsupported or corrupt one)", name);
	}
	rc = avformat_find_stream_info(fc, NULL);
	if (rc < 0) {
		media_averr(err, w, rc, "cannot read input '%s'", name);
		goto fail;
	}
	if (check_streams(fc, name, err) < 0 || check_size(fc, name, err) < 0)
		goto fail;
	*out = fc;
	return 0;
fail:
	avformat_close_input(&fc);
	return -1;
}

int media_open_decoder(AVFormatContext *fc, AVStream *st,
		       struct media_watch *w, AVCodecContext **out,
		       struct err *err)
{
	const char *name = media_base(fc->url ? fc->url : "");
	const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
	AVCodecContext *dec;
	int rc;

	if (!codec)
		return err_set(err, ERR_INVALID,
			       "input '%s': no decoder for codec '%s'", name,
			       avcodec_get_name(st->codecpar->codec_id));
	dec = avcodec_alloc_context3(codec);
	if (!dec)
		return err_set(err, ERR_TOOLARGE, "out of memory");
	rc = avcodec_parameters_to_context(dec, st->codecpar);
	if (rc < 0)
		goto fail;
	dec->pkt_timebase = st->time_base;
	dec->thread_count = 0; /* auto, as the ffmpeg tool does */
	dec->max_pixels = MEDIA_MAX_PIXELS;
	rc = avcodec_open2(dec, codec, NULL);
	if (rc < 0)
		goto fail;
	*out = dec;
	return 0;
fail:
	avcodec_free_context(&dec);
	return media_averr(err, w, rc, "input '%s': cannot open the %s decoder",
			   name, codec->name);
}
