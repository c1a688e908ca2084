/* seccomp.c - the KVM ioctls x86 code issues, by use, for core/sandbox.c's allow-lists. Keep
 * in step with x86.c, cpu.c and state.c: an ioctl missing here ends kvmbox with a SIGSYS line
 * that names it (ioctl, with its request number). */
#include "../arch.h"

/* clang-format off */

static const unsigned long build[] = {
	/* arch_vm_init */
	KVM_CHECK_EXTENSION, KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2,
	/* arch_vcpu_init, arch_vcpu_boot_regs */
	KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2, KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_SET_FPU,
	KVM_GET_SREGS, KVM_SET_SREGS, KVM_SET_REGS, 0,
};

static const unsigned long state_get[] = {
	KVM_CHECK_EXTENSION, KVM_GET_MSR_INDEX_LIST, KVM_GET_SUPPORTED_CPUID, KVM_GET_CPUID2, KVM_GET_MP_STATE,
	KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_DEBUGREGS,
	KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_MSRS, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK, 0,
};

static const unsigned long state_set[] = {
	KVM_SET_CPUID2, KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_XSAVE, KVM_SET_XCRS, KVM_SET_DEBUGREGS,
	KVM_SET_LAPIC, KVM_SET_VCPU_EVENTS, KVM_SET_MP_STATE, KVM_SET_MSRS, KVM_SET_IRQCHIP, KVM_SET_PIT2,
	KVM_SET_CLOCK, 0,
};

static const unsigned long clock[] = { KVM_GET_CLOCK, KVM_SET_CLOCK, 0 };

static const unsigned long crash_dump[] = { KVM_GET_REGS, KVM_GET_SREGS, 0 };
/* clang-format on */

const struct arch_ioctls arch_ioctls = {
	.build = build,
	.state_get = state_get,
	.state_set = state_set,
	.clock = clock,
	.crash_dump = crash_dump,
};
