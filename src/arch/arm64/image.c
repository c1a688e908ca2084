/* image.c - arm64 Image loading (see image.h). Sizes are compared as "limit - offset", never
 * "offset + size", so a hostile header cannot overflow the arithmetic. */
#include "image.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "core/log.h"
#include "layout.h"

#define HDR_TEXT_OFFSET 8
#define HDR_IMAGE_SIZE  16
#define HDR_FLAGS       24
#define HDR_MAGIC       56
#define PAGE            4096ULL

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

int arm64_image_parse(const uint8_t *buf, size_t len, const char *what, struct arm64_image *out)
{
	if (len < ARM64_IMAGE_HEADER_SIZE) {
		log_error(
			"kernel %s: %zu bytes is too short for an arm64 Image header (%d); give the kernel's "
			"Image (Debian's vmlinuz)",
			what, len, ARM64_IMAGE_HEADER_SIZE);
		return -1;
	}
	if ((uint32_t)le64(buf + HDR_MAGIC) != ARM64_IMAGE_MAGIC) {
		if (!memcmp(buf,
			    "\x7f"
			    "ELF",
			    4))
			log_error("kernel %s: an ELF file (vmlinux), kvmbox boots the arm64 Image; give "
				  "arch/arm64/boot/Image or Debian's vmlinuz",
				  what);
		else
			log_error("kernel %s: not an arm64 Image (no ARM\\x64 magic at offset 56) nor a "
				  "gzip-compressed one; give the kernel's Image (Debian's vmlinuz)",
				  what);
		return -1;
	}
	out->text_offset = le64(buf + HDR_TEXT_OFFSET);
	out->image_size = le64(buf + HDR_IMAGE_SIZE);
	out->flags = le64(buf + HDR_FLAGS);
	if (out->flags & ARM64_IMAGE_FLAG_BE) {
		log_error("kernel %s: a big-endian kernel; kvmbox runs little-endian arm64 guests", what);
		return -1;
	}
	if (out->image_size == 0) {
		log_error("kernel %s: the Image header has no image_size (Linux before 3.17); use a newer "
			  "kernel",
			  what);
		return -1;
	}
	if (out->text_offset >= ARM64_KERNEL_ALIGN || out->text_offset % 8) {
		log_error("kernel %s: implausible text_offset 0x%llx in the Image header; give a valid "
			  "kernel",
			  what, (unsigned long long)out->text_offset);
		return -1;
	}
	return 0;
}

bool arm64_is_gzip(const uint8_t *buf, size_t len)
{
	return len >= 3 && buf[0] == 0x1f && buf[1] == 0x8b && buf[2] == 0x08;
}

int64_t arm64_gunzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap, const char *what)
{
	z_stream s;
	size_t in_left = len, out_left = cap;
	int ret;

	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) { /* 16: gzip wrapper only */
		log_error("kernel %s: cannot start the gzip decompressor (out of memory?)", what);
		return -1;
	}
	s.next_in = (Bytef *)(uintptr_t)in;
	s.next_out = out;
	do {
		/* zlib counts in 32-bit uInt: feed both sides in slices. */
		if (s.avail_in == 0 && in_left) {
			s.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
			in_left -= s.avail_in;
		}
		if (s.avail_out == 0 && out_left) {
			s.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
			out_left -= s.avail_out;
		}
		ret = inflate(&s, Z_NO_FLUSH);
	} while (ret == Z_OK && (s.avail_in || in_left) && (s.avail_out || out_left));
	if (ret != Z_STREAM_END) {
		if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT)
			log_error("kernel %s: corrupt gzip data (%s); give an intact kernel", what,
				  s.msg ? s.msg : "bad stream");
		else if (ret == Z_MEM_ERROR)
			log_error("kernel %s: out of memory decompressing it", what);
		else if (s.avail_out == 0 && out_left == 0)
			log_error(
				"kernel %s: decompresses to more than the %zu MiB of guest RAM free for it; "
				"give more --memory",
				what, cap >> 20);
		else
			log_error("kernel %s: truncated gzip data; give a complete kernel", what);
		inflateEnd(&s);
		return -1;
	}
	inflateEnd(&s);
	return (int64_t)(cap - out_left - s.avail_out);
}

int arm64_load_kernel(const struct guest_mem *mem, const uint8_t *kernel, size_t klen,
		      const char *what_kernel, const uint8_t *initrd, size_t ilen, const char *what_initrd,
		      const char *cmdline, struct arm64_boot *out)
{
	const struct mem_region *ram = &mem->regions[0];
	uint64_t ram_end, top, kspan, room;
	struct arm64_image img;
	uint8_t *dst;

	memset(out, 0, sizeof(*out));
	if (mem->nr_regions != 1 || ram->gpa != ARM64_RAM_BASE || ram->size < 2 * ARM64_FDT_BLOCK) {
		log_error("guest RAM: expected one region of at least 4 MiB at 0x%llx; this is a kvmbox bug",
			  (unsigned long long)ARM64_RAM_BASE);
		return -1;
	}
	if (cmdline && strlen(cmdline) >= ARM64_CMDLINE_MAX) {
		log_error("command line: %zu bytes is longer than the kernel accepts (%d); shorten it",
			  strlen(cmdline), ARM64_CMDLINE_MAX - 1);
		return -1;
	}
	ram_end = ram->gpa + ram->size;
	out->fdt = align_down(ram_end - ARM64_FDT_BLOCK, ARM64_FDT_BLOCK);
	top = out->fdt;
	if (initrd) {
		if (ilen > top - ram->gpa - ARM64_KERNEL_ALIGN) {
			log_error(
				"initrd %s: %zu MiB does not fit in %llu MiB of RAM with the kernel; give more "
				"--memory",
				what_initrd, ilen >> 20, (unsigned long long)(ram->size >> 20));
			return -1;
		}
		out->initrd_start = align_down(top - ilen, PAGE);
		out->initrd_end = out->initrd_start + ilen;
		if (gpa_write(mem, out->initrd_start, initrd, ilen) < 0) {
			log_error("initrd %s: cannot be written at 0x%llx; this is a kvmbox bug", what_initrd,
				  (unsigned long long)out->initrd_start);
			return -1;
		}
		top = out->initrd_start;
	}
	/* The kernel may use [RAM base, top). */
	room = top - ram->gpa;
	dst = gpa_ptr(mem, ram->gpa, room);
	if (!dst)
		return -1;
	if (arm64_is_gzip(kernel, klen)) {
		int64_t n = arm64_gunzip(kernel, klen, dst, room, what_kernel);

		if (n < 0 || arm64_image_parse(dst, (size_t)n, what_kernel, &img) < 0)
			return -1;
		klen = (size_t)n;
		kernel = dst; /* moved into place below */
	} else if (arm64_image_parse(kernel, klen, what_kernel, &img) < 0) {
		return -1;
	}
	kspan = img.image_size > klen ? img.image_size : klen;
	if (img.text_offset > room || kspan > room - img.text_offset) {
		log_error("kernel %s: needs %llu MiB of RAM from 0x%llx but only %llu MiB are free below the "
			  "%s; give more --memory",
			  what_kernel, (unsigned long long)(kspan >> 20),
			  (unsigned long long)(ram->gpa + img.text_offset), (unsigned long long)(room >> 20),
			  initrd ? "initrd" : "device tree");
		return -1;
	}
	memmove(dst + img.text_offset, kernel, klen);
	out->entry = ram->gpa + img.text_offset;
	out->kernel_end = out->entry + kspan;
	return 0;
}
