/* gic.c - the in-kernel GICv3 (and its ITS for MSIs) through KVM_CREATE_DEVICE.
 * Documentation/virt/kvm/devices/arm-vgic-v3.rst and arm-vgic-its.rst: addresses and the number
 * of interrupts are set before KVM_DEV_ARM_VGIC_CTRL_INIT, which must follow the creation of
 * every vCPU (the redistributor region is sized by the vCPU count then). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "arm64.h"
#include "layout.h"

static int dev_attr(int fd, uint32_t group, uint64_t attr, const void *val, const char *what)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val };

	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
		log_error("KVM: vGIC %s: KVM_SET_DEVICE_ATTR failed: %s", what, strerror(errno));
		return -1;
	}
	return 0;
}

static int create_device(int vm_fd, uint32_t type, bool test)
{
	struct kvm_create_device cd = { .type = type, .flags = test ? KVM_CREATE_DEVICE_TEST : 0 };

	if (ioctl(vm_fd, KVM_CREATE_DEVICE, &cd) < 0)
		return -1;
	return test ? 0 : (int)cd.fd;
}

int arm64_gic_create(struct vm *vm, struct arm64_vm *a)
{
	uint64_t dist = ARM64_GIC_DIST_BASE, redist = ARM64_GIC_REDIST_BASE, its = ARM64_GIC_ITS_BASE;
	uint32_t nr_irqs = ARM64_GIC_NR_IRQS;

	a->gic_fd = create_device(vm->vm_fd, KVM_DEV_TYPE_ARM_VGIC_V3, false);
	if (a->gic_fd < 0) {
		int e = errno;

		if (create_device(vm->vm_fd, KVM_DEV_TYPE_ARM_VGIC_V2, true) == 0)
			log_error(
				"/dev/kvm: this host's interrupt controller is a GICv2 (no in-kernel GICv3: "
				"%s); kvmbox needs a host with a GICv3",
				strerror(e));
		else
			log_error("/dev/kvm: no in-kernel GIC (creating a vGICv3: %s); kvmbox needs a host "
				  "whose KVM emulates a GICv3",
				  strerror(e));
		return -1;
	}
	if (dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist, "distributor") <
		    0 ||
	    dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
		     "redistributors") < 0 ||
	    dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs, "interrupt count") < 0)
		return -1;
	/* The ITS is optional: without it the guest just has no MSIs. */
	a->its_fd = create_device(vm->vm_fd, KVM_DEV_TYPE_ARM_VGIC_ITS, false);
	if (a->its_fd < 0) {
		log_debug("no in-kernel GICv3 ITS: %s", strerror(errno));
		return 0;
	}
	return dev_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &its, "ITS address");
}

int arm64_gic_finalize(struct arm64_vm *a)
{
	if (a->gic_ready)
		return 0;
	if (dev_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "init") < 0)
		return -1;
	if (a->its_fd >= 0 &&
	    dev_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "ITS init") < 0)
		return -1;
	a->gic_ready = true;
	return 0;
}

void arm64_gic_destroy(struct arm64_vm *a)
{
	if (a->its_fd >= 0)
		close(a->its_fd);
	if (a->gic_fd >= 0)
		close(a->gic_fd);
	a->its_fd = a->gic_fd = -1;
}
