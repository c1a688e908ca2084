/* Unit tests for the PL061 GPIO model (the arm64 guest's power button): the masked data
 * register, edge and level interrupts, the timed key press on a real loop, saved state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/bus.h"
#include "core/loop.h"
#include "core/ser.h"
#include "devices/pl061.h"
#include "fakes.h"

#define BASE 0x09020000ULL
#define GSI  39
#define KEY  (1u << PL061_POWER_PIN)

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct fake_irq irq;
	struct loop *loop;
};

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_MMIO);

	c->loop = loop_create();
	assert_non_null(c->loop);
	c->fx.dev = pl061_create("pl061", &c->fx.bus, BASE, fake_irq_line(&c->irq, GSI, true), c->loop);
	assert_non_null(c->fx.dev);
	return 0;
}

static int teardown(void **state)
{
	struct loop *l = ((struct ctx *)*state)->loop;

	bus_fixture_free(state); /* the device (and its timer) before the loop */
	loop_destroy(l);
	return 0;
}

static uint32_t rd(struct ctx *c, uint64_t off)
{
	return bus_fixture_read(&c->fx, BASE + off, 4);
}

static void wr(struct ctx *c, uint64_t off, uint32_t v)
{
	bus_fixture_write(&c->fx, BASE + off, 4, v);
}

static void test_primecell_ids(void **state)
{
	static const uint8_t want[8] = { 0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1 };
	struct ctx *c = *state;

	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(rd(c, PL061_ID + 4 * i), want[i]);
}

/* Address bits [9:2] select the pins a data access touches; inputs cannot be written. */
static void test_masked_data(void **state)
{
	struct ctx *c = *state;

	wr(c, PL061_DIR, 0x0f); /* pins 0-3 out, 4-7 in */
	wr(c, PL061_DATA + (0xff << 2), 0xff);
	assert_int_equal(rd(c, PL061_DATA + (0xff << 2)), 0x0f);
	wr(c, PL061_DATA + (0x01 << 2), 0x00); /* only pin 0 */
	assert_int_equal(rd(c, PL061_DATA + (0xff << 2)), 0x0e);
	assert_int_equal(rd(c, PL061_DATA + (0x06 << 2)), 0x06);
	assert_int_equal(rd(c, PL061_DATA), 0); /* no address bits: no pins */
	pl061_set_input(c->fx.dev, 5, true);
	pl061_set_input(c->fx.dev, 1, false); /* an output: the host cannot drive it */
	assert_int_equal(rd(c, PL061_DATA + (0xff << 2)), 0x2e);
	pl061_set_input(c->fx.dev, 9, true); /* no such pin */
	assert_int_equal(rd(c, PL061_DATA + (0xff << 2)), 0x2e);
	assert_int_equal(c->irq.nlevels, 0); /* no interrupt enabled */
}

/* Both edges (what gpio-keys asks for): each latched until cleared; the line follows IE. */
static void test_both_edges(void **state)
{
	struct ctx *c = *state;

	wr(c, PL061_IBE, KEY);
	wr(c, PL061_IE, KEY);
	pl061_set_input(c->fx.dev, PL061_POWER_PIN, true);
	assert_int_equal(rd(c, PL061_RIS), KEY);
	assert_int_equal(rd(c, PL061_MIS), KEY);
	assert_int_equal(c->irq.level, 1);
	wr(c, PL061_IC, KEY);
	assert_int_equal(rd(c, PL061_RIS), 0);
	assert_int_equal(c->irq.level, 0);
	pl061_set_input(c->fx.dev, PL061_POWER_PIN, false);
	assert_int_equal(rd(c, PL061_RIS), KEY);
	assert_int_equal(c->irq.level, 1);
	wr(c, PL061_IE, 0); /* masked: the status stays, the line drops */
	assert_int_equal(rd(c, PL061_RIS), KEY);
	assert_int_equal(rd(c, PL061_MIS), 0);
	assert_int_equal(c->irq.level, 0);
}

/* One edge: IEV picks rising or falling; the other is not latched. */
static void test_single_edge(void **state)
{
	struct ctx *c = *state;

	wr(c, PL061_IEV, 0x01); /* pin 0 rising, pin 1 falling */
	wr(c, PL061_IE, 0x03);
	pl061_set_input(c->fx.dev, 0, true);
	pl061_set_input(c->fx.dev, 1, true);
	assert_int_equal(rd(c, PL061_RIS), 0x01);
	wr(c, PL061_IC, 0x03);
	pl061_set_input(c->fx.dev, 0, false);
	pl061_set_input(c->fx.dev, 1, false);
	assert_int_equal(rd(c, PL061_RIS), 0x02);
	assert_int_equal(c->irq.level, 1);
	/* An output pin's own change is an edge too. */
	wr(c, PL061_IC, 0xff);
	wr(c, PL061_DIR, 0x04);
	wr(c, PL061_IEV, 0x05);
	wr(c, PL061_IE, 0x04);
	wr(c, PL061_DATA + (0x04 << 2), 0x04);
	assert_int_equal(rd(c, PL061_RIS), 0x04);
}

/* Level sense: the status is the level while it matches IEV, and IC does not clear it. */
static void test_level(void **state)
{
	struct ctx *c = *state;

	wr(c, PL061_IS, KEY);
	wr(c, PL061_IEV, KEY);
	wr(c, PL061_IE, KEY);
	assert_int_equal(rd(c, PL061_RIS), 0);
	pl061_set_input(c->fx.dev, PL061_POWER_PIN, true);
	assert_int_equal(c->irq.level, 1);
	wr(c, PL061_IC, KEY);
	assert_int_equal(rd(c, PL061_RIS), KEY);
	pl061_set_input(c->fx.dev, PL061_POWER_PIN, false);
	assert_int_equal(rd(c, PL061_RIS), 0);
	assert_int_equal(c->irq.level, 0);
	wr(c, PL061_IEV, 0); /* low level now */
	assert_int_equal(rd(c, PL061_RIS), KEY);
	assert_int_equal(c->irq.level, 1);
}

/* The power button's press: high now, low again PL061_PULSE_MS later by the loop's timer. */
static void test_pulse(void **state)
{
	struct ctx *c = *state;
	double t0;

	wr(c, PL061_IBE, KEY);
	wr(c, PL061_IE, KEY);
	t0 = now_ms();
	assert_int_equal(pl061_pulse(c->fx.dev, PL061_POWER_PIN), 0);
	assert_int_equal(rd(c, PL061_DATA + (KEY << 2)), KEY);
	assert_int_equal(c->irq.level, 1);
	wr(c, PL061_IC, KEY);
	while (rd(c, PL061_DATA + (KEY << 2)) && now_ms() - t0 < 5000)
		assert_true(loop_run_once(c->loop, 1000) >= 0);
	assert_int_equal(rd(c, PL061_DATA + (KEY << 2)), 0);
	assert_true(now_ms() - t0 >= PL061_PULSE_MS - 1);
	assert_int_equal(rd(c, PL061_RIS), KEY); /* the release's edge */
	assert_int_equal(pl061_pulse(c->fx.dev, PL061_PINS), -1);
}

static void test_pulse_needs_loop(void **state)
{
	struct ctx *c = *state;
	struct bus bus;
	struct fake_irq irq;
	struct device *d;

	bus_init(&bus, BUS_MMIO);
	d = pl061_create("nl", &bus, BASE, fake_irq_line(&irq, GSI, true), NULL);
	assert_non_null(d);
	assert_int_equal(pl061_pulse(d, PL061_POWER_PIN), -1);
	device_and_bus_destroy(d, &bus);
	(void)c;
}

static void test_save_load_and_reset(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	double t0 = now_ms();

	wr(c, PL061_DIR, 0x81);
	wr(c, PL061_DATA + (0xff << 2), 0x81);
	wr(c, PL061_IBE, KEY);
	wr(c, PL061_IE, KEY);
	wr(c, PL061_AFSEL, 0x40);
	assert_int_equal(pl061_pulse(c->fx.dev, PL061_POWER_PIN), 0); /* saved while pressed */
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	assert_false(w.err);
	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(rd(c, PL061_DIR), 0);
	assert_int_equal(rd(c, PL061_IE), 0);
	assert_int_equal(rd(c, PL061_RIS), 0);
	assert_int_equal(c->irq.level, 0);
	ser_reader_init(&r, w.buf, w.len);
	c->irq.edges_only = false; /* a load re-drives the line at its level */
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	c->irq.edges_only = true;
	assert_true(ser_reader_done(&r));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(rd(c, PL061_DIR), 0x81);
	assert_int_equal(rd(c, PL061_AFSEL), 0x40);
	assert_int_equal(rd(c, PL061_DATA + (0xff << 2)), 0x81 | KEY);
	/* The press in progress is released after the load too. */
	while (rd(c, PL061_DATA + (KEY << 2)) && now_ms() - t0 < 5000)
		assert_true(loop_run_once(c->loop, 1000) >= 0);
	assert_int_equal(rd(c, PL061_DATA + (KEY << 2)), 0);
	/* Malformed: wrong version, truncated, a press on an input that is low. */
	w.buf[0] = 9;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[0] = 1;
	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[w.len - 2] = 0; /* in: low */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_writer_free(&w);
}

static void test_bad_accesses(void **state)
{
	struct ctx *c = *state;
	uint8_t b[4] = { 0 };

	/* Byte accesses, as Linux's driver makes them (readb/writeb). */
	b[0] = 0x08;
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL061_DIR, b, 1, true));
	assert_int_equal(rd(c, PL061_DIR), 0x08);
	b[0] = 0;
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL061_DIR, b, 1, false));
	assert_int_equal(b[0], 0x08);
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL061_ID, b, 1, false));
	assert_int_equal(b[0], 0x61);
	/* Not at a word's start, or 8 bytes: all ones, and ignored. */
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL061_DIR + 1, b, 2, false));
	assert_int_equal(b[0], 0xff);
	assert_int_equal(b[1], 0xff);
	b[0] = 0xff;
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL061_DIR + 1, b, 1, true));
	assert_int_equal(rd(c, PL061_DIR), 0x08);
	wr(c, PL061_DIR, 0);
	wr(c, PL061_RIS, 0xff); /* read-only */
	wr(c, PL061_ID, 0);
	assert_int_equal(rd(c, PL061_RIS), 0);
	assert_int_equal(rd(c, PL061_ID), 0x61);
	assert_int_equal(rd(c, 0x800), 0); /* reserved */
}

static void test_range_taken(void **state)
{
	struct ctx *c = *state;
	struct fake_irq irq;

	assert_null(pl061_create("again", &c->fx.bus, BASE, fake_irq_line(&irq, GSI, true), c->loop));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_primecell_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_masked_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_both_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_edge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pulse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pulse_needs_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_taken, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
