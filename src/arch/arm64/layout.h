/* layout.h - the arm64 guest physical address map and fixed interrupt numbers.
 *
 * Close to QEMU's "virt" machine, so a guest kernel sees nothing unusual:
 *
 *   0x00000000 .. 0x07ffffff  unused (no flash, no firmware)
 *   0x08000000  GICv3 distributor (64 KiB)
 *   0x08080000  GICv3 ITS (128 KiB)
 *   0x080a0000  GICv3 redistributors, 128 KiB per vCPU, up to 0x08ffffff (123 vCPUs)
 *   0x09000000  16550A UART (console), one 4 KiB page
 *   0x09010000  PL031 RTC, one 4 KiB page
 *   0x09020000  PL061 GPIO (the power button: gpio-keys), one 4 KiB page
 *   0x10000000 .. 0x2fffffff  32-bit PCI MMIO window   } the ECAM PCI host (fdt.c)
 *   0x30000000 .. 0x3fffffff  PCI ECAM (256 buses)     }
 *   0x40000000  RAM, one region, up to the 64-bit PCI window
 *   0x8000000000 .. 0xffffffffff  64-bit PCI MMIO window
 *
 * Everything stays below 1 TiB, the IPA size KVM gives a VM by default (40 bits), so the VM
 * needs no KVM_CAP_ARM_VM_IPA_SIZE. Inside RAM the boot protocol's pieces go:
 *   RAM base + text_offset   the kernel Image (2 MiB aligned base, Documentation/arm64/booting.rst)
 *   top 2 MiB of RAM          the device tree (in a 2 MiB block of its own)
 *   below it                  the initrd
 */
#ifndef KVMBOX_ARM64_LAYOUT_H
#define KVMBOX_ARM64_LAYOUT_H

#include <stdint.h>

#define ARM64_GIC_DIST_BASE     0x08000000ULL
#define ARM64_GIC_DIST_SIZE     0x10000ULL
#define ARM64_GIC_ITS_BASE      0x08080000ULL
#define ARM64_GIC_ITS_SIZE      0x20000ULL
#define ARM64_GIC_REDIST_BASE   0x080a0000ULL
#define ARM64_GIC_REDIST_STRIDE 0x20000ULL /* RD_base + SGI_base frames per vCPU */
#define ARM64_GIC_REDIST_END    0x09000000ULL
#define ARM64_GIC_MAX_CPUS      ((ARM64_GIC_REDIST_END - ARM64_GIC_REDIST_BASE) / ARM64_GIC_REDIST_STRIDE)

#define ARM64_UART_BASE  0x09000000ULL
#define ARM64_UART_SIZE  0x1000ULL
#define ARM64_UART_CLOCK 1843200 /* the usual 16550 crystal; there is no baud rate */
#define ARM64_RTC_BASE   0x09010000ULL
#define ARM64_RTC_SIZE   0x1000ULL
#define ARM64_GPIO_BASE  0x09020000ULL
#define ARM64_GPIO_SIZE  0x1000ULL

#define ARM64_PCI_MMIO_BASE   0x10000000ULL
#define ARM64_PCI_MMIO_SIZE   0x20000000ULL
#define ARM64_PCI_ECAM_BASE   0x30000000ULL
#define ARM64_PCI_ECAM_SIZE   0x10000000ULL
#define ARM64_PCI_ECAM_BUSES  256 /* 1 MiB of ECAM each */
#define ARM64_PCI_MMIO64_BASE 0x8000000000ULL
#define ARM64_PCI_MMIO64_SIZE 0x8000000000ULL

#define ARM64_RAM_BASE 0x40000000ULL
#define ARM64_RAM_MAX  (ARM64_PCI_MMIO64_BASE - ARM64_RAM_BASE)

/* Where the boot pieces go inside RAM. */
#define ARM64_KERNEL_ALIGN 0x200000ULL /* the Image's base is 2 MiB aligned */
#define ARM64_FDT_BLOCK    0x200000ULL /* the DTB gets the top 2 MiB block of RAM */
#define ARM64_FDT_MAX      0x10000ULL  /* what we build stays far below 2 MiB */

/* Shared peripheral interrupts (SPI n is GIC INTID 32 + n), as on QEMU's virt machine. */
#define ARM64_SPI_UART       1
#define ARM64_SPI_RTC        2
#define ARM64_SPI_PCI_INTX   3 /* PCI INTx: ARM64_PCI_INTX_LINES SPIs from here */
#define ARM64_PCI_INTX_LINES 4
#define ARM64_SPI_GPIO       7 /* after the INTx lines */
/* Interrupt IDs the in-kernel vGIC handles: 32 private ones plus the SPIs (multiple of 32). */
#define ARM64_GIC_NR_IRQS 128
#define ARM64_GIC_NR_SPIS (ARM64_GIC_NR_IRQS - 32)

/* KVM_IRQ_LINE's encoding of an interrupt (arm64's asm/kvm.h, which an x86 build of the unit
 * tests lacks; arm64.c checks these against it): type, vCPU index, INTID. */
#define ARM64_IRQ_LINE_TYPE_SHIFT 24
#define ARM64_IRQ_LINE_TYPE_MASK  0xfu
#define ARM64_IRQ_LINE_TYPE_SPI   1u
#define ARM64_IRQ_LINE_TYPE_PPI   2u
#define ARM64_IRQ_LINE_VCPU_SHIFT 16
#define ARM64_IRQ_LINE_VCPU_MASK  0xffu
#define ARM64_IRQ_LINE_NUM_MASK   0xffffu
/* The KVM_IRQ_LINE number of SPI n. */
#define ARM64_IRQ_LINE_SPI(n) (ARM64_IRQ_LINE_TYPE_SPI << ARM64_IRQ_LINE_TYPE_SHIFT | (32u + (n)))

/* KVM_IRQ_LINE raises SPI n as ARM64_IRQ_LINE_SPI(n) (arm64.c's SPI()); an irqfd needs the
 * line's routing GSI instead, which is n (arm64.c's arch_default_routes). -1 for no SPI. */
static inline int64_t arm64_spi_route_gsi(uint32_t irq_line)
{
	uint32_t intid = irq_line & ARM64_IRQ_LINE_NUM_MASK;

	if ((irq_line >> ARM64_IRQ_LINE_TYPE_SHIFT & ARM64_IRQ_LINE_TYPE_MASK) != ARM64_IRQ_LINE_TYPE_SPI ||
	    (irq_line >> ARM64_IRQ_LINE_VCPU_SHIFT & ARM64_IRQ_LINE_VCPU_MASK) || intid < 32 ||
	    intid - 32 >= ARM64_GIC_NR_SPIS)
		return -1;
	return intid - 32;
}

/* Private peripheral interrupts of the architected timer (PPI n is INTID 16 + n). */
#define ARM64_PPI_TIMER_SEC    13
#define ARM64_PPI_TIMER_NONSEC 14
#define ARM64_PPI_TIMER_VIRT   11
#define ARM64_PPI_TIMER_HYP    10
#define ARM64_PPI_GIC_MAINT    9

#endif
