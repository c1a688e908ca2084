/* pci_cf8.c - configuration mechanism #1 (ports 0xCF8/0xCFC) over the PCI core. */
#include "pci_cf8.h"

#include <pthread.h>
#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"
#include "pci.h"

#define CFG_ENABLE    0x80000000u
#define CFG_ADDR_MASK 0x80fffffcu /* enable, bus, device, function, register */

#define CF8_STATE_VERSION 1

struct pci_cf8 {
	struct device dev;
	struct pci_host *host;
	struct bus *bus;
	struct bus_claim claims[2]; /* CONFIG_ADDRESS, CONFIG_DATA */
	pthread_mutex_t lock;
	uint32_t addr; /* CONFIG_ADDRESS */
};

static struct pci_cf8 *to_cf8(struct device *dev)
{
	return container_of(dev, struct pci_cf8, dev);
}

static void cf8_io(struct device *dev, struct bus_access *a)
{
	struct pci_cf8 *c = to_cf8(dev);
	struct pci_cfg_addr at;
	uint32_t addr;

	if (a->base == c->claims[0].base) {
		/* Only dword accesses hit CONFIG_ADDRESS. */
		if (a->len != 4 || a->offset != 0) {
			io_fill_ones(a);
			return;
		}
		pthread_mutex_lock(&c->lock);
		if (a->is_write)
			c->addr = (uint32_t)get_le(a->data, 4) & CFG_ADDR_MASK;
		else
			put_le(a->data, 4, c->addr);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* CONFIG_DATA: the bus delivers at most the 4 bytes from a->offset on. */
	pthread_mutex_lock(&c->lock);
	addr = c->addr;
	pthread_mutex_unlock(&c->lock);
	if (!(addr & CFG_ENABLE)) {
		io_fill_ones(a);
		return;
	}
	at = (struct pci_cfg_addr){
		.bus = (uint8_t)(addr >> 16),
		.dev = (uint8_t)((addr >> 11) & 0x1f),
		.fn = (uint8_t)((addr >> 8) & 7),
		.reg = (uint16_t)((addr & 0xfc) + a->offset),
	};
	pci_host_config_access(c->host, at, a->data, a->len, a->is_write);
}

static void cf8_reset(struct device *dev)
{
	struct pci_cf8 *c = to_cf8(dev);

	pthread_mutex_lock(&c->lock);
	c->addr = 0;
	pthread_mutex_unlock(&c->lock);
}

static void cf8_save(struct device *dev, struct ser_writer *w)
{
	struct pci_cf8 *c = to_cf8(dev);

	pthread_mutex_lock(&c->lock);
	ser_put_u8(w, CF8_STATE_VERSION);
	ser_put_u32(w, c->addr);
	pthread_mutex_unlock(&c->lock);
}

static int cf8_load(struct device *dev, struct ser_reader *r)
{
	struct pci_cf8 *c = to_cf8(dev);
	uint32_t addr;

	if (ser_get_u8(r) != CF8_STATE_VERSION)
		return -1;
	addr = ser_get_u32(r);
	if (r->err || (addr & ~CFG_ADDR_MASK))
		return -1;
	pthread_mutex_lock(&c->lock);
	c->addr = addr;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void cf8_destroy(struct device *dev)
{
	struct pci_cf8 *c = to_cf8(dev);

	bus_unregister_all(c->bus, c->claims, ARRAY_SIZE(c->claims), dev);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct device_ops cf8_ops = {
	.type = "pci-cf8",
	.io = cf8_io,
	.reset = cf8_reset,
	.save = cf8_save,
	.load = cf8_load,
	.destroy = cf8_destroy,
};

struct device *pci_cf8_create(const char *name, struct device *host, struct bus *bus, uint64_t base)
{
	struct pci_host *h = pci_host_of(host);
	struct pci_cf8 *c;

	if (!h || !bus) {
		log_error("pci-cf8 %s: no PCI host or no bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("pci-cf8 %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	c->dev.ops = &cf8_ops;
	io_set_name(&c->dev, name);
	c->host = h;
	c->bus = bus;
	c->claims[0] = (struct bus_claim){ base, 4 };
	c->claims[1] = (struct bus_claim){ base + 4, 4 };
	pthread_mutex_init(&c->lock, NULL);
	if (bus_register_all(bus, c->claims, ARRAY_SIZE(c->claims), &c->dev) < 0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return &c->dev;
}
