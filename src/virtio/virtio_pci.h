/* virtio_pci.h - the virtio 1.x modern PCI transport (virtio spec 4.1).
 *
 * BAR 0 (64-bit memory) holds common config, ISR, device config, the notify
 * area (one address per queue, each backed by a KVM ioeventfd) and the MSI-X
 * table and PBA; MSI-X vectors are delivered through irqfds on GSIs routed
 * with KVM_SET_GSI_ROUTING. Legacy INTx is the fallback for drivers that do
 * not enable MSI-X. */
#ifndef KVMBOX_VIRTIO_PCI_H
#define KVMBOX_VIRTIO_PCI_H

/* The spec's layout constants: capability cfg_types (VIRTIO_PCI_CAP_*) and the common
 * configuration's field offsets (VIRTIO_PCI_COMMON_*), shared with the tests. */
#include <linux/virtio_pci.h>

#include "../core/device.h"
#include "virtio.h"

/* BAR 0's layout: where each capability's structure is (shared with the tests). */
#define VPCI_BAR_SIZE    0x8000
#define VPCI_COMMON_OFF  0x0000
#define VPCI_COMMON_LEN  0x38
#define VPCI_ISR_OFF     0x1000
#define VPCI_DEVCFG_OFF  0x2000
#define VPCI_NOTIFY_OFF  0x3000
#define VPCI_NOTIFY_MULT 4 /* notify_off_multiplier: queue q kicks at NOTIFY_OFF + 4 q */
#define VPCI_MSIX_OFF    0x4000
#define VPCI_PBA_OFF     0x5000

struct vm;

/* Put vd on the VM's PCI bus and start its worker thread. vd must have been
 * set up with virtio_dev_init() (and the device's fds added to vd->loop).
 * Returns the transport device (add it with vm_add_device; destroying it
 * stops the worker and calls vd->ops->destroy), or NULL with an error
 * printed, in which case the caller still owns vd. */
struct device *virtio_pci_create(struct vm *vm, struct virtio_dev *vd);

#endif
