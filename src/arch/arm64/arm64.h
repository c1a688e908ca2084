/* arm64.h - what the arm64 files share: the arch private data and the one-register accessors.
 * Only for the files that build for an arm64 target (they use <asm/kvm.h> of arm64). */
#ifndef KVMBOX_ARM64_ARM64_H
#define KVMBOX_ARM64_ARM64_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct vm;

struct arm64_vm {
	struct arm64_boot boot;    /* where arch_load_kernel put things */
	struct kvm_vcpu_init init; /* KVM's preferred target; features are added per vCPU */
	int gic_fd;                /* the in-kernel GICv3 (KVM device), -1 before it exists */
	int its_fd;                /* its ITS, -1 when the host's KVM has none */
	bool gic_ready;            /* KVM_DEV_ARM_VGIC_CTRL_INIT done */
};

/* Register ids for KVM_GET/SET_ONE_REG. */
#define ARM64_CORE_REG(field)                                  \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, field) / sizeof(__u32)))
#define ARM64_REG_MPIDR_EL1 ARM64_SYS_REG(3, 0, 0, 0, 5)
#define ARM64_REG_ESR_EL1   ARM64_SYS_REG(3, 0, 5, 2, 0)
#define ARM64_REG_FAR_EL1   ARM64_SYS_REG(3, 0, 6, 0, 0)

/* One 64-bit register of a vCPU. 0, or -1 (get_reg: quietly; set_reg: printed). */
int arm64_get_reg(int vcpu_fd, uint64_t id, uint64_t *val);
int arm64_set_reg(int vcpu_fd, uint64_t id, uint64_t val);

/* The in-kernel GICv3 and ITS (gic.c): create them with their addresses (arch_vm_init), and
 * initialise them once every vCPU exists (before the first KVM_RUN). 0, or -1 after one line. */
int arm64_gic_create(struct vm *vm, struct arm64_vm *a);
int arm64_gic_finalize(struct arm64_vm *a);
void arm64_gic_destroy(struct arm64_vm *a);

#endif
