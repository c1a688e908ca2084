/* Unit tests for arch/x86/acpi.c and the AML encoder: table checksums and pointers, FADT fields,
 * MADT contents for several vCPU counts, the MCFG's ECAM window, DSDT contents and encoding (its
 * PCI0 windows clear of the ECAM window), and failure cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "core/memory.h"
#include "fakes.h"

#define MiB      (1ULL << 20)
#define RAM_SIZE (16 * MiB)

struct env {
	struct fake_ram ram;
	uint64_t rsdp;
};

static struct env *env_new(unsigned ncpus)
{
	struct env *e = calloc(1, sizeof(*e));

	fake_ram_init_flat(&e->ram, RAM_SIZE);
	assert_int_equal(x86_acpi_build(&e->ram.mem, ncpus, &e->rsdp), 0);
	return e;
}

static void env_free(struct env *e)
{
	fake_ram_free(&e->ram);
	free(e);
}

static uint8_t *at(struct env *e, uint64_t gpa)
{
	/* Every table must lie inside the reserved BIOS area. */
	assert_true(gpa >= X86_BIOS_START && gpa < X86_BIOS_END);
	return e->ram.buf + gpa;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Check a system description table's signature, length bounds and checksum; return it. */
static uint8_t *table(struct env *e, uint64_t gpa, const char *sig)
{
	uint8_t *t = at(e, gpa);
	uint32_t len = get_le32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= 36);
	assert_true(gpa + len <= X86_BIOS_END);
	assert_int_equal(sum(t, len), 0);
	assert_memory_equal(t + 10, "KVMBOX", 6);
	return t;
}

static uint8_t *find_in_xsdt(struct env *e, const char *sig)
{
	uint8_t *rsdp = at(e, e->rsdp), *xsdt = table(e, get_le64(rsdp + 24), "XSDT");
	uint32_t n = (get_le32(xsdt + 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		uint8_t *t = at(e, get_le64(xsdt + 36 + 8 * i));

		if (memcmp(t, sig, 4) == 0)
			return table(e, get_le64(xsdt + 36 + 8 * i), sig);
	}
	fail_msg("%s not in XSDT", sig);
	return NULL;
}

static void test_rsdp_xsdt_checksums(void **state)
{
	unsigned counts[] = { 1, 2, 4, 64 };

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct env *e = env_new(counts[c]);
		uint8_t *rsdp = at(e, e->rsdp), *xsdt, *rsdt, *fadt;

		assert_int_equal(e->rsdp, X86_BIOS_START);
		assert_memory_equal(rsdp, "RSD PTR ", 8);
		assert_int_equal(rsdp[15], 2);
		assert_int_equal(get_le32(rsdp + 20), 36);
		assert_int_equal(sum(rsdp, 20), 0);
		assert_int_equal(sum(rsdp, 36), 0);
		assert_memory_equal(rsdp + 9, "KVMBOX", 6);

		xsdt = table(e, get_le64(rsdp + 24), "XSDT");
		assert_int_equal(get_le32(xsdt + 4), 36 + 3 * 8);
		table(e, get_le64(xsdt + 36), "FACP");
		table(e, get_le64(xsdt + 44), "APIC");
		table(e, get_le64(xsdt + 52), "MCFG");
		rsdt = table(e, get_le32(rsdp + 16), "RSDT");
		assert_int_equal(get_le32(rsdt + 4), 36 + 3 * 4);
		assert_int_equal(get_le32(rsdt + 36), get_le64(xsdt + 36));
		assert_int_equal(get_le32(rsdt + 40), get_le64(xsdt + 44));
		assert_int_equal(get_le32(rsdt + 44), get_le64(xsdt + 52));

		fadt = find_in_xsdt(e, "FACP");
		table(e, get_le64(fadt + 140), "DSDT");
		assert_memory_equal(at(e, get_le32(fadt + 36)), "FACS", 4);
		assert_int_equal(get_le32(at(e, get_le32(fadt + 36)) + 4), 64);
		assert_int_equal(get_le32(fadt + 36) % 64, 0);
		env_free(e);
	}
}

static void test_rsdp_found_by_scan(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	int found = 0;

	fake_ram_init_flat(&e->ram, RAM_SIZE);
	/* A stale RSDP from an earlier run must be gone afterwards. */
	memcpy(e->ram.buf + 0xf0000, "RSD PTR ", 8);
	assert_int_equal(x86_acpi_build(&e->ram.mem, 2, &e->rsdp), 0);
	/* What the kernel's BIOS-area scan does: 16-byte steps, signature + checksum. */
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
		if (memcmp(e->ram.buf + a, "RSD PTR ", 8) == 0 && sum(e->ram.buf + a, 20) == 0) {
			assert_int_equal(a, e->rsdp);
			found++;
		}
	}
	assert_int_equal(found, 1);
	env_free(e);
}

static void test_fadt_fields(void **state)
{
	struct env *e = env_new(2);
	uint8_t *f = find_in_xsdt(e, "FACP");
	uint32_t flags;

	assert_int_equal(get_le32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(get_le32(f + 40), get_le64(f + 140)); /* DSDT == X_DSDT */
	assert_int_not_equal(get_le32(f + 36), 0);             /* FIRMWARE_CTRL, */
	assert_int_equal(get_le64(f + 132), 0);                /* so X_FIRMWARE_CTRL must be 0 */
	assert_int_equal(get_le16(f + 46), X86_SCI_IRQ);
	assert_int_equal(get_le32(f + 48), 0); /* SMI_CMD */
	assert_int_equal(get_le32(f + 56), X86_PM1A_EVT_PORT);
	assert_int_equal(get_le32(f + 64), X86_PM1A_CNT_PORT);
	assert_int_equal(get_le32(f + 76), 0); /* no PM timer */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 0);
	flags = get_le32(f + 112);
	assert_true(flags & (1 << 0));            /* WBINVD */
	assert_true(flags & (1 << 2));            /* PROC_C1 */
	assert_false(flags & (1 << 4));           /* PWR_BUTTON: fixed feature */
	assert_true(flags & (1 << 5));            /* SLP_BUTTON */
	assert_true(flags & (1 << 10));           /* RESET_REG_SUP */
	assert_false(flags & (1 << 20));          /* not HW-reduced */
	assert_int_equal(get_le16(f + 109), 0x7); /* legacy, 8042, no VGA */
	assert_int_not_equal(f[45], 0);           /* preferred PM profile */
	/* RESET_REG: SystemIO, 8 bits, byte access, port; RESET_VALUE. */
	assert_int_equal(f[116], 1);
	assert_int_equal(f[117], 8);
	assert_int_equal(f[118], 0);
	assert_int_equal(f[119], 1);
	assert_int_equal(get_le64(f + 120), X86_PM_RESET_PORT);
	assert_int_equal(f[128], X86_PM_RESET_VALUE);
	/* X_PM1a_EVT_BLK, X_PM1a_CNT_BLK. */
	assert_int_equal(f[148], 1);
	assert_int_equal(f[149], 32);
	assert_int_equal(get_le64(f + 152), X86_PM1A_EVT_PORT);
	assert_int_equal(f[172], 1);
	assert_int_equal(f[173], 16);
	assert_int_equal(get_le64(f + 176), X86_PM1A_CNT_PORT);
	assert_int_equal(get_le64(f + 160 + 4), 0); /* no PM1b */
	env_free(e);
}

static void check_madt(unsigned ncpus)
{
	struct env *e = env_new(ncpus);
	uint8_t *m = find_in_xsdt(e, "APIC"), *p, *end;
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;

	assert_int_equal(get_le32(m + 36), X86_LAPIC_ADDR);
	assert_int_equal(get_le32(m + 40), 1); /* PCAT_COMPAT */
	end = m + get_le32(m + 4);
	for (p = m + 44; p < end; p += p[1]) {
		assert_true(p[1] >= 2 && p + p[1] <= end);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], 8);
			assert_int_equal(p[2], lapics); /* processor UID */
			assert_int_equal(p[3], lapics); /* APIC id */
			assert_int_equal(get_le32(p + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(p[1], 12);
			assert_int_equal(p[2], ncpus);
			assert_int_equal(get_le32(p + 4), X86_IOAPIC_ADDR);
			assert_int_equal(get_le32(p + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(p[1], 10);
			assert_int_equal(p[2], 0);
			assert_int_equal(p[3], X86_SCI_IRQ); /* never IRQ0 */
			assert_int_equal(get_le32(p + 4), X86_SCI_IRQ);
			assert_int_equal(get_le16(p + 8), 0x000d);
			isos++;
			break;
		case 4:
			assert_int_equal(p[1], 6);
			assert_int_equal(p[2], 0xff);
			assert_int_equal(p[5], 1); /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);
	assert_int_equal(nmis, 1);
	env_free(e);
}

static void test_madt(void **state)
{
	check_madt(1);
	check_madt(2);
	check_madt(4);
	check_madt(64);
	check_madt(X86_ACPI_MAX_CPUS);
}

/* The MCFG (PCI Firmware Specification 4.1.2) Linux's pci_parse_mcfg reads: one allocation,
 * segment 0, bus 0 only (the DSDT's PCI0), at the window layout.h reserves; 1 MiB aligned. */
static void test_mcfg(void **state)
{
	unsigned counts[] = { 1, X86_ACPI_MAX_CPUS };

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct env *e = env_new(counts[c]);
		uint8_t *m = find_in_xsdt(e, "MCFG"), *a = m + 44;

		assert_int_equal(get_le32(m + 4), 36 + 8 + 16); /* header, reserved, one allocation */
		assert_int_equal(m[8], 1);                      /* revision */
		assert_int_equal(sum(m, get_le32(m + 4)), 0);
		assert_int_equal(get_le64(m + 36), 0); /* reserved */
		assert_int_equal(get_le64(a), 0xfeb00000ULL);
		assert_int_equal(get_le64(a), X86_PCI_ECAM_BASE);
		assert_int_equal(get_le16(a + 8), 0); /* segment */
		assert_int_equal(a[10], 0);           /* start bus */
		assert_int_equal(a[11], 0);           /* end bus: 1 MiB of ECAM */
		assert_int_equal(get_le32(a + 12), 0);
		assert_int_equal(X86_PCI_ECAM_SIZE, (uint64_t)(a[11] - a[10] + 1) << 20);
		assert_int_equal(X86_PCI_ECAM_BASE % (1 << 20), 0);
		env_free(e);
	}
}

static uint8_t *memmem_or_null(uint8_t *h, size_t hn, const void *n, size_t nn)
{
	return memmem(h, hn, n, nn);
}

/* Decode a PkgLength at p; returns its value and sets *nbytes. */
static size_t pkglen(const uint8_t *p, int *nbytes)
{
	int extra = p[0] >> 6;
	size_t v;

	*nbytes = extra + 1;
	if (!extra)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (int i = 0; i < extra; i++)
		v |= (size_t)p[1 + i] << (4 + 8 * i);
	return v;
}

static void test_dsdt_contents(void **state)
{
	struct env *e = env_new(4);
	uint8_t *f = find_in_xsdt(e, "FACP");
	uint8_t *d = table(e, get_le64(f + 140), "DSDT");
	uint32_t len = get_le32(d + 4);
	static const uint8_t s5[] = {
		0x08,           '_',  'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, X86_SLP_TYP_S5, 0x0a,
		X86_SLP_TYP_S5, 0x00, 0x00
	};
	static const uint8_t hid_pci[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	/* _PRT entries: slot 1 INTA -> GSI 17, slot 31 INTD -> GSI 16 + (34 % 8) = 18. */
	static const uint8_t prt_1a[] = {
		0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x0a, 17
	};
	static const uint8_t prt_31d[] = { 0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x1f,
					   0x00, 0x0a, 0x03, 0x00, 0x0a, 18 };
	/* 32-bit window: DWordMemory 0xc0000000..0xfeafffff (the ECAM window follows). */
	static const uint8_t win32[] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0,
					 0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xaf, 0xfe };
	uint8_t *p;
	int n;

	assert_int_equal(d[8], 2);
	/* Contents: the _S5_ package exactly as the kernel parses it, PCI0 and friends. */
	assert_non_null(memmem_or_null(d, len, s5, sizeof(s5)));
	assert_non_null(memmem_or_null(d, len, "PCI0", 4));
	assert_non_null(memmem_or_null(d, len, "_PRT", 4));
	assert_non_null(memmem_or_null(d, len, hid_pci, sizeof(hid_pci)));
	assert_non_null(memmem_or_null(d, len, prt_1a, sizeof(prt_1a)));
	assert_non_null(memmem_or_null(d, len, prt_31d, sizeof(prt_31d)));
	assert_non_null(memmem_or_null(d, len, win32, sizeof(win32)));
	/* _PRT package holds 31 slots x 4 pins: "_PRT" 0x12 <pkglen> 124. */
	p = memmem_or_null(d, len, "_PRT", 4);
	assert_int_equal(p[4], 0x12);
	pkglen(p + 5, &n);
	assert_int_equal(p[5 + n], 124);
	/* COM1, RTC and i8042 by EISA id. */
	uint32_t ids[] = { aml_eisaid_value("PNP0501"), aml_eisaid_value("PNP0B00"),
			   aml_eisaid_value("PNP0303") };
	for (int i = 0; i < 3; i++)
		assert_non_null(memmem_or_null(d, len, &ids[i], 4));

	/* Length consistency: after the header comes the _S5_ Name, then Scope(\_SB_) whose PkgLength
	 * must end exactly at the end of the table. */
	p = d + 36 + sizeof(s5);
	assert_int_equal(p[0], 0x10);
	assert_int_equal(1 + pkglen(p + 1, &n) + 36 + sizeof(s5), len);
	assert_int_equal(p[1 + n], 0x5c);
	assert_memory_equal(p + 2 + n, "_SB_", 4);
	/* Device(PCI0) inside: ExtOp 0x82, its PkgLength stays within the scope. */
	p += 6 + n;
	assert_int_equal(p[0], 0x5b);
	assert_int_equal(p[1], 0x82);
	size_t dev = pkglen(p + 2, &n);
	assert_memory_equal(p + 2 + n, "PCI0", 4);
	assert_true(p + 2 + dev <= d + len);
	env_free(e);
}

/* PCI0's _CRS, decoded as Linux's resource parser does: the memory windows it hands to BARs
 * must not overlap the ECAM window (Linux would assign a BAR over config space), the bus range
 * must be the MCFG's (bus 0), and the ports must leave out 0xcf8..0xcff. */
static void test_dsdt_windows_clear_of_ecam(void **state)
{
	struct env *e = env_new(2);
	uint8_t *f = find_in_xsdt(e, "FACP");
	uint8_t *d = table(e, get_le64(f + 140), "DSDT"), *end = d + get_le32(d + 4);
	uint8_t *m = find_in_xsdt(e, "MCFG");
	uint64_t ecam = get_le64(m + 44), ecam_end = ecam + ((uint64_t)(m[55] - m[54] + 1) << 20);
	uint8_t *p = memmem_or_null(d, get_le32(d + 4), "PCI0", 4);
	unsigned mem = 0, bus = 0, io = 0;
	int n;

	assert_non_null(p);
	p = memmem_or_null(p, (size_t)(end - p), "_CRS", 4);
	assert_non_null(p);
	assert_int_equal(p[4], 0x11); /* Buffer */
	pkglen(p + 5, &n);
	p += 5 + n;
	/* The buffer's size: ByteConst or WordConst. */
	assert_true(p[0] == 0x0a || p[0] == 0x0b);
	p += p[0] == 0x0a ? 2 : 3;
	while (p < end && p[0] != 0x79) {
		uint64_t min, max;
		size_t len;

		/* Only large address-space descriptors (Word 0x88, DWord 0x87, QWord 0x8a) here. */
		assert_true(p[0] == 0x88 || p[0] == 0x87 || p[0] == 0x8a);
		len = 3 + get_le16(p + 1);
		if (p[0] == 0x88) {
			min = get_le16(p + 8);
			max = get_le16(p + 10);
		} else if (p[0] == 0x87) {
			min = get_le32(p + 10);
			max = get_le32(p + 14);
		} else {
			min = get_le64(p + 14);
			max = get_le64(p + 22);
		}
		assert_true(min <= max);
		switch (p[3]) {
		case 0: /* memory */
			if (min < ecam_end && max >= ecam)
				fail_msg("PCI0 memory window 0x%llx..0x%llx overlaps ECAM 0x%llx..0x%llx",
					 (unsigned long long)min, (unsigned long long)max,
					 (unsigned long long)ecam, (unsigned long long)ecam_end - 1);
			mem++;
			break;
		case 1: /* I/O */
			assert_true(max < X86_PCI_CONFIG_ADDR || min > X86_PCI_CONFIG_DATA + 3);
			io++;
			break;
		case 2: /* bus numbers: exactly the MCFG's */
			assert_int_equal(min, m[54]);
			assert_int_equal(max, m[55]);
			bus++;
			break;
		default:
			fail_msg("unexpected resource type %u", p[3]);
		}
		p += len;
	}
	assert_true(p < end); /* the end tag was found */
	assert_int_equal(mem, 2);
	assert_int_equal(io, 2);
	assert_int_equal(bus, 1);
	/* The BAR window itself ends where the ECAM window starts, below the IOAPIC. */
	assert_int_equal(X86_PCI_MMIO_END, ecam);
	assert_true(ecam_end <= X86_IOAPIC_ADDR);
	env_free(e);
}

static void test_aml_encoder(void **state)
{
	uint8_t buf[512];
	struct aml a;

	/* Integers take the smallest encoding. */
	aml_init(&a, buf, sizeof(buf));
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 0x80);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	aml_integer(&a, 0x123456789aULL);
	static const uint8_t ints[] = { 0x00, 0x01, 0x0a, 0x80, 0x0b, 0x34, 0x12, 0x0c, 0x78, 0x56, 0x34,
					0x12, 0x0e, 0x9a, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00 };
	assert_true(aml_ok(&a));
	assert_int_equal(a.len, sizeof(ints));
	assert_memory_equal(buf, ints, sizeof(ints));

	/* Names: root, dual segment, padding. */
	aml_init(&a, buf, sizeof(buf));
	aml_name(&a, "\\_SB.PCI0");
	static const uint8_t dual[] = { 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0' };
	assert_int_equal(a.len, sizeof(dual));
	assert_memory_equal(buf, dual, sizeof(dual));
	aml_name(&a, "bad!");
	assert_false(aml_ok(&a));

	/* A package of 100 bytes needs a 2-byte PkgLength: 0x40 | (len & 0xf), len >> 4. */
	aml_init(&a, buf, sizeof(buf));
	aml_package_begin(&a, 100);
	for (int i = 0; i < 100; i++)
		aml_integer(&a, 0);
	aml_end(&a);
	assert_true(aml_ok(&a));
	/* body = count byte + 100 zeros = 101, plus 2 PkgLength bytes = 103 = 0x67 */
	assert_int_equal(a.len, 1 + 2 + 101);
	assert_int_equal(buf[0], 0x12);
	assert_int_equal(buf[1], 0x40 | 0x7);
	assert_int_equal(buf[2], 0x6);
	assert_int_equal(buf[3], 100);

	/* Unbalanced nesting and overflow are reported. */
	aml_init(&a, buf, sizeof(buf));
	aml_scope_begin(&a, "\\");
	assert_false(aml_ok(&a));
	aml_init(&a, buf, 3);
	aml_integer(&a, 0x12345678);
	assert_false(aml_ok(&a));

	assert_int_equal(aml_eisaid_value("PNP0A03"), 0x030ad041);
}

static void test_failures(void **state)
{
	struct guest_mem mem;
	struct mem_region small = { .gpa = 0, .size = 512 * 1024 };
	uint8_t *buf = calloc(1, RAM_SIZE);
	uint64_t rsdp = 0x1234;

	guest_mem_init_static(&mem, buf, &small, 1);
	assert_int_equal(x86_acpi_build(&mem, 1, &rsdp), -1); /* no RAM at 0xe0000 */
	assert_int_equal(rsdp, 0x1234);
	small.size = RAM_SIZE;
	guest_mem_init_static(&mem, buf, &small, 1);
	assert_int_equal(x86_acpi_build(&mem, 0, &rsdp), -1);
	assert_int_equal(x86_acpi_build(&mem, X86_ACPI_MAX_CPUS + 1, &rsdp), -1);
	assert_int_equal(x86_acpi_build(&mem, X86_ACPI_MAX_CPUS, &rsdp), 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp_xsdt_checksums),
		cmocka_unit_test(test_rsdp_found_by_scan),
		cmocka_unit_test(test_fadt_fields),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_mcfg),
		cmocka_unit_test(test_dsdt_contents),
		cmocka_unit_test(test_dsdt_windows_clear_of_ecam),
		cmocka_unit_test(test_aml_encoder),
		cmocka_unit_test(test_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
