/* dgram.h - a virtio-net card's link to other VMs over unix SOCK_SEQPACKET sockets
 * (--net socket=PATH, --net link=NAME).
 *
 * Wire format: one Ethernet frame per datagram (destination MAC first), no virtio header, no
 * offloads: every frame is a complete, checksummed frame of 14 to DGRAM_MAX_FRAME bytes.
 *
 * Meeting at PATH (under PATH.lock, flock): connect to PATH; when nobody listens there (no
 * file, or a stale socket file of our own uid, which is then removed; anything else is never
 * touched) bind PATH (mode 0600) and listen. The listener is the link's switch: it accepts any
 * number of members (up to DGRAM_MAX_PORTS - 1) of its own uid or root, learns which port each
 * source MAC came from, forwards known unicast to its port and floods broadcast, multicast and
 * unknown destinations. A member whose listener goes away meets at PATH again: one of them
 * becomes the new listener, the others connect to it.
 *
 * The device (virtio/net.c) sees one end of a socketpair carrying its usual frames (12-byte
 * virtio_net_hdr_v1 first, all zero apart from num_buffers); the other end is port 0 of the
 * switch. Everything runs on the device's worker loop, under the device's lock (net.c wraps
 * dgram_on_fd). */
#ifndef KVMBOX_DGRAM_H
#define KVMBOX_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/loop.h"

#define DGRAM_HDR_LEN   12                       /* the device side's virtio_net_hdr_v1 */
#define DGRAM_ETH_HLEN  14                       /* shortest frame: destination, source, type */
#define DGRAM_MAX_FRAME 65550                    /* longest frame (VIRTIO_NET_MAX_FRAME) */
#define DGRAM_MAX_PORTS 16                       /* the local card and up to 15 members */
#define DGRAM_FDB_SIZE  256                      /* MACs learned; the oldest goes first when full */
#define DGRAM_FDB_AGE   (300ULL * 1000000000ULL) /* ns an unrefreshed entry is trusted */

/* ---- the learning table (exposed for the unit tests) ------------------------------------ */

struct fdb_entry {
	uint8_t mac[6];
	int16_t port;
	uint64_t seen; /* ns */
};

struct fdb {
	unsigned n;
	struct fdb_entry e[DGRAM_FDB_SIZE];
};

/* mac came in on port at now (only unicast sources are learned). */
void fdb_learn(struct fdb *f, const uint8_t mac[6], int port, uint64_t now);
/* The port of mac, or -1 (unknown, expired, or not unicast). */
int fdb_lookup(const struct fdb *f, const uint8_t mac[6], uint64_t now);
/* Port went away: forget what was learned on it. */
void fdb_forget_port(struct fdb *f, int port);

/* NULL when a frame of len bytes (without any header) may go to a guest, else why not. */
const char *dgram_frame_bad(const uint8_t *frame, size_t len);

/* ---- options ------------------------------------------------------------------------------ */

/* The directory link=NAME meets in: $KVMBOX_LINK_DIR, else $XDG_RUNTIME_DIR/kvmbox/links,
 * else /run/kvmbox/links for root, else /tmp/kvmbox-UID/links. Into buf (len bytes). */
void dgram_default_dir(char *buf, size_t len);
/* A link name: 1 to 64 of [A-Za-z0-9._-], not starting with '.'. */
bool dgram_name_ok(const char *name);
/* dir/name into path (len bytes, at most 107 characters + NUL to fit sun_path with ".lock").
 * 0, or -1 after printing one line. */
int dgram_link_path(const char *dir, const char *name, char *path, size_t len);

/* ---- the backend ------------------------------------------------------------------------- */

struct dgram;

/* A card's port on the link at path (whose directory is made, mode 0700, when mkdir_dir, on
 * each meeting). *dev_fd receives the device's end of the socketpair (owned by the caller).
 * NULL after printing one line. */
struct dgram *dgram_open(const char *path, bool mkdir_dir, const char *who, int *dev_fd);
/* Watch the port on loop (cb(opaque) must call dgram_on_fd) and meet at the path. 0, or -1
 * after printing one line. */
int dgram_attach(struct dgram *d, struct loop *loop, loop_fn cb, void *opaque);
/* An event on one of the backend's fds. */
void dgram_on_fd(struct dgram *d, int fd, uint32_t events);
/* Leave the link (live migration: the destination joins with its own command line's path);
 * frames from the device are dropped until dgram_join. */
void dgram_leave(struct dgram *d);
/* Meet at the path again. 0, or -1 after printing. */
int dgram_join(struct dgram *d);
/* Leave and free (NULL: nothing); the device's end stays the caller's. */
void dgram_close(struct dgram *d);
/* Counters: frames dropped (no room, bad length). */
void dgram_counters(const struct dgram *d, uint64_t *forwarded, uint64_t *dropped);

#endif
