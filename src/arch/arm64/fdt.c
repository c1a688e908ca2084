/* fdt.c - the arm64 guest's device tree (see fdt.h), written with libfdt's sequential-write API.
 * Bindings: Documentation/devicetree/bindings/ in Linux (interrupt-controller/arm,gic-v3.yaml,
 * timer/arm,arch_timer.yaml, arm/psci.yaml, serial/8250.yaml, rtc/arm,pl031.yaml,
 * gpio/pl061-gpio.yaml, input/gpio-keys.yaml). */
#include "fdt.h"

#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "devices/pl061.h"
#include "layout.h"

#define ARM64_APB_CLOCK_HZ 24000000 /* the PL031's bus clock: only its existence matters */
#define MPIDR_AFF_MASK     0xff00ffffffULL

uint64_t arm64_default_mpidr(unsigned id)
{
	return (uint64_t)(id & 0xf) | (uint64_t)((id >> 4) & 0xff) << 8 | (uint64_t)((id >> 12) & 0xff) << 16;
}

/* The first libfdt error of a sequence sticks; later calls are skipped. */
struct dtw {
	void *fdt;
	int err;
};

#define DT(w, call)                            \
	do {                                   \
		if (!(w)->err) {               \
			int r_ = (call);       \
			if (r_ < 0)            \
				(w)->err = r_; \
		}                              \
	} while (0)

/* reg = <address size> with two cells each. */
static void prop_reg(struct dtw *w, uint64_t addr, uint64_t size)
{
	fdt64_t v[2] = { cpu_to_fdt64(addr), cpu_to_fdt64(size) };

	DT(w, fdt_property(w->fdt, "reg", v, sizeof(v)));
}

/* name = <cells...> */
static void prop_cells(struct dtw *w, const char *name, const uint32_t *cells, size_t n)
{
	fdt32_t v[16];

	if (n > ARRAY_SIZE(v)) {
		w->err = -FDT_ERR_NOSPACE;
		return;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = cpu_to_fdt32(cells[i]);
	DT(w, fdt_property(w->fdt, name, v, (int)(n * sizeof(fdt32_t))));
}

/* interrupts = <type number flags>, n times. */
static void prop_irqs(struct dtw *w, const uint32_t *cells, int n)
{
	fdt32_t v[12];

	for (int i = 0; i < 3 * n && i < 12; i++)
		v[i] = cpu_to_fdt32(cells[i]);
	DT(w, fdt_property(w->fdt, "interrupts", v, (int)(3 * n * sizeof(fdt32_t))));
}

static void begin(struct dtw *w, const char *name, uint64_t addr)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s@%llx", name, (unsigned long long)addr);
	DT(w, fdt_begin_node(w->fdt, buf));
}

static void node_chosen(struct dtw *w, const struct arm64_dt *dt)
{
	char path[64];

	snprintf(path, sizeof(path), "/uart@%llx", (unsigned long long)ARM64_UART_BASE);
	DT(w, fdt_begin_node(w->fdt, "chosen"));
	if (dt->bootargs)
		DT(w, fdt_property_string(w->fdt, "bootargs", dt->bootargs));
	if (dt->initrd_end > dt->initrd_start) {
		DT(w, fdt_property_u64(w->fdt, "linux,initrd-start", dt->initrd_start));
		DT(w, fdt_property_u64(w->fdt, "linux,initrd-end", dt->initrd_end));
	}
	/* The console, and what a bare "earlycon" on the command line uses. */
	DT(w, fdt_property_string(w->fdt, "stdout-path", path));
	DT(w, fdt_end_node(w->fdt));
	DT(w, fdt_begin_node(w->fdt, "aliases"));
	DT(w, fdt_property_string(w->fdt, "serial0", path));
	DT(w, fdt_end_node(w->fdt));
}

static void node_cpus(struct dtw *w, const struct arm64_dt *dt)
{
	DT(w, fdt_begin_node(w->fdt, "cpus"));
	DT(w, fdt_property_cell(w->fdt, "#address-cells", 1));
	DT(w, fdt_property_cell(w->fdt, "#size-cells", 0));
	for (unsigned i = 0; i < dt->ncpus; i++) {
		uint64_t aff = (dt->mpidr ? dt->mpidr[i] : arm64_default_mpidr(i)) & MPIDR_AFF_MASK;

		if (aff >> 32) { /* Aff3 would need two address cells; KVM never sets it */
			w->err = -FDT_ERR_BADVALUE;
			return;
		}
		begin(w, "cpu", aff);
		DT(w, fdt_property_string(w->fdt, "device_type", "cpu"));
		DT(w, fdt_property_string(w->fdt, "compatible", "arm,arm-v8"));
		/* Secondaries start through PSCI CPU_ON, which KVM implements. */
		DT(w, fdt_property_string(w->fdt, "enable-method", "psci"));
		DT(w, fdt_property_cell(w->fdt, "reg", (uint32_t)aff));
		DT(w, fdt_end_node(w->fdt));
	}
	DT(w, fdt_end_node(w->fdt));
}

static void node_psci(struct dtw *w)
{
	static const char compat[] = "arm,psci-1.0\0arm,psci-0.2";

	DT(w, fdt_begin_node(w->fdt, "psci"));
	DT(w, fdt_property(w->fdt, "compatible", compat, sizeof(compat)));
	DT(w, fdt_property_string(w->fdt, "method", "hvc"));
	DT(w, fdt_end_node(w->fdt));
}

static void node_gic(struct dtw *w, const struct arm64_dt *dt)
{
	fdt64_t reg[4] = {
		cpu_to_fdt64(ARM64_GIC_DIST_BASE),
		cpu_to_fdt64(ARM64_GIC_DIST_SIZE),
		cpu_to_fdt64(ARM64_GIC_REDIST_BASE),
		cpu_to_fdt64((uint64_t)dt->ncpus * ARM64_GIC_REDIST_STRIDE),
	};
	static const uint32_t maint[3] = { ARM64_DT_IRQ_PPI, ARM64_PPI_GIC_MAINT, ARM64_DT_IRQ_LEVEL_HIGH };

	begin(w, "intc", ARM64_GIC_DIST_BASE);
	DT(w, fdt_property_string(w->fdt, "compatible", "arm,gic-v3"));
	DT(w, fdt_property_cell(w->fdt, "#interrupt-cells", 3));
	DT(w, fdt_property(w->fdt, "interrupt-controller", NULL, 0));
	DT(w, fdt_property(w->fdt, "reg", reg, sizeof(reg)));
	DT(w, fdt_property_cell(w->fdt, "#redistributor-regions", 1));
	prop_irqs(w, maint, 1);
	DT(w, fdt_property_cell(w->fdt, "phandle", ARM64_PHANDLE_GIC));
	/* The ITS is a child, so the GIC node has ranges and cells; the PCI interrupt-map gives the
	 * GIC's 2 address cells too (ARM64_DT_IMAP_CELLS), so they are there with or without ITS. */
	DT(w, fdt_property_cell(w->fdt, "#address-cells", 2));
	DT(w, fdt_property_cell(w->fdt, "#size-cells", 2));
	DT(w, fdt_property(w->fdt, "ranges", NULL, 0));
	if (dt->its) {
		begin(w, "msi-controller", ARM64_GIC_ITS_BASE);
		DT(w, fdt_property_string(w->fdt, "compatible", "arm,gic-v3-its"));
		DT(w, fdt_property(w->fdt, "msi-controller", NULL, 0));
		DT(w, fdt_property_cell(w->fdt, "#msi-cells", 1));
		prop_reg(w, ARM64_GIC_ITS_BASE, ARM64_GIC_ITS_SIZE);
		DT(w, fdt_property_cell(w->fdt, "phandle", ARM64_PHANDLE_ITS));
		DT(w, fdt_end_node(w->fdt));
	}
	DT(w, fdt_end_node(w->fdt));
}

static void node_timer(struct dtw *w)
{
	/* Secure, non-secure, virtual and hypervisor physical timers, in the binding's order. */
	static const uint32_t irqs[12] = {
		ARM64_DT_IRQ_PPI, ARM64_PPI_TIMER_SEC,    ARM64_DT_IRQ_LEVEL_HIGH,
		ARM64_DT_IRQ_PPI, ARM64_PPI_TIMER_NONSEC, ARM64_DT_IRQ_LEVEL_HIGH,
		ARM64_DT_IRQ_PPI, ARM64_PPI_TIMER_VIRT,   ARM64_DT_IRQ_LEVEL_HIGH,
		ARM64_DT_IRQ_PPI, ARM64_PPI_TIMER_HYP,    ARM64_DT_IRQ_LEVEL_HIGH,
	};

	DT(w, fdt_begin_node(w->fdt, "timer"));
	DT(w, fdt_property_string(w->fdt, "compatible", "arm,armv8-timer"));
	prop_irqs(w, irqs, 4);
	DT(w, fdt_property(w->fdt, "always-on", NULL, 0));
	DT(w, fdt_end_node(w->fdt));
}

static void node_devices(struct dtw *w)
{
	static const uint32_t uart_irq[3] = { ARM64_DT_IRQ_SPI, ARM64_SPI_UART, ARM64_DT_IRQ_LEVEL_HIGH };
	static const uint32_t rtc_irq[3] = { ARM64_DT_IRQ_SPI, ARM64_SPI_RTC, ARM64_DT_IRQ_LEVEL_HIGH };
	static const char rtc_compat[] = "arm,pl031\0arm,primecell";
	static const uint32_t gpio_irq[3] = { ARM64_DT_IRQ_SPI, ARM64_SPI_GPIO, ARM64_DT_IRQ_LEVEL_HIGH };
	static const char gpio_compat[] = "arm,pl061\0arm,primecell";
	/* <&gpio pin flags>: active high */
	static const uint32_t power_gpio[3] = { ARM64_PHANDLE_GPIO, PL061_POWER_PIN, 0 };

	/* AMBA (PrimeCell) devices need their bus clock "apb_pclk" to probe. */
	DT(w, fdt_begin_node(w->fdt, "apb-pclk"));
	DT(w, fdt_property_string(w->fdt, "compatible", "fixed-clock"));
	DT(w, fdt_property_cell(w->fdt, "#clock-cells", 0));
	DT(w, fdt_property_cell(w->fdt, "clock-frequency", ARM64_APB_CLOCK_HZ));
	DT(w, fdt_property_string(w->fdt, "clock-output-names", "clk24mhz"));
	DT(w, fdt_property_cell(w->fdt, "phandle", ARM64_PHANDLE_CLOCK));
	DT(w, fdt_end_node(w->fdt));

	/* A 16550A with byte-wide registers one byte apart (reg-shift 0), like COM1 on x86. */
	begin(w, "uart", ARM64_UART_BASE);
	DT(w, fdt_property_string(w->fdt, "compatible", "ns16550a"));
	prop_reg(w, ARM64_UART_BASE, ARM64_UART_SIZE);
	prop_irqs(w, uart_irq, 1);
	DT(w, fdt_property_cell(w->fdt, "clock-frequency", ARM64_UART_CLOCK));
	DT(w, fdt_property_cell(w->fdt, "reg-io-width", 1));
	DT(w, fdt_end_node(w->fdt));

	begin(w, "rtc", ARM64_RTC_BASE);
	DT(w, fdt_property(w->fdt, "compatible", rtc_compat, sizeof(rtc_compat)));
	prop_reg(w, ARM64_RTC_BASE, ARM64_RTC_SIZE);
	prop_irqs(w, rtc_irq, 1);
	DT(w, fdt_property_cell(w->fdt, "clocks", ARM64_PHANDLE_CLOCK));
	DT(w, fdt_property_string(w->fdt, "clock-names", "apb_pclk"));
	DT(w, fdt_end_node(w->fdt));

	/* The power button: pin PL061_POWER_PIN of the PL061 is KEY_POWER (116, linux,code). */
	begin(w, "pl061", ARM64_GPIO_BASE);
	DT(w, fdt_property(w->fdt, "compatible", gpio_compat, sizeof(gpio_compat)));
	prop_reg(w, ARM64_GPIO_BASE, ARM64_GPIO_SIZE);
	prop_irqs(w, gpio_irq, 1);
	DT(w, fdt_property(w->fdt, "gpio-controller", NULL, 0));
	DT(w, fdt_property_cell(w->fdt, "#gpio-cells", 2));
	DT(w, fdt_property_cell(w->fdt, "clocks", ARM64_PHANDLE_CLOCK));
	DT(w, fdt_property_string(w->fdt, "clock-names", "apb_pclk"));
	DT(w, fdt_property_cell(w->fdt, "phandle", ARM64_PHANDLE_GPIO));
	DT(w, fdt_end_node(w->fdt));
	DT(w, fdt_begin_node(w->fdt, "gpio-keys"));
	DT(w, fdt_property_string(w->fdt, "compatible", "gpio-keys"));
	DT(w, fdt_begin_node(w->fdt, "poweroff"));
	DT(w, fdt_property_string(w->fdt, "label", "GPIO Key Poweroff"));
	DT(w, fdt_property_cell(w->fdt, "linux,code", 116));
	prop_cells(w, "gpios", power_gpio, 3);
	DT(w, fdt_end_node(w->fdt));
	DT(w, fdt_end_node(w->fdt));
}

/* The generic ECAM PCI host (pci/host-generic-pci.yaml, pci/pci-msi.txt, pci/pci-iommu.txt's
 * interrupt-map conventions): config space at ARM64_PCI_ECAM_BASE, two memory windows (no I/O
 * space), INTx through ARM64_PCI_INTX_LINES SPIs with the bridge swizzle pci.c uses, and MSIs
 * through the ITS with the requester ID as the ITS DeviceID. */
static void node_pci(struct dtw *w, const struct arm64_dt *dt)
{
	/* PCI addresses are 3 cells (phys.hi: space code, then 64 bits), CPU addresses and sizes 2. */
	static const uint32_t ranges[] = {
		0x02000000,
		(uint32_t)(ARM64_PCI_MMIO_BASE >> 32),
		(uint32_t)ARM64_PCI_MMIO_BASE,
		(uint32_t)(ARM64_PCI_MMIO_BASE >> 32),
		(uint32_t)ARM64_PCI_MMIO_BASE,
		(uint32_t)(ARM64_PCI_MMIO_SIZE >> 32),
		(uint32_t)ARM64_PCI_MMIO_SIZE,
		0x43000000,
		(uint32_t)(ARM64_PCI_MMIO64_BASE >> 32),
		(uint32_t)ARM64_PCI_MMIO64_BASE,
		(uint32_t)(ARM64_PCI_MMIO64_BASE >> 32),
		(uint32_t)ARM64_PCI_MMIO64_BASE,
		(uint32_t)(ARM64_PCI_MMIO64_SIZE >> 32),
		(uint32_t)ARM64_PCI_MMIO64_SIZE,
	};
	static const uint32_t bus_range[2] = { 0, ARM64_PCI_ECAM_BUSES - 1 };
	static const uint32_t map_mask[4] = { 0x1800, 0, 0, 7 };
	/* slot (phys.hi bits 11-15), 0, 0, pin; GIC phandle, its 2 address cells, SPI line level. */
	uint32_t map[4 * 4 * ARM64_DT_IMAP_CELLS];
	uint32_t msi_map[4] = { 0, ARM64_PHANDLE_ITS, 0, 0x10000 };
	fdt32_t v[ARRAY_SIZE(map)];
	int n = 0;

	for (uint32_t slot = 0; slot < 4; slot++) {
		for (uint32_t pin = 1; pin <= 4; pin++) {
			uint32_t line = (slot + pin - 1) % ARM64_PCI_INTX_LINES; /* pci.c's swizzle */
			uint32_t e[ARM64_DT_IMAP_CELLS] = { slot << 11,
							    0,
							    0,
							    pin,
							    ARM64_PHANDLE_GIC,
							    0,
							    0,
							    ARM64_DT_IRQ_SPI,
							    ARM64_SPI_PCI_INTX + line,
							    ARM64_DT_IRQ_LEVEL_HIGH };

			memcpy(&map[n], e, sizeof(e));
			n += ARM64_DT_IMAP_CELLS;
		}
	}
	begin(w, "pcie", ARM64_PCI_ECAM_BASE);
	DT(w, fdt_property_string(w->fdt, "compatible", "pci-host-ecam-generic"));
	DT(w, fdt_property_string(w->fdt, "device_type", "pci"));
	DT(w, fdt_property_cell(w->fdt, "#address-cells", 3));
	DT(w, fdt_property_cell(w->fdt, "#size-cells", 2));
	DT(w, fdt_property_cell(w->fdt, "linux,pci-domain", 0));
	prop_reg(w, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE);
	prop_cells(w, "bus-range", bus_range, ARRAY_SIZE(bus_range));
	prop_cells(w, "ranges", ranges, ARRAY_SIZE(ranges));
	DT(w, fdt_property(w->fdt, "dma-coherent", NULL, 0));
	DT(w, fdt_property_cell(w->fdt, "#interrupt-cells", 1));
	prop_cells(w, "interrupt-map-mask", map_mask, ARRAY_SIZE(map_mask));
	for (int i = 0; i < n; i++)
		v[i] = cpu_to_fdt32(map[i]);
	DT(w, fdt_property(w->fdt, "interrupt-map", v, (int)(n * sizeof(fdt32_t))));
	if (dt->its)
		prop_cells(w, "msi-map", msi_map, ARRAY_SIZE(msi_map));
	DT(w, fdt_end_node(w->fdt));
}

int arm64_fdt_build(const struct arm64_dt *dt, void *buf, size_t size)
{
	struct dtw w = { .fdt = buf };

	if (size > INT32_MAX || dt->ncpus == 0) {
		log_error("device tree: bad size or no vCPU; this is a kvmbox bug");
		return -1;
	}
	DT(&w, fdt_create(buf, (int)size));
	DT(&w, fdt_finish_reservemap(buf));
	DT(&w, fdt_begin_node(buf, ""));
	DT(&w, fdt_property_string(buf, "compatible", "linux,dummy-virt"));
	DT(&w, fdt_property_string(buf, "model", "kvmbox"));
	DT(&w, fdt_property_cell(buf, "#address-cells", 2));
	DT(&w, fdt_property_cell(buf, "#size-cells", 2));
	DT(&w, fdt_property_cell(buf, "interrupt-parent", ARM64_PHANDLE_GIC));
	node_chosen(&w, dt);
	begin(&w, "memory", dt->ram_base);
	DT(&w, fdt_property_string(buf, "device_type", "memory"));
	prop_reg(&w, dt->ram_base, dt->ram_size);
	DT(&w, fdt_end_node(buf));
	node_cpus(&w, dt);
	node_psci(&w);
	node_gic(&w, dt);
	node_timer(&w);
	node_devices(&w);
	if (dt->pci)
		node_pci(&w, dt);
	DT(&w, fdt_end_node(buf));
	DT(&w, fdt_finish(buf));
	if (w.err) {
		log_error("device tree: %s; this is a kvmbox bug", fdt_strerror(w.err));
		return -1;
	}
	return 0;
}
