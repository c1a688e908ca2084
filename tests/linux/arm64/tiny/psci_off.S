/* psci_off.S - prints a line on the console UART, then PSCI SYSTEM_OFF: kvmbox exits 0. */
#include "header.inc"
start:
	adr	x1, msg
	bl	puts
	psci	PSCI_SYSTEM_OFF
	b	.
	puts_body
msg:	.asciz	"TINY-OFF serial works\n"
	.ltorg
