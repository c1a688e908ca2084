/* x86.c - the x86_64 side of arch.h: address map, irqchip, platform
 * devices, kernel loading. */
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
#include "../../core/util.h"
#include "../../core/vm.h"
#include "../../devices/acpi_pm.h"
#include "../../devices/i8042.h"
#include "../../devices/pci.h"
#include "../../devices/pci_cf8.h"
#include "../../devices/pci_ecam.h"
#include "../../devices/rtc.h"
#include "../../devices/uart.h"
#include "../arch.h"
#include "acpi.h"
#include "boot.h"
#include "cpu.h"
#include "layout.h"

const enum arch_id arch_this = ARCH_ID_X86_64;

/* The ECAM window sits between the 32-bit BAR window and the IOAPIC, decoded by nothing else. */
_Static_assert(X86_PCI_ECAM_BASE >= X86_PCI_MMIO_END &&
		       X86_PCI_ECAM_BASE + X86_PCI_ECAM_SIZE <= X86_IOAPIC_ADDR &&
		       X86_PCI_ECAM_SIZE == X86_PCI_ECAM_BUSES * PCI_ECAM_BUS_SIZE &&
		       X86_PCI_ECAM_BASE % PCI_ECAM_BUS_SIZE == 0,
	       "the x86 ECAM window overlaps the PCI MMIO window or the IOAPIC, or is misaligned");

struct x86_vm {
	struct kvm_cpuid2 *cpuid; /* supported CPUID, before per-vCPU fixes */
	struct x86_boot_entry entry;
};

int arch_mem_layout(uint64_t ram, struct mem_region *out, int max)
{
	if (max < 2)
		return 0;
	if (ram <= X86_PCI_HOLE_START) {
		out[0] = (struct mem_region){ .gpa = 0, .size = ram };
		return 1;
	}
	out[0] = (struct mem_region){ .gpa = 0, .size = X86_PCI_HOLE_START };
	out[1] = (struct mem_region){ .gpa = X86_4G, .size = ram - X86_PCI_HOLE_START };
	return 2;
}

uint64_t arch_max_ram(void)
{
	/* RAM above 4 GiB must end below the 64-bit PCI window. */
	return X86_PCI_HOLE_START + (X86_PCI_MMIO64_START - X86_4G);
}

static const struct {
	int cap;
	const char *name;
} x86_caps[] = {
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
};

/* The arch data, created by whichever of arch_load_kernel and arch_vm_init comes first. */
static struct x86_vm *x86_vm(struct vm *vm)
{
	if (!vm->arch) {
		vm->arch = calloc(1, sizeof(struct x86_vm));
		if (!vm->arch)
			log_error("out of memory");
	}
	return vm->arch;
}

int arch_vm_init(struct vm *vm)
{
	struct x86_vm *x = x86_vm(vm);
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t ident = X86_IDENTITY_MAP_ADDR;

	if (!x)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(x86_caps); i++) {
		if (KVM_PROBE(vm->kvm_fd, KVM_CHECK_EXTENSION, x86_caps[i].cap) <= 0) {
			log_error("/dev/kvm: the kernel lacks %s; use a kernel with full KVM support",
				  x86_caps[i].name);
			return -1;
		}
	}
	/* Intel needs these three pages outside RAM; AMD ignores them. */
	if (KVM_IOCTL(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		return -1;
	if (KVM_IOCTL(vm->vm_fd, KVM_SET_TSS_ADDR, X86_TSS_ADDR) < 0)
		return -1;
	if (KVM_IOCTL(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL) < 0)
		return -1;
	if (KVM_IOCTL(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -1;
	x->cpuid = x86_supported_cpuid(vm->kvm_fd);
	return x->cpuid ? 0 : -1;
}

static void machine_request(void *ctx, int reason)
{
	vm_request_stop(ctx, (enum vm_exit_reason)reason);
}

static size_t console_to_uart(void *dev, const uint8_t *buf, size_t n)
{
	return uart_receive(dev, buf, n);
}

static void press_power_button(void *dev)
{
	acpi_pm_power_button(dev);
}

#define IRQ(n) ((struct irq_line){ .set = vm_irq_set, .ctx = vm, .gsi = (n) })
int arch_create_devices(struct vm *vm)
{
	/* The same ports and values as the FADT and the DSDT's \_S5 (acpi.c). */
	static const struct acpi_pm_config pm = {
		.evt = X86_PM1A_EVT_PORT,
		.cnt = X86_PM1A_CNT_PORT,
		.reset = X86_PM_RESET_PORT,
		.reset_value = X86_PM_RESET_VALUE,
		.s5_slp_typ = X86_SLP_TYP_S5,
	};
	/* The windows and INTx routing the DSDT's PCI0 _CRS and _PRT describe (acpi.c). */
	const struct pci_host_config pci = {
		.mmio = &vm->mmio,
		.mem32 = { X86_PCI_MMIO_START, X86_PCI_MMIO_END - X86_PCI_MMIO_START },
		.mem64 = { X86_PCI_MMIO64_START, X86_PCI_MMIO64_SIZE },
		.io_bus = &vm->pio,
		.io = { X86_PCI_IO_START, X86_PCI_IO_SIZE },
		.io_bus_base = X86_PCI_IO_START,
		.intx = IRQ(0), /* the GSI is per slot and pin */
		.intx_gsi_base = X86_PCI_INTX_GSI_BASE,
		.intx_lines = X86_PCI_INTX_GSI_COUNT,
	};
	struct machine_ctl ctl = { .request = machine_request, .ctx = vm };
	struct device *d;

	/* COM1 is the console unless the user chose another (or none). */
	d = uart_create("com1", &vm->pio, X86_COM1_PORT, IRQ(X86_COM1_IRQ),
			vm->cfg->console == CONSOLE_SERIAL ? vm->console_out : (struct char_port){ 0 });
	if (!d)
		return -1;
	vm_add_device(vm, d);
	if (vm->cfg->console == CONSOLE_SERIAL)
		vm->console_in = (struct vm_console_in){ .receive = console_to_uart, .ctx = d };
	d = rtc_create("rtc", &vm->pio, X86_RTC_PORT, IRQ(X86_RTC_IRQ), vm->loop);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	d = i8042_create("i8042", &vm->pio, X86_I8042_DATA, X86_I8042_CMD, IRQ(X86_I8042_IRQ), ctl);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	d = acpi_pm_create("acpi-pm", &vm->pio, &pm, IRQ(X86_SCI_IRQ), ctl);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	vm->power_button = (struct vm_power_button){ .press = press_power_button, .ctx = d };
	d = pci_host_create("pci", &pci);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	vm->pci_host = d;
	d = pci_cf8_create("pci-cf8", vm->pci_host, &vm->pio, X86_PCI_CONFIG_ADDR);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	/* The MCFG table's window (acpi.c): Linux reaches config space here once it has checked the
	 * window is reserved in e820, and through 0xcf8/0xcfc before that (and, on x86, for the first
	 * 256 bytes of each function whenever type 1 works). Stateless: every register is the core's. */
	d = pci_ecam_create("pci-ecam", vm->pci_host, &vm->mmio, X86_PCI_ECAM_BASE, X86_PCI_ECAM_BUSES);
	if (!d)
		return -1;
	vm_add_device(vm, d);
	/* CONFIG_ADDRESS writes only matter at the CONFIG_DATA access after them: KVM queues them,
	 * so a configuration access through 0xcf8/0xcfc costs one exit instead of two. */
	if (vm_coalesce_io(vm, X86_PCI_CONFIG_ADDR, 4, true) < 0)
		log_debug("0xcf8 writes are not coalesced (no KVM_CAP_COALESCED_PIO)");
	return 0;
}
#undef IRQ

int arch_load_kernel(struct vm *vm)
{
	struct x86_vm *x = x86_vm(vm);
	const struct vm_config *cfg = vm->cfg;
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	uint64_t rsdp = 0;
	int ret = -1;

	if (!x)
		return -1;
	if (input_file_read("kernel", cfg->kernel, vm->mem.total, &kernel, &klen) < 0)
		goto out;
	if (cfg->initrd && input_file_read("initrd", cfg->initrd, vm->mem.total, &initrd, &ilen) < 0)
		goto out;
	if (x86_acpi_build(&vm->mem, cfg->cpus, &rsdp) < 0)
		goto out;
	if (x86_load_kernel(&vm->mem, kernel, klen, cfg->kernel, initrd, ilen, cfg->initrd,
			    cfg->append ? cfg->append : "", rsdp, &x->entry) < 0)
		goto out;
	ret = 0;
out:
	free(kernel);
	free(initrd);
	return ret;
}

int arch_vcpu_init(struct vcpu *v)
{
	struct x86_vm *x = v->vm->arch;
	struct kvm_cpuid2 *cpuid = x86_vcpu_cpuid(x->cpuid, v->id, v->vm->cfg->cpus);
	int ret;

	if (!cpuid) {
		log_error("out of memory building CPUID");
		return -1;
	}
	ret = x86_vcpu_setup(v->fd, cpuid);
	free(cpuid);
	return ret;
}

int arch_vcpu_boot_regs(struct vcpu *v)
{
	struct x86_vm *x = v->vm->arch;
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (KVM_IOCTL(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	memset(&regs, 0, sizeof(regs));
	x86_boot_regs(&x->entry, &regs, &sregs);
	if (KVM_IOCTL(v->fd, KVM_SET_SREGS, &sregs) < 0 || KVM_IOCTL(v->fd, KVM_SET_REGS, &regs) < 0)
		return -1;
	return 0;
}

void arch_vcpu_dump(struct vcpu *v, FILE *f)
{
	x86_dump_regs(v->fd, v->id, f);
}

int64_t arch_line_route_gsi(uint32_t irq_line)
{
	return irq_line < 24 ? (int64_t)irq_line : -1; /* the IOAPIC's pins, arch_default_routes' GSIs */
}

int arch_default_routes(struct kvm_irq_routing_entry *out, int max, uint32_t *first_free)
{
	/* What KVM sets up by itself with KVM_CREATE_IRQCHIP: ISA IRQs 0-15 to
	 * both the PIC and the IOAPIC, 16-23 to the IOAPIC only. */
	int n = 0;

	for (uint32_t gsi = 0; gsi < 24 && n < max; gsi++) {
		out[n++] = (struct kvm_irq_routing_entry){ .gsi = gsi,
							   .type = KVM_IRQ_ROUTING_IRQCHIP,
							   .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC,
									  .pin = gsi } };
		if (gsi < 16 && n < max)
			out[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								  : KVM_IRQCHIP_PIC_SLAVE,
					       .pin = gsi % 8 }
			};
	}
	*first_free = 24;
	return n;
}

void arch_vm_destroy(struct vm *vm)
{
	struct x86_vm *x = vm->arch;

	if (!x)
		return;
	free(x->cpuid);
	free(x);
	vm->arch = NULL;
}
