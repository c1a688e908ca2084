/* reset.c - guest-initiated resets.
 *   mode=i8042 / mode=acpi: reset once (run with --no-reboot: the VMM exits 0).
 *   mode=count [via=acpi]: count boots in CMOS NVRAM (kept across a reset);
 *   reset on the first boot, power off on the second. */
#include "guest.h"

#define NV_MAGIC_IDX 0x7d
#define NV_COUNT_IDX 0x7e
#define NV_MAGIC     0xa5

static void do_reset(const char *via)
{
	if (via && !strncmp(via, "acpi", 4))
		reset_acpi();
	reset_i8042();
}

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	const char *mode = cmdline_get("mode");

	if (!mode)
		fail("no mode= on the command line '%s'", cmdline());
	if (!strncmp(mode, "count", 5)) {
		unsigned n = 1;

		if (cmos_read(NV_MAGIC_IDX) == NV_MAGIC)
			n = cmos_read(NV_COUNT_IDX) + 1;
		cmos_write(NV_MAGIC_IDX, NV_MAGIC);
		cmos_write(NV_COUNT_IDX, (u8)n);
		gprintf("reset: boot %u\n", n);
		if (n == 1)
			do_reset(cmdline_get("via"));
		cmos_write(NV_MAGIC_IDX, 0);
		cmos_write(NV_COUNT_IDX, 0);
		if (n != 2)
			fail("boot count %u, expected 2", n);
		poweroff();
	}
	gprintf("reset: boot 1\n");
	do_reset(mode);
}
