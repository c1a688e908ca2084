/* vfio.h - a passed-through PCI function's kernel side: the VFIO container, group and device
 * file descriptors, DMA mapping, region I/O, interrupts and reset (type-1 v2 IOMMU).
 *
 * vfio_dev_open() does the whole set-up in order and stops at the first refusal with its fix:
 * the sysfs checks of vfio_sysfs.h (function, IOMMU group, driver, viability), /dev/vfio/vfio
 * (the API version, the type-1 v2 IOMMU), /dev/vfio/N, the group's own viability, the container
 * and its IOMMU, the device fd, its regions (BARs, config space) and interrupt counts. One
 * container per function: each maps the guest's RAM itself (VFIO_IOMMU_MAP_DMA with
 * IOVA = guest physical address), so devices in different groups share no VFIO object (the
 * KVM VFIO device they join is the VM's: vm_kvm_device). The mapped memory is pinned by the
 * kernel for as long as the container lives.
 * Every call after set-up is a pread/pwrite or an ioctl on the fds here: which threads make
 * them is the caller's business (and its seccomp filter's). */
#ifndef KVMBOX_DEVICES_VFIO_H
#define KVMBOX_DEVICES_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio_sysfs.h"

#define VFIO_DEV_REGIONS 8 /* BAR 0..5, expansion ROM, config space (VFIO_PCI_*_REGION_INDEX) */
#define VFIO_DEV_CONFIG  7
#define VFIO_DEV_ROM     6

struct vfio_dev_region {
	uint64_t size;   /* 0: not implemented */
	uint64_t offset; /* of the region in the device fd */
	uint32_t flags;  /* VFIO_REGION_INFO_FLAG_* (READ, WRITE, MMAP) */
};

struct vfio_dev {
	char bdf[VFIO_BDF_LEN];
	int group_nr;
	int container, group, fd; /* -1 when closed */
	struct vfio_dev_region region[VFIO_DEV_REGIONS];
	unsigned msix_count, msi_count, intx_count; /* VFIO_DEVICE_GET_IRQ_INFO counts */
	bool can_reset;                             /* VFIO_DEVICE_FLAGS_RESET */
};

/* Where the kernel's interfaces are: "/sys" and "/dev/vfio" normally. */
struct vfio_paths {
	const char *sysfs;
	const char *devdir;
};

/* Set up function bdf (as vfio_parse_bdf gives it). 0, or -1 with one line in err naming the
 * problem and its fix; d is then closed. paths NULL: the system's. */
int vfio_dev_open(struct vfio_dev *d, const struct vfio_paths *paths, const char *bdf, char *err,
		  size_t errlen);

/* Close what is open (a no-op on a closed or zeroed-then-closed d: see vfio_dev_init). */
void vfio_dev_close(struct vfio_dev *d);

/* Mark d closed (all fds -1) without touching anything. */
void vfio_dev_init(struct vfio_dev *d);

/* Let the device reach [iova, iova+size) as host memory at host, read-write: 0 or -1 (errno). */
int vfio_dev_map_dma(struct vfio_dev *d, uint64_t iova, void *host, uint64_t size);
int vfio_dev_unmap_dma(struct vfio_dev *d, uint64_t iova, uint64_t size);

/* len bytes at off of region r: 0, or -1 (outside the region, or the device refused). */
int vfio_dev_region_read(struct vfio_dev *d, int r, uint64_t off, void *buf, uint32_t len);
int vfio_dev_region_write(struct vfio_dev *d, int r, uint64_t off, const void *buf, uint32_t len);

/* Interrupt index (VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX): signal fds[i] for vector i, i < n; n 0
 * turns the index off. 0 or -1 (errno). */
int vfio_dev_set_irqs(struct vfio_dev *d, unsigned index, const int *fds, unsigned n);

/* INTx: fd is signalled on each level interrupt; after it the device keeps INTx masked until
 * a write to unmask_fd (KVM's resample irqfd: the guest's EOI). 0 or -1 (errno). */
int vfio_dev_set_intx(struct vfio_dev *d, int fd, int unmask_fd);

/* Function-level reset (VFIO_DEVICE_RESET): 0, or -1 (errno; ENOTTY when not offered). */
int vfio_dev_reset(struct vfio_dev *d);

/* Tell KVM about the group: add it to the VM's KVM VFIO pseudo-device kvm_vfio_fd (KVM_DEV_TYPE_VFIO,
 * one per VM for all groups: vm_kvm_device), which KVM needs for coherent DMA and interrupt
 * bypass. 0, or -1 (errno). */
int vfio_dev_kvm_add(struct vfio_dev *d, int kvm_vfio_fd);

#endif
