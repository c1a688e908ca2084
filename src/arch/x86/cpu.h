/* cpu.h - x86 vCPU set-up: CPUID, MSRs, LAPIC, FPU and register dumps. */
#ifndef KVMBOX_X86_CPU_H
#define KVMBOX_X86_CPU_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>

/* KVM_GET_SUPPORTED_CPUID into a malloc'ed table, or NULL (printed). */
struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd);
/* Copy of `base` adjusted for vCPU `id` of `ncpus`: APIC ids, topology leaves
 * (1, 4, 0xB, 0x1F, 0x80000008), hypervisor bit, KVM paravirt leaves, and on AMD a family
 * without a northbridge GART (x86_cpuid_no_gart_signature).
 * Returns a malloc'ed table or NULL. Pure: unit-testable. */
struct kvm_cpuid2 *x86_vcpu_cpuid(const struct kvm_cpuid2 *base, unsigned id, unsigned ncpus);
/* An AMD CPU signature (leaf 1 / 0x80000001 EAX) of a family whose northbridge has a GART
 * (0xf, 0x10, 0x15 models 0-0xf) as family 0x11, any other unchanged (cpu.c says why). */
uint32_t x86_cpuid_no_gart_signature(uint32_t eax);
/* Find a CPUID entry, or NULL. */
struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index);
/* Apply CPUID, boot MSRs, LAPIC LINT0/LINT1 and FPU defaults to a vCPU fd. */
int x86_vcpu_setup(int vcpu_fd, const struct kvm_cpuid2 *cpuid);
/* Print general, segment and control registers of a vCPU. */
void x86_dump_regs(int vcpu_fd, unsigned id, FILE *f);

#endif
