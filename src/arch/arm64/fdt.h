/* fdt.h - the device tree an arm64 guest boots with, built with libfdt.
 *
 * A pure function of its description (no KVM), so it is unit-tested on any host by parsing the
 * blob back with libfdt. The fixed addresses and interrupt numbers come from layout.h. */
#ifndef KVMBOX_ARM64_FDT_H
#define KVMBOX_ARM64_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* phandles of the nodes others point at. */
#define ARM64_PHANDLE_GIC   1
#define ARM64_PHANDLE_ITS   2
#define ARM64_PHANDLE_CLOCK 3
#define ARM64_PHANDLE_GPIO  4

/* Interrupt specifier cells of the GICv3 binding. */
#define ARM64_DT_IRQ_SPI        0
#define ARM64_DT_IRQ_PPI        1
#define ARM64_DT_IRQ_LEVEL_HIGH 4
/* Cells of one PCI interrupt-map entry: child address (3) and pin (1), the GIC's phandle, its
 * address (2) and interrupt specifier (3). */
#define ARM64_DT_IMAP_CELLS 10

/* What the guest is given. */
struct arm64_dt {
	uint64_t ram_base, ram_size;       /* the one RAM region */
	unsigned ncpus;                    /* vCPUs; cpu@N nodes have reg = mpidr[N] */
	const uint64_t *mpidr;             /* MPIDR_EL1 of each vCPU (affinity bits are used) */
	bool its;                          /* describe the vGIC's ITS (MSI controller) */
	bool pci;                          /* describe the ECAM PCI host */
	const char *bootargs;              /* NULL: none */
	uint64_t initrd_start, initrd_end; /* both 0: no initrd */
};

/* The MPIDR affinity KVM gives vCPU `id` (Aff0 = id & 15, Aff1 = id >> 4, Aff2 = id >> 12). */
uint64_t arm64_default_mpidr(unsigned id);

/* Write the device tree blob into buf (size bytes, 8-byte aligned). 0, or -1 after log_error()
 * (only when size is too small or the description is impossible: a kvmbox bug). */
int arm64_fdt_build(const struct arm64_dt *dt, void *buf, size_t size);

#endif
