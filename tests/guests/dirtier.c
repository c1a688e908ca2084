/* dirtier.c - a guest that keeps rewriting a memory region, for the live
 * migration tests: each pass first checks that every page still holds the
 * word the previous pass wrote into it, then writes a new pass-derived word
 * into every page, reads the region back and prints "pass N sum S" (S: the
 * 64-bit wrapping sum of the words, in hex). A page whose newest contents a
 * migration did not re-send shows up on the destination as
 * "dirtier: MISMATCH ...". One word per page keeps a pass cheap where guest
 * code is emulated.
 *   base=MIB   start of the region (default 16)
 *   mb=MIB     size of the region (default 8: 2048 pages)
 *   passes=N   power off after N passes (default 0: run for ever)
 *   delay=MS   pause between passes, from the LAPIC timer (default 0) */
#include "guest.h"

#define PAGE   4096u
#define BUS_HZ 1000000000u /* KVM's APIC bus clock */

static volatile u32 timer_fired;

/* The word written into page i on pass p: never 0, differs between passes. */
static u64 word_for(u64 pass, u64 i)
{
	return (pass * 0x9e3779b97f4a7c15ull) ^ (i * 0xbf58476d1ce4e5b9ull) ^ 1;
}

/* Where in page i the word lives (spread over the page, not always offset 0). */
static u64 word_offset(u64 i)
{
	return ((i * 67) % (PAGE / 8)) * 8;
}

static void timer_irq(struct irq_frame *f)
{
	timer_fired = 1;
	lapic_eoi();
}

static void sleep_ms(u32 ms)
{
	timer_fired = 0;
	lapic_write(LAPIC_TDCR, 0x3);                  /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER); /* one-shot */
	lapic_write(LAPIC_TMICT, (BUS_HZ / 16 / 1000) * ms);
	while (!timer_fired)
		wait_for_irq();
}

void guest_main(struct hvm_start_info *si)
{
	u64 base, pages;
	long passes, delay;

	guest_init(si); /* first: it parses the command line */
	base = (u64)cmdline_int("base", 16) << 20;
	pages = ((u64)cmdline_int("mb", 8) << 20) / PAGE;
	passes = cmdline_int("passes", 0);
	delay = cmdline_int("delay", 0);
	pic_mask_all();
	lapic_enable();
	irq_set_handler(VEC_LAPIC_TIMER, timer_irq);
	if (pages == 0 || base < (16u << 20))
		fail("dirtier: bad base/mb on the command line");
	gprintf("dirtier: ready (base %lu MiB, %lu pages)\n", (unsigned long)(base >> 20),
		(unsigned long)pages);

	for (u64 p = 1; passes == 0 || p <= (u64)passes; p++) {
		u64 bad = 0, sum = 0;

		if (p > 1) {
			for (u64 i = 0; i < pages; i++) {
				u64 got = *(volatile u64 *)(base + i * PAGE + word_offset(i));
				u64 want = word_for(p - 1, i);

				if (got != want && bad++ < 3)
					gprintf("dirtier: MISMATCH pass %lu page %lu got %lx want %lx\n",
						(unsigned long)p, (unsigned long)i, (unsigned long)got,
						(unsigned long)want);
			}
			if (bad)
				gprintf("dirtier: MISMATCH pass %lu: %lu pages wrong\n", (unsigned long)p,
					(unsigned long)bad);
		}
		for (u64 i = 0; i < pages; i++)
			*(volatile u64 *)(base + i * PAGE + word_offset(i)) = word_for(p, i);
		for (u64 i = 0; i < pages; i++)
			sum += *(volatile u64 *)(base + i * PAGE + word_offset(i));
		gprintf("pass %lu sum %lx\n", (unsigned long)p, (unsigned long)sum);
		if (delay > 0)
			sleep_ms((u32)delay);
	}
	gprintf("dirtier: done\n");
	poweroff();
}
