/* rtc.h - MC146818 CMOS real-time clock and NVRAM: an index port and a data
 * port after it (0x70/0x71 on x86).
 *
 * The clock is the host's CLOCK_REALTIME plus an offset the guest sets by
 * writing the time registers; the offset and the 128 bytes of CMOS are the
 * saved state. BCD/binary and 12/24-hour formats follow register B. The
 * alarm, periodic and update-ended interrupts are not implemented: register
 * C always reads 0 and the IRQ line is never raised. */
#ifndef KVMBOX_DEVICES_RTC_H
#define KVMBOX_DEVICES_RTC_H

#include <stdint.h>
#include <time.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

/* CMOS index of the century byte (the ACPI FADT CENTURY field names it). */
#define RTC_CENTURY_INDEX 0x32

/* Create the RTC decoding [base, base+2) on bus (index, data). NULL with an
 * error logged if the ports are taken or memory runs out. */
struct device *rtc_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq);

/* Replace the host clock (unit tests). now() fills a CLOCK_REALTIME-like
 * timespec; NULL restores clock_gettime(CLOCK_REALTIME). */
void rtc_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx);

#endif
