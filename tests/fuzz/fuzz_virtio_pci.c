/* fuzz_virtio_pci - the virtio-pci transport (virtio/virtio_pci.c): BAR 0 (common config, notify,
 * ISR, device config, MSI-X table and PBA) and PCI config space (the capabilities, the PCI_CFG
 * window, the BAR registers, MSI-X enable), as a hostile guest driver reaches them through the
 * buses, with a stand-in virtio device (two queues, eight bytes of config) behind it. There is
 * no KVM: ioeventfds and MSI routes fail and the transport takes its MMIO-notify and INTx paths,
 * as in tests/unit/test_virtio_pci.c, whose set-up this follows.
 *
 * Input: a sequence of operations, each starting with one byte:
 *   bits 0-1  access size 1, 2, 4 or 8
 *   bit  2    write
 *   bits 3-5  0-3: BAR 0 at a region (next byte: 0 common, 1 ISR, 2 device config, 3 notify,
 *             4 MSI-X table, 5 PBA, 6-7 anywhere; then an offset byte, le16 for "anywhere");
 *             4, 5: config space of the device (offset byte, via 0xcf8/0xcfc); 6: guest RAM (le16
 *             offset, 8 bytes); 7: next byte: 0 device reset, 1 save and load back, 2 load the
 *             rest of the input as the device's state (then stop)
 *   then 8 data bytes for a write. */
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "core/ser.h"
#include "core/util.h"
#include "core/vm.h"
#include "devices/pci.h"
#include "devices/pci_cf8.h"
#include "fuzz_util.h"
#include "virtio/virtio_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE (128u << 10)
#define SLOT     1

static uint8_t *ram;

struct dummy {
	struct virtio_dev vd;
};

static int d_activate(struct virtio_dev *vd)
{
	return 0;
}

static void d_reset(struct virtio_dev *vd)
{
}

static void d_notify(struct virtio_dev *vd, unsigned q)
{
	FUZZ_CHECK(q < vd->num_queues);
	virtio_notify_used(vd, q);
}

static void d_config_write(struct virtio_dev *vd, uint32_t off, uint32_t len)
{
	FUZZ_CHECK(off + len <= vd->config_size);
	virtio_notify_config(vd);
}

static void d_destroy(struct virtio_dev *vd)
{
	virtio_dev_fini(vd);
	free(vd);
}

static const struct virtio_dev_ops dummy_ops = {
	.type = "virtio-dummy",
	.device_id = VIRTIO_ID_RNG,
	.activate = d_activate,
	.reset = d_reset,
	.queue_notify = d_notify,
	.config_write = d_config_write,
	.destroy = d_destroy,
};

static void irq_set(void *ctx, uint32_t gsi, int level)
{
}

struct fx {
	struct vm vm;
	struct device *host, *cf8, *dev;
	uint64_t bar;
};

static void cfg_access(struct fx *f, uint32_t off, uint8_t *d, uint32_t len, bool write)
{
	uint8_t a[4];
	uint32_t addr = 0x80000000u | (uint32_t)SLOT << 11 | (off & 0xfc);

	memcpy(a, &addr, 4);
	bus_dispatch(&f->vm.pio, X86_PCI_CONFIG_ADDR, a, 4, true);
	bus_dispatch(&f->vm.pio, X86_PCI_CONFIG_DATA + (off & 3), d, len, write);
}

static uint32_t cfg_read32(struct fx *f, uint32_t off)
{
	uint8_t d[4] = { 0 };

	cfg_access(f, off, d, 4, false);
	return get_le32(d);
}

/* Where BAR 0 decodes now (the guest may move it). */
static void find_bar(struct fx *f)
{
	f->bar = (cfg_read32(f, 0x10) & ~0xfULL) | (uint64_t)cfg_read32(f, 0x14) << 32;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t region[6] = { VPCI_COMMON_OFF, VPCI_ISR_OFF,  VPCI_DEVCFG_OFF,
					    VPCI_NOTIFY_OFF, VPCI_MSIX_OFF, VPCI_PBA_OFF };
	struct fx *f = calloc(1, sizeof(*f));
	struct mem_region r = { .gpa = 0, .size = RAM_SIZE };
	struct pci_host_config cfg = {
		.mmio = &f->vm.mmio,
		.mem32 = { X86_PCI_MMIO_START, X86_PCI_MMIO_END - X86_PCI_MMIO_START },
		.mem64 = { X86_PCI_MMIO64_START, X86_PCI_MMIO64_SIZE },
		.io_bus = &f->vm.pio,
		.io = { X86_PCI_IO_START, X86_PCI_IO_SIZE },
		.io_bus_base = X86_PCI_IO_START,
		.intx = { .set = irq_set, .ctx = f },
		.intx_gsi_base = X86_PCI_INTX_GSI_BASE,
		.intx_lines = X86_PCI_INTX_GSI_COUNT,
	};
	struct dummy *d = calloc(1, sizeof(*d));
	struct fuzz_in in;

	if (!ram)
		ram = calloc(1, RAM_SIZE);
	memset(ram, 0, RAM_SIZE);
	guest_mem_init_static(&f->vm.mem, ram, &r, 1);
	bus_init(&f->vm.pio, BUS_PIO);
	bus_init(&f->vm.mmio, BUS_MMIO);
	pthread_mutex_init(&f->vm.route_lock, NULL);
	f->vm.vm_fd = -1;
	f->vm.pci_host = f->host = pci_host_create("pci", &cfg);
	FUZZ_CHECK(f->host != NULL);
	f->cf8 = pci_cf8_create("pci-cf8", f->host, &f->vm.pio, X86_PCI_CONFIG_ADDR);
	FUZZ_CHECK(f->cf8 != NULL);
	FUZZ_CHECK(virtio_dev_init(&d->vd, &dummy_ops, "virtio-dummy0", &f->vm.mem, 2, 256) == 0);
	d->vd.config_size = 8;
	memcpy(d->vd.config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	d->vd.host_features = 1ULL << 3;
	f->dev = virtio_pci_create(&f->vm, &d->vd);
	FUZZ_CHECK(f->dev != NULL);
	/* As firmware leaves it: BAR 0 assigned, memory decode and bus mastering on. */
	cfg_access(f, PCI_COMMAND, (uint8_t[4]){ PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER }, 2, true);
	find_bar(f);

	fuzz_in_init(&in, data, size);
	while (!fuzz_done(&in)) {
		uint8_t op = fuzz_u8(&in), v[8];
		uint32_t len = 1u << (op & 3);
		bool write = op & 4;
		unsigned kind = (op >> 3) & 7;

		if (kind == 7) {
			uint8_t what = fuzz_u8(&in) % 3;

			if (what == 0) {
				f->dev->ops->reset(f->dev);
			} else if (what == 1) {
				fuzz_save_load(f->dev);
			} else {
				struct ser_reader sr;
				size_t got;
				const uint8_t *p = fuzz_take(&in, fuzz_left(&in), &got);

				ser_reader_init(&sr, p, got);
				f->dev->ops->load(f->dev, &sr);
			}
			continue;
		}
		if (kind == 6) {
			uint32_t off = (fuzz_u16(&in) * 8u) % RAM_SIZE;

			fuzz_bytes(&in, ram + off, 8);
			continue;
		}
		if (write)
			fuzz_bytes(&in, v, 8);
		else
			memset(v, 0xa5, 8);
		if (kind >= 4) {
			cfg_access(f, fuzz_u8(&in), v, len > 4 ? 4 : len, write);
			if (write)
				find_bar(f);
			continue;
		}
		uint8_t reg = fuzz_u8(&in) & 7;
		uint64_t off = reg < 6 ? region[reg] + fuzz_u8(&in) : fuzz_u16(&in) % VPCI_BAR_SIZE;

		bus_dispatch(&f->vm.mmio, f->bar + off, v, len, write);
	}

	f->dev->ops->destroy(f->dev);
	f->cf8->ops->destroy(f->cf8);
	f->host->ops->destroy(f->host);
	bus_destroy(&f->vm.pio);
	bus_destroy(&f->vm.mmio);
	pthread_mutex_destroy(&f->vm.route_lock);
	free(f->vm.routes);
	free(f);
	return 0;
}
