#include "unixsock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* Is something listening on the socket at path? 1 yes, 0 no (stale or absent), -1 on another
 * error (printed). A path that is not a socket is never ours to replace. */
static int in_use(const char *path, const struct sockaddr_un *sa, const char *what)
{
	struct stat st;
	int fd, r, e;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		log_error("%s %s: %s; give another path", what, path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_error(
			"%s %s: exists and is not a socket (kvmbox only replaces a stale socket); give another "
			"path",
			what, path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error("%s %s: socket: %s", what, path, strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1; /* EAGAIN: a listener with a full backlog */
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	log_error("%s %s: %s; give another path", what, path, strerror(e));
	return -1;
}

int unixsock_listen(const char *path, int backlog, bool nonblock, const char *what, struct stat *st)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, r, e;

	if (!path || !*path) {
		log_error("%s: empty path; give a socket path", what);
		return -1;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s %s: path longer than %zu bytes; give a shorter path", what, path,
			  sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = in_use(path, &sa, what);
	if (r < 0)
		return -1;
	if (r > 0) {
		log_error("%s %s: already in use by another process; give another path", what, path);
		return -1;
	}
	/* Stale: lstat just said it is a socket. */
	if (unlink(path) < 0 && errno != ENOENT) {
		log_error("%s %s: cannot remove the stale socket: %s; give another path", what, path,
			  strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		log_error("%s %s: socket: %s", what, path, strerror(errno));
		return -1;
	}
	/* bind creates the file with 0777 & ~umask: 0600 from the first instant. The umask is the
	 * process's, and no other thread creates files meanwhile. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	e = errno;
	umask(old);
	if (r < 0) {
		log_error("%s %s: %s; give another path", what, path, strerror(e));
		close(fd);
		return -1;
	}
	if (lstat(path, st) < 0 || !S_ISSOCK(st->st_mode) || listen(fd, backlog) < 0) {
		log_error("%s %s: listen: %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void unixsock_unlink(const char *path, const struct stat *st)
{
	struct stat now;

	/* The change time too: a file system may give a successor's socket the same inode number. */
	if (lstat(path, &now) == 0 && S_ISSOCK(now.st_mode) && now.st_dev == st->st_dev &&
	    now.st_ino == st->st_ino && now.st_ctim.tv_sec == st->st_ctim.tv_sec &&
	    now.st_ctim.tv_nsec == st->st_ctim.tv_nsec)
		unlink(path);
}

bool unixsock_peer_allowed(int fd, long *peer_uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	*peer_uid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof(cr))
		return false;
	*peer_uid = (long)cr.uid;
	return cr.uid == 0 || cr.uid == geteuid();
}
