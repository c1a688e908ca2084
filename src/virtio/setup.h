/* setup.h - create the virtio devices the user asked for. */
#ifndef KVMBOX_VIRTIO_SETUP_H
#define KVMBOX_VIRTIO_SETUP_H

#include "../core/device.h"
#include "virtio.h"

struct vm;

/* Device models the VM owner talks to after creation. */
struct virtio_handles {
	struct virtio_dev *balloon;   /* --balloon: set targets here */
};

/* Create and plug in, in this PCI slot order, one virtio-blk per --disk
 * (so the guest names them vda, vdb, ... in order), one virtio-net per
 * --net, virtio-rng for --rng, virtio-balloon for --balloon and
 * virtio-console for --console virtio (on vm->console_out; it registers
 * vm->console_in). 0 or -1 (printed). */
int virtio_create_devices(struct vm *vm, struct virtio_handles *h);

#endif
