/* pci.c - PCI core: host bridge, config space, BAR mapping, INTx.
 *
 * Lock order: map_lock -> (bus locks) and map_lock -> lock; lock and irq_lock
 * are leaves. map_lock serialises BAR (un)mapping: a config write holds it
 * while it syncs the bus registrations with config space. It is never taken
 * from bar_io, and the buses call devices without their own lock, so a BAR
 * access that reads config space never waits for a remap in progress. */
#include "pci.h"

#include <pthread.h>
#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"

#define HOST_VENDOR 0x1b36
#define HOST_DEVICE 0x0008
#define HOST_CLASS  0x060000

#define COMMAND_WMASK                                                                                       \
	(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | \
	 PCI_COMMAND_INTX_DISABLE)
#define STATUS_W1C 0xf900 /* parity, target/master abort, SERR, parity error */

/* 2: the CF8 address register moved to its front-end (pci_cf8.c). */
#define PCI_STATE_VERSION 2

struct pci_host {
	struct device dev;
	struct pci_host_config cfg;
	pthread_mutex_t lock;     /* config spaces, slots, allocators */
	pthread_mutex_t map_lock; /* BAR mapping changes */
	pthread_mutex_t irq_lock; /* INTx wire-OR */
	struct pci_dev bridge;    /* 00:00.0 */
	struct pci_dev *slots[PCI_SLOTS];
	uint64_t mmio_next, mmio64_next, io_next;
	unsigned int gsi_count[PCI_INTX_MAX_LINES];
};

static const struct device_ops pci_host_ops;

static struct pci_host *to_host(struct device *dev)
{
	return container_of(dev, struct pci_host, dev);
}

static uint32_t cfg_get(const uint8_t *c, uint32_t off, uint32_t len)
{
	return (uint32_t)get_le(c + off, len);
}

static void cfg_put(uint8_t *c, uint32_t off, uint32_t len, uint32_t v)
{
	put_le(c + off, len, v);
}

static bool cfg_range_ok(uint32_t off, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4) && off < PCI_CONFIG_SIZE && len <= PCI_CONFIG_SIZE - off;
}

static void cfg_lock(struct pci_dev *pdev)
{
	if (pdev->host)
		pthread_mutex_lock(&pdev->host->lock);
}

static void cfg_unlock(struct pci_dev *pdev)
{
	if (pdev->host)
		pthread_mutex_unlock(&pdev->host->lock);
}

/* The INTx line (0..lines-1) of pin 1..4 on slot. */
static uint32_t intx_line(const struct pci_host *h, int slot, int pin)
{
	uint32_t n = h->cfg.intx_lines;

	if (h->cfg.intx_swizzle)
		return h->cfg.intx_swizzle((uint32_t)slot, (uint32_t)pin, n) % n; /* % : never off the end */
	return (uint32_t)(slot + pin - 1) % n;
}

uint32_t pci_intx_gsi(struct device *host, int slot, int pin)
{
	struct pci_host *h = pci_host_of(host);

	if (!h || pin < 1 || pin > 4 || slot < 0 || slot >= PCI_SLOTS)
		return 0;
	return h->cfg.intx_gsi_base + intx_line(h, slot, pin);
}

/* ---- BAR shims on the buses ---- */

static void shim_io(struct device *dev, struct bus_access *a)
{
	struct pci_bar_shim *s = container_of(dev, struct pci_bar_shim, dev);
	struct bus_access pa = *a;

	pa.base += s->to_pci;
	if (s->pdev->ops && s->pdev->ops->bar_io)
		s->pdev->ops->bar_io(s->pdev, s->bar, &pa);
	else
		io_fill_ones(a);
}

static const struct device_ops shim_ops = {
	.type = "pci-bar",
	.io = shim_io,
};

/* ---- function set-up ---- */

void pci_dev_init(struct pci_dev *pdev, struct device *owner, const struct pci_dev_ops *ops, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint8_t revision)
{
	memset(pdev, 0, sizeof(*pdev));
	pdev->owner = owner;
	pdev->ops = ops;
	pdev->slot = -1;
	pdev->next_cap = PCI_CAP_START;
	cfg_put(pdev->config, PCI_VENDOR_ID, 2, vendor);
	cfg_put(pdev->config, PCI_DEVICE_ID, 2, device);
	pdev->config[PCI_REVISION_ID] = revision;
	cfg_put(pdev->config, PCI_CLASS_PROG, 3, class_code & 0xffffff);
	cfg_put(pdev->wmask, PCI_COMMAND, 2, COMMAND_WMASK);
	cfg_put(pdev->w1cmask, PCI_STATUS, 2, STATUS_W1C);
	pdev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	pdev->wmask[PCI_LATENCY_TIMER] = 0xff;
	pdev->wmask[PCI_INTERRUPT_LINE] = 0xff;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar_shim *s = &pdev->bars[i].shim;

		s->dev.ops = &shim_ops;
		s->pdev = pdev;
		s->bar = i;
		if (owner)
			snprintf(s->dev.name, sizeof(s->dev.name), "%.24s-bar%c", owner->name,
				 (char)('0' + i));
	}
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int pci_set_bar(struct pci_dev *pdev, int bar, enum pci_bar_type type, uint64_t size, bool prefetch)
{
	uint32_t off, lo, hi = 0, mask_lo, mask_hi = 0;
	struct pci_bar *b;

	if (pdev->host || bar < 0 || bar >= PCI_NUM_BARS || pdev->bars[bar].type != PCI_BAR_UNUSED ||
	    !is_pow2(size))
		return -1;
	switch (type) {
	case PCI_BAR_IO:
		if (size < 4 || size > 256 || prefetch)
			return -1;
		lo = 0x1;
		mask_lo = (uint32_t) ~(size - 1) & 0xfffc;
		break;
	case PCI_BAR_MEM32:
		if (size < 16 || size > 0x80000000ULL)
			return -1;
		lo = prefetch ? 0x8 : 0x0;
		mask_lo = (uint32_t) ~(size - 1) & 0xfffffff0u;
		break;
	case PCI_BAR_MEM64:
		if (size < 16 || size > (1ULL << 63) || bar + 1 >= PCI_NUM_BARS ||
		    pdev->bars[bar + 1].type != PCI_BAR_UNUSED)
			return -1;
		lo = 0x4 | (prefetch ? 0x8 : 0x0);
		mask_lo = (uint32_t) ~(size - 1) & 0xfffffff0u;
		mask_hi = (uint32_t)(~(size - 1) >> 32);
		break;
	default:
		return -1;
	}
	b = &pdev->bars[bar];
	b->type = type;
	b->size = size;
	b->prefetch = prefetch;
	off = PCI_BASE_ADDRESS_0 + 4 * (uint32_t)bar;
	cfg_put(pdev->config, off, 4, lo);
	cfg_put(pdev->wmask, off, 4, mask_lo);
	if (type == PCI_BAR_MEM64) {
		pdev->bars[bar + 1].type = PCI_BAR_MEM64_HI;
		cfg_put(pdev->config, off + 4, 4, hi);
		cfg_put(pdev->wmask, off + 4, 4, mask_hi);
	}
	return 0;
}

void pci_set_intx_pin(struct pci_dev *pdev, int pin)
{
	if (pin >= 0 && pin <= 4 && !pdev->host)
		pdev->config[PCI_INTERRUPT_PIN] = (uint8_t)pin;
}

int pci_add_capability(struct pci_dev *pdev, uint8_t cap_id, uint8_t len)
{
	unsigned int off, prev;
	int ret = -1;

	if (len < 2)
		return -1;
	cfg_lock(pdev);
	off = (pdev->next_cap + 3) & ~3u;
	if (off + len > PCI_CONFIG_SIZE)
		goto out;
	pdev->config[off] = cap_id;
	pdev->config[off + 1] = 0;
	if (!pdev->config[PCI_CAPABILITY_LIST]) {
		pdev->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
	} else {
		prev = pdev->config[PCI_CAPABILITY_LIST];
		while (pdev->config[prev + 1])
			prev = pdev->config[prev + 1];
		pdev->config[prev + 1] = (uint8_t)off;
	}
	pdev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	pdev->next_cap = off + len;
	ret = (int)off;
out:
	cfg_unlock(pdev);
	return ret;
}

uint32_t pci_config_read(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	uint32_t v;

	if (!cfg_range_ok(off, len))
		return 0;
	cfg_lock(pdev);
	v = cfg_get(pdev->config, off, len);
	cfg_unlock(pdev);
	return v;
}

void pci_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t val)
{
	if (!cfg_range_ok(off, len))
		return;
	cfg_lock(pdev);
	cfg_put(pdev->config, off, len, val);
	cfg_unlock(pdev);
}

void pci_config_set_wmask(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t mask)
{
	if (!cfg_range_ok(off, len))
		return;
	cfg_lock(pdev);
	cfg_put(pdev->wmask, off, len, mask);
	cfg_unlock(pdev);
}

/* ---- INTx ---- */

static void intx_update(struct pci_dev *pdev)
{
	struct pci_host *h = pdev->host;
	int pin = pdev->config[PCI_INTERRUPT_PIN]; /* fixed before plug-in */
	bool want;
	unsigned int idx;

	if (!h || pin < 1 || pin > 4)
		return;
	pthread_mutex_lock(&h->irq_lock);
	want = atomic_load(&pdev->intx_level) && !atomic_load(&pdev->intx_disabled);
	if (want != pdev->intx_asserted) {
		struct irq_line line = h->cfg.intx;

		pdev->intx_asserted = want;
		idx = intx_line(h, pdev->slot, pin);
		line.gsi = h->cfg.intx_gsi_base + idx;
		/* Shared lines are wire-ORed: only the first assert and the last
		 * deassert change the level. */
		if (want && h->gsi_count[idx]++ == 0)
			irq_line_set(&line, 1);
		else if (!want && --h->gsi_count[idx] == 0)
			irq_line_set(&line, 0);
	}
	pthread_mutex_unlock(&h->irq_lock);
}

void pci_set_irq(struct pci_dev *pdev, int level)
{
	atomic_store(&pdev->intx_level, level != 0);
	intx_update(pdev);
}

/* ---- BAR mapping ---- */

/* Where BAR i should decode now, from config and COMMAND. Host lock held. */
static bool bar_wanted(const struct pci_dev *pdev, int i, uint64_t *addr)
{
	const struct pci_bar *b = &pdev->bars[i];
	uint32_t off = PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i;
	uint16_t cmd = (uint16_t)cfg_get(pdev->config, PCI_COMMAND, 2);
	uint64_t a;

	switch (b->type) {
	case PCI_BAR_IO:
		if (!(cmd & PCI_COMMAND_IO))
			return false;
		a = cfg_get(pdev->config, off, 4) & ~3u;
		break;
	case PCI_BAR_MEM32:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		a = cfg_get(pdev->config, off, 4) & ~0xfu;
		break;
	case PCI_BAR_MEM64:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		a = (cfg_get(pdev->config, off, 4) & ~0xfu) | (uint64_t)cfg_get(pdev->config, off + 4, 4)
								      << 32;
		break;
	default:
		return false;
	}
	if (a == 0 || a + b->size - 1 < a)
		return false;
	*addr = a;
	return true;
}

static bool in_window(const struct pci_window *w, uint64_t addr, uint64_t size)
{
	return addr >= w->base && addr - w->base < w->size && size <= w->size - (addr - w->base);
}

/* The bus a BAR decodes on, and where on it PCI address addr is. */
static struct bus *bar_bus(const struct pci_host *h, const struct pci_bar *b, uint64_t addr, uint64_t *at)
{
	if (b->type == PCI_BAR_IO) {
		*at = h->cfg.io_bus_base + (addr - h->cfg.io.base);
		return h->cfg.io_bus;
	}
	*at = addr;
	return h->cfg.mmio;
}

static void unmap_bar(struct pci_host *h, struct pci_dev *pdev, int i)
{
	struct pci_bar *b = &pdev->bars[i];
	uint64_t addr = b->mapped_addr, at;
	struct bus *bus = bar_bus(h, b, addr, &at);

	bus_unregister(bus, at, &b->shim.dev);
	pthread_mutex_lock(&h->lock);
	b->mapped = false;
	pthread_mutex_unlock(&h->lock);
	if (pdev->ops && pdev->ops->bar_mapped)
		pdev->ops->bar_mapped(pdev, i, addr, false);
}

static void map_bar(struct pci_host *h, struct pci_dev *pdev, int i, uint64_t addr)
{
	struct pci_bar *b = &pdev->bars[i];
	uint64_t at;
	struct bus *bus = bar_bus(h, b, addr, &at);
	/* I/O BARs decode only inside the window the arch routes to PCI; memory
	 * BARs wherever the guest puts them, as long as nothing else is there. */
	bool ok = bus && (b->type != PCI_BAR_IO || in_window(&h->cfg.io, addr, b->size)) &&
		  bus_register(bus, at, b->size, &b->shim.dev) == 0;

	if (!ok) {
		/* Guests probe sizes with decoding on, or overlap BARs: the
		 * BAR simply does not decode, as on a real bus conflict. */
		log_debug("pci %s: BAR%d at 0x%llx not mapped (outside window or overlapping)",
			  pdev->owner ? pdev->owner->name : "?", i, (unsigned long long)addr);
		return;
	}
	pthread_mutex_lock(&h->lock);
	b->mapped = true;
	b->mapped_addr = addr;
	pthread_mutex_unlock(&h->lock);
	if (pdev->ops && pdev->ops->bar_mapped)
		pdev->ops->bar_mapped(pdev, i, addr, true);
}

/* Make the bus mappings of pdev match its config space. map_lock held. */
static void sync_bars(struct pci_host *h, struct pci_dev *pdev)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &pdev->bars[i];
		uint64_t addr = 0;
		bool want;

		if (b->type != PCI_BAR_IO && b->type != PCI_BAR_MEM32 && b->type != PCI_BAR_MEM64)
			continue;
		pthread_mutex_lock(&h->lock);
		want = bar_wanted(pdev, i, &addr);
		pthread_mutex_unlock(&h->lock);
		if (b->mapped && (!want || addr != b->mapped_addr))
			unmap_bar(h, pdev, i);
		if (want && !b->mapped)
			map_bar(h, pdev, i, addr);
	}
}

static void unmap_all(struct pci_host *h, struct pci_dev *pdev)
{
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (pdev->bars[i].mapped)
			unmap_bar(h, pdev, i);
}

/* ---- plug / unplug ---- */

static bool alloc_range(uint64_t *next, uint64_t end, uint64_t size, uint64_t *out)
{
	uint64_t a = (*next + size - 1) & ~(size - 1);

	if (a < *next || a > end || size > end - a)
		return false;
	*out = a;
	*next = a + size;
	return true;
}

static int assign_bars(struct pci_host *h, struct pci_dev *pdev)
{
	const struct pci_host_config *c = &h->cfg;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &pdev->bars[i];
		uint32_t off = PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i;
		uint64_t a;
		bool ok;

		switch (b->type) {
		case PCI_BAR_IO:
			ok = alloc_range(&h->io_next, c->io.base + c->io.size, b->size, &a);
			break;
		case PCI_BAR_MEM32:
			ok = alloc_range(&h->mmio_next, c->mem32.base + c->mem32.size, b->size, &a);
			break;
		case PCI_BAR_MEM64:
			ok = alloc_range(&h->mmio_next, c->mem32.base + c->mem32.size, b->size, &a) ||
			     (c->mem64.size &&
			      alloc_range(&h->mmio64_next, c->mem64.base + c->mem64.size, b->size, &a));
			break;
		default:
			continue;
		}
		if (!ok)
			return -1;
		cfg_put(pdev->config, off, 4, (cfg_get(pdev->config, off, 4) & 0xf) | (uint32_t)a);
		if (b->type == PCI_BAR_MEM64)
			cfg_put(pdev->config, off + 4, 4, (uint32_t)(a >> 32));
		/* An access on the I/O bus carries the bus address; bar_io gets the PCI one. */
		b->shim.to_pci = b->type == PCI_BAR_IO ? c->io.base - c->io_bus_base : 0;
	}
	return 0;
}

int pci_add_device(struct device *host, struct pci_dev *pdev)
{
	struct pci_host *h = pci_host_of(host);
	uint64_t save_mmio, save_mmio64, save_io;
	int slot = -1, pin;

	if (!h || !pdev || pdev->host)
		return -1;
	pthread_mutex_lock(&h->map_lock);
	pthread_mutex_lock(&h->lock);
	for (int s = 1; s < PCI_SLOTS; s++) {
		if (!h->slots[s]) {
			slot = s;
			break;
		}
	}
	if (slot < 0) {
		log_error("pci: no free slot for %s; use fewer PCI devices (31 at most)",
			  pdev->owner ? pdev->owner->name : "?");
		goto out;
	}
	save_mmio = h->mmio_next;
	save_mmio64 = h->mmio64_next;
	save_io = h->io_next;
	if (assign_bars(h, pdev) < 0) {
		h->mmio_next = save_mmio;
		h->mmio64_next = save_mmio64;
		h->io_next = save_io;
		log_error("pci: no address space left for the BARs of %s; use fewer or smaller devices",
			  pdev->owner ? pdev->owner->name : "?");
		slot = -1;
		goto out;
	}
	pin = pdev->config[PCI_INTERRUPT_PIN];
	if (pin)
		pdev->config[PCI_INTERRUPT_LINE] = (uint8_t)(h->cfg.intx_gsi_base + intx_line(h, slot, pin));
	memcpy(pdev->reset_config, pdev->config, PCI_CONFIG_SIZE);
	pdev->slot = slot;
	pdev->host = h;
	h->slots[slot] = pdev;
out:
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_unlock(&h->map_lock);
	return slot;
}

void pci_remove_device(struct pci_dev *pdev)
{
	struct pci_host *h = pdev ? pdev->host : NULL;

	if (!h)
		return;
	pthread_mutex_lock(&h->map_lock);
	unmap_all(h, pdev);
	atomic_store(&pdev->intx_level, 0);
	intx_update(pdev);
	pthread_mutex_lock(&h->lock);
	h->slots[pdev->slot] = NULL;
	pdev->host = NULL;
	pdev->slot = -1;
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_unlock(&h->map_lock);
}

/* ---- guest config access (what the front-ends call) ---- */

/* The function at `at`, or NULL. Host lock held. */
static struct pci_dev *cfg_target(struct pci_host *h, struct pci_cfg_addr at)
{
	if (at.bus != 0 || at.fn != 0 || at.dev >= PCI_SLOTS)
		return NULL;
	return at.dev == 0 ? &h->bridge : h->slots[at.dev];
}

static void config_read(struct pci_host *h, struct pci_cfg_addr at, uint8_t *data, uint32_t len)
{
	uint32_t off = at.reg;
	struct pci_dev *pdev;

	pthread_mutex_lock(&h->lock);
	pdev = cfg_target(h, at);
	if (pdev && off < PCI_CONFIG_SIZE) {
		memcpy(data, pdev->config + off, len);
		/* STATUS.INTERRUPT mirrors the device's INTx level. */
		if (off <= PCI_STATUS && PCI_STATUS < off + len && atomic_load(&pdev->intx_level))
			data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
	} else if (pdev) {
		memset(data, 0, len); /* extended space: no extended capabilities */
	}
	pthread_mutex_unlock(&h->lock);
	if (!pdev) {
		memset(data, 0xff, len);
		return;
	}
	if (off < PCI_CONFIG_SIZE && pdev->ops && pdev->ops->config_read)
		pdev->ops->config_read(pdev, off, data, len);
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t end)
{
	return off < end && start < off + len;
}

static void config_write(struct pci_host *h, struct pci_cfg_addr at, const uint8_t *data, uint32_t len)
{
	uint32_t off = at.reg;
	struct pci_dev *pdev;
	bool remap = false;

	if (off >= PCI_CONFIG_SIZE)
		return; /* extended space: nothing writable */
	pthread_mutex_lock(&h->map_lock);
	pthread_mutex_lock(&h->lock);
	pdev = cfg_target(h, at);
	if (pdev) {
		for (uint32_t i = 0; i < len; i++) {
			uint8_t *c = &pdev->config[off + i], v = data[i];
			uint8_t wm = pdev->wmask[off + i], w1c = pdev->w1cmask[off + i];

			*c = (uint8_t)((*c & ~wm) | (v & wm));
			*c &= (uint8_t) ~(v & w1c);
		}
		remap = overlaps(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
			overlaps(off, len, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS);
		atomic_store(&pdev->intx_disabled,
			     (cfg_get(pdev->config, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) != 0);
	}
	pthread_mutex_unlock(&h->lock);
	if (pdev) {
		/* Registers and unregisters BARs on the buses from inside the
		 * guest's config access: the buses allow it (core/bus.h). */
		if (remap)
			sync_bars(h, pdev);
		intx_update(pdev);
		if (pdev->ops && pdev->ops->config_write)
			pdev->ops->config_write(pdev, off, len);
	}
	pthread_mutex_unlock(&h->map_lock);
}

void pci_host_config_access(struct pci_host *h, struct pci_cfg_addr at, uint8_t *data, uint32_t len,
			    bool is_write)
{
	/* One dword at most, as one config request: what both front-ends can
	 * express (CF8 data port bytes, an ECAM access inside a dword). */
	if ((len != 1 && len != 2 && len != 4) || at.reg >= PCI_EXT_CONFIG_SIZE || (at.reg & 3) + len > 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write)
		config_write(h, at, data, len);
	else
		config_read(h, at, data, len);
}

/* ---- device ops ---- */

static struct pci_dev *func(struct pci_host *h, int s)
{
	return s == 0 ? &h->bridge : h->slots[s];
}

static void host_reset(struct device *dev)
{
	struct pci_host *h = to_host(dev);

	pthread_mutex_lock(&h->map_lock);
	for (int s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *p = func(h, s);

		if (!p)
			continue;
		/* Guest-writable bits go back to what kvmbox assigned; the
		 * device's own bits are the device's reset to handle. */
		pthread_mutex_lock(&h->lock);
		for (int i = 0; i < PCI_CONFIG_SIZE; i++) {
			uint8_t m = p->wmask[i] | p->w1cmask[i];

			p->config[i] = (uint8_t)((p->config[i] & ~m) | (p->reset_config[i] & m));
		}
		atomic_store(&p->intx_disabled, 0);
		pthread_mutex_unlock(&h->lock);
		sync_bars(h, p);
		intx_update(p);
	}
	pthread_mutex_unlock(&h->map_lock);
}

static void host_save(struct device *dev, struct ser_writer *w)
{
	struct pci_host *h = to_host(dev);

	pthread_mutex_lock(&h->lock);
	ser_put_u8(w, PCI_STATE_VERSION);
	for (int s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *p = func(h, s);

		ser_put_u8(w, p != NULL);
		if (!p)
			continue;
		ser_put_bytes(w, p->config, PCI_CONFIG_SIZE);
		ser_put_u8(w, (uint8_t)atomic_load(&p->intx_level));
	}
	pthread_mutex_unlock(&h->lock);
}

/* Only guest-writable bits come from a saved config space, so a bad snapshot cannot change
 * read-only fields (a BAR's type and size, the MSI-X table size); the BAR mappings and INTx then
 * follow the result as after a guest write. map_lock held (when h). */
static void apply_saved(struct pci_host *h, struct pci_dev *p, const uint8_t *cfg)
{
	if (h)
		pthread_mutex_lock(&h->lock);
	for (int i = 0; i < PCI_CONFIG_SIZE; i++) {
		uint8_t m = p->wmask[i] | p->w1cmask[i];

		p->config[i] = (uint8_t)((p->config[i] & ~m) | (cfg[i] & m));
	}
	atomic_store(&p->intx_disabled, (cfg_get(p->config, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) != 0);
	if (h)
		pthread_mutex_unlock(&h->lock);
	if (h) {
		sync_bars(h, p);
		intx_update(p);
	}
}

void pci_dev_load_config(struct pci_dev *pdev, const uint8_t cfg[PCI_CONFIG_SIZE])
{
	struct pci_host *h = pdev->host;

	if (h)
		pthread_mutex_lock(&h->map_lock);
	apply_saved(h, pdev, cfg);
	if (h)
		pthread_mutex_unlock(&h->map_lock);
}

static int host_load(struct device *dev, struct ser_reader *r)
{
	struct pci_host *h = to_host(dev);
	uint8_t(*cfg)[PCI_CONFIG_SIZE];
	uint8_t intx[PCI_SLOTS] = { 0 };
	bool bad = false;
	int ret = -1;

	if (ser_get_u8(r) != PCI_STATE_VERSION)
		return -1;
	cfg = calloc(PCI_SLOTS, sizeof(*cfg));
	if (!cfg)
		return -1;
	if (r->err)
		goto out;
	/* Read and check everything before changing anything. The same
	 * functions must be plugged in, with the same identity. */
	pthread_mutex_lock(&h->lock);
	for (int s = 0; s < PCI_SLOTS && !bad; s++) {
		struct pci_dev *p = func(h, s);
		uint8_t present = ser_get_u8(r);

		if (r->err || present != (p != NULL)) {
			bad = true;
			break;
		}
		if (!p)
			continue;
		ser_get_bytes(r, cfg[s], PCI_CONFIG_SIZE);
		intx[s] = ser_get_u8(r);
		bad = r->err || intx[s] > 1 || memcmp(cfg[s], p->config, 4) != 0;
	}
	pthread_mutex_unlock(&h->lock);
	if (bad)
		goto out;
	ret = 0;

	pthread_mutex_lock(&h->map_lock);
	for (int s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *p = func(h, s);

		if (!p)
			continue;
		pthread_mutex_lock(&h->lock);
		atomic_store(&p->intx_level, intx[s]);
		pthread_mutex_unlock(&h->lock);
		apply_saved(h, p, cfg[s]);
	}
	/* The lines' real levels are unknown after a restore: drive them all. */
	pthread_mutex_lock(&h->irq_lock);
	for (uint32_t i = 0; i < h->cfg.intx_lines; i++) {
		struct irq_line line = h->cfg.intx;

		line.gsi = h->cfg.intx_gsi_base + i;
		irq_line_set(&line, h->gsi_count[i] != 0);
	}
	pthread_mutex_unlock(&h->irq_lock);
	pthread_mutex_unlock(&h->map_lock);
out:
	free(cfg);
	return ret;
}

static void host_destroy(struct device *dev)
{
	struct pci_host *h = to_host(dev);

	pthread_mutex_lock(&h->map_lock);
	for (int s = 1; s < PCI_SLOTS; s++) {
		struct pci_dev *p = h->slots[s];

		if (!p)
			continue;
		unmap_all(h, p);
		p->host = NULL;
		p->slot = -1;
		h->slots[s] = NULL;
	}
	pthread_mutex_unlock(&h->map_lock);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->map_lock);
	pthread_mutex_destroy(&h->irq_lock);
	free(h);
}

static const struct device_ops pci_host_ops = {
	.type = "pci-host",
	.reset = host_reset,
	.save = host_save,
	.load = host_load,
	.destroy = host_destroy,
};

struct pci_host *pci_host_of(struct device *dev)
{
	return dev && dev->ops == &pci_host_ops ? to_host(dev) : NULL;
}

bool pci_host_has_io(struct device *host)
{
	const struct pci_host *h = pci_host_of(host);

	return h && h->cfg.io.size;
}

/* [base, base + size) is empty or does not wrap and ends at or below last. */
static bool fits(uint64_t base, uint64_t size, uint64_t last)
{
	return !size || (base + size - 1 >= base && base + size - 1 <= last);
}

static bool config_ok(const struct pci_host_config *c)
{
	return c->mmio && c->mem32.size && fits(c->mem32.base, c->mem32.size, UINT32_MAX) &&
	       fits(c->mem64.base, c->mem64.size, UINT64_MAX) && (!c->io_bus || c->io.size) &&
	       fits(c->io.base, c->io.size, UINT64_MAX) && fits(c->io_bus_base, c->io.size, UINT64_MAX) &&
	       c->intx_lines >= 1 && c->intx_lines <= PCI_INTX_MAX_LINES;
}

struct device *pci_host_create(const char *name, const struct pci_host_config *cfg)
{
	struct pci_host *h;

	if (!cfg || !config_ok(cfg)) {
		log_error(
			"pci %s: no MMIO bus, an empty, wrapping or misplaced BAR window, or not 1 to %d INTx lines; this is a kvmbox bug",
			name ? name : "?", PCI_INTX_MAX_LINES);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_error("pci %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	h->dev.ops = &pci_host_ops;
	io_set_name(&h->dev, name);
	h->cfg = *cfg;
	h->mmio_next = cfg->mem32.base;
	h->mmio64_next = cfg->mem64.base;
	h->io_next = cfg->io.base;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->map_lock, NULL);
	pthread_mutex_init(&h->irq_lock, NULL);
	pci_dev_init(&h->bridge, &h->dev, NULL, HOST_VENDOR, HOST_DEVICE, HOST_CLASS, 0);
	memcpy(h->bridge.reset_config, h->bridge.config, PCI_CONFIG_SIZE);
	h->bridge.host = h;
	h->bridge.slot = 0;
	return &h->dev;
}
