/* pl031.c - PL031 RTC model (see pl031.h and ARM DDI 0224: PrimeCell Real Time Clock TRM).
 *
 * The counter is not stored: each read is host seconds + offset, so no timer thread is needed.
 * The hardware matches when the counter equals MR. Accesses come at no particular second, so
 * here it is "the counter has reached MR since MR was written (or the counter loaded), when MR
 * was not behind it then": `armed` remembers that the match is still to come, and every access
 * checks it. */
#include "pl031.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"

#define CR_START 0x1
#define INT_BIT  0x1
/* PeriphID 0x00041031 (part 0x031, designer ARM 0x41, revision 0), PCellID 0xb105f00d. */
static const uint8_t pl031_id[8] = { 0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1 };

#define PL031_STATE_VERSION 1

struct pl031 {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *mmio;
	uint64_t base;
	struct irq_line irq;
	void (*now)(void *ctx, struct timespec *ts);
	void *now_ctx;
	int64_t offset; /* counter - host seconds */
	uint32_t mr, lr;
	uint8_t cr, imsc, ris;
	bool armed;    /* the counter has not yet reached mr */
	int irq_level; /* level last driven on the line */
};

static struct pl031 *to_pl031(struct device *dev)
{
	return container_of(dev, struct pl031, dev);
}

static int64_t host_secs(const struct pl031 *p)
{
	struct timespec ts;

	if (p->now)
		p->now(p->now_ctx, &ts);
	else
		clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static uint32_t counter(const struct pl031 *p)
{
	return (uint32_t)(host_secs(p) + p->offset); /* the counter wraps at 2^32 like the hardware's */
}

/* Latch the match and drive the line at the masked status; caller holds the lock. */
static void update(struct pl031 *p)
{
	int level;

	/* Unsigned distance: "reached" survives the 2^32 wrap as long as it is checked within
	 * 68 years. */
	if (p->armed && (int32_t)(counter(p) - p->mr) >= 0) {
		p->armed = false;
		p->ris |= INT_BIT;
	}
	level = (p->ris & p->imsc & INT_BIT) != 0;
	if (level != p->irq_level) {
		p->irq_level = level;
		irq_line_set(&p->irq, level);
	}
}

/* MR or the counter changed: a match is due when MR is not behind the counter. */
static void arm_match(struct pl031 *p)
{
	p->armed = (int32_t)(p->mr - counter(p)) >= 0;
}

static uint32_t reg_read(struct pl031 *p, uint64_t off)
{
	if (off >= PL031_ID && off < PL031_ID + 4 * sizeof(pl031_id))
		return (off - PL031_ID) % 4 ? 0 : pl031_id[(off - PL031_ID) / 4];
	switch (off) {
	case PL031_DR:
		return counter(p);
	case PL031_MR:
		return p->mr;
	case PL031_LR:
		return p->lr;
	case PL031_CR:
		return p->cr;
	case PL031_IMSC:
		return p->imsc;
	case PL031_RIS:
		return p->ris;
	case PL031_MIS:
		return p->ris & p->imsc;
	}
	return 0; /* ICR and the reserved words read as zero */
}

static void reg_write(struct pl031 *p, uint64_t off, uint32_t v)
{
	switch (off) {
	case PL031_MR:
		p->mr = v;
		arm_match(p);
		break;
	case PL031_LR:
		p->lr = v;
		p->offset = (int64_t)v - host_secs(p);
		arm_match(p); /* the match is against the new counter */
		break;
	case PL031_CR:
		/* Writing 0 cannot stop the counter once started (TRM: only reset does). */
		p->cr |= v & CR_START;
		break;
	case PL031_IMSC:
		p->imsc = v & INT_BIT;
		break;
	case PL031_ICR:
		p->ris &= (uint8_t) ~(v & INT_BIT);
		break;
	}
	/* DR, RIS, MIS and the ID registers are read-only. */
}

static void pl031_io(struct device *dev, struct bus_access *a)
{
	struct pl031 *p = to_pl031(dev);

	if (a->len != 4 || a->offset % 4 || a->offset >= PL031_MMIO_SIZE) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&p->lock);
	update(p);
	if (a->is_write)
		reg_write(p, a->offset, (uint32_t)get_le(a->data, 4));
	else
		put_le(a->data, 4, reg_read(p, a->offset));
	update(p);
	pthread_mutex_unlock(&p->lock);
}

static void pl031_reset(struct device *dev)
{
	struct pl031 *p = to_pl031(dev);

	/* The counter keeps going (it is in the always-on domain); the rest is reset. */
	pthread_mutex_lock(&p->lock);
	p->mr = 0;
	p->lr = 0;
	p->cr = CR_START;
	p->imsc = 0;
	p->ris = 0;
	p->armed = false;
	update(p);
	pthread_mutex_unlock(&p->lock);
}

static void pl031_save(struct device *dev, struct ser_writer *w)
{
	struct pl031 *p = to_pl031(dev);

	pthread_mutex_lock(&p->lock);
	update(p);
	ser_put_u8(w, PL031_STATE_VERSION);
	ser_put_u64(w, (uint64_t)p->offset);
	ser_put_u32(w, p->mr);
	ser_put_u32(w, p->lr);
	ser_put_u8(w, p->cr);
	ser_put_u8(w, p->imsc);
	ser_put_u8(w, p->ris);
	ser_put_u8(w, p->armed);
	pthread_mutex_unlock(&p->lock);
}

static int pl031_load(struct device *dev, struct ser_reader *r)
{
	struct pl031 *p = to_pl031(dev);
	uint64_t offset;
	uint32_t mr, lr;
	uint8_t cr, imsc, ris, armed;

	if (ser_get_u8(r) != PL031_STATE_VERSION)
		return -1;
	offset = ser_get_u64(r);
	mr = ser_get_u32(r);
	lr = ser_get_u32(r);
	cr = ser_get_u8(r);
	imsc = ser_get_u8(r);
	ris = ser_get_u8(r);
	armed = ser_get_u8(r);
	/* The counter is 32 bits: an offset beyond +-2^33 s is not one this model wrote. */
	if (r->err || (int64_t)offset > (1LL << 33) || (int64_t)offset < -(1LL << 33) || cr > CR_START ||
	    imsc > INT_BIT || ris > INT_BIT || armed > 1)
		return -1;
	pthread_mutex_lock(&p->lock);
	p->offset = (int64_t)offset;
	p->mr = mr;
	p->lr = lr;
	p->cr = cr;
	p->imsc = imsc;
	p->ris = ris;
	p->armed = armed;
	/* The line's real level is unknown after a restore: drive it. */
	p->irq_level = -1;
	update(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pl031_destroy(struct device *dev)
{
	struct pl031 *p = to_pl031(dev);

	bus_unregister(p->mmio, p->base, dev);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct device_ops pl031_ops = {
	.type = "rtc",
	.io = pl031_io,
	.reset = pl031_reset,
	.save = pl031_save,
	.load = pl031_load,
	.destroy = pl031_destroy,
};

void pl031_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx)
{
	struct pl031 *p = to_pl031(dev);

	pthread_mutex_lock(&p->lock);
	p->now = now;
	p->now_ctx = ctx;
	pthread_mutex_unlock(&p->lock);
}

struct device *pl031_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq)
{
	struct pl031 *p;

	if (!mmio) {
		log_error("pl031 %s: no MMIO bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("pl031 %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	p->dev.ops = &pl031_ops;
	io_set_name(&p->dev, name);
	p->mmio = mmio;
	p->base = base;
	p->irq = irq;
	p->cr = CR_START;
	pthread_mutex_init(&p->lock, NULL);
	if (bus_register(mmio, base, PL031_MMIO_SIZE, &p->dev) < 0) {
		log_error("pl031 %s: MMIO 0x%llx-0x%llx is already in use; pick another base", p->dev.name,
			  (unsigned long long)base, (unsigned long long)(base + PL031_MMIO_SIZE - 1));
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return &p->dev;
}
