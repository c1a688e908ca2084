/* image.h - loading an arm64 Linux kernel Image (plain or gzip-compressed) and initrd into
 * guest RAM, per Documentation/arm64/booting.rst.
 *
 * Pure functions of guest memory (no KVM ioctls), so they build and are unit-tested on any
 * host architecture. The kernel and initrd are hostile input: every size in them is checked
 * against the file and guest RAM, and a bad one gets a one-line error. */
#ifndef KVMBOX_ARM64_IMAGE_H
#define KVMBOX_ARM64_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

#define ARM64_IMAGE_HEADER_SIZE 64
#define ARM64_IMAGE_MAGIC       0x644d5241u /* "ARM\x64", little endian, at offset 56 */
#define ARM64_IMAGE_FLAG_BE     0x1ull      /* flags bit 0: big-endian kernel */
/* arm64's COMMAND_LINE_SIZE (Linux 6.1), including the NUL. */
#define ARM64_CMDLINE_MAX 2048

/* What the Image header says. */
struct arm64_image {
	uint64_t text_offset; /* load address = 2 MiB aligned base + text_offset */
	uint64_t image_size;  /* bytes the kernel uses from its load address, bss included */
	uint64_t flags;
};

/* Where the boot pieces went in guest RAM. */
struct arm64_boot {
	uint64_t entry;        /* the Image's load address: first instruction, x0 = fdt */
	uint64_t kernel_end;   /* load address + the larger of image_size and the file size */
	uint64_t fdt;          /* where the device tree goes (ARM64_FDT_MAX bytes reserved) */
	uint64_t initrd_start; /* [start, end) of the initrd; both 0 without one */
	uint64_t initrd_end;
};

/* Check an uncompressed Image header (len bytes at buf). 0, or -1 after log_error() naming
 * `what` (the kernel's path): too short, wrong magic (an ELF vmlinux is named as such),
 * big-endian, no image_size (Linux before 3.17), implausible text_offset. */
int arm64_image_parse(const uint8_t *buf, size_t len, const char *what, struct arm64_image *out);

/* True when buf starts like a gzip stream (1f 8b 08). */
bool arm64_is_gzip(const uint8_t *buf, size_t len);

/* Inflate the gzip stream in[0..len) into out[0..cap). Returns the number of bytes written, or -1
 * after log_error() naming `what`: corrupt or truncated data, or more than cap bytes. */
int64_t arm64_gunzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap, const char *what);

/* Lay out the boot pieces in mem, whose only RAM region must start at ARM64_RAM_BASE: the device
 * tree's 2 MiB block at the top, the initrd (may be NULL) just below it, the kernel (an Image, or a
 * gzip-compressed one, inflated in place) at RAM base + text_offset. cmdline is only checked for
 * length here (it goes into the device tree). Returns 0, or -1 after log_error(). */
int arm64_load_kernel(const struct guest_mem *mem, const uint8_t *kernel, size_t klen,
		      const char *what_kernel, const uint8_t *initrd, size_t ilen, const char *what_initrd,
		      const char *cmdline, struct arm64_boot *out);

#endif
