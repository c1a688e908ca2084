/* vsock_uds.h - virtio-vsock's data path in user space, over unix sockets (--vsock
 * cid=N,uds=PATH), with Firecracker's convention:
 *
 *   host -> guest  a host program connects to the unix socket PATH (kvmbox listens; mode 0600,
 *                  same-uid or root peers only) and writes "CONNECT <port>\n"; kvmbox opens a
 *                  stream to the guest's port and answers "OK <host_port>\n" once the guest
 *                  accepted (it closes the connection when the guest refuses or resets it);
 *                  the bytes that follow are the stream's. A client that has not sent its
 *                  line within VSOCK_UDS_HANDSHAKE_MS, or whose guest has not answered
 *                  within that much more, is closed (the core loop's timer, no thread).
 *   guest -> host  a guest connection to CID 2 port P is a connection to the unix socket
 *                  PATH_P (kvmbox connects to it); nothing listening there: the guest gets RST.
 *
 * The device model is virtio 1.x section 5.10: rx (0), tx (1) and event (2) queues, the 44-byte
 * packet header, stream sockets only, credit-based flow control both ways (the guest is never
 * sent more than its buf_alloc leaves room for; a unix socket is read only while the guest has
 * credit and rx buffers; what a unix socket does not take waits in a per-connection buffer that
 * the credit we give bounds, and the guest gets credit back only as the socket takes bytes),
 * half-close through SHUTDOWN flags, at most VSOCK_UDS_MAX_CONNS connections (more are refused:
 * RST to the guest, the unix connection closed).
 *
 * Guest packets are hostile: a header shorter than 44 bytes, a len beyond the chain, a source
 * CID other than the guest's or a destination other than the host (2) is dropped; another
 * socket type, an unknown op, a packet for no connection, data beyond the credit we gave: RST.
 * An rx buffer too short for a header breaks the device (NEEDS_RESET), as for the event queue.
 *
 * Threads: everything runs on the device's worker, with vd->lock held. A device reset (vCPU)
 * or a load only marks the connections to be dropped and wakes the worker through an eventfd;
 * a live migration's release and reacquire run while the worker is parked. The handshakes'
 * deadlines are this process's CLOCK_MONOTONIC and live only with their connections, which
 * a reset, a load or a hand-over drops (nothing of a connection is ever saved). */
#ifndef KVMBOX_VIRTIO_VSOCK_UDS_H
#define KVMBOX_VIRTIO_VSOCK_UDS_H

#include <stdint.h>

#include "virtio.h"

#define VSOCK_UDS_MAX_CONNS 64          /* connections at once, both directions */
#define VSOCK_UDS_BUF_ALLOC (256 << 10) /* the credit each connection gives the guest */
#define VSOCK_UDS_MAX_PKT   (64 << 10)  /* largest payload the guest may send in one packet */
#define VSOCK_HDR_LEN       44          /* struct virtio_vsock_hdr */
#define VSOCK_UDS_PORT_BASE 0x40000000u /* host ports for host-initiated connections from here */
/* A host client has this long after it connected to send its complete "CONNECT <port>\n", then
 * the guest this long to accept (RESPONSE) or refuse (RST); else the client is closed (and the
 * guest sent an RST). Firecracker's is 2 s too. */
#define VSOCK_UDS_HANDSHAKE_MS 2000u

/* struct virtio_vsock_hdr's op, type and SHUTDOWN flags. */
enum {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
};
#define VSOCK_TYPE_STREAM   1
#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2
#define VSOCK_HOST_CID      2

struct vsock_uds;

/* Listen on path for the device vd (guest CID cid) and watch it on vd->loop. NULL after
 * printing one line (path too long, exists and is not a socket, in use). */
struct vsock_uds *vsock_uds_create(struct virtio_dev *vd, uint32_t cid, const char *path);
/* The driver kicked rx or tx (on the worker): move what can move. */
void vsock_uds_kick(struct vsock_uds *u);
/* Have the worker move what can move (the driver activated the device on a vCPU thread, whose
 * seccomp list has no socket calls). */
void vsock_uds_wake(struct vsock_uds *u);
/* Drop every connection (device reset, a load): done on the worker, which this wakes. */
void vsock_uds_drop_all(struct vsock_uds *u);
/* Live migration (worker parked): close the listener and the connections, remove the socket
 * file so the destination can listen there; reacquire listens again. 0 or -1 (printed). */
int vsock_uds_release(struct vsock_uds *u);
int vsock_uds_reacquire(struct vsock_uds *u);
/* Close everything and remove the socket file (the worker is stopped). */
void vsock_uds_destroy(struct vsock_uds *u);
/* Connections open now (tests). */
unsigned vsock_uds_conns(const struct vsock_uds *u);

#endif
