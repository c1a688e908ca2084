/* acpi_pm.c - ACPI PM1a event/control blocks and the reset register.
 *
 * Accesses are decoded byte by byte from the absolute port (registration
 * base + offset), so any 1/2/4-byte access inside a block, aligned or not,
 * touches exactly the register bytes it covers. */
#include "acpi_pm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "io_util.h"

#define PM1_EVT_LEN  4
#define PM1_CNT_LEN  2
#define PM_RESET_LEN 1

/* PM1_STS: timer, bus master, global, power/sleep button, RTC, PCIe wake, wake. */
#define STS_PWRBTN 0x0100
#define STS_VALID  0xc731
/* PM1_EN: timer, global, power/sleep button, RTC, PCIe wake disable. */
#define EN_VALID 0x4721
/* PM1_CNT */
#define CNT_SCI_EN       0x0001
#define CNT_BM_RLD       0x0002
#define CNT_GBL_RLS      0x0004 /* write-only */
#define CNT_SLP_TYP(v)   (((v) >> 10) & 7)
#define CNT_SLP_TYP_MASK 0x1c00
#define CNT_SLP_EN       0x2000 /* write-only */
#define CNT_STORED       (CNT_BM_RLD | CNT_SLP_TYP_MASK)

#define ACPI_PM_STATE_VERSION 1

struct acpi_pm {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *bus;
	struct acpi_pm_config cfg;
	struct bus_claim claims[3]; /* event block, control block, reset register */
	struct irq_line sci;
	struct machine_ctl ctl;
	uint16_t sts, en, cnt;
	int sci_level;
};

static struct acpi_pm *to_pm(struct device *dev)
{
	return container_of(dev, struct acpi_pm, dev);
}

static void update_sci(struct acpi_pm *p)
{
	int level = (p->sts & p->en) != 0;

	if (level != p->sci_level) {
		p->sci_level = level;
		irq_line_set(&p->sci, level);
	}
}

/* Which register byte an absolute port is. The blocks' bases are not
 * assumed aligned, so the byte within a 16-bit register is counted from the
 * block's base. */
enum pm_reg { REG_NONE, REG_STS, REG_EN, REG_CNT, REG_RESET };

static enum pm_reg decode(const struct acpi_pm *p, uint64_t port, unsigned int *byte)
{
	uint64_t e = port - p->cfg.evt, c = port - p->cfg.cnt;

	if (e < PM1_EVT_LEN) {
		*byte = (unsigned int)(e & 1);
		return e < 2 ? REG_STS : REG_EN;
	}
	if (c < PM1_CNT_LEN) {
		*byte = (unsigned int)c;
		return REG_CNT;
	}
	*byte = 0;
	return port == p->cfg.reset ? REG_RESET : REG_NONE;
}

static uint8_t read_byte(struct acpi_pm *p, uint64_t port)
{
	unsigned int byte;
	uint16_t v;

	switch (decode(p, port, &byte)) {
	case REG_STS:
		v = p->sts;
		break;
	case REG_EN:
		v = p->en;
		break;
	case REG_CNT:
		v = p->cnt | CNT_SCI_EN; /* always in ACPI mode */
		break;
	default:
		return 0; /* RESET_REG reads as 0 */
	}
	return (uint8_t)(v >> (8 * byte));
}

/* Merge the written bytes into (value, byte mask) per 16-bit register. */
struct reg_write {
	uint16_t val;
	uint16_t mask;
};

static void collect(struct reg_write *rw, unsigned int byte, uint8_t b)
{
	unsigned int shift = 8 * byte;

	rw->val |= (uint16_t)(b << shift);
	rw->mask |= (uint16_t)(0xff << shift);
}

static void acpi_pm_io(struct device *dev, struct bus_access *a)
{
	struct acpi_pm *p = to_pm(dev);
	uint64_t port = a->base + a->offset;
	struct reg_write sts = { 0 }, en = { 0 }, cnt = { 0 };
	int request = 0;

	if (a->len != 1 && a->len != 2 && a->len != 4) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < a->len; i++) {
		uint64_t q = port + i;
		unsigned int byte;

		if (!a->is_write) {
			a->data[i] = read_byte(p, q);
			continue;
		}
		switch (decode(p, q, &byte)) {
		case REG_STS:
			collect(&sts, byte, a->data[i]);
			break;
		case REG_EN:
			collect(&en, byte, a->data[i]);
			break;
		case REG_CNT:
			collect(&cnt, byte, a->data[i]);
			break;
		case REG_RESET:
			if (a->data[i] == p->cfg.reset_value)
				request = VM_REBOOT;
			break;
		case REG_NONE:
			break;
		}
	}
	if (a->is_write) {
		p->sts &= (uint16_t) ~(sts.val & sts.mask & STS_VALID);
		p->en = (uint16_t)((p->en & ~en.mask) | (en.val & en.mask & EN_VALID));
		p->cnt = (uint16_t)((p->cnt & ~cnt.mask) | (cnt.val & cnt.mask & CNT_STORED));
		/* SLP_EN lives in the high byte; SLP_TYP is taken from this write
		 * merged with the stored value for a byte-wide write. */
		if ((cnt.mask & 0xff00) && (cnt.val & CNT_SLP_EN)) {
			if (CNT_SLP_TYP(p->cnt) == p->cfg.s5_slp_typ)
				request = VM_POWEROFF;
			else
				log_debug("acpi_pm %s: ignoring sleep type %u", p->dev.name,
					  CNT_SLP_TYP(p->cnt));
		}
		update_sci(p);
	}
	pthread_mutex_unlock(&p->lock);
	if (request && p->ctl.request)
		p->ctl.request(p->ctl.ctx, request);
}

void acpi_pm_power_button(struct device *dev)
{
	struct acpi_pm *p;

	if (!dev)
		return;
	p = to_pm(dev);
	pthread_mutex_lock(&p->lock);
	p->sts |= STS_PWRBTN;
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
}

static void acpi_pm_reset(struct device *dev)
{
	struct acpi_pm *p = to_pm(dev);

	pthread_mutex_lock(&p->lock);
	p->sts = 0;
	p->en = 0;
	p->cnt = 0;
	update_sci(p);
	pthread_mutex_unlock(&p->lock);
}

static void acpi_pm_save(struct device *dev, struct ser_writer *w)
{
	struct acpi_pm *p = to_pm(dev);

	pthread_mutex_lock(&p->lock);
	ser_put_u8(w, ACPI_PM_STATE_VERSION);
	ser_put_u16(w, p->sts);
	ser_put_u16(w, p->en);
	ser_put_u16(w, p->cnt);
	pthread_mutex_unlock(&p->lock);
}

static int acpi_pm_load(struct device *dev, struct ser_reader *r)
{
	struct acpi_pm *p = to_pm(dev);
	uint16_t sts, en, cnt;

	if (ser_get_u8(r) != ACPI_PM_STATE_VERSION)
		return -1;
	sts = ser_get_u16(r);
	en = ser_get_u16(r);
	cnt = ser_get_u16(r);
	if (r->err || (sts & ~STS_VALID) || (en & ~EN_VALID) || (cnt & ~CNT_STORED))
		return -1;
	pthread_mutex_lock(&p->lock);
	p->sts = sts;
	p->en = en;
	p->cnt = cnt;
	p->sci_level = (sts & en) != 0;
	irq_line_set(&p->sci, p->sci_level); /* the line's level is unknown after a restore */
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void acpi_pm_destroy(struct device *dev)
{
	struct acpi_pm *p = to_pm(dev);

	bus_unregister_all(p->bus, p->claims, ARRAY_SIZE(p->claims), dev);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct device_ops acpi_pm_ops = {
	.type = "acpi_pm",
	.io = acpi_pm_io,
	.reset = acpi_pm_reset,
	.save = acpi_pm_save,
	.load = acpi_pm_load,
	.destroy = acpi_pm_destroy,
};

struct device *acpi_pm_create(const char *name, struct bus *bus, const struct acpi_pm_config *cfg,
			      struct irq_line sci, struct machine_ctl ctl)
{
	struct acpi_pm *p;

	if (!bus || !cfg || cfg->s5_slp_typ > 7) {
		log_error("acpi_pm %s: no bus, or an S5 sleep type beyond 3 bits; this is a kvmbox bug",
			  name ? name : "?");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("acpi_pm %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	p->dev.ops = &acpi_pm_ops;
	io_set_name(&p->dev, name);
	p->bus = bus;
	p->cfg = *cfg;
	p->sci = sci;
	p->ctl = ctl;
	pthread_mutex_init(&p->lock, NULL);
	p->claims[0] = (struct bus_claim){ cfg->evt, PM1_EVT_LEN };
	p->claims[1] = (struct bus_claim){ cfg->cnt, PM1_CNT_LEN };
	p->claims[2] = (struct bus_claim){ cfg->reset, PM_RESET_LEN };
	if (bus_register_all(bus, p->claims, ARRAY_SIZE(p->claims), &p->dev) < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return &p->dev;
}
