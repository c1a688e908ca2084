/* poweroff.c - the ACPI PM1a_CNT S5 write ends the VM with status 0. */
#include "guest.h"

void guest_main(struct hvm_start_info *si)
{
	guest_init(si);
	gprintf("poweroff: going down\n");
	poweroff();
}
