/* jobs.c - the media.* job handlers: fetch the input, run the work in an
 * isolated child, publish the output. */
#include "media/internal.h"

#include "base/clock.h"
#include "fetch/fetch.h"
#include "job/job.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum op { OP_PROBE, OP_THUMB, OP_TRANSCODE };

/* Everything the child needs, without pointers: copied to a child forked
 * ahead of time (media_isolate_copy). */
struct media_job {
	enum op op;
	char in[PATH_MAX], out[PATH_MAX]; /* out: "" = none */
	struct media_thumb_opts th;
	struct media_transcode_opts tr;
	int fault; /* tests only: 1 = crash, 2 = hang (WAKEQ_MEDIA_FAULT) */
};

static int child_work(void *arg, const struct media_ctl *ctl, json_t **out,
		      struct err *err)
{
	struct media_job *j = arg;

	if (j->fault == 1)
		raise(SIGSEGV);
	if (j->fault == 2)
		for (;;)
			pause(); /* ignores nothing: SIGTERM sets a flag only */
	switch (j->op) {
	case OP_PROBE:
		return media_probe_file(j->in, ctl, out, err);
	case OP_THUMB:
		return media_thumbnail_file(j->in, j->out[0] ? j->out : NULL, &j->th, ctl,
					    out, err);
	default:
		return media_transcode_file(j->in, j->out[0] ? j->out : NULL, &j->tr, ctl,
					    out, err);
	}
}

static void copy_name(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static int get_int(const json_t *o, const char *name, int def)
{
	const json_t *v = json_object_get(o, name);

	return json_is_number(v) ? (int)json_number_value(v) : def;
}

static double get_num(const json_t *o, const char *name, double def)
{
	const json_t *v = json_object_get(o, name);

	return json_is_number(v) ? json_number_value(v) : def;
}

static const char *get_str(const json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

int media_thumb_opts_from_json(const json_t *p, struct media_thumb_opts *o,
			       struct err *err)
{
	const char *f = get_str(p, "format");

	memset(o, 0, sizeof(*o));
	o->at_s = get_num(p, "at_s", 1);
	o->width = get_int(p, "width", 0);
	o->height = get_int(p, "height", 0);
	if (!f || !strcmp(f, "jpeg"))
		o->format = MEDIA_JPEG;
	else if (!strcmp(f, "png"))
		o->format = MEDIA_PNG;
	else if (!strcmp(f, "webp"))
		o->format = MEDIA_WEBP;
	else
		return err_set(err, ERR_INVALID, "payload field 'format' must be one "
			       "of: jpeg, png, webp");
	return 0;
}

int media_transcode_opts_from_json(const json_t *p,
				   struct media_transcode_opts *o,
				   struct err *err)
{
	const json_t *v = json_object_get(p, "video");
	const json_t *a = json_object_get(p, "audio");
	struct err e;

	if (job_find("media.transcode")->check(p, &e) < 0)
		return err_set(err, ERR_INVALID, "%s", e.msg);
	media_transcode_opts_init(o);
	if (get_str(p, "container"))
		copy_name(o->container, sizeof(o->container), get_str(p, "container"));
	if (json_is_object(v)) {
		copy_name(o->video.codec, sizeof(o->video.codec), get_str(v, "codec"));
		o->video.width = get_int(v, "width", 0);
		o->video.height = get_int(v, "height", 0);
		o->video.crf = get_int(v, "crf", -1);
		o->video.bitrate = (int64_t)get_num(v, "bitrate", 0);
		copy_name(o->video.preset, sizeof(o->video.preset), get_str(v, "preset"));
		o->video.fps = get_num(v, "fps", 0);
	}
	if (json_is_object(a)) {
		copy_name(o->audio.codec, sizeof(o->audio.codec), get_str(a, "codec"));
		o->audio.bitrate = (int64_t)get_num(a, "bitrate", 0);
		o->audio.sample_rate = get_int(a, "sample_rate", 0);
		o->audio.channels = get_int(a, "channels", 0);
	}
	o->start_s = get_num(p, "start_s", 0);
	o->duration_s = get_num(p, "duration_s", 0);
	return 0;
}

/* The child's progress (0-100 of the media work) mapped into 5-95 of the
 * job, between download and upload. */
static void relay(void *opaque, double percent, const char *stage)
{
	const struct job_run *run = opaque;

	job_progress(run, 5 + percent * 0.9, stage);
}

static int retryable(enum err_code c)
{
	return c == ERR_UNAVAILABLE || c == ERR_TIMEOUT || c == ERR_IO;
}

static int fault_hook(void)
{
	const char *f = getenv("WAKEQ_MEDIA_FAULT");

	if (!f)
		return 0;
	return !strcmp(f, "crash") ? 1 : !strcmp(f, "hang") ? 2 : 0;
}

static int run_media(const struct job_run *run, enum op op,
		     struct job_outcome *out)
{
	const char *in_url = get_str(run->payload, "input");
	const char *out_url = get_str(run->payload, "output");
	struct fetch_input in;
	struct fetch_output fo;
	struct media_job j;
	struct media_ctl ctl;
	struct err e;
	json_t *res = NULL;
	int rc = -1;

	memset(&in, 0, sizeof(in));
	memset(&fo, 0, sizeof(fo));
	memset(&j, 0, sizeof(j));
	j.op = op;
	j.fault = fault_hook();
	if (op == OP_THUMB && media_thumb_opts_from_json(run->payload, &j.th, &e) < 0)
		return job_fail(out, 0, "bad payload: %s", e.msg);
	if (op == OP_TRANSCODE &&
	    media_transcode_opts_from_json(run->payload, &j.tr, &e) < 0)
		return job_fail(out, 0, "bad payload: %s", e.msg);

	memset(&ctl, 0, sizeof(ctl));
	ctl.cancel = run->cancel;
	if (run->timeout_s > 0)
		ctl.deadline_us = clock_mono_us() + (int64_t)(run->timeout_s * 1e6);
	ctl.progress = relay;
	ctl.opaque = (void *)run;

	job_progress(run, 0, "download");
	if (fetch_input_open(in_url, &in, run->cancel, &e) < 0) {
		job_fail(out, retryable(e.code), "cannot read input '%s': %s",
			  in_url, e.msg);
		goto out;
	}
	snprintf(j.in, sizeof(j.in), "%s", in.path);
	if (out_url) {
		if (fetch_output_prepare(out_url, &fo, &e) < 0) {
			job_fail(out, retryable(e.code), "cannot write output '%s': %s",
				  out_url, e.msg);
			goto out;
		}
		snprintf(j.out, sizeof(j.out), "%s", fo.path);
	}
	job_progress(run, 5, "decode");
	if (media_isolate_copy(child_work, &j, sizeof(j), j.out[0] ? j.out : NULL, &ctl, &res,
			       &e) < 0) {
		job_fail(out, retryable(e.code), "%s", e.msg);
		goto out;
	}
	if (out_url) {
		job_progress(run, 95, "upload");
		if (fetch_output_commit(&fo, run->cancel, &e) < 0) {
			job_fail(out, retryable(e.code), "cannot write output '%s': %s",
				  out_url, e.msg);
			goto out;
		}
		/* Callers know the URL, not our local path. */
		json_object_set_new(res, "output", json_string(out_url));
	} else {
		/* A probe of a temp download reports the URL's size, not ours. */
		json_object_set_new(res, "size_bytes", json_integer(in.bytes));
	}
	job_progress(run, 100, NULL);
	out->result = res;
	res = NULL;
	rc = 0;
out:
	json_decref(res);
	fetch_output_release(&fo);
	fetch_input_release(&in);
	return rc;
}

int media_job_probe(const struct job_run *run, struct job_outcome *out)
{
	return run_media(run, OP_PROBE, out);
}

int media_job_thumbnail(const struct job_run *run, struct job_outcome *out)
{
	return run_media(run, OP_THUMB, out);
}

int media_job_transcode(const struct job_run *run, struct job_outcome *out)
{
	return run_media(run, OP_TRANSCODE, out);
}

void media_bind_jobs(void)
{
	job_bind("media.probe", media_job_probe);
	job_bind("media.thumbnail", media_job_thumbnail);
	job_bind("media.transcode", media_job_transcode);
}
