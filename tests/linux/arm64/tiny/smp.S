/* smp.S - vCPU 0 starts vCPU 1 with PSCI CPU_ON (MPIDR 1, entry `second`, context 0x5a) and
 * spins; vCPU 1 checks its context ID (x0), prints a line and powers the machine off. */
#include "header.inc"
start:
	ldr	x0, =PSCI_CPU_ON
	mov	x1, #1
	adr	x2, second
	mov	x3, #0x5a
	hvc	#0
	cbnz	x0, fail		/* PSCI_SUCCESS is 0 */
	b	.
second:
	cmp	x0, #0x5a
	b.ne	fail
	adr	x1, msg
	bl	puts
	psci	PSCI_SYSTEM_OFF
	b	.
fail:
	adr	x1, bad
	bl	puts
	b	.
	puts_body
msg:	.asciz	"TINY-SMP vCPU 1 up through PSCI CPU_ON\n"
bad:	.asciz	"TINY-SMP failed\n"
	.ltorg
