#include "cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../core/log.h"
#include "../../core/util.h"
#include "../../core/vm.h"

#define CPUID_MAX_ENTRIES 256

struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));

		if (!c)
			return NULL;
		c->nent = n;
		if (KVM_PROBE(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG) {
			log_error("/dev/kvm: KVM_GET_SUPPORTED_CPUID failed: %s", strerror(errno));
			return NULL;
		}
	}
	log_error("/dev/kvm: KVM_GET_SUPPORTED_CPUID returned too many entries");
	return NULL;
}

struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != fn)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

/* Bits needed to number n items (ceil(log2(n))). */
static uint32_t id_bits(unsigned n)
{
	uint32_t b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

/* Leaf 0xB / 0x1F: SMT level (1 thread per core) then core level. */
static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned id, unsigned ncpus)
{
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | 0;
		break;
	case 1:
		e->eax = id_bits(ncpus);
		e->ebx = ncpus;
		e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index & 0xff;
		break;
	}
	e->edx = id;
}

/* AMD families 0xf (K8), 0x10 and 0x15 models 0-0xf have a GART in their northbridge, and
 * Linux believes the family: it looks for an AGP bridge and the GART aperture by reading the
 * class of every slot of every bus 0-255 with type 1 configuration cycles, twice
 * (early_gart_iommu_check() and gart_iommu_hole_init(), each through search_agp_bridge()):
 * 16,384 reads, 32,768 exits to kvmbox per boot, for a device this machine does not have.
 * QEMU's TCG "max" CPU reports family 0xf (the emulated test host, docs/PERFORMANCE.md), as
 * do real K8/K10/Bulldozer hosts. Such a signature becomes family 0x11, the K8-derived family
 * Linux knows to have no GART; the model and stepping stay, and so do the feature bits (what
 * the guest may use). Takes the signature (leaf 1 or 0x80000001 EAX). */
uint32_t x86_cpuid_no_gart_signature(uint32_t eax)
{
	uint32_t base = (eax >> 8) & 0xf, ext = (eax >> 20) & 0xff;
	uint32_t family = base == 0xf ? base + ext : base, model = ((eax >> 4) & 0xf) | ((eax >> 12) & 0xf0);

	if (family == 0xf || family == 0x10 || (family == 0x15 && model < 0x10))
		return (eax & ~(0xfu << 8 | 0xffu << 20)) | 0xfu << 8 | (0x11u - 0xf) << 20;
	return eax;
}

static bool vendor_amd(const struct kvm_cpuid2 *c)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0)
			/* "AuthenticAMD" in ebx, edx, ecx */
			return c->entries[i].ebx == 0x68747541 && c->entries[i].edx == 0x69746e65 &&
			       c->entries[i].ecx == 0x444d4163;
	return false;
}

struct kvm_cpuid2 *x86_vcpu_cpuid(const struct kvm_cpuid2 *base, unsigned id, unsigned ncpus)
{
	size_t sz = sizeof(*base) + base->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	struct kvm_cpuid_entry2 *e;
	bool amd;

	if (!c)
		return NULL;
	memcpy(c, base, sz);
	amd = vendor_amd(c);
	for (uint32_t i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (amd && (e->function == 0x1 || e->function == 0x80000001))
			e->eax = x86_cpuid_no_gart_signature(e->eax);
		switch (e->function) {
		case 0x1:
			/* Initial APIC id, logical processor count, hypervisor. */
			e->ebx = (e->ebx & 0x0000ffffu) | (id << 24) | ((ncpus > 255 ? 255 : ncpus) << 16);
			e->ecx |= 1u << 31;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count field is valid */
			break;
		case 0x4:
			/* Cores per package - 1; one thread shares each cache. */
			e->eax = (e->eax & 0x03ffffffu) | ((ncpus > 64 ? 63 : ncpus - 1) << 26);
			e->eax &= ~(0xfffu << 14);
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(e, id, ncpus);
			break;
		case 0x80000001:
			/* No AMD extended topology leaves: leaf 0x80000008 says it all. */
			e->ecx &= ~(1u << 22);
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | (id_bits(ncpus) << 12) | ((ncpus - 1) & 0xff);
			break;
		default:
			break;
		}
	}
	return c;
}

struct msr_init {
	uint32_t index;
	uint64_t value;
};

/* Architectural state a firmware would leave: syscall MSRs clear, fast
 * strings on, MTRRs enabled with write-back default (else Linux maps RAM
 * uncached and crawls). */
static const struct msr_init boot_msrs[] = {
	{ 0x174, 0 },              /* IA32_SYSENTER_CS */
	{ 0x175, 0 },              /* IA32_SYSENTER_ESP */
	{ 0x176, 0 },              /* IA32_SYSENTER_EIP */
	{ 0xc0000081, 0 },         /* STAR */
	{ 0xc0000082, 0 },         /* LSTAR */
	{ 0xc0000083, 0 },         /* CSTAR */
	{ 0xc0000084, 0 },         /* SYSCALL_MASK */
	{ 0xc0000102, 0 },         /* KERNEL_GS_BASE */
	{ 0x1a0, 1 },              /* IA32_MISC_ENABLE: fast strings */
	{ 0x2ff, (1u << 11) | 6 }, /* MTRRdefType: enabled, WB */
};

#define NR_BOOT_MSRS ARRAY_SIZE(boot_msrs)

static int setup_msrs(int fd)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[NR_BOOT_MSRS];
	} m;
	int n;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = NR_BOOT_MSRS;
	for (size_t i = 0; i < NR_BOOT_MSRS; i++) {
		m.e[i].index = boot_msrs[i].index;
		m.e[i].data = boot_msrs[i].value;
	}
	n = KVM_PROBE(fd, KVM_SET_MSRS, &m);
	if (n != (int)NR_BOOT_MSRS) {
		log_error("KVM: KVM_SET_MSRS set %d of %zu boot MSRs (MSR 0x%x refused)", n, NR_BOOT_MSRS,
			  n >= 0 && n < (int)NR_BOOT_MSRS ? boot_msrs[n].index : 0);
		return -1;
	}
	return 0;
}

#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI    0x4

static void lapic_set_lvt(struct kvm_lapic_state *s, int reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &s->regs[reg], 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&s->regs[reg], &v, 4);
}

int x86_vcpu_setup(int fd, const struct kvm_cpuid2 *cpuid)
{
	struct kvm_lapic_state lapic;
	struct kvm_fpu fpu;

	if (KVM_IOCTL(fd, KVM_SET_CPUID2, (void *)cpuid) < 0)
		return -1;
	if (setup_msrs(fd) < 0)
		return -1;
	/* Virtual wire: LINT0 takes the PIC's ExtINT, LINT1 is NMI. */
	if (KVM_IOCTL(fd, KVM_GET_LAPIC, &lapic) < 0)
		return -1;
	lapic_set_lvt(&lapic, APIC_LVT0, APIC_MODE_EXTINT);
	lapic_set_lvt(&lapic, APIC_LVT1, APIC_MODE_NMI);
	if (KVM_IOCTL(fd, KVM_SET_LAPIC, &lapic) < 0)
		return -1;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (KVM_IOCTL(fd, KVM_SET_FPU, &fpu) < 0)
		return -1;
	return 0;
}

static void dump_seg(FILE *f, const char *n, const struct kvm_segment *s)
{
	fprintf(f, "  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u db=%u l=%u p=%u\n", n, s->selector,
		(unsigned long long)s->base, s->limit, s->type, s->dpl, s->db, s->l, s->present);
}

void x86_dump_regs(int fd, unsigned id, FILE *f)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (KVM_PROBE(fd, KVM_GET_REGS, &r) < 0 || KVM_PROBE(fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(f, "  (vCPU %u registers unavailable: %s)\n", id, strerror(errno));
		return;
	}
	fprintf(f, "  RIP=%016llx RSP=%016llx RFLAGS=%016llx\n", (unsigned long long)r.rip,
		(unsigned long long)r.rsp, (unsigned long long)r.rflags);
	fprintf(f, "  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n", (unsigned long long)r.rax,
		(unsigned long long)r.rbx, (unsigned long long)r.rcx, (unsigned long long)r.rdx);
	fprintf(f, "  RSI=%016llx RDI=%016llx RBP=%016llx\n", (unsigned long long)r.rsi,
		(unsigned long long)r.rdi, (unsigned long long)r.rbp);
	fprintf(f, "  R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n", (unsigned long long)r.r8,
		(unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11);
	fprintf(f, "  R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n", (unsigned long long)r.r12,
		(unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15);
	dump_seg(f, "CS", &s.cs);
	dump_seg(f, "SS", &s.ss);
	dump_seg(f, "DS", &s.ds);
	fprintf(f, "  CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx EFER=%016llx\n",
		(unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
		(unsigned long long)s.cr4, (unsigned long long)s.efer);
	fprintf(f, "  GDT=%016llx/%x IDT=%016llx/%x APIC_BASE=%016llx\n", (unsigned long long)s.gdt.base,
		s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit, (unsigned long long)s.apic_base);
	/* KVM on AMD (SVM) puts a vCPU through INIT when it triple-faults, before returning
	 * KVM_EXIT_SHUTDOWN: what is left is the reset state, not the state at the fault. */
	if (r.rip == 0xfff0 && s.cs.base == 0xffff0000 && !(s.cr0 & 1))
		fprintf(f, "  (these are reset-state registers: on AMD hosts KVM resets a vCPU that "
			   "triple-faults, so the state at the fault is lost)\n");
}
