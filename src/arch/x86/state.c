/* state.c - x86 vCPU and VM state for snapshots and migration.
 *
 * Each piece of KVM state is written as a tagged record (u32 tag, u32
 * length, bytes: the KVM ABI structure as is). Loading checks every tag and
 * length before anything reaches KVM. Restore order follows what KVM needs:
 * CPUID first, then registers, FPU/XSAVE, XCRs, debug registers, LAPIC,
 * MSRs (TSC deadline needs the LAPIC), pending events, and MP state last. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../core/log.h"
#include "../../core/util.h"
#include "../../core/vcpu.h"
#include "../../core/vm.h"
#include "../arch.h"
#include "cpu.h"

enum {
	TAG_CPUID = 1,
	TAG_REGS,
	TAG_SREGS,
	TAG_XSAVE,
	TAG_XCRS,
	TAG_DEBUGREGS,
	TAG_LAPIC,
	TAG_MSRS,
	TAG_EVENTS,
	TAG_MPSTATE,
	TAG_PIC_MASTER = 32,
	TAG_PIC_SLAVE,
	TAG_IOAPIC,
	TAG_PIT,
	TAG_CLOCK,
};

#define MAX_STATE_MSRS 512

static void put_rec(struct ser_writer *w, uint32_t tag, const void *p, uint32_t len)
{
	ser_put_u32(w, tag);
	ser_put_u32(w, len);
	ser_put_bytes(w, p, len);
}

/* Read a record header and check it is `tag`; returns its length. */
static int get_rec(struct ser_reader *r, uint32_t tag, uint32_t *len)
{
	uint32_t t = ser_get_u32(r);

	*len = ser_get_u32(r);
	if (r->err || t != tag || *len > r->len - r->off)
		return -1;
	return 0;
}

static int get_fixed(struct ser_reader *r, uint32_t tag, void *p, uint32_t size)
{
	uint32_t len;

	if (get_rec(r, tag, &len) < 0 || len != size)
		return -1;
	ser_get_bytes(r, p, size);
	return r->err ? -1 : 0;
}

static int xsave_size(struct vm *vm)
{
	int sz = KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return sz > (int)sizeof(struct kvm_xsave) ? sz : (int)sizeof(struct kvm_xsave);
}

/* MSRs KVM can save for this vCPU: the index list, filtered by a probe. */
static int msr_list(struct vcpu *v, struct kvm_msrs *out)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[1024];
	} list = { .hdr.nmsrs = 1024 };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} probe;
	unsigned n = 0;

	if (KVM_IOCTL(v->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return -1;
	for (uint32_t i = 0; i < list.hdr.nmsrs && i < 1024 && n < MAX_STATE_MSRS; i++) {
		memset(&probe, 0, sizeof(probe));
		probe.hdr.nmsrs = 1;
		probe.e.index = list.idx[i];
		if (KVM_PROBE(v->fd, KVM_GET_MSRS, &probe) == 1)
			out->entries[n++] = probe.e;
	}
	out->nmsrs = n;
	return 0;
}

/* One vCPU's KVM state, as saved and loaded. */
struct cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_cpuid2 *cpuid;
	struct kvm_msrs *msrs;
	void *xsave;
};

static void cpu_state_free(struct cpu_state *c)
{
	free(c->cpuid);
	free(c->msrs);
	free(c->xsave);
}

int arch_vcpu_save(struct vcpu *v, struct ser_writer *w)
{
	struct cpu_state c = { 0 };
	int xs = xsave_size(v->vm), ret = -1;

	c.cpuid = calloc(1, sizeof(*c.cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
	c.msrs = calloc(1, sizeof(*c.msrs) + MAX_STATE_MSRS * sizeof(struct kvm_msr_entry));
	c.xsave = calloc(1, (size_t)xs);
	if (!c.cpuid || !c.msrs || !c.xsave)
		goto out;
	c.cpuid->nent = 256;
	if (KVM_IOCTL(v->fd, KVM_GET_CPUID2, c.cpuid) < 0 || KVM_IOCTL(v->fd, KVM_GET_MP_STATE, &c.mp) < 0 ||
	    KVM_IOCTL(v->fd, KVM_GET_REGS, &c.regs) < 0 || KVM_IOCTL(v->fd, KVM_GET_SREGS, &c.sregs) < 0 ||
	    KVM_IOCTL(v->fd, xs > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, c.xsave) <
		    0 ||
	    KVM_IOCTL(v->fd, KVM_GET_XCRS, &c.xcrs) < 0 || KVM_IOCTL(v->fd, KVM_GET_DEBUGREGS, &c.dbg) < 0 ||
	    KVM_IOCTL(v->fd, KVM_GET_LAPIC, &c.lapic) < 0 || KVM_IOCTL(v->fd, KVM_GET_VCPU_EVENTS, &c.ev) < 0)
		goto out;
	if (msr_list(v, c.msrs) < 0)
		goto out;
	if (c.msrs->nmsrs && KVM_PROBE(v->fd, KVM_GET_MSRS, c.msrs) != (int)c.msrs->nmsrs) {
		log_error("vCPU %u: KVM_GET_MSRS failed", v->id);
		goto out;
	}
	put_rec(w, TAG_CPUID, c.cpuid,
		(uint32_t)(sizeof(*c.cpuid) + c.cpuid->nent * sizeof(c.cpuid->entries[0])));
	put_rec(w, TAG_REGS, &c.regs, sizeof(c.regs));
	put_rec(w, TAG_SREGS, &c.sregs, sizeof(c.sregs));
	put_rec(w, TAG_XSAVE, c.xsave, (uint32_t)xs);
	put_rec(w, TAG_XCRS, &c.xcrs, sizeof(c.xcrs));
	put_rec(w, TAG_DEBUGREGS, &c.dbg, sizeof(c.dbg));
	put_rec(w, TAG_LAPIC, &c.lapic, sizeof(c.lapic));
	put_rec(w, TAG_MSRS, c.msrs,
		(uint32_t)(sizeof(*c.msrs) + c.msrs->nmsrs * sizeof(c.msrs->entries[0])));
	put_rec(w, TAG_EVENTS, &c.ev, sizeof(c.ev));
	put_rec(w, TAG_MPSTATE, &c.mp, sizeof(c.mp));
	ret = 0;
out:
	cpu_state_free(&c);
	return ret;
}

/* Set MSRs one run at a time so one refused MSR does not hide the rest. */
static int set_msrs(struct vcpu *v, struct kvm_msrs *m)
{
	uint32_t done = 0;

	while (done < m->nmsrs) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e[MAX_STATE_MSRS];
		} chunk;
		int n;

		memset(&chunk.hdr, 0, sizeof(chunk.hdr));
		chunk.hdr.nmsrs = m->nmsrs - done;
		memcpy(chunk.e, &m->entries[done], chunk.hdr.nmsrs * sizeof(chunk.e[0]));
		n = KVM_IOCTL(v->fd, KVM_SET_MSRS, &chunk);
		if (n < 0)
			return -1;
		done += (uint32_t)n;
		if (done < m->nmsrs) {
			log_warn("vCPU %u: this host's KVM refused MSR 0x%x from the snapshot; skipped",
				 v->id, m->entries[done].index);
			done++;
		}
	}
	return 0;
}

int arch_vcpu_load(struct vcpu *v, struct ser_reader *r)
{
	struct cpu_state c = { 0 };
	uint32_t len;
	int xs = xsave_size(v->vm), ret = -1;

	/* CPUID and MSRs have variable length. */
	if (get_rec(r, TAG_CPUID, &len) < 0 || len < sizeof(*c.cpuid) ||
	    (len - sizeof(*c.cpuid)) % sizeof(struct kvm_cpuid_entry2) || len > 64 * 1024)
		goto bad;
	c.cpuid = malloc(len);
	if (!c.cpuid)
		goto out;
	ser_get_bytes(r, c.cpuid, len);
	if (c.cpuid->nent != (len - sizeof(*c.cpuid)) / sizeof(struct kvm_cpuid_entry2))
		goto bad;
	c.xsave = calloc(1, (size_t)xs);
	if (!c.xsave)
		goto out;
	if (get_fixed(r, TAG_REGS, &c.regs, sizeof(c.regs)) < 0 ||
	    get_fixed(r, TAG_SREGS, &c.sregs, sizeof(c.sregs)) < 0)
		goto bad;
	if (get_rec(r, TAG_XSAVE, &len) < 0 || len > (uint32_t)xs || len < sizeof(struct kvm_xsave))
		goto bad;
	ser_get_bytes(r, c.xsave, len);
	if (get_fixed(r, TAG_XCRS, &c.xcrs, sizeof(c.xcrs)) < 0 ||
	    get_fixed(r, TAG_DEBUGREGS, &c.dbg, sizeof(c.dbg)) < 0 ||
	    get_fixed(r, TAG_LAPIC, &c.lapic, sizeof(c.lapic)) < 0)
		goto bad;
	if (get_rec(r, TAG_MSRS, &len) < 0 || len < sizeof(*c.msrs) ||
	    (len - sizeof(*c.msrs)) % sizeof(struct kvm_msr_entry) ||
	    (len - sizeof(*c.msrs)) / sizeof(struct kvm_msr_entry) > MAX_STATE_MSRS)
		goto bad;
	c.msrs = malloc(len);
	if (!c.msrs)
		goto out;
	ser_get_bytes(r, c.msrs, len);
	if (c.msrs->nmsrs != (len - sizeof(*c.msrs)) / sizeof(struct kvm_msr_entry))
		goto bad;
	if (get_fixed(r, TAG_EVENTS, &c.ev, sizeof(c.ev)) < 0 ||
	    get_fixed(r, TAG_MPSTATE, &c.mp, sizeof(c.mp)) < 0)
		goto bad;

	if (KVM_IOCTL(v->fd, KVM_SET_CPUID2, c.cpuid) < 0 || KVM_IOCTL(v->fd, KVM_SET_REGS, &c.regs) < 0 ||
	    KVM_IOCTL(v->fd, KVM_SET_SREGS, &c.sregs) < 0 || KVM_IOCTL(v->fd, KVM_SET_XSAVE, c.xsave) < 0 ||
	    KVM_IOCTL(v->fd, KVM_SET_XCRS, &c.xcrs) < 0 || KVM_IOCTL(v->fd, KVM_SET_DEBUGREGS, &c.dbg) < 0 ||
	    KVM_IOCTL(v->fd, KVM_SET_LAPIC, &c.lapic) < 0)
		goto out;
	if (set_msrs(v, c.msrs) < 0)
		goto out;
	if (KVM_IOCTL(v->fd, KVM_SET_VCPU_EVENTS, &c.ev) < 0 || KVM_IOCTL(v->fd, KVM_SET_MP_STATE, &c.mp) < 0)
		goto out;
	ret = 0;
	goto out;
bad:
	log_error("snapshot: vCPU %u state is malformed; the file is damaged", v->id);
out:
	cpu_state_free(&c);
	return ret;
}

int arch_vm_save(struct vm *vm, struct ser_writer *w)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	static const uint32_t ids[] = { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC };

	for (int i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = ids[i];
		if (KVM_IOCTL(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return -1;
		put_rec(w, TAG_PIC_MASTER + (uint32_t)i, &chip, sizeof(chip));
	}
	if (KVM_IOCTL(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return -1;
	put_rec(w, TAG_PIT, &pit, sizeof(pit));
	memset(&clk, 0, sizeof(clk));
	if (KVM_IOCTL(vm->vm_fd, KVM_GET_CLOCK, &clk) < 0)
		return -1;
	put_rec(w, TAG_CLOCK, &clk, sizeof(clk));
	return 0;
}

int arch_vm_load(struct vm *vm, struct ser_reader *r)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	static const uint32_t ids[] = { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC };

	for (int i = 0; i < 3; i++) {
		if (get_fixed(r, TAG_PIC_MASTER + (uint32_t)i, &chip, sizeof(chip)) < 0 ||
		    chip.chip_id != ids[i])
			goto bad;
		if (KVM_IOCTL(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return -1;
	}
	if (get_fixed(r, TAG_PIT, &pit, sizeof(pit)) < 0)
		goto bad;
	if (KVM_IOCTL(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return -1;
	if (get_fixed(r, TAG_CLOCK, &clk, sizeof(clk)) < 0)
		goto bad;
	/* Only the clock value carries over; the flags describe the source host. */
	clk.flags = 0;
	memset(clk.pad, 0, sizeof(clk.pad));
	if (KVM_IOCTL(vm->vm_fd, KVM_SET_CLOCK, &clk) < 0)
		return -1;
	return 0;
bad:
	log_error("snapshot: VM interrupt controller or timer state is malformed; the file is damaged");
	return -1;
}

int arch_clock_get(struct vm *vm, uint64_t *ns)
{
	struct kvm_clock_data clk;

	memset(&clk, 0, sizeof(clk));
	if (KVM_IOCTL(vm->vm_fd, KVM_GET_CLOCK, &clk) < 0)
		return -1;
	*ns = clk.clock;
	return 0;
}

int arch_clock_set(struct vm *vm, uint64_t ns)
{
	struct kvm_clock_data clk;

	memset(&clk, 0, sizeof(clk));
	clk.clock = ns;
	return KVM_IOCTL(vm->vm_fd, KVM_SET_CLOCK, &clk);
}

/* CPUID words whose feature bits a snapshot's guest may rely on. */
static const struct {
	uint32_t fn, idx;
	int reg; /* 0 eax 1 ebx 2 ecx 3 edx */
} feature_words[] = {
	{ 1, 0, 2 }, { 1, 0, 3 },   { 7, 0, 1 },          { 7, 0, 2 },
	{ 7, 0, 3 }, { 0xd, 1, 0 }, { 0x80000001, 0, 2 }, { 0x80000001, 0, 3 },
};

static uint32_t cpuid_word(struct kvm_cpuid2 *c, int i)
{
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, feature_words[i].fn, feature_words[i].idx);

	if (!e)
		return 0;
	switch (feature_words[i].reg) {
	case 0:
		return e->eax;
	case 1:
		return e->ebx;
	case 2:
		return e->ecx;
	default:
		return e->edx;
	}
}

int arch_cpu_features_save(struct vm *vm, struct ser_writer *w)
{
	struct kvm_cpuid2 *c = x86_supported_cpuid(vm->kvm_fd);
	int n = (int)ARRAY_SIZE(feature_words);

	if (!c)
		return -1;
	ser_put_u32(w, (uint32_t)n);
	for (int i = 0; i < n; i++)
		ser_put_u32(w, cpuid_word(c, i));
	free(c);
	return 0;
}

int arch_cpu_features_check(struct vm *vm, struct ser_reader *r)
{
	struct kvm_cpuid2 *c = x86_supported_cpuid(vm->kvm_fd);
	int n = (int)ARRAY_SIZE(feature_words), ret = 0;

	if (!c)
		return -1;
	if (ser_get_u32(r) != (uint32_t)n) {
		log_error("snapshot: CPU feature record is malformed; the file is damaged");
		free(c);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		uint32_t need = ser_get_u32(r), have = cpuid_word(c, i);

		if ((need & ~have) && ret == 0) {
			log_error(
				"snapshot: needs CPU features this host lacks (CPUID 0x%x.%u reg %d bits 0x%x); "
				"restore it on a host with the same CPU",
				feature_words[i].fn, feature_words[i].idx, feature_words[i].reg,
				need & ~have);
			ret = -1;
		}
	}
	free(c);
	return r->err ? -1 : ret;
}
