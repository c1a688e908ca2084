/* Unit tests for the i8042 controller model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/vm.h"
#include "devices/i8042.h"
#include "fakes.h"

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct fake_ctl ctl;
	struct fake_irq irq; /* only changes are reported, except around a restore */
};

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_PIO);

	c->fx.dev = i8042_create("i8042", &c->fx.bus, X86_I8042_DATA, X86_I8042_CMD,
				 fake_irq_line(&c->irq, X86_I8042_IRQ, true), fake_machine_ctl(&c->ctl));
	assert_non_null(c->fx.dev);
	return 0;
}

static uint8_t rd(struct ctx *c, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_dispatch(&c->fx.bus, port, &v, 1, false));
	return v;
}

static void wr(struct ctx *c, uint16_t port, uint8_t v)
{
	assert_true(bus_dispatch(&c->fx.bus, port, &v, 1, true));
}

static uint8_t status(struct ctx *c)
{
	return rd(c, X86_I8042_CMD);
}

static void test_self_tests(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(status(c) & 0x03, 0); /* OBF and IBF clear */
	wr(c, X86_I8042_CMD, 0xaa);
	assert_int_equal(status(c) & 0x03, 0x01);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x55);
	assert_int_equal(status(c) & 0x01, 0);
	wr(c, X86_I8042_CMD, 0xab);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x00);
	wr(c, X86_I8042_CMD, 0xa9);
	assert_int_equal(status(c) & 0x01, 0x01);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x00);
	assert_int_equal(c->ctl.nreq, 0);
}

static void test_command_byte(void **state)
{
	struct ctx *c = *state;

	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x45);
	wr(c, X86_I8042_CMD, 0x60);
	assert_int_equal(status(c) & 0x08, 0x08); /* last write was a command */
	wr(c, X86_I8042_DATA, 0xff);
	assert_int_equal(status(c) & 0x08, 0);
	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x77); /* reserved bits read 0 */
	wr(c, X86_I8042_CMD, 0xa7);
	wr(c, X86_I8042_CMD, 0xad);
	wr(c, X86_I8042_CMD, 0x60);
	wr(c, X86_I8042_DATA, 0x00);
	wr(c, X86_I8042_CMD, 0xa7);
	wr(c, X86_I8042_CMD, 0xad);
	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x30);
	wr(c, X86_I8042_CMD, 0xa8);
	wr(c, X86_I8042_CMD, 0xae);
	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x00);
}

static void test_irq_follows_obf(void **state)
{
	struct ctx *c = *state;

	/* KBDINT is on by default: a response raises IRQ 1 until read. */
	wr(c, X86_I8042_CMD, 0xaa);
	assert_int_equal(c->irq.level, 1);
	rd(c, X86_I8042_DATA);
	assert_int_equal(c->irq.level, 0);
	/* Aux data (0xD3) sets AUXDATA and does not raise the keyboard IRQ. */
	wr(c, X86_I8042_CMD, 0xd3);
	wr(c, X86_I8042_DATA, 0x5a);
	assert_int_equal(status(c) & 0x21, 0x21);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x5a);
	assert_int_equal(status(c) & 0x21, 0);
	/* 0xD2 echoes as keyboard data. */
	wr(c, X86_I8042_CMD, 0xd2);
	wr(c, X86_I8042_DATA, 0x1c);
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x1c);
	/* With KBDINT off, no interrupt. */
	wr(c, X86_I8042_CMD, 0x60);
	wr(c, X86_I8042_DATA, 0x44);
	wr(c, X86_I8042_CMD, 0xaa);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x55);
}

static void test_no_keyboard(void **state)
{
	struct ctx *c = *state;

	wr(c, X86_I8042_DATA, 0xf2); /* identify: nobody answers */
	assert_int_equal(status(c) & 0x01, 0);
	wr(c, X86_I8042_CMD, 0xd4);
	wr(c, X86_I8042_DATA, 0xff);
	assert_int_equal(status(c) & 0x01, 0);
	assert_int_equal(c->ctl.nreq, 0);
}

static void test_reset_requests(void **state)
{
	struct ctx *c = *state;

	wr(c, X86_I8042_CMD, 0xfe);
	assert_int_equal(c->ctl.nreq, 1);
	assert_int_equal(c->ctl.requests[0], VM_REBOOT);
	wr(c, X86_I8042_CMD, 0xff); /* pulses nothing */
	assert_int_equal(c->ctl.nreq, 1);
	wr(c, X86_I8042_CMD, 0xd0);
	assert_int_equal(rd(c, X86_I8042_DATA) & 0x01, 0x01);
	wr(c, X86_I8042_CMD, 0xd1);
	wr(c, X86_I8042_DATA, 0x03); /* reset line stays high */
	assert_int_equal(c->ctl.nreq, 1);
	wr(c, X86_I8042_CMD, 0xd1);
	wr(c, X86_I8042_DATA, 0x02); /* bit 0 clear: reset */
	assert_int_equal(c->ctl.nreq, 2);
	assert_int_equal(c->ctl.requests[1], VM_REBOOT);
}

static void test_odd_sizes_and_save_load(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint8_t buf[2] = { 0, 0 };

	assert_true(bus_dispatch(&c->fx.bus, X86_I8042_CMD, buf, 1, false));
	assert_true(bus_dispatch(&c->fx.bus, X86_I8042_DATA - 1, buf, 2, false) == false);
	wr(c, X86_I8042_CMD, 0x60);
	wr(c, X86_I8042_DATA, 0x47);
	wr(c, X86_I8042_CMD, 0xd1); /* pending data command */
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	c->fx.dev->ops->reset(c->fx.dev);
	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x45);
	ser_reader_init(&r, w.buf, w.len);
	c->irq.edges_only = false; /* a restore re-drives the line at its current level */
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	wr(c, X86_I8042_DATA, 0x00); /* completes the saved 0xD1 */
	assert_int_equal(c->ctl.nreq, 1);
	wr(c, X86_I8042_CMD, 0x20);
	assert_int_equal(rd(c, X86_I8042_DATA), 0x47);
	w.buf[w.len - 2] = 0x42; /* bogus pending command */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_reader_init(&r, w.buf, 3);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_writer_free(&w);
}

/* The ports are the architecture's: data and command/status anywhere. */
static void test_placement_from_config(void **state)
{
	struct fake_ctl ctl = { 0 };
	struct bus mmio;
	struct device *d;
	uint8_t v;

	bus_init(&mmio, BUS_MMIO);
	d = i8042_create("kbc", &mmio, 0x2004, 0x2000, (struct irq_line){ 0 }, fake_machine_ctl(&ctl));
	assert_non_null(d);
	v = 0xaa; /* self test, to the command port */
	assert_true(bus_dispatch(&mmio, 0x2000, &v, 1, true));
	assert_true(bus_dispatch(&mmio, 0x2000, &v, 1, false));
	assert_int_equal(v & 0x09, 0x09); /* OBF, last write was a command */
	assert_true(bus_dispatch(&mmio, 0x2004, &v, 1, false));
	assert_int_equal(v, 0x55);
	v = 0xfe; /* pulse reset */
	assert_true(bus_dispatch(&mmio, 0x2000, &v, 1, true));
	assert_int_equal(ctl.nreq, 1);
	assert_int_equal(ctl.requests[0], VM_REBOOT);
	assert_false(bus_dispatch(&mmio, X86_I8042_DATA, &v, 1, false));
	device_and_bus_destroy(d, &mmio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_from_config),
		cmocka_unit_test_setup_teardown(test_self_tests, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_command_byte, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_irq_follows_obf, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_no_keyboard, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_reset_requests, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_odd_sizes_and_save_load, setup, bus_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
