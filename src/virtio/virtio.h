/* virtio.h - the virtio device model, independent of the transport.
 *
 * A device (blk, net, console, rng, balloon) embeds struct virtio_dev and
 * fills in its ops; the transport (virtio_pci.c) owns feature negotiation,
 * device status, queue set-up, notifications and interrupts. Three things,
 * three places: the device here, the transport in virtio_pci.c, interrupt
 * delivery in the VM (irqfd / KVM_IRQ_LINE).
 *
 * Threads: every device has a worker thread running vd->loop. Queue kicks
 * (the guest's notifications, via KVM ioeventfds) arrive there and call
 * ops->queue_notify. Devices add their own backend fds (tap, io_uring) to
 * vd->loop in their create function, before the transport starts the
 * worker. vd->lock serialises the worker against the transport (register
 * accesses on vCPU threads: reset, activation): every op below is called
 * with vd->lock held, and loop handlers the device adds must take it. */
#ifndef KVMBOX_VIRTIO_H
#define KVMBOX_VIRTIO_H

#include "../core/sandbox.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/loop.h"
#include "../core/memory.h"
#include "../core/ser.h"
#include "virtqueue.h"

#define VIRTIO_MAX_QUEUES 8

/* Device ids (virtio 1.x section 5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK   19

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

struct virtio_dev;

struct virtio_dev_ops {
	const char *type;          /* "virtio-blk": snapshot section, thread name */
	uint16_t device_id;        /* VIRTIO_ID_* */
	enum sandbox_kind sandbox; /* its worker thread's seccomp allow-list (core/sandbox.h) */
	/* Driver set FEATURES_OK and DRIVER_OK; vd->features holds the
	 * negotiated bits and the enabled queues are valid. Start work.
	 * Return -1 to fail the device (NEEDS_RESET). */
	int (*activate)(struct virtio_dev *vd);
	/* Driver reset the device: finish or cancel in-flight requests (no
	 * guest memory access may happen after return) and forget queue work. */
	void (*reset)(struct virtio_dev *vd);
	/* The driver kicked queue q (worker thread). */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* Optional: the driver wrote device config bytes [off, off+len) (the
	 * new bytes are already in vd->config). */
	void (*config_write)(struct virtio_dev *vd, uint32_t off, uint32_t len);
	/* Optional: finish every in-flight request (no guest memory access
	 * after return) before a pause or snapshot. */
	int (*quiesce)(struct virtio_dev *vd);
	/* Optional: give up the host backend (disk lock, tap) so another
	 * process can take it over at the end of a live migration, and take
	 * it back if the migration fails. Called while paused (worker parked,
	 * nothing in flight). 0 or -1 (printed). */
	int (*release)(struct virtio_dev *vd);
	int (*reacquire)(struct virtio_dev *vd);
	/* Optional: the disk image behind the device (core/device.h's disk). */
	struct blockfile *(*disk)(struct virtio_dev *vd);
	/* Optional: device-specific state beyond features/queues/config,
	 * which the transport saves itself. */
	/* Optional: the VM runs again after a pause: restart what quiesce stopped (a queue
	 * handed to the kernel). */
	void (*resume)(struct virtio_dev *vd);
	void (*save)(struct virtio_dev *vd, struct ser_writer *w);
	int (*load)(struct virtio_dev *vd, struct ser_reader *r);
	/* Optional: after a successful load, once the transport's own state (MSI-X table and
	 * enable, BARs) is in place too: the device may interrupt the driver from here on. */
	void (*loaded)(struct virtio_dev *vd);
	/* Free the device: its own fds first (they are on vd->loop), then
	 * virtio_dev_fini(vd), then its memory. The worker is stopped. */
	void (*destroy)(struct virtio_dev *vd);
};

/* What the transport does for the device model (tests plug in a fake). */
struct virtio_transport_ops {
	void (*notify_queue)(struct virtio_dev *vd, unsigned q); /* raise q's interrupt */
	void (*notify_config)(struct virtio_dev *vd);            /* config interrupt */
	void (*needs_reset)(struct virtio_dev *vd);              /* set NEEDS_RESET + tell */
	/* Optional: the eventfd a driver's kick of queue q signals (a KVM ioeventfd where it can
	 * be), for a device that hands the queue to the kernel (vhost): take stops the worker
	 * from watching it, !take watches it again. -1 when the transport has none. */
	int (*queue_kick_fd)(struct virtio_dev *vd, unsigned q, bool take);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	char name[32]; /* instance: "virtio-blk0" (thread name) */
	const struct guest_mem *mem;
	uint64_t host_features; /* offered device bits; the transport adds
				      * VERSION_1, EVENT_IDX, INDIRECT_DESC */
	uint64_t features;      /* negotiated */
	uint8_t config[256];    /* device config space, little endian */
	uint32_t config_size;
	unsigned num_queues; /* <= VIRTIO_MAX_QUEUES */
	uint16_t queue_max;  /* largest queue size offered */
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	pthread_mutex_t lock;
	struct loop *loop; /* the worker's loop */
	bool activated;
	bool broken; /* NEEDS_RESET set; no work until reset */
	const struct virtio_transport_ops *tops;
	void *transport; /* private to the transport */
};

/* Prepare vd (lock, loop) before the device adds its fds and the transport
 * is created. 0 or -1 (printed). */
int virtio_dev_init(struct virtio_dev *vd, const struct virtio_dev_ops *ops, const char *name,
		    const struct guest_mem *mem, unsigned num_queues, uint16_t queue_max);
/* Free what virtio_dev_init allocated (after the worker stopped). Idempotent. */
void virtio_dev_fini(struct virtio_dev *vd);

/* For devices, with vd->lock held: */
/* Used buffers were pushed to queue q: interrupt the driver if it wants. */
void virtio_notify_used(struct virtio_dev *vd, unsigned q);
/* Device config changed: config interrupt (and bump generation). */
void virtio_notify_config(struct virtio_dev *vd);
/* The driver broke the protocol (malformed ring ...): set NEEDS_RESET,
 * stop processing until reset, tell the driver. */
void virtio_set_broken(struct virtio_dev *vd, const char *why);
/* The kick eventfd of queue q, taken from (take) or given back to the worker; -1 when the
 * transport cannot hand it out. */
int virtio_queue_kick_fd(struct virtio_dev *vd, unsigned q, bool take);
/* Raise queue q's interrupt whatever the driver's suppression says (the kernel's vhost
 * already decided to). */
void virtio_notify_queue_now(struct virtio_dev *vd, unsigned q);
/* True when the device was marked broken and not yet reset. */
bool virtio_is_broken(const struct virtio_dev *vd);
/* Has feature bit `bit` been negotiated? */
static inline bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return (vd->features >> bit) & 1;
}

#endif
