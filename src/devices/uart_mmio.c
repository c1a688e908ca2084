/* uart_mmio.c - an MMIO window onto uart.c's 16550A (see uart_mmio.h). */
#include "uart_mmio.h"

#include <stdlib.h>

#include "../core/log.h"
#include "io_util.h"
#include "uart.h"

struct uart_mmio {
	struct device dev;
	struct bus *mmio;
	uint64_t base;
	struct bus port_bus; /* private: the UART's 8 registers at 0 */
	struct device *uart;
};

static struct uart_mmio *to_window(struct device *dev)
{
	return container_of(dev, struct uart_mmio, dev);
}

static void window_io(struct device *dev, struct bus_access *a)
{
	struct uart_mmio *w = to_window(dev);

	/* Offsets past the 8 registers reach the UART too: it reads them as all ones. */
	if (a->offset >= UART_MMIO_SIZE) {
		io_fill_ones(a);
		return;
	}
	bus_dispatch(&w->port_bus, a->offset, a->data, a->len, a->is_write);
}

static void window_reset(struct device *dev)
{
	struct device *u = to_window(dev)->uart;

	if (u->ops->reset)
		u->ops->reset(u);
}

static void window_save(struct device *dev, struct ser_writer *wr)
{
	struct device *u = to_window(dev)->uart;

	u->ops->save(u, wr);
}

static int window_load(struct device *dev, struct ser_reader *r)
{
	struct device *u = to_window(dev)->uart;

	return u->ops->load(u, r);
}

static void window_destroy(struct device *dev)
{
	struct uart_mmio *w = to_window(dev);

	bus_unregister(w->mmio, w->base, dev);
	if (w->uart)
		w->uart->ops->destroy(w->uart);
	bus_destroy(&w->port_bus);
	free(w);
}

static const struct device_ops uart_mmio_ops = {
	.type = "uart",
	.io = window_io,
	.reset = window_reset,
	.save = window_save,
	.load = window_load,
	.destroy = window_destroy,
};

struct device *uart_mmio_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq,
				struct char_port port, struct device **uart)
{
	struct uart_mmio *w;

	if (!mmio) {
		log_error("uart %s: no MMIO bus; this is a kvmbox bug", name ? name : "?");
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_error("uart %s: out of memory; free some host memory", name ? name : "?");
		return NULL;
	}
	w->dev.ops = &uart_mmio_ops;
	io_set_name(&w->dev, name);
	w->mmio = mmio;
	w->base = base;
	bus_init(&w->port_bus, BUS_PIO);
	w->uart = uart_create(name, &w->port_bus, 0, irq, port);
	if (!w->uart) {
		bus_destroy(&w->port_bus);
		free(w);
		return NULL;
	}
	if (bus_register(mmio, base, UART_MMIO_SIZE, &w->dev) < 0) {
		log_error("uart %s: MMIO 0x%llx-0x%llx is already in use; pick another base", w->dev.name,
			  (unsigned long long)base, (unsigned long long)(base + UART_MMIO_SIZE - 1));
		w->uart->ops->destroy(w->uart);
		bus_destroy(&w->port_bus);
		free(w);
		return NULL;
	}
	*uart = w->uart;
	return &w->dev;
}
