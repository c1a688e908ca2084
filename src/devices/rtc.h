/* rtc.h - MC146818 CMOS real-time clock and NVRAM: an index port and a data
 * port after it (0x70/0x71 on x86), and an interrupt line (IRQ 8 on x86).
 *
 * The clock is the host's CLOCK_REALTIME plus an offset the guest sets by
 * writing the time registers. BCD/binary and 12/24-hour formats follow
 * register B. Register A: UIP in the 244 us before each second's update, the
 * divider (only DV = 010 runs: any other value stops the clock, the updates
 * and the periodic interrupt) and the periodic rate RS (3..15: 8192 Hz down to
 * 2 Hz; 1 and 2: 256 and 128 Hz; 0: none). Register B: SET (updates stop and
 * the time registers hold what the guest writes), PIE, AIE, UIE, DM, 24/12
 * (SQWE is stored, there is no square-wave pin). Register C: PF, AF (the
 * seconds/minutes/hours alarm, 0xC0-0xFF in a field matching anything) and UF
 * are set whether or not they are enabled; IRQF and the line follow the
 * enabled ones; reading C clears it and lowers the line.
 *
 * Saved state: the offset, the 128 bytes of CMOS (the pending flags and the
 * enables in C and B) and the host time up to which the flags are accounted,
 * so events due while a snapshot lay on disk are pending after the restore. */
#ifndef KVMBOX_DEVICES_RTC_H
#define KVMBOX_DEVICES_RTC_H

#include <stdint.h>
#include <time.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"
#include "../core/loop.h"

/* CMOS index of the century byte (the ACPI FADT CENTURY field names it). */
#define RTC_CENTURY_INDEX 0x32

/* Create the RTC decoding [base, base+2) on bus (index, data). Its timed
 * events run on loop's thread (a timer armed only while an enabled interrupt
 * is due); with loop NULL the flags are still set when the guest reads the
 * chip, but nothing raises the line between its accesses. NULL with an error
 * logged if the ports are taken, the timer cannot be had or memory runs out. */
struct device *rtc_create(const char *name, struct bus *bus, uint64_t base, struct irq_line irq,
			  struct loop *loop);

/* Replace the host clock (unit tests). now() fills a CLOCK_REALTIME-like
 * timespec; NULL restores clock_gettime(CLOCK_REALTIME). The timer stays on
 * CLOCK_REALTIME: a fake clock behind the real one makes every armed timer
 * fire at once, and the device then looks at the fake clock. */
void rtc_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx);

#endif
