/* dirtylog.c - KVM's dirty logging under load, without kvmbox: evidence for DEVELOPERS.md's
 * "Guest triple faults under nested virtualisation" (is a guest that faults during a
 * migration's pre-copy kvmbox's doing, or the emulated host's?).
 *
 *   dirtylog SECONDS [ROUNDS_PER_TOGGLE [TIMER_CYCLES]]
 *
 * Uses the KVM API alone: one VM, one 64 MiB memory slot (anonymous, MADV_HUGEPAGE, as kvmbox
 * maps guest RAM), one vCPU in 64-bit mode with identity 2 MiB pages and the page tables,
 * the GDT and the code in that slot. The guest rewrites one word in each 4 KiB page of
 * 2-62 MiB, pass after pass, first checking that each page holds what the previous pass
 * wrote; each pass ends with an OUT to port 0x10 (one exit to here). The in-kernel LAPIC's
 * timer interrupts it every TIMER_CYCLES (default 500000: 2 kHz), its handler on a stack in
 * the same slot, as a Linux guest's or the tiny dirtier guest's are. Meanwhile this thread does
 * what kvmbox's migration thread does in pre-copy: it sets KVM_MEM_LOG_DIRTY_PAGES on the
 * slot, reads KVM_GET_DIRTY_LOG ROUNDS_PER_TOGGLE (default 8) times while copying the dirty
 * pages out (reads only), clears the flag, and again, for SECONDS.
 *
 * Prints one line and exits: 0 no fault ("dirtylog: ok: P passes, T toggles, R dirty-log
 * reads"), 1 the guest found a page that lost its last write (OUT 0x11: the address),
 * 2 the vCPU stopped otherwise (KVM_EXIT_SHUTDOWN, a triple fault; registers printed),
 * 3 set-up failed (no /dev/kvm...). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE  (64ull << 20)
#define PML4      0x1000ull
#define PDPT      0x2000ull
#define PD        0x3000ull
#define GDT       0x4000ull
#define IDT       0x5000ull
#define VEC_TIMER 0x40
#define CODE      0x10000ull
#define STACK_TOP 0x20000ull
#define PORT_PASS 0x10
#define PORT_BAD  0x11

/* The guest, 64-bit and position independent: r8 is the pass, rdx walks the pages. */
extern const unsigned char guest_code[], guest_irq[], guest_code_end[];
__asm__(".pushsection .rodata\n"
	".globl guest_code\n"
	".globl guest_code_end\n"
	".code64\n"
	"guest_code:\n"
	/* x2APIC on, its timer periodic at vector 0x40 (KVM's APIC bus: 1 GHz), interrupts on */
	"	mov $0x1b, %ecx\n"
	"	rdmsr\n"
	"	or $0xc00, %eax\n"
	"	wrmsr\n"
	"	xor %edx, %edx\n"
	"	mov $0x80f, %ecx\n"
	"	mov $0x1ff, %eax\n"
	"	wrmsr\n"
	"	mov $0x83e, %ecx\n"
	"	mov $0xb, %eax\n"
	"	wrmsr\n"
	"	mov $0x832, %ecx\n"
	"	mov $0x20040, %eax\n"
	"	wrmsr\n"
	"	mov $0x838, %ecx\n"
	"	mov %ebp, %eax\n"
	"	wrmsr\n"
	"	sti\n"
	"	xor %r8, %r8\n"
	"1:	mov $0x200000, %rdx\n"
	"2:	mov (%rdx), %rax\n"
	"	cmp %r8, %rax\n"
	"	jne 3f\n"
	"	lea 1(%r8), %rax\n"
	"	mov %rax, (%rdx)\n"
	"	add $0x1000, %rdx\n"
	"	cmp $0x3e00000, %rdx\n"
	"	jb 2b\n"
	"	inc %r8\n"
	"	mov %r8d, %eax\n"
	"	out %eax, $0x10\n"
	"	jmp 1b\n"
	"3:	mov %edx, %eax\n"
	"	out %eax, $0x11\n"
	"	hlt\n"
	"	jmp 3b\n"
	/* The timer's handler: EOI (x2APIC), on the stack in the logged slot */
	".globl guest_irq\n"
	"guest_irq:\n"
	"	push %rax\n"
	"	push %rcx\n"
	"	push %rdx\n"
	"	mov $0x80b, %ecx\n"
	"	xor %eax, %eax\n"
	"	xor %edx, %edx\n"
	"	wrmsr\n"
	"	pop %rdx\n"
	"	pop %rcx\n"
	"	pop %rax\n"
	"	iretq\n"
	"guest_code_end:\n"
	".popsection\n");

struct ctx {
	int vm, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	atomic_int done; /* the vCPU thread stopped: its verdict is in rc/msg */
	atomic_long passes;
	int rc;
	char msg[512];
};

static int die(const char *what)
{
	printf("dirtylog: %s: %s\n", what, strerror(errno));
	exit(3);
}

static void set_slot(struct ctx *c, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.flags = flags,
		.guest_phys_addr = 0,
		.memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)c->mem,
	};

	if (ioctl(c->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
}

static void setup_guest(struct ctx *c, int kvm, uint32_t timer_count)
{
	uint64_t *pml4 = (uint64_t *)(c->mem + PML4), *pdpt = (uint64_t *)(c->mem + PDPT);
	uint64_t *pd = (uint64_t *)(c->mem + PD), *gdt = (uint64_t *)(c->mem + GDT);
	struct kvm_segment cs = { .base = 0,
				  .limit = 0xffffffff,
				  .selector = 8,
				  .type = 11,
				  .present = 1,
				  .dpl = 0,
				  .s = 1,
				  .l = 1,
				  .g = 1 };
	struct kvm_segment ds = { .base = 0,
				  .limit = 0xffffffff,
				  .selector = 16,
				  .type = 3,
				  .present = 1,
				  .dpl = 0,
				  .s = 1,
				  .db = 1,
				  .g = 1 };
	struct kvm_sregs sr;
	struct kvm_regs regs = { .rip = CODE, .rsp = STACK_TOP, .rflags = 2, .rbp = (uint64_t)timer_count };
	uint64_t handler = CODE + (uint64_t)(guest_irq - guest_code), *idt = (uint64_t *)(c->mem + IDT);
	struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[100];
	} cpuid = { .h.nent = 100 };

	pml4[0] = PDPT | 3;
	pdpt[0] = PD | 3;
	for (uint64_t i = 0; i < MEM_SIZE >> 21; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB */
	gdt[1] = 0x00af9a000000ffffull;
	gdt[2] = 0x00cf92000000ffffull;
	memcpy(c->mem + CODE, guest_code, (size_t)(guest_code_end - guest_code));
	/* An interrupt gate: its delivery writes the stack page, which dirty logging keeps
	 * write-protecting (a nested page fault in the middle of an event's delivery). */
	idt[2 * VEC_TIMER] =
		(handler & 0xffff) | (8ull << 16) | (0x8eull << 40) | ((handler >> 16 & 0xffff) << 48);
	idt[2 * VEC_TIMER + 1] = handler >> 32;

	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(c->vcpu, KVM_SET_CPUID2, &cpuid) < 0)
		die("KVM_SET_CPUID2");
	if (ioctl(c->vcpu, KVM_GET_SREGS, &sr) < 0)
		die("KVM_GET_SREGS");
	sr.cs = cs;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = ds;
	sr.gdt.base = GDT;
	sr.gdt.limit = 3 * 8 - 1;
	sr.idt.base = IDT;
	sr.idt.limit = 256 * 16 - 1;
	sr.cr3 = PML4;
	sr.cr4 = 0x20;       /* PAE */
	sr.cr0 = 0x80000033; /* PG, NE, ET, MP, PE */
	sr.efer = 0x500;     /* LME, LMA */
	if (ioctl(c->vcpu, KVM_SET_SREGS, &sr) < 0)
		die("KVM_SET_SREGS");
	if (ioctl(c->vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");
}

static void *vcpu_thread(void *arg)
{
	struct ctx *c = arg;
	struct kvm_regs r;
	struct kvm_sregs s;

	for (;;) {
		if (ioctl(c->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(c->msg, sizeof(c->msg), "KVM_RUN: %s", strerror(errno));
			c->rc = 3;
			break;
		}
		if (c->run->exit_reason == KVM_EXIT_IO && c->run->io.port == PORT_PASS) {
			atomic_fetch_add(&c->passes, 1);
			continue;
		}
		if (c->run->exit_reason == KVM_EXIT_IO && c->run->io.port == PORT_BAD) {
			uint32_t a = *(uint32_t *)((uint8_t *)c->run + c->run->io.data_offset);

			snprintf(c->msg, sizeof(c->msg),
				 "the guest's page at 0x%x lost a write (pass %ld): it holds %llu", a,
				 atomic_load(&c->passes), (unsigned long long)*(uint64_t *)(c->mem + a));
			c->rc = 1;
			break;
		}
		ioctl(c->vcpu, KVM_GET_REGS, &r);
		ioctl(c->vcpu, KVM_GET_SREGS, &s);
		snprintf(c->msg, sizeof(c->msg),
			 "the vCPU stopped: exit reason %u%s after %ld passes; RIP=%llx RSP=%llx CR0=%llx "
			 "CR3=%llx CS.base=%llx",
			 c->run->exit_reason,
			 c->run->exit_reason == KVM_EXIT_SHUTDOWN ? " (KVM_EXIT_SHUTDOWN: a triple fault)"
								  : "",
			 atomic_load(&c->passes), (unsigned long long)r.rip, (unsigned long long)r.rsp,
			 (unsigned long long)s.cr0, (unsigned long long)s.cr3, (unsigned long long)s.cs.base);
		c->rc = 2;
		break;
	}
	atomic_store(&c->done, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	double seconds = argc > 1 ? atof(argv[1]) : 0;
	int per_toggle = argc > 2 ? atoi(argv[2]) : 8, kvm;
	uint32_t timer_count = argc > 3 ? (uint32_t)atoi(argv[3]) : 500000;
	long toggles = 0, reads = 0, size;
	unsigned long *bitmap = calloc(MEM_SIZE / 4096 / 64, sizeof(unsigned long));
	uint8_t *copy = malloc(4096);
	struct timespec t0, t;
	pthread_t th;

	if (!(seconds > 0) || per_toggle < 1 || !bitmap || !copy) {
		fprintf(stderr, "usage: dirtylog SECONDS [ROUNDS_PER_TOGGLE [TIMER_CYCLES]]\n");
		return 3;
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	c.vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (c.vm < 0)
		die("KVM_CREATE_VM");
	c.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		     0);
	if (c.mem == MAP_FAILED)
		die("mmap");
	madvise(c.mem, MEM_SIZE, MADV_HUGEPAGE);
	set_slot(&c, 0);
	if (ioctl(c.vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	c.vcpu = ioctl(c.vm, KVM_CREATE_VCPU, 0);
	if (c.vcpu < 0)
		die("KVM_CREATE_VCPU");
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	c.run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, c.vcpu, 0);
	if (c.run == MAP_FAILED)
		die("mmap kvm_run");
	setup_guest(&c, kvm, timer_count);
	if (pthread_create(&th, NULL, vcpu_thread, &c))
		die("pthread_create");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (atomic_load(&c.done) ||
		    (double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
			break;
		set_slot(&c, KVM_MEM_LOG_DIRTY_PAGES);
		toggles++;
		for (int i = 0; i < per_toggle && !atomic_load(&c.done); i++) {
			struct kvm_dirty_log d = { .slot = 0, .dirty_bitmap = bitmap };

			if (ioctl(c.vm, KVM_GET_DIRTY_LOG, &d) < 0)
				die("KVM_GET_DIRTY_LOG");
			reads++;
			for (uint64_t p = 0; p < MEM_SIZE / 4096; p++)
				if (bitmap[p / 64] & (1ul << (p % 64)))
					memcpy(copy, c.mem + p * 4096, 4096);
		}
		set_slot(&c, 0);
	}
	if (!atomic_load(&c.done)) {
		printf("dirtylog: ok: %ld passes, %ld toggles, %ld dirty-log reads in %.0f s\n",
		       atomic_load(&c.passes), toggles, reads, seconds);
		return 0;
	}
	pthread_join(th, NULL);
	printf("dirtylog: %s (%ld toggles, %ld dirty-log reads)\n", c.msg, toggles, reads);
	return c.rc;
}
