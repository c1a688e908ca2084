/* reboots.c - reboot several times in one kvmbox process, then power off, so
 * the runner can compare the process's fds and threads across guest reboots.
 *   boots=N (default 4): boots counted in CMOS NVRAM (kept across a reset);
 *   boots 1..N-1 end in a reset (i8042 and ACPI reset register alternately),
 *   boot N powers off.
 *   hold=MS (default 1000): on the first and the last boot, after the
 *   "reboots: boot n" line, wait until a byte arrives on COM1 (the runner has
 *   looked at the process) or, at the latest, MS milliseconds have passed. */
#include "guest.h"

#define NV_MAGIC_IDX 0x7b /* reset.c uses 0x7d/0x7e */
#define NV_COUNT_IDX 0x7c
#define NV_MAGIC     0x5a
#define VEC_HOLD     0x32

static volatile unsigned ticks;

static void hold_irq(struct irq_frame *f)
{
	ticks++;
	lapic_eoi();
}

/* A periodic 10 ms LAPIC timer at divide 16 (62.5 MHz); each tick polls
 * COM1's receiver (LSR data ready). Ends on a byte or after MS. */
static void hold(long ms)
{
	if (ms <= 0)
		return;
	ticks = 0;
	irq_set_handler(VEC_HOLD, hold_irq);
	lapic_write(LAPIC_TDCR, 0x3);
	lapic_write(LAPIC_LVT_TIMER, VEC_HOLD | (1u << 17));
	lapic_write(LAPIC_TMICT, 625000);
	while ((long)ticks * 10 < ms) {
		if (inb(COM1 + 5) & 0x01) {
			(void)inb(COM1);
			break;
		}
		wait_for_irq();
	}
	lapic_write(LAPIC_TMICT, 0);
	lapic_write(LAPIC_LVT_TIMER, 0x10000 | VEC_HOLD);
}

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	pic_mask_all();
	lapic_enable();

	long boots = cmdline_int("boots", 4);
	long ms = cmdline_int("hold", 1000);
	unsigned n = 1;

	if (boots < 1 || boots > 200)
		fail("boots=%ld outside 1..200", boots);
	if (cmos_read(NV_MAGIC_IDX) == NV_MAGIC)
		n = cmos_read(NV_COUNT_IDX) + 1u;
	cmos_write(NV_MAGIC_IDX, NV_MAGIC);
	cmos_write(NV_COUNT_IDX, (u8)n);
	gprintf("reboots: boot %u\n", n);
	if (n > boots)
		fail("boot %u, but boots=%ld", n, boots);
	if (n == 1 || n == boots)
		hold(ms);
	if (n < boots) {
		if (n % 2)
			reset_i8042();
		reset_acpi();
	}
	cmos_write(NV_MAGIC_IDX, 0);
	cmos_write(NV_COUNT_IDX, 0);
	gprintf("reboots: done\n");
	poweroff();
}
