/* seccomp.c - the KVM ioctls arm64 code issues, by use, for core/sandbox.c's allow-lists. Keep
 * in step with arm64.c, gic.c and state.c: an ioctl missing here ends kvmbox with a SIGSYS line
 * that names it (ioctl, with its request number). */
#include "../arch.h"

/* clang-format off */

static const unsigned long build[] = {
	/* arch_vm_init, gic.c (the vGIC and ITS are created and initialised there) */
	KVM_CHECK_EXTENSION, KVM_ARM_PREFERRED_TARGET, KVM_ENABLE_CAP, KVM_CREATE_DEVICE,
	KVM_SET_DEVICE_ATTR,
	/* arch_vcpu_init, arch_vcpu_boot_regs */
	KVM_ARM_VCPU_INIT, KVM_GET_ONE_REG, KVM_SET_ONE_REG, 0,
};

/* state.c: the registers of KVM_GET_REG_LIST, the vGIC and ITS attributes (saving the ITS
 * tables is a SET of a control attribute), the power state, the virtual counter. */
static const unsigned long state_get[] = {
	KVM_CHECK_EXTENSION, KVM_GET_REG_LIST, KVM_GET_ONE_REG, KVM_GET_DEVICE_ATTR, KVM_SET_DEVICE_ATTR,
	KVM_GET_MP_STATE, 0,
};

static const unsigned long state_set[] = {
	KVM_SET_ONE_REG, KVM_GET_ONE_REG, KVM_GET_REG_LIST, KVM_SET_DEVICE_ATTR, KVM_GET_DEVICE_ATTR,
	KVM_SET_MP_STATE, 0,
};

/* The guest's clock is vCPU 0's virtual counter (KVM_REG_ARM_TIMER_CNT). */
static const unsigned long clock[] = { KVM_GET_ONE_REG, KVM_SET_ONE_REG, 0 };

static const unsigned long crash_dump[] = { KVM_GET_ONE_REG, 0 };
/* clang-format on */

const struct arch_ioctls arch_ioctls = {
	.build = build,
	.state_get = state_get,
	.state_set = state_set,
	.clock = clock,
	.crash_dump = crash_dump,
};
