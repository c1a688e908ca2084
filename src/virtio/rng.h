/* rng.h - virtio-rng (virtio 1.x section 5.4): one requestq whose writable
 * buffers are filled from getrandom(2). */
#ifndef KVMBOX_VIRTIO_RNG_H
#define KVMBOX_VIRTIO_RNG_H

#include "../core/devtype.h"
#include "virtio.h"

/* Bytes given per request at most (the driver asks again for more). */
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

/* Create "virtio-rng<index>". NULL with an error printed. */
struct virtio_dev *virtio_rng_create(const struct guest_mem *mem, unsigned index);

/* The `--rng` device type (core/devtype.h). */
extern const struct device_type virtio_rng_type;

#endif
