/* uart.c - 16550A UART model.
 *
 * Only the behaviour a guest can observe is modelled: there is no baud rate,
 * so the transmitter is always empty (THRE and TEMT stay set) and every byte
 * written to THR reaches the console at once. The receiver is a 16-byte FIFO
 * (one byte in 16450 mode, FIFO disabled) fed by uart_receive(); the host is
 * flow-controlled instead of overrunning it, so OE only happens in loopback. */
#include "uart.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"

/* Register offsets. */
#define REG_RBR_THR  0
#define REG_IER      1
#define REG_IIR_FCR  2
#define REG_LCR      3
#define REG_MCR      4
#define REG_LSR      5
#define REG_MSR      6
#define REG_SCR      7
#define UART_NR_REGS 8

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f

#define IIR_NONE    0x01
#define IIR_MSI     0x00
#define IIR_THRI    0x02
#define IIR_RDI     0x04
#define IIR_RLSI    0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO_ON 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_STORED   0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_DELTA 0x0f
#define MSR_CTS   0x10
#define MSR_DSR   0x20
#define MSR_RI    0x40
#define MSR_DCD   0x80

#define UART_STATE_VERSION 1

struct uart {
	struct device dev;
	pthread_mutex_t lock;
	struct bus *bus;
	struct bus_claim claim; /* [base, base + 8) */
	struct irq_line irq;
	struct char_port port;

	uint8_t rx[UART_FIFO_SIZE];
	uint8_t rx_head;
	uint8_t rx_count;
	uint8_t ier, fcr, lcr, mcr, scr, dll, dlm;
	uint8_t lsr;       /* only the sticky bits (OE); DR/THRE/TEMT are derived */
	uint8_t msr;       /* status bits and latched deltas */
	bool thr_ipending; /* THR-empty interrupt condition */
	bool rx_blocked;   /* refused host input; call port.rx_space on room */
	int irq_level;     /* level last driven on the line */
};

static struct uart *to_uart(struct device *dev)
{
	return container_of(dev, struct uart, dev);
}

static unsigned int rx_capacity(const struct uart *u)
{
	return (u->fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

static unsigned int rx_trigger(const struct uart *u)
{
	static const unsigned int levels[4] = { 1, 4, 8, 14 };

	return (u->fcr & FCR_ENABLE) ? levels[u->fcr >> 6] : 1;
}

/* Modem status inputs: wired to MCR outputs in loopback, otherwise a
 * permanently connected, ready peer (DCD, DSR, CTS). */
static uint8_t msr_inputs(uint8_t mcr)
{
	uint8_t v = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	if (mcr & MCR_RTS)
		v |= MSR_CTS;
	if (mcr & MCR_DTR)
		v |= MSR_DSR;
	if (mcr & MCR_OUT1)
		v |= MSR_RI;
	if (mcr & MCR_OUT2)
		v |= MSR_DCD;
	return v;
}

static void update_msr(struct uart *u)
{
	uint8_t old = u->msr & 0xf0, now = msr_inputs(u->mcr), changed = old ^ now;
	uint8_t delta = u->msr & MSR_DELTA;

	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		delta |= MSR_TERI;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	u->msr = now | delta;
}

/* The highest-priority pending source as IIR bits 0-3 (IIR_NONE if none). */
static uint8_t pending_source(const struct uart *u)
{
	if ((u->ier & IER_ELSI) && (u->lsr & LSR_OE))
		return IIR_RLSI;
	if ((u->ier & IER_ERBFI) && u->rx_count) {
		/* Below the trigger level a real 16550A reports a character
		 * timeout after 4 character times; we report it at once. */
		return u->rx_count >= rx_trigger(u) ? IIR_RDI : IIR_TIMEOUT;
	}
	if ((u->ier & IER_ETBEI) && u->thr_ipending)
		return IIR_THRI;
	if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTA))
		return IIR_MSI;
	return IIR_NONE;
}

static void update_irq(struct uart *u)
{
	int level = pending_source(u) != IIR_NONE;

	if (level != u->irq_level) {
		u->irq_level = level;
		irq_line_set(&u->irq, level);
	}
}

static bool can_accept(const struct uart *u)
{
	return !(u->mcr & MCR_LOOP) && u->rx_count < rx_capacity(u);
}

/* Called at the end of every locked operation: true when the backend should
 * be told it may send input again. */
static bool take_rx_notify(struct uart *u)
{
	if (u->rx_blocked && can_accept(u)) {
		u->rx_blocked = false;
		return true;
	}
	return false;
}

static void rx_clear(struct uart *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

static bool rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count >= rx_capacity(u))
		return false;
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = b;
	u->rx_count++;
	return true;
}

static uint8_t rx_pop(struct uart *u)
{
	uint8_t b;

	if (!u->rx_count)
		return 0;
	b = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
	u->rx_count--;
	return b;
}

/* A character arrived at the receiver from the loopback path. */
static void rx_loopback(struct uart *u, uint8_t b)
{
	if (rx_push(u, b))
		return;
	u->lsr |= LSR_OE;
	/* 16450 mode: the new character overwrites RBR. In FIFO mode the
	 * character in the shift register is lost and the FIFO is kept. */
	if (!(u->fcr & FCR_ENABLE))
		u->rx[u->rx_head] = b;
}

static uint8_t reg_read(struct uart *u, unsigned int reg)
{
	uint8_t v = 0, src;

	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		return rx_pop(u);
	case REG_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case REG_IIR_FCR:
		src = pending_source(u);
		/* Reading IIR while THRE is the reported source clears it. */
		if (src == IIR_THRI)
			u->thr_ipending = false;
		return src | ((u->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0);
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		v = u->lsr | LSR_THRE | LSR_TEMT;
		if (u->rx_count)
			v |= LSR_DR;
		u->lsr &= (uint8_t)~LSR_OE; /* error bits clear on read */
		return v;
	case REG_MSR:
		v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTA;
		return v;
	case REG_SCR:
		return u->scr;
	}
	return 0xff;
}

/* Returns true when `*out` holds a byte to send to the console. */
static bool reg_write(struct uart *u, unsigned int reg, uint8_t v, uint8_t *out)
{
	uint8_t old;

	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			return false;
		}
		/* The byte leaves at once, so THR is empty again right away:
		 * writing clears the THRE interrupt and emptying re-arms it. */
		u->thr_ipending = (u->ier & IER_ETBEI) != 0;
		if (u->mcr & MCR_LOOP) {
			rx_loopback(u, v);
			return false;
		}
		*out = v;
		return true;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			return false;
		}
		old = u->ier;
		u->ier = v & IER_MASK;
		/* Enabling ETBEI while THR is empty raises THRE immediately
		 * (Linux's THRE probing relies on this). */
		if ((u->ier & IER_ETBEI) && !(old & IER_ETBEI))
			u->thr_ipending = true;
		else if (!(u->ier & IER_ETBEI))
			u->thr_ipending = false;
		return false;
	case REG_IIR_FCR:
		/* Toggling FIFO enable resets both FIFOs. */
		if ((v ^ u->fcr) & FCR_ENABLE)
			rx_clear(u);
		if (v & FCR_CLEAR_RX)
			rx_clear(u);
		/* FCR_CLEAR_TX: the transmitter is always empty already. Other
		 * bits only take effect while bit 0 is written as 1. */
		u->fcr = (v & FCR_ENABLE) ? (v & FCR_STORED) : 0;
		return false;
	case REG_LCR:
		u->lcr = v;
		return false;
	case REG_MCR:
		u->mcr = v & MCR_MASK;
		update_msr(u);
		return false;
	case REG_SCR:
		u->scr = v;
		return false;
	}
	/* LSR and MSR writes are factory test features: ignored. */
	return false;
}

static void uart_io(struct device *dev, struct bus_access *a)
{
	struct uart *u = to_uart(dev);
	uint64_t reg = a->offset;
	bool send = false, notify;
	uint8_t out = 0;

	if (a->len != 1 || reg >= UART_NR_REGS) {
		io_fill_ones(a);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (a->is_write)
		send = reg_write(u, (unsigned int)reg, a->data[0], &out);
	else
		a->data[0] = reg_read(u, (unsigned int)reg);
	update_irq(u);
	notify = take_rx_notify(u);
	pthread_mutex_unlock(&u->lock);
	/* Backend callbacks run unlocked so they may call uart_receive(). The
	 * guest serialises its own THR writes, so order is kept. */
	if (send && u->port.write)
		u->port.write(u->port.ctx, &out, 1);
	if (notify && u->port.rx_space)
		u->port.rx_space(u->port.ctx);
}

size_t uart_receive(struct device *dev, const uint8_t *buf, size_t n)
{
	struct uart *u;
	size_t done = 0;

	if (!dev || !buf || !n)
		return 0;
	u = to_uart(dev);
	pthread_mutex_lock(&u->lock);
	if (!(u->mcr & MCR_LOOP)) { /* loopback disconnects the serial input */
		while (done < n && rx_push(u, buf[done]))
			done++;
	}
	if (done < n)
		u->rx_blocked = true;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return done;
}

static void uart_reset_locked(struct uart *u)
{
	rx_clear(u);
	u->ier = 0;
	u->fcr = 0;
	u->lcr = 0;
	u->mcr = 0;
	u->scr = 0;
	u->dll = 0x0c; /* 9600 baud with the usual 1.8432 MHz clock */
	u->dlm = 0;
	u->lsr = 0;
	u->msr = msr_inputs(0);
	u->thr_ipending = false;
}

static void uart_reset(struct device *dev)
{
	struct uart *u = to_uart(dev);
	bool notify;

	pthread_mutex_lock(&u->lock);
	uart_reset_locked(u);
	update_irq(u);
	notify = take_rx_notify(u);
	pthread_mutex_unlock(&u->lock);
	if (notify && u->port.rx_space)
		u->port.rx_space(u->port.ctx);
}

static void uart_save(struct device *dev, struct ser_writer *w)
{
	struct uart *u = to_uart(dev);

	pthread_mutex_lock(&u->lock);
	ser_put_u8(w, UART_STATE_VERSION);
	ser_put_u8(w, u->ier);
	ser_put_u8(w, u->fcr);
	ser_put_u8(w, u->lcr);
	ser_put_u8(w, u->mcr);
	ser_put_u8(w, u->lsr);
	ser_put_u8(w, u->msr);
	ser_put_u8(w, u->scr);
	ser_put_u8(w, u->dll);
	ser_put_u8(w, u->dlm);
	ser_put_u8(w, u->thr_ipending);
	ser_put_u8(w, u->rx_blocked);
	ser_put_u8(w, u->rx_count);
	for (unsigned int i = 0; i < u->rx_count; i++)
		ser_put_u8(w, u->rx[(u->rx_head + i) % UART_FIFO_SIZE]);
	pthread_mutex_unlock(&u->lock);
}

static int uart_load(struct device *dev, struct ser_reader *r)
{
	struct uart *u = to_uart(dev);
	struct uart t;
	uint8_t thri, blocked;
	bool notify;

	if (ser_get_u8(r) != UART_STATE_VERSION)
		return -1;
	t.ier = ser_get_u8(r);
	t.fcr = ser_get_u8(r);
	t.lcr = ser_get_u8(r);
	t.mcr = ser_get_u8(r);
	t.lsr = ser_get_u8(r);
	t.msr = ser_get_u8(r);
	t.scr = ser_get_u8(r);
	t.dll = ser_get_u8(r);
	t.dlm = ser_get_u8(r);
	thri = ser_get_u8(r);
	blocked = ser_get_u8(r);
	t.rx_count = ser_get_u8(r);
	if (r->err || (t.ier & ~IER_MASK) || (t.fcr & ~FCR_STORED) || (!(t.fcr & FCR_ENABLE) && t.fcr) ||
	    (t.mcr & ~MCR_MASK) || (t.lsr & ~LSR_OE) || (t.msr & 0xf0) != msr_inputs(t.mcr) || thri > 1 ||
	    blocked > 1 || t.rx_count > rx_capacity(&t))
		return -1;
	ser_get_bytes(r, t.rx, t.rx_count);
	if (r->err)
		return -1;

	pthread_mutex_lock(&u->lock);
	u->ier = t.ier;
	u->fcr = t.fcr;
	u->lcr = t.lcr;
	u->mcr = t.mcr;
	u->lsr = t.lsr;
	u->msr = t.msr;
	u->scr = t.scr;
	u->dll = t.dll;
	u->dlm = t.dlm;
	u->thr_ipending = thri;
	u->rx_blocked = blocked;
	u->rx_head = 0;
	u->rx_count = t.rx_count;
	for (unsigned int i = 0; i < t.rx_count; i++)
		u->rx[i] = t.rx[i];
	/* The line's real level is unknown after a restore: drive it. */
	u->irq_level = pending_source(u) != IIR_NONE;
	irq_line_set(&u->irq, u->irq_level);
	notify = take_rx_notify(u);
	pthread_mutex_unlock(&u->lock);
	if (notify && u->port.rx_space)
		u->port.rx_space(u->port.ctx);
	return 0;
}

static void uart_destroy(struct device *dev)
{
	struct uart *u = to_uart(dev);

	bus_unregister_all(u->bus, &u->claim, 1, dev);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static const struct device_ops uart_ops = {
	.type = "uart",
	.io = uart_io,
	.reset = uart_reset,
	.save = uart_save,
	.load = uart_load,
	.destroy = uart_destroy,
};

struct device *uart_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq,
			   struct char_port port)
{
	struct uart *u;

	if (!bus) {
		log_error("uart %s: no bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		log_error("uart %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	u->dev.ops = &uart_ops;
	io_set_name(&u->dev, name);
	u->bus = bus;
	u->irq = irq;
	u->port = port;
	pthread_mutex_init(&u->lock, NULL);
	uart_reset_locked(u);
	u->claim = (struct bus_claim){ base, UART_NR_REGS };
	if (bus_register_all(bus, &u->claim, 1, &u->dev) < 0) {
		pthread_mutex_destroy(&u->lock);
		free(u);
		return NULL;
	}
	return &u->dev;
}
