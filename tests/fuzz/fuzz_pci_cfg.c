/* fuzz_pci_cfg - PCI configuration space (devices/pci.c) through both front-ends, configuration
 * mechanism #1 (0xcf8/0xcfc, pci_cf8.c) and ECAM (pci_ecam.c), with the BAR moves, INTx and
 * capability lists they drive. The host bridge has the x86 machine's windows; two functions sit
 * on it: one with a 32-bit, a 64-bit prefetchable and an I/O BAR, an INTx pin and two
 * capabilities (MSI-X enable writable), one with a single 32-bit BAR.
 *
 * Input: a sequence of operations, each starting with one byte:
 *   bits 0-1  access size 1, 2, 4 or 8 (8 is not decoded anywhere: it must be refused)
 *   bit  2    write
 *   bits 3-5  0: CONFIG_ADDRESS (0xcf8 + offset byte & 7), 1: CONFIG_DATA (0xcfc + offset & 3),
 *             2: ECAM (a 21-bit offset: two buses), 3: the BAR of a function (a byte picks the
 *             function and BAR, a 16-bit offset), 4: a function's INTx level, 5: the host's reset
 *             (every function's config as assigned), 6, 7: as 1
 * then the operands and, for a write, 8 data bytes. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/layout.h"
#include "arch/x86/layout.h"
#include "core/bus.h"
#include "devices/pci.h"
#include "devices/pci_cf8.h"
#include "devices/pci_ecam.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ECAM_BUSES 2

struct fdev {
	struct device dev;
	struct pci_dev pci;
	uint64_t regs[64];
};

static int levels[64];

static void irq_set(void *ctx, uint32_t gsi, int level)
{
	if (gsi < 64)
		levels[gsi] = level;
}

static void f_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	struct fdev *f = (struct fdev *)((char *)pdev - offsetof(struct fdev, pci));
	uint8_t *r = (uint8_t *)f->regs;

	FUZZ_CHECK(a->offset < pdev->bars[bar].size && a->len <= 8 &&
		   a->offset + a->len <= pdev->bars[bar].size);
	if (a->offset + a->len > sizeof(f->regs))
		memset(a->data, 0, a->is_write ? 0 : a->len);
	else if (a->is_write)
		memcpy(r + a->offset, a->data, a->len);
	else
		memcpy(a->data, r + a->offset, a->len);
}

static void f_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	FUZZ_CHECK(off + len <= PCI_CONFIG_SIZE);
}

static const struct pci_dev_ops f_ops = {
	.bar_io = f_bar_io,
	.config_write = f_config_write,
};

static void access(struct bus *b, uint64_t addr, uint32_t len, bool write, struct fuzz_in *in)
{
	uint8_t d[8];

	if (write)
		fuzz_bytes(in, d, 8);
	else
		memset(d, 0xa5, 8);
	bus_dispatch(b, addr, d, len, write);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pci_host_config cfg = {
		.mmio = NULL,
		.mem32 = { X86_PCI_MMIO_START, X86_PCI_MMIO_END - X86_PCI_MMIO_START },
		.mem64 = { X86_PCI_MMIO64_START, X86_PCI_MMIO64_SIZE },
		.io = { X86_PCI_IO_START, X86_PCI_IO_SIZE },
		.io_bus_base = X86_PCI_IO_START,
		.intx = { .set = irq_set },
		.intx_gsi_base = X86_PCI_INTX_GSI_BASE,
		.intx_lines = X86_PCI_INTX_GSI_COUNT,
	};
	struct bus pio, mmio;
	struct device *host, *cf8, *ecam;
	struct fdev *f = calloc(2, sizeof(*f));
	struct fuzz_in in;
	int cap;

	bus_init(&pio, BUS_PIO);
	bus_init(&mmio, BUS_MMIO);
	cfg.mmio = &mmio;
	cfg.io_bus = &pio;
	host = pci_host_create("pci", &cfg);
	FUZZ_CHECK(host != NULL);
	cf8 = pci_cf8_create("pci-cf8", host, &pio, X86_PCI_CONFIG_ADDR);
	ecam = pci_ecam_create("pci-ecam", host, &mmio, ARM64_PCI_ECAM_BASE, ECAM_BUSES);
	FUZZ_CHECK(cf8 && ecam);
	for (int i = 0; i < 2; i++) {
		snprintf(f[i].dev.name, sizeof(f[i].dev.name), "fake%d", i);
		pci_dev_init(&f[i].pci, &f[i].dev, &f_ops, 0x1af4, (uint16_t)(0x1041 + i), 0x020000, 1);
	}
	FUZZ_CHECK(pci_set_bar(&f[0].pci, 0, PCI_BAR_MEM32, 0x1000, false) == 0);
	FUZZ_CHECK(pci_set_bar(&f[0].pci, 2, PCI_BAR_MEM64, 0x4000, true) == 0);
	FUZZ_CHECK(pci_set_bar(&f[0].pci, 4, PCI_BAR_IO, 0x20, false) == 0);
	pci_set_intx_pin(&f[0].pci, 1);
	pci_add_capability(&f[0].pci, PCI_CAP_ID_VNDR, 14);
	cap = pci_add_capability(&f[0].pci, PCI_CAP_ID_MSIX, 12);
	FUZZ_CHECK(cap > 0);
	pci_config_write(&f[0].pci, (uint32_t)cap + 2, 2, 0x0003);
	pci_config_set_wmask(&f[0].pci, (uint32_t)cap + 2, 2, 0xc000);
	FUZZ_CHECK(pci_set_bar(&f[1].pci, 1, PCI_BAR_MEM32, 0x100, false) == 0);
	pci_set_intx_pin(&f[1].pci, 2);
	for (int i = 0; i < 2; i++)
		FUZZ_CHECK(pci_add_device(host, &f[i].pci) > 0);

	fuzz_in_init(&in, data, size);
	while (!fuzz_done(&in)) {
		uint8_t op = fuzz_u8(&in);
		uint32_t len = 1u << (op & 3);
		bool write = op & 4;

		switch ((op >> 3) & 7) {
		case 0:
			access(&pio, X86_PCI_CONFIG_ADDR + (fuzz_u8(&in) & 7), len, write, &in);
			break;
		case 2:
			access(&mmio,
			       ARM64_PCI_ECAM_BASE + (fuzz_u32(&in) % (ECAM_BUSES * PCI_ECAM_BUS_SIZE)), len,
			       write, &in);
			break;
		case 3: {
			uint8_t sel = fuzz_u8(&in);
			struct pci_dev *p = &f[sel & 1].pci;
			struct pci_bar *bar = &p->bars[(sel >> 1) % PCI_NUM_BARS];
			uint64_t off = fuzz_u16(&in);

			if (!bar->mapped || bar->type == PCI_BAR_MEM64_HI) {
				/* Still an access somewhere in the windows: nothing may decode wrongly. */
				access(&mmio, X86_PCI_MMIO_START + off * 0x10, len, write, &in);
				break;
			}
			if (bar->type == PCI_BAR_IO)
				access(&pio, bar->mapped_addr - bar->shim.to_pci + off % (bar->size + 8), len,
				       write, &in);
			else
				access(&mmio, bar->mapped_addr + off % (bar->size + 8), len, write, &in);
			break;
		}
		case 4:
			pci_set_irq(&f[op & 1].pci, write);
			break;
		case 5:
			if (host->ops->reset)
				host->ops->reset(host);
			break;
		default:
			access(&pio, X86_PCI_CONFIG_DATA + (fuzz_u8(&in) & 3), len, write, &in);
			break;
		}
	}
	for (int i = 0; i < 2; i++)
		pci_remove_device(&f[i].pci);
	ecam->ops->destroy(ecam);
	cf8->ops->destroy(cf8);
	host->ops->destroy(host);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	free(f);
	return 0;
}
