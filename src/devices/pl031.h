/* pl031.h - ARM PrimeCell PL031 real-time clock (the arm64 guest's RTC).
 *
 * A 32-bit seconds counter: the host's CLOCK_REALTIME plus an offset the guest sets through the
 * load register. The match register latches the raw interrupt status when the counter reaches
 * it, evaluated at each guest access: the interrupt line follows the masked status then, but no
 * timer raises it on its own (the x86 RTC's alarm has one: a loop_timer, src/devices/rtc.c), so a
 * guest sleeping until an RTC alarm is not woken. The offset and the registers are the saved state.
 * 32-bit accesses only; others read as all ones and are ignored when written. */
#ifndef KVMBOX_DEVICES_PL031_H
#define KVMBOX_DEVICES_PL031_H

#include <stdint.h>
#include <time.h>

#include "../core/bus.h"
#include "../core/device.h"
#include "../core/irq.h"

#define PL031_MMIO_SIZE 0x1000

/* Register offsets. */
#define PL031_DR   0x000 /* data: the counter, read-only */
#define PL031_MR   0x004 /* match */
#define PL031_LR   0x008 /* load: writing sets the counter */
#define PL031_CR   0x00c /* control: bit 0 starts the counter (it always runs here) */
#define PL031_IMSC 0x010 /* interrupt mask set/clear: bit 0 */
#define PL031_RIS  0x014 /* raw interrupt status */
#define PL031_MIS  0x018 /* masked interrupt status */
#define PL031_ICR  0x01c /* interrupt clear, write-only */
#define PL031_ID   0xfe0 /* PeriphID0..3 then PCellID0..3, one byte per word */

/* Create the RTC decoding [base, base + PL031_MMIO_SIZE) on mmio. NULL with an error logged if
 * the range is taken or memory runs out. The device's type is "rtc". */
struct device *pl031_create(const char *name, struct bus *mmio, uint64_t base, struct irq_line irq);

/* Replace the host clock (unit tests). now() fills a CLOCK_REALTIME-like timespec; NULL restores
 * clock_gettime(CLOCK_REALTIME). */
void pl031_set_clock(struct device *dev, void (*now)(void *ctx, struct timespec *ts), void *ctx);

#endif
