/* vfio_pci.c - a host PCI function passed through to the guest (see the header). */
#include "vfio_pci.h"

#include <errno.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../arch/arch.h"
#include "../core/log.h"
#include "../core/vm.h"
#include "pci.h"
#include "vfio.h"
#include "vfio_msix.h"
#include "vfio_pci_cfg.h"

#define PAGE 4096ULL

struct vbar {
	void *map;        /* the whole region mmap'd, or NULL: every access trapped */
	uint64_t size;    /* of the BAR */
	uint64_t trap_lo; /* [trap_lo, trap_hi) of the BAR always traps (MSI-X table, PBA) */
	uint64_t trap_hi;
	int slot[2]; /* KVM slots of [0, trap_lo) and [trap_hi, size) while mapped; -1 */
};

struct vfio_pci;

/* The vectors of one VFIO interrupt index, MSI-X or MSI: each vector's VFIO eventfd is a KVM
 * irqfd on a GSI routed to the vector's message while the vector is live (vfio_msix.h). */
struct vecs {
	struct vfio_pci *p;
	unsigned index;   /* VFIO_PCI_MSIX_IRQ_INDEX or VFIO_PCI_MSI_IRQ_INDEX */
	const char *what; /* "MSI-X", "MSI" */
	unsigned nvec;    /* vectors the function has; 0: none of this kind */
	unsigned on;      /* vectors VFIO signals (has the eventfds of); 0: the index is off */
	struct vfio_msix tbl;
	int *efd;       /* per vector: VFIO signals it */
	int *gsi;       /* per vector: its GSI, -1 until first routed */
	bool *attached; /* its irqfd is attached */
};

struct vfio_pci {
	struct device dev;
	struct pci_dev pci;
	struct vm *vm;
	struct vfio_dev vd;
	struct vfio_pci_cfg cfg;
	struct vfio_pci_cfg_io io;
	pthread_mutex_t lock; /* msix, the interrupt state below */
	struct vbar bar[PCI_NUM_BARS];

	struct vecs msix, msi;

	int intx_efd, intx_resample; /* -1: no INTx */
	uint32_t intx_gsi;
	bool intx_on; /* VFIO's INTx index has the eventfds */

	int nr_dma; /* RAM regions DMA-mapped (the first nr_dma) */
};

/* ---- config space ------------------------------------------------------------------------ */

static int cfg_read(void *ctx, uint32_t off, uint8_t *buf, uint32_t len)
{
	return vfio_dev_region_read(ctx, VFIO_DEV_CONFIG, off, buf, len);
}

static int cfg_write(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len)
{
	return vfio_dev_region_write(ctx, VFIO_DEV_CONFIG, off, buf, len);
}

static void intx_set(struct vfio_pci *p, bool on)
{
	if (p->intx_efd < 0 || p->intx_on == on)
		return;
	if (on) {
		if (vfio_dev_set_intx(&p->vd, p->intx_efd, p->intx_resample) < 0) {
			log_warn("%s: VFIO INTx on: %s", p->dev.name, strerror(errno));
			return;
		}
	} else if (vfio_dev_set_irqs(&p->vd, VFIO_PCI_INTX_IRQ_INDEX, NULL, 0) < 0) {
		log_warn("%s: VFIO INTx off: %s", p->dev.name, strerror(errno));
		return;
	}
	p->intx_on = on;
}

/* INTx is on while neither MSI nor MSI-X is (VFIO has one interrupt index at a time). */
static void intx_update(struct vfio_pci *p)
{
	intx_set(p, !p->msix.on && !p->msi.on);
}

static void vecs_off(struct vecs *v)
{
	if (!v->on)
		return;
	if (vfio_dev_set_irqs(&v->p->vd, v->index, NULL, 0) < 0)
		log_warn("%s: VFIO %s off: %s", v->p->dev.name, v->what, strerror(errno));
	v->on = 0;
}

/* Give VFIO the eventfds of the first n vectors (before any of them goes live): true, or false
 * with a warning (the other kind is on, or VFIO refused). */
static bool vecs_on(struct vecs *v, unsigned n)
{
	struct vfio_pci *p = v->p;
	const struct vecs *other = v == &p->msix ? &p->msi : &p->msix;

	if (v->on == n)
		return true;
	vecs_off(v);
	if (other->on) {
		log_warn("%s: the guest enabled %s while %s is on; a function uses one of them: its %s "
			 "interrupts are lost",
			 p->dev.name, v->what, other->what, v->what);
		return false;
	}
	intx_set(p, false);
	if (vfio_dev_set_irqs(&p->vd, v->index, v->efd, n) < 0) {
		log_warn("%s: VFIO %s on (%u vectors): %s; the device's interrupts are lost", p->dev.name,
			 v->what, n, strerror(errno));
		return false;
	}
	v->on = n;
	return true;
}

/* The guest's MSI-X Enable / Function Mask bits changed (or may have); caller holds the lock.
 * VFIO gets the vector eventfds before any vector goes live, and loses them after the last
 * one stopped. */
static void msix_control(struct vfio_pci *p)
{
	uint16_t ctrl = (uint16_t)pci_config_read(&p->pci, (uint32_t)p->cfg.msix.cap + 2, 2);
	bool en = ctrl & PCI_MSIX_CTRL_ENABLE, mask = ctrl & PCI_MSIX_CTRL_MASKALL;

	if (en && !vecs_on(&p->msix, p->msix.nvec))
		en = false;
	vfio_msix_control(&p->msix.tbl, en, mask);
	if (!en)
		vecs_off(&p->msix);
	intx_update(p);
}

/* The guest wrote the MSI capability; caller holds the lock. Its vectors' messages and masks are
 * config space's; a change of the enabled count gives VFIO the eventfds again. */
static void msi_control(struct vfio_pci *p)
{
	struct vfio_pci_msi_state st;
	bool en;

	vfio_pci_cfg_msi_state(&p->cfg, &p->pci, &st);
	en = st.enabled && vecs_on(&p->msi, st.nvec);
	vfio_pci_msi_apply(&st, &p->msi.tbl, en);
	if (!en)
		vecs_off(&p->msi);
	intx_update(p);
}

static void hook_config_read(struct pci_dev *pdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vfio_pci *p = (struct vfio_pci *)pdev->owner;

	vfio_pci_cfg_guest_read(&p->cfg, &p->io, off, data, len);
}

static void hook_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	struct vfio_pci *p = (struct vfio_pci *)pdev->owner;

	if (vfio_pci_cfg_guest_write(&p->cfg, &p->io, pdev, off, len) < 0)
		log_warn("%s: config write at %#x refused by the device", p->dev.name, off);
	if (p->msix.nvec && vfio_pci_cfg_msix_touched(&p->cfg, off, len)) {
		pthread_mutex_lock(&p->lock);
		msix_control(p);
		pthread_mutex_unlock(&p->lock);
	}
	if (p->msi.nvec && vfio_pci_cfg_msi_touched(&p->cfg, off, len)) {
		pthread_mutex_lock(&p->lock);
		msi_control(p);
		pthread_mutex_unlock(&p->lock);
	}
}

/* ---- MSI-X and MSI vectors: VFIO eventfd -> KVM irqfd -> GSI routed to the guest's message -- */

static int vec_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct vecs *v = ctx;
	struct vm *vm = v->p->vm;

	if (v->gsi[vec] < 0) {
		v->gsi[vec] = vm_gsi_alloc(vm);
		if (v->gsi[vec] < 0)
			return -1;
	}
	if (vm_gsi_route_msi(vm, (uint32_t)v->gsi[vec], addr, data, (uint32_t)v->p->pci.slot << 3) < 0)
		return -1;
	if (!v->attached[vec]) {
		if (vm_irqfd(vm, v->efd[vec], (uint32_t)v->gsi[vec], true) < 0)
			return -1;
		v->attached[vec] = true;
	}
	return 0;
}

static void vec_unroute(void *ctx, unsigned vec)
{
	struct vecs *v = ctx;

	if (v->attached[vec]) {
		vm_irqfd(v->p->vm, v->efd[vec], (uint32_t)v->gsi[vec], false);
		v->attached[vec] = false;
	}
}

static const struct vfio_msix_ops vec_ops = { .route = vec_route, .unroute = vec_unroute };

/* ---- BARs ---------------------------------------------------------------------------------- */

static void hook_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	struct vfio_pci *p = (struct vfio_pci *)pdev->owner;
	const struct vfio_pci_msix *mx = &p->cfg.msix;
	uint64_t tsize = (uint64_t)mx->nvec * PCI_MSIX_ENTRY_SIZE, psize = ((mx->nvec + 63) / 64) * 8;
	uint64_t off = a->offset;

	if (p->msix.nvec && bar == mx->table_bar && off >= mx->table_off && off - mx->table_off < tsize) {
		pthread_mutex_lock(&p->lock);
		vfio_msix_table_access(&p->msix.tbl, off - mx->table_off, a->data, a->len, a->is_write);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (p->msix.nvec && bar == mx->pba_bar && off >= mx->pba_off && off - mx->pba_off < psize) {
		if (!a->is_write) {
			pthread_mutex_lock(&p->lock);
			vfio_msix_pba_read(&p->msix.tbl, off - mx->pba_off, a->data, a->len);
			pthread_mutex_unlock(&p->lock);
		}
		return;
	}
	if (a->is_write) {
		if (vfio_dev_region_write(&p->vd, bar, off, a->data, a->len) < 0)
			log_debug("%s: BAR%d write at %#llx refused", p->dev.name, bar,
				  (unsigned long long)off);
	} else if (vfio_dev_region_read(&p->vd, bar, off, a->data, a->len) < 0) {
		memset(a->data, 0xff, a->len);
	}
}

static void bar_unmap(struct vfio_pci *p, int bar)
{
	for (int i = 0; i < 2; i++) {
		vm_mem_slot_remove(p->vm, p->bar[bar].slot[i]);
		p->bar[bar].slot[i] = -1;
	}
}

/* BAR bar now decodes at addr: its mmap'd parts become guest memory there. */
static void hook_bar_mapped(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped)
{
	struct vfio_pci *p = (struct vfio_pci *)pdev->owner;
	struct vbar *b = &p->bar[bar];

	bar_unmap(p, bar);
	if (!mapped || !b->map)
		return;
	if (b->trap_lo > 0)
		b->slot[0] = vm_mem_slot_add(p->vm, addr, b->map, b->trap_lo);
	if (b->trap_hi < b->size)
		b->slot[1] = vm_mem_slot_add(p->vm, addr + b->trap_hi, (uint8_t *)b->map + b->trap_hi,
					     b->size - b->trap_hi);
}

static const struct pci_dev_ops vfio_pci_dev_ops = {
	.bar_io = hook_bar_io,
	.config_read = hook_config_read,
	.config_write = hook_config_write,
	.bar_mapped = hook_bar_mapped,
};

/* Grow [lo, hi) to cover the pages of [off, off+len). */
static void trap_pages(struct vbar *b, uint64_t off, uint64_t len)
{
	uint64_t lo = off & ~(PAGE - 1), hi = (off + len + PAGE - 1) & ~(PAGE - 1);

	if (hi > b->size)
		hi = b->size;
	if (b->trap_lo == b->trap_hi) {
		b->trap_lo = lo;
		b->trap_hi = hi;
		return;
	}
	if (lo < b->trap_lo)
		b->trap_lo = lo;
	if (hi > b->trap_hi)
		b->trap_hi = hi;
}

/* mmap the BARs VFIO lets us, and decide what of each traps. */
static void bars_map(struct vfio_pci *p)
{
	const struct vfio_pci_msix *mx = &p->cfg.msix;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct vbar *b = &p->bar[i];
		const struct vfio_dev_region *r = &p->vd.region[i];
		enum pci_bar_type t = p->cfg.bar[i].type;

		b->slot[0] = b->slot[1] = -1;
		b->size = p->cfg.bar[i].size;
		b->trap_lo = b->trap_hi = b->size; /* nothing trapped: one slot */
		if ((t != PCI_BAR_MEM32 && t != PCI_BAR_MEM64) || !(r->flags & VFIO_REGION_INFO_FLAG_MMAP) ||
		    b->size < PAGE || r->size != b->size)
			continue;
		if (mx->cap && (mx->table_bar == i || mx->pba_bar == i)) {
			b->trap_lo = b->trap_hi = 0;
			if (mx->table_bar == i)
				trap_pages(b, mx->table_off, (uint64_t)mx->nvec * PCI_MSIX_ENTRY_SIZE);
			if (mx->pba_bar == i)
				trap_pages(b, mx->pba_off, ((mx->nvec + 63) / 64) * 8);
			if (b->trap_lo == 0 && b->trap_hi == b->size)
				continue; /* all of it traps */
		}
		b->map = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, p->vd.fd, (off_t)r->offset);
		if (b->map == MAP_FAILED) {
			log_debug("%s: BAR%d not mmap'd (%s): trapped", p->dev.name, i, strerror(errno));
			b->map = NULL;
		}
	}
}

/* ---- life cycle ---------------------------------------------------------------------------- */

/* Every vector unrouted, VFIO's index off, the eventfds closed and the GSIs freed. */
static void vecs_destroy(struct vecs *v)
{
	vfio_msix_destroy(&v->tbl);
	vecs_off(v);
	for (unsigned i = 0; v->efd && i < v->nvec; i++) {
		if (v->efd[i] >= 0)
			close(v->efd[i]);
		if (v->gsi[i] >= 0)
			vm_gsi_unroute(v->p->vm, (uint32_t)v->gsi[i]);
	}
	free(v->efd);
	free(v->gsi);
	free(v->attached);
	v->efd = v->gsi = NULL;
	v->attached = NULL;
}

static void vfio_pci_destroy(struct device *dev)
{
	struct vfio_pci *p = (struct vfio_pci *)dev;

	pci_remove_device(&p->pci);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		bar_unmap(p, i);
		if (p->bar[i].map)
			munmap(p->bar[i].map, p->bar[i].size);
	}
	vecs_destroy(&p->msix);
	vecs_destroy(&p->msi);
	if (p->intx_efd >= 0) {
		if (p->intx_on)
			vfio_dev_set_irqs(&p->vd, VFIO_PCI_INTX_IRQ_INDEX, NULL, 0);
		vm_irqfd(p->vm, p->intx_efd, p->intx_gsi, false);
		close(p->intx_efd);
	}
	if (p->intx_resample >= 0)
		close(p->intx_resample);
	for (int i = 0; i < p->nr_dma; i++)
		vfio_dev_unmap_dma(&p->vd, p->vm->mem.regions[i].gpa, p->vm->mem.regions[i].size);
	vfio_dev_close(&p->vd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* No reset hook: a guest reboot builds the VM again, and vfio_pci_create resets the function. */
static const struct device_ops vfio_pci_ops = {
	.type = "vfio-pci",
	.destroy = vfio_pci_destroy,
};

static int efd_new(struct vfio_pci *p, int *fd)
{
	*fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (*fd < 0)
		log_error("%s: eventfd: %s; raise the open file limit", p->dev.name, strerror(errno));
	return *fd < 0 ? -1 : 0;
}

/* n vectors of VFIO interrupt index `index`, each with its eventfd, none routed. */
static int vecs_setup(struct vfio_pci *p, struct vecs *v, unsigned index, const char *what, unsigned n)
{
	v->p = p;
	v->index = index;
	v->what = what;
	v->efd = malloc(n * sizeof(int));
	v->gsi = malloc(n * sizeof(int));
	v->attached = calloc(n, sizeof(bool));
	if (!v->efd || !v->gsi || !v->attached) {
		log_error("%s: out of memory for %u %s vectors", p->dev.name, n, what);
		return -1;
	}
	v->nvec = n;
	for (unsigned i = 0; i < n; i++)
		v->efd[i] = v->gsi[i] = -1;
	for (unsigned i = 0; i < n; i++)
		if (efd_new(p, &v->efd[i]) < 0)
			return -1;
	if (vfio_msix_init(&v->tbl, n, &vec_ops, v) < 0) {
		log_error("%s: out of memory for %u %s vectors", p->dev.name, n, what);
		return -1;
	}
	return 0;
}

/* Interrupts: MSI-X's and MSI's vector eventfds, INTx on its resampling irqfd. After
 * pci_add_device. */
static int irqs_setup(struct vfio_pci *p)
{
	if (p->cfg.msix.cap &&
	    vecs_setup(p, &p->msix, VFIO_PCI_MSIX_IRQ_INDEX, "MSI-X", p->cfg.msix.nvec) < 0)
		return -1;
	if (p->cfg.msi.cap && vecs_setup(p, &p->msi, VFIO_PCI_MSI_IRQ_INDEX, "MSI", p->cfg.msi.nvec) < 0)
		return -1;
	if (p->cfg.intx_pin && p->vd.intx_count) {
		if (efd_new(p, &p->intx_efd) < 0 || efd_new(p, &p->intx_resample) < 0)
			return -1;
		/* The irqfd takes the line's route, not KVM_IRQ_LINE's number (they differ on arm64). */
		int64_t gsi =
			arch_line_route_gsi(pci_intx_gsi(p->vm->pci_host, p->pci.slot, p->cfg.intx_pin));

		if (gsi < 0) {
			log_error("%s: INTx pin %d on slot %d has no interrupt route", p->dev.name,
				  p->cfg.intx_pin, p->pci.slot);
			return -1;
		}
		p->intx_gsi = (uint32_t)gsi;
		if (vm_irqfd_resample(p->vm, p->intx_efd, p->intx_resample, p->intx_gsi) < 0) {
			close(p->intx_efd);
			p->intx_efd = -1;
			return -1;
		}
		intx_set(p, true);
	}
	return 0;
}

static struct vfio_pci *vfio_pci_create(struct vm *vm, const char *bdf, unsigned index)
{
	struct vfio_pci *p = calloc(1, sizeof(*p));
	uint8_t phys[PCI_CONFIG_SIZE];
	uint64_t sizes[PCI_NUM_BARS];
	char err[512];
	int kvm_vfio;

	if (!p) {
		log_error("vfio=%s: out of memory", bdf);
		return NULL;
	}
	p->dev.ops = &vfio_pci_ops;
	snprintf(p->dev.name, sizeof(p->dev.name), "vfio%u", index);
	p->vm = vm;
	p->intx_efd = p->intx_resample = -1;
	pthread_mutex_init(&p->lock, NULL);
	vfio_dev_init(&p->vd);
	for (int i = 0; i < PCI_NUM_BARS; i++)
		p->bar[i].slot[0] = p->bar[i].slot[1] = -1;
	/* A balloon hands guest pages back to the host, but the IOMMU keeps the pages it pinned:
	 * the device would DMA into memory the guest no longer sees. */
	for (unsigned i = 0; i < vm->cfg->nr_devs; i++) {
		if (vm->cfg->devs[i].type == device_type_by_name("virtio-balloon")) {
			log_error("--device vfio=%s: cannot be used with --balloon (the device's DMA would "
				  "miss the pages the balloon gives back); drop --balloon",
				  bdf);
			goto fail;
		}
	}
	if (!vm->pci_host) {
		log_error("vfio=%s: this machine has no PCI host to plug it into", bdf);
		goto fail;
	}
	if (vfio_dev_open(&p->vd, NULL, bdf, err, sizeof(err)) < 0) {
		log_error("--device %s", err);
		goto fail;
	}
	/* A known state before the guest sees it (and after the previous boot's guest). */
	if (p->vd.can_reset && vfio_dev_reset(&p->vd) < 0)
		log_warn("vfio=%s: VFIO_DEVICE_RESET: %s; the guest gets the function as it is", bdf,
			 strerror(errno));
	for (int i = 0; i < vm->mem.nr_regions; i++, p->nr_dma++) {
		const struct mem_region *r = &vm->mem.regions[i];

		if (vfio_dev_map_dma(&p->vd, r->gpa, r->host, r->size) < 0) {
			log_error("vfio=%s: DMA map of guest RAM at %#llx (%llu MiB): %s; raise the locked "
				  "memory limit (ulimit -l) to at least the guest's RAM",
				  bdf, (unsigned long long)r->gpa, (unsigned long long)(r->size >> 20),
				  strerror(errno));
			goto fail;
		}
	}
	kvm_vfio = vm_kvm_device(vm, KVM_DEV_TYPE_VFIO);
	if (kvm_vfio < 0) {
		log_error("vfio=%s: KVM VFIO device: %s; the host's KVM lacks CONFIG_KVM_VFIO", bdf,
			  strerror(errno));
		goto fail;
	}
	if (vfio_dev_kvm_add(&p->vd, kvm_vfio) < 0) {
		log_error("vfio=%s: adding IOMMU group %d to the KVM VFIO device: %s", bdf, p->vd.group_nr,
			  strerror(errno));
		goto fail;
	}
	if (vfio_dev_region_read(&p->vd, VFIO_DEV_CONFIG, 0, phys, sizeof(phys)) < 0) {
		log_error("vfio=%s: cannot read its config space: %s", bdf, strerror(errno));
		goto fail;
	}
	for (int i = 0; i < PCI_NUM_BARS; i++)
		sizes[i] = p->vd.region[i].size;
	if (vfio_pci_cfg_parse(&p->cfg, phys, sizes, err, sizeof(err)) < 0) {
		log_error("vfio=%s: %s; this function cannot be passed through", bdf, err);
		goto fail;
	}
	/* A machine without PCI I/O space cannot place an I/O BAR: the guest sees it unimplemented
	 * (the function's driver then has to do with its memory BARs, as AHCI's and most do). */
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (p->cfg.bar[i].type == PCI_BAR_IO && !pci_host_has_io(vm->pci_host)) {
			log_warn(
				"vfio=%s: BAR%d is I/O space, which this machine's PCI host has none of; the "
				"guest sees no BAR%d",
				bdf, i, i);
			p->cfg.bar[i].type = PCI_BAR_UNUSED;
		}
	}
	if (p->cfg.msix.cap && p->cfg.msix.nvec > p->vd.msix_count) {
		log_error("vfio=%s: the MSI-X capability says %u vectors, VFIO offers %u", bdf,
			  p->cfg.msix.nvec, p->vd.msix_count);
		goto fail;
	}
	if (p->cfg.msi.cap && p->cfg.msi.nvec > p->vd.msi_count) {
		log_error("vfio=%s: the MSI capability says %u vectors, VFIO offers %u", bdf, p->cfg.msi.nvec,
			  p->vd.msi_count);
		goto fail;
	}
	p->io = (struct vfio_pci_cfg_io){ .read = cfg_read, .write = cfg_write, .ctx = &p->vd };
	bars_map(p);
	if (vfio_pci_cfg_setup(&p->cfg, &p->pci, &p->dev, &vfio_pci_dev_ops) < 0) {
		log_error("vfio=%s: a BAR the PCI host cannot model", bdf);
		goto fail;
	}
	if (pci_add_device(vm->pci_host, &p->pci) < 0)
		goto fail;
	if (irqs_setup(p) < 0)
		goto fail;
	log_debug("%s: %s %04x:%04x on slot %d, %u MSI-X vectors, %u MSI vectors, INTx %s", p->dev.name, bdf,
		  p->cfg.vendor, p->cfg.device, p->pci.slot, p->msix.nvec, p->msi.nvec,
		  p->intx_efd >= 0 ? "on" : "off");
	return p;
fail:
	vfio_pci_destroy(&p->dev);
	return NULL;
}

/* ---- the device type ----------------------------------------------------------------------- */

int vfio_pci_parse(struct vfio_pci_config *c, const char *arg)
{
	char err[512];

	if (strncmp(arg, "vfio=", 5) != 0) {
		log_error("--device %s: unknown device kind; give --device vfio=DOMAIN:BUS:DEVICE.FUNCTION",
			  arg);
		return -1;
	}
	if (vfio_parse_bdf(arg + 5, c->bdf, err, sizeof(err)) < 0) {
		log_error("--device %s", err);
		return -1;
	}
	return 0;
}

static int type_parse(void *cfg, const char *arg)
{
	return vfio_pci_parse(cfg, arg);
}

/* Before /dev/kvm: the sysfs checks, so a function bound to the wrong driver is one line. */
static int type_check(const void *cfg)
{
	const struct vfio_pci_config *c = cfg;
	char err[512];
	int group;

	if (vfio_sysfs_check("/sys", c->bdf, &group, err, sizeof(err)) < 0) {
		log_error("--device %s", err);
		return -1;
	}
	return 0;
}

static void *type_create(struct vm *vm, const void *cfg, unsigned index)
{
	const struct vfio_pci_config *c = cfg;
	struct vfio_pci *p = vfio_pci_create(vm, c->bdf, index);

	if (!p)
		return NULL;
	vm_add_device(vm, &p->dev);
	return p;
}

const struct device_type vfio_pci_type = {
	.name = "vfio-pci",
	.option = "device",
	.arg = "vfio=BDF",
	.help = "pass the host's PCI function BDF (0000:01:00.0, or its /sys/bus/pci/devices path) "
		"through to the guest; it must be bound to vfio-pci",
	.max = 8,
	.config_size = sizeof(struct vfio_pci_config),
	.parse = type_parse,
	.check = type_check,
	.pinned = "its state is in the host's hardware",
	.create = type_create,
};
