/* Unit tests for the PCI core (host bridge, functions, BARs, INTx) and its
 * config front-ends: configuration mechanism #1 and ECAM. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/util.h"
#include "devices/pci.h"
#include "devices/pci_cf8.h"
#include "devices/pci_ecam.h"
#include "fakes.h"

struct fdev {
	struct device dev;
	struct pci_dev pci;
	int last_bar;
	uint64_t last_off, last_base;
	uint32_t last_len;
	bool last_write;
	uint64_t last_val;
	int mapped_events;
	int config_writes;
};

struct ctx {
	struct bus pio, mmio;
	struct device *host, *cf8, *ecam;
	struct fdev f;
	int gsi_level[32];
	int gsi_calls;
};

static void fake_irq(void *p, uint32_t gsi, int level)
{
	struct ctx *c = p;

	assert_true(gsi < 32);
	c->gsi_level[gsi] = level;
	c->gsi_calls++;
}

static void f_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	struct fdev *f = (struct fdev *)((char *)pdev - offsetof(struct fdev, pci));

	f->last_bar = bar;
	f->last_off = a->offset;
	f->last_base = a->base;
	f->last_len = a->len;
	f->last_write = a->is_write;
	if (a->is_write) {
		f->last_val = 0;
		for (uint32_t i = 0; i < a->len; i++)
			f->last_val |= (uint64_t)a->data[i] << (8 * i);
	} else {
		for (uint32_t i = 0; i < a->len; i++)
			a->data[i] = (uint8_t)(0xa0 + bar * 0x10 + i);
	}
}

static void f_mapped(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped)
{
	struct fdev *f = (struct fdev *)((char *)pdev - offsetof(struct fdev, pci));

	f->mapped_events++;
}

static void f_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	struct fdev *f = (struct fdev *)((char *)pdev - offsetof(struct fdev, pci));

	f->config_writes++;
}

static const struct pci_dev_ops f_ops = {
	.bar_io = f_bar_io,
	.bar_mapped = f_mapped,
	.config_write = f_config_write,
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct fdev *f = &c->f;
	struct pci_host_config cfg;

	bus_init(&c->pio, BUS_PIO);
	bus_init(&c->mmio, BUS_MMIO);
	fake_x86_pci_host(&cfg, &c->mmio, &c->pio, (struct irq_line){ .set = fake_irq, .ctx = c });
	c->host = pci_host_create("pci", &cfg);
	assert_non_null(c->host);
	c->cf8 = pci_cf8_create("pci-cf8", c->host, &c->pio, X86_PCI_CONFIG_ADDR);
	assert_non_null(c->cf8);
	snprintf(f->dev.name, sizeof(f->dev.name), "fake");
	pci_dev_init(&f->pci, &f->dev, &f_ops, 0x1af4, 0x1041, 0x020000, 1);
	assert_int_equal(pci_set_bar(&f->pci, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_set_bar(&f->pci, 2, PCI_BAR_MEM64, 0x4000, true), 0);
	assert_int_equal(pci_set_bar(&f->pci, 4, PCI_BAR_IO, 0x20, false), 0);
	pci_set_intx_pin(&f->pci, 1);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	pci_remove_device(&c->f.pci);
	if (c->ecam)
		c->ecam->ops->destroy(c->ecam);
	c->cf8->ops->destroy(c->cf8);
	c->host->ops->destroy(c->host);
	pci_remove_device(&c->f.pci); /* after the host is gone: a no-op */
	assert_int_equal(c->pio.nr, 0);
	assert_int_equal(c->mmio.nr, 0);
	bus_destroy(&c->pio);
	bus_destroy(&c->mmio);
	free(c);
	return 0;
}

static void set_addr(struct ctx *c, int slot, uint32_t off)
{
	uint8_t b[4];
	uint32_t v = 0x80000000u | (uint32_t)slot << 11 | (off & 0xfc);

	memcpy(b, &v, 4);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, true));
}

static uint32_t cfg_rd(struct ctx *c, int slot, uint32_t off, uint32_t len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	set_addr(c, slot, off);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_DATA + (off & 3), b, len, false));
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void cfg_wr(struct ctx *c, int slot, uint32_t off, uint32_t len, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	set_addr(c, slot, off);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_DATA + (off & 3), b, len, true));
}

static uint32_t mmio_rd(struct ctx *c, uint64_t addr, uint32_t len, bool *hit)
{
	uint8_t b[8] = { 0 };
	uint32_t v = 0;

	*hit = bus_dispatch(&c->mmio, addr, b, len, false);
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void test_host_bridge_config(void **state)
{
	struct ctx *c = *state;
	uint8_t b[4];

	assert_int_equal(cfg_rd(c, 0, 0x00, 4), 0x00081b36);
	assert_int_equal(cfg_rd(c, 0, 0x02, 2), 0x0008);
	assert_int_equal(cfg_rd(c, 0, 0x01, 1), 0x1b);
	assert_int_equal(cfg_rd(c, 0, 0x08, 4) >> 8, 0x060000);
	assert_int_equal(cfg_rd(c, 0, 0x0e, 1), 0x00);
	/* CONFIG_ADDRESS reads back; byte access to it is not decoded. */
	set_addr(c, 3, 0x10);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, false));
	assert_int_equal(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, 0x80001810);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 1, false));
	assert_int_equal(b[0], 0xff);
	/* Read-only fields stay read-only. */
	cfg_wr(c, 0, 0x00, 4, 0x12345678);
	cfg_wr(c, 0, 0x08, 4, 0);
	assert_int_equal(cfg_rd(c, 0, 0x00, 4), 0x00081b36);
	assert_int_equal(cfg_rd(c, 0, 0x08, 4) >> 8, 0x060000);
	cfg_wr(c, 0, 0x3c, 1, 0x0b);
	assert_int_equal(cfg_rd(c, 0, 0x3c, 1), 0x0b);
}

static void test_absent_devices_read_ones(void **state)
{
	struct ctx *c = *state;
	uint8_t b[4] = { 0 };
	uint32_t v = 0x00000800u | 0x10; /* enable bit clear */

	assert_int_equal(cfg_rd(c, 5, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_rd(c, 31, 0x02, 2), 0xffff);
	/* Function 1 of slot 0 and bus 1 do not exist. */
	memcpy(b, &(uint32_t){ 0x80000100u }, 4);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, true));
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_DATA, b, 4, false));
	assert_int_equal(b[0] & b[1] & b[2] & b[3], 0xff);
	memcpy(b, &(uint32_t){ 0x80010000u }, 4);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, true));
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_DATA, b, 4, false));
	assert_int_equal(b[0] & b[1] & b[2] & b[3], 0xff);
	/* Enable bit clear: nothing decodes. */
	memcpy(b, &v, 4);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, true));
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_DATA, b, 2, false));
	assert_int_equal(b[0] & b[1], 0xff);
}

static void test_add_device_and_bars(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	uint32_t bar0, bar2, bar3, bar4;

	assert_int_equal(slot, 1);
	assert_int_equal(cfg_rd(c, slot, 0x00, 4), 0x10411af4);
	assert_int_equal(cfg_rd(c, slot, 0x04, 2), 0); /* decoding off */
	bar0 = cfg_rd(c, slot, 0x10, 4);
	bar2 = cfg_rd(c, slot, 0x18, 4);
	bar3 = cfg_rd(c, slot, 0x1c, 4);
	bar4 = cfg_rd(c, slot, 0x20, 4);
	/* Programmed, naturally aligned, inside the windows, with type bits. */
	assert_int_equal(bar0, (uint32_t)X86_PCI_MMIO_START);
	assert_int_equal(bar2 & 0xf, 0xc); /* 64-bit, prefetchable */
	assert_int_equal((bar2 & ~0xfu) % 0x4000, 0);
	assert_true((bar2 & ~0xfu) >= X86_PCI_MMIO_START + 0x1000);
	assert_int_equal(bar3, 0);
	assert_int_equal(bar4 & 3, 1);
	assert_int_equal(bar4 & ~3u, X86_PCI_IO_START);
	/* Interrupt pin/line. */
	assert_int_equal(cfg_rd(c, slot, 0x3d, 1), 1);
	assert_int_equal(cfg_rd(c, slot, 0x3c, 1), X86_PCI_INTX_GSI_BASE + 1);
	assert_int_equal(pci_intx_gsi(c->host, slot, 1), X86_PCI_INTX_GSI_BASE + 1);
	assert_int_equal(pci_intx_gsi(c->host, 7, 2), X86_PCI_INTX_GSI_BASE + 0);
	/* Unused BARs and the ROM BAR read 0 even after all-ones writes. */
	cfg_wr(c, slot, 0x14, 4, 0xffffffff);
	cfg_wr(c, slot, 0x30, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, slot, 0x14, 4), 0);
	assert_int_equal(cfg_rd(c, slot, 0x30, 4), 0);
	/* Second device goes to slot 2; a device cannot be added twice. */
	assert_int_equal(pci_add_device(c->host, &c->f.pci), -1);
}

static void test_bar_sizing(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);

	cfg_wr(c, slot, 0x10, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, slot, 0x10, 4), 0xfffff000);
	cfg_wr(c, slot, 0x18, 4, 0xffffffff);
	cfg_wr(c, slot, 0x1c, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, slot, 0x18, 4), 0xffffc00c);
	assert_int_equal(cfg_rd(c, slot, 0x1c, 4), 0xffffffff);
	cfg_wr(c, slot, 0x20, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, slot, 0x20, 4), 0x0000ffe1);
	/* Nothing was mapped: decoding is off. */
	assert_int_equal(c->f.mapped_events, 0);
	/* Bad BAR declarations are refused. */
	struct pci_dev p;
	pci_dev_init(&p, NULL, NULL, 1, 2, 0, 0);
	assert_int_equal(pci_set_bar(&p, 0, PCI_BAR_MEM32, 0x1800, false), -1);
	assert_int_equal(pci_set_bar(&p, 5, PCI_BAR_MEM64, 0x1000, false), -1);
	assert_int_equal(pci_set_bar(&p, 0, PCI_BAR_IO, 512, false), -1);
	assert_int_equal(pci_set_bar(&p, 6, PCI_BAR_MEM32, 0x1000, false), -1);
	assert_int_equal(pci_set_bar(&p, 0, PCI_BAR_MEM64, 0x1000, false), 0);
	assert_int_equal(pci_set_bar(&p, 1, PCI_BAR_MEM32, 0x1000, false), -1);
}

static void test_bar_enable_and_move(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	uint32_t bar0 = cfg_rd(c, slot, 0x10, 4);
	uint64_t bar2 = cfg_rd(c, slot, 0x18, 4) & ~0xfu;
	uint32_t io = cfg_rd(c, slot, 0x20, 4) & ~3u;
	uint8_t b[4];
	bool hit;

	mmio_rd(c, bar0, 4, &hit);
	assert_false(hit);
	cfg_wr(c, slot, 0x04, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(c->f.mapped_events, 2);
	assert_int_equal(mmio_rd(c, bar0 + 0x10, 4, &hit), 0xa3a2a1a0);
	assert_true(hit);
	assert_int_equal(c->f.last_bar, 0);
	assert_int_equal(c->f.last_off, 0x10);
	assert_int_equal(c->f.last_base, bar0);
	mmio_rd(c, bar2 + 0x3ffc, 4, &hit);
	assert_true(hit);
	assert_int_equal(c->f.last_bar, 2);
	assert_int_equal(c->f.last_off, 0x3ffc);
	mmio_rd(c, bar2 + 0x3ffe, 4, &hit); /* straddles the end */
	assert_false(hit);
	/* I/O BAR is still off; then on. Off, nothing decodes its ports (the host
	 * no longer claims a window of its own: I/O BARs go on the bus itself). */
	assert_false(bus_dispatch(&c->pio, io + 4, b, 2, false));
	assert_int_equal(b[0], 0xff);
	assert_int_equal(c->pio.nr, 2); /* CONFIG_ADDRESS, CONFIG_DATA */
	cfg_wr(c, slot, 0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	b[0] = 0x34;
	b[1] = 0x12;
	assert_true(bus_dispatch(&c->pio, io + 4, b, 2, true));
	assert_int_equal(c->f.last_bar, 4);
	assert_int_equal(c->f.last_base, io);
	assert_int_equal(c->f.last_off, 4);
	assert_true(c->f.last_write);
	assert_int_equal(c->f.last_val, 0x1234);

	/* Move BAR0 (word write to the high half) and BAR2 (to above 4 GiB). */
	cfg_wr(c, slot, 0x12, 2, 0xd000);
	mmio_rd(c, bar0, 4, &hit);
	assert_false(hit);
	mmio_rd(c, 0xd0000000 + 8, 1, &hit);
	assert_true(hit);
	assert_int_equal(c->f.last_off, 8);
	cfg_wr(c, slot, 0x1c, 4, 0x80); /* 0x80_xxxxxxxx */
	mmio_rd(c, bar2, 4, &hit);
	assert_false(hit);
	mmio_rd(c, (0x80ULL << 32) | bar2, 4, &hit);
	assert_true(hit);
	assert_int_equal(c->f.last_bar, 2);
	/* Disable memory decoding: both memory BARs vanish. */
	cfg_wr(c, slot, 0x04, 2, PCI_COMMAND_IO);
	mmio_rd(c, 0xd0000000, 4, &hit);
	assert_false(hit);
	assert_int_equal(c->mmio.nr, 0);
	/* Moving the I/O BAR outside the window leaves it undecoded, there and
	 * at the old place. */
	cfg_wr(c, slot, 0x20, 4, 0x1000);
	assert_false(bus_dispatch(&c->pio, io, b, 1, false));
	assert_int_equal(b[0], 0xff);
	assert_false(bus_dispatch(&c->pio, 0x1000, b, 1, false));
	assert_int_equal(c->pio.nr, 2);
	assert_true(c->f.config_writes > 0);
}

static void test_capabilities(void **state)
{
	struct ctx *c = *state;
	int off1, off2, slot;

	off1 = pci_add_capability(&c->f.pci, PCI_CAP_ID_VNDR, 14);
	off2 = pci_add_capability(&c->f.pci, PCI_CAP_ID_MSIX, 12);
	assert_int_equal(off1, PCI_CAP_START);
	assert_int_equal(off2, PCI_CAP_START + 16); /* dword aligned */
	pci_config_write(&c->f.pci, off1 + 2, 1, 14);
	pci_config_write(&c->f.pci, off2 + 2, 2, 0x0003);
	pci_config_set_wmask(&c->f.pci, off2 + 2, 2, 0xc000); /* MSI-X enable/mask */
	slot = pci_add_device(c->host, &c->f.pci);
	assert_int_equal(cfg_rd(c, slot, 0x06, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_rd(c, slot, 0x34, 1), off1);
	assert_int_equal(cfg_rd(c, slot, (uint32_t)off1, 2), (uint32_t)(off2 << 8 | PCI_CAP_ID_VNDR));
	assert_int_equal(cfg_rd(c, slot, (uint32_t)off2, 2), PCI_CAP_ID_MSIX);
	assert_int_equal(cfg_rd(c, slot, (uint32_t)off1 + 2, 1), 14);
	cfg_wr(c, slot, (uint32_t)off1, 4, 0xffffffff); /* read-only */
	assert_int_equal(cfg_rd(c, slot, (uint32_t)off1, 4),
			 (uint32_t)(14 << 16 | off2 << 8 | PCI_CAP_ID_VNDR));
	cfg_wr(c, slot, (uint32_t)off2 + 2, 2, 0xffff);
	assert_int_equal(cfg_rd(c, slot, (uint32_t)off2 + 2, 2), 0xc003);
	assert_int_equal(pci_config_read(&c->f.pci, (uint32_t)off2 + 2, 2), 0xc003);
	/* Config space runs out. */
	while (pci_add_capability(&c->f.pci, PCI_CAP_ID_VNDR, 64) > 0)
		;
	assert_int_equal(pci_add_capability(&c->f.pci, PCI_CAP_ID_VNDR, 64), -1);
}

static void test_command_status_masks_and_intx(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	uint32_t gsi = pci_intx_gsi(c->host, slot, 1);

	cfg_wr(c, slot, 0x04, 2, 0xffff);
	assert_int_equal(cfg_rd(c, slot, 0x04, 2), 0x0547);
	cfg_wr(c, slot, 0x04, 2, 0);
	pci_set_irq(&c->f.pci, 1);
	assert_int_equal(c->gsi_level[gsi], 1);
	assert_int_equal(cfg_rd(c, slot, 0x06, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	cfg_wr(c, slot, 0x04, 2, PCI_COMMAND_INTX_DISABLE); /* masks the line */
	assert_int_equal(c->gsi_level[gsi], 0);
	assert_int_equal(cfg_rd(c, slot, 0x06, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	cfg_wr(c, slot, 0x04, 2, 0);
	assert_int_equal(c->gsi_level[gsi], 1);
	pci_set_irq(&c->f.pci, 0);
	assert_int_equal(c->gsi_level[gsi], 0);
	assert_int_equal(cfg_rd(c, slot, 0x06, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Status writes cannot set bits. */
	cfg_wr(c, slot, 0x06, 2, 0xffff);
	assert_int_equal(cfg_rd(c, slot, 0x06, 2), 0);
}

static void test_shared_intx_wire_or(void **state)
{
	struct ctx *c = *state;
	struct fdev g[8];
	int s1 = pci_add_device(c->host, &c->f.pci), sg = -1;
	uint32_t gsi = pci_intx_gsi(c->host, s1, 1);

	memset(g, 0, sizeof(g));
	/* Fill slots until one shares the first device's GSI. */
	for (int i = 0; i < 8; i++) {
		pci_dev_init(&g[i].pci, &g[i].dev, &f_ops, 0x1af4, 0x1000, 0, 0);
		pci_set_intx_pin(&g[i].pci, 1);
		int s = pci_add_device(c->host, &g[i].pci);
		if (pci_intx_gsi(c->host, s, 1) == gsi) {
			sg = i;
			break;
		}
	}
	assert_true(sg >= 0);
	pci_set_irq(&c->f.pci, 1);
	pci_set_irq(&g[sg].pci, 1);
	pci_set_irq(&c->f.pci, 0);
	assert_int_equal(c->gsi_level[gsi], 1); /* still held by g */
	pci_set_irq(&g[sg].pci, 0);
	assert_int_equal(c->gsi_level[gsi], 0);
	for (int i = 0; i <= sg; i++)
		pci_remove_device(&g[i].pci);
}

static void test_save_load(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	struct ser_writer w;
	struct ser_reader r;
	bool hit;

	cfg_wr(c, slot, 0x10, 4, 0xe0000000);
	cfg_wr(c, slot, 0x04, 2, PCI_COMMAND_MEMORY);
	cfg_wr(c, slot, 0x3c, 1, 0x33);
	pci_set_irq(&c->f.pci, 1);
	ser_writer_init(&w);
	c->host->ops->save(c->host, &w);
	assert_false(w.err);

	c->host->ops->reset(c->host);
	pci_set_irq(&c->f.pci, 0);
	assert_int_equal(cfg_rd(c, slot, 0x04, 2), 0);
	assert_int_equal(cfg_rd(c, slot, 0x10, 4), (uint32_t)X86_PCI_MMIO_START);
	mmio_rd(c, 0xe0000000, 4, &hit);
	assert_false(hit);

	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->host->ops->load(c->host, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(cfg_rd(c, slot, 0x10, 4), 0xe0000000);
	assert_int_equal(cfg_rd(c, slot, 0x3c, 1), 0x33);
	mmio_rd(c, 0xe0000000, 4, &hit);
	assert_true(hit);
	assert_int_equal(c->gsi_level[pci_intx_gsi(c->host, slot, 1)], 1);

	/* A snapshot of a different machine is refused. */
	pci_remove_device(&c->f.pci);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->host->ops->load(c->host, &r), -1);
	ser_reader_init(&r, w.buf, 10);
	assert_int_equal(c->host->ops->load(c->host, &r), -1);
	ser_writer_free(&w);
}

/* CONFIG_ADDRESS is the front-end's state: saved, reset and loaded with it. */
static void test_cf8_state(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint8_t b[4];

	set_addr(c, 3, 0x10);
	ser_writer_init(&w);
	c->cf8->ops->save(c->cf8, &w);
	assert_false(w.err);
	c->cf8->ops->reset(c->cf8);
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, false));
	assert_int_equal(get_le32(b), 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->cf8->ops->load(c->cf8, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_true(bus_dispatch(&c->pio, X86_PCI_CONFIG_ADDR, b, 4, false));
	assert_int_equal(get_le32(b), 0x80001810);
	/* Reserved bits in a saved CONFIG_ADDRESS: refused. */
	w.buf[1] |= 0x01;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->cf8->ops->load(c->cf8, &r), -1);
	ser_reader_init(&r, w.buf, 3);
	assert_int_equal(c->cf8->ops->load(c->cf8, &r), -1);
	ser_writer_free(&w);
}

/* ---- what the architecture decides ---- */

static uint32_t odd_swizzle(uint32_t slot, uint32_t pin, uint32_t lines)
{
	return slot * 4 + pin + 1000; /* beyond the lines: the core reduces it */
}

static uint32_t direct_rd(struct pci_host *h, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg,
			  uint32_t len)
{
	uint8_t b[4] = { 0 };

	pci_host_config_access(h, (struct pci_cfg_addr){ bus, dev, fn, reg }, b, len, false);
	return get_le32(b);
}

static void direct_wr(struct pci_host *h, uint8_t dev, uint16_t reg, uint32_t len, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	pci_host_config_access(h, (struct pci_cfg_addr){ 0, dev, 0, reg }, b, len, true);
}

/* An arm64-like machine, driven through the generic config access without
 * any front-end: no port bus (I/O BARs are an MMIO window whose bus address
 * differs from the PCI one), other windows, other INTx lines and swizzle. */
static void test_windows_and_intx_from_config(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct fdev *f = &c->f;
	struct pci_host_config cfg = {
		.mmio = &c->mmio,
		.mem32 = { 0x10000000, 0x2eff0000 },
		.mem64 = { 0x8000000000ULL, 0x8000000000ULL },
		.io_bus = &c->mmio,
		.io = { 0x1000, 0xf000 },
		.io_bus_base = 0x3eff1000,
		.intx = { .set = fake_irq, .ctx = c },
		.intx_gsi_base = 20,
		.intx_lines = 4,
		.intx_swizzle = odd_swizzle,
	};
	struct pci_host *h;
	uint8_t b[4];
	int slot;

	bus_init(&c->mmio, BUS_MMIO);
	c->host = pci_host_create("pci", &cfg);
	assert_non_null(c->host);
	h = pci_host_of(c->host);
	assert_non_null(h);
	assert_null(pci_host_of(&f->dev));
	assert_true(pci_host_has_io(c->host));
	assert_false(pci_host_has_io(&f->dev));
	assert_int_equal(c->mmio.nr, 0); /* the core claims nothing itself */
	pci_dev_init(&f->pci, &f->dev, &f_ops, 0x1af4, 0x1041, 0x020000, 1);
	assert_int_equal(pci_set_bar(&f->pci, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_set_bar(&f->pci, 4, PCI_BAR_IO, 0x20, false), 0);
	pci_set_intx_pin(&f->pci, 2);
	slot = pci_add_device(c->host, &f->pci);
	assert_int_equal(slot, 1);

	assert_int_equal(direct_rd(h, 0, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x10, 4), 0x10000000);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x20, 4), 0x1001);
	/* INTB of slot 1: line (1 * 4 + 2 + 1000) % 4 = 2, GSI 22. */
	assert_int_equal(pci_intx_gsi(c->host, 1, 2), 22);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x3c, 1), 22);
	pci_set_irq(&f->pci, 1);
	assert_int_equal(c->gsi_level[22], 1);
	pci_set_irq(&f->pci, 0);
	assert_int_equal(c->gsi_level[22], 0);

	/* The I/O BAR decodes on the MMIO bus at its bus address; the device
	 * sees the PCI address. */
	direct_wr(h, 1, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	put_le16(b, 0xbeef);
	assert_true(bus_dispatch(&c->mmio, 0x3eff1000 + 4, b, 2, true));
	assert_int_equal(f->last_bar, 4);
	assert_int_equal(f->last_base, 0x1000);
	assert_int_equal(f->last_off, 4);
	assert_int_equal(f->last_val, 0xbeef);
	assert_true(bus_dispatch(&c->mmio, 0x10000000 + 0x10, b, 4, false));
	assert_int_equal(f->last_bar, 0);
	/* Moving the I/O BAR moves its bus address with it; out of the window
	 * (below io.base) it decodes nowhere. */
	direct_wr(h, 1, 0x20, 4, 0x2000);
	assert_false(bus_dispatch(&c->mmio, 0x3eff1000, b, 1, false));
	assert_true(bus_dispatch(&c->mmio, 0x3eff2000, b, 1, false));
	assert_int_equal(f->last_base, 0x2000);
	direct_wr(h, 1, 0x20, 4, 0x0800);
	assert_false(bus_dispatch(&c->mmio, 0x3eff2000, b, 1, false));
	assert_false(bus_dispatch(&c->mmio, 0x3eff0800, b, 1, false));
	assert_int_equal(c->mmio.nr, 1); /* BAR0 only */

	pci_remove_device(&f->pci);
	c->host->ops->destroy(c->host);
	assert_int_equal(c->mmio.nr, 0);
	bus_destroy(&c->mmio);
	free(c);
}

/* The generic access refuses what no config request can be, and knows
 * which functions exist. */
static void test_config_access_rules(void **state)
{
	struct ctx *c = *state;
	struct pci_host *h = pci_host_of(c->host);
	int slot = pci_add_device(c->host, &c->f.pci);
	uint8_t b[4];

	assert_int_equal(slot, 1);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(direct_rd(h, 0, 1, 1, 0, 4), 0xffffffff); /* function 1 */
	assert_int_equal(direct_rd(h, 1, 1, 0, 0, 4), 0xffffffff); /* bus 1 */
	assert_int_equal(direct_rd(h, 0, 2, 0, 0, 4), 0xffffffff); /* empty slot */
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x100, 4), 0);      /* extended space */
	assert_int_equal(direct_rd(h, 0, 1, 0, 0xffc, 4), 0);
	assert_int_equal(direct_rd(h, 0, 2, 0, 0x100, 4), 0xffffffff);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x1000, 1), 0xff);    /* beyond 4 KiB */
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x2, 4), 0xffffffff); /* straddles a dword */
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x3, 2), 0xffff);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x1, 2), 0x411a); /* inside one: fine */
	memset(b, 0, sizeof(b));
	pci_host_config_access(h, (struct pci_cfg_addr){ 0, 1, 0, 0 }, b, 3, false);
	assert_int_equal(b[0] & b[1] & b[2], 0xff);
	/* Refused writes change nothing: COMMAND through a straddling access,
	 * the extended space, a write of 3 bytes. */
	direct_wr(h, 1, 0x2, 4, 0xffffffff);
	direct_wr(h, 1, 0x104, 4, 0xffffffff);
	put_le32(b, 0xffffffff);
	pci_host_config_access(h, (struct pci_cfg_addr){ 0, 1, 0, PCI_COMMAND }, b, 3, true);
	assert_int_equal(direct_rd(h, 0, 1, 0, PCI_COMMAND, 2), 0);
	assert_int_equal(direct_rd(h, 0, 1, 0, 0x104, 4), 0);
	assert_int_equal(c->f.config_writes, 0);
}

static void test_host_config_refused(void **state)
{
	struct bus mmio;
	struct pci_host_config ok = {
		.mmio = &mmio,
		.mem32 = { 0xc0000000, 0x10000000 },
		.intx_lines = 8,
	};
	struct pci_host_config bad;
	struct device *d;

	bus_init(&mmio, BUS_MMIO);
	d = pci_host_create("pci", &ok);
	assert_non_null(d);
	assert_false(pci_host_has_io(d)); /* arm64's kind: memory windows only */
	d->ops->destroy(d);
	bad = ok;
	bad.intx_lines = 0;
	assert_null(pci_host_create("pci", &bad));
	bad.intx_lines = PCI_INTX_MAX_LINES + 1;
	assert_null(pci_host_create("pci", &bad));
	bad = ok;
	bad.mem32 = (struct pci_window){ 0xf0000000, 0x20000000 }; /* crosses 4 GiB */
	assert_null(pci_host_create("pci", &bad));
	bad = ok;
	bad.mem32.size = 0;
	assert_null(pci_host_create("pci", &bad));
	bad = ok;
	bad.mem64 = (struct pci_window){ UINT64_MAX - 0xfff, 0x2000 };
	assert_null(pci_host_create("pci", &bad));
	bad = ok;
	bad.io_bus = &mmio; /* an I/O bus without an I/O window */
	assert_null(pci_host_create("pci", &bad));
	bad = ok;
	bad.mmio = NULL;
	assert_null(pci_host_create("pci", &bad));
	assert_null(pci_host_create("pci", NULL));
	/* Front-ends want a host. */
	assert_null(pci_cf8_create("cf8", NULL, &mmio, 0xcf8));
	assert_int_equal(mmio.nr, 0);
	bus_destroy(&mmio);
}

/* ---- ECAM ---- */

/* Outside the x86 BAR windows, so BARs never land on it by allocation. */
#define ECAM_BASE  0xb0000000ULL
#define ECAM_BUSES 4

static int setup_ecam(void **state)
{
	struct ctx *c;

	setup(state);
	c = *state;
	c->ecam = pci_ecam_create("pci-ecam", c->host, &c->mmio, ECAM_BASE, ECAM_BUSES);
	assert_non_null(c->ecam);
	return 0;
}

static uint64_t ecam_addr(int bus, int dev, int fn, uint32_t reg)
{
	return ECAM_BASE + ((uint64_t)bus << 20 | (uint64_t)dev << 15 | (uint64_t)fn << 12 | reg);
}

/* An ECAM read; *hit says whether anything decoded the address. */
static uint32_t ecam_rd(struct ctx *c, uint64_t addr, uint32_t len, bool *hit)
{
	uint8_t b[8];
	bool h;

	memset(b, 0x5a, sizeof(b));
	h = bus_dispatch(&c->mmio, addr, b, len, false);
	if (hit)
		*hit = h;
	for (uint32_t i = len; i < sizeof(b); i++)
		assert_int_equal(b[i], 0x5a); /* nothing written past the access */
	return (uint32_t)get_le(b, len < 4 ? len : 4);
}

static void ecam_wr(struct ctx *c, uint64_t addr, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	put_le(b, 8, v);
	bus_dispatch(&c->mmio, addr, b, len, true);
}

static void test_ecam_decode(void **state)
{
	struct pci_cfg_addr at;

	assert_true(pci_ecam_decode(0, 4, 1, &at));
	assert_int_equal(at.bus, 0);
	assert_int_equal(at.dev, 0);
	assert_int_equal(at.fn, 0);
	assert_int_equal(at.reg, 0);
	assert_true(pci_ecam_decode(3ULL << 20 | 31 << 15 | 7 << 12 | 0xffc, 4, 4, &at));
	assert_int_equal(at.bus, 3);
	assert_int_equal(at.dev, 31);
	assert_int_equal(at.fn, 7);
	assert_int_equal(at.reg, 0xffc);
	assert_true(pci_ecam_decode(1 << 15 | 0x3d, 1, 1, &at));
	assert_int_equal(at.dev, 1);
	assert_int_equal(at.reg, 0x3d);
	assert_true(pci_ecam_decode(0x102, 2, 1, &at)); /* upper half of a dword */
	assert_int_equal(at.reg, 0x102);
	assert_true(pci_ecam_decode(255ULL << 20, 1, 256, &at));
	assert_int_equal(at.bus, 255);

	assert_false(pci_ecam_decode(4ULL << 20, 4, 4, &at)); /* bus beyond the window */
	assert_false(pci_ecam_decode(1ULL << 20, 1, 1, &at));
	assert_false(pci_ecam_decode(UINT64_MAX - 3, 4, 256, &at));
	assert_false(pci_ecam_decode(0, 4, 257, &at)); /* more buses than PCI has */
	assert_false(pci_ecam_decode(0, 8, 1, &at));   /* wider than a dword */
	assert_false(pci_ecam_decode(0, 3, 1, &at));
	assert_false(pci_ecam_decode(0, 0, 1, &at));
	assert_false(pci_ecam_decode(0x1, 4, 1, &at)); /* straddles a dword */
	assert_false(pci_ecam_decode(0x3, 2, 1, &at));
	assert_false(pci_ecam_decode(0xffe, 4, 1, &at)); /* straddles a function */
	assert_false(pci_ecam_decode(0xfff, 2, 1, &at));
	assert_false(pci_ecam_decode((1 << 15) - 2, 4, 1, &at)); /* and a device */
	assert_false(pci_ecam_decode((1 << 20) - 1, 2, 2, &at)); /* and a bus */
}

/* The same config space as through CF8, plus the extended space. */
static void test_ecam_reads_and_writes(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	bool hit;

	assert_int_equal(slot, 1);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 0, 0, 0), 4, &hit), 0x00081b36);
	assert_true(hit);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0), 4, NULL), 0x10411af4);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 2), 2, NULL), 0x1041);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0x3d), 1, NULL), 1);
	for (uint32_t off = 0; off < PCI_CONFIG_SIZE; off += 4)
		assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, off), 4, NULL), cfg_rd(c, slot, off, 4));
	/* Extended space of a present function: 0, writes ignored. */
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0x100), 4, NULL), 0);
	ecam_wr(c, ecam_addr(0, 1, 0, 0x100), 4, 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0x100), 4, NULL), 0);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0xfff), 1, NULL), 0);
	/* Writes go through the same masks as through CF8. */
	ecam_wr(c, ecam_addr(0, 1, 0, PCI_COMMAND), 2, 0xffff);
	assert_int_equal(cfg_rd(c, slot, PCI_COMMAND, 2), 0x0547);
	ecam_wr(c, ecam_addr(0, 1, 0, 0), 4, 0);
	assert_int_equal(cfg_rd(c, slot, 0, 4), 0x10411af4);
	ecam_wr(c, ecam_addr(0, 1, 0, 0x3c), 1, 0x42);
	assert_int_equal(cfg_rd(c, slot, 0x3c, 1), 0x42);
	ecam_wr(c, ecam_addr(0, 1, 0, PCI_COMMAND), 2, 0);
}

/* Whatever the guest throws at the window: all ones, nothing changes. */
static void test_ecam_hostile_accesses(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	uint8_t b[8];
	bool hit;

	assert_int_equal(slot, 1);
	/* Functions, devices and buses that do not exist. */
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 1, 0), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 0, 7, 0), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 9, 0, 0), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 9, 0, 0x100), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(1, 1, 0, 0), 4, &hit), 0xffffffff);
	assert_true(hit); /* inside the window: ECAM answers */
	assert_int_equal(ecam_rd(c, ecam_addr(ECAM_BUSES - 1, 31, 7, 0xffc), 4, NULL), 0xffffffff);
	/* Beyond the window nothing decodes, and the bus reads all ones. */
	assert_int_equal(ecam_rd(c, ecam_addr(ECAM_BUSES, 0, 0, 0), 4, &hit), 0xffffffff);
	assert_false(hit);
	assert_int_equal(ecam_rd(c, ECAM_BASE - 4, 4, &hit), 0xffffffff);
	assert_false(hit);
	/* Crossing the end of the window: the bus does not deliver it. */
	assert_int_equal(ecam_rd(c, ecam_addr(ECAM_BUSES, 0, 0, 0) - 2, 4, &hit), 0xffffffff);
	assert_false(hit);
	/* Unaligned, straddling a dword, a function, a device; 8 bytes; 3 bytes. */
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 1), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 3), 2, NULL), 0xffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 0, 7, 0xffe), 4, NULL), 0xffffffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 0, 7, 0xfff), 2, NULL), 0xffff);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 1, 0, 0xffd), 4, NULL), 0xffffffff);
	memset(b, 0, sizeof(b));
	assert_true(bus_dispatch(&c->mmio, ecam_addr(0, 1, 0, 0), b, 8, false));
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i], 0xff);
	memset(b, 0, sizeof(b));
	assert_true(bus_dispatch(&c->mmio, ecam_addr(0, 1, 0, 0), b, 3, false));
	assert_int_equal(b[0] & b[1] & b[2], 0xff);
	/* None of those as writes changes anything: COMMAND and BAR0 through a
	 * straddling access, an 8-byte one, a 3-byte one, function 1's alias. */
	ecam_wr(c, ecam_addr(0, 1, 0, 2), 4, 0xffffffff);
	ecam_wr(c, ecam_addr(0, 1, 0, 3), 2, 0xffff);
	ecam_wr(c, ecam_addr(0, 1, 0, 0), 8, UINT64_MAX);
	ecam_wr(c, ecam_addr(0, 1, 0, 0x10), 8, UINT64_MAX);
	ecam_wr(c, ecam_addr(0, 1, 0, 4), 3, 0xffffff);
	ecam_wr(c, ecam_addr(0, 1, 1, 4), 2, 0xffff);
	ecam_wr(c, ecam_addr(2, 1, 0, 4), 2, 0xffff);
	assert_int_equal(cfg_rd(c, slot, PCI_COMMAND, 2), 0);
	assert_int_equal(cfg_rd(c, slot, 0x10, 4), (uint32_t)X86_PCI_MMIO_START);
	assert_int_equal(c->f.config_writes, 0);
	assert_int_equal(c->f.mapped_events, 0);
}

/* The case that deadlocked with the bus lock held across io(): a config
 * write over MMIO that (un)registers BARs on that same MMIO bus. */
static void test_ecam_moves_bars_on_its_own_bus(void **state)
{
	struct ctx *c = *state;
	int slot = pci_add_device(c->host, &c->f.pci);
	uint32_t bar0 = cfg_rd(c, slot, 0x10, 4);
	bool hit;

	ecam_wr(c, ecam_addr(0, slot, 0, PCI_COMMAND), 2, PCI_COMMAND_MEMORY);
	assert_int_equal(c->f.mapped_events, 2);
	assert_int_equal(mmio_rd(c, bar0 + 4, 4, &hit), 0xa3a2a1a0);
	assert_true(hit);
	ecam_wr(c, ecam_addr(0, slot, 0, 0x10), 4, 0xd0000000);
	mmio_rd(c, bar0, 4, &hit);
	assert_false(hit);
	mmio_rd(c, 0xd0000004, 4, &hit);
	assert_true(hit);
	assert_int_equal(c->f.last_base, 0xd0000000);
	/* A BAR moved onto the ECAM window does not decode there; ECAM goes on. */
	ecam_wr(c, ecam_addr(0, slot, 0, 0x10), 4, (uint32_t)ECAM_BASE);
	assert_int_equal(ecam_rd(c, ecam_addr(0, 0, 0, 0), 4, NULL), 0x00081b36);
	mmio_rd(c, 0xd0000004, 4, &hit);
	assert_false(hit);
	ecam_wr(c, ecam_addr(0, slot, 0, 0x10), 4, 0xd0000000);
	mmio_rd(c, 0xd0000004, 4, &hit);
	assert_true(hit);
	ecam_wr(c, ecam_addr(0, slot, 0, PCI_COMMAND), 2, 0);
	assert_int_equal(c->mmio.nr, 1); /* the ECAM window */
}

/* vCPUs hammering BARs while others move them through ECAM. */
struct race_dev {
	struct device dev;
	struct pci_dev pci;
	atomic_long hits;
};

static void race_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	struct race_dev *r = container_of(pdev, struct race_dev, pci);

	atomic_fetch_add(&r->hits, 1);
	if (!a->is_write)
		memset(a->data, 0x3c, a->len);
}

static const struct pci_dev_ops race_ops = { .bar_io = race_bar_io };

#define RACE_READERS 2
#define RACE_READS   3000 /* per reader, at least */
#define RACE_MOVES   1000 /* at least, while the readers read */

struct race {
	struct ctx *c;
	struct race_dev d;
	int slot;
	atomic_int readers_done, moves;
	atomic_long bad, misses, reads;
};

/* Moves BAR0 between two places and turns decoding off and on. */
static void *race_mover(void *p)
{
	struct race *r = p;
	uint8_t b[4];

	for (int i = 0; atomic_load(&r->readers_done) < RACE_READERS; i++) {
		put_le32(b, i & 1 ? 0xd0000000 : 0xd0010000);
		bus_dispatch(&r->c->mmio, ecam_addr(0, r->slot, 0, 0x10), b, 4, true);
		put_le16(b, i % 3 ? PCI_COMMAND_MEMORY : 0);
		bus_dispatch(&r->c->mmio, ecam_addr(0, r->slot, 0, PCI_COMMAND), b, 2, true);
		atomic_fetch_add(&r->moves, 1);
	}
	return NULL;
}

/* Reads both places and config space: a hit is the device's pattern, a
 * miss is all ones, never anything else. */
static void *race_reader(void *p)
{
	struct race *r = p;
	uint8_t b[4];

	for (int n = 0; n < RACE_READS || atomic_load(&r->moves) < RACE_MOVES; n++) {
		atomic_fetch_add(&r->reads, 2);
		for (int k = 0; k < 2; k++) {
			memset(b, 0, sizeof(b));
			if (bus_dispatch(&r->c->mmio, k ? 0xd0000000 : 0xd0010000, b, 4, false)) {
				if (get_le32(b) != 0x3c3c3c3c)
					atomic_fetch_add(&r->bad, 1);
			} else {
				atomic_fetch_add(&r->misses, 1);
				if (get_le32(b) != 0xffffffff)
					atomic_fetch_add(&r->bad, 1);
			}
		}
		bus_dispatch(&r->c->mmio, ecam_addr(0, r->slot, 0, 0), b, 4, false);
		if (get_le32(b) != 0x10001af4)
			atomic_fetch_add(&r->bad, 1);
	}
	atomic_fetch_add(&r->readers_done, 1);
	return NULL;
}

static void test_ecam_concurrent_remap(void **state)
{
	struct ctx *c = *state;
	struct race *r = calloc(1, sizeof(*r));
	pthread_t th[1 + RACE_READERS];
	struct timespec until;

	assert_non_null(r);
	r->c = c;
	pci_dev_init(&r->d.pci, &r->d.dev, &race_ops, 0x1af4, 0x1000, 0, 0);
	assert_int_equal(pci_set_bar(&r->d.pci, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	r->slot = pci_add_device(c->host, &r->d.pci);
	assert_true(r->slot > 0);
	assert_int_equal(pthread_create(&th[0], NULL, race_mover, r), 0);
	for (int i = 1; i <= RACE_READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_reader, r), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 120;
	for (int i = 0; i <= RACE_READERS; i++)
		if (pthread_timedjoin_np(th[i], NULL, &until) == ETIMEDOUT)
			fail_msg("config writes over ECAM racing BAR accesses did not finish: a deadlock");
	printf("# %ld BAR accesses decoded, %ld missed while the BAR moved or was off\n",
	       atomic_load(&r->d.hits), atomic_load(&r->misses));
	assert_int_equal(atomic_load(&r->bad), 0);
	assert_int_equal(atomic_load(&r->d.hits) + atomic_load(&r->misses), atomic_load(&r->reads));
	assert_true(atomic_load(&r->moves) >= RACE_MOVES);
	pci_remove_device(&r->d.pci);
	assert_int_equal(c->mmio.nr, 1);
	free(r);
}

static void test_ecam_create_refused(void **state)
{
	struct ctx *c = *state;

	assert_null(pci_ecam_create("e", c->host, &c->mmio, ECAM_BASE + 0x1000, 1)); /* not 1 MiB aligned */
	assert_null(pci_ecam_create("e", c->host, &c->mmio, ECAM_BASE, 0));
	assert_null(pci_ecam_create("e", c->host, &c->mmio, ECAM_BASE, 257));
	assert_null(pci_ecam_create("e", c->cf8, &c->mmio, ECAM_BASE, 1)); /* not a host */
	assert_null(pci_ecam_create("e", c->host, NULL, ECAM_BASE, 1));
	assert_null(pci_ecam_create("e", c->host, &c->mmio, UINT64_MAX & ~0xfffffULL, 2)); /* wraps */
	assert_int_equal(c->mmio.nr, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_devices_read_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_device_and_bars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_enable_and_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_status_masks_and_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_intx_wire_or, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cf8_state, setup, teardown),
		cmocka_unit_test(test_windows_and_intx_from_config),
		cmocka_unit_test_setup_teardown(test_config_access_rules, setup, teardown),
		cmocka_unit_test(test_host_config_refused),
		cmocka_unit_test(test_ecam_decode),
		cmocka_unit_test_setup_teardown(test_ecam_reads_and_writes, setup_ecam, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_hostile_accesses, setup_ecam, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_moves_bars_on_its_own_bus, setup_ecam, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_concurrent_remap, setup_ecam, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_create_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
