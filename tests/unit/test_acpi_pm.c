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
	struct bus_fixture fx; /* first: the state is bus_fixture_new's */
	struct fake_ctl ctl;
	struct fake_irq irq; /* the SCI; only changes are reported */
};

/* The x86 machine's block (arch_create_devices). */
static const struct acpi_pm_config x86_pm = {
	.evt = X86_PM1A_EVT_PORT,
	.cnt = X86_PM1A_CNT_PORT,
	.reset = X86_PM_RESET_PORT,
	.reset_value = X86_PM_RESET_VALUE,
	.s5_slp_typ = X86_SLP_TYP_S5,
};

static int setup(void **state)
{
	struct ctx *c = bus_fixture_new(state, sizeof(*c), BUS_PIO);

	c->fx.dev = acpi_pm_create("pm", &c->fx.bus, &x86_pm, fake_irq_line(&c->irq, X86_SCI_IRQ, true),
				   fake_machine_ctl(&c->ctl));
	assert_non_null(c->fx.dev);
	return 0;
}

static uint32_t rd(struct ctx *c, uint16_t port, uint32_t len)
{
	return bus_fixture_read(&c->fx, port, len);
}

static void wr(struct ctx *c, uint16_t port, uint32_t len, uint32_t v)
{
	bus_fixture_write(&c->fx, port, len, v);
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
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(3, 1));                                         /* S3: ignored */
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(0, 1));
	assert_int_equal(c->ctl.nreq, 0);
	wr(c, X86_PM1A_CNT_PORT, 2, cnt(X86_SLP_TYP_S5, 1));
	assert_int_equal(c->ctl.nreq, 1);
	assert_int_equal(c->ctl.requests[0], VM_POWEROFF);
	/* Byte-wise: SLP_TYP and SLP_EN are both in the high byte. */
	wr(c, X86_PM1A_CNT_PORT + 1, 1, cnt(X86_SLP_TYP_S5, 1) >> 8);
	assert_int_equal(c->ctl.nreq, 2);
	assert_int_equal(c->ctl.requests[1], VM_POWEROFF);
	wr(c, X86_PM1A_CNT_PORT, 1, 0xff); /* low byte only */
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

	acpi_pm_power_button(c->fx.dev); /* not enabled: no SCI */
	assert_int_equal(c->irq.nlevels, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 2), 0x0100);
	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0x0100); /* PWRBTN_EN */
	assert_int_equal(c->irq.level, 1);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000100);
	wr(c, X86_PM1A_EVT_PORT, 2, 0x0000); /* writing 0 clears nothing */
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT, 1, 0xff); /* wrong byte */
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT + 1, 1, 0x01); /* W1C the high byte */
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 2), 0);
	acpi_pm_power_button(c->fx.dev);
	assert_int_equal(c->irq.level, 1);
	wr(c, X86_PM1A_EVT_PORT + 2, 2, 0); /* disable: SCI drops */
	assert_int_equal(c->irq.level, 0);
	/* A dword write covers STS and EN at once. */
	wr(c, X86_PM1A_EVT_PORT, 4, 0x01000100);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000000);
	assert_int_equal(c->irq.level, 0);
	/* Unaligned word across STS high byte and EN low byte. */
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT + 1, 2), 0x0000);
	wr(c, X86_PM1A_EVT_PORT + 1, 2, 0x2100); /* EN low = 0x21 */
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
	acpi_pm_power_button(c->fx.dev);
	assert_int_equal(c->irq.level, 1);
	ser_writer_init(&w);
	c->fx.dev->ops->save(c->fx.dev, &w);
	c->fx.dev->ops->reset(c->fx.dev);
	assert_int_equal(c->irq.level, 0);
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(rd(c, X86_PM1A_EVT_PORT, 4), 0x01000100);
	assert_int_equal(c->irq.level, 1);
	w.buf[3] = 0xff; /* EN reserved bits */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(c->fx.dev->ops->load(c->fx.dev, &r), -1);
	ser_writer_free(&w);
	/* 8-byte accesses are not defined: all ones, ignored. */
	uint8_t q[8];
	memset(q, 0, sizeof(q));
	assert_false(bus_dispatch(&c->fx.bus, X86_PM1A_EVT_PORT, q, 8, false)); /* straddles */
	assert_true(bus_dispatch(&c->fx.bus, X86_PM1A_EVT_PORT, b, 3, false));
	assert_int_equal(b[0] & b[1] & b[2], 0xff);
}

/* Nothing is x86's but what arch_create_devices passes: the same block at
 * other places (odd bases, an MMIO bus) with other values behaves the same. */
static void test_placement_and_values_from_config(void **state)
{
	static const struct acpi_pm_config cfg = {
		.evt = 0x10001,
		.cnt = 0x10013,
		.reset = 0x10020,
		.reset_value = 0x0f,
		.s5_slp_typ = 2,
	};
	struct fake_ctl ctl = { 0 };
	struct fake_irq irq;
	struct bus mmio;
	struct device *d;
	uint8_t b[4];

	bus_init(&mmio, BUS_MMIO);
	d = acpi_pm_create("pm", &mmio, &cfg, fake_irq_line(&irq, 42, true), fake_machine_ctl(&ctl));
	assert_non_null(d);
	/* PWRBTN_EN then the button: the SCI rises; STS and EN read as one dword. */
	memcpy(b, "\x00\x01", 2);
	assert_true(bus_dispatch(&mmio, cfg.evt + 2, b, 2, true));
	acpi_pm_power_button(d);
	assert_int_equal(irq.level, 1);
	assert_true(bus_dispatch(&mmio, cfg.evt, b, 4, false));
	assert_int_equal(get_le32(b), 0x01000100);
	/* x86's S5 value is just another sleep type here; 2 is soft off. */
	put_le16(b, (uint16_t)(5 << 10 | 0x2000));
	assert_true(bus_dispatch(&mmio, cfg.cnt, b, 2, true));
	assert_int_equal(ctl.nreq, 0);
	put_le16(b, (uint16_t)(2 << 10 | 0x2000));
	assert_true(bus_dispatch(&mmio, cfg.cnt, b, 2, true));
	assert_int_equal(ctl.nreq, 1);
	assert_int_equal(ctl.requests[0], VM_POWEROFF);
	b[0] = X86_PM_RESET_VALUE;
	assert_true(bus_dispatch(&mmio, cfg.reset, b, 1, true));
	assert_int_equal(ctl.nreq, 1);
	b[0] = 0x0f;
	assert_true(bus_dispatch(&mmio, cfg.reset, b, 1, true));
	assert_int_equal(ctl.nreq, 2);
	assert_int_equal(ctl.requests[1], VM_REBOOT);
	/* Nothing at x86's ports. */
	assert_false(bus_dispatch(&mmio, X86_PM1A_EVT_PORT, b, 1, false));
	device_and_bus_destroy(d, &mmio);
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
	assert_int_equal(bus_register(&other, X86_PM_RESET_PORT, 1, c->fx.dev), 0);
	stderr_capture_begin(&cap);
	d = acpi_pm_create("pm2", &other, &x86_pm, (struct irq_line){ 0 }, (struct machine_ctl){ 0 });
	msg = stderr_capture_end(&cap);
	assert_null(d);
	assert_non_null(strstr(msg, "acpi_pm pm2: I/O ports 0x608-0x608 are already in use by pm"));
	assert_int_equal(other.nr, 1);
	bus_destroy(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poweroff_only_s5_with_slp_en, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_reset_register, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_power_button_sci, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_save_load_and_reset, setup, bus_fixture_free),
		cmocka_unit_test_setup_teardown(test_create_conflict_rolls_back, setup, bus_fixture_free),
		cmocka_unit_test(test_placement_and_values_from_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
