/* fuzz_vfio_cfg - the guest's side of a passed-through PCI function without a kernel: the
 * virtual config space (devices/vfio_pci_cfg.c) of a made-up function, its emulated MSI-X table
 * and PBA and the vectors of its MSI capability (devices/vfio_msix.c), wired as vfio_pci.c wires
 * them, with the device's config region a buffer. Checks: whatever the config bytes and the
 * guest's accesses, a vector is only routed while it may be (below the enabled count for MSI,
 * never two routes without an unroute between), a passed-through write changes only the bits
 * of its write mask, and nothing reads or writes out of bounds (ASan).
 *
 * Input: 256 bytes of the function's config space, six bytes of BAR region sizes (0: none, else
 * 2^(b % 40)), then operations, each starting with one byte:
 *   bits 0-1  access size 1, 2, 4 or 8
 *   bit  2    write
 *   bits 3-4  0: config space (one offset byte), 1: the MSI-X table (a 16-bit offset), 2: the
 *             PBA (a 16-bit offset; reads), 3: as 0
 * then the operands and, for a write, 8 data bytes. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/util.h"
#include "devices/pci.h"
#include "devices/pci_cf8.h"
#include "devices/vfio_msix.h"
#include "devices/vfio_pci_cfg.h"
#include "fakes.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct vset {
	struct vfio_msix tbl;
	unsigned nvec, limit; /* limit: vectors that may be routed now */
	bool live[PCI_MSIX_MAX_VECTORS];
};

struct fx {
	struct device dev;
	struct pci_dev pci;
	struct vfio_pci_cfg cfg;
	struct vfio_pci_cfg_io io;
	uint8_t devcfg[PCI_CONFIG_SIZE]; /* the device's config region */
	struct vset msix, msi;
};

static struct fx *the;

static int v_route(void *ctx, unsigned vec, uint64_t addr, uint32_t d)
{
	struct vset *v = ctx;

	FUZZ_CHECK(vec < v->nvec && vec < v->limit && !v->live[vec]);
	if ((d & 0xff) == 0xee)
		return -1; /* now and then a refused route: the vector stays not live */
	v->live[vec] = true;
	return 0;
}

static void v_unroute(void *ctx, unsigned vec)
{
	struct vset *v = ctx;

	FUZZ_CHECK(vec < v->nvec && v->live[vec]);
	v->live[vec] = false;
}

static const struct vfio_msix_ops v_ops = { .route = v_route, .unroute = v_unroute };

static int dev_read(void *ctx, uint32_t off, uint8_t *buf, uint32_t len)
{
	struct fx *f = ctx;

	FUZZ_CHECK(off < PCI_CONFIG_SIZE && len <= PCI_CONFIG_SIZE - off);
	memcpy(buf, f->devcfg + off, len);
	return 0;
}

static int dev_write(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len)
{
	struct fx *f = ctx;

	FUZZ_CHECK(off < PCI_CONFIG_SIZE && len <= PCI_CONFIG_SIZE - off);
	/* Only COMMAND and the bits of the write mask may change. */
	for (uint32_t i = 0; i < len; i++) {
		uint8_t m = (off + i == PCI_COMMAND || off + i == PCI_COMMAND + 1) ? 0xff
										   : f->cfg.pt_wmask[off + i];

		FUZZ_CHECK(((buf[i] ^ f->devcfg[off + i]) & ~m) == 0);
	}
	memcpy(f->devcfg + off, buf, len);
	return 0;
}

static void h_read(struct pci_dev *pdev, uint32_t off, uint8_t *d, uint32_t len)
{
	vfio_pci_cfg_guest_read(&the->cfg, &the->io, off, d, len);
}

/* As vfio_pci.c's hook: forward, then MSI-X's control and MSI's vectors. */
static void h_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	struct fx *f = the;

	vfio_pci_cfg_guest_write(&f->cfg, &f->io, pdev, off, len);
	if (f->msix.nvec && vfio_pci_cfg_msix_touched(&f->cfg, off, len)) {
		uint32_t cap = (uint32_t)f->cfg.msix.cap;
		uint16_t ctrl = (uint16_t)pci_config_read(pdev, cap + 2, 2);

		vfio_msix_control(&f->msix.tbl, ctrl & PCI_MSIX_CTRL_ENABLE, ctrl & PCI_MSIX_CTRL_MASKALL);
	}
	if (f->msi.nvec && vfio_pci_cfg_msi_touched(&f->cfg, off, len)) {
		struct vfio_pci_msi_state st;

		vfio_pci_cfg_msi_state(&f->cfg, pdev, &st);
		FUZZ_CHECK(st.nvec >= 1 && st.nvec <= f->msi.nvec && !(st.nvec & (st.nvec - 1)));
		f->msi.limit = st.nvec;
		vfio_pci_msi_apply(&st, &f->msi.tbl, st.enabled);
	}
}

static void h_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	if (!a->is_write)
		memset(a->data, 0, a->len);
}

static const struct pci_dev_ops h_ops = { .bar_io = h_bar_io,
					  .config_read = h_read,
					  .config_write = h_write };

static void no_irq(void *ctx, uint32_t gsi, int level)
{
}

static int vset_init(struct vset *v, unsigned n)
{
	v->nvec = n;
	v->limit = n;
	return n ? vfio_msix_init(&v->tbl, n, &v_ops, v) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in;
	struct fx *f;
	struct bus mmio, pio;
	struct pci_host_config hc;
	struct device *host;
	uint64_t sizes[PCI_NUM_BARS];
	char err[256];
	int slot;

	if (size < PCI_CONFIG_SIZE + PCI_NUM_BARS)
		return 0;
	fuzz_in_init(&in, data, size);
	f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	fuzz_bytes(&in, f->devcfg, PCI_CONFIG_SIZE);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint8_t b = fuzz_u8(&in);

		sizes[i] = b ? 1ULL << (b % 40) : 0;
	}
	if (vfio_pci_cfg_parse(&f->cfg, f->devcfg, sizes, err, sizeof(err)) < 0) {
		FUZZ_CHECK(err[0] != 0);
		free(f);
		return 0;
	}
	FUZZ_CHECK(f->cfg.msi.cap == 0 || (f->cfg.msi.nvec >= 1 && f->cfg.msi.nvec <= PCI_MSI_MAX_VECTORS &&
					   f->cfg.msi.cap + f->cfg.msi.len <= PCI_CONFIG_SIZE));
	the = f;
	f->io = (struct vfio_pci_cfg_io){ .read = dev_read, .write = dev_write, .ctx = f };
	bus_init(&mmio, BUS_MMIO);
	bus_init(&pio, BUS_PIO);
	fake_x86_pci_host(&hc, &mmio, &pio, (struct irq_line){ .set = no_irq });
	host = pci_host_create("pci", &hc);
	FUZZ_CHECK(host != NULL);
	if (vfio_pci_cfg_setup(&f->cfg, &f->pci, &f->dev, &h_ops) < 0 ||
	    (slot = pci_add_device(host, &f->pci)) < 0)
		goto out; /* a BAR the host cannot model or place */
	if (vset_init(&f->msix, f->cfg.msix.cap ? f->cfg.msix.nvec : 0) < 0 ||
	    vset_init(&f->msi, f->cfg.msi.cap ? f->cfg.msi.nvec : 0) < 0)
		abort();
	f->msi.limit = 1;
	while (!fuzz_done(&in)) {
		uint8_t op = fuzz_u8(&in), d[8];
		uint32_t len = 1u << (op & 3);
		bool write = op & 4;
		unsigned target = (op >> 3) & 3;
		uint16_t off = target == 1 || target == 2 ? fuzz_u16(&in) : fuzz_u8(&in);

		if (write)
			fuzz_bytes(&in, d, sizeof(d));
		else
			memset(d, 0xa5, sizeof(d));
		switch (target) {
		case 1:
			if (f->msix.nvec)
				vfio_msix_table_access(&f->msix.tbl, off, d, len, write);
			break;
		case 2:
			if (f->msix.nvec)
				vfio_msix_pba_read(&f->msix.tbl, off, d, len);
			break;
		default:
			if (len <= 4)
				pci_host_config_access(pci_host_of(host),
						       (struct pci_cfg_addr){ 0, (uint8_t)slot, 0, off }, d,
						       len, write);
			break;
		}
	}
	vfio_msix_destroy(&f->msix.tbl);
	vfio_msix_destroy(&f->msi.tbl);
	for (unsigned v = 0; v < PCI_MSIX_MAX_VECTORS; v++)
		FUZZ_CHECK(!f->msix.live[v] && !f->msi.live[v]);
	pci_remove_device(&f->pci);
out:
	host->ops->destroy(host);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	free(f);
	return 0;
}
