/* fuzz_elf_pvh - the x86 ELF (PVH entry note) loader (arch/x86/boot.c) on a hostile kernel file.
 *
 * Input: one byte choosing the RAM size and whether there is an initrd and a command line, then
 * the kernel file. The ELF magic is forced at offset 0 so every input takes the ELF path
 * (fuzz_bzimage has the bzImage one). */
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "fuzz_util.h"

#define RAM_MAX (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *ram;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t initrd[4096] = { 1, 2, 3 };
	struct x86_boot_entry entry;
	struct guest_mem mem;
	struct mem_region r;
	uint8_t *k;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	if (!ram)
		ram = calloc(1, RAM_MAX);
	/* 2, 4, 16 or 64 MiB of RAM from 0. */
	r = (struct mem_region){ .gpa = 0, .size = (uint64_t)(2u << (2 * (sel & 3))) << 20 };
	if (r.size > RAM_MAX)
		r.size = RAM_MAX;
	guest_mem_init_static(&mem, ram, &r, 1);
	k = malloc(size - 1 < 64 ? 64 : size - 1);
	memset(k, 0, 64);
	memcpy(k, data + 1, size - 1);
	memcpy(k, "\177ELF", 4);
	x86_load_kernel(&mem, k, size - 1 < 64 ? 64 : size - 1, "kernel", (sel & 4) ? initrd : NULL,
			(sel & 4) ? sizeof(initrd) : 0, "initrd", (sel & 8) ? "console=ttyS0 quiet" : NULL,
			(sel & 16) ? 0xe0000 : 0, &entry);
	free(k);
	return 0;
}
