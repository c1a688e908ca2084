/* acpi.c - ACPI tables for the x86 platform in layout.h.
 *
 * Offsets and values follow the ACPI 6.x specification (sections 5.2 and 6.4). The guest reads
 * these once at boot, so they are built in place in guest RAM, aligned 16 (FACS 64) bytes. */
#include "acpi.h"

#include <string.h>

#include "aml.h"
#include "core/log.h"
#include "core/util.h"
#include "layout.h"

#define OEM_ID       "KVMBOX"
#define OEM_TABLE_ID "KVMBOX  "
#define CREATOR_ID   "KVMB"
#define HDR_SIZE     36

/* FADT (revision 6, 276 bytes) field offsets. */
#define FADT_SIZE            276
#define FADT_FIRMWARE_CTRL   36
#define FADT_DSDT            40
#define FADT_PM_PROFILE      45
#define FADT_SCI_INT         46
#define FADT_SMI_CMD         48
#define FADT_PM1A_EVT_BLK    56
#define FADT_PM1A_CNT_BLK    64
#define FADT_PM1_EVT_LEN     88
#define FADT_PM1_CNT_LEN     89
#define FADT_P_LVL2_LAT      96
#define FADT_P_LVL3_LAT      98
#define FADT_IAPC_BOOT_ARCH  109
#define FADT_FLAGS           112
#define FADT_RESET_REG       116
#define FADT_RESET_VALUE     128
#define FADT_MINOR_VERSION   131
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT          140
#define FADT_X_PM1A_EVT_BLK  148
#define FADT_X_PM1A_CNT_BLK  172
#define FADT_HYPERVISOR_ID   268

#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PROC_C1       (1u << 2)
#define FADT_F_SLP_BUTTON    (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define BOOT_ARCH_LEGACY     (1u << 0)
#define BOOT_ARCH_8042       (1u << 1)
#define BOOT_ARCH_NO_VGA     (1u << 2)
#define PM_PROFILE_DESKTOP   1

/* Generic Address Structure: space, bit width, bit offset, access size, address. */
#define GAS_SYSTEM_IO   1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2

#define FACS_SIZE 64

/* MCFG (PCI Firmware Specification 3.x, 4.1.2): the header, 8 reserved bytes, then one 16-byte
 * allocation per segment and bus range: base address (u64), segment (u16), start and end bus,
 * 4 reserved bytes. */
#define MCFG_SIZE (HDR_SIZE + 8 + 16)

/* Tables the XSDT and the RSDT point to: FADT, MADT, MCFG. */
#define SDT_ENTRIES 3

#define MADT_PCAT_COMPAT 1
#define MADT_LAPIC       0
#define MADT_IOAPIC      1
#define MADT_ISO         2
#define MADT_LAPIC_NMI   4
/* ISO flags: polarity active high (01) in bits 1:0, trigger level (11) in bits 3:2. */
#define MPS_LEVEL_HIGH 0x000d

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Make bytes [0, n) sum to zero by adjusting the checksum byte at p[at]. */
static void fix_checksum(uint8_t *p, size_t n, size_t at)
{
	p[at] = 0;
	p[at] = (uint8_t)-sum8(p, n);
}

static void sdt_header(uint8_t *p, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(p, sig, 4);
	put_le32(p + 4, len);
	p[8] = rev;
	memcpy(p + 10, OEM_ID, 6);
	memcpy(p + 16, OEM_TABLE_ID, 8);
	put_le32(p + 24, 1); /* OEM revision */
	memcpy(p + 28, CREATOR_ID, 4);
	put_le32(p + 32, 1); /* creator revision */
}

static void sdt_finish(uint8_t *p)
{
	uint32_t len;

	memcpy(&len, p + 4, sizeof(len));
	fix_checksum(p, len, 9);
}

static void gas(uint8_t *p, uint8_t space, uint8_t bits, uint8_t access, uint64_t addr)
{
	p[0] = space;
	p[1] = bits;
	p[2] = 0;
	p[3] = access;
	put_le64(p + 4, addr);
}

/* Bump allocator over the table area. */
struct area {
	uint8_t *host;
	uint64_t gpa;
	size_t size;
	size_t used;
};

static uint8_t *area_alloc(struct area *a, size_t n, size_t align, uint64_t *gpa)
{
	size_t start = (a->used + align - 1) & ~(align - 1);

	if (start > a->size || n > a->size - start)
		return NULL;
	a->used = start + n;
	*gpa = a->gpa + start;
	return a->host + start;
}

/* Close resource template r and emit it as Name(_CRS, Buffer(){...}) into a. */
static void emit_crs(struct aml *a, struct aml *r)
{
	aml_res_end(r);
	if (r->err)
		a->err = true;
	aml_name_buffer(a, "_CRS", r->buf, r->len);
}

static void build_dsdt_body(struct aml *a)
{
	uint8_t rbuf[256];
	struct aml r;

	/* \_S5_: SLP_TYPa, SLP_TYPb for soft-off; Linux writes SLP_TYP<<10 | SLP_EN to PM1a_CNT. */
	aml_name_package_begin(a, "_S5_", 4);
	aml_integer(a, X86_SLP_TYP_S5);
	aml_integer(a, X86_SLP_TYP_S5);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);

	aml_scope_begin(a, "\\_SB_");

	/* The PCI root bridge: Linux only scans PCI when it finds one in the namespace. */
	aml_device_begin(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A03");
	aml_name_integer(a, "_UID", 0);
	aml_name_integer(a, "_SEG", 0);
	aml_name_integer(a, "_BBN", 0);
	aml_init(&r, rbuf, sizeof(rbuf));
	aml_res_word_bus(&r, 0, 0);
	aml_res_word_io(&r, 0x0000, X86_PCI_CONFIG_ADDR - 1);
	aml_res_word_io(&r, 0x0d00, 0xffff);
	aml_res_dword_mem(&r, (uint32_t)X86_PCI_MMIO_START, (uint32_t)(X86_PCI_MMIO_END - 1));
	aml_res_qword_mem(&r, X86_PCI_MMIO64_START, X86_PCI_MMIO64_START + X86_PCI_MMIO64_SIZE - 1);
	emit_crs(a, &r);
	/* _PRT entries: {address (slot << 16 | 0xffff), pin, source 0 (= GSI), GSI}. */
	aml_name_package_begin(a, "_PRT", 31 * 4);
	for (unsigned slot = 1; slot <= 31; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml_package_begin(a, 4);
			aml_integer(a, (uint64_t)slot << 16 | 0xffff);
			aml_integer(a, pin);
			aml_integer(a, 0);
			aml_integer(a, X86_PCI_INTX_GSI_BASE + (slot + pin) % X86_PCI_INTX_GSI_COUNT);
			aml_end(a);
		}
	}
	aml_end(a);
	aml_end(a); /* PCI0 */

	aml_device_begin(a, "COM1");
	aml_name_eisaid(a, "_HID", "PNP0501");
	aml_name_integer(a, "_UID", 1);
	aml_init(&r, rbuf, sizeof(rbuf));
	aml_res_io(&r, X86_COM1_PORT, 8);
	aml_res_irq(&r, X86_COM1_IRQ);
	emit_crs(a, &r);
	aml_end(a);

	aml_device_begin(a, "RTC_");
	aml_name_eisaid(a, "_HID", "PNP0B00");
	aml_init(&r, rbuf, sizeof(rbuf));
	aml_res_io(&r, X86_RTC_PORT, 2);
	aml_res_irq(&r, X86_RTC_IRQ);
	emit_crs(a, &r);
	aml_end(a);

	aml_device_begin(a, "KBD_");
	aml_name_eisaid(a, "_HID", "PNP0303");
	aml_init(&r, rbuf, sizeof(rbuf));
	aml_res_io(&r, X86_I8042_DATA, 1);
	aml_res_io(&r, X86_I8042_CMD, 1);
	aml_res_irq(&r, X86_I8042_IRQ);
	emit_crs(a, &r);
	aml_end(a);

	aml_end(a); /* \_SB_ */
}

static void build_fadt(uint8_t *p, uint64_t facs, uint64_t dsdt)
{
	sdt_header(p, "FACP", FADT_SIZE, 6);
	put_le32(p + FADT_FIRMWARE_CTRL, (uint32_t)facs);
	put_le32(p + FADT_DSDT, (uint32_t)dsdt);
	p[FADT_PM_PROFILE] = PM_PROFILE_DESKTOP;
	put_le16(p + FADT_SCI_INT, X86_SCI_IRQ);
	put_le32(p + FADT_SMI_CMD, 0); /* no SMI port: ACPI mode is always on */
	put_le32(p + FADT_PM1A_EVT_BLK, X86_PM1A_EVT_PORT);
	put_le32(p + FADT_PM1A_CNT_BLK, X86_PM1A_CNT_PORT);
	p[FADT_PM1_EVT_LEN] = 4;
	p[FADT_PM1_CNT_LEN] = 2;
	/* PM timer and GPE blocks absent (lengths 0). C2/C3 unsupported: latencies above the limits. */
	put_le16(p + FADT_P_LVL2_LAT, 101);
	put_le16(p + FADT_P_LVL3_LAT, 1001);
	put_le16(p + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_LEGACY | BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA);
	/* PWR_BUTTON clear: the power button is the fixed-feature one in PM1. */
	put_le32(p + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
	gas(p + FADT_RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, X86_PM_RESET_PORT);
	p[FADT_RESET_VALUE] = X86_PM_RESET_VALUE;
	p[FADT_MINOR_VERSION] = 0;
	/* ACPI 6 (FADT X_FIRMWARE_CTRL): "If the FIRMWARE_CTRL field contains a non zero value then
	 * this field must be zero"; setting both also makes Linux install the FACS twice. */
	put_le64(p + FADT_X_FIRMWARE_CTRL, 0);
	put_le64(p + FADT_X_DSDT, dsdt);
	gas(p + FADT_X_PM1A_EVT_BLK, GAS_SYSTEM_IO, 32, GAS_ACCESS_WORD, X86_PM1A_EVT_PORT);
	gas(p + FADT_X_PM1A_CNT_BLK, GAS_SYSTEM_IO, 16, GAS_ACCESS_WORD, X86_PM1A_CNT_PORT);
	memcpy(p + FADT_HYPERVISOR_ID, "KVMBOX\0\0", 8);
	sdt_finish(p);
}

static size_t madt_size(unsigned ncpus)
{
	return HDR_SIZE + 8 + 8 * (size_t)ncpus + 12 + 10 + 6;
}

static void build_madt(uint8_t *p, unsigned ncpus)
{
	uint8_t *e = p + HDR_SIZE + 8;

	sdt_header(p, "APIC", (uint32_t)madt_size(ncpus), 5);
	put_le32(p + HDR_SIZE, (uint32_t)X86_LAPIC_ADDR);
	put_le32(p + HDR_SIZE + 4, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < ncpus; i++, e += 8) {
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;  /* ACPI processor UID */
		e[3] = (uint8_t)i;  /* APIC id */
		put_le32(e + 4, 1); /* enabled */
	}
	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = (uint8_t)ncpus; /* an id no LAPIC uses */
	e[3] = 0;
	put_le32(e + 4, (uint32_t)X86_IOAPIC_ADDR);
	put_le32(e + 8, 0); /* GSI base */
	e += 12;
	/* Only the SCI needs an override (level, active high). IRQ0 stays on pin 0, as KVM routes it. */
	e[0] = MADT_ISO;
	e[1] = 10;
	e[2] = 0; /* ISA bus */
	e[3] = X86_SCI_IRQ;
	put_le32(e + 4, X86_SCI_IRQ);
	put_le16(e + 8, MPS_LEVEL_HIGH);
	e += 10;
	e[0] = MADT_LAPIC_NMI;
	e[1] = 6;
	e[2] = 0xff;        /* all processors */
	put_le16(e + 3, 0); /* bus-conformant polarity/trigger */
	e[5] = 1;           /* LINT1 */
	sdt_finish(p);
}

/* The ECAM window of layout.h, which x86.c maps (pci_ecam_create): segment 0, buses 0 to
 * X86_PCI_ECAM_BUSES - 1, as the DSDT's PCI0 (_SEG 0, _BBN 0, bus range 0..0). */
static void build_mcfg(uint8_t *p)
{
	uint8_t *e = p + HDR_SIZE + 8;

	sdt_header(p, "MCFG", MCFG_SIZE, 1);
	put_le64(e, X86_PCI_ECAM_BASE);
	put_le16(e + 8, 0);
	e[10] = 0;
	e[11] = X86_PCI_ECAM_BUSES - 1;
	sdt_finish(p);
}

int x86_acpi_build(const struct guest_mem *mem, unsigned ncpus, uint64_t *rsdp_gpa)
{
	struct area ar;
	struct aml a;
	uint8_t *rsdp, *facs, *dsdt, *fadt, *madt, *mcfg, *xsdt, *rsdt;
	uint64_t rsdp_at = 0, facs_at = 0, dsdt_at = 0, fadt_at = 0, madt_at = 0, mcfg_at = 0, xsdt_at = 0,
		 rsdt_at = 0;
	uint64_t sdts[SDT_ENTRIES];
	size_t dsdt_start;

	if (ncpus == 0 || ncpus > X86_ACPI_MAX_CPUS) {
		log_error("ACPI tables: %u vCPUs cannot be described (1..%u); give fewer --cpus", ncpus,
			  X86_ACPI_MAX_CPUS);
		return -1;
	}
	ar.size = X86_BIOS_END - X86_BIOS_START;
	ar.gpa = X86_BIOS_START;
	ar.used = 0;
	ar.host = gpa_ptr(mem, X86_BIOS_START, ar.size);
	if (!ar.host) {
		log_error("ACPI tables: 0x%llx..0x%llx is not guest RAM; give more --memory",
			  (unsigned long long)X86_BIOS_START, (unsigned long long)X86_BIOS_END - 1);
		return -1;
	}
	/* No stale signature may survive from an earlier boot of the same RAM. */
	memset(ar.host, 0, ar.size);

	rsdp = area_alloc(&ar, 36, 16, &rsdp_at);
	facs = area_alloc(&ar, FACS_SIZE, 64, &facs_at);
	if (!rsdp || !facs)
		goto too_big;

	/* The DSDT gets all remaining room while it is encoded, then only what it used. */
	dsdt_start = (ar.used + 15) & ~(size_t)15;
	if (dsdt_start + HDR_SIZE > ar.size)
		goto too_big;
	dsdt = ar.host + dsdt_start;
	dsdt_at = ar.gpa + dsdt_start;
	aml_init(&a, dsdt + HDR_SIZE, ar.size - dsdt_start - HDR_SIZE);
	build_dsdt_body(&a);
	if (!aml_ok(&a))
		goto too_big;
	ar.used = dsdt_start + HDR_SIZE + a.len;
	sdt_header(dsdt, "DSDT", (uint32_t)(HDR_SIZE + a.len), 2);
	sdt_finish(dsdt);

	fadt = area_alloc(&ar, FADT_SIZE, 16, &fadt_at);
	madt = area_alloc(&ar, madt_size(ncpus), 16, &madt_at);
	mcfg = area_alloc(&ar, MCFG_SIZE, 16, &mcfg_at);
	xsdt = area_alloc(&ar, HDR_SIZE + SDT_ENTRIES * 8, 16, &xsdt_at);
	rsdt = area_alloc(&ar, HDR_SIZE + SDT_ENTRIES * 4, 16, &rsdt_at);
	if (!fadt || !madt || !mcfg || !xsdt || !rsdt)
		goto too_big;

	memcpy(facs, "FACS", 4);
	put_le32(facs + 4, FACS_SIZE);
	facs[32] = 2; /* version */

	build_fadt(fadt, facs_at, dsdt_at);
	build_madt(madt, ncpus);
	build_mcfg(mcfg);

	sdts[0] = fadt_at;
	sdts[1] = madt_at;
	sdts[2] = mcfg_at;
	sdt_header(xsdt, "XSDT", HDR_SIZE + SDT_ENTRIES * 8, 1);
	/* An RSDT too, for guests booted with acpi=rsdt or ACPI 1.0 parsers. */
	sdt_header(rsdt, "RSDT", HDR_SIZE + SDT_ENTRIES * 4, 1);
	for (int i = 0; i < SDT_ENTRIES; i++) {
		put_le64(xsdt + HDR_SIZE + 8 * i, sdts[i]);
		put_le32(rsdt + HDR_SIZE + 4 * i, (uint32_t)sdts[i]);
	}
	sdt_finish(xsdt);
	sdt_finish(rsdt);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2; /* revision: ACPI 2.0+ with XSDT */
	put_le32(rsdp + 16, (uint32_t)rsdt_at);
	put_le32(rsdp + 20, 36);
	put_le64(rsdp + 24, xsdt_at);
	fix_checksum(rsdp, 20, 8);  /* ACPI 1.0 part */
	fix_checksum(rsdp, 36, 32); /* whole structure */

	*rsdp_gpa = rsdp_at;
	return 0;

too_big:
	log_error("ACPI tables: do not fit in 0x%llx..0x%llx for %u vCPUs; give fewer --cpus",
		  (unsigned long long)X86_BIOS_START, (unsigned long long)X86_BIOS_END - 1, ncpus);
	return -1;
}
