/* mediatool - runs one media operation the way the worker does (in an
 * isolated child unless -i), for benchmarks and manual checks.
 *
 *   mediatool [-i] probe IN
 *   mediatool [-i] thumb IN OUT AT_S [WIDTH]
 *   mediatool [-i] transcode IN OUT [PRESET [CRF]]   (H.264/AAC MP4)
 *   mediatool forkcost N         median cost of an empty isolated call
 *     -i    in this process (no child)
 *     -n N  N times in this process (a warm worker's jobs: from the second
 *           on, each job's child was forked while the previous one ran);
 *           prints the median and p90 milliseconds of a run after the
 *           first as JSON instead of the result
 */
#include "media/media.h"

#include "base/clock.h"
#include "benchstat.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* flat: copied to a child forked ahead of time (media_isolate_copy) */
struct job {
	char op[16], in[PATH_MAX], out[PATH_MAX];
	struct media_thumb_opts th;
	struct media_transcode_opts tr;
};

static int work(void *arg, const struct media_ctl *ctl, json_t **out,
		struct err *err)
{
	struct job *j = arg;

	if (!strcmp(j->op, "probe"))
		return media_probe_file(j->in, ctl, out, err);
	if (!strcmp(j->op, "thumb"))
		return media_thumbnail_file(j->in, j->out, &j->th, ctl, out, err);
	if (!strcmp(j->op, "transcode"))
		return media_transcode_file(j->in, j->out, &j->tr, ctl, out, err);
	*out = json_object();
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: mediatool [-i] [-n N] probe IN | thumb IN OUT AT_S [W] | "
		"transcode IN OUT [PRESET [CRF]] | forkcost N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct job j;
	struct err err;
	json_t *res = NULL;
	int inproc = 0, rc = 0, runs = 1, i;
	int64_t *t;
	char *s;

	memset(&j, 0, sizeof(j));
	for (;;) {
		if (argc > 1 && !strcmp(argv[1], "-i")) {
			inproc = 1;
			argv++;
			argc--;
		} else if (argc > 2 && !strcmp(argv[1], "-n")) {
			runs = atoi(argv[2]);
			argv += 2;
			argc -= 2;
		} else {
			break;
		}
	}
	if (argc < 3 || runs < 1)
		usage();
	snprintf(j.op, sizeof(j.op), "%s", argv[1]);
	snprintf(j.in, sizeof(j.in), "%s", argv[2]);
	if (!strcmp(j.op, "forkcost")) {
		int i, n = atoi(argv[2]);
		int64_t *t = calloc((size_t)(n > 0 ? n : 1), sizeof(*t));

		for (i = 0; i < n; i++) {
			int64_t t0 = clock_mono_us();

			if (media_isolate(work, &j, NULL, NULL, &res, &err) < 0) {
				fprintf(stderr, "mediatool: %s\n", err.msg);
				return 1;
			}
			t[i] = clock_mono_us() - t0;
			json_decref(res);
		}
		stat_sort(t, (size_t)n);
		printf("{\"runs\":%d,\"median_us\":%lld,\"p90_us\":%lld}\n", n,
		       (long long)t[n / 2], (long long)t[n * 9 / 10]);
		free(t);
		return 0;
	}
	if (strcmp(j.op, "probe") && strcmp(j.op, "thumb") && strcmp(j.op, "transcode"))
		usage();
	if (!strcmp(j.op, "thumb")) {
		if (argc < 5)
			usage();
		snprintf(j.out, sizeof(j.out), "%s", argv[3]);
		j.th.at_s = atof(argv[4]);
		j.th.width = argc > 5 ? atoi(argv[5]) : 0;
		s = strrchr(j.out, '.');
		j.th.format = s && !strcmp(s, ".png") ? MEDIA_PNG :
			s && !strcmp(s, ".webp") ? MEDIA_WEBP : MEDIA_JPEG;
	} else if (!strcmp(j.op, "transcode")) {
		if (argc < 4)
			usage();
		snprintf(j.out, sizeof(j.out), "%s", argv[3]);
		media_transcode_opts_init(&j.tr);
		if (argc > 4)
			snprintf(j.tr.video.preset, sizeof(j.tr.video.preset), "%s",
				 argv[4]);
		if (argc > 5)
			j.tr.video.crf = atoi(argv[5]);
		j.tr.audio.bitrate = 128000;
	}
	t = calloc((size_t)runs, sizeof(*t));
	if (!t)
		abort();
	for (i = 0; i < runs && rc == 0; i++) {
		int64_t t0 = clock_mono_us();

		json_decref(res);
		res = NULL;
		rc = inproc ? work(&j, NULL, &res, &err) :
			media_isolate_copy(work, &j, sizeof(j), j.out[0] ? j.out : NULL, NULL,
					   &res, &err);
		t[i] = clock_mono_us() - t0;
	}
	/* reaped, so that time(1) counts its CPU and memory */
	media_isolate_done();
	if (rc < 0) {
		fprintf(stderr, "mediatool: %s (%s)\n", err.msg,
			err_code_name(err.code));
		return 1;
	}
	if (runs > 1) {
		/* the first run forks its own child: left out */
		stat_sort(t + 1, (size_t)runs - 1);
		printf("{\"runs\":%d,\"median_ms\":%.1f,\"p90_ms\":%.1f}\n", runs - 1,
		       (double)t[1 + (runs - 1) / 2] / 1e3,
		       (double)t[1 + (runs - 1) * 9 / 10] / 1e3);
		json_decref(res);
		free(t);
		return 0;
	}
	free(t);
	s = json_dumps(res, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(res);
	return 0;
}
