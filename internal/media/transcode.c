/* transcode.c - media.transcode: demux, decode, filter (scale, fps,
 * resample), encode, mux; or copy streams as they are. Trim by start and
 * duration. Progress from output timestamps over the expected duration. */
#include "media/internal.h"

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* An input stream in flight to one output stream. */
struct ost {
	int on;               /* this stream is written */
	int copy;             /* packets copied, no decoding */
	int done;             /* past the trim end */
	AVStream *ist, *st;
	AVCodecContext *dec, *enc;
	AVFilterGraph *graph;
	AVFilterContext *src, *sink;
	int64_t start_ts;     /* trim start in the input stream's time base */
	int64_t end_ts;       /* trim end, INT64_MAX = none */
	int64_t copy_off;     /* copy: first kept dts, subtracted */
	int bad, total;       /* undecodable packets, packets */
	double out_s;         /* furthest output time written (seconds) */
};

struct tc {
	const struct media_transcode_opts *o;
	const char *in, *out, *name;
	struct media_watch w;
	AVFormatContext *ic, *oc;
	struct ost v, a;
	AVPacket *pkt;
	AVFrame *frame, *filt;
	double expect_s;      /* expected output duration, for progress */
	double in_dur_s;      /* input's declared duration, 0 = unknown */
};

void media_transcode_opts_init(struct media_transcode_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->container, sizeof(o->container), "mp4");
	o->video.crf = -1;
}


static const char *encoder_name(const char *codec)
{
	if (!strcmp(codec, "h264")) return "libx264";
	if (!strcmp(codec, "vp9")) return "libvpx-vp9";
	if (!strcmp(codec, "aac")) return "aac";
	if (!strcmp(codec, "opus")) return "libopus";
	if (!strcmp(codec, "mp3")) return "libmp3lame";
	return NULL;
}

static int vp9_cpu_used(const char *preset)
{
	static const char *const fast[] = { "ultrafast", "superfast", "veryfast" };
	size_t i;

	for (i = 0; i < 3; i++)
		if (!strcmp(preset, fast[i]))
			return 8;
	if (!strcmp(preset, "faster") || !strcmp(preset, "fast"))
		return 5;
	if (!strcmp(preset, "") || !strcmp(preset, "medium"))
		return 4;
	return 2;
}

static int query_codec(struct tc *t, enum AVCodecID id, const char *what,
		       struct err *err)
{
	/* 1 = yes, 0 = no, negative = the muxer cannot tell (mp3, ogg). */
	if (avformat_query_codec(t->oc->oformat, id, FF_COMPLIANCE_NORMAL) == 0)
		return err_set(err, ERR_INVALID,
			       "container '%s' cannot hold %s codec '%s'",
			       t->o->container, what, avcodec_get_name(id));
	return 0;
}

static AVStream *new_stream(struct tc *t)
{
	AVStream *st = avformat_new_stream(t->oc, NULL);

	if (!st)
		abort(); /* out of memory, as mem.h does */
	return st;
}

static int setup_copy(struct tc *t, struct ost *s, const char *what,
		      struct err *err)
{
	int rc;

	if (query_codec(t, s->ist->codecpar->codec_id, what, err) < 0)
		return -1;
	s->copy = 1;
	s->st = new_stream(t);
	rc = avcodec_parameters_copy(s->st->codecpar, s->ist->codecpar);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot copy the %s stream", what);
	s->st->codecpar->codec_tag = 0;
	s->st->time_base = s->ist->time_base;
	s->copy_off = AV_NOPTS_VALUE;
	return 0;
}

/* Builds "in -> desc -> out" for one stream. */
static int build_graph(struct tc *t, struct ost *s, const char *args,
		       const char *desc, struct err *err)
{
	int video = s->ist->codecpar->codec_type == AVMEDIA_TYPE_VIDEO;
	AVFilterInOut *outs = avfilter_inout_alloc(), *ins = avfilter_inout_alloc();
	int rc;

	s->graph = avfilter_graph_alloc();
	s->graph->nb_threads = 1;
	rc = avfilter_graph_create_filter(&s->src, avfilter_get_by_name(video ? "buffer" : "abuffer"),
					  "in", args, NULL, s->graph);
	if (rc >= 0)
		rc = avfilter_graph_create_filter(&s->sink,
			avfilter_get_by_name(video ? "buffersink" : "abuffersink"),
			"out", NULL, NULL, s->graph);
	if (rc < 0)
		goto fail;
	outs->name = av_strdup("in");
	outs->filter_ctx = s->src;
	ins->name = av_strdup("out");
	ins->filter_ctx = s->sink;
	rc = avfilter_graph_parse_ptr(s->graph, desc, &ins, &outs, NULL);
	if (rc >= 0)
		rc = avfilter_graph_config(s->graph, NULL);
fail:
	avfilter_inout_free(&ins);
	avfilter_inout_free(&outs);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot set up the %s filters",
				   video ? "video" : "audio");
	return 0;
}

/* The start of re-encoding stream `s` ("video" or "audio") as `codec`:
 * its encoder is in this FFmpeg, the output format takes it, the input's
 * decoder is open. Returns the encoder, or NULL with err set. */
static const AVCodec *start_encode(struct tc *t, struct ost *s,
				   const char *what, const char *codec,
				   struct err *err)
{
	const AVCodec *c = avcodec_find_encoder_by_name(encoder_name(codec));

	if (!c) {
		err_set(err, ERR_INTERNAL, "no %s encoder in this FFmpeg",
			encoder_name(codec));
		return NULL;
	}
	if (query_codec(t, c->id, what, err) < 0 ||
	    media_open_decoder(t->ic, s->ist, &t->w, &s->dec, err) < 0)
		return NULL;
	return c;
}

/* Opens s->enc (its settings made) as `c`, threads left to FFmpeg. */
static int open_encoder(struct tc *t, struct ost *s, const AVCodec *c,
			struct err *err)
{
	int rc;

	s->enc->thread_count = 0;
	if (t->oc->oformat->flags & AVFMT_GLOBALHEADER)
		s->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
	rc = avcodec_open2(s->enc, c, NULL);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot open the %s encoder", c->name);
	return 0;
}

static int setup_video(struct tc *t, struct err *err)
{
	struct ost *s = &t->v;
	const struct media_transcode_opts *o = t->o;
	AVCodecParameters *p = s->ist->codecpar;
	const AVCodec *c = start_encode(t, s, "video", o->video.codec, err);
	AVRational fr, sar;
	char args[512], desc[256], *d = desc;
	int w = o->video.width, h = o->video.height;

	if (!c)
		return -1;
	/* One side given: the other keeps the aspect ratio, rounded to even
	 * (4:2:0 needs even sizes). */
	if (w > 0 && h <= 0)
		h = (int)lrint((double)p->height * w / p->width / 2) * 2;
	else if (h > 0 && w <= 0)
		w = (int)lrint((double)p->width * h / p->height / 2) * 2;
	else if (w <= 0 && h <= 0) {
		w = p->width & ~1;
		h = p->height & ~1;
	}
	if (w < 2 || h < 2 || w > MEDIA_MAX_SIDE || h > MEDIA_MAX_SIDE)
		return err_set(err, ERR_INVALID, "bad output size %dx%d", w, h);
	sar = p->sample_aspect_ratio.num ? p->sample_aspect_ratio : (AVRational){ 0, 1 };
	snprintf(args, sizeof(args),
		 "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d",
		 s->dec->width, s->dec->height, s->dec->pix_fmt,
		 s->ist->time_base.num, s->ist->time_base.den, sar.num,
		 sar.den ? sar.den : 1);
	d += snprintf(d, sizeof(desc), "scale=w=%d:h=%d", w, h);
	if (o->video.fps > 0)
		d += snprintf(d, sizeof(desc) - (size_t)(d - desc), ",fps=%g", o->video.fps);
	snprintf(d, sizeof(desc) - (size_t)(d - desc), ",format=pix_fmts=yuv420p");
	if (build_graph(t, s, args, desc, err) < 0)
		return -1;

	fr = o->video.fps > 0 ? av_d2q(o->video.fps, 100000) :
		av_guess_frame_rate(t->ic, s->ist, NULL);
	s->enc = avcodec_alloc_context3(c);
	s->enc->width = w;
	s->enc->height = h;
	s->enc->pix_fmt = AV_PIX_FMT_YUV420P;
	s->enc->sample_aspect_ratio = av_buffersink_get_sample_aspect_ratio(s->sink);
	s->enc->time_base = av_buffersink_get_time_base(s->sink);
	if (fr.num > 0 && fr.den > 0)
		s->enc->framerate = fr;
	if (o->video.bitrate > 0)
		s->enc->bit_rate = o->video.bitrate;
	if (c->id == AV_CODEC_ID_H264) {
		av_opt_set(s->enc->priv_data, "preset",
			   o->video.preset[0] ? o->video.preset : "medium", 0);
		if (o->video.crf >= 0 || o->video.bitrate <= 0)
			av_opt_set_int(s->enc->priv_data, "crf",
				       o->video.crf >= 0 ? o->video.crf : 23, 0);
	} else {
		av_opt_set(s->enc->priv_data, "deadline", "good", 0);
		av_opt_set_int(s->enc->priv_data, "cpu-used",
			       vp9_cpu_used(o->video.preset), 0);
		av_opt_set_int(s->enc->priv_data, "row-mt", 1, 0);
		if (o->video.crf >= 0 || o->video.bitrate <= 0)
			av_opt_set_int(s->enc->priv_data, "crf",
				       o->video.crf >= 0 ? o->video.crf : 32, 0);
	}
	if (open_encoder(t, s, c, err) < 0)
		return -1;
	s->st = new_stream(t);
	s->st->time_base = s->enc->time_base;
	s->st->avg_frame_rate = s->enc->framerate;
	return avcodec_parameters_from_context(s->st->codecpar, s->enc);
}

static int pick_rate(const AVCodec *c, int want)
{
	const int *r = media_enc_sample_rates(c);
	int best = 0;

	if (!r)
		return want;
	for (; *r; r++) {
		if (*r == want)
			return want;
		if (*r > want && (!best || *r < best))
			best = *r;
	}
	return best ? best : 48000;
}

static int setup_audio(struct tc *t, struct err *err)
{
	struct ost *s = &t->a;
	const struct media_transcode_opts *o = t->o;
	const AVCodec *c = start_encode(t, s, "audio", o->audio.codec, err);
	char args[512], desc[256], layout[64];
	int ch, rate;

	if (!c)
		return -1;
	if (!s->dec->ch_layout.nb_channels || s->dec->sample_rate <= 0)
		return err_set(err, ERR_INVALID, "input '%s': audio without a format",
			       t->name);
	ch = o->audio.channels > 0 ? o->audio.channels : s->dec->ch_layout.nb_channels;
	if (c->id == AV_CODEC_ID_MP3 && ch > 2)
		ch = 2;
	if (c->id == AV_CODEC_ID_OPUS && ch > 8)
		ch = 8;
	rate = pick_rate(c, o->audio.sample_rate > 0 ? o->audio.sample_rate :
			 s->dec->sample_rate);

	s->enc = avcodec_alloc_context3(c);
	s->enc->sample_rate = rate;
	s->enc->sample_fmt = media_enc_sample_fmt(c);
	av_channel_layout_default(&s->enc->ch_layout, ch);
	s->enc->bit_rate = o->audio.bitrate > 0 ? o->audio.bitrate : 128000;
	s->enc->time_base = (AVRational){ 1, rate };
	if (open_encoder(t, s, c, err) < 0)
		return -1;

	if (s->dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
		av_channel_layout_default(&s->dec->ch_layout,
					  s->dec->ch_layout.nb_channels);
	av_channel_layout_describe(&s->dec->ch_layout, layout, sizeof(layout));
	snprintf(args, sizeof(args),
		 "time_base=1/%d:sample_rate=%d:sample_fmt=%s:channel_layout=%s",
		 s->dec->sample_rate, s->dec->sample_rate,
		 av_get_sample_fmt_name(s->dec->sample_fmt), layout);
	av_channel_layout_describe(&s->enc->ch_layout, layout, sizeof(layout));
	snprintf(desc, sizeof(desc),
		 "aresample=%d,aformat=sample_fmts=%s:sample_rates=%d:channel_layouts=%s",
		 rate, av_get_sample_fmt_name(s->enc->sample_fmt), rate, layout);
	if (build_graph(t, s, args, desc, err) < 0)
		return -1;
	if (!(c->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) &&
	    s->enc->frame_size > 0)
		av_buffersink_set_frame_size(s->sink, (unsigned)s->enc->frame_size);
	s->st = new_stream(t);
	s->st->time_base = s->enc->time_base;
	return avcodec_parameters_from_context(s->st->codecpar, s->enc);
}

static void note_time(struct tc *t, struct ost *s, int64_t ts, AVRational tb)
{
	double sec;

	if (ts == AV_NOPTS_VALUE)
		return;
	sec = ts * av_q2d(tb);
	if (sec > s->out_s)
		s->out_s = sec;
	if (t->expect_s > 0)
		media_report(&t->w, 100 * sec / t->expect_s, "encode", 0);
}

static int write_pkt(struct tc *t, struct ost *s, AVPacket *pkt,
		     AVRational from)
{
	int64_t end;
	int rc;

	av_packet_rescale_ts(pkt, from, s->st->time_base);
	pkt->stream_index = s->st->index;
	end = pkt->pts != AV_NOPTS_VALUE ? pkt->pts + pkt->duration : pkt->dts;
	note_time(t, s, end, s->st->time_base);
	rc = av_interleaved_write_frame(t->oc, pkt);
	av_packet_unref(pkt);
	return rc;
}

static int drain_encoder(struct tc *t, struct ost *s, const AVFrame *f)
{
	int rc = avcodec_send_frame(s->enc, f);

	while (rc >= 0) {
		rc = avcodec_receive_packet(s->enc, t->pkt);
		if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
			return 0;
		if (rc < 0)
			return rc;
		/* x264 leaves durations unset; the muxer wants them for the
		 * last frame's length. */
		if (!t->pkt->duration && s == &t->v && s->enc->framerate.num > 0)
			t->pkt->duration = av_rescale_q(1, av_inv_q(s->enc->framerate),
							s->enc->time_base);
		rc = write_pkt(t, s, t->pkt, s->enc->time_base);
	}
	return rc;
}

/* Pushes a frame (NULL = end) through the graph into the encoder. */
static int filter_encode(struct tc *t, struct ost *s, AVFrame *f)
{
	int rc = av_buffersrc_add_frame_flags(s->src, f, 0);

	while (rc >= 0) {
		rc = av_buffersink_get_frame(s->sink, t->filt);
		if (rc == AVERROR(EAGAIN))
			return 0;
		if (rc == AVERROR_EOF)
			return drain_encoder(t, s, NULL);
		if (rc < 0)
			return rc;
		t->filt->pict_type = AV_PICTURE_TYPE_NONE;
		rc = drain_encoder(t, s, t->filt);
		av_frame_unref(t->filt);
	}
	return rc;
}

/* Decodes what the decoder has and sends it on, trimming. */
static int decode_frames(struct tc *t, struct ost *s)
{
	int rc;

	for (;;) {
		int64_t ts;

		rc = avcodec_receive_frame(s->dec, t->frame);
		if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
			return 0;
		if (rc == AVERROR_INVALIDDATA) {
			s->bad++;
			continue;
		}
		if (rc < 0)
			return rc;
		ts = t->frame->best_effort_timestamp;
		if (ts == AV_NOPTS_VALUE || ts < s->start_ts || s->done) {
			av_frame_unref(t->frame);
			continue;
		}
		if (ts >= s->end_ts) {
			s->done = 1;
			av_frame_unref(t->frame);
			continue;
		}
		t->frame->pts = ts - s->start_ts;
		rc = filter_encode(t, s, t->frame);
		av_frame_unref(t->frame);
		if (rc < 0)
			return rc;
	}
}

static int handle_packet(struct tc *t, struct ost *s, AVPacket *pkt)
{
	int rc;

	s->total++;
	if (s->copy) {
		int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;

		if (ts != AV_NOPTS_VALUE && ts >= s->end_ts) {
			s->done = 1;
			return 0;
		}
		/* Copy starts at the keyframe the seek landed on. */
		if (s->copy_off == AV_NOPTS_VALUE) {
			if (!(pkt->flags & AV_PKT_FLAG_KEY))
				return 0;
			s->copy_off = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : ts;
		}
		if (pkt->pts != AV_NOPTS_VALUE)
			pkt->pts -= s->copy_off;
		if (pkt->dts != AV_NOPTS_VALUE)
			pkt->dts -= s->copy_off;
		return write_pkt(t, s, pkt, s->ist->time_base);
	}
	rc = avcodec_send_packet(s->dec, pkt);
	if (rc == AVERROR_INVALIDDATA) {
		s->bad++;
		return 0;
	}
	if (rc < 0 && rc != AVERROR(EAGAIN))
		return rc;
	return decode_frames(t, s);
}

static int flush(struct tc *t, struct ost *s)
{
	int rc;

	if (!s->on || s->copy)
		return 0;
	rc = avcodec_send_packet(s->dec, NULL);
	if (rc < 0 && rc != AVERROR_EOF)
		return rc;
	if ((rc = decode_frames(t, s)) < 0)
		return rc;
	return filter_encode(t, s, NULL);
}

/* Too many packets the decoder refused: the input is damaged. A few bad
 * packets are normal in real files and are concealed. */
static int check_corrupt(struct tc *t, struct ost *s, struct err *err)
{
	if (s->on && s->bad > 25 && s->bad * 10 > s->total)
		return err_set(err, ERR_INVALID,
			       "input '%s' is corrupt: %d of %d %s packets cannot "
			       "be decoded", t->name, s->bad, s->total,
			       s == &t->v ? "video" : "audio");
	return 0;
}

static void ost_release(struct ost *s)
{
	avcodec_free_context(&s->dec);
	avcodec_free_context(&s->enc);
	avfilter_graph_free(&s->graph);
}

static int pick_streams(struct tc *t, struct err *err)
{
	const struct media_transcode_opts *o = t->o;
	const struct job_container *b = job_container_find(o->container);
	const char *vc = o->video.codec[0] ? o->video.codec : b->vdef;
	const char *ac = o->audio.codec[0] ? o->audio.codec : b->adef;
	int vi = av_find_best_stream(t->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	int ai = av_find_best_stream(t->ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
	struct media_transcode_opts *mo = (struct media_transcode_opts *)o;

	/* The container's default codecs fill in the blanks (the caller's
	 * struct is only read; tc->o points at a private copy). */
	if (!o->video.codec[0])
		snprintf(mo->video.codec, sizeof(mo->video.codec), "%s", vc);
	if (!o->audio.codec[0])
		snprintf(mo->audio.codec, sizeof(mo->audio.codec), "%s", ac);
	if (vi >= 0 && (t->ic->streams[vi]->disposition & AV_DISPOSITION_ATTACHED_PIC))
		vi = -1;
	if (strcmp(vc, "none") && vi >= 0) {
		t->v.on = 1;
		t->v.ist = t->ic->streams[vi];
	}
	if (strcmp(ac, "none") && ai >= 0) {
		t->a.on = 1;
		t->a.ist = t->ic->streams[ai];
	}
	if (!t->v.on && !t->a.on)
		return err_set(err, ERR_INVALID,
			       "nothing to write: input '%s' has no %s stream",
			       t->name, !strcmp(vc, "none") ? "audio" :
			       !strcmp(ac, "none") ? "video" : "audio or video");
	return 0;
}

static int trim_setup(struct tc *t, struct err *err)
{
	const struct media_transcode_opts *o = t->o;
	struct ost *ss[2] = { &t->v, &t->a };
	int i;

	t->in_dur_s = t->ic->duration > 0 ? (double)t->ic->duration / AV_TIME_BASE : 0;
	if (t->in_dur_s > 0 && o->start_s >= t->in_dur_s)
		return err_set(err, ERR_INVALID,
			       "start_s %g is past the end of input '%s' (%.3f s)",
			       o->start_s, t->name, t->in_dur_s);
	t->expect_s = t->in_dur_s > 0 ? t->in_dur_s - o->start_s : 0;
	if (o->duration_s > 0 && (t->expect_s <= 0 || o->duration_s < t->expect_s))
		t->expect_s = o->duration_s;
	for (i = 0; i < 2; i++) {
		struct ost *s = ss[i];
		int64_t st0;

		if (!s->on)
			continue;
		st0 = s->ist->start_time != AV_NOPTS_VALUE ? s->ist->start_time : 0;
		s->start_ts = st0 + av_rescale_q(llrint(o->start_s * AV_TIME_BASE),
						 AV_TIME_BASE_Q, s->ist->time_base);
		s->end_ts = o->duration_s > 0 ?
			s->start_ts + av_rescale_q(llrint(o->duration_s * AV_TIME_BASE),
						   AV_TIME_BASE_Q, s->ist->time_base) :
			INT64_MAX;
	}
	if (o->start_s > 0) {
		int64_t ts = llrint(o->start_s * AV_TIME_BASE);

		if (t->ic->start_time != AV_NOPTS_VALUE)
			ts += t->ic->start_time;
		/* To the keyframe at or before the start; frames before the
		 * start are decoded and dropped. */
		avformat_seek_file(t->ic, -1, INT64_MIN, ts, ts, 0);
	}
	return 0;
}

static json_t *describe_output(const char *out, AVFormatContext *fc)
{
	json_t *v = json_null(), *a = json_null();
	int64_t size = avio_size(fc->pb);
	unsigned i;

	for (i = 0; i < fc->nb_streams; i++) {
		AVStream *st = fc->streams[i];
		AVCodecParameters *p = st->codecpar;

		if (p->codec_type == AVMEDIA_TYPE_VIDEO && json_is_null(v)) {
			AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate :
				st->r_frame_rate;

			v = json_pack("{s:s, s:i, s:i, s:f}",
				      "codec", avcodec_get_name(p->codec_id),
				      "width", p->width, "height", p->height,
				      "fps", fr.den ? av_q2d(fr) : 0.0);
		} else if (p->codec_type == AVMEDIA_TYPE_AUDIO && json_is_null(a)) {
			a = json_pack("{s:s, s:i, s:i}",
				      "codec", avcodec_get_name(p->codec_id),
				      "sample_rate", p->sample_rate,
				      "channels", p->ch_layout.nb_channels);
		}
	}
	return json_pack("{s:s, s:f, s:I, s:o, s:o}", "output", out,
			 "duration_s", fc->duration > 0 ?
			 (double)fc->duration / AV_TIME_BASE : 0.0,
			 "bytes", (json_int_t)(size > 0 ? size : 0),
			 "video", v, "audio", a);
}

static int run(struct tc *t, struct err *err)
{
	const struct job_container *b = job_container_find(t->o->container);
	AVDictionary *mopts = NULL;
	int rc;

	if (media_open_input(t->in, NULL, &t->w, &t->ic, err) < 0)
		return -1;
	rc = avformat_alloc_output_context2(&t->oc, NULL, b->muxer, t->out);
	if (rc < 0 || !t->oc)
		return media_averr(err, &t->w, rc, "cannot create a %s output",
				   b->name);
	t->oc->interrupt_callback.callback = media_interrupt;
	t->oc->interrupt_callback.opaque = &t->w;
	if (pick_streams(t, err) < 0 || trim_setup(t, err) < 0)
		return -1;
	if (t->v.on && (!strcmp(t->o->video.codec, "copy") ?
			setup_copy(t, &t->v, "video", err) : setup_video(t, err)) < 0)
		return -1;
	if (t->a.on && (!strcmp(t->o->audio.codec, "copy") ?
			setup_copy(t, &t->a, "audio", err) : setup_audio(t, err)) < 0)
		return -1;
	rc = avio_open2(&t->oc->pb, t->out, AVIO_FLAG_WRITE,
			&t->oc->interrupt_callback, NULL);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot write output '%s'",
				   media_base(t->out));
	if (b->faststart)
		av_dict_set(&mopts, "movflags", "+faststart", 0);
	rc = avformat_write_header(t->oc, &mopts);
	av_dict_free(&mopts);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot write output '%s'",
				   media_base(t->out));
	media_report(&t->w, 0, "encode", 1);

	for (;;) {
		struct ost *s;

		if ((!t->v.on || t->v.done) && (!t->a.on || t->a.done))
			break;
		rc = av_read_frame(t->ic, t->pkt);
		if (rc == AVERROR_EOF)
			break;
		if (rc < 0)
			return media_averr(err, &t->w, rc, "cannot read input '%s'",
					   t->name);
		s = t->v.on && t->pkt->stream_index == t->v.ist->index ? &t->v :
			t->a.on && t->pkt->stream_index == t->a.ist->index ? &t->a :
			NULL;
		rc = s && !s->done ? handle_packet(t, s, t->pkt) : 0;
		av_packet_unref(t->pkt);
		if (rc < 0)
			return media_averr(err, &t->w, rc, "cannot transcode input '%s'",
					   t->name);
		if (check_corrupt(t, &t->v, err) < 0 ||
		    check_corrupt(t, &t->a, err) < 0)
			return -1;
		if (media_interrupt(&t->w))
			return media_averr(err, &t->w, AVERROR_EXIT, "stopped");
	}
	if ((rc = flush(t, &t->v)) < 0 || (rc = flush(t, &t->a)) < 0)
		return media_averr(err, &t->w, rc, "cannot transcode input '%s'",
				   t->name);
	if (check_corrupt(t, &t->v, err) < 0 || check_corrupt(t, &t->a, err) < 0)
		return -1;
	/* An input that ends well before the duration its header declares
	 * was cut short (a partial upload or download). */
	if (t->expect_s > 2) {
		double got = t->v.on ? t->v.out_s : t->a.out_s;

		if (got < 0.5 * t->expect_s)
			return err_set(err, ERR_INVALID,
				       "input '%s' is truncated: its data ends at "
				       "%.2f s of %.2f s", t->name, got, t->expect_s);
	}
	media_report(&t->w, 99, "encode", 1);
	rc = av_write_trailer(t->oc);
	if (rc < 0)
		return media_averr(err, &t->w, rc, "cannot finish output '%s'",
				   media_base(t->out));
	return 0;
}

int media_transcode_file(const char *in, const char *out,
			 const struct media_transcode_opts *opts,
			 const struct media_ctl *ctl, json_t **result,
			 struct err *err)
{
	struct media_transcode_opts o = *opts;
	struct media_watch w2;
	AVFormatContext *check = NULL;
	struct tc t;
	int rc;

	memset(&t, 0, sizeof(t));
	t.o = &o;
	t.in = in;
	t.out = out;
	t.name = media_base(in);
	media_watch_init(&t.w, ctl);
	if (!job_container_find(o.container))
		return err_set(err, ERR_INVALID, "unknown container '%s'", o.container);
	t.pkt = av_packet_alloc();
	t.frame = av_frame_alloc();
	t.filt = av_frame_alloc();
	rc = run(&t, err);
	if (t.oc) {
		if (t.oc->pb)
			avio_closep(&t.oc->pb);
		avformat_free_context(t.oc);
	}
	ost_release(&t.v);
	ost_release(&t.a);
	avformat_close_input(&t.ic);
	av_packet_free(&t.pkt);
	av_frame_free(&t.frame);
	av_frame_free(&t.filt);
	if (rc < 0) {
		media_unlink(out);
		return -1;
	}
	/* Describe what was written from the file itself. */
	media_watch_init(&w2, NULL);
	if (media_open_input(out, NULL, &w2, &check, err) < 0) {
		err_wrap(err, "output check failed");
		media_unlink(out);
		return -1;
	}
	*result = describe_output(out, check);
	avformat_close_input(&check);
	media_report(&t.w, 100, "encode", 1);
	return 0;
}
