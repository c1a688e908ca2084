/* console.h - virtio-console (virtio 1.x section 5.3), one port, no MULTIPORT.
 *
 * receiveq 0 carries host input to the guest (virtio_console_receive, main
 * thread), transmitq 1 guest output to the char_port (port.write, called on
 * the device's worker thread). No features are offered; cols/rows read 0. */
#ifndef KVMBOX_VIRTIO_CONSOLE_H
#define KVMBOX_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/device.h"
#include "virtio.h"

#define VIRTIO_CONSOLE_RXQ 0
#define VIRTIO_CONSOLE_TXQ 1

/* Create "virtio-console<index>" talking to port. NULL with an error printed. */
struct virtio_dev *virtio_console_create(const struct guest_mem *mem, struct char_port port, unsigned index);
/* Host input: copy up to n bytes into the guest's receive buffers (takes
 * vd->lock; any thread). Returns bytes accepted; after a short count
 * port.rx_space is called (on the worker, with vd->lock held: it must not
 * call back into this function synchronously) once the guest adds buffers. */
size_t virtio_console_receive(struct virtio_dev *vd, const uint8_t *buf, size_t n);

#endif
