/* arch.h - what the core asks of an architecture. x86_64 lives in arch/x86/. */
#ifndef KVMBOX_ARCH_H
#define KVMBOX_ARCH_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/config.h"
#include "../core/memory.h"

struct vm;
struct vcpu;

/* Architectures, as snapshot files and migration streams name them. */
enum arch_id { ARCH_ID_X86_64 = 1, ARCH_ID_ARM64 = 2 };
/* This build's architecture. */
extern const enum arch_id arch_this;
/* "x86_64", "arm64" or "unknown" for an id read from a file or a stream. */
const char *arch_id_name(uint32_t id);

/* Split `ram` bytes into guest RAM regions around the architecture's MMIO
 * holes. Returns the number of regions written to out (<= max). */
int arch_mem_layout(uint64_t ram, struct mem_region *out, int max);
/* Largest RAM size the address map allows. */
uint64_t arch_max_ram(void);
/* VM-wide set-up after RAM exists: irqchip, timers, fixed addresses. */
int arch_vm_init(struct vm *vm);
/* Create the platform devices (UART, RTC, reset, power, PCI host). */
int arch_create_devices(struct vm *vm);
/* Load kernel + initrd + command line into guest RAM and build the firmware
 * tables (they list cfg->cpus vCPUs). Needs only RAM: it runs before /dev/kvm
 * is opened and before arch_vm_init, so a bad kernel is reported first. */
int arch_load_kernel(struct vm *vm);
/* Per-vCPU set-up before first run: CPUID, MSRs, LAPIC, FPU, and for the
 * boot vCPU its entry registers. */
int arch_vcpu_init(struct vcpu *vcpu);
/* Entry registers of the boot vCPU (after arch_load_kernel). */
int arch_vcpu_boot_regs(struct vcpu *vcpu);
/* Register dump for crash reports. */
void arch_vcpu_dump(struct vcpu *vcpu, FILE *f);
/* Default GSI routes (the in-kernel irqchip pins) into out; returns the
 * count and sets *first_free to the first GSI free for MSI routes. */
int arch_default_routes(struct kvm_irq_routing_entry *out, int max, uint32_t *first_free);
/* The routing GSI (for KVM_IRQFD) of the interrupt line that KVM_IRQ_LINE raises as
 * irq_line (an irq_line's gsi, e.g. pci_intx_gsi's): the same number on x86 (an IOAPIC pin),
 * the SPI's route pin on arm64, where KVM_IRQ_LINE encodes type and INTID instead. -1 when
 * the line has no route. */
int64_t arch_line_route_gsi(uint32_t irq_line);
/* Snapshot state: one vCPU's full KVM state; the VM-wide irqchips, timer
 * and clock; the host CPU features the guest may rely on (checked on
 * restore so a snapshot is refused on a host that lacks them). load
 * returns -1 after printing when the data is malformed or KVM refuses it. */
#include "../core/ser.h"
int arch_vcpu_save(struct vcpu *vcpu, struct ser_writer *w);
int arch_vcpu_load(struct vcpu *vcpu, struct ser_reader *r);
int arch_vm_save(struct vm *vm, struct ser_writer *w);
int arch_vm_load(struct vm *vm, struct ser_reader *r);
int arch_cpu_features_save(struct vm *vm, struct ser_writer *w);
int arch_cpu_features_check(struct vm *vm, struct ser_reader *r);
/* The guest's kvmclock (pause/resume keep it from jumping). */
int arch_clock_get(struct vm *vm, uint64_t *ns);
int arch_clock_set(struct vm *vm, uint64_t ns);
/* Free arch private data. */
void arch_vm_destroy(struct vm *vm);

/* The KVM ioctl requests this architecture's code issues, by use, each list ending in 0:
 * core/sandbox.c allows each use on the threads that need it (seccomp). */
struct arch_ioctls {
	const unsigned long *build;      /* arch_vm_init, arch_vcpu_init, arch_vcpu_boot_regs */
	const unsigned long *state_get;  /* arch_*_save, arch_cpu_features_save, arch_clock_get */
	const unsigned long *state_set;  /* arch_*_load, arch_clock_set */
	const unsigned long *clock;      /* arch_clock_get/set (vm_pause, vm_resume) */
	const unsigned long *crash_dump; /* arch_vcpu_dump, on the vCPU thread */
};
extern const struct arch_ioctls arch_ioctls;

#endif
