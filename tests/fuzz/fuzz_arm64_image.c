/* fuzz_arm64_image - the arm64 kernel Image loader (arch/arm64/image.c, plain parsing, built for
 * the host) on a hostile Image: its 64-byte header, or a gzip stream inflated into guest RAM.
 *
 * Input: one byte choosing the RAM size, an initrd and a command line, then the Image file. Bit 5
 * of that byte forces the "ARM\x64" magic, bit 6 the gzip magic, so both paths stay reachable. */
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/image.h"
#include "arch/arm64/layout.h"
#include "fuzz_util.h"

#define RAM_MAX (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *ram;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t initrd[4096] = { 1, 2, 3 };
	struct arm64_image img;
	struct arm64_boot boot;
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
	/* 4, 8, 32 or 64 MiB (plus a page when bit 4 says so: RAM not a multiple of 2 MiB). */
	r = (struct mem_region){ .gpa = ARM64_RAM_BASE, .size = (uint64_t)(4u << (sel & 3)) << 20 };
	if (r.size > RAM_MAX - 4096)
		r.size = RAM_MAX - 4096;
	if (sel & 16)
		r.size += 4096;
	guest_mem_init_static(&mem, ram, &r, 1);
	klen = size - 1 < ARM64_IMAGE_HEADER_SIZE ? ARM64_IMAGE_HEADER_SIZE : size - 1;
	k = calloc(1, klen);
	memcpy(k, data + 1, size - 1);
	if (sel & 32)
		memcpy(k + 56, "ARM\x64", 4);
	else if (sel & 64)
		memcpy(k, "\x1f\x8b\x08", 3);
	arm64_image_parse(k, klen, "kernel", &img);
	arm64_load_kernel(&mem, k, klen, "kernel", (sel & 4) ? initrd : NULL, (sel & 4) ? sizeof(initrd) : 0,
			  "initrd", (sel & 8) ? "console=ttyAMA0" : NULL, &boot);
	free(k);
	return 0;
}
