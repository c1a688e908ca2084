/* reboots.c - reboot several times in one kvmbox process, then power off, so
 * the runner can compare the process's fds and threads across guest reboots.
 *   boots=N (default 4): boots counted in CMOS NVRAM (kept across a reset);
 *   boots 1..N-1 end in a reset (i8042 and ACPI reset register alternately),
 *   boot N powers off.
 *   hold=MS (default 1000): on the first and the last boot, wait this long
 *   (LAPIC timer, hlt) after the "reboots: boot n" line so the runner can look
 *   at the process. */
#include "guest.h"

#define NV_MAGIC_IDX 0x7b   /* reset.c uses 0x7d/0x7e */
#define NV_COUNT_IDX 0x7c
#define NV_MAGIC 0x5a
#define VEC_HOLD 0x32

static volatile int expired;

static void hold_irq(struct irq_frame *f)
{
	expired = 1;
	lapic_eoi();
}

/* One-shot LAPIC timer at divide 16 (62.5 MHz): at most ~68 s. */
static void hold(long ms)
{
	if (ms <= 0)
		return;
	if (ms > 60000)
		ms = 60000;
	expired = 0;
	irq_set_handler(VEC_HOLD, hold_irq);
	lapic_write(LAPIC_TDCR, 0x3);
	lapic_write(LAPIC_LVT_TIMER, VEC_HOLD);
	lapic_write(LAPIC_TMICT, (u32)(ms * 62500));
	while (!expired)
		wait_for_irq();
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
