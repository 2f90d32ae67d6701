/* freeport - prints N free TCP ports (default 1), one a line.
 *
 * The ports are taken from outside the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range): a port from inside it, as bind to port
 * 0 picks, may be handed to any outgoing connection (a Redis client, curl)
 * between this pick and the server's own bind, which then fails with
 * "Address already in use". A port is chosen at random below the range
 * (or above it), checked free on every address, and held until all are
 * chosen, so they are distinct. Where nothing outside the range is free,
 * the kernel picks (port 0), as before. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOWEST 10000 /* below: well-known and registered services */

/* A socket bound to `port` (0: the kernel's pick) on every address, or -1. */
static int hold(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_ANY);
	a.sin_port = htons((uint16_t)port);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, i, k, fds[64], lo = 32768, hi = 60999, span;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (n < 1 || n > 64)
		return 2;
	if (f) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2)
			lo = 32768, hi = 60999;
		fclose(f);
	}
	/* the ports outside [lo, hi], from LOWEST up */
	span = (lo > LOWEST ? lo - LOWEST : 0) + (hi < 65535 ? 65535 - hi : 0);
	srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
	for (i = 0; i < n; i++) {
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		fds[i] = -1;
		for (k = 0; k < 200 && span > 0 && fds[i] < 0; k++) {
			int r = rand() % span;
			int port = lo > LOWEST && r < lo - LOWEST ? LOWEST + r
								 : hi + 1 + (r - (lo > LOWEST ? lo - LOWEST : 0));

			fds[i] = hold(port);
		}
		if (fds[i] < 0)
			fds[i] = hold(0);
		if (fds[i] < 0 || getsockname(fds[i], (struct sockaddr *)&a, &len) < 0) {
			perror("freeport");
			return 1;
		}
		printf("%d\n", ntohs(a.sin_port));
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	return 0;
}
