/* synth.c - a synthetic clip with known content, for tests and the
 * benchmark: a flat colour per second, a white bar whose position is the
 * frame number within the second (top quarter only), and a sine tone. */
#include "media/internal.h"

#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <math.h>
#include <string.h>

static const uint32_t palette[] = {
	0xe02020, 0x20c020, 0x2040e0, 0xe0e020,
	0xe020e0, 0x20e0e0, 0x808080, 0xf08020,
};

uint32_t media_synth_colour(int s)
{
	if (s < 0)
		s = 0;
	return palette[s % (int)(sizeof(palette) / sizeof(palette[0]))];
}

/* BT.601 limited range, what decoders assume for untagged yuv420p. */
static void rgb_to_yuv(uint32_t rgb, uint8_t *y, uint8_t *u, uint8_t *v)
{
	double r = (rgb >> 16) & 255, g = (rgb >> 8) & 255, b = rgb & 255;

	*y = (uint8_t)lrint(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
	*u = (uint8_t)lrint(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255);
	*v = (uint8_t)lrint(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255);
}

static void fill_frame(AVFrame *f, int64_t n, int fps)
{
	uint8_t y, u, v;
	int row, slot, bar_x, bar_w, bar_h;

	rgb_to_yuv(media_synth_colour((int)(n / fps)), &y, &u, &v);
	for (row = 0; row < f->height; row++)
		memset(f->data[0] + (size_t)row * f->linesize[0], y, (size_t)f->width);
	for (row = 0; row < f->height / 2; row++) {
		memset(f->data[1] + (size_t)row * f->linesize[1], u, (size_t)f->width / 2);
		memset(f->data[2] + (size_t)row * f->linesize[2], v, (size_t)f->width / 2);
	}
	slot = f->width / fps;
	bar_w = slot / 2 > 2 ? (slot / 2) & ~1 : 2;
	bar_x = (int)(n % fps) * slot & ~1;
	bar_h = f->height / 4 & ~1;
	if (bar_x + bar_w > f->width)
		return;
	for (row = 0; row < bar_h; row++)
		memset(f->data[0] + (size_t)row * f->linesize[0] + bar_x, 235,
		       (size_t)bar_w);
	for (row = 0; row < bar_h / 2; row++) {
		memset(f->data[1] + (size_t)row * f->linesize[1] + bar_x / 2, 128,
		       (size_t)bar_w / 2);
		memset(f->data[2] + (size_t)row * f->linesize[2] + bar_x / 2, 128,
		       (size_t)bar_w / 2);
	}
}

static void fill_audio(AVFrame *f, int64_t first, double hz)
{
	int i, c, ch = f->ch_layout.nb_channels;

	for (i = 0; i < f->nb_samples; i++) {
		double s = 0.3 * sin(2 * M_PI * hz * (double)(first + i) / f->sample_rate);

		for (c = 0; c < ch; c++) {
			switch (f->format) {
			case AV_SAMPLE_FMT_FLTP:
				((float *)f->data[c])[i] = (float)s;
				break;
			case AV_SAMPLE_FMT_FLT:
				((float *)f->data[0])[i * ch + c] = (float)s;
				break;
			case AV_SAMPLE_FMT_S16:
				((int16_t *)f->data[0])[i * ch + c] = (int16_t)(s * 32767);
				break;
			case AV_SAMPLE_FMT_S16P:
				((int16_t *)f->data[c])[i] = (int16_t)(s * 32767);
				break;
			default:
				break;
			}
		}
	}
}

struct synth {
	AVFormatContext *oc;
	AVCodecContext *venc, *aenc;
	AVStream *vst, *ast;
	AVFrame *frame;
	AVPacket *pkt;
};

static int drain(struct synth *s, AVCodecContext *enc, AVStream *st,
		 AVFrame *f)
{
	int rc = avcodec_send_frame(enc, f);

	while (rc >= 0) {
		rc = avcodec_receive_packet(enc, s->pkt);
		if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
			return 0;
		if (rc < 0)
			break;
		if (!s->pkt->duration && enc == s->venc)
			s->pkt->duration = 1; /* one frame in 1/fps */
		av_packet_rescale_ts(s->pkt, enc->time_base, st->time_base);
		s->pkt->stream_index = st->index;
		rc = av_interleaved_write_frame(s->oc, s->pkt);
	}
	return rc;
}

static int add_video(struct synth *s, const struct media_synth_opts *o,
		     int webm, struct err *err)
{
	const AVCodec *c = avcodec_find_encoder_by_name(webm ? "libvpx-vp9" : "libx264");
	int rc;

	if (!c)
		return err_set(err, ERR_INTERNAL, "no %s encoder in this FFmpeg",
			       webm ? "libvpx-vp9" : "libx264");
	s->venc = avcodec_alloc_context3(c);
	s->venc->width = o->width;
	s->venc->height = o->height;
	s->venc->pix_fmt = AV_PIX_FMT_YUV420P;
	s->venc->time_base = (AVRational){ 1, o->fps };
	s->venc->framerate = (AVRational){ o->fps, 1 };
	s->venc->gop_size = o->gop > 0 ? o->gop : 2 * o->fps;
	s->venc->thread_count = 0;
	if (s->oc->oformat->flags & AVFMT_GLOBALHEADER)
		s->venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
	if (webm) {
		av_opt_set(s->venc->priv_data, "deadline", "realtime", 0);
		av_opt_set_int(s->venc->priv_data, "cpu-used", 8, 0);
		av_opt_set_int(s->venc->priv_data, "crf", 32, 0);
		s->venc->bit_rate = 0;
	} else {
		av_opt_set(s->venc->priv_data, "preset",
			   o->preset ? o->preset : "veryfast", 0);
		av_opt_set(s->venc->priv_data, "crf", "20", 0);
	}
	rc = avcodec_open2(s->venc, c, NULL);
	if (rc < 0)
		return media_averr(err, NULL, rc, "cannot open the video encoder");
	s->vst = avformat_new_stream(s->oc, NULL);
	s->vst->time_base = s->venc->time_base;
	s->vst->avg_frame_rate = s->venc->framerate;
	return avcodec_parameters_from_context(s->vst->codecpar, s->venc);
}

static int add_audio(struct synth *s, int webm, struct err *err)
{
	const AVCodec *c = avcodec_find_encoder_by_name(webm ? "libopus" : "aac");
	int rc;

	if (!c)
		return err_set(err, ERR_INTERNAL, "no audio encoder in this FFmpeg");
	s->aenc = avcodec_alloc_context3(c);
	s->aenc->sample_rate = 48000;
	s->aenc->sample_fmt = media_enc_sample_fmt(c);
	av_channel_layout_default(&s->aenc->ch_layout, 2);
	s->aenc->bit_rate = 96000;
	s->aenc->time_base = (AVRational){ 1, 48000 };
	if (s->oc->oformat->flags & AVFMT_GLOBALHEADER)
		s->aenc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
	rc = avcodec_open2(s->aenc, c, NULL);
	if (rc < 0)
		return media_averr(err, NULL, rc, "cannot open the audio encoder");
	s->ast = avformat_new_stream(s->oc, NULL);
	s->ast->time_base = s->aenc->time_base;
	return avcodec_parameters_from_context(s->ast->codecpar, s->aenc);
}

int media_synth_file(const char *path, const struct media_synth_opts *o,
		     struct err *err)
{
	struct synth s;
	AVFrame *af = NULL;
	AVDictionary *mopts = NULL;
	int64_t vn = 0, an = 0, frames, samples;
	double hz = o->tone_hz > 0 ? o->tone_hz : 440;
	const char *ext = strrchr(path, '.');
	int webm = ext && !strcmp(ext, ".webm");
	struct media_watch w;
	int rc, ret = -1;

	media_watch_init(&w, NULL);
	memset(&s, 0, sizeof(s));
	if (!(o->duration_s > 0) || o->width < 16 || o->height < 16 ||
	    o->width % 2 || o->height % 2 || o->fps < 1 ||
	    o->width > MEDIA_MAX_SIDE || o->height > MEDIA_MAX_SIDE)
		return err_set(err, ERR_INVALID, "bad synthetic clip parameters");
	rc = avformat_alloc_output_context2(&s.oc, NULL, NULL, path);
	if (rc < 0 || !s.oc)
		return err_set(err, ERR_INVALID,
			       "cannot write '%s': unknown container", path);
	if (add_video(&s, o, webm, err) < 0)
		goto out;
	if (o->audio && add_audio(&s, webm, err) < 0)
		goto out;
	rc = avio_open(&s.oc->pb, path, AVIO_FLAG_WRITE);
	if (rc < 0) {
		media_averr(err, NULL, rc, "cannot write '%s'", path);
		goto out;
	}
	if (o->faststart)
		av_dict_set(&mopts, "movflags", "+faststart", 0);
	rc = avformat_write_header(s.oc, &mopts);
	av_dict_free(&mopts);
	if (rc < 0) {
		media_averr(err, NULL, rc, "cannot write '%s'", path);
		goto out;
	}
	s.pkt = av_packet_alloc();
	s.frame = av_frame_alloc();
	s.frame->format = AV_PIX_FMT_YUV420P;
	s.frame->width = o->width;
	s.frame->height = o->height;
	if (av_frame_get_buffer(s.frame, 0) < 0)
		goto nomem;
	if (s.aenc) {
		af = av_frame_alloc();
		af->format = s.aenc->sample_fmt;
		af->sample_rate = 48000;
		av_channel_layout_copy(&af->ch_layout, &s.aenc->ch_layout);
		af->nb_samples = s.aenc->frame_size ? s.aenc->frame_size : 1024;
		if (av_frame_get_buffer(af, 0) < 0)
			goto nomem;
	}
	frames = llrint(o->duration_s * o->fps);
	samples = llrint(o->duration_s * 48000);
	for (;;) {
		int do_video = vn < frames;
		int do_audio = s.aenc && an < samples;

		if (!do_video && !do_audio)
			break;
		/* Whichever stream is behind in time goes next. */
		if (do_video && do_audio &&
		    (double)vn / o->fps > (double)an / 48000)
			do_video = 0;
		if (do_video) {
			if (av_frame_make_writable(s.frame) < 0)
				goto nomem;
			fill_frame(s.frame, vn, o->fps);
			s.frame->pts = vn++;
			rc = drain(&s, s.venc, s.vst, s.frame);
		} else {
			if (av_frame_make_writable(af) < 0)
				goto nomem;
			fill_audio(af, an, hz);
			af->pts = an;
			an += af->nb_samples;
			rc = drain(&s, s.aenc, s.ast, af);
		}
		if (rc < 0)
			goto wfail;
	}
	if ((rc = drain(&s, s.venc, s.vst, NULL)) < 0)
		goto wfail;
	if (s.aenc && (rc = drain(&s, s.aenc, s.ast, NULL)) < 0)
		goto wfail;
	if ((rc = av_write_trailer(s.oc)) < 0)
		goto wfail;
	ret = 0;
	goto out;
nomem:
	err_set(err, ERR_TOOLARGE, "out of memory");
	goto out;
wfail:
	media_averr(err, NULL, rc, "cannot write '%s'", path);
out:
	if (s.oc && s.oc->pb)
		avio_closep(&s.oc->pb);
	if (ret < 0)
		media_unlink(path);
	avformat_free_context(s.oc);
	avcodec_free_context(&s.venc);
	avcodec_free_context(&s.aenc);
	av_frame_free(&s.frame);
	av_frame_free(&af);
	av_packet_free(&s.pkt);
	return ret;
}
