/* vfio_msix.h - the MSI-X table of a passed-through (VFIO) PCI function, emulated.
 *
 * The guest's accesses to the table (where the device has it: vfio_pci_cfg's msix.table_bar and
 * table_off) land here and never on the device; the PBA reads what is pending here. Each vector
 * is live (its interrupts reach the guest) while MSI-X is enabled, the function is not masked
 * as a whole and the vector's own mask bit is clear. A vector that becomes live, or is live and
 * gets a new message, is routed through ops->route (a KVM GSI routed to the message, the VFIO
 * eventfd of the vector attached to it as an irqfd); one that stops being live is unrouted
 * (irqfd detached: the device's interrupts wait in the eventfd, and KVM delivers one on the
 * next attach), and reads as pending in the PBA while ops->pending says so. Message address
 * and data are taken as the guest wrote them (the interrupt controller checks them). Entries
 * start masked with a zero message, as after a function reset.
 *
 * The same vectors serve a function's MSI capability, which has no table: its vectors' messages
 * and masks come from config space, set with vfio_msix_set_entry (vfio_pci.c).
 *
 * Accesses: 4 or 8 bytes, naturally aligned (the PCI rule for the table); anything else reads
 * as all ones and is dropped, as are accesses outside the table. Not thread-safe: the caller
 * serialises (the device's lock). */
#ifndef KVMBOX_DEVICES_VFIO_MSIX_H
#define KVMBOX_DEVICES_VFIO_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#define VFIO_MSIX_VECTOR_MASKED 0x1 /* vector control: Mask */

struct vfio_msix_ops {
	/* Deliver vector vec's interrupts as message (addr, data) from now on: 0, or -1 (the
	 * vector then stays not live and is retried on the next change). */
	int (*route)(void *ctx, unsigned vec, uint64_t addr, uint32_t data);
	/* Stop delivering vector vec. */
	void (*unroute)(void *ctx, unsigned vec);
	/* Optional: whether an interrupt of the not-live vector vec is waiting. */
	bool (*pending)(void *ctx, unsigned vec);
};

struct vfio_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl; /* as the guest wrote them */
	bool live;                             /* routed as routed_* say */
	uint64_t routed_addr;
	uint32_t routed_data;
};

struct vfio_msix {
	unsigned nvec;
	struct vfio_msix_entry *e;
	bool enabled, maskall;
	const struct vfio_msix_ops *ops;
	void *ctx;
};

/* nvec vectors (1..2048), all masked, MSI-X disabled. 0, or -1 (nvec out of range, memory). */
int vfio_msix_init(struct vfio_msix *m, unsigned nvec, const struct vfio_msix_ops *ops, void *ctx);

/* Unroute every live vector and free the table. */
void vfio_msix_destroy(struct vfio_msix *m);

/* The capability's Enable and Function Mask bits as the guest now has them. */
void vfio_msix_control(struct vfio_msix *m, bool enabled, bool maskall);

/* A guest access of len bytes at off in the table (off 0 = entry 0). */
void vfio_msix_table_access(struct vfio_msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/* Set vector vec's message and mask as a whole (an MSI vector, from config space); it is
 * rerouted if that changes where it goes. vec < nvec. */
void vfio_msix_set_entry(struct vfio_msix *m, unsigned vec, uint64_t addr, uint32_t data, bool masked);

/* A guest read of len bytes at off in the PBA (bit n = vector n). Writes to the PBA are
 * ignored by the caller (it is read-only). */
void vfio_msix_pba_read(struct vfio_msix *m, uint64_t off, uint8_t *data, uint32_t len);

/* Back to reset: every vector unrouted and masked with a zero message, MSI-X disabled. */
void vfio_msix_reset(struct vfio_msix *m);

#endif
