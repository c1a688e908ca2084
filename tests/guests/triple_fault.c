/* triple_fault.c - int3 with an empty IDT: #GP, #DF, then shutdown; the VMM
 * must report a crash (status 3) with a register dump. */
#include "guest.h"

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	gprintf("triple_fault: faulting now\n");
	triple_fault();
}
