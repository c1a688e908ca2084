/* Unit tests for the 16550A UART model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "devices/uart.h"
#include "fakes.h"

#define BASE X86_COM1_PORT

struct fake {
	uint8_t out[64]; /* bytes sent to the console */
	int nout;
	int rx_space_calls;
};

struct ctx {
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct fake_irq irq;   /* every level the UART drove */
	struct fake f;
};

static void fake_write(void *c, const uint8_t *buf, size_t n)
{
	struct fake *f = c;

	for (size_t i = 0; i < n && f->nout < 64; i++)
		f->out[f->nout++] = buf[i];
}

static void fake_rx_space(void *c)
{
	((struct fake *)c)->rx_space_calls++;
}

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_PIO);

	c->fx.dev = uart_create(
		"com1", &c->fx.bus, BASE, fake_irq_line(&c->irq, X86_COM1_IRQ, false),
		(struct char_port){ .write = fake_write, .rx_space = fake_rx_space, .ctx = &c->f });
	assert_non_null(c->fx.dev);
	return 0;
}

static uint8_t rd(struct ctx *c, int reg)
{
	uint8_t v = 0x5a;

	assert_true(bus_dispatch(&c->fx.bus, BASE + reg, &v, 1, false));
	return v;
}

static void wr(struct ctx *c, int reg, uint8_t v)
{
	assert_true(bus_dispatch(&c->fx.bus, BASE + reg, &v, 1, true));
}

static int level(struct ctx *c)
{
	return c->irq.level;
}

static void test_reset_values(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(rd(c, 1), 0x00); /* IER */
	assert_int_equal(rd(c, 2), 0x01); /* IIR: nothing pending, no FIFO */
	assert_int_equal(rd(c, 5), 0x60); /* LSR: THRE | TEMT */
	assert_int_equal(rd(c, 6), 0xb0); /* MSR: DCD | DSR | CTS */
	assert_int_equal(c->irq.nlevels, 0);
}

static void test_lcr_dlab_and_scratch(void **state)
{
	struct ctx *c = *state;

	wr(c, 1, 0x05); /* IER */
	wr(c, 3, 0x83); /* DLAB on, 8N1 */
	wr(c, 0, 0x01); /* DLL */
	wr(c, 1, 0x02); /* DLM, not IER */
	assert_int_equal(rd(c, 0), 0x01);
	assert_int_equal(rd(c, 1), 0x02);
	assert_int_equal(rd(c, 3), 0x83);
	wr(c, 3, 0x03);
	assert_int_equal(rd(c, 1), 0x05); /* IER untouched by DLM write */
	assert_int_equal(c->f.nout, 0);   /* DLL write did not transmit */
	wr(c, 7, 0xa5);
	assert_int_equal(rd(c, 7), 0xa5);
	wr(c, 1, 0xff);
	assert_int_equal(rd(c, 1), 0x0f); /* only 4 IER bits exist */
}

static void test_tx(void **state)
{
	struct ctx *c = *state;

	wr(c, 0, 'h');
	wr(c, 0, 'i');
	assert_int_equal(c->f.nout, 2);
	assert_memory_equal(c->f.out, "hi", 2);
	assert_int_equal(rd(c, 5) & 0x60, 0x60);
}

static void test_odd_sizes(void **state)
{
	struct ctx *c = *state;
	uint8_t buf[4] = { 1, 2, 3, 4 };

	assert_true(bus_dispatch(&c->fx.bus, BASE, buf, 2, false));
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0xff);
	buf[0] = 'x';
	buf[1] = 'y';
	assert_true(bus_dispatch(&c->fx.bus, BASE, buf, 2, true));
	assert_int_equal(c->f.nout, 0); /* ignored */
	assert_true(bus_dispatch(&c->fx.bus, BASE + 4, buf, 4, false));
	assert_int_equal(buf[3], 0xff);
}

static void test_rx_fifo_fill_and_flow_control(void **state)
{
	struct ctx *c = *state;
	uint8_t in[20];

	for (int i = 0; i < 20; i++)
		in[i] = (uint8_t)('a' + i);
	/* FIFO disabled: a single holding register. */
	assert_int_equal(uart_receive(c->fx.dev, in, 3), 1);
	assert_int_equal(rd(c, 5) & 0x01, 0x01);
	assert_int_equal(rd(c, 0), 'a');
	assert_int_equal(c->f.rx_space_calls, 1); /* refused earlier, room now */
	assert_int_equal(rd(c, 5) & 0x01, 0);

	wr(c, 2, 0x07); /* enable + clear FIFOs */
	assert_int_equal(rd(c, 2) & 0xc0, 0xc0);
	assert_int_equal(uart_receive(c->fx.dev, in, 20), 16);
	assert_int_equal(uart_receive(c->fx.dev, in, 1), 0);
	assert_int_equal(c->f.rx_space_calls, 1);
	for (int i = 0; i < 16; i++)
		assert_int_equal(rd(c, 0), 'a' + i);
	assert_int_equal(c->f.rx_space_calls, 2);
	assert_int_equal(rd(c, 5) & 0x03, 0); /* no DR, and no overrun from the host */
	/* FCR clear-RX empties the FIFO. */
	assert_int_equal(uart_receive(c->fx.dev, in, 4), 4);
	wr(c, 2, 0x03);
	assert_int_equal(rd(c, 5) & 0x01, 0);
}

static void test_iir_priorities_and_irq_levels(void **state)
{
	struct ctx *c = *state;
	uint8_t b = 'q';

	wr(c, 2, 0xc1); /* FIFO on, trigger 14 */
	wr(c, 1, 0x01); /* ERBFI */
	assert_int_equal(c->irq.nlevels, 0);
	uart_receive(c->fx.dev, &b, 1);
	assert_int_equal(level(c), 1);
	assert_int_equal(rd(c, 2), 0xcc); /* below trigger: char timeout */
	rd(c, 0);
	assert_int_equal(level(c), 0);
	assert_int_equal(rd(c, 2), 0xc1);

	/* THRE + RX + modem status: RX wins, then THRE, then MSR. */
	wr(c, 1, 0x0b); /* ERBFI | ETBEI | EDSSI */
	assert_int_equal(level(c), 1);
	wr(c, 4, 0x10);                 /* loopback: modem inputs change -> deltas */
	uart_receive(c->fx.dev, &b, 1); /* refused in loopback */
	wr(c, 0, 'z');                  /* looped back into RX */
	assert_int_equal(c->f.nout, 0);
	assert_int_equal(rd(c, 2) & 0x0f, 0x0c);
	assert_int_equal(rd(c, 0), 'z');
	assert_int_equal(rd(c, 2) & 0x0f, 0x02); /* THRE, cleared by this read */
	assert_int_equal(rd(c, 2) & 0x0f, 0x00); /* modem status */
	assert_int_equal(level(c), 1);
	rd(c, 6); /* clears the deltas */
	assert_int_equal(rd(c, 2) & 0x0f, 0x01);
	assert_int_equal(level(c), 0);
	/* Level changes were reported once each: no repeated same levels. */
	for (int i = 1; i < c->irq.nlevels && i < FAKE_IRQ_HISTORY; i++)
		assert_int_not_equal(c->irq.history[i], c->irq.history[i - 1]);
}

static void test_rx_trigger_level(void **state)
{
	struct ctx *c = *state;
	uint8_t in[4] = { 1, 2, 3, 4 };

	wr(c, 2, 0x41); /* FIFO on, trigger 4 */
	wr(c, 1, 0x01);
	uart_receive(c->fx.dev, in, 3);
	assert_int_equal(rd(c, 2) & 0x0f, 0x0c);
	uart_receive(c->fx.dev, in + 3, 1);
	assert_int_equal(rd(c, 2) & 0x0f, 0x04);
}

static void test_thre_interrupt(void **state)
{
	struct ctx *c = *state;

	wr(c, 1, 0x02); /* enabling ETBEI with THR empty raises it */
	assert_int_equal(level(c), 1);
	assert_int_equal(rd(c, 2), 0x02);
	assert_int_equal(level(c), 0); /* reading IIR cleared it */
	assert_int_equal(rd(c, 2), 0x01);
	wr(c, 0, 'a'); /* THR empties again at once */
	assert_int_equal(level(c), 1);
	wr(c, 1, 0x00);
	assert_int_equal(level(c), 0);
	wr(c, 1, 0x02);
	assert_int_equal(level(c), 1);
	wr(c, 1, 0x02); /* already enabled: no new event after clear */
	rd(c, 2);
	wr(c, 1, 0x02);
	assert_int_equal(level(c), 0);
}

static void test_loopback_and_overrun(void **state)
{
	struct ctx *c = *state;

	wr(c, 4, 0x1a);                          /* loop | OUT2 | RTS */
	assert_int_equal(rd(c, 6) & 0xf0, 0x90); /* DCD | CTS, what Linux checks */
	wr(c, 4, 0x15);                          /* loop | OUT1 | DTR */
	assert_int_equal(rd(c, 6) & 0xf0, 0x60); /* RI | DSR */
	wr(c, 1, 0x04);                          /* ELSI */
	wr(c, 0, 'x');                           /* 16450 mode: one byte fits */
	assert_int_equal(rd(c, 5) & 0x03, 0x01);
	wr(c, 0, 'y'); /* overrun: RBR overwritten */
	assert_int_equal(rd(c, 2) & 0x0f, 0x06);
	assert_int_equal(level(c), 1);
	assert_int_equal(rd(c, 5) & 0x03, 0x03); /* DR | OE, OE clears on read */
	assert_int_equal(level(c), 0);
	assert_int_equal(rd(c, 5) & 0x02, 0);
	assert_int_equal(rd(c, 0), 'y');
	assert_int_equal(c->f.nout, 0);
	wr(c, 4, 0x00);
	assert_int_equal(rd(c, 6) & 0xf0, 0xb0);
}

static void test_save_load_round_trip(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint8_t in[5] = { 'a', 'b', 'c', 'd', 'e' };

	wr(c, 2, 0x81);
	wr(c, 1, 0x05);
	wr(c, 3, 0x1b);
	wr(c, 7, 0x42);
	uart_receive(c->fx.dev, in, 5);
	rd(c, 0); /* FIFO head moves: exercise wrapping */
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	assert_false(w.err);

	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(rd(c, 5) & 0x01, 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(rd(c, 1), 0x05);
	assert_int_equal(rd(c, 3), 0x1b);
	assert_int_equal(rd(c, 7), 0x42);
	assert_int_equal(rd(c, 2) & 0xc0, 0xc0);
	assert_int_equal(level(c), 1);
	for (int i = 1; i < 5; i++)
		assert_int_equal(rd(c, 0), in[i]);
	assert_int_equal(rd(c, 5) & 0x01, 0);

	/* Truncated and corrupt input is refused. */
	ser_reader_init(&r, w.buf, 5);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[1] = 0xf0; /* IER with reserved bits */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	w.buf[1] = 0x05;
	w.buf[12] = 17; /* more bytes than the FIFO holds */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_writer_free(&w);
}

static void test_create_conflict(void **state)
{
	struct ctx *c = *state;

	assert_null(
		uart_create("dup", &c->fx.bus, BASE + 4, (struct irq_line){ 0 }, (struct char_port){ 0 }));
	assert_int_equal(c->fx.bus.nr, 1); /* only com1's range */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reset_values, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_lcr_dlab_and_scratch, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_tx, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_odd_sizes, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_rx_fifo_fill_and_flow_control, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_iir_priorities_and_irq_levels, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_rx_trigger_level, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_loopback_and_overrun, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_create_conflict, setup, bus_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
