/* notify.c - sd_notify's datagram, written directly (notify.h). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

int notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (!path || !*path)
		return -1;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		log_warn(
			"NOTIFY_SOCKET=%s: not a unix socket path; systemd will not hear that kvmbox is ready",
			path);
		return -1;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, unterminated */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'))) < 0) {
		log_warn("NOTIFY_SOCKET=%s: %s; systemd will not hear that kvmbox is ready", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

void notify_send(int fd, const char *msg)
{
	if (fd < 0)
		return;
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		log_warn("NOTIFY_SOCKET: sending %s: %s", msg, strerror(errno));
}
