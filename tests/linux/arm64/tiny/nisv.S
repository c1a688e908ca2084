/* nisv.S - a hostile guest: a load pair from the UART's MMIO page, which gives KVM no
 * instruction syndrome to emulate it with. kvmbox must stop it as a guest crash (status 3, a
 * register dump), not fail or hang. */
#include "header.inc"
start:
	mov	x2, #UART
	ldp	x0, x1, [x2]
	adr	x1, msg
	bl	puts
	b	.
	puts_body
msg:	.asciz	"TINY-NISV the load pair went through\n"
	.ltorg
