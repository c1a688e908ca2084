/* lapic_timer.c - LAPIC timer in periodic mode (100 Hz), counted with hlt
 * waits and EOI; rate checked against the RTC; then one-shot mode. */
#include "guest.h"

#define RATE   100
#define BUS_HZ 1000000000u /* KVM's APIC bus clock */

static volatile u32 ticks;

static void timer_irq(struct irq_frame *f)
{
	ticks++;
	lapic_eoi();
}

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	pic_mask_all();
	lapic_enable();
	irq_set_handler(VEC_LAPIC_TIMER, timer_irq);

	u32 init = BUS_HZ / 16 / RATE;

	lapic_write(LAPIC_TDCR, 0x3);                               /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, (1u << 17) | VEC_LAPIC_TIMER); /* periodic */
	lapic_write(LAPIC_TMICT, init);

	u32 c1 = lapic_read(LAPIC_TMCCT);

	for (int i = 0; i < 1000; i++)
		cpu_relax();
	u32 c2 = lapic_read(LAPIC_TMCCT);

	if (c1 > init || c2 > init || c1 == c2)
		fail("current count %u then %u (initial %u)", c1, c2, init);
	if (lapic_read(LAPIC_TMICT) != init)
		fail("initial count reads %u, wrote %u", lapic_read(LAPIC_TMICT), init);

	u32 prev = 0;

	for (int i = 0; i < 10; i++) {
		while (ticks == prev)
			wait_for_irq();
		prev = ticks;
	}
	gprintf("lapic_timer: periodic ticks arriving\n");

	u32 hz = count_per_rtc_second(&ticks, 100000);

	gprintf("lapic_timer: %u ticks in one RTC second\n", hz);
	if (hz < RATE / 4 || hz > RATE * 4)
		fail("LAPIC timer rate %u Hz, programmed %u Hz", hz, RATE);

	/* One-shot: exactly one interrupt, then the current count stays 0. */
	lapic_write(LAPIC_TMICT, 0);
	lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER);
	irq_drain(); /* a periodic tick latched before the stop is not the one-shot's */
	u32 before = ticks;

	lapic_write(LAPIC_TMICT, init / 10); /* 1 ms */
	while (ticks == before)
		wait_for_irq();
	for (int i = 0; i < 200000 && lapic_read(LAPIC_TMCCT) != 0; i++)
		cpu_relax();
	if (lapic_read(LAPIC_TMCCT) != 0)
		fail("one-shot current count %u after expiry", lapic_read(LAPIC_TMCCT));
	/* Arm a long one-shot as a fence: any extra tick from the 1 ms shot would
	 * arrive before it. */
	lapic_write(LAPIC_TMICT, init * 5); /* 50 ms */
	while (ticks == before + 1)
		wait_for_irq();
	if (ticks != before + 2)
		fail("one-shot mode delivered %u interrupts for two shots", ticks - before);
	gprintf("lapic_timer: one-shot ok\n");
	gprintf("lapic_timer: OK\n");
	poweroff();
}
