/* fakes.c - shared test stand-ins; see fakes.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakes.h"

#include "arch/x86/layout.h"
#include "devices/pci.h"

void fake_ram_init(struct fake_ram *r, const struct mem_region *layout, int nr)
{
	uint64_t total = 0;

	for (int i = 0; i < nr; i++)
		total += layout[i].size;
	r->buf = calloc(1, total);
	assert_non_null(r->buf);
	guest_mem_init_static(&r->mem, r->buf, layout, nr);
}

void fake_ram_init_flat(struct fake_ram *r, uint64_t size)
{
	const struct mem_region layout = { .gpa = 0, .size = size };

	fake_ram_init(r, &layout, 1);
}

void fake_ram_map(struct fake_ram *r, const struct mem_region *layout, int nr)
{
	r->buf = NULL;
	assert_int_equal(guest_mem_alloc(&r->mem, layout, nr), 0);
}

void fake_ram_free(struct fake_ram *r)
{
	if (r->buf)
		free(r->buf);
	else
		guest_mem_free(&r->mem);
	r->buf = NULL;
}

uint8_t *fake_host(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gpa_ptr(m, gpa, len);

	assert_non_null(p);
	return p;
}

void *bus_fixture_new(void **state, size_t size, enum bus_space space)
{
	struct bus_fixture *b;

	assert_true(size >= sizeof(*b));
	b = calloc(1, size);
	assert_non_null(b);
	bus_init(&b->bus, space);
	*state = b;
	return b;
}

int bus_fixture_free(void **state)
{
	struct bus_fixture *b = *state;

	b->dev->ops->destroy(b->dev);
	bus_destroy(&b->bus);
	free(b);
	return 0;
}

void fake_x86_pci_host(struct pci_host_config *cfg, struct bus *mmio, struct bus *pio, struct irq_line intx)
{
	*cfg = (struct pci_host_config){
		.mmio = mmio,
		.mem32 = { X86_PCI_MMIO_START, X86_PCI_MMIO_END - X86_PCI_MMIO_START },
		.mem64 = { X86_PCI_MMIO64_START, X86_PCI_MMIO64_SIZE },
		.io_bus = pio,
		.io = { X86_PCI_IO_START, X86_PCI_IO_SIZE },
		.io_bus_base = X86_PCI_IO_START,
		.intx = intx,
		.intx_gsi_base = X86_PCI_INTX_GSI_BASE,
		.intx_lines = X86_PCI_INTX_GSI_COUNT,
	};
}

uint32_t bus_fixture_read(struct bus_fixture *fx, uint64_t addr, unsigned len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	assert_true(len <= sizeof(b));
	assert_true(bus_dispatch(&fx->bus, addr, b, len, false));
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

void bus_fixture_write(struct bus_fixture *fx, uint64_t addr, unsigned len, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	assert_true(len <= sizeof(b));
	assert_true(bus_dispatch(&fx->bus, addr, b, len, true));
}

void device_and_bus_destroy(struct device *dev, struct bus *bus)
{
	dev->ops->destroy(dev);
	assert_int_equal(bus->nr, 0);
	bus_destroy(bus);
}

static void irq_record(void *ctx, uint32_t gsi, int level)
{
	struct fake_irq *f = ctx;

	assert_int_equal(gsi, f->gsi);
	if (f->edges_only)
		assert_int_not_equal(level, f->level); /* only changes are reported */
	if (f->nlevels < FAKE_IRQ_HISTORY)
		f->history[f->nlevels] = level;
	f->level = level;
	f->nlevels++;
}

struct irq_line fake_irq_line(struct fake_irq *f, uint32_t gsi, bool edges_only)
{
	memset(f, 0, sizeof(*f));
	f->gsi = gsi;
	f->edges_only = edges_only;
	return (struct irq_line){ .set = irq_record, .ctx = f, .gsi = gsi };
}

static void ctl_record(void *ctx, int reason)
{
	struct fake_ctl *f = ctx;

	if (f->nreq < FAKE_CTL_MAX)
		f->requests[f->nreq++] = reason;
}

struct machine_ctl fake_machine_ctl(struct fake_ctl *f)
{
	return (struct machine_ctl){ .request = ctl_record, .ctx = f };
}

/* ---- what the code under test prints ---- */

void stderr_capture_begin(struct stderr_capture *c)
{
	memset(c, 0, sizeof(*c));
	c->file = tmpfile();
	assert_non_null(c->file);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

const char *stderr_capture_end(struct stderr_capture *c)
{
	size_t n;

	fflush(stderr);
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	rewind(c->file);
	n = fread(c->text, 1, sizeof(c->text) - 1, c->file);
	c->text[n] = '\0';
	fclose(c->file);
	fputs(c->text, stderr);
	return c->text;
}
