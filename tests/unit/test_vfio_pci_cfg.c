/* Unit tests for the config space of a passed-through PCI function (devices/vfio_pci_cfg.c):
 * BARs sized from VFIO's regions, the relinked capability list, the emulated MSI-X and MSI
 * capabilities, passed-through reads and the write mask on forwarded writes, against a
 * fake device config region, through the PCI core as the guest reaches it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "devices/pci.h"
#include "devices/vfio_pci_cfg.h"
#include "fakes.h"

/* The device's config region as VFIO would show it: reads and writes go to dev[]. */
struct fake {
	uint8_t dev[PCI_CONFIG_SIZE];
	int reads, writes;
	bool fail;
};

static int fake_read(void *ctx, uint32_t off, uint8_t *buf, uint32_t len)
{
	struct fake *f = ctx;

	f->reads++;
	if (f->fail)
		return -1;
	assert_true(off + len <= PCI_CONFIG_SIZE);
	memcpy(buf, f->dev + off, len);
	return 0;
}

static int fake_write(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len)
{
	struct fake *f = ctx;

	f->writes++;
	if (f->fail)
		return -1;
	assert_true(off + len <= PCI_CONFIG_SIZE);
	memcpy(f->dev + off, buf, len);
	return 0;
}

struct ctx {
	struct bus pio, mmio;
	struct device *host;
	struct device dev;
	struct pci_dev pci;
	struct vfio_pci_cfg cfg;
	struct fake fake;
	struct vfio_pci_cfg_io io;
	int slot;
};

static struct ctx *the_ctx; /* for the hooks: one device per test */

/* An NVMe-like function: BAR0 64-bit 16 KiB, BAR4 I/O 32 bytes, BAR5 32-bit prefetchable 4 KiB;
 * capabilities PM 0x40 -> MSI 0x50 (4 vectors, 64-bit, maskable) -> MSI-X 0x70 -> PCIe 0x80. */
static const uint64_t sizes[PCI_NUM_BARS] = { 0x4000, 0, 0, 0, 0x20, 0x1000 };

static void make_phys(uint8_t *p)
{
	memset(p, 0, PCI_CONFIG_SIZE);
	put_le(p + PCI_VENDOR_ID, 2, 0x1b36);
	put_le(p + PCI_DEVICE_ID, 2, 0x0010);
	put_le(p + PCI_COMMAND, 2, PCI_COMMAND_PARITY);
	put_le(p + PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
	p[PCI_REVISION_ID] = 2;
	put_le(p + PCI_CLASS_PROG, 3, 0x010802);
	put_le(p + PCI_BASE_ADDRESS_0, 4, 0xfebf0004);      /* 64-bit memory */
	put_le(p + PCI_BASE_ADDRESS_0 + 4, 4, 0);           /* its upper half */
	put_le(p + PCI_BASE_ADDRESS_0 + 16, 4, 0xc001);     /* I/O */
	put_le(p + PCI_BASE_ADDRESS_0 + 20, 4, 0xfe000008); /* 32-bit prefetchable */
	put_le(p + PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1af4);
	put_le(p + PCI_SUBSYSTEM_ID, 2, 0x1100);
	p[PCI_CAPABILITY_LIST] = 0x40;
	p[PCI_INTERRUPT_PIN] = 1;
	p[0x40] = PCI_CAP_ID_PM;
	p[0x41] = 0x50;
	put_le(p + 0x42, 2, 0x0003);
	put_le(p + 0x44, 2, 0x0008); /* PMCSR: No_Soft_Reset */
	p[0x50] = PCI_CAP_ID_MSI;
	p[0x51] = 0x70;
	put_le(p + 0x52, 2, 0x0184); /* 4 vectors, 64-bit, per-vector mask */
	p[0x70] = PCI_CAP_ID_MSIX;
	p[0x71] = 0x80;
	put_le(p + 0x72, 2, PCI_MSIX_CTRL_ENABLE | 7); /* 8 vectors; enabled on the host side */
	put_le(p + 0x74, 4, 0x2000 | 0);               /* table: BAR0 + 0x2000 */
	put_le(p + 0x78, 4, 0x3000 | 0);               /* PBA: BAR0 + 0x3000 */
	p[0x80] = PCI_CAP_ID_EXP;
	p[0x81] = 0;
	put_le(p + 0x82, 2, 0x0002);
	put_le(p + 0x84, 4, 0x10008000); /* DevCap */
	put_le(p + 0x88, 2, 0x8000);     /* DevCtl: Initiate FLR reads 0 on hardware; set to see it kept */
}

static void hook_read(struct pci_dev *pdev, uint32_t off, uint8_t *data, uint32_t len)
{
	(void)pdev;
	vfio_pci_cfg_guest_read(&the_ctx->cfg, &the_ctx->io, off, data, len);
}

static void hook_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	vfio_pci_cfg_guest_write(&the_ctx->cfg, &the_ctx->io, pdev, off, len);
}

static void hook_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	(void)pdev;
	(void)bar;
	if (!a->is_write)
		memset(a->data, 0, a->len);
}

static const struct pci_dev_ops ops = {
	.bar_io = hook_bar_io,
	.config_read = hook_read,
	.config_write = hook_write,
};

static void no_irq(void *p, uint32_t gsi, int level)
{
	(void)p;
	(void)gsi;
	(void)level;
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct pci_host_config hc;
	char err[200] = "";

	bus_init(&c->pio, BUS_PIO);
	bus_init(&c->mmio, BUS_MMIO);
	fake_x86_pci_host(&hc, &c->mmio, &c->pio, (struct irq_line){ .set = no_irq, .ctx = c });
	c->host = pci_host_create("pci", &hc);
	assert_non_null(c->host);
	make_phys(c->fake.dev);
	c->io = (struct vfio_pci_cfg_io){ .read = fake_read, .write = fake_write, .ctx = &c->fake };
	snprintf(c->dev.name, sizeof(c->dev.name), "vfio0");
	assert_int_equal(vfio_pci_cfg_parse(&c->cfg, c->fake.dev, sizes, err, sizeof(err)), 0);
	assert_int_equal(vfio_pci_cfg_setup(&c->cfg, &c->pci, &c->dev, &ops), 0);
	c->slot = pci_add_device(c->host, &c->pci);
	assert_true(c->slot > 0);
	the_ctx = c;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	pci_remove_device(&c->pci);
	c->host->ops->destroy(c->host);
	bus_destroy(&c->pio);
	bus_destroy(&c->mmio);
	free(c);
	the_ctx = NULL;
	return 0;
}

static uint32_t cfg_rd(struct ctx *c, uint16_t reg, uint32_t len)
{
	uint8_t b[4] = { 0 };

	pci_host_config_access(pci_host_of(c->host), (struct pci_cfg_addr){ 0, (uint8_t)c->slot, 0, reg }, b,
			       len, false);
	return (uint32_t)get_le(b + 0, len);
}

static void cfg_wr(struct ctx *c, uint16_t reg, uint32_t len, uint32_t v)
{
	uint8_t b[4];

	put_le(b + 0, len, v);
	pci_host_config_access(pci_host_of(c->host), (struct pci_cfg_addr){ 0, (uint8_t)c->slot, 0, reg }, b,
			       len, true);
}

static void test_parse(void **state)
{
	struct ctx *c = *state;
	struct vfio_pci_cfg *v = &c->cfg;

	assert_int_equal(v->bar[0].type, PCI_BAR_MEM64);
	assert_int_equal(v->bar[0].size, 0x4000);
	assert_false(v->bar[0].prefetch);
	assert_int_equal(v->bar[1].type, PCI_BAR_MEM64_HI);
	assert_int_equal(v->bar[2].type, PCI_BAR_UNUSED);
	assert_int_equal(v->bar[4].type, PCI_BAR_IO);
	assert_int_equal(v->bar[5].type, PCI_BAR_MEM32);
	assert_true(v->bar[5].prefetch);
	assert_int_equal(v->msix.cap, 0x70);
	assert_int_equal(v->msix.nvec, 8);
	assert_int_equal(v->msix.table_bar, 0);
	assert_int_equal(v->msix.table_off, 0x2000);
	assert_int_equal(v->msix.pba_bar, 0);
	assert_int_equal(v->msix.pba_off, 0x3000);
	assert_int_equal(v->msi.cap, 0x50);
	assert_int_equal(v->msi.nvec, 4);
	assert_true(v->msi.is64);
	assert_true(v->msi.maskable);
	assert_int_equal(v->msi.data_off, 12);
	assert_int_equal(v->msi.mask_off, 16);
	assert_int_equal(v->msi.len, 24);
	assert_int_equal(v->ncaps, 4);
	assert_int_equal(v->caps[0], 0x40);
	assert_int_equal(v->caps[1], 0x50);
	assert_int_equal(v->caps[2], 0x70);
	assert_int_equal(v->caps[3], 0x80);
}

/* The guest sizes the BARs as on hardware and finds the header the device's. */
static void test_header_and_bar_sizing(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(cfg_rd(c, PCI_VENDOR_ID, 4), 0x00101b36);
	assert_int_equal(cfg_rd(c, PCI_REVISION_ID, 4), 0x01080202);
	assert_int_equal(cfg_rd(c, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
	assert_int_equal(cfg_rd(c, PCI_INTERRUPT_PIN, 1), 1);
	cfg_wr(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	cfg_wr(c, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0, 4), 0xffffc004);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0 + 4, 4), 0xffffffff);
	cfg_wr(c, PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0 + 8, 4), 0); /* not implemented */
	cfg_wr(c, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0 + 16, 4) & 0xffff, 0xffe1);
	cfg_wr(c, PCI_BASE_ADDRESS_0 + 20, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0 + 20, 4), 0xfffff008);
	assert_int_equal(cfg_rd(c, PCI_ROM_ADDRESS, 4), 0);
	/* None of it reached the device: the BARs there keep the host's addresses. */
	assert_int_equal((uint32_t)get_le(c->fake.dev + PCI_BASE_ADDRESS_0, 4), 0xfebf0004);
	assert_int_equal(c->fake.writes, 0);
}

/* The list as the device has it; MSI and MSI-X are emulated; the rest is read from the device
 * live. */
static void test_capability_list(void **state)
{
	struct ctx *c = *state;

	assert_true(cfg_rd(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_rd(c, PCI_CAPABILITY_LIST, 1), 0x40);
	assert_int_equal(cfg_rd(c, 0x40, 2), 0x5001);
	assert_int_equal(cfg_rd(c, 0x50, 2), 0x7005);
	assert_int_equal(cfg_rd(c, 0x70, 2), 0x8011);
	assert_int_equal(cfg_rd(c, 0x80, 2), 0x0010);
	/* MSI: the device's vector count and flags, Enable and the message clear. */
	assert_int_equal(cfg_rd(c, 0x52, 2), 0x0184);
	assert_int_equal(cfg_rd(c, 0x54, 4), 0);
	/* MSI-X: the table size and locations are the device's; Enable starts clear here even
	 * though the host side has it set. */
	assert_int_equal(cfg_rd(c, 0x72, 2), 7);
	assert_int_equal(cfg_rd(c, 0x74, 4), 0x2000);
	assert_int_equal(cfg_rd(c, 0x78, 4), 0x3000);
	/* Passed through, and live: a change on the device shows. */
	assert_int_equal(cfg_rd(c, 0x84, 4), 0x10008000);
	put_le(c->fake.dev + 0x84, 4, 0x12345678);
	assert_int_equal(cfg_rd(c, 0x84, 4), 0x12345678);
	assert_int_equal(cfg_rd(c, 0x42, 2), 0x0003);
	/* A dword read across an emulated and a passed-through half. */
	assert_int_equal(cfg_rd(c, 0x80, 4), 0x00020010);
}

/* MSI-X control: only Enable and Function Mask are the guest's; nothing goes to the device. */
static void test_msix_control(void **state)
{
	struct ctx *c = *state;

	cfg_wr(c, 0x72, 2, 0xffff);
	assert_int_equal(cfg_rd(c, 0x72, 2), PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL | 7);
	cfg_wr(c, 0x74, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, 0x74, 4), 0x2000);
	assert_int_equal(c->fake.writes, 0);
}

/* MSI: Enable, Multiple Message Enable, the message and the mask bits are the guest's; the
 * vector count and flags, the reserved address bits and the pending bits are not; nothing
 * reaches the device. The state says what vfio_pci routes. */
static void test_msi(void **state)
{
	struct ctx *c = *state;
	struct vfio_pci_msi_state st;

	cfg_wr(c, 0x52, 2, 0xffff);
	assert_int_equal(cfg_rd(c, 0x52, 2), 0x0184 | PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	cfg_wr(c, 0x54, 4, 0xfee01007);
	assert_int_equal(cfg_rd(c, 0x54, 4), 0xfee01004);
	cfg_wr(c, 0x58, 4, 0x1);
	cfg_wr(c, 0x5c, 4, 0xabcd4322); /* data is 16 bits; the next two are reserved */
	assert_int_equal(cfg_rd(c, 0x5c, 4), 0x4322);
	cfg_wr(c, 0x60, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, 0x60, 4), 0xf); /* four vectors, four mask bits */
	cfg_wr(c, 0x64, 4, 0xffffffff);
	assert_int_equal(cfg_rd(c, 0x64, 4), 0); /* pending: read-only */
	assert_int_equal(c->fake.writes, 0);

	/* Multiple Message Enable 7 (reserved, more than the function has): its four. */
	vfio_pci_cfg_msi_state(&c->cfg, &c->pci, &st);
	assert_true(st.enabled);
	assert_int_equal(st.nvec, 4);
	assert_int_equal(st.addr, 0x1fee01004ULL);
	assert_int_equal(st.data, 0x4322);
	assert_int_equal(st.mask, 0xf);
	assert_int_equal(vfio_pci_msi_data(&st, 0), 0x4320);
	assert_int_equal(vfio_pci_msi_data(&st, 3), 0x4323);
	/* Two enabled: bit 0 of the data selects. */
	cfg_wr(c, 0x52, 2, PCI_MSI_FLAGS_ENABLE | 1 << 4);
	cfg_wr(c, 0x60, 4, 0x2);
	vfio_pci_cfg_msi_state(&c->cfg, &c->pci, &st);
	assert_int_equal(st.nvec, 2);
	assert_int_equal(st.mask, 0x2);
	assert_int_equal(vfio_pci_msi_data(&st, 1), 0x4323);
	cfg_wr(c, 0x52, 2, 0);
	vfio_pci_cfg_msi_state(&c->cfg, &c->pci, &st);
	assert_false(st.enabled);
	assert_int_equal(st.nvec, 1);

	/* Which writes are MSI's: from Message Control to the pending bits, not the header. */
	assert_true(vfio_pci_cfg_msi_touched(&c->cfg, 0x50, 4));
	assert_true(vfio_pci_cfg_msi_touched(&c->cfg, 0x64, 4));
	assert_false(vfio_pci_cfg_msi_touched(&c->cfg, 0x50, 2));
	assert_false(vfio_pci_cfg_msi_touched(&c->cfg, 0x68, 4));
	/* MSI-X's: only Message Control (0x72). */
	assert_true(vfio_pci_cfg_msix_touched(&c->cfg, 0x70, 4));
	assert_true(vfio_pci_cfg_msix_touched(&c->cfg, 0x73, 1));
	assert_false(vfio_pci_cfg_msix_touched(&c->cfg, 0x70, 2));
	assert_false(vfio_pci_cfg_msix_touched(&c->cfg, 0x74, 4));
}

struct msi_rec {
	bool live[4];
	uint32_t data[4];
};

static int msi_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct msi_rec *r = ctx;

	assert_true(vec < 4);
	assert_int_equal(addr, 0xfee01000);
	r->live[vec] = true;
	r->data[vec] = data;
	return 0;
}

static void msi_unroute(void *ctx, unsigned vec)
{
	struct msi_rec *r = ctx;

	r->live[vec] = false;
}

/* vfio_pci_msi_apply: the enabled, unmasked vectors routed, each with its number in the data. */
static void test_msi_apply(void **state)
{
	static const struct vfio_msix_ops msi_ops = { .route = msi_route, .unroute = msi_unroute };
	struct vfio_pci_msi_state st = { .enabled = true, .nvec = 2, .addr = 0xfee01000, .data = 0x4321 };
	struct msi_rec r = { 0 };
	struct vfio_msix m;

	(void)state;
	assert_int_equal(vfio_msix_init(&m, 4, &msi_ops, &r), 0);
	vfio_pci_msi_apply(&st, &m, true);
	assert_true(r.live[0] && r.live[1]);
	assert_false(r.live[2] || r.live[3]);
	assert_int_equal(r.data[0], 0x4320);
	assert_int_equal(r.data[1], 0x4321);
	st.mask = 0x1; /* vector 0 masked */
	vfio_pci_msi_apply(&st, &m, true);
	assert_false(r.live[0]);
	assert_true(r.live[1]);
	st.nvec = 1; /* one enabled: vector 1 goes */
	st.mask = 0;
	vfio_pci_msi_apply(&st, &m, true);
	assert_true(r.live[0]);
	assert_false(r.live[1]);
	vfio_pci_msi_apply(&st, &m, false); /* VFIO refused, or MSI off */
	assert_false(r.live[0]);
	vfio_msix_destroy(&m);
}

/* MSI's layouts: 32-bit without masking is 10 bytes, a vector count past 32 is refused. */
static void test_msi_layouts(void **state)
{
	struct vfio_pci_cfg *v = malloc(sizeof(*v));
	uint8_t p[PCI_CONFIG_SIZE];
	char err[200] = "";

	(void)state;
	make_phys(p);
	put_le(p + 0x52, 2, 0x0000);
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	assert_int_equal(v->msi.nvec, 1);
	assert_false(v->msi.is64);
	assert_false(v->msi.maskable);
	assert_int_equal(v->msi.data_off, 8);
	assert_int_equal(v->msi.len, 10);
	assert_true(v->passthrough[0x5a]);
	put_le(p + 0x52, 2, 0x0100);
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	assert_int_equal(v->msi.mask_off, 12);
	assert_int_equal(v->msi.len, 20);
	put_le(p + 0x52, 2, 0x000c); /* 2^6 vectors */
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), -1);
	assert_string_equal(err, "MSI capability at 0x50 claims 2^6 vectors (at most 32)");
	put_le(p + 0x52, 2, 0x0180);
	p[0xf0] = PCI_CAP_ID_MSI; /* a second one, at the end of the list */
	p[0x81] = 0xf0;
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), -1);
	assert_string_equal(err, "two MSI capabilities (0x50, 0xf0)");
	p[0x81] = 0;
	p[0x51] = 0xe8; /* a 64-bit maskable one at 0xe8 runs to 0x100 */
	p[0xe8] = PCI_CAP_ID_MSI;
	put_le(p + 0xea, 2, 0x0180);
	p[0x41] = 0xe8;
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	p[0xe4] = PCI_CAP_ID_MSI;
	put_le(p + 0xe6, 2, 0x0180);
	p[0x41] = 0xe4;
	p[0xe5] = 0;
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	p[0xec] = PCI_CAP_ID_MSI;
	put_le(p + 0xee, 2, 0x0180);
	p[0x41] = 0xec;
	p[0xed] = 0;
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), -1);
	assert_string_equal(err, "MSI capability at 0xec runs past config space");
	free(v);
}

/* Passed-through writes: only the mask's bits reach the device, the rest keeps its value. */
static void test_write_mask(void **state)
{
	struct ctx *c = *state;

	/* PCIe Device Control: all but Initiate FLR (bit 15), which keeps the device's value. */
	cfg_wr(c, 0x88, 2, 0x7fff);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x88, 2), 0xffff);
	cfg_wr(c, 0x88, 2, 0x0000);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x88, 2), 0x8000);
	cfg_wr(c, 0x88, 2, 0x8000);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x88, 2), 0x8000);
	/* PMCSR: PowerState and PME_En only. */
	cfg_wr(c, 0x44, 2, 0xffff);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x44, 2), 0x0008 | 0x0103);
	/* Read-only registers: Device Capabilities, PM Capabilities, the capability headers. */
	int w = c->fake.writes;
	cfg_wr(c, 0x84, 4, 0xffffffff);
	cfg_wr(c, 0x42, 2, 0xffff);
	cfg_wr(c, 0x80, 2, 0xffff);
	assert_int_equal(c->fake.writes, w);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x84, 4), 0x10008000);
	assert_int_equal(cfg_rd(c, 0x80, 2), 0x0010);
	/* The emulated MSI capability is not written into the device either. */
	cfg_wr(c, 0x52, 2, 0x0001);
	assert_int_equal((uint32_t)get_le(c->fake.dev + 0x52, 2), 0x0184);
}

/* COMMAND: decode, bus master and INTx disable are forwarded; other bits keep the device's. */
static void test_command_forwarded(void **state)
{
	struct ctx *c = *state;

	cfg_wr(c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	assert_int_equal((uint32_t)get_le(c->fake.dev + PCI_COMMAND, 2),
			 PCI_COMMAND_PARITY | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				 PCI_COMMAND_INTX_DISABLE);
	cfg_wr(c, PCI_COMMAND, 1, 0);
	assert_int_equal((uint32_t)get_le(c->fake.dev + PCI_COMMAND, 2),
			 PCI_COMMAND_PARITY | PCI_COMMAND_INTX_DISABLE);
}

/* A device whose config region fails: passed-through bytes read as all ones, writes report. */
static void test_device_errors(void **state)
{
	struct ctx *c = *state;

	c->fake.fail = true;
	assert_int_equal(cfg_rd(c, 0x84, 4), 0xffffffff);
	assert_int_equal(cfg_rd(c, PCI_VENDOR_ID, 2), 0x1b36); /* emulated: no device read */
	assert_int_equal(vfio_pci_cfg_guest_write(&c->cfg, &c->io, &c->pci, 0x88, 2), -1);
	assert_int_equal(vfio_pci_cfg_guest_write(&c->cfg, &c->io, &c->pci, 0x84, 4),
			 0); /* nothing writable */
	/* Out-of-range arguments are ignored. */
	uint8_t b[4] = { 1, 2, 3, 4 };
	vfio_pci_cfg_guest_read(&c->cfg, &c->io, 0xfe, b, 4);
	assert_int_equal(b[0], 1);
	assert_int_equal(vfio_pci_cfg_guest_write(&c->cfg, &c->io, &c->pci, 0x100, 4), 0);
}

static void expect_refused(uint8_t *p, const uint64_t *sz, const char *words)
{
	struct vfio_pci_cfg *v = malloc(sizeof(*v));
	char err[200] = "";

	assert_int_equal(vfio_pci_cfg_parse(v, p, sz, err, sizeof(err)), -1);
	if (!strstr(err, words))
		fail_msg("error '%s' does not say '%s'", err, words);
	free(v);
}

static void test_refused(void **state)
{
	uint8_t p[PCI_CONFIG_SIZE];
	uint64_t sz[PCI_NUM_BARS];

	(void)state;
	memcpy(sz, sizes, sizeof(sz));
	make_phys(p);
	p[PCI_HEADER_TYPE] = 1;
	expect_refused(p, sz, "bridges");
	make_phys(p);
	put_le(p + PCI_VENDOR_ID, 2, 0xffff);
	expect_refused(p, sz, "does not answer");
	make_phys(p);
	p[0x81] = 0x40; /* PCIe points back to PM */
	expect_refused(p, sz, "loops");
	make_phys(p);
	p[PCI_CAPABILITY_LIST] = 0x20;
	expect_refused(p, sz, "outside 0x40");
	make_phys(p);
	p[0x41] = 0xfc;
	p[0xfc] = PCI_CAP_ID_MSIX;
	expect_refused(p, sz, "runs past");
	make_phys(p);
	put_le(p + 0x72, 2, 0x7ff); /* 2048 vectors: 32 KiB of table in a 16 KiB BAR */
	expect_refused(p, sz, "leaves BAR 0");
	make_phys(p);
	put_le(p + 0x74, 4, 0x2000 | 2); /* table in the unimplemented BAR 2 */
	expect_refused(p, sz, "no memory BAR");
	make_phys(p);
	put_le(p + PCI_BASE_ADDRESS_0 + 20, 4, 0x4); /* BAR 5 claims 64 bits */
	expect_refused(p, sz, "no BAR 6");
	make_phys(p);
	sz[0] = 0x3000;
	expect_refused(p, sz, "power of two");
	sz[0] = 0x4000;
	sz[4] = 0x400; /* an I/O BAR too big for the PCI core */
	expect_refused(p, sz, "4..256");
	sz[4] = 0x20;
	sz[1] = 0x1000; /* a region for the upper half of a 64-bit BAR */
	expect_refused(p, sz, "upper half");
	sz[1] = 0;
	make_phys(p);
	p[PCI_INTERRUPT_PIN] = 5;
	expect_refused(p, sz, "interrupt pin");
}

/* A function with MSI only, then without capabilities: no list, INTx only. */
static void test_no_msix(void **state)
{
	struct vfio_pci_cfg *v = malloc(sizeof(*v));
	uint8_t p[PCI_CONFIG_SIZE];
	char err[200] = "";

	(void)state;
	make_phys(p);
	p[0x41] = 0x50;
	p[0x51] = 0; /* PM -> MSI -> end */
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	assert_int_equal(v->msix.cap, 0);
	assert_int_equal(v->msi.cap, 0x50);
	assert_int_equal(v->ncaps, 2);
	assert_false(v->passthrough[0x50]);
	assert_true(v->passthrough[0x70]); /* no longer a capability: the device's bytes */
	put_le(p + PCI_STATUS, 2, 0);
	assert_int_equal(vfio_pci_cfg_parse(v, p, sizes, err, sizeof(err)), 0);
	assert_int_equal(v->ncaps, 0);
	assert_int_equal(v->msi.cap, 0);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_and_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msi, setup, teardown),
		cmocka_unit_test(test_msi_layouts),
		cmocka_unit_test(test_msi_apply),
		cmocka_unit_test_setup_teardown(test_write_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_errors, setup, teardown),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_no_msix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
