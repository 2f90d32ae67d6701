/* freeport - prints N free TCP ports on 127.0.0.1 (default 1), one a line.
 * The kernel picks them (bind to port 0); all are held until every one is
 * chosen, so they are distinct. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, i, fds[64];

	if (n < 1 || n > 64)
		return 2;
	for (i = 0; i < n; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t len = sizeof(a);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&a, &len) < 0) {
			perror("freeport");
			return 1;
		}
		printf("%d\n", ntohs(a.sin_port));
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	return 0;
}
