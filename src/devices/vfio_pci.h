/* vfio_pci.h - a host PCI function passed through to the guest (VFIO): `--device vfio=BDF`.
 *
 * The device type ties the parts together: vfio.h (the kernel's container, group and device),
 * vfio_pci_cfg.h (the guest's view of config space), vfio_msix.h (the emulated MSI-X table).
 * At create, in order: the function is opened (the sysfs checks and their fixes first), reset,
 * all of guest RAM is DMA-mapped (IOVA = guest physical address, pinned), the KVM VFIO device
 * learns the group, the config space is virtualised and the function plugged into the PCI host.
 *   BARs      each memory BAR the kernel lets us mmap is mapped into the guest as KVM memory
 *             slots (no exits) wherever the guest puts it, but the pages of the MSI-X table
 *             and PBA, which trap into vfio_msix; every other BAR and part is trapped on the
 *             bus and forwarded with pread/pwrite on the device fd
 *   MSI-X     one eventfd per vector, given to VFIO when the guest enables MSI-X; each live
 *             vector's eventfd is a KVM irqfd on a GSI routed to the guest's message
 *   MSI       the same with the vectors of the MSI capability: VFIO gets the eventfds of the
 *             vectors the guest enabled (Multiple Message Enable), each vector's message is
 *             config space's address and data (its number in the data's low bits) and its
 *             mask bit there unroutes it. A guest enabling both gets the second refused with a
 *             warning, as VFIO has one interrupt index at a time
 *   INTx      VFIO's eventfd on a resampling irqfd of the slot's INTx GSI (the guest's EOI
 *             unmasks the line in the device); off while MSI or MSI-X is on, as VFIO requires
 * The VM is rebuilt on a guest reboot, which opens and resets the function again. The device's
 * state is in the hardware: snapshots, hibernation and migration are refused
 * (device_type.pinned). */
#ifndef KVMBOX_DEVICES_VFIO_PCI_H
#define KVMBOX_DEVICES_VFIO_PCI_H

#include "../core/devtype.h"
#include "vfio_sysfs.h"

/* The option's value, parsed. */
struct vfio_pci_config {
	char bdf[VFIO_BDF_LEN];
};

/* "vfio=BDF" or "vfio=/sys/bus/pci/devices/BDF" into c: 0, or -1 after one line. */
int vfio_pci_parse(struct vfio_pci_config *c, const char *arg);

extern const struct device_type vfio_pci_type;

#endif
