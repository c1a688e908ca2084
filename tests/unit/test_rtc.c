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
#include "core/loop.h"
#include "devices/rtc.h"
#include "fakes.h"

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct timespec now;
	struct fake_irq irq; /* edges only: the RTC drives its line only when the level changes */
	struct loop *loop;   /* runs the RTC's timer (a real timerfd; see fire()) */
};

static void fake_clock(void *p, struct timespec *ts)
{
	*ts = ((struct ctx *)p)->now;
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

	c->loop = loop_create();
	assert_non_null(c->loop);
	c->fx.dev = rtc_create("rtc", &c->fx.bus, X86_RTC_PORT, fake_irq_line(&c->irq, X86_RTC_IRQ, true),
			       c->loop);
	assert_non_null(c->fx.dev);
	c->now.tv_sec = utc(2024, 2, 29, 13, 45, 56); /* a Thursday */
	rtc_set_clock(c->fx.dev, fake_clock, c);
	return 0;
}

static int teardown(void **state)
{
	struct loop *l = ((struct ctx *)*state)->loop;

	bus_fixture_free(state);
	loop_destroy(l);
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
	assert_int_equal(c->irq.nlevels, 0);
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
	d = rtc_create("rtc", &mmio, 0x9000, (struct irq_line){ 0 }, NULL);
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

/* ---- interrupts ---- */

#define BASE_SEC utc(2024, 2, 29, 13, 45, 56)

/* The fake clock at BASE_SEC + sec + nsec. */
static void at(struct ctx *c, long long sec, long nsec)
{
	c->now.tv_sec = BASE_SEC + sec;
	c->now.tv_nsec = nsec;
}

/* The fake clock is years behind CLOCK_REALTIME, so an armed timer has expired already: fire()
 * runs the loop once and says whether the RTC's timer was armed (then it ran). */
static bool fire(struct ctx *c)
{
	int n = loop_run_once(c->loop, 30);

	assert_true(n >= 0);
	return n > 0;
}

/* Update-ended interrupts: one per second, only at the boundary; register C's read clears the
 * flags and lowers the line; while UF is pending and unread no timer runs. */
static void test_uf_each_second(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0a, 0x20); /* no periodic rate: PF would be set too */
	assert_false(fire(c));  /* nothing enabled: no timer */
	at(c, 0, 500000000L);
	cmos_wr(c, 0x0b, 0x12); /* UIE, BCD, 24h */
	assert_true(fire(c));   /* armed for 13:45:57; the fake clock is not there yet */
	assert_int_equal(c->irq.level, 0);
	for (int i = 1; i <= 3; i++) {
		at(c, i - 1, 999999999L);
		assert_true(fire(c));
		assert_int_equal(c->irq.level, 0);
		at(c, i, 0);
		assert_true(fire(c));
		assert_int_equal(c->irq.level, 1);
		assert_int_equal(cmos_rd(c, 0x00), 0x56 + i); /* the update that raised it */
		assert_false(fire(c));                        /* UF pending: nothing to wait for */
		assert_int_equal(cmos_rd(c, 0x0c), 0x90);     /* IRQF | UF */
		assert_int_equal(c->irq.level, 0);
		assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	}
	assert_int_equal(c->irq.nlevels, 6);
	/* Seconds missed by the loop coalesce into one UF. */
	at(c, 10, 0);
	assert_true(fire(c));
	assert_int_equal(cmos_rd(c, 0x0c), 0x90);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	/* Disabling disarms the timer. */
	cmos_wr(c, 0x0b, 0x02);
	assert_false(fire(c));
}

/* Flags are set with their interrupt disabled; IRQF and the line only when enabled. */
static void test_flags_without_irq(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0a, 0x2f); /* 2 Hz periodic rate */
	cmos_wr(c, 0x01, 0xc0); /* alarm at any second */
	cmos_wr(c, 0x03, 0xc0);
	cmos_wr(c, 0x05, 0xc0);
	at(c, 1, 0);
	assert_false(fire(c));
	assert_int_equal(cmos_rd(c, 0x0c), 0x70); /* PF | AF | UF, no IRQF */
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	assert_int_equal(c->irq.nlevels, 0);
	/* Enabling an interrupt whose flag is pending raises the line at once. */
	at(c, 2, 0);
	cmos_wr(c, 0x0b, 0x22); /* AIE */
	assert_int_equal(c->irq.level, 1);
	cmos_wr(c, 0x0b, 0x02); /* disabled again: IRQF and the line drop, AF stays */
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(cmos_rd(c, 0x0c), 0x70);
	assert_int_equal(c->irq.nlevels, 2);
}

/* The alarm: don't-care fields, the current format, AF at the matching second only. */
static void test_alarm(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0a, 0x20); /* no periodic rate: PF would be set too */
	cmos_wr(c, 0x01, 0x30); /* hh:mm:30 */
	cmos_wr(c, 0x03, 0xc5);
	cmos_wr(c, 0x05, 0xff);
	cmos_wr(c, 0x0b, 0x22); /* AIE, BCD, 24h */
	at(c, 33, 999999999L);  /* 13:46:29.999... */
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 0);
	at(c, 34, 0); /* 13:46:30 */
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x0c), 0xb0); /* IRQF | AF | UF (the same update) */
	assert_int_equal(c->irq.level, 0);
	at(c, 35, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 0); /* 13:46:31 is no match */
	assert_int_equal(cmos_rd(c, 0x0c) & 0x20, 0);

	/* 12-hour binary: 1 PM is 0x81; 13:47:00. */
	cmos_wr(c, 0x0b, 0x04);
	cmos_wr(c, 0x01, 0);
	cmos_wr(c, 0x03, 47);
	cmos_wr(c, 0x05, 0x81);
	cmos_wr(c, 0x0b, 0x24); /* AIE, binary, 12h */
	at(c, 63, 500000000L);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 0);
	at(c, 64, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x0c) & 0xa0, 0xa0);

	/* The next day: 01:00:00 (BCD 24h), after midnight and a leap day. */
	cmos_wr(c, 0x0b, 0x02);
	cmos_wr(c, 0x01, 0x00);
	cmos_wr(c, 0x03, 0x00);
	cmos_wr(c, 0x05, 0x01);
	cmos_wr(c, 0x0b, 0x22);
	c->now.tv_sec = utc(2024, 3, 1, 0, 59, 59);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 0);
	c->now.tv_sec = utc(2024, 3, 1, 1, 0, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x0c) & 0xa0, 0xa0);

	/* A value the clock never shows (second 0x60) never matches: no timer. */
	cmos_wr(c, 0x01, 0x60);
	assert_false(fire(c));
	c->now.tv_sec += 86400 * 2;
	assert_int_equal(cmos_rd(c, 0x0c) & 0x20, 0);
}

/* Count the periodic interrupts over one second of fake time, stepping by step_ns and
 * servicing each as the guest's handler would. */
static int count_pf(struct ctx *c, long step_ns)
{
	int n = 0;

	at(c, 100, 0);
	cmos_rd(c, 0x0c);
	for (long t = step_ns; t <= 1000000000L; t += step_ns) {
		at(c, 100 + t / 1000000000L, t % 1000000000L);
		fire(c);
		if (c->irq.level) {
			assert_int_equal(cmos_rd(c, 0x0c) & 0xc0, 0xc0); /* IRQF | PF (UF at the second) */
			n++;
		}
	}
	return n;
}

static void test_periodic(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0b, 0x42); /* PIE; the default rate is 1024 Hz */
	assert_int_equal(count_pf(c, 100000), 1024);
	cmos_wr(c, 0x0a, 0x2a); /* 64 Hz */
	assert_int_equal(count_pf(c, 1000000), 64);
	cmos_wr(c, 0x0a, 0x2f); /* 2 Hz */
	assert_int_equal(count_pf(c, 1000000), 2);
	cmos_wr(c, 0x0a, 0x21); /* 1 means 256 Hz */
	assert_int_equal(count_pf(c, 1000000), 256);
	cmos_wr(c, 0x0a, 0x23); /* 8192 Hz, the fastest */
	assert_int_equal(count_pf(c, 50000), 8192);
	/* A loop that fell behind sees one PF, not a queue. */
	at(c, 200, 0);
	fire(c);
	assert_int_equal(cmos_rd(c, 0x0c), 0xd0);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	/* Rate 0 and a stopped divider: no periodic interrupt, no timer. */
	cmos_wr(c, 0x0a, 0x20);
	assert_false(fire(c));
	cmos_wr(c, 0x0a, 0x66); /* divider held in reset */
	assert_false(fire(c));
	at(c, 300, 0);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
}

/* SET and a stopped divider stop the updates: no UF, no AF, the time frozen; SET clears UIE. */
static void test_set_stops_updates(void **state)
{
	struct ctx *c = *state;

	cmos_wr(c, 0x0a, 0x20); /* no periodic rate: PF would be set too */
	cmos_wr(c, 0x01, 0xc0);
	cmos_wr(c, 0x03, 0xc0);
	cmos_wr(c, 0x05, 0xc0);
	cmos_wr(c, 0x0b, 0x32); /* AIE | UIE */
	cmos_wr(c, 0x0b, 0xb2); /* SET: UIE goes, AIE stays */
	assert_int_equal(cmos_rd(c, 0x0b), 0xa2);
	assert_false(fire(c));
	at(c, 5, 0);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	assert_int_equal(cmos_rd(c, 0x00), 0x56);
	assert_int_equal(c->irq.nlevels, 0);
	cmos_wr(c, 0x0b, 0x22); /* running again from 13:45:56 */
	assert_true(fire(c));
	at(c, 6, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x00), 0x57);
	assert_int_equal(cmos_rd(c, 0x0c), 0xb0);
	/* The divider in reset: the same. */
	cmos_wr(c, 0x0a, 0x66);
	assert_false(fire(c));
	at(c, 9, 0);
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	assert_int_equal(cmos_rd(c, 0x00), 0x57);
	assert_int_equal(cmos_rd(c, 0x0a) & 0x80, 0); /* no UIP either */
	cmos_wr(c, 0x0a, 0x26);
	at(c, 10, 0);
	assert_true(fire(c));
	assert_int_equal(cmos_rd(c, 0x00), 0x58);
}

/* Pending flags, enables and the accounting time survive a save and load; events due while
 * the state lay on disk are pending after it; the line is driven again. */
static void test_save_load_pending(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;

	cmos_wr(c, 0x0a, 0x20); /* no periodic rate: PF would be set too */
	cmos_wr(c, 0x0b, 0x12); /* UIE */
	at(c, 1, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	assert_false(w.err);
	assert_int_equal(cmos_rd(c, 0x0c), 0x90);
	assert_int_equal(c->irq.level, 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(c->irq.level, 1); /* pending again */
	assert_int_equal(cmos_rd(c, 0x0c), 0x90);
	assert_int_equal(cmos_rd(c, 0x0b), 0x12);
	ser_writer_free(&w);

	/* Saved in the middle of a second, loaded three seconds later: UF is due. */
	at(c, 2, 500000000L);
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	at(c, 5, 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x0c), 0x90);
	/* and re-armed: the next second raises it again */
	at(c, 6, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(cmos_rd(c, 0x0c), 0x90);

	/* IRQF that does not follow the flags and enables is refused. */
	w.buf[2 + 8 + 0x0c] = 0x80;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	/* An unknown version is refused; version 1 (no flags, no time) loads with none pending. */
	w.buf[2 + 8 + 0x0c] = 0x00;
	w.buf[0] = 3;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[0] = 1;
	ser_reader_init(&r, w.buf, w.len - 8);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	assert_int_equal(cmos_rd(c, 0x0b), 0x12);
	ser_writer_free(&w);
}

/* A reset (and a reboot's keep_load) clears enables and flags and lowers the line. */
static void test_reset_lowers_line(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;

	cmos_wr(c, 0x0b, 0x12);
	at(c, 1, 0);
	assert_true(fire(c));
	assert_int_equal(c->irq.level, 1);
	ser_writer_init(&w);
	c->fx.dev->ops->keep_save(c->fx.dev, &w);
	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(c->irq.level, 0);
	assert_false(fire(c));
	assert_int_equal(cmos_rd(c, 0x0c), 0x00);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->keep_load(c->fx.dev, &r), 0);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(cmos_rd(c, 0x0b), 0x02);
	assert_false(fire(c));
	ser_writer_free(&w);
}

/* Any byte to any index is harmless, and the timer never runs faster than 8192 Hz. */
static void test_hostile_writes(void **state)
{
	struct ctx *c = *state;
	int fired = 0;

	for (int i = 0; i < 256; i++) {
		for (int v = 0; v < 256; v++) {
			cmos_wr(c, (uint8_t)i, (uint8_t)v);
			cmos_rd(c, (uint8_t)i);
		}
	}
	cmos_wr(c, 0x0a, 0x23);
	cmos_wr(c, 0x0b, 0x72);
	/* 8192 Hz: at most one tick per 122 us of fake time, however often the loop runs. */
	for (int i = 0; i < 1000; i++) {
		c->now.tv_nsec = (c->now.tv_nsec + 1000) % 1000000000L;
		fire(c);
		if (c->irq.level) {
			cmos_rd(c, 0x0c);
			fired++;
		}
	}
	assert_in_range(fired, 7, 9); /* 1 ms of fake time */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_from_config),
		cmocka_unit_test_setup_teardown(test_bcd_24h_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_12h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_time_12h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regs_and_nvram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uf_each_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_without_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alarm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_periodic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_stops_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_lowers_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_writes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
