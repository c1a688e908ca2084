/* The arm64 guest's device tree, parsed back with libfdt: structure (fdt_check_full), then every
 * node the kernel relies on with its property values. Runs on any host architecture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libfdt.h>

#include "arch/arm64/fdt.h"
#include "arch/arm64/layout.h"

#define BLOB 0x10000

static void *build(const struct arm64_dt *dt)
{
	void *blob = calloc(1, BLOB);

	assert_non_null(blob);
	assert_int_equal(arm64_fdt_build(dt, blob, BLOB), 0);
	assert_int_equal(fdt_check_full(blob, BLOB), 0);
	return blob;
}

static int node(const void *fdt, const char *path)
{
	int off = fdt_path_offset(fdt, path);

	if (off < 0)
		fail_msg("no node %s: %s", path, fdt_strerror(off));
	return off;
}

static const void *prop(const void *fdt, const char *path, const char *name, int *len)
{
	const void *p = fdt_getprop(fdt, node(fdt, path), name, len);

	if (!p)
		fail_msg("%s has no %s", path, name);
	return p;
}

static uint32_t cell(const void *fdt, const char *path, const char *name)
{
	int len;
	const fdt32_t *p = prop(fdt, path, name, &len);

	assert_int_equal(len, 4);
	return fdt32_to_cpu(*p);
}

static void assert_str(const void *fdt, const char *path, const char *name, const char *want)
{
	int len;
	const char *p = prop(fdt, path, name, &len);

	assert_int_equal(len, (int)strlen(want) + 1);
	assert_string_equal(p, want);
}

/* A property holding n cells with the given values. */
static void assert_cells(const void *fdt, const char *path, const char *name, const uint32_t *want, int n)
{
	int len;
	const fdt32_t *p = prop(fdt, path, name, &len);

	assert_int_equal(len, 4 * n);
	for (int i = 0; i < n; i++)
		assert_int_equal(fdt32_to_cpu(p[i]), want[i]);
}

/* reg = <addr size> with two cells each. */
static void assert_reg(const void *fdt, const char *path, uint64_t addr, uint64_t size)
{
	uint32_t want[4] = { (uint32_t)(addr >> 32), (uint32_t)addr, (uint32_t)(size >> 32), (uint32_t)size };

	assert_cells(fdt, path, "reg", want, 4);
}

static uint64_t be64(const void *p)
{
	fdt64_t v;

	memcpy(&v, p, sizeof(v));
	return fdt64_to_cpu(v);
}

static const struct arm64_dt full = {
	.ram_base = ARM64_RAM_BASE,
	.ram_size = 0x140000000ULL, /* 5 GiB: the size needs both cells */
	.ncpus = 2,
	.its = true,
	.pci = true,
	.bootargs = "console=ttyS0 earlycon quiet",
	.initrd_start = 0x17fa00000ULL,
	.initrd_end = 0x17fc00123ULL,
};

static void test_root_chosen_memory(void **state)
{
	void *fdt = build(&full);
	int len;
	const void *v;

	assert_str(fdt, "/", "compatible", "linux,dummy-virt");
	assert_int_equal(cell(fdt, "/", "#address-cells"), 2);
	assert_int_equal(cell(fdt, "/", "#size-cells"), 2);
	assert_int_equal(cell(fdt, "/", "interrupt-parent"), ARM64_PHANDLE_GIC);
	assert_str(fdt, "/chosen", "bootargs", "console=ttyS0 earlycon quiet");
	assert_str(fdt, "/chosen", "stdout-path", "/uart@9000000");
	assert_str(fdt, "/aliases", "serial0", "/uart@9000000");
	v = prop(fdt, "/chosen", "linux,initrd-start", &len);
	assert_int_equal(len, 8);
	assert_true(be64(v) == full.initrd_start); /* properties are only 4-byte aligned */
	v = prop(fdt, "/chosen", "linux,initrd-end", &len);
	assert_int_equal(len, 8);
	assert_true(be64(v) == full.initrd_end);
	assert_str(fdt, "/memory@40000000", "device_type", "memory");
	assert_reg(fdt, "/memory@40000000", ARM64_RAM_BASE, 0x140000000ULL);
	/* stdout-path must name a node that exists. */
	assert_true(fdt_path_offset(fdt, "/uart@9000000") >= 0);
	free(fdt);
}

static void test_cpus_and_psci(void **state)
{
	void *fdt = build(&full);
	int len;
	const char *compat;

	assert_int_equal(cell(fdt, "/cpus", "#address-cells"), 1);
	assert_int_equal(cell(fdt, "/cpus", "#size-cells"), 0);
	assert_int_equal(cell(fdt, "/cpus/cpu@0", "reg"), 0);
	assert_int_equal(cell(fdt, "/cpus/cpu@1", "reg"), 1);
	assert_str(fdt, "/cpus/cpu@1", "device_type", "cpu");
	assert_str(fdt, "/cpus/cpu@1", "enable-method", "psci");
	assert_str(fdt, "/cpus/cpu@0", "compatible", "arm,arm-v8");
	assert_true(fdt_path_offset(fdt, "/cpus/cpu@2") < 0);
	compat = prop(fdt, "/psci", "compatible", &len);
	assert_int_equal(fdt_stringlist_count(fdt, node(fdt, "/psci"), "compatible"), 2);
	assert_string_equal(compat, "arm,psci-1.0");
	assert_int_equal(fdt_stringlist_search(fdt, node(fdt, "/psci"), "compatible", "arm,psci-0.2"), 1);
	assert_str(fdt, "/psci", "method", "hvc");
	free(fdt);
}

static void test_cpu_reg_is_mpidr(void **state)
{
	uint64_t mpidr[18];
	struct arm64_dt dt = full;
	void *fdt;

	for (unsigned i = 0; i < 18; i++)
		mpidr[i] = arm64_default_mpidr(i) | 0x80000000ULL; /* bit 31 (RES1) is not affinity */
	dt.ncpus = 18;
	dt.mpidr = mpidr;
	fdt = build(&dt);
	/* KVM: Aff0 = id & 15, Aff1 = id >> 4. */
	assert_true(arm64_default_mpidr(17) == 0x101);
	assert_int_equal(cell(fdt, "/cpus/cpu@f", "reg"), 0xf);
	assert_int_equal(cell(fdt, "/cpus/cpu@100", "reg"), 0x100);
	assert_int_equal(cell(fdt, "/cpus/cpu@101", "reg"), 0x101);
	/* The GIC's redistributor region grows with the vCPUs. */
	{
		uint32_t want[8] = { 0, 0x08000000, 0, 0x10000, 0, 0x080a0000, 0, 18 * 0x20000 };

		assert_cells(fdt, "/intc@8000000", "reg", want, 8);
	}
	free(fdt);
}

static void test_gic_its_timer(void **state)
{
	void *fdt = build(&full);
	uint32_t redist[8] = { 0, 0x08000000, 0, 0x10000, 0, 0x080a0000, 0, 2 * 0x20000 };
	uint32_t timer[12] = { 1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4 };
	int len;

	assert_str(fdt, "/intc@8000000", "compatible", "arm,gic-v3");
	assert_int_equal(cell(fdt, "/intc@8000000", "#interrupt-cells"), 3);
	assert_non_null(prop(fdt, "/intc@8000000", "interrupt-controller", &len));
	assert_int_equal(len, 0);
	assert_cells(fdt, "/intc@8000000", "reg", redist, 8);
	assert_int_equal(cell(fdt, "/intc@8000000", "phandle"), ARM64_PHANDLE_GIC);
	assert_int_equal(fdt_node_offset_by_phandle(fdt, ARM64_PHANDLE_GIC), node(fdt, "/intc@8000000"));
	assert_str(fdt, "/intc@8000000/msi-controller@8080000", "compatible", "arm,gic-v3-its");
	assert_non_null(prop(fdt, "/intc@8000000/msi-controller@8080000", "msi-controller", &len));
	assert_int_equal(cell(fdt, "/intc@8000000/msi-controller@8080000", "#msi-cells"), 1);
	assert_reg(fdt, "/intc@8000000/msi-controller@8080000", ARM64_GIC_ITS_BASE, ARM64_GIC_ITS_SIZE);
	assert_int_equal(cell(fdt, "/intc@8000000/msi-controller@8080000", "phandle"), ARM64_PHANDLE_ITS);
	/* The ITS node's reg is in the parent's 2+2 cells. */
	assert_int_equal(cell(fdt, "/intc@8000000", "#address-cells"), 2);
	assert_non_null(prop(fdt, "/intc@8000000", "ranges", &len));
	assert_str(fdt, "/timer", "compatible", "arm,armv8-timer");
	assert_cells(fdt, "/timer", "interrupts", timer, 12);
	free(fdt);
}

static void test_uart_rtc_clock(void **state)
{
	void *fdt = build(&full);
	uint32_t uart_irq[3] = { 0, ARM64_SPI_UART, 4 }, rtc_irq[3] = { 0, ARM64_SPI_RTC, 4 };
	int off;

	assert_str(fdt, "/uart@9000000", "compatible", "ns16550a");
	assert_reg(fdt, "/uart@9000000", 0x09000000, 0x1000);
	assert_cells(fdt, "/uart@9000000", "interrupts", uart_irq, 3);
	assert_int_equal(cell(fdt, "/uart@9000000", "clock-frequency"), 1843200);
	assert_int_equal(fdt_stringlist_search(fdt, node(fdt, "/rtc@9010000"), "compatible", "arm,pl031"), 0);
	assert_int_equal(fdt_stringlist_search(fdt, node(fdt, "/rtc@9010000"), "compatible", "arm,primecell"),
			 1);
	assert_reg(fdt, "/rtc@9010000", 0x09010000, 0x1000);
	assert_cells(fdt, "/rtc@9010000", "interrupts", rtc_irq, 3);
	assert_str(fdt, "/rtc@9010000", "clock-names", "apb_pclk");
	/* The PrimeCell's clock resolves to a fixed clock. */
	off = fdt_node_offset_by_phandle(fdt, cell(fdt, "/rtc@9010000", "clocks"));
	assert_true(off >= 0);
	assert_int_equal(off, node(fdt, "/apb-pclk"));
	assert_str(fdt, "/apb-pclk", "compatible", "fixed-clock");
	assert_int_equal(cell(fdt, "/apb-pclk", "#clock-cells"), 0);
	free(fdt);
}

/* The power button: a PL061 whose pin 3 is the gpio-keys node's KEY_POWER. */
static void test_power_button(void **state)
{
	void *fdt = build(&full);
	uint32_t gpio_irq[3] = { 0, ARM64_SPI_GPIO, 4 }, key[3] = { ARM64_PHANDLE_GPIO, 3, 0 };
	const char *gpio = "/pl061@9020000";

	assert_int_equal(fdt_stringlist_search(fdt, node(fdt, gpio), "compatible", "arm,pl061"), 0);
	assert_int_equal(fdt_stringlist_search(fdt, node(fdt, gpio), "compatible", "arm,primecell"), 1);
	assert_reg(fdt, gpio, 0x09020000, 0x1000);
	assert_cells(fdt, gpio, "interrupts", gpio_irq, 3);
	assert_int_equal(cell(fdt, gpio, "#gpio-cells"), 2);
	assert_int_equal(cell(fdt, gpio, "clocks"), ARM64_PHANDLE_CLOCK);
	assert_str(fdt, gpio, "clock-names", "apb_pclk");
	assert_int_equal(fdt_node_offset_by_phandle(fdt, ARM64_PHANDLE_GPIO), node(fdt, gpio));
	assert_str(fdt, "/gpio-keys", "compatible", "gpio-keys");
	assert_int_equal(cell(fdt, "/gpio-keys/poweroff", "linux,code"), 116);
	assert_cells(fdt, "/gpio-keys/poweroff", "gpios", key, 3);
	free(fdt);
}

static void test_pci_host(void **state)
{
	void *fdt = build(&full);
	const char *pci = "/pcie@30000000";
	uint32_t bus_range[2] = { 0, 255 }, mask[4] = { 0x1800, 0, 0, 7 };
	uint32_t msi_map[4] = { 0, ARM64_PHANDLE_ITS, 0, 0x10000 };
	uint32_t ranges[14] = { 0x02000000, 0,    0x10000000, 0,    0x10000000, 0,    0x20000000,
				0x43000000, 0x80, 0,          0x80, 0,          0x80, 0 };
	const fdt32_t *map;
	int len;

	assert_str(fdt, pci, "compatible", "pci-host-ecam-generic");
	assert_str(fdt, pci, "device_type", "pci");
	assert_int_equal(cell(fdt, pci, "#address-cells"), 3);
	assert_int_equal(cell(fdt, pci, "#size-cells"), 2);
	assert_int_equal(cell(fdt, pci, "#interrupt-cells"), 1);
	assert_reg(fdt, pci, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE);
	assert_cells(fdt, pci, "bus-range", bus_range, 2);
	assert_cells(fdt, pci, "ranges", ranges, 14);
	assert_cells(fdt, pci, "interrupt-map-mask", mask, 4);
	assert_cells(fdt, pci, "msi-map", msi_map, 4);
	assert_non_null(prop(fdt, pci, "dma-coherent", &len));
	/* 4 slots x 4 pins; slot s pin p is SPI ARM64_SPI_PCI_INTX + (s + p - 1) % 4, level high, on
	 * the GIC (whose 2 address cells the entry carries). */
	map = prop(fdt, pci, "interrupt-map", &len);
	assert_int_equal(len, 16 * ARM64_DT_IMAP_CELLS * 4);
	assert_int_equal(cell(fdt, "/intc@8000000", "#address-cells"), 2);
	for (uint32_t i = 0; i < 16; i++) {
		const fdt32_t *e = map + i * ARM64_DT_IMAP_CELLS;
		uint32_t slot = i / 4, pin = i % 4 + 1;

		assert_int_equal(fdt32_to_cpu(e[0]), slot << 11);
		assert_int_equal(fdt32_to_cpu(e[3]), pin);
		assert_int_equal(fdt32_to_cpu(e[4]), ARM64_PHANDLE_GIC);
		assert_int_equal(fdt32_to_cpu(e[7]), 0); /* SPI */
		assert_int_equal(fdt32_to_cpu(e[8]), ARM64_SPI_PCI_INTX + (slot + pin - 1) % 4);
		assert_int_equal(fdt32_to_cpu(e[9]), 4);
		/* The line KVM_IRQ_LINE raises for it (arm64.c's SPI(), pci_intx_gsi) routes, for an
		 * irqfd (vfio_pci's INTx), to the GSI of the SPI the guest was told. */
		assert_int_equal(
			arm64_spi_route_gsi(ARM64_IRQ_LINE_SPI(ARM64_SPI_PCI_INTX + (slot + pin - 1) % 4)),
			fdt32_to_cpu(e[8]));
	}
	/* Not an SPI's line: a PPI, an INTID below 32 or past the SPIs, a vCPU index. */
	assert_int_equal(arm64_spi_route_gsi(ARM64_IRQ_LINE_TYPE_PPI << ARM64_IRQ_LINE_TYPE_SHIFT | 27), -1);
	assert_int_equal(arm64_spi_route_gsi(ARM64_IRQ_LINE_SPI(0) - 1), -1);
	assert_int_equal(arm64_spi_route_gsi(ARM64_IRQ_LINE_SPI(ARM64_GIC_NR_SPIS)), -1);
	assert_int_equal(arm64_spi_route_gsi(ARM64_IRQ_LINE_SPI(ARM64_GIC_NR_SPIS - 1)),
			 ARM64_GIC_NR_SPIS - 1);
	assert_int_equal(arm64_spi_route_gsi(ARM64_IRQ_LINE_SPI(8) | 1u << ARM64_IRQ_LINE_VCPU_SHIFT), -1);
	assert_int_equal(arm64_spi_route_gsi(12), -1); /* an x86 GSI */
	free(fdt);
}

static void test_minimal_no_its_no_initrd(void **state)
{
	struct arm64_dt dt = { .ram_base = ARM64_RAM_BASE, .ram_size = 16 << 20, .ncpus = 1 };
	void *fdt = build(&dt);
	int len;

	assert_true(fdt_path_offset(fdt, "/intc@8000000/msi-controller@8080000") < 0);
	/* No virtio device: no PCI host. */
	assert_true(fdt_path_offset(fdt, "/pcie@30000000") < 0);
	assert_null(fdt_getprop(fdt, node(fdt, "/chosen"), "linux,initrd-start", &len));
	assert_null(fdt_getprop(fdt, node(fdt, "/chosen"), "bootargs", &len));
	assert_true(fdt_path_offset(fdt, "/cpus/cpu@1") < 0);
	assert_reg(fdt, "/memory@40000000", ARM64_RAM_BASE, 16 << 20);
	free(fdt);
}

static void test_too_small_buffer_fails(void **state)
{
	char small[256];

	assert_int_equal(arm64_fdt_build(&full, small, sizeof(small)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_chosen_memory),
		cmocka_unit_test(test_cpus_and_psci),
		cmocka_unit_test(test_cpu_reg_is_mpidr),
		cmocka_unit_test(test_gic_its_timer),
		cmocka_unit_test(test_uart_rtc_clock),
		cmocka_unit_test(test_power_button),
		cmocka_unit_test(test_pci_host),
		cmocka_unit_test(test_minimal_no_its_no_initrd),
		cmocka_unit_test(test_too_small_buffer_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
