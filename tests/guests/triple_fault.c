/* triple_fault.c - an exception with an empty IDT: #GP, #DF, then shutdown; the
 * VMM must report a crash (status 3) with a register dump.
 *   how=ud2 (default) or how=int3 picks the first exception. (On the nested,
 *   emulating KVM of the test hosts int3 ends in an emulation internal error
 *   instead of a shutdown; both must be reported as a crash.) */
#include "guest.h"

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	const char *how = cmdline_get("how");

	gprintf("triple_fault: faulting now\n");
	if (!how || strncmp(how, "int3", 4)) {
		struct {
			u16 limit;
			u64 base;
		} __attribute__((packed)) p = { 0, 0 };

		__asm__ volatile("lidt %0; ud2" : : "m"(p));
	}
	triple_fault();
}
