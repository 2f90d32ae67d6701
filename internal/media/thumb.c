/* thumb.c - media.thumbnail: one frame at a time offset, scaled, written
 * as JPEG, PNG or WebP. */
#include "media/internal.h"

#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Output size: both given, one given (the other keeps the aspect ratio,
 * rounded to even), or the source's. */
static void fit(int sw, int sh, int w, int h, int *ow, int *oh)
{
	if (w > 0 && h > 0) {
		*ow = w;
		*oh = h;
	} else if (w > 0) {
		*ow = w;
		*oh = (int)(((int64_t)sh * w + sw / 2) / sw);
	} else if (h > 0) {
		*oh = h;
		*ow = (int)(((int64_t)sw * h + sh / 2) / sh);
	} else {
		*ow = sw;
		*oh = sh;
	}
	if (w <= 0 && *ow > 2)
		*ow &= ~1;
	if (h <= 0 && *oh > 2)
		*oh &= ~1;
	if (*ow < 1)
		*ow = 1;
	if (*oh < 1)
		*oh = 1;
}

/* Decodes stream `vidx` from the current position to the first frame at
 * or after `ts` (stream time base); at the end of the stream, the last
 * frame. Returns 0 with *out set (caller frees), or -1. */
static int decode_until(AVFormatContext *fc, AVCodecContext *dec, int vidx,
			int64_t ts, struct media_watch *w, AVFrame **out,
			struct err *err)
{
	const char *name = media_base(fc->url);
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_alloc(), *last = NULL;
	int rc, eof = 0, bad = 0;

	for (;;) {
		if (!eof) {
			rc = av_read_frame(fc, pkt);
			if (rc == AVERROR_EOF || (rc < 0 && !w->stop &&
						  rc != AVERROR_EXIT)) {
				eof = 1;
				rc = avcodec_send_packet(dec, NULL);
			} else if (rc < 0) {
				media_averr(err, w, rc, "cannot read input '%s'", name);
				goto fail;
			} else if (pkt->stream_index != vidx) {
				av_packet_unref(pkt);
				continue;
			} else {
				rc = avcodec_send_packet(dec, pkt);
				av_packet_unref(pkt);
				if (rc == AVERROR_INVALIDDATA) {
					/* A damaged packet: go on, but not forever. */
					if (++bad > 50) {
						err_set(err, ERR_INVALID,
							"input '%s' is corrupt: too many "
							"undecodable video packets", name);
						goto fail;
					}
					continue;
				}
			}
			if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_EOF) {
				media_averr(err, w, rc, "cannot decode input '%s'", name);
				goto fail;
			}
		}
		while ((rc = avcodec_receive_frame(dec, f)) >= 0) {
			int64_t pts = f->best_effort_timestamp;

			av_frame_free(&last);
			last = f;
			f = av_frame_alloc();
			if (pts != AV_NOPTS_VALUE && pts >= ts)
				goto done;
		}
		if (rc == AVERROR_EOF)
			break;
		if (rc != AVERROR(EAGAIN)) {
			if (rc == AVERROR_INVALIDDATA && ++bad <= 50)
				continue;
			media_averr(err, w, rc, "cannot decode input '%s'", name);
			goto fail;
		}
		if (media_interrupt(w)) {
			media_averr(err, w, AVERROR_EXIT, "stopped");
			goto fail;
		}
	}
done:
	if (!last) {
		err_set(err, ERR_INVALID, "input '%s': no video frame could be decoded",
			name);
		goto fail;
	}
	av_packet_free(&pkt);
	av_frame_free(&f);
	*out = last;
	return 0;
fail:
	av_packet_free(&pkt);
	av_frame_free(&f);
	av_frame_free(&last);
	return -1;
}

static int encode_image(const AVFrame *src, int ow, int oh,
			enum media_image fmt, AVPacket *pkt, struct err *err)
{
	static const char *const names[] = { "mjpeg", "png", "libwebp" };
	const AVCodec *c = avcodec_find_encoder_by_name(names[fmt]);
	enum AVPixelFormat pix = fmt == MEDIA_JPEG ? AV_PIX_FMT_YUVJ420P :
		fmt == MEDIA_PNG ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
	AVCodecContext *enc = NULL;
	struct SwsContext *sws = NULL;
	AVFrame *f = NULL;
	int rc, ret = -1;

	if (!c)
		return err_set(err, ERR_INTERNAL, "no %s encoder in this FFmpeg",
			       names[fmt]);
	sws = sws_getContext(src->width, src->height, src->format, ow, oh, pix,
			     SWS_BICUBIC, NULL, NULL, NULL);
	if (!sws) {
		err_set(err, ERR_INVALID, "cannot scale %dx%d %s to %dx%d",
			src->width, src->height,
			av_get_pix_fmt_name(src->format) ? av_get_pix_fmt_name(src->format) : "?",
			ow, oh);
		goto out;
	}
	f = av_frame_alloc();
	f->format = pix;
	f->width = ow;
	f->height = oh;
	if (av_frame_get_buffer(f, 0) < 0) {
		err_set(err, ERR_TOOLARGE, "out of memory");
		goto out;
	}
	sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0,
		  src->height, f->data, f->linesize);
	enc = avcodec_alloc_context3(c);
	enc->width = ow;
	enc->height = oh;
	enc->pix_fmt = pix;
	enc->time_base = (AVRational){ 1, 25 };
	if (fmt == MEDIA_JPEG) {
		/* Quality 2 of 31: what people expect of a thumbnail. */
		enc->flags |= AV_CODEC_FLAG_QSCALE;
		enc->global_quality = FF_QP2LAMBDA * 2;
		f->quality = enc->global_quality;
		enc->color_range = AVCOL_RANGE_JPEG;
	}
	f->pts = 0;
	rc = avcodec_open2(enc, c, NULL);
	if (rc < 0 || (rc = avcodec_send_frame(enc, f)) < 0 ||
	    (rc = avcodec_send_frame(enc, NULL)) < 0 ||
	    (rc = avcodec_receive_packet(enc, pkt)) < 0) {
		media_averr(err, NULL, rc, "cannot encode the %s image", names[fmt]);
		goto out;
	}
	ret = 0;
out:
	sws_freeContext(sws);
	av_frame_free(&f);
	avcodec_free_context(&enc);
	return ret;
}

int media_thumbnail_file(const char *in, const char *out,
			 const struct media_thumb_opts *o,
			 const struct media_ctl *ctl, json_t **result,
			 struct err *err)
{
	struct media_watch w;
	AVFormatContext *fc = NULL;
	AVCodecContext *dec = NULL;
	AVFrame *frame = NULL;
	AVPacket *pkt = av_packet_alloc();
	AVStream *st;
	FILE *fp;
	int64_t ts, start;
	int vidx, ow, oh, ret = -1;

	media_watch_init(&w, ctl);
	if (!(o->at_s >= 0) || o->width < 0 || o->height < 0 ||
	    o->width > MEDIA_MAX_SIDE || o->height > MEDIA_MAX_SIDE) {
		err_set(err, ERR_INVALID, "bad thumbnail options");
		goto out;
	}
	if (media_open_input(in, NULL, &w, &fc, err) < 0)
		goto out;
	vidx = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (vidx < 0) {
		err_set(err, ERR_INVALID, "input '%s' has no video stream",
			media_base(in));
		goto out;
	}
	st = fc->streams[vidx];
	if (media_open_decoder(fc, st, &w, &dec, err) < 0)
		goto out;
	media_report(&w, 10, "decode", 1);
	start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
	ts = start + av_rescale_q((int64_t)(o->at_s * AV_TIME_BASE),
				  AV_TIME_BASE_Q, st->time_base);
	/* The keyframe at or before ts; if seeking fails we decode from the
	 * start, which is slower but still right. */
	if (ts > start && avformat_seek_file(fc, vidx, INT64_MIN, ts, ts, 0) < 0)
		avformat_seek_file(fc, vidx, INT64_MIN, start, start, 0);
	if (decode_until(fc, dec, vidx, ts, &w, &frame, err) < 0)
		goto out;
	media_report(&w, 80, "encode", 1);
	fit(frame->width, frame->height, o->width, o->height, &ow, &oh);
	if (encode_image(frame, ow, oh, o->format, pkt, err) < 0)
		goto out;
	fp = fopen(out, "wb");
	if (!fp || fwrite(pkt->data, 1, (size_t)pkt->size, fp) != (size_t)pkt->size) {
		err_set(err, ERR_IO, "cannot write '%s': %s", media_base(out), strerror(errno));
		if (fp)
			fclose(fp); /* the short write is the error that counts */
		media_unlink(out);
		goto out;
	}
	if (fclose(fp) != 0) {
		err_set(err, ERR_IO, "cannot write '%s': %s", media_base(out), strerror(errno));
		media_unlink(out);
		goto out;
	}
	*result = json_pack("{s:s, s:i, s:i, s:I}", "output", out, "width", ow,
			    "height", oh, "bytes", (json_int_t)pkt->size);
	media_report(&w, 100, "encode", 1);
	ret = 0;
out:
	avcodec_free_context(&dec);
	avformat_close_input(&fc);
	av_frame_free(&frame);
	av_packet_free(&pkt);
	return ret;
}

int media_image_pixel(const char *path, int x, int y, uint32_t *rgb,
		      int *width, int *height, struct err *err)
{
	AVFormatContext *fc = NULL;
	AVCodecContext *dec = NULL;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_alloc();
	struct SwsContext *sws = NULL;
	uint8_t *dst[4] = { NULL };
	struct media_watch w;
	int dls[4], rc, ret = -1;

	media_watch_init(&w, NULL);
	if ((rc = avformat_open_input(&fc, path, NULL, NULL)) < 0 ||
	    (rc = avformat_find_stream_info(fc, NULL)) < 0 ||
	    fc->nb_streams < 1) {
		media_averr(err, NULL, rc, "cannot open image '%s'", path);
		goto out;
	}
	if (media_open_decoder(fc, fc->streams[0], NULL, &dec, err) < 0)
		goto out;
	if ((rc = av_read_frame(fc, pkt)) < 0 ||
	    (rc = avcodec_send_packet(dec, pkt)) < 0 ||
	    (rc = avcodec_send_packet(dec, NULL)) < 0 ||
	    (rc = avcodec_receive_frame(dec, f)) < 0) {
		media_averr(err, NULL, rc, "cannot decode image '%s'", path);
		goto out;
	}
	if (x < 0 || y < 0 || x >= f->width || y >= f->height) {
		err_set(err, ERR_INVALID, "pixel (%d, %d) outside %dx%d", x, y,
			f->width, f->height);
		goto out;
	}
	sws = sws_getContext(f->width, f->height, f->format, f->width,
			     f->height, AV_PIX_FMT_RGB24, SWS_POINT, NULL, NULL,
			     NULL);
	if (!sws || av_image_alloc(dst, dls, f->width, f->height,
				   AV_PIX_FMT_RGB24, 1) < 0) {
		err_set(err, ERR_INTERNAL, "cannot convert image '%s'", path);
		goto out;
	}
	sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0,
		  f->height, dst, dls);
	{
		const uint8_t *p = dst[0] + (size_t)y * dls[0] + 3 * x;

		*rgb = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
	}
	*width = f->width;
	*height = f->height;
	ret = 0;
out:
	av_freep(&dst[0]);
	sws_freeContext(sws);
	avcodec_free_context(&dec);
	avformat_close_input(&fc);
	av_frame_free(&f);
	av_packet_free(&pkt);
	return ret;
}
