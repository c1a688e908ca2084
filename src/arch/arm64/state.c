/* state.c - arm64 vCPU and VM state for snapshots, and the guest clock across a pause.
 *
 * vCPU: every register KVM lists (KVM_GET_REG_LIST: core, system, timer and firmware
 * registers) through KVM_GET/SET_ONE_REG, then the MP state (a secondary still waiting for
 * PSCI CPU_ON stays off). VM: the in-kernel GICv3 through its device attributes
 * (Documentation/virt/kvm/devices/arm-vgic-v3.rst: distributor, redistributors, CPU interface
 * system registers, line levels) and its ITS (arm-vgic-its.rst: tables saved into guest RAM,
 * then the GITS_ registers; restored in the order that document gives).
 * Records are tagged (u32 tag, u32 length, bytes) and every tag, length and register size is
 * checked before anything reaches KVM. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../core/log.h"
#include "../../core/vcpu.h"
#include "../../core/vm.h"
#include "../arch.h"
#include "arm64.h"
#include "fdt.h"
#include "layout.h"

enum {
	TAG_CPU = 1, /* cpu features: magic, MIDR */
	TAG_REGS,    /* u32 count, then (u64 id, bytes of its size) each */
	TAG_MPSTATE,
	TAG_GIC = 32, /* u32 count, then (u32 group, u64 attr, u64 value) each */
	TAG_ITS,
};

#define ARM64_STATE_MAGIC 0x34366d61u /* "am64" */
#define MAX_REGS          4096
#define MAX_REG_BYTES     256 /* KVM_REG_SIZE_U2048 */
#define MAX_GIC_ATTRS     8192
#define REG_MIDR_EL1      ARM64_SYS_REG(3, 0, 0, 0, 0)

static void put_rec_head(struct ser_writer *w, uint32_t tag, uint32_t len)
{
	ser_put_u32(w, tag);
	ser_put_u32(w, len);
}

/* Read a record header and check it is `tag`; returns 0 and its length. */
static int get_rec(struct ser_reader *r, uint32_t tag, uint32_t *len)
{
	uint32_t t = ser_get_u32(r);

	*len = ser_get_u32(r);
	if (r->err || t != tag || *len > r->len - r->off)
		return -1;
	return 0;
}

static uint32_t reg_size(uint64_t id)
{
	return 1u << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

static int damaged(const char *what)
{
	log_error("snapshot: arm64 %s state is malformed; the file is damaged", what);
	return -1;
}

/* ---- vCPU ---------------------------------------------------------------------------- */

static struct kvm_reg_list *reg_list(struct vcpu *v)
{
	struct kvm_reg_list probe = { .n = 0 }, *l;

	if (ioctl(v->fd, KVM_GET_REG_LIST, &probe) == 0 || errno != E2BIG || probe.n > MAX_REGS) {
		log_error("vCPU %u: KVM_GET_REG_LIST failed: %s", v->id, strerror(errno));
		return NULL;
	}
	l = calloc(1, sizeof(*l) + probe.n * sizeof(l->reg[0]));
	if (!l)
		return NULL;
	l->n = probe.n;
	if (KVM_IOCTL(v->fd, KVM_GET_REG_LIST, l) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

int arch_vcpu_save(struct vcpu *v, struct ser_writer *w)
{
	struct kvm_reg_list *l = reg_list(v);
	struct kvm_mp_state mp;
	uint8_t buf[MAX_REG_BYTES];
	size_t at;
	uint32_t n = 0;

	if (!l)
		return -1;
	if (KVM_IOCTL(v->fd, KVM_GET_MP_STATE, &mp) < 0) {
		free(l);
		return -1;
	}
	put_rec_head(w, TAG_REGS, 0);
	at = w->len;
	ser_put_u32(w, 0);
	for (uint64_t i = 0; i < l->n; i++) {
		uint64_t id = l->reg[i];
		struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)buf };

		if (reg_size(id) > MAX_REG_BYTES)
			continue; /* never listed without SVE, which kvmbox does not enable */
		if (ioctl(v->fd, KVM_GET_ONE_REG, &r) < 0) {
			log_error("vCPU %u: KVM_GET_ONE_REG 0x%llx failed: %s", v->id, (unsigned long long)id,
				  strerror(errno));
			free(l);
			return -1;
		}
		ser_put_u64(w, id);
		ser_put_bytes(w, buf, reg_size(id));
		n++;
	}
	free(l);
	if (!w->err) {
		/* Patch the record length and the count in place. */
		uint32_t len = (uint32_t)(w->len - at);

		memcpy(w->buf + at - 4, &len, 4);
		memcpy(w->buf + at, &n, 4);
	}
	put_rec_head(w, TAG_MPSTATE, sizeof(mp));
	ser_put_u32(w, mp.mp_state);
	return w->err ? -1 : 0;
}

int arch_vcpu_load(struct vcpu *v, struct ser_reader *r)
{
	uint8_t buf[MAX_REG_BYTES];
	struct kvm_mp_state mp;
	uint32_t len, n;

	if (get_rec(r, TAG_REGS, &len) < 0)
		return damaged("vCPU register");
	n = ser_get_u32(r);
	if (r->err || n > MAX_REGS)
		return damaged("vCPU register");
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = ser_get_u64(r);
		struct kvm_one_reg one = { .id = id, .addr = (uint64_t)(uintptr_t)buf };

		if (r->err || (id & KVM_REG_ARCH_MASK) != KVM_REG_ARM64 || reg_size(id) > MAX_REG_BYTES)
			return damaged("vCPU register");
		ser_get_bytes(r, buf, reg_size(id));
		if (r->err)
			return damaged("vCPU register");
		if (ioctl(v->fd, KVM_SET_ONE_REG, &one) < 0) {
			log_error(
				"snapshot: vCPU %u: KVM refuses register 0x%llx: %s; restore it on a host with "
				"the same CPU and kernel",
				v->id, (unsigned long long)id, strerror(errno));
			return -1;
		}
	}
	if (get_rec(r, TAG_MPSTATE, &len) < 0 || len != sizeof(mp))
		return damaged("vCPU MP");
	mp.mp_state = ser_get_u32(r);
	if (r->err || (mp.mp_state != KVM_MP_STATE_RUNNABLE && mp.mp_state != KVM_MP_STATE_STOPPED))
		return damaged("vCPU MP");
	return KVM_IOCTL(v->fd, KVM_SET_MP_STATE, &mp) < 0 ? -1 : 0;
}

/* ---- GICv3 ----------------------------------------------------------------------------- */

/* The vGIC attribute for a redistributor or CPU interface register of the vCPU with mpidr. */
static uint64_t gic_cpu_attr(uint64_t mpidr, uint64_t reg)
{
	uint64_t aff = (mpidr & 0xffffff) | ((mpidr >> 32) & 0xff) << 24;

	return aff << 32 | reg;
}

#define ICC_SYSREG(op0, op1, crn, crm, op2) \
	((uint64_t)(op0) << 14 | (uint64_t)(op1) << 11 | (uint64_t)(crn) << 7 | (uint64_t)(crm) << 3 | (op2))

/* CPU interface registers, in the order they are restored (SRE and CTLR first). */
static const uint64_t icc_regs[] = {
	ICC_SYSREG(3, 0, 12, 12, 5), /* ICC_SRE_EL1 */
	ICC_SYSREG(3, 0, 12, 12, 4), /* ICC_CTLR_EL1 */
	ICC_SYSREG(3, 0, 12, 12, 6), /* ICC_IGRPEN0_EL1 */
	ICC_SYSREG(3, 0, 12, 12, 7), /* ICC_IGRPEN1_EL1 */
	ICC_SYSREG(3, 0, 4, 6, 0),   /* ICC_PMR_EL1 */
	ICC_SYSREG(3, 0, 12, 8, 3),  /* ICC_BPR0_EL1 */
	ICC_SYSREG(3, 0, 12, 12, 3), /* ICC_BPR1_EL1 */
	ICC_SYSREG(3, 0, 12, 8, 4),  /* ICC_AP0R0_EL1 */
	ICC_SYSREG(3, 0, 12, 9, 0),  /* ICC_AP1R0_EL1 */
};

/* Redistributor registers (RD frame, then SGI frame at +64 KiB), restore order: the LPI
 * tables before GICR_CTLR's EnableLPIs. 64-bit ones are two 32-bit halves. */
static const uint32_t gicr_regs[] = {
	0x0070,  0x0074,                                                        /* GICR_PROPBASER */
	0x0078,  0x007c,                                                        /* GICR_PENDBASER */
	0x0000,                                                                 /* GICR_CTLR */
	0x10080,                                                                /* GICR_IGROUPR0 */
	0x10c00, 0x10c04,                                                       /* GICR_ICFGR0/1 */
	0x10400, 0x10404, 0x10408, 0x1040c, 0x10410, 0x10414, 0x10418, 0x1041c, /* GICR_IPRIORITYR */
	0x10100,                                                                /* GICR_ISENABLER0 */
	0x10200,                                                                /* GICR_ISPENDR0 */
	0x10300,                                                                /* GICR_ISACTIVER0 */
};

struct gic_attr {
	uint32_t group;
	uint64_t attr;
	uint64_t value;
};

/* The list of vGIC attributes to save, in restore order. Returns the count (<= max). */
static int gic_attrs(struct vm *vm, const uint64_t *mpidr, struct gic_attr *out, int max)
{
	int n = 0;

#define ADD(g, a)                                                                  \
	do {                                                                       \
		if (n < max)                                                       \
			out[n++] = (struct gic_attr){ .group = (g), .attr = (a) }; \
	} while (0)
	/* Distributor: control, then the SPIs' configuration, routing, enables, state. */
	ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0000); /* GICD_CTLR */
	for (unsigned i = 32; i < ARM64_GIC_NR_IRQS; i += 32)
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0080 + i / 8); /* GICD_IGROUPR */
	for (unsigned i = 32; i < ARM64_GIC_NR_IRQS; i += 16)
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0c00 + i / 4); /* GICD_ICFGR */
	for (unsigned i = 32; i < ARM64_GIC_NR_IRQS; i += 4)
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0400 + i); /* GICD_IPRIORITYR */
	for (unsigned i = 32; i < ARM64_GIC_NR_IRQS; i++) {
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x6000 + 8 * i);     /* GICD_IROUTER, low */
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x6000 + 8 * i + 4); /* high */
	}
	for (unsigned i = 32; i < ARM64_GIC_NR_IRQS; i += 32) {
		ADD(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
		    (uint64_t)VGIC_LEVEL_INFO_LINE_LEVEL << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT | i);
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0100 + i / 8); /* GICD_ISENABLER */
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0200 + i / 8); /* GICD_ISPENDR */
		ADD(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x0300 + i / 8); /* GICD_ISACTIVER */
	}
	for (unsigned c = 0; c < vm->nr_vcpus; c++) {
		for (size_t i = 0; i < sizeof(gicr_regs) / sizeof(gicr_regs[0]); i++)
			ADD(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, gic_cpu_attr(mpidr[c], gicr_regs[i]));
		for (size_t i = 0; i < sizeof(icc_regs) / sizeof(icc_regs[0]); i++)
			ADD(KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, gic_cpu_attr(mpidr[c], icc_regs[i]));
	}
#undef ADD
	return n;
}

static int gic_access(int fd, struct gic_attr *a, bool set)
{
	uint32_t v32 = (uint32_t)a->value;
	bool wide = a->group == KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
	struct kvm_device_attr d = { .group = a->group,
				     .attr = a->attr,
				     .addr = wide ? (uint64_t)(uintptr_t)&a->value
						  : (uint64_t)(uintptr_t)&v32 };

	if (ioctl(fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &d) < 0)
		return -1;
	if (!set && !wide)
		a->value = v32;
	return 0;
}

static uint64_t *vcpu_mpidrs(struct vm *vm)
{
	uint64_t *m = calloc(vm->nr_vcpus, sizeof(*m));

	for (unsigned i = 0; m && i < vm->nr_vcpus; i++)
		if (arm64_get_reg(vm->vcpus[i]->fd, ARM64_REG_MPIDR_EL1, &m[i]) < 0)
			m[i] = arm64_default_mpidr(i);
	return m;
}

/* ITS registers (GRP_ITS_REGS, 64-bit values), in restore order: IIDR, CBASER, the others but
 * CTLR, then (after the tables) CTLR. */
static const uint32_t its_regs[] = {
	0x0004,                                                         /* GITS_IIDR */
	0x0080,                                                         /* GITS_CBASER */
	0x0090,                                                         /* GITS_CREADR */
	0x0088,                                                         /* GITS_CWRITER */
	0x0100, 0x0108, 0x0110, 0x0118, 0x0120, 0x0128, 0x0130, 0x0138, /* GITS_BASER<n> */
};
#define GITS_CTLR 0x0000

static int its_attr(int fd, uint32_t group, uint64_t attr, uint64_t *val, bool set)
{
	struct kvm_device_attr d = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val };

	return ioctl(fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &d);
}

int arch_vm_save(struct vm *vm, struct ser_writer *w)
{
	struct arm64_vm *a = vm->arch;
	uint64_t *mpidr = vcpu_mpidrs(vm), ctlr = 0;
	struct gic_attr *at = calloc(MAX_GIC_ATTRS, sizeof(*at));
	int n, ret = -1;

	if (!mpidr || !at) {
		log_error("out of memory saving the GIC state");
		goto out;
	}
	n = gic_attrs(vm, mpidr, at, MAX_GIC_ATTRS);
	put_rec_head(w, TAG_GIC, (uint32_t)(4 + n * (4 + 8 + 8)));
	ser_put_u32(w, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		if (gic_access(a->gic_fd, &at[i], false) < 0) {
			log_error("snapshot: reading vGIC register 0x%llx (group %u) failed: %s",
				  (unsigned long long)at[i].attr, at[i].group, strerror(errno));
			goto out;
		}
		ser_put_u32(w, at[i].group);
		ser_put_u64(w, at[i].attr);
		ser_put_u64(w, at[i].value);
	}
	/* The ITS writes its tables (device, collection, interrupt translation) into guest RAM. */
	if (a->its_fd >= 0) {
		if (its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES, NULL, true) <
			    0 ||
		    its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, GITS_CTLR, &ctlr, false) < 0) {
			log_error("snapshot: saving the vGIC ITS failed: %s", strerror(errno));
			goto out;
		}
		put_rec_head(w, TAG_ITS, (uint32_t)(8 * (1 + sizeof(its_regs) / sizeof(its_regs[0]))));
		for (size_t i = 0; i < sizeof(its_regs) / sizeof(its_regs[0]); i++) {
			uint64_t v = 0;

			if (its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, its_regs[i], &v, false) < 0) {
				log_error("snapshot: reading vGIC ITS register 0x%x failed: %s", its_regs[i],
					  strerror(errno));
				goto out;
			}
			ser_put_u64(w, v);
		}
		ser_put_u64(w, ctlr);
	}
	ret = w->err ? -1 : 0;
out:
	free(at);
	free(mpidr);
	return ret;
}

int arch_vm_load(struct vm *vm, struct ser_reader *r)
{
	struct arm64_vm *a = vm->arch;
	uint64_t *mpidr = vcpu_mpidrs(vm);
	struct gic_attr *want = calloc(MAX_GIC_ATTRS, sizeof(*want));
	uint32_t len, n;
	int expect, ret = -1;

	if (!mpidr || !want) {
		log_error("out of memory restoring the GIC state");
		goto out;
	}
	/* The saved attributes must be exactly the ones this VM has (same vCPUs, same GIC). */
	expect = gic_attrs(vm, mpidr, want, MAX_GIC_ATTRS);
	if (get_rec(r, TAG_GIC, &len) < 0) {
		damaged("GIC");
		goto out;
	}
	n = ser_get_u32(r);
	if (r->err || n != (uint32_t)expect) {
		damaged("GIC");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct gic_attr g = { .group = ser_get_u32(r),
				      .attr = ser_get_u64(r),
				      .value = ser_get_u64(r) };

		if (r->err || g.group != want[i].group || g.attr != want[i].attr) {
			damaged("GIC");
			goto out;
		}
		if (gic_access(a->gic_fd, &g, true) < 0) {
			log_error(
				"snapshot: KVM refuses vGIC register 0x%llx (group %u): %s; the file is damaged "
				"or from another host",
				(unsigned long long)g.attr, g.group, strerror(errno));
			goto out;
		}
	}
	if (a->its_fd >= 0 || r->off < r->len) {
		uint64_t v[sizeof(its_regs) / sizeof(its_regs[0]) + 1];

		if (a->its_fd < 0 || get_rec(r, TAG_ITS, &len) < 0 || len != sizeof(v)) {
			log_error(
				"snapshot: the vGIC ITS state does not match this host's (one has an ITS, the "
				"other not); restore it on a host like the one that saved it");
			goto out;
		}
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			v[i] = ser_get_u64(r);
		if (r->err) {
			damaged("ITS");
			goto out;
		}
		for (size_t i = 0; i < sizeof(its_regs) / sizeof(its_regs[0]); i++) {
			if (its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, its_regs[i], &v[i], true) <
			    0) {
				log_error("snapshot: KVM refuses vGIC ITS register 0x%x: %s", its_regs[i],
					  strerror(errno));
				goto out;
			}
		}
		if (its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES, NULL,
			     true) < 0 ||
		    its_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, GITS_CTLR,
			     &v[sizeof(v) / sizeof(v[0]) - 1], true) < 0) {
			log_error("snapshot: restoring the vGIC ITS failed: %s", strerror(errno));
			goto out;
		}
	}
	ret = ser_reader_done(r) ? 0 : damaged("VM");
out:
	free(want);
	free(mpidr);
	return ret;
}

/* ---- CPU identity and clock --------------------------------------------------------------- */

int arch_cpu_features_save(struct vm *vm, struct ser_writer *w)
{
	uint64_t midr = 0;

	if (!vm->nr_vcpus || arm64_get_reg(vm->vcpus[0]->fd, REG_MIDR_EL1, &midr) < 0) {
		log_error("snapshot: cannot read the vCPU's MIDR_EL1: %s", strerror(errno));
		return -1;
	}
	put_rec_head(w, TAG_CPU, 12);
	ser_put_u32(w, ARM64_STATE_MAGIC);
	ser_put_u64(w, midr);
	return 0;
}

int arch_cpu_features_check(struct vm *vm, struct ser_reader *r)
{
	uint64_t midr = 0, saved;
	uint32_t len;

	if (get_rec(r, TAG_CPU, &len) < 0 || len != 12 || ser_get_u32(r) != ARM64_STATE_MAGIC) {
		log_error("snapshot: not an arm64 VM's state (saved by kvmbox on another architecture?); "
			  "restore it with kvmbox on the architecture that saved it");
		return -1;
	}
	saved = ser_get_u64(r);
	if (r->err)
		return damaged("CPU");
	if (vm->nr_vcpus && arm64_get_reg(vm->vcpus[0]->fd, REG_MIDR_EL1, &midr) == 0 && midr != saved) {
		log_error(
			"snapshot: saved on another CPU model (MIDR_EL1 0x%llx, this host 0x%llx); restore it on "
			"a host with the same CPU",
			(unsigned long long)saved, (unsigned long long)midr);
		return -1;
	}
	return 0;
}

/* The guest's virtual counter (CNTVCT): KVM_REG_ARM_TIMER_CNT of one vCPU. Writing it sets the
 * VM's counter offset (every vCPU's, on Linux 6.1 as since 6.4), so a pause does not make the
 * guest's time jump. The core calls the value ns; it is counter ticks, only handed back. */
int arch_clock_get(struct vm *vm, uint64_t *ns)
{
	if (!vm->nr_vcpus)
		return -1;
	return arm64_get_reg(vm->vcpus[0]->fd, KVM_REG_ARM_TIMER_CNT, ns);
}

int arch_clock_set(struct vm *vm, uint64_t ns)
{
	if (!vm->nr_vcpus)
		return -1;
	return arm64_set_reg(vm->vcpus[0]->fd, KVM_REG_ARM_TIMER_CNT, ns);
}
