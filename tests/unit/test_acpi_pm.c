/* Unit tests for the ACPI PM1 fixed-hardware block. */
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
#include "devices/acpi_pm.h"
#include "fakes.h"

struct ctx {
	struct bus pio;
	struct device *dev;
	struct fake_ctl ctl;
	struct fake_irq irq;    /* the SCI; only changes are reported */
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	bus_init(&c->pio, BUS_PIO);
	c->dev = acpi_pm_create("pm", &c->pio, fake_irq_line(&c->irq, X86_SCI_IRQ, true),
				fake_machine_ctl(&c->ctl));
	assert_non_null(c->dev);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	c->dev->ops->destroy(c->dev);
	bus_destroy(&c->pio);
	free(c);
	return 0;
}

static uint32_t rd(struct ctx *c, uint16_t port, uint32_t len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	assert_true(bus_dispatch(&c->pio, port, b, len, false));
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void wr(struct ctx *c, uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	assert_true(bus_dispatch(&c->pio, port, b, len, true));
}

static uint16_t cnt(int typ, int en)
{
	return (uint16_t)((typ << 10) | (en ? 0x2000 : 0));
}

static void test_poweroff_only_s5_with_slp_en(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(rd(c, X86_PM1A_CNT_PORT, 2), 0x0001); /* SCI_EN */
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(X86_SLP_TYP_S5, 0));
	assert_int_equal(c->ctl.nreq, 0);
	assert_int_equal(rd(c, X86_PM1A_CNT_PORT, 2), 0x0001 | (X86_SLP_TYP_S5 << 10)); /* SLP_EN reads 0 */
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(3, 1));                 /* S3: ignored */
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(0, 1));
	assert_int_equal(c->ctl.nreq, 0);
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(X86_SLP_TYP_S5, 1));
	assert_int_equal(c->ctl.nreq, 1);
	assert_int_equal(c->ctl.requests[0], VM_POWEROFF);
	/* Byte-wise: SLP_TYP and SLP_EN are both in the high byte. */
	wr(c, X86_PM1A_CNT_PORT + 1, 1, cnt(X86_SLP_TYP_S5, 1) >> 8);
	assert_int_equal(c->ctl.nreq, 2);
	assert_int_equal(c->ctl.requests[1], VM_POWEROFF);
	wr(c, X86_PM1A_CNT_PORT, 1, 0xff);                      /* low byte only */
	assert_int_equal(c->ctl.nreq, 2);
}

static void test_reset_register(void **state)
{
	struct ctx *c = *state;

	wr(c, X86_PM_RESET_PORT, 1, 0x02);
	assert_int_equal(c->ctl.nreq, 0);
	wr(c, X86_PM_RESET_PORT, 1, X86_PM_RESET_VALUE);
	assert_int_equal(c->ctl.nreq, 1);
	assert_int_equal(c->ctl.requests[0], VM_REBOOT);
	assert_int_equal(rd(c, X86_PM_RESET_PORT, 1), 0);
}

static void test_power_button_sci(void **state)
{
	struct ctx *c = *state;

	acpi_pm_power_button(c->dev);                           /* not enabled: no SCI */
	assert_int_equal(c->irq.nlevels, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 2), 0x0100);
	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0x0100);                /* PWRBTN_EN */
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000100);
	wr(c, X86_PM1A_EVT_PORT, 2, 0x0000);                    /* writing 0 clears nothing */
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT, 1, 0xff);                      /* wrong byte */
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT + 1, 1, 0x01);                  /* W1C the high byte */
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 2), 0);
	acpi_pm_power_button(c->dev);
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0);                     /* disable: SCI drops */
	assert_int_equal(c->irq.level, 0);
	/* A dword write covers STS and EN at once. */
	wr(c, X86_PM1A_EVT_PORT, 4, 0x01000100);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000000);
	assert_int_equal(c->irq.level, 0);
	/* Unaligned word across STS high byte and EN low byte. */
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT + 1, 2), 0x0000);
	wr(c, X86_PM1A_EVT_PORT + 1, 2, 0x2100);                /* EN low = 0x21 */
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT + 2, 2), 0x0121);
	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0xffff);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT + 2, 2), 0x4721); /* only defined bits */
}

static void test_save_load_and_reset(void **state)
{
	struct ctx *c = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint8_t b[4];

	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0x0100);
	acpi_pm_power_button(c->dev);
	assert_int_equal(c->irq.level, 1);
	ser_writer_init(&w);
	c->dev->ops->save(c->dev, &w);
	c->dev->ops->reset(c->dev);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->dev->ops->load(c->dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000100);
	assert_int_equal(c->irq.level, 1);
	w.buf[3] = 0xff;                                        /* EN reserved bits */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->dev->ops->load(c->dev, &r), -1);
	ser_writer_free(&w);
	/* 8-byte accesses are not defined: all ones, ignored. */
	uint8_t q[8];
	memset(q, 0, sizeof(q));
	assert_false(bus_dispatch(&c->pio, X86_PM1A_EVT_PORT, q, 8, false)); /* straddles */
	assert_true(bus_dispatch(&c->pio, X86_PM1A_EVT_PORT, b, 3, false));
	assert_int_equal(b[0] & b[1] & b[2], 0xff);
}

/* A second block whose reset register is taken fails as a whole: nothing of
 * it stays claimed, and one line says which ports are taken and by whom. */
static void test_create_conflict_rolls_back(void **state)
{
	struct ctx *c = *state;
	struct stderr_capture cap;
	struct bus other;
	struct device *d;
	const char *msg;

	bus_init(&other, BUS_PIO);
	assert_int_equal(bus_register(&other, X86_PM_RESET_PORT, 1, c->dev), 0);
	stderr_capture_begin(&cap);
	d = acpi_pm_create("pm2", &other, (struct irq_line){ 0 }, (struct machine_ctl){ 0 });
	msg = stderr_capture_end(&cap);
	assert_null(d);
	assert_non_null(strstr(msg, "acpi_pm pm2: I/O ports 0x608-0x608 are already in use by pm"));
	assert_int_equal(other.nr, 1);
	bus_destroy(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poweroff_only_s5_with_slp_en, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_button_sci, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_conflict_rolls_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
