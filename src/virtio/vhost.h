/* vhost.h - what every device that hands its rings to a kernel vhost driver needs
 * (/dev/vhost-net in net.c, /dev/vhost-vsock in vsock.c): opening it, the memory table and
 * dirty log, and giving a split ring to the kernel and taking it back.
 *
 * The caller keeps its own state (fd, call eventfds, log buffer); these helpers only do the
 * ioctls and, on a failure, print one line: "<dev>: <kind> <IOCTL>: <error>; <fix>". */
#ifndef KVMBOX_VIRTIO_VHOST_H
#define KVMBOX_VIRTIO_VHOST_H

#include <stddef.h>
#include <stdint.h>

#include "../core/memory.h"
#include "virtqueue.h"

/* Who is asking, for the error line. */
struct vhost_io {
	int fd;           /* the open /dev/vhost-* */
	const char *dev;  /* "virtio-net0" */
	const char *kind; /* "vhost-net" */
	const char *fix;  /* what the user can do: "give --net ...,vhost=off ..." */
};

/* One ioctl; 0, or -1 after printing (errno kept). */
int vhost_ioctl(const struct vhost_io *io, unsigned long req, void *arg, const char *name);

/* Open path (O_RDWR | O_CLOEXEC), VHOST_SET_OWNER, VHOST_GET_FEATURES. The fd, or -1 with
 * errno and *what naming the step that failed ("open", "VHOST_SET_OWNER", ...); nothing is
 * printed: the caller says what to do about it. */
int vhost_open(const char *path, uint64_t *features, const char **what);

/* VHOST_SET_MEM_TABLE with every region of m; with log != NULL also the dirty log (a bit per
 * 4 KiB of guest physical address, allocated on the first call into *log / *log_len) given
 * with VHOST_SET_LOG_BASE. 0 or -1 (printed). */
int vhost_set_mem(const struct vhost_io *io, const struct guest_mem *m, uint8_t **log, size_t *log_len);

/* Ring `index` of the vhost device is vq: VHOST_SET_VRING_NUM, _BASE (vq->last_avail),
 * _ADDR (with VHOST_VRING_F_LOG when log), _CALL (call_fd). The kick is the caller's
 * (VHOST_SET_VRING_KICK), once it holds the eventfd. 0 or -1 (printed). */
int vhost_vring_setup(const struct vhost_io *io, unsigned index, const struct virtq *vq, int call_fd,
		      bool log);

/* Take ring `index` back: VHOST_GET_VRING_BASE gives where the kernel got to in the avail
 * ring; vq (when enabled) continues from there, with the used index the kernel wrote. 0 or
 * -1 (printed). */
int vhost_vring_stop(const struct vhost_io *io, unsigned index, struct virtq *vq);

/* Pages the kernel logged as written are dirty for a migration; the log starts afresh. */
void vhost_log_collect(const struct guest_mem *m, uint8_t *log, size_t log_len);

#endif
