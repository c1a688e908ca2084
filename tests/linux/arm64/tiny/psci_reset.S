/* psci_reset.S - prints a line, then PSCI SYSTEM_RESET: a reboot (with --no-reboot, exit 0). */
#include "header.inc"
start:
	adr	x1, msg
	bl	puts
	psci	PSCI_SYSTEM_RESET
	b	.
	puts_body
msg:	.asciz	"TINY-RESET\n"
	.ltorg
