/* x86_kernel.h - the body of fuzz_bzimage and fuzz_elf_pvh: the x86 kernel loader
 * (arch/x86/boot.c: x86_load_kernel) on a hostile kernel file.
 *
 * Input: one byte choosing the RAM size and whether there is an initrd and a command line, then
 * the kernel file, padded to at least min bytes with magic (mlen bytes) forced at moff, so that
 * every input takes the path the target is for. */
#ifndef KVMBOX_FUZZ_X86_KERNEL_H
#define KVMBOX_FUZZ_X86_KERNEL_H

#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "fuzz_util.h"

#define RAM_MAX (64u << 20)

static inline int fuzz_x86_kernel(const uint8_t *data, size_t size, size_t min, size_t moff,
				  const char *magic, size_t mlen)
{
	static const uint8_t initrd[4096] = { 1, 2, 3 };
	static uint8_t *ram;
	struct x86_boot_entry entry;
	struct guest_mem mem;
	struct mem_region r;
	size_t klen;
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
	klen = size - 1 < min ? min : size - 1;
	k = calloc(1, klen);
	memcpy(k, data + 1, size - 1);
	memcpy(k + moff, magic, mlen);
	x86_load_kernel(&mem, k, klen, "kernel", (sel & 4) ? initrd : NULL, (sel & 4) ? sizeof(initrd) : 0,
			"initrd", (sel & 8) ? "console=ttyS0 quiet" : NULL, (sel & 16) ? 0xe0000 : 0, &entry);
	free(k);
	return 0;
}

#endif
