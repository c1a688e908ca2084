/* pci_ecam.h - PCIe ECAM (enhanced configuration access) over MMIO.
 *
 * A window of nr_buses MiB: each function's 4 KiB of config space is one
 * page, at offset bus << 20 | device << 15 | function << 12 from the start
 * of the window (bus 0 first). 1, 2 and 4-byte accesses within one dword
 * reach the PCI core (pci_host_config_access); the first 256 bytes of a page
 * are the conventional config space, the rest the extended one. Whatever the
 * guest does, nothing else gets through: wider, dword-straddling or
 * page-straddling accesses, buses or functions that do not exist read all
 * ones and drop writes, and beyond the window nothing decodes (the bus reads
 * all ones). A config write that moves a BAR (un)registers it on the MMIO
 * bus from inside this MMIO access, which core/bus.h allows. */
#ifndef KVMBOX_DEVICES_PCI_ECAM_H
#define KVMBOX_DEVICES_PCI_ECAM_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "pci.h"

#define PCI_ECAM_BUS_SIZE  (1ULL << 20) /* 32 devices x 8 functions x 4 KiB */
#define PCI_ECAM_MAX_BUSES 256

/* Decode an access of len bytes at offset off of a window of nr_buses
 * buses: true with *at filled when it is one config access the core can
 * take (len 1, 2 or 4, inside one dword, inside the window), false when it
 * must read all ones. */
bool pci_ecam_decode(uint64_t off, uint32_t len, uint32_t nr_buses, struct pci_cfg_addr *at);

/* Create the front-end of host (from pci_host_create) decoding
 * [base, base + nr_buses MiB) on the MMIO bus mmio; nr_buses 1..256, base
 * 1 MiB aligned (as MCFG and the device tree's generic ECAM host expect).
 * It has no state of its own. NULL with an error logged. */
struct device *pci_ecam_create(const char *name, struct device *host, struct bus *mmio, uint64_t base,
			       uint32_t nr_buses);

#endif
