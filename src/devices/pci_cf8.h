/* pci_cf8.h - PCI configuration mechanism #1: the x86 config front-end.
 *
 * CONFIG_ADDRESS at `base` (dword accesses only: enable bit 31, bus 23:16,
 * device 15:11, function 10:8, register 7:2) and CONFIG_DATA at base + 4
 * (1, 2 or 4 bytes at any of its four ports, reaching the addressed dword's
 * bytes). It reaches the conventional 256 bytes of each function; with the
 * enable bit clear, data accesses read all ones and writes are dropped. */
#ifndef KVMBOX_DEVICES_PCI_CF8_H
#define KVMBOX_DEVICES_PCI_CF8_H

#include <stdint.h>

#include "../core/bus.h"
#include "../core/device.h"

/* Create the front-end of host (from pci_host_create) on bus: CONFIG_ADDRESS
 * at base, CONFIG_DATA at base + 4 (0xCF8 and 0xCFC on the x86 port bus).
 * Its state (CONFIG_ADDRESS) is saved with it. NULL with an error logged. */
struct device *pci_cf8_create(const char *name, struct device *host, struct bus *bus, uint64_t base);

#endif
