/* tap.h - a Linux tap interface as the backend of a virtio-net device.
 *
 * The tap is opened with IFF_VNET_HDR and a 12-byte vnet header
 * (virtio_net_hdr_v1 / mrg_rxbuf layout), so frames cross the fd with the
 * virtio header in front exactly as the guest sees it: no translation. */
#ifndef KVMBOX_TAP_H
#define KVMBOX_TAP_H

#include <stdbool.h>

/* Size of the vnet header on the tap fd (virtio_net_hdr_v1). */
#define TAP_VNET_HDR_LEN 12

/* Open (or create) tap `name`: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, 12-byte vnet
 * header, no offloads yet, O_NONBLOCK|O_CLOEXEC. ifname_out (IFNAMSIZ bytes,
 * may be NULL) receives the kernel's name. *vnet_hdr_ok is false when the
 * kernel would not take the 12-byte header size (the fd then uses the old
 * 10-byte one). Returns the fd, or -1 with a one-line error printed. */
int tap_open(const char *name, char *ifname_out, bool *vnet_hdr_ok);
/* TUNSETOFFLOAD: which offloads (TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6,
 * TUN_F_TSO_ECN) the reader of fd can take. 0, or -1 with errno set. */
int tap_set_offload(int fd, unsigned flags);
/* Is the tap behind fd persistent (outlives its last fd: `ip tuntap add`)?
 * 0 with *persistent set, or -1 with errno set. */
int tap_get_persist(int fd, bool *persistent);
/* TUNSETPERSIST: make the tap outlive (or not) the last fd. 0, or -1 with
 * errno set. */
int tap_set_persist(int fd, bool persistent);

#endif
