/* virtio_pci.c - virtio 1.x modern PCI transport with MSI-X.
 *
 * BAR 0 layout (64-bit, prefetchable memory, 32 KiB):
 *   0x0000 common configuration     0x1000 ISR status
 *   0x2000 device configuration     0x3000 notify (queue q at 0x3000 + 4*q)
 *   0x4000 MSI-X table              0x5000 MSI-X PBA
 * Each queue's notify address is backed by a KVM ioeventfd that signals the
 * queue's kick eventfd, which the device's worker thread waits on; without
 * ioeventfd (or for an access of another width) the MMIO handler signals the
 * same eventfd, so the device sees one path. Each MSI-X vector owns a GSI
 * routed to its message and an irqfd; masked vectors collect in the PBA. */
#include "virtio_pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "../devices/io_util.h"
#include "../devices/pci.h"

#define VPCI_NO_VECTOR 0xffff

#define MSIX_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl; /* the table entry */
	int gsi;                               /* -1 until first used */
	int irqfd;                             /* eventfd attached to gsi */
	bool routed;                           /* route matches the entry */
	bool pending;                          /* PBA bit */
};

struct vpci {
	struct device dev;
	struct pci_dev pci;
	struct vm *vm;
	struct virtio_dev *vd;

	/* Common configuration (guarded by vd->lock). */
	uint32_t dev_feature_sel;
	uint32_t drv_feature_sel;
	uint64_t drv_features;
	uint16_t config_vector;
	uint16_t queue_sel;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint16_t queue_enable[VIRTIO_MAX_QUEUES];
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;

	/* MSI-X. */
	int msix_cap; /* config offset of the capability */
	unsigned nvectors;
	struct msix_vector vec[MSIX_MAX_VECTORS];

	/* VIRTIO_PCI_CAP_PCI_CFG window. */
	int pcicfg_cap;

	/* Notifications. */
	int kick_fd[VIRTIO_MAX_QUEUES];
	bool ioeventfd_on;
	uint64_t bar_addr;
	int stop_fd;
	pthread_t worker;
	bool worker_started;

	/* Pause: the worker parks itself in a handler of its own loop, after
	 * the device finished its in-flight work, so nothing touches guest
	 * memory; kicks meanwhile wait in their eventfds. */
	int pause_fd;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	bool park_req;
	bool parked;
};

static uint64_t offered_features(const struct vpci *p)
{
	return p->vd->host_features | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX) |
	       (1ULL << VIRTIO_F_INDIRECT_DESC);
}

/* ---- interrupts ------------------------------------------------------- */

static bool msix_enabled(struct vpci *p, bool *maskall)
{
	uint16_t ctrl = (uint16_t)pci_config_read(&p->pci, (uint32_t)p->msix_cap + 2, 2);

	*maskall = ctrl & PCI_MSIX_CTRL_MASKALL;
	return ctrl & PCI_MSIX_CTRL_ENABLE;
}

/* Route vector v to its current message; caller holds vd->lock. */
static int msix_route(struct vpci *p, struct msix_vector *v)
{
	if (v->gsi < 0) {
		v->gsi = vm_gsi_alloc(p->vm);
		if (v->gsi < 0)
			return -1;
		if (vm_irqfd(p->vm, v->irqfd, (uint32_t)v->gsi, true) < 0)
			return -1;
	}
	if (vm_gsi_route_msi(p->vm, (uint32_t)v->gsi, (uint64_t)v->addr_hi << 32 | v->addr_lo, v->data,
			     (uint32_t)p->pci.slot << 3) < 0)
		return -1;
	v->routed = true;
	return 0;
}

static void msix_fire(struct vpci *p, unsigned idx)
{
	struct msix_vector *v = &p->vec[idx];
	uint64_t one = 1;
	bool maskall;

	if (!msix_enabled(p, &maskall))
		return;
	if (maskall || (v->ctrl & 1)) {
		v->pending = true;
		return;
	}
	if (!v->routed && msix_route(p, v) < 0)
		return;
	if (write(v->irqfd, &one, sizeof(one)) < 0)
		log_debug("%s: irqfd write: %s", p->vd->name, strerror(errno));
}

/* Deliver any pending vector that is now unmasked. */
static void msix_unmasked(struct vpci *p)
{
	bool maskall;

	if (!msix_enabled(p, &maskall) || maskall)
		return;
	for (unsigned i = 0; i < p->nvectors; i++) {
		if (p->vec[i].pending && !(p->vec[i].ctrl & 1)) {
			p->vec[i].pending = false;
			msix_fire(p, i);
		}
	}
}

static void raise_irq(struct vpci *p, uint16_t vector, uint8_t isr_bit)
{
	bool maskall;

	if (msix_enabled(p, &maskall)) {
		if (vector != VPCI_NO_VECTOR && vector < p->nvectors)
			msix_fire(p, vector);
		return;
	}
	p->isr |= isr_bit;
	pci_set_irq(&p->pci, 1);
}

static void tr_notify_queue(struct virtio_dev *vd, unsigned q)
{
	struct vpci *p = vd->transport;

	raise_irq(p, p->queue_vector[q], 1);
}

static void tr_notify_config(struct virtio_dev *vd)
{
	struct vpci *p = vd->transport;

	p->config_generation++;
	raise_irq(p, p->config_vector, 2);
}

static void tr_needs_reset(struct virtio_dev *vd)
{
	struct vpci *p = vd->transport;

	p->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (p->status & VIRTIO_STATUS_DRIVER_OK)
		tr_notify_config(vd);
}

/* vhost takes a queue's kicks straight from the ioeventfd: the worker stops watching it
 * (loop_mod, which may be called while the worker runs its loop). */
static int tr_queue_kick_fd(struct virtio_dev *vd, unsigned q, bool take)
{
	struct vpci *p = vd->transport;

	if (q >= vd->num_queues || p->kick_fd[q] < 0)
		return -1;
	if (loop_mod(vd->loop, p->kick_fd[q], take ? 0 : EPOLLIN) < 0)
		log_error("%s: cannot %s queue %u's kicks: %s", vd->name, take ? "hand over" : "watch again",
			  q, strerror(errno));
	return p->kick_fd[q];
}

static const struct virtio_transport_ops vpci_tops = {
	.notify_queue = tr_notify_queue,
	.notify_config = tr_notify_config,
	.needs_reset = tr_needs_reset,
	.queue_kick_fd = tr_queue_kick_fd,
};

/* ---- device status ---------------------------------------------------- */

static void device_reset(struct vpci *p)
{
	struct virtio_dev *vd = p->vd;

	if (vd->ops->reset)
		vd->ops->reset(vd);
	vd->activated = false;
	vd->broken = false;
	vd->features = 0;
	for (unsigned q = 0; q < vd->num_queues; q++) {
		virtq_reset(&vd->vqs[q]);
		vd->vqs[q].size = vd->queue_max;
		vd->vqs[q].desc_gpa = vd->vqs[q].avail_gpa = vd->vqs[q].used_gpa = 0;
		p->queue_vector[q] = VPCI_NO_VECTOR;
		p->queue_enable[q] = 0;
	}
	p->config_vector = VPCI_NO_VECTOR;
	p->dev_feature_sel = p->drv_feature_sel = 0;
	p->drv_features = 0;
	p->queue_sel = 0;
	p->status = 0;
	p->isr = 0;
	pci_set_irq(&p->pci, 0);
}

static void activate(struct vpci *p)
{
	struct virtio_dev *vd = p->vd;

	vd->features = p->drv_features;
	for (unsigned q = 0; q < vd->num_queues; q++) {
		struct virtq *vq = &vd->vqs[q];

		if (!p->queue_enable[q])
			continue;
		vq->event_idx = virtio_has_feature(vd, VIRTIO_F_EVENT_IDX);
		vq->indirect = virtio_has_feature(vd, VIRTIO_F_INDIRECT_DESC);
		if (virtq_enable(vq, vd->mem) < 0) {
			virtio_set_broken(vd, "queue addresses outside guest RAM or misaligned");
			return;
		}
	}
	vd->activated = true;
	if (vd->ops->activate && vd->ops->activate(vd) < 0) {
		vd->activated = false;
		virtio_set_broken(vd, "device could not start");
		return;
	}
	/* Kicks that came before DRIVER_OK were dropped: look at every queue. */
	for (unsigned q = 0; q < vd->num_queues; q++) {
		uint64_t one = 1;

		if (p->queue_enable[q] && write(p->kick_fd[q], &one, sizeof(one)) < 0)
			log_debug("%s: kick: %s", vd->name, strerror(errno));
	}
}

static void write_status(struct vpci *p, uint8_t v)
{
	uint8_t old = p->status;

	if (v == 0) {
		device_reset(p);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Refuse features we did not offer, and legacy (no VERSION_1). */
		if ((p->drv_features & ~offered_features(p)) ||
		    !(p->drv_features & (1ULL << VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	/* Bits only accumulate until a reset (the driver must not clear them;
	 * honouring it would restart queues behind the driver's back), and
	 * NEEDS_RESET is the device's to set. */
	p->status = (uint8_t)(old | (v & ~VIRTIO_STATUS_NEEDS_RESET));
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    (p->status & VIRTIO_STATUS_FEATURES_OK) && !p->vd->broken)
		activate(p);
}

/* ---- BAR 0 -------------------------------------------------------------- */

static uint64_t common_read(struct vpci *p, uint32_t off)
{
	struct virtio_dev *vd = p->vd;
	unsigned q = p->queue_sel;
	bool qok = q < vd->num_queues;
	uint64_t feat = offered_features(p);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return p->dev_feature_sel;
	case VIRTIO_PCI_COMMON_DF:
		return p->dev_feature_sel < 2 ? (uint32_t)(feat >> (32 * p->dev_feature_sel)) : 0;
	case VIRTIO_PCI_COMMON_GFSELECT:
		return p->drv_feature_sel;
	case VIRTIO_PCI_COMMON_GF:
		return p->drv_feature_sel < 2 ? (uint32_t)(p->drv_features >> (32 * p->drv_feature_sel)) : 0;
	case VIRTIO_PCI_COMMON_MSIX:
		return p->config_vector;
	case VIRTIO_PCI_COMMON_NUMQ:
		return vd->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return p->status;
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return p->config_generation;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return p->queue_sel;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		return qok ? vd->vqs[q].size : 0;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return qok ? p->queue_vector[q] : VPCI_NO_VECTOR;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return qok ? p->queue_enable[q] : 0;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return qok ? q : 0;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		return qok ? vd->vqs[q].desc_gpa : 0;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		return qok ? vd->vqs[q].avail_gpa : 0;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return qok ? vd->vqs[q].used_gpa : 0;
	default:
		return 0;
	}
}

/* Width of each common config field, by offset (0: not a field start). */
static uint32_t common_field_len(uint32_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return 1;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return 8;
	default:
		return 0;
	}
}

static void set_u64_half(uint64_t *v, uint32_t half_off, uint32_t len, uint64_t val)
{
	if (len == 8)
		*v = val;
	else if (half_off == 0)
		*v = (*v & 0xffffffff00000000ULL) | (uint32_t)val;
	else
		*v = (*v & 0xffffffffULL) | (uint64_t)(uint32_t)val << 32;
}

static void common_write(struct vpci *p, uint32_t off, uint32_t len, uint64_t val)
{
	struct virtio_dev *vd = p->vd;
	unsigned q = p->queue_sel;
	bool qok = q < vd->num_queues;
	/* Queue fields are frozen once the queue is enabled (spec 4.1.4.3.2). */
	bool qwritable = qok && !p->queue_enable[q];

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		p->dev_feature_sel = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		p->drv_feature_sel = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GF:
		if (p->drv_feature_sel < 2 && !(p->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned sh = 32 * p->drv_feature_sel;

			p->drv_features =
				(p->drv_features & ~(0xffffffffULL << sh)) | ((uint64_t)(uint32_t)val << sh);
		}
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		p->config_vector = val < p->nvectors ? (uint16_t)val : VPCI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		write_status(p, (uint8_t)val);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		p->queue_sel = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* Any power of two up to our maximum. */
		if (qwritable && val && val <= vd->queue_max && !(val & (val - 1)))
			vd->vqs[q].size = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (qok)
			p->queue_vector[q] = val < p->nvectors ? (uint16_t)val : VPCI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (qok && val == 1)
			p->queue_enable[q] = 1;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		if (qwritable)
			set_u64_half(&vd->vqs[q].desc_gpa, off - VIRTIO_PCI_COMMON_Q_DESCLO, len, val);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		if (qwritable)
			set_u64_half(&vd->vqs[q].avail_gpa, off - VIRTIO_PCI_COMMON_Q_AVAILLO, len, val);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		if (qwritable)
			set_u64_half(&vd->vqs[q].used_gpa, off - VIRTIO_PCI_COMMON_Q_USEDLO, len, val);
		break;
	default:
		break; /* read-only fields */
	}
}

static void common_access(struct vpci *p, struct bus_access *a)
{
	uint32_t off = (uint32_t)a->offset;
	uint32_t flen = common_field_len(off);
	bool half64 = (off == 0x24 || off == 0x2c || off == 0x34) && a->len == 4;

	/* Accesses must hit a whole field (or a 32-bit half of a 64-bit one). */
	if (half64) {
		if (a->is_write)
			common_write(p, off, 4, get_le(a->data, 4));
		else
			put_le(a->data, 4, common_read(p, off - 4) >> 32);
		return;
	}
	if (flen == 8 && a->len == 4) {
		if (a->is_write)
			common_write(p, off, 4, get_le(a->data, 4));
		else
			put_le(a->data, 4, common_read(p, off));
		return;
	}
	if (!flen || flen != a->len) {
		io_fill_ones(a);
		return;
	}
	if (a->is_write)
		common_write(p, off, a->len, get_le(a->data, a->len));
	else
		put_le(a->data, a->len, common_read(p, off));
}

static void msix_table_access(struct vpci *p, uint32_t off, struct bus_access *a)
{
	unsigned idx = off / PCI_MSIX_ENTRY_SIZE, field = (off % PCI_MSIX_ENTRY_SIZE) / 4;
	struct msix_vector *v;
	uint32_t *reg;

	if (idx >= p->nvectors || a->len != 4 || (off & 3)) {
		io_fill_ones(a);
		return;
	}
	v = &p->vec[idx];
	reg = field == 0 ? &v->addr_lo : field == 1 ? &v->addr_hi : field == 2 ? &v->data : &v->ctrl;
	if (!a->is_write) {
		put_le(a->data, 4, *reg);
		return;
	}
	if (field == 3) {
		bool was_masked = v->ctrl & 1;

		v->ctrl = (uint32_t)get_le(a->data, 4) & 1;
		if (was_masked && !(v->ctrl & 1))
			msix_unmasked(p);
		return;
	}
	*reg = (uint32_t)get_le(a->data, 4);
	v->routed = false; /* re-route before the next interrupt */
}

static void pba_access(struct vpci *p, uint32_t off, struct bus_access *a)
{
	uint64_t bits = 0;

	if (a->is_write)
		return; /* read-only */
	for (unsigned i = 0; i < p->nvectors; i++)
		if (p->vec[i].pending)
			bits |= 1ULL << i;
	if (off >= 8) {
		memset(a->data, 0, a->len);
		return;
	}
	for (uint32_t i = 0; i < a->len; i++)
		a->data[i] = off + i < 8 ? (uint8_t)(bits >> (8 * (off + i))) : 0;
}

static void bar_access(struct vpci *p, uint64_t off, struct bus_access *a)
{
	struct virtio_dev *vd = p->vd;

	if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * vd->num_queues) {
		/* Notify without ioeventfd (or an odd width): same path. */
		unsigned q = (unsigned)(off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT;
		uint64_t one = 1;

		if (a->is_write) {
			if (write(p->kick_fd[q], &one, sizeof(one)) < 0)
				log_debug("%s: kick: %s", vd->name, strerror(errno));
		} else {
			memset(a->data, 0, a->len);
		}
		return;
	}
	pthread_mutex_lock(&vd->lock);
	if (off < VPCI_COMMON_OFF + VPCI_COMMON_LEN) {
		common_access(p, a);
	} else if (off == VPCI_ISR_OFF) {
		if (a->is_write) {
			/* read-only */
		} else {
			memset(a->data, 0, a->len);
			a->data[0] = p->isr;
			p->isr = 0; /* reading acknowledges */
			pci_set_irq(&p->pci, 0);
		}
	} else if (off >= VPCI_DEVCFG_OFF && off < VPCI_DEVCFG_OFF + vd->config_size) {
		uint32_t o = (uint32_t)(off - VPCI_DEVCFG_OFF);

		if (a->len > vd->config_size - o) {
			io_fill_ones(a);
		} else if (a->is_write) {
			/* Only devices with writable fields take config writes. */
			if (vd->ops->config_write) {
				memcpy(vd->config + o, a->data, a->len);
				vd->ops->config_write(vd, o, a->len);
			}
		} else {
			memcpy(a->data, vd->config + o, a->len);
		}
	} else if (off >= VPCI_MSIX_OFF && off < VPCI_MSIX_OFF + 16 * p->nvectors) {
		msix_table_access(p, (uint32_t)(off - VPCI_MSIX_OFF), a);
	} else if (off >= VPCI_PBA_OFF && off < VPCI_PBA_OFF + 8) {
		pba_access(p, (uint32_t)(off - VPCI_PBA_OFF), a);
	} else {
		io_fill_ones(a);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void vpci_bar_io(struct pci_dev *pdev, int bar, struct bus_access *a)
{
	struct vpci *p = container_of(pdev, struct vpci, pci);

	if (bar != 0) {
		io_fill_ones(a);
		return;
	}
	bar_access(p, a->offset, a);
}

static void set_ioeventfds(struct vpci *p, bool assign)
{
	if (assign == p->ioeventfd_on)
		return;
	for (unsigned q = 0; q < p->vd->num_queues; q++) {
		uint64_t addr = p->bar_addr + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * q;

		if (vm_ioeventfd(p->vm, addr, 2, false, p->kick_fd[q], assign) < 0 && assign) {
			/* Fall back to kicks through MMIO exits. */
			for (unsigned r = 0; r < q; r++)
				vm_ioeventfd(p->vm, p->bar_addr + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * r, 2,
					     false, p->kick_fd[r], false);
			log_warn("%s: no ioeventfd, queue kicks will exit to kvmbox", p->vd->name);
			return;
		}
	}
	p->ioeventfd_on = assign;
}

static void vpci_bar_mapped(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped)
{
	struct vpci *p = container_of(pdev, struct vpci, pci);

	if (bar != 0)
		return;
	set_ioeventfds(p, false);
	p->bar_addr = addr;
	if (mapped)
		set_ioeventfds(p, true);
}

/* MSI-X control writes and the VIRTIO_PCI_CAP_PCI_CFG window. */
static void vpci_config_write(struct pci_dev *pdev, uint32_t off, uint32_t len)
{
	struct vpci *p = container_of(pdev, struct vpci, pci);
	uint32_t data_off = (uint32_t)p->pcicfg_cap + 16;

	if (off <= (uint32_t)p->msix_cap + 3 && off + len > (uint32_t)p->msix_cap + 2) {
		pthread_mutex_lock(&p->vd->lock);
		msix_unmasked(p);
		pthread_mutex_unlock(&p->vd->lock);
	}
	if (off < data_off + 4 && off + len > data_off) {
		uint32_t bar = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 4, 1);
		uint32_t boff = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 8, 4);
		uint32_t blen = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 12, 4);
		uint8_t data[4];
		struct bus_access a = { .space = BUS_MMIO, .offset = boff, .data = data, .is_write = true };

		if (bar != 0 || (blen != 1 && blen != 2 && blen != 4) || boff >= VPCI_BAR_SIZE)
			return;
		put_le(data, 4, pci_config_read(pdev, data_off, 4));
		a.len = blen;
		bar_access(p, boff, &a);
	}
}

static void vpci_config_read(struct pci_dev *pdev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vpci *p = container_of(pdev, struct vpci, pci);
	uint32_t data_off = (uint32_t)p->pcicfg_cap + 16;

	if (off < data_off + 4 && off + len > data_off) {
		uint32_t bar = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 4, 1);
		uint32_t boff = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 8, 4);
		uint32_t blen = pci_config_read(pdev, (uint32_t)p->pcicfg_cap + 12, 4);
		uint8_t win[4] = { 0 };
		struct bus_access a = { .space = BUS_MMIO, .offset = boff, .data = win, .len = blen };

		if (bar == 0 && (blen == 1 || blen == 2 || blen == 4) && boff < VPCI_BAR_SIZE)
			bar_access(p, boff, &a);
		for (uint32_t i = 0; i < len; i++)
			if (off + i >= data_off && off + i < data_off + 4)
				data[i] = win[off + i - data_off];
	}
}

static const struct pci_dev_ops vpci_pci_ops = {
	.bar_io = vpci_bar_io,
	.config_write = vpci_config_write,
	.config_read = vpci_config_read,
	.bar_mapped = vpci_bar_mapped,
};

/* ---- worker ------------------------------------------------------------- */

static void on_kick(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vpci *p = opaque;
	struct virtio_dev *vd = p->vd;
	uint64_t v;
	unsigned q;

	for (q = 0; q < vd->num_queues; q++)
		if (p->kick_fd[q] == fd)
			break;
	if (q == vd->num_queues || read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&vd->lock);
	if (vd->activated && !vd->broken && p->queue_enable[q] && vd->vqs[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

static void on_stop(struct loop *l, int fd, uint32_t events, void *opaque)
{
	loop_quit(l);
}

static void on_pause(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vpci *p = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&p->vd->lock);
	if (p->vd->ops->quiesce)
		p->vd->ops->quiesce(p->vd);
	pthread_mutex_unlock(&p->vd->lock);
	pthread_mutex_lock(&p->park_lock);
	p->parked = true;
	pthread_cond_broadcast(&p->park_cond);
	while (p->park_req)
		pthread_cond_wait(&p->park_cond, &p->park_lock);
	p->parked = false;
	pthread_mutex_unlock(&p->park_lock);
	pthread_mutex_lock(&p->vd->lock);
	if (p->vd->ops->resume)
		p->vd->ops->resume(p->vd);
	pthread_mutex_unlock(&p->vd->lock);
}

static void vpci_pause(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	uint64_t one = 1;

	if (!p->worker_started)
		return;
	pthread_mutex_lock(&p->park_lock);
	p->park_req = true;
	pthread_mutex_unlock(&p->park_lock);
	if (write(p->pause_fd, &one, sizeof(one)) < 0)
		log_debug("%s: pause: %s", p->vd->name, strerror(errno));
	pthread_mutex_lock(&p->park_lock);
	while (!p->parked)
		pthread_cond_wait(&p->park_cond, &p->park_lock);
	pthread_mutex_unlock(&p->park_lock);
}

static void vpci_resume(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);

	pthread_mutex_lock(&p->park_lock);
	p->park_req = false;
	pthread_cond_broadcast(&p->park_cond);
	pthread_mutex_unlock(&p->park_lock);
}

static void *worker_main(void *arg)
{
	struct vpci *p = arg;
	char name[16]; /* the kernel's limit; longer names are cut */

	memcpy(name, p->vd->name, sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	pthread_setname_np(pthread_self(), name);
	sandbox_thread_enter(p->vd->ops->sandbox);
	loop_run(p->vd->loop);
	return NULL;
}

/* ---- save / load / reset / destroy --------------------------------------- */

static void vpci_save(struct device *dev, struct ser_writer *w)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	struct virtio_dev *vd = p->vd;

	pthread_mutex_lock(&vd->lock);
	ser_put_u32(w, vd->num_queues);
	ser_put_u64(w, vd->host_features);
	ser_put_u64(w, vd->features);
	ser_put_u64(w, p->drv_features);
	ser_put_u32(w, p->dev_feature_sel);
	ser_put_u32(w, p->drv_feature_sel);
	ser_put_u16(w, p->config_vector);
	ser_put_u16(w, p->queue_sel);
	ser_put_u8(w, p->status);
	ser_put_u8(w, p->config_generation);
	ser_put_u8(w, p->isr);
	ser_put_u8(w, vd->activated);
	ser_put_u8(w, vd->broken);
	for (unsigned q = 0; q < vd->num_queues; q++) {
		ser_put_u16(w, p->queue_vector[q]);
		ser_put_u16(w, p->queue_enable[q]);
		virtq_save(&vd->vqs[q], w);
	}
	ser_put_u32(w, p->nvectors);
	for (unsigned i = 0; i < p->nvectors; i++) {
		ser_put_u32(w, p->vec[i].addr_lo);
		ser_put_u32(w, p->vec[i].addr_hi);
		ser_put_u32(w, p->vec[i].data);
		ser_put_u32(w, p->vec[i].ctrl);
		ser_put_u8(w, p->vec[i].pending);
	}
	ser_put_u32(w, vd->config_size);
	ser_put_bytes(w, vd->config, vd->config_size);
	/* PCI config space (BARs, command, MSI-X control). */
	ser_put_bytes(w, p->pci.config, PCI_CONFIG_SIZE);
	if (vd->ops->save)
		vd->ops->save(vd, w);
	pthread_mutex_unlock(&vd->lock);
}

/* What a guest could not have written: features not offered or not the driver's, a vector
 * beyond the table, a queue enable other than 0/1, a device running without DRIVER_OK. */
static bool loaded_state_ok(const struct vpci *p)
{
	const struct virtio_dev *vd = p->vd;

	/* Until FEATURES_OK the driver may write any bits (write_status then refuses them); a device
	 * whose activation failed (broken) keeps the features it was given. */
	if ((vd->features & ~offered_features(p)) || (vd->activated && vd->features != p->drv_features) ||
	    ((p->status & VIRTIO_STATUS_FEATURES_OK) && (p->drv_features & ~offered_features(p))))
		return false;
	if (vd->activated && (p->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK)) !=
				     (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK))
		return false;
	if (p->config_vector != VPCI_NO_VECTOR && p->config_vector >= p->nvectors)
		return false;
	for (unsigned q = 0; q < vd->num_queues; q++)
		if (p->queue_enable[q] > 1 ||
		    (p->queue_vector[q] != VPCI_NO_VECTOR && p->queue_vector[q] >= p->nvectors))
			return false;
	return true;
}

static int vpci_load(struct device *dev, struct ser_reader *r)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	struct virtio_dev *vd = p->vd;
	uint8_t cfg[PCI_CONFIG_SIZE];
	uint8_t activated, broken;
	int ret = -1;

	pthread_mutex_lock(&vd->lock);
	if (ser_get_u32(r) != vd->num_queues || ser_get_u64(r) != vd->host_features)
		goto out;
	vd->features = ser_get_u64(r);
	p->drv_features = ser_get_u64(r);
	p->dev_feature_sel = ser_get_u32(r);
	p->drv_feature_sel = ser_get_u32(r);
	p->config_vector = ser_get_u16(r);
	p->queue_sel = ser_get_u16(r);
	p->status = ser_get_u8(r);
	p->config_generation = ser_get_u8(r);
	p->isr = ser_get_u8(r);
	activated = ser_get_u8(r);
	broken = ser_get_u8(r);
	if (r->err || activated > 1 || broken > 1)
		goto out;
	vd->activated = activated;
	vd->broken = broken;
	for (unsigned q = 0; q < vd->num_queues; q++) {
		p->queue_vector[q] = ser_get_u16(r);
		p->queue_enable[q] = ser_get_u16(r);
		if (virtq_load(&vd->vqs[q], vd->mem, r) < 0)
			goto out;
	}
	if (ser_get_u32(r) != p->nvectors)
		goto out;
	for (unsigned i = 0; i < p->nvectors; i++) {
		p->vec[i].addr_lo = ser_get_u32(r);
		p->vec[i].addr_hi = ser_get_u32(r);
		p->vec[i].data = ser_get_u32(r);
		p->vec[i].ctrl = ser_get_u32(r) & 1;
		p->vec[i].pending = ser_get_u8(r);
		p->vec[i].routed = false; /* routed again from the entry on its first interrupt */
	}
	if (ser_get_u32(r) != vd->config_size)
		goto out;
	ser_get_bytes(r, vd->config, vd->config_size);
	ser_get_bytes(r, cfg, sizeof(cfg));
	if (r->err || !loaded_state_ok(p))
		goto out;
	if (vd->ops->load && vd->ops->load(vd, r) < 0)
		goto out;
	ret = r->err ? -1 : 0;
out:
	pthread_mutex_unlock(&vd->lock);
	if (ret < 0)
		return -1;
	/* BARs, COMMAND, MSI-X control: through the guest's write masks, and BAR 0 mapped (with its
	 * ioeventfds) where the loaded address says; outside vd->lock, as a guest's write is. */
	pci_dev_load_config(&p->pci, cfg);
	if ((p->isr & 1) && !(pci_config_read(&p->pci, (uint32_t)p->msix_cap + 2, 2) & PCI_MSIX_CTRL_ENABLE))
		pci_set_irq(&p->pci, 1);
	if (vd->ops->loaded) {
		pthread_mutex_lock(&vd->lock);
		vd->ops->loaded(vd);
		pthread_mutex_unlock(&vd->lock);
	}
	return 0;
}

static void vpci_reset(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);

	pthread_mutex_lock(&p->vd->lock);
	device_reset(p);
	pthread_mutex_unlock(&p->vd->lock);
}

static void vpci_destroy(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	struct virtio_dev *vd = p->vd;
	uint64_t one = 1;

	if (p->worker_started) {
		if (write(p->stop_fd, &one, sizeof(one)) < 0)
			log_debug("%s: stop: %s", vd->name, strerror(errno));
		pthread_join(p->worker, NULL);
	}
	pthread_mutex_lock(&vd->lock);
	if (vd->activated && vd->ops->reset)
		vd->ops->reset(vd); /* no I/O may outlive the transport */
	pthread_mutex_unlock(&vd->lock);
	set_ioeventfds(p, false);
	pci_remove_device(&p->pci);
	for (unsigned i = 0; i < p->nvectors; i++) {
		if (p->vec[i].gsi >= 0) {
			vm_irqfd(p->vm, p->vec[i].irqfd, (uint32_t)p->vec[i].gsi, false);
			vm_gsi_unroute(p->vm, (uint32_t)p->vec[i].gsi);
		}
		if (p->vec[i].irqfd >= 0)
			close(p->vec[i].irqfd);
	}
	for (unsigned q = 0; q < vd->num_queues; q++)
		if (p->kick_fd[q] >= 0)
			close(p->kick_fd[q]);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->pause_fd >= 0)
		close(p->pause_fd);
	pthread_mutex_destroy(&p->park_lock);
	pthread_cond_destroy(&p->park_cond);
	/* The device frees its own fds from vd->loop, then the loop
	 * (virtio_dev_fini); the worker is stopped, so nothing runs it. */
	if (vd->ops->destroy)
		vd->ops->destroy(vd);
	else
		virtio_dev_fini(vd);
	free(p);
}

static int vpci_release(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	int ret = 0;

	pthread_mutex_lock(&p->vd->lock);
	if (p->vd->ops->release)
		ret = p->vd->ops->release(p->vd);
	pthread_mutex_unlock(&p->vd->lock);
	return ret;
}

static int vpci_reacquire(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);
	int ret = 0;

	pthread_mutex_lock(&p->vd->lock);
	if (p->vd->ops->reacquire)
		ret = p->vd->ops->reacquire(p->vd);
	pthread_mutex_unlock(&p->vd->lock);
	return ret;
}

static struct blockfile *vpci_disk(struct device *dev)
{
	struct vpci *p = container_of(dev, struct vpci, dev);

	return p->vd->ops->disk ? p->vd->ops->disk(p->vd) : NULL;
}

static const struct device_ops vpci_dev_ops = {
	.type = "virtio-pci",
	.reset = vpci_reset,
	.save = vpci_save,
	.load = vpci_load,
	.pause = vpci_pause,
	.resume = vpci_resume,
	.release = vpci_release,
	.reacquire = vpci_reacquire,
	.disk = vpci_disk,
	.destroy = vpci_destroy,
};

/* ---- creation ------------------------------------------------------------ */

static void add_virtio_cap(struct pci_dev *pdev, uint8_t type, uint32_t off, uint32_t len, uint32_t extra,
			   bool has_extra)
{
	int c = pci_add_capability(pdev, PCI_CAP_ID_VNDR, has_extra ? 20 : 16);

	if (c < 0)
		return;
	pci_config_write(pdev, (uint32_t)c + 2, 1, has_extra ? 20 : 16); /* cap_len */
	pci_config_write(pdev, (uint32_t)c + 3, 1, type);
	pci_config_write(pdev, (uint32_t)c + 4, 1, 0); /* BAR 0 */
	pci_config_write(pdev, (uint32_t)c + 8, 4, off);
	pci_config_write(pdev, (uint32_t)c + 12, 4, len);
	if (has_extra)
		pci_config_write(pdev, (uint32_t)c + 16, 4, extra);
}

static uint32_t class_of(uint16_t id)
{
	switch (id) {
	case VIRTIO_ID_NET:
		return 0x020000;
	case VIRTIO_ID_BLOCK:
		return 0x010000;
	case VIRTIO_ID_CONSOLE:
	case VIRTIO_ID_VSOCK:
		return 0x078000;
	default:
		return 0x00ff00;
	}
}

struct device *virtio_pci_create(struct vm *vm, struct virtio_dev *vd)
{
	struct vpci *p = calloc(1, sizeof(*p));
	struct pci_dev *pd;
	int c;

	if (!p) {
		log_error("%s: out of memory", vd->name);
		return NULL;
	}
	p->vm = vm;
	p->vd = vd;
	p->stop_fd = -1;
	p->pause_fd = -1;
	pthread_mutex_init(&p->park_lock, NULL);
	pthread_cond_init(&p->park_cond, NULL);
	p->dev.ops = &vpci_dev_ops;
	io_set_name(&p->dev, vd->name);
	vd->tops = &vpci_tops;
	vd->transport = p;
	p->nvectors = vd->num_queues + 1;
	for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++) {
		p->vec[i].gsi = -1;
		p->vec[i].irqfd = -1;
		p->vec[i].ctrl = 1; /* masked at reset */
	}
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		p->kick_fd[q] = -1;
	for (unsigned i = 0; i < p->nvectors; i++) {
		p->vec[i].irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->vec[i].irqfd < 0)
			goto fail_fd;
	}
	for (unsigned q = 0; q < vd->num_queues; q++) {
		p->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->kick_fd[q] < 0 || loop_add(vd->loop, p->kick_fd[q], EPOLLIN, on_kick, p) < 0)
			goto fail_fd;
	}
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->stop_fd < 0 || loop_add(vd->loop, p->stop_fd, EPOLLIN, on_stop, p) < 0)
		goto fail_fd;
	p->pause_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->pause_fd < 0 || loop_add(vd->loop, p->pause_fd, EPOLLIN, on_pause, p) < 0)
		goto fail_fd;

	pd = &p->pci;
	pci_dev_init(pd, &p->dev, &vpci_pci_ops, 0x1af4, (uint16_t)(0x1040 + vd->ops->device_id),
		     class_of(vd->ops->device_id), 1);
	pci_config_write(pd, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1af4);
	pci_config_write(pd, PCI_SUBSYSTEM_ID, 2, 0x40 + vd->ops->device_id);
	if (pci_set_bar(pd, 0, PCI_BAR_MEM64, VPCI_BAR_SIZE, true) < 0)
		goto fail;
	pci_set_intx_pin(pd, 1);
	/* MSI-X: table and PBA in BAR 0; the guest may write enable/mask. */
	c = pci_add_capability(pd, PCI_CAP_ID_MSIX, 12);
	if (c < 0)
		goto fail;
	p->msix_cap = c;
	pci_config_write(pd, (uint32_t)c + 2, 2, p->nvectors - 1);
	pci_config_set_wmask(pd, (uint32_t)c + 2, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	pci_config_write(pd, (uint32_t)c + 4, 4, VPCI_MSIX_OFF | 0);
	pci_config_write(pd, (uint32_t)c + 8, 4, VPCI_PBA_OFF | 0);
	add_virtio_cap(pd, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, VPCI_COMMON_LEN, 0, false);
	add_virtio_cap(pd, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, 1, 0, false);
	if (vd->config_size)
		add_virtio_cap(pd, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVCFG_OFF, vd->config_size, 0, false);
	add_virtio_cap(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF, VPCI_NOTIFY_MULT * vd->num_queues,
		       VPCI_NOTIFY_MULT, true);
	/* PCI configuration access window: bar, offset, length, data writable. */
	c = pci_add_capability(pd, PCI_CAP_ID_VNDR, 20);
	if (c < 0)
		goto fail;
	p->pcicfg_cap = c;
	pci_config_write(pd, (uint32_t)c + 2, 1, 20);
	pci_config_write(pd, (uint32_t)c + 3, 1, VIRTIO_PCI_CAP_PCI_CFG);
	pci_config_set_wmask(pd, (uint32_t)c + 4, 1, 0xff);
	pci_config_set_wmask(pd, (uint32_t)c + 8, 4, 0xffffffff);
	pci_config_set_wmask(pd, (uint32_t)c + 12, 4, 0xffffffff);
	pci_config_set_wmask(pd, (uint32_t)c + 16, 4, 0xffffffff);

	pthread_mutex_lock(&vd->lock);
	device_reset(p);
	pthread_mutex_unlock(&vd->lock);
	if (pci_add_device(vm->pci_host, pd) < 0)
		goto fail;
	if (pthread_create(&p->worker, NULL, worker_main, p) != 0) {
		log_error("%s: cannot start its worker thread", vd->name);
		pci_remove_device(pd);
		goto fail;
	}
	p->worker_started = true;
	return &p->dev;

fail_fd:
	log_error("%s: cannot create eventfds: %s; raise the open file limit", vd->name, strerror(errno));
fail:
	for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++)
		if (p->vec[i].irqfd >= 0)
			close(p->vec[i].irqfd);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (p->kick_fd[q] >= 0) {
			loop_del(vd->loop, p->kick_fd[q]);
			close(p->kick_fd[q]);
		}
	if (p->stop_fd >= 0) {
		loop_del(vd->loop, p->stop_fd);
		close(p->stop_fd);
	}
	if (p->pause_fd >= 0) {
		loop_del(vd->loop, p->pause_fd);
		close(p->pause_fd);
	}
	pthread_mutex_destroy(&p->park_lock);
	pthread_cond_destroy(&p->park_cond);
	vd->tops = NULL;
	vd->transport = NULL;
	free(p);
	return NULL;
}
