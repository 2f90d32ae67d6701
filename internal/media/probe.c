/* probe.c - media.probe: container, duration and streams as JSON. */
#include "media/internal.h"

#include "base/err.h"

#include <libavutil/pixdesc.h>
#include <string.h>

static json_t *num_or_null(double v, int valid)
{
	return valid ? json_real(v) : json_null();
}

static json_t *int_or_null(json_int_t v, int valid)
{
	return valid ? json_integer(v) : json_null();
}

static const char *type_name(enum AVMediaType t)
{
	const char *s = av_get_media_type_string(t);

	return s ? s : "unknown";
}

static json_t *tags_json(AVDictionary *d)
{
	const AVDictionaryEntry *e = NULL;
	json_t *o = json_object();

	while ((e = av_dict_get(d, "", e, AV_DICT_IGNORE_SUFFIX))) {
		json_t *v = json_string(e->value);

		/* Tags are untrusted text: drop what is not UTF-8. */
		if (v)
			json_object_set_new(o, e->key, v);
	}
	return o;
}

static json_t *stream_json(AVStream *st)
{
	AVCodecParameters *p = st->codecpar;
	int video = p->codec_type == AVMEDIA_TYPE_VIDEO;
	int audio = p->codec_type == AVMEDIA_TYPE_AUDIO;
	const char *profile = avcodec_profile_name(p->codec_id, p->profile);
	const char *pix = video ? av_get_pix_fmt_name(p->format) : NULL;
	AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate :
		st->r_frame_rate;
	int has_dur = st->duration != AV_NOPTS_VALUE && st->time_base.den;

	return json_pack("{s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		"index", st->index,
		"type", type_name(p->codec_type),
		"codec", avcodec_get_name(p->codec_id),
		"profile", profile ? json_string(profile) : json_null(),
		"width", int_or_null(p->width, video),
		"height", int_or_null(p->height, video),
		"fps", num_or_null(fr.den ? av_q2d(fr) : 0, video && fr.num > 0 && fr.den > 0),
		"pix_fmt", pix ? json_string(pix) : json_null(),
		"sample_rate", int_or_null(p->sample_rate, audio),
		"channels", int_or_null(p->ch_layout.nb_channels, audio),
		"duration_s", num_or_null(has_dur ? st->duration * av_q2d(st->time_base) : 0,
					  has_dur));
}

json_t *media_probe_json(AVFormatContext *fc, int64_t size_bytes)
{
	json_t *streams = json_array();
	unsigned i;

	for (i = 0; i < fc->nb_streams; i++)
		json_array_append_new(streams, stream_json(fc->streams[i]));
	return json_pack("{s:s, s:o, s:I, s:o, s:o, s:o}",
		"format", fc->iformat->name,
		"duration_s", num_or_null((double)fc->duration / AV_TIME_BASE,
					  fc->duration != AV_NOPTS_VALUE && fc->duration > 0),
		"size_bytes", (json_int_t)size_bytes,
		"bit_rate", int_or_null(fc->bit_rate, fc->bit_rate > 0),
		"streams", streams,
		"tags", tags_json(fc->metadata));
}

int media_probe_file(const char *path, const struct media_ctl *ctl,
		     json_t **out, struct err *err)
{
	struct media_watch w;
	AVFormatContext *fc = NULL;
	int64_t size;

	media_watch_init(&w, ctl);
	if (media_open_input(path, NULL, &w, &fc, err) < 0)
		return -1;
	size = fc->pb ? avio_size(fc->pb) : -1;
	*out = media_probe_json(fc, size < 0 ? 0 : size);
	avformat_close_input(&fc);
	return 0;
}

/* A read-only memory file for the fuzz target. */
struct membuf {
	const uint8_t *data;
	size_t len, pos;
};

static int mem_read(void *opaque, uint8_t *buf, int n)
{
	struct membuf *m = opaque;
	size_t left = m->len - m->pos;

	if (left == 0)
		return AVERROR_EOF;
	if ((size_t)n > left)
		n = (int)left;
	memcpy(buf, m->data + m->pos, (size_t)n);
	m->pos += (size_t)n;
	return n;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence)
{
	struct membuf *m = opaque;
	int64_t base;

	switch (whence & ~AVSEEK_FORCE) {
	case AVSEEK_SIZE: return (int64_t)m->len;
	case SEEK_SET: base = 0; break;
	case SEEK_CUR: base = (int64_t)m->pos; break;
	case SEEK_END: base = (int64_t)m->len; break;
	default: return AVERROR(EINVAL);
	}
	if (off > (int64_t)m->len - base || base + off < 0)
		return AVERROR(EINVAL);
	m->pos = (size_t)(base + off);
	return (int64_t)m->pos;
}

int media_probe_buffer(const uint8_t *data, size_t len, json_t **out,
		       struct err *err)
{
	struct membuf m = { data, len, 0 };
	struct media_watch w;
	AVFormatContext *fc = NULL;
	AVIOContext *pb;
	uint8_t *iobuf;
	int rc = -1;

	if (len == 0)
		return err_set(err, ERR_INVALID,
			       "cannot open input 'memory': the file is empty");
	media_watch_init(&w, NULL);
	iobuf = av_malloc(32768);
	if (!iobuf)
		return err_set(err, ERR_TOOLARGE, "out of memory");
	pb = avio_alloc_context(iobuf, 32768, 0, &m, mem_read, NULL, mem_seek);
	if (!pb) {
		av_free(iobuf);
		return err_set(err, ERR_TOOLARGE, "out of memory");
	}
	if (media_open_input("memory", pb, &w, &fc, err) < 0)
		goto out;
	*out = media_probe_json(fc, (int64_t)len);
	avformat_close_input(&fc);
	rc = 0;
out:
	/* With custom I/O the context stays ours; its buffer may have been
	 * replaced by FFmpeg, so free the current one. */
	av_freep(&pb->buffer);
	avio_context_free(&pb);
	return rc;
}
