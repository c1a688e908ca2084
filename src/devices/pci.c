/* pci.c - PCI host bridge, configuration mechanism #1, BAR mapping, INTx.
 *
 * Lock order: map_lock -> (bus write locks) and map_lock -> lock; lock and
 * irq_lock are leaves. map_lock serialises BAR (un)mapping and is never
 * taken from bar_io, so a config write waiting for the MMIO bus write lock
 * cannot deadlock against a BAR access that reads config space. */
#include "pci.h"

#include <pthread.h>
#include <stdlib.h>

#include "../arch/x86/layout.h"
#include "../core/log.h"
#include "io_util.h"

#define HOST_VENDOR 0x1b36
#define HOST_DEVICE 0x0008
#define HOST_CLASS  0x060000

#define CFG_ENABLE 0x80000000u
#define CFG_ADDR_MASK 0x80fffffcu /* enable, bus, device, function, register */

#define COMMAND_WMASK (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | \
		       PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
#define STATUS_W1C 0xf900 /* parity, target/master abort, SERR, parity error */

#define PCI_STATE_VERSION 1

struct pci_host {
	struct device dev;
	pthread_mutex_t lock;     /* config spaces, addr, slots, allocators */
	pthread_mutex_t map_lock; /* BAR mapping changes */
	pthread_mutex_t irq_lock; /* INTx wire-OR */
	struct bus *pio;
	struct bus *mmio;
	struct bus_claim claims[3]; /* CONFIG_ADDRESS, CONFIG_DATA, I/O BAR window */
	struct irq_line intx;
	uint32_t addr;            /* CONFIG_ADDRESS (0xCF8) */
	struct pci_dev bridge;    /* 00:00.0 */
	struct pci_dev *slots[PCI_SLOTS];
	uint64_t mmio_next, mmio64_next, io_next;
	unsigned int gsi_count[X86_PCI_INTX_GSI_COUNT];
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

uint32_t pci_intx_gsi(int slot, int pin)
{
	if (pin < 1 || pin > 4 || slot < 0)
		return 0;
	return X86_PCI_INTX_GSI_BASE + (uint32_t)((slot + pin - 1) % X86_PCI_INTX_GSI_COUNT);
}

/* ---- memory BAR shims on the MMIO bus ---- */

static void shim_io(struct device *dev, struct bus_access *a)
{
	struct pci_bar_shim *s = container_of(dev, struct pci_bar_shim, dev);

	if (s->pdev->ops && s->pdev->ops->bar_io)
		s->pdev->ops->bar_io(s->pdev, s->bar, a);
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
		mask_lo = (uint32_t)~(size - 1) & 0xfffc;
		break;
	case PCI_BAR_MEM32:
		if (size < 16 || size > 0x80000000ULL)
			return -1;
		lo = prefetch ? 0x8 : 0x0;
		mask_lo = (uint32_t)~(size - 1) & 0xfffffff0u;
		break;
	case PCI_BAR_MEM64:
		if (size < 16 || size > X86_PCI_MMIO64_SIZE || bar + 1 >= PCI_NUM_BARS ||
		    pdev->bars[bar + 1].type != PCI_BAR_UNUSED)
			return -1;
		lo = 0x4 | (prefetch ? 0x8 : 0x0);
		mask_lo = (uint32_t)~(size - 1) & 0xfffffff0u;
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
		struct irq_line line = h->intx;

		pdev->intx_asserted = want;
		line.gsi = pci_intx_gsi(pdev->slot, pin);
		idx = line.gsi - X86_PCI_INTX_GSI_BASE;
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
		a = (cfg_get(pdev->config, off, 4) & ~0xfu) |
		    (uint64_t)cfg_get(pdev->config, off + 4, 4) << 32;
		break;
	default:
		return false;
	}
	if (a == 0 || a + b->size - 1 < a)
		return false;
	*addr = a;
	return true;
}

static bool io_bar_overlaps(struct pci_host *h, uint64_t addr, uint64_t size)
{
	for (int s = 1; s < PCI_SLOTS; s++) {
		struct pci_dev *p = h->slots[s];

		for (int i = 0; p && i < PCI_NUM_BARS; i++) {
			const struct pci_bar *b = &p->bars[i];

			if (b->type == PCI_BAR_IO && b->mapped && addr < b->mapped_addr + b->size &&
			    b->mapped_addr < addr + size)
				return true;
		}
	}
	return false;
}

static void unmap_bar(struct pci_host *h, struct pci_dev *pdev, int i)
{
	struct pci_bar *b = &pdev->bars[i];
	uint64_t addr = b->mapped_addr;

	if (b->type != PCI_BAR_IO)
		bus_unregister(h->mmio, addr, &b->shim.dev);
	pthread_mutex_lock(&h->lock);
	b->mapped = false;
	pthread_mutex_unlock(&h->lock);
	if (pdev->ops && pdev->ops->bar_mapped)
		pdev->ops->bar_mapped(pdev, i, addr, false);
}

static void map_bar(struct pci_host *h, struct pci_dev *pdev, int i, uint64_t addr)
{
	struct pci_bar *b = &pdev->bars[i];
	bool ok;

	if (b->type == PCI_BAR_IO) {
		pthread_mutex_lock(&h->lock);
		ok = addr >= PCI_IO_WINDOW_START && addr - PCI_IO_WINDOW_START < PCI_IO_WINDOW_SIZE &&
		     b->size <= PCI_IO_WINDOW_SIZE - (addr - PCI_IO_WINDOW_START) &&
		     !io_bar_overlaps(h, addr, b->size);
		if (ok) {
			b->mapped = true;
			b->mapped_addr = addr;
		}
		pthread_mutex_unlock(&h->lock);
	} else {
		ok = bus_register(h->mmio, addr, b->size, &b->shim.dev) == 0;
		if (ok) {
			pthread_mutex_lock(&h->lock);
			b->mapped = true;
			b->mapped_addr = addr;
			pthread_mutex_unlock(&h->lock);
		}
	}
	if (!ok) {
		/* Guests probe sizes with decoding on, or overlap BARs: the
		 * BAR simply does not decode, as on a real bus conflict. */
		log_debug("pci %s: BAR%d at 0x%llx not mapped (outside window or overlapping)",
			  pdev->owner ? pdev->owner->name : "?", i, (unsigned long long)addr);
		return;
	}
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
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &pdev->bars[i];
		uint32_t off = PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i;
		uint64_t a;
		bool ok;

		switch (b->type) {
		case PCI_BAR_IO:
			ok = alloc_range(&h->io_next, PCI_IO_WINDOW_START + PCI_IO_WINDOW_SIZE, b->size, &a);
			break;
		case PCI_BAR_MEM32:
			ok = alloc_range(&h->mmio_next, X86_PCI_MMIO_END, b->size, &a);
			break;
		case PCI_BAR_MEM64:
			ok = alloc_range(&h->mmio_next, X86_PCI_MMIO_END, b->size, &a) ||
			     alloc_range(&h->mmio64_next, X86_PCI_MMIO64_START + X86_PCI_MMIO64_SIZE,
					 b->size, &a);
			break;
		default:
			continue;
		}
		if (!ok)
			return -1;
		cfg_put(pdev->config, off, 4, (cfg_get(pdev->config, off, 4) & 0xf) | (uint32_t)a);
		if (b->type == PCI_BAR_MEM64)
			cfg_put(pdev->config, off + 4, 4, (uint32_t)(a >> 32));
	}
	return 0;
}

int pci_add_device(struct device *host, struct pci_dev *pdev)
{
	struct pci_host *h;
	uint64_t save_mmio, save_mmio64, save_io;
	int slot = -1, pin;

	if (!host || !pdev || host->ops != &pci_host_ops || pdev->host)
		return -1;
	h = to_host(host);
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
		pdev->config[PCI_INTERRUPT_LINE] = (uint8_t)pci_intx_gsi(slot, pin);
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

/* ---- guest config access ---- */

static struct pci_dev *cfg_target(struct pci_host *h)
{
	uint32_t a = h->addr;

	if (!(a & CFG_ENABLE) || ((a >> 16) & 0xff) != 0 || ((a >> 8) & 7) != 0)
		return NULL;
	return ((a >> 11) & 0x1f) == 0 ? &h->bridge : h->slots[(a >> 11) & 0x1f];
}

static void config_data_read(struct pci_host *h, struct bus_access *a)
{
	struct pci_dev *pdev;
	uint32_t off = 0;

	pthread_mutex_lock(&h->lock);
	pdev = cfg_target(h);
	if (pdev) {
		off = (h->addr & 0xfc) + (uint32_t)a->offset;
		memcpy(a->data, pdev->config + off, a->len);
		/* STATUS.INTERRUPT mirrors the device's INTx level. */
		if (off <= PCI_STATUS && PCI_STATUS < off + a->len && atomic_load(&pdev->intx_level))
			a->data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
	}
	pthread_mutex_unlock(&h->lock);
	if (!pdev) {
		io_fill_ones(a);
		return;
	}
	if (pdev->ops && pdev->ops->config_read)
		pdev->ops->config_read(pdev, off, a->data, a->len);
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t end)
{
	return off < end && start < off + len;
}

static void config_data_write(struct pci_host *h, struct bus_access *a)
{
	struct pci_dev *pdev;
	uint32_t off = 0;
	bool remap = false;

	pthread_mutex_lock(&h->map_lock);
	pthread_mutex_lock(&h->lock);
	pdev = cfg_target(h);
	if (pdev) {
		off = (h->addr & 0xfc) + (uint32_t)a->offset;
		for (uint32_t i = 0; i < a->len; i++) {
			uint8_t *c = &pdev->config[off + i], v = a->data[i];
			uint8_t wm = pdev->wmask[off + i], w1c = pdev->w1cmask[off + i];

			*c = (uint8_t)((*c & ~wm) | (v & wm));
			*c &= (uint8_t)~(v & w1c);
		}
		remap = overlaps(off, a->len, PCI_COMMAND, PCI_COMMAND + 2) ||
			overlaps(off, a->len, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS);
		atomic_store(&pdev->intx_disabled,
			     (cfg_get(pdev->config, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) != 0);
	}
	pthread_mutex_unlock(&h->lock);
	if (pdev) {
		if (remap)
			sync_bars(h, pdev);
		intx_update(pdev);
		if (pdev->ops && pdev->ops->config_write)
			pdev->ops->config_write(pdev, off, a->len);
	}
	pthread_mutex_unlock(&h->map_lock);
}

/* An access to the I/O BAR window: find the BAR and forward it. */
static void io_window(struct pci_host *h, struct bus_access *a)
{
	uint64_t port = a->base + a->offset;
	struct pci_dev *found = NULL;
	struct bus_access ba = *a;
	int bar = -1;

	pthread_mutex_lock(&h->lock);
	for (int s = 1; s < PCI_SLOTS && !found; s++) {
		struct pci_dev *p = h->slots[s];

		for (int i = 0; p && i < PCI_NUM_BARS; i++) {
			const struct pci_bar *b = &p->bars[i];

			if (b->type == PCI_BAR_IO && b->mapped && port >= b->mapped_addr &&
			    port - b->mapped_addr < b->size && a->len <= b->size - (port - b->mapped_addr)) {
				found = p;
				bar = i;
				ba.base = b->mapped_addr;
				ba.offset = port - b->mapped_addr;
				break;
			}
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (found && found->ops && found->ops->bar_io)
		found->ops->bar_io(found, bar, &ba);
	else
		io_fill_ones(a);
}

static void host_io(struct device *dev, struct bus_access *a)
{
	struct pci_host *h = to_host(dev);

	if (a->base == PCI_IO_WINDOW_START) {
		io_window(h, a);
		return;
	}
	if (a->base == X86_PCI_CONFIG_ADDR) {
		/* Only dword accesses hit CONFIG_ADDRESS. */
		if (a->len != 4 || a->offset != 0) {
			io_fill_ones(a);
			return;
		}
		pthread_mutex_lock(&h->lock);
		if (a->is_write)
			h->addr = (uint32_t)get_le(a->data, 4) & CFG_ADDR_MASK;
		else
			put_le(a->data, 4, h->addr);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (a->len != 1 && a->len != 2 && a->len != 4) {
		io_fill_ones(a);
		return;
	}
	if (a->is_write)
		config_data_write(h, a);
	else
		config_data_read(h, a);
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
	pthread_mutex_lock(&h->lock);
	h->addr = 0;
	pthread_mutex_unlock(&h->lock);
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
	ser_put_u32(w, h->addr);
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

static int host_load(struct device *dev, struct ser_reader *r)
{
	struct pci_host *h = to_host(dev);
	uint8_t (*cfg)[PCI_CONFIG_SIZE];
	uint8_t intx[PCI_SLOTS] = { 0 };
	uint32_t addr;
	bool bad = false;
	int ret = -1;

	if (ser_get_u8(r) != PCI_STATE_VERSION)
		return -1;
	addr = ser_get_u32(r);
	cfg = calloc(PCI_SLOTS, sizeof(*cfg));
	if (!cfg)
		return -1;
	if (r->err || (addr & ~CFG_ADDR_MASK))
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
	pthread_mutex_lock(&h->lock);
	h->addr = addr;
	pthread_mutex_unlock(&h->lock);
	for (int s = 0; s < PCI_SLOTS; s++) {
		struct pci_dev *p = func(h, s);

		if (!p)
			continue;
		/* Only guest-writable bits come from the snapshot, so a bad
		 * snapshot cannot change read-only fields. */
		pthread_mutex_lock(&h->lock);
		for (int i = 0; i < PCI_CONFIG_SIZE; i++) {
			uint8_t m = p->wmask[i] | p->w1cmask[i];

			p->config[i] = (uint8_t)((p->config[i] & ~m) | (cfg[s][i] & m));
		}
		atomic_store(&p->intx_disabled,
			     (cfg_get(p->config, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) != 0);
		atomic_store(&p->intx_level, intx[s]);
		pthread_mutex_unlock(&h->lock);
		sync_bars(h, p);
		intx_update(p);
	}
	/* The lines' real levels are unknown after a restore: drive them all. */
	pthread_mutex_lock(&h->irq_lock);
	for (unsigned int i = 0; i < X86_PCI_INTX_GSI_COUNT; i++) {
		struct irq_line line = h->intx;

		line.gsi = X86_PCI_INTX_GSI_BASE + i;
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
	bus_unregister_all(h->pio, h->claims, ARRAY_SIZE(h->claims), dev);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->map_lock);
	pthread_mutex_destroy(&h->irq_lock);
	free(h);
}

static const struct device_ops pci_host_ops = {
	.type = "pci-host",
	.io = host_io,
	.reset = host_reset,
	.save = host_save,
	.load = host_load,
	.destroy = host_destroy,
};

struct device *pci_host_create(const char *name, struct bus *pio, struct bus *mmio, struct irq_line intx)
{
	struct pci_host *h;

	if (!pio || !mmio) {
		log_error("pci %s: missing I/O port or MMIO bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_error("pci %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	h->dev.ops = &pci_host_ops;
	io_set_name(&h->dev, name);
	h->pio = pio;
	h->mmio = mmio;
	h->intx = intx;
	h->mmio_next = X86_PCI_MMIO_START;
	h->mmio64_next = X86_PCI_MMIO64_START;
	h->io_next = PCI_IO_WINDOW_START;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->map_lock, NULL);
	pthread_mutex_init(&h->irq_lock, NULL);
	pci_dev_init(&h->bridge, &h->dev, NULL, HOST_VENDOR, HOST_DEVICE, HOST_CLASS, 0);
	memcpy(h->bridge.reset_config, h->bridge.config, PCI_CONFIG_SIZE);
	h->bridge.host = h;
	h->bridge.slot = 0;
	h->claims[0] = (struct bus_claim){ X86_PCI_CONFIG_ADDR, 4 };
	h->claims[1] = (struct bus_claim){ X86_PCI_CONFIG_DATA, 4 };
	h->claims[2] = (struct bus_claim){ PCI_IO_WINDOW_START, PCI_IO_WINDOW_SIZE };
	if (bus_register_all(pio, h->claims, ARRAY_SIZE(h->claims), &h->dev) < 0) {
		pthread_mutex_destroy(&h->lock);
		pthread_mutex_destroy(&h->map_lock);
		pthread_mutex_destroy(&h->irq_lock);
		free(h);
		return NULL;
	}
	return &h->dev;
}
