/* Unit tests for arch/x86/boot.c: bzImage and PVH loading into fake guest RAM, e820, page tables,
 * GDT, entry registers, and rejection of malformed or oversized input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "core/memory.h"
#include "fakes.h"

#define MiB (1ULL << 20)

/* Fake guest RAM: one low region from 0, optionally one above 4 GiB. */
static void ram_init(struct fake_ram *r, uint64_t low, uint64_t high)
{
	struct mem_region layout[2] = { { .gpa = 0, .size = low }, { .gpa = X86_4G, .size = high } };

	fake_ram_init(r, layout, high ? 2 : 1);
}

static uint8_t *gp(struct fake_ram *r, uint64_t gpa)
{
	return fake_host(&r->mem, gpa, 1);
}

/* Capture stderr so error tests can check the one-line message. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stderr = dup(2);
	dup2(fileno(capture_file), 2);
}

static const char *capture_end(void)
{
	static char text[4096];
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(capture_file);
	n = fread(text, 1, sizeof(text) - 1, capture_file);
	text[n] = '\0';
	fclose(capture_file);
	return text;
}

/* ---- crafted bzImage ---- */
struct bz_opts {
	uint16_t version;
	uint16_t xloadflags;
	uint8_t loadflags;
	uint8_t setup_sects;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	uint32_t init_size;
	uint64_t pref_address;
	size_t pm_size;
};

static struct bz_opts bz_defaults(void)
{
	return (struct bz_opts){
		.version = 0x020f,
		.xloadflags = 0x3,
		.loadflags = 0x01,
		.setup_sects = 4,
		.cmdline_size = 2047,
		.initrd_addr_max = 0x7fffffff,
		.init_size = 4 * MiB,
		.pref_address = 0x1000000,
		.pm_size = 0x10000,
	};
}

static uint8_t *make_bzimage(const struct bz_opts *o, size_t *size)
{
	size_t setup = ((size_t)(o->setup_sects ? o->setup_sects : 4) + 1) * 512;
	uint8_t *k = calloc(1, setup + o->pm_size);

	assert_non_null(k);
	k[0x1f1] = o->setup_sects;
	put_le16(k + 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(k + 0x202, "HdrS", 4);
	put_le16(k + 0x206, o->version);
	k[0x211] = o->loadflags;
	put_le32(k + 0x214, 0x100000);
	put_le32(k + 0x22c, o->initrd_addr_max);
	put_le32(k + 0x230, 0x200000);
	k[0x234] = 1;
	put_le16(k + 0x236, o->xloadflags);
	put_le32(k + 0x238, o->cmdline_size);
	put_le64(k + 0x258, o->pref_address);
	put_le32(k + 0x260, o->init_size);
	for (size_t i = 0; i < o->pm_size; i++)
		k[setup + i] = (uint8_t)(i * 7 + 3);
	*size = setup + o->pm_size;
	return k;
}

static int load(struct fake_ram *r, const uint8_t *k, size_t ks, const uint8_t *initrd, size_t is,
		const char *cmdline, struct x86_boot_entry *e)
{
	return x86_load_kernel(&r->mem, k, ks, "vmlinuz", initrd, is, "initrd.img", cmdline, 0xe0000, e);
}

static void test_bzimage_zero_page(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	struct x86_boot_entry e;
	size_t ks, is = 3 * MiB + 123;
	uint8_t *k = make_bzimage(&o, &ks), *initrd = malloc(is);
	const char *cmd = "console=ttyS0 root=/dev/vda rw";
	uint8_t *zp;
	uint32_t img, sz;

	for (size_t i = 0; i < is; i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	ram_init(&r, 256 * MiB, 0);
	assert_int_equal(load(&r, k, ks, initrd, is, cmd, &e), 0);
	zp = gp(&r, X86_ZERO_PAGE_ADDR);

	/* Entry. */
	assert_false(e.pvh);
	assert_int_equal(e.rip, X86_KERNEL_ADDR + 0x200);
	assert_int_equal(e.rsi, X86_ZERO_PAGE_ADDR);
	/* Setup header copied, loader fields set. */
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(get_le16(zp + 0x206), 0x020f);
	assert_int_equal(get_le32(zp + 0x260), 4 * MiB);
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(zp[0x211], 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
	assert_int_equal(get_le16(zp + 0x224), 0xde00);
	assert_int_equal(get_le32(zp + 0x228), X86_CMDLINE_ADDR);
	assert_string_equal((char *)gp(&r, X86_CMDLINE_ADDR), cmd);
	assert_int_equal(get_le64(zp + 0x070), 0xe0000);
	/* Nothing beyond the header copied into the e820/EDD area; fields outside stay zero. */
	assert_int_equal(get_le32(zp + 0x0c0), 0);
	assert_int_equal(zp[0x1ef], 0);
	/* Protected-mode part at 1 MiB. */
	assert_memory_equal(gp(&r, X86_KERNEL_ADDR), k + 5 * 512, o.pm_size);

	/* Initrd: page aligned, as high as possible below 256 MiB, above the kernel, intact. */
	img = get_le32(zp + 0x218);
	sz = get_le32(zp + 0x21c);
	assert_int_equal(sz, is);
	assert_int_equal(img % 4096, 0);
	assert_true(img + sz <= 256 * MiB);
	assert_true(img + sz > 256 * MiB - 4096);
	assert_true(img >= 0x1000000 + 4 * MiB);
	assert_memory_equal(gp(&r, img), initrd, is);

	/* e820 in the zero page. */
	assert_int_equal(zp[0x1e8], 5);
	struct x86_e820_entry ent[5];
	memcpy(ent, zp + 0x2d0, sizeof(ent));
	assert_int_equal(ent[0].addr, 0);
	assert_int_equal(ent[0].size, X86_EBDA_START);
	assert_int_equal(ent[0].type, X86_E820_RAM);
	assert_int_equal(ent[1].addr, X86_EBDA_START);
	assert_int_equal(ent[1].size, X86_KERNEL_ADDR - X86_EBDA_START);
	assert_int_equal(ent[1].type, X86_E820_RESERVED);
	assert_int_equal(ent[2].addr, X86_KERNEL_ADDR);
	assert_int_equal(ent[2].size, 256 * MiB - X86_KERNEL_ADDR);
	assert_int_equal(ent[2].type, X86_E820_RAM);
	assert_int_equal(ent[3].addr, X86_PCI_ECAM_BASE); /* the MCFG's window */
	assert_int_equal(ent[3].size, X86_PCI_ECAM_SIZE);
	assert_int_equal(ent[3].type, X86_E820_RESERVED);
	assert_int_equal(ent[4].addr, X86_IDENTITY_MAP_ADDR);
	assert_int_equal(ent[4].size, 0x4000);
	assert_int_equal(ent[4].type, X86_E820_RESERVED);
	assert_int_equal(get_le32(zp + 0x2d0 + 5 * 20), 0); /* nothing after the 5th entry */

	free(initrd);
	free(k);
	fake_ram_free(&r);
}

static void test_bzimage_initrd_addr_max(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	struct x86_boot_entry e;
	size_t ks, is = 1 * MiB + 1;
	uint8_t *k, *initrd = calloc(1, is);
	uint32_t img;

	o.initrd_addr_max = 0x3ffffff; /* 64 MiB - 1 */
	k = make_bzimage(&o, &ks);
	ram_init(&r, 256 * MiB, 0);
	assert_int_equal(load(&r, k, ks, initrd, is, "", &e), 0);
	img = get_le32(gp(&r, X86_ZERO_PAGE_ADDR) + 0x218);
	assert_int_equal(img % 4096, 0);
	assert_true((uint64_t)img + is - 1 <= o.initrd_addr_max);
	assert_true((uint64_t)img + is > 64 * MiB - 4096);
	/* Empty command line still gets a NUL at cmd_line_ptr. */
	assert_int_equal(*gp(&r, X86_CMDLINE_ADDR), 0);
	free(initrd);
	free(k);
	fake_ram_free(&r);
}

static void test_bzimage_no_initrd(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	struct x86_boot_entry e;
	size_t ks;
	uint8_t *k = make_bzimage(&o, &ks);

	ram_init(&r, 64 * MiB, 0);
	assert_int_equal(x86_load_kernel(&r.mem, k, ks, "vmlinuz", NULL, 0, NULL, NULL, 0xe0000, &e), 0);
	assert_int_equal(get_le32(gp(&r, X86_ZERO_PAGE_ADDR) + 0x218), 0);
	assert_int_equal(get_le32(gp(&r, X86_ZERO_PAGE_ADDR) + 0x21c), 0);
	free(k);
	fake_ram_free(&r);
}

static void test_e820_high_memory(void **state)
{
	struct fake_ram r;
	struct x86_e820_entry e[8];
	int n;

	ram_init(&r, 64 * MiB, 16 * MiB);
	n = x86_build_e820(&r.mem, e, 8);
	assert_int_equal(n, 6);
	for (int i = 1; i < n; i++)
		assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
	assert_int_equal(e[2].addr, X86_KERNEL_ADDR);
	assert_int_equal(e[2].size, 63 * MiB);
	assert_int_equal(e[3].addr, X86_PCI_ECAM_BASE);
	assert_int_equal(e[4].addr, X86_IDENTITY_MAP_ADDR);
	assert_int_equal(e[5].addr, X86_4G);
	assert_int_equal(e[5].size, 16 * MiB);
	assert_int_equal(e[5].type, X86_E820_RAM);
	/* Too small an output array is refused, not overrun. */
	assert_int_equal(x86_build_e820(&r.mem, e, 5), -1);
	fake_ram_free(&r);
}

/* The ECAM window of the MCFG (0xfeb00000, 1 MiB) is one reserved e820 entry, never RAM, for
 * every RAM size (Linux checks it is reserved before it uses MMCONFIG), and no entry overlaps
 * another. */
static void test_e820_reserves_ecam(void **state)
{
	static const uint64_t lows[] = { 16 * MiB, 256 * MiB, X86_PCI_HOLE_START };
	static const uint64_t highs[] = { 0, 0, 1024 * MiB };

	for (size_t c = 0; c < sizeof(lows) / sizeof(lows[0]); c++) {
		struct fake_ram r;
		struct x86_e820_entry e[16];
		int n, covering = 0;

		struct mem_region layout[2] = { { .gpa = 0, .size = lows[c] },
						{ .gpa = X86_4G, .size = highs[c] } };

		fake_ram_map(&r, layout, highs[c] ? 2 : 1); /* MAP_NORESERVE: 4 GiB cost nothing */
		n = x86_build_e820(&r.mem, e, 16);
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			uint64_t start = e[i].addr, end = e[i].addr + e[i].size;

			if (i > 0)
				assert_true(e[i - 1].addr + e[i - 1].size <= start);
			if (start < X86_PCI_ECAM_BASE + X86_PCI_ECAM_SIZE && end > X86_PCI_ECAM_BASE) {
				assert_int_equal(e[i].type, X86_E820_RESERVED);
				assert_true(start <= X86_PCI_ECAM_BASE);
				assert_true(end >= X86_PCI_ECAM_BASE + X86_PCI_ECAM_SIZE);
				covering++;
			}
		}
		assert_int_equal(covering, 1);
		fake_ram_free(&r);
	}
	assert_int_equal(X86_PCI_ECAM_BASE, 0xfeb00000ULL);
	assert_int_equal(X86_PCI_ECAM_SIZE, 1 * MiB);
}

static void test_page_tables_and_gdt(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	struct x86_boot_entry e;
	size_t ks;
	uint8_t *k = make_bzimage(&o, &ks), *pd;

	ram_init(&r, 64 * MiB, 0);
	memset(r.buf + X86_PML4_ADDR, 0xcc, 0x6000); /* stale junk must be cleared */
	assert_int_equal(load(&r, k, ks, NULL, 0, "", &e), 0);
	assert_int_equal(get_le64(gp(&r, X86_PML4_ADDR)), X86_PDPT_ADDR | 3);
	assert_int_equal(get_le64(gp(&r, X86_PML4_ADDR) + 8), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(get_le64(gp(&r, X86_PDPT_ADDR) + 8 * i), (X86_PD_ADDR + 0x1000 * i) | 3);
	assert_int_equal(get_le64(gp(&r, X86_PDPT_ADDR) + 8 * 4), 0);
	pd = gp(&r, X86_PD_ADDR);
	assert_int_equal(get_le64(pd), 0x83);
	assert_int_equal(get_le64(pd + 8), 0x200000 | 0x83);
	assert_int_equal(get_le64(pd + 8 * 2047), 0xffe00000ULL | 0x83);

	uint8_t *gdt = gp(&r, X86_GDT_ADDR);
	assert_int_equal(get_le64(gdt), 0);
	assert_int_equal(get_le64(gdt + 8), 0);
	assert_int_equal(get_le64(gdt + X86_BOOT_CS), 0x00af9b000000ffffULL);
	assert_int_equal(get_le64(gdt + X86_BOOT_DS), 0x00cf93000000ffffULL);
	assert_int_equal(get_le64(gdt + X86_BOOT_TSS), 0x00008b0000000067ULL);
	free(k);
	fake_ram_free(&r);
}

static void test_regs_64bit(void **state)
{
	struct x86_boot_entry e = { .pvh = false, .rip = 0x100200, .rsi = X86_ZERO_PAGE_ADDR };
	struct kvm_regs regs;
	struct kvm_sregs s;

	memset(&regs, 0xa5, sizeof(regs));
	memset(&s, 0, sizeof(s));
	s.cr0 = 0x60000010; /* reset value: CD | NW | ET */
	x86_boot_regs(&e, &regs, &s);
	assert_int_equal(regs.rip, 0x100200);
	assert_int_equal(regs.rsi, X86_ZERO_PAGE_ADDR);
	assert_int_equal(regs.rsp, X86_BOOT_STACK_TOP);
	assert_int_equal(regs.rflags, 2);
	assert_int_equal(regs.rax, 0);
	assert_int_equal(s.cr0, 0x80000011); /* PG | ET | PE, caches on */
	assert_int_equal(s.cr3, X86_PML4_ADDR);
	assert_true(s.cr4 & (1 << 5));
	assert_int_equal(s.efer & 0x500, 0x500);
	assert_int_equal(s.cs.selector, 0x10);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.cs.db, 0);
	assert_int_equal(s.cs.type, 0xb);
	assert_int_equal(s.cs.s, 1);
	assert_int_equal(s.cs.present, 1);
	assert_int_equal(s.ds.selector, 0x18);
	assert_int_equal(s.ss.selector, 0x18);
	assert_int_equal(s.es.selector, 0x18);
	assert_int_equal(s.ds.type, 3);
	assert_int_equal(s.ds.db, 1);
	assert_int_equal(s.ds.limit, 0xffffffff);
	assert_int_equal(s.tr.selector, 0x20);
	assert_int_equal(s.tr.type, 0xb);
	assert_int_equal(s.gdt.base, X86_GDT_ADDR);
	assert_int_equal(s.gdt.limit, 47);
}

static void test_regs_pvh(void **state)
{
	struct x86_boot_entry e = { .pvh = true, .rip = 0x1000abc, .rbx = X86_PVH_INFO_ADDR };
	struct kvm_regs regs;
	struct kvm_sregs s;

	memset(&s, 0, sizeof(s));
	s.cr0 = 0xe0000011; /* stale long-mode state (e.g. after a reset) must be undone */
	s.cr3 = 0x9000;
	s.efer = 0x500;
	s.cr4 = 0x20;
	x86_boot_regs(&e, &regs, &s);
	assert_int_equal(regs.rip, 0x1000abc);
	assert_int_equal(regs.rbx, X86_PVH_INFO_ADDR);
	assert_int_equal(regs.rflags, 2);
	assert_int_equal(s.cr0, 0x11); /* PE | ET, paging off */
	assert_int_equal(s.cr4, 0);
	assert_int_equal(s.cr3, 0);
	assert_int_equal(s.efer, 0);
	assert_int_equal(s.cs.selector, 0x10);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.cs.db, 1);
	assert_int_equal(s.cs.g, 1);
	assert_int_equal(s.cs.limit, 0xffffffff);
	assert_int_equal(s.ss.db, 1);
	assert_int_equal(s.tr.type, 0xb);
}

/* ---- crafted ELF vmlinux ---- */
#define ELF_LOAD_PADDR 0x1000000ULL
#define ELF_ENTRY      (ELF_LOAD_PADDR + 0x40)

struct elf_img {
	uint8_t *buf;
	size_t size;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph; /* [0] PT_LOAD, [1] PT_NOTE */
};

/* Layout: ehdr | 2 phdrs | notes at 0x100 | segment data at 0x1000 (0x1000 bytes, memsz 0x3000). */
static void make_elf(struct elf_img *img, int entry_size, bool with_note, bool gnu_note_first)
{
	uint8_t *n;

	img->size = 0x2000;
	img->buf = calloc(1, img->size);
	assert_non_null(img->buf);
	img->eh = (Elf64_Ehdr *)img->buf;
	img->ph = (Elf64_Phdr *)(img->buf + sizeof(Elf64_Ehdr));
	memcpy(img->eh->e_ident, ELFMAG, SELFMAG);
	img->eh->e_ident[EI_CLASS] = ELFCLASS64;
	img->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh->e_ident[EI_VERSION] = EV_CURRENT;
	img->eh->e_type = ET_EXEC;
	img->eh->e_machine = EM_X86_64;
	img->eh->e_version = EV_CURRENT;
	img->eh->e_entry = 0xffffffff81000000ULL;
	img->eh->e_phoff = sizeof(Elf64_Ehdr);
	img->eh->e_ehsize = sizeof(Elf64_Ehdr);
	img->eh->e_phentsize = sizeof(Elf64_Phdr);
	img->eh->e_phnum = 2;

	img->ph[0].p_type = PT_LOAD;
	img->ph[0].p_offset = 0x1000;
	img->ph[0].p_paddr = ELF_LOAD_PADDR;
	img->ph[0].p_vaddr = 0xffffffff81000000ULL;
	img->ph[0].p_filesz = 0x1000;
	img->ph[0].p_memsz = 0x3000;
	for (size_t i = 0; i < 0x1000; i++)
		img->buf[0x1000 + i] = (uint8_t)(i * 13 + 1);

	n = img->buf + 0x100;
	if (gnu_note_first) {
		put_le32(n, 4);
		put_le32(n + 4, 20);
		put_le32(n + 8, 3); /* NT_GNU_BUILD_ID, 20-byte desc */
		memcpy(n + 12, "GNU", 4);
		memset(n + 16, 0xab, 20);
		n += 36;
	}
	put_le32(n, 4);
	put_le32(n + 4, (uint32_t)entry_size);
	put_le32(n + 8, with_note ? 18 : 17);
	memcpy(n + 12, "Xen", 4);
	if (entry_size == 8)
		put_le64(n + 16, ELF_ENTRY);
	else
		put_le32(n + 16, (uint32_t)ELF_ENTRY);
	n += 16 + (size_t)entry_size;

	img->ph[1].p_type = PT_NOTE;
	img->ph[1].p_offset = 0x100;
	img->ph[1].p_filesz = (uint64_t)(n - (img->buf + 0x100));
}

static void test_pvh_load(void **state)
{
	struct fake_ram r;
	struct elf_img img;
	struct x86_boot_entry e;
	struct x86_e820_entry ref[8];
	size_t is = 2 * MiB;
	uint8_t *initrd = malloc(is), *si, *mod;
	int n;

	memset(initrd, 0x77, is);
	make_elf(&img, 8, true, false);
	ram_init(&r, 128 * MiB, 0);
	memset(r.buf, 0xcc, 128 * MiB); /* bss must be zeroed by the loader */
	assert_int_equal(x86_load_kernel(&r.mem, img.buf, img.size, "vmlinux", initrd, is, "initrd.img",
					 "console=hvc0", 0xe0000, &e),
			 0);
	assert_true(e.pvh);
	assert_int_equal(e.rip, ELF_ENTRY);
	assert_int_equal(e.rbx, X86_PVH_INFO_ADDR);
	assert_memory_equal(gp(&r, ELF_LOAD_PADDR), img.buf + 0x1000, 0x1000);
	for (uint64_t a = ELF_LOAD_PADDR + 0x1000; a < ELF_LOAD_PADDR + 0x3000; a++)
		assert_int_equal(*gp(&r, a), 0);
	assert_int_equal(*gp(&r, ELF_LOAD_PADDR + 0x3000), 0xcc); /* nothing past memsz */

	si = gp(&r, X86_PVH_INFO_ADDR);
	assert_int_equal(get_le32(si), 0x336ec578);
	assert_int_equal(get_le32(si + 4), 1);
	assert_int_equal(get_le32(si + 8), 0);  /* flags */
	assert_int_equal(get_le32(si + 12), 1); /* nr_modules */
	assert_int_equal(get_le64(si + 24), X86_CMDLINE_ADDR);
	assert_string_equal((char *)gp(&r, X86_CMDLINE_ADDR), "console=hvc0");
	assert_int_equal(get_le64(si + 32), 0xe0000);
	mod = gp(&r, get_le64(si + 16));
	assert_int_equal(get_le64(mod + 8), is);
	assert_int_equal(get_le64(mod) % 4096, 0);
	assert_true(get_le64(mod) + is <= 128 * MiB && get_le64(mod) + is > 128 * MiB - 4096);
	assert_memory_equal(gp(&r, get_le64(mod)), initrd, is);

	n = x86_build_e820(&r.mem, ref, 8);
	assert_int_equal(get_le32(si + 48), n);
	uint8_t *mm = gp(&r, get_le64(si + 40));
	for (int i = 0; i < n; i++) {
		assert_int_equal(get_le64(mm + 24 * i), ref[i].addr);
		assert_int_equal(get_le64(mm + 24 * i + 8), ref[i].size);
		assert_int_equal(get_le32(mm + 24 * i + 16), ref[i].type);
	}
	assert_int_equal(get_le32(mm + 16), 1);      /* first entry: RAM */
	assert_int_equal(get_le32(mm + 24 + 16), 2); /* then the EBDA..1 MiB reservation */
	/* GDT code segment is 32-bit for PVH. */
	assert_int_equal(get_le64(gp(&r, X86_GDT_ADDR) + X86_BOOT_CS), 0x00cf9b000000ffffULL);
	free(initrd);
	free(img.buf);
	fake_ram_free(&r);
}

static void test_pvh_note_4byte_after_other_note(void **state)
{
	struct fake_ram r;
	struct elf_img img;
	struct x86_boot_entry e;

	make_elf(&img, 4, true, true);
	ram_init(&r, 64 * MiB, 0);
	assert_int_equal(x86_load_kernel(&r.mem, img.buf, img.size, "vmlinux", NULL, 0, NULL, "", 0, &e), 0);
	assert_int_equal(e.rip, ELF_ENTRY);
	assert_int_equal(get_le32(gp(&r, X86_PVH_INFO_ADDR) + 12), 0); /* no modules */
	free(img.buf);
	fake_ram_free(&r);
}

/* Expect failure with a message containing each of the given fragments. */
static void expect_fail(struct fake_ram *r, const uint8_t *k, size_t ks, const uint8_t *initrd, size_t is,
			const char *cmdline, const char *frag1, const char *frag2)
{
	struct x86_boot_entry e;
	const char *msg;
	int ret;

	capture_begin();
	ret = x86_load_kernel(&r->mem, k, ks, "vmlinuz", initrd, is, "initrd.img", cmdline, 0xe0000, &e);
	msg = capture_end();
	if (ret != -1 || !strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
		print_error("ret %d, message: %s", ret, msg);
	assert_int_equal(ret, -1);
	assert_non_null(strstr(msg, frag1));
	if (frag2)
		assert_non_null(strstr(msg, frag2));
	assert_non_null(strchr(msg, ';'));                          /* problem; fix */
	assert_ptr_equal(strchr(msg, '\n'), msg + strlen(msg) - 1); /* exactly one line */
}

static void test_err_not_a_kernel(void **state)
{
	struct fake_ram r;
	uint8_t junk[4096];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 31);
	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, junk, sizeof(junk), NULL, 0, "", "kernel vmlinuz: not a bzImage",
		    "give a Linux "
		    "kernel");
	expect_fail(&r, junk, 3, NULL, 0, "", "not a bzImage", NULL);
	fake_ram_free(&r);
}

static void test_err_truncated(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	size_t ks;
	uint8_t *k = make_bzimage(&o, &ks);

	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, k, 0x240, NULL, 0, "", "truncated", "vmlinuz");
	/* The header is complete but the protected-mode part is missing. */
	expect_fail(&r, k, 5 * 512, NULL, 0, "", "truncated", NULL);
	/* A jump byte claiming a header shorter than protocol 2.12 guarantees. */
	k[0x201] = 0x20;
	expect_fail(&r, k, ks, NULL, 0, "", "setup header", NULL);
	/* The zero page must not have been written by any failed attempt. */
	assert_int_equal(get_le32(gp(&r, X86_ZERO_PAGE_ADDR) + 0x202), 0);
	free(k);
	fake_ram_free(&r);
}

static void test_err_old_protocol(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	size_t ks;
	uint8_t *k;

	o.version = 0x020a;
	k = make_bzimage(&o, &ks);
	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, k, ks, NULL, 0, "", "2.10 is too old", "newer kernel");
	free(k);
	fake_ram_free(&r);
}

static void test_err_not_64bit(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	size_t ks;
	uint8_t *k;

	o.xloadflags = 0x2; /* can-be-loaded-above-4G but no 64-bit entry */
	k = make_bzimage(&o, &ks);
	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, k, ks, NULL, 0, "", "64-bit", "x86_64");
	free(k);
	o = bz_defaults();
	o.loadflags = 0; /* zImage */
	k = make_bzimage(&o, &ks);
	expect_fail(&r, k, ks, NULL, 0, "", "zImage", NULL);
	free(k);
	fake_ram_free(&r);
}

static void test_err_kernel_too_big(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	size_t ks;
	uint8_t *k;

	o.init_size = 60 * MiB; /* at pref_address 16 MiB: needs 76 MiB */
	k = make_bzimage(&o, &ks);
	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, k, ks, NULL, 0, "", "vmlinuz", "give more --memory");
	free(k);
	o = bz_defaults();
	o.pref_address = ~0ULL; /* hostile: must not wrap */
	k = make_bzimage(&o, &ks);
	expect_fail(&r, k, ks, NULL, 0, "", "vmlinuz", "give more --memory");
	free(k);
	fake_ram_free(&r);
}

static void test_err_cmdline_too_long(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	struct x86_boot_entry e;
	size_t ks;
	uint8_t *k;
	char cmd[300], *huge;

	o.cmdline_size = 255;
	k = make_bzimage(&o, &ks);
	ram_init(&r, 64 * MiB, 0);
	memset(cmd, 'a', sizeof(cmd));
	cmd[256] = '\0';
	expect_fail(&r, k, ks, NULL, 0, cmd, "command line: 256 bytes", "shorten");
	cmd[255] = '\0'; /* exactly the limit is fine */
	assert_int_equal(load(&r, k, ks, NULL, 0, cmd, &e), 0);
	assert_int_equal(strlen((char *)gp(&r, X86_CMDLINE_ADDR)), 255);
	free(k);

	/* Our own 64 KiB limit applies even when the kernel claims more. */
	o.cmdline_size = 0xffffffff;
	k = make_bzimage(&o, &ks);
	huge = malloc(X86_CMDLINE_MAX + 1);
	memset(huge, 'b', X86_CMDLINE_MAX);
	huge[X86_CMDLINE_MAX] = '\0';
	expect_fail(&r, k, ks, NULL, 0, huge, "command line", "shorten");
	free(huge);
	free(k);
	fake_ram_free(&r);
}

static void test_err_initrd_too_big(void **state)
{
	struct fake_ram r;
	struct bz_opts o = bz_defaults();
	size_t ks, is = 80 * MiB;
	uint8_t *k = make_bzimage(&o, &ks), *initrd = calloc(1, is);

	ram_init(&r, 64 * MiB, 0);
	expect_fail(&r, k, ks, initrd, is, "", "initrd initrd.img: 80 MiB does not fit",
		    "give more "
		    "--memory");
	/* 40 MiB fits in RAM but not between the kernel (ends at 20 MiB) and initrd_addr_max 48 MiB. */
	free(k);
	o.initrd_addr_max = 48 * MiB - 1;
	k = make_bzimage(&o, &ks);
	expect_fail(&r, k, ks, initrd, 40 * MiB, "", "does not fit below 0x2ffffff", NULL);
	free(initrd);
	free(k);
	fake_ram_free(&r);
}

static void test_err_elf_phdrs_beyond_file(void **state)
{
	struct fake_ram r;
	struct elf_img img;

	ram_init(&r, 64 * MiB, 0);
	make_elf(&img, 8, true, false);
	img.eh->e_phoff = img.size - sizeof(Elf64_Phdr); /* second header past the end */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "program headers", NULL);
	img.eh->e_phoff = ~0ULL - 8; /* would wrap */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "program headers", NULL);
	img.eh->e_phoff = sizeof(Elf64_Ehdr);
	img.eh->e_phnum = 0xffff;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "program headers", NULL);
	img.eh->e_phnum = 2;
	img.eh->e_phentsize = 32;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "program headers", NULL);
	img.eh->e_phentsize = sizeof(Elf64_Phdr);
	img.ph[0].p_filesz = img.size; /* segment data past the end */
	img.ph[0].p_memsz = img.size;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "beyond the end of the file", NULL);
	img.ph[0].p_offset = ~0ULL;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "beyond the end of the file", NULL);
	/* Truncated ELF header. */
	expect_fail(&r, img.buf, 40, NULL, 0, "", "truncated ELF header", NULL);
	/* 32-bit ELF. */
	free(img.buf);
	make_elf(&img, 8, true, false);
	img.eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "x86_64", NULL);
	free(img.buf);
	fake_ram_free(&r);
}

static void test_err_elf_segment_outside_ram(void **state)
{
	struct fake_ram r;
	struct elf_img img;

	ram_init(&r, 64 * MiB, 0);
	make_elf(&img, 8, true, false);
	img.ph[0].p_paddr = 512 * MiB;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "outside RAM", "give more --memory");
	img.ph[0].p_paddr = 64 * MiB - 0x2000; /* straddles the end */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "outside RAM", NULL);
	img.ph[0].p_paddr = ~0ULL - 0x100; /* would wrap */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "outside RAM", NULL);
	img.ph[0].p_paddr = 0x7000; /* over the boot structures */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "outside RAM", NULL);
	img.ph[0].p_paddr = ELF_LOAD_PADDR;
	img.ph[0].p_memsz = 0x800; /* filesz > memsz */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "file bytes", NULL);
	/* Nothing was loaded by the failed attempts. */
	assert_int_equal(*gp(&r, ELF_LOAD_PADDR), 0);
	free(img.buf);
	fake_ram_free(&r);

	/* RAM above 4 GiB is RAM, but the 32-bit PVH entry cannot have its kernel there. */
	ram_init(&r, 64 * MiB, 16 * MiB);
	make_elf(&img, 8, true, false);
	img.ph[0].p_paddr = X86_4G;
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "outside RAM", NULL);
	free(img.buf);
	fake_ram_free(&r);
}

static void test_err_elf_no_pvh_note(void **state)
{
	struct fake_ram r;
	struct elf_img img;

	ram_init(&r, 64 * MiB, 0);
	make_elf(&img, 8, false, true); /* notes, but not type 18 */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "no PVH entry note", "CONFIG_PVH");
	free(img.buf);
	make_elf(&img, 8, true, false);
	img.ph[1].p_type = PT_NULL; /* no PT_NOTE at all */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "no PVH entry note", NULL);
	img.ph[1].p_type = PT_NOTE;
	put_le32(img.buf + 0x100, 0xfffffffd); /* namesz runs off the segment */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "no PVH entry note", NULL);
	put_le32(img.buf + 0x100, 4);
	put_le32(img.buf + 0x104, 2); /* entry neither 4 nor 8 bytes */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "no PVH entry note", NULL);
	put_le32(img.buf + 0x104, 8);
	put_le64(img.buf + 0x110, 0x500); /* entry outside the kernel */
	expect_fail(&r, img.buf, img.size, NULL, 0, "", "entry point", NULL);
	free(img.buf);
	fake_ram_free(&r);
}

static void test_err_pvh_initrd_too_big(void **state)
{
	struct fake_ram r;
	struct elf_img img;
	size_t is = 60 * MiB;
	uint8_t *initrd = calloc(1, is);

	ram_init(&r, 64 * MiB, 0);
	make_elf(&img, 8, true, false);
	/* Kernel ends at 16 MiB + 12 KiB; 60 MiB cannot fit above it in 64 MiB. */
	expect_fail(&r, img.buf, img.size, initrd, is, "", "initrd initrd.img: 60 MiB", "give more --memory");
	free(initrd);
	free(img.buf);
	fake_ram_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzimage_zero_page),
		cmocka_unit_test(test_bzimage_initrd_addr_max),
		cmocka_unit_test(test_bzimage_no_initrd),
		cmocka_unit_test(test_e820_high_memory),
		cmocka_unit_test(test_e820_reserves_ecam),
		cmocka_unit_test(test_page_tables_and_gdt),
		cmocka_unit_test(test_regs_64bit),
		cmocka_unit_test(test_regs_pvh),
		cmocka_unit_test(test_pvh_load),
		cmocka_unit_test(test_pvh_note_4byte_after_other_note),
		cmocka_unit_test(test_err_not_a_kernel),
		cmocka_unit_test(test_err_truncated),
		cmocka_unit_test(test_err_old_protocol),
		cmocka_unit_test(test_err_not_64bit),
		cmocka_unit_test(test_err_kernel_too_big),
		cmocka_unit_test(test_err_cmdline_too_long),
		cmocka_unit_test(test_err_initrd_too_big),
		cmocka_unit_test(test_err_elf_phdrs_beyond_file),
		cmocka_unit_test(test_err_elf_segment_outside_ram),
		cmocka_unit_test(test_err_elf_no_pvh_note),
		cmocka_unit_test(test_err_pvh_initrd_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
