/* fuzz_legacy - every legacy device's port and MMIO handler, driven as a guest would: the 16550
 * UART (ports, and the arm64 machine's MMIO window), the CMOS RTC, the i8042, the ACPI PM block
 * and the PL031, on one port bus and one MMIO bus with fake interrupt lines, a fake machine
 * control and a fixed clock.
 *
 * Input: a sequence of operations, each starting with one byte:
 *   bits 0-2  the device (its ranges below; 6, 7: host input for the UARTs)
 *   bits 3-4  access size 1, 2, 4 or 8
 *   bit  5    write
 *   bit  6-7  0, 1: one access; 2: reset the device; 3: save its state and load it back
 * then for an access an offset byte (into the device's range, modulo its length) and, for a write,
 * 8 data bytes; for host input a length byte and that many bytes. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/arm64/layout.h"
#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/ser.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/pl031.h"
#include "devices/rtc.h"
#include "devices/uart.h"
#include "devices/uart_mmio.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { D_UART, D_RTC, D_I8042, D_PM, D_PL031, D_UART_MMIO, NDEV };

struct range {
	struct bus *bus;
	uint64_t base, len;
};

static int levels[64];

static void irq_set(void *ctx, uint32_t gsi, int level)
{
	if (gsi < 64)
		levels[gsi] = level;
}

static void ctl_request(void *ctx, int reason)
{
}

static void clock_now(void *ctx, struct timespec *ts)
{
	ts->tv_sec = 1700000000;
	ts->tv_nsec = 0;
}

static void port_write(void *ctx, const uint8_t *buf, size_t n)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct acpi_pm_config pm = {
		.evt = X86_PM1A_EVT_PORT,
		.cnt = X86_PM1A_CNT_PORT,
		.reset = X86_PM_RESET_PORT,
		.reset_value = X86_PM_RESET_VALUE,
		.s5_slp_typ = X86_SLP_TYP_S5,
	};
	struct machine_ctl ctl = { .request = ctl_request };
	struct char_port port = { .write = port_write };
	struct bus pio, mmio;
	struct device *dev[NDEV], *mmio_uart = NULL;
	struct range ranges[NDEV];
	struct fuzz_in in;

	bus_init(&pio, BUS_PIO);
	bus_init(&mmio, BUS_MMIO);
	dev[D_UART] = uart_create("com1", &pio, X86_COM1_PORT,
				  (struct irq_line){ .set = irq_set, .gsi = X86_COM1_IRQ }, port);
	dev[D_RTC] = rtc_create("rtc", &pio, X86_RTC_PORT,
				(struct irq_line){ .set = irq_set, .gsi = X86_RTC_IRQ }, NULL);
	dev[D_I8042] = i8042_create("i8042", &pio, X86_I8042_DATA, X86_I8042_CMD,
				    (struct irq_line){ .set = irq_set, .gsi = X86_I8042_IRQ }, ctl);
	dev[D_PM] =
		acpi_pm_create("pm", &pio, &pm, (struct irq_line){ .set = irq_set, .gsi = X86_SCI_IRQ }, ctl);
	dev[D_PL031] =
		pl031_create("pl031", &mmio, ARM64_RTC_BASE, (struct irq_line){ .set = irq_set, .gsi = 2 });
	dev[D_UART_MMIO] = uart_mmio_create("uart", &mmio, ARM64_UART_BASE,
					    (struct irq_line){ .set = irq_set, .gsi = 1 }, port, &mmio_uart);
	for (int i = 0; i < NDEV; i++)
		FUZZ_CHECK(dev[i] != NULL);
	rtc_set_clock(dev[D_RTC], clock_now, NULL);
	pl031_set_clock(dev[D_PL031], clock_now, NULL);
	ranges[D_UART] = (struct range){ &pio, X86_COM1_PORT, 8 };
	ranges[D_RTC] = (struct range){ &pio, X86_RTC_PORT, 2 };
	ranges[D_I8042] = (struct range){ &pio, X86_I8042_DATA, 8 }; /* 0x60-0x67: data, cmd, and between */
	ranges[D_PM] = (struct range){ &pio, X86_PM1A_EVT_PORT, 16 };
	ranges[D_PL031] = (struct range){ &mmio, ARM64_RTC_BASE, ARM64_RTC_SIZE };
	ranges[D_UART_MMIO] = (struct range){ &mmio, ARM64_UART_BASE, ARM64_UART_SIZE };

	fuzz_in_init(&in, data, size);
	while (!fuzz_done(&in)) {
		uint8_t op = fuzz_u8(&in), d[8];
		unsigned which = op & 7, len = 1u << ((op >> 3) & 3);
		bool write = op & 0x20;

		if (which >= NDEV) {
			uint8_t buf[256];
			size_t n = fuzz_bytes(&in, buf, fuzz_u8(&in));

			uart_receive(which == 6 ? dev[D_UART] : mmio_uart, buf, n);
			continue;
		}
		switch (op >> 6) {
		case 2:
			if (dev[which]->ops->reset)
				dev[which]->ops->reset(dev[which]);
			continue;
		case 3:
			fuzz_save_load(dev[which]);
			continue;
		}
		uint64_t off = fuzz_u8(&in) % ranges[which].len;

		if (ranges[which].len > 256)
			off |= (uint64_t)(fuzz_u8(&in) & 0xf) << 8;
		if (write)
			fuzz_bytes(&in, d, 8);
		else
			memset(d, 0xa5, sizeof(d));
		bus_dispatch(ranges[which].bus, ranges[which].base + off, d, len, write);
	}
	for (int i = NDEV - 1; i >= 0; i--)
		dev[i]->ops->destroy(dev[i]);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	return 0;
}
