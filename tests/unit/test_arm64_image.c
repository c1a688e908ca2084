/* arm64 Image loading: the header checks (good, bad magic, too short, ELF, big-endian, no
 * image_size), gzip-compressed Images (good, corrupt, truncated, too big) and where the kernel,
 * initrd and device tree go in guest RAM. Runs on any host architecture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "arch/arm64/image.h"
#include "arch/arm64/layout.h"
#include "fakes.h"

#define RAM_SIZE (64ULL << 20)
#define KSIZE    (1u << 20)

/* A fake Image: header fields as given, then a recognisable pattern. */
static uint8_t *make_image(size_t len, uint64_t text_offset, uint64_t image_size, uint64_t flags)
{
	uint8_t *k = calloc(1, len);

	assert_non_null(k);
	for (size_t i = 64; i < len; i++)
		k[i] = (uint8_t)(i * 7);
	k[0] = 'M';
	k[1] = 'Z';
	put_le64(k + 8, text_offset);
	put_le64(k + 16, image_size);
	put_le64(k + 24, flags);
	put_le32(k + 56, ARM64_IMAGE_MAGIC);
	return k;
}

static uint8_t *gzip(const uint8_t *in, size_t len, size_t *out_len)
{
	z_stream s;
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);

	memset(&s, 0, sizeof(s));
	assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	s.next_in = (Bytef *)(uintptr_t)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)cap;
	assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
	*out_len = cap - s.avail_out;
	deflateEnd(&s);
	return out;
}

static void ram(struct fake_ram *r, uint64_t size)
{
	struct mem_region l = { .gpa = ARM64_RAM_BASE, .size = size };

	fake_ram_init(r, &l, 1);
}

static void test_header_good(void **state)
{
	uint8_t *k = make_image(KSIZE, 0, 3 * KSIZE, 0xa);
	struct arm64_image img;

	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), 0);
	assert_true(img.text_offset == 0);
	assert_true(img.image_size == 3 * KSIZE);
	assert_true(img.flags == 0xa);
	assert_false(arm64_is_gzip(k, KSIZE));
	free(k);
}

static void test_header_bad(void **state)
{
	uint8_t *k = make_image(KSIZE, 0, KSIZE, 0);
	struct arm64_image img;

	assert_int_equal(arm64_image_parse(k, 63, "k", &img), -1); /* too short */
	assert_int_equal(arm64_image_parse(k, 0, "k", &img), -1);
	k[56] ^= 1; /* bad magic */
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), -1);
	k[56] ^= 1;
	memcpy(k,
	       "\x7f"
	       "ELF",
	       4); /* a vmlinux: no magic either, named as such in the error */
	put_le32(k + 56, 0);
	assert_int_equal(arm64_image_parse(k, 64, "k", &img), -1);
	put_le32(k + 56, ARM64_IMAGE_MAGIC);
	put_le64(k + 24, ARM64_IMAGE_FLAG_BE);
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), -1);
	put_le64(k + 24, 0);
	put_le64(k + 16, 0); /* no image_size: Linux before 3.17 */
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), -1);
	put_le64(k + 16, KSIZE);
	put_le64(k + 8, ARM64_KERNEL_ALIGN); /* text_offset must be below 2 MiB */
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), -1);
	put_le64(k + 8, 0x80004); /* and 8-byte aligned */
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), -1);
	put_le64(k + 8, 0x80000); /* old kernels */
	assert_int_equal(arm64_image_parse(k, KSIZE, "k", &img), 0);
	free(k);
}

static void test_load_layout(void **state)
{
	struct fake_ram r;
	uint8_t *k = make_image(KSIZE, 0x80000, 4 * KSIZE, 0);
	uint8_t initrd[5000];
	struct arm64_boot b;
	uint64_t top = ARM64_RAM_BASE + RAM_SIZE;

	memset(initrd, 0xa5, sizeof(initrd));
	ram(&r, RAM_SIZE);
	assert_int_equal(
		arm64_load_kernel(&r.mem, k, KSIZE, "k", initrd, sizeof(initrd), "i", "console=ttyS0", &b),
		0);
	assert_true(b.entry == ARM64_RAM_BASE + 0x80000);
	assert_true(b.kernel_end == b.entry + 4 * KSIZE);
	assert_memory_equal(fake_host(&r.mem, b.entry, KSIZE), k, KSIZE);
	/* The device tree has the top 2 MiB block; the initrd sits page-aligned just below it. */
	assert_true(b.fdt == top - ARM64_FDT_BLOCK);
	assert_true(b.fdt % ARM64_FDT_BLOCK == 0);
	assert_true(b.initrd_end <= b.fdt && b.initrd_start % 4096 == 0);
	assert_true(b.initrd_end - b.initrd_start == sizeof(initrd));
	assert_true(b.initrd_start >= b.kernel_end);
	assert_memory_equal(fake_host(&r.mem, b.initrd_start, sizeof(initrd)), initrd, sizeof(initrd));
	/* No initrd: nothing in /chosen for it. */
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, NULL, &b), 0);
	assert_true(b.initrd_start == 0 && b.initrd_end == 0);
	/* RAM not a multiple of 2 MiB: the DTB's block is still aligned and inside RAM. */
	fake_ram_free(&r);
	ram(&r, RAM_SIZE + 0x1000);
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, NULL, &b), 0);
	assert_true(b.fdt == top - ARM64_FDT_BLOCK);
	fake_ram_free(&r);
	free(k);
}

static void test_load_too_big(void **state)
{
	struct fake_ram r;
	uint8_t *k = make_image(KSIZE, 0, 63ULL << 20, 0); /* bss beyond what is free */
	uint8_t *big = calloc(1, 40 << 20);
	struct arm64_boot b;
	char cmd[ARM64_CMDLINE_MAX + 1];

	ram(&r, RAM_SIZE);
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, NULL, &b), -1);
	put_le64(k + 16, 30ULL << 20); /* fits alone, not with a 40 MiB initrd */
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, NULL, &b), 0);
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", big, 40 << 20, "i", NULL, &b), -1);
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", big, 63 << 20, "i", NULL, &b), -1);
	put_le64(k + 16, UINT64_MAX); /* no overflow */
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, NULL, &b), -1);
	put_le64(k + 16, KSIZE);
	memset(cmd, 'x', sizeof(cmd) - 1);
	cmd[sizeof(cmd) - 1] = 0;
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, cmd, &b), -1);
	cmd[ARM64_CMDLINE_MAX - 1] = 0; /* 2047 characters: the most that fits */
	assert_int_equal(arm64_load_kernel(&r.mem, k, KSIZE, "k", NULL, 0, NULL, cmd, &b), 0);
	fake_ram_free(&r);
	free(big);
	free(k);
}

static void test_gzip_image(void **state)
{
	struct fake_ram r;
	uint8_t *k = make_image(KSIZE, 0, 2 * KSIZE, 0), *z;
	size_t zlen;
	struct arm64_boot b;

	z = gzip(k, KSIZE, &zlen);
	assert_true(arm64_is_gzip(z, zlen));
	ram(&r, RAM_SIZE);
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen, "k.gz", NULL, 0, NULL, NULL, &b), 0);
	assert_true(b.entry == ARM64_RAM_BASE);
	assert_memory_equal(fake_host(&r.mem, b.entry, KSIZE), k, KSIZE);
	/* Truncated stream. */
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen / 2, "k.gz", NULL, 0, NULL, NULL, &b), -1);
	/* Corrupt: a flipped byte inside the deflate data, then a broken CRC. */
	z[zlen / 2] ^= 0xff;
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen, "k.gz", NULL, 0, NULL, NULL, &b), -1);
	z[zlen / 2] ^= 0xff;
	z[zlen - 6] ^= 0x01;
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen, "k.gz", NULL, 0, NULL, NULL, &b), -1);
	free(z);
	/* A gzip of something that is not an Image. */
	memset(k, 0, 64);
	z = gzip(k, KSIZE, &zlen);
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen, "k.gz", NULL, 0, NULL, NULL, &b), -1);
	free(z);
	fake_ram_free(&r);
	free(k);
}

static void test_gzip_bomb(void **state)
{
	struct fake_ram r;
	size_t big = 80 << 20, zlen; /* more than all of RAM */
	uint8_t *k = make_image(big, 0, big, 0), *z;
	uint8_t out[100];
	struct arm64_boot b;

	memset(k + 64, 0, big - 64);
	z = gzip(k, big, &zlen);
	ram(&r, RAM_SIZE);
	assert_int_equal(arm64_load_kernel(&r.mem, z, zlen, "k.gz", NULL, 0, NULL, NULL, &b), -1);
	assert_int_equal(arm64_gunzip(z, zlen, out, sizeof(out), "k.gz"), -1);
	assert_int_equal(arm64_gunzip(k, 64, out, sizeof(out), "k.gz"), -1); /* not gzip at all */
	fake_ram_free(&r);
	free(z);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_good), cmocka_unit_test(test_header_bad),
		cmocka_unit_test(test_load_layout), cmocka_unit_test(test_load_too_big),
		cmocka_unit_test(test_gzip_image),  cmocka_unit_test(test_gzip_bomb),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
