/* boot.h - loading a Linux kernel into x86 guest RAM and the boot vCPU's entry state.
 *
 * Two entry paths: a bzImage through the 64-bit Linux boot protocol (boot_params "zero page"
 * at X86_ZERO_PAGE_ADDR), or an ELF vmlinux with a Xen PVH entry note (32-bit entry with an
 * hvm_start_info at X86_PVH_INFO_ADDR). Everything here is a pure function of guest memory:
 * no KVM ioctls, so it is unit-testable with a fake RAM buffer. */
#ifndef KVMBOX_X86_BOOT_H
#define KVMBOX_X86_BOOT_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

/* e820 / PVH memory map entry types. */
#define X86_E820_RAM      1
#define X86_E820_RESERVED 2
/* Entries the zero page holds (boot_params.e820_table). */
#define X86_E820_MAX 128

/* One e820 entry exactly as in boot_params (20 bytes, packed). */
struct x86_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Selectors in the boot GDT at X86_GDT_ADDR (entries 0 and 1 are null). */
#define X86_BOOT_CS          0x10
#define X86_BOOT_DS          0x18
#define X86_BOOT_TSS         0x20
#define X86_BOOT_GDT_ENTRIES 6 /* the 64-bit TSS descriptor takes two slots */

struct x86_boot_entry {
	bool pvh;     /* true: 32-bit PVH entry, false: 64-bit Linux boot protocol entry */
	uint64_t rip; /* entry point */
	uint64_t rsi; /* 64-bit: boot_params (zero page) GPA */
	uint64_t rbx; /* PVH: hvm_start_info GPA */
};

/* Load a kernel (bzImage, or ELF64 vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note), optional initrd
 * and command line; write boot_params + e820 (bzImage) or hvm_start_info + memmap (PVH), the boot
 * GDT and identity page tables for 0..4 GiB. rsdp_gpa is handed to the kernel. The what_* paths are
 * used only in error messages. Returns 0, or -1 after log_error(). */
int x86_load_kernel(const struct guest_mem *mem, const uint8_t *kernel, size_t kernel_size,
		    const char *what_kernel, const uint8_t *initrd, size_t initrd_size,
		    const char *what_initrd, const char *cmdline, uint64_t rsdp_gpa,
		    struct x86_boot_entry *out);

/* Build the e820 map of mem, sorted by address (RAM 0..EBDA, reserved EBDA..1 MiB, RAM 1 MiB..low
 * end, reserved identity-map/TSS pages, RAM above 4 GiB). Returns the count (<= max), or -1 if max
 * is too small. */
int x86_build_e820(const struct guest_mem *mem, struct x86_e820_entry *out, int max);

/* Fill the boot vCPU's registers for `entry`; sregs must hold the vCPU's current special registers
 * (KVM_GET_SREGS), which are modified in place; regs is overwritten. */
void x86_boot_regs(const struct x86_boot_entry *entry, struct kvm_regs *regs, struct kvm_sregs *sregs);

#endif
