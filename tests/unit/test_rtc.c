/* Unit tests for the MC146818 RTC model, with an injected host clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "devices/rtc.h"
#include "fakes.h"

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct timespec now;
	int irq_calls;
};

static void fake_clock(void *p, struct timespec *ts)
{
	*ts = ((struct ctx *)p)->now;
}

static void fake_irq(void *p, uint32_t gsi, int level)
{
	((struct ctx *)p)->irq_calls++;
}

static time_t utc(int y, int mon, int d, int h, int mi, int s)
{
	struct tm tm = {
		.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s
	};

	return timegm(&tm);
}

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_PIO);

	c->fx.dev = rtc_create("rtc", &c->fx.bus, X86_RTC_PORT,
			       (struct irq_line){ .set = fake_irq, .ctx = c, .gsi = X86_RTC_IRQ });
	assert_non_null(c->fx.dev);
	c->now.tv_sec = utc(2024, 2, 29, 13, 45, 56); /* a Thursday */
	rtc_set_clock(c->fx.dev, fake_clock, c);
	return 0;
}

static uint8_t cmos_rd(struct ctx *c, uint8_t idx)
{
	uint8_t v = idx | 0x80; /* NMI mask bit must be ignored */

	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT, &v, 1, true));
	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT + 1, &v, 1, false));
	return v;
}

static void cmos_wr(struct ctx *c, uint8_t idx, uint8_t v)
{
	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT, &idx, 1, true));
	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT + 1, &v, 1, true));
}

static void test_bcd_24h_default(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(cmos_rd(c, 0x0b), 0x02);
	assert_int_equal(cmos_rd(c, 0x00), 0x56);
	assert_int_equal(cmos_rd(c, 0x02), 0x45);
	assert_int_equal(cmos_rd(c, 0x04), 0x13);
	assert_int_equal(cmos_rd(c, 0x06), 0x05); /* Thursday, Sunday = 1 */
	assert_int_equal(cmos_rd(c, 0x07), 0x29);
	assert_int_equal(cmos_rd(c, 0x08), 0x02);
	assert_int_equal(cmos_rd(c, 0x09), 0x24);
	assert_int_equal(cmos_rd(c, RTC_CENTURY_INDEX), 0x20);
	assert_int_equal(cmos_rd(c, 0x0d), 0x80);
	assert_int_equal(cmos_rd(c, 0x0a) & 0x80, 0); /* UIP clear mid-second */
	c->now.tv_sec += 61;
	assert_int_equal(cmos_rd(c, 0x00), 0x57);
	assert_int_equal(cmos_rd(c, 0x02), 0x46);
}

static void test_binary_12h(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0b, 0x04); /* binary, 12-hour */
	assert_int_equal(cmos_rd(c, 0x00), 56);
	assert_int_equal(cmos_rd(c, 0x04), 0x80 | 1); /* 1 PM */
	assert_int_equal(cmos_rd(c, 0x09), 24);
	cmos_wr(c, 0x0b, 0x00); /* BCD, 12-hour */
	assert_int_equal(cmos_rd(c, 0x04), 0x81);
	c->now.tv_sec = utc(2024, 3, 1, 0, 30, 0);
	assert_int_equal(cmos_rd(c, 0x04), 0x12); /* midnight is 12 AM */
	c->now.tv_sec = utc(2024, 3, 1, 12, 5, 0);
	assert_int_equal(cmos_rd(c, 0x04), 0x92); /* noon is 12 PM */
	c->now.tv_sec = utc(2024, 3, 1, 23, 0, 0);
	assert_int_equal(cmos_rd(c, 0x04), 0x91);
}

static void test_set_time(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0b, 0x82); /* SET, BCD, 24h */
	c->now.tv_sec += 5;     /* frozen while SET */
	assert_int_equal(cmos_rd(c, 0x00), 0x56);
	cmos_wr(c, 0x00, 0x10);
	cmos_wr(c, 0x02, 0x20);
	cmos_wr(c, 0x04, 0x08);
	cmos_wr(c, 0x07, 0x31);
	cmos_wr(c, 0x08, 0x12);
	cmos_wr(c, 0x09, 0x99);
	cmos_wr(c, RTC_CENTURY_INDEX, 0x19);
	cmos_wr(c, 0x0b, 0x02);                    /* run from 1999-12-31 08:20:10 */
	c->now.tv_sec += 3600 * 16 + 39 * 60 + 50; /* -> 2000-01-01 01:00:00 */
	assert_int_equal(cmos_rd(c, 0x09), 0x00);
	assert_int_equal(cmos_rd(c, RTC_CENTURY_INDEX), 0x20);
	assert_int_equal(cmos_rd(c, 0x08), 0x01);
	assert_int_equal(cmos_rd(c, 0x07), 0x01);
	assert_int_equal(cmos_rd(c, 0x04), 0x01);
	assert_int_equal(cmos_rd(c, 0x02), 0x00);
	assert_int_equal(cmos_rd(c, 0x06), 0x07); /* Saturday */

	/* A single field written without SET changes the running clock. */
	cmos_wr(c, 0x02, 0x30);
	assert_int_equal(cmos_rd(c, 0x02), 0x30);
	assert_int_equal(cmos_rd(c, 0x04), 0x01);

	/* Invalid values (bad BCD, Feb 30) leave the clock alone. */
	cmos_wr(c, 0x02, 0x7a);
	assert_int_equal(cmos_rd(c, 0x02), 0x30);
	cmos_wr(c, 0x0b, 0x82);
	cmos_wr(c, 0x08, 0x02);
	cmos_wr(c, 0x07, 0x30);
	cmos_wr(c, 0x0b, 0x02);
	assert_int_equal(cmos_rd(c, 0x08), 0x01);
	assert_int_equal(cmos_rd(c, 0x07), 0x01);
}

static void test_set_time_12h(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0b, 0x84);      /* SET, binary, 12h */
	cmos_wr(c, 0x04, 0x80 | 12); /* 12 PM = noon */
	cmos_wr(c, 0x0b, 0x06);      /* binary, 24h */
	assert_int_equal(cmos_rd(c, 0x04), 12);
}

static void test_regs_and_nvram(void **state)
{
	struct ctx *c = *state;
	uint8_t v;

	cmos_wr(c, 0x0a, 0xa6); /* UIP is read-only */
	assert_int_equal(cmos_rd(c, 0x0a), 0x26);
	cmos_wr(c, 0x0c, 0xff);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	cmos_wr(c, 0x0d, 0x00);
	assert_int_equal(cmos_rd(c, 0x0d), 0x80);
	for (int i = 0x0e; i < 0x80; i++)
		if (i != RTC_CENTURY_INDEX)
			cmos_wr(c, (uint8_t)i, (uint8_t)(i * 3));
	for (int i = 0x0e; i < 0x80; i++)
		if (i != RTC_CENTURY_INDEX)
			assert_int_equal(cmos_rd(c, (uint8_t)i), (uint8_t)(i * 3));
	/* Alarm registers are plain storage. */
	cmos_wr(c, 0x01, 0x33);
	assert_int_equal(cmos_rd(c, 0x01), 0x33);
	/* The index port is write-only; odd sizes read all ones. */
	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT, &v, 1, false));
	assert_int_equal(v, 0xff);
	uint8_t w[2] = { 0, 0 };
	assert_true(bus_dispatch(&c->fx.bus, X86_RTC_PORT, w, 2, false));
	assert_int_equal(w[0] & w[1], 0xff);
	/* UIP shows in the last 244 us of a second. */
	c->now.tv_nsec = 999900000L;
	assert_int_equal(cmos_rd(c, 0x0a) & 0x80, 0x80);
	assert_int_equal(c->irq_calls, 0);
}

static void test_save_load(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;

	cmos_wr(c, 0x0b, 0x82);
	cmos_wr(c, 0x09, 0x28); /* 2028: Feb 29 stays valid */
	cmos_wr(c, 0x0b, 0x02);
	cmos_wr(c, 0x40, 0xab);
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	assert_false(w.err);

	cmos_wr(c, 0x0b, 0x82);
	cmos_wr(c, 0x09, 0x10);
	cmos_wr(c, 0x0b, 0x06);
	cmos_wr(c, 0x40, 0x00);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(cmos_rd(c, 0x09), 0x28);
	assert_int_equal(cmos_rd(c, 0x40), 0xab);
	assert_int_equal(cmos_rd(c, 0x0b), 0x02);

	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[1] = 0x80; /* index out of range */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_writer_free(&w);
}

static void test_reset_keeps_time(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0b, 0x72); /* PIE | AIE | UIE */
	cmos_wr(c, 0x50, 0x77);
	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(cmos_rd(c, 0x0b), 0x02);
	assert_int_equal(cmos_rd(c, 0x50), 0x77);
}

/* The ports are the architecture's: an RTC on an MMIO bus at another base
 * decodes index and data there and nothing at x86's ports. */
static void test_placement_from_config(void **state)
{
	struct bus mmio;
	struct device *d;
	uint8_t v;

	bus_init(&mmio, BUS_MMIO);
	d = rtc_create("rtc", &mmio, 0x9000, (struct irq_line){ 0 });
	assert_non_null(d);
	v = 0x5a;
	assert_true(bus_dispatch(&mmio, 0x9000, &v, 1, true));
	v = 0xc3;
	assert_true(bus_dispatch(&mmio, 0x9001, &v, 1, true));
	v = 0x5a;
	assert_true(bus_dispatch(&mmio, 0x9000, &v, 1, true));
	v = 0;
	assert_true(bus_dispatch(&mmio, 0x9001, &v, 1, false));
	assert_int_equal(v, 0xc3);
	assert_false(bus_dispatch(&mmio, X86_RTC_PORT, &v, 1, false));
	assert_false(bus_dispatch(&mmio, 0x9002, &v, 1, false));
	device_and_bus_destroy(d, &mmio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_from_config),
		cmocka_unit_test_setup_teardown(test_bcd_24h_default, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_binary_12h, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_set_time, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_set_time_12h, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_regs_and_nvram, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_reset_keeps_time, setup, bus_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
