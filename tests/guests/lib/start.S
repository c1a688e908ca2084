/* start.S - PVH entry, long-mode switch, AP trampoline and interrupt stubs.
 *
 * Entry (Xen PVH boot ABI): 32-bit protected mode, paging off, flat segments,
 * interrupts off, %ebx = physical address of struct hvm_start_info.
 * The image is linked and loaded at 1 MiB; every address here is physical.
 */
#define TRAMP_BASE 0x10000

#define SEL_CODE32 0x08
#define SEL_DATA   0x10
#define SEL_CODE64 0x18

#define MSR_EFER   0xc0000080
#define EFER_LME   0x100
#define CR0_PE     0x1
#define CR0_PG     0x80000000
#define CR4_PAE    0x20

/* The PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz */
	.long 4			/* descsz */
	.long 18		/* type */
	.asciz "Xen"
	.long _start32

	.section .text.boot, "ax"
	.code32
	.globl _start32
_start32:
	cli
	cld
	mov	%ebx, %esi
	lgdt	gdt_ptr
	ljmp	$SEL_CODE32, $1f
1:	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	mov	%eax, %fs
	mov	%eax, %gs
	mov	$bsp_stack_top, %esp

	/* A reset restarts with fresh RAM, but do not depend on the loader for .bss. */
	mov	$__bss_start, %edi
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	shr	$2, %ecx
	xor	%eax, %eax
	rep stosl

	/* PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 2 MiB pages = identity map of 4 GiB.
	 * The top GiB (PCI hole, IOAPIC, LAPIC) is mapped uncached (PCD|PWT). */
	mov	$pdpt, %eax
	or	$3, %eax
	mov	%eax, pml4
	mov	$pd, %eax
	or	$3, %eax
	xor	%ecx, %ecx
2:	mov	%eax, pdpt(,%ecx,8)
	add	$0x1000, %eax
	inc	%ecx
	cmp	$4, %ecx
	jb	2b
	xor	%ecx, %ecx
3:	mov	%ecx, %eax
	shl	$21, %eax
	or	$0x83, %eax		/* present, writable, 2 MiB page */
	cmp	$1536, %ecx
	jb	4f
	or	$0x18, %eax		/* PWT | PCD */
4:	mov	%eax, pd(,%ecx,8)
	inc	%ecx
	cmp	$2048, %ecx
	jb	3b

	call	enter_long_mode32
	ljmp	$SEL_CODE64, $start64

/* Shared by the BSP and the APs (which arrive here from the trampoline in
 * 32-bit protected mode with flat segments): PAE, CR3, EFER.LME, paging on. */
enter_long_mode32:
	mov	%cr4, %eax
	or	$CR4_PAE, %eax
	mov	%eax, %cr4
	mov	$pml4, %eax
	mov	%eax, %cr3
	mov	$MSR_EFER, %ecx
	rdmsr
	or	$EFER_LME, %eax
	wrmsr
	mov	%cr0, %eax
	or	$(CR0_PG | CR0_PE), %eax
	mov	%eax, %cr0
	ret

	.code64
start64:
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	mov	$bsp_stack_top, %rsp
	mov	%esi, %edi		/* zero-extends: struct hvm_start_info * */
	call	guest_main
	call	poweroff
5:	cli
	hlt
	jmp	5b

/* AP entry in long mode: each AP gets the stack the BSP published before its SIPI. */
ap_entry64:
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	mov	ap_stack_top(%rip), %rsp
	call	ap_main
6:	cli
	hlt
	jmp	6b

/* AP ap_entry32: reached from the trampoline in 32-bit mode, stack-less; the
 * page tables already exist because the BSP built them. */
ap_entry32:
	.code32
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	mov	$ap_tmp_stack_top, %esp	/* only for the call below; APs start one at a time */
	call	enter_long_mode32
	ljmp	$SEL_CODE64, $ap_entry64

/* The AP real-mode trampoline. guest code copies [tramp_start, tramp_end) to
 * TRAMP_BASE and sends SIPI vector TRAMP_BASE >> 12, so the AP starts here with
 * CS = TRAMP_BASE >> 4, IP = 0. */
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	cld
	mov	%cs, %ax
	mov	%ax, %ds
	lgdtl	tramp_gdtr - tramp_start
	mov	%cr0, %eax
	or	$CR0_PE, %eax
	mov	%eax, %cr0
	ljmpl	$SEL_CODE32, $ap_entry32
	.balign 8
tramp_gdtr:
	.word	gdt_end - gdt - 1
	.long	gdt
tramp_end:

/* Interrupt stubs: 256 entries, 16 bytes apart, each pushing a dummy error code
 * (unless the CPU pushes one) and the vector number. */
	.code64
	.altmacro
	.macro isr_stub n
	.balign 16
	.if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	.else
	pushq	$0
	.endif
	pushq	$\n
	jmp	isr_common
	.endm

	.balign 16
	.globl isr_stubs
isr_stubs:
	.set i, 0
	.rept 256
	isr_stub %i
	.set i, i+1
	.endr
	.noaltmacro

isr_common:
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	cld
	mov	%rsp, %rdi
	call	isr_dispatch
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp
	iretq

	.section .rodata
	.balign 16
	.globl gdt
gdt:
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x08: 32-bit code, flat */
	.quad	0x00cf92000000ffff	/* 0x10: data, flat */
	.quad	0x00af9a000000ffff	/* 0x18: 64-bit code */
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt

	.section .bss
	.balign 4096
	.globl pml4
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
	.balign 16
	.skip 16384
bsp_stack_top:
	.skip 256
ap_tmp_stack_top:
