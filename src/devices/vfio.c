/* vfio.c - VFIO container, group and device of a passed-through function (see the header). */
#include "vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../core/log.h"

/* Close what d has open and return ret (a failure's -1, from log_fmt). */
static int closed(struct vfio_dev *d, int ret)
{
	vfio_dev_close(d);
	return ret;
}

void vfio_dev_init(struct vfio_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->container = d->group = d->fd = -1;
}

void vfio_dev_close(struct vfio_dev *d)
{
	/* The device first, then the group leaves its container (closing the group does it). */
	if (d->fd >= 0)
		close(d->fd);
	if (d->group >= 0)
		close(d->group);
	if (d->container >= 0)
		close(d->container);
	d->fd = d->group = d->container = -1;
}

static unsigned irq_count(struct vfio_dev *d, unsigned index)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };

	return ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0 ? 0 : ii.count;
}

int vfio_dev_open(struct vfio_dev *d, const struct vfio_paths *paths, const char *bdf, char *err,
		  size_t errlen)
{
	static const struct vfio_paths sys = { "/sys", "/dev/vfio" };
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_device_info di = { .argsz = sizeof(di) };
	char path[512];
	int api;

	vfio_dev_init(d);
	if (!paths)
		paths = &sys;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	if (vfio_sysfs_check(paths->sysfs, bdf, &d->group_nr, err, errlen) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vfio", paths->devdir);
	d->container = open(path, O_RDWR | O_CLOEXEC);
	if (d->container < 0)
		return closed(d, log_fmt(err, errlen,
					 "vfio=%s: %s: %s; modprobe vfio-pci (and vfio_iommu_type1)", bdf,
					 path, strerror(errno)));
	api = ioctl(d->container, VFIO_GET_API_VERSION);
	if (api != VFIO_API_VERSION)
		return closed(d, log_fmt(err, errlen,
					 "vfio=%s: the kernel's VFIO API is version %d, kvmbox speaks %d",
					 bdf, api, VFIO_API_VERSION));
	if (ioctl(d->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
		return closed(d,
			      log_fmt(err, errlen,
				      "vfio=%s: no type-1 v2 IOMMU in VFIO; modprobe vfio_iommu_type1", bdf));
	d->group = vfio_group_open(paths->devdir, d->group_nr, err, errlen);
	if (d->group < 0) {
		vfio_dev_close(d);
		return -1;
	}
	if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &gs) < 0)
		return closed(
			d, log_fmt(err, errlen, "vfio=%s: VFIO_GROUP_GET_STATUS: %s", bdf, strerror(errno)));
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		return closed(
			d,
			log_fmt(err, errlen,
				"vfio=%s: IOMMU group %d is not viable: bind every function of /sys/kernel/iommu_groups/"
				"%d/devices to vfio-pci",
				bdf, d->group_nr, d->group_nr));
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) < 0)
		return closed(d, log_fmt(err, errlen, "vfio=%s: VFIO_GROUP_SET_CONTAINER: %s", bdf,
					 strerror(errno)));
	if (ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		return closed(
			d,
			log_fmt(err, errlen,
				"vfio=%s: VFIO_SET_IOMMU (type-1 v2): %s; is the IOMMU on (intel_iommu=on)?",
				bdf, strerror(errno)));
	d->fd = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (d->fd < 0)
		return closed(d, log_fmt(err, errlen, "vfio=%s: VFIO_GROUP_GET_DEVICE_FD: %s", bdf,
					 strerror(errno)));
	if (ioctl(d->fd, VFIO_DEVICE_GET_INFO, &di) < 0)
		return closed(
			d, log_fmt(err, errlen, "vfio=%s: VFIO_DEVICE_GET_INFO: %s", bdf, strerror(errno)));
	if (!(di.flags & VFIO_DEVICE_FLAGS_PCI) || di.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX)
		return closed(d, log_fmt(err, errlen,
					 "vfio=%s: not a PCI device to VFIO (flags %#x, %u regions)", bdf,
					 di.flags, di.num_regions));
	d->can_reset = di.flags & VFIO_DEVICE_FLAGS_RESET;
	for (int r = 0; r < VFIO_DEV_REGIONS; r++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = (uint32_t)r };

		if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
			return closed(d, log_fmt(err, errlen, "vfio=%s: VFIO_DEVICE_GET_REGION_INFO %d: %s",
						 bdf, r, strerror(errno)));
		d->region[r] = (struct vfio_dev_region){ ri.size, ri.offset, ri.flags };
	}
	if (d->region[VFIO_DEV_CONFIG].size < 256)
		return closed(d, log_fmt(err, errlen, "vfio=%s: config region of %llu bytes", bdf,
					 (unsigned long long)d->region[VFIO_DEV_CONFIG].size));
	d->intx_count = irq_count(d, VFIO_PCI_INTX_IRQ_INDEX);
	d->msi_count = irq_count(d, VFIO_PCI_MSI_IRQ_INDEX);
	d->msix_count = irq_count(d, VFIO_PCI_MSIX_IRQ_INDEX);
	return 0;
}

int vfio_dev_map_dma(struct vfio_dev *d, uint64_t iova, void *host, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)host,
		.iova = iova,
		.size = size,
	};

	return ioctl(d->container, VFIO_IOMMU_MAP_DMA, &map) < 0 ? -1 : 0;
}

int vfio_dev_unmap_dma(struct vfio_dev *d, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap), .iova = iova, .size = size };

	return ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0 ? -1 : 0;
}

static bool in_region(struct vfio_dev *d, int r, uint64_t off, uint32_t len)
{
	return r >= 0 && r < VFIO_DEV_REGIONS && len <= d->region[r].size && off <= d->region[r].size - len;
}

int vfio_dev_region_read(struct vfio_dev *d, int r, uint64_t off, void *buf, uint32_t len)
{
	if (!in_region(d, r, off, len))
		return -1;
	return pread(d->fd, buf, len, (off_t)(d->region[r].offset + off)) == (ssize_t)len ? 0 : -1;
}

int vfio_dev_region_write(struct vfio_dev *d, int r, uint64_t off, const void *buf, uint32_t len)
{
	if (!in_region(d, r, off, len))
		return -1;
	return pwrite(d->fd, buf, len, (off_t)(d->region[r].offset + off)) == (ssize_t)len ? 0 : -1;
}

int vfio_dev_set_irqs(struct vfio_dev *d, unsigned index, const int *fds, unsigned n)
{
	size_t sz = sizeof(struct vfio_irq_set) + (size_t)n * sizeof(int);
	struct vfio_irq_set *s = calloc(1, sz);
	int rc;

	if (!s)
		return -1;
	s->argsz = (uint32_t)sz;
	s->index = index;
	s->start = 0;
	s->count = n;
	s->flags = n ? VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER
		     : VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	if (n)
		memcpy(s->data, fds, (size_t)n * sizeof(int));
	rc = ioctl(d->fd, VFIO_DEVICE_SET_IRQS, s);
	free(s);
	return rc < 0 ? -1 : 0;
}

int vfio_dev_set_intx(struct vfio_dev *d, int fd, int unmask_fd)
{
	struct {
		struct vfio_irq_set s;
		int fd;
	} a = { .s = { .argsz = sizeof(a), .index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1 } };

	a.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	a.fd = fd;
	if (ioctl(d->fd, VFIO_DEVICE_SET_IRQS, &a) < 0)
		return -1;
	a.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;
	a.fd = unmask_fd;
	return ioctl(d->fd, VFIO_DEVICE_SET_IRQS, &a) < 0 ? -1 : 0;
}

int vfio_dev_reset(struct vfio_dev *d)
{
	if (!d->can_reset) {
		errno = ENOTTY;
		return -1;
	}
	return ioctl(d->fd, VFIO_DEVICE_RESET) < 0 ? -1 : 0;
}

int vfio_dev_kvm_add(struct vfio_dev *d, int kvm_vfio_fd)
{
	int32_t gfd = d->group;
	struct kvm_device_attr attr = {
		.group = KVM_DEV_VFIO_GROUP,
		.attr = KVM_DEV_VFIO_GROUP_ADD,
		.addr = (uintptr_t)&gfd,
	};

	return ioctl(kvm_vfio_fd, KVM_SET_DEVICE_ATTR, &attr) < 0 ? -1 : 0;
}
