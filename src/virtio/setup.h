/* setup.h - create the virtio devices the user asked for. */
#ifndef KVMBOX_VIRTIO_SETUP_H
#define KVMBOX_VIRTIO_SETUP_H

#include "../core/device.h"
#include "virtio.h"

struct vm;

/* Create and plug in, in this PCI slot order, one virtio-blk per --disk
 * (so the guest names them vda, vdb, ... in order), one virtio-net per
 * --net, virtio-rng for --rng and virtio-console for --console virtio (its
 * device model is returned in *console so input can be fed to it). 0 or -1
 * (printed). */
int virtio_create_devices(struct vm *vm, struct char_port console_port, struct virtio_dev **console);

#endif
