/* notifysock.c - a stand-in for systemd's notification socket ($NOTIFY_SOCKET): bind a unix
 * datagram socket at NAME (a path, or @NAME for an abstract one), write "listening" and then
 * each datagram received as one line to FILE, until killed.
 *   notifysock NAME FILE */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];
	size_t len;
	int s, out;

	if (argc != 3) {
		fprintf(stderr, "usage: %s NAME FILE\n", argv[0]);
		return 2;
	}
	len = strlen(argv[1]);
	if (len >= sizeof(sa.sun_path) || (argv[1][0] != '/' && argv[1][0] != '@')) {
		fprintf(stderr, "notifysock: %s: give an absolute path or @NAME\n", argv[1]);
		return 2;
	}
	memcpy(sa.sun_path, argv[1], len);
	if (argv[1][0] == '@')
		sa.sun_path[0] = '\0';
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	out = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s < 0 || out < 0 ||
	    bind(s, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (argv[1][0] == '/'))) < 0) {
		fprintf(stderr, "notifysock: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (write(out, "listening\n", 10) != 10)
		return 1;
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "notifysock: recv: %s\n", strerror(errno));
			return 1;
		}
		buf[n++] = '\n';
		if (write(out, buf, (size_t)n) != n)
			return 1;
	}
}
