/* acpi.h - the ACPI tables kvmbox hands an x86 guest (RSDP, RSDT/XSDT, FADT, FACS, DSDT, MADT,
 * MCFG).
 *
 * The tables describe the fixed platform of layout.h: the PM1 block, reset register and SCI the
 * lead's power device emulates, the IOAPIC/LAPICs, a PCI root bridge with its _PRT and its ECAM window
 * (MCFG), and the legacy COM1/RTC/i8042 devices. They are written once, before the first vCPU runs. */
#ifndef KVMBOX_X86_ACPI_H
#define KVMBOX_X86_ACPI_H

#include <stdint.h>

#include "core/memory.h"

/* Largest vCPU count the MADT can describe: 8-bit APIC ids, 0xff is broadcast and the IOAPIC
 * takes the id after the last vCPU. */
#define X86_ACPI_MAX_CPUS 254

/* Write the RSDP (at X86_BIOS_START, where the BIOS-area scan finds it too) and the tables it
 * points to into X86_BIOS_START..X86_BIOS_END, which must be guest RAM. Returns 0 with *rsdp_gpa
 * set, or -1 after log_error(). */
int x86_acpi_build(const struct guest_mem *mem, unsigned ncpus, uint64_t *rsdp_gpa);

#endif
