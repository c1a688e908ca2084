/* i8042.c - 8042 keyboard controller model.
 *
 * Commands complete instantly, so IBF (input buffer full) never reads as
 * set. Responses go to a one-byte output buffer; a new one replaces an
 * unread one (a guest always drains the buffer before the next command). */
#include "i8042.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "io_util.h"

#define STS_OBF     0x01
#define STS_IBF     0x02
#define STS_SYS     0x04
#define STS_CMD     0x08 /* last write went to the command port */
#define STS_UNLOCK  0x10 /* keyboard not inhibited by the key lock */
#define STS_AUXDATA 0x20
#define STS_TIMEOUT 0x40
#define STS_STORED  (STS_OBF | STS_CMD | STS_AUXDATA | STS_TIMEOUT)

#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS    0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40
#define CTR_MASK   0x77 /* bits 3 and 7 are reserved, read 0 */
/* What a BIOS leaves behind: keyboard interrupt, POST passed, translation. */
#define CTR_DEFAULT (CTR_KBDINT | CTR_SYS | CTR_XLATE)

#define OUTPORT_RESET   0x01 /* active low system reset */
#define OUTPORT_A20     0x02
#define OUTPORT_DEFAULT (OUTPORT_RESET | OUTPORT_A20)

#define INPORT_VALUE 0x80 /* keyboard not inhibited */

#define I8042_STATE_VERSION 1

struct i8042 {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *bus;
	struct bus_claim claims[2]; /* data port, command/status port */
	struct irq_line irq;
	struct machine_ctl ctl;
	uint8_t ram[32]; /* controller RAM; ram[0] is the command byte */
	uint8_t status;  /* STS_STORED bits */
	uint8_t out;     /* output buffer */
	uint8_t pending; /* command waiting for its data byte, or 0 */
	uint8_t outport;
	int irq_level;
};

static struct i8042 *to_i8042(struct device *dev)
{
	return container_of(dev, struct i8042, dev);
}

static void update_irq(struct i8042 *k)
{
	int level = (k->status & STS_OBF) && !(k->status & STS_AUXDATA) && (k->ram[0] & CTR_KBDINT);

	if (level != k->irq_level) {
		k->irq_level = level;
		irq_line_set(&k->irq, level);
	}
}

static void put_out(struct i8042 *k, uint8_t v, bool aux)
{
	k->out = v;
	k->status |= STS_OBF;
	k->status &= (uint8_t) ~(STS_AUXDATA | STS_TIMEOUT);
	if (aux)
		k->status |= STS_AUXDATA;
}

static bool is_data_command(uint8_t cmd)
{
	return (cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4);
}

/* Returns true when the guest asked for a system reset. */
static bool command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	if (cmd >= 0x20 && cmd <= 0x3f) {
		put_out(k, k->ram[cmd & 0x1f], false);
		return false;
	}
	if (is_data_command(cmd)) {
		k->pending = cmd;
		return false;
	}
	if (cmd >= 0xf0) /* pulse output port bits 0-3 low where cmd has 0s */
		return !(cmd & OUTPORT_RESET);
	switch (cmd) {
	case 0xa7:
		k->ram[0] |= CTR_AUXDIS;
		break;
	case 0xa8:
		k->ram[0] &= (uint8_t)~CTR_AUXDIS;
		break;
	case 0xa9: /* aux interface test: OK */
	case 0xab: /* keyboard interface test: OK */
		put_out(k, 0x00, false);
		break;
	case 0xaa: /* controller self test: passed */
		put_out(k, 0x55, false);
		break;
	case 0xad:
		k->ram[0] |= CTR_KBDDIS;
		break;
	case 0xae:
		k->ram[0] &= (uint8_t)~CTR_KBDDIS;
		break;
	case 0xc0:
		put_out(k, INPORT_VALUE, false);
		break;
	case 0xd0:
		put_out(k, k->outport, false);
		break;
	case 0xdd: /* A20 off / on (some controllers): recorded only */
		k->outport &= (uint8_t)~OUTPORT_A20;
		break;
	case 0xdf:
		k->outport |= OUTPORT_A20;
		break;
	default:
		log_debug("i8042 %s: ignoring unknown command 0x%02x", k->dev.name, cmd);
		break;
	}
	return false;
}

static bool data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	if (cmd == 0x60) {
		k->ram[0] = v & CTR_MASK;
	} else if (cmd > 0x60 && cmd <= 0x7f) {
		k->ram[cmd & 0x1f] = v;
	} else if (cmd == 0xd1) {
		k->outport = v;
		if (!(v & OUTPORT_RESET)) {
			k->outport |= OUTPORT_RESET; /* the line goes back high */
			return true;
		}
	} else if (cmd == 0xd2) {
		put_out(k, v, false);
	} else if (cmd == 0xd3) {
		put_out(k, v, true);
	}
	/* 0xd4 (to the mouse) and plain data (to the keyboard): no device is
	 * attached, so nothing answers and the guest's driver times out. */
	return false;
}

static void i8042_io(struct device *dev, struct bus_access *a)
{
	struct i8042 *k = to_i8042(dev);
	bool is_cmd = a->base + a->offset == k->claims[1].base, reset = false;

	if (a->len != 1 || a->offset != 0) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (a->is_write) {
		if (is_cmd) {
			k->status |= STS_CMD;
			reset = command(k, a->data[0]);
		} else {
			k->status &= (uint8_t)~STS_CMD;
			reset = data_write(k, a->data[0]);
		}
	} else if (is_cmd) {
		a->data[0] = k->status | STS_UNLOCK | (k->ram[0] & CTR_SYS ? STS_SYS : 0);
	} else {
		a->data[0] = k->out; /* an empty buffer repeats the last byte */
		k->status &= (uint8_t) ~(STS_OBF | STS_AUXDATA | STS_TIMEOUT);
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset && k->ctl.request)
		k->ctl.request(k->ctl.ctx, VM_REBOOT);
}

static void i8042_reset_locked(struct i8042 *k)
{
	memset(k->ram, 0, sizeof(k->ram));
	k->ram[0] = CTR_DEFAULT;
	k->status = 0;
	k->out = 0;
	k->pending = 0;
	k->outport = OUTPORT_DEFAULT;
}

static void i8042_reset(struct device *dev)
{
	struct i8042 *k = to_i8042(dev);

	pthread_mutex_lock(&k->lock);
	i8042_reset_locked(k);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_save(struct device *dev, struct ser_writer *w)
{
	struct i8042 *k = to_i8042(dev);

	pthread_mutex_lock(&k->lock);
	ser_put_u8(w, I8042_STATE_VERSION);
	ser_put_bytes(w, k->ram, sizeof(k->ram));
	ser_put_u8(w, k->status);
	ser_put_u8(w, k->out);
	ser_put_u8(w, k->pending);
	ser_put_u8(w, k->outport);
	pthread_mutex_unlock(&k->lock);
}

static int i8042_load(struct device *dev, struct ser_reader *r)
{
	struct i8042 *k = to_i8042(dev);
	uint8_t ram[32], status, out, pending, outport;

	if (ser_get_u8(r) != I8042_STATE_VERSION)
		return -1;
	ser_get_bytes(r, ram, sizeof(ram));
	status = ser_get_u8(r);
	out = ser_get_u8(r);
	pending = ser_get_u8(r);
	outport = ser_get_u8(r);
	if (r->err || (ram[0] & ~CTR_MASK) || (status & ~STS_STORED) ||
	    ((status & (STS_AUXDATA | STS_TIMEOUT)) && !(status & STS_OBF)) ||
	    (pending && !is_data_command(pending)) || !(outport & OUTPORT_RESET))
		return -1;
	pthread_mutex_lock(&k->lock);
	memcpy(k->ram, ram, sizeof(ram));
	k->status = status;
	k->out = out;
	k->pending = pending;
	k->outport = outport;
	k->irq_level = (status & STS_OBF) && !(status & STS_AUXDATA) && (ram[0] & CTR_KBDINT);
	irq_line_set(&k->irq, k->irq_level); /* the line's level is unknown after a restore */
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static void i8042_destroy(struct device *dev)
{
	struct i8042 *k = to_i8042(dev);

	bus_unregister_all(k->bus, k->claims, ARRAY_SIZE(k->claims), dev);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static const struct device_ops i8042_ops = {
	.type = "i8042",
	.io = i8042_io,
	.reset = i8042_reset,
	.save = i8042_save,
	.load = i8042_load,
	.destroy = i8042_destroy,
};

struct device *i8042_create(const char *name, struct bus *bus, uint64_t data_port, uint64_t cmd_port,
			    struct irq_line kbd_irq, struct machine_ctl ctl)
{
	struct i8042 *k;

	if (!bus) {
		log_error("i8042 %s: no bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		log_error("i8042 %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	k->dev.ops = &i8042_ops;
	io_set_name(&k->dev, name);
	k->bus = bus;
	k->irq = kbd_irq;
	k->ctl = ctl;
	i8042_reset_locked(k);
	pthread_mutex_init(&k->lock, NULL);
	k->claims[0] = (struct bus_claim){ data_port, 1 };
	k->claims[1] = (struct bus_claim){ cmd_port, 1 };
	if (bus_register_all(bus, k->claims, ARRAY_SIZE(k->claims), &k->dev) < 0) {
		pthread_mutex_destroy(&k->lock);
		free(k);
		return NULL;
	}
	return &k->dev;
}
