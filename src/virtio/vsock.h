/* vsock.h - virtio-vsock (virtio 1.x section 5.10) on the kernel's vhost-vsock.
 *
 * Three queues: rx 0 and tx 1 belong to /dev/vhost-vsock while the driver runs the device
 * (their kicks go to the kernel straight from the KVM ioeventfds, the kernel's "used" signals
 * come back to the worker through call eventfds, which raises the interrupts through the
 * transport); the event queue 2 stays here. Host programs reach the guest with AF_VSOCK at
 * the guest's CID, the guest reaches the host at CID 2 (VMADDR_CID_HOST).
 *
 * Device config: guest_cid (le64, read-only). No feature bits are offered (no SEQPACKET).
 *
 * Snapshots and migration: a pause takes the rings back from the kernel (VHOST_GET_VRING_BASE
 * gives where it got to), the transport saves them like any queue; a load hands them to the
 * kernel again (VHOST_SET_VRING_BASE). The kernel's connections do not survive that (a restore
 * is another vhost-vsock instance), so after a load, and after a failed migration gave the
 * device back, the driver gets VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue: it resets
 * its sockets and reads guest_cid again (so a restore may give another cid=). A live migration
 * closes /dev/vhost-vsock when it hands over (release), so that the destination on the same
 * host can take the CID; a failed one opens it again (reacquire). */
#ifndef KVMBOX_VIRTIO_VSOCK_H
#define KVMBOX_VIRTIO_VSOCK_H

#include <stdint.h>

#include "../core/devtype.h"
#include "virtio.h"

#define VIRTIO_VSOCK_RXQ  0
#define VIRTIO_VSOCK_TXQ  1
#define VIRTIO_VSOCK_EVTQ 2

/* struct virtio_vsock_event's id. */
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET 0

/* CIDs a guest may have: 0 (hypervisor), 1 (local), 2 (host) are reserved, U32_MAX is
 * VMADDR_CID_ANY. */
#define VSOCK_CID_MIN 3u
#define VSOCK_CID_MAX 0xfffffffeu

/* --vsock cid=N[,uds=PATH] */
struct vsock_config {
	uint32_t cid;
	char uds[108]; /* the unix socket of the user-space mode (vsock_uds.h); "": vhost-vsock */
};

/* The `--vsock` device type (core/devtype.h). */
extern const struct device_type virtio_vsock_type;

/* Parse a CID (decimal): 0, or -1 when it is not a number in [VSOCK_CID_MIN, VSOCK_CID_MAX]. */
int vsock_parse_cid(const char *s, uint32_t *cid);

/* Open /dev/vhost-vsock for the guest `cid` and create "virtio-vsock<index>" on it. NULL with
 * one line printed that says what to do (load vhost_vsock, pick another cid=). */
struct virtio_dev *virtio_vsock_create(const struct guest_mem *mem, uint32_t cid, unsigned index);
/* The same device with its data path in user space over the unix socket path (vsock_uds.h);
 * NULL with one line printed (path too long, exists and is not a socket, in use). */
struct virtio_dev *virtio_vsock_create_uds(const struct guest_mem *mem, uint32_t cid, const char *path,
					   unsigned index);
/* Connections the user-space mode has open (tests); 0 with vhost-vsock. */
unsigned virtio_vsock_uds_conns(struct virtio_dev *vd);
/* The device without a kernel behind it (unit tests): config space and event queue only; the
 * rx and tx queues are never serviced. */
struct virtio_dev *virtio_vsock_create_nobackend(const struct guest_mem *mem, uint32_t cid, unsigned index);
/* Ask for a transport reset event (delivered now, or as soon as the driver gives an event
 * buffer). With vd->lock held. */
void virtio_vsock_transport_reset(struct virtio_dev *vd);

#endif
