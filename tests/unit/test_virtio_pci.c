/* The virtio-pci transport driven as a guest driver would, through the PCI
 * configuration ports and BAR 0 on the buses; no KVM (ioeventfd/irqfd calls
 * fail and the transport falls back to its MMIO and INTx paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "core/util.h"
#include "core/vm.h"
#include "devices/pci.h"
#include "devices/pci_cf8.h"
#include "fakes.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (1u << 20)

struct dummy {
	struct virtio_dev vd;
	int activated;
	int resets;
	int notifies;            /* under vd.lock */
	pthread_cond_t notified; /* broadcast (vd.lock held) on each notify */
	int destroyed_flag;
	int *destroyed;
};

static int d_activate(struct virtio_dev *vd)
{
	((struct dummy *)vd)->activated++;
	return 0;
}

static void d_reset(struct virtio_dev *vd)
{
	((struct dummy *)vd)->resets++;
}

/* Called on the worker thread with vd->lock held. */
static void d_notify(struct virtio_dev *vd, unsigned q)
{
	struct dummy *d = (struct dummy *)vd;

	d->notifies++;
	pthread_cond_broadcast(&d->notified);
}

/* Wait (5 s at most) until the worker delivered n notifications in all;
 * returns how many it had then. */
static int wait_notifies(struct dummy *d, int n)
{
	struct timespec until;
	int got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&d->vd.lock);
	while (d->notifies < n && pthread_cond_timedwait(&d->notified, &d->vd.lock, &until) == 0)
		;
	got = d->notifies;
	pthread_mutex_unlock(&d->vd.lock);
	return got;
}

static void d_destroy(struct virtio_dev *vd)
{
	struct dummy *d = (struct dummy *)vd;

	(*d->destroyed)++;
	virtio_dev_fini(vd);
	pthread_cond_destroy(&d->notified);
	free(d);
}

static const struct virtio_dev_ops dummy_ops = {
	.type = "virtio-dummy",
	.device_id = VIRTIO_ID_RNG,
	.activate = d_activate,
	.reset = d_reset,
	.queue_notify = d_notify,
	.destroy = d_destroy,
};

struct fx {
	struct vm vm;
	uint8_t *ram;
	int levels[64];
	int destroyed;
	struct dummy *d;
	struct device *dev;
	struct device *cf8; /* the config front-end on 0xcf8 */
	uint64_t bar;
};

static void fake_irq(void *ctx, uint32_t gsi, int level)
{
	struct fx *f = ctx;

	if (gsi < 64)
		f->levels[gsi] = level;
}

static uint32_t cfg_read(struct fx *f, int slot, uint32_t off, uint32_t len)
{
	uint8_t a[4], d[4] = { 0 };
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (off & 0xfc);

	memcpy(a, &addr, 4);
	bus_dispatch(&f->vm.pio, 0xcf8, a, 4, true);
	bus_dispatch(&f->vm.pio, 0xcfc + (off & 3), d, len, false);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void cfg_write(struct fx *f, int slot, uint32_t off, uint32_t len, uint32_t v)
{
	uint8_t a[4], d[4];
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (off & 0xfc);

	memcpy(a, &addr, 4);
	memcpy(d, &v, 4);
	bus_dispatch(&f->vm.pio, 0xcf8, a, 4, true);
	bus_dispatch(&f->vm.pio, 0xcfc + (off & 3), d, len, true);
}

static uint64_t bar_read(struct fx *f, uint32_t off, uint32_t len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	assert_true(bus_dispatch(&f->vm.mmio, f->bar + off, d, len, false));
	memcpy(&v, d, len);
	return v;
}

static void bar_write(struct fx *f, uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t d[8];

	memcpy(d, &v, 8);
	assert_true(bus_dispatch(&f->vm.mmio, f->bar + off, d, len, true));
}

static struct dummy *make_dummy(struct fx *f)
{
	struct dummy *d = calloc(1, sizeof(*d));

	assert_int_equal(virtio_dev_init(&d->vd, &dummy_ops, "virtio-dummy0", &f->vm.mem, 2, 256), 0);
	pthread_cond_init(&d->notified, NULL);
	d->vd.config_size = 8;
	memcpy(d->vd.config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	d->vd.host_features = 1ULL << 3;
	d->destroyed = &f->destroyed;
	return d;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mem_region r = { .gpa = 0, .size = RAM_SIZE };
	struct pci_host_config cfg;

	f->ram = calloc(1, RAM_SIZE);
	guest_mem_init_static(&f->vm.mem, f->ram, &r, 1);
	bus_init(&f->vm.pio, BUS_PIO);
	bus_init(&f->vm.mmio, BUS_MMIO);
	pthread_mutex_init(&f->vm.route_lock, NULL);
	f->vm.vm_fd = -1;
	/* The x86 machine's PCI host (arch_create_devices). */
	fake_x86_pci_host(&cfg, &f->vm.mmio, &f->vm.pio, (struct irq_line){ .set = fake_irq, .ctx = f });
	f->vm.pci_host = pci_host_create("pci", &cfg);
	assert_non_null(f->vm.pci_host);
	f->cf8 = pci_cf8_create("pci-cf8", f->vm.pci_host, &f->vm.pio, 0xcf8);
	assert_non_null(f->cf8);
	f->d = make_dummy(f);
	f->dev = virtio_pci_create(&f->vm, &f->d->vd);
	assert_non_null(f->dev);
	/* BAR 0 as assigned, decoding on. */
	f->bar = (cfg_read(f, 1, 0x10, 4) & ~0xfULL) | (uint64_t)cfg_read(f, 1, 0x14, 4) << 32;
	cfg_write(f, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->dev)
		f->dev->ops->destroy(f->dev);
	f->cf8->ops->destroy(f->cf8);
	f->vm.pci_host->ops->destroy(f->vm.pci_host);
	bus_destroy(&f->vm.pio);
	bus_destroy(&f->vm.mmio);
	free(f->vm.routes);
	free(f->ram);
	free(f);
	return 0;
}

static void test_ids_and_capabilities(void **state)
{
	struct fx *f = *state;
	int seen[6] = { 0 }, msix = 0;
	uint32_t off;

	assert_int_equal(cfg_read(f, 1, 0, 2), 0x1af4);
	assert_int_equal(cfg_read(f, 1, 2, 2), 0x1040 + VIRTIO_ID_RNG);
	assert_int_equal(cfg_read(f, 1, PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg_read(f, 1, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_true(cfg_read(f, 1, PCI_SUBSYSTEM_ID, 2) >= 0x40);
	assert_true(cfg_read(f, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_read(f, 1, PCI_INTERRUPT_PIN, 1), 1);
	assert_true(f->bar != 0);
	assert_int_equal(f->bar & 0xfff, 0);
	for (off = cfg_read(f, 1, PCI_CAPABILITY_LIST, 1); off; off = cfg_read(f, 1, off + 1, 1)) {
		uint32_t id = cfg_read(f, 1, off, 1);

		assert_true(off >= 0x40 && off < 0x100);
		if (id == PCI_CAP_ID_MSIX) {
			msix++;
			assert_int_equal(cfg_read(f, 1, off + 2, 2) & 0x7ff, 2); /* 3 vectors */
			assert_int_equal(cfg_read(f, 1, off + 4, 4), 0x4000);    /* table, BIR 0 */
			assert_int_equal(cfg_read(f, 1, off + 8, 4), 0x5000);    /* PBA, BIR 0 */
			continue;
		}
		assert_int_equal(id, PCI_CAP_ID_VNDR);
		uint32_t type = cfg_read(f, 1, off + 3, 1);

		assert_true(type >= 1 && type <= 5);
		seen[type]++;
		if (type == 5)
			continue;
		assert_int_equal(cfg_read(f, 1, off + 4, 1), 0); /* BAR 0 */
		switch (type) {
		case 1:
			assert_int_equal(cfg_read(f, 1, off + 8, 4), 0);
			assert_true(cfg_read(f, 1, off + 12, 4) >= 0x38);
			break;
		case 2:
			assert_int_equal(cfg_read(f, 1, off + 2, 1), 20);
			assert_int_equal(cfg_read(f, 1, off + 8, 4), 0x3000);
			assert_int_equal(cfg_read(f, 1, off + 16, 4), 4); /* notify multiplier */
			break;
		case 3:
			assert_int_equal(cfg_read(f, 1, off + 8, 4), 0x1000);
			break;
		case 4:
			assert_int_equal(cfg_read(f, 1, off + 8, 4), 0x2000);
			assert_int_equal(cfg_read(f, 1, off + 12, 4), 8);
			break;
		}
	}
	assert_int_equal(msix, 1);
	for (int t = 1; t <= 5; t++)
		assert_int_equal(seen[t], 1);
}

static void negotiate(struct fx *f, uint64_t features)
{
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_write(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	bar_write(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	bar_write(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	bar_write(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static void setup_queue(struct fx *f, unsigned q, uint64_t base)
{
	bar_write(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	bar_write(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
	bar_write(f, VIRTIO_PCI_COMMON_Q_DESCLO, 8, base);
	bar_write(f, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)(base + 0x1000)); /* 32-bit halves work too */
	bar_write(f, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	bar_write(f, VIRTIO_PCI_COMMON_Q_USEDLO, 8, base + 0x2000);
	bar_write(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void test_feature_negotiation(void **state)
{
	struct fx *f = *state;
	uint64_t version1 = 1ULL << VIRTIO_F_VERSION_1;

	bar_write(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_DF, 4) & (1u << 3), 1u << 3);
	assert_true(bar_read(f, VIRTIO_PCI_COMMON_DF, 4) & (1u << VIRTIO_F_EVENT_IDX));
	bar_write(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_DF, 4) & 1, 1); /* VERSION_1 */
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	/* A feature we did not offer: FEATURES_OK does not stick. */
	negotiate(f, version1 | (1ULL << 5));
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* Legacy (no VERSION_1) is refused too. */
	negotiate(f, 1ULL << 3);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	negotiate(f, version1 | (1ULL << 3));
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK,
			 VIRTIO_STATUS_FEATURES_OK);
	/* Device config reads. */
	assert_int_equal(bar_read(f, VPCI_DEVCFG_OFF, 4), 0x44332211);
	assert_int_equal(bar_read(f, VPCI_DEVCFG_OFF + 4, 1), 0x55);
}

static void test_activate_kick_and_intx(void **state)
{
	struct fx *f = *state;
	uint32_t gsi = pci_intx_gsi(f->vm.pci_host, 1, 1);

	negotiate(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX));
	setup_queue(f, 0, 0x10000);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	/* Fields of an enabled queue are frozen. */
	bar_write(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 128);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	assert_true(bar_read(f, VIRTIO_PCI_COMMON_Q_DESCLO, 8) == 0x10000);
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, 0xf & ~VIRTIO_STATUS_FAILED);
	assert_int_equal(f->d->activated, 1);
	assert_true(f->d->vd.activated);
	assert_true(f->d->vd.vqs[0].enabled);
	assert_true(f->d->vd.vqs[0].event_idx);
	/* Activation kicks every enabled queue (only queue 0) once ... */
	assert_int_equal(wait_notifies(f->d, 1), 1);
	/* ... and an MMIO write to the notify area is one more kick. */
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
	assert_int_equal(wait_notifies(f->d, 2), 2);
	/* INTx: a config change sets ISR bit 1 and raises the line; reading
	 * the ISR acknowledges both. */
	pthread_mutex_lock(&f->d->vd.lock);
	virtio_notify_config(&f->d->vd);
	pthread_mutex_unlock(&f->d->vd.lock);
	assert_int_equal(f->levels[gsi], 1);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1); /* config generation bumped */
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 2);
	assert_int_equal(f->levels[gsi], 0);
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 0);
}

static void test_bad_queue_needs_reset(void **state)
{
	struct fx *f = *state;

	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	setup_queue(f, 0, RAM_SIZE - 0x800); /* rings run past the end of RAM */
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, 0xf & ~VIRTIO_STATUS_FAILED);
	assert_int_equal(f->d->activated, 0);
	assert_true(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* Reset clears it and the queue state. */
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	assert_true(f->d->resets >= 1);
	bar_write(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
	assert_true(bar_read(f, VIRTIO_PCI_COMMON_Q_DESCLO, 8) == 0);
}

static void test_msix_vectors_and_pba(void **state)
{
	struct fx *f = *state;
	uint32_t cap = 0;

	for (uint32_t off = cfg_read(f, 1, PCI_CAPABILITY_LIST, 1); off; off = cfg_read(f, 1, off + 1, 1))
		if (cfg_read(f, 1, off, 1) == PCI_CAP_ID_MSIX)
			cap = off;
	assert_true(cap);
	cfg_write(f, 1, cap + 2, 2, 0x8000);
	assert_int_equal(cfg_read(f, 1, cap + 2, 2) & 0x8000, 0x8000);
	/* Vector numbers beyond the table read back as NO_VECTOR. */
	bar_write(f, VIRTIO_PCI_COMMON_MSIX, 2, 5);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_MSIX, 2), 0xffff);
	bar_write(f, VIRTIO_PCI_COMMON_MSIX, 2, 2);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_MSIX, 2), 2);
	/* The table is read/write; vectors start masked. */
	bar_write(f, VPCI_MSIX_OFF + 0x20, 4, 0xfee00000);
	bar_write(f, VPCI_MSIX_OFF + 0x28, 4, 0x4041);
	assert_int_equal(bar_read(f, VPCI_MSIX_OFF + 0x20, 4), 0xfee00000);
	assert_int_equal(bar_read(f, VPCI_MSIX_OFF + 0x28, 4), 0x4041);
	assert_int_equal(bar_read(f, VPCI_MSIX_OFF + 0x2c, 4), 1);
	/* A masked vector's interrupt becomes pending in the PBA, no INTx. */
	pthread_mutex_lock(&f->d->vd.lock);
	virtio_notify_config(&f->d->vd);
	pthread_mutex_unlock(&f->d->vd.lock);
	assert_int_equal(bar_read(f, VPCI_PBA_OFF, 4) & 4, 4);
	assert_int_equal(f->levels[pci_intx_gsi(f->vm.pci_host, 1, 1)], 0);
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1), 0);
	/* Out-of-table and odd-width accesses read all ones. */
	assert_int_equal(bar_read(f, VPCI_MSIX_OFF + 0x30, 4), 0xffffffff);
	assert_int_equal(bar_read(f, VPCI_MSIX_OFF + 0x21, 1), 0xff);
}

static void test_odd_accesses(void **state)
{
	struct fx *f = *state;

	/* Misaligned / wrong-width common config accesses read ones and are
	 * ignored on write; unmapped parts of the BAR too. */
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_NUMQ + 1, 1), 0xff);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 2), 0xffff);
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 2, 0xffff);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	assert_int_equal(bar_read(f, 0x6000, 4), 0xffffffff);
	assert_int_equal(bar_read(f, VPCI_DEVCFG_OFF + 6, 4), 0xffffffff); /* past the config end */
	/* Notify to a queue that does not exist is outside the notify area. */
	assert_int_equal(bar_read(f, VPCI_NOTIFY_OFF + 8, 2), 0xffff);
	/* queue_select beyond num_queues: size 0, writes ignored. */
	bar_write(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 7);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	bar_write(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

static void test_save_load_roundtrip(void **state)
{
	struct fx *f = *state;
	struct ser_writer w;
	struct ser_reader r;
	struct dummy *d2;
	struct device *dev2;

	negotiate(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 3));
	setup_queue(f, 1, 0x20000);
	bar_write(f, VIRTIO_PCI_COMMON_STATUS, 1, 0xf & ~VIRTIO_STATUS_FAILED);
	assert_int_equal(f->d->activated, 1);
	ser_writer_init(&w);
	f->dev->ops->save(f->dev, &w);
	assert_false(w.err);
	assert_true(w.len > 0);

	/* A second transport on the same bus takes the state. */
	d2 = make_dummy(f);
	dev2 = virtio_pci_create(&f->vm, &d2->vd);
	assert_non_null(dev2);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(dev2->ops->load(dev2, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_true(d2->vd.activated);
	assert_true(d2->vd.features == ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << 3)));
	assert_true(d2->vd.vqs[1].enabled);
	assert_true(d2->vd.vqs[1].desc_gpa == 0x20000);
	assert_int_equal(d2->vd.vqs[1].size, 64);
	/* Truncated state is refused. */
	ser_reader_init(&r, w.buf, w.len / 2);
	assert_int_equal(dev2->ops->load(dev2, &r), -1);
	dev2->ops->destroy(dev2);
	ser_writer_free(&w);
	assert_int_equal(f->destroyed, 1);
}

static uint32_t msix_cap_of(struct fx *f, int slot)
{
	for (uint32_t off = cfg_read(f, slot, PCI_CAPABILITY_LIST, 1); off;
	     off = cfg_read(f, slot, off + 1, 1))
		if (cfg_read(f, slot, off, 1) == PCI_CAP_ID_MSIX)
			return off;
	fail_msg("no MSI-X capability");
	return 0;
}

/* Offsets in vpci_save's record: its fields, then the PCI config space last (the dummy device
 * saves nothing of its own). */
#define SAVED_FEATURES      12
#define SAVED_DRV_FEATURES  20
#define SAVED_CONFIG_VECTOR 36
#define SAVED_STATUS        40
#define SAVED_ACTIVATED     43
#define SAVED_QUEUE0_ENABLE 47

/* A loaded config space goes through the guest's write masks (read-only bits stay), and BAR 0
 * decodes where the loaded BAR says; what no guest could have written is refused. */
static void test_load_through_masks_and_remap(void **state)
{
	struct fx *f = *state;
	struct ser_writer w;
	struct ser_reader r;
	struct dummy *d2;
	uint32_t cap = msix_cap_of(f, 1), bar_lo = cfg_read(f, 1, 0x10, 4);
	uint64_t moved = f->bar + 0x10000;
	uint8_t *pcicfg, *copy;

	/* The guest moves BAR 0 and turns MSI-X on, then the state is saved. */
	cfg_write(f, 1, PCI_COMMAND, 2, 0);
	cfg_write(f, 1, 0x10, 4, (uint32_t)moved);
	cfg_write(f, 1, 0x14, 4, (uint32_t)(moved >> 32));
	cfg_write(f, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_write(f, 1, cap + 2, 2, 0x8000);
	f->bar = moved;
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	ser_writer_init(&w);
	f->dev->ops->save(f->dev, &w);
	assert_false(w.err);
	pcicfg = w.buf + w.len - PCI_CONFIG_SIZE;
	/* Bits no guest can write: the BAR's type, the table size, the vendor, INTx pin. */
	pcicfg[0x10] |= 0x0f;
	pcicfg[0] = 0x34;
	put_le16(pcicfg + cap + 2, 0xc7ff);
	pcicfg[PCI_INTERRUPT_PIN] = 4;

	/* A new VM's device in its place: BAR 0 where kvmbox assigned it, decoding off. */
	f->dev->ops->destroy(f->dev);
	f->dev = NULL;
	d2 = make_dummy(f);
	f->dev = virtio_pci_create(&f->vm, &d2->vd);
	assert_non_null(f->dev);
	f->d = d2;
	assert_int_equal(cfg_read(f, 1, 0, 2), 0x1af4);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(f->dev->ops->load(f->dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(cfg_read(f, 1, 0, 2), 0x1af4);
	assert_int_equal(cfg_read(f, 1, 0x10, 4), (uint32_t)moved | (bar_lo & 0xf));
	assert_int_equal(cfg_read(f, 1, 0x14, 4), (uint32_t)(moved >> 32));
	assert_int_equal(cfg_read(f, 1, cap + 2, 2), 0xc002); /* enable, mask-all; 3 vectors */
	assert_int_equal(cfg_read(f, 1, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(cfg_read(f, 1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
	/* BAR 0 decodes at the loaded address. */
	assert_int_equal(bar_read(f, VIRTIO_PCI_COMMON_NUMQ, 2), 2);

	/* Refused: a vector beyond the table, a feature not offered, activated = 2, enable = 2. */
	copy = malloc(w.len);
	assert_non_null(copy);
	{
		static const struct {
			size_t at;
			uint8_t v;
		} bad[] = {
			{ SAVED_CONFIG_VECTOR, 0x50 },
			{ SAVED_FEATURES + 5, 0x80 },
			{ SAVED_ACTIVATED, 2 },
			{ SAVED_QUEUE0_ENABLE, 2 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memcpy(copy, w.buf, w.len);
			copy[bad[i].at] = bad[i].v;
			ser_reader_init(&r, copy, w.len);
			if (f->dev->ops->load(f->dev, &r) != -1)
				fail_msg("case %zu loaded", i);
		}
	}
	/* A device whose activation failed: not activated, broken, with the features it was given. */
	memcpy(copy, w.buf, w.len);
	copy[SAVED_FEATURES + 4] = 1; /* VERSION_1 (bit 32) */
	copy[SAVED_DRV_FEATURES + 4] = 1;
	copy[SAVED_ACTIVATED] = 0;
	copy[SAVED_ACTIVATED + 1] = 1;
	ser_reader_init(&r, copy, w.len);
	assert_int_equal(f->dev->ops->load(f->dev, &r), 0);
	assert_true(d2->vd.broken);
	/* A driver still negotiating may have written bits not offered (FEATURES_OK would refuse
	 * them): a state a guest can reach loads; with FEATURES_OK set it cannot be reached. */
	memcpy(copy, w.buf, w.len);
	copy[SAVED_DRV_FEATURES + 5] = 0x80;
	ser_reader_init(&r, copy, w.len);
	assert_int_equal(f->dev->ops->load(f->dev, &r), 0);
	copy[SAVED_STATUS] |= VIRTIO_STATUS_FEATURES_OK;
	ser_reader_init(&r, copy, w.len);
	assert_int_equal(f->dev->ops->load(f->dev, &r), -1);
	free(copy);
	ser_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ids_and_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activate_kick_and_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_queue_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_vectors_and_pba, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_through_masks_and_remap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
