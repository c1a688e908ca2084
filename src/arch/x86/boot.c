/* boot.c - Linux kernel loading for x86: bzImage (64-bit boot protocol) and PVH vmlinux.
 *
 * The kernel image, initrd and command line are hostile input: every offset and size read from
 * them is checked against the file size and guest RAM before use, with overflow-safe arithmetic
 * (compare against "limit - offset", never "offset + size"). Field offsets follow Linux's
 * Documentation/arch/x86/boot.rst and zero-page.rst, and Xen's public/arch-x86/hvm/start_info.h. */
#include "boot.h"

#include <elf.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "layout.h"

/* boot_params (zero page) fields outside the setup header. */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES   0x1e8
#define BP_E820_TABLE     0x2d0
/* Setup header fields: the same offsets in the bzImage file and in the zero page. */
#define HDR_START           0x1f1 /* setup_sects */
#define HDR_JUMP_OFF        0x201 /* byte: header ends at 0x202 + this */
#define HDR_MAGIC           0x202 /* "HdrS" */
#define HDR_VERSION         0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS       0x211
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_HEAP_END_PTR    0x224
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260
#define HDR_MIN_END         0x264 /* protocol 2.12 guarantees fields up to init_size */
#define HDR_MAX_END         0x290 /* the zero page's room for the header */

#define BOOT_PROTO_MIN   0x020c /* 2.12: xloadflags, the 64-bit entry */
#define LOADED_HIGH      0x01
#define CAN_USE_HEAP     0x80
#define XLF_KERNEL_64    0x01
#define LOADER_UNDEFINED 0xff
/* The real-mode heap ends below 0xe000 in the setup segment; the field holds that minus 0x200. */
#define HEAP_END_PTR    (0xe000 - 0x200)
#define ENTRY_64_OFFSET 0x200 /* startup_64 relative to the protected-mode load address */

/* hvm_start_info (version 1) and friends. */
#define PVH_MAGIC                0x336ec578
#define PVH_OFF_MAGIC            0
#define PVH_OFF_VERSION          4
#define PVH_OFF_NR_MODULES       12
#define PVH_OFF_MODLIST          16
#define PVH_OFF_CMDLINE          24
#define PVH_OFF_RSDP             32
#define PVH_OFF_MEMMAP           40
#define PVH_OFF_MEMMAP_NR        48
#define PVH_INFO_SIZE            56
#define PVH_MODLIST_ADDR         (X86_PVH_INFO_ADDR + 0x40) /* one 32-byte hvm_modlist_entry */
#define PVH_MEMMAP_ADDR          (X86_PVH_INFO_ADDR + 0x80) /* 24-byte hvm_memmap_table_entry[] */
#define PVH_MEMMAP_MAX           ((0x1000 - 0x80) / 24)
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define MiB(x) (((unsigned long long)(x) + (1ULL << 20) - 1) >> 20)

static uint64_t low_ram_end(const struct guest_mem *mem)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (r->gpa <= X86_KERNEL_ADDR && X86_KERNEL_ADDR - r->gpa < r->size) {
			uint64_t end = r->gpa + r->size;

			return end > X86_4G ? X86_4G : end;
		}
	}
	return 0;
}

static void e820_add(struct x86_e820_entry *e, int *n, uint64_t start, uint64_t end, uint32_t type)
{
	if (end <= start)
		return;
	e[*n].addr = start;
	e[*n].size = end - start;
	e[*n].type = type;
	(*n)++;
}

int x86_build_e820(const struct guest_mem *mem, struct x86_e820_entry *out, int max)
{
	struct x86_e820_entry e[2 * GUEST_MEM_MAX_REGIONS + 3];
	int n = 0;

	for (int i = 0; i < mem->nr_regions; i++) {
		uint64_t start = mem->regions[i].gpa, end = start + mem->regions[i].size;

		if (start < X86_KERNEL_ADDR) {
			/* The EBDA..1 MiB hole (VGA, BIOS, our ACPI tables) is never handed out. */
			e820_add(e, &n, start, end < X86_EBDA_START ? end : X86_EBDA_START, X86_E820_RAM);
			e820_add(e, &n, X86_KERNEL_ADDR, end, X86_E820_RAM);
		} else {
			e820_add(e, &n, start, end, X86_E820_RAM);
		}
	}
	e820_add(e, &n, X86_EBDA_START, X86_KERNEL_ADDR, X86_E820_RESERVED);
	/* The PCI ECAM window (MCFG): Linux uses MMCONFIG only where the firmware reserved it. */
	e820_add(e, &n, X86_PCI_ECAM_BASE, X86_PCI_ECAM_BASE + X86_PCI_ECAM_SIZE, X86_E820_RESERVED);
	/* KVM's identity-map page and the 3 TSS pages (KVM_SET_IDENTITY_MAP_ADDR / KVM_SET_TSS_ADDR). */
	e820_add(e, &n, X86_IDENTITY_MAP_ADDR, X86_TSS_ADDR + 3 * PAGE_SIZE, X86_E820_RESERVED);

	/* Insertion sort: a handful of entries, and the kernel wants them ascending. */
	for (int i = 1; i < n; i++) {
		struct x86_e820_entry t = e[i];
		int j = i;

		for (; j > 0 && e[j - 1].addr > t.addr; j--)
			e[j] = e[j - 1];
		e[j] = t;
	}
	if (n > max)
		return -1;
	memcpy(out, e, sizeof(e[0]) * (size_t)n);
	return n;
}

/* Boot GDT descriptors: flat 4 GiB segments, and a busy 32-bit TSS at base 0 limit 0x67. */
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_CODE32 0x00cf9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL
#define GDT_TSS    0x00008b0000000067ULL

static int write_gdt(const struct guest_mem *mem, bool pvh)
{
	uint64_t gdt[X86_BOOT_GDT_ENTRIES] = { 0 };

	gdt[X86_BOOT_CS / 8] = pvh ? GDT_CODE32 : GDT_CODE64;
	gdt[X86_BOOT_DS / 8] = GDT_DATA;
	gdt[X86_BOOT_TSS / 8] = GDT_TSS; /* the next slot stays 0: upper half of a 64-bit TSS */
	return gpa_write(mem, X86_GDT_ADDR, gdt, sizeof(gdt));
}

/* PML4 -> one PDPT -> four PDs of 2 MiB pages: identity map of 0..4 GiB, enough for the kernel's
 * startup code, which builds its own tables. */
static int write_page_tables(const struct guest_mem *mem)
{
	uint8_t *pml4 = gpa_ptr(mem, X86_PML4_ADDR, PAGE_SIZE);
	uint8_t *pdpt = gpa_ptr(mem, X86_PDPT_ADDR, PAGE_SIZE);
	uint8_t *pd = gpa_ptr(mem, X86_PD_ADDR, 4 * PAGE_SIZE);

	if (!pml4 || !pdpt || !pd)
		return -1;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	memset(pd, 0, 4 * PAGE_SIZE);
	put_le64(pml4, X86_PDPT_ADDR | 0x3); /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		put_le64(pdpt + 8 * i, (X86_PD_ADDR + i * PAGE_SIZE) | 0x3);
	for (uint64_t i = 0; i < 4 * 512; i++)
		put_le64(pd + 8 * i, (i << 21) | 0x83); /* present, writable, 2 MiB page */
	return 0;
}

/* Put the initrd as high as possible: page aligned, ending at or below `hi` (exclusive), starting
 * at or above `lo` (the end of the kernel). */
static int place_initrd(const struct guest_mem *mem, size_t size, uint64_t lo, uint64_t hi, const char *what,
			uint64_t *gpa)
{
	if (size <= hi) {
		uint64_t start = (hi - size) & ~(PAGE_SIZE - 1);

		if (start >= lo && gpa_ptr(mem, start, size)) {
			*gpa = start;
			return 0;
		}
	}
	log_error("initrd %s: %llu MiB does not fit below 0x%llx in %llu MiB of RAM; give more --memory",
		  what, MiB(size), (unsigned long long)(hi - 1), (unsigned long long)(mem->total >> 20));
	return -1;
}

static int check_cmdline(const char *cmdline, uint64_t limit)
{
	size_t len = strlen(cmdline);

	if (len > limit || len + 1 > X86_CMDLINE_MAX) {
		uint64_t max = limit < X86_CMDLINE_MAX - 1 ? limit : X86_CMDLINE_MAX - 1;

		log_error("command line: %zu bytes is longer than the kernel accepts (%llu); shorten it", len,
			  (unsigned long long)max);
		return -1;
	}
	return 0;
}

static int ram_error(const struct guest_mem *mem, const char *thing, uint64_t gpa)
{
	log_error("%s: cannot be written at 0x%llx in %llu MiB of RAM; give more --memory", thing,
		  (unsigned long long)gpa, (unsigned long long)(mem->total >> 20));
	return -1;
}

static int load_bzimage(const struct guest_mem *mem, const uint8_t *k, size_t size, const char *what,
			const uint8_t *initrd, size_t initrd_size, const char *what_initrd,
			const char *cmdline, uint64_t rsdp_gpa, uint64_t low_end, struct x86_boot_entry *out)
{
	uint8_t zp[PAGE_SIZE];
	struct x86_e820_entry e820[X86_E820_MAX];
	uint64_t hdr_end, setup_size, pm_size, init_size, run_start, kernel_end, initrd_gpa = 0, hi;
	uint16_t version;
	int n;

	if (size < HDR_MIN_END) {
		log_error("kernel %s: truncated bzImage setup header (%zu bytes); give a complete kernel "
			  "image",
			  what, size);
		return -1;
	}
	version = get_le16(k + HDR_VERSION);
	if (version < BOOT_PROTO_MIN) {
		log_error("kernel %s: boot protocol %u.%02u is too old (need 2.12, Linux 3.8 or later); "
			  "give a newer kernel",
			  what, version >> 8, version & 0xff);
		return -1;
	}
	hdr_end = 0x202 + (uint64_t)k[HDR_JUMP_OFF];
	if (hdr_end < HDR_MIN_END) {
		log_error("kernel %s: setup header ends at 0x%llx, too short for protocol %u.%02u; "
			  "give an unmodified kernel image",
			  what, (unsigned long long)hdr_end, version >> 8, version & 0xff);
		return -1;
	}
	if (hdr_end > HDR_MAX_END)
		hdr_end = HDR_MAX_END;
	if (hdr_end > size) {
		log_error("kernel %s: truncated bzImage setup header (%zu bytes); give a complete kernel "
			  "image",
			  what, size);
		return -1;
	}
	if (!(k[HDR_LOADFLAGS] & LOADED_HIGH)) {
		log_error("kernel %s: zImage (loads below 1 MiB) is not supported; give a bzImage", what);
		return -1;
	}
	if (!(get_le16(k + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		log_error("kernel %s: bzImage has no 64-bit entry point (XLF_KERNEL_64); give an x86_64 "
			  "kernel",
			  what);
		return -1;
	}
	setup_size = ((uint64_t)(k[HDR_START] ? k[HDR_START] : 4) + 1) * 512;
	if (setup_size >= size) {
		log_error("kernel %s: truncated bzImage (%zu bytes, setup alone is %llu); give a complete "
			  "kernel image",
			  what, size, (unsigned long long)setup_size);
		return -1;
	}
	pm_size = size - setup_size;

	/* A relocatable 64-bit kernel decompresses itself at max(load address, pref_address) and needs
	 * init_size bytes there; the initrd must stay clear of that. */
	init_size = get_le32(k + HDR_INIT_SIZE);
	run_start = get_le64(k + HDR_PREF_ADDRESS);
	if (run_start < X86_KERNEL_ADDR)
		run_start = X86_KERNEL_ADDR;
	if (pm_size > low_end - X86_KERNEL_ADDR || run_start >= low_end || init_size > low_end - run_start) {
		log_error("kernel %s: needs %llu MiB of RAM from 0x%llx but RAM below 4 GiB ends at 0x%llx; "
			  "give more --memory",
			  what, MiB(init_size > pm_size ? init_size : pm_size), (unsigned long long)run_start,
			  (unsigned long long)low_end);
		return -1;
	}
	kernel_end = run_start + init_size;
	if (kernel_end < X86_KERNEL_ADDR + pm_size)
		kernel_end = X86_KERNEL_ADDR + pm_size;

	if (check_cmdline(cmdline, get_le32(k + HDR_CMDLINE_SIZE)))
		return -1;
	if (initrd_size) {
		hi = (uint64_t)get_le32(k + HDR_INITRD_ADDR_MAX) + 1;
		if (hi > low_end)
			hi = low_end;
		if (place_initrd(mem, initrd_size, kernel_end, hi, what_initrd, &initrd_gpa))
			return -1;
	}
	n = x86_build_e820(mem, e820, X86_E820_MAX);
	if (n < 0) {
		log_error("guest RAM: e820 map has too many entries; report a bug");
		return -1;
	}

	if (gpa_write(mem, X86_KERNEL_ADDR, k + setup_size, pm_size))
		return ram_error(mem, what, X86_KERNEL_ADDR);
	if (initrd_size && gpa_write(mem, initrd_gpa, initrd, initrd_size))
		return ram_error(mem, what_initrd, initrd_gpa);
	if (gpa_write(mem, X86_CMDLINE_ADDR, cmdline, strlen(cmdline) + 1))
		return ram_error(mem, "command line", X86_CMDLINE_ADDR);

	memset(zp, 0, sizeof(zp));
	memcpy(zp + HDR_START, k + HDR_START, hdr_end - HDR_START);
	zp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	zp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	put_le16(zp + HDR_HEAP_END_PTR, HEAP_END_PTR);
	put_le32(zp + HDR_CMD_LINE_PTR, (uint32_t)X86_CMDLINE_ADDR);
	put_le32(zp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
	put_le32(zp + HDR_RAMDISK_SIZE, (uint32_t)initrd_size);
	put_le64(zp + BP_ACPI_RSDP_ADDR, rsdp_gpa);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, e820, sizeof(e820[0]) * (size_t)n);
	if (gpa_write(mem, X86_ZERO_PAGE_ADDR, zp, sizeof(zp)))
		return ram_error(mem, "boot_params", X86_ZERO_PAGE_ADDR);

	out->pvh = false;
	out->rip = X86_KERNEL_ADDR + ENTRY_64_OFFSET;
	out->rsi = X86_ZERO_PAGE_ADDR;
	out->rbx = 0;
	return 0;
}

/* Walk the notes in one PT_NOTE segment for Xen's PHYS32_ENTRY. */
static bool find_pvh_note(const uint8_t *p, uint64_t n, uint64_t *entry)
{
	uint64_t off = 0;

	while (n - off >= 12) {
		uint32_t namesz = get_le32(p + off), descsz = get_le32(p + off + 4),
			 type = get_le32(p + off + 8);
		uint64_t name_room = ((uint64_t)namesz + 3) & ~3ULL;
		uint64_t desc_room = ((uint64_t)descsz + 3) & ~3ULL;
		const uint8_t *name, *desc;

		off += 12;
		if (name_room > n - off)
			return false;
		name = p + off;
		off += name_room;
		if (desc_room > n - off)
			return false;
		desc = p + off;
		off += desc_room;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && memcmp(name, "Xen", 4) == 0) {
			if (descsz == 4)
				*entry = get_le32(desc);
			else if (descsz == 8)
				*entry = get_le64(desc);
			else
				return false;
			return true;
		}
	}
	return false;
}

#define ELF_MAX_PHDRS 256

static int load_elf(const struct guest_mem *mem, const uint8_t *k, size_t size, const char *what,
		    const uint8_t *initrd, size_t initrd_size, const char *what_initrd, const char *cmdline,
		    uint64_t rsdp_gpa, uint64_t low_end, struct x86_boot_entry *out)
{
	Elf64_Ehdr eh;
	struct x86_e820_entry e820[PVH_MEMMAP_MAX];
	uint8_t info[PVH_INFO_SIZE] = { 0 };
	uint64_t entry = 0, kernel_end = X86_KERNEL_ADDR, initrd_gpa = 0;
	bool have_entry = false;
	int n;

	if (size < sizeof(eh)) {
		log_error("kernel %s: truncated ELF header (%zu bytes); give a complete vmlinux", what, size);
		return -1;
	}
	memcpy(&eh, k, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC) {
		log_error("kernel %s: not a little-endian x86_64 ELF executable; give an x86_64 vmlinux or "
			  "bzImage",
			  what);
		return -1;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS ||
	    eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff) {
		log_error("kernel %s: ELF program headers are missing or lie beyond the end of the file; "
			  "give a complete vmlinux",
			  what);
		return -1;
	}

	/* Pass 1: validate every segment and find the entry note before touching guest memory. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, k + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
			log_error("kernel %s: ELF segment %u lies beyond the end of the file; give a "
				  "complete vmlinux",
				  what, i);
			return -1;
		}
		if (ph.p_type == PT_NOTE) {
			if (!have_entry)
				have_entry = find_pvh_note(k + ph.p_offset, ph.p_filesz, &entry);
			continue;
		}
		if (ph.p_filesz > ph.p_memsz) {
			log_error("kernel %s: ELF segment %u has more file bytes than memory bytes; give a "
				  "valid vmlinux",
				  what, i);
			return -1;
		}
		if (ph.p_memsz == 0)
			continue;
		if (ph.p_paddr < X86_KERNEL_ADDR || ph.p_paddr >= low_end ||
		    ph.p_memsz > low_end - ph.p_paddr || !gpa_ptr(mem, ph.p_paddr, ph.p_memsz)) {
			log_error("kernel %s: ELF segment %u (0x%llx, %llu MiB) is outside RAM "
				  "1 MiB..0x%llx; give more --memory or a kernel linked for this range",
				  what, i, (unsigned long long)ph.p_paddr, MiB(ph.p_memsz),
				  (unsigned long long)low_end);
			return -1;
		}
		if (ph.p_paddr + ph.p_memsz > kernel_end)
			kernel_end = ph.p_paddr + ph.p_memsz;
	}
	if (!have_entry) {
		log_error("kernel %s: ELF vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build "
			  "it with CONFIG_PVH=y or give a bzImage",
			  what);
		return -1;
	}
	if (entry < X86_KERNEL_ADDR || entry >= kernel_end) {
		log_error("kernel %s: PVH entry point 0x%llx is outside the loaded kernel; give a valid "
			  "vmlinux",
			  what, (unsigned long long)entry);
		return -1;
	}
	if (check_cmdline(cmdline, X86_CMDLINE_MAX - 1))
		return -1;
	if (initrd_size && place_initrd(mem, initrd_size, kernel_end, low_end, what_initrd, &initrd_gpa))
		return -1;
	n = x86_build_e820(mem, e820, PVH_MEMMAP_MAX);
	if (n < 0) {
		log_error("guest RAM: memory map has too many entries; report a bug");
		return -1;
	}

	/* Pass 2: load. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, k + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		dst = gpa_ptr(mem, ph.p_paddr, ph.p_memsz); /* checked in pass 1 */
		memcpy(dst, k + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	if (initrd_size && gpa_write(mem, initrd_gpa, initrd, initrd_size))
		return ram_error(mem, what_initrd, initrd_gpa);
	if (gpa_write(mem, X86_CMDLINE_ADDR, cmdline, strlen(cmdline) + 1))
		return ram_error(mem, "command line", X86_CMDLINE_ADDR);

	if (initrd_size) {
		uint8_t mod[32] = { 0 }; /* hvm_modlist_entry: paddr, size, cmdline_paddr, reserved */

		put_le64(mod, initrd_gpa);
		put_le64(mod + 8, initrd_size);
		if (gpa_write(mem, PVH_MODLIST_ADDR, mod, sizeof(mod)))
			return ram_error(mem, "PVH module list", PVH_MODLIST_ADDR);
		put_le32(info + PVH_OFF_NR_MODULES, 1);
		put_le64(info + PVH_OFF_MODLIST, PVH_MODLIST_ADDR);
	}
	for (int i = 0; i < n; i++) {
		uint8_t ent[24] = { 0 }; /* hvm_memmap_table_entry: addr, size, type, reserved */

		put_le64(ent, e820[i].addr);
		put_le64(ent + 8, e820[i].size);
		put_le32(ent + 16, e820[i].type);
		if (gpa_write(mem, PVH_MEMMAP_ADDR + 24 * (uint64_t)i, ent, sizeof(ent)))
			return ram_error(mem, "PVH memory map", PVH_MEMMAP_ADDR);
	}
	put_le32(info + PVH_OFF_MAGIC, PVH_MAGIC);
	put_le32(info + PVH_OFF_VERSION, 1);
	put_le64(info + PVH_OFF_CMDLINE, X86_CMDLINE_ADDR);
	put_le64(info + PVH_OFF_RSDP, rsdp_gpa);
	put_le64(info + PVH_OFF_MEMMAP, PVH_MEMMAP_ADDR);
	put_le32(info + PVH_OFF_MEMMAP_NR, (uint32_t)n);
	if (gpa_write(mem, X86_PVH_INFO_ADDR, info, sizeof(info)))
		return ram_error(mem, "PVH start info", X86_PVH_INFO_ADDR);

	out->pvh = true;
	out->rip = entry;
	out->rsi = 0;
	out->rbx = X86_PVH_INFO_ADDR;
	return 0;
}

int x86_load_kernel(const struct guest_mem *mem, const uint8_t *kernel, size_t kernel_size,
		    const char *what_kernel, const uint8_t *initrd, size_t initrd_size,
		    const char *what_initrd, const char *cmdline, uint64_t rsdp_gpa,
		    struct x86_boot_entry *out)
{
	uint64_t low_end = low_ram_end(mem);
	int ret;

	if (!cmdline)
		cmdline = "";
	if (!initrd)
		initrd_size = 0;
	if (low_end <= X86_KERNEL_ADDR) {
		log_error("guest RAM: %llu MiB has no room for a kernel at 1 MiB; give more --memory",
			  (unsigned long long)(mem->total >> 20));
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (kernel_size >= SELFMAG && memcmp(kernel, ELFMAG, SELFMAG) == 0)
		ret = load_elf(mem, kernel, kernel_size, what_kernel, initrd, initrd_size, what_initrd,
			       cmdline, rsdp_gpa, low_end, out);
	else if (kernel_size >= HDR_MAGIC + 4 && memcmp(kernel + HDR_MAGIC, "HdrS", 4) == 0)
		ret = load_bzimage(mem, kernel, kernel_size, what_kernel, initrd, initrd_size, what_initrd,
				   cmdline, rsdp_gpa, low_end, out);
	else {
		log_error("kernel %s: not a bzImage or ELF vmlinux with a PVH entry note; give a Linux "
			  "kernel image",
			  what_kernel);
		return -1;
	}
	if (ret)
		return ret;
	if (write_gdt(mem, out->pvh))
		return ram_error(mem, "boot GDT", X86_GDT_ADDR);
	if (write_page_tables(mem))
		return ram_error(mem, "boot page tables", X86_PML4_ADDR);
	return 0;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->db = code64 ? 0 : 1; /* L=1 requires D=0 */
	s->s = 1;
	s->l = code64;
	s->g = 1;
}

#define CR0_PE   (1ULL << 0)
#define CR0_ET   (1ULL << 4)
#define CR0_NW   (1ULL << 29)
#define CR0_CD   (1ULL << 30)
#define CR0_PG   (1ULL << 31)
#define CR4_PAE  (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

void x86_boot_regs(const struct x86_boot_entry *entry, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	struct kvm_segment code, data;

	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;
	regs->rip = entry->rip;
	regs->rsp = X86_BOOT_STACK_TOP;
	regs->rbp = X86_BOOT_STACK_TOP;

	/* Hidden segment state must match the descriptors write_gdt() put in memory. */
	flat_seg(&code, X86_BOOT_CS, 0xb /* execute/read, accessed */, !entry->pvh);
	flat_seg(&data, X86_BOOT_DS, 0x3 /* read/write, accessed */, false);
	sregs->cs = code;
	sregs->ds = data;
	sregs->es = data;
	sregs->fs = data;
	sregs->gs = data;
	sregs->ss = data;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.selector = X86_BOOT_TSS;
	sregs->tr.limit = 0x67;
	sregs->tr.type = 0xb; /* busy TSS: VM entry insists on it */
	sregs->tr.present = 1;
	sregs->gdt.base = X86_GDT_ADDR;
	sregs->gdt.limit = X86_BOOT_GDT_ENTRIES * 8 - 1;
	/* Caches on: clear the reset value's CD/NW. */
	sregs->cr0 = (sregs->cr0 & ~(CR0_CD | CR0_NW)) | CR0_PE | CR0_ET;

	if (entry->pvh) {
		/* PVH ABI: 32-bit protected mode, paging off, ebx = hvm_start_info. */
		regs->rbx = entry->rbx;
		sregs->cr0 &= ~CR0_PG;
		sregs->cr4 = 0;
		sregs->cr3 = 0;
		sregs->efer = 0;
	} else {
		/* 64-bit boot protocol: long mode, identity paging, rsi = boot_params. */
		regs->rsi = entry->rsi;
		sregs->cr3 = X86_PML4_ADDR;
		sregs->cr4 |= CR4_PAE;
		sregs->cr0 |= CR0_PG;
		sregs->efer |= EFER_LME | EFER_LMA;
	}
}
