/* pl061.c - PL061 GPIO model (see pl061.h and ARM DDI 0190: PrimeCell GPIO TRM).
 *
 * A pin's level is the data latch where the guest made it an output, else what the host drives.
 * Every change of a pin's level is an edge: edge-sensed pins latch it in the raw status (a
 * rising one when IEV says so, either one with IBE) until the guest writes IC; level-sensed pins
 * show their level in the raw status as long as it matches IEV. The line is high while any
 * enabled (IE) raw status bit is set. */
#include "pl061.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "../core/log.h"
#include "../core/loop.h"
#include "io_util.h"

/* PeriphID 0x00041061 (part 0x061, designer ARM 0x41, revision 0), PCellID 0xb105f00d. */
static const uint8_t pl061_id[8] = { 0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1 };

#define PL061_STATE_VERSION 1

struct pl061 {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *mmio;
	uint64_t base;
	struct irq_line irq;
	struct loop_timer *release; /* ends pl061_pulse's presses; NULL without a loop */
	uint8_t data, dir, is, ibe, iev, ie, afsel;
	uint8_t edge_ris; /* edges latched (edge-sensed pins) */
	uint8_t in;       /* the levels the host drives */
	uint8_t pulsed;   /* inputs pl061_pulse raised, lowered when the release timer fires */
	int irq_level;    /* level last driven on the line (-1: unknown) */
};

static struct pl061 *to_pl061(struct device *dev)
{
	return container_of(dev, struct pl061, dev);
}

static uint8_t pins(const struct pl061 *p)
{
	return (uint8_t)((p->data & p->dir) | (p->in & ~p->dir));
}

static uint8_t ris(const struct pl061 *p)
{
	/* Level-sensed pins: raw status while the level is the one IEV asks for. */
	uint8_t level = (uint8_t)(p->is & ~(pins(p) ^ p->iev));

	return (uint8_t)((p->edge_ris & ~p->is) | level);
}

/* Drive the line at the masked status; caller holds the lock. */
static void update_line(struct pl061 *p)
{
	int level = (ris(p) & p->ie) != 0;

	if (level != p->irq_level) {
		p->irq_level = level;
		irq_line_set(&p->irq, level);
	}
}

/* The pins went from `before` to their present levels: latch the edges the guest asked for. */
static void edges(struct pl061 *p, uint8_t before)
{
	uint8_t now = pins(p), changed = before ^ now;
	uint8_t rising = changed & now, falling = changed & before;
	uint8_t edge = (uint8_t)~p->is;

	p->edge_ris |=
		edge & ((changed & p->ibe) | (rising & p->iev & ~p->ibe) | (falling & ~p->iev & ~p->ibe));
	update_line(p);
}

static uint32_t reg_read(struct pl061 *p, uint64_t off)
{
	if (off >= PL061_ID && off < PL061_ID + 4 * sizeof(pl061_id))
		return (off - PL061_ID) % 4 ? 0 : pl061_id[(off - PL061_ID) / 4];
	if (off < PL061_DIR)
		return pins(p) & (uint8_t)(off >> 2);
	switch (off) {
	case PL061_DIR:
		return p->dir;
	case PL061_IS:
		return p->is;
	case PL061_IBE:
		return p->ibe;
	case PL061_IEV:
		return p->iev;
	case PL061_IE:
		return p->ie;
	case PL061_RIS:
		return ris(p);
	case PL061_MIS:
		return ris(p) & p->ie;
	case PL061_AFSEL:
		return p->afsel;
	}
	return 0; /* IC and the reserved words read as zero */
}

static void reg_write(struct pl061 *p, uint64_t off, uint8_t v)
{
	uint8_t before = pins(p);

	if (off < PL061_DIR) {
		uint8_t mask = (uint8_t)(off >> 2);

		p->data = (uint8_t)((p->data & ~mask) | (v & mask));
		edges(p, before);
		return;
	}
	switch (off) {
	case PL061_DIR:
		p->dir = v;
		edges(p, before);
		return;
	case PL061_IS:
		p->is = v;
		break;
	case PL061_IBE:
		p->ibe = v;
		break;
	case PL061_IEV:
		p->iev = v;
		break;
	case PL061_IE:
		p->ie = v;
		break;
	case PL061_IC:
		p->edge_ris &= (uint8_t)~v;
		break;
	case PL061_AFSEL:
		p->afsel = v;
		break;
	}
	/* RIS, MIS and the ID registers are read-only. */
	update_line(p);
}

static void pl061_io(struct device *dev, struct bus_access *a)
{
	struct pl061 *p = to_pl061(dev);

	/* The registers are 8 bits wide, one per word: byte accesses (Linux's driver uses them)
	 * and word accesses at a word's start. */
	if ((a->len != 1 && a->len != 2 && a->len != 4) || a->offset % 4 || a->offset >= PL061_MMIO_SIZE) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (a->is_write)
		reg_write(p, a->offset, (uint8_t)get_le(a->data, a->len));
	else
		put_le(a->data, a->len, reg_read(p, a->offset));
	pthread_mutex_unlock(&p->lock);
}

void pl061_set_input(struct device *dev, unsigned pin, bool level)
{
	struct pl061 *p = to_pl061(dev);
	uint8_t before;

	if (pin >= PL061_PINS)
		return;
	pthread_mutex_lock(&p->lock);
	before = pins(p);
	if (level)
		p->in |= (uint8_t)(1u << pin);
	else
		p->in &= (uint8_t) ~(1u << pin);
	p->pulsed &= (uint8_t) ~(1u << pin);
	edges(p, before);
	pthread_mutex_unlock(&p->lock);
}

/* Arm the release PL061_PULSE_MS from now; caller holds the lock. */
static int arm_release(struct pl061 *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += PL061_PULSE_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return loop_timer_set(p->release, &ts);
}

int pl061_pulse(struct device *dev, unsigned pin)
{
	struct pl061 *p = to_pl061(dev);
	uint8_t before;
	int ret;

	if (pin >= PL061_PINS || !p->release)
		return -1;
	pthread_mutex_lock(&p->lock);
	ret = arm_release(p);
	if (ret == 0) {
		before = pins(p);
		p->in |= (uint8_t)(1u << pin);
		p->pulsed |= (uint8_t)(1u << pin);
		edges(p, before);
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static void on_release(void *opaque)
{
	struct pl061 *p = opaque;
	uint8_t before;

	pthread_mutex_lock(&p->lock);
	before = pins(p);
	p->in &= (uint8_t)~p->pulsed;
	p->pulsed = 0;
	edges(p, before);
	pthread_mutex_unlock(&p->lock);
}

static void pl061_reset(struct device *dev)
{
	struct pl061 *p = to_pl061(dev);

	/* The registers reset; what the host drives on the inputs stays. */
	pthread_mutex_lock(&p->lock);
	p->data = p->dir = p->is = p->ibe = p->iev = p->ie = p->afsel = 0;
	p->edge_ris = 0;
	update_line(p);
	pthread_mutex_unlock(&p->lock);
}

static void pl061_save(struct device *dev, struct ser_writer *w)
{
	struct pl061 *p = to_pl061(dev);

	pthread_mutex_lock(&p->lock);
	ser_put_u8(w, PL061_STATE_VERSION);
	ser_put_u8(w, p->data);
	ser_put_u8(w, p->dir);
	ser_put_u8(w, p->is);
	ser_put_u8(w, p->ibe);
	ser_put_u8(w, p->iev);
	ser_put_u8(w, p->ie);
	ser_put_u8(w, p->afsel);
	ser_put_u8(w, p->edge_ris);
	ser_put_u8(w, p->in);
	ser_put_u8(w, p->pulsed);
	pthread_mutex_unlock(&p->lock);
}

static int pl061_load(struct device *dev, struct ser_reader *r)
{
	struct pl061 *p = to_pl061(dev);
	uint8_t v[10];

	if (ser_get_u8(r) != PL061_STATE_VERSION)
		return -1;
	for (unsigned i = 0; i < sizeof(v); i++)
		v[i] = ser_get_u8(r);
	/* A press in progress belongs to an input that is high. */
	if (r->err || (v[9] & ~v[8]))
		return -1;
	pthread_mutex_lock(&p->lock);
	p->data = v[0];
	p->dir = v[1];
	p->is = v[2];
	p->ibe = v[3];
	p->iev = v[4];
	p->ie = v[5];
	p->afsel = v[6];
	p->edge_ris = v[7];
	p->in = v[8];
	p->pulsed = v[9];
	/* A press saved in progress is released a pulse after the restore. */
	if (p->pulsed && (!p->release || arm_release(p) < 0)) {
		p->in &= (uint8_t)~p->pulsed;
		p->pulsed = 0;
	}
	/* The line's real level is unknown after a restore: drive it. */
	p->irq_level = -1;
	update_line(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pl061_destroy(struct device *dev)
{
	struct pl061 *p = to_pl061(dev);

	loop_timer_free(p->release);
	bus_unregister(p->mmio, p->base, dev);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct device_ops pl061_ops = {
	.type = "gpio",
	.io = pl061_io,
	.reset = pl061_reset,
	.save = pl061_save,
	.load = pl061_load,
	.destroy = pl061_destroy,
};

struct device *pl061_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq,
			    struct loop *loop)
{
	struct pl061 *p;

	if (!mmio) {
		log_error("pl061 %s: no MMIO bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("pl061 %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	p->dev.ops = &pl061_ops;
	io_set_name(&p->dev, name);
	p->mmio = mmio;
	p->base = base;
	p->irq = irq;
	pthread_mutex_init(&p->lock, NULL);
	if (loop && !(p->release = loop_timer_new(loop, CLOCK_MONOTONIC, on_release, p))) {
		log_error("pl061 %s: cannot create its timer; raise the open file limit", p->dev.name);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	if (bus_register(mmio, base, PL061_MMIO_SIZE, &p->dev) < 0) {
		log_error("pl061 %s: MMIO 0x%llx-0x%llx is already in use; pick another base", p->dev.name,
			  (unsigned long long)base, (unsigned long long)(base + PL061_MMIO_SIZE - 1));
		loop_timer_free(p->release);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return &p->dev;
}
