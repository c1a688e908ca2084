/* virtio_pci.h - the virtio 1.x modern PCI transport (virtio spec 4.1).
 *
 * BAR 0 (64-bit memory) holds common config, ISR, device config, the notify
 * area (one address per queue, each backed by a KVM ioeventfd) and the MSI-X
 * table and PBA; MSI-X vectors are delivered through irqfds on GSIs routed
 * with KVM_SET_GSI_ROUTING. Legacy INTx is the fallback for drivers that do
 * not enable MSI-X. */
#ifndef KVMBOX_VIRTIO_PCI_H
#define KVMBOX_VIRTIO_PCI_H

#include "../core/device.h"
#include "virtio.h"

struct vm;

/* Put vd on the VM's PCI bus and start its worker thread. vd must have been
 * set up with virtio_dev_init() (and the device's fds added to vd->loop).
 * Returns the transport device (add it with vm_add_device; destroying it
 * stops the worker and calls vd->ops->destroy), or NULL with an error
 * printed, in which case the caller still owns vd. */
struct device *virtio_pci_create(struct vm *vm, struct virtio_dev *vd);

#endif
