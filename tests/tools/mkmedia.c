/* mkmedia - writes a synthetic clip with known content (see media.h,
 * media_synth_file): a flat colour per second, a frame-number bar, a sine
 * tone.
 *
 *   mkmedia OUT.mp4 [-d SECONDS] [-s WxH] [-r FPS] [-g GOP] [-n] [-f]
 *               [-p PRESET]
 *     -n  no audio    -f  faststart (MP4/MOV)
 */
#include "media/media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: mkmedia OUT [-d SECONDS] [-s WxH] [-r FPS] "
		"[-g GOP] [-n] [-f] [-p PRESET]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct media_synth_opts o = {
		.duration_s = 3, .width = 320, .height = 240, .fps = 25,
		.audio = 1,
	};
	struct err err;
	int c;

	while ((c = getopt(argc, argv, "d:s:r:g:nfp:h")) != -1) {
		switch (c) {
		case 'd': o.duration_s = atof(optarg); break;
		case 's':
			if (sscanf(optarg, "%dx%d", &o.width, &o.height) != 2)
				usage();
			break;
		case 'r': o.fps = atoi(optarg); break;
		case 'g': o.gop = atoi(optarg); break;
		case 'n': o.audio = 0; break;
		case 'f': o.faststart = 1; break;
		case 'p': o.preset = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	if (media_synth_file(argv[optind], &o, &err) < 0) {
		fprintf(stderr, "mkmedia: %s\n", err.msg);
		return 1;
	}
	return 0;
}
