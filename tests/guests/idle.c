/* idle.c - a guest that never stops, for the runner's process tests (signals,
 * threads, SIGSTOP, terminal). Starts every AP the MADT lists into a hlt loop,
 * prints "idle: ready", then "idle: tick N" every 0.2 s for ever. Time comes
 * from the LAPIC timer in periodic mode and the BSP waits with hlt, so an idle
 * VM costs the host (almost) nothing and a stopped process prints nothing.
 *   noaps: leave the APs in wait-for-SIPI.
 *   hz=N: tick N times a second instead of 5 (bench/lifecycle.sh times restores by it).
 *   pwrbtn: handle the ACPI power button: route the SCI (ISA IRQ 9 through the
 *           MADT override) on the IOAPIC, enable PWRBTN_EN in PM1_EN and, on
 *           the event, clear PWRBTN_STS, print "idle: power button" and power
 *           off through PM1a_CNT. Without it the button is ignored.
 *   echo: read the serial port's input at each tick (LSR's data-ready bit, no interrupt) and
 *         print each line as "idle: echo LINE" (printable ASCII, up to 64 characters; CR or
 *         LF ends a line), for kvmbox up's console test. */
#include "guest.h"

#define TICK_HZ    5
#define BUS_HZ     1000000000u /* KVM's APIC bus clock */
#define VEC_SCI    0x39
#define PM1_STS    0x600
#define PM1_EN     0x602
#define PM1_PWRBTN (1u << 8)

extern char tramp_start[], tramp_end[];
extern volatile u64 ap_stack_top; /* read by ap_entry64 in start.S */
static u8 ap_stacks[MAX_CPUS][4096] __attribute__((aligned(16)));
static volatile int ap_started;
static volatile u32 ticks;

void ap_main(void)
{
	idt_load();
	lapic_enable();
	ap_started = 1;
	halt_forever();
}

static void timer_irq(struct irq_frame *f)
{
	ticks++;
	lapic_eoi();
}

/* The SCI is level triggered: clear the status before the EOI or it fires again. */
static void sci_irq(struct irq_frame *f)
{
	u16 sts = inw(PM1_STS);

	if (sts & PM1_PWRBTN) {
		outw(PM1_STS, PM1_PWRBTN); /* write 1 to clear */
		gprintf("idle: power button\n");
		poweroff();
	}
	gprintf("idle: SCI with PM1_STS %x\n", sts);
	lapic_eoi();
}

static void sci_setup(const struct madt_info *mi)
{
	bool level, active_low;
	u32 gsi = isa_irq_gsi(mi, 9, &level, &active_low);

	irq_set_handler(VEC_SCI, sci_irq);
	ioapic_route(gsi, VEC_SCI, apic_id_cpuid(), level, active_low);
	outw(PM1_EN, PM1_PWRBTN);
	gprintf("idle: power button armed (gsi %u, %s, active %s)\n", gsi, level ? "level" : "edge",
		active_low ? "low" : "high");
}

/* The input received since the last tick: each complete line printed back. */
static void echo_poll(void)
{
	static char line[65];
	static int len;

	while (inb(COM1 + 5) & 0x01) { /* LSR: data ready */
		char ch = (char)inb(COM1);

		if (ch == '\r' || ch == '\n') {
			if (len) {
				line[len] = '\0';
				gprintf("idle: echo %s\n", line);
				len = 0;
			}
		} else if (ch >= 0x20 && ch < 0x7f && len < (int)sizeof(line) - 1) {
			line[len++] = ch;
		}
	}
}

/* INIT, then SIPI (twice if needed); the watchdog clock bounds the waits. */
static void start_ap(u32 id, int slot)
{
	ap_started = 0;
	ap_stack_top = (u64)&ap_stacks[slot][sizeof(ap_stacks[0])];
	barrier();
	if (!lapic_send_ipi(id, 0x4500))
		fail("INIT to apic %u not delivered", id);
	for (int tries = 0; tries < 2; tries++) {
		if (!lapic_send_ipi(id, 0x4600 | (TRAMP_BASE >> 12)))
			fail("SIPI to apic %u not delivered", id);
		u64 t0 = clock_us();

		while (clock_us() - t0 < (tries ? 5000000u : 500000u)) {
			if (ap_started)
				return;
			cpu_relax();
		}
	}
	fail("apic %u did not start after INIT+SIPI+SIPI", id);
}

void guest_main(struct hvm_start_info *si)
{
	struct madt_info mi;
	long hz;

	guest_init(si);
	hz = cmdline_int("hz", TICK_HZ);
	if (hz < 1 || hz > 1000)
		fail("idle: hz=%ld out of 1..1000", hz);
	pic_mask_all();
	lapic_enable();
	if (!acpi_read_madt(&mi))
		fail("cannot read the MADT");
	if (!cmdline_has("noaps")) {
		u32 bsp = apic_id_cpuid();
		int slot = 0;

		watchdog_start();
		memcpy((void *)TRAMP_BASE, tramp_start, (size_t)(tramp_end - tramp_start));
		for (int i = 0; i < mi.ncpus; i++)
			if (mi.apic_ids[i] != bsp)
				start_ap(mi.apic_ids[i], slot++);
	}

	if (cmdline_has("pwrbtn"))
		sci_setup(&mi);

	/* Reprogramming the timer replaces the watchdog: this guest runs for ever. */
	irq_set_handler(VEC_LAPIC_TIMER, timer_irq);
	lapic_write(LAPIC_TMICT, 0);
	lapic_write(LAPIC_TDCR, 0x3);                               /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, (1u << 17) | VEC_LAPIC_TIMER); /* periodic */
	lapic_write(LAPIC_TMICT, BUS_HZ / 16 / (u32)hz);
	gprintf("idle: ready (%d cpus)\n", mi.ncpus);

	u32 seen = 0;
	bool echo = cmdline_has("echo");

	for (;;) {
		while (ticks == seen)
			wait_for_irq();
		seen = ticks;
		gprintf("idle: tick %u\n", seen);
		if (echo)
			echo_poll();
	}
}
