/* Unit tests for the PL031 RTC model (the arm64 guest's RTC), with an injected host clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/bus.h"
#include "core/ser.h"
#include "devices/pl031.h"
#include "fakes.h"

#define BASE 0x09010000ULL
#define GSI  34

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct timespec now;
	struct fake_irq irq;
};

static void fake_clock(void *p, struct timespec *ts)
{
	*ts = ((struct ctx *)p)->now;
}

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_MMIO);

	c->fx.dev = pl031_create("pl031", &c->fx.bus, BASE, fake_irq_line(&c->irq, GSI, true));
	assert_non_null(c->fx.dev);
	c->now.tv_sec = 1700000000;
	pl031_set_clock(c->fx.dev, fake_clock, c);
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

static void test_counter_is_host_time(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(rd(c, PL031_DR), 1700000000);
	c->now.tv_sec += 5;
	assert_int_equal(rd(c, PL031_DR), 1700000005);
	assert_int_equal(rd(c, PL031_CR), 1); /* running from reset */
	wr(c, PL031_CR, 0);                   /* cannot be stopped */
	assert_int_equal(rd(c, PL031_CR), 1);
	wr(c, PL031_DR, 7); /* read-only */
	assert_int_equal(rd(c, PL031_DR), 1700000005);
}

static void test_load_sets_counter(void **state)
{
	struct ctx *c = *state;

	wr(c, PL031_LR, 1000);
	assert_int_equal(rd(c, PL031_DR), 1000);
	assert_int_equal(rd(c, PL031_LR), 1000);
	c->now.tv_sec += 61;
	assert_int_equal(rd(c, PL031_DR), 1061);
}

static void test_primecell_ids(void **state)
{
	struct ctx *c = *state;
	const uint8_t want[8] = { 0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1 };

	for (int i = 0; i < 8; i++)
		assert_int_equal(rd(c, PL031_ID + 4 * (uint64_t)i), want[i]);
}

static void test_match_interrupt(void **state)
{
	struct ctx *c = *state;

	wr(c, PL031_MR, 1700000010);
	wr(c, PL031_IMSC, 1);
	assert_int_equal(rd(c, PL031_RIS), 0);
	assert_int_equal(c->irq.level, 0);
	c->now.tv_sec += 10; /* the counter reaches MR */
	assert_int_equal(rd(c, PL031_RIS), 1);
	assert_int_equal(rd(c, PL031_MIS), 1);
	assert_int_equal(c->irq.level, 1);
	/* Masking drops the line, not the raw status. */
	wr(c, PL031_IMSC, 0);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, PL031_RIS), 1);
	assert_int_equal(rd(c, PL031_MIS), 0);
	wr(c, PL031_IMSC, 1);
	assert_int_equal(c->irq.level, 1);
	wr(c, PL031_ICR, 1);
	assert_int_equal(rd(c, PL031_RIS), 0);
	assert_int_equal(c->irq.level, 0);
	/* Matched once: time going on does not raise it again until MR is written. */
	c->now.tv_sec += 100;
	assert_int_equal(rd(c, PL031_RIS), 0);
	assert_int_equal(c->irq.gsi, GSI);
}

static void test_bad_accesses(void **state)
{
	struct ctx *c = *state;
	uint8_t b[8];

	memset(b, 0, sizeof(b));
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL031_DR, b, 1, false)); /* byte read */
	assert_int_equal(b[0], 0xff);
	memset(b, 0, sizeof(b));
	assert_true(bus_dispatch(&c->fx.bus, BASE + 2, b, 4, false)); /* unaligned */
	assert_int_equal(get_le32(b), 0xffffffff);
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL031_DR, b, 8, false)); /* 64-bit */
	put_le32(b, 5);
	assert_true(bus_dispatch(&c->fx.bus, BASE + PL031_LR, b, 2, true)); /* ignored */
	assert_int_equal(rd(c, PL031_LR), 0);
	assert_int_equal(rd(c, 0x800), 0); /* reserved word */
	assert_false(bus_dispatch(&c->fx.bus, BASE + PL031_MMIO_SIZE, b, 4, false));
}

static void test_save_load_and_reset(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;

	wr(c, PL031_LR, 5000);
	assert_int_equal(rd(c, PL031_RIS), 0); /* MR (0) is behind the new counter: no match */
	wr(c, PL031_MR, 5003);
	wr(c, PL031_IMSC, 1);
	assert_int_equal(rd(c, PL031_RIS), 0);
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	assert_false(w.err);
	/* Scramble, then load: the counter is the saved offset from host time. */
	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(rd(c, PL031_MR), 0);
	assert_int_equal(rd(c, PL031_DR), 5000); /* reset keeps the counter */
	wr(c, PL031_LR, 1);
	ser_reader_init(&r, w.buf, w.len);
	c->irq.edges_only = false; /* a load re-drives the line at its level */
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_int_equal(c->irq.level, 0);
	c->irq.edges_only = true;
	assert_true(ser_reader_done(&r));
	assert_int_equal(rd(c, PL031_DR), 5000);
	assert_int_equal(rd(c, PL031_MR), 5003);
	c->now.tv_sec += 2;
	assert_int_equal(rd(c, PL031_RIS), 0);
	c->now.tv_sec += 1;
	assert_int_equal(rd(c, PL031_RIS), 1); /* the match was still armed */
	assert_int_equal(c->irq.level, 1);
	/* Malformed: wrong version, truncated, out-of-range fields. */
	w.buf[0] = 9;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[0] = 1;
	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[w.len - 1] = 2; /* armed is a bool */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[w.len - 1] = 0;
	w.buf[8] = 0x40; /* offset far beyond a 32-bit counter */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	assert_int_equal(rd(c, PL031_MR), 5003); /* a refused load changes nothing */
	ser_writer_free(&w);
}

static void test_range_taken(void **state)
{
	struct ctx *c = *state;
	struct fake_irq irq;

	assert_null(pl031_create("again", &c->fx.bus, BASE + 0x800, fake_irq_line(&irq, GSI, false)));
	assert_null(pl031_create("nobus", NULL, BASE, fake_irq_line(&irq, GSI, false)));
	assert_string_equal(c->fx.dev->ops->type, "rtc"); /* kept across guest reboots like the CMOS RTC */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter_is_host_time, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_load_sets_counter, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_primecell_ids, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_match_interrupt, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_bad_accesses, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load_and_reset, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_range_taken, setup, bus_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
