/* The arm64 guest's way out and its console, through the core's exit dispatch with made-up
 * exits (no KVM): PSCI SYSTEM_OFF / SYSTEM_RESET / SYSTEM_RESET2 reach user space as
 * KVM_EXIT_SYSTEM_EVENT and must stop the VM as a power-off (exit 0) or a reboot; the console
 * UART and the RTC are MMIO at the device tree's addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arch/arm64/layout.h"
#include "core/vcpu.h"
#include "core/vm.h"
#include "devices/pl031.h"
#include "devices/uart.h"
#include "devices/uart_mmio.h"
#include "fakes.h"

/* In arch/arm64's <asm/kvm.h>, absent from other architectures' headers. */
#define PSCI_RESET2_FLAG 1ULL /* KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2 */

struct fixture {
	struct vm vm;
	struct vcpu vcpu;
	struct device *win, *uart, *rtc;
	struct fake_irq uart_irq, rtc_irq;
	char out[64];
	size_t nout;
	union {
		struct kvm_run run;
		uint8_t page[4096];
	} u;
};

static void console_write(void *ctx, const uint8_t *buf, size_t n)
{
	struct fixture *f = ctx;

	for (size_t i = 0; i < n && f->nout < sizeof(f->out) - 1; i++)
		f->out[f->nout++] = (char)buf[i];
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct char_port port = { .write = console_write, .ctx = f };

	bus_init(&f->vm.pio, BUS_PIO);
	bus_init(&f->vm.mmio, BUS_MMIO);
	f->vm.vcpu_mmap_size = 4096;
	f->vm.stop_efd = -1;
	pthread_mutex_init(&f->vm.pause_lock, NULL);
	pthread_cond_init(&f->vm.pause_cond, NULL);
	f->vcpu.vm = &f->vm;
	f->vcpu.fd = -1;
	f->win = uart_mmio_create("uart0", &f->vm.mmio, ARM64_UART_BASE,
				  fake_irq_line(&f->uart_irq, 32 + ARM64_SPI_UART, true), port, &f->uart);
	assert_non_null(f->win);
	f->rtc = pl031_create("pl031", &f->vm.mmio, ARM64_RTC_BASE, fake_irq_line(&f->rtc_irq, 34, true));
	assert_non_null(f->rtc);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	f->win->ops->destroy(f->win);
	f->rtc->ops->destroy(f->rtc);
	bus_destroy(&f->vm.pio);
	bus_destroy(&f->vm.mmio);
	pthread_mutex_destroy(&f->vm.pause_lock);
	pthread_cond_destroy(&f->vm.pause_cond);
	free(f);
	return 0;
}

static enum vcpu_action system_event(struct fixture *f, uint32_t type, uint64_t data0)
{
	struct kvm_run *run = &f->u.run;

	memset(run, 0, sizeof(*run));
	run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	run->system_event.type = type;
	run->system_event.ndata = 1;
	run->system_event.data[0] = data0;
	return vcpu_handle_exit(&f->vcpu, run);
}

static void test_psci_system_off_is_poweroff(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_SHUTDOWN, 0), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_POWEROFF);
}

static void test_psci_system_reset_is_reboot(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_RESET, 0), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_REBOOT);
}

static void test_psci_system_reset2_is_reboot(void **state)
{
	struct fixture *f = *state;

	/* SYSTEM_RESET2 (a warm reset) is a reboot like SYSTEM_RESET. */
	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_RESET, PSCI_RESET2_FLAG), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_REBOOT);
}

static void test_first_event_wins(void **state)
{
	struct fixture *f = *state;

	/* Two vCPUs racing: one powers off, another resets; the first reason stays. */
	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_SHUTDOWN, 0), VCPU_STOP);
	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_RESET, 0), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_POWEROFF);
}

static void test_other_events_are_crashes(void **state)
{
	struct fixture *f = *state;

	/* KVM only sends SUSPEND/WAKEUP when asked (KVM_CAP_ARM_SYSTEM_SUSPEND); kvmbox does not. */
	assert_int_equal(system_event(f, KVM_SYSTEM_EVENT_CRASH, 0), VCPU_STOP);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_CRASH);
}

static enum vcpu_action mmio(struct fixture *f, uint64_t addr, uint32_t len, bool write, uint32_t val)
{
	struct kvm_run *run = &f->u.run;

	memset(run, 0, sizeof(*run));
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = addr;
	run->mmio.len = len;
	run->mmio.is_write = write;
	put_le32(run->mmio.data, val);
	return vcpu_handle_exit(&f->vcpu, run);
}

static void test_console_uart_on_mmio(void **state)
{
	struct fixture *f = *state;

	/* THR at offset 0, byte wide (the device tree's reg-io-width 1). */
	assert_int_equal(mmio(f, ARM64_UART_BASE, 1, true, 'o'), VCPU_CONTINUE);
	assert_int_equal(mmio(f, ARM64_UART_BASE, 1, true, 'k'), VCPU_CONTINUE);
	assert_string_equal(f->out, "ok");
	/* LSR (offset 5): transmitter empty. */
	assert_int_equal(mmio(f, ARM64_UART_BASE + 5, 1, false, 0), VCPU_CONTINUE);
	assert_int_equal(f->u.run.mmio.data[0] & 0x60, 0x60);
	/* Input reaches RBR and raises the line once RX interrupts are on (IER bit 0). */
	assert_int_equal(mmio(f, ARM64_UART_BASE + 1, 1, true, 1), VCPU_CONTINUE);
	assert_int_equal(uart_receive(f->uart, (const uint8_t *)"x", 1), 1);
	assert_int_equal(f->uart_irq.level, 1);
	assert_int_equal(mmio(f, ARM64_UART_BASE, 1, false, 0), VCPU_CONTINUE);
	assert_int_equal(f->u.run.mmio.data[0], 'x');
	assert_int_equal(f->uart_irq.level, 0);
	/* Past the 8 registers, and a 4-byte access: all ones, no crash. */
	assert_int_equal(mmio(f, ARM64_UART_BASE + 0x100, 1, false, 0), VCPU_CONTINUE);
	assert_int_equal(f->u.run.mmio.data[0], 0xff);
	assert_int_equal(mmio(f, ARM64_UART_BASE, 4, false, 0), VCPU_CONTINUE);
	assert_int_equal(get_le32(f->u.run.mmio.data), 0xffffffff);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_RUNNING);
}

static void test_rtc_on_mmio(void **state)
{
	struct fixture *f = *state;
	uint32_t now = (uint32_t)time(NULL);

	assert_int_equal(mmio(f, ARM64_RTC_BASE + PL031_DR, 4, false, 0), VCPU_CONTINUE);
	assert_true(get_le32(f->u.run.mmio.data) - now <= 2);
	/* Nothing between the devices: reads as all ones, the guest goes on. */
	assert_int_equal(mmio(f, ARM64_RTC_BASE + 0x1000, 4, false, 0), VCPU_CONTINUE);
	assert_int_equal(get_le32(f->u.run.mmio.data), 0xffffffff);
	assert_int_equal(atomic_load(&f->vm.exit_reason), VM_RUNNING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_psci_system_off_is_poweroff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psci_system_reset_is_reboot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psci_system_reset2_is_reboot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_event_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_events_are_crashes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_uart_on_mmio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtc_on_mmio, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
