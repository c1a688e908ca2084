/* unixsock.h - unix listening sockets that only their owner and root can use.
 *
 * The socket file is created mode 0600 by bind itself (umask 0177 around it: no window where
 * it is reachable by others, no chmod on a path that may have become a symlink); a path that
 * exists is replaced only when lstat says it is a socket nobody listens on; and a connecting
 * peer is checked with SO_PEERCRED. The control socket (api/server.c) and the unix migration
 * listener (core/migrate.c) use it. */
#ifndef KVMBOX_UNIXSOCK_H
#define KVMBOX_UNIXSOCK_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Listen on path (SOCK_CLOEXEC, plus SOCK_NONBLOCK when nonblock). what names it in errors
 * ("control socket", "--incoming"). Fills *st with the socket file's identity for
 * unixsock_unlink. The fd, or -1 after printing one line. */
int unixsock_listen(const char *path, int backlog, bool nonblock, const char *what, struct stat *st);
/* Remove path if it is still the socket st describes (not a successor's, not another file). */
void unixsock_unlink(const char *path, const struct stat *st);
/* May the peer of the accepted fd use us? Its uid is ours (the effective one) or root's.
 * false with *peer_uid set (or -1 when the kernel would not say). */
bool unixsock_peer_allowed(int fd, long *peer_uid);

#endif
