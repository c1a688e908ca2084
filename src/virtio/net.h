/* net.h - virtio-net (virtio 1.x section 5.1) on a tap-like fd.
 *
 * Two queues (receiveq 0, transmitq 1), no control queue, no multiqueue.
 * Offered: MAC, STATUS (link up), MRG_RXBUF, CSUM, GUEST_CSUM, HOST_TSO4/6/ECN,
 * GUEST_TSO4/6/ECN; on a link card (socket=, link=) only MAC, STATUS and MRG_RXBUF: the frames
 * cross to other guests whole and checksummed (backends/dgram.h). The backend fd carries one frame per read/write with a
 * 12-byte virtio_net_hdr_v1 in front (a tap with IFF_VNET_HDR, or in tests a
 * SOCK_DGRAM socket), so guest headers pass through unchanged.
 *
 * Live migration (release / reacquire): release closes the backend fd so the
 * destination process can open the same tap. A tap kvmbox created itself
 * (not `ip tuntap add`) is made persistent first so it survives the close;
 * after a successful migration it stays persistent (the destination cannot
 * know it was not the admin's; `ip tuntap del` removes it). reacquire
 * reopens the tap by name, restores the guest's offloads and persistence;
 * it fails while another process has the tap open, and always for a fd given
 * to virtio_net_create_fd (nothing to reopen). */
#ifndef KVMBOX_VIRTIO_NET_H
#define KVMBOX_VIRTIO_NET_H

#include <stdint.h>

#include <stdbool.h>

#include "../core/devtype.h"

/* vhost=: who moves the frames. */
enum net_vhost { NET_VHOST_AUTO = 0, NET_VHOST_ON, NET_VHOST_OFF };

/* Where the frames go. */
enum net_backend {
	NET_BACKEND_TAP = 0, /* tap=NAME: a host tap device */
	NET_BACKEND_SOCKET,  /* socket=PATH: other VMs meeting at a unix socket (backends/dgram.h) */
	NET_BACKEND_LINK,    /* link=NAME: the same, at LINKDIR/NAME */
};

/* --net tap=NAME|socket=PATH|link=NAME[,linkdir=DIR][,mac=MAC][,vhost=on|off] */
struct net_config {
	char tap[16]; /* IFNAMSIZ */
	uint8_t mac[6];
	bool mac_set;    /* else a stable MAC is generated from the tap name (a link card: a random
			* one, drawn when the option is parsed, kept across reboots) */
	uint8_t vhost;   /* enum net_vhost: the kernel's vhost-net when /dev/vhost-net is
			       * usable (auto), always (on: an error without it), never (off) */
	uint8_t backend; /* enum net_backend */
	char path[108];  /* socket=PATH (made absolute), or link=NAME's LINKDIR/NAME */
	char link[65];   /* link=NAME */
};

/* The `--net` device type (core/devtype.h). */
extern const struct device_type virtio_net_type;

/* Parse "aa:bb:cc:dd:ee:ff" (unicast only). 0 or -1. */
int parse_mac(const char *s, uint8_t mac[6]);
#include "virtio.h"

#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1

/* Feature bits (virtio 1.x 5.1.3). */
#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_GUEST_UFO  10
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_HOST_UFO   14
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

#define VIRTIO_NET_S_LINK_UP 1

/* virtio_net_hdr_v1 (little endian). */
#define VIRTIO_NET_HDR_LEN          12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP      3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* Largest frame (without the vnet header) we move in either direction:
 * a 64 KiB GSO payload plus the Ethernet header. */
#define VIRTIO_NET_MAX_FRAME 65550

/* Open tap cfg->tap and create the device on it ("virtio-net<index>"); the
 * MAC is cfg->mac or a stable locally administered 52:54:00:xx:xx:xx derived
 * from the tap name and index. NULL with an error printed. */
struct virtio_dev *virtio_net_create(const struct guest_mem *mem, const struct net_config *cfg,
				     unsigned index);
/* Create the device on an already open frame fd (vnet-header framing as
 * above; made non-blocking here). On success the device owns fd and closes
 * it on destroy; on failure (NULL, error printed) the caller still owns it. */
struct virtio_dev *virtio_net_create_fd(const struct guest_mem *mem, int fd, const uint8_t mac[6],
					unsigned index);
/* The stable MAC virtio_net_create uses when none is configured. */
void virtio_net_default_mac(const char *tap, unsigned index, uint8_t mac[6]);

#endif
