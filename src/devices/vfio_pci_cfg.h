/* vfio_pci_cfg.h - the configuration space of a passed-through (VFIO) PCI function, as the
 * guest sees it: the part of pass-through that needs no kernel, so unit tests drive it with
 * made-up config spaces and a fake config region.
 *
 * vfio_pci_cfg_parse() takes the function's 256 bytes of conventional config space and the
 * sizes of its BAR regions (VFIO_DEVICE_GET_REGION_INFO; 0 for a BAR it does not implement) and
 * decides, byte by byte:
 *   emulated      the whole header (0x00..0x3f) lives in the virtual function of pci.c: ids,
 *                 class and subsystem ids copied from the device; COMMAND and STATUS; the BARs,
 *                 sized from the regions with the device's type and prefetch bits (sizing by
 *                 writing all ones works as on hardware); no expansion ROM; the capability
 *                 pointer; interrupt line and pin. Also the id and next bytes of every
 *                 capability (the list is relinked), the whole MSI-X capability (only its
 *                 Enable and Function Mask bits are writable; the table size and the table and
 *                 PBA locations are the device's) and the whole MSI capability (Enable, Multiple
 *                 Message Enable, the message address and data and the mask bits are the
 *                 guest's; the vector count, 64-bit and per-vector-mask flags the device's;
 *                 the pending bits read 0). Nothing of either reaches the device: their
 *                 interrupts are routed with KVM irqfds from VFIO's eventfds (vfio_pci.c).
 *   passed through everything else from 0x40 on (the bodies of the PCI Express, power
 *                 management and vendor capabilities...): a guest read reads the device; a
 *                 guest write reaches the device only for the bits of pt_wmask, which are the
 *                 power management control (PowerState, PME_En) and the PCI Express Device
 *                 Control register but its Initiate-FLR bit (resets go through VFIO).
 * A function with both MSI and MSI-X shows both, as on hardware; the guest enables one.
 * COMMAND's I/O, Memory, Bus Master and INTx-disable bits are forwarded to the device by
 * vfio_pci_cfg_guest_write (the Bus Master bit is what lets the device DMA into guest RAM).
 * Extended config space (PCIe, 256..4095) reads as 0 (pci.c): no extended capability is passed. */
#ifndef KVMBOX_DEVICES_VFIO_PCI_CFG_H
#define KVMBOX_DEVICES_VFIO_PCI_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci.h"
#include "vfio_msix.h"

struct vfio_pci_bar {
	enum pci_bar_type type; /* PCI_BAR_UNUSED: not implemented; PCI_BAR_MEM64_HI: upper half */
	bool prefetch;
	uint64_t size;
};

struct vfio_pci_msix {
	int cap;       /* config offset; 0: the device has no MSI-X */
	unsigned nvec; /* 1..PCI_MSIX_MAX_VECTORS */
	int table_bar, pba_bar;
	uint32_t table_off, pba_off; /* in their BARs */
};

struct vfio_pci_msi {
	int cap;       /* config offset; 0: the device has no MSI */
	unsigned nvec; /* vectors the function has (Multiple Message Capable): 1, 2, 4 .. 32 */
	bool is64, maskable;
	uint32_t data_off, mask_off; /* from cap: message data; mask bits (maskable only) */
	int len;                     /* of the capability: 10, 14, 20 or 24 bytes */
};

/* What the guest programmed in the MSI capability. */
struct vfio_pci_msi_state {
	bool enabled;
	unsigned nvec; /* vectors enabled: 1 << Multiple Message Enable, at most msi.nvec */
	uint64_t addr;
	uint16_t data; /* vector v sends (data & ~(nvec - 1)) | v: vfio_pci_msi_data */
	uint32_t mask; /* per-vector mask bits; 0 without per-vector masking */
};

struct vfio_pci_cfg {
	uint8_t phys[PCI_CONFIG_SIZE];     /* as read from the device at set-up */
	bool passthrough[PCI_CONFIG_SIZE]; /* guest reads read the device */
	uint8_t pt_wmask[PCI_CONFIG_SIZE]; /* bits of passed-through bytes a guest may write */
	struct vfio_pci_bar bar[PCI_NUM_BARS];
	struct vfio_pci_msix msix;
	struct vfio_pci_msi msi;
	uint8_t caps[PCI_CONFIG_SIZE / 4]; /* offsets of the capabilities the guest sees, in order */
	int ncaps;
	uint16_t vendor, device, subsys_vendor, subsys_id;
	uint32_t class_code;
	uint8_t revision, intx_pin;
};

/* How the device's config region is reached (pread/pwrite on the VFIO device fd; a fake in the
 * unit tests): read or write len bytes at off, 0 or -1. */
struct vfio_pci_cfg_io {
	int (*read)(void *ctx, uint32_t off, uint8_t *buf, uint32_t len);
	int (*write)(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len);
	void *ctx;
};

/* Decide the virtual config space of the function whose config bytes are phys, with BAR region
 * sizes region_size[]. 0, or -1 with a one-line reason in err (a bridge, a BAR the PCI core
 * cannot model, a capability list that loops or leaves config space, an MSI-X table outside
 * its BAR...). */
int vfio_pci_cfg_parse(struct vfio_pci_cfg *c, const uint8_t phys[PCI_CONFIG_SIZE],
		       const uint64_t region_size[PCI_NUM_BARS], char *err, size_t errlen);

/* Initialise pdev (pci_dev_init with owner and ops) as c says: ids, BARs, INTx pin, the relinked
 * capability list, the MSI-X capability and the write masks. Before pci_add_device. 0 or -1
 * (a BAR pci_set_bar refused). */
int vfio_pci_cfg_setup(const struct vfio_pci_cfg *c, struct pci_dev *pdev, struct device *owner,
		       const struct pci_dev_ops *ops);

/* The MSI capability as the guest has programmed it in pdev (c->msi.cap set). */
void vfio_pci_cfg_msi_state(const struct vfio_pci_cfg *c, struct pci_dev *pdev,
			    struct vfio_pci_msi_state *st);

/* Whether a config write of len bytes at off touched the MSI-X capability's Message Control,
 * or the MSI capability's registers. */
bool vfio_pci_cfg_msix_touched(const struct vfio_pci_cfg *c, uint32_t off, uint32_t len);
bool vfio_pci_cfg_msi_touched(const struct vfio_pci_cfg *c, uint32_t off, uint32_t len);

/* The message data of enabled vector v (v < st->nvec): the low bits of the data select it. */
static inline uint32_t vfio_pci_msi_data(const struct vfio_pci_msi_state *st, unsigned v)
{
	return ((uint32_t)st->data & ~(st->nvec - 1)) | v;
}

/* Point MSI's vectors m (one per vector the function has) where st says: each enabled vector
 * with its message and mask bit, the others masked; then on (en: st->enabled and VFIO took the
 * eventfds) or off. Only enabled, unmasked vectors are routed. */
void vfio_pci_msi_apply(const struct vfio_pci_msi_state *st, struct vfio_msix *m, bool en);

/* The pci_dev_ops.config_read hook's work: data holds the emulated bytes of [off, off+len);
 * replace the passed-through ones with the device's. A failed device read leaves all ones. */
void vfio_pci_cfg_guest_read(const struct vfio_pci_cfg *c, const struct vfio_pci_cfg_io *io, uint32_t off,
			     uint8_t *data, uint32_t len);

/* The pci_dev_ops.config_write hook's work, after pci.c stored the guest's write in pdev: forward
 * COMMAND's forwarded bits and the writable bits of passed-through bytes in [off, off+len) to
 * the device (read-modify-write, so bits outside the masks keep the device's values). 0 or -1
 * (the device's region failed). */
int vfio_pci_cfg_guest_write(const struct vfio_pci_cfg *c, const struct vfio_pci_cfg_io *io,
			     struct pci_dev *pdev, uint32_t off, uint32_t len);

#endif
