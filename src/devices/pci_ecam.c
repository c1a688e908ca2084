/* pci_ecam.c - PCIe ECAM config front-end over the PCI core. */
#include "pci_ecam.h"

#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"

struct pci_ecam {
	struct device dev;
	struct pci_host *host;
	struct bus *bus;
	struct bus_claim claim;
	uint32_t nr_buses;
};

static struct pci_ecam *to_ecam(struct device *dev)
{
	return container_of(dev, struct pci_ecam, dev);
}

bool pci_ecam_decode(uint64_t off, uint32_t len, uint32_t nr_buses, struct pci_cfg_addr *at)
{
	uint32_t reg = (uint32_t)(off & (PCI_EXT_CONFIG_SIZE - 1));

	/* A config request carries one dword and byte enables: an access the
	 * hardware would have to split is not one, whatever the CPU allowed. */
	if ((len != 1 && len != 2 && len != 4) || (reg & 3) + len > 4)
		return false;
	if (nr_buses > PCI_ECAM_MAX_BUSES || off >= (uint64_t)nr_buses * PCI_ECAM_BUS_SIZE)
		return false;
	*at = (struct pci_cfg_addr){
		.bus = (uint8_t)(off >> 20),
		.dev = (uint8_t)((off >> 15) & 0x1f),
		.fn = (uint8_t)((off >> 12) & 7),
		.reg = (uint16_t)reg,
	};
	return true;
}

static void ecam_io(struct device *dev, struct bus_access *a)
{
	struct pci_ecam *e = to_ecam(dev);
	struct pci_cfg_addr at;

	if (!pci_ecam_decode(a->offset, a->len, e->nr_buses, &at)) {
		io_fill_ones(a);
		return;
	}
	pci_host_config_access(e->host, at, a->data, a->len, a->is_write);
}

static void ecam_destroy(struct device *dev)
{
	struct pci_ecam *e = to_ecam(dev);

	bus_unregister_all(e->bus, &e->claim, 1, dev);
	free(e);
}

static const struct device_ops ecam_ops = {
	.type = "pci-ecam",
	.io = ecam_io,
	.destroy = ecam_destroy,
};

struct device *pci_ecam_create(const char *name, struct device *host, struct bus *mmio, uint64_t base,
			       uint32_t nr_buses)
{
	struct pci_host *h = pci_host_of(host);
	struct pci_ecam *e;

	if (!h || !mmio || nr_buses < 1 || nr_buses > PCI_ECAM_MAX_BUSES ||
	    (base & (PCI_ECAM_BUS_SIZE - 1))) {
		log_error(
			"pci-ecam %s: no PCI host or bus, a bus count outside 1..%d or a base that is not 1 MiB aligned; this is a kvmbox bug",
			name ? name : "?", PCI_ECAM_MAX_BUSES);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		log_error("pci-ecam %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	e->dev.ops = &ecam_ops;
	io_set_name(&e->dev, name);
	e->host = h;
	e->bus = mmio;
	e->nr_buses = nr_buses;
	e->claim = (struct bus_claim){ base, (uint64_t)nr_buses * PCI_ECAM_BUS_SIZE };
	if (bus_register_all(mmio, &e->claim, 1, &e->dev) < 0) {
		free(e);
		return NULL;
	}
	return &e->dev;
}
