/* check_media.c - payload checks of the media.* types (no FFmpeg here: the
 * API links this file). */
#include "jobs/checks.h"

static int check_io(const json_t *p, int need_output, struct err *err)
{
	const char *s;

	if (jobs_get_string(p, "input", 1, &s, err) < 0)
		return -1;
	if (need_output && jobs_get_string(p, "output", 1, &s, err) < 0)
		return -1;
	return 0;
}

int jobs_check_media_probe(const json_t *payload, struct err *err)
{
	return check_io(payload, 0, err);
}

int jobs_check_media_thumbnail(const json_t *payload, struct err *err)
{
	return check_io(payload, 1, err);
}

int jobs_check_media_transcode(const json_t *payload, struct err *err)
{
	return check_io(payload, 1, err);
}
