/* fuzz_util.c - see fuzz_util.h. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/device.h"
#include "core/ser.h"
#include "core/util.h"

#include "fuzz_util.h"

uint8_t fuzz_u8(struct fuzz_in *in)
{
	return fuzz_done(in) ? 0 : in->p[in->pos++];
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t lo = fuzz_u8(in);

	return (uint16_t)(lo | fuzz_u8(in) << 8);
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t lo = fuzz_u16(in);

	return lo | (uint32_t)fuzz_u16(in) << 16;
}

uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t lo = fuzz_u32(in);

	return lo | (uint64_t)fuzz_u32(in) << 32;
}

size_t fuzz_bytes(struct fuzz_in *in, void *buf, size_t n)
{
	size_t got;
	const uint8_t *p = fuzz_take(in, n, &got);

	if (got)
		memcpy(buf, p, got);
	memset((uint8_t *)buf + got, 0, n - got);
	return got;
}

const uint8_t *fuzz_take(struct fuzz_in *in, size_t n, size_t *got)
{
	const uint8_t *p = in->p + in->pos;

	*got = n < fuzz_left(in) ? n : fuzz_left(in);
	in->pos += *got;
	return p;
}

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

void fuzz_fix_sections(uint8_t *p, size_t len)
{
	size_t off = 0;

	while (len - off >= 24) {
		uint64_t n = get_le64(p + off + 8);

		if (n > len - off - 24)
			return;
		put_le64(p + off + 16, XXH3_64bits(p + off + 24, n));
		off += 24 + n;
	}
}

const char *fuzz_disk_image(void)
{
	static char path[256];
	const char *dir = getenv("TMPDIR");
	int fd;

	if (path[0])
		return path;
	snprintf(path, sizeof(path), "%s/kvmbox-fuzz-disk.img", dir && *dir ? dir : "/tmp");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	setenv("KVMBOX_BLK_SYNC", "1", 1);
	return path;
}

void fuzz_save_load(struct device *dev)
{
	struct ser_writer w;
	struct ser_reader r;

	if (!dev->ops->save || !dev->ops->load)
		return;
	ser_writer_init(&w);
	dev->ops->save(dev, &w);
	ser_reader_init(&r, w.buf, w.len);
	FUZZ_CHECK(dev->ops->load(dev, &r) == 0);
	ser_writer_free(&w);
}
