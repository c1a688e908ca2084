/* pit.c - i8254 channel 0 at 100 Hz, IRQ 0 routed through the IOAPIC to a
 * vector; ticks counted with hlt waits, EOI each, rate checked against the RTC. */
#include "guest.h"

#define PIT_HZ 1193182
#define RATE   100

static volatile u32 ticks;

static void pit_irq(struct irq_frame *f)
{
	ticks++;
	lapic_eoi();
}

static u16 pit_read_count(void)
{
	outb(0x43, 0x00); /* latch channel 0 */
	u8 lo = inb(0x40);
	u8 hi = inb(0x40);

	return (u16)(hi << 8 | lo);
}

void guest_main(struct hvm_start_info *si)
{
	struct madt_info mi;
	bool level, low;

	guest_init(si);
	pic_mask_all();
	lapic_enable();
	if (!acpi_read_madt(&mi))
		fail("cannot read the MADT");
	u32 gsi = isa_irq_gsi(&mi, 0, &level, &low);

	gprintf("pit: irq0 -> gsi %u%s\n", gsi, mi.have_iso[0] ? " (override)" : "");
	watchdog_start();
	irq_set_handler(VEC_PIT, pit_irq);
	ioapic_route(gsi, VEC_PIT, apic_id_cpuid(), level, low);

	u16 div = PIT_HZ / RATE;

	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
	outb(0x40, div & 0xff);
	outb(0x40, div >> 8);

	/* The counter runs down within (0, div]. */
	u16 c1 = pit_read_count(), c2, c3;

	for (int i = 0; i < 1000; i++)
		cpu_relax();
	c2 = pit_read_count();
	c3 = pit_read_count();
	if (c1 == 0 || c1 > div || c2 == 0 || c2 > div)
		fail("PIT count %u/%u outside 1..%u", c1, c2, div);
	if (c1 == c2 && c2 == c3)
		fail("PIT count stuck at %u", c1);

	/* Interrupts arrive, one per EOI'd wake-up, and keep arriving. */
	u32 prev = 0;

	for (int i = 0; i < 10; i++) {
		while (ticks == prev)
			wait_for_irq();
		if (ticks < prev)
			fail("tick count went backwards");
		prev = ticks;
	}
	gprintf("pit: ticks arriving (%lu us for 10)\n", clock_us());

	u32 hz = count_per_rtc_second(&ticks, 100000);

	gprintf("pit: %u ticks in one RTC second\n", hz);
	if (hz < RATE / 4 || hz > RATE * 4)
		fail("PIT rate %u Hz, programmed %u Hz", hz, RATE);

	/* Masking the IOAPIC pin stops delivery. */
	ioapic_mask(gsi);
	irq_drain(); /* a tick latched before the mask */
	u32 before = ticks;
	u64 t0 = clock_us();

	sti();
	while (clock_us() - t0 < 100000)
		cpu_relax();
	cli();
	if (ticks != before)
		fail("%u ticks arrived with the IOAPIC pin masked", ticks - before);
	gprintf("pit: masked ok\n");
	gprintf("pit: OK\n");
	poweroff();
}
