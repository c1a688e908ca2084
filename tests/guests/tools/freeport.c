/* freeport.c - print a TCP port on 127.0.0.1 that nothing listens on (now):
 * the kernel picks one for a socket bound to port 0, then it is closed.
 *   freeport */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int s;

	if (argc != 1) {
		fprintf(stderr, "usage: %s\n", argv[0]);
		return 2;
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		fprintf(stderr, "freeport: socket: %s\n", strerror(errno));
		return 1;
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0) {
		fprintf(stderr, "freeport: 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}
	printf("%u\n", ntohs(a.sin_port));
	close(s);
	return 0;
}
