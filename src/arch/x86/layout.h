/* layout.h - the x86 guest physical address map and fixed resources.
 *
 *   0x00000500  GDT (boot)               0x00006000  PVH hvm_start_info + memmap
 *   0x00007000  boot_params (zero page)  0x00008ff0  boot stack top
 *   0x00009000  PML4  0x0000a000 PDPT    0x0000b000..0x0000efff  PDs (4 GiB, 2 MiB pages)
 *   0x00020000  kernel command line (up to 64 KiB)
 *   0x0009fc00  EBDA (reserved)          0x000e0000  ACPI tables / MP table (reserved)
 *   0x00100000  kernel (bzImage protected-mode part, or vmlinux segments)
 *   RAM above 1 MiB up to min(memory, PCI hole start); the rest above 4 GiB.
 *   0xc0000000 .. 0xfeafffff  32-bit PCI MMIO window (hole)
 *   0xfeb00000 .. 0xfebfffff  PCI ECAM (MMCONFIG) of bus 0: the MCFG table's window, reserved in e820
 *   0xfec00000 IOAPIC   0xfee00000 LAPIC   0xfeffc000 KVM identity map + TSS
 */
#ifndef KVMBOX_X86_LAYOUT_H
#define KVMBOX_X86_LAYOUT_H

#define X86_GDT_ADDR       0x500ULL
#define X86_PVH_INFO_ADDR  0x6000ULL
#define X86_ZERO_PAGE_ADDR 0x7000ULL
#define X86_BOOT_STACK_TOP 0x8ff0ULL
#define X86_PML4_ADDR      0x9000ULL
#define X86_PDPT_ADDR      0xa000ULL
#define X86_PD_ADDR        0xb000ULL /* 4 pages */
#define X86_CMDLINE_ADDR   0x20000ULL
#define X86_CMDLINE_MAX    0x10000ULL /* including the NUL */
#define X86_EBDA_START     0x9fc00ULL
#define X86_LOW_RAM_END    0xa0000ULL /* RAM below the VGA hole */
#define X86_BIOS_START     0xe0000ULL /* ACPI/MP tables live here */
#define X86_BIOS_END       0x100000ULL
#define X86_KERNEL_ADDR    0x100000ULL

#define X86_PCI_HOLE_START 0xc0000000ULL
#define X86_PCI_MMIO_START 0xc0000000ULL
#define X86_PCI_MMIO_END   0xfeb00000ULL /* exclusive: the ECAM window follows */
/* ECAM (MMCONFIG) for bus 0 only, the one bus the DSDT's PCI0 declares: 1 MiB, 1 MiB aligned. */
#define X86_PCI_ECAM_BASE     0xfeb00000ULL
#define X86_PCI_ECAM_BUSES    1
#define X86_PCI_ECAM_SIZE     (X86_PCI_ECAM_BUSES * 0x100000ULL)
#define X86_IOAPIC_ADDR       0xfec00000ULL
#define X86_LAPIC_ADDR        0xfee00000ULL
#define X86_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define X86_TSS_ADDR          0xfeffd000ULL /* 3 pages */
#define X86_4G                0x100000000ULL
/* 64-bit PCI MMIO window, above any RAM we allow. */
#define X86_PCI_MMIO64_START 0x8000000000ULL
#define X86_PCI_MMIO64_SIZE  0x8000000000ULL

/* Legacy I/O ports and ISA interrupt lines (GSI n = ISA IRQ n with KVM's
 * default routing; no override for IRQ0). */
#define X86_COM1_PORT       0x3f8
#define X86_COM1_IRQ        4
#define X86_I8042_DATA      0x60
#define X86_I8042_CMD       0x64
#define X86_I8042_IRQ       1
#define X86_RTC_PORT        0x70 /* 0x70-0x71 */
#define X86_RTC_IRQ         8
#define X86_PCI_CONFIG_ADDR 0xcf8 /* configuration mechanism #1 */
#define X86_PCI_CONFIG_DATA 0xcfc /* = ADDR + 4 */
/* I/O BARs are allocated from, and decode only in, this port window. */
#define X86_PCI_IO_START 0xc000
#define X86_PCI_IO_SIZE  0x4000
/* ACPI fixed-hardware block (FADT points here). */
#define X86_PM1A_EVT_PORT  0x600 /* 4 bytes: PM1_STS(2) PM1_EN(2) */
#define X86_PM1A_CNT_PORT  0x604 /* 2 bytes: PM1_CNT */
#define X86_PM_RESET_PORT  0x608 /* 1 byte: FADT RESET_REG */
#define X86_PM_RESET_VALUE 0x01
#define X86_SCI_IRQ        9 /* level, active high (MADT override) */
/* SLP_TYP value for S5 (soft off), as the DSDT's \_S5 package says. */
#define X86_SLP_TYP_S5 5

/* PCI INTx: device on slot s, pin p (0=INTA) -> GSI 16 + ((s + p) % 8). */
#define X86_PCI_INTX_GSI_BASE  16
#define X86_PCI_INTX_GSI_COUNT 8

#endif
