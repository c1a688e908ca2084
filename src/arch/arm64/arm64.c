/* arm64.c - the arm64 side of arch.h: address map, vGIC, platform devices, kernel loading and
 * the boot vCPU's entry state (Documentation/arm64/booting.rst: MMU off, x0 = device tree). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/inputfile.h"
#include "../../core/log.h"
#include "../../core/vcpu.h"
#include "../../core/vm.h"
#include "../../devices/pci.h"
#include "../../devices/pci_ecam.h"
#include "../../devices/pl031.h"
#include "../../devices/pl061.h"
#include "../../devices/uart.h"
#include "../../devices/uart_mmio.h"
#include "../arch.h"
#include "arm64.h"
#include "fdt.h"
#include "layout.h"

/* PSTATE at entry: EL1 using SP_EL1, Debug/SError/IRQ/FIQ masked. */
#define PSR_MODE_EL1H 0x5
#define PSR_DAIF      (0xfULL << 6)

const enum arch_id arch_this = ARCH_ID_ARM64;

int arm64_get_reg(int vcpu_fd, uint64_t id, uint64_t *val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)val };

	return ioctl(vcpu_fd, KVM_GET_ONE_REG, &r) < 0 ? -1 : 0;
}

int arm64_set_reg(int vcpu_fd, uint64_t id, uint64_t val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&val };

	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &r) < 0) {
		log_error("KVM: ioctl KVM_SET_ONE_REG 0x%llx failed: %s", (unsigned long long)id,
			  strerror(errno));
		return -1;
	}
	return 0;
}

int arch_mem_layout(uint64_t ram, struct mem_region *out, int max)
{
	if (max < 1)
		return 0;
	out[0] = (struct mem_region){ .gpa = ARM64_RAM_BASE, .size = ram };
	return 1;
}

uint64_t arch_max_ram(void)
{
	return ARM64_RAM_MAX;
}

/* The arch data, created by whichever of arch_load_kernel and arch_vm_init comes first. */
static struct arm64_vm *arm64_vm(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a) {
			log_error("out of memory");
			return NULL;
		}
		a->gic_fd = a->its_fd = -1;
		vm->arch = a;
	}
	return a;
}

static const struct {
	int cap;
	const char *name;
} arm64_caps[] = {
	{ KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2" },
	{ KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG" },
	{ KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL" },
};

int arch_vm_init(struct vm *vm)
{
	struct arm64_vm *a = arm64_vm(vm);

	if (!a)
		return -1;
	for (size_t i = 0; i < sizeof(arm64_caps) / sizeof(arm64_caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, arm64_caps[i].cap) <= 0) {
			log_error("/dev/kvm: the kernel lacks %s; use a kernel with full KVM support",
				  arm64_caps[i].name);
			return -1;
		}
	}
	if (vm->cfg->cpus > ARM64_GIC_MAX_CPUS) {
		log_error("--cpus %u: the GICv3 redistributors of this machine model fit %llu vCPUs; give "
			  "fewer --cpus",
			  vm->cfg->cpus, (unsigned long long)ARM64_GIC_MAX_CPUS);
		return -1;
	}
	if (KVM_IOCTL(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &a->init) < 0)
		return -1;
	/* A guest MMIO access KVM cannot decode (no instruction syndrome: a load/store pair, a
	 * writeback...) would otherwise fail KVM_RUN with ENOSYS, which the core reports as a host
	 * failure; as an exit (KVM_EXIT_ARM_NISV) it is a guest crash with a register dump. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_NISV_TO_USER) > 0) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_ARM_NISV_TO_USER };

		if (KVM_IOCTL(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return -1;
	}
	if (arm64_gic_create(vm, a) < 0)
		return -1;
	/* With an ITS, an MSI route names its PCI requester (the ITS finds the device by it). */
	if (a->its_fd >= 0 && ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MSI_DEVID) > 0)
		vm->msi_devid = true;
	return 0;
}

/* Does the VM have (or will it get) a virtio device? They are all PCI. */
static bool arm64_has_pci(const struct vm *vm)
{
	return vm->cfg->nr_devs > 0 || vm->cfg->console == CONSOLE_VIRTIO;
}

/* The power button: a press of the gpio-keys KEY_POWER pin (fdt.c). */
static void press_power_button(void *dev)
{
	if (pl061_pulse(dev, PL061_POWER_PIN) < 0)
		log_warn("power button: the key press could not be timed; the guest was not asked");
}

static size_t console_to_uart(void *dev, const uint8_t *buf, size_t n)
{
	return uart_receive(dev, buf, n);
}

_Static_assert(ARM64_IRQ_LINE_TYPE_SHIFT == KVM_ARM_IRQ_TYPE_SHIFT &&
		       ARM64_IRQ_LINE_TYPE_MASK == KVM_ARM_IRQ_TYPE_MASK &&
		       ARM64_IRQ_LINE_TYPE_SPI == KVM_ARM_IRQ_TYPE_SPI &&
		       ARM64_IRQ_LINE_TYPE_PPI == KVM_ARM_IRQ_TYPE_PPI &&
		       ARM64_IRQ_LINE_VCPU_SHIFT == KVM_ARM_IRQ_VCPU_SHIFT &&
		       ARM64_IRQ_LINE_VCPU_MASK == KVM_ARM_IRQ_VCPU_MASK &&
		       ARM64_IRQ_LINE_NUM_MASK == KVM_ARM_IRQ_NUM_MASK && KVM_ARM_IRQ_NUM_SHIFT == 0,
	       "layout.h's KVM_IRQ_LINE encoding is KVM's");
#define SPI(n) ((struct irq_line){ .set = vm_irq_set, .ctx = vm, .gsi = ARM64_IRQ_LINE_SPI(n) })
int arch_create_devices(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;
	struct device *d, *uart;
	/* The windows and INTx lines the device tree's PCI node describes (fdt.c); no I/O space. */
	const struct pci_host_config pci = {
		.mmio = &vm->mmio,
		.mem32 = { ARM64_PCI_MMIO_BASE, ARM64_PCI_MMIO_SIZE },
		.mem64 = { ARM64_PCI_MMIO64_BASE, ARM64_PCI_MMIO64_SIZE },
		.intx = SPI(0), /* the line is per slot and pin */
		.intx_gsi_base = SPI(ARM64_SPI_PCI_INTX).gsi,
		.intx_lines = ARM64_PCI_INTX_LINES,
	};

	/* Every vCPU exists by now (see core/machine.c), which the vGIC's initialisation needs. A
	 * core step "after the vCPUs, before any device" would be the better place for it. */
	if (arm64_gic_finalize(a) < 0)
		return -1;
	/* The UART is the console unless the user chose another (or none). */
	d = uart_mmio_create("uart0", &vm->mmio, ARM64_UART_BASE, SPI(ARM64_SPI_UART),
			     vm->cfg->console == CONSOLE_SERIAL ? vm->console_out : (struct char_port){ 0 },
			     &uart);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	if (vm->cfg->console == CONSOLE_SERIAL)
		vm->console_in = (struct vm_console_in){ .receive = console_to_uart, .ctx = uart };
	d = pl031_create("pl031", &vm->mmio, ARM64_RTC_BASE, SPI(ARM64_SPI_RTC));
	if (!d)
		return -1;
	vm_add_device(vm, d);
	d = pl061_create("pl061", &vm->mmio, ARM64_GPIO_BASE, SPI(ARM64_SPI_GPIO), vm->loop);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	vm->power_button = (struct vm_power_button){ .press = press_power_button, .ctx = d };
	/* The PCI host only when a virtio device needs it (arm64_has_pci): a VM without one keeps
	 * the machine it had before PCI existed here. */
	if (arm64_has_pci(vm)) {
		d = pci_host_create("pci", &pci);
		if (!d)
			return -1;
		vm_add_device(vm, d);
		vm->pci_host = d;
		d = pci_ecam_create("pci-ecam", vm->pci_host, &vm->mmio, ARM64_PCI_ECAM_BASE,
				    ARM64_PCI_ECAM_BUSES);
		if (!d)
			return -1;
		vm_add_device(vm, d);
	}
#undef SPI
	/* The guest's own power-off and reset need no device: PSCI SYSTEM_OFF/RESET reach vcpu.c
	 * as KVM_EXIT_SYSTEM_EVENT. */
	return 0;
}

int arch_load_kernel(struct vm *vm)
{
	struct arm64_vm *a = arm64_vm(vm);
	const struct vm_config *cfg = vm->cfg;
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	int ret = -1;

	if (!a)
		return -1;
	if (input_file_read("kernel", cfg->kernel, vm->mem.total, &kernel, &klen) < 0)
		goto out;
	if (cfg->initrd && input_file_read("initrd", cfg->initrd, vm->mem.total, &initrd, &ilen) < 0)
		goto out;
	ret = arm64_load_kernel(&vm->mem, kernel, klen, cfg->kernel, initrd, ilen, cfg->initrd, cfg->append,
				&a->boot);
out:
	free(kernel);
	free(initrd);
	return ret;
}

int arch_vcpu_init(struct vcpu *v)
{
	struct arm64_vm *a = v->vm->arch;
	struct kvm_vcpu_init init = a->init;

	/* PSCI 0.2+ in KVM; every vCPU but the boot one waits, powered off, for PSCI CPU_ON. */
	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	if (v->id)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	return KVM_IOCTL(v->fd, KVM_ARM_VCPU_INIT, &init);
}

int arch_vcpu_boot_regs(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct arm64_vm *a = vm->arch;
	uint64_t *mpidr = calloc(vm->nr_vcpus, sizeof(*mpidr));
	void *blob = calloc(1, ARM64_FDT_MAX);
	struct arm64_dt dt = {
		.ram_base = vm->mem.regions[0].gpa,
		.ram_size = vm->mem.regions[0].size,
		.ncpus = vm->nr_vcpus,
		.mpidr = mpidr,
		.its = a->its_fd >= 0,
		.pci = arm64_has_pci(vm),
		.bootargs = vm->cfg->append ? vm->cfg->append : "",
		.initrd_start = a->boot.initrd_start,
		.initrd_end = a->boot.initrd_end,
	};
	int ret = -1;

	if (!mpidr || !blob) {
		log_error("out of memory building the device tree");
		goto out;
	}
	/* The device tree's cpu nodes name the vCPUs by the MPIDR KVM gave them. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (arm64_get_reg(vm->vcpus[i]->fd, ARM64_REG_MPIDR_EL1, &mpidr[i]) < 0)
			mpidr[i] = arm64_default_mpidr(i);
	if (arm64_fdt_build(&dt, blob, ARM64_FDT_MAX) < 0)
		goto out;
	if (gpa_write(&vm->mem, a->boot.fdt, blob, ARM64_FDT_MAX) < 0) {
		log_error("device tree: cannot be written at 0x%llx; this is a kvmbox bug",
			  (unsigned long long)a->boot.fdt);
		goto out;
	}
	if (arm64_set_reg(v->fd, ARM64_CORE_REG(regs.pstate), PSR_MODE_EL1H | PSR_DAIF) < 0 ||
	    arm64_set_reg(v->fd, ARM64_CORE_REG(regs.pc), a->boot.entry) < 0 ||
	    arm64_set_reg(v->fd, ARM64_CORE_REG(regs.regs[0]), a->boot.fdt) < 0)
		goto out;
	for (int i = 1; i < 4; i++) /* x1-x3 are reserved and must be 0 */
		if (arm64_set_reg(v->fd, ARM64_CORE_REG(regs.regs[i]), 0) < 0)
			goto out;
	ret = 0;
out:
	free(mpidr);
	free(blob);
	return ret;
}

void arch_vcpu_dump(struct vcpu *v, FILE *f)
{
	static const struct {
		const char *name;
		uint64_t id;
	} named[] = {
		{ "pc", ARM64_CORE_REG(regs.pc) },      { "pstate", ARM64_CORE_REG(regs.pstate) },
		{ "sp_el0", ARM64_CORE_REG(regs.sp) },  { "sp_el1", ARM64_CORE_REG(sp_el1) },
		{ "elr_el1", ARM64_CORE_REG(elr_el1) }, { "esr_el1", ARM64_REG_ESR_EL1 },
		{ "far_el1", ARM64_REG_FAR_EL1 },       { "mpidr", ARM64_REG_MPIDR_EL1 },
	};
	uint64_t val;

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (arm64_get_reg(v->fd, named[i].id, &val) == 0)
			fprintf(f, "  %-8s %016llx\n", named[i].name, (unsigned long long)val);
		else
			fprintf(f, "  %-8s (unreadable: %s)\n", named[i].name, strerror(errno));
	}
	for (int i = 0; i < 31; i++) {
		if (arm64_get_reg(v->fd, ARM64_CORE_REG(regs.regs[i]), &val) < 0)
			val = 0;
		fprintf(f, "  x%-2d %016llx%s", i, (unsigned long long)val,
			i % 4 == 3 || i == 30 ? "\n" : "");
	}
}

int64_t arch_line_route_gsi(uint32_t irq_line)
{
	return arm64_spi_route_gsi(irq_line);
}

int arch_default_routes(struct kvm_irq_routing_entry *out, int max, uint32_t *first_free)
{
	/* What KVM sets up by itself when the vGIC initialises: GSI n is SPI n (INTID 32 + n). */
	int n = 0;

	for (uint32_t gsi = 0; gsi < ARM64_GIC_NR_SPIS && n < max; gsi++)
		out[n++] = (struct kvm_irq_routing_entry){ .gsi = gsi,
							   .type = KVM_IRQ_ROUTING_IRQCHIP,
							   .u.irqchip = { .irqchip = 0, .pin = gsi } };
	*first_free = ARM64_GIC_NR_SPIS;
	return n;
}

void arch_vm_destroy(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;

	if (!a)
		return;
	arm64_gic_destroy(a);
	free(a);
	vm->arch = NULL;
}
